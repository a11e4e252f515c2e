/**
 * What the two listening sockets share (internal; not exported by mod.ts): the Deno face's
 * {@linkcode Listener} (`_server_guard.ts`) and the Node face's `NodeListener`
 * (`_node_listener.ts`) each know only how to listen once on their runtime.
 *
 * - {@linkcode Relisten}: when accepting fails, report it once per incident, listen again with
 *   backoff, and say when listening again worked.
 * - {@linkcode HandlerFailures}: the rate-limited log of request handlers that threw.
 * - {@linkcode waitAtMost}: the bounded wait of a listener's `stop()`.
 *
 * Runs in Deno and Node (no `Deno.*` here).
 *
 * @module
 */

import type { Clock } from "./clock.ts";
import { type Logger, RateLimitedLog } from "./log.ts";
import { errorText } from "./_reply.ts";

/** First delay before listening again after accepting failed; doubles on each failure. */
export const RELISTEN_FIRST_DELAY_MS = 100;
/** Longest delay between two attempts to listen again. */
export const RELISTEN_MAX_DELAY_MS = 5000;

/** What {@linkcode Relisten} needs. */
export interface RelistenOptions {
  /** The address listened on, for the log lines. */
  hostname: string;
  /** The bound port, for the log lines. */
  port: () => number;
  /**
   * Listens once more on the same address and port, and makes that the current server.
   * Returns (Deno) or resolves (Node) once listening; throws or rejects when it cannot.
   */
  listen: () => void | Promise<void>;
  /** Timers of the backoff. */
  clock: Clock;
  /** Where incidents and recoveries are reported (error, then info). */
  logger: Logger;
  /** Called once per incident, when accepting fails. */
  onListenError?: (error: Error) => void;
}

/**
 * The re-listen state machine of a listener that outlives a failed accept loop. The listener
 * calls {@linkcode Relisten.lost} when its current server stopped accepting; the failure is
 * reported once (an error line and `onListenError`), and `listen` is tried after
 * {@linkcode RELISTEN_FIRST_DELAY_MS}, then doubling to at most {@linkcode RELISTEN_MAX_DELAY_MS},
 * until it succeeds (an info line) or {@linkcode Relisten.stop} is called.
 *
 * The incident lasts until a new server has kept accepting for {@linkcode RELISTEN_MAX_DELAY_MS}:
 * a server that listens again but fails at once (the descriptors are still taken) does not
 * report a new incident or restart the backoff, so a lasting exhaustion costs one error line.
 *
 * @example One incident: the first attempt fails, the second listens
 * ```ts
 * import assert from "node:assert/strict";
 * import { Relisten } from "./_relisten.ts";
 * const timers: (() => void)[] = [];
 * const setTimeout = (fn: () => void) => timers.push(fn);
 * const clock = { now: () => 0, setTimeout, clearTimeout() {} };
 * const lines: string[] = [];
 * const log = (line: string) => void lines.push(line);
 * let tries = 0;
 * const relisten = new Relisten({
 *   hostname: "127.0.0.1",
 *   port: () => 8080,
 *   listen: () => {
 *     if (++tries === 1) throw new Error("Too many open files");
 *   },
 *   clock,
 *   logger: { debug: log, info: log, warn: log, error: log },
 * });
 * relisten.lost(new Error("Too many open files")); // the listener's server stopped accepting
 * timers.shift()!(); // after 100 ms: fails, tries again after 200 ms
 * timers.shift()!(); // listens
 * relisten.stop();
 * assert.deepEqual(lines, [
 *   "Cannot accept connections on 127.0.0.1:8080: Too many open files; " +
 *   "listening again with backoff (open connections stay open)",
 *   "Listening again on 127.0.0.1:8080 after 2 attempts",
 * ]);
 * ```
 */
export class Relisten {
  readonly #options: RelistenOptions;
  #retry: unknown;
  #delayMs = RELISTEN_FIRST_DELAY_MS;
  #attempts = 0;
  #stopped = false;
  /** A failure was reported and no new server has kept running since. */
  #incident = false;
  #healthy: unknown;

  /** @param options See {@linkcode RelistenOptions}. */
  constructor(options: RelistenOptions) {
    this.#options = options;
  }

  /** Whether `stop()` was called. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * The current server stopped accepting: reports it unless this incident was reported
   * already, and schedules the next attempt to listen.
   *
   * @param error Why (a non-`Error` is wrapped in one).
   */
  lost(error: unknown): void {
    if (this.#stopped) return;
    this.#options.clock.clearTimeout(this.#healthy);
    this.#healthy = undefined;
    if (!this.#incident) this.#report(error instanceof Error ? error : new Error(String(error)));
    this.#schedule();
  }

  /** Cancels the pending attempt and the incident's timer, for good. */
  stop(): void {
    this.#stopped = true;
    this.#options.clock.clearTimeout(this.#retry);
    this.#options.clock.clearTimeout(this.#healthy);
    this.#retry = this.#healthy = undefined;
  }

  #report(error: Error): void {
    this.#incident = true;
    this.#attempts = 0;
    this.#delayMs = RELISTEN_FIRST_DELAY_MS;
    const { hostname, port, logger, onListenError } = this.#options;
    logger.error(
      `Cannot accept connections on ${hostname}:${port()}: ${error.message}; ` +
        `listening again with backoff (open connections stay open)`,
    );
    try {
      onListenError?.(error);
    } catch (thrown) {
      logger.error(`onListenError threw: ${errorText(thrown)}`);
    }
  }

  #schedule(): void {
    const delayMs = this.#delayMs;
    this.#delayMs = Math.min(this.#delayMs * 2, RELISTEN_MAX_DELAY_MS);
    this.#retry = this.#options.clock.setTimeout(() => this.#relisten(), delayMs);
  }

  #relisten(): void {
    this.#retry = undefined;
    if (this.#stopped) return;
    this.#attempts++;
    let listening: void | Promise<void>;
    try {
      listening = this.#options.listen();
    } catch {
      return this.#schedule(); // still out of descriptors, or the port is taken: later
    }
    // Synchronous on Deno: the recovery is logged in the timer's turn.
    if (listening instanceof Promise) {
      listening.then(() => this.#listening(), () => this.#stopped || this.#schedule());
    } else this.#listening();
  }

  #listening(): void {
    if (this.#stopped) return;
    // Over once this server has kept accepting as long as the longest backoff step.
    this.#healthy = this.#options.clock.setTimeout(() => {
      this.#healthy = undefined;
      this.#incident = false;
    }, RELISTEN_MAX_DELAY_MS);
    const tries = this.#attempts === 1 ? "1 attempt" : `${this.#attempts} attempts`;
    const { hostname, port, logger } = this.#options;
    logger.info(`Listening again on ${hostname}:${port()} after ${tries}`);
  }
}

/**
 * The log of request handlers that threw: each failure costs its connection (a 500 for a plain
 * request) and is logged at error level, at most 10 lines per 10 s plus one summary line.
 * (Deno's default would print a stack trace per request, unbounded.)
 *
 * @example
 * ```ts ignore
 * const failures = new HandlerFailures(logger, clock);
 * handler(request).catch((error) => failures.failed(error));
 * failures.flush(); // on stop
 * ```
 */
export class HandlerFailures {
  readonly #log: RateLimitedLog;

  /**
   * @param logger Where the lines go (error level).
   * @param clock Where the interval's timer comes from.
   */
  constructor(logger: Logger, clock: Clock) {
    this.#log = new RateLimitedLog((line) => logger.error(line), {
      clock,
      summarize: (count, _counts, seconds) =>
        `${count} more requests failed in the last ${seconds} s`,
    });
  }

  /**
   * Logs one failure (rate-limited).
   *
   * @param error What the handler threw.
   */
  failed(error: unknown): void {
    this.#log.log("", `Request handler failed: ${errorText(error)}`);
  }

  /** Writes the summary of what was held back, if anything. */
  flush(): void {
    this.#log.flush();
  }
}

/**
 * Waits for `promise` to settle, but at most `timeoutMs`, on the global timers (a stop must end
 * even with a fake clock).
 *
 * @param promise What to wait for; its rejection is ignored.
 * @param timeoutMs The bound.
 * @returns When settled or the bound passed.
 */
export async function waitAtMost(promise: Promise<unknown>, timeoutMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    promise.catch(() => {}),
    new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs)),
  ]);
  clearTimeout(timer);
}
