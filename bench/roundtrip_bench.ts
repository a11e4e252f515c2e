/**
 * Round-trip latency: Mist's `Client` → `serveLocal` against the floor, a raw WebSocket echo of
 * the same request text on the same machine. Each group has the raw case as its baseline, so
 * `deno bench` prints the ratio from one run. Loopback only; Deno.bench bounds every loop.
 *
 * Run: `./deno bench -A bench/roundtrip_bench.ts`
 *
 * @module
 */

import { Client, HandlerRegistry, serveLocal, SharedSecret } from "../mod.ts";
import { consoleLogger } from "../log.ts";
import { PAYLOADS } from "./_payloads.ts";
import { NoDelayWebSocket } from "../_socket/no_delay.ts";
import type { WebSocketLike } from "../transport.ts";

const IN_FLIGHT = 64;

// The floor: echoes every text frame verbatim, so the client pays only for the socket.
const raw = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
  const { socket, response } = Deno.upgradeWebSocket(request);
  socket.onmessage = (event) => socket.send(event.data);
  return response;
});

/** A raw echo client: `roundTrip(text)` sends the text and resolves with its echo. */
async function rawClient(socket: WebSocketLike): Promise<{
  socket: WebSocketLike;
  roundTrip: (text: string) => Promise<void>;
}> {
  await new Promise((resolve) => socket.addEventListener("open", resolve));
  const waiters: (() => void)[] = [];
  socket.addEventListener("message", () => waiters.shift()?.());
  const roundTrip = (text: string): Promise<void> =>
    new Promise((resolve) => {
      waiters.push(resolve);
      socket.send(text);
    });
  return { socket, roundTrip };
}

const rawUrl = `ws://127.0.0.1:${raw.addr.port}/`;
// Deno's native client, the floor the brief names; and the no-delay socket Mist's client uses,
// because the native one (Nagle on) stalls ~44 ms on every message of ~1.1 KiB to 64 KiB.
const native = await rawClient(new WebSocket(rawUrl));
const noDelay = await rawClient(new NoDelayWebSocket(rawUrl));
const stalls = (text: string): boolean => text.length > 1024 && text.length < 65_536;

const secret = SharedSecret.generate();
const registry = new HandlerRegistry()
  .register("echo", (params) => params)
  .register("note", () => null);
const server = serveLocal({ secret, registry, logger: consoleLogger("error") });
const client = new Client(server.url, { secret, heartbeat: false });
await client.opened();

for (const [size, params] of PAYLOADS) {
  const text = JSON.stringify({ id: 1, method: "echo", params });
  const group = `round trip, ${size} params`;
  Deno.bench(`raw WebSocket echo, ${size}`, {
    group,
    baseline: true,
    ...(stalls(text) ? { n: 20, warmup: 2 } : {}), // bounded: ~44 ms a round trip
  }, async () => {
    await native.roundTrip(text);
  });
  Deno.bench(`raw echo on the no-delay socket, ${size}`, { group }, async () => {
    await noDelay.roundTrip(text);
  });
  Deno.bench(`Mist call, ${size}`, { group }, async () => {
    await client.call("echo", params);
  });
}

const smallText = JSON.stringify({ id: 1, method: "echo", params: ["hello", 42] });
Deno.bench(`raw WebSocket echo, ${IN_FLIGHT} in flight`, {
  group: "pipelined",
  baseline: true,
}, async () => {
  await Promise.all(Array.from({ length: IN_FLIGHT }, () => native.roundTrip(smallText)));
});
Deno.bench(`raw echo on the no-delay socket, ${IN_FLIGHT} in flight`, {
  group: "pipelined",
}, async () => {
  await Promise.all(Array.from({ length: IN_FLIGHT }, () => noDelay.roundTrip(smallText)));
});
Deno.bench(`Mist call, ${IN_FLIGHT} in flight`, { group: "pipelined" }, async () => {
  await Promise.all(Array.from({ length: IN_FLIGHT }, () => client.call("echo", ["hello", 42])));
});

Deno.bench("Mist call alone", { group: "notification then call", baseline: true }, async () => {
  await client.call("echo", ["hello", 42]);
});
Deno.bench("Mist notification then call", { group: "notification then call" }, async () => {
  client.notify("note", ["hello"]);
  await client.call("echo", ["hello", 42]);
});

// Deno.bench has no after-all hook; close everything when the bench process unloads.
globalThis.addEventListener("unload", () => {
  client.close();
  server.shutdown();
  native.socket.close();
  noDelay.socket.close();
  raw.shutdown();
});
