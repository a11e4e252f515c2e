/**
 * `rpc-websockets`: its `Server` and `Client` (both on `ws`), in Node, JSON-RPC 2.0 with
 * positional params; the `echo` method returns its params.
 *
 * Usage (bundled by main.ts): `node .build/rpc_websockets.mjs server|client`
 *
 * @module
 */

import { Client, Server } from "rpc-websockets";
import { urlOf } from "./node_ws.ts";
import { type EchoClient, type Ready, runRole } from "../role.ts";

await runRole({
  serve(): Promise<Ready> {
    return new Promise((resolve, reject) => {
      const server = new Server({ host: "127.0.0.1", port: 0 });
      server.register("echo", (params) => params);
      server.once("error", reject);
      server.once("listening", () => resolve({ url: urlOf(server.wss.address()) }));
    });
  },
  connect({ url }: Ready): Promise<EchoClient> {
    return new Promise((resolve, reject) => {
      const client = new Client(url, { autoconnect: true, reconnect: false });
      client.once("error", reject);
      client.once("open", () => {
        resolve({
          echo: (params) => client.call("echo", [...params]),
          close: () =>
            new Promise((closed) => {
              client.once("close", () => closed());
              client.close();
            }),
        });
      });
    });
  },
});
