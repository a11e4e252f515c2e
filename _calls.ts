/**
 * This side's calls awaiting replies (internal): ids, the pending map, each call's deadline and
 * the two limits checked before anything is sent. Runs in Deno, browsers and Node (no `Deno.*`
 * here).
 *
 * @module
 */

import { encodeRequest, idKey, type Params, type RequestId } from "./envelope.ts";
import { LimitError, RemoteError } from "./errors.ts";
import type { Clock } from "./clock.ts";
import { checkInt } from "./_options.ts";
import { Deadline } from "./_deadline.ts";
import { tooBig } from "./_reply.ts";
import type { CallOptions } from "./peer.ts";
import { hadBytes, unsendable } from "./_values.ts";
import { toBinary } from "./_binary.ts";

interface Pending {
  readonly method: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  /** Only for a call with a timeout or a signal. */
  readonly deadline: Deadline | undefined;
}

/** What {@linkcode PendingCalls} needs from its peer. */
export interface PendingCallsOptions {
  /** Calls pending at once; beyond it a call rejects `too-many-pending`. */
  readonly maxPendingCalls: number;
  /** Largest request frame, in UTF-8 bytes; a larger one rejects `message-too-big`. */
  readonly maxMessageBytes: number;
  /** Timeout of calls that set none. */
  readonly defaultTimeoutMs: number | undefined;
  /** Where the timeouts' timers come from. */
  readonly clock: Clock;
  /** Whether the other side takes binary messages (it negotiated them). */
  readonly bytesOk: () => boolean;
  /** Writes a request frame of the call `id`. */
  readonly send: (frame: string | Uint8Array, id: number) => void;
  /** Called after a call gave up (timeout or abort), to tell the other side. */
  readonly abandoned: (id: number) => void;
}

/**
 * The pending map of one peer. Ids are numbers from 0; a reply's id is looked up by its key
 * (`idKey`), so a reply with an id above 2^53 finds nothing.
 *
 * @example
 * ```ts ignore
 * const calls = new PendingCalls({ maxPendingCalls: 1024, maxMessageBytes, defaultTimeoutMs, clock, send, abandoned });
 * const result = calls.call("echo", [1], {}); // sends the request
 * calls.settle(0, true, [1]); // its reply came: result resolves with [1]
 * ```
 */
export class PendingCalls {
  readonly #options: PendingCallsOptions;
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;

  /** @param options Limits, clock and the peer's callbacks. */
  constructor(options: PendingCallsOptions) {
    this.#options = options;
  }

  /** Calls awaiting replies. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Sends a request and waits for its reply. A wrong argument or a limit rejects (nothing is
   * sent); see `Peer.call()` for each error.
   *
   * @param method The wire name.
   * @param params Positional or by-name params.
   * @param options Cancellation and timeout.
   * @returns The reply's result.
   */
  call(method: string, params: Params, options: CallOptions): Promise<unknown> {
    // What the executor throws (a wrong argument, a too big frame) rejects the promise.
    return new Promise((resolve, reject) => {
      const bytes = checkCall(method, params, "call", this.#options.bytesOk());
      const { signal } = options;
      if (signal?.aborted) return reject(signal.reason);
      const { maxPendingCalls, maxMessageBytes } = this.#options;
      if (this.#pending.size >= maxPendingCalls) {
        return reject(
          new LimitError(
            "too-many-pending",
            `Cannot call "${method}": ${maxPendingCalls} calls pending (maxPendingCalls)`,
          ),
        );
      }
      const id = this.#nextId++;
      const frame = bytes
        ? toBinary(params, (json) => encodeRequest(id, method, json as Params))
        : encodeRequest(id, method, params);
      checkSize(frame, "call", method, maxMessageBytes);
      const timeoutMs = options.timeoutMs ?? this.#options.defaultTimeoutMs;
      // Only a call with a timeout or a signal pays for a deadline.
      let deadline: Deadline | undefined;
      if (timeoutMs !== undefined || signal) {
        if (timeoutMs !== undefined) checkInt("timeoutMs", timeoutMs, 0, 0);
        const what = `Call "${method}"`;
        deadline = new Deadline(this.#options.clock, timeoutMs, signal, what, (reason) => {
          this.fail(id, reason);
          this.#options.abandoned(id);
        });
      }
      this.#pending.set(id, { method, resolve, reject, deadline });
      this.#options.send(frame, id);
    });
  }

  /**
   * Whether a call with this id awaits its reply.
   *
   * @param id A reply's id.
   * @returns Whether it is pending.
   */
  has(id: RequestId): boolean {
    return this.#pending.has(idKey(id) as number);
  }

  /**
   * Settles a call with its reply: the result, or a {@linkcode RemoteError} with its error.
   *
   * @param id The reply's id.
   * @param ok Whether it carries a result.
   * @param value The result or the error's message.
   * @returns Whether a call was waiting for it.
   */
  settle(id: RequestId, ok: boolean, value: unknown): boolean {
    const key = idKey(id) as number;
    const entry = this.#pending.get(key);
    if (!entry) return false;
    this.#forget(key, entry);
    if (ok) entry.resolve(value);
    else entry.reject(new RemoteError(entry.method, value as string));
    return true;
  }

  /**
   * Rejects one pending call; nothing when it is not pending.
   *
   * @param id Its id.
   * @param reason What it rejects with.
   */
  fail(id: RequestId, reason: unknown): void {
    const key = idKey(id) as number;
    const entry = this.#pending.get(key);
    if (!entry) return;
    this.#forget(key, entry);
    entry.reject(reason);
  }

  /**
   * Rejects every pending call: the connection closed.
   *
   * @param errorFor The error for a call to this method.
   */
  failAll(errorFor: (method: string) => unknown): void {
    for (const [id, entry] of this.#pending) {
      this.#forget(id, entry);
      entry.reject(errorFor(entry.method));
    }
  }

  #forget(id: number, entry: Pending): void {
    this.#pending.delete(id);
    entry.deadline?.clear();
  }
}

/**
 * Checks a call's or notification's arguments, as a caller without types may pass anything:
 * the params must keep the value policy (`_values.ts`), so they arrive exactly as given.
 *
 * @param method The method as given.
 * @param params The params as given.
 * @param action What sends them, for the message.
 * @param bytesOk Whether the other side takes binary messages.
 * @returns Whether the params hold bytes (they go as a binary message).
 * @throws {TypeError} `method` is not a string, `params` neither an array nor an object, or
 *   holding a value JSON would change or reject (the message names its path).
 */
export function checkCall(
  method: string,
  params: unknown,
  action: "call" | "notify" = "call",
  bytesOk = false,
): boolean {
  if (typeof method !== "string") {
    throw new TypeError(`Cannot ${action}: method is ${typeof method}, not a string`);
  }
  if (
    typeof params !== "object" || params === null || ArrayBuffer.isView(params) ||
    params instanceof ArrayBuffer
  ) {
    throw new TypeError(`Cannot ${action} "${method}": params is neither an array nor an object`);
  }
  const refused = unsendable(params, "params", false, bytesOk);
  if (refused !== undefined) throw new TypeError(`Cannot ${action} "${method}": ${refused}`);
  return hadBytes();
}

/**
 * Checks an outgoing frame against the message limit before it is sent; a binary message counts
 * all its sections.
 *
 * @param frame The encoded request or notification.
 * @param action What sends it, for the message.
 * @param method Its method, for the message.
 * @param maxBytes The limit in UTF-8 bytes.
 * @throws {LimitError} `message-too-big`.
 */
export function checkSize(
  frame: string | Uint8Array,
  action: "call" | "notify",
  method: string,
  maxBytes: number,
): void {
  if (tooBig(frame, maxBytes)) {
    throw new LimitError(
      "message-too-big",
      `Cannot ${action} "${method}": message over ${maxBytes} bytes (maxMessageBytes)`,
    );
  }
}
