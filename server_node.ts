/**
 * The accepting side on Node (≥ 20): `node:http` and the `ws` package on loopback, with the
 * same checks, limits, logs and graceful shutdown as the Deno face (`server.ts`); both share
 * `_serve_core.ts`. `tools/build_node.ts` bundles it as `dist/node/server.mjs`, whose one
 * dependency is `ws`.
 *
 * The one API difference: `serveLocal` here returns a promise, since Node listens
 * asynchronously. It rejects where the Deno face throws (bad options, the port taken).
 *
 * @example Serve `echo` until SIGTERM (Node)
 * ```ts ignore
 * import { HandlerRegistry, serveLocal, SharedSecret } from "./dist/node/server.mjs";
 * const secret = SharedSecret.generate();
 * const server = await serveLocal({
 *   secret,
 *   registry: new HandlerRegistry().register("echo", (params) => params),
 * });
 * process.on("SIGTERM", () => server.shutdown());
 * await server.closed;
 * ```
 *
 * @module
 */

import { type IncomingMessage, type ServerResponse, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import { NodeListener } from "./_node_listener.ts";
import { NodeSocket, PingWatch, type WsServer } from "./_node_ws.ts";
import {
  type LocalServer,
  ServeCore,
  type ServeLocalOptions,
  SHUTDOWN_MARGIN_MS,
} from "./_serve_core.ts";
import type { Contract } from "./contract.ts";
import { DEFAULT_MAX_MESSAGE_BYTES } from "./peer.ts";

// The same public surface as mod.ts, with this face's serveLocal: the Node preset.
import "./_socket/preset.ts"; // Node: the client's no-delay socket over node:net
export * from "./_api.ts";

/** A bad upgrade request: one `ws` refuses, or whose URL or headers cannot be read. */
const BAD_UPGRADE = "Bad upgrade request";

/**
 * Serves Mist on a loopback address, on Node.
 *
 * Like the Deno face, it answers before upgrading: 426 to a non-WebSocket request, 403 to a
 * non-loopback `Host` or a foreign `Origin`, 401 to a missing or wrong secret, 400 to an upgrade
 * request `ws` cannot upgrade and 503 beyond `maxConnections`, each with `Connection: close`;
 * refusals are logged at info level, rate-limited. Messages over `maxMessageBytes` close the
 * connection with 1009 (checked by `ws` as frames arrive). Seed clients (no `$/hello`
 * announced) are watched with ping frames: pinged after half of `idleTimeoutMs` of silence,
 * closed with 1001 "No answer to ping" after the other half; Mist clients with `$/ping`, as on
 * Deno. When accepting fails (see `_node_listener.ts` for what Node does at the file
 * descriptor limit) it reports once via `onListenError` and listens again with backoff.
 *
 * @param options See {@linkcode ServeLocalOptions}.
 * @returns The running server, once listening.
 * @throws {TypeError} No `secret` and no `insecureNoSecret` (as a rejection).
 * @throws {RangeError} A non-loopback `hostname` without `allowNonLoopback`, or an option out of
 *   range (as a rejection).
 * @throws {Error} Node's listen error, e.g. `code: "EADDRINUSE"` when the port is taken (as a
 *   rejection).
 *
 * @example Echo server (Node)
 * ```ts ignore
 * const secret = SharedSecret.generate();
 * const registry = new HandlerRegistry().register("echo", (params) => params);
 * await using server = await serveLocal({ secret, registry });
 * console.log(server.url); // ws://127.0.0.1:<port>/
 * ```
 */
export async function serveLocal<Local = Contract, Remote = Contract>(
  options: ServeLocalOptions<Local, Remote> = {},
): Promise<LocalServer> {
  // Typed only at the surface: the core dispatches by name.
  const core = new ServeCore(options as unknown as ServeLocalOptions);
  /** The subprotocol decided for each request `handleUpgrade` is about to complete. */
  const selected = new WeakMap<IncomingMessage, string | undefined>();
  let pings: PingWatch | undefined;

  // Validated by the core already (its peer options).
  const maxPayload = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload,
    perMessageDeflate: false,
    skipUTF8Validation: false,
    clientTracking: false,
    // A close frame not answered within this ends the TCP connection (`ws` defaults to 30 s).
    closeTimeout: SHUTDOWN_MARGIN_MS,
    handleProtocols: (_offered: Set<string>, request: IncomingMessage) =>
      selected.get(request) ?? false,
  }) as WsServer;
  wss.on("wsClientError", (_error, socket, request) => {
    core.refused(addressOf(request), 400, BAD_UPGRADE);
    refuse(socket, 400, BAD_UPGRADE);
  });

  const base = (): string => `http://${core.host}:${listener.port}`;

  const upgrade = async (request: IncomingMessage, socket: Duplex, head: Uint8Array) => {
    const from = addressOf(request); // read now: the socket may be gone after the await
    const whatwg = toRequest(request, base());
    if (!whatwg) {
      core.refused(from, 400, BAD_UPGRADE);
      return refuse(socket, 400, BAD_UPGRADE);
    }
    const decision = await core.decide(whatwg, from);
    if (!decision.ok) return refuse(socket, decision.status, decision.reason);
    if (socket.destroyed) return; // the client left while the proof was checked
    selected.set(request, decision.protocol);
    // Synchronous: `done` runs now, or `ws` refused the request ("wsClientError" above).
    wss.handleUpgrade(request, socket, head, (ws) => {
      const node = new NodeSocket(ws);
      // `ws` closes the connection itself on a frame it refuses (1009 over maxPayload, 1007 for
      // bad UTF-8, 1002 otherwise), before the peer sees it: log it as the peer would.
      ws.on("error", (error) => {
        if ((error as { code?: string }).code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") {
          core.logger.warn(
            `Closing connection: message over ${maxPayload} bytes (maxMessageBytes)`,
          );
        } else core.logger.debug(`Closing connection: ${(error as Error).message}`);
      });
      core.connection(node, decision.plan, from);
      if (decision.pingTimeoutMs > 0 && !core.stopping) {
        pings ??= new PingWatch(decision.pingTimeoutMs, core.clock);
        pings.watch(ws);
      }
      node.opened(); // `ws` never fires "open" on a server-side socket
    });
  };

  const request = async (request: IncomingMessage, response: ServerResponse) => {
    const from = addressOf(request);
    const whatwg = toRequest(request, base());
    let decision = whatwg ? await core.decide(whatwg, from) : core.refused(from, 400, BAD_UPGRADE);
    // Passing every check without being an upgrade: `Upgrade: websocket` without
    // `Connection: upgrade`, which Node does not treat as one (nor does Deno).
    if (decision.ok) decision = core.refused(from, 400, BAD_UPGRADE);
    if (decision.ok) return;
    response.writeHead(decision.status, { "content-type": "text/plain", connection: "close" })
      .end(`${decision.reason}\n`);
  };

  const listener = await NodeListener.listen({
    hostname: core.hostname,
    port: core.port,
    request,
    upgrade,
    clock: core.clock,
    logger: core.logger,
    onListenError: options.onListenError,
  });

  return core.serving(listener, () => pings?.stop());
}

/** The request as the core reads it (URL and headers), or `undefined` when it cannot be. */
function toRequest(request: IncomingMessage, base: string): Request | undefined {
  try {
    const headers = new Headers();
    const raw = request.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i], raw[i + 1]);
    // Always GET: the core reads no method, and `ws` refuses any other with "wsClientError".
    return new Request(new URL(request.url ?? "/", base), { headers });
  } catch {
    return undefined;
  }
}

/**
 * Writes a refusal on the raw socket, with `Connection: close`, and destroys the socket once
 * it is written: a refused client cannot keep the connection.
 */
function refuse(socket: Duplex, status: number, reason: string): void {
  if (socket.destroyed) return;
  const body = new TextEncoder().encode(`${reason}\n`);
  const head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n` +
    `connection: close\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n`;
  socket.once("finish", () => socket.destroy());
  socket.write(head);
  socket.end(body);
}

/** `address:port` of the client, as the Deno face writes it in the log. */
function addressOf(request: IncomingMessage): string {
  const { remoteAddress, remotePort } = request.socket;
  return remoteAddress === undefined ? "unknown" : `${remoteAddress}:${remotePort}`;
}
