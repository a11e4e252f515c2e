/**
 * Property tests of `NoDelayWebSocket`'s frame parser: random server frame streams, valid and
 * invalid, handed to the socket in reads split at random byte boundaries, through an in-memory
 * connection (`fakeSocket`), so each run takes well under a millisecond of I/O.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  clientFrames,
  fakeSocket,
  memoryInUse,
  MIB,
  serverFrame,
  watch,
} from "./_hostile_server.ts";
import { validCloseCode } from "../_socket/frame.ts";

const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });

type Message = { text: string } | { bytes: Uint8Array };

interface Item {
  message: Message;
  /** Where the payload is split into fragments (taken modulo its length + 1). */
  cuts: number[];
  /** Pings and pongs sent before the message, or between its first fragments. */
  controls: { opcode: number; payload: Uint8Array }[];
}

/** Bytes of a large payload, cheap to make: a pattern from a seed. */
function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (seed + i * 31) & 0xff;
  return out;
}

const message: fc.Arbitrary<Message> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.tuple(
      fc.constantFrom("", "\uFEFF"),
      fc.string({ unit: "binary", maxLength: 200 }),
    ).map(([bom, text]) => ({ text: bom + text })),
  },
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes) => ({ bytes })) },
  {
    weight: 1, // over the 64 KiB read buffer, with a 16- or 64-bit length
    arbitrary: fc.tuple(fc.integer({ min: 60_000, max: 200_000 }), fc.nat(255), fc.boolean()).map((
      [length, seed, text],
    ) => text ? { text: "é".repeat(length >> 1) } : { bytes: pattern(length, seed) }),
  },
);

const control = fc.record({
  opcode: fc.constantFrom(9, 10),
  payload: fc.uint8Array({ maxLength: 125 }),
});

const item: fc.Arbitrary<Item> = fc.record({
  message,
  cuts: fc.array(fc.nat(), { maxLength: 4 }),
  controls: fc.array(control, { maxLength: 2 }),
});

/** How the server ends: a close frame with a code and reason, an empty one, or just EOF. */
type Ending = { code: number; reason: string } | "empty" | "eof";

const ending: fc.Arbitrary<Ending> = fc.oneof(
  fc.record({
    code: fc.constantFrom(1000, 1001, 1003, 1011, 3000, 4999),
    reason: fc.string({ maxLength: 30 }).filter((reason) => encoder.encode(reason).length <= 123),
  }),
  fc.constant("empty" as const),
  fc.constant("eof" as const),
);

/** Read sizes: often tiny, so heads, lengths and UTF-8 sequences get split. */
const sizes = fc.array(
  fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 70_000 })),
  { maxLength: 40 },
);

interface Stream {
  bytes: Uint8Array;
  /** Where each frame starts, and the end. */
  starts: number[];
  messages: (string | Uint8Array)[];
  pings: Uint8Array[];
  code: number;
  reason: string;
}

function payloadOf(message: Message): Uint8Array {
  return "text" in message ? encoder.encode(message.text) : message.bytes;
}

/** The server's bytes for `items` and `end`, and what the client should make of them. */
function build(items: Item[], end: Ending): Stream {
  const parts: Uint8Array[] = [], messages: (string | Uint8Array)[] = [], pings: Uint8Array[] = [];
  for (const { message, cuts, controls } of items) {
    const payload = payloadOf(message);
    const points = [...new Set(cuts.map((cut) => cut % (payload.length + 1)))].sort((a, b) =>
      a - b
    );
    const bounds = [0, ...points, payload.length];
    const fragments = bounds.slice(1).map((to, i) => payload.subarray(bounds[i], to));
    const injected = controls.map(({ opcode, payload }) => serverFrame(opcode, payload));
    for (const { opcode, payload } of controls) if (opcode === 9) pings.push(payload);
    if (fragments.length === 1) parts.push(...injected);
    fragments.forEach((fragment, i) => {
      const opcode = i > 0 ? 0 : "text" in message ? 1 : 2;
      parts.push(serverFrame(opcode, fragment, { fin: i === fragments.length - 1 }));
      if (i === 0 && fragments.length > 1) parts.push(...injected);
    });
    messages.push("text" in message ? utf8.decode(payload) : payload);
  }
  let code = 1006, reason = "";
  if (end === "empty") {
    code = 1005;
    parts.push(serverFrame(8));
  } else if (end !== "eof") {
    code = end.code;
    const text = encoder.encode(end.reason);
    parts.push(serverFrame(8, new Uint8Array([code >> 8, code & 0xff, ...text])));
    reason = utf8.decode(text);
  }
  const starts = [0];
  for (const part of parts) starts.push(starts[starts.length - 1] + part.length);
  const bytes = new Uint8Array(starts[starts.length - 1]);
  parts.forEach((part, i) => bytes.set(part, starts[i]));
  return { bytes, starts, messages, pings, code, reason };
}

/** Runs the socket over `bytes` read in `sizes`; resolves with everything it reported. */
async function run(bytes: Uint8Array, reads: number[], maxMessageBytes?: number): Promise<{
  events: string[];
  messages: unknown[];
  code: number;
  reason: string;
  sent: { opcode: number; payload: Uint8Array }[];
  largestRead: number;
}> {
  const { socket, conn } = fakeSocket(bytes, reads, { maxMessageBytes });
  socket.binaryType = "arraybuffer";
  const { events, messages, closed } = watch(socket);
  const { code, reason } = await closed;
  const written = new Uint8Array(conn.written.reduce((sum, part) => sum + part.length, 0));
  conn.written.reduce((at, part) => (written.set(part, at), at + part.length), 0);
  assert.ok(conn.closed, "the connection is closed at the end");
  const { largestRead } = conn;
  return { events, messages, code, reason, sent: clientFrames(written), largestRead };
}

function sameMessages(actual: unknown[], expected: (string | Uint8Array)[]): void {
  assert.equal(actual.length, expected.length, "message count");
  expected.forEach((want, i) => {
    const got = actual[i];
    if (typeof want === "string") assert.equal(got, want);
    else {
      assert.ok(got instanceof ArrayBuffer);
      assert.deepEqual(new Uint8Array(got), want);
    }
  });
}

Deno.test("NoDelayWebSocket delivers the same messages, pongs and close from a valid stream whatever the read split", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(item, { maxLength: 8 }), ending, sizes, async (items, end, reads) => {
      const stream = build(items, end);
      const { events, messages, code, reason, sent } = await run(stream.bytes, reads);
      sameMessages(messages, stream.messages);
      assert.deepEqual([code, reason], [stream.code, stream.reason]);
      assert.deepEqual(events.filter((e) => e !== "message"), ["open", "close"]);
      // Pongs answer pings in order, possibly only the latest of several, and the last ping is
      // always answered.
      const pongs = sent.filter((frame) => frame.opcode === 10).map((frame) => frame.payload);
      let at = 0;
      for (const pong of pongs) {
        while (at < stream.pings.length && !equal(stream.pings[at], pong)) at++;
        assert.ok(at < stream.pings.length, "a pong answers a ping, in order");
        at++;
      }
      if (stream.pings.length > 0) assert.deepEqual(pongs.at(-1), stream.pings.at(-1));
      const closes = sent.filter((frame) => frame.opcode === 8);
      if (code === 1006) assert.equal(closes.length, 0);
      else {
        assert.equal(closes.length, 1);
        assert.equal(sent.at(-1)?.opcode, 8, "nothing after the close frame");
        const echoed = closes[0].payload;
        assert.equal(echoed.length === 0 ? 1005 : (echoed[0] << 8) | echoed[1], code);
      }
    }),
    { numRuns: 150, seed: 6455 },
  );
});

Deno.test("NoDelayWebSocket delivers a prefix of a valid stream's messages, then 1006, wherever it is cut", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(item, { minLength: 1, maxLength: 6 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      sizes,
      async (items, where, reads) => {
        const stream = build(items, "eof");
        const cut = Math.floor(where * stream.bytes.length);
        const { events, messages, code } = await run(stream.bytes.subarray(0, cut), reads);
        assert.equal(code, 1006);
        assert.ok(!events.includes("error"));
        sameMessages(messages, stream.messages.slice(0, messages.length));
      },
    ),
    { numRuns: 100, seed: 1006 },
  );
});

/** A valid stream with one corruption. */
const corrupted = fc.tuple(fc.array(item, { maxLength: 5 }), ending).chain(([items, end]) => {
  const { bytes, starts } = build(items, end);
  const at = fc.nat(Math.max(0, bytes.length - 1));
  return fc.oneof(
    fc.tuple(at, fc.integer({ min: 1, max: 255 })).map(([i, flip]) => {
      const out = bytes.slice();
      if (out.length > 0) out[i] ^= flip;
      return out;
    }),
    fc.tuple(at, fc.uint8Array({ minLength: 1, maxLength: 12 })).map(([i, junk]) =>
      new Uint8Array([...bytes.subarray(0, i), ...junk, ...bytes.subarray(i)])
    ),
    fc.tuple(at, fc.nat(20)).map(([i, drop]) =>
      new Uint8Array([...bytes.subarray(0, i), ...bytes.subarray(i + 1 + drop)])
    ),
    fc.uint8Array({ maxLength: 400 }),
    // A frame head with any length, between two frames: most are huge, some just over the limit.
    fc.tuple(
      fc.constantFrom(...starts),
      fc.integer({ min: 0, max: 15 }),
      fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 27n })),
      fc.uint8Array({ maxLength: 8 }),
    ).map(([i, opcode, length, payload]) => {
      const head = serverFrame(opcode, payload, { announce: length });
      return new Uint8Array([...bytes.subarray(0, i), ...head, ...bytes.subarray(i)]);
    }),
  );
});

Deno.test("NoDelayWebSocket ends any stream in exactly one close, with an error only for 1002, 1007 or 1009", async () => {
  const before = memoryInUse();
  await fc.assert(
    fc.asyncProperty(corrupted, sizes, async (bytes, reads) => {
      const { events, code, sent, largestRead } = await run(bytes, reads, MIB);
      assert.ok(largestRead <= MIB, `a read into ${largestRead} bytes`); // nothing allocated over the limit
      assert.equal(events.filter((e) => e === "close").length, 1);
      assert.equal(events.at(-1), "close");
      const failed = events.includes("error");
      if (failed) {
        assert.equal(events.at(-2), "error");
        assert.ok([1002, 1007, 1009].includes(code), `failed with ${code}`);
      } else assert.ok(code === 1005 || code === 1006 || validCloseCode(code), `code ${code}`);
      const closes = sent.filter((frame) => frame.opcode === 8);
      assert.ok(closes.length <= 1);
      if (closes.length === 1) assert.equal(sent.at(-1)?.opcode, 8, "nothing after the close");
      if (failed) assert.equal((closes[0].payload[0] << 8) | closes[0].payload[1], code);
    }),
    { numRuns: 200, seed: 1002 },
  );
  const growth = memoryInUse() - before;
  assert.ok(growth < 64 * MIB, `memory grew by ${growth} bytes over the runs`);
});

Deno.test("NoDelayWebSocket with maxMessageBytes closes with 1009 on a longer frame whatever its length encoding", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 70_000 }),
      fc.bigInt({ min: 1n, max: 2n ** 63n - 70_001n }), // the top bit stays clear
      fc.constantFrom(1, 2),
      sizes,
      async (limit, over, opcode, reads) => {
        const length = BigInt(limit) + over;
        const head = length < 65536n
          ? serverFrame(opcode, new Uint8Array(Number(length))).subarray(0, length < 126n ? 2 : 4)
          : serverFrame(opcode, new Uint8Array(0), { announce: length });
        const { code, events, largestRead } = await run(head, reads, limit);
        assert.ok(largestRead <= 64 * 1024, `a read into ${largestRead} bytes`); // only its buffer
        assert.equal(code, 1009);
        assert.deepEqual(events, ["open", "error", "close"]);
      },
    ),
    { numRuns: 100, seed: 1009 },
  );
});

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
