/**
 * A bounded soak test: 20,000 calls from one client while the server is shut down and started
 * again (new port, new secret) at pseudo-random moments. Every call must settle exactly once,
 * with a result or one of the documented errors, and nothing may be left pending.
 *
 * @module
 */
import assert from "node:assert/strict";
import "../_socket/preset.ts"; // the Deno preset
import { Client } from "../client.ts";
import { ChannelDeadError, DisconnectedError, RemoteError } from "../errors.ts";
import { consoleLogger } from "../log.ts";
import { HandlerRegistry } from "../registry.ts";
import { SharedSecret } from "../secret.ts";
import { type LocalServer, serveLocal } from "../server.ts";

const silent = consoleLogger("silent");

const TOTAL_CALLS = 20_000;
const WORKERS = 64;
const CALL_TIMEOUT_MS = 2000;
/** Restart after this many further completed calls: 2,000 plus up to 1,500 (≥ 5 restarts). */
const RESTART_EVERY = [2000, 3500] as const;
const MIN_RESTARTS = 5;
/** The restart (0-based) whose downtime outlasts CALL_TIMEOUT_MS. */
const LONG_DOWNTIME_AT = 2;
/** The whole run must finish by then, or the test fails instead of hanging. */
const DEADLINE_MS = 55_000;
const SEED = 0x5eed_2026;

/** mulberry32: a small seeded PRNG, so a failing run can be replayed. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The documented errors a call may reject with here; `undefined` for anything else. */
function classify(error: unknown): string | undefined {
  if (error instanceof DisconnectedError) return `DisconnectedError ${error.closeCode}`;
  if (error instanceof ChannelDeadError) return "ChannelDeadError";
  if (error instanceof DOMException && error.name === "TimeoutError") return "TimeoutError";
  if (error instanceof RemoteError && error.message.includes("shutting down")) {
    return "RemoteError shutting down";
  }
  return undefined;
}

Deno.test("Client settles each of 20,000 calls exactly once while the server restarts at random moments", async () => {
  const random = prng(SEED);
  const between = (low: number, high: number) => low + Math.floor(random() * (high - low + 1));

  const registry = new HandlerRegistry().register("echo", async ([n]) => {
    // Some handlers finish on a later turn, so shutdowns find some still running.
    if ((n as number) % 5 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
    return n;
  });
  let secret!: SharedSecret;
  let server!: LocalServer;
  const start = () => {
    secret = SharedSecret.generate();
    // A random grace for its shutdown: 0 cuts running handlers off at once.
    const shutdownGraceMs = between(0, 1) === 0 ? 0 : between(1, 30);
    server = serveLocal({ secret, registry, logger: silent, shutdownGraceMs });
  };
  start();
  let restarting: Promise<void> | undefined;
  // Shuts down whichever server runs when the test ends, once a restart under way is done.
  await using _server = {
    async [Symbol.asyncDispose]() {
      await restarting;
      await server.shutdown();
    },
  };
  const ports = new Set([server.port]);
  let providerCalls = 0;
  await using client = new Client(() => {
    providerCalls++;
    return { url: server.url, secret };
  }, {
    logger: silent,
    heartbeat: { intervalMs: 1000, timeoutMs: 5000 },
  });
  const states = new Map<string, number>();
  client.addEventListener("statechange", (event) => {
    const { state } = event;
    states.set(state, (states.get(state) ?? 0) + 1);
  });

  let restarts = 0;
  const restart = async () => {
    const old = server;
    await old.shutdown();
    await old.closed;
    // Downtime: usually none, sometimes short, and once longer than a call's timeout, so calls
    // waiting for the connection time out and the client retries more than once.
    const downtimeMs = restarts === LONG_DOWNTIME_AT
      ? CALL_TIMEOUT_MS + 500
      : between(0, 2) === 0
      ? between(50, 400)
      : 0;
    if (downtimeMs > 0) await new Promise((resolve) => setTimeout(resolve, downtimeMs));
    start();
    ports.add(server.port);
    restarts++;
  };

  const settled = new Uint8Array(TOTAL_CALLS);
  const outcomes = new Map<string, number>();
  const unexpected: { index: number; error: unknown }[] = [];
  const wrongResults: { index: number; result: unknown }[] = [];
  let resolved = 0;
  let rejected = 0;
  let issued = 0;
  let completed = 0;
  let restartAt = between(...RESTART_EVERY);

  const worker = async () => {
    while (issued < TOTAL_CALLS) {
      const index = issued++;
      await client.call("echo", [index], { timeoutMs: CALL_TIMEOUT_MS }).then(
        (result) => {
          settled[index]++;
          resolved++;
          if (result !== index) wrongResults.push({ index, result });
          outcomes.set("resolved", (outcomes.get("resolved") ?? 0) + 1);
        },
        (error) => {
          settled[index]++;
          rejected++;
          const kind = classify(error);
          if (kind === undefined) unexpected.push({ index, error });
          const key = kind ?? "unexpected";
          outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        },
      );
      completed++;
      if (completed >= restartAt && restarting === undefined) {
        restartAt = completed + between(...RESTART_EVERY);
        restarting = restart().finally(() => restarting = undefined);
      }
    }
  };

  let deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<"deadline">((resolve) => {
    deadlineTimer = setTimeout(() => resolve("deadline"), DEADLINE_MS);
  });
  using _deadline = { [Symbol.dispose]: () => clearTimeout(deadlineTimer) };
  const started = performance.now();
  const all = Promise.all(Array.from({ length: WORKERS }, worker)).then(() => "done" as const);
  const outcome = await Promise.race([all, deadline]);
  if (outcome === "deadline") {
    await client.close(); // lets hanging calls reject so the summary below is complete
  }
  await restarting;
  const elapsed = Math.round(performance.now() - started);
  console.log(
    `soak: ${TOTAL_CALLS} calls, ${WORKERS} workers, ${restarts} restarts on ${ports.size} ports, ` +
      `${providerCalls} provider calls in ${elapsed} ms`,
    Object.fromEntries(outcomes),
    Object.fromEntries(states),
  );
  assert.equal(outcome, "done", `not every call settled within ${DEADLINE_MS} ms`);

  // Every call settled, exactly once.
  assert.equal(resolved + rejected, TOTAL_CALLS);
  const notOnce = [...settled.keys()].filter((index) => settled[index] !== 1);
  assert.deepEqual(notOnce, [], "calls settled other than exactly once");
  assert.deepEqual(unexpected.slice(0, 5), [], "rejections outside the documented errors");
  assert.deepEqual(wrongResults.slice(0, 5), [], "results that do not match their call");
  assert.ok(restarts >= MIN_RESTARTS, `only ${restarts} restarts`);
  assert.ok(ports.size >= MIN_RESTARTS, "restarts moved to new ports");
  assert.ok(resolved > TOTAL_CALLS / 2, `only ${resolved} calls succeeded`);
  assert.ok(outcomes.has("TimeoutError"), "calls waited through the long downtime and timed out");

  // Nothing left behind.
  await client.opened({ timeoutMs: 10_000 });
  assert.equal(client.peer!.stats.pendingCalls, 0);
  assert.equal(client.peer!.stats.queuedFrames, 0);
  assert.equal(client.stats.waitingCalls, 0);
  assert.equal(client.stats.queuedNotifications, 0);
});
