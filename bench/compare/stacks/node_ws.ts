/**
 * WebSocket plumbing for the stacks that run in Node, on the `ws` package (Node 20's global
 * WebSocket is still behind a flag, and `ws` is what these stacks are used with).
 *
 * @module
 */

import { WebSocket, WebSocketServer } from "ws";

/** A `ws` server listening on 127.0.0.1 with an OS-chosen port, and its URL. */
export interface Listening {
  /** The server; attach a `connection` listener. */
  readonly server: WebSocketServer;
  /** `ws://127.0.0.1:PORT/`. */
  readonly url: string;
}

/** The URL of a listening `ws` server (or of the HTTP server behind it). */
export function urlOf(address: unknown): string {
  if (typeof address !== "object" || address === null || !("port" in address)) {
    throw new Error("server has no TCP address");
  }
  return `ws://127.0.0.1:${address.port}/`;
}

/** Starts a `ws` server; resolves once it is listening. */
export function listen(): Promise<Listening> {
  return new Promise((resolve, reject) => {
    const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    server.once("error", reject);
    server.once("listening", () => resolve({ server, url: urlOf(server.address()) }));
  });
}

/** Opens a `ws` client socket; resolves once it is open. */
export function connect(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    socket.once("open", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Closes a `ws` socket; resolves once it is closed. */
export function close(socket: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.readyState === WebSocket.CLOSED) return resolve();
    socket.once("close", () => resolve());
    socket.close(1000, "done");
  });
}
