/**
 * `raw-deno`, the floor: a `Deno.serve` server that echoes every text frame verbatim, and Deno's
 * native WebSocket client sending the request text a JSON-RPC stack would send.
 *
 * Usage: `deno run --allow-net=127.0.0.1 --allow-env raw_deno.ts server|client`
 *
 * @module
 */

import { closeWebSocket, openWebSocket, serveWebSockets } from "./deno_ws.ts";
import { FifoEchoClient } from "./fifo.ts";
import { type EchoClient, type Ready, runRole } from "../role.ts";

await runRole({
  async serve(): Promise<Ready> {
    const url = await serveWebSockets((socket) => {
      socket.addEventListener("message", (event) => socket.send(event.data));
    });
    return { url };
  },
  async connect({ url }: Ready): Promise<EchoClient> {
    const socket = await openWebSocket(url);
    const client = new FifoEchoClient((text) => socket.send(text), () => closeWebSocket(socket));
    socket.addEventListener("message", (event) => client.receive(String(event.data)));
    socket.addEventListener("close", () => client.fail(new Error("socket closed")));
    return client;
  },
});
