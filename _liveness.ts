/**
 * One liveness rule for both ends (internal): a connection silent for `quietMs` is sent
 * `$/ping`, and one that then stays silent for `answerMs` more is closed. Any frame received
 * counts as life, the ping's answer (even an error from a peer that does not know `$/ping`)
 * included. The server's idle check (`_idle_watch.ts`) and the client's heartbeat are this rule
 * with their own numbers and close codes. Runs in Deno, browsers and Node (no `Deno.*` here).
 *
 * Silence is read from each peer's `receivedFrames` counter at a look, not timed per frame:
 * re-arming a timer on every message costs ~0.7 µs, ~5 % of a busy server's CPU. So a look that
 * finds frames waits `quietMs` again, and a ping goes out after `quietMs` to twice that of
 * silence. One timer serves every watched connection; with `quietMs` equal to `answerMs` (the
 * server) all are looked at in the same turn.
 *
 * @module
 */

import { sessions } from "./_session.ts";
import type { Clock } from "./clock.ts";
import { type Peer, PING_METHOD } from "./peer.ts";

/** The numbers and the close of one liveness rule. */
export interface LivenessRule {
  /** Silence, in ms, after which a `$/ping` is sent (to a peer that said `$/hello`). */
  readonly quietMs: number;
  /** Further silence, in ms, after which the connection is closed. */
  readonly answerMs: number;
  /** The close code of a silent connection. */
  readonly closeCode: number;
  /** The close reason of a silent connection. */
  readonly closeReason: string;
}

/** What the watch knows of one connection. */
interface Watched {
  /** Its `receivedFrames` at the last look; -1 before a first look that only starts the count. */
  frames: number;
  /** A `$/ping` is out (or, to a seed peer, would be) and nothing came since. */
  waiting: boolean;
  /** When to look next, on the clock. */
  due: number;
}

/**
 * Watches connections for silence, with one timer armed only while there is one to watch. A
 * peer that never said `$/hello` (a seed peer may not answer requests) is not pinged: the same
 * silence ends it.
 *
 * @example
 * ```ts ignore
 * const watch = new LivenessWatch(
 *   { quietMs: 15_000, answerMs: 15_000, closeCode: 1001, closeReason: "No answer to $/ping" },
 *   realClock,
 * );
 * watch.watch(peer); // when a connection opens
 * watch.forget(peer); // when it closes
 * watch.stop(); // when shutting down
 * ```
 */
export class LivenessWatch {
  readonly #rule: LivenessRule;
  readonly #clock: Clock;
  readonly #onClose: ((peer: Peer) => void) | undefined;
  readonly #peers = new Map<Peer, Watched>();
  #timer: unknown;
  #due = Infinity;

  /**
   * @param rule The silences and the close.
   * @param clock Where the timer comes from.
   * @param onClose Called before a silent connection is closed (to log it).
   */
  constructor(rule: LivenessRule, clock: Clock, onClose?: (peer: Peer) => void) {
    this.#rule = rule;
    this.#clock = clock;
    this.#onClose = onClose;
  }

  /**
   * Starts watching an open connection.
   *
   * @param peer The connection's peer.
   */
  watch(peer: Peer): void {
    const now = this.#clock.now();
    const { quietMs } = this.#rule;
    let watched = this.#peers.get(peer);
    if (!watched) {
      // Join the look already armed if it comes within quietMs, so that connections share it.
      const due = this.#due <= now + quietMs ? this.#due : now + quietMs;
      watched = { frames: 0, waiting: false, due };
      this.#peers.set(peer, watched);
      if (due !== this.#due) this.#arm(due);
    }
    // Silence counts from now (watched again: the server watches from the open, then from the
    // hello). A look sooner than quietMs from now only starts the count.
    watched.frames = watched.due - now < quietMs ? -1 : peer.stats.receivedFrames;
    watched.waiting = false;
  }

  /**
   * Stops watching a connection (it closed).
   *
   * @param peer The connection's peer.
   */
  forget(peer: Peer): void {
    this.#peers.delete(peer);
    if (this.#peers.size === 0) this.stop();
  }

  /** Stops watching every connection and clears the timer. */
  stop(): void {
    this.#peers.clear();
    this.#disarm();
  }

  #arm(due: number): void {
    this.#disarm();
    this.#due = due;
    const delay = Math.max(0, due - this.#clock.now());
    this.#timer = this.#clock.setTimeout(() => this.#look(), delay);
  }

  #disarm(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#due = Infinity;
  }

  #look(): void {
    const looked = this.#due;
    this.#timer = undefined;
    this.#due = Infinity;
    const now = this.#clock.now();
    for (const [peer, watched] of this.#peers) {
      if (watched.due <= looked) this.#check(peer, watched, now);
    }
    let next = Infinity;
    for (const watched of this.#peers.values()) next = Math.min(next, watched.due);
    if (next < this.#due) this.#arm(next); // #due is Infinity unless watch() armed it meanwhile
  }

  #check(peer: Peer, watched: Watched, now: number): void {
    const frames = peer.stats.receivedFrames;
    const session = sessions.get(peer);
    if (session?.suspended) {
      // No socket to watch: the session's grace period bounds the wait instead.
      watched.waiting = false;
      watched.due = now + this.#rule.quietMs;
    } else if (frames !== watched.frames) {
      watched.frames = frames;
      watched.waiting = false;
      watched.due = now + this.#rule.quietMs;
    } else if (watched.waiting) {
      // Silent since the ping: the other side is gone or stuck.
      this.#peers.delete(peer);
      this.#onClose?.(peer);
      // A resumable session only loses its socket: the other side may come back (§8).
      if (!session?.drop(this.#rule.closeCode, this.#rule.closeReason)) {
        peer.close(this.#rule.closeCode, this.#rule.closeReason);
      }
    } else {
      watched.waiting = true;
      watched.due = now + this.#rule.answerMs;
      // Its answer is a frame like any other; a ping that cannot be sent (too many calls
      // pending) changes nothing: silence still ends the connection.
      if (peer.remote) peer.call(PING_METHOD, []).catch(() => {});
    }
  }
}
