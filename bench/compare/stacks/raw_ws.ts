/**
 * `raw-ws`, a second floor for the Node stacks: a `ws` server on Node that echoes every text
 * frame verbatim, and a `ws` client sending the request text a JSON-RPC stack would send. It
 * separates what Node and `ws` cost from what each library on top of them costs.
 *
 * Usage (bundled by main.ts): `node .build/raw_ws.mjs server|client`
 *
 * @module
 */

import { close, connect, listen } from "./node_ws.ts";
import { FifoEchoClient } from "./fifo.ts";
import { type EchoClient, type Ready, runRole } from "../role.ts";

await runRole({
  async serve(): Promise<Ready> {
    const { server, url } = await listen();
    server.on("connection", (socket) => {
      socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }));
    });
    return { url };
  },
  async connect({ url }: Ready): Promise<EchoClient> {
    const socket = await connect(url);
    const client = new FifoEchoClient((text) => socket.send(text), () => close(socket));
    socket.on("message", (data) => client.receive(String(data)));
    socket.on("close", () => client.fail(new Error("socket closed")));
    return client;
  },
});
