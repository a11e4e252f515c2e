/**
 * The two Deno floors' roles: a `Deno.serve` server that echoes every frame verbatim, and Deno's
 * native WebSocket client driving one of the floors' clients (`raw-deno`: `FifoEchoClient`,
 * `raw-deno-strict`: `StrictEchoClient`).
 *
 * @module
 */

import { closeWebSocket, openWebSocket, serveWebSockets } from "./deno_ws.ts";
import { type EchoClient, type Ready, runRole } from "../role.ts";

/** A floor client over a socket: `send` and `close` given, frames fed to `receive`. */
interface FloorClient extends EchoClient {
  receive(text: string): void;
  fail(error: Error): void;
}

/**
 * Runs the server or the client role (from the command line).
 *
 * @param makeClient Builds the client around the socket's `send` and `close`.
 */
export async function runRawDeno(
  makeClient: (send: (text: string) => void, close: () => Promise<void>) => FloorClient,
): Promise<void> {
  await runRole({
    async serve(): Promise<Ready> {
      const url = await serveWebSockets((socket) => {
        socket.addEventListener("message", (event) => socket.send(event.data));
      });
      return { url };
    },
    async connect({ url }: Ready): Promise<EchoClient> {
      const socket = await openWebSocket(url);
      const client = makeClient((text) => socket.send(text), () => closeWebSocket(socket));
      socket.addEventListener("message", (event) => client.receive(String(event.data)));
      socket.addEventListener("close", () => client.fail(new Error("socket closed")));
      return client;
    },
  });
}
