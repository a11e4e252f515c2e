/**
 * Memory for large outgoing binary messages, reused (internal). Writing 8 MiB into a fresh
 * buffer took 8–20 ms on our machines (page faults and zeroing on first touch) against ~0.3 ms
 * into memory used before, so building each large binary message in fresh memory made an 8 MiB
 * echo through Mist 1.6–4× a raw binary echo. A buffer taken from the pool is counted: its
 * taker holds it, whoever keeps it beyond a call retains it (the replay buffer of a resumable
 * session), and each releases it; at zero it goes back to a small free list. A buffer that is
 * never released is simply collected: the counts are held weakly.
 *
 * Sockets must be done with a frame when their `send` returns (WHATWG sockets copy it; the Node
 * server face retains it until written), unless they are its only holder: then Mist's socket
 * frames it in place (the room before each pooled view is for the frame's head and mask key)
 * and releases it once written, so the message is never copied to be framed.
 *
 * @module
 */

/** Messages smaller than this are built in fresh memory: reuse pays off for large ones. */
export const POOLED_MIN_BYTES = 256 * 1024;

/** At most this many free buffers are kept… */
const MAX_FREE = 4;
/** …and at most this many bytes in all: the memory a process keeps for reuse. */
export const MAX_FREE_BYTES = 32 * 1024 * 1024;

/**
 * Bytes of room before a pooled view: a client frame's head and mask key take at most 14 (RFC
 * 6455 §5.2), and 16 keep the payload word-aligned for masking.
 */
export const HEADROOM = 16;

const free: ArrayBuffer[] = [];
let freeBytes = 0;
const holders = new WeakMap<ArrayBuffer, number>();

/**
 * A buffer of exactly `size` bytes for a message, from the free list when one fits; its
 * contents are undefined. Small sizes get fresh memory, not counted.
 *
 * @param size Bytes needed.
 * @returns A view of `size` bytes; release it when done.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { releaseBuffer, takeBuffer } from "./_buffer_pool.ts";
 * const first = takeBuffer(1 << 20);
 * releaseBuffer(first);
 * assert.equal(takeBuffer(1 << 20).buffer, first.buffer); // the same memory again
 * ```
 */
export function takeBuffer(size: number): Uint8Array<ArrayBuffer> {
  if (size < POOLED_MIN_BYTES) return new Uint8Array(size);
  let best = -1;
  for (let i = 0; i < free.length; i++) {
    const length = free[i].byteLength;
    if (length >= HEADROOM + size && (best < 0 || length < free[best].byteLength)) best = i;
  }
  let buffer: ArrayBuffer;
  if (best >= 0) {
    buffer = free.splice(best, 1)[0];
    freeBytes -= buffer.byteLength;
  } else {
    // Rounded up to whole 64 KiB, so that messages of about the same size share buffers.
    buffer = new ArrayBuffer(Math.ceil((HEADROOM + size) / 65536) * 65536);
  }
  holders.set(buffer, 1);
  return new Uint8Array(buffer, HEADROOM, size);
}

/**
 * Another holder keeps `bytes` (a no-op for memory not from the pool).
 *
 * @param bytes A view returned by {@linkcode takeBuffer}, or any bytes.
 */
export function retainBuffer(bytes: Uint8Array): void {
  const count = holders.get(bytes.buffer as ArrayBuffer);
  if (count !== undefined) holders.set(bytes.buffer as ArrayBuffer, count + 1);
}

/**
 * A holder is done with `bytes`; the last one returns the memory to the free list (a no-op for
 * memory not from the pool). Nobody may read or write `bytes` afterwards.
 *
 * @param bytes A view returned by {@linkcode takeBuffer}, or any bytes.
 */
export function releaseBuffer(bytes: Uint8Array): void {
  const buffer = bytes.buffer as ArrayBuffer;
  const count = holders.get(buffer);
  if (count === undefined) return;
  if (count > 1) return void holders.set(buffer, count - 1);
  holders.delete(buffer);
  if (buffer.byteLength > MAX_FREE_BYTES) return;
  free.push(buffer);
  freeBytes += buffer.byteLength;
  while (free.length > MAX_FREE || freeBytes > MAX_FREE_BYTES) {
    freeBytes -= free.shift()!.byteLength; // the one freed longest ago goes
  }
}

/**
 * Whether `bytes` is a pooled view that nobody else holds: its holder may then frame it in place.
 *
 * @param bytes Any bytes.
 * @returns Whether the caller (a holder) is the only one.
 */
export function soleHolder(bytes: Uint8Array): boolean {
  return bytes.byteOffset === HEADROOM && holders.get(bytes.buffer as ArrayBuffer) === 1;
}

/**
 * Memory kept for reuse now, in bytes: for tests and bounds.
 *
 * @returns The free list's total size.
 */
export function pooledBytes(): number {
  return freeBytes;
}
