/**
 * `raw-deno-strict`, the strict floor: the same `Deno.serve` server as `raw-deno` (echoes every
 * frame verbatim) and the same client socket (Deno's native `WebSocket`), but with no JSON on
 * either side: the client sends pre-built request text and matches echoes by counting
 * ({@linkcode StrictEchoClient}). The difference from `raw-deno` is what JSON costs its client.
 *
 * Usage: `deno run --allow-net=127.0.0.1 --allow-env raw_deno_strict.ts server|client`
 *
 * @module
 */

import { closeWebSocket, openWebSocket, serveWebSockets } from "./deno_ws.ts";
import { StrictEchoClient } from "./strict.ts";
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
    const client = new StrictEchoClient((text) => socket.send(text), () => closeWebSocket(socket));
    socket.addEventListener("message", (event) => client.receive(String(event.data)));
    socket.addEventListener("close", () => client.fail(new Error("socket closed")));
    return client;
  },
});
