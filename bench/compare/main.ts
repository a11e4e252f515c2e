/**
 * Compares Mist with other RPC-over-WebSocket stacks: for each stack, a server process and a
 * client process on 127.0.0.1 run three workloads (sequential small calls, 64 calls in flight,
 * a 1 MiB echo), and a table of the results and their ratios to the raw-deno floor is printed.
 *
 * Run from the repository root:
 *
 * ```sh
 * ./deno run --config bench/compare/deno.json --allow-run --allow-read --allow-write \
 *   --allow-env --allow-sys=cpus bench/compare/main.ts [--quick] [--markdown PATH] [--svg PATH]
 * ```
 *
 * @module
 */

import { renderSvg } from "./chart.ts";
import { writeStderr } from "./child.ts";
import { type Options, parseOptions, USAGE } from "./cli.ts";
import { describeMachine } from "./machine.ts";
import { FULL_PLAN, QUICK_PLAN } from "./plan.ts";
import { renderMarkdown, renderText, type Report } from "./report.ts";
import { type Attempt, runRounds } from "./rounds.ts";
import { type Outcome, runStack } from "./runner.ts";
import { buildMistPackage, bundleNodeStacks, ensureNodeModules } from "./setup.ts";
import { FLOOR, type StackInfo, STACKS, STRICT_FLOOR } from "./stacks.ts";

/** bench/compare, where the stacks, package.json and node_modules are. */
const DIR = decodeURIComponent(new URL(".", import.meta.url).pathname).replace(/\/$/, "");

/** Per mode: the whole run's budget, a server's start-up, a client's run. */
const LIMITS = {
  // 12 stacks × 3 rounds: a full run takes ~5 min on the 2-core machine (285 s cut the last
  // rounds short once raw-deno-strict and mist-no-resume joined).
  full: { runMs: 360_000, readyMs: 30_000, clientMs: 90_000 },
  quick: { runMs: 55_000, readyMs: 15_000, clientMs: 20_000 },
} as const;

/** Rounds in full mode: the median of three resists one disturbed round. */
const DEFAULT_ROUNDS = 3;

/** Below this much budget left, a stack is not started at all. */
const MIN_STACK_MS = 5_000;

function selectStacks(options: Options): StackInfo[] {
  const wanted = options.stacks;
  if (wanted === undefined) return [...STACKS];
  const unknown = wanted.filter((name) => !STACKS.some((stack) => stack.name === name));
  if (unknown.length > 0) throw new TypeError(`unknown stack(s): ${unknown.join(", ")}`);
  // The strict floor comes along with any stack that is also divided by it.
  const strict = STACKS.some((stack) => stack.versusStrict && wanted.includes(stack.name));
  // So does the stack that a wanted one is paired with.
  const paired = STACKS.filter((stack) => wanted.includes(stack.name)).map((s) => s.pairedWith);
  return STACKS.filter((stack) =>
    stack.name === FLOOR || wanted.includes(stack.name) || paired.includes(stack.name) ||
    (strict && stack.name === STRICT_FLOOR)
  );
}

function summary(name: string, outcome: Outcome): string {
  if (outcome.kind !== "measured") return `${name}: ${outcome.kind} (${outcome.reason})`;
  const m = outcome.measurement;
  return `${name}: p50 ${m.p50Us.toFixed(1)} µs, p99 ${m.p99Us.toFixed(1)} µs, ` +
    `${m.callsPerSecond.toFixed(0)} calls/s, ${m.megabytesPerSecond.toFixed(1)} MB/s`;
}

async function writeFile(path: string, content: string): Promise<void> {
  const parent = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
  if (parent !== "") await Deno.mkdir(parent, { recursive: true });
  await Deno.writeTextFile(path, content);
  await writeStderr(`bench:compare: wrote ${path}\n`);
}

async function main(options: Options): Promise<number> {
  const started = performance.now();
  const mode = options.quick ? "quick" : "full";
  const limits = LIMITS[mode];
  const plan = options.quick ? QUICK_PLAN : FULL_PLAN;
  const stacks = selectStacks(options);
  const machine = await describeMachine();

  await ensureNodeModules(DIR); // capnweb (on Deno) needs node_modules too.
  const nodeStacks = stacks.filter((stack) => stack.runtime === "node");
  if (machine.node !== undefined && nodeStacks.length > 0) await bundleNodeStacks(DIR, nodeStacks);
  if (machine.node !== undefined && nodeStacks.some((stack) => stack.mistPackage)) {
    const failed = await buildMistPackage(DIR);
    if (failed) await writeStderr(`bench:compare: ${failed}; mist-node will be skipped\n`);
  }

  const rounds = options.rounds ?? (options.quick ? 1 : DEFAULT_ROUNDS);
  const runEnd = started + limits.runMs;
  const rows = await runRounds(stacks, rounds, async (stack, round): Promise<Attempt> => {
    if (stack.runtime === "node" && machine.node === undefined) {
      return { kind: "skipped", reason: "node not found on the PATH" };
    }
    if (runEnd - performance.now() < MIN_STACK_MS) return "budget";
    const label = `${stack.name} (round ${round}/${rounds})`;
    await writeStderr(`bench:compare: ${label}…\n`);
    const { readyMs, clientMs } = limits;
    const outcome = await runStack(stack, plan, DIR, { readyMs, clientMs, runEnd });
    await writeStderr(`bench:compare: ${summary(label, outcome)}\n`);
    return outcome;
  });

  const report: Report = {
    machine,
    plan,
    mode,
    floor: FLOOR,
    strictFloor: STRICT_FLOOR,
    rows,
    rounds,
    seconds: (performance.now() - started) / 1000,
  };
  console.log(renderText(report));
  if (options.markdown !== undefined) await writeFile(options.markdown, renderMarkdown(report));
  if (options.svg !== undefined) await writeFile(options.svg, renderSvg(report));
  // A stack that is skipped (not written yet, no node) is fine; one that broke is not.
  return rows.some((row) => row.outcome.kind === "failed" || row.outcome.kind === "timeout")
    ? 1
    : 0;
}

if (import.meta.main) {
  let options: Options;
  try {
    options = parseOptions(Deno.args);
  } catch (error) {
    await writeStderr(`${error instanceof Error ? error.message : error}\n\n${USAGE}`);
    Deno.exit(2);
  }
  if (options.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  Deno.exit(await main(options));
}
