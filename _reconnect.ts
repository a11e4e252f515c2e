/**
 * The client's reconnect policy (internal; `client.ts` re-exports the options and defaults):
 * the design note's delays, their cap, jitter, when to give up and when a connection counts as
 * stable. Runs in Deno, browsers and Node (no `Deno.*` here).
 *
 * @module
 */

import type { ClientOptions } from "./_client_options.ts";
import { checkInt } from "./_options.ts";

/** The design note's reconnect delays, in ms; every later attempt waits `maxDelayMs`. */
export const DEFAULT_RECONNECT_DELAYS_MS: readonly number[] = [100, 200, 400, 1000, 2000];
/** Default {@linkcode ReconnectOptions.maxDelayMs}. */
export const DEFAULT_MAX_DELAY_MS = 5000;
/** Default {@linkcode ReconnectOptions.deadAfterMs}. */
export const DEFAULT_DEAD_AFTER_MS = 30_000;
/** Default {@linkcode ReconnectOptions.stableAfterMs}. */
export const DEFAULT_STABLE_AFTER_MS = 5000;

/** The reconnect policy's options: `ClientOptions.reconnect` (documented there). */
export type ReconnectOptions = Exclude<NonNullable<ClientOptions["reconnect"]>, false>;

/**
 * {@linkcode ReconnectOptions} validated, with their defaults. The client counts the retries;
 * the policy says how long each waits.
 *
 * @example The design note's schedule
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReconnectPolicy } from "./_reconnect.ts";
 * const policy = new ReconnectPolicy();
 * assert.deepEqual([0, 1, 2, 3, 4, 5, 9].map((retry) => policy.delayMs(retry)), [
 *   100, 200, 400, 1000, 2000, 5000, 5000,
 * ]);
 * assert.throws(() => new ReconnectPolicy({ jitter: 2 }), RangeError);
 * ```
 */
export class ReconnectPolicy {
  /** Delays before retries 0, 1, …, in ms. */
  readonly delaysMs: readonly number[];
  /** Delay of every retry past `delaysMs`. */
  readonly maxDelayMs: number;
  /** Give-up time from the drop, in ms. */
  readonly deadAfterMs: number;
  /** Random extra, as a fraction of each delay. */
  readonly jitter: number;
  /** A connection up this long starts the delays over. */
  readonly stableAfterMs: number;

  /**
   * @param options The policy as given.
   * @throws {RangeError} A field out of range; the message names it as `reconnect.<field>`.
   */
  constructor(options: ReconnectOptions = {}) {
    this.delaysMs = (options.delaysMs ?? DEFAULT_RECONNECT_DELAYS_MS).map((ms, i) =>
      checkInt(`reconnect.delaysMs[${i}]`, ms, 0, 0)
    );
    this.maxDelayMs = checkInt("reconnect.maxDelayMs", options.maxDelayMs, DEFAULT_MAX_DELAY_MS, 0);
    this.deadAfterMs = checkInt(
      "reconnect.deadAfterMs",
      options.deadAfterMs,
      DEFAULT_DEAD_AFTER_MS,
      0,
    );
    this.stableAfterMs = checkInt(
      "reconnect.stableAfterMs",
      options.stableAfterMs,
      DEFAULT_STABLE_AFTER_MS,
      0,
    );
    this.jitter = options.jitter ?? 0;
    if (!(this.jitter >= 0 && this.jitter <= 1)) {
      throw new RangeError(`Cannot use reconnect.jitter: expected 0 to 1, got ${this.jitter}`);
    }
  }

  /**
   * The wait before a retry, jitter included.
   *
   * @param retry Retries since the delays last started over (0 for the first).
   * @returns The delay in ms.
   */
  delayMs(retry: number): number {
    const base = this.delaysMs[retry] ?? this.maxDelayMs;
    return Math.round(base * (1 + this.jitter * Math.random()));
  }
}
