/**
 * The shared core: one peer per connection, on both ends. It keeps the pending map of its own
 * calls, runs handlers for the other side's calls, and drains everything with a typed error
 * when the connection closes. It knows a {@linkcode Transport} and nothing about WebSocket,
 * Deno, or who dialled whom. Runs in Deno, browsers and Node (no `Deno.*` here).
 *
 * @module
 */

import {
  decode,
  encodeFailure,
  encodeNotification,
  encodeRequest,
  encodeSuccess,
  type EnvelopeDecodeError,
  idKey,
  type Params,
  type RequestId,
} from "./envelope.ts";
import { DisconnectedError, LimitError, NotNegotiatedError, RemoteError } from "./errors.ts";
import { consoleLogger, type Logger, logSafe, safeLogger } from "./log.ts";
import type { CallArgs, MethodName, NotifyArgs, ResultOf, Untyped } from "./contract.ts";
import { type HandlerContext, type HandlerFn, HandlerRegistry } from "./registry.ts";
import { checkInt } from "./_options.ts";
import type { Frame, Transport } from "./transport.ts";

/** Default {@linkcode PeerOptions.maxMessageBytes}: 16 MiB, below Deno's own 64 MiB cap. */
export const DEFAULT_MAX_MESSAGE_BYTES: number = 16 * 1024 * 1024;
/** The largest `maxMessageBytes` allowed: 64 MiB, what Deno's own sockets accept. */
export const MAX_MESSAGE_BYTES_LIMIT: number = 64 * 1024 * 1024;
/** Default {@linkcode PeerOptions.maxInFlight}. */
export const DEFAULT_MAX_IN_FLIGHT = 1024;
/** Default {@linkcode PeerOptions.maxPendingCalls}. */
export const DEFAULT_MAX_PENDING_CALLS = 1024;
/** Default {@linkcode PeerOptions.highWaterMarkBytes}: 1 MiB. */
export const DEFAULT_HIGH_WATER_MARK_BYTES: number = 1024 * 1024;
/** The reserved notification that cancels a request: params `[id]`. */
export const CANCEL_METHOD = "$/cancel";
/** The reserved request any Mist peer answers with `null`: a liveness probe. */
export const PING_METHOD = "$/ping";
/** The reserved request a client sends first to say what it speaks (PROTOCOL.md §5). */
export const HELLO_METHOD = "$/hello";
/** The protocol revision this peer declares in `$/hello`; 1 is the seed's format alone. */
export const PROTOCOL_REVISION = 2;

/**
 * What the other side declared in `$/hello`: from then on it answers requests, `$/ping` and
 * `$/cancel`, and uses the optional features listed.
 */
export interface RemoteInfo {
  /** Its protocol revision (2 or more). */
  readonly version: number;
  /** Optional features it supports beyond its revision. */
  readonly features: readonly string[];
}

// How often a send waiting on bufferedAmount looks again; sockets have no "drain" event.
const DRAIN_POLL_MS = 2;

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
export interface Caller<Remote = Untyped> {
  /** Calls a method and waits for its result. */
  call<M extends MethodName<Remote>>(
    method: M,
    ...args: CallArgs<Remote, M, CallOptions>
  ): Promise<ResultOf<Remote, M>>;
  /** Sends a notification; no reply will come. */
  notify<M extends MethodName<Remote>>(method: M, ...args: NotifyArgs<Remote, M>): void;
}

/**
 * Options of a {@linkcode Peer}; the client and server pass theirs through.
 *
 * @example
 * ```ts ignore
 * const options: PeerOptions = { maxInFlight: 64, defaultTimeoutMs: 10_000 };
 * ```
 */
export interface PeerOptions<Local = Untyped, Remote = Untyped> {
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
  /** Binary frames ignored (reserved for protocol phase 2). */
  readonly binaryFrames: number;
  /** Requests answered "overloaded" and notifications dropped over `maxInFlight`. */
  readonly overloaded: number;
  /** Frames received, of every kind: the server's idle check watches it move. */
  readonly receivedFrames: number;
}

/** How a peer's connection ended. */
export interface CloseInfo {
  /** The WebSocket close code. */
  readonly code: number;
  /** The close reason. */
  readonly reason: string;
}

interface Pending {
  readonly method: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** A handler's context; the signal is made on first use since most handlers never read it. */
class Context<Remote> implements HandlerContext<Remote> {
  readonly peer: Caller<Remote>;
  readonly method: string;
  readonly id: RequestId | null;
  #controller: AbortController | undefined;
  #reason: unknown;
  #aborted = false;

  constructor(peer: Caller<Remote>, method: string, id: RequestId | null) {
    this.peer = peer;
    this.method = method;
    this.id = id;
  }

  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    if (this.#aborted) this.#controller.abort(this.#reason);
    return this.#controller.signal;
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}

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
export class Peer<Remote = Untyped, Local = Untyped> implements Caller<Remote>, Disposable {
  #transport: Transport;
  #registry: HandlerRegistry<Local, Remote>;
  #logger: Logger;
  #maxMessageBytes: number;
  #maxInFlight: number;
  #maxPending: number;
  #highWater: number;
  #lastBuffered = Infinity; // bufferedAmount when last read (not yet)
  #sentUnits = 0; // UTF-16 units sent since then
  #defaultTimeoutMs: number | undefined;

  #nextId = 0;
  #pending = new Map<number, Pending>();
  #running = new Map<number | string, Context<Remote>>();
  #runningCount = 0;
  #queue: string[] = [];
  #pumping = false;
  #draining = false;
  #idle: (() => void) | undefined;
  #closeInfo: CloseInfo | undefined;
  #resolveClosed!: (info: CloseInfo) => void;
  #counts = { dropped: 0, rejected: 0, binary: 0, overloaded: 0 };
  #received = 0;
  #requireHello: boolean;
  #remote: RemoteInfo | undefined;

  /** Resolves once, when the connection has closed (either side, any reason). */
  readonly closed: Promise<CloseInfo>;

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
    this.#highWater = resolved.highWaterMarkBytes;
    this.#defaultTimeoutMs = resolved.defaultTimeoutMs;
    this.#requireHello = resolved.requireHello;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    transport.start({
      frame: (data) => this.#onFrame(data),
      closed: (code, reason) => this.#finish(code, reason),
    });
  }

  /** Counters; all zero-valued gauges once a closed peer has drained. */
  get stats(): PeerStats {
    return {
      pendingCalls: this.#pending.size,
      runningHandlers: this.#runningCount,
      queuedFrames: this.#queue.length,
      droppedFrames: this.#counts.dropped,
      rejectedFrames: this.#counts.rejected,
      binaryFrames: this.#counts.binary,
      overloaded: this.#counts.overloaded,
      receivedFrames: this.#received,
    };
  }

  /** How the connection closed, or `undefined` while it is open. */
  get closeInfo(): CloseInfo | undefined {
    return this.#closeInfo;
  }

  /**
   * What the other side declared in `$/hello`, or `undefined` while it speaks only the seed's
   * format (it may not answer requests, `$/ping` or `$/cancel`).
   */
  get remote(): RemoteInfo | undefined {
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
  ): Promise<RemoteInfo | undefined> {
    const params = { ...extra, version: PROTOCOL_REVISION, features: [] };
    let result: unknown;
    try {
      result = await this.#call(HELLO_METHOD, params, options);
    } catch (error) {
      if (error instanceof RemoteError) return undefined; // an older peer: unknown method
      throw error;
    }
    this.#remote = readHello(result) ?? this.#remote;
    return this.#remote;
  }

  /**
   * Calls a method on the other side.
   *
   * @param method The wire name.
   * @param params Positional (array) or by-name (object) parameters, JSON-serialisable.
   * @param options Cancellation and timeout.
   * @returns The result the other side returned.
   * @throws {RemoteError} The handler failed, or the method is unknown there.
   * @throws {DisconnectedError} The connection closed before the reply came.
   * @throws {NotNegotiatedError} With `requireHello`, the other side has not said `$/hello`.
   * @throws {LimitError} `too-many-pending` or `message-too-big` (nothing was sent).
   * @throws {DOMException} `TimeoutError` after `timeoutMs`; an aborted `signal`'s reason.
   * @throws {TypeError} `method` is not a string, `params` not an array/object or not serialisable.
   */
  call<M extends MethodName<Remote>>(
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
    return new Promise((resolve, reject) => {
      if (this.#closeInfo) {
        const { code, reason } = this.#closeInfo;
        return reject(new DisconnectedError(code, reason, method));
      }
      checkCall(method, params);
      const { signal } = options;
      if (signal?.aborted) return reject(signal.reason);
      if (this.#pending.size >= this.#maxPending) {
        return reject(
          new LimitError(
            "too-many-pending",
            `Cannot call "${method}": ${this.#maxPending} calls pending (maxPendingCalls)`,
          ),
        );
      }
      const id = this.#nextId++;
      const frame = encodeRequest(id, method, params);
      if (tooBig(frame, this.#maxMessageBytes)) {
        return reject(
          new LimitError(
            "message-too-big",
            `Cannot call "${method}": message over ${this.#maxMessageBytes} bytes (maxMessageBytes)`,
          ),
        );
      }
      const entry: Pending = {
        method,
        resolve,
        reject,
        timer: undefined,
        signal,
        onAbort: undefined,
      };
      const timeoutMs = options.timeoutMs ?? this.#defaultTimeoutMs;
      if (timeoutMs !== undefined) {
        checkInt("timeoutMs", timeoutMs, 0, 0);
        entry.timer = setTimeout(() => {
          this.#abandon(
            id,
            new DOMException(
              `Call "${method}" timed out after ${timeoutMs} ms`,
              "TimeoutError",
            ),
          );
        }, timeoutMs);
      }
      if (signal) {
        entry.onAbort = () => this.#abandon(id, signal.reason);
        signal.addEventListener("abort", entry.onAbort, { once: true });
      }
      this.#pending.set(id, entry);
      this.#send(frame);
    });
  }

  /**
   * Sends a notification: the other side runs the handler and never replies.
   *
   * @param method The wire name.
   * @param params Positional (array) or by-name (object) parameters, JSON-serialisable.
   * @throws {DisconnectedError} The connection is closed.
   * @throws {LimitError} `message-too-big`, or `overloaded` when the send queue is full.
   * @throws {TypeError} `method` is not a string, `params` not an array/object or not serialisable.
   */
  notify<M extends MethodName<Remote>>(method: M, ...args: NotifyArgs<Remote, M>): void;
  notify(method: string, params: unknown = []): void {
    if (this.#closeInfo) {
      throw new DisconnectedError(
        this.#closeInfo.code,
        this.#closeInfo.reason,
        method,
      );
    }
    checkCall(method, params);
    const frame = encodeNotification(method, params as Params);
    if (tooBig(frame, this.#maxMessageBytes)) {
      throw new LimitError(
        "message-too-big",
        `Cannot notify "${method}": message over ${this.#maxMessageBytes} bytes (maxMessageBytes)`,
      );
    }
    if (this.#queue.length >= this.#maxPending) {
      throw new LimitError(
        "overloaded",
        `Cannot notify "${method}": ${this.#queue.length} frames wait for the socket to drain`,
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
   */
  close(code = 1000, reason = "", errorFor?: (method: string) => Error): void {
    if (this.#closeInfo) return;
    this.#finish(code, reason, errorFor);
    this.#transport.close(code, reason);
  }

  /** Closes with 1000, so `using peer = new Peer(…)` cleans up. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Stops running new requests (they are answered "shutting down") and waits for running
   * handlers to finish, at most `graceMs`; then fires the signals of those still running.
   * Their replies, if any, are still sent until the connection closes.
   *
   * @param graceMs How long running handlers may take.
   * @returns When no handler runs, or the grace period ended.
   */
  async drain(graceMs: number): Promise<void> {
    this.#draining = true;
    if (this.#runningCount > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.#idle = resolve),
        new Promise<void>((resolve) => timer = setTimeout(resolve, graceMs)),
      ]);
      clearTimeout(timer);
      this.#idle = undefined;
    }
    const reason = new DOMException("Grace period ended", "AbortError");
    for (const context of this.#running.values()) context.abort(reason);
  }

  #onFrame(data: Frame): void {
    this.#received++;
    if (typeof data !== "string") {
      // Reserved for phase 2 (length-prefixed protobuf batches); see PROTOCOL.md.
      this.#counts.binary++;
      this.#logger.debug(
        `Ignoring binary frame of ${data.byteLength} bytes (reserved for phase 2)`,
      );
      return;
    }
    if (tooBig(data, this.#maxMessageBytes)) {
      this.#logger.warn(
        `Closing connection: message over ${this.#maxMessageBytes} bytes (maxMessageBytes)`,
      );
      return this.close(1009, "Message too big");
    }
    const decoded = decode(data);
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
    const pendingKey = error.responseId === null ? undefined : idKey(error.responseId);
    if (error.reason === "no-kind" && this.#pending.has(pendingKey as number)) {
      // `{"id": N}` alone: how JSON-RPC peers answer with an `undefined` result.
      return this.#settle(error.responseId!, true, null);
    }
    if (error.replyId !== null) {
      this.#counts.rejected++;
      this.#send(encodeFailure(error.replyId, error.message));
    } else if (
      error.responseId !== null &&
      this.#pending.has(idKey(error.responseId) as number)
    ) {
      // A broken reply to one of our calls: fail that call rather than let it hang.
      this.#counts.rejected++;
      this.#reject(idKey(error.responseId) as number, error);
    } else {
      this.#counts.dropped++;
      this.#logger.debug(`Dropping frame: ${error.message}`);
    }
  }

  #settle(id: RequestId, ok: boolean, value: unknown): void {
    const key = idKey(id);
    const entry = typeof key === "number" ? this.#pending.get(key) : undefined;
    if (!entry) {
      this.#counts.dropped++;
      this.#logger.debug(`Dropping reply to unknown id ${id}`);
      return;
    }
    this.#forget(key as number, entry);
    if (ok) entry.resolve(value);
    else entry.reject(new RemoteError(entry.method, value as string));
  }

  #onRequest(id: RequestId, method: string, params: Params): void {
    if (method === PING_METHOD) return this.#send(encodeSuccess(id, null));
    if (method === HELLO_METHOD) return this.#onHello(id, params);
    if (this.#draining) {
      return this.#send(
        encodeFailure(id, `Cannot run ${quoted(method)}: peer is shutting down`),
      );
    }
    if (
      this.#runningCount >= this.#maxInFlight ||
      this.#queue.length >= this.#maxInFlight
    ) {
      this.#counts.overloaded++;
      if (this.#queue.length >= this.#maxInFlight + this.#maxPending) {
        // The other side sends but does not read: stop before our buffers grow without bound.
        this.#logger.warn("Closing connection: peer does not read its replies");
        return this.close(1008, "Peer does not read");
      }
      return this.#send(
        encodeFailure(
          id,
          `Cannot run ${quoted(method)}: overloaded (${this.#maxInFlight} requests in flight)`,
        ),
      );
    }
    const handler = this.#registry.lookup(method);
    if (!handler) {
      return this.#send(encodeFailure(id, `Unknown method ${quoted(method)}`));
    }
    this.#run(handler, id, method, params);
  }

  #onHello(id: RequestId, params: Params): void {
    const info = readHello(params);
    if (!info) {
      return this.#send(encodeFailure(id, `Cannot accept "${HELLO_METHOD}": no version >= 2`));
    }
    this.#remote = info;
    this.#send(encodeSuccess(id, { version: PROTOCOL_REVISION, features: [] }));
  }

  #onNotification(method: string, params: Params): void {
    if (method === CANCEL_METHOD) {
      const key = Array.isArray(params) ? cancelKey(params[0]) : undefined;
      if (key !== undefined) {
        this.#running.get(key)?.abort(new DOMException("Cancelled by the caller", "AbortError"));
      }
      return;
    }
    if (method.startsWith("$/")) return; // Unknown reserved notifications are ignored.
    if (this.#runningCount >= this.#maxInFlight) {
      this.#counts.overloaded++;
      this.#logger.warn(
        `Dropping notification ${quoted(method)}: ${this.#maxInFlight} handlers running`,
      );
      return;
    }
    const handler = this.#registry.lookup(method);
    if (!handler) return void this.#counts.dropped++;
    this.#run(handler, null, method, params);
  }

  #run(
    handler: HandlerFn<Params, Remote>,
    id: RequestId | null,
    method: string,
    params: Params,
  ): void {
    const context = new Context(this, method, id);
    this.#runningCount++;
    let result: unknown;
    try {
      result = handler(params, context);
    } catch (error) {
      return this.#done(undefined, id, method, false, error);
    }
    if (
      !(result instanceof Promise) &&
      (typeof result !== "object" || result === null ||
        typeof (result as PromiseLike<unknown>).then !== "function")
    ) {
      return this.#done(undefined, id, method, true, result);
    }
    // Only a handler still running can be cancelled or aborted, so only such a one is listed.
    const key = id === null ? undefined : idKey(id);
    if (key !== undefined) this.#running.set(key, context);
    const closed = this.#closeInfo; // by the handler itself, before it was listed
    if (closed) context.abort(new DisconnectedError(closed.code, closed.reason));
    (result as PromiseLike<unknown>).then(
      (value) => this.#done(key, id, method, true, value),
      (error) => this.#done(key, id, method, false, error),
    );
  }

  #done(
    key: number | string | undefined,
    id: RequestId | null,
    method: string,
    ok: boolean,
    value: unknown,
  ): void {
    this.#runningCount--;
    if (key !== undefined) this.#running.delete(key);
    if (this.#runningCount === 0) this.#idle?.();
    if (id === null) {
      if (!ok) {
        this.#logger.debug(
          `Notification ${quoted(method)} failed: ${errorText(value)}`,
        );
      }
      return;
    }
    if (this.#closeInfo) return;
    let frame: string;
    try {
      frame = ok ? encodeSuccess(id, value) : encodeFailure(id, errorText(value));
    } catch (error) {
      frame = encodeFailure(
        id,
        `Cannot encode result of ${quoted(method)}: ${errorText(error)}`,
      );
    }
    if (tooBig(frame, this.#maxMessageBytes)) {
      frame = encodeFailure(
        id,
        `Cannot reply to ${quoted(method)}: result over ${this.#maxMessageBytes} bytes`,
      );
    }
    this.#send(frame);
  }

  #abandon(id: number, reason: unknown): void {
    if (!this.#pending.has(id)) return;
    this.#reject(id, reason);
    // Tell the other side, if it said hello: a seed peer never sees a reserved method.
    if (!this.#closeInfo && this.#remote) this.#send(encodeNotification(CANCEL_METHOD, [id]));
  }

  #reject(id: number, reason: unknown): void {
    const entry = this.#pending.get(id)!;
    this.#forget(id, entry);
    entry.reject(reason);
  }

  #forget(id: number, entry: Pending): void {
    this.#pending.delete(id);
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    if (entry.onAbort) {
      entry.signal!.removeEventListener("abort", entry.onAbort);
    }
  }

  #send(frame: string): void {
    if (this.#closeInfo) return;
    if (this.#queue.length === 0 && this.#belowHighWater()) {
      this.#transport.send(frame);
      this.#sentUnits += frame.length;
      return;
    }
    this.#queue.push(frame);
    this.#pump();
  }

  /**
   * Whether the transport's buffer is at or below the high-water mark. Reading
   * `bufferedAmount` costs a call into the runtime per frame, so it is read only when the bytes
   * sent since the last reading (at most 3 per UTF-16 unit) could have taken it over the mark.
   */
  #belowHighWater(): boolean {
    if (this.#lastBuffered + 3 * this.#sentUnits <= this.#highWater) return true;
    this.#lastBuffered = this.#transport.bufferedAmount;
    this.#sentUnits = 0;
    return this.#lastBuffered <= this.#highWater;
  }

  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    const step = () => {
      if (this.#closeInfo) return;
      let sent = 0;
      while (sent < this.#queue.length && this.#belowHighWater()) {
        this.#sentUnits += this.#queue[sent].length;
        this.#transport.send(this.#queue[sent++]);
      }
      this.#queue.splice(0, sent);
      if (this.#queue.length > 0) setTimeout(step, DRAIN_POLL_MS);
      else this.#pumping = false;
    };
    setTimeout(step, DRAIN_POLL_MS);
  }

  #finish(code: number, reason: string, errorFor?: (method: string) => Error): void {
    if (this.#closeInfo) return;
    this.#closeInfo = { code, reason };
    this.#queue.length = 0;
    this.#pumping = false;
    for (const [id, entry] of this.#pending) {
      this.#forget(id, entry);
      entry.reject(errorFor?.(entry.method) ?? new DisconnectedError(code, reason, entry.method));
    }
    const aborted = new DisconnectedError(code, reason);
    for (const context of this.#running.values()) context.abort(aborted);
    this.#resolveClosed(this.#closeInfo);
  }
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
export function resolvePeerOptions<Local = Untyped, Remote = Untyped>(
  options: PeerOptions<Local, Remote>,
): Required<Omit<PeerOptions<Local, Remote>, "defaultTimeoutMs">> & {
  defaultTimeoutMs: number | undefined;
} {
  return {
    requireHello: options.requireHello ?? false,
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

/** `$/cancel` names an id as a number, or as a decimal string (ids above 2^53). */
function cancelKey(target: unknown): number | string | undefined {
  if (typeof target === "number" && Number.isSafeInteger(target)) return target;
  if (typeof target === "string" && /^(0|[1-9][0-9]{0,19})$/.test(target)) {
    return idKey(BigInt(target));
  }
  return undefined;
}

/** A method name the other side chose, fit for a reply or a log line: escaped, at most 100 chars. */
function quoted(method: string): string {
  return `"${logSafe(method, 100)}"`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function checkCall(method: string, params: unknown): void {
  if (typeof method !== "string") {
    throw new TypeError(
      `Cannot call: method is ${typeof method}, not a string`,
    );
  }
  if (typeof params !== "object" || params === null) {
    throw new TypeError(`Cannot call "${method}": params is neither an array nor an object`);
  }
}

/** A hello's params or reply: `{version >= 2, features?: string[]}`, else `undefined`. */
function readHello(value: unknown): RemoteInfo | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const { version, features = [] } = value as { version?: unknown; features?: unknown };
  if (typeof version !== "number" || !Number.isInteger(version) || version < 2) return undefined;
  const list = Array.isArray(features)
    ? features.filter((f): f is string => typeof f === "string").slice(0, 32)
    : [];
  return { version, features: list };
}

/** UTF-8 length without encoding when the UTF-16 length already decides (≤ 3 bytes a unit). */
function tooBig(text: string, max: number): boolean {
  if (text.length * 3 <= max) return false;
  if (text.length > max) return true;
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c < 0xdc00 ? (i++, 4) : 3;
    if (bytes > max) return true;
  }
  return false;
}
