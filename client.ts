/**
 * The dialling side: connects, presents the secret, reconnects with the design note's backoff,
 * and hands each socket to a {@linkcode Peer}. Runs in Deno, browsers and Node: no `Deno.*`
 * here (on Deno and Node it picks the no-delay socket of `deno_socket.ts` at run time).
 *
 * @example Calling the local runner
 * ```ts ignore
 * import { Client } from "./client.ts";
 * await using client = new Client("ws://127.0.0.1:8080/", { secret: Deno.env.get("MIST_SECRET")! });
 * console.log(await client.call("echo", ["hello", 42]));
 * ```
 *
 * @module
 */

import { checkInt } from "./_options.ts";
import { type Clock, realClock } from "./clock.ts";
import { isNoDelaySupported, NoDelayWebSocket } from "./deno_socket.ts";
import { ChannelDeadError, ClosedError, DisconnectedError, LimitError } from "./errors.ts";
import type { Params } from "./envelope.ts";
import { CHALLENGE_METHOD, clientProof, PROOF_HEADER, PROOF_PROTOCOL_PREFIX } from "./_proof.ts";
import type { Logger } from "./log.ts";
import {
  type Caller,
  type CallOptions,
  MAX_MESSAGE_BYTES_LIMIT,
  Peer,
  type PeerOptions,
  PING_METHOD,
  resolvePeerOptions,
} from "./peer.ts";
import type { HandlerRegistry } from "./registry.ts";
import type { CallArgs, MethodName, NotifyArgs, ResultOf, Untyped } from "./contract.ts";
import { SharedSecret } from "./secret.ts";
import { PROTOCOL_VERSION, SECRET_HEADER, VERSION_HEADER } from "./auth.ts";
import { type WebSocketLike, WebSocketTransport } from "./transport.ts";

/** The design note's reconnect delays, in ms; every later attempt waits `maxDelayMs`. */
export const DEFAULT_RECONNECT_DELAYS_MS: readonly number[] = [100, 200, 400, 1000, 2000];
/** Default {@linkcode ReconnectOptions.maxDelayMs}. */
export const DEFAULT_MAX_DELAY_MS = 5000;
/** Default {@linkcode ReconnectOptions.deadAfterMs}. */
export const DEFAULT_DEAD_AFTER_MS = 30_000;
/** Default {@linkcode ClientOptions.connectTimeoutMs}. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
/** Default {@linkcode HeartbeatOptions.intervalMs}. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 15_000;
/** Default {@linkcode HeartbeatOptions.timeoutMs}. */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 10_000;
/** Default {@linkcode ClientOptions.maxQueuedNotifications}. */
export const DEFAULT_MAX_QUEUED_NOTIFICATIONS = 256;
/** The close code a client uses when the peer missed a heartbeat. */
export const HEARTBEAT_CLOSE_CODE = 4000;
/** Default {@linkcode ReconnectOptions.stableAfterMs}. */
export const DEFAULT_STABLE_AFTER_MS = 5000;
/**
 * Default {@linkcode PeerOptions.maxMessageBytes} of a client: 64 MiB, so a large reply from a
 * server that allows more than Mist's server does (the upstream one allows 100 MiB) gets through.
 */
export const DEFAULT_CLIENT_MAX_MESSAGE_BYTES: number = MAX_MESSAGE_BYTES_LIMIT;
/** The close code a client uses when the server failed the mutual proof. */
export const PROOF_FAILED_CLOSE_CODE = 4008;

/** Where to connect and with which secret; a provider returns one before every attempt. */
export interface Endpoint {
  /** A `ws:` URL, e.g. `ws://127.0.0.1:8080/`. */
  readonly url: string;
  /** The server's secret, or its 64-hex form. */
  readonly secret: SharedSecret | string;
}

/** Called before every connection attempt, so a restarted peer's new port and secret are used. */
export type EndpointProvider = () => Endpoint | Promise<Endpoint>;

/** The client's lifecycle; see the README's state diagram. */
export type ClientState = "connecting" | "open" | "reconnecting" | "dead" | "closed";

/**
 * The reconnect policy. Delays follow `delaysMs`, then `maxDelayMs` for every further attempt;
 * `deadAfterMs` after the connection dropped without a new one, the channel is dead.
 */
export interface ReconnectOptions {
  /** Delays before attempts 1, 2, … @default [100, 200, 400, 1000, 2000] */
  delaysMs?: readonly number[];
  /** Delay of every attempt past `delaysMs`. @default {5000} */
  maxDelayMs?: number;
  /** Give-up time, from the drop. @default {30000} */
  deadAfterMs?: number;
  /** Random extra up to this fraction of each delay (0 to 1). @default {0} */
  jitter?: number;
  /**
   * A connection that closes sooner than this after opening does not reset the delays: a
   * server that accepts and drops at once is retried ever more slowly. @default {5000}
   */
  stableAfterMs?: number;
}

/** The client's liveness probe: a `$/ping` request every `intervalMs`. */
export interface HeartbeatOptions {
  /** Time between probes. @default {15000} */
  intervalMs?: number;
  /** A probe unanswered this long drops the connection (close 4000). @default {10000} */
  timeoutMs?: number;
}

/** How the secret travels: the `X-Land-Secret` header, or a `Sec-WebSocket-Protocol` entry. */
export type SecretTransport = "header" | "protocol";

/**
 * How the client shows it knows the secret (PROTOCOL.md §1):
 * - `"proof"`: the mutual proof; the secret never goes on the wire, and nothing is sent or
 *   accepted until the server has proved it knows the secret too. Mist's servers only.
 * - `"secret"`: the seed's raw secret; every server accepts it, and whoever holds the port gets it.
 * - `"proof-then-secret"`: a proof first; after an attempt with a proof fails, the next attempt
 *   sends the raw secret. A downgrade an impostor can force: only where both kinds of server
 *   must be reached with one configuration.
 */
export type AuthMode = "proof" | "secret" | "proof-then-secret";

/**
 * Creates a socket; Mist passes either `headers` or `protocols`.
 */
export type WebSocketFactory = (
  url: string,
  init: { headers?: Record<string, string>; protocols?: string[]; maxMessageBytes?: number },
) => WebSocketLike;

/** Options of a {@linkcode Client}; the peer options apply to each connection. */
export interface ClientOptions<Local = Untyped, Remote = Untyped>
  extends PeerOptions<Local, Remote> {
  /** The secret, when the endpoint is a URL. */
  secret?: SharedSecret | string;
  /**
   * How to show the secret. Browsers default to `"secret"` so that the seed's servers accept
   * them. @default "proof" in Deno and Node, "secret" elsewhere
   */
  auth?: AuthMode;
  /**
   * With `auth: "secret"`, also put the secret in the URL's `?secret=` (servers that read only
   * the query). URLs end up in logs: only where needed. @default false
   */
  secretInQuery?: boolean;
  /**
   * How to present the secret. Browsers cannot set headers, so `"header"` is for Deno and Node.
   * @default "header" in Deno and Node, "protocol" elsewhere
   */
  secretVia?: SecretTransport;
  /** Reconnect policy, or `false` to go dead on the first failure. @default {} */
  reconnect?: ReconnectOptions | false;
  /** Liveness probe, or `false` for none. @default {} */
  heartbeat?: HeartbeatOptions | false;
  /** An attempt that has not opened by then fails. @default {5000} */
  connectTimeoutMs?: number;
  /** Reject calls made while not connected at once, instead of waiting. @default false */
  failFast?: boolean;
  /** Notifications kept while not connected; older ones are dropped beyond it. @default {256} */
  maxQueuedNotifications?: number;
  /**
   * Creates sockets. @default Mist's no-delay socket for `ws:` URLs on Deno and Node (20.16+), the
   * global `WebSocket` elsewhere
   */
  webSocketFactory?: WebSocketFactory;
  /** Timers, replaceable in tests. @default the global timers */
  clock?: Clock;
}

/**
 * A state change, dispatched as `"statechange"`.
 *
 * @example Showing the state in a UI
 * ```ts ignore
 * client.addEventListener("statechange", (event) => {
 *   const { state, attempt, delayMs } = event;
 *   status.textContent = state === "reconnecting" ? `retry ${attempt} in ${delayMs} ms` : state;
 * });
 * ```
 */
export class StateChangeEvent extends Event {
  /** The new state. */
  readonly state: ClientState;
  /** The number of the next attempt (reconnecting), or of the one that succeeded (open). */
  readonly attempt: number;
  /** While reconnecting: the wait before the next attempt, in ms. */
  readonly delayMs: number | undefined;
  /** The error that caused the change, if any. */
  readonly error: unknown;

  /**
   * Creates the instance.
   *
   * @param state The new state.
   * @param attempt The attempt number.
   * @param delayMs The wait before the next attempt.
   * @param error What caused the change.
   */
  constructor(state: ClientState, attempt: number, delayMs?: number, error?: unknown) {
    super("statechange");
    this.state = state;
    this.attempt = attempt;
    this.delayMs = delayMs;
    this.error = error;
  }
}

interface Waiter {
  readonly method: string;
  readonly resolve: (peer: AnyPeer) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * A connection to a Mist server that survives the server restarting.
 *
 * Calls made while connected go out at once; calls made while (re)connecting wait for the
 * connection, bounded by their own `timeoutMs`/`signal` and by the channel going dead. Calls
 * in flight when the socket drops reject with {@linkcode DisconnectedError}.
 *
 * @example Connect, call, close
 * ```ts ignore
 * import { Client } from "./client.ts";
 * const client = new Client("ws://127.0.0.1:8080/", { secret: hex });
 * client.registry.register("hello", () => "from the client");
 * console.log(await client.call("echo", [1]));
 * await client.close();
 * ```
 */
export class Client<Remote = Untyped, Local = Untyped> extends EventTarget
  implements Caller<Remote>, AsyncDisposable {
  #provider: EndpointProvider;
  #peerOptions: ReturnType<typeof resolvePeerOptions<Local, Remote>>;
  #failFast: boolean;
  #registry: HandlerRegistry<Local, Remote>;
  #clock: Clock;
  #logger: Logger;
  #factory: WebSocketFactory;
  #via: SecretTransport;
  #auth: AuthMode;
  #secretInQuery: boolean;
  #proofFailed = false; // with "proof-then-secret": the next attempt sends the raw secret
  #stableAfterMs: number;
  #delays: readonly number[];
  #maxDelayMs: number;
  #deadAfterMs: number;
  #jitter: number;
  #reconnects: boolean;
  #connectTimeoutMs: number;
  #heartbeat: { intervalMs: number; timeoutMs: number } | undefined;
  #maxQueued: number;

  #state: ClientState = "connecting";
  #peer: AnyPeer | undefined;
  #socket: WebSocketLike | undefined;
  #attempt = 0;
  #retries = 0;
  #lastError: unknown;
  #timer: unknown;
  #deadTimer: unknown;
  #heartbeatTimer: unknown;
  #waiters = new Set<Waiter>();
  #queued: [string, Params][] = [];
  #droppedNotifications = 0;
  #generation = 0;

  /**
   * Starts connecting at once.
   *
   * @param endpoint A `ws:` URL (with `options.secret`), or a provider of `{url, secret}`.
   * @param options See {@linkcode ClientOptions}.
   * @throws {TypeError} No secret for a URL endpoint, or no `WebSocket` in this runtime.
   * @throws {RangeError} An option out of range (the message names it).
   */
  constructor(
    endpoint: string | URL | EndpointProvider,
    options: ClientOptions<Local, Remote> = {},
  ) {
    super();
    if (typeof endpoint === "function") this.#provider = endpoint;
    else {
      if (options.secret === undefined) {
        throw new TypeError("Cannot create client: a URL endpoint needs options.secret");
      }
      const fixed: Endpoint = { url: String(endpoint), secret: options.secret };
      this.#provider = () => fixed;
    }
    // Validated now, not on the first connection; every connection's peer gets these.
    this.#peerOptions = resolvePeerOptions<Local, Remote>({
      ...options,
      maxMessageBytes: options.maxMessageBytes ?? DEFAULT_CLIENT_MAX_MESSAGE_BYTES,
    });
    this.#registry = this.#peerOptions.registry;
    this.#logger = this.#peerOptions.logger;
    this.#failFast = options.failFast ?? false;
    this.#clock = options.clock ?? realClock;
    this.#via = options.secretVia ?? (isServerRuntime() ? "header" : "protocol");
    this.#auth = options.auth ?? (isServerRuntime() ? "proof" : "secret");
    if (!["proof", "secret", "proof-then-secret"].includes(this.#auth)) {
      throw new TypeError(
        `Cannot use auth: expected "proof", "secret" or "proof-then-secret", got "${this.#auth}"`,
      );
    }
    this.#secretInQuery = options.secretInQuery ?? false;
    this.#factory = options.webSocketFactory ?? defaultFactory();
    if (
      !options.webSocketFactory && !isNoDelaySupported() &&
      typeof globalThis.WebSocket !== "function"
    ) {
      throw new TypeError(
        "Cannot create client: no global WebSocket here (Node before 20.16: run with --experimental-websocket)",
      );
    }
    const reconnect = options.reconnect ?? {};
    this.#reconnects = reconnect !== false;
    const policy = reconnect === false ? {} : reconnect;
    this.#delays = (policy.delaysMs ?? DEFAULT_RECONNECT_DELAYS_MS).map((ms, i) =>
      checkInt(`reconnect.delaysMs[${i}]`, ms, 0, 0)
    );
    this.#maxDelayMs = checkInt("reconnect.maxDelayMs", policy.maxDelayMs, DEFAULT_MAX_DELAY_MS, 0);
    this.#deadAfterMs = checkInt(
      "reconnect.deadAfterMs",
      policy.deadAfterMs,
      DEFAULT_DEAD_AFTER_MS,
      0,
    );
    this.#stableAfterMs = checkInt(
      "reconnect.stableAfterMs",
      policy.stableAfterMs,
      DEFAULT_STABLE_AFTER_MS,
      0,
    );
    this.#jitter = policy.jitter ?? 0;
    if (!(this.#jitter >= 0 && this.#jitter <= 1)) {
      throw new RangeError(`Cannot use reconnect.jitter: expected 0 to 1, got ${this.#jitter}`);
    }
    this.#connectTimeoutMs = checkInt(
      "connectTimeoutMs",
      options.connectTimeoutMs,
      DEFAULT_CONNECT_TIMEOUT_MS,
      1,
    );
    const beat = options.heartbeat ?? {};
    this.#heartbeat = beat === false ? undefined : {
      intervalMs: checkInt(
        "heartbeat.intervalMs",
        beat.intervalMs,
        DEFAULT_HEARTBEAT_INTERVAL_MS,
        1,
      ),
      timeoutMs: checkInt("heartbeat.timeoutMs", beat.timeoutMs, DEFAULT_HEARTBEAT_TIMEOUT_MS, 1),
    };
    this.#maxQueued = checkInt(
      "maxQueuedNotifications",
      options.maxQueuedNotifications,
      DEFAULT_MAX_QUEUED_NOTIFICATIONS,
      0,
    );
    this.#startConnecting(true);
  }

  /**
   * Listens for `"statechange"` with a typed {@linkcode StateChangeEvent}, or for any event.
   *
   * @param type The event type.
   * @param listener Called with each event.
   * @param options As for `EventTarget`.
   */
  override addEventListener(
    type: "statechange",
    listener: ((event: StateChangeEvent) => void) | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /**
   * Listens for any event, as `EventTarget` does.
   *
   * @param type The event type.
   * @param listener Called with each event.
   * @param options As for `EventTarget`.
   */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | ((event: StateChangeEvent) => void) | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    super.addEventListener(type, listener as EventListenerOrEventListenerObject | null, options);
  }

  /**
   * Stops listening; the typed counterpart of {@linkcode Client.addEventListener}.
   *
   * @param type The event type.
   * @param listener The listener that was added.
   * @param options As for `EventTarget`.
   */
  override removeEventListener(
    type: "statechange",
    listener: ((event: StateChangeEvent) => void) | null,
    options?: boolean | EventListenerOptions,
  ): void;
  /**
   * Stops listening, as `EventTarget` does.
   *
   * @param type The event type.
   * @param listener The listener that was added.
   * @param options As for `EventTarget`.
   */
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | ((event: StateChangeEvent) => void) | null,
    options?: boolean | EventListenerOptions,
  ): void {
    super.removeEventListener(type, listener as EventListenerOrEventListenerObject | null, options);
  }

  /** The current state. */
  get state(): ClientState {
    return this.#state;
  }

  /** Handlers for calls coming from the server; kept across reconnections. */
  get registry(): HandlerRegistry<Local, Remote> {
    return this.#registry;
  }

  /** The current connection's peer (for its stats), or `undefined` while not connected. */
  get peer(): Peer<Remote, Local> | undefined {
    return this.#peer as Peer<Remote, Local> | undefined;
  }

  /** Calls waiting for a connection, and notifications dropped while disconnected. */
  get stats(): { waitingCalls: number; queuedNotifications: number; droppedNotifications: number } {
    return {
      waitingCalls: this.#waiters.size,
      queuedNotifications: this.#queued.length,
      droppedNotifications: this.#droppedNotifications,
    };
  }

  /**
   * Calls a method on the server.
   *
   * @param method The wire name.
   * @param params Positional (array) or by-name (object) parameters, JSON-serialisable.
   * @param options Cancellation and timeout (the timeout includes waiting for a connection).
   * @returns The result.
   * @throws {RemoteError} The server's handler failed or does not exist.
   * @throws {DisconnectedError} The connection dropped while the call was in flight (or, with
   * `failFast`, there was none).
   * @throws {ChannelDeadError} The channel went dead while the call waited.
   * @throws {ClosedError} The client is closed.
   * @throws {LimitError} `too-many-pending` or `message-too-big`.
   * @throws {DOMException} `TimeoutError`, or the aborted signal's reason.
   */
  call<M extends MethodName<Remote>>(
    method: M,
    ...args: CallArgs<Remote, M, CallOptions>
  ): Promise<ResultOf<Remote, M>>;
  call(method: string, params: unknown = [], options: CallOptions = {}): Promise<unknown> {
    // The peer checks params; a wrong type rejects there, as from a connected client.
    if (this.#state === "open" && !this.#peer!.closeInfo) {
      return this.#peer!.call(method, params as Params, options);
    }
    return this.#callLater(method, params as Params, options);
  }

  async #callLater(
    method: string,
    params: Params,
    options: CallOptions,
  ): Promise<unknown> {
    const started = this.#clock.now();
    const peer = await this.#connection(method, options);
    const timeoutMs = options.timeoutMs === undefined
      ? undefined
      : Math.max(0, Math.ceil(options.timeoutMs - (this.#clock.now() - started)));
    return peer.call(method, params, { signal: options.signal, timeoutMs });
  }

  /**
   * Sends a notification. While not connected it is queued (at most `maxQueuedNotifications`;
   * beyond that the oldest is dropped and counted) and sent in order on reconnection.
   *
   * @param method The wire name.
   * @param params Positional (array) or by-name (object) parameters.
   * @throws {ClosedError} The client is closed.
   * @throws {ChannelDeadError} The channel is dead (as `call()` rejects then).
   * @throws {LimitError} `message-too-big`, or `overloaded` when the socket does not drain.
   */
  notify<M extends MethodName<Remote>>(method: M, ...args: NotifyArgs<Remote, M>): void;
  notify(method: string, params: unknown = []): void {
    if (this.#state === "open" && !this.#peer!.closeInfo) {
      return this.#peer!.notify(method, params as Params);
    }
    if (this.#state === "closed") throw new ClosedError(method);
    if (this.#state === "dead") throw this.#deadError(method); // as call() rejects
    if (typeof params !== "object" || params === null) {
      throw new TypeError(`Cannot notify "${method}": params is neither an array nor an object`);
    }
    if (this.#maxQueued === 0) return void this.#droppedNotifications++;
    if (this.#queued.length >= this.#maxQueued) {
      this.#queued.shift();
      this.#droppedNotifications++;
    }
    this.#queued.push([method, params as Params]);
  }

  /**
   * Starts a new connection after the channel went dead (or restarts the attempts now while
   * reconnecting). Does nothing while open.
   *
   * @throws {ClosedError} The client was closed.
   */
  connect(): void {
    if (this.#state === "closed") throw new ClosedError();
    if (this.#state === "open" || this.#state === "connecting") return;
    this.#abandonAttempt();
    this.#attempt = 0;
    this.#setState("connecting", 1);
    this.#startConnecting(true);
  }

  /**
   * Waits until the client is open.
   *
   * @param options Bounds the wait.
   * @returns When open.
   * @throws {ChannelDeadError} / {ClosedError} / the signal's reason.
   */
  async opened(options: CallOptions = {}): Promise<void> {
    if (this.#state !== "open") await this.#connection(undefined, options);
  }

  /**
   * Closes for good: calls in flight and waiting calls reject with {@linkcode ClosedError},
   * queued notifications are dropped, the socket closes with 1000. Handlers still running on
   * the server are told by the close.
   *
   * @returns When the socket has closed (or at once when there was none).
   */
  async close(): Promise<void> {
    if (this.#state === "closed") return;
    const peer = this.#peer;
    this.#abandonAttempt();
    this.#clock.clearTimeout(this.#deadTimer);
    this.#setState("closed", this.#attempt);
    this.#failWaiters(() => new ClosedError());
    this.#queued.length = 0;
    if (peer) {
      peer.close(1000, "Client closed", (method) => new ClosedError(method));
      await peer.closed;
    }
  }

  /** `await using client = new Client(…)` closes it. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #connection(method: string | undefined, options: CallOptions): Promise<AnyPeer> {
    if (this.#state === "closed") return Promise.reject(new ClosedError(method));
    if (this.#state === "dead") return Promise.reject(this.#deadError(method));
    if (this.#failFast && method !== undefined) {
      return Promise.reject(new DisconnectedError(1006, "Not connected", method));
    }
    const { signal, timeoutMs } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    try {
      if (timeoutMs !== undefined) checkInt("timeoutMs", timeoutMs, 0, 0);
    } catch (error) {
      return Promise.reject(error);
    }
    const max = this.#peerOptions.maxPendingCalls;
    if (this.#waiters.size >= max) {
      return Promise.reject(
        new LimitError(
          "too-many-pending",
          `Cannot call "${method}": ${max} calls wait for a connection`,
        ),
      );
    }
    return new Promise<AnyPeer>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = () => settle(() => reject(signal!.reason));
      const settle = (then: () => void) => {
        this.#waiters.delete(waiter);
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        then();
      };
      const waiter: Waiter = {
        method: method ?? "",
        resolve: (peer) => settle(() => resolve(peer)),
        reject: (error) => settle(() => reject(error)),
      };
      this.#waiters.add(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          const what = method === undefined ? "Connecting" : `Call "${method}"`;
          settle(() =>
            reject(new DOMException(`${what} timed out after ${timeoutMs} ms`, "TimeoutError"))
          );
        }, checkInt("timeoutMs", timeoutMs, 0, 0));
      }
    });
  }

  /** Starts a run of attempts: at once (first connection, explicit `connect()`) or after the first delay (a drop). */
  #startConnecting(immediately: boolean, error?: unknown, resetDelays = true): void {
    if (resetDelays) this.#retries = 0;
    this.#clock.clearTimeout(this.#deadTimer);
    if (this.#reconnects) {
      this.#deadTimer = this.#clock.setTimeout(() => this.#die(this.#lastError), this.#deadAfterMs);
    }
    if (immediately) this.#tryConnect();
    else this.#retryLater(error);
  }

  #retryLater(error: unknown): void {
    this.#lastError = error;
    const base = this.#delays[this.#retries++] ?? this.#maxDelayMs;
    const delayMs = Math.round(base * (1 + this.#jitter * Math.random()));
    this.#setState("reconnecting", this.#attempt + 1, delayMs, error);
    this.#timer = this.#clock.setTimeout(() => this.#tryConnect(), delayMs);
  }

  async #tryConnect(): Promise<void> {
    const generation = ++this.#generation;
    this.#attempt++;
    let error: unknown;
    try {
      const peer = await this.#dial(generation);
      if (generation !== this.#generation) return peer.close(1000, "Superseded");
      return this.#onOpen(peer);
    } catch (caught) {
      error = caught;
    }
    if (generation !== this.#generation) return;
    this.#logger.debug(`Connection attempt ${this.#attempt} failed: ${String(error)}`);
    this.#lastError = error;
    if (!this.#reconnects) return this.#die(error);
    this.#retryLater(error);
  }

  async #dial(generation: number): Promise<AnyPeer> {
    const endpoint = await this.#provider();
    if (generation !== this.#generation) throw new Error("Superseded");
    const secret = typeof endpoint.secret === "string"
      ? SharedSecret.fromHex(endpoint.secret)
      : endpoint.secret;
    const useProof = this.#auth === "proof" ||
      (this.#auth === "proof-then-secret" && !this.#proofFailed);
    const proof = useProof ? await clientProof(secret) : undefined;
    if (generation !== this.#generation) throw new Error("Superseded");
    const { url, init } = this.#credentials(endpoint.url, secret, proof?.token);
    const socket = this.#factory(url, {
      ...init,
      maxMessageBytes: this.#peerOptions.maxMessageBytes,
    });
    this.#socket = socket;
    // One deadline for the whole handshake: open, the server's proof, and the hello.
    const started = this.#clock.now();
    let timedOut = false;
    const timer = this.#clock.setTimeout(() => {
      timedOut = true;
      closeQuietly(socket);
    }, this.#connectTimeoutMs);
    const timeout = () =>
      new DisconnectedError(1006, `No connection within ${this.#connectTimeoutMs} ms`);
    try {
      const first = await opened(socket, proof !== undefined);
      let answer: string | undefined;
      if (proof) {
        answer = await proof.answer(challengeParams(first));
        if (answer === undefined) {
          closeQuietly(socket, PROOF_FAILED_CLOSE_CODE, "Server failed the proof");
          throw new DisconnectedError(
            PROOF_FAILED_CLOSE_CODE,
            "Server failed the proof: it does not know the secret, or is not a Mist server",
          );
        }
      }
      // Typed only at the surface: inside, calls are by name.
      const peer: AnyPeer = new Peer(
        new WebSocketTransport(socket),
        this.#peerOptions as unknown as PeerOptions,
      );
      const left = this.#connectTimeoutMs - (this.#clock.now() - started);
      await peer.hello(answer === undefined ? {} : { proof: answer }, {
        timeoutMs: Math.max(1, Math.ceil(left)),
      });
      return peer;
    } catch (error) {
      if (proof && this.#auth === "proof-then-secret") this.#proofFailed = true;
      throw timedOut ? timeout() : error;
    } finally {
      this.#clock.clearTimeout(timer);
    }
  }

  /** The URL and the upgrade's headers or protocols for one attempt. */
  #credentials(
    url: string,
    secret: SharedSecret,
    proofToken: string | undefined,
  ): { url: string; init: { headers?: Record<string, string>; protocols?: string[] } } {
    const header = this.#via === "header";
    if (proofToken !== undefined) {
      return header
        ? { url, init: { headers: { [PROOF_HEADER]: proofToken, [VERSION_HEADER]: "2" } } }
        : { url, init: { protocols: [PROTOCOL_VERSION, PROOF_PROTOCOL_PREFIX + proofToken] } };
    }
    if (this.#secretInQuery) {
      const target = new URL(url);
      target.searchParams.set("secret", secret.toHex());
      url = target.href;
    }
    // The bare hex first: the seed's servers read the whole header value as the secret (and
    // stop at the first non-hex character); Mist's server selects mist.v1, so it is not echoed.
    return header
      ? { url, init: { headers: { [SECRET_HEADER]: secret.toHex(), [VERSION_HEADER]: "2" } } }
      : { url, init: { protocols: [secret.toHex(), PROTOCOL_VERSION] } };
  }

  #onOpen(peer: AnyPeer): void {
    this.#clock.clearTimeout(this.#deadTimer);
    this.#peer = peer;
    const attempt = this.#attempt;
    const openedAt = this.#clock.now();
    this.#setState("open", attempt);
    for (const [method, params] of this.#queued.splice(0)) {
      try {
        peer.notify(method, params);
      } catch (error) {
        this.#droppedNotifications++;
        this.#logger.warn(`Dropping queued notification "${method}": ${String(error)}`);
      }
    }
    for (const waiter of [...this.#waiters]) waiter.resolve(peer);
    if (peer.remote) this.#scheduleHeartbeat(peer); // a seed server is never sent $/ping
    peer.closed.then(({ code, reason }) => {
      this.#clock.clearTimeout(this.#heartbeatTimer);
      if (this.#peer === peer) this.#peer = undefined;
      if (this.#state !== "open" || this.#peer !== undefined) return;
      this.#logger.info(`Connection closed (${code}${reason ? ` ${reason}` : ""}); reconnecting`);
      const error = new DisconnectedError(code, reason);
      if (!this.#reconnects) return this.#die(error);
      this.#attempt = 0;
      // Only a connection that stayed up starts the delays over.
      const stable = this.#clock.now() - openedAt >= this.#stableAfterMs;
      this.#startConnecting(false, error, stable);
    });
  }

  #scheduleHeartbeat(peer: AnyPeer): void {
    const beat = this.#heartbeat;
    if (!beat) return;
    this.#heartbeatTimer = this.#clock.setTimeout(async () => {
      try {
        await peer.call(PING_METHOD, [], { timeoutMs: beat.timeoutMs });
      } catch (error) {
        // Any answer, even an error from a peer that does not know $/ping, proves liveness.
        if (error instanceof DOMException && error.name === "TimeoutError") {
          this.#logger.warn(`No heartbeat answer within ${beat.timeoutMs} ms; dropping connection`);
          return peer.close(HEARTBEAT_CLOSE_CODE, "Heartbeat timeout");
        }
      }
      if (!peer.closeInfo) this.#scheduleHeartbeat(peer);
    }, beat.intervalMs);
  }

  #die(error?: unknown): void {
    if (this.#state === "closed" || this.#state === "dead") return;
    if (this.#state === "open" && this.#peer && !this.#peer.closeInfo) return;
    this.#abandonAttempt();
    this.#clock.clearTimeout(this.#deadTimer);
    this.#setState("dead", this.#attempt, undefined, error);
    this.#lastError = error ?? this.#lastError;
    this.#failWaiters((method) => this.#deadError(method));
    this.#queued.length = 0;
  }

  #deadError(method: string | undefined): ChannelDeadError {
    const after = this.#reconnects ? this.#deadAfterMs : undefined;
    return new ChannelDeadError(after, method, { cause: this.#lastError });
  }

  #abandonAttempt(): void {
    this.#generation++;
    this.#clock.clearTimeout(this.#timer);
    if (this.#socket && this.#socket.readyState === 0) closeQuietly(this.#socket);
  }

  #failWaiters(error: (method: string | undefined) => unknown): void {
    for (const waiter of [...this.#waiters]) waiter.reject(error(waiter.method || undefined));
  }

  #setState(state: ClientState, attempt: number, delayMs?: number, error?: unknown): void {
    this.#state = state;
    this.dispatchEvent(new StateChangeEvent(state, attempt, delayMs, error));
  }
}

/** The client's peers, untyped inside (the contract types only its public surface). */
type AnyPeer = Peer<Untyped, Untyped>;

function closeQuietly(socket: WebSocketLike, code?: number, reason?: string): void {
  try {
    socket.close(code, reason);
  } catch {
    // Already closing.
  }
}

/**
 * Waits for the socket to open; with `firstMessage`, also for its first message (the server's
 * challenge), which it returns. A failure rejects with a {@linkcode DisconnectedError}.
 */
function opened(socket: WebSocketLike, firstMessage: boolean): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let done = false;
    const fail = (event: { code?: number; reason?: string }) => {
      if (done) return;
      done = true;
      const why = event.reason || (event as { message?: string }).message || "Connection failed";
      reject(new DisconnectedError(event.code ?? 1006, why));
    };
    const settle = (value: unknown) => {
      if (done) return;
      done = true;
      resolve(value);
    };
    socket.addEventListener("open", () => {
      if (!firstMessage) settle(undefined);
    });
    // Once settled, this listener ignores the rest: the peer reads them.
    socket.addEventListener("message", (event) => settle(event.data));
    socket.addEventListener("error", fail);
    socket.addEventListener("close", fail);
  });
}

/** The params of a `$/challenge` notification frame, or `undefined`. */
function challengeParams(data: unknown): unknown {
  if (typeof data !== "string" || data.length > 1024) return undefined;
  try {
    const frame = JSON.parse(data) as { id?: unknown; method?: unknown; params?: unknown };
    return frame.id === null && frame.method === CHALLENGE_METHOD ? frame.params : undefined;
  } catch {
    return undefined;
  }
}

/** Deno and Node clients can set headers; a browser cannot. */
function isServerRuntime(): boolean {
  const g = globalThis as { Deno?: unknown; process?: { versions?: { node?: string } } };
  return g.Deno !== undefined || typeof g.process?.versions?.node === "string";
}

function defaultFactory(): WebSocketFactory {
  if (isNoDelaySupported()) {
    return (url, init) =>
      url.startsWith("ws:") ? new NoDelayWebSocket(url, init) : nativeSocket(url, init);
  }
  return nativeSocket;
}

function nativeSocket(
  url: string,
  init: { headers?: Record<string, string>; protocols?: string[] },
): WebSocketLike {
  const Native =
    (globalThis as { WebSocket?: new (url: string, init?: unknown) => WebSocketLike }).WebSocket;
  if (!Native) {
    throw new TypeError(
      "Cannot connect: no global WebSocket here (Node before 20.16: run with --experimental-websocket)",
    );
  }
  // Deno and Node (undici) take a dictionary with headers; browsers only a protocol list.
  return init.headers
    ? new Native(url, { headers: init.headers })
    : new Native(url, init.protocols);
}
