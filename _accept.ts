/**
 * The server's side of a new connection, after the upgrade and before the peer runs: the
 * mutual proof's challenge and check, and when the connection counts as ready (PROTOCOL.md §1,
 * §5). Runtime-neutral: it sees a `WebSocketLike`, so a Node face can share it.
 *
 * @module
 */

import { HELLO_METHOD, Peer, type PeerOptions } from "./peer.ts";
import { CHALLENGE_METHOD, equalHex, type ServerProof } from "./_proof.ts";
import type { Frame, Transport, TransportSink } from "./transport.ts";
import { type WebSocketLike, WebSocketTransport } from "./transport.ts";

/** The close code and reason for a client that failed the mutual proof. */
export const PROOF_FAILED = { code: 1008, reason: "Proof failed" } as const;

// A hello with its proof is ~200 bytes; anything much larger is not one.
const MAX_HELLO_CHARS = 4096;

/** What the upgrade decided about a connection. */
export interface AcceptPlan {
  /** The client offered a proof that checked out: challenge it, and check its answer. */
  readonly proof: ServerProof | undefined;
  /** The client announced it says `$/hello` first: the peer is ready after its first frame. */
  readonly announced: boolean;
}

/**
 * Starts serving an open socket: sends the challenge when the client offered a proof, and
 * builds the peer. The peer never sees a frame before a proof's answer checked out (a wrong
 * one closes with 1008), and never calls the client before it said `$/hello`.
 *
 * @param socket The open server-side socket.
 * @param plan What the upgrade decided.
 * @param options The peer's options (`requireHello` is set here).
 * @param ready Called once with the peer when the client is ready: after its first frame when
 *   it announced itself, at once otherwise; never for a client that failed the proof.
 * @returns The connection's peer.
 */
export function accept(
  socket: WebSocketLike,
  plan: AcceptPlan,
  options: PeerOptions,
  ready: (peer: Peer) => void,
): Peer {
  const transport = new WebSocketTransport(socket);
  if (plan.proof) {
    transport.send(
      JSON.stringify({ id: null, method: CHALLENGE_METHOD, params: plan.proof.challenge }),
    );
  }
  if (!plan.proof && !plan.announced) {
    const peer = new Peer(transport, { ...options, requireHello: true });
    ready(peer);
    return peer;
  }
  const gate = new FirstFrameGate(transport, plan.proof?.expected, () => ready(peer));
  const peer = new Peer(gate, { ...options, requireHello: true });
  return peer;
}

/**
 * Passes frames through, watching the first: with an expected proof, it must be a `$/hello`
 * carrying it, or the connection closes before the peer sees anything.
 */
class FirstFrameGate implements Transport {
  readonly #inner: Transport;
  readonly #expected: string | undefined;
  readonly #onFirst: () => void;

  constructor(inner: Transport, expected: string | undefined, onFirst: () => void) {
    this.#inner = inner;
    this.#expected = expected;
    this.#onFirst = onFirst;
  }

  get bufferedAmount(): number {
    return this.#inner.bufferedAmount;
  }

  start(sink: TransportSink): void {
    let first = true;
    this.#inner.start({
      frame: (data: Frame) => {
        if (!first) return sink.frame(data);
        first = false;
        if (this.#expected !== undefined && !provesHello(data, this.#expected)) {
          sink.closed(PROOF_FAILED.code, PROOF_FAILED.reason);
          return this.#inner.close(PROOF_FAILED.code, PROOF_FAILED.reason);
        }
        sink.frame(data);
        this.#onFirst();
      },
      closed: (code, reason) => sink.closed(code, reason),
    });
  }

  send(frame: string): void {
    this.#inner.send(frame);
  }

  close(code: number, reason: string): void {
    this.#inner.close(code, reason);
  }
}

function provesHello(data: Frame, expected: string): boolean {
  if (typeof data !== "string" || data.length > MAX_HELLO_CHARS) return false;
  let frame: { method?: unknown; params?: { proof?: unknown } };
  try {
    frame = JSON.parse(data);
  } catch {
    return false;
  }
  const proof = frame?.params?.proof;
  return frame?.method === HELLO_METHOD && typeof proof === "string" && equalHex(proof, expected);
}
