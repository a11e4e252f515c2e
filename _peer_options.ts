/**
 * A peer's options: their defaults, ranges and validation (internal; `peer.ts` re-exports what
 * callers use). Runs in Deno, browsers and Node (no `Deno.*` here).
 *
 * @module
 */

import { checkInt } from "./_options.ts";
import { type Clock, realClock } from "./clock.ts";
import type { Contract } from "./contract.ts";
import { consoleLogger, type Logger, safeLogger } from "./log.ts";
import { HandlerRegistry } from "./registry.ts";

import { MAX_MESSAGE_BYTES_LIMIT } from "./envelope.ts";
export { MAX_MESSAGE_BYTES_LIMIT };

/** Default {@linkcode PeerOptions.maxMessageBytes}: 16 MiB, below Deno's own 64 MiB cap. */
export const DEFAULT_MAX_MESSAGE_BYTES: number = 16 * 1024 * 1024;
/** Default {@linkcode PeerOptions.maxInFlight}. */
export const DEFAULT_MAX_IN_FLIGHT = 1024;
/** Default {@linkcode PeerOptions.maxPendingCalls}. */
export const DEFAULT_MAX_PENDING_CALLS = 1024;
/** Default {@linkcode PeerOptions.highWaterMarkBytes}: 1 MiB. */
export const DEFAULT_HIGH_WATER_MARK_BYTES: number = 1024 * 1024;

/**
 * Options of a {@linkcode Peer}; the client and server pass theirs through.
 *
 * @example
 * ```ts ignore
 * const options: PeerOptions = { maxInFlight: 64, defaultTimeoutMs: 10_000 };
 * ```
 */
export interface PeerOptions<Local = Contract, Remote = Contract> {
  /** Handlers for the other side's calls. @default an empty registry */
  registry?: HandlerRegistry<Local, Remote>;
  /**
   * Largest message accepted or sent, in UTF-8 bytes. A larger incoming one closes the
   * connection with 1009; a larger outgoing call rejects with a `LimitError`.
   * @default {16 MiB} DEFAULT_MAX_MESSAGE_BYTES; 1 to 64 MiB - 1
   */
  maxMessageBytes?: number;
  /**
   * Incoming requests and notifications running at once; beyond it requests are answered
   * with an "overloaded" error at once and notifications are dropped.
   * @default {1024} DEFAULT_MAX_IN_FLIGHT
   */
  maxInFlight?: number;
  /**
   * This side's calls awaiting replies; beyond it `call()` rejects. It also bounds the frames
   * waiting for the socket to drain: beyond it `notify()` throws.
   * @default {1024} DEFAULT_MAX_PENDING_CALLS
   */
  maxPendingCalls?: number;
  /**
   * When the socket has more than this many bytes buffered, further frames wait in order
   * until it drains. @default {1 MiB} DEFAULT_HIGH_WATER_MARK_BYTES
   */
  highWaterMarkBytes?: number;
  /** Timeout of calls that set none. @default undefined (no timeout) */
  defaultTimeoutMs?: number;
  /**
   * Where problems are reported; every message is passed through `logSafe` first (one line,
   * bounded). @default consoleLogger("warn")
   */
  logger?: Logger;
  /**
   * Send requests to the other side only after it said `$/hello` (a server toward its clients:
   * the seed's clients never answer requests). Until then `call()` rejects with
   * {@linkcode NotNegotiatedError}. Reserved methods (`$/cancel`, `$/ping`) are sent only to a
   * peer that said hello, whatever this is. @default false
   */
  requireHello?: boolean;
  /**
   * Where the peer's timers come from: call timeouts, `drain()`'s grace period, the send
   * queue's wait for the socket to drain. A client or server passes its own. @default the global
   * timers
   */
  clock?: Clock;
}

/**
 * Fills in the defaults of peer options and validates them.
 *
 * @param options The options as given.
 * @returns Every option with its value.
 * @throws {RangeError} An option out of range; the message names it and its value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_MAX_IN_FLIGHT, resolvePeerOptions } from "./peer.ts";
 * assert.equal(resolvePeerOptions({}).maxInFlight, DEFAULT_MAX_IN_FLIGHT);
 * assert.throws(() => resolvePeerOptions({ maxInFlight: 0 }), RangeError);
 * ```
 */
export function resolvePeerOptions<Local = Contract, Remote = Contract>(
  options: PeerOptions<Local, Remote>,
): Required<Omit<PeerOptions<Local, Remote>, "defaultTimeoutMs">> & {
  defaultTimeoutMs: number | undefined;
} {
  return {
    requireHello: options.requireHello ?? false,
    clock: options.clock ?? realClock,
    registry: options.registry ?? new HandlerRegistry<Local, Remote>(),
    // Peers log names and texts the other side chose: one bounded, escaped line each.
    logger: safeLogger(options.logger ?? consoleLogger()),
    maxMessageBytes: checkInt(
      "maxMessageBytes",
      options.maxMessageBytes,
      DEFAULT_MAX_MESSAGE_BYTES,
      1,
      MAX_MESSAGE_BYTES_LIMIT,
    ),
    maxInFlight: checkInt("maxInFlight", options.maxInFlight, DEFAULT_MAX_IN_FLIGHT, 1),
    maxPendingCalls: checkInt(
      "maxPendingCalls",
      options.maxPendingCalls,
      DEFAULT_MAX_PENDING_CALLS,
      1,
    ),
    highWaterMarkBytes: checkInt(
      "highWaterMarkBytes",
      options.highWaterMarkBytes,
      DEFAULT_HIGH_WATER_MARK_BYTES,
      0,
    ),
    defaultTimeoutMs: options.defaultTimeoutMs === undefined
      ? undefined
      : checkInt("defaultTimeoutMs", options.defaultTimeoutMs, 0, 1),
  };
}
