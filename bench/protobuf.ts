/**
 * Protobuf vs JSON for a batch of 10,000 diagnostics (issue 14), through a real Mist server on
 * 127.0.0.1 in this process:
 *
 * - **bytes on the wire**: each message's payload, counted on the client's socket (JSON: the
 *   envelope's UTF-8 text; protobuf: Mist's binary message, the encoded batch plus its framing);
 *   the WebSocket frame header (at most 14 bytes) is not counted;
 * - **time per round**, client → server: encode, call, the server decodes and answers a small
 *   summary; server → client: call, the server encodes and returns the batch, the client decodes.
 *   JSON's encode and decode are Mist's own `JSON.stringify`/`JSON.parse`; protobuf's are
 *   `toBinary`/`fromBinary` around a `Uint8Array` that Mist sends as bytes;
 * - **the codec alone**, in memory, for comparison with the round trips.
 *
 * Warm-up rounds first, then rounds interleaved across the variants (the machine is shared and
 * noisy), median and p90. Every loop is bounded. Run `./deno task proto` first (the task
 * `bench:protobuf` does).
 *
 * ```sh
 * ./deno task bench:protobuf [--rounds 30] [--warmup 5] [--diagnostics 10000] [--no-resume]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  Client,
  consoleLogger,
  HandlerRegistry,
  serveLocal,
  SharedSecret,
  type WebSocketLike,
} from "../mod.ts";
import { NoDelayWebSocket } from "../_socket/no_delay.ts";
import { DiagnosticsBatchSchema } from "../examples/protobuf/gen/diagnostics_pb.ts";
import { sampleDiagnostics } from "../examples/protobuf/sample.ts";

const { values: args } = parseArgs({
  options: {
    rounds: { type: "string", default: "30" },
    warmup: { type: "string", default: "5" },
    diagnostics: { type: "string", default: "10000" },
    // Both ends without the resume feature (its replay buffer), to see what it costs here.
    "no-resume": { type: "boolean", default: false },
  },
});
const ROUNDS = Number(args.rounds);
const WARMUP = Number(args.warmup);
const COUNT = Number(args.diagnostics);
for (const [name, value] of [["rounds", ROUNDS], ["warmup", WARMUP], ["diagnostics", COUNT]]) {
  if (!Number.isSafeInteger(value) || (value as number) < (name === "warmup" ? 0 : 1)) {
    throw new RangeError(`--${name} must be a whole number, got "${args[name as "rounds"]}"`);
  }
}

const plain = sampleDiagnostics(COUNT); // the JSON payload, and the protobuf message's init
const message = create(DiagnosticsBatchSchema, plain);

/** A summary small enough that its cost is the same either way. */
function summary(count: number, uri: string): { count: number; uri: string } {
  return { count, uri };
}

const registry = new HandlerRegistry()
  .register("json.publish", ([batch]) => {
    const { diagnostics, uri } = batch as typeof plain;
    return summary(diagnostics!.length, uri!);
  })
  .register("protobuf.publish", ([bytes]) => {
    const batch = fromBinary(DiagnosticsBatchSchema, bytes as Uint8Array);
    return summary(batch.diagnostics.length, batch.uri);
  })
  .register("json.fetch", () => plain)
  .register("protobuf.fetch", () => toBinary(DiagnosticsBatchSchema, message));

/** One way of moving the batch; `run` does one round and checks what came through. */
interface Variant {
  name: string;
  run(client: Client): Promise<void>;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`Wrong result: ${what}`);
}

const VARIANTS: Variant[] = [
  {
    name: "client → server, JSON",
    async run(client) {
      const answer = await client.call("json.publish", [plain]) as { count: number };
      check(answer.count === COUNT, "json.publish");
    },
  },
  {
    name: "client → server, protobuf",
    async run(client) {
      const bytes = toBinary(DiagnosticsBatchSchema, message);
      const answer = await client.call("protobuf.publish", [bytes]) as { count: number };
      check(answer.count === COUNT, "protobuf.publish");
    },
  },
  {
    name: "server → client, JSON",
    async run(client) {
      const batch = await client.call("json.fetch") as typeof plain;
      check(batch.diagnostics!.length === COUNT, "json.fetch");
    },
  },
  {
    name: "server → client, protobuf",
    async run(client) {
      const bytes = await client.call("protobuf.fetch") as Uint8Array;
      check(
        fromBinary(DiagnosticsBatchSchema, bytes).diagnostics.length === COUNT,
        "protobuf.fetch",
      );
    },
  },
];

/**
 * A socket that counts the payload bytes it sends and receives (only for the byte counts). The
 * protocol's own `$/` messages (acknowledgements of the resume feature, sent when the receiver
 * gets to it) are counted apart, so that each call's figure is its request and its response.
 */
class CountingSocket implements WebSocketLike {
  sent = 0;
  received = 0;
  housekeeping = 0;
  readonly #inner: WebSocketLike;
  constructor(inner: WebSocketLike) {
    this.#inner = inner;
    // Counted once here: Mist may listen for messages more than once.
    inner.addEventListener("message", ({ data }) => {
      if (isHousekeeping(data)) this.housekeeping += size(data);
      else this.received += size(data);
    });
  }
  get readyState(): number {
    return this.#inner.readyState;
  }
  get bufferedAmount(): number {
    return this.#inner.bufferedAmount;
  }
  get protocol(): string {
    return this.#inner.protocol;
  }
  get binaryType(): string {
    return this.#inner.binaryType;
  }
  set binaryType(value: string) {
    this.#inner.binaryType = value;
  }
  send(data: string | ArrayBuffer | Uint8Array): void {
    if (isHousekeeping(data)) this.housekeeping += size(data);
    else this.sent += size(data);
    this.#inner.send(data);
  }
  close(code?: number, reason?: string): void {
    this.#inner.close(code, reason);
  }
  addEventListener(...[type, listener]: Parameters<WebSocketLike["addEventListener"]>): void {
    this.#inner.addEventListener(type, listener);
  }
}

const utf8 = new TextEncoder();

/** Whether a frame is one of the protocol's own messages (a small text frame, method `$/…`). */
function isHousekeeping(data: unknown): boolean {
  if (typeof data !== "string" || data.length > 1_024) return false;
  const method = JSON.parse(data).method;
  return typeof method === "string" && method.startsWith("$/");
}
function size(data: unknown): number {
  if (typeof data === "string") return utf8.encode(data).byteLength;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  return 0;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function median(sorted: number[]): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const count = (bytes: number) => bytes.toLocaleString("en");
const ms = (value: number) => `${value.toFixed(2)} ms`;

/** Times `fn` over warm-up then measured rounds; returns the sorted times in ms. */
function timeSync(fn: () => unknown): number[] {
  const times: number[] = [];
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    const start = performance.now();
    fn();
    if (i >= WARMUP) times.push(performance.now() - start);
  }
  return times.sort((a, b) => a - b);
}

const secret = SharedSecret.generate();
const resume = args["no-resume"] ? false : undefined; // undefined: the default, on
await using server = serveLocal({ secret, registry, resume, logger: consoleLogger("silent") });

// Bytes: one round of each variant on a client whose socket counts.
const counted: { socket?: CountingSocket } = {};
const bytes = new Map<string, { sent: number; received: number }>();
let housekeeping = 0; // `$/` messages during the counted calls, both ways
{
  await using client = new Client(server.url, {
    secret,
    heartbeat: false,
    reconnect: false,
    resume,
    webSocketFactory: (url, init) =>
      counted.socket = new CountingSocket(new NoDelayWebSocket(url, init)),
  });
  await client.opened();
  const atStart = counted.socket!.housekeeping;
  for (const variant of VARIANTS) {
    const socket = counted.socket!;
    const before = { sent: socket.sent, received: socket.received };
    await variant.run(client);
    bytes.set(variant.name, {
      sent: socket.sent - before.sent,
      received: socket.received - before.received,
    });
  }
  housekeeping = counted.socket!.housekeeping - atStart;
}

// Time: warm-up, then rounds interleaved across the variants, on Mist's default socket.
const times = new Map<string, number[]>(VARIANTS.map((variant) => [variant.name, []]));
{
  await using client = new Client(server.url, {
    secret,
    heartbeat: false,
    reconnect: false,
    resume,
  });
  await client.opened();
  for (let round = 0; round < WARMUP + ROUNDS; round++) {
    for (const variant of VARIANTS) {
      const start = performance.now();
      await variant.run(client);
      if (round >= WARMUP) times.get(variant.name)!.push(performance.now() - start);
    }
  }
}

// The codec alone, in memory.
const text = JSON.stringify(plain);
const encoded = toBinary(DiagnosticsBatchSchema, message);
const codec = [
  ["JSON.stringify", timeSync(() => JSON.stringify(plain))],
  ["JSON.parse", timeSync(() => JSON.parse(text))],
  ["protobuf toBinary", timeSync(() => toBinary(DiagnosticsBatchSchema, message))],
  ["protobuf fromBinary", timeSync(() => fromBinary(DiagnosticsBatchSchema, encoded))],
] as const;

const jsonBatch = utf8.encode(text).byteLength;
console.log(
  `${COUNT.toLocaleString("en")} diagnostics (the batch alone: JSON ${count(jsonBatch)} B, ` +
    `protobuf ${count(encoded.byteLength)} B); ${ROUNDS} rounds after ${WARMUP} warm-up; ` +
    `resume ${resume === false ? "off" : "on"}; Deno ${Deno.version.deno}; ` +
    `${navigator.hardwareConcurrency} cores\n`,
);
console.log(
  "| variant | client → server (B) | server → client (B) | median | p90 | median ÷ JSON's |",
);
console.log("| :-- | --: | --: | --: | --: | --: |");
const medians = new Map<string, number>();
for (const variant of VARIANTS) {
  const { sent, received } = bytes.get(variant.name)!;
  const sorted = times.get(variant.name)!.sort((a, b) => a - b);
  medians.set(variant.name, median(sorted));
  const json = medians.get(variant.name.replace("protobuf", "JSON"))!;
  console.log(
    `| ${variant.name} | ${count(sent)} | ${count(received)} | ${ms(median(sorted))} | ` +
      `${ms(quantile(sorted, 0.9))} | ${(median(sorted) / json).toFixed(2)}× |`,
  );
}
console.log(
  `\nNot in the table: ${count(housekeeping)} B of the protocol's own \`$/\` messages ` +
    "(acknowledgements) during these four calls, both ways together.",
);
console.log("\n| codec alone, in memory | median | p90 |");
console.log("| :-- | --: | --: |");
for (const [name, sorted] of codec) {
  console.log(`| ${name} | ${ms(median(sorted))} | ${ms(quantile(sorted, 0.9))} |`);
}
