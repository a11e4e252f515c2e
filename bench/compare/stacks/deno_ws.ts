/**
 * WebSocket plumbing for the stacks whose server and client run in Deno: `Deno.serve` with
 * `Deno.upgradeWebSocket`, and Deno's native `WebSocket` client.
 *
 * @module
 */

/**
 * Serves WebSocket upgrades on 127.0.0.1 with an OS-chosen port, handing each open socket to
 * `onOpen`; resolves to the `ws://` URL once listening.
 */
export function serveWebSockets(onOpen: (socket: WebSocket) => void): Promise<string> {
  return new Promise((resolve) => {
    Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: ({ port }) => resolve(`ws://127.0.0.1:${port}/`),
    }, (request) => {
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return new Response("WebSocket only", { status: 426 });
      }
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.addEventListener("open", () => onOpen(socket));
      return response;
    });
  });
}

/** Opens a native WebSocket; resolves once it is open. */
export function openWebSocket(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    socket.addEventListener("open", () => resolve(socket), { once: true });
    socket.addEventListener("error", () => reject(new Error(`cannot connect to ${url}`)), {
      once: true,
    });
  });
}

/** Closes a native WebSocket; resolves once the closing handshake is done. */
export function closeWebSocket(socket: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.readyState === WebSocket.CLOSED) return resolve();
    socket.addEventListener("close", () => resolve(), { once: true });
    socket.close(1000, "done");
  });
}
