/**
 * Resume without loss (internal; PROTOCOL.md §8): a session is the transport a peer sees when
 * the feature `resume` may be negotiated. It outlives the sockets under it. Once both sides
 * agreed (`begin`), every frame in each direction is numbered implicitly — the n-th frame sent
 * after the hello is message n, nothing is added to it — and kept in a replay buffer until the
 * other side acknowledges it with `$/ack [n]`. When a socket drops, the session is suspended
 * instead of closed: the peer sees nothing, its calls stay pending and its handlers keep
 * running. A new socket resumes it: each side says how many messages it received, the other
 * replays exactly the rest, so every message arrives once and in order. When that cannot
 * happen (the buffer overflowed, the other side forgot the session) the session ends and the
 * peer sees an ordinary close. Runs in Deno, browsers and Node (no `Deno.*` here).
 *
 * @module
 */

import { releaseBuffer, retainBuffer, takeBuffer } from "./_buffer_pool.ts";
import type { Clock } from "./clock.ts";
import { DisconnectedError } from "./errors.ts";
import { ACK_METHOD, encodeRequest, HELLO_METHOD, IDLE_CLOSE_REASON } from "./envelope.ts";
import type { Frame, Transport, TransportSink } from "./transport.ts";

/** Bounds of one session's replay buffer: what it sent and the other side has not acknowledged. */
export interface ReplayLimits {
  /** Largest total size of the unacknowledged messages (text in UTF-16 units, or UTF-8 bytes when kept as bytes; binary in bytes). */
  readonly maxBufferBytes: number;
  /** Most unacknowledged messages. */
  readonly maxBufferMessages: number;
  /** A bound shared by every session of a server: their buffers together. */
  readonly total?: ByteBudget;
}

/** Bytes that several sessions' buffers draw on together. */
export interface ByteBudget {
  /** Held now. */
  used: number;
  /** At most. */
  readonly max: number;
}

/** Defaults of the replay buffer: 8 MiB and 4,096 messages a session. */
export const DEFAULT_REPLAY_LIMITS: ReplayLimits = {
  maxBufferBytes: 8 * 1024 * 1024,
  maxBufferMessages: 4096,
};

/**
 * A receiver acknowledges after `ackEvery` messages or this many bytes, or this long after the
 * first message it has not acknowledged. An acknowledgement is a frame of its own, dispatched
 * and written like any message; kept messages cost little (they die young, before a
 * collection). Resume on ÷ off, calls/s with 64 in flight, separate processes, 12 paired runs
 * each: 0.938 acking every 64, 0.964 every 256, 0.951 every 1,024. On a socket with Nagle's
 * algorithm on, the write after an acknowledgement waits for the TCP ACK (~40 ms): a side whose
 * socket may have it on (a client given its own `webSocketFactory`, e.g. Deno's native
 * WebSocket) acks every 1,024 messages, a quarter of the default buffer.
 */
export const ACK_EVERY = 256;
/** `ackEvery` for a socket that may have Nagle's algorithm on. */
export const ACK_EVERY_NAGLE = 1024;
const ACK_EVERY_BYTES = 2 * 1024 * 1024;
const ACK_DELAY_MS = 250;

/**
 * Close codes after which the other side does not want the session back: a normal close, a
 * shutdown, a protocol or policy error, a failed proof. Any other close (1006 above all, a
 * heartbeat's 4000) suspends it.
 */
const ENDING_CODES = new Set([1000, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 4002, 4008, 4009]);

/**
 * Whether a close ends a resumable session.
 *
 * @param code The close code.
 * @param reason The close reason.
 * @returns Whether it ends it (else the session waits to be resumed).
 */
export function endsSession(code: number, reason: string): boolean {
  if (code === 1001) return !reason.startsWith(IDLE_CLOSE_REASON);
  return ENDING_CODES.has(code);
}

/** What a session tells its owner (the client, or the server's session table). */
export interface SessionHooks {
  /** The socket dropped and the session waits to be resumed. */
  readonly suspended?: (session: Session, code: number, reason: string) => void;
  /** The session ended for good. */
  readonly ended?: (session: Session) => void;
  /** The server's: registers the session and returns its first resume token. */
  readonly token?: (session: Session) => string;
}

/**
 * The peer's transport when `resume` may be negotiated: see the module's description.
 *
 * @example
 * ```ts ignore
 * const session = new Session(new WebSocketTransport(socket), DEFAULT_REPLAY_LIMITS, clock, hooks);
 * const peer = new Peer(session);
 * ```
 */
export class Session implements Transport {
  readonly #limits: ReplayLimits;
  readonly #clock: Clock;
  readonly #hooks: SessionHooks;
  readonly #ackEvery: number;
  #link: Transport | undefined;
  #sink: TransportSink | undefined;
  #begun = false;
  #resumable = false;
  #gap = 0; // the last message not kept (the buffer overflowed): resumable once acknowledged
  #remoteAcked = 0; // the other side's last acknowledgement
  #ended = false;
  #sent = 0; // number of the last message sent
  #received = 0; // number of the last message received
  #acked = 0; // the last acknowledgement sent
  #unackedBytes = 0; // size of the messages received since
  #ackTimer: unknown;
  // Unacknowledged messages: #buffer[#head..] are numbers #sent - (length - #head) + 1 .. #sent.
  #buffer: Kept[] = [];
  // Their sizes, negative for bytes to release: trimming reads these, not the messages (which
  // are no longer in the CPU's caches by then).
  #sizes: number[] = [];
  #head = 0;
  #bufferBytes = 0;
  /** The client's resume token (from the server's hello answer, renewed by each resume). */
  token: string | undefined;

  /**
   * @param link The first socket's transport.
   * @param limits The replay buffer's bounds.
   * @param clock Where the acknowledgement timer comes from.
   * @param hooks Told of suspensions and the end.
   * @param ackEvery Acknowledge after this many messages (see {@linkcode ACK_EVERY}).
   */
  constructor(
    link: Transport,
    limits: ReplayLimits,
    clock: Clock,
    hooks: SessionHooks = {},
    ackEvery: number = ACK_EVERY,
  ) {
    this.#ackEvery = ackEvery;
    this.#link = link;
    this.#limits = limits;
    this.#clock = clock;
    this.#hooks = hooks;
  }

  /** The socket's unwritten bytes; 0 while suspended (messages wait in the replay buffer). */
  get bufferedAmount(): number {
    return this.#link?.bufferedAmount ?? 0;
  }

  /** Whether the socket dropped and the session waits to be resumed. */
  get suspended(): boolean {
    return this.#link === undefined && !this.#ended;
  }

  /** Whether the session ended (closed on purpose, or could not be resumed). */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * The server's: the first resume token, for the hello's answer (the session joins the table).
   *
   * @returns The token.
   */
  issue(): string {
    return this.#hooks.token!(this);
  }

  /**
   * Whether a dropped socket would be resumed: the session began, and the other side
   * acknowledged every message that could not be kept.
   */
  get resumable(): boolean {
    return this.#resumable && this.#remoteAcked >= this.#gap;
  }

  /** Messages received so far: what the other side must not replay. */
  get received(): number {
    return this.#received;
  }

  /** Messages waiting for an acknowledgement, and their size: for tests and bounds. */
  get unacknowledged(): { readonly messages: number; readonly bytes: number } {
    return { messages: this.#buffer.length - this.#head, bytes: this.#bufferBytes };
  }

  /** @param sink The peer. */
  start(sink: TransportSink): void {
    this.#sink = sink;
    this.#listen(this.#link!);
  }

  /**
   * Both sides agreed on `resume`: from the next message on, messages are numbered and kept.
   *
   * @param token The client's token from the server's answer (the server keeps its own table).
   */
  begin(token?: string): void {
    this.#begun = this.#resumable = true;
    if (token !== undefined) this.token = token;
  }

  /** @param frame A message: numbered and kept once the session began. */
  send(frame: string | Uint8Array): void {
    if (this.#ended) return;
    if (this.#resumable) {
      this.#sent++;
      let bytes: number;
      if (typeof frame === "string" && frame.length < KEEP_AS_BYTES_CHARS) {
        this.#buffer.push(frame); // the common case, inline
        this.#sizes.push(bytes = frame.length);
      } else {
        const kept = keep(frame);
        this.#buffer.push(kept);
        bytes = size(kept);
        if (kept instanceof Uint8Array) retainBuffer(kept); // a binary message, kept as is
        this.#sizes.push(-bytes); // bytes to release when trimmed
      }
      this.#held(bytes);
      const { maxBufferBytes, maxBufferMessages, total } = this.#limits;
      if (
        this.#bufferBytes > maxBufferBytes ||
        this.#buffer.length - this.#head > maxBufferMessages ||
        (total !== undefined && total.used > total.max)
      ) {
        // Too much unacknowledged (the other side stopped acknowledging, or one message is
        // bigger than the buffer): nothing up to this message can be replayed, so the session
        // cannot be resumed until the other side acknowledges it.
        this.#release();
        this.#gap = this.#sent;
        if (!this.#link) {
          return this.end(1006, "Connection lost, and the resume buffer overflowed");
        }
      }
    }
    this.#link?.send(frame);
  }

  /**
   * The peer closes on purpose: the session ends with the socket.
   *
   * @param code The close code.
   * @param reason The close reason.
   */
  close(code: number, reason: string): void {
    if (this.#ended) return;
    const link = this.#link;
    this.#finish();
    link?.close(code, reason);
  }

  /**
   * The socket looks dead (no answer to a ping): closes it, and keeps the session for a resume
   * when it can be resumed.
   *
   * @param code The close code for the socket.
   * @param reason The close reason.
   * @returns Whether the session was kept (else the caller closes the peer).
   */
  drop(code: number, reason: string): boolean {
    if (!this.resumable || this.#ended || !this.#link) return false;
    const link = this.#link;
    this.#suspend(code, reason);
    link.close(code, reason);
    return true;
  }

  /**
   * Gives up: the peer sees a close with this code and reason (its calls fail with
   * `DisconnectedError`).
   *
   * @param code The close code.
   * @param reason Why.
   */
  end(code: number, reason: string): void {
    if (this.#ended) return;
    const link = this.#link;
    this.#finish();
    link?.close(code === 1006 ? 1000 : code, reason);
    this.#sink?.closed(code, reason);
  }

  /**
   * The client's side of a resume over a new socket: sends `$/hello` with the token and how
   * many messages it received, waits for the answer, then replays what the server did not get.
   *
   * @param link The new socket's transport, not started.
   * @param hello The hello's other members (version, features, proof).
   * @returns When resumed.
   * @throws {DisconnectedError} The server refused (it no longer has the session: the session
   *   then ends) or the socket closed first.
   */
  resumeOver(link: Transport, hello: Record<string, unknown>): Promise<void> {
    return new Promise((resolve, reject) => {
      let answered = false;
      link.start({
        frame: (data) => {
          if (answered) return link === this.#link ? this.#onFrame(data) : undefined;
          answered = true;
          const reply = readResumeAnswer(data);
          if (reply === undefined || !this.#adopt(link, reply.received, false)) {
            const why = "Connection lost, and the server no longer has the session " +
              "(it restarted, or the grace period ended)";
            this.end(1006, why);
            link.close(1000, "Not resumed");
            return reject(new DisconnectedError(1006, why));
          }
          this.token = reply.token;
          resolve();
        },
        closed: (code, reason) => {
          if (answered) return link === this.#link ? this.#onLinkClosed(code, reason) : undefined;
          answered = true;
          reject(new DisconnectedError(code, reason || "Connection failed"));
        },
      });
      const resume = { token: this.token, received: this.#received };
      link.send(encodeRequest(0, HELLO_METHOD, { ...hello, resume }));
    });
  }

  /**
   * The server's side of a resume: the new socket carries on, after the messages the client
   * did not get are replayed. An old socket still open is closed.
   *
   * @param link The new socket's transport, not started; the answer was sent on it.
   * @param remoteReceived How many messages the client received.
   * @returns Whether resumed (else the session ended).
   */
  adopt(link: Transport, remoteReceived: number): boolean {
    const old = this.#link;
    this.#link = undefined;
    old?.close(1000, "Resumed on another connection");
    return this.#adopt(link, remoteReceived, true);
  }

  #adopt(link: Transport, remoteReceived: number, listen: boolean): boolean {
    const first = this.#sent - (this.#buffer.length - this.#head) + 1;
    if (
      this.#ended || !this.#resumable || !Number.isSafeInteger(remoteReceived) ||
      remoteReceived < this.#gap ||
      remoteReceived < first - 1 || remoteReceived > this.#sent
    ) {
      this.end(1006, "Connection lost, and the messages in flight cannot be replayed");
      return false;
    }
    this.#trim(remoteReceived);
    this.#link = link;
    if (listen) this.#listen(link);
    for (let i = this.#head; i < this.#buffer.length; i++) {
      // Lent, never given: held twice while sent, so no socket frames it in place.
      const frame = unkeep(this.#buffer[i]);
      if (typeof frame !== "string") retainBuffer(frame);
      link.send(frame);
      if (typeof frame !== "string") releaseBuffer(frame);
    }
    if (this.#received > this.#acked) this.#ack();
    return true;
  }

  #listen(link: Transport): void {
    link.start({
      frame: (data) => {
        if (link === this.#link) this.#onFrame(data);
      },
      closed: (code, reason) => {
        if (link === this.#link) this.#onLinkClosed(code, reason);
      },
    });
  }

  #onFrame(data: Frame): void {
    if (!this.#begun) return this.#sink!.frame(data);
    if (typeof data === "string" && data.startsWith(ACK_PREFIX)) return this.#onAck(data);
    this.#received++;
    this.#unackedBytes += typeof data === "string" ? data.length : data.byteLength;
    if (this.#received - this.#acked >= this.#ackEvery || this.#unackedBytes >= ACK_EVERY_BYTES) {
      this.#ack();
    } else this.#ackTimer ??= this.#clock.setTimeout(this.#onAckTimer, ACK_DELAY_MS);
    this.#sink!.frame(data);
  }

  #onLinkClosed(code: number, reason: string): void {
    if (this.#ended) return;
    if (this.resumable && !endsSession(code, reason)) return this.#suspend(code, reason);
    this.#finish();
    this.#sink?.closed(code, reason);
  }

  #suspend(code: number, reason: string): void {
    this.#link = undefined;
    this.#clock.clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    this.#hooks.suspended?.(this, code, reason);
  }

  #finish(): void {
    this.#ended = true;
    this.#link = undefined;
    this.#clock.clearTimeout(this.#ackTimer);
    this.#release();
    this.#hooks.ended?.(this);
  }

  /**
   * The acknowledgement timer is left running when a count or size acknowledges first: one timer
   * per `ACK_DELAY_MS` of traffic, not one per acknowledgement (a timer costs more than a message).
   */
  readonly #onAckTimer = (): void => {
    this.#ackTimer = undefined;
    this.#ack();
  };

  #ack(): void {
    if (!this.#link || this.#received === this.#acked) return;
    this.#acked = this.#received;
    this.#unackedBytes = 0;
    this.#link.send(`${ACK_PREFIX}${this.#received}]}`);
  }

  #onAck(data: string): void {
    const n = Number(data.slice(ACK_PREFIX.length, -2));
    if (Number.isSafeInteger(n) && n <= this.#sent) this.#trim(n);
  }

  /** Forgets the messages up to number `n`: the other side has them. */
  #trim(n: number): void {
    const buffer = this.#buffer;
    const end = Math.min(buffer.length, buffer.length - (this.#sent - n)); // after message n
    if (n > this.#remoteAcked) this.#remoteAcked = n;
    const sizes = this.#sizes;
    let freed = 0;
    for (let i = this.#head; i < end; i++) {
      const size = sizes[i];
      if (size >= 0) freed += size;
      else {
        freed -= size;
        releaseBuffer(bytesOf(buffer[i])!);
      }
      buffer[i] = EMPTY; // released now, not at the next compaction
    }
    if (end > this.#head) this.#head = end;
    this.#held(-freed);
    // Compact now and then, not on every acknowledgement.
    if (this.#head > 1024 && this.#head * 2 > buffer.length) {
      this.#buffer = buffer.slice(this.#head);
      this.#sizes = sizes.slice(this.#head);
      this.#head = 0;
    }
  }

  #held(bytes: number): void {
    this.#bufferBytes += bytes;
    if (this.#limits.total) this.#limits.total.used += bytes;
  }

  /** Empties the buffer. */
  #release(): void {
    for (let i = this.#head; i < this.#buffer.length; i++) {
      if (this.#sizes[i] < 0) releaseBuffer(bytesOf(this.#buffer[i])!);
    }
    this.#held(-this.#bufferBytes);
    this.#buffer = [];
    this.#sizes = [];
    this.#head = 0;
  }
}

/** How an acknowledgement starts; Mist writes it exactly so, and it is not numbered. */
const ACK_PREFIX = `{"id":null,"method":"${ACK_METHOD}","params":[`;

/** What a trimmed slot holds until the array is compacted. */
const EMPTY = "";

/**
 * A kept message: small text as is; a large text as its UTF-8 bytes, off the JS heap (holding
 * large strings for a round trip slowed every allocation of the process by 20–40 % in our
 * measurements, bytes did not); a binary message as is (the peer built it for this send, and a
 * large one's reused memory is retained until acknowledged).
 */
type Kept = string | Uint8Array | { readonly text: Uint8Array };

/** Text at least this long is kept as bytes. */
const KEEP_AS_BYTES_CHARS = 64 * 1024;

function keep(frame: string | Uint8Array): Kept {
  if (typeof frame !== "string" || frame.length < KEEP_AS_BYTES_CHARS) return frame;
  // In reused memory (released when trimmed) when it is ASCII, as JSON mostly is: fresh memory
  // for each large message cost more than the encoding.
  const room = takeBuffer(frame.length);
  const { read, written } = utf8.encodeInto(frame, room);
  if (read === frame.length) return { text: room.subarray(0, written) };
  releaseBuffer(room);
  return { text: utf8.encode(frame) };
}

/** The bytes a kept message holds in reused memory, if any (to release them). */
function bytesOf(kept: Kept): Uint8Array | undefined {
  return typeof kept === "string" ? undefined : kept instanceof Uint8Array ? kept : kept.text;
}

function unkeep(kept: Kept): string | Uint8Array {
  return typeof kept === "string" || kept instanceof Uint8Array ? kept : utf8d.decode(kept.text);
}

const utf8 = new TextEncoder();
const utf8d = new TextDecoder();

function size(frame: Kept | ArrayBuffer): number {
  if (typeof frame === "string") return frame.length;
  if (frame instanceof Uint8Array || frame instanceof ArrayBuffer) return frame.byteLength;
  return frame.text.byteLength;
}

/** The server's answer to a resuming hello: `{result: {resume: {token, received}}}`. */
function readResumeAnswer(data: Frame): { token: string; received: number } | undefined {
  if (typeof data !== "string" || data.length > 4096) return undefined;
  try {
    const resume = JSON.parse(data)?.result?.resume;
    if (typeof resume?.token === "string" && Number.isSafeInteger(resume?.received)) {
      return { token: resume.token, received: resume.received };
    }
  } catch {
    // not an answer
  }
  return undefined;
}

/** Which session a peer's transport is, for the liveness checks (they drop, not close). */
export const sessions: WeakMap<object, Session> = new WeakMap();
