/**
 * RFC 6455 framing for a client: masked frames out (§5.2, §5.3), strict UTF-8 in (§8.1), close
 * codes (§7.4). Pure functions; used by `no_delay.ts`.
 *
 * @module
 */

import { HEADROOM } from "../_buffer_pool.ts";

const encoder = new TextEncoder();
// Text is delivered byte-exact: a leading U+FEFF is data, not a byte order mark to strip.
const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const loose = new TextDecoder("utf-8", { ignoreBOM: true });
// Payload offset in a frame of its own: room for the longest head and mask; the same room a
// pooled message has before it, so that it can be framed in place.
const PAD = HEADROOM;
const masks = new Uint8Array(8192); // random masks, 4 bytes each, refilled from the CSPRNG
let maskAt = masks.length; // (getRandomValues per frame costs ~1 µs; the ws package pools too)

/** Joins byte arrays into one of `size` bytes. */
export function concat(parts: Uint8Array[], size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Writes a fresh mask key into `buf[at, at + 4)`. Keys come from the CSPRNG, as §5.3 requires,
 * 2,048 at a time.
 */
export function nextMask(buf: Uint8Array, at: number): void {
  if (maskAt === masks.length) {
    crypto.getRandomValues(masks);
    maskAt = 0;
  }
  buf.set(masks.subarray(maskAt, maskAt += 4), at);
}

/** Payloads up to this size reuse one buffer each way in `no_delay.ts` (text only). */
export const REUSE_MAX: number = 4 * 1024 * 1024;

/** Bytes of a client frame's head for a payload of `length` bytes, mask key excluded (§5.2). */
export function headSize(length: number): number {
  return length < 126 ? 2 : length < 65536 ? 4 : 10;
}

/** Writes a final frame's head (FIN, opcode, MASK, shortest payload length) at `buf[start]`. */
export function writeHead(buf: Uint8Array, start: number, opcode: number, length: number): void {
  const head = headSize(length);
  buf[start] = 0x80 | opcode;
  buf[start + 1] = 0x80 | (head === 2 ? length : head === 4 ? 126 : 127);
  if (head === 4) {
    buf[start + 2] = length >>> 8;
    buf[start + 3] = length & 0xff;
  }
  if (head === 10) new DataView(buf.buffer, buf.byteOffset).setBigUint64(start + 2, BigInt(length));
}

const key = new Uint8Array(4); // the key turned to the alignment of the payload's words
const key32 = new Uint32Array(key.buffer);

/**
 * Masks `buf[at, at + length)` in place with the key in the 4 bytes before it (§5.3). `words`
 * views `buf`'s buffer from its start, so the aligned middle is masked a 32-bit word at a time.
 */
export function maskPayload(buf: Uint8Array, words: Uint32Array, at: number, length: number): void {
  const end = at + length, k = at - 4;
  let i = at;
  for (const lead = Math.min(end, (at + 3) & ~3); i < lead; i++) buf[i] ^= buf[k + ((i - at) & 3)];
  if (end - i >= 4) {
    for (let j = 0; j < 4; j++) key[j] = buf[k + ((i + j - at) & 3)];
    const mask = key32[0], last = end >>> 2;
    for (let w = i >>> 2; w < last; w++) words[w] ^= mask;
    i = last << 2;
  }
  for (; i < end; i++) buf[i] ^= buf[k + ((i - at) & 3)];
}

/**
 * One final, masked client frame (§5.2, §5.3) with a fresh mask: in `scratch` when it is large
 * enough for ASCII text, else in a buffer of its own. Text is UTF-8 encoded straight into the
 * frame: in Deno `encodeInto` is far faster than `encode` for large strings.
 */
export function encodeFrame(
  opcode: number,
  data: string | Uint8Array,
  scratch?: Uint8Array,
): Uint8Array {
  let out = scratch && scratch.length >= PAD + data.length
      ? scratch
      : new Uint8Array(PAD + data.length),
    length = data.length;
  if (typeof data === "string") { // a byte per UTF-16 unit suffices for ASCII
    const { read, written } = encoder.encodeInto(data, out.subarray(PAD));
    length = written;
    if (read < data.length) { // grow once: at most 3 bytes per remaining unit
      const grown = new Uint8Array(PAD + written + 3 * (data.length - read));
      grown.set(out.subarray(0, PAD + written));
      const rest = grown.subarray(PAD + written);
      length += encoder.encodeInto(data.slice(read), rest).written;
      out = grown;
    }
  } else out.set(data, PAD);
  return frameAround(out, opcode, length);
}

/**
 * Frames a pooled message in place (`_buffer_pool.ts`): its head and a fresh mask go in the room
 * before it, and the message is masked where it is. It must not be read as the message again.
 *
 * @param data A pooled view whose only holder is the caller.
 * @param opcode 2 (binary).
 * @returns The frame: a view of the same memory.
 */
export function frameInPlace(data: Uint8Array, opcode: number): Uint8Array {
  return frameAround(new Uint8Array(data.buffer, 0, PAD + data.length), opcode, data.length);
}

/** Writes the head and mask key before `out[PAD]` and masks `length` bytes from there. */
function frameAround(out: Uint8Array, opcode: number, length: number): Uint8Array {
  const start = PAD - 4 - headSize(length);
  writeHead(out, start, opcode, length);
  nextMask(out, PAD - 4);
  maskPayload(out, new Uint32Array(out.buffer, out.byteOffset, out.length >>> 2), PAD, length);
  return out.subarray(start, PAD + length);
}

/** Decodes UTF-8, throwing on invalid input; in Deno a fatal `TextDecoder` is ~10x slower. */
export function decodeText(bytes: Uint8Array): string {
  const text = loose.decode(bytes); // invalid input becomes U+FFFD, so check only then
  return text.includes("\uFFFD") ? fatal.decode(bytes) : text;
}

/** Whether a received close frame may carry this code (RFC 6455 §7.4.1, §7.4.2). */
export function validCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 &&
    code !== 1006) ||
    (code >= 3000 && code <= 4999);
}
