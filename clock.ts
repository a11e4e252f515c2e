/**
 * Timers behind an interface, so tests can drive every timer with a fake clock. Runs in Deno,
 * browsers and Node.
 *
 * @module
 */

/**
 * The timer functions Mist waits with: a peer's call timeouts, drain and send-queue poll; the
 * client's backoff, give-up, connect timeout and heartbeat; the server's idle check and deadlines.
 *
 * @example A clock that logs every timer
 * ```ts
 * import { type Clock, realClock } from "./clock.ts";
 * const logging: Clock = {
 *   now: () => realClock.now(),
 *   setTimeout: (fn, ms) => (console.log(`timer ${ms} ms`), realClock.setTimeout(fn, ms)),
 *   clearTimeout: (handle) => realClock.clearTimeout(handle),
 * };
 * logging.clearTimeout(logging.setTimeout(() => {}, 5));
 * ```
 */
export interface Clock {
  /** Milliseconds since some fixed point. */
  now(): number;
  /** Runs `fn` after `ms`; returns a handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer; ignores `undefined` and unknown handles. */
  clearTimeout(handle: unknown): void;
}

/**
 * The global timers and `performance.now()`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { realClock } from "./clock.ts";
 * assert.equal(typeof realClock.now(), "number");
 * ```
 */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};
