/**
 * What waits while the client is not connected (internal): calls, each bounded by its own
 * timeout and signal, and notifications, sent in order once a connection opens. Runs in Deno,
 * browsers and Node (no `Deno.*` here).
 *
 * @module
 */

import type { Params } from "./envelope.ts";
import { LimitError } from "./errors.ts";
import type { Clock } from "./clock.ts";
import type { Contract } from "./contract.ts";
import type { Logger } from "./log.ts";
import type { CallOptions, Peer } from "./peer.ts";
import { checkInt } from "./_options.ts";
import { Deadline } from "./_deadline.ts";

type AnyPeer = Peer<Contract, Contract>;

interface Waiter {
  readonly method: string | undefined;
  readonly resolve: (peer: AnyPeer) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * The calls and notifications of a client waiting for a connection.
 *
 * @example
 * ```ts ignore
 * const waiting = new Waiting(1024, 256, clock, logger);
 * const peer = await waiting.connection("echo", { timeoutMs: 1000 }); // resolved by open()
 * waiting.open(peer); // a connection opened: queued notifications go out, then calls resume
 * ```
 */
export class Waiting {
  readonly #maxCalls: number;
  readonly #maxNotifications: number;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #waiters = new Set<Waiter>();
  readonly #queued: [string, Params][] = [];
  #dropped = 0;

  /**
   * @param maxCalls Calls waiting at once; beyond it they reject `too-many-pending`.
   * @param maxNotifications Notifications kept; beyond it the oldest is dropped.
   * @param clock Where the calls' timeouts come from.
   * @param logger Where a queued notification that cannot be sent is reported.
   */
  constructor(maxCalls: number, maxNotifications: number, clock: Clock, logger: Logger) {
    this.#maxCalls = maxCalls;
    this.#maxNotifications = maxNotifications;
    this.#clock = clock;
    this.#logger = logger;
  }

  /** The client's `stats`. */
  get stats(): { waitingCalls: number; queuedNotifications: number; droppedNotifications: number } {
    return {
      waitingCalls: this.#waiters.size,
      queuedNotifications: this.#queued.length,
      droppedNotifications: this.#dropped,
    };
  }

  /**
   * Waits for the next connection.
   *
   * @param method The call that waits, or `undefined` for `opened()`.
   * @param options Its timeout and signal.
   * @returns The connection's peer.
   * @throws {LimitError} `too-many-pending`; a `RangeError` for a bad `timeoutMs`; the
   *   timeout's or signal's reason; or what `fail()` is given.
   */
  connection(method: string | undefined, options: CallOptions): Promise<AnyPeer> {
    const { signal, timeoutMs } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    try {
      if (timeoutMs !== undefined) checkInt("timeoutMs", timeoutMs, 0, 0);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#waiters.size >= this.#maxCalls) {
      return Promise.reject(
        new LimitError(
          "too-many-pending",
          `Cannot call "${method}": ${this.#maxCalls} calls wait for a connection`,
        ),
      );
    }
    return new Promise<AnyPeer>((resolve, reject) => {
      let deadline: Deadline | undefined;
      const settled = () => {
        this.#waiters.delete(waiter);
        deadline?.clear();
      };
      const waiter: Waiter = {
        method,
        resolve: (peer) => (settled(), resolve(peer)),
        reject: (error) => (settled(), reject(error)),
      };
      this.#waiters.add(waiter);
      if (timeoutMs !== undefined || signal) {
        const what = method === undefined ? "Connecting" : `Call "${method}"`;
        deadline = new Deadline(this.#clock, timeoutMs, signal, what, waiter.reject);
      }
    });
  }

  /**
   * Keeps a notification for the next connection; beyond the bound the oldest is dropped and
   * counted.
   *
   * @param method The wire name.
   * @param params Its params.
   * @throws {TypeError} `params` is neither an array nor an object.
   */
  queue(method: string, params: unknown): void {
    if (typeof params !== "object" || params === null) {
      throw new TypeError(`Cannot notify "${method}": params is neither an array nor an object`);
    }
    if (this.#maxNotifications === 0) return void this.#dropped++;
    if (this.#queued.length >= this.#maxNotifications) {
      this.#queued.shift();
      this.#dropped++;
    }
    this.#queued.push([method, params as Params]);
  }

  /**
   * A connection opened: sends the queued notifications in order, then lets the calls go.
   *
   * @param peer The connection's peer.
   */
  open(peer: AnyPeer): void {
    for (const [method, params] of this.#queued.splice(0)) {
      try {
        peer.notify(method, params);
      } catch (error) {
        this.#dropped++;
        this.#logger.warn(`Dropping queued notification "${method}": ${String(error)}`);
      }
    }
    for (const waiter of [...this.#waiters]) waiter.resolve(peer);
  }

  /**
   * No connection will come: rejects every waiting call and drops the queued notifications.
   *
   * @param errorFor The error for a call to this method (`undefined` for `opened()`).
   */
  fail(errorFor: (method: string | undefined) => unknown): void {
    for (const waiter of [...this.#waiters]) waiter.reject(errorFor(waiter.method));
    this.#queued.length = 0;
  }
}
