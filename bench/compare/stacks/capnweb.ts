/**
 * `capnweb`: Cap'n Web's WebSocket RPC session on both ends, in Node on `ws`, as its README
 * shows for Node (`newWebSocketRpcSession(ws, api)` on a `ws` server); the client passes a `ws`
 * socket to `newWebSocketRpcSession` (Node 20 has no global WebSocket without a flag).
 *
 * Usage (bundled by main.ts): `node .build/capnweb.mjs server|client`
 *
 * @module
 */

import { newWebSocketRpcSession } from "capnweb";
import { WebSocket } from "ws";
import { EchoApi } from "./capnweb_api.ts";
import { close, listen } from "./node_ws.ts";
import { type EchoClient, type Ready, runRole } from "../role.ts";

// capnweb reads `WebSocket.CONNECTING` from the global, which Node 20 has only behind
// --experimental-websocket; `ws`'s class carries the same constants.
const global = globalThis as { WebSocket?: unknown };
global.WebSocket ??= WebSocket;

/** capnweb types its socket as the WHATWG WebSocket; `ws` implements the part it uses. */
function standard(socket: WebSocket): globalThis.WebSocket {
  return socket as unknown as globalThis.WebSocket;
}

await runRole({
  async serve(): Promise<Ready> {
    const { server, url } = await listen();
    server.on("connection", (socket) => {
      newWebSocketRpcSession(standard(socket), new EchoApi());
    });
    return { url };
  },
  async connect({ url }: Ready): Promise<EchoClient> {
    const socket = new WebSocket(url);
    const api = newWebSocketRpcSession<EchoApi>(standard(socket));
    // The session queues calls until the socket opens; one call proves it is up before timing.
    await api.echo();
    return {
      echo: (params) => api.echo(...params),
      close: () => {
        api[Symbol.dispose]();
        return close(socket);
      },
    };
  },
});
