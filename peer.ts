/**
 * The shared core: one peer per connection, on both ends. It keeps the pending map of its own
 * calls, runs handlers for the other side's calls, and drains everything with a typed error
 * when the connection closes. It knows a {@linkcode Transport} and nothing about WebSocket,
 * Deno, or who dialled whom. Runs in Deno, browsers and Node (no `Deno.*` here).
 *
 * The peer dispatches frames and coordinates; each concept lives in its own private file: this
 * side's calls (`_calls.ts`), the other side's running handlers and the drain (`_handlers.ts`),
 * the reserved methods (`_reserved.ts`), replies and size limits (`_reply.ts`), the outgoing
 * queue and backpressure (`_send_queue.ts`), timeouts and cancellation (`_deadline.ts`), option
 * defaults (`_peer_options.ts`).
 *
 * @module
 */

import {
  BINARY_FEATURE,
  decode,
  type DecodeResult,
  encodeFailure,
  encodeNotification,
  encodeSuccess,
  type EnvelopeDecodeError,
  type Params,
  type RequestId,
  RESUME_FEATURE,
} from "./envelope.ts";
import { DisconnectedError, LimitError, NotNegotiatedError, RemoteError } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { CallArgs, Contract, NotifyArgs, ResultOf } from "./contract.ts";
import type { HandlerRegistry } from "./registry.ts";
import { checkCall, checkSize, PendingCalls } from "./_calls.ts";
import { RunningHandlers } from "./_handlers.ts";
import { type PeerOptions, resolvePeerOptions } from "./_peer_options.ts";
import { quoted, refusal, replyFrame, tooBig } from "./_reply.ts";
import {
  agreed,
  CANCEL_METHOD,
  cancelTarget,
  HELLO_METHOD,
  helloParams,
  LOCAL_FEATURES,
  PING_METHOD,
  readHello,
  type RemoteInfo,
} from "./_reserved.ts";
import { SendQueue } from "./_send_queue.ts";
import { readBinaryMessage, toBinary } from "./_binary.ts";
import { Session } from "./_session.ts";
import type { Frame, Transport } from "./transport.ts";

export {
  DEFAULT_HIGH_WATER_MARK_BYTES,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_MAX_PENDING_CALLS,
  MAX_MESSAGE_BYTES_LIMIT,
  type PeerOptions,
  resolvePeerOptions,
} from "./_peer_options.ts";
export {
  CANCEL_METHOD,
  HELLO_METHOD,
  PING_METHOD,
  PROTOCOL_REVISION,
  type RemoteInfo,
} from "./_reserved.ts";

/**
 * Per-call options.
 *
 * @example A call that gives up after a second
 * ```ts ignore
 * await client.call("slow", [], { timeoutMs: 1000, signal: controller.signal });
 * ```
 */
export interface CallOptions {
  /** Cancels the call: it rejects with `signal.reason` and the peer's handler is told. */
  signal?: AbortSignal;
  /** Rejects with a `TimeoutError` `DOMException` after this many ms (and cancels remotely). */
  timeoutMs?: number;
}

/**
 * Something that can be called: a peer, or a client.
 *
 * @example
 * ```ts ignore
 * async function greet(caller: Caller): Promise<unknown> {
 *   return await caller.call("greet", ["world"]);
 * }
 * ```
 */
export interface Caller<Remote = Contract> {
  /** Calls a method and waits for its result. */
  call<M extends keyof Remote & string>(
    method: M,
    ...args: CallArgs<Remote, M, CallOptions>
  ): Promise<ResultOf<Remote, M>>;
  /** Sends a notification; no reply will come. */
  notify<M extends keyof Remote & string>(method: M, ...args: NotifyArgs<Remote, M>): void;
}

/**
 * Counters of a peer, for tests and monitoring.
 *
 * @example
 * ```ts ignore
 * assert.equal(peer.stats.pendingCalls, 0);
 * ```
 */
export interface PeerStats {
  /** This side's calls awaiting replies. */
  readonly pendingCalls: number;
  /** The other side's requests and notifications whose handlers are running. */
  readonly runningHandlers: number;
  /** Frames waiting for the socket's buffer to drain. */
  readonly queuedFrames: number;
  /** Invalid frames dropped without an answer (PROTOCOL.md lists which). */
  readonly droppedFrames: number;
  /** Invalid frames answered with an error. */
  readonly rejectedFrames: number;
  /** Binary frames ignored: the other side sent them without negotiating binary messages. */
  readonly binaryFrames: number;
  /** Requests answered "overloaded" and notifications dropped over `maxInFlight`. */
  readonly overloaded: number;
  /** Frames received, of every kind: the idle check and the heartbeat watch it move. */
  readonly receivedFrames: number;
}

/** How a peer's connection ended: the WebSocket close code and reason (internal name). */
type CloseInfo = { readonly code: number; readonly reason: string };

/**
 * One end of a connection. Both `Client` and the server build one per socket, so calls flow
 * both ways by construction.
 *
 * Handlers start in arrival order, synchronously as frames arrive, and run concurrently: a
 * slow handler never delays another reply. When the transport closes, every pending call
 * rejects with {@linkcode DisconnectedError} and every running handler's signal fires.
 *
 * @example Two peers over an in-memory transport pair
 * ```ts
 * import assert from "node:assert/strict";
 * import { Peer } from "./peer.ts";
 * import { HandlerRegistry } from "./registry.ts";
 * import type { Transport, TransportSink } from "./transport.ts";
 *
 * class Memory implements Transport {
 *   bufferedAmount = 0;
 *   other!: Memory;
 *   sink!: TransportSink;
 *   start(sink: TransportSink): void { this.sink = sink; }
 *   send(frame: string): void { queueMicrotask(() => this.other.sink.frame(frame)); }
 *   close(code: number, reason: string): void {
 *     this.sink.closed(code, reason);
 *     this.other.sink.closed(code, reason);
 *   }
 * }
 * const a = new Memory(), b = new Memory();
 * a.other = b;
 * b.other = a;
 * const server = new Peer(a, { registry: new HandlerRegistry().register("add", ([x, y]) => Number(x) + Number(y)) });
 * const client = new Peer(b);
 * assert.equal(await client.call("add", [2, 3]), 5);
 * client.close(1000, "done");
 * assert.deepEqual(await server.closed, { code: 1000, reason: "done" });
 * ```
 */
export class Peer<Remote = Contract, Local = Contract> implements Caller<Remote>, Disposable {
  #transport: Transport;
  #registry: HandlerRegistry<Local, Remote>;
  #logger: Logger;
  #maxMessageBytes: number;
  #maxInFlight: number;
  #maxPending: number;
  #out: SendQueue;
  #calls: PendingCalls;
  #handlers: RunningHandlers<Remote>;
  #draining = false;
  #closeInfo: CloseInfo | undefined;
  #resolveClosed!: (info: CloseInfo) => void;
  #counts = { dropped: 0, rejected: 0, binary: 0, overloaded: 0 };
  #received = 0;
  #requireHello: boolean;
  #remote: RemoteInfo | undefined;
  #binary = false; // both sides agreed on binary messages
  #features: readonly string[]; // what this side supports

  /** Resolves once, when the connection has closed (either side, any reason). */
  readonly closed: Promise<{ readonly code: number; readonly reason: string }>;

  /**
   * Creates the instance.
   *
   * @param transport The connection; the peer starts it.
   * @param options Limits, handlers, logger.
   * @throws {RangeError} When a numeric option is out of range (the message names it).
   */
  constructor(transport: Transport, options: PeerOptions<Local, Remote> = {}) {
    this.#transport = transport;
    const resolved = resolvePeerOptions<Local, Remote>(options);
    this.#registry = resolved.registry;
    this.#logger = resolved.logger;
    this.#maxMessageBytes = resolved.maxMessageBytes;
    this.#maxInFlight = resolved.maxInFlight;
    this.#maxPending = resolved.maxPendingCalls;
    const { clock } = resolved;
    this.#out = new SendQueue(transport, resolved.highWaterMarkBytes, clock);
    this.#calls = new PendingCalls({
      ...resolved,
      bytesOk: () => this.#binary,
      send: (frame, id) => this.#send(frame, id),
      // A request still queued is withdrawn: never written, never run. Else tell the other side,
      // if it said hello: a seed peer never sees a reserved method.
      abandoned: (id) => {
        if (!this.#out.withdraw(id) && this.#remote) {
          this.#send(encodeNotification(CANCEL_METHOD, [id]));
        }
      },
    });
    const reply = (id: RequestId, method: string, ok: boolean, value: unknown) => {
      if (!this.#closeInfo) {
        this.#send(replyFrame(id, method, ok, value, this.#maxMessageBytes, this.#binary));
      }
    };
    this.#handlers = new RunningHandlers(this, reply, this.#logger, clock);
    this.#requireHello = resolved.requireHello;
    // A session under the peer means resume is on here (`_session.ts`).
    this.#features = transport instanceof Session
      ? [...LOCAL_FEATURES, RESUME_FEATURE]
      : LOCAL_FEATURES;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    transport.start({
      frame: (data) => this.#onFrame(data),
      closed: (code, reason) => this.#finish(code, reason),
    });
  }

  /** Counters; all zero-valued gauges once a closed peer has drained. */
  get stats(): PeerStats {
    return {
      pendingCalls: this.#calls.size,
      runningHandlers: this.#handlers.count,
      queuedFrames: this.#out.length,
      droppedFrames: this.#counts.dropped,
      rejectedFrames: this.#counts.rejected,
      binaryFrames: this.#counts.binary,
      overloaded: this.#counts.overloaded,
      receivedFrames: this.#received,
    };
  }

  /** How the connection closed, or `undefined` while it is open. */
  get closeInfo(): { readonly code: number; readonly reason: string } | undefined {
    return this.#closeInfo;
  }

  /**
   * What the other side declared in `$/hello` — its revision, and the optional features both
   * sides support and therefore use (`"binary"`) — or `undefined` while it speaks only the
   * seed's format (it may not answer requests, `$/ping` or `$/cancel`).
   */
  get remote(): { readonly version: number; readonly features: readonly string[] } | undefined {
    return this.#remote;
  }

  /**
   * Says `$/hello`: declares this side's revision (so the other side may call it) and learns
   * the other side's. A peer that does not know `$/hello` (the seed's servers answer `null` or
   * an unknown-method error) leaves {@linkcode Peer.remote} undefined.
   *
   * @param extra Further members of the hello's params (a proof, PROTOCOL.md §1).
   * @param options Bounds the wait.
   * @returns What the other side declared, or `undefined` for a seed peer.
   * @throws {DisconnectedError} The connection closed first; or the timeout's or signal's reason.
   */
  async hello(
    extra: Readonly<Record<string, unknown>> = {},
    options: CallOptions = {},
  ): Promise<{ readonly version: number; readonly features: readonly string[] } | undefined> {
    let result: unknown;
    try {
      result = await this.#call(HELLO_METHOD, helloParams(extra, this.#features), options);
    } catch (error) {
      if (error instanceof RemoteError) return undefined; // an older peer: unknown method
      throw error;
    }
    const info = readHello(result);
    if (info) {
      this.#agree(info);
      const token = (result as { resume?: { token?: unknown } }).resume?.token;
      if (this.#resumes) {
        if (typeof token === "string") (this.#transport as Session).begin(token);
        else this.#drop(RESUME_FEATURE); // no token: nothing to resume with
      }
    }
    return this.#remote;
  }

  /**
   * Calls a method on the other side.
   *
   * @param method The wire name.
   * @param params Positional (array) or by-name (object) parameters: plain JSON values.
   * @param options Cancellation and timeout.
   * @returns The result the other side returned.
   * @throws {RemoteError} The handler failed, or the method is unknown there.
   * @throws {DisconnectedError} The connection closed before the reply came.
   * @throws {NotNegotiatedError} With `requireHello`, the other side has not said `$/hello`.
   * @throws {LimitError} `too-many-pending` or `message-too-big` (nothing was sent).
   * @throws {DOMException} `TimeoutError` after `timeoutMs`; an aborted `signal`'s reason.
   * @throws {TypeError} `method` is not a string, `params` not an array/object, or holding a value
   *   JSON would change or reject (a `Date`, a `Map`, `undefined`, `NaN`…; README, "Values").
   */
  call<M extends keyof Remote & string>(
    method: M,
    ...args: CallArgs<Remote, M, CallOptions>
  ): Promise<ResultOf<Remote, M>>;
  call(method: string, params: unknown = [], options: CallOptions = {}): Promise<unknown> {
    if (this.#requireHello && !this.#remote && !this.#closeInfo) {
      return Promise.reject(new NotNegotiatedError(method));
    }
    return this.#call(method, params as Params, options); // checked by #call
  }

  #call(method: string, params: Params, options: CallOptions): Promise<unknown> {
    if (this.#closeInfo) {
      const { code, reason } = this.#closeInfo;
      return Promise.reject(new DisconnectedError(code, reason, method));
    }
    return this.#calls.call(method, params, options);
  }

  /**
   * Sends a notification: the other side runs the handler and never replies.
   *
   * @param method The wire name.
   * @param params Positional (array) or by-name (object) parameters: plain JSON values.
   * @throws {DisconnectedError} The connection is closed.
   * @throws {LimitError} `message-too-big`, or `overloaded` when the send queue is full.
   * @throws {TypeError} `method` is not a string, `params` not an array/object, or holding a value
   *   JSON would change or reject (README, "Values").
   */
  notify<M extends keyof Remote & string>(method: M, ...args: NotifyArgs<Remote, M>): void;
  notify(method: string, params: unknown = []): void {
    if (this.#closeInfo) {
      throw new DisconnectedError(
        this.#closeInfo.code,
        this.#closeInfo.reason,
        method,
      );
    }
    const frame = checkCall(method, params, "notify", this.#binary)
      ? toBinary(params, (json) => encodeNotification(method, json as Params))
      : encodeNotification(method, params as Params);
    checkSize(frame, "notify", method, this.#maxMessageBytes);
    if (this.#out.length >= this.#maxPending) {
      throw new LimitError(
        "overloaded",
        `Cannot notify "${method}": ${this.#out.length} frames wait for the socket to drain`,
      );
    }
    this.#send(frame);
  }

  /**
   * Closes the connection now: pending calls reject with {@linkcode DisconnectedError} carrying
   * this code and reason, running handlers' signals fire, queued frames are discarded.
   *
   * @param code WebSocket close code. @default 1000
   * @param reason Close reason. @default ""
   * @param errorFor The error each pending call rejects with, by method.
   * @default a {@linkcode DisconnectedError} with this code and reason
   * @returns When closed (as `closed`); `Client.close()` and `LocalServer.shutdown()` are
   *   awaited the same way.
   */
  close(code = 1000, reason = "", errorFor?: (method: string) => Error): Promise<void> {
    if (!this.#closeInfo) {
      this.#finish(code, reason, errorFor);
      this.#transport.close(code, reason);
    }
    return this.closed.then(() => {});
  }

  /** Closes with 1000, so `using peer = new Peer(…)` cleans up. */
  [Symbol.dispose](): void {
    void this.close();
  }

  /**
   * Stops running new requests (they are answered "shutting down") and waits for running
   * handlers to finish, at most `graceMs`; then fires the signals of those still running.
   * Their replies, if any, are still sent until the connection closes.
   *
   * @param graceMs How long running handlers may take.
   * @returns When no handler runs, or the grace period ended.
   */
  drain(graceMs: number): Promise<void> {
    this.#draining = true;
    return this.#handlers.drain(graceMs);
  }

  #onFrame(data: Frame): void {
    this.#received++;
    if (tooBig(data, this.#maxMessageBytes)) {
      this.#logger.warn(
        `Closing connection: message over ${this.#maxMessageBytes} bytes (maxMessageBytes)`,
      );
      return void this.close(1009, "Message too big");
    }
    let decoded: DecodeResult;
    if (typeof data === "string") decoded = decode(data);
    else if (this.#binary) decoded = readBinaryMessage(data);
    else {
      // Not negotiated: the seed's rule (PROTOCOL.md §2), never read.
      this.#counts.binary++;
      this.#logger.debug(`Ignoring binary frame of ${data.byteLength} bytes (not negotiated)`);
      return;
    }
    if (!decoded.ok) return this.#onInvalid(decoded.error);
    const envelope = decoded.envelope;
    switch (envelope.kind) {
      case "request":
        return this.#onRequest(envelope.id, envelope.method, envelope.params);
      case "notification":
        return this.#onNotification(envelope.method, envelope.params);
      case "success":
        return this.#settle(envelope.id, true, envelope.result);
      case "failure":
        return this.#settle(envelope.id, false, envelope.error);
    }
  }

  #onInvalid(error: EnvelopeDecodeError): void {
    const pending = error.responseId !== null && this.#calls.has(error.responseId);
    if (error.reason === "no-kind" && pending) {
      // `{"id": N}` alone: how JSON-RPC peers answer with an `undefined` result.
      return this.#settle(error.responseId!, true, null);
    }
    if (error.replyId !== null) {
      this.#counts.rejected++;
      this.#send(encodeFailure(error.replyId, error.message));
    } else if (pending) {
      // A broken reply to one of our calls: fail that call rather than let it hang.
      this.#counts.rejected++;
      this.#calls.fail(error.responseId!, error);
    } else {
      this.#counts.dropped++;
      this.#logger.debug(`Dropping frame: ${error.message}`);
    }
  }

  #settle(id: RequestId, ok: boolean, value: unknown): void {
    if (this.#calls.settle(id, ok, value)) return;
    this.#counts.dropped++;
    this.#logger.debug(`Dropping reply to unknown id ${id}`);
  }

  #onRequest(id: RequestId, method: string, params: Params): void {
    if (method === PING_METHOD) return this.#send(encodeSuccess(id, null));
    if (method === HELLO_METHOD) return this.#onHello(id, params);
    if (this.#draining) return this.#send(encodeFailure(id, refusal.draining(method)));
    const queued = this.#out.length;
    if (this.#handlers.count >= this.#maxInFlight || queued >= this.#maxInFlight) {
      this.#counts.overloaded++;
      if (queued >= this.#maxInFlight + this.#maxPending) {
        // The other side sends but does not read: stop before our buffers grow without bound.
        this.#logger.warn("Closing connection: peer does not read its replies");
        return void this.close(1008, "Peer does not read");
      }
      return this.#send(encodeFailure(id, refusal.overloaded(method, this.#maxInFlight)));
    }
    const handler = this.#registry.lookup(method);
    if (!handler) return this.#send(encodeFailure(id, refusal.unknown(method)));
    this.#handlers.run(handler, id, method, params);
  }

  #onHello(id: RequestId, params: Params): void {
    const info = readHello(params);
    if (!info) return this.#send(encodeFailure(id, refusal.hello()));
    this.#agree(info);
    const session = this.#resumes ? this.#transport as Session : undefined;
    const extra = session ? { resume: { token: session.issue(), received: 0 } } : {};
    this.#send(encodeSuccess(id, helloParams(extra, this.#remote!.features)));
    session?.begin(); // numbering starts after the answer
  }

  /** Records the other side's hello: from now on, the features both support are used. */
  #agree(info: RemoteInfo): void {
    this.#remote = { version: info.version, features: agreed(info.features, this.#features) };
    this.#binary = this.#remote.features.includes(BINARY_FEATURE);
  }

  /** Whether both sides agreed on `resume`. */
  get #resumes(): boolean {
    return this.#remote?.features.includes(RESUME_FEATURE) ?? false;
  }

  #drop(feature: string): void {
    const { version, features } = this.#remote!;
    this.#remote = { version, features: features.filter((f) => f !== feature) };
  }

  #onNotification(method: string, params: Params): void {
    if (method === CANCEL_METHOD) {
      const key = cancelTarget(params);
      if (key !== undefined) {
        this.#handlers.abort(key, new DOMException("Cancelled by the caller", "AbortError"));
      }
      return;
    }
    if (method.startsWith("$/")) return; // Unknown reserved notifications are ignored.
    if (this.#handlers.count >= this.#maxInFlight) {
      this.#counts.overloaded++;
      this.#logger.warn(
        `Dropping notification ${quoted(method)}: ${this.#maxInFlight} handlers running`,
      );
      return;
    }
    const handler = this.#registry.lookup(method);
    if (!handler) return void this.#counts.dropped++;
    this.#handlers.run(handler, null, method, params);
  }

  #send(frame: string | Uint8Array, key?: number): void {
    if (!this.#closeInfo) this.#out.send(frame, key);
  }

  #finish(code: number, reason: string, errorFor?: (method: string) => Error): void {
    if (this.#closeInfo) return;
    this.#closeInfo = { code, reason };
    this.#out.close();
    this.#calls.failAll((method) =>
      errorFor?.(method) ?? new DisconnectedError(code, reason, method)
    );
    this.#handlers.close(new DisconnectedError(code, reason));
    this.#resolveClosed(this.#closeInfo);
  }
}
