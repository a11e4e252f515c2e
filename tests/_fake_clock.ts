/**
 * A fake {@linkcode Clock} for driving timers by hand: a peer's call timeouts, drain and send
 * queue; the client's backoff, give-up, connect timeout and heartbeat; the server's idle check.
 * Time only moves when the test calls `advance()` or `runNext()`.
 *
 * @module
 */
import type { Clock } from "../clock.ts";

interface Timer {
  readonly id: number;
  readonly due: number;
  readonly delay: number;
  readonly fn: () => void;
}

/** A clock whose time moves only on `advance()` / `runNext()`; records every scheduled delay. */
export class FakeClock implements Clock {
  #now = 0;
  #nextId = 1;
  #timers = new Map<number, Timer>();
  /** Every delay passed to `setTimeout`, in call order (cleared ones included). */
  readonly scheduled: number[] = [];

  /** The fake time in ms. */
  now(): number {
    return this.#now;
  }

  /** Schedules `fn` at `now() + ms`. */
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#nextId++;
    const delay = Math.max(0, ms);
    this.#timers.set(id, { id, due: this.#now + delay, delay, fn });
    this.scheduled.push(delay);
    return id;
  }

  /** Cancels a timer; ignores unknown handles. */
  clearTimeout(handle: unknown): void {
    if (typeof handle === "number") this.#timers.delete(handle);
  }

  /** Timers not yet run, earliest first (`due` is absolute fake time). */
  get pending(): { due: number; delay: number }[] {
    return this.#ordered().map(({ due, delay }) => ({ due, delay }));
  }

  /**
   * Moves time to the earliest timer's due time and runs it.
   *
   * @returns The timer's delay and due time, or `undefined` when none is scheduled.
   */
  runNext(): { due: number; delay: number } | undefined {
    const timer = this.#ordered()[0];
    if (!timer) return undefined;
    this.#timers.delete(timer.id);
    this.#now = Math.max(this.#now, timer.due);
    timer.fn();
    return { due: timer.due, delay: timer.delay };
  }

  /**
   * Moves time forward by `ms`, running every timer that falls due on the way, in order
   * (including ones scheduled by timers run meanwhile).
   *
   * @returns How many timers ran.
   */
  advance(ms: number): number {
    const end = this.#now + ms;
    let ran = 0;
    for (;;) {
      const timer = this.#ordered()[0];
      if (!timer || timer.due > end) break;
      this.#timers.delete(timer.id);
      this.#now = timer.due;
      timer.fn();
      ran++;
    }
    this.#now = end;
    return ran;
  }

  #ordered(): Timer[] {
    return [...this.#timers.values()].sort((a, b) => a.due - b.due || a.id - b.id);
  }
}
