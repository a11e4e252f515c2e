/**
 * The memory reused for large outgoing binary messages (`_buffer_pool.ts`): reused only once
 * every holder released it, never more than its bound kept, small messages never pooled.
 */

import assert from "node:assert/strict";
import {
  MAX_FREE_BYTES,
  POOLED_MIN_BYTES,
  pooledBytes,
  releaseBuffer,
  retainBuffer,
  takeBuffer,
} from "../_buffer_pool.ts";

const MIB = 1024 * 1024;

Deno.test("A released buffer is reused; one still retained is not", () => {
  const first = takeBuffer(MIB);
  releaseBuffer(first);
  const again = takeBuffer(MIB);
  assert.equal(again.buffer, first.buffer, "reused after its only holder released it");
  retainBuffer(again); // e.g. a replay buffer keeps it
  releaseBuffer(again); // the sender is done
  const other = takeBuffer(MIB);
  assert.notEqual(other.buffer, again.buffer, "still held: not handed out again");
  releaseBuffer(again); // the last holder
  assert.equal(takeBuffer(MIB).buffer, again.buffer);
  releaseBuffer(other);
});

Deno.test("A buffer is exactly the size asked for, whatever memory it reuses", () => {
  const large = takeBuffer(3 * MIB);
  releaseBuffer(large);
  const smaller = takeBuffer(2 * MIB + 5);
  assert.equal(smaller.byteLength, 2 * MIB + 5);
  assert.equal(smaller.buffer, large.buffer, "the free buffer that fits is reused");
  releaseBuffer(smaller);
});

Deno.test("Small messages get fresh memory, never pooled; unknown bytes are ignored", () => {
  const small = takeBuffer(POOLED_MIN_BYTES - 1);
  const before = pooledBytes();
  releaseBuffer(small);
  releaseBuffer(new Uint8Array(MIB)); // not from the pool: a no-op
  retainBuffer(new Uint8Array(MIB));
  assert.equal(pooledBytes(), before);
  assert.notEqual(takeBuffer(POOLED_MIN_BYTES - 1).buffer, small.buffer);
});

Deno.test("The pool keeps at most 4 buffers and MAX_FREE_BYTES: released memory beyond is dropped", () => {
  const taken = Array.from({ length: 10 }, () => takeBuffer(6 * MIB));
  for (const bytes of taken) releaseBuffer(bytes);
  assert.ok(pooledBytes() <= MAX_FREE_BYTES, `kept ${pooledBytes()}`);
  assert.ok(pooledBytes() <= 4 * (6 * MIB + 64 * 1024), "4 buffers at most"); // 64 KiB granules
  const huge = takeBuffer(MAX_FREE_BYTES + 1);
  releaseBuffer(huge);
  assert.ok(pooledBytes() <= MAX_FREE_BYTES, "a buffer over the bound is never kept");
  // What was dropped is not handed out again (it may still be in use by a careless holder).
  const reused = new Set(Array.from({ length: 10 }, () => takeBuffer(6 * MIB).buffer));
  assert.ok(!reused.has(huge.buffer));
});
