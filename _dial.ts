/**
 * One connection attempt of the client (internal): the endpoint, the credentials (a proof or
 * the secret, in headers or protocols), the socket, the server's proof, and the `$/hello`, all
 * within one connect timeout. Runs in Deno, browsers and Node (no `Deno.*` here).
 *
 * @module
 */

import { DisconnectedError } from "./errors.ts";
import { Peer, type PeerOptions } from "./peer.ts";
import type { Contract } from "./contract.ts";
import { SharedSecret } from "./secret.ts";
import { PROTOCOL_VERSION, SECRET_HEADER, VERSION_HEADER } from "./_auth.ts";
import { type WebSocketLike, WebSocketTransport } from "./transport.ts";
import { CHALLENGE_METHOD, clientProof, PROOF_HEADER, PROOF_PROTOCOL_PREFIX } from "./_proof.ts";
import type { ResolvedClientOptions } from "./_client_options.ts";
import { Deadline } from "./_deadline.ts";
import { ACK_EVERY, ACK_EVERY_NAGLE, Session, sessions } from "./_session.ts";
import { PROTOCOL_REVISION } from "./envelope.ts";

/** The close code a client uses when the server failed the mutual proof. */
export const PROOF_FAILED_CLOSE_CODE = 4008;

/** What one attempt tells its client, and asks of it. */
export interface Attempt {
  /** Send a proof (else the raw secret). */
  readonly useProof: boolean;
  /** Whether the attempt is still wanted; asked after each wait. */
  readonly current: () => boolean;
  /** Gets the socket once it exists, so that an abandoned attempt can close it. */
  readonly onSocket: (socket: WebSocketLike) => void;
  /** A suspended session to resume, and its peer (PROTOCOL.md §8). */
  readonly resuming?: { readonly session: Session; readonly peer: Peer<Contract, Contract> };
  /** Told when the new connection's session is suspended (its socket dropped). */
  readonly suspended: (code: number, reason: string) => void;
}

/**
 * Makes one connection: asks the provider, presents the credentials, waits for the socket to
 * open, checks the server's proof and says `$/hello`, all within `connectTimeoutMs`.
 *
 * @param options The client's options; the peer gets `options.peer`.
 * @param attempt The client's side of this attempt.
 * @returns The open connection's peer, after its hello.
 * @throws {DisconnectedError} The socket failed or closed, the server failed the proof (4008),
 *   or the timeout ran out (1006); or the provider's error; or `Superseded`.
 */
export async function dial(
  options: ResolvedClientOptions<unknown, unknown>,
  attempt: Attempt,
): Promise<Peer<Contract, Contract>> {
  const endpoint = await options.provider();
  if (!attempt.current()) throw new Error("Superseded");
  const secret = typeof endpoint.secret === "string"
    ? SharedSecret.fromHex(endpoint.secret)
    : endpoint.secret;
  const proof = attempt.useProof ? await clientProof(secret) : undefined;
  if (!attempt.current()) throw new Error("Superseded");
  const { url, init } = credentials(options, endpoint.url, secret, proof?.token);
  const socket = options.factory(url, { ...init, maxMessageBytes: options.peer.maxMessageBytes });
  attempt.onSocket(socket);
  // One deadline for the whole handshake: open, the server's proof, and the hello.
  const { clock, connectTimeoutMs } = options;
  const started = clock.now();
  let timedOut = false;
  const deadline = new Deadline(clock, connectTimeoutMs, undefined, "Connecting", () => {
    timedOut = true;
    closeQuietly(socket);
  });
  try {
    const first = await opened(socket, proof !== undefined);
    let answer: string | undefined;
    if (proof) {
      answer = await proof.answer(challengeParams(first));
      if (answer === undefined) {
        closeQuietly(socket, PROOF_FAILED_CLOSE_CODE, "Server failed the proof");
        throw new DisconnectedError(
          PROOF_FAILED_CLOSE_CODE,
          "Server failed the proof: it does not know the secret, or is not a Mist server",
        );
      }
    }
    const link = new WebSocketTransport(socket);
    if (attempt.resuming) {
      const { session, peer } = attempt.resuming;
      const extra = answer === undefined ? {} : { proof: answer };
      await session.resumeOver(link, { version: PROTOCOL_REVISION, ...extra });
      return peer;
    }
    const session = options.resume &&
      new Session(link, options.resume, clock, {
        suspended: (_session, code, reason) => attempt.suspended(code, reason),
      }, options.ownSocket ? ACK_EVERY : ACK_EVERY_NAGLE);
    // Typed only at the surface: inside, calls are by name.
    const peer = new Peer(session || link, options.peer as PeerOptions);
    if (session) sessions.set(peer, session);
    const left = connectTimeoutMs - (clock.now() - started);
    await peer.hello(answer === undefined ? {} : { proof: answer }, {
      timeoutMs: Math.max(1, Math.ceil(left)),
    });
    return peer;
  } catch (error) {
    throw timedOut
      ? new DisconnectedError(1006, `No connection within ${connectTimeoutMs} ms`)
      : error;
  } finally {
    deadline.clear();
  }
}

/** The URL and the upgrade's headers or protocols for one attempt. */
function credentials(
  options: ResolvedClientOptions<unknown, unknown>,
  url: string,
  secret: SharedSecret,
  proofToken: string | undefined,
): { url: string; init: { headers?: Record<string, string>; protocols?: string[] } } {
  const header = options.via === "header";
  if (proofToken !== undefined) {
    return header
      ? { url, init: { headers: { [PROOF_HEADER]: proofToken, [VERSION_HEADER]: "2" } } }
      : { url, init: { protocols: [PROTOCOL_VERSION, PROOF_PROTOCOL_PREFIX + proofToken] } };
  }
  if (options.secretInQuery) {
    const target = new URL(url);
    target.searchParams.set("secret", secret.toHex());
    url = target.href;
  }
  // The bare hex first: the seed's servers read the whole header value as the secret (and
  // stop at the first non-hex character); Mist's server selects mist.v1, so it is not echoed.
  return header
    ? { url, init: { headers: { [SECRET_HEADER]: secret.toHex(), [VERSION_HEADER]: "2" } } }
    : { url, init: { protocols: [secret.toHex(), PROTOCOL_VERSION] } };
}

/**
 * Closes a socket, ignoring one already closing.
 *
 * @param socket The socket.
 * @param code The close code.
 * @param reason The close reason.
 */
export function closeQuietly(socket: WebSocketLike, code?: number, reason?: string): void {
  try {
    socket.close(code, reason);
  } catch {
    // Already closing.
  }
}

/**
 * Waits for the socket to open; with `firstMessage`, also for its first message (the server's
 * challenge), which it returns. A failure rejects with a {@linkcode DisconnectedError}.
 */
function opened(socket: WebSocketLike, firstMessage: boolean): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let done = false;
    const fail = (event: { code?: number; reason?: string }) => {
      if (done) return;
      done = true;
      const why = event.reason || (event as { message?: string }).message || "Connection failed";
      reject(new DisconnectedError(event.code ?? 1006, why));
    };
    const settle = (value: unknown) => {
      if (done) return;
      done = true;
      resolve(value);
    };
    socket.addEventListener("open", () => {
      if (!firstMessage) settle(undefined);
    });
    // Once settled, this listener ignores the rest: the peer reads them.
    socket.addEventListener("message", (event) => settle(event.data));
    socket.addEventListener("error", fail);
    socket.addEventListener("close", fail);
  });
}

/** The params of a `$/challenge` notification frame, or `undefined`. */
function challengeParams(data: unknown): unknown {
  if (typeof data !== "string" || data.length > 1024) return undefined;
  try {
    const frame = JSON.parse(data) as { id?: unknown; method?: unknown; params?: unknown };
    return frame.id === null && frame.method === CHALLENGE_METHOD ? frame.params : undefined;
  } catch {
    return undefined;
  }
}
