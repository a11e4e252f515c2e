/**
 * The dialling side: connects, presents the secret, reconnects with the design note's backoff,
 * and hands each socket to a {@linkcode Peer}. Runs in Deno, browsers and Node: no `Deno.*`
 * here. On Deno and Node the entry points (`mod.ts`, `server_node.ts`) install Mist's no-delay
 * socket as the default (`_socket/preset.ts`); the browser build does not carry it.
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

import type { Clock } from "./clock.ts";
import { ChannelDeadError, ClosedError, DisconnectedError } from "./errors.ts";
import { sessions } from "./_session.ts";
import type { Params } from "./envelope.ts";
import type { Logger } from "./log.ts";
import type { Caller, CallOptions, Peer } from "./peer.ts";
import type { HandlerRegistry } from "./registry.ts";
import type { CallArgs, Contract, NotifyArgs, ResultOf } from "./contract.ts";
import type { WebSocketLike } from "./transport.ts";
import {
  type ClientOptions,
  type EndpointProvider,
  resolveClientOptions,
  type ResolvedClientOptions,
} from "./_client_options.ts";
import { closeQuietly, dial, PROOF_FAILED_CLOSE_CODE } from "./_dial.ts";
import { errorText } from "./_reply.ts";
import { LivenessWatch } from "./_liveness.ts";
import { Waiting } from "./_waiting.ts";

export {
  type AuthMode,
  type ClientOptions,
  DEFAULT_CLIENT_MAX_MESSAGE_BYTES,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  DEFAULT_MAX_QUEUED_NOTIFICATIONS,
  type Endpoint,
  type EndpointProvider,
  type HeartbeatOptions,
  type SecretTransport,
  type WebSocketFactory,
} from "./_client_options.ts";
export {
  DEFAULT_DEAD_AFTER_MS,
  DEFAULT_MAX_DELAY_MS,
  DEFAULT_RECONNECT_DELAYS_MS,
  DEFAULT_STABLE_AFTER_MS,
  type ReconnectOptions,
} from "./_reconnect.ts";
export { PROOF_FAILED_CLOSE_CODE } from "./_dial.ts";

/** The close code a client uses when the server stayed silent after a heartbeat `$/ping`. */
export const HEARTBEAT_CLOSE_CODE = 4000;

/** The client's lifecycle; see the README's state diagram. */
export type ClientState = "connecting" | "open" | "reconnecting" | "dead" | "closed";

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
export class Client<Remote = Contract, Local = Contract> extends EventTarget
  implements Caller<Remote>, AsyncDisposable {
  #options: ResolvedClientOptions<Local, Remote>;
  #clock: Clock;
  #logger: Logger;
  #heartbeat: LivenessWatch | undefined;
  #proofFailed = false; // with "proof-then-secret": the next attempt sends the raw secret

  #state: ClientState = "connecting";
  #peer: AnyPeer | undefined;
  #openedAt = 0;
  #socket: WebSocketLike | undefined;
  #attempt = 0;
  #retries = 0;
  #lastError: unknown;
  #timer: unknown;
  #deadTimer: unknown;
  #waiting: Waiting;
  #generation = 0;
  #resolveClosed!: () => void;
  #warned = false; // this run of attempts has logged its first failure
  #refused = false; // the server refused a fixed endpoint's credentials

  /** Resolves once, when the client has been closed for good (`close()` finished). */
  readonly closed: Promise<void> = new Promise((resolve) => this.#resolveClosed = resolve);

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
    // Validated now, not on the first connection; every connection's peer gets `peer`.
    this.#options = resolveClientOptions(endpoint, options);
    this.#clock = this.#options.clock;
    this.#logger = this.#options.logger;
    const { peer, maxQueued } = this.#options;
    this.#waiting = new Waiting(peer.maxPendingCalls, maxQueued, this.#clock, this.#logger);
    const beat = this.#options.heartbeat;
    if (beat) {
      // The same rule as the server's idle check, with the heartbeat's numbers.
      this.#heartbeat = new LivenessWatch(
        {
          quietMs: beat.intervalMs,
          answerMs: beat.timeoutMs,
          closeCode: HEARTBEAT_CLOSE_CODE,
          closeReason: "Heartbeat timeout",
        },
        this.#clock,
        () => {
          this.#logger.warn(
            `Nothing received within ${beat.timeoutMs} ms of a heartbeat $/ping; dropping connection`,
          );
        },
      );
    }
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
    return this.#options.peer.registry;
  }

  /** The current connection's peer (for its stats), or `undefined` while not connected. */
  get peer(): Peer<Remote, Local> | undefined {
    return this.#peer as Peer<Remote, Local> | undefined;
  }

  /** Calls waiting for a connection, and notifications dropped while disconnected. */
  get stats(): { waitingCalls: number; queuedNotifications: number; droppedNotifications: number } {
    return this.#waiting.stats;
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
  call<M extends keyof Remote & string>(
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
  notify<M extends keyof Remote & string>(method: M, ...args: NotifyArgs<Remote, M>): void;
  notify(method: string, params: unknown = []): void {
    if (this.#state === "open" && !this.#peer!.closeInfo) {
      return this.#peer!.notify(method, params as Params);
    }
    if (this.#state === "closed") throw new ClosedError(method);
    if (this.#state === "dead") throw this.#deadError(method); // as call() rejects
    this.#waiting.queue(method, params);
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
    this.#refused = this.#warned = false;
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
    if (this.#state === "closed") return await this.closed;
    const peer = this.#peer;
    this.#abandonAttempt();
    this.#clock.clearTimeout(this.#deadTimer);
    this.#setState("closed", this.#attempt);
    this.#waiting.fail(() => new ClosedError());
    if (peer) await peer.close(1000, "Client closed", (method) => new ClosedError(method));
    this.#resolveClosed();
  }

  /** `await using client = new Client(…)` closes it. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #connection(method: string | undefined, options: CallOptions): Promise<AnyPeer> {
    if (this.#state === "closed") return Promise.reject(new ClosedError(method));
    if (this.#state === "dead") return Promise.reject(this.#deadError(method));
    if (this.#options.failFast && method !== undefined) {
      return Promise.reject(new DisconnectedError(1006, "Not connected", method));
    }
    return this.#waiting.connection(method, options);
  }

  /** Starts a run of attempts: at once (first connection, explicit `connect()`) or after the first delay (a drop). */
  #startConnecting(immediately: boolean, error?: unknown, resetDelays = true): void {
    if (resetDelays) this.#retries = 0;
    this.#clock.clearTimeout(this.#deadTimer);
    const policy = this.#options.reconnect;
    if (policy) {
      this.#deadTimer = this.#clock.setTimeout(
        () => this.#die(this.#lastError),
        policy.deadAfterMs,
      );
    }
    if (immediately) this.#tryConnect();
    else this.#retryLater(error);
  }

  #retryLater(error: unknown): void {
    this.#lastError = error;
    const delayMs = this.#options.reconnect!.delayMs(this.#retries++);
    this.#setState("reconnecting", this.#attempt + 1, delayMs, error);
    this.#timer = this.#clock.setTimeout(() => this.#tryConnect(), delayMs);
  }

  async #tryConnect(): Promise<void> {
    const generation = ++this.#generation;
    this.#attempt++;
    const { auth } = this.#options;
    const useProof = auth === "proof" || (auth === "proof-then-secret" && !this.#proofFailed);
    let error: unknown;
    let dialled = false; // the socket exists: the credentials were sent
    let fallingBack = false; // the next attempt sends other credentials
    try {
      const suspended = this.#peer && sessions.get(this.#peer);
      const peer = await dial(this.#options as ResolvedClientOptions<unknown, unknown>, {
        useProof,
        current: () => generation === this.#generation,
        onSocket: (socket) => {
          this.#socket = socket;
          dialled = true;
        },
        resuming: suspended?.suspended ? { session: suspended, peer: this.#peer! } : undefined,
        suspended: (code, reason) => this.#onSuspended(code, reason),
      });
      if (generation !== this.#generation) return peer.close(1000, "Superseded");
      return this.#onOpen(peer);
    } catch (caught) {
      error = caught;
      // With "proof-then-secret", an attempt that sent a proof and failed makes the next one
      // send the raw secret.
      if (useProof && auth === "proof-then-secret" && dialled) {
        this.#proofFailed = fallingBack = true;
      }
    }
    if (generation !== this.#generation) return;
    this.#lastError = error;
    const refusal = refusalOf(error);
    if (refusal !== undefined && this.#options.fixedEndpoint && !fallingBack) {
      // Asking again with the same URL and secret cannot succeed: say so, and stop.
      this.#logger.warn(`Connection refused (${refusal}); not retrying: the endpoint is fixed`);
      this.#refused = true;
      return this.#die(error);
    }
    // Visible once per run of attempts at the default level; each attempt at debug.
    if (this.#warned) this.#logger.debug(`Connection attempt ${this.#attempt} failed: ${error}`);
    else {
      this.#warned = true;
      this.#logger.warn(
        `Cannot connect (${errorText(error)}); ${
          this.#options.reconnect ? "retrying with backoff" : "reconnect is off"
        }`,
      );
    }
    if (!this.#options.reconnect) return this.#die(error);
    this.#retryLater(error);
  }

  #onOpen(peer: AnyPeer): void {
    this.#clock.clearTimeout(this.#deadTimer);
    this.#warned = false;
    const resumed = this.#peer === peer; // the same session, on a new socket
    this.#peer = peer;
    const attempt = this.#attempt;
    const openedAt = this.#openedAt = this.#clock.now();
    this.#setState("open", attempt);
    this.#waiting.open(peer);
    if (peer.remote) this.#heartbeat?.watch(peer); // a seed server is never sent $/ping
    if (resumed) return;
    peer.closed.then(({ code, reason }) => {
      this.#heartbeat?.forget(peer);
      if (this.#peer === peer) this.#peer = undefined;
      if (this.#state !== "open" || this.#peer !== undefined) return;
      this.#logger.info(`Connection closed (${code}${reason ? ` ${reason}` : ""}); reconnecting`);
      const error = new DisconnectedError(code, reason);
      const policy = this.#options.reconnect;
      if (!policy) return this.#die(error);
      this.#attempt = 0;
      // Only a connection that stayed up starts the delays over.
      const stable = this.#clock.now() - openedAt >= policy.stableAfterMs;
      this.#startConnecting(false, error, stable);
    });
  }

  /** The socket dropped, and the session waits to be resumed: reconnect to resume it. */
  #onSuspended(code: number, reason: string): void {
    const peer = this.#peer;
    if (this.#state !== "open" || !peer) return;
    this.#heartbeat?.forget(peer);
    const error = new DisconnectedError(code, reason);
    const policy = this.#options.reconnect;
    if (!policy) return void peer.close(code, reason); // cannot come back: calls fail now
    this.#logger.info(`Connection lost (${code}${reason ? ` ${reason}` : ""}); resuming`);
    this.#attempt = 0;
    const stable = this.#clock.now() - this.#openedAt >= policy.stableAfterMs;
    this.#startConnecting(false, error, stable);
  }

  #die(error?: unknown): void {
    if (this.#state === "closed" || this.#state === "dead") return;
    if (this.#state === "open" && this.#peer && !this.#peer.closeInfo) return;
    // A session still waiting to be resumed ends: its calls fail as without resume.
    if (this.#peer && sessions.get(this.#peer)?.suspended) {
      void this.#peer.close(1006, "Connection lost, and not resumed");
    }
    this.#abandonAttempt();
    this.#clock.clearTimeout(this.#deadTimer);
    this.#setState("dead", this.#attempt, undefined, error);
    this.#lastError = error ?? this.#lastError;
    this.#waiting.fail((method) => this.#deadError(method));
  }

  #deadError(method: string | undefined): ChannelDeadError {
    const after = this.#refused ? undefined : this.#options.reconnect?.deadAfterMs;
    return new ChannelDeadError(after, method, { cause: this.#lastError });
  }

  #abandonAttempt(): void {
    this.#generation++;
    this.#clock.clearTimeout(this.#timer);
    if (this.#socket && this.#socket.readyState === 0) closeQuietly(this.#socket);
  }

  #setState(state: ClientState, attempt: number, delayMs?: number, error?: unknown): void {
    this.#state = state;
    this.dispatchEvent(new StateChangeEvent(state, attempt, delayMs, error));
  }
}

/**
 * What a refused attempt says — the server's 401/403 with its reason, or a server that failed
 * the mutual proof — or `undefined` for any other failure (the server may be down or restarting).
 */
function refusalOf(error: unknown): string | undefined {
  if (!(error instanceof DisconnectedError)) return undefined;
  if (error.closeCode === PROOF_FAILED_CLOSE_CODE) return error.closeReason;
  return /^handshake failed: HTTP\/1\.1 40[13]\b/.test(error.closeReason)
    ? error.closeReason.slice("handshake failed: ".length)
    : undefined;
}

/** The client's peers, untyped inside (the contract types only its public surface). */
type AnyPeer = Peer<Contract, Contract>;
