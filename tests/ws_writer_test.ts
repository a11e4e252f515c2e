/**
 * Tests for the outgoing frame queue of the no-delay socket. Frames are read back with a
 * separate, byte-at-a-time parser written from RFC 6455 §5.2 and §5.3, so a masking or length
 * mistake in the writer cannot cancel itself out.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { FrameWriter } from "../_socket/writer.ts";

interface Parsed {
  fin: boolean;
  opcode: number;
  payload: Uint8Array;
  key: Uint8Array;
  /** Bytes used for the payload length after the second byte: 0, 2 or 8. */
  extended: number;
}

/** Splits `bytes` into client frames, unmasking each payload. */
function parseFrames(bytes: Uint8Array): Parsed[] {
  const frames: Parsed[] = [];
  let at = 0;
  while (at < bytes.length) {
    const fin = (bytes[at] & 0x80) !== 0, opcode = bytes[at] & 0x0f;
    assert.equal(bytes[at + 1] & 0x80, 0x80, "client frames are masked");
    let length = bytes[at + 1] & 0x7f, extended = 0;
    if (length === 126) [length, extended] = [bytes[at + 2] * 256 + bytes[at + 3], 2];
    else if (length === 127) {
      length = 0;
      for (let i = 0; i < 8; i++) length = length * 256 + bytes[at + 2 + i];
      extended = 8;
    }
    const keyAt = at + 2 + extended;
    const key = bytes.slice(keyAt, keyAt + 4);
    const payload = bytes.slice(keyAt + 4, keyAt + 4 + length);
    assert.equal(payload.length, length, "frame is complete");
    for (let i = 0; i < payload.length; i++) payload[i] ^= key[i % 4];
    frames.push({ fin, opcode, payload, key, extended });
    at = keyAt + 4 + length;
  }
  return frames;
}

/** Everything the writer has queued, as the socket would write it. */
function drain(writer: FrameWriter): Uint8Array[] {
  const writes: Uint8Array[] = [];
  for (let bytes = writer.next(); bytes; bytes = writer.next()) {
    writes.push(bytes.slice());
    writer.written();
  }
  return writes;
}

function texts(frames: Parsed[]): string[] {
  return frames.map((frame) => new TextDecoder().decode(frame.payload));
}

const utf8 = (text: string): number => new TextEncoder().encode(text).length;

Deno.test("FrameWriter writes text frames that parse back exactly, with the shortest length encoding", () => {
  const cases = [
    "",
    "a",
    "x".repeat(125),
    "x".repeat(126),
    "é".repeat(62), // 124 bytes: short form
    "é".repeat(63), // 126 bytes from 63 units: the payload moves up for the longer head
    "€".repeat(100), // 300 bytes from 100 units
    "😀".repeat(40), // surrogate pairs: 160 bytes
    "a\u{d800}b", // a lone surrogate becomes U+FFFD, as TextEncoder does
    "x".repeat(4096), // the largest pooled text
    "x".repeat(4097), // the smallest text in a buffer of its own
    "x".repeat(65535),
    "x".repeat(65536),
  ];
  const writer = new FrameWriter();
  for (const text of cases) writer.text(text);
  assert.equal(writer.buffered, cases.reduce((sum, text) => sum + utf8(text), 0));
  const frames = drain(writer).flatMap(parseFrames);
  assert.deepEqual(
    texts(frames),
    cases.map((text) => new TextDecoder().decode(new TextEncoder().encode(text))),
  );
  for (const frame of frames) {
    assert.equal(frame.fin, true);
    assert.equal(frame.opcode, 1);
    const length = frame.payload.length;
    assert.equal(frame.extended, length < 126 ? 0 : length < 65536 ? 2 : 8, `length ${length}`);
  }
  assert.equal(writer.buffered, 0);
});

interface Item {
  kind: "text" | "binary" | "pong";
  text: string;
  data: Uint8Array;
}

const none = new Uint8Array(0);

Deno.test("FrameWriter keeps the order and the bytes of any mix of text, binary and control frames", () => {
  const item: fc.Arbitrary<Item> = fc.oneof(
    fc.string({ unit: "binary", maxLength: 300 }).map((text): Item => ({
      kind: "text",
      text,
      data: none,
    })),
    fc.string({ unit: "grapheme-ascii", minLength: 4000, maxLength: 4200 })
      .map((text): Item => ({ kind: "text", text, data: none })),
    fc.uint8Array({ maxLength: 200 }).map((data): Item => ({ kind: "binary", text: "", data })),
    fc.uint8Array({ maxLength: 125 }).map((data): Item => ({ kind: "pong", text: "", data })),
  );
  const opcodes = { text: 1, binary: 2, pong: 10 };
  fc.assert(
    fc.property(
      fc.array(item, { maxLength: 40 }),
      fc.integer({ min: 1, max: 5 }),
      (list, every) => {
        const writer = new FrameWriter();
        const writes: Uint8Array[] = [];
        list.forEach(({ kind, text, data }, index) => {
          if (kind === "text") writer.text(text);
          else writer.bytes(opcodes[kind], data, kind === "binary");
          // Write now and then, as a socket does between sends.
          if (index % every === 0) writes.push(...drain(writer));
        });
        const counted = list.reduce(
          (sum, { kind, text, data }) =>
            sum + (kind === "text" ? utf8(text) : kind === "binary" ? data.length : 0),
          0,
        );
        assert.ok(writer.buffered <= counted);
        writes.push(...drain(writer));
        assert.equal(writer.buffered, 0);
        const frames = writes.flatMap(parseFrames);
        assert.equal(frames.length, list.length);
        frames.forEach((parsed, i) => {
          const { kind, text, data } = list[i];
          assert.equal(parsed.opcode, opcodes[kind]);
          assert.deepEqual(parsed.payload, kind === "text" ? new TextEncoder().encode(text) : data);
        });
      },
    ),
    { numRuns: 200, seed: 20261127 },
  );
});

Deno.test("FrameWriter sends frames queued together in one write; later ones wait for the next", () => {
  const writer = new FrameWriter();
  writer.text('{"id":null,"method":"note","params":[]}');
  writer.text('{"id":1,"method":"echo","params":["hello",42]}');
  const first = writer.next()!;
  assert.equal(parseFrames(first.slice()).length, 2);
  const copy = first.slice();
  // Sent while that write is in flight: queued after it, and the bytes handed out stay put.
  writer.text('{"id":2,"method":"echo","params":["hello",42]}');
  assert.deepEqual(first, copy);
  assert.equal(writer.buffered, 39 + 46 + 46);
  writer.written();
  assert.equal(writer.buffered, 46);
  assert.deepEqual(texts(parseFrames(writer.next()!.slice())), [
    '{"id":2,"method":"echo","params":["hello",42]}',
  ]);
  writer.written();
  assert.equal(writer.next(), undefined);
});

Deno.test("FrameWriter writes a burst larger than a pooled buffer whole and in order", () => {
  const writer = new FrameWriter();
  const sent: string[] = [];
  for (let i = 0; i < 500; i++) {
    const text = `${i}:${"y".repeat(200 + (i % 50))}`;
    sent.push(text);
    writer.text(text);
  }
  const writes = drain(writer);
  assert.ok(writes.length > 1, "more than 64 KiB went out in several writes");
  assert.deepEqual(texts(writes.flatMap(parseFrames)), sent);
});

Deno.test("FrameWriter gives every frame its own mask key", () => {
  const writer = new FrameWriter();
  for (let i = 0; i < 64; i++) writer.text("same text");
  const keys = new Set(parseFrames(writer.next()!.slice()).map((frame) => frame.key.join()));
  // 64 random 32-bit keys: a repeat would be a 1 in ~2 million event, and all-equal keys a bug.
  assert.ok(keys.size >= 63, `only ${keys.size} distinct keys`);
});

Deno.test("FrameWriter.clear() drops everything queued", () => {
  const writer = new FrameWriter();
  writer.text("a");
  writer.bytes(2, new Uint8Array(5000), true);
  writer.clear();
  assert.equal(writer.buffered, 0);
  assert.equal(writer.next(), undefined);
  writer.text("b");
  assert.deepEqual(texts(drain(writer).flatMap(parseFrames)), ["b"]);
});

Deno.test("FrameWriter keeps only the latest pong waiting, sends it first, and leaves a pong being written alone", () => {
  const writer = new FrameWriter();
  const bytes = (text: string) => new TextEncoder().encode(text);
  writer.text("a");
  writer.pong(bytes("ping 1"));
  writer.pong(bytes("ping 2")); // replaces ping 1's pong
  assert.equal(writer.buffered, 1); // pongs are not counted there
  assert.equal(writer.queued, (2 + 4 + 1) + (2 + 4 + 6));
  const first = writer.next()!;
  const copy = first.slice();
  assert.equal(first.length, writer.queued);
  writer.pong(bytes("ping 3")); // while that write is in flight
  writer.pong(bytes("ping 4"));
  assert.deepEqual(first, copy);
  assert.deepEqual(parseFrames(copy).map((f) => [f.opcode, texts([f])[0]]), [
    [10, "ping 2"],
    [1, "a"],
  ]);
  writer.written();
  assert.equal(writer.queued, 2 + 4 + 6);
  assert.deepEqual(texts(drain(writer).flatMap(parseFrames)), ["ping 4"]);
  assert.equal(writer.queued, 0);
  writer.pong(new Uint8Array(125));
  writer.clear();
  assert.equal(writer.queued, 0);
  assert.equal(writer.next(), undefined);
  assert.throws(() => writer.pong(new Uint8Array(126)), RangeError);
});

Deno.test("FrameWriter.queued counts every byte not yet written, heads and masks included", () => {
  const item = fc.oneof(
    fc.string({ maxLength: 5000 }),
    fc.uint8Array({ maxLength: 70_000 }),
    fc.uint8Array({ maxLength: 125 }).map((data) => ({ pong: data })),
  );
  fc.assert(
    fc.property(fc.array(fc.array(item, { maxLength: 6 }), { maxLength: 6 }), (rounds) => {
      const writer = new FrameWriter();
      for (const items of rounds) { // queue some, then write some, as a socket does
        for (const item of items) {
          if (typeof item === "string") writer.text(item);
          else if (item instanceof Uint8Array) writer.bytes(2, item, true);
          else writer.pong(item.pong);
        }
        const queued = writer.queued, bytes = writer.next();
        if (!bytes) {
          assert.equal(queued, 0);
          continue;
        }
        assert.ok(bytes.length <= queued);
        writer.written();
        assert.equal(writer.queued, queued - bytes.length);
      }
      const queued = writer.queued;
      assert.equal(drain(writer).reduce((sum, bytes) => sum + bytes.length, 0), queued);
      assert.equal(writer.queued, 0);
    }),
    { numRuns: 100, seed: 5553 },
  );
});

Deno.test("FrameWriter frames a pooled message in place when it is the only holder, and copies one held elsewhere", async () => {
  const { pooledBytes, releaseBuffer, retainBuffer, takeBuffer } = await import(
    "../_buffer_pool.ts"
  );
  const pattern = (n: number) => new Uint8Array(n).map((_, i) => (i * 31 + 5) & 0xff);
  const size = 1 << 20;

  // Only its sender holds it (the send queue releases it once `send` returned): in place.
  const alone = takeBuffer(size);
  alone.set(pattern(size));
  const writer = new FrameWriter();
  writer.bytes(2, alone, true);
  releaseBuffer(alone); // the sender is done with it
  const before = pooledBytes();
  const frame = writer.next()!;
  assert.equal(frame.buffer, alone.buffer, "framed where it is, not copied");
  assert.deepEqual(parseFrames(frame)[0].payload, pattern(size));
  assert.equal(pooledBytes(), before, "not reused while being written");
  writer.written();
  assert.equal(pooledBytes(), before + alone.buffer.byteLength, "released once written");

  // Also held by a replay buffer: copied, and left as it was.
  const kept = takeBuffer(size);
  kept.set(pattern(size));
  retainBuffer(kept);
  writer.bytes(2, kept, true);
  releaseBuffer(kept);
  const copy = writer.next()!;
  assert.notEqual(copy.buffer, kept.buffer);
  assert.deepEqual(parseFrames(copy)[0].payload, pattern(size));
  assert.deepEqual(kept, pattern(size), "the kept message is unchanged");
  writer.written();
  releaseBuffer(kept);
});
