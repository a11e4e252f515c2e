/**
 * Round trips over loopback with Deno's native `WebSocket` client and with `NoDelayWebSocket`.
 *
 * "notification then call": a frame that gets no reply followed by one that is echoed. With
 * Nagle's algorithm on (the native client) the second frame waits for the server's delayed ACK
 * of the first, ~40 ms on Linux. "1 MiB echo": the cost of JavaScript framing and masking
 * against the native client's Rust framing, for a 1 MiB text message each way.
 *
 * One echo server and one socket of each kind are opened at module load and closed on unload.
 * Run with `./deno bench -A bench/nagle_bench.ts`.
 *
 * @module
 */
import { NoDelayWebSocket } from "../_socket/no_delay.ts";
import type { WebSocketLike } from "../transport.ts";

const server = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen() {} },
  (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => { // text starting with "n" is a notification: no reply
      if (typeof event.data !== "string" || !event.data.startsWith("n")) {
        socket.send(event.data);
      }
    };
    return response;
  },
);
const url = `ws://127.0.0.1:${server.addr.port}/`;

/** An open socket whose `call` sends frames and resolves with the next message. */
async function connect(
  socket: WebSocketLike,
): Promise<{ socket: WebSocketLike; call: (...frames: string[]) => Promise<unknown> }> {
  socket.binaryType = "arraybuffer";
  let pending: ((data: unknown) => void) | undefined;
  socket.addEventListener("message", (event) => {
    const resolve = pending;
    pending = undefined;
    resolve?.(event.data);
  });
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener("open", () => resolve());
    socket.addEventListener("error", () => reject(new Error(`cannot open ${url}`)));
  });
  const call = (...frames: string[]): Promise<unknown> => {
    const reply = new Promise<unknown>((resolve) => pending = resolve);
    for (const frame of frames) socket.send(frame);
    return reply;
  };
  return { socket, call };
}

const native = await connect(new WebSocket(url));
const noDelay = await connect(new NoDelayWebSocket(url));
globalThis.addEventListener("unload", () => {
  native.socket.close();
  noDelay.socket.close();
  void server.shutdown();
});

// The server tells them apart by the first character, like a JSON-RPC "id" would.
const NOTIFICATION = 'n{"jsonrpc":"2.0","method":"log","params":["hi"]}';
const CALL = 'r{"jsonrpc":"2.0","id":1,"method":"echo","params":["hi"]}';
const MIB = "x".repeat(1024 * 1024);

Deno.bench({
  name: "native WebSocket: call alone",
  group: "notification then call",
  baseline: true,
  async fn(): Promise<void> {
    await native.call(CALL);
  },
});

Deno.bench({
  name: "native WebSocket: notification then call",
  group: "notification then call",
  n: 20, // ~40 ms each
  warmup: 2,
  async fn(): Promise<void> {
    await native.call(NOTIFICATION, CALL);
  },
});

Deno.bench({
  name: "NoDelayWebSocket: call alone",
  group: "notification then call",
  async fn(): Promise<void> {
    await noDelay.call(CALL);
  },
});

Deno.bench({
  name: "NoDelayWebSocket: notification then call",
  group: "notification then call",
  async fn(): Promise<void> {
    await noDelay.call(NOTIFICATION, CALL);
  },
});

// A single message needs no notification to stall: the native client writes a frame of
// ~1.1 KiB to 64 KiB in two pieces, and the second waits for the ACK of the first.
const TWO_KIB = "x".repeat(2048);

Deno.bench({
  name: "native WebSocket: 2 KiB text echo",
  group: "one 2 KiB message",
  baseline: true,
  n: 20, // ~40 ms each
  warmup: 2,
  async fn(): Promise<void> {
    await native.call(TWO_KIB);
  },
});

Deno.bench({
  name: "NoDelayWebSocket: 2 KiB text echo",
  group: "one 2 KiB message",
  async fn(): Promise<void> {
    await noDelay.call(TWO_KIB);
  },
});

Deno.bench({
  name: "native WebSocket: 1 MiB text echo",
  group: "1 MiB echo",
  baseline: true,
  n: 200,
  warmup: 20,
  async fn(): Promise<void> {
    await native.call(MIB);
  },
});

Deno.bench({
  name: "NoDelayWebSocket: 1 MiB text echo",
  group: "1 MiB echo",
  n: 200,
  warmup: 20,
  async fn(): Promise<void> {
    await noDelay.call(MIB);
  },
});
