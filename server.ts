/**
 * The accepting side: `Deno.serve` on loopback, every check before the upgrade, one
 * {@linkcode Peer} per socket, graceful shutdown. Deno-only.
 *
 * @example Serve `echo` until SIGINT
 * ```ts ignore
 * import { HandlerRegistry, serveLocal, SharedSecret } from "./mod.ts";
 * const secret = SharedSecret.generate();
 * const server = serveLocal({ secret, registry: new HandlerRegistry().register("echo", (p) => p) });
 * Deno.addSignalListener("SIGINT", () => server.shutdown());
 * await server.finished;
 * ```
 *
 * @module
 */

import { checkInt } from "./_options.ts";
import { ConnectionSlots, Listener, refusalLog } from "./_server_guard.ts";
import { authorize, type AuthPolicy, DEFAULT_ALLOWED_ORIGINS, isLoopbackHost } from "./auth.ts";
import { type Clock, realClock } from "./clock.ts";
import { IdleWatch } from "./idle_watch.ts";
import { type Peer, type PeerOptions, resolvePeerOptions } from "./peer.ts";
import type { SharedSecret } from "./secret.ts";
import { accept } from "./_accept.ts";
import { serverProof } from "./_proof.ts";

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

/** Options of {@linkcode serveLocal}; the peer options apply to every connection. */
export interface ServeLocalOptions extends PeerOptions {
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
   * Where the timers of the idle check, the upgrade deadline, the refusal log and the
   * re-listen backoff come from. @default the global timers
   */
  clock?: Clock;
  /**
   * Called with each new connection's peer, e.g. to call the client. A client that announced
   * `$/hello` at the upgrade (Mist's do) is reported once its hello arrived, so it can be
   * called at once; a seed client when its socket opens (`peer.call` toward it rejects with
   * `NotNegotiatedError`: it does not answer requests).
   */
  onConnection?: (peer: Peer) => void;
  /**
   * Called once each time the accept loop fails (e.g. "Too many open files" at the file
   * descriptor limit). The server does not stop: open connections stay open, and it listens
   * again on the same port after 100 ms, doubling to at most 5 s, until it can. The failure is
   * also logged once at error level, and the recovery at info level.
   */
  onListenError?: (error: Error) => void;
  /** Aborting it shuts the server down. */
  signal?: AbortSignal;
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
  readonly finished: Promise<void>;
}

/**
 * Serves Mist on a loopback address.
 *
 * Before upgrading it answers 426 to a non-WebSocket request, 403 to a non-loopback `Host`
 * (DNS rebinding) or a foreign `Origin`, 401 to a missing or wrong secret, 400 to an upgrade
 * request Deno cannot upgrade and 503 beyond `maxConnections`, each with `Connection: close`.
 * Refusals are logged at info level, the first 10 of every 10 s one by one and the rest in one
 * summary line; every line the server and its peers log goes through
 * {@linkcode safeLogger} (one line, bounded, control characters escaped).
 *
 * @param options See {@linkcode ServeLocalOptions}.
 * @returns The running server.
 * @throws {TypeError} No `secret` and no `insecureNoSecret`.
 * @throws {RangeError} A non-loopback `hostname` without `allowNonLoopback`, or an option out of range.
 * @throws {Deno.errors.AddrInUse} The port is taken.
 *
 * @example Echo server and client in one process
 * ```ts
 * import assert from "node:assert/strict";
 * import { Client, HandlerRegistry, serveLocal, SharedSecret } from "./mod.ts";
 *
 * const secret = SharedSecret.generate();
 * const registry = new HandlerRegistry().register("echo", (params) => params);
 * const server = serveLocal({ secret, registry });
 * const client = new Client(server.url, { secret, heartbeat: false });
 * assert.deepEqual(await client.call("echo", ["hello", 42]), ["hello", 42]);
 * await client.close();
 * await server.shutdown();
 * ```
 */
export function serveLocal(options: ServeLocalOptions = {}): LocalServer {
  const hostname = options.hostname ?? DEFAULT_HOSTNAME;
  if (!isLoopbackHost(hostname) && !options.allowNonLoopback) {
    throw new RangeError(
      `Cannot listen on "${hostname}": not a loopback address (set allowNonLoopback)`,
    );
  }
  if (!options.secret && !options.insecureNoSecret) {
    throw new TypeError("Cannot serve: no secret (pass one, or set insecureNoSecret explicitly)");
  }
  const port = checkInt("port", options.port, 0, 0, 65535);
  const idleMs = checkInt("idleTimeoutMs", options.idleTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS, 0);
  const graceMs = checkInt(
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
  const clock = options.clock ?? realClock;
  const peerOptions = resolvePeerOptions(options); // its logger is safeLogger-wrapped
  const logger = peerOptions.logger;
  const policy: AuthPolicy = {
    secret: options.secret ?? null,
    allowedOrigins: options.allowedOrigins ?? DEFAULT_ALLOWED_ORIGINS,
    allowQuerySecret: options.allowQuerySecret ?? false,
    allowedHosts: isLoopbackHost(hostname) ? [] : [hostname],
  };

  const slots = new ConnectionSlots(maxConnections, upgradeTimeoutMs, clock);
  const peers = new Set<Peer>();
  const idle = idleMs > 0 ? new IdleWatch(idleMs, clock) : undefined;
  const refusals = refusalLog(logger, clock);
  const refused = (from: string, status: number, reason: string): Response => {
    refusals.log(String(status), `Refused ${from}: ${status} ${reason}`);
    return refuse(status, reason);
  };
  let nextConnection = 1;
  let stopping: Promise<void> | undefined;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => finish = resolve);

  const handler = async (
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Promise<Response> => {
    if (stopping) return refuse(503, "Server shutting down");
    const from = addressOf(info.remoteAddr); // read now: the request is gone once upgraded
    const verdict = authorize(request, policy);
    if (!verdict.ok) return refused(from, verdict.status, verdict.reason);
    const proof = verdict.proof === undefined
      ? undefined
      : await serverProof(options.secret!, verdict.proof);
    if (verdict.proof !== undefined && proof === undefined) {
      // Said apart from 401 in the log only; the client learns no more than "wrong secret".
      refusals.log("401", `Refused ${from}: 401 Wrong proof`);
      return refuse(401, "Missing or wrong secret");
    }
    if (stopping) return refuse(503, "Server shutting down");
    if (slots.full) return refused(from, 503, "Too many connections");
    const announced = verdict.announced;
    let upgrade: Deno.WebSocketUpgrade;
    try {
      upgrade = Deno.upgradeWebSocket(request, {
        protocol: verdict.protocol,
        // A client that says $/hello is watched with $/ping by IdleWatch (one timer for all;
        // Deno's re-arms a timer on every message). A seed client may not answer requests, so
        // Deno's ping frames watch it: a browser's network stack answers those.
        idleTimeout: announced ? 0 : Math.ceil(idleMs / 1000),
      });
    } catch {
      // No Sec-WebSocket-Key, or a protocol list Deno splits otherwise: the client's doing.
      return refused(from, 400, "Bad upgrade request");
    }
    const { socket, response } = upgrade;
    const id = nextConnection++;
    slots.admit(socket, () => {
      const peer = accept(socket, { proof, announced }, peerOptions, (peer) => {
        // The hello was a frame: count silence from here, so the first look may ping.
        if (!stopping && announced && !peer.closeInfo) idle?.watch(peer);
        options.onConnection?.(peer);
      });
      peers.add(peer);
      if (!stopping && announced) idle?.watch(peer);
      logger.info(`Connection ${id} opened from ${from}`);
      peer.closed.then(({ code }) => {
        peers.delete(peer);
        idle?.forget(peer);
        logger.info(`Connection ${id} closed (${code})`);
      });
    });
    return response;
  };

  const listener = new Listener({
    hostname,
    port,
    handler,
    clock,
    logger,
    onListenError: options.onListenError,
  });

  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      idle?.stop();
      await Promise.all([...peers].map((peer) => peer.drain(graceMs)));
      for (const peer of peers) peer.close(1001, "Server shutting down");
      slots.releaseConnecting();
      // One margin for both: the closing handshakes, then Deno's server (dropping the rest).
      const started = Date.now();
      await slots.whenEmpty(SHUTDOWN_MARGIN_MS);
      await listener.stop(Math.max(0, SHUTDOWN_MARGIN_MS - (Date.now() - started)));
      refusals.flush();
      finish();
    })();
    return stopping;
  };
  options.signal?.addEventListener("abort", () => void shutdown(), { once: true });

  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return {
    url: `ws://${host}:${listener.port}/`,
    hostname,
    port: listener.port,
    get connections() {
      return slots.size;
    },
    shutdown,
    finished,
    [Symbol.asyncDispose]: shutdown,
  };
}

/** A refusal, with `Connection: close`: a refused client cannot keep the connection idle. */
function refuse(status: number, reason: string): Response {
  return new Response(`${reason}\n`, {
    status,
    headers: { "content-type": "text/plain", connection: "close" },
  });
}

function addressOf(addr: Deno.Addr): string {
  return addr.transport === "tcp" || addr.transport === "udp"
    ? `${addr.hostname}:${addr.port}`
    : addr.transport;
}
