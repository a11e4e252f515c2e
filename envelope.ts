/**
 * The Mist wire format: one JSON envelope per text frame. Pure functions, no I/O; runs in Deno,
 * browsers and Node (no `Deno.*` here). PROTOCOL.md is the normative description.
 *
 * @example Round trip
 * ```ts
 * import assert from "node:assert/strict";
 * import { decode, encodeRequest } from "./envelope.ts";
 *
 * const decoded = decode(encodeRequest(18446744073709551615n, "echo", ["hi"]));
 * assert.deepEqual(decoded, {
 *   ok: true,
 *   envelope: { kind: "request", id: 18446744073709551615n, method: "echo", params: ["hi"] },
 * });
 * ```
 *
 * @module
 */

/**
 * A request id: an unsigned 64-bit integer. Ids up to `Number.MAX_SAFE_INTEGER` are numbers;
 * larger ones are `bigint`, so an id a Rust peer sent comes back exactly as sent.
 */
export type Id = number | bigint;

/** The largest id the wire allows, 2^64 - 1. */
export const MAX_ID: bigint = 0xffff_ffff_ffff_ffffn;

/** Longest foreign id text answered; a request with a longer one is dropped. */
export const MAX_FOREIGN_ID_LENGTH = 128;

/**
 * A request id another peer chose that is not a plain u64: a JSON string, or a number that is
 * negative, fractional, over 2^64 - 1 or not written digit for digit (`-0`, `1.0`, `1e2`). It
 * keeps the id's exact JSON text, so the reply echoes it unchanged (PROTOCOL.md §2). Mist never
 * sends such ids itself.
 *
 * @example Echoing a string id
 * ```ts
 * import assert from "node:assert/strict";
 * import { decode, encodeSuccess } from "./envelope.ts";
 * const decoded = decode('{"id":"a-1","method":"m"}');
 * assert.ok(decoded.ok && decoded.envelope.kind === "request");
 * if (decoded.ok && decoded.envelope.kind === "request") {
 *   assert.equal(encodeSuccess(decoded.envelope.id, 1), '{"id":"a-1","result":1}');
 * }
 * ```
 */
export class ForeignId {
  /** The id exactly as it was written in the frame. */
  readonly text: string;

  /**
   * Creates the instance.
   *
   * @param text The id's JSON text.
   */
  constructor(text: string) {
    this.text = text;
  }

  /** The JSON text, so templates write it verbatim. */
  toString(): string {
    return this.text;
  }
}

/** The id of a request received: Mist's own kind, or another peer's kept verbatim. */
export type RequestId = Id | ForeignId;

/**
 * Parameters: positional (an array) or by name (an object), sent and delivered as given.
 * A missing `params` is `[]`.
 */
export type Params = readonly unknown[] | { readonly [name: string]: unknown };

/** A call that expects a reply. */
export interface RequestEnvelope {
  /** Discriminant. */
  readonly kind: "request";
  /** Correlates the reply; another peer's id may be foreign. */
  readonly id: RequestId;
  /** The wire name of the method. */
  readonly method: string;
  /** Positional or by-name parameters. */
  readonly params: Params;
}

/** A call that must never be answered (`"id": null`, or no `id` at all). */
export interface NotificationEnvelope {
  /** Discriminant. */
  readonly kind: "notification";
  /** The wire name of the method. */
  readonly method: string;
  /** Positional or by-name parameters. */
  readonly params: Params;
}

/** A successful reply. */
export interface SuccessEnvelope {
  /** Discriminant. */
  readonly kind: "success";
  /** The id of the request this answers. */
  readonly id: Id;
  /** The handler's return value (`null` for none). */
  readonly result: unknown;
}

/** A failed reply. */
export interface FailureEnvelope {
  /** Discriminant. */
  readonly kind: "failure";
  /** The id of the request this answers. */
  readonly id: Id;
  /** The error message. */
  readonly error: string;
}

/** Any valid envelope. */
export type Envelope =
  | RequestEnvelope
  | NotificationEnvelope
  | SuccessEnvelope
  | FailureEnvelope;

/** Why a frame could not be decoded; stable strings, listed in PROTOCOL.md. */
export type DecodeErrorReason =
  | "malformed-json"
  | "not-an-object"
  | "bad-id"
  | "bad-method"
  | "bad-params"
  | "bad-error"
  | "result-and-error"
  | "no-kind"
  | "bad-binary";

/**
 * A frame that is not a valid envelope. When the frame carried a usable id and looked like a
 * request, `replyId` holds it so the receiver can answer with an error.
 *
 * @example Telling decode failures apart
 * ```ts
 * import assert from "node:assert/strict";
 * import { decode, EnvelopeDecodeError } from "./envelope.ts";
 *
 * const decoded = decode('{"id": 7, "method": 3}');
 * assert.equal(decoded.ok, false);
 * if (!decoded.ok) {
 *   assert.ok(decoded.error instanceof EnvelopeDecodeError);
 *   assert.equal(decoded.error.reason, "bad-method");
 *   assert.equal(decoded.error.replyId, 7);
 * }
 * ```
 */
export class EnvelopeDecodeError extends SyntaxError {
  /** Which rule the frame broke. */
  readonly reason: DecodeErrorReason;
  /** The id to answer with an error, or `null` when the frame must be dropped. */
  readonly replyId: RequestId | null;
  /** For a broken reply with a usable id: the call it was meant to settle. */
  readonly responseId: Id | null;

  /**
   * Creates the instance.
   *
   * @param reason Which rule the frame broke.
   * @param message A sentence-case description.
   * @param replyId The id to answer, if any.
   * @param responseId The id of the call a broken reply was meant to settle, if any.
   */
  constructor(
    reason: DecodeErrorReason,
    message: string,
    replyId: RequestId | null = null,
    responseId: Id | null = null,
  ) {
    super(message);
    this.name = "EnvelopeDecodeError";
    this.reason = reason;
    this.replyId = replyId;
    this.responseId = responseId;
  }
}

/** The outcome of {@linkcode decode}: never a thrown exception. */
export type DecodeResult =
  | { readonly ok: true; readonly envelope: Envelope }
  | { readonly ok: false; readonly error: EnvelopeDecodeError };

/**
 * Decodes one text frame. Total: every string maps to an envelope or a typed error.
 *
 * @param text The frame's text.
 * @returns The envelope, or the reason it is invalid.
 *
 * @example Decoding a notification
 * ```ts
 * import assert from "node:assert/strict";
 * import { decode } from "./envelope.ts";
 *
 * assert.deepEqual(decode('{"id": null, "method": "log", "params": [1]}'), {
 *   ok: true,
 *   envelope: { kind: "notification", method: "log", params: [1] },
 * });
 * ```
 */
export function decode(text: string): DecodeResult {
  return decodeCanonical(text) ?? decodeAny(text);
}

/**
 * The frames Mist's own encoders write — `{"id":N,"method":"M","params":…}`,
 * `{"id":null,"method":"M","params":…}` and `{"id":N,"result":…}` with N below 2^53 and M free of
 * escapes — read without building the envelope object first: only the params or result go
 * through `JSON.parse`. Anything else, or anything it is unsure of, is left to `decodeAny`.
 */
function decodeCanonical(text: string): DecodeResult | undefined {
  if (!text.startsWith('{"id":') || text.charCodeAt(text.length - 1) !== 0x7d) return undefined;
  let i = 6, id: number | null = 0;
  if (text.startsWith("null", i)) [id, i] = [null, 10];
  else {
    const first = i;
    for (let c = text.charCodeAt(i); c >= 0x30 && c <= 0x39; c = text.charCodeAt(++i)) {
      id = id * 10 + (c - 0x30);
    }
    // 1 to 15 digits, no leading zero: a safe integer, written as JSON writes it.
    if (i === first || i - first > 15 || (text.charCodeAt(first) === 0x30 && i - first > 1)) {
      return undefined;
    }
  }
  if (text.startsWith(',"method":"', i)) {
    const start = i + 11;
    let end = start + lastMethod.length;
    const known = text.startsWith(lastMethod, start) && text.charCodeAt(end) === 0x22;
    if (!known) {
      for (end = start; text.charCodeAt(end) !== 0x22; end++) {
        const c = text.charCodeAt(end);
        if (c < 0x20 || c === 0x5c || Number.isNaN(c)) return undefined; // control, escape, end
      }
    }
    if (!text.startsWith(',"params":', end + 1)) return undefined;
    const params = parseValue(text, end + 11);
    if (typeof params !== "object" || params === null) return undefined; // array or object
    const method = known ? lastMethod : (lastMethod = text.slice(start, end));
    return id === null
      ? { ok: true, envelope: { kind: "notification", method, params: params as Params } }
      : { ok: true, envelope: { kind: "request", id, method, params: params as Params } };
  }
  if (id !== null && text.startsWith(',"result":', i)) {
    const result = parseValue(text, i + 10);
    if (result === NOT_JSON) return undefined;
    return { ok: true, envelope: { kind: "success", id, result } };
  }
  return undefined;
}

/**
 * The method name of the last request or notification read here. Calls often repeat a method:
 * matching it in place skips slicing a new string, and the map lookup that follows then finds the
 * hash already cached in the string (slice plus hash: ~60 ns a frame). Results stay the same.
 */
let lastMethod = "";

const NOT_JSON = Symbol("not JSON");

/** `text[from, length - 1)` (before the closing brace) as one JSON value, or `NOT_JSON`. */
function parseValue(text: string, from: number): unknown {
  try {
    return JSON.parse(text.slice(from, -1));
  } catch {
    return NOT_JSON;
  }
}

function decodeAny(text: string): DecodeResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail("malformed-json", "Cannot decode frame: not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return fail("not-an-object", "Cannot decode frame: not a JSON object");
  }
  const frame = value as Record<string, unknown>;
  const rawId = frame.id;
  let id: RequestId | null = null;
  if (rawId !== null && rawId !== undefined) {
    id = readId(rawId, text);
    if (id === null) {
      return fail("bad-id", "Cannot decode frame: id is not a JSON number or string");
    }
  }
  if ("method" in frame) {
    const { method, params = [] } = frame;
    if (typeof method !== "string") {
      return fail("bad-method", "Cannot decode frame: method is not a string", id);
    }
    if (typeof params !== "object" || params === null) {
      return fail(
        "bad-params",
        "Cannot decode frame: params is neither an array nor an object",
        id,
      );
    }
    return id === null
      ? { ok: true, envelope: { kind: "notification", method, params: params as Params } }
      : { ok: true, envelope: { kind: "request", id, method, params: params as Params } };
  }
  // A reply; never answered, so a bad reply has no replyId (two peers must not ping-pong errors).
  const hasResult = "result" in frame;
  const hasError = frame.error !== undefined && frame.error !== null;
  if (id === null) {
    return fail(
      hasResult || hasError ? "bad-id" : "no-kind",
      "Cannot decode frame: reply has no id",
    );
  }
  if (id instanceof ForeignId) {
    // Mist sends only u64 ids, so such a reply answers none of its calls.
    return fail("bad-id", "Cannot decode frame: reply to an id Mist never sends");
  }
  if (hasResult && hasError) {
    return fail(
      "result-and-error",
      "Cannot decode frame: reply has both result and error",
      null,
      id,
    );
  }
  if (hasError) {
    const error = readError(frame.error);
    if (error === null) {
      return fail("bad-error", "Cannot decode frame: error is not a string", null, id);
    }
    return { ok: true, envelope: { kind: "failure", id, error } };
  }
  if (hasResult) {
    return { ok: true, envelope: { kind: "success", id, result: frame.result } };
  }
  // Only an id: a request that lost its method (answered), or a JSON-RPC peer's reply to an
  // `undefined` result (the receiver settles its pending call with `null`).
  return fail("no-kind", "Cannot decode frame: neither method, result nor error", id, id);
}

function fail(
  reason: DecodeErrorReason,
  message: string,
  replyId: RequestId | null = null,
  responseId: Id | null = null,
): DecodeResult {
  return {
    ok: false,
    error: new EnvelopeDecodeError(reason, message, replyId, responseId),
  };
}

/** A JSON-RPC 2.0 style `{code, message}` is read as its message (be liberal in what you accept). */
function readError(error: unknown): string | null {
  if (typeof error === "string") return error;
  if (typeof error === "object" && error !== null && !Array.isArray(error)) {
    const message = (error as { message?: unknown }).message;
    if (typeof message === "string") return message;
  }
  return null;
}

const U64 = /^(0|[1-9][0-9]{0,19})$/;

/**
 * The id as Mist keeps it: a u64 written digit for digit is an `Id`; any other JSON number or
 * string is a `ForeignId` holding its exact text (so a reply echoes it). `null` for other types
 * and for foreign ids longer than `MAX_FOREIGN_ID_LENGTH`.
 */
function readId(raw: unknown, text: string): RequestId | null {
  if (typeof raw !== "number" && typeof raw !== "string") return null;
  const source = idText(text, raw);
  if (source === null) return null; // unreachable for valid JSON; be safe
  if (typeof raw === "number" && U64.test(source)) {
    if (Number.isSafeInteger(raw)) return raw;
    const id = BigInt(source);
    if (id <= MAX_ID) return id;
  }
  return source.length <= MAX_FOREIGN_ID_LENGTH ? new ForeignId(source) : null;
}

/**
 * The raw text of the top-level `"id"` member of a valid JSON object. When the text holds
 * `"id"` once, that is the member (found natively, without walking a large frame in script);
 * otherwise the object is walked.
 */
function idText(text: string, parsed: number | string): string | null {
  const at = text.indexOf('"id"');
  if (at >= 0 && text.indexOf('"id"', at + 4) < 0) {
    const found = ID_VALUE.exec(text.slice(at + 4, at + 600))?.[1];
    // The parsed value confirms it is the top-level member (not a nested one, with the top-level
    // key written with escapes).
    if (found !== undefined && JSON.parse(found) === parsed) return found;
  }
  return topLevelIdText(text);
}

const ID_VALUE = /^\s*:\s*(-?[0-9][0-9eE.+-]*|"(?:[^"\\]|\\.)*")/;

/** Walks a valid JSON object for the raw text of its top-level `"id"` member. */
function topLevelIdText(text: string): string | null {
  let depth = 0;
  let i = 0;
  let expectKey = false;
  let key: string | null = null;
  let found: string | null = null; // JSON.parse keeps the last duplicate key; so do we
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      const end = stringEnd(text, i);
      if (depth === 1 && expectKey) {
        key = JSON.parse(text.slice(i, end)) as string;
      } else if (depth === 1 && key === "id") {
        found = text.slice(i, end);
        key = null;
      }
      i = end;
      continue;
    }
    if (c === "{" || c === "[") {
      depth++;
      expectKey = depth === 1;
      if (depth === 2) key = null;
    } else if (c === "}" || c === "]") depth--;
    else if (c === ",") expectKey = depth === 1;
    else if (c === ":" && depth === 1) {
      expectKey = false;
      if (key === "id") {
        const match = /^\s*(-?[0-9][0-9eE.+-]*)/.exec(text.slice(i + 1, i + 600));
        if (match) [found, key] = [match[1], null];
      }
    }
    i++;
  }
  return found;
}

function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
  return i + 1;
}

/**
 * Stable codes of the error messages Mist itself sends (PROTOCOL.md §3 and §4). The wire keeps
 * the seed's plain string; the receiver reads the code back from the message's fixed form.
 * A handler's own error has no code.
 */
export type ErrorCode =
  | "unknown-method"
  | "overloaded"
  | "shutting-down"
  | "invalid-params"
  | "invalid-frame"
  | "result-too-big"
  | "unencodable-result"
  | "bad-hello"
  | "not-negotiated";

// Each code's message form: a fixed start, then (for some) the method in quotes and a tail.
const ERROR_FORMS: readonly [ErrorCode, RegExp][] = [
  ["unknown-method", /^Unknown method "/],
  ["overloaded", /^Cannot run ".*": overloaded \(/s],
  ["shutting-down", /^Cannot run ".*": peer is shutting down$/s],
  ["invalid-params", /^Invalid params for "/],
  ["invalid-frame", /^Cannot decode frame: /],
  ["result-too-big", /^Cannot reply to ".*": result over \d+ bytes$/s],
  ["unencodable-result", /^Cannot encode result of "/],
  ["bad-hello", /^Cannot accept "\$\/hello": /],
  ["not-negotiated", /^Cannot call ".*": the client did not say \$\/hello/s],
];

/**
 * The stable code of an error message Mist produced, or `undefined` for a handler's own.
 *
 * @param message The error string of a failure reply.
 * @returns Its code.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { errorCodeOf } from "./envelope.ts";
 * assert.equal(errorCodeOf('Unknown method "nope"'), "unknown-method");
 * assert.equal(errorCodeOf("Disk full"), undefined);
 * ```
 */
export function errorCodeOf(message: string): ErrorCode | undefined {
  for (const [code, form] of ERROR_FORMS) if (form.test(message)) return code;
  return undefined;
}

/**
 * Encodes a request frame.
 *
 * @param id The request id, 0 to 2^64 - 1.
 * @param method The wire name of the method.
 * @param params Positional or by-name parameters (JSON-serialisable).
 * @returns The frame text.
 * @throws {TypeError} When `params` cannot be serialised (a `bigint`, a cycle).
 *
 * @example Encoding a request
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeRequest } from "./envelope.ts";
 * assert.equal(encodeRequest(1, "echo", [2]), '{"id":1,"method":"echo","params":[2]}');
 * ```
 */
export function encodeRequest(
  id: RequestId,
  method: string,
  params: Params,
): string {
  // One JSON.stringify call writes one flat string. Joining pieces would build a rope that the
  // socket copies once more before encoding it (~0.15 ms per MiB). A bigint is not JSON.
  return typeof id === "number"
    ? JSON.stringify({ id, method, params })
    : `{"id":${id},"method":${JSON.stringify(method)},"params":${JSON.stringify(params)}}`;
}

/**
 * Encodes a notification frame (`"id": null`).
 *
 * @param method The wire name of the method.
 * @param params Positional parameters (JSON-serialisable).
 * @returns The frame text.
 * @throws {TypeError} When `params` cannot be serialised.
 *
 * @example Encoding a notification
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeNotification } from "./envelope.ts";
 * assert.equal(encodeNotification("log", []), '{"id":null,"method":"log","params":[]}');
 * ```
 */
export function encodeNotification(
  method: string,
  params: Params,
): string {
  return JSON.stringify({ id: null, method, params }); // flat, as in encodeRequest
}

/**
 * Encodes a success reply. `undefined` becomes `null`.
 *
 * @param id The id of the request being answered (a foreign id is written verbatim).
 * @param result The result (JSON-serialisable).
 * @returns The frame text.
 * @throws {TypeError} When `result` cannot be serialised.
 *
 * @example Encoding a success
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeSuccess } from "./envelope.ts";
 * assert.equal(encodeSuccess(3n, undefined), '{"id":3,"result":null}');
 * ```
 */
export function encodeSuccess(id: RequestId, result: unknown): string {
  if (typeof id === "number") { // flat, as in encodeRequest
    const text = JSON.stringify({ id, result });
    // A value with no JSON form (undefined, a function) drops the key: `{"id":N}`, no comma.
    return text.indexOf(",", 6) < 0 ? `{"id":${id},"result":null}` : text;
  }
  return `{"id":${id},"result":${JSON.stringify(result) ?? "null"}}`;
}

/**
 * Encodes a failure reply.
 *
 * @param id The id of the request being answered.
 * @param error The error message.
 * @returns The frame text.
 *
 * @example Encoding a failure
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeFailure } from "./envelope.ts";
 * assert.equal(encodeFailure(4, "no"), '{"id":4,"error":"no"}');
 * ```
 */
export function encodeFailure(id: RequestId, error: string): string {
  return `{"id":${id},"error":${JSON.stringify(error)}}`;
}

/**
 * Encodes any envelope.
 *
 * @param envelope The envelope.
 * @returns The frame text.
 * @throws {TypeError} When its params or result cannot be serialised.
 *
 * @example Encode then decode
 * ```ts
 * import assert from "node:assert/strict";
 * import { decode, encode, type Envelope } from "./envelope.ts";
 * const envelope: Envelope = { kind: "success", id: 9, result: { a: [1] } };
 * assert.deepEqual(decode(encode(envelope)), { ok: true, envelope });
 * ```
 */
export function encode(envelope: Envelope): string {
  switch (envelope.kind) {
    case "request":
      return encodeRequest(envelope.id, envelope.method, envelope.params);
    case "notification":
      return encodeNotification(envelope.method, envelope.params);
    case "success":
      return encodeSuccess(envelope.id, envelope.result);
    case "failure":
      return encodeFailure(envelope.id, envelope.error);
  }
}

/**
 * A key for maps of ids: numbers stay numbers; large `bigint` ids (never safe integers) become
 * strings, so `5` and `5n` never collide and lookups stay cheap; a foreign id is its text.
 *
 * @param id An id.
 * @returns A map key.
 *
 * @example Keys
 * ```ts
 * import assert from "node:assert/strict";
 * import { idKey } from "./envelope.ts";
 * assert.equal(idKey(5), 5);
 * assert.equal(idKey(2n ** 60n), "1152921504606846976");
 * ```
 */
export function idKey(id: RequestId): number | string {
  if (typeof id === "number") return id;
  if (typeof id === "bigint") {
    return id <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(id) : id.toString();
  }
  return id.text; // never a plain decimal, so never equal to a large id's key
}

// ---------------------------------------------------------------------------------------------
// Wire constants: every name and number the protocol fixes (PROTOCOL.md), in one place.

/** The upgrade header that carries the secret from Deno and Node clients. */
export const SECRET_HEADER = "X-Land-Secret";
/** The subprotocol naming this wire format; a server selects it when offered. */
export const PROTOCOL_VERSION = "mist.v1";
/** Browsers send the secret as the subprotocol `mist.secret.<64 hex>` (or bare 64 hex). */
export const SECRET_PROTOCOL_PREFIX = "mist.secret.";
/**
 * The upgrade header by which a Mist client that can set headers announces that it will say
 * `$/hello` first (browsers announce it by offering `mist.v1`). Servers that do not know it
 * ignore it.
 */
export const VERSION_HEADER = "X-Mist-Version";
/** The reserved notification that cancels a request: params `[id]`. */
export const CANCEL_METHOD = "$/cancel";
/** The reserved request any Mist peer answers with `null`: a liveness probe. */
export const PING_METHOD = "$/ping";
/** The reserved request a client sends first to say what it speaks (PROTOCOL.md §5). */
export const HELLO_METHOD = "$/hello";
/**
 * The protocol revision this peer declares in `$/hello`; 1 is the seed's format alone, 2 added
 * `$/hello`, 3 the `binary` feature, 4 the `resume` feature. Features are still listed by
 * name: a peer of revision 2 lists none.
 */
export const PROTOCOL_REVISION = 4;
/** The `$/hello` feature of binary messages: bytes in params and results (PROTOCOL.md §2). */
export const BINARY_FEATURE = "binary";
/** The `$/hello` feature of resuming a dropped connection without loss (PROTOCOL.md §8). */
export const RESUME_FEATURE = "resume";
/** The close reason (with 1001) of a server's idle check; it suspends a resumable session. */
export const IDLE_CLOSE_REASON = "No answer to $/ping";
/** The reserved notification acknowledging messages of a resumable session: params `[n]`. */
export const ACK_METHOD = "$/ack";
/** The upgrade header carrying `<nonce>.<offer>` from clients that can set headers. */
export const PROOF_HEADER = "X-Mist-Proof";
/** Browsers offer the subprotocol `mist.proof.<nonce>.<offer>` instead. */
export const PROOF_PROTOCOL_PREFIX = "mist.proof.";
/** The server's first frame toward a client that offered a proof. */
export const CHALLENGE_METHOD = "$/challenge";
/** Method names starting with this prefix are Mist's own (`$/cancel`, `$/ping`). */
export const RESERVED_PREFIX = "$/";
/** The largest `maxMessageBytes` allowed: 64 MiB, what Deno's own sockets accept. */
export const MAX_MESSAGE_BYTES_LIMIT: number = 64 * 1024 * 1024;
