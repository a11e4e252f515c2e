/**
 * Server memory per idle connection: starts the local runner as a subprocess, opens 1,000
 * authenticated WebSocket connections to it over loopback, and reads the runner's resident
 * memory (VmRSS, from /proc; Linux only) before and after. The target is ≤ 64 KiB a connection.
 *
 * Run: `./deno task bench:memory` (or `--connections N`, 1 to 1,000: the runner keeps the default
 * `maxConnections` of 1,024).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { SharedSecret } from "../secret.ts";

const TARGET_KIB = 64;
const { values } = parseArgs({
  args: Deno.args,
  options: { connections: { type: "string", default: "1000" } },
});
const count = Number(values.connections);
if (!Number.isInteger(count) || count < 1 || count > 1000) {
  throw new RangeError(`Cannot use --connections: expected 1 to 1000, got "${values.connections}"`);
}

const secret = SharedSecret.generate();
const runner = new Deno.Command(Deno.execPath(), {
  args: ["run", "--allow-net=127.0.0.1,[::1]", "--allow-env=MIST_SECRET", "tools/serve.ts"],
  cwd: new URL("..", import.meta.url),
  env: { MIST_SECRET: secret.toHex() },
  stdout: "piped",
  stderr: "null",
}).spawn();

/** The runner's resident memory in KiB. */
async function rssKiB(): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${runner.pid}/status`);
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error("Cannot read VmRSS: no such line in /proc/<pid>/status");
  return Number(match[1]);
}

/** Opens one authenticated connection and resolves once it is open (10 s at most). */
function open(url: string): Promise<WebSocket> {
  const socket = new WebSocket(url, { headers: { "X-Land-Secret": secret.toHex() } });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("Connection not open within 10 s")), 10_000);
    socket.onopen = () => (clearTimeout(timer), resolve(socket));
    socket.onerror = () => (clearTimeout(timer), reject(new Error("Connection failed")));
  });
}

/** Settles once every socket has closed. */
function closeAll(sockets: WebSocket[]): Promise<unknown> {
  return Promise.all(sockets.map((socket) =>
    new Promise((resolve) => {
      socket.onclose = resolve;
      socket.close();
    })
  ));
}

const sockets: WebSocket[] = [];
try {
  const reader = runner.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value: ready } = await reader.read();
  reader.releaseLock();
  const { url } = JSON.parse(ready ?? "{}") as { url: string };
  // Warm up: the first connections load code and grow heaps that every later one shares.
  await closeAll(await Promise.all(Array.from({ length: 20 }, () => open(url))));
  const before = await rssKiB();
  for (let batch = 0; batch < count; batch += 100) {
    const size = Math.min(100, count - batch);
    sockets.push(...await Promise.all(Array.from({ length: size }, () => open(url))));
  }
  const after = await rssKiB();
  const perConnection = (after - before) / count;
  console.log(
    `Runner RSS: ${before} KiB before, ${after} KiB with ${count} idle connections: ` +
      `${perConnection.toFixed(1)} KiB a connection (target ≤ ${TARGET_KIB} KiB: ` +
      `${perConnection <= TARGET_KIB ? "met" : "not met"})`,
  );
} finally {
  await closeAll(sockets);
  runner.kill("SIGTERM");
  await runner.status;
  await runner.stdout.cancel().catch(() => {});
}
