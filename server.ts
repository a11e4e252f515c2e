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
import { authorize, type AuthPolicy, DEFAULT_ALLOWED_ORIGINS, isLoopbackHost } from "./auth.ts";
import { type Clock, realClock } from "./clock.ts";
import { IdleWatch } from "./idle_watch.ts";
import { Peer, type PeerOptions, resolvePeerOptions } from "./peer.ts";
import type { SharedSecret } from "./secret.ts";
import { WebSocketTransport } from "./transport.ts";

/** Default {@linkcode ServeLocalOptions.hostname}. */
export const DEFAULT_HOSTNAME = "127.0.0.1";
/** Default {@linkcode ServeLocalOptions.idleTimeoutMs}: as Deno's own WebSocket idle timeout. */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
/** Default {@linkcode ServeLocalOptions.shutdownGraceMs}. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 5000;
/** Default {@linkcode ServeLocalOptions.maxConnections}. */
export const DEFAULT_MAX_CONNECTIONS = 1024;

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
  /** Connections at once; more are refused with HTTP 503. @default {1024} */
  maxConnections?: number;
  /** Where the idle check's timer comes from. @default the global timers */
  clock?: Clock;
  /** Called with each new connection's peer, e.g. to call the client. */
  onConnection?: (peer: Peer) => void;
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
  /** Open connections now. */
  readonly connections: number;
  /**
   * Stops accepting, lets running handlers finish within the grace period (new requests are
   * answered "shutting down"), sends their replies, closes every socket with 1001.
   */
  shutdown(): Promise<void>;
  /** Resolves when the server has shut down. */
  readonly finished: Promise<void>;
}

/**
 * Serves Mist on a loopback address.
 *
 * Before upgrading it answers 426 to a non-WebSocket request, 403 to a non-loopback `Host`
 * (DNS rebinding) or a foreign `Origin`, 401 to a missing or wrong secret and 503 beyond
 * `maxConnections`.
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
  const peerOptions = resolvePeerOptions(options);
  const logger = peerOptions.logger;
  const policy: AuthPolicy = {
    secret: options.secret ?? null,
    allowedOrigins: options.allowedOrigins ?? DEFAULT_ALLOWED_ORIGINS,
    allowQuerySecret: options.allowQuerySecret ?? false,
    allowedHosts: isLoopbackHost(hostname) ? [] : [hostname],
  };

  const sockets = new Set<WebSocket>();
  const peers = new Set<Peer>();
  const idle = idleMs > 0 ? new IdleWatch(idleMs, options.clock ?? realClock) : undefined;
  let nextConnection = 1;
  let stopping: Promise<void> | undefined;

  const http = Deno.serve({ hostname, port, onListen() {} }, (request, info) => {
    if (stopping) return refuse(503, "Server shutting down");
    const verdict = authorize(request, policy);
    if (!verdict.ok) {
      logger.info(`Refused ${addressOf(info.remoteAddr)}: ${verdict.status} ${verdict.reason}`);
      return refuse(verdict.status, verdict.reason);
    }
    if (sockets.size >= maxConnections) return refuse(503, "Too many connections");
    const from = addressOf(info.remoteAddr); // read now: the request is gone once upgraded
    const { socket, response } = Deno.upgradeWebSocket(request, {
      protocol: verdict.protocol,
      idleTimeout: 0, // IdleWatch instead: Deno's re-arms a timer on every message
    });
    const id = nextConnection++;
    sockets.add(socket);
    socket.addEventListener("open", () => {
      const peer = new Peer(new WebSocketTransport(socket), peerOptions);
      peers.add(peer);
      if (!stopping) idle?.watch(peer);
      logger.info(`Connection ${id} opened from ${from}`);
      peer.closed.then(({ code }) => {
        peers.delete(peer);
        idle?.forget(peer);
        logger.info(`Connection ${id} closed (${code})`);
      });
      options.onConnection?.(peer);
    });
    socket.addEventListener("close", () => sockets.delete(socket));
    return response;
  });

  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      idle?.stop();
      await Promise.all([...peers].map((peer) => peer.drain(graceMs)));
      for (const peer of peers) peer.close(1001, "Server shutting down");
      for (const socket of sockets) if (socket.readyState === WebSocket.CONNECTING) socket.close();
      await http.shutdown();
    })();
    return stopping;
  };
  options.signal?.addEventListener("abort", () => void shutdown(), { once: true });

  const { port: boundPort } = http.addr as Deno.NetAddr;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return {
    url: `ws://${host}:${boundPort}/`,
    hostname,
    port: boundPort,
    get connections() {
      return sockets.size;
    },
    shutdown,
    finished: http.finished,
    [Symbol.asyncDispose]: shutdown,
  };
}

function refuse(status: number, reason: string): Response {
  return new Response(`${reason}\n`, { status, headers: { "content-type": "text/plain" } });
}

function addressOf(addr: Deno.Addr): string {
  return addr.transport === "tcp" || addr.transport === "udp"
    ? `${addr.hostname}:${addr.port}`
    : addr.transport;
}
