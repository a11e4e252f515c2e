/**
 * Payload sweep (issue 14): echo round trips from 100 B to 16 MiB, each size against its floor
 * in the same run.
 *
 * - **text**: Mist calls `echo` with one ASCII string of the size; the strict text floor sends
 *   the request text Mist would send, built once before timing, to a raw `Deno.serve` server
 *   that echoes every frame verbatim: no JSON on either side.
 * - **bytes**: Mist calls `echo` with one `Uint8Array` of the size (a binary message); the floor
 *   sends the same bytes as one binary frame to the raw server. And the same bytes as a JSON
 *   array of numbers through Mist: what bytes cost without binary messages. A Mist that refuses
 *   bytes (before binary messages) leaves its column empty and says why.
 *
 * The Mist server is the local runner (`tools/serve.ts`, its demo `echo`) and the raw server is
 * this file with `--serve-raw`; each runs in its own process and is ended by its PID. The
 * clients run here, all on one kind of socket: Mist's client uses its own no-delay socket (the
 * default on Deno), so the floors do too. Deno's native `WebSocket` (`--native-floor` adds its
 * floors as extra columns) stalls ~44 ms on every frame of ~1 to 64 KiB (Nagle's algorithm; see
 * bench/README.md) and was not faster above that in side-by-side runs. `maxMessageBytes` is
 * 64 MiB - 1 on both Mist ends, so 16 MiB payloads and their JSON number arrays fit.
 *
 * Each figure is the median round trip of its calls after warm-up; how the cases of a size are
 * interleaved, and why, is in {@linkcode measureSize}. Prints a table and the issue's acceptance
 * figures at 8 MiB, and writes an SVG chart (and, on request, Markdown) to bench/out/.
 *
 * Run: `./deno task bench:sweep [--quick] [--native-floor] [--sizes LIST] [--verbose]
 * [--svg PATH] [--markdown PATH]` (about two and a half minutes; `--quick`: half a minute).
 *
 * @module
 */

import { Client, SharedSecret } from "../mod.ts";
import { MAX_MESSAGE_BYTES_LIMIT } from "../envelope.ts";
import { NoDelayWebSocket } from "../_socket/no_delay.ts";
import type { WebSocketLike } from "../transport.ts";
import { COLORS, escapeXml, text } from "./compare/chart.ts";
import { Child, writeStderr } from "./compare/child.ts";
import { describeMachine, type Machine } from "./compare/machine.ts";
import { median } from "./compare/stats.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

/** The largest message on both Mist ends: the runner's ceiling, one byte under Deno's 64 MiB. */
const MAX_MESSAGE_BYTES = MAX_MESSAGE_BYTES_LIMIT - 1;

/** One size of the sweep and how many timed calls each of its cases makes. */
interface Size {
  readonly bytes: number;
  readonly label: string;
  /** Timed calls of each text and bytes case (full mode). */
  readonly calls: number;
  /**
   * Untimed calls of each text and bytes case before its first round (full mode). Large
   * payloads need many: a process that starts moving 8 MiB messages takes tens of calls to
   * settle (JIT tiers of the copy and mask loops, heap and GC limits growing), ~10× slower at
   * first than later, on every side alike.
   */
  readonly warmup: number;
  /** Timed calls of the JSON number array case (full mode). */
  readonly jsonCalls: number;
}

/** Fewer calls for big sizes: a 16 MiB echo takes tens of ms, its JSON number array seconds. */
const SIZES: readonly Size[] = [
  { bytes: 100, label: "100 B", calls: 300, warmup: 100, jsonCalls: 100 },
  { bytes: KiB, label: "1 KiB", calls: 300, warmup: 100, jsonCalls: 100 },
  { bytes: 10 * KiB, label: "10 KiB", calls: 200, warmup: 50, jsonCalls: 50 },
  { bytes: 100 * KiB, label: "100 KiB", calls: 100, warmup: 30, jsonCalls: 20 },
  { bytes: MiB, label: "1 MiB", calls: 45, warmup: 30, jsonCalls: 6 },
  { bytes: 4 * MiB, label: "4 MiB", calls: 30, warmup: 20, jsonCalls: 3 },
  { bytes: 8 * MiB, label: "8 MiB", calls: 30, warmup: 20, jsonCalls: 3 },
  { bytes: 16 * MiB, label: "16 MiB", calls: 15, warmup: 10, jsonCalls: 2 },
];

/** The size of the issue's acceptance figures. */
const ACCEPTANCE_BYTES = 8 * MiB;
/** Issue 14: Mist's bytes echo at most this many times the raw binary echo's time. */
const BYTES_TARGET = 1.25;
/** Issue 14: the JSON number array at least this many times slower than Mist's bytes echo. */
const JSON_TARGET = 20;

/** Interleaved rounds per size in full mode; from 1 MiB on, where stalls come in streaks, more. */
const ROUNDS = 3;
const LARGE_ROUNDS = 5;
/**
 * Connections per case, taking calls in turn. Loopback TCP here (BBR, 64 KiB segments) has
 * moods per connection: a megabyte echo on one connection can take 3–4× as long as on another,
 * for dozens of calls, with retransmissions in `ss -ti`. Several connections per case make each
 * median a mixture of them instead of one connection's luck.
 */
const CONNECTIONS = 3;
/** The JSON case of a size is skipped when its calls are predicted to take longer than this. */
const JSON_SIZE_BUDGET_MS = 45_000;
/** The whole sweep stops starting new sizes after this. */
const RUN_BUDGET_MS = 300_000;
/** One call that takes longer than this fails the sweep instead of hanging it. */
const CALL_TIMEOUT_MS = 60_000;
/** A server that has not printed its ready line by then is killed. */
const READY_TIMEOUT_MS = 30_000;

const ROOT = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");

// ---------------------------------------------------------------------------------------------
// The raw echo server (`--serve-raw`): every frame back verbatim, text as text, bytes as bytes.

function serveRaw(): void {
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => console.log(JSON.stringify({ url: `ws://127.0.0.1:${port}/` })),
  }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
    socket.binaryType = "arraybuffer"; // Echo an ArrayBuffer, never a Blob.
    socket.onmessage = (event) => socket.send(event.data);
    return response;
  });
  Deno.addSignalListener("SIGTERM", () => {
    server.shutdown().finally(() => Deno.exit(0));
    setTimeout(() => Deno.exit(0), 2_000);
  });
}

// ---------------------------------------------------------------------------------------------
// The client side.

/** A raw echo client: each reply is the next frame, since the server echoes in order. */
class RawEcho {
  readonly #socket: WebSocketLike;
  #waiting: { resolve(data: unknown): void; reject(error: Error): void }[] = [];

  private constructor(socket: WebSocketLike) {
    this.#socket = socket;
    socket.addEventListener("message", (event) => this.#waiting.shift()?.resolve(event.data));
    socket.addEventListener("close", () => {
      for (const waiter of this.#waiting.splice(0)) waiter.reject(new Error("socket closed"));
    });
  }

  /** Opens `socket` (binary messages as `ArrayBuffer`); resolves once it is open. */
  static open(socket: WebSocketLike & { binaryType: string }): Promise<RawEcho> {
    socket.binaryType = "arraybuffer";
    return new Promise((resolve, reject) => {
      socket.addEventListener("open", () => resolve(new RawEcho(socket)));
      socket.addEventListener("error", () => reject(new Error("raw echo: cannot connect")));
    });
  }

  /** Sends `data` as one frame and resolves to the frame echoed back. */
  roundTrip(data: string | Uint8Array): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#socket.send(data);
    });
  }

  close(): void {
    this.#socket.close(1000, "done");
  }
}

/** Several raw echo connections taking calls in turn. */
class RawEchoPool {
  readonly #echoes: readonly RawEcho[];
  #next = 0;

  constructor(echoes: readonly RawEcho[]) {
    this.#echoes = echoes;
  }

  /** Sends `data` on the next connection and resolves to its echo. */
  roundTrip(data: string | Uint8Array): Promise<unknown> {
    return this.#echoes[this.#next++ % this.#echoes.length].roundTrip(data);
  }
}

/** One measured case: its column, and how to make one call of a size. */
interface Case {
  readonly key: CaseKey;
  readonly header: string;
  /** Builds the payload of a size (outside timing); returns one call and a full check. */
  prepare(size: number): Prepared;
  /** Why the case is left out at a size (e.g. Mist refuses bytes), or undefined to run it. */
  readonly skip?: (size: Size) => string | undefined;
}

interface Prepared {
  /** One round trip with a cheap check of the reply (length only). */
  call(): Promise<void>;
  /** One round trip whose reply is compared in full (used once, during warm-up). */
  verify(): Promise<void>;
}

type CaseKey =
  | "textFloor"
  | "mistText"
  | "bytesFloor"
  | "mistBytes"
  | "json"
  | "textNative"
  | "bytesNative";

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} took over ${CALL_TIMEOUT_MS} ms`)),
      CALL_TIMEOUT_MS,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function fail(what: string, detail: string): never {
  throw new Error(`${what}: ${detail}`);
}

function describe(value: unknown): string {
  if (value instanceof Uint8Array) return `Uint8Array(${value.length})`;
  if (value instanceof ArrayBuffer) return `ArrayBuffer(${value.byteLength})`;
  if (typeof value === "string") return `a string of ${value.length}`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return value === null ? "null" : typeof value;
}

/** Pseudo-random bytes (xorshift32, fixed seed): every run sends the same payload. */
function makeBytes(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  let x = 0x9e3779b9;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The UTF-8 length of `JSON.stringify(Array.from(bytes))`, without building it. */
function jsonArrayLength(bytes: Uint8Array): number {
  let length = 2 + Math.max(0, bytes.length - 1); // Brackets and commas.
  for (const byte of bytes) length += byte < 10 ? 1 : byte < 100 ? 2 : 3;
  return length;
}

function textCase(key: CaseKey, header: string, echo: RawEchoPool): Case {
  return {
    key,
    header,
    prepare(size) {
      // The request text Mist would send for the same call, built once: no JSON while timed.
      const request = JSON.stringify({ id: 1, method: "echo", params: ["x".repeat(size)] });
      return {
        async call() {
          const reply = await withTimeout(echo.roundTrip(request), header);
          if (typeof reply !== "string" || reply.length !== request.length) {
            fail(header, `echoed ${describe(reply)}`);
          }
        },
        async verify() {
          const reply = await withTimeout(echo.roundTrip(request), header);
          if (reply !== request) fail(header, `echoed ${describe(reply)}, not the request`);
        },
      };
    },
  };
}

function bytesCase(key: CaseKey, header: string, echo: RawEchoPool): Case {
  return {
    key,
    header,
    prepare(size) {
      const bytes = makeBytes(size);
      const check = (reply: unknown): ArrayBuffer =>
        reply instanceof ArrayBuffer && reply.byteLength === size
          ? reply
          : fail(header, `echoed ${describe(reply)}`);
      return {
        async call() {
          check(await withTimeout(echo.roundTrip(bytes), header));
        },
        async verify() {
          const reply = check(await withTimeout(echo.roundTrip(bytes), header));
          if (!sameBytes(new Uint8Array(reply), bytes)) fail(header, "echoed other bytes");
        },
      };
    },
  };
}

function mistCases(clients: readonly Client[], bytesRefused: string | undefined): Case[] {
  let next = 0;
  const call = (params: unknown[], what: string): Promise<unknown> =>
    withTimeout(clients[next++ % clients.length].call("echo", params), what);
  const first = (result: unknown, what: string): unknown =>
    Array.isArray(result) && result.length === 1
      ? result[0]
      : fail(what, `returned ${describe(result)}`);
  return [
    {
      key: "mistText",
      header: "Mist text",
      prepare(size) {
        const params = ["x".repeat(size)];
        const what = "Mist text";
        const check = (result: unknown): string => {
          const value = first(result, what);
          return typeof value === "string" && value.length === size
            ? value
            : fail(what, `returned ${describe(value)}`);
        };
        return {
          async call() {
            check(await call(params, what));
          },
          async verify() {
            if (check(await call(params, what)) !== params[0]) fail(what, "returned other text");
          },
        };
      },
    },
    {
      key: "mistBytes",
      header: "Mist bytes",
      skip: () => bytesRefused,
      prepare(size) {
        const bytes = makeBytes(size);
        const params = [bytes];
        const what = "Mist bytes";
        const check = (result: unknown): Uint8Array => {
          const value = first(result, what);
          return value instanceof Uint8Array && value.length === size
            ? value
            : fail(what, `returned ${describe(value)}`);
        };
        return {
          async call() {
            check(await call(params, what));
          },
          async verify() {
            if (!sameBytes(check(await call(params, what)), bytes)) {
              fail(what, "returned other bytes");
            }
          },
        };
      },
    },
    {
      key: "json",
      header: "JSON numbers",
      skip: (size) => {
        const length = jsonArrayLength(makeBytes(size.bytes)) + 64; // + the envelope, roughly
        return length > MAX_MESSAGE_BYTES
          ? `its JSON (${(length / MiB).toFixed(1)} MiB) is over maxMessageBytes`
          : undefined;
      },
      prepare(size) {
        const bytes = makeBytes(size);
        const params = [Array.from(bytes)];
        const what = "JSON numbers";
        const check = (result: unknown): unknown[] => {
          const value = first(result, what);
          return Array.isArray(value) && value.length === size
            ? value
            : fail(what, `returned ${describe(value)}`);
        };
        return {
          async call() {
            check(await call(params, what));
          },
          async verify() {
            const value = check(await call(params, what));
            if (!value.every((n, i) => n === bytes[i])) fail(what, "returned other numbers");
          },
        };
      },
    },
  ];
}

/** What one size measured: median and fastest ms per case, and why a case is missing. */
interface SizeResult {
  readonly size: Size;
  readonly ms: Partial<Record<CaseKey, number>>;
  /** The fastest round trip of each case: no TCP stall, no collection. */
  readonly min: Partial<Record<CaseKey, number>>;
  readonly missing: Partial<Record<CaseKey, string>>;
}

interface Options {
  readonly quick: boolean;
  readonly nativeFloor: boolean;
  readonly svg: string;
  readonly markdown?: string;
  /** Only these sizes (by label, e.g. "8 MiB"), or all. */
  readonly sizes?: readonly string[];
  /** Print every block's round trips to stderr. */
  readonly verbose: boolean;
  /** Rounds of blocks per size instead of the default (each block as long as by default). */
  readonly rounds?: number;
}

const USAGE = `Usage: payload_sweep.ts [--quick] [--native-floor] [--sizes LIST] [--rounds N]
                        [--verbose] [--svg PATH] [--markdown PATH]

Echo round trips from 100 B to 16 MiB: Mist text vs the strict text floor, Mist bytes vs a raw
binary echo, and the bytes as a JSON array of numbers through Mist; prints a table and the issue's
8 MiB acceptance figures, and writes an SVG chart.

  --quick          a few calls per size, one round, JSON numbers up to 1 MiB (smoke test)
  --native-floor   also run both floors on Deno's native WebSocket client (extra columns)
  --sizes LIST     only these sizes, e.g. --sizes 1MiB,8MiB (default: 100B to 16MiB)
  --rounds N       N rounds of blocks per size (default 3, from 1 MiB 5); more rounds, more
                   calls: streaks of load on a shared machine then fall on both cases alike
  --verbose        print every block of round trips (ms) to stderr
  --svg PATH       where to write the chart (default bench/out/payload_sweep.svg)
  --markdown PATH  also write the table as Markdown
`;

function parseOptions(args: readonly string[]): Options | undefined {
  let quick = false;
  let nativeFloor = false;
  let verbose = false;
  let svg = `${ROOT}/bench/out/payload_sweep.svg`;
  let markdown: string | undefined;
  let sizes: string[] | undefined;
  let rounds: number | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--quick") quick = true;
    else if (arg === "--native-floor") nativeFloor = true;
    else if (arg === "--verbose") verbose = true;
    else if (arg === "--svg" || arg === "--markdown" || arg === "--sizes" || arg === "--rounds") {
      const value = args[++i];
      if (value === undefined || value === "") throw new TypeError(`${arg} needs a value`);
      if (arg === "--rounds") {
        rounds = Number(value);
        if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) {
          throw new TypeError("--rounds needs an integer from 1 to 100");
        }
      } else if (arg === "--svg") svg = value;
      else if (arg === "--markdown") markdown = value;
      else {
        sizes = value.split(",").map((name) => name.replaceAll(" ", ""));
        const known = SIZES.map((size) => size.label.replaceAll(" ", ""));
        const unknown = sizes.filter((name) => !known.includes(name));
        if (unknown.length > 0) throw new TypeError(`unknown size(s): ${unknown.join(", ")}`);
      }
    } else if (arg === "--help" || arg === "-h") return undefined;
    else throw new TypeError(`unknown argument ${arg}`);
  }
  return { quick, nativeFloor, svg, markdown, sizes, verbose, rounds };
}

/** Starts a server child and reads its ready line. */
async function startServer(
  label: string,
  args: string[],
  env?: Record<string, string>,
): Promise<{ child: Child; url: string }> {
  const child = Child.spawn(Deno.execPath(), args, { cwd: ROOT, env, label });
  const line = await child.nextLine(READY_TIMEOUT_MS);
  if (line === undefined) {
    await child.stop();
    throw new Error(`${label} exited before it was ready`);
  }
  child.forwardRest();
  const ready: unknown = JSON.parse(line);
  if (typeof ready !== "object" || ready === null || !("url" in ready)) {
    await child.stop();
    throw new Error(`${label} printed ${line.slice(0, 100)}`);
  }
  return { child, url: String(ready.url) };
}

/**
 * A full garbage collection in this (the client) process, when `--v8-flags=--expose-gc` gave
 * us `gc()` (the task does): each block of calls starts with a clean heap and pays for its own
 * garbage, not for the case before it. Outside timing.
 */
function gcNote(): string {
  return typeof (globalThis as { gc?: unknown }).gc === "function"
    ? ""
    : "; not here: run with --v8-flags=--expose-gc";
}

function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

async function measureCase(
  prepared: Prepared,
  warmup: number,
  calls: number,
  samples: number[],
): Promise<void> {
  for (let i = 0; i < warmup; i++) await prepared.call();
  for (let i = 0; i < calls; i++) {
    const start = performance.now();
    await prepared.call();
    samples.push(performance.now() - start);
  }
}

function formatSample(ms: number): string {
  return ms < 10 ? ms.toFixed(2) : ms.toFixed(0);
}

/** Which cases run in rounds together: text with text, bytes with bytes; JSON arrays alone. */
function groupOf(key: CaseKey): "text" | "bytes" | "json" {
  if (key === "json") return "json";
  return key === "textFloor" || key === "mistText" || key === "textNative" ? "text" : "bytes";
}

/** Why the JSON number array case is left out at this size, or undefined. */
function jsonSkip(
  kase: Case,
  size: Size,
  calls: number,
  options: Options,
  previous: SizeResult | undefined,
): string | undefined {
  const reason = kase.skip?.(size);
  if (reason !== undefined) return reason;
  if (options.quick && size.bytes > MiB) return "quick mode: JSON numbers up to 1 MiB";
  // A smaller size was already too big or too slow.
  if (previous?.missing.json !== undefined) return previous.missing.json;
  const before = previous?.ms.json;
  if (before === undefined || previous === undefined) return undefined;
  // Predicted from the previous size, growing linearly: verify, warm-up and timed calls.
  const predicted = before * (size.bytes / previous.size.bytes) * (calls + 2);
  return predicted > JSON_SIZE_BUDGET_MS
    ? `predicted ${(predicted / 1000).toFixed(0)} s, over the ${
      JSON_SIZE_BUDGET_MS / 1000
    } s budget`
    : undefined;
}

async function logBlock(options: Options, what: string, samples: readonly number[]): Promise<void> {
  if (options.verbose) {
    await writeStderr(`bench:sweep:   ${what}: ${samples.map(formatSample).join(" ")}\n`);
  }
}

/**
 * Measures one size; returns median ms per case.
 *
 * First the text and bytes cases: each is verified and warmed up, then they run in rounds of
 * blocks, text cases with text cases and bytes with bytes, in an order reversed every round
 * (ABBA), so that slow drifts of load from elsewhere fall on floor and Mist alike. Blocks rather
 * than calls taking turns, so that each case pays for its own aftermath (a server's collection
 * of the last reply's garbage runs while the next call is made, on a machine with two cores);
 * each block starts after a full collection of the client's heap and two calls that absorb the
 * previous block's aftermath. Then, with the others' payloads released, the JSON number arrays:
 * their hundreds of MB of garbage and a 64 MB array held in the heap would change the others'
 * collections.
 */
async function measureSize(
  size: Size,
  cases: readonly Case[],
  options: Options,
  previous: SizeResult | undefined,
): Promise<SizeResult> {
  const ms: SizeResult["ms"] = {};
  const min: SizeResult["min"] = {};
  const missing: SizeResult["missing"] = {};
  const defaultRounds = options.quick ? 1 : size.bytes >= MiB ? LARGE_ROUNDS : ROUNDS;
  const rounds = options.rounds ?? defaultRounds;
  const calls = options.quick ? Math.min(3, size.calls) : size.calls;
  const perBlock = Math.ceil(calls / defaultRounds);
  const warmup = options.quick ? Math.min(3, size.warmup) : size.warmup;
  const active: { kase: Case; prepared: Prepared; samples: number[] }[] = [];
  for (const kase of cases.filter((kase) => kase.key !== "json")) {
    const reason = kase.skip?.(size);
    if (reason !== undefined) {
      missing[kase.key] = reason;
      continue;
    }
    const prepared = kase.prepare(size.bytes);
    await prepared.verify(); // The first call of each case compares the whole reply.
    await measureCase(prepared, warmup, 0, []);
    active.push({ kase, prepared, samples: [] });
  }
  for (let round = 0; round < rounds; round++) {
    for (const group of ["text", "bytes"] as const) {
      const members = active.filter((entry) => groupOf(entry.kase.key) === group);
      for (const entry of round % 2 === 0 ? members : [...members].reverse()) {
        collectGarbage();
        const from = entry.samples.length;
        await measureCase(entry.prepared, 2, perBlock, entry.samples);
        const what = `${size.label} ${entry.kase.header}, round ${round + 1}`;
        await logBlock(options, what, entry.samples.slice(from));
      }
    }
  }
  for (const entry of active) {
    ms[entry.kase.key] = median(entry.samples);
    min[entry.kase.key] = Math.min(...entry.samples);
  }
  active.length = 0; // Release the payloads before the JSON arrays.

  const json = cases.find((kase) => kase.key === "json");
  if (json !== undefined) {
    const jsonCalls = options.quick ? Math.min(3, size.jsonCalls) : size.jsonCalls;
    const reason = jsonSkip(json, size, jsonCalls, options, previous);
    if (reason !== undefined) missing.json = reason;
    else {
      collectGarbage();
      const prepared = json.prepare(size.bytes);
      await prepared.verify();
      // A tenth of the calls to warm up; none from a megabyte on, where a call takes a second
      // or more (the verify call warmed it up).
      const samples: number[] = [];
      const jsonWarmup = size.bytes >= MiB ? 0 : Math.ceil(jsonCalls / 10);
      await measureCase(prepared, jsonWarmup, jsonCalls, samples);
      await logBlock(options, `${size.label} ${json.header}`, samples);
      ms.json = median(samples);
      min.json = Math.min(...samples);
    }
  }
  return { size, ms, min, missing };
}

// ---------------------------------------------------------------------------------------------
// The report.

interface Column {
  readonly header: string;
  readonly cell: (result: SizeResult) => string;
}

function formatMs(ms: number | undefined): string {
  if (ms === undefined) return "n/a";
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 100) return `${ms.toFixed(2)} ms`;
  return `${ms.toFixed(0)} ms`;
}

/** Which figure of a case: its median round trip, or its fastest. */
type Stat = "ms" | "min";

function ratio(
  result: SizeResult,
  top: CaseKey,
  bottom: CaseKey,
  stat: Stat = "ms",
): number | undefined {
  const a = result[stat][top];
  const b = result[stat][bottom];
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

function formatRatio(value: number | undefined): string {
  return value === undefined ? "n/a" : `${value.toFixed(2)}×`;
}

/** A ratio between two cases, shown as a column and charted. */
interface Ratio {
  readonly header: string;
  readonly top: CaseKey;
  readonly bottom: CaseKey;
}

function ratiosOf(options: Options): Ratio[] {
  return [
    { header: "Mist text ÷ floor", top: "mistText", bottom: "textFloor" },
    { header: "Mist bytes ÷ floor", top: "mistBytes", bottom: "bytesFloor" },
    { header: "JSON numbers ÷ Mist bytes", top: "json", bottom: "mistBytes" },
    ...(options.nativeFloor
      ? [
        { header: "Mist text ÷ native floor", top: "mistText", bottom: "textNative" },
        { header: "Mist bytes ÷ native floor", top: "mistBytes", bottom: "bytesNative" },
      ] satisfies Ratio[]
      : []),
  ];
}

function columnsOf(cases: readonly Case[], options: Options, stat: Stat): Column[] {
  return [
    { header: stat === "ms" ? "size" : "size (fastest)", cell: (r) => r.size.label },
    ...cases.map((kase) => ({
      header: kase.header,
      cell: (r: SizeResult) => formatMs(r[stat][kase.key]),
    })),
    ...ratiosOf(options).map((q) => ({
      header: q.header,
      cell: (r: SizeResult) => formatRatio(ratio(r, q.top, q.bottom, stat)),
    })),
  ];
}

function matrix(results: readonly SizeResult[], columns: readonly Column[]): string[][] {
  return [columns.map((c) => c.header), ...results.map((r) => columns.map((c) => c.cell(r)))];
}

function renderText(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const line = (row: string[]): string =>
    row.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join("  ");
  return [line(rows[0]), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)]
    .join("\n");
}

function renderMarkdown(rows: string[][]): string {
  const line = (row: string[]): string => `| ${row.join(" | ")} |`;
  const align = `| ${rows[0].map((_, i) => i === 0 ? ":--" : "--:").join(" | ")} |`;
  return [line(rows[0]), align, ...rows.slice(1).map(line)].join("\n");
}

function acceptance(results: readonly SizeResult[]): string[] {
  const at = results.find((r) => r.size.bytes === ACCEPTANCE_BYTES);
  if (at === undefined) return ["Issue 14 at 8 MiB: not measured."];
  const verdict = (value: number | undefined, ok: (value: number) => boolean): string =>
    value === undefined ? "not measured" : ok(value) ? "met" : "MISSED";
  const line = (
    what: string,
    top: CaseKey,
    bottom: CaseKey,
    target: string,
    ok: (value: number) => boolean,
  ): string => {
    const median = ratio(at, top, bottom);
    const fastest = ratio(at, top, bottom, "min");
    const why = at.missing[top] ?? at.missing[bottom];
    if (median === undefined || fastest === undefined) {
      return `Issue 14 at 8 MiB: ${what}: not measured` + (why === undefined ? "" : ` (${why})`);
    }
    return `Issue 14 at 8 MiB: ${what} = ${formatRatio(median)} by medians, ` +
      `${formatRatio(fastest)} by fastest round trips (target ${target}): ` +
      `${verdict(median, ok)} by medians, ${verdict(fastest, ok)} by fastest`;
  };
  return [
    line(
      "Mist bytes echo ÷ raw binary echo",
      "mistBytes",
      "bytesFloor",
      `≤ ${BYTES_TARGET}`,
      (v) => v <= BYTES_TARGET,
    ),
    line(
      "JSON number array ÷ Mist bytes echo",
      "json",
      "mistBytes",
      `≥ ${JSON_TARGET}`,
      (v) => v >= JSON_TARGET,
    ),
  ];
}

function notes(
  machine: Machine,
  options: Options,
  cases: readonly Case[],
  results: readonly SizeResult[],
  seconds: number,
): string[] {
  // One line per case and reason, with the sizes it applies to.
  const byReason = new Map<string, string[]>();
  for (const result of results) {
    for (const kase of cases) {
      const why = result.missing[kase.key];
      if (why === undefined) continue;
      const key = `${kase.header}: ${why}`;
      byReason.set(key, [...byReason.get(key) ?? [], result.size.label]);
    }
  }
  return [
    `Date: ${machine.date}; mode: ${options.quick ? "quick" : "full"}; whole run: ${
      seconds.toFixed(1)
    } s; Deno ${machine.deno}; CPU: ${machine.cpu} (${machine.cores} logical cores)`,
    `First table: each case's median round trip (call to reply) after warm-up; second table: ` +
    `its fastest, a round trip with no TCP stall and no collection (large messages on loopback ` +
    `here have both, in streaks). Each case uses ${options.quick ? 1 : CONNECTIONS} ` +
    `connection(s) in turn. Text and ` +
    `bytes cases run in ${
      options.rounds ?? (options.quick ? 1 : `${ROUNDS} (from 1 MiB: ${LARGE_ROUNDS})`)
    } round(s) of blocks (ABBA order, a full ` +
    `GC of the client before each block${gcNote()}); the JSON arrays after them. Servers in ` +
    `their own processes on 127.0.0.1: the Mist runner (tools/serve.ts, --max-message-bytes ` +
    `${MAX_MESSAGE_BYTES}) and a raw Deno.serve echo; clients here, Mist's and the floors' on ` +
    `Mist's no-delay socket` +
    (options.nativeFloor ? ", the native floors on Deno's WebSocket." : "."),
    `text floor: the request text Mist sends for the call, built once, echoed verbatim (no JSON ` +
    `either side); bytes floor: the bytes as one binary frame, echoed verbatim; JSON numbers: ` +
    `the bytes as an array of numbers through Mist. Payloads: "x" repeated; pseudo-random bytes.`,
    ...[...byReason].map(([key, sizes]) => `Missing — ${key} (${sizes.join(", ")})`),
  ];
}

// ---------------------------------------------------------------------------------------------
// The chart: three panels on a log-scale size axis.

/** Each case's colour, from bench:compare's palette; a ratio takes its numerator's colour. */
const CASE_COLORS: Record<CaseKey, string> = {
  textFloor: COLORS[1],
  mistText: COLORS[3],
  textNative: COLORS[2],
  bytesFloor: COLORS[4],
  mistBytes: COLORS[6],
  bytesNative: COLORS[5],
  json: COLORS[8],
};

function isFloor(key: CaseKey): boolean {
  return key.endsWith("Floor") || key.endsWith("Native");
}

interface Series {
  readonly name: string;
  readonly color: string;
  readonly dashed?: boolean;
  readonly points: readonly (readonly [number, number])[];
}

interface Panel {
  readonly title: string;
  readonly hint: string;
  readonly logY: boolean;
  readonly series: readonly Series[];
  /** Horizontal reference lines: value and label. */
  readonly marks: readonly (readonly [number, string])[];
  readonly format: (value: number) => string;
}

const PANEL_W = 360;
const PLOT_W = 280;
const PLOT_H = 240;
const TOP = 64;
const LEFT = 60;

function ticks(low: number, high: number, log: boolean): number[] {
  if (log) {
    // Powers of ten; with 1-2-5 steps between them when the axis spans few decades.
    const first = Math.floor(Math.log10(low)), last = Math.ceil(Math.log10(high));
    const steps = last - first <= 3 ? [1, 2, 5] : [1];
    const out: number[] = [];
    for (let e = first; e <= last; e++) {
      for (const step of steps) {
        const value = step * 10 ** e;
        if (value >= low * 0.999 && value <= high * 1.001) out.push(value);
      }
    }
    return out;
  }
  const step = [0.25, 0.5, 1, 2, 5, 10, 20, 50].find((s) => (high - low) / s <= 6) ?? 100;
  const out: number[] = [];
  for (let v = Math.ceil(low / step) * step; v <= high + 1e-9; v += step) out.push(v);
  return out;
}

function sizeLabel(bytes: number): string {
  return bytes >= MiB ? `${bytes / MiB} MiB` : bytes >= KiB ? `${bytes / KiB} KiB` : `${bytes} B`;
}

function drawPanel(panel: Panel, index: number, sizes: readonly number[]): string {
  const x0 = LEFT + index * PANEL_W;
  const values = panel.series.flatMap((s) => s.points.map(([, v]) => v)).concat(
    panel.marks.map(([v]) => v),
  );
  if (values.length === 0) values.push(1);
  let low = Math.min(...values);
  let high = Math.max(...values);
  if (panel.logY) {
    low = 10 ** Math.floor(Math.log10(low));
    high = 10 ** Math.ceil(Math.log10(high));
  } else {
    low = 0;
    high = Math.max(1.5, high * 1.1);
  }
  const xLow = Math.log10(sizes[0]);
  const xHigh = Math.log10(sizes[sizes.length - 1]);
  const px = (bytes: number): number => x0 + ((Math.log10(bytes) - xLow) / (xHigh - xLow)) * PLOT_W;
  const py = (value: number): number => {
    const f = panel.logY
      ? (Math.log10(value) - Math.log10(low)) / (Math.log10(high) - Math.log10(low))
      : (value - low) / (high - low);
    return TOP + PLOT_H - f * PLOT_H;
  };
  const parts = [
    text(x0 + PLOT_W / 2, 24, panel.title, 'text-anchor="middle" font-weight="bold"'),
    text(x0 + PLOT_W / 2, 42, panel.hint, 'text-anchor="middle" fill="#555"'),
    `<rect x="${x0}" y="${TOP}" width="${PLOT_W}" height="${PLOT_H}" fill="none" stroke="#333"/>`,
  ];
  for (const tick of ticks(low, high, panel.logY)) {
    const y = py(tick);
    parts.push(
      `<line x1="${x0}" y1="${y.toFixed(1)}" x2="${x0 + PLOT_W}" y2="${
        y.toFixed(1)
      }" stroke="#e5e7eb"/>`,
      text(x0 - 4, y + 4, panel.format(tick), 'text-anchor="end" font-size="10"'),
    );
  }
  for (const size of sizes) {
    const x = px(size);
    parts.push(
      `<line x1="${x.toFixed(1)}" y1="${TOP}" x2="${x.toFixed(1)}" y2="${
        TOP + PLOT_H
      }" stroke="#f3f4f6"/>`,
      text(
        x + 3,
        TOP + PLOT_H + 12,
        sizeLabel(size),
        `text-anchor="end" font-size="9" transform="rotate(-45 ${(x + 3).toFixed(1)} ${
          TOP + PLOT_H + 12
        })"`,
      ),
    );
  }
  for (const [value, label] of panel.marks) {
    const y = py(value);
    parts.push(
      `<line x1="${x0}" y1="${y.toFixed(1)}" x2="${x0 + PLOT_W}" y2="${
        y.toFixed(1)
      }" stroke="#111" stroke-dasharray="4 3"/>`,
    );
    // 1× needs no label: the axis has it.
    if (value !== 1) {
      parts.push(text(x0 + PLOT_W + 4, y + 4, label, 'font-size="10" font-weight="bold"'));
    }
  }
  for (const series of panel.series) {
    if (series.points.length === 0) continue;
    const path = series.points.map(([s, v]) => `${px(s).toFixed(1)},${py(v).toFixed(1)}`);
    const dash = series.dashed ? ' stroke-dasharray="6 3"' : "";
    parts.push(
      `<polyline points="${path.join(" ")}" fill="none" stroke="${series.color}" ` +
        `stroke-width="2"${dash}/>`,
      ...series.points.map(([s, v]) =>
        `<circle cx="${px(s).toFixed(1)}" cy="${py(v).toFixed(1)}" r="3" fill="${series.color}">` +
        `<title>${
          escapeXml(`${series.name}, ${sizeLabel(s)}: ${panel.format(v)}`)
        }</title></circle>`
      ),
    );
  }
  return parts.join("\n");
}

function renderSvg(
  results: readonly SizeResult[],
  cases: readonly Case[],
  options: Options,
  caption: string,
): string {
  const sizes = SIZES.map((s) => s.bytes);
  const timeSeries = cases.map((kase): Series => ({
    name: kase.header,
    color: CASE_COLORS[kase.key],
    dashed: isFloor(kase.key),
    points: results.flatMap((r) => {
      const ms = r.ms[kase.key];
      return ms === undefined ? [] : [[r.size.bytes, ms] as const];
    }),
  }));
  const ratioSeries = (q: Ratio, stat: Stat = "ms"): Series => ({
    name: stat === "ms" ? `${q.header}, medians` : `${q.header}, fastest`,
    color: CASE_COLORS[q.top],
    dashed: stat === "min",
    points: results.flatMap((r) => {
      const value = ratio(r, q.top, q.bottom, stat);
      return value === undefined ? [] : [[r.size.bytes, value] as const];
    }),
  });
  const ratios = ratiosOf(options);
  const panels: Panel[] = [
    {
      title: "Median echo round trip",
      hint: "ms, log scale; dashed = floors",
      logY: true,
      series: timeSeries,
      marks: [],
      format: (v) => v >= 1 ? `${v} ms` : `${Math.round(v * 1000)} µs`,
    },
    {
      title: "Mist ÷ its floor",
      hint: `log scale; dashed: fastest ÷ fastest; target ${BYTES_TARGET}×`,
      logY: true,
      series: ratios.filter((q) => q.bottom === "textFloor" || q.bottom === "bytesFloor")
        .flatMap((q) => [ratioSeries(q), ratioSeries(q, "min")]),
      marks: [[1, "1×"], [BYTES_TARGET, `${BYTES_TARGET}×`]],
      format: (v) => `${v >= 10 ? v.toFixed(0) : v < 1 ? v.toFixed(2) : v.toFixed(1)}×`,
    },
    {
      title: "JSON numbers ÷ Mist bytes",
      hint: `× Mist bytes, log scale; target ≥ ${JSON_TARGET}×`,
      logY: true,
      series: ratios.filter((q) => q.bottom === "mistBytes").map((q) => ratioSeries(q)),
      marks: [[JSON_TARGET, `${JSON_TARGET}×`]],
      format: (v) => `${v >= 10 ? v.toFixed(0) : v.toFixed(1)}×`,
    },
  ];
  const width = LEFT + panels.length * PANEL_W;
  const legendTop = TOP + PLOT_H + 56;
  const height = legendTop + Math.max(...panels.map((p) => p.series.length)) * 18 + 30;
  // Each panel's legend under it.
  const legend = panels.flatMap((panel, p) =>
    panel.series.map((s, i) => {
      const x = LEFT + p * PANEL_W;
      const y = legendTop + i * 18;
      const dash = s.dashed ? ' stroke-dasharray="6 3"' : "";
      return `<line x1="${x}" y1="${y - 4}" x2="${x + 22}" y2="${y - 4}" stroke="${s.color}" ` +
        `stroke-width="2"${dash}/>\n${text(x + 28, y, s.name)}`;
    })
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...panels.map((panel, i) => drawPanel(panel, i, sizes)),
    ...legend,
    text(LEFT, height - 10, caption, 'fill="#555" font-size="11"'),
    `</svg>`,
    "",
  ].join("\n");
}

async function writeOut(path: string, content: string): Promise<void> {
  const parent = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
  if (parent !== "") await Deno.mkdir(parent, { recursive: true });
  await Deno.writeTextFile(path, content);
  await writeStderr(`bench:sweep: wrote ${path}\n`);
}

// ---------------------------------------------------------------------------------------------

/** Asks Mist to echo a few bytes; returns why bytes cannot be measured, or undefined. */
async function bytesRefusal(client: Client): Promise<string | undefined> {
  try {
    const result = await withTimeout(client.call("echo", [new Uint8Array([1, 2, 3])]), "probe");
    const value = Array.isArray(result) ? result[0] : undefined;
    if (value instanceof Uint8Array && sameBytes(value, new Uint8Array([1, 2, 3]))) {
      return undefined;
    }
    return `Mist returned ${describe(value)} for a Uint8Array`;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return `Mist refuses a Uint8Array: ${message.split("\n")[0].slice(0, 140)}`;
  }
}

async function main(options: Options): Promise<number> {
  const started = performance.now();
  const machine = await describeMachine();
  const secret = SharedSecret.generate();
  const children: Child[] = [];
  const stopAll = (): Promise<unknown> => Promise.all(children.map((child) => child.stop()));
  const onSignal = (): void => {
    stopAll().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  const sockets: RawEcho[] = [];
  const clients: Client[] = [];
  try {
    const mist = await startServer("Mist runner", [
      "run",
      "--quiet",
      "--allow-net=127.0.0.1,[::1]",
      "--allow-env=MIST_SECRET",
      "tools/serve.ts",
      "--max-message-bytes",
      String(MAX_MESSAGE_BYTES),
    ], { MIST_SECRET: secret.toHex() });
    children.push(mist.child);
    const raw = await startServer("raw echo server", [
      "run",
      "--quiet",
      "--allow-net=127.0.0.1",
      "bench/payload_sweep.ts",
      "--serve-raw",
    ]);
    children.push(raw.child);

    const connections = options.quick ? 1 : CONNECTIONS;
    const open = async (make: () => WebSocketLike & { binaryType: string }) => {
      const echoes: RawEcho[] = [];
      for (let i = 0; i < connections; i++) echoes.push(await RawEcho.open(make()));
      sockets.push(...echoes);
      return new RawEchoPool(echoes);
    };
    for (let i = 0; i < connections; i++) {
      const client = new Client(mist.url, {
        secret,
        maxMessageBytes: MAX_MESSAGE_BYTES,
        defaultTimeoutMs: CALL_TIMEOUT_MS,
        heartbeat: false,
        reconnect: false,
      });
      clients.push(client);
      await client.opened();
    }
    const noDelay = await open(() =>
      new NoDelayWebSocket(raw.url, { maxMessageBytes: MAX_MESSAGE_BYTES_LIMIT })
    );
    const native = options.nativeFloor ? await open(() => new WebSocket(raw.url)) : undefined;

    const refused = await bytesRefusal(clients[0]);
    if (refused !== undefined) await writeStderr(`bench:sweep: ${refused}\n`);
    const [mistText, mistBytes, json] = mistCases(clients, refused);
    const cases: Case[] = [
      textCase("textFloor", "text floor", noDelay),
      mistText,
      ...(native ? [textCase("textNative", "text floor (native)", native)] : []),
      bytesCase("bytesFloor", "bytes floor", noDelay),
      mistBytes,
      ...(native ? [bytesCase("bytesNative", "bytes floor (native)", native)] : []),
      json,
    ];

    const results: SizeResult[] = [];
    const sizes = SIZES.filter((size) =>
      options.sizes?.includes(size.label.replaceAll(" ", "")) ?? true
    );
    for (const size of sizes) {
      if (performance.now() - started > RUN_BUDGET_MS) {
        await writeStderr(`bench:sweep: out of time before ${size.label}\n`);
        break;
      }
      await writeStderr(`bench:sweep: ${size.label}…\n`);
      const result = await measureSize(size, cases, options, results.at(-1));
      results.push(result);
      const figures = cases.map((kase) => `${kase.header} ${formatMs(result.ms[kase.key])}`);
      await writeStderr(`bench:sweep: ${size.label}: ${figures.join(", ")}\n`);
    }

    const seconds = (performance.now() - started) / 1000;
    const rows = matrix(results, columnsOf(cases, options, "ms"));
    const fastest = matrix(results, columnsOf(cases, options, "min"));
    const lines = notes(machine, options, cases, results, seconds);
    console.log(
      [
        renderText(rows),
        "",
        renderText(fastest),
        "",
        ...acceptance(results),
        "",
        ...lines,
        "",
      ].join("\n"),
    );
    const caption = `Payload sweep, ${options.quick ? "quick" : "full"} run, ${machine.date}, ` +
      `Deno ${machine.deno}, ${machine.cpu}`;
    await writeOut(options.svg, renderSvg(results, cases, options, caption));
    if (options.markdown !== undefined) {
      const body = [
        renderMarkdown(rows),
        "",
        renderMarkdown(fastest),
        "",
        ...acceptance(results).map((line) => `- ${line}`),
        ...lines.map((line) => `- ${line}`),
        "",
      ];
      await writeOut(options.markdown, body.join("\n"));
    }
    return 0;
  } finally {
    for (const socket of sockets) socket.close();
    await Promise.all(clients.map((client) => client.close()));
    await stopAll();
    Deno.removeSignalListener("SIGINT", onSignal);
  }
}

if (import.meta.main) {
  if (Deno.args[0] === "--serve-raw") serveRaw();
  else {
    let options: Options | undefined;
    try {
      options = parseOptions(Deno.args);
    } catch (error) {
      await writeStderr(`${error instanceof Error ? error.message : error}\n\n${USAGE}`);
      Deno.exit(2);
    }
    if (options === undefined) {
      console.log(USAGE);
      Deno.exit(0);
    }
    try {
      Deno.exit(await main(options));
    } catch (error) {
      await writeStderr(`bench:sweep: ${error instanceof Error ? error.stack : error}\n`);
      Deno.exit(1);
    }
  }
}
