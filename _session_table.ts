/**
 * The server's resumable sessions (internal; PROTOCOL.md §8): resume tokens, the grace period
 * of suspended sessions and their number. A token is `<id>.<key>`, 16 and 32 random bytes in
 * hex; it is single-use (each resume issues a new one) and only accepted on a connection that
 * authenticated with the server's secret, so a restarted server (new secret, empty table)
 * refuses every old one. Runs in Deno and Node (no `Deno.*` here).
 *
 * @module
 */

import type { Clock } from "./clock.ts";
import type { Logger } from "./log.ts";
import { equalHex } from "./_proof.ts";
import { type ByteBudget, DEFAULT_REPLAY_LIMITS, type ReplayLimits, Session } from "./_session.ts";
import type { Transport } from "./transport.ts";

/** The server's `resume` options, resolved. */
export interface ResumeLimits extends ReplayLimits {
  /** How long a suspended session is kept. */
  readonly graceMs: number;
  /** Most suspended sessions kept; beyond it the oldest ends. */
  readonly maxSuspended: number;
  /** The replay buffers of all sessions together, in bytes. */
  readonly maxTotalBufferBytes: number;
}

/**
 * Defaults: 30 s grace, 64 suspended sessions, 8 MiB and 4,096 messages of buffer each, 64 MiB
 * for all sessions' buffers together.
 */
export const DEFAULT_RESUME: ResumeLimits = {
  ...DEFAULT_REPLAY_LIMITS,
  graceMs: 30_000,
  maxSuspended: 64,
  maxTotalBufferBytes: 64 * 1024 * 1024,
};

interface Entry {
  key: string;
  readonly session: Session;
  timer: unknown;
  suspendedAt: number;
}

const hex = (bytes: number): string =>
  Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0"))
    .join("");

/**
 * The table. `create` wraps each new connection's transport in a session; `token` registers one
 * when its client agreed on `resume`; `resume` hands a new socket to a suspended one.
 *
 * @example
 * ```ts ignore
 * const table = new SessionTable(DEFAULT_RESUME, clock, logger);
 * const session = table.create(transport); // the peer's transport
 * ```
 */
export class SessionTable {
  readonly #limits: ResumeLimits & { readonly total: ByteBudget };
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #byId = new Map<string, Entry>();
  readonly #ids = new Map<Session, string>();

  /**
   * @param limits Grace, number and buffer bounds.
   * @param clock Where the grace timers come from.
   * @param logger Where expiries are logged.
   */
  constructor(limits: ResumeLimits, clock: Clock, logger: Logger) {
    this.#limits = { ...limits, total: { used: 0, max: limits.maxTotalBufferBytes } };
    this.#clock = clock;
    this.#logger = logger;
  }

  /** Bytes held by all sessions' replay buffers now. */
  get bufferedBytes(): number {
    return this.#limits.total.used;
  }

  /** Suspended sessions now. */
  get suspended(): number {
    let n = 0;
    for (const entry of this.#byId.values()) if (entry.session.suspended) n++;
    return n;
  }

  /**
   * A session over a new connection's transport; it joins the table when it begins.
   *
   * @param link The connection's transport.
   * @returns The peer's transport.
   */
  create(link: Transport): Session {
    return new Session(link, this.#limits, this.#clock, {
      suspended: (session) => this.#suspended(session),
      ended: (session) => this.#forget(session),
      token: (session) => this.token(session),
    });
  }

  /**
   * Registers a session whose client agreed on `resume`.
   *
   * @param session The session.
   * @returns Its first token, for the hello's answer.
   */
  token(session: Session): string {
    const id = hex(16), key = hex(32);
    this.#byId.set(id, { key, session, timer: undefined, suspendedAt: 0 });
    this.#ids.set(session, id);
    return `${id}.${key}`;
  }

  /**
   * Resumes the session a token names over a new socket: answers on it, then replays.
   *
   * @param token The client's token.
   * @param received How many messages the client received.
   * @param link The new socket's transport.
   * @param answer Writes the hello's answer on the new socket, given the new token and how
   *   many messages this side received.
   * @returns Whether resumed; when not, the caller refuses the resume.
   */
  resume(
    token: unknown,
    received: unknown,
    link: Transport,
    answer: (token: string, received: number) => void,
  ): boolean {
    if (typeof token !== "string" || token.length !== 32 + 1 + 64) return false;
    const [id, key] = token.split(".");
    const entry = this.#byId.get(id);
    if (!entry || key === undefined || !equalHex(key, entry.key)) return false;
    if (typeof received !== "number" || entry.session.ended) return false;
    // Single use: the next resume needs the next token.
    const next = hex(32);
    entry.key = next;
    this.#clock.clearTimeout(entry.timer);
    entry.timer = undefined;
    answer(`${id}.${next}`, entry.session.received);
    return entry.session.adopt(link, received);
  }

  /** Ends every session (the server shuts down). */
  endAll(): void {
    for (const { session } of [...this.#byId.values()]) {
      session.end(1001, "Server shutting down");
    }
  }

  #suspended(session: Session): void {
    const id = this.#ids.get(session);
    const entry = id === undefined ? undefined : this.#byId.get(id);
    if (!entry) return;
    entry.suspendedAt = this.#clock.now();
    const { graceMs, maxSuspended } = this.#limits;
    entry.timer = this.#clock.setTimeout(() => {
      this.#logger.info(`Session not resumed within ${graceMs} ms: ended`);
      session.end(1006, `Connection lost, and not resumed within ${graceMs} ms`);
    }, graceMs);
    // Over the bound: the session suspended longest ends first.
    const suspended = [...this.#byId.values()].filter((e) => e.session.suspended);
    if (suspended.length > maxSuspended) {
      suspended.sort((a, b) => a.suspendedAt - b.suspendedAt);
      for (const old of suspended.slice(0, suspended.length - maxSuspended)) {
        old.session.end(1006, `Connection lost, and more than ${maxSuspended} sessions wait`);
      }
    }
  }

  #forget(session: Session): void {
    const id = this.#ids.get(session);
    if (id === undefined) return;
    this.#ids.delete(session);
    const entry = this.#byId.get(id);
    this.#clock.clearTimeout(entry?.timer);
    this.#byId.delete(id);
  }
}
