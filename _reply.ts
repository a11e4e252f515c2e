/**
 * What a peer writes back (internal): a handler's reply kept within the message limit, the
 * texts of the peer's own error replies (their stable codes are read from these words, see
 * `errorCodeOf`), and the UTF-8 size check both directions use. Runs in Deno, browsers and Node
 * (no `Deno.*` here).
 *
 * @module
 */

import { encodeFailure, encodeSuccess, errorCodeOf, type RequestId } from "./envelope.ts";
import { logSafe } from "./log.ts";
import { HELLO_METHOD } from "./_reserved.ts";
import { hadBytes, unsendable } from "./_values.ts";
import { toBinary } from "./_binary.ts";

/**
 * The reply frame to a finished handler: its result, or what it threw (`thrownText`). A result
 * the value policy refuses (`_values.ts`), or whose frame is over `maxBytes`, is replaced by an
 * error saying so. A result holding bytes, toward a peer that takes them, is a binary message.
 *
 * @param id The request's id.
 * @param method The request's method, for the replacement's text.
 * @param ok Whether the handler returned rather than threw.
 * @param value What it returned or threw.
 * @param maxBytes The largest frame allowed, in UTF-8 bytes.
 * @param bytesOk Whether the other side takes binary messages.
 * @returns The frame.
 *
 * @example A result over the limit becomes an error reply
 * ```ts
 * import assert from "node:assert/strict";
 * import { replyFrame } from "./_reply.ts";
 * assert.equal(replyFrame(1, "echo", true, "hi", 100), '{"id":1,"result":"hi"}');
 * assert.equal(
 *   replyFrame(1, "big", true, "x".repeat(100), 100),
 *   '{"id":1,"error":"Cannot reply to \\"big\\": result over 100 bytes"}',
 * );
 * ```
 */
export function replyFrame(
  id: RequestId,
  method: string,
  ok: boolean,
  value: unknown,
  maxBytes: number,
  bytesOk = false,
): string | Uint8Array {
  let frame: string | Uint8Array;
  try {
    const refused = ok ? unsendable(value, "result", true, bytesOk) : undefined;
    frame = refused !== undefined
      ? encodeFailure(id, `Cannot encode result of ${quoted(method)}: ${refused}`)
      : !ok
      ? encodeFailure(id, thrownText(value))
      : hadBytes()
      ? toBinary(value, (json) => encodeSuccess(id, json))
      : encodeSuccess(id, value);
  } catch (error) { // a getter or a toJSON threw
    frame = encodeFailure(id, `Cannot encode result of ${quoted(method)}: ${thrownText(error)}`);
  }
  if (tooBig(frame, maxBytes)) {
    frame = encodeFailure(
      id,
      `Cannot reply to ${quoted(method)}: result over ${maxBytes} bytes`,
    );
  }
  return frame;
}

/**
 * The peer's own error replies, by condition; each text is what `errorCodeOf` reads its code
 * from, so change them together.
 */
export const refusal = {
  /** No handler is registered under the name. */
  unknown: (method: string): string => `Unknown method ${quoted(method)}`,
  /** `maxInFlight` handlers run already. */
  overloaded: (method: string, maxInFlight: number): string =>
    `Cannot run ${quoted(method)}: overloaded (${maxInFlight} requests in flight)`,
  /** The peer drains before closing. */
  draining: (method: string): string => `Cannot run ${quoted(method)}: peer is shutting down`,
  /** A `$/hello` without a revision this peer can speak. */
  hello: (): string => `Cannot accept "${HELLO_METHOD}": no version >= 2`,
} as const;

/**
 * A method name the other side chose, fit for a reply or a log line: escaped, at most 100 chars.
 *
 * @param method The name as received.
 * @returns It in double quotes.
 */
export function quoted(method: string): string {
  return `"${logSafe(method, 100)}"`;
}

/**
 * The text an error is reported with.
 *
 * @param error What was thrown.
 * @returns Its message, or its string form.
 */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Longest JSON text of a thrown non-error object sent as the error message. */
export const MAX_THROWN_JSON_CHARS = 500;

const ERROR_NAME = /^[A-Za-z_$][\w$]{0,63}$/;

/**
 * The error message a caller gets for what a handler threw (PROTOCOL.md §4): an `Error`'s (or
 * an object's) string `message`, prefixed `"<name>: "` when its `name` is an identifier other
 * than `Error` (`TypeError: bad`) and the message is not one of Mist's coded forms; else the
 * object's JSON, cut to 500 characters; else `String(value)`.
 *
 * @param value What the handler threw.
 * @returns The message.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { thrownText } from "./_reply.ts";
 * assert.equal(thrownText(new Error("Disk full")), "Disk full");
 * assert.equal(thrownText(new TypeError("bad")), "TypeError: bad");
 * assert.equal(thrownText({ code: 7 }), '{"code":7}');
 * assert.equal(thrownText("plain"), "plain");
 * ```
 */
export function thrownText(value: unknown): string {
  try {
    if (typeof value !== "object" || value === null) return String(value);
    const { message, name } = value as { message?: unknown; name?: unknown };
    if (typeof message === "string") {
      const named = typeof name === "string" && name !== "Error" && ERROR_NAME.test(name);
      if (message === "") return named ? name : "Error";
      return named && errorCodeOf(message) === undefined ? `${name}: ${message}` : message;
    }
    const json = JSON.stringify(value);
    if (typeof json === "string") {
      return json.length > MAX_THROWN_JSON_CHARS
        ? `${json.slice(0, MAX_THROWN_JSON_CHARS)}…(+${json.length - MAX_THROWN_JSON_CHARS} chars)`
        : json;
    }
  } catch {
    // a getter threw, a cycle or a bigint: fall back to its string form
  }
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value); // no toString: `[object Object]`
  }
}

/**
 * Whether a frame is over `max` bytes: a binary one by its length; a text one in UTF-8, without
 * encoding it when its UTF-16 length already decides (at most 3 bytes a unit).
 *
 * @param frame The frame.
 * @param max The limit in bytes.
 * @returns Whether it is over.
 */
export function tooBig(frame: string | Uint8Array | ArrayBuffer, max: number): boolean {
  if (typeof frame !== "string") return frame.byteLength > max;
  const text = frame;
  if (text.length * 3 <= max) return false;
  if (text.length > max) return true;
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c < 0xdc00 ? (i++, 4) : 3;
    if (bytes > max) return true;
  }
  return false;
}
