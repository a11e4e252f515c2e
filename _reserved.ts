/**
 * The reserved methods every Mist peer knows (internal; `peer.ts` re-exports the names):
 * `$/ping`, `$/hello` and `$/cancel` (PROTOCOL.md §5), and how their params are read. Runs in
 * Deno, browsers and Node (no `Deno.*` here).
 *
 * @module
 */

import { idKey, type Params } from "./envelope.ts";

import {
  BINARY_FEATURE,
  CANCEL_METHOD,
  HELLO_METHOD,
  PING_METHOD,
  PROTOCOL_REVISION,
} from "./envelope.ts";
export { CANCEL_METHOD, HELLO_METHOD, PING_METHOD, PROTOCOL_REVISION };

/** The features this side offers in its `$/hello`, and accepts in the other side's. */
export const LOCAL_FEATURES: readonly string[] = [BINARY_FEATURE];

/**
 * What the other side declared in `$/hello`: from then on it answers requests, `$/ping` and
 * `$/cancel`, and uses the optional features listed.
 */
export interface RemoteInfo {
  /** Its protocol revision (2 or more). */
  readonly version: number;
  /** Optional features it supports beyond its revision. */
  readonly features: readonly string[];
}

/** At most this many features are kept from a hello: the other side chose the list. */
const MAX_FEATURES = 32;

/**
 * The params of this side's `$/hello`, or its answer to the other side's.
 *
 * @param extra Further members (a proof, PROTOCOL.md §1).
 * @param features The features declared: a client offers what it supports, a server answers
 *   with those of the client's it supports too (both then use them).
 * @returns The revision and the features this side declares.
 */
export function helloParams(
  extra: Readonly<Record<string, unknown>> = {},
  features: readonly string[] = LOCAL_FEATURES,
): Record<string, unknown> {
  return { ...extra, version: PROTOCOL_REVISION, features };
}

/**
 * The features both sides use: those the other side declared that this side supports.
 *
 * @param declared What the other side listed.
 * @param local What this side supports.
 * @returns The agreed list, in this side's order.
 */
export function agreed(
  declared: readonly string[],
  local: readonly string[] = LOCAL_FEATURES,
): string[] {
  return local.filter((feature) => declared.includes(feature));
}

/**
 * Reads a hello's params or reply: `{version >= 2, features?: string[]}`.
 *
 * @param value What the other side sent.
 * @returns What it declared, or `undefined` when it is not a hello of revision 2 or more.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { helloParams, readHello } from "./_reserved.ts";
 * assert.deepEqual(readHello(helloParams({ proof: "ab" }, [])), { version: 4, features: [] });
 * assert.equal(readHello({ version: 1 }), undefined); // the seed's format alone
 * ```
 */
export function readHello(value: unknown): RemoteInfo | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const { version, features = [] } = value as { version?: unknown; features?: unknown };
  if (typeof version !== "number" || !Number.isInteger(version) || version < 2) return undefined;
  const list = Array.isArray(features)
    ? features.filter((f): f is string => typeof f === "string").slice(0, MAX_FEATURES)
    : [];
  return { version, features: list };
}

/**
 * The running request a `$/cancel` names: its id as a number, or as a decimal string (ids above
 * 2^53).
 *
 * @param params The notification's params.
 * @returns The key of that request in the running map, or `undefined` when none is named.
 */
export function cancelTarget(params: Params): number | string | undefined {
  const target = Array.isArray(params) ? params[0] : undefined;
  if (typeof target === "number" && Number.isSafeInteger(target)) return target;
  if (typeof target === "string" && /^(0|[1-9][0-9]{0,19})$/.test(target)) {
    return idKey(BigInt(target));
  }
  return undefined;
}
