/**
 * The value policy (internal): what a call's params, a notification's params and a handler's
 * result may hold. A value either arrives exactly as sent (deep-equal) or is refused before
 * anything is sent, with the path of the offending value: JSON never changes it silently.
 * Runs in Deno, browsers and Node (no `Deno.*` here).
 *
 * Allowed: plain objects (prototype `Object.prototype` or `null`), arrays, strings, finite
 * numbers, booleans, `null`, and any object with a `toJSON` method other than a `Date` or bytes
 * (sent as what `toJSON` returns, unchecked), and — toward a peer that negotiated binary
 * messages — `Uint8Array` and `ArrayBuffer` (sent as bytes). Everything else JSON would change or
 * reject is refused.
 *
 * @module
 */

/** The refused value and where it is: what {@linkcode unsendable} found. */
interface Found {
  /** Keys and indexes from the root to the value, innermost first (built while unwinding). */
  readonly path: (string | number)[];
  /** The value itself. */
  readonly value: unknown;
  /** For a cycle: how many keys from the root lead to the object it refers back to. */
  readonly cycleDepth?: number;
}

/**
 * Why a value cannot be sent as it is, or `undefined` when it can.
 *
 * @param value The params or the result.
 * @param root What the message calls the value: `params` or `result`.
 * @param topUndefinedOk Whether `undefined` at the root is allowed (a result: sent as `null`).
 * @returns E.g. `params[0].when is a Date; send date.toISOString()`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unsendable } from "./_values.ts";
 * assert.equal(unsendable({ a: [1, "x", null] }, "params"), undefined);
 * assert.equal(unsendable([{ n: NaN }], "params"), "params[0].n is NaN; JSON has no NaN, send null or a string");
 * ```
 */
export function unsendable(
  value: unknown,
  root: string,
  topUndefinedOk = false,
  bytesOk = false,
): string | undefined {
  sawBytes = false;
  allowBytes = bytesOk;
  if (value === undefined && topUndefinedOk) return undefined;
  let found: Found | undefined;
  try {
    try {
      found = check(value, undefined, 0);
    } catch (error) {
      if (error !== TOO_DEEP) throw error;
      found = check(value, [], 0); // deep: walk again, keeping the ancestors to find a cycle
    }
  } catch (error) {
    if (error instanceof RangeError) return `${root} is nested too deeply`; // the stack ran out
    throw error; // a getter threw: the caller's own error, as JSON.stringify would throw it
  }
  if (found === undefined) return undefined;
  const path = found.path.reverse();
  const where = root + pathText(path);
  if (found.cycleDepth !== undefined) {
    return `${where} refers back to ${root + pathText(path.slice(0, found.cycleDepth))} (a cycle)`;
  }
  return `${where} ${problem(found.value, typeof path.at(-1) === "string")}`;
}

/**
 * Whether the value the last {@linkcode unsendable} call accepted holds bytes (a `Uint8Array`
 * or an `ArrayBuffer`, allowed when it was told the other side takes binary messages): then it
 * travels as a binary message (`_binary.ts`). Read right after the call; one walk finds both.
 *
 * @returns Whether bytes were found.
 */
export function hadBytes(): boolean {
  return sawBytes;
}

let sawBytes = false;
let allowBytes = false;

/**
 * Nesting the first walk allows before it assumes a cycle and walks again keeping ancestors.
 * Keeping them costs 3x on every call, and real values are never this deep.
 */
const FAST_DEPTH = 200;

const TOO_DEEP = Symbol("too deep");

/** `BigInt.prototype.toJSON`, if an application defined one, makes bigints sendable. */
const bigintHasToJSON = (): boolean =>
  typeof (BigInt.prototype as { toJSON?: unknown }).toJSON === "function";

/**
 * The first refused value in `value`, depth first. `stack` holds the ancestors when cycles are
 * looked for; without it, nesting over `FAST_DEPTH` throws `TOO_DEEP`. Members are read once,
 * with `for…in`: plain objects inherit no enumerable members.
 */
function check(value: unknown, stack: object[] | undefined, depth: number): Found | undefined {
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined;
    case "number":
      return Number.isFinite(value) ? undefined : { path: [], value };
    case "object":
      break;
    case "bigint":
      return bigintHasToJSON() ? undefined : { path: [], value };
    default: // undefined, function, symbol
      return { path: [], value };
  }
  if (value === null) return undefined;
  const array = Array.isArray(value);
  if (!array) {
    const proto = Object.getPrototypeOf(value);
    if (allowBytes && (value instanceof Uint8Array || value instanceof ArrayBuffer)) {
      sawBytes = true; // Node's Buffer too: it is a Uint8Array
      return undefined;
    }
    // A Date and bytes (Node's Buffer) have toJSON, yet are refused.
    if (
      proto !== Object.prototype && proto !== null &&
      (value instanceof Date || ArrayBuffer.isView(value))
    ) return { path: [], value };
    // A value with toJSON is sent as what it returns, whatever its class.
    if (typeof (value as { toJSON?: unknown }).toJSON === "function") return undefined;
    if (proto !== Object.prototype && proto !== null) return { path: [], value };
  }
  if (stack === undefined) {
    if (depth > FAST_DEPTH) throw TOO_DEEP;
  } else {
    const seen = stack.indexOf(value);
    if (seen >= 0) return { path: [], value, cycleDepth: seen };
    stack[depth] = value;
  }
  let found: Found | undefined;
  if (array) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      // Primitives inline: most members are.
      const kind = typeof item;
      if (kind === "string" || kind === "boolean" || item === null) continue;
      if (kind === "number" && Number.isFinite(item)) continue;
      found = check(item, stack, depth + 1);
      if (found !== undefined) {
        found.path.push(i);
        break;
      }
    }
  } else {
    const record = value as Record<string, unknown>;
    for (const key in record) {
      const item = record[key];
      const kind = typeof item;
      if (kind === "string" || kind === "boolean" || item === null) continue;
      if (kind === "number" && Number.isFinite(item)) continue;
      found = check(item, stack, depth + 1);
      if (found !== undefined) {
        found.path.push(key);
        break;
      }
    }
  }
  if (stack !== undefined) stack.length = depth;
  return found;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** `[0].when`, `.items[2]`, `["a b"]`. */
function pathText(path: readonly (string | number)[]): string {
  let text = "";
  for (const key of path) {
    if (typeof key === "number") text += `[${key}]`;
    else if (IDENTIFIER.test(key) && key.length <= 100) text += `.${key}`;
    else text += `[${JSON.stringify(key.length > 100 ? `${key.slice(0, 100)}…` : key)}]`;
  }
  return text;
}

/** What the refused value is and what to send instead. */
function problem(value: unknown, member: boolean): string {
  switch (typeof value) {
    case "undefined":
      return member
        ? "is undefined; omit the member or send null"
        : "is undefined; send null (JSON would write null)";
    case "number":
      return `is ${value}; JSON has no ${
        Number.isNaN(value) ? "NaN" : "Infinity"
      }, send null or a string`;
    case "bigint":
      return "is a bigint; send String(n) (JSON has no bigint)";
    case "function":
      return "is a function; functions cannot be sent";
    case "symbol":
      return "is a symbol; symbols cannot be sent";
  }
  if (value instanceof Date) return "is a Date; send date.toISOString()";
  if (value instanceof Map) return "is a Map; send Object.fromEntries(map) or [...map]";
  if (value instanceof Set) return "is a Set; send [...set]";
  if (value instanceof WeakMap || value instanceof WeakSet) {
    return `is a ${value instanceof WeakMap ? "WeakMap" : "WeakSet"}; it cannot be sent`;
  }
  if (value instanceof RegExp) return "is a RegExp; send regexp.source";
  if (value instanceof Error) return "is an Error; send { name, message } or error.message";
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    const name = typeName(value) ?? "binary value";
    if (!allowBytes) {
      return `is ${article(name)} ${name}; the other side did not negotiate binary messages ` +
        "(a seed peer), send base64 or an array of numbers";
    }
    return `is ${article(name)} ${name}; only Uint8Array and ArrayBuffer are sent as bytes, ` +
      "send new Uint8Array(view.buffer, view.byteOffset, view.byteLength)";
  }
  if (value instanceof Promise) return "is a Promise; await it first";
  const name = typeName(value);
  return `is ${name === undefined ? "a class instance" : `${article(name)} ${name} instance`}; ` +
    "send a plain object, or give the class a toJSON method";
}

/** "a" or "an", before a type's name. */
function article(name: string): string {
  return /^[AEIO]/i.test(name) ? "an" : "a"; // a Uint8Array
}

/** The constructor's name, when it has a short plain one. */
function typeName(value: unknown): string | undefined {
  try {
    const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
    return typeof name === "string" && IDENTIFIER.test(name) && name.length <= 64
      ? name
      : undefined;
  } catch {
    return undefined;
  }
}
