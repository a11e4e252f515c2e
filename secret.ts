/**
 * The per-spawn shared secret. Runs in Deno, browsers and Node (no `Deno.*` here).
 *
 * @module
 */

/** The secret's length in bytes. */
export const SECRET_BYTES = 32;

const HEX = /^[0-9a-fA-F]{64}$/;
const REDACTED = "SharedSecret(<redacted>)";

/**
 * A 32-byte secret shared by the process that spawns a peer and the peer itself. Its string,
 * JSON and inspected forms never reveal the bytes; only {@linkcode SharedSecret.toHex} does.
 *
 * @example Generate, pass as hex, compare
 * ```ts
 * import assert from "node:assert/strict";
 * import { SharedSecret } from "./secret.ts";
 *
 * const secret = SharedSecret.generate();
 * const received = SharedSecret.fromHex(secret.toHex());
 * assert.ok(received.matches(secret));
 * assert.equal(String(secret), "SharedSecret(<redacted>)");
 * assert.equal(JSON.stringify({ secret }), '{"secret":"SharedSecret(<redacted>)"}');
 * ```
 */
export class SharedSecret {
  #bytes: Uint8Array;
  #key: Promise<CryptoKey> | undefined;

  private constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  /**
   * Makes a new secret from the platform's cryptographically secure generator.
   *
   * @returns A fresh secret.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SharedSecret } from "./secret.ts";
   * assert.notEqual(SharedSecret.generate().toHex(), SharedSecret.generate().toHex());
   * ```
   */
  static generate(): SharedSecret {
    return new SharedSecret(
      crypto.getRandomValues(new Uint8Array(SECRET_BYTES)),
    );
  }

  /**
   * Reads a secret from its 64-character hex form (either case).
   *
   * @param hex 64 hex characters.
   * @returns The secret.
   * @throws {TypeError} When `hex` is not exactly 64 hex characters; the message never
   * contains the value.
   *
   * @example Rejecting a short value
   * ```ts
   * import assert from "node:assert/strict";
   * import { SharedSecret } from "./secret.ts";
   * assert.throws(() => SharedSecret.fromHex("abc"), TypeError);
   * ```
   */
  static fromHex(hex: string): SharedSecret {
    if (typeof hex !== "string" || !HEX.test(hex)) {
      const length = typeof hex === "string" ? `${hex.length} characters` : typeof hex;
      throw new TypeError(
        `Cannot read secret: expected 64 hex characters, got ${length}`,
      );
    }
    return new SharedSecret(hexToBytes(hex));
  }

  /**
   * The secret as 64 lowercase hex characters: the only form that reveals it.
   *
   * @returns The hex form.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SharedSecret } from "./secret.ts";
   * assert.equal(SharedSecret.fromHex("AB".repeat(32)).toHex(), "ab".repeat(32));
   * ```
   */
  toHex(): string {
    return bytesToHex(this.#bytes);
  }

  /**
   * Compares in constant time: the time taken does not depend on where the values differ.
   *
   * @param candidate Another secret, or its hex form (anything malformed does not match).
   * @returns Whether they are equal.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SharedSecret } from "./secret.ts";
   * const secret = SharedSecret.generate();
   * assert.ok(secret.matches(secret.toHex().toUpperCase()));
   * assert.ok(!secret.matches("00".repeat(32)));
   * assert.ok(!secret.matches("not hex"));
   * ```
   */
  matches(candidate: SharedSecret | string): boolean {
    let other: Uint8Array;
    if (candidate instanceof SharedSecret) other = candidate.#bytes;
    else if (typeof candidate === "string" && HEX.test(candidate)) {
      other = hexToBytes(candidate);
    } else return false;
    let diff = 0;
    for (let i = 0; i < SECRET_BYTES; i++) diff |= this.#bytes[i] ^ other[i];
    return diff === 0;
  }

  /**
   * An HMAC-SHA-256 of `message` keyed by the secret: proves knowledge of the secret without
   * revealing it (the mutual proof of PROTOCOL.md §1). Web Crypto, so it runs everywhere.
   *
   * @param message What to sign.
   * @returns The 32-byte tag.
   *
   * @example Tags differ by message and never contain the secret
   * ```ts
   * import assert from "node:assert/strict";
   * import { SharedSecret } from "./secret.ts";
   * const secret = SharedSecret.generate();
   * const a = await secret.sign(new TextEncoder().encode("a"));
   * assert.equal(a.length, 32);
   * assert.notDeepEqual(a, await secret.sign(new TextEncoder().encode("b")));
   * ```
   */
  async sign(message: Uint8Array): Promise<Uint8Array> {
    this.#key ??= crypto.subtle.importKey(
      "raw",
      this.#bytes as Uint8Array<ArrayBuffer>,
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    const tag = await crypto.subtle.sign(
      "HMAC",
      await this.#key,
      message as Uint8Array<ArrayBuffer>,
    );
    return new Uint8Array(tag);
  }

  /**
   * A redacted form, so logging a secret by accident reveals nothing.
   *
   * @returns `"SharedSecret(<redacted>)"`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SharedSecret } from "./secret.ts";
   * assert.equal(`${SharedSecret.generate()}`, "SharedSecret(<redacted>)");
   * ```
   */
  toString(): string {
    return REDACTED;
  }

  /**
   * The JSON form: redacted, like {@linkcode SharedSecret.toString}.
   *
   * @returns `"SharedSecret(<redacted>)"`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SharedSecret } from "./secret.ts";
   * assert.equal(JSON.stringify(SharedSecret.generate()), '"SharedSecret(<redacted>)"');
   * ```
   */
  toJSON(): string {
    return REDACTED;
  }

  /** Deno's `Deno.inspect` and `console.log` form. */
  [Symbol.for("Deno.customInspect")](): string {
    return REDACTED;
  }

  /** Node's `util.inspect` and `console.log` form. */
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return REDACTED;
  }
}

interface HexBytes {
  toHex?: () => string;
}
interface HexCtor {
  fromHex?: (hex: string) => Uint8Array;
}

// Built-in Uint8Array.prototype.toHex / Uint8Array.fromHex where the runtime has them (Deno,
// current browsers); a plain loop elsewhere (Node 20).
function bytesToHex(bytes: Uint8Array): string {
  const own = (bytes as HexBytes).toHex;
  if (own) return own.call(bytes);
  let hex = "";
  for (const byte of bytes) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

function hexToBytes(hex: string): Uint8Array {
  const fromHex = (Uint8Array as HexCtor).fromHex;
  if (fromHex) return fromHex(hex);
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  }
  return bytes;
}
