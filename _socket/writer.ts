/**
 * The outgoing side of `no_delay.ts`: masked client frames (RFC 6455 §5.2, §5.3) queued in
 * order, small ones encoded straight into a reused buffer so that a burst of calls becomes one
 * write with no allocation per frame, and at most one pong waiting, the answer to the latest
 * ping (§5.5.3). Pure; the socket owns the TCP writes.
 *
 * @module
 */

import { releaseBuffer, retainBuffer, soleHolder } from "../_buffer_pool.ts";
import {
  concat,
  encodeFrame,
  frameInPlace,
  maskPayload,
  nextMask,
  REUSE_MAX,
  writeHead,
} from "./frame.ts";

/** Size of a pooled buffer; a run of small frames shares one until it is full or written. */
const POOL = 64 * 1024;
/** Text of at most this many UTF-16 units is encoded into the pool (≤ 3 bytes each). */
const SMALL_TEXT = 4096;
/** Below this many units the encoding loop beats a `TextEncoder` call for ASCII text. */
const LOOP_TEXT = 128;
/** Frames handed out by one `next()` are joined up to this many bytes. */
const COALESCE = 64 * 1024;

const encoder = new TextEncoder();

/**
 * A client's outgoing frames, in order, with the payload bytes not yet written
 * (`bufferedAmount`) and all bytes not yet written (`queued`). The socket calls `next()` for the
 * bytes of its next write and `written()` once that write is done; nothing handed out is changed
 * until then. A pong is not queued in order: only the latest one waits, and it leaves first with
 * the next write, so that a peer flooding pings cannot grow the queue.
 *
 * @example Two frames, one write
 * ```ts
 * import assert from "node:assert/strict";
 * import { FrameWriter } from "./writer.ts";
 * const writer = new FrameWriter();
 * writer.text("hello");
 * writer.text("world");
 * assert.equal(writer.buffered, 10);
 * const bytes = writer.next()!;
 * assert.equal(bytes.length, 2 * (2 + 4 + 5)); // head, mask and payload, twice
 * writer.written();
 * assert.equal(writer.buffered, 0);
 * assert.equal(writer.next(), undefined);
 * ```
 */
export class FrameWriter {
  #chunks: Uint8Array[] = []; // sealed bytes, in order
  #sizes: number[] = []; // payload bytes of each sealed chunk, for bufferedAmount
  #pool = new Uint8Array(POOL);
  #words = new Uint32Array(this.#pool.buffer);
  #from = 0; // the open run of pooled frames is #pool[#from, #to)
  #to = 0;
  #runSize = 0; // payload bytes in the open run
  #buffered = 0;
  #taken = 0; // chunks handed out by the last next() and not yet written
  #big = new Uint8Array(0); // reused for one large text frame at a time
  #bigBusy = false; // whether a queued or unwritten frame is in #big
  #takenSize = 0;
  #queued = 0; // frame bytes queued or handed out and not yet written
  #takenBytes = 0;
  #pong = new Uint8Array(125); // the payload of the pong waiting to be sent
  #pongLength = -1; // -1: none waiting
  #pongFrame = new Uint8Array(132); // a pong being written; 6 + 125 bytes, rounded up to words
  #pongWords = new Uint32Array(this.#pongFrame.buffer);

  /** Payload bytes queued and not yet reported written. */
  get buffered(): number {
    return this.#buffered;
  }

  /**
   * Bytes of frames queued or being written, heads and masks included: what the connection has
   * yet to take. Pongs count, at most two (one being written, one waiting).
   */
  get queued(): number {
    return this.#queued;
  }

  /** Queues a text frame. */
  text(data: string): void {
    if (data.length <= SMALL_TEXT) return this.#pooledText(data);
    let scratch: Uint8Array | undefined;
    if (!this.#bigBusy && data.length <= REUSE_MAX) {
      // One large frame at a time reuses a buffer: a fresh one per message costs page faults
      // and garbage collections (~10 % of a 1 MiB echo).
      if (this.#big.length < 16 + data.length) this.#big = new Uint8Array(16 + data.length);
      scratch = this.#big;
    }
    const frame = encodeFrame(1, data, scratch);
    if (frame.buffer === this.#big.buffer) this.#bigBusy = true;
    this.#seal(frame, frame.length - headLength(frame));
  }

  /**
   * Queues a frame with a binary payload.
   *
   * @param opcode 2 for binary data; 8, 9 or 10 for control frames.
   * @param data The payload.
   * @param counted Whether the payload counts toward `buffered` (data frames do, control frames
   * do not, as in the WHATWG socket).
   */
  bytes(opcode: number, data: Uint8Array, counted: boolean): void {
    let frame: Uint8Array;
    if (opcode === 2 && soleHolder(data)) {
      // A message built in reused memory that only its sender holds: framed where it is,
      // released once written (see _buffer_pool.ts).
      retainBuffer(data);
      frame = frameInPlace(data, opcode);
    } else frame = encodeFrame(opcode, data);
    this.#seal(frame, counted ? data.length : 0);
  }

  /**
   * Answers a ping (§5.5.2, §5.5.3): `data` (at most 125 bytes, copied) replaces the payload of
   * a pong still waiting, so only the most recent ping is answered. The pong goes out first
   * with the next write.
   */
  pong(data: Uint8Array): void {
    if (data.length > 125) throw new RangeError("a pong payload is at most 125 bytes");
    this.#queued += data.length - (this.#pongLength < 0 ? -6 : this.#pongLength); // 6: head, mask
    this.#pong.set(data);
    this.#pongLength = data.length;
  }

  /** The bytes of the next write (several frames joined), or `undefined` when none is queued. */
  next(): Uint8Array | undefined {
    this.#closeRun();
    if (this.#pongLength >= 0) this.#sealPong();
    const chunks = this.#chunks;
    if (chunks.length === 0) return undefined;
    let count = 1, total = chunks[0].length, size = this.#sizes[0];
    while (count < chunks.length && total + chunks[count].length <= COALESCE) {
      total += chunks[count].length;
      size += this.#sizes[count++];
    }
    this.#taken = count;
    this.#takenSize = size;
    this.#takenBytes = total;
    return count === 1 ? chunks[0] : concat(chunks.slice(0, count), total);
  }

  /** Reports the bytes from the last `next()` written. */
  written(): void {
    for (const chunk of this.#chunks.splice(0, this.#taken)) {
      if (chunk.buffer === this.#big.buffer) this.#bigBusy = false;
      releaseBuffer(chunk); // a message framed in place (else a no-op)
    }
    this.#sizes.splice(0, this.#taken);
    this.#buffered -= this.#takenSize;
    this.#queued -= this.#takenBytes;
    this.#taken = this.#takenSize = this.#takenBytes = 0;
    // Nothing handed out or queued refers to the pool any more: start it over.
    if (this.#chunks.length === 0 && this.#from === this.#to) this.#from = this.#to = 0;
  }

  /** Drops everything queued (the connection is gone). */
  clear(): void {
    for (const chunk of this.#chunks) releaseBuffer(chunk);
    this.#bigBusy = false;
    this.#chunks = [];
    this.#sizes = [];
    this.#from =
      this.#to =
      this.#runSize =
      this.#buffered =
      this.#queued =
        0;
    this.#taken = this.#takenSize = this.#takenBytes = 0;
    this.#pongLength = -1;
  }

  #seal(chunk: Uint8Array, size: number): void {
    this.#closeRun(); // keep order: pooled frames queued earlier go first
    this.#chunks.push(chunk);
    this.#sizes.push(size);
    this.#buffered += size;
    this.#queued += chunk.length;
  }

  /** Encodes the waiting pong into its buffer, free since the last write, at the queue's head. */
  #sealPong(): void {
    const frame = this.#pongFrame, length = this.#pongLength;
    writeHead(frame, 0, 10, length);
    nextMask(frame, 2);
    frame.set(this.#pong.subarray(0, length), 6);
    maskPayload(frame, this.#pongWords, 6, length);
    this.#chunks.unshift(frame.subarray(0, 6 + length));
    this.#sizes.unshift(0);
    this.#pongLength = -1;
  }

  #closeRun(): void {
    if (this.#from === this.#to) return;
    this.#chunks.push(this.#pool.subarray(this.#from, this.#to));
    this.#sizes.push(this.#runSize);
    this.#from = this.#to;
    this.#runSize = 0;
  }

  /** Encodes a text frame of at most `SMALL_TEXT` units into the pool. */
  #pooledText(data: string): void {
    const units = data.length;
    if (POOL - this.#to < 14 + 3 * units) {
      // Full: sealed runs keep the old buffer alive until written; new frames get a new one.
      this.#closeRun();
      this.#pool = new Uint8Array(POOL);
      this.#words = new Uint32Array(this.#pool.buffer);
      this.#from = this.#to = 0;
    }
    const pool = this.#pool, start = this.#to;
    // Payload bytes ≥ units, and < 65536 here: the head is 2 bytes if ASCII and short, else 4.
    let at = start + (units < 126 ? 2 : 4) + 4, length = -1;
    if (units <= LOOP_TEXT) {
      length = units;
      for (let i = 0; i < units; i++) {
        const c = data.charCodeAt(i);
        if (c >= 0x80) {
          length = -1;
          break;
        }
        pool[at + i] = c;
      }
    }
    if (length < 0) {
      length = encoder.encodeInto(data, pool.subarray(at, at + 3 * units)).written;
      if (units < 126 && length >= 126) { // non-ASCII pushed it over: move the payload up
        pool.copyWithin(at + 2, at, at + length);
        at += 2;
      }
    }
    writeHead(pool, start, 1, length);
    nextMask(pool, at - 4);
    maskPayload(pool, this.#words, at, length);
    this.#queued += at + length - start;
    this.#to = at + length;
    this.#runSize += length;
    this.#buffered += length;
  }
}

/** Bytes before the payload of a masked frame: head and mask key. */
function headLength(frame: Uint8Array): number {
  const marker = frame[1] & 0x7f;
  return marker === 127 ? 14 : marker === 126 ? 8 : 6;
}
