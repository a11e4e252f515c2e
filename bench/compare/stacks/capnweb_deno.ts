/**
 * `capnweb-deno`: Cap'n Web's WebSocket RPC session on both ends, in Deno, as its README shows
 * for Deno: `newWebSocketRpcSession(socket, api)` on `Deno.upgradeWebSocket`, and
 * `newWebSocketRpcSession(url)` on Deno's native WebSocket client, which leaves Nagle's
 * algorithm on. Cap'n Web sends a call as two frames ("push", then "pull"), so the second
 * waits for the server's delayed ACK: this row shows that cost, the `capnweb` row (Node, `ws`,
 * no-delay) the library's own.
 *
 * Usage: `deno run --config bench/compare/deno.json --allow-net=127.0.0.1 --allow-env capnweb_deno.ts server|client`
 *
 * @module
 */

import { newWebSocketRpcSession } from "capnweb";
import { EchoApi } from "./capnweb_api.ts";
import { serveWebSockets } from "./deno_ws.ts";
import { type EchoClient, type Ready, runRole } from "../role.ts";

await runRole({
  async serve(): Promise<Ready> {
    const url = await serveWebSockets((socket) => {
      newWebSocketRpcSession(socket, new EchoApi());
    });
    return { url };
  },
  async connect({ url }: Ready): Promise<EchoClient> {
    const api = newWebSocketRpcSession<EchoApi>(url);
    // The session connects lazily and queues calls; one call proves it is up before timing.
    await api.echo();
    return {
      echo: (params) => api.echo(...params),
      close: () => {
        api[Symbol.dispose]();
        return Promise.resolve();
      },
    };
  },
});
