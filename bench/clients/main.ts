/**
 * Notification then call, against a call alone, on every client runtime Mist supports: Deno
 * (the Client's default no-delay socket, and Deno's native `WebSocket` for contrast), Node and
 * headless Chromium, all against one `serveLocal` server in this process. Each runtime runs the
 * same measurement (`measure.js`): interleaved rounds after a warm-up; the table gives medians
 * and their ratio (issue 5's target: at most 1.5×).
 *
 * Run: `./deno task bench:clients`. Loopback only; every child and wait has a deadline.
 *
 * @module
 */

import process from "node:process";
import { chromium } from "playwright-core";
import { Client, HandlerRegistry, serveLocal, SharedSecret } from "../../mod.ts";
import { consoleLogger } from "../../log.ts";
import { build } from "../../tools/build.ts";
import { measure } from "./measure.js";
import { median } from "../compare/stats.ts";

const CHROMIUM = "/usr/bin/chromium";
/** Rounds for the fast clients; the native Deno socket pays ~40 ms a round, so it gets fewer. */
const PLAN = { warmup: 200, rounds: 500 };
const NATIVE_PLAN = { warmup: 3, rounds: 30 };
/** Deadline of each runtime's run. */
const RUN_MS = 90_000;

interface Samples {
  alone: number[];
  afterNote: number[];
}

interface Row {
  runtime: string;
  rounds: number;
  outcome: Samples | { skipped: string };
}

const here = new URL(".", import.meta.url);
const secret = SharedSecret.generate();
const registry = new HandlerRegistry()
  .register("echo", (params) => params)
  .register("note", () => null);
const server = serveLocal({ secret, registry, logger: consoleLogger("error") });
const endpoint = { url: server.url, secret: secret.toHex() };
const dist = await Deno.makeTempDir({ prefix: "mist-bench-clients-" });

function deadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${RUN_MS} ms`)), RUN_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function runDeno(native: boolean): Promise<Samples> {
  const client = new Client(server.url, {
    secret,
    heartbeat: false,
    webSocketFactory: native
      ? (url, init) => new WebSocket(url, { headers: init.headers })
      : undefined,
  });
  try {
    return await measure(client, native ? NATIVE_PLAN : PLAN);
  } finally {
    await client.close();
  }
}

async function nodeVersion(): Promise<string> {
  const { stdout } = await new Deno.Command("node", { args: ["--version"] }).output();
  return new TextDecoder().decode(stdout).trim();
}

async function runNode(bundle: string, version: string): Promise<Samples> {
  // Node 22+ has a global WebSocket; Node 20 has it behind a flag.
  const flags = Number(version.slice(1).split(".")[0]) < 22 ? ["--experimental-websocket"] : [];
  const { success, stdout, stderr } = await new Deno.Command("node", {
    args: [
      ...flags,
      "--no-warnings",
      new URL("node.mjs", here).pathname,
      new URL(`file://${bundle}`).href,
      String(PLAN.warmup),
      String(PLAN.rounds),
    ],
    env: { MIST_BENCH_ENDPOINT: JSON.stringify(endpoint) },
    stdin: "null",
    signal: AbortSignal.timeout(RUN_MS),
  }).output();
  if (!success) throw new Error(`node failed: ${new TextDecoder().decode(stderr).trim()}`);
  return JSON.parse(new TextDecoder().decode(stdout));
}

async function runChromium(bundle: string): Promise<Samples> {
  const files: Record<string, [string, string]> = {
    "/": [await Deno.readTextFile(new URL("page.html", here)), "text/html"],
    "/measure.js": [await Deno.readTextFile(new URL("measure.js", here)), "text/javascript"],
    "/mist_client.js": [await Deno.readTextFile(bundle), "text/javascript"],
  };
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { pathname } = new URL(request.url);
    // Cross-origin isolation gives the page performance.now() at 5 µs rather than 100 µs.
    const headers = {
      "cache-control": "no-store",
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-embedder-policy": "require-corp",
    };
    if (pathname === "/endpoint") return Response.json(endpoint, { headers });
    const file = files[pathname];
    if (!file) return new Response("Not found\n", { status: 404 });
    return new Response(file[0], { headers: { ...headers, "content-type": file[1] } });
  });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: RUN_MS,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
  try {
    const page = await browser.newPage();
    await page.goto(
      `http://127.0.0.1:${http.addr.port}/?warmup=${PLAN.warmup}&rounds=${PLAN.rounds}`,
    );
    await page.waitForFunction(() => "result" in globalThis, undefined, { timeout: RUN_MS });
    const result = await page.evaluate(() =>
      (globalThis as unknown as { result: Samples | { error: string } }).result
    );
    if ("error" in result) throw new Error(`page: ${result.error}`);
    return result;
  } finally {
    await browser.close();
    await http.shutdown();
  }
}

async function attempt(
  runtime: string,
  rounds: number,
  run: () => Promise<Samples>,
): Promise<Row> {
  console.error(`bench:clients: ${runtime}…`);
  try {
    return { runtime, rounds, outcome: await deadline(run(), runtime) };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { runtime, rounds, outcome: { skipped: message.split("\n")[0].slice(0, 120) } };
  }
}

function table(rows: Row[]): string {
  const header = ["client", "rounds", "call alone p50", "notification then call p50", "ratio"];
  const lines = rows.map(({ runtime, rounds, outcome }) => {
    if ("skipped" in outcome) return [runtime, String(rounds), `skipped: ${outcome.skipped}`];
    const alone = median(outcome.alone), afterNote = median(outcome.afterNote);
    return [
      runtime,
      String(rounds),
      `${(alone * 1000).toFixed(0)} µs`,
      `${(afterNote * 1000).toFixed(0)} µs`,
      `${(afterNote / alone).toFixed(2)}×`,
    ];
  });
  const widths = header.map((title, i) =>
    Math.max(title.length, ...lines.map((line) => (line[i] ?? "").length))
  );
  const format = (cells: string[]): string =>
    cells.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join("  ")
      .trimEnd();
  return [format(header), format(widths.map((width) => "-".repeat(width))), ...lines.map(format)]
    .join("\n");
}

try {
  const bundles = await build(dist);
  const rows: Row[] = [
    await attempt("deno, Mist's no-delay socket", PLAN.rounds, () => runDeno(false)),
    await attempt("deno, native WebSocket", NATIVE_PLAN.rounds, () => runDeno(true)),
  ];
  let node = "node";
  try {
    node = `node ${await nodeVersion()}`;
    rows.push(await attempt(node, PLAN.rounds, () => runNode(bundles.node, node.slice(5))));
  } catch {
    rows.push({ runtime: node, rounds: 0, outcome: { skipped: "node is not on PATH" } });
  }
  const haveChromium = await Deno.stat(CHROMIUM).then(() => true, () => false);
  rows.push(
    haveChromium
      ? await attempt("chromium (headless)", PLAN.rounds, () => runChromium(bundles.js))
      : {
        runtime: "chromium",
        rounds: 0,
        outcome: { skipped: `no ${CHROMIUM} (sh tools/ensure_chromium.sh installs it)` },
      },
  );
  console.log(table(rows));
  console.log(
    `\n${new Date().toISOString()}; Deno ${Deno.version.deno}; ${navigator.hardwareConcurrency} ` +
      `cores. Medians of the rounds (after ${PLAN.warmup} warm-up, ${NATIVE_PLAN.warmup} for the ` +
      "native socket); each round is a call alone then a notification and a call; ratio = " +
      "notification then call ÷ call alone.",
  );
} finally {
  await server.shutdown();
  await Deno.remove(dist, { recursive: true });
  process.exitCode = 0;
}
