/**
 * The mutual proof (PROTOCOL.md §1): client and server each show that they know the shared
 * secret without sending it, so whoever holds the port after the server died learns nothing
 * reusable. Three messages, each an HMAC-SHA-256 keyed by the secret with its own label:
 *
 * 1. upgrade request: the client's nonce `nc` and `offer = mac("offer", nc)`: lets the server
 *    refuse strangers before upgrading (a replayed offer gets no further than step 3);
 * 2. the server's first frame, `$/challenge`: its nonce `ns` and `mac("server", nc, ns)`; the
 *    client checks it before it sends or accepts anything else;
 * 3. the client's `$/hello` carries `mac("client", nc, ns)`; the server checks it before it
 *    runs or sends anything else. `ns` is fresh, so a recorded answer never works again.
 *
 * Pure Web Crypto: runs in Deno, browsers and Node.
 *
 * @module
 */

import type { SharedSecret } from "./secret.ts";

import { CHALLENGE_METHOD, PROOF_HEADER, PROOF_PROTOCOL_PREFIX } from "./envelope.ts";
export { CHALLENGE_METHOD, PROOF_HEADER, PROOF_PROTOCOL_PREFIX };

const NONCE_BYTES = 16;
const TOKEN = /^([0-9a-f]{32})\.([0-9a-f]{64})$/;
const encoder = new TextEncoder();

function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

async function mac(secret: SharedSecret, label: string, ...nonces: string[]): Promise<string> {
  return toHex(await secret.sign(encoder.encode(["mist-proof-v1", label, ...nonces].join("\0"))));
}

/**
 * Compares two hex strings in constant time for equal lengths.
 *
 * @param a One value.
 * @param b The other value.
 * @returns Whether they are equal.
 */
export function equalHex(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** A client's side of one attempt. */
export interface ClientProof {
  /** `<nonce>.<offer>` for the header or the subprotocol. */
  readonly token: string;
  /**
   * Checks the server's `$/challenge` params and returns the answer for `$/hello`, or
   * `undefined` when the server did not prove it knows the secret.
   */
  answer(challenge: unknown): Promise<string | undefined>;
}

/**
 * Starts a client's proof for one connection attempt.
 *
 * @param secret The shared secret.
 * @returns The token to send and the way to answer the challenge.
 */
export async function clientProof(secret: SharedSecret): Promise<ClientProof> {
  const nc = toHex(crypto.getRandomValues(new Uint8Array(NONCE_BYTES)));
  const token = `${nc}.${await mac(secret, "offer", nc)}`;
  return {
    token,
    async answer(challenge) {
      const { nonce, proof } = (challenge ?? {}) as { nonce?: unknown; proof?: unknown };
      if (typeof nonce !== "string" || !/^[0-9a-f]{32}$/.test(nonce)) return undefined;
      if (typeof proof !== "string") return undefined;
      if (!equalHex(proof, await mac(secret, "server", nc, nonce))) return undefined;
      return await mac(secret, "client", nc, nonce);
    },
  };
}

/** What the server sends and expects on one connection. */
export interface ServerProof {
  /** The `$/challenge` params: `{nonce, proof}`. */
  readonly challenge: { readonly nonce: string; readonly proof: string };
  /** The `proof` member the client's `$/hello` must carry. */
  readonly expected: string;
}

/**
 * Checks a client's token and prepares the server's challenge and the answer it expects.
 *
 * @param secret The shared secret.
 * @param token The header's or subprotocol's `<nonce>.<offer>`.
 * @returns The challenge and the expected answer, or `undefined` for a wrong token.
 */
export async function serverProof(
  secret: SharedSecret,
  token: string,
): Promise<ServerProof | undefined> {
  const parts = TOKEN.exec(token);
  if (!parts) return undefined;
  const [, nc, offer] = parts;
  if (!equalHex(offer, await mac(secret, "offer", nc))) return undefined;
  const ns = toHex(crypto.getRandomValues(new Uint8Array(NONCE_BYTES)));
  return {
    challenge: { nonce: ns, proof: await mac(secret, "server", nc, ns) },
    expected: await mac(secret, "client", nc, ns),
  };
}
