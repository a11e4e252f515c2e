/**
 * One wait's end by a timeout or an abort signal, whichever comes first (internal). The peer's
 * calls, the peer's drain and the client's calls waiting for a connection all wire the pair the
 * same way: here, once. Runs in Deno, browsers and Node (no `Deno.*` here).
 *
 * @module
 */

import type { Clock } from "./clock.ts";

/**
 * Arms a timer and listens to a signal; the first to fire calls `expire` once with its reason
 * (a `TimeoutError` `DOMException`, or `signal.reason`) and disarms the other. `clear()` disarms
 * both when the wait ended another way. Made only for a wait that has a timeout or a signal, so
 * the common call with neither costs nothing.
 *
 * The signal listens through `handleEvent` (this object is the listener), so a deadline is one
 * object and one timer callback, no further closure.
 *
 * @example An abort ends the wait before its timeout
 * ```ts
 * import assert from "node:assert/strict";
 * import { Deadline } from "./_deadline.ts";
 * import { realClock } from "./clock.ts";
 * const controller = new AbortController();
 * const reasons: unknown[] = [];
 * const deadline = new Deadline(realClock, 60_000, controller.signal, 'Call "slow"', (reason) => {
 *   reasons.push(reason);
 * });
 * controller.abort("stop"); // the timer is cleared with it
 * deadline.clear(); // as the owner does when the wait ends: no further effect
 * assert.deepEqual(reasons, ["stop"]);
 * ```
 */
export class Deadline implements EventListenerObject {
  readonly #clock: Clock;
  readonly #signal: AbortSignal | undefined;
  readonly #expire: (reason: unknown) => void;
  #timer: unknown;
  #armed = true;

  /**
   * Arms the deadline; the caller has checked that `signal` is not aborted yet.
   *
   * @param clock Where the timer comes from.
   * @param timeoutMs After this many ms, `expire` gets a `TimeoutError`; `undefined`: never.
   * @param signal When it aborts, `expire` gets its reason.
   * @param what The wait's subject, for the timeout's message: `<what> timed out after N ms`.
   * @param expire Called at most once, never after `clear()`.
   */
  constructor(
    clock: Clock,
    timeoutMs: number | undefined,
    signal: AbortSignal | undefined,
    what: string,
    expire: (reason: unknown) => void,
  ) {
    this.#clock = clock;
    this.#signal = signal;
    this.#expire = expire;
    if (timeoutMs !== undefined) {
      this.#timer = clock.setTimeout(() => this.#fire(timeoutError(what, timeoutMs)), timeoutMs);
    }
    signal?.addEventListener("abort", this);
  }

  /** The signal's abort (this object is its listener). */
  handleEvent(): void {
    this.#fire(this.#signal!.reason);
  }

  /** Disarms the timer and the signal; `expire` will not be called. Idempotent. */
  clear(): void {
    if (!this.#armed) return;
    this.#armed = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#signal?.removeEventListener("abort", this);
  }

  #fire(reason: unknown): void {
    if (!this.#armed) return;
    this.clear();
    this.#expire(reason);
  }
}

/** The reason a wait that ran out of time rejects with, as `AbortSignal.timeout()` would. */
function timeoutError(what: string, timeoutMs: number): DOMException {
  return new DOMException(`${what} timed out after ${timeoutMs} ms`, "TimeoutError");
}
