/**
 * The server's runtime-neutral part, shared by the Deno face (`server.ts`) and the Node face
 * (`server_node.ts`): options and their defaults, the decision on each upgrade request (checks,
 * proof, connection slots, logged refusals), one peer per opened socket with the idle check,
 * and a bounded graceful shutdown. A face only listens, upgrades and writes refusals.
 *
 * @module
 */

import { checkInt } from "./_options.ts";
import { ConnectionSlots, refusalLog } from "./_server_guard.ts";
import { accept, type AcceptPlan } from "./_accept.ts";
import { serverProof } from "./_proof.ts";
import { authorize, type AuthPolicy, DEFAULT_ALLOWED_ORIGINS, isLoopbackHost } from "./_auth.ts";
import { type Clock, realClock } from "./clock.ts";
import { IdleWatch } from "./_idle_watch.ts";
import { DEFAULT_RESUME, SessionTable } from "./_session_table.ts";
import type { Logger } from "./log.ts";
import { type Peer, type PeerOptions, resolvePeerOptions } from "./peer.ts";
import type { SharedSecret } from "./secret.ts";
import type { Contract } from "./contract.ts";
import type { WebSocketLike } from "./transport.ts";

/** Default {@linkcode ServeLocalOptions.hostname}. */
export const DEFAULT_HOSTNAME = "127.0.0.1";
/** Default {@linkcode ServeLocalOptions.idleTimeoutMs}: as Deno's own WebSocket idle timeout. */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
/** Default {@linkcode ServeLocalOptions.shutdownGraceMs}. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 5000;
/** Default {@linkcode ServeLocalOptions.maxConnections}. */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/** Default {@linkcode ServeLocalOptions.upgradeTimeoutMs}. */
export const DEFAULT_UPGRADE_TIMEOUT_MS = 5000;
/**
 * How long `shutdown()` waits, after the grace period, for closing handshakes and for Deno's
 * server to stop; so it always ends within `shutdownGraceMs` plus this.
 */
export const SHUTDOWN_MARGIN_MS = 1000;

/**
 * Options of `serveLocal`; the peer options apply to every connection.
 *
 * @typeParam Local The contract the server serves (its registry's).
 * @typeParam Remote The contract of its clients, for calling them back.
 */
export interface ServeLocalOptions<Local = Contract, Remote = Contract>
  extends PeerOptions<Local, Remote> {
  /** The per-spawn secret clients must present. Required unless `insecureNoSecret`. */
  secret?: SharedSecret;
  /** Accept connections without any secret. Only for tests and demos. @default false */
  insecureNoSecret?: boolean;
  /** Port; 0 picks a free one (read it from the handle). @default {0} */
  port?: number;
  /** Address to bind. @default "127.0.0.1" */
  hostname?: string;
  /** Allow binding a non-loopback address. @default false */
  allowNonLoopback?: boolean;
  /** Origins allowed besides loopback ones; replaces the default list. @default DEFAULT_ALLOWED_ORIGINS */
  allowedOrigins?: readonly string[];
  /** Also read the secret from `?secret=` (older webview code). @default false */
  allowQuerySecret?: boolean;
  /**
   * A client that sends nothing for half of this is sent a `$/ping` request; if it still sends
   * nothing for the other half, it is closed with 1001 (0: never). @default {30000}
   */
  idleTimeoutMs?: number;
  /** How long `shutdown()` lets running handlers finish. @default {5000} */
  shutdownGraceMs?: number;
  /**
   * Connections at once; more are refused with HTTP 503. A connection counts from its upgrade
   * until it closes, or, if it has not opened by then, until `upgradeTimeoutMs`. @default {1024}
   */
  maxConnections?: number;
  /**
   * How long an accepted upgrade may take to open. Until then it counts against
   * `maxConnections`; after, it no longer does, and if it opens later it is closed at once with
   * 1013. (Deno never reports an upgrade whose TCP connection was reset before the 101.)
   * @default {5000}
   */
  upgradeTimeoutMs?: number;
  /**
   * Where the timers of the idle check, the upgrade deadline, the refusal log, the re-listen
   * backoff and the peers (call timeouts, drain, send queue) come from. @default the global
   * timers
   */
  clock?: Clock;
  /**
   * Called with each new connection's peer, e.g. to call the client. A client that announced
   * `$/hello` at the upgrade (Mist's do) is reported once its hello arrived, so it can be
   * called at once; a seed client when its socket opens (`peer.call` toward it rejects with
   * `NotNegotiatedError`: it does not answer requests). A client resuming a dropped connection
   * (PROTOCOL.md §8) is not a new connection: its session's peer carries on, unreported.
   */
  onConnection?: (peer: Peer<Remote, Local>) => void;
  /**
   * Called once each time the accept loop fails (e.g. "Too many open files" at the file
   * descriptor limit). The server does not stop: open connections stay open, and it listens
   * again on the same port after 100 ms, doubling to at most 5 s, until it can. The failure is
   * also logged once at error level, and the recovery at info level.
   */
  onListenError?: (error: Error) => void;
  /** Aborting it shuts the server down. */
  signal?: AbortSignal;
  /**
   * Resuming dropped connections without loss (PROTOCOL.md §8), for clients that negotiate it
   * (Mist's do): a connection that drops without a close is kept as a suspended session for
   * `graceMs` — its calls pending, its handlers running, what it sends kept in a replay buffer
   * of at most `maxBufferBytes` and `maxBufferMessages` — and at most `maxSuspended` sessions
   * are kept (beyond, the oldest ends). All sessions' buffers together hold at most
   * `maxTotalBufferBytes`: a session that would go over can no longer be resumed (connected) or
   * ends (suspended), so clients that do not acknowledge cannot make the server hold more.
   * `false` turns it off.
   * @default {{ graceMs: 30000, maxSuspended: 64, maxBufferBytes: 8388608, maxBufferMessages: 4096, maxTotalBufferBytes: 67108864 }}
   */
  resume?: false | {
    graceMs?: number;
    maxSuspended?: number;
    maxBufferBytes?: number;
    maxBufferMessages?: number;
    maxTotalBufferBytes?: number;
  };
}

/**
 * A running server.
 *
 * @example
 * ```ts ignore
 * await using server = serveLocal({ secret });
 * console.log(server.url, server.connections);
 * ```
 */
export interface LocalServer extends AsyncDisposable {
  /** Where clients connect, e.g. `ws://127.0.0.1:41234/`. */
  readonly url: string;
  /** The bound address. */
  readonly hostname: string;
  /** The bound port (the real one when 0 was asked). */
  readonly port: number;
  /** Connections counted against `maxConnections` now (open, or upgrading within the deadline). */
  readonly connections: number;
  /**
   * Stops accepting, lets running handlers finish within the grace period (new requests are
   * answered "shutting down"), sends their replies, closes every socket with 1001. Resolves
   * within `shutdownGraceMs` plus {@linkcode SHUTDOWN_MARGIN_MS} whatever the clients do:
   * connections still open then are dropped.
   */
  shutdown(): Promise<void>;
  /** Resolves when the server has shut down; never rejects (a failed accept loop is retried). */
  readonly closed: Promise<void>;
}

/** The decision on one upgrade request. */
export type Decision =
  | { readonly ok: false; readonly status: number; readonly reason: string }
  | {
    readonly ok: true;
    /** The subprotocol to select, if any. */
    readonly protocol: string | undefined;
    /** What `connection()` needs once the face has upgraded. */
    readonly plan: AcceptPlan;
    /**
     * The face watches this client with WebSocket ping frames, `pingTimeoutMs` apart (it did
     * not announce `$/hello`, so it may not answer `$/ping`); 0 when it need not.
     */
    readonly pingTimeoutMs: number;
  };

/** What {@linkcode ServeCore.serving} needs of a face's listener. */
export interface FaceListener {
  /** The bound port. */
  readonly port: number;
  /** Stops listening and drops the connections left, within `timeoutMs`. */
  stop(timeoutMs: number): Promise<void>;
}

/**
 * Everything of a server but listening and upgrading.
 *
 * @example
 * ```ts ignore
 * const core = new ServeCore(options);
 * const decision = await core.decide(request, "127.0.0.1:5000");
 * if (!decision.ok) return refuse(decision.status, decision.reason);
 * const { socket, response } = Deno.upgradeWebSocket(request, { protocol: decision.protocol });
 * core.connection(socket, decision.plan, "127.0.0.1:5000");
 * ```
 */
export class ServeCore {
  /** The address to bind (checked: loopback unless allowed). */
  readonly hostname: string;
  /** `hostname` as a URL writes it (an IPv6 address in brackets). */
  readonly host: string;
  /** The port asked for (0: any). */
  readonly port: number;
  /** The options' clock, or the global timers. */
  readonly clock: Clock;
  /** The logger every line goes through (bounded, escaped). */
  readonly logger: Logger;
  readonly #options: ServeLocalOptions;
  readonly #idleMs: number;
  readonly #graceMs: number;
  readonly #peerOptions: ReturnType<typeof resolvePeerOptions<Contract, Contract>>;
  readonly #policy: AuthPolicy;
  readonly #slots: ConnectionSlots;
  readonly #peers = new Set<Peer>();
  readonly #idle: IdleWatch | undefined;
  readonly #refusals: ReturnType<typeof refusalLog>;
  readonly #sessions: SessionTable | undefined;
  #nextConnection = 1;
  #stopping: Promise<void> | undefined;

  /**
   * Validates the options.
   *
   * @param options See {@linkcode ServeLocalOptions}.
   * @throws {TypeError} No `secret` and no `insecureNoSecret`.
   * @throws {RangeError} A non-loopback `hostname` without `allowNonLoopback`, or an option out
   *   of range.
   */
  constructor(options: ServeLocalOptions) {
    const hostname = options.hostname ?? DEFAULT_HOSTNAME;
    if (!isLoopbackHost(hostname) && !options.allowNonLoopback) {
      throw new RangeError(
        `Cannot listen on "${hostname}": not a loopback address (set allowNonLoopback)`,
      );
    }
    if (!options.secret && !options.insecureNoSecret) {
      throw new TypeError("Cannot serve: no secret (pass one, or set insecureNoSecret explicitly)");
    }
    this.hostname = hostname;
    this.host = hostname.includes(":") ? `[${hostname}]` : hostname;
    this.port = checkInt("port", options.port, 0, 0, 65535);
    this.#options = options;
    this.#idleMs = checkInt("idleTimeoutMs", options.idleTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS, 0);
    this.#graceMs = checkInt(
      "shutdownGraceMs",
      options.shutdownGraceMs,
      DEFAULT_SHUTDOWN_GRACE_MS,
      0,
    );
    const maxConnections = checkInt(
      "maxConnections",
      options.maxConnections,
      DEFAULT_MAX_CONNECTIONS,
      1,
    );
    const upgradeTimeoutMs = checkInt(
      "upgradeTimeoutMs",
      options.upgradeTimeoutMs,
      DEFAULT_UPGRADE_TIMEOUT_MS,
      1,
    );
    this.clock = options.clock ?? realClock;
    // Its logger is safeLogger-wrapped; its peers run on the server's clock.
    this.#peerOptions = resolvePeerOptions<Contract, Contract>({ ...options, clock: this.clock });
    this.logger = this.#peerOptions.logger;
    this.#policy = {
      secret: options.secret ?? null,
      allowedOrigins: options.allowedOrigins ?? DEFAULT_ALLOWED_ORIGINS,
      allowQuerySecret: options.allowQuerySecret ?? false,
      allowedHosts: isLoopbackHost(hostname) ? [] : [hostname],
    };
    this.#slots = new ConnectionSlots(maxConnections, upgradeTimeoutMs, this.clock);
    this.#idle = this.#idleMs > 0 ? new IdleWatch(this.#idleMs, this.clock) : undefined;
    this.#refusals = refusalLog(this.logger, this.clock);
    const resume = options.resume === false ? undefined : options.resume ?? {};
    this.#sessions = resume && new SessionTable(
      {
        graceMs: checkInt("resume.graceMs", resume.graceMs, DEFAULT_RESUME.graceMs, 0),
        maxSuspended: checkInt(
          "resume.maxSuspended",
          resume.maxSuspended,
          DEFAULT_RESUME.maxSuspended,
          0,
        ),
        maxBufferBytes: checkInt(
          "resume.maxBufferBytes",
          resume.maxBufferBytes,
          DEFAULT_RESUME.maxBufferBytes,
          0,
        ),
        maxBufferMessages: checkInt(
          "resume.maxBufferMessages",
          resume.maxBufferMessages,
          DEFAULT_RESUME.maxBufferMessages,
          0,
        ),
        maxTotalBufferBytes: checkInt(
          "resume.maxTotalBufferBytes",
          resume.maxTotalBufferBytes,
          DEFAULT_RESUME.maxTotalBufferBytes,
          0,
        ),
      },
      this.clock,
      this.logger,
    );
  }

  /** Whether `shutdown()` was called. */
  get stopping(): boolean {
    return this.#stopping !== undefined;
  }

  /** Connections counted against `maxConnections`. */
  get connections(): number {
    return this.#slots.size;
  }

  /**
   * Decides on an upgrade request: every check, the proof, the connection limit. Refusals are
   * logged (rate-limited) here; the face writes them.
   *
   * @param request The upgrade request (its URL and headers).
   * @param from The peer's address, for the log.
   * @returns The decision.
   */
  async decide(request: Request, from: string): Promise<Decision> {
    if (this.#stopping) return { ok: false, status: 503, reason: "Server shutting down" };
    const verdict = authorize(request, this.#policy);
    if (!verdict.ok) return this.refused(from, verdict.status, verdict.reason);
    const proof = verdict.proof === undefined
      ? undefined
      : await serverProof(this.#options.secret!, verdict.proof);
    if (verdict.proof !== undefined && proof === undefined) {
      // Said apart from 401 in the log only; the client learns no more than "wrong secret".
      this.#refusals.log("401", `Refused ${from}: 401 Wrong proof`);
      return { ok: false, status: 401, reason: "Missing or wrong secret" };
    }
    if (this.#stopping) return { ok: false, status: 503, reason: "Server shutting down" };
    if (this.#slots.full) return this.refused(from, 503, "Too many connections");
    const announced = verdict.announced;
    return {
      ok: true,
      protocol: verdict.protocol,
      plan: { proof, announced },
      // A client that says $/hello is watched with $/ping by IdleWatch (one timer for all). A
      // seed client may not answer requests; a browser's network stack answers ping frames.
      pingTimeoutMs: announced ? 0 : this.#idleMs,
    };
  }

  /**
   * Logs a refusal (rate-limited) and returns it as a decision.
   *
   * @param from The peer's address.
   * @param status The HTTP status.
   * @param reason The reason sent.
   * @returns The refusal.
   */
  refused(from: string, status: number, reason: string): Decision {
    this.#refusals.log(String(status), `Refused ${from}: ${status} ${reason}`);
    return { ok: false, status, reason };
  }

  /**
   * Takes an upgraded socket, still connecting: it holds a connection slot, and once open gets
   * its peer.
   *
   * @param socket The server-side socket.
   * @param plan From the decision.
   * @param from The peer's address, for the log.
   */
  connection(socket: WebSocketLike, plan: AcceptPlan, from: string): void {
    const id = this.#nextConnection++;
    const idle = this.#idle;
    this.#slots.admit(socket, () => {
      const peer = accept(socket, plan, this.#peerOptions, (peer) => {
        // The hello was a frame: count silence from here.
        if (!this.#stopping && plan.announced && !peer.closeInfo) idle?.watch(peer);
        this.#options.onConnection?.(peer);
      }, this.#sessions);
      this.#peers.add(peer);
      if (!this.#stopping && plan.announced) idle?.watch(peer);
      this.logger.info(`Connection ${id} opened from ${from}`);
      peer.closed.then(({ code }) => {
        this.#peers.delete(peer);
        idle?.forget(peer);
        this.logger.info(`Connection ${id} closed (${code})`);
      });
    });
  }

  /**
   * The running server a face returns, once its listener listens: `shutdown()` runs
   * {@linkcode ServeCore.shutdown} with the listener's stop, and so does the options' `signal`
   * aborting (at once when it is aborted already).
   *
   * @param listener The face's listener: the bound port, and its bounded stop.
   * @param beforeShutdown What the face stops first on each `shutdown()` call (Node's pings).
   * @returns The server.
   */
  serving(listener: FaceListener, beforeShutdown?: () => void): LocalServer {
    let finish!: () => void;
    const closed = new Promise<void>((resolve) => finish = resolve);
    const shutdown = (): Promise<void> => {
      beforeShutdown?.();
      return this.shutdown((timeoutMs) => listener.stop(timeoutMs)).then(finish);
    };
    const signal = this.#options.signal;
    if (signal?.aborted) void shutdown();
    else signal?.addEventListener("abort", () => void shutdown(), { once: true });
    const slots = this.#slots;
    return {
      url: `ws://${this.host}:${listener.port}/`,
      hostname: this.hostname,
      port: listener.port,
      get connections() {
        return slots.size;
      },
      shutdown,
      closed,
      [Symbol.asyncDispose]: shutdown,
    };
  }

  /**
   * Stops taking connections, lets handlers finish within the grace period, closes every
   * socket with 1001, then gives the face's listener the rest of {@linkcode SHUTDOWN_MARGIN_MS}.
   * Later calls return the same promise.
   *
   * @param stopListener Stops the face's listener within the given ms.
   * @returns When done.
   */
  shutdown(stopListener: (timeoutMs: number) => Promise<void>): Promise<void> {
    this.#stopping ??= (async () => {
      this.#idle?.stop();
      await Promise.all([...this.#peers].map((peer) => peer.drain(this.#graceMs)));
      for (const peer of this.#peers) peer.close(1001, "Server shutting down");
      this.#slots.releaseConnecting();
      // One margin for both: the closing handshakes, then the listener (dropping the rest).
      const started = Date.now();
      await this.#slots.whenEmpty(SHUTDOWN_MARGIN_MS);
      await stopListener(Math.max(0, SHUTDOWN_MARGIN_MS - (Date.now() - started)));
      this.#refusals.flush();
    })();
    return this.#stopping;
  }
}
