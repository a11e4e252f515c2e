/**
 * The accepting side on Deno: `Deno.serve` on loopback, every check before the upgrade, one
 * {@linkcode Peer} per socket, graceful shutdown. Deno-only; the Node face is `server_node.ts`,
 * and both share `_serve_core.ts`.
 *
 * @example Serve `echo` until SIGINT
 * ```ts ignore
 * import { HandlerRegistry, serveLocal, SharedSecret } from "./mod.ts";
 * const secret = SharedSecret.generate();
 * const server = serveLocal({ secret, registry: new HandlerRegistry().register("echo", (p) => p) });
 * Deno.addSignalListener("SIGINT", () => server.shutdown());
 * await server.closed;
 * ```
 *
 * @module
 */

import { Listener } from "./_server_guard.ts";
import { type LocalServer, ServeCore, type ServeLocalOptions } from "./_serve_core.ts";
import type { Contract } from "./contract.ts";

export {
  DEFAULT_HOSTNAME,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_SHUTDOWN_GRACE_MS,
  DEFAULT_UPGRADE_TIMEOUT_MS,
  type LocalServer,
  type ServeLocalOptions,
  SHUTDOWN_MARGIN_MS,
} from "./_serve_core.ts";

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
 * @typeParam Local The contract the server serves (its registry's).
 * @typeParam Remote The contract of its clients, for `onConnection`'s peer.
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
export function serveLocal<Local = Contract, Remote = Contract>(
  options: ServeLocalOptions<Local, Remote> = {},
): LocalServer {
  // Typed only at the surface: the core dispatches by name.
  const core = new ServeCore(options as unknown as ServeLocalOptions);

  const handler = async (
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Promise<Response> => {
    const from = addressOf(info.remoteAddr); // read now: the request is gone once upgraded
    const decision = await core.decide(request, from);
    if (!decision.ok) return refuse(decision.status, decision.reason);
    let upgrade: Deno.WebSocketUpgrade;
    try {
      upgrade = Deno.upgradeWebSocket(request, {
        protocol: decision.protocol,
        // Deno's ping frames for a seed client (its timer is re-armed on every message, so a
        // client that said hello is left to the core's one timer instead).
        idleTimeout: Math.ceil(decision.pingTimeoutMs / 1000),
      });
    } catch {
      // No Sec-WebSocket-Key, or a protocol list Deno splits otherwise: the client's doing.
      core.refused(from, 400, "Bad upgrade request");
      return refuse(400, "Bad upgrade request");
    }
    core.connection(upgrade.socket, decision.plan, from);
    return upgrade.response;
  };

  const listener = new Listener({
    hostname: core.hostname,
    port: core.port,
    handler,
    clock: core.clock,
    logger: core.logger,
    onListenError: options.onListenError,
  });

  return core.serving(listener);
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
