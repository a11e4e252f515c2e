/**
 * `birpc`: birpc over `ws` on both ends, in Node, with JSON as its serializer (birpc leaves the
 * wire format to the transport; JSON is what its README's WebSocket example uses).
 * `echo(...args)` returns its arguments.
 *
 * Usage (bundled by main.ts): `node .build/birpc.mjs server|client`
 *
 * @module
 */

import { type ChannelOptions, createBirpc } from "birpc";
import type { WebSocket } from "ws";
import { close, connect, listen } from "./node_ws.ts";
import { type EchoClient, type Ready, runRole } from "../role.ts";

/** The server's functions. */
interface ServerFunctions {
  echo(...args: unknown[]): unknown[];
}

/** The client offers the server nothing. */
type ClientFunctions = Record<string, never>;

/** birpc's channel over a `ws` socket: JSON text frames. */
function channel(socket: WebSocket): ChannelOptions {
  return {
    post: (data: string) => socket.send(data),
    on: (deliver: (data: string) => void) => socket.on("message", (data) => deliver(String(data))),
    serialize: (value: unknown) => JSON.stringify(value),
    deserialize: (text: string): unknown => JSON.parse(text),
  };
}

await runRole({
  async serve(): Promise<Ready> {
    const { server, url } = await listen();
    server.on("connection", (socket) => {
      createBirpc<ClientFunctions, ServerFunctions>({ echo: (...args) => args }, channel(socket));
    });
    return { url };
  },
  async connect({ url }: Ready): Promise<EchoClient> {
    const socket = await connect(url);
    const rpc = createBirpc<ServerFunctions, ClientFunctions>({}, channel(socket));
    return { echo: (params) => rpc.echo(...params), close: () => close(socket) };
  },
});
