/**
 * Who may connect: the secret (header, subprotocol, or opt-in query), the Origin and the Host,
 * all checked before the WebSocket upgrade. Pure functions of a `Request`; runs in Deno,
 * browsers and Node (no `Deno.*` here). The client imports only the constants.
 *
 * @module
 */

import { PROOF_HEADER, PROOF_PROTOCOL_PREFIX } from "./_proof.ts";
import type { SharedSecret } from "./secret.ts";

import {
  PROTOCOL_VERSION,
  SECRET_HEADER,
  SECRET_PROTOCOL_PREFIX,
  VERSION_HEADER,
} from "./envelope.ts";
export { PROTOCOL_VERSION, SECRET_HEADER, SECRET_PROTOCOL_PREFIX, VERSION_HEADER };

/** Origins allowed besides loopback ones by default: the Tauri webview's. */
export const DEFAULT_ALLOWED_ORIGINS: readonly string[] = [
  "tauri://localhost",
  "http://tauri.localhost",
  "https://tauri.localhost",
];

const BARE_SECRET = /^[0-9a-fA-F]{64}$/;

/** What {@linkcode authorize} checks against. */
export interface AuthPolicy {
  /** The server's secret, or `null` for a server that was explicitly made open. */
  readonly secret: SharedSecret | null;
  /** Origins allowed besides loopback ones (exact, case-insensitive). */
  readonly allowedOrigins: readonly string[];
  /** Whether `?secret=` is read (legacy webview code); off by default since URLs get logged. */
  readonly allowQuerySecret: boolean;
  /** Host names allowed besides loopback ones (the bound address, when not loopback). */
  readonly allowedHosts: readonly string[];
}

/**
 * The verdict: upgrade (selecting `protocol`, if any) or refuse with an HTTP status. An
 * upgrade with `proof` set is granted only once that proof token checks out (`_proof.ts`);
 * `announced` says the client announced it will say `$/hello` first.
 */
export type AuthResult =
  | {
    readonly ok: true;
    readonly protocol: string | undefined;
    readonly proof: string | undefined;
    readonly announced: boolean;
  }
  | { readonly ok: false; readonly status: 401 | 403 | 426; readonly reason: string };

/**
 * Decides whether an upgrade request may proceed. Refusals never quote the secret, a header
 * value or the query.
 *
 * @param request The HTTP upgrade request.
 * @param policy The server's policy.
 * @returns The verdict.
 *
 * @example A request from a foreign page is refused
 * ```ts
 * import assert from "node:assert/strict";
 * import { authorize, DEFAULT_ALLOWED_ORIGINS } from "./_auth.ts";
 * import { SharedSecret } from "./secret.ts";
 *
 * const secret = SharedSecret.generate();
 * const request = new Request("http://127.0.0.1:9/", {
 *   headers: {
 *     host: "127.0.0.1:9",
 *     upgrade: "websocket",
 *     origin: "https://evil.example",
 *     "x-land-secret": secret.toHex(),
 *   },
 * });
 * const policy = { secret, allowedOrigins: DEFAULT_ALLOWED_ORIGINS, allowQuerySecret: false, allowedHosts: [] };
 * assert.deepEqual(authorize(request, policy), { ok: false, status: 403, reason: "Origin not allowed" });
 * ```
 */
export function authorize(request: Request, policy: AuthPolicy): AuthResult {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return { ok: false, status: 426, reason: "WebSocket upgrade required" };
  }
  const host = request.headers.get("host");
  if (host === null || !hostAllowed(host, policy.allowedHosts)) {
    return { ok: false, status: 403, reason: "Host not allowed" };
  }
  const origin = request.headers.get("origin");
  if (origin !== null && !originAllowed(origin, policy.allowedOrigins)) {
    return { ok: false, status: 403, reason: "Origin not allowed" };
  }
  const offered = (request.headers.get("sec-websocket-protocol") ?? "")
    .split(",").map((entry) => entry.trim()).filter((entry) => entry !== "");
  const proof = request.headers.get(PROOF_HEADER)?.trim() ??
    offered.find((entry) => entry.startsWith(PROOF_PROTOCOL_PREFIX))
      ?.slice(PROOF_PROTOCOL_PREFIX.length);
  if (policy.secret !== null && proof === undefined) {
    const candidate = presentedSecret(request, offered, policy.allowQuerySecret);
    if (candidate === undefined || !policy.secret.matches(candidate)) {
      return { ok: false, status: 401, reason: "Missing or wrong secret" };
    }
  }
  const announced = proof !== undefined || request.headers.has(VERSION_HEADER) ||
    offered.includes(PROTOCOL_VERSION);
  return {
    ok: true,
    protocol: selectProtocol(offered),
    proof: policy.secret === null ? undefined : proof,
    announced,
  };
}

/** The first credential found decides: header, then subprotocol, then (opt-in) query. */
function presentedSecret(
  request: Request,
  offered: string[],
  allowQuery: boolean,
): string | undefined {
  const header = request.headers.get(SECRET_HEADER);
  if (header !== null) return header.trim();
  for (const entry of offered) {
    if (entry.startsWith(SECRET_PROTOCOL_PREFIX)) return entry.slice(SECRET_PROTOCOL_PREFIX.length);
    if (BARE_SECRET.test(entry)) return entry;
  }
  if (allowQuery) return new URL(request.url).searchParams.get("secret") ?? undefined;
  return undefined;
}

/**
 * Browsers drop a connection whose selected protocol they did not offer, so one offered entry
 * is always selected: a non-secret one when there is one, else the secret entry itself.
 */
function selectProtocol(offered: string[]): string | undefined {
  if (offered.length === 0) return undefined;
  if (offered.includes(PROTOCOL_VERSION)) return PROTOCOL_VERSION;
  return offered.find((entry) => !isSecretEntry(entry)) ?? offered[0];
}

function isSecretEntry(entry: string): boolean {
  return entry.startsWith(SECRET_PROTOCOL_PREFIX) || entry.startsWith(PROOF_PROTOCOL_PREFIX) ||
    BARE_SECRET.test(entry);
}

/**
 * Whether a host name (no port, IPv6 in brackets or not) is a loopback name or address.
 *
 * @param hostname A host name.
 * @returns True for `localhost`, `127.0.0.0/8` and `::1`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isLoopbackHost } from "./_auth.ts";
 * assert.ok(isLoopbackHost("127.0.0.1") && isLoopbackHost("[::1]") && isLoopbackHost("localhost"));
 * assert.ok(!isLoopbackHost("attacker.example") && !isLoopbackHost("0.0.0.0"));
 * ```
 */
export function isLoopbackHost(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  if (name === "localhost" || name === "::1" || name === "0:0:0:0:0:0:0:1") return true;
  const v4 = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(name);
  return v4 !== null && v4.slice(1).every((part) => Number(part) <= 255);
}

function hostAllowed(host: string, extra: readonly string[]): boolean {
  // Host is "name", "name:port", "[v6]" or "[v6]:port" (RFC 7230 §5.4).
  const match = /^(\[[^\]]*\]|[^:]*)(?::\d*)?$/.exec(host.trim());
  if (match === null) return false;
  const name = match[1];
  return isLoopbackHost(name) ||
    extra.some((allowed) => allowed.toLowerCase() === name.toLowerCase());
}

function originAllowed(origin: string, allowed: readonly string[]): boolean {
  const lower = origin.toLowerCase();
  if (allowed.some((entry) => entry.toLowerCase() === lower)) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // "null" (sandboxed or file pages) and garbage
  }
  return (url.protocol === "http:" || url.protocol === "https:") && isLoopbackHost(url.hostname);
}
