/**
 * Binary messages (internal; PROTOCOL.md §2, "Binary messages"): an envelope whose params or
 * result hold bytes travels as one binary WebSocket frame of length-prefixed sections — the
 * envelope's JSON text with `null` in each byte slot, the slots' paths, then one section per
 * `Uint8Array`. Every length is checked against what remains of the frame before it is used,
 * and parts arrive as views of the frame: nothing is allocated from a length the peer chose.
 * Runs in Deno, browsers and Node (no `Deno.*` here).
 *
 * @module
 */

import { takeBuffer } from "./_buffer_pool.ts";
import { decode, type DecodeResult, EnvelopeDecodeError, type Params } from "./envelope.ts";

/** A slot's place in the params or result: member names and array indexes from the root. */
export type SlotPath = readonly (string | number)[];

/** Byte slots in one message; more is refused before anything is sent, or read. */
export const MAX_PARTS = 65_536;

/** Nesting of one slot's path; more is refused. */
export const MAX_PATH_DEPTH = 64;

/** Longest member name in a slot's path. */
const MAX_KEY_CHARS = 1_024;

/** The value with each `Uint8Array` (or `ArrayBuffer`) replaced by `null`, and what was taken. */
export interface Extracted {
  /** The JSON side: a copy of only the containers on a path to bytes, the rest shared. */
  readonly value: unknown;
  /** Where each part goes back, in order. */
  readonly paths: SlotPath[];
  /** The bytes, in the order of `paths`. */
  readonly parts: Uint8Array[];
}

/**
 * Takes the bytes out of a value that the value policy accepted (`_values.ts`: plain objects,
 * arrays, JSON primitives, bytes; no cycles).
 *
 * @param value The params or the result.
 * @returns The value for the JSON text, the slots and the bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { extractBytes } from "./_binary.ts";
 * const bytes = new Uint8Array([1, 2]);
 * const out = extractBytes([{ name: "a.png", data: bytes }]);
 * assert.deepEqual(out.value, [{ name: "a.png", data: null }]);
 * assert.deepEqual(out.paths, [[0, "data"]]);
 * assert.equal(out.parts[0], bytes);
 * ```
 */
export function extractBytes(value: unknown): Extracted {
  const paths: SlotPath[] = [], parts: Uint8Array[] = [];
  const path: (string | number)[] = [];
  const walk = (item: unknown): unknown => {
    if (item instanceof Uint8Array || item instanceof ArrayBuffer) {
      if (parts.length === MAX_PARTS) {
        throw new RangeError(`more than ${MAX_PARTS} byte values in one message`);
      }
      paths.push(path.slice());
      parts.push(item instanceof Uint8Array ? item : new Uint8Array(item));
      return null;
    }
    if (typeof item !== "object" || item === null) return item;
    if (!Array.isArray(item)) {
      const proto = Object.getPrototypeOf(item);
      if (proto !== Object.prototype && proto !== null) return item; // has toJSON: sent as is
    }
    let copy: Record<string | number, unknown> | unknown[] | undefined;
    const record = item as Record<string | number, unknown>;
    for (const key in record) {
      const member = record[key];
      if (typeof member !== "object" || member === null) continue;
      path.push(Array.isArray(item) ? Number(key) : key);
      const replaced = walk(member);
      path.pop();
      if (replaced !== member) {
        copy ??= Array.isArray(item) ? item.slice() : { ...record };
        (copy as Record<string, unknown>)[key] = replaced;
      }
    }
    return copy ?? item;
  };
  return { value: walk(value), paths, parts };
}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * The bytes of a binary message: `u32 length + envelope text`, `u32 length + slots JSON`, then
 * `u32 length + bytes` for each part (big-endian lengths). A large frame is built in reused
 * memory (`_buffer_pool.ts`): whoever sends it releases it.
 *
 * @param text The envelope's JSON text, with `null` in each slot.
 * @param paths The slots.
 * @param parts The bytes, one per slot.
 * @returns The frame.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeBinary, encodeBinary } from "./_binary.ts";
 * const frame = encodeBinary('{"id":0,"method":"put","params":[null]}', [[0]], [new Uint8Array([7])]);
 * const read = decodeBinary(frame);
 * assert.ok(read.ok);
 * assert.deepEqual(read.parts, [new Uint8Array([7])]);
 * ```
 */
export function encodeBinary(
  text: string,
  paths: readonly SlotPath[],
  parts: readonly Uint8Array[],
): Uint8Array<ArrayBuffer> {
  const envelope = utf8.encode(text);
  const slots = utf8.encode(JSON.stringify(paths));
  let size = 8 + envelope.length + slots.length;
  for (const part of parts) size += 4 + part.byteLength;
  const frame = takeBuffer(size); // released once sent (the send queue) and no longer kept
  const view = new DataView(frame.buffer, frame.byteOffset, size);
  let at = 0;
  for (const section of [envelope, slots, ...parts]) {
    view.setUint32(at, section.byteLength);
    frame.set(section, at + 4);
    at += 4 + section.byteLength;
  }
  return frame;
}

/**
 * A value with bytes as a binary message.
 *
 * @param value The params or result (checked by the value policy).
 * @param text Encodes the envelope around the value's JSON side.
 * @returns The frame.
 */
export function toBinary(value: unknown, text: (json: unknown) => string): Uint8Array<ArrayBuffer> {
  const { value: json, paths, parts } = extractBytes(value);
  return encodeBinary(text(json), paths, parts);
}

/** What {@linkcode decodeBinary} read. */
export type BinaryRead =
  | {
    readonly ok: true;
    readonly text: string;
    readonly paths: readonly SlotPath[];
    readonly parts: readonly Uint8Array[];
  }
  /** `text` is the envelope when it could be read, so the error can go to its call. */
  | { readonly ok: false; readonly text: string | undefined; readonly problem: string };

/**
 * Reads a binary message. Total: any bytes give its sections or a problem.
 *
 * @param frame The frame as received.
 * @returns The envelope text, the slots and the parts (views of `frame`), or what is wrong.
 */
export function decodeBinary(frame: ArrayBuffer | Uint8Array): BinaryRead {
  const bytes = frame instanceof Uint8Array ? frame : new Uint8Array(frame);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const section = (what: string): Uint8Array | string => {
    if (bytes.byteLength - at < 4) {
      return `${what} missing (${bytes.byteLength - at} bytes left)`;
    }
    const length = view.getUint32(at);
    at += 4;
    if (length > bytes.byteLength - at) {
      return `${what} claims ${length} bytes, ${bytes.byteLength - at} remain`;
    }
    at += length;
    return bytes.subarray(at - length, at);
  };
  const envelope = section("envelope section");
  if (typeof envelope === "string") return { ok: false, text: undefined, problem: envelope };
  let text: string;
  try {
    text = strictUtf8.decode(envelope);
  } catch {
    return { ok: false, text: undefined, problem: "envelope section is not UTF-8" };
  }
  const failed = (problem: string): BinaryRead => ({ ok: false, text, problem });
  const slotsSection = section("slots section");
  if (typeof slotsSection === "string") return failed(slotsSection);
  let paths: unknown;
  try {
    paths = JSON.parse(strictUtf8.decode(slotsSection));
  } catch {
    return failed("slots section is not JSON");
  }
  const wrong = badPaths(paths);
  if (wrong !== undefined) return failed(wrong);
  const slots = paths as SlotPath[];
  const parts: Uint8Array[] = [];
  for (let i = 0; i < slots.length; i++) {
    const part = section(`part ${i}`);
    if (typeof part === "string") return failed(part);
    parts.push(part);
  }
  if (at !== bytes.byteLength) {
    return failed(`${bytes.byteLength - at} bytes after part ${slots.length - 1} (no slot)`);
  }
  return { ok: true, text, paths: slots, parts };
}

/** What is wrong with a slots section's value, or `undefined`. */
function badPaths(paths: unknown): string | undefined {
  if (!Array.isArray(paths)) return "slots section is not an array";
  if (paths.length > MAX_PARTS) return `more than ${MAX_PARTS} slots`;
  for (const path of paths) {
    if (!Array.isArray(path) || path.length > MAX_PATH_DEPTH) {
      return `a slot is not an array of at most ${MAX_PATH_DEPTH} keys`;
    }
    for (const key of path) {
      const index = typeof key === "number" && Number.isSafeInteger(key) && key >= 0;
      if (!index && !(typeof key === "string" && key.length <= MAX_KEY_CHARS)) {
        return "a slot's key is neither an index nor a name";
      }
    }
  }
  return undefined;
}

/**
 * Puts the parts back where the slots say, in the value decoded from the envelope text.
 *
 * @param root The params or the result, as parsed.
 * @param paths The slots.
 * @param parts The bytes.
 * @returns The value with bytes in place, or what is wrong (a slot that is missing or not
 *   `null`, or a path through something other than an array or object).
 */
export function placeBytes(
  root: unknown,
  paths: readonly SlotPath[],
  parts: readonly Uint8Array[],
): { readonly value: unknown } | string {
  const holder: Record<string, unknown> = { root };
  for (let i = 0; i < paths.length; i++) {
    let container: unknown = holder;
    let key: string | number = "root";
    for (const next of paths[i]) {
      container = member(container, key);
      if (typeof container !== "object" || container === null || container instanceof Uint8Array) {
        return `slot ${i} goes through a value that is not an array or object`;
      }
      key = next;
    }
    if (member(container, key) !== null) return `slot ${i} is not a null member`;
    Object.defineProperty(container, key, {
      value: parts[i],
      writable: true,
      enumerable: true,
      configurable: true,
    });
  }
  return { value: holder.root };
}

/** An own member (an array's element by index, an object's by name), else `undefined`. */
function member(container: unknown, key: string | number): unknown {
  if (Array.isArray(container)) {
    return typeof key === "number" && key < container.length ? container[key] : undefined;
  }
  return typeof key === "string" && Object.hasOwn(container as object, key)
    ? (container as Record<string, unknown>)[key]
    : undefined;
}

/**
 * A binary message as the envelope it carries, with its bytes in place; or the error to answer
 * it with (a request), to fail its call with (a reply), or to drop it for (PROTOCOL.md §3,
 * `bad-binary`).
 *
 * @param frame The binary frame.
 * @returns What `decode` returns for a text frame.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readBinaryMessage, toBinary } from "./_binary.ts";
 * import { encodeSuccess } from "./envelope.ts";
 * const frame = toBinary({ png: new Uint8Array([1]) }, (json) => encodeSuccess(4, json));
 * assert.deepEqual(readBinaryMessage(frame), {
 *   ok: true,
 *   envelope: { kind: "success", id: 4, result: { png: new Uint8Array([1]) } },
 * });
 * ```
 */
export function readBinaryMessage(frame: ArrayBuffer | Uint8Array): DecodeResult {
  const read = decodeBinary(frame);
  const decoded = read.text === undefined ? undefined : decode(read.text);
  if (decoded && !decoded.ok) return decoded;
  const envelope = decoded?.envelope;
  let problem: string;
  if (!read.ok) problem = read.problem;
  else {
    const message = envelope!; // the text was read, and decoded
    const { paths, parts } = read;
    if (message.kind === "failure") {
      if (paths.length === 0) return { ok: true, envelope: message };
      problem = "an error reply has bytes";
    } else if (message.kind === "success") {
      const placed = placeBytes(message.result, paths, parts);
      if (typeof placed !== "string") {
        return { ok: true, envelope: { ...message, result: placed.value } };
      }
      problem = placed;
    } else {
      const placed = placeBytes(message.params, paths, parts);
      if (typeof placed !== "string") {
        return { ok: true, envelope: { ...message, params: placed.value as Params } };
      }
      problem = placed;
    }
  }
  const id = envelope && envelope.kind !== "notification" ? envelope.id : null;
  const request = envelope?.kind === "request";
  return {
    ok: false,
    error: new EnvelopeDecodeError(
      "bad-binary",
      `Cannot decode frame: binary message: ${problem}`,
      request ? id : null,
      !request && (typeof id === "number" || typeof id === "bigint") ? id : null,
    ),
  };
}
