/**
 * `vscode-jsonrpc`: a vscode-jsonrpc `MessageConnection` over vscode-ws-jsonrpc's WebSocket
 * reader and writer on both ends, in Node, on `ws` sockets (the `IWebSocket` adapter is the one
 * monaco-languageclient's Node examples use). JSON-RPC 2.0; `sendRequest("echo", ...params)`
 * sends positional params and the handler returns them.
 *
 * Usage (bundled by main.ts): `node .build/vscode_jsonrpc.mjs server|client`
 *
 * @module
 */

import { ConsoleLogger, createWebSocketConnection, type IWebSocket } from "vscode-ws-jsonrpc";
import type { WebSocket } from "ws";
import { close, connect, listen } from "./node_ws.ts";
import { type EchoClient, type Ready, runRole } from "../role.ts";

function toIWebSocket(socket: WebSocket): IWebSocket {
  return {
    send: (content) => socket.send(content),
    onMessage: (deliver) => socket.on("message", (data) => deliver(String(data))),
    onError: (deliver) => socket.on("error", deliver),
    onClose: (deliver) => socket.on("close", deliver),
    dispose: () => socket.close(),
  };
}

await runRole({
  async serve(): Promise<Ready> {
    const { server, url } = await listen();
    server.on("connection", (socket) => {
      const connection = createWebSocketConnection(toIWebSocket(socket), new ConsoleLogger());
      // Positional params arrive spread, followed by a cancellation token, which is dropped.
      connection.onRequest("echo", (...args: unknown[]) => args.slice(0, -1));
      connection.listen();
    });
    return { url };
  },
  async connect({ url }: Ready): Promise<EchoClient> {
    const socket = await connect(url);
    const connection = createWebSocketConnection(toIWebSocket(socket), new ConsoleLogger());
    connection.listen();
    return {
      echo: (params) => connection.sendRequest("echo", ...params),
      close: async () => {
        connection.dispose();
        await close(socket);
      },
    };
  },
});
