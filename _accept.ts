/**
 * The server's side of a new connection, after the upgrade and before the peer runs: the
 * mutual proof's challenge and check, and when the connection counts as ready (PROTOCOL.md §1,
 * §5). Runtime-neutral: it sees a `WebSocketLike`, so a Node face can share it.
 *
 * @module
 */

import { HELLO_METHOD, Peer, type PeerOptions, PROTOCOL_REVISION } from "./peer.ts";
import { sessions } from "./_session.ts";
import type { SessionTable } from "./_session_table.ts";
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
 *   it announced itself, at once otherwise; never for a client that failed the proof, nor for
 *   one that resumed an earlier session (PROTOCOL.md §8).
 * @param table The resumable sessions, when resume is on: a client that announced itself gets
 *   a session, and may resume an earlier one with its first frame.
 * @returns The connection's peer (closed at once when it resumed an earlier session).
 */
export function accept(
  socket: WebSocketLike,
  plan: AcceptPlan,
  options: PeerOptions,
  ready: (peer: Peer) => void,
  table?: SessionTable,
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
  const gate = new FirstFrameGate(transport, plan.proof?.expected, () => ready(peer), table);
  const session = table?.create(gate);
  const peer = new Peer(session ?? gate, { ...options, requireHello: true });
  if (session) sessions.set(peer, session);
  return peer;
}

/**
 * Passes frames through, watching the first: with an expected proof, it must be a `$/hello`
 * carrying it, or the connection closes before the peer sees anything. A hello that resumes
 * an earlier session hands the socket to that session (started again, the gate delivers to
 * the new sink) and closes this connection's own peer.
 */
class FirstFrameGate implements Transport {
  readonly #inner: Transport;
  readonly #expected: string | undefined;
  readonly #onFirst: () => void;
  readonly #table: SessionTable | undefined;
  #sink: TransportSink | undefined;

  constructor(
    inner: Transport,
    expected: string | undefined,
    onFirst: () => void,
    table: SessionTable | undefined,
  ) {
    this.#inner = inner;
    this.#expected = expected;
    this.#onFirst = onFirst;
    this.#table = table;
  }

  get bufferedAmount(): number {
    return this.#inner.bufferedAmount;
  }

  start(sink: TransportSink): void {
    const started = this.#sink !== undefined;
    this.#sink = sink;
    if (started) return; // a resumed session takes the socket over
    let first = true;
    this.#inner.start({
      frame: (data: Frame) => {
        const sink = this.#sink!;
        if (!first) return sink.frame(data);
        first = false;
        const hello = firstHello(data);
        if (this.#expected !== undefined && !proves(hello, this.#expected)) {
          sink.closed(PROOF_FAILED.code, PROOF_FAILED.reason);
          return this.#inner.close(PROOF_FAILED.code, PROOF_FAILED.reason);
        }
        if (this.#table && hello?.params?.resume !== undefined) return this.#resume(hello, sink);
        sink.frame(data);
        this.#onFirst();
      },
      closed: (code, reason) => this.#sink!.closed(code, reason),
    });
  }

  /** The first frame resumes an earlier session: answer, hand the socket over, or refuse. */
  #resume(hello: Hello, own: TransportSink): void {
    const { id = null, params } = hello;
    const { token, received } = params!.resume as { token?: unknown; received?: unknown };
    own.closed(1000, "Resumed an earlier session"); // this connection's own peer never ran
    const resumed = this.#table!.resume(token, received, this, (next, mine) => {
      const result = { version: PROTOCOL_REVISION, resume: { token: next, received: mine } };
      this.#inner.send(JSON.stringify({ id, result }));
    });
    if (!resumed) {
      this.#inner.send(JSON.stringify({ id, error: "Cannot resume: no such session" }));
      this.#inner.close(1000, "Not resumed");
    }
  }

  send(frame: string | Uint8Array): void {
    this.#inner.send(frame);
  }

  close(code: number, reason: string): void {
    this.#inner.close(code, reason);
  }
}

/** A first frame that is a `$/hello` request. */
interface Hello {
  readonly id?: unknown;
  readonly params?: { readonly proof?: unknown; readonly resume?: unknown };
}

/** The first frame as a `$/hello`, or `undefined` when it is not one. */
function firstHello(data: Frame): Hello | undefined {
  if (typeof data !== "string" || data.length > MAX_HELLO_CHARS) return undefined;
  try {
    const frame = JSON.parse(data);
    return frame?.method === HELLO_METHOD && typeof frame.params === "object" ? frame : undefined;
  } catch {
    return undefined;
  }
}

function proves(hello: Hello | undefined, expected: string): boolean {
  const proof = hello?.params?.proof;
  return typeof proof === "string" && equalHex(proof, expected);
}
