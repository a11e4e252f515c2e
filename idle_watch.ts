/**
 * The server's idle check: a connection that has sent nothing for half the idle timeout is asked
 * `$/ping` (only a client that said `$/hello`; a seed client is just given the other half), and
 * one that then sends nothing for the other half is closed with 1001. Clients that did not
 * announce `$/hello` at the upgrade are watched by Deno's ping frames instead (`server.ts`).
 *
 * Deno's `upgradeWebSocket` can do the same with WebSocket ping frames (its `idleTimeout`), but
 * it re-arms a timer on every message received: ~0.7 µs a message, about 5 % of the server's CPU
 * with 64 calls in flight. Here one timer per server looks at each connection's frame counter
 * once per half period. And `$/ping` is answered by the peer's own code, not by a browser's
 * network stack, so a page whose script is stuck is found too, instead of leaving the server's
 * calls to it waiting.
 *
 * @module
 */

import type { Clock } from "./clock.ts";
import { RemoteError } from "./errors.ts";
import { type Peer, PING_METHOD } from "./peer.ts";

/** The close reason of a connection dropped for not answering `$/ping` (close code 1001). */
export const IDLE_CLOSE_REASON = "No answer to $/ping";

/** What the watch knows of one connection. */
interface Watched {
  /** Its `receivedFrames` at the last look. */
  frames: number;
  /** A `$/ping` is out and not yet answered, or could not be sent. */
  waiting: boolean;
}

/**
 * Pings quiet connections and closes silent ones. One timer for all of them, armed only while
 * there is a connection to watch.
 *
 * @example
 * ```ts ignore
 * const idle = new IdleWatch(30_000, realClock);
 * idle.watch(peer); // when a connection opens
 * idle.forget(peer); // when it closes
 * idle.stop(); // when the server shuts down
 * ```
 */
export class IdleWatch {
  readonly #periodMs: number;
  readonly #clock: Clock;
  readonly #peers = new Map<Peer, Watched>();
  #timer: unknown;

  /**
   * @param idleTimeoutMs A connection is pinged after at least half of this without a frame,
   *   and closed after the other half without one; so a silent peer goes after 1 to 1.5 times it.
   * @param clock Where the timer comes from.
   */
  constructor(idleTimeoutMs: number, clock: Clock) {
    this.#periodMs = Math.max(1, Math.ceil(idleTimeoutMs / 2));
    this.#clock = clock;
  }

  /**
   * Starts watching an open connection.
   *
   * @param peer The connection's peer.
   */
  watch(peer: Peer): void {
    this.#peers.set(peer, { frames: peer.stats.receivedFrames, waiting: false });
    this.#timer ??= this.#clock.setTimeout(() => this.#look(), this.#periodMs);
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
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #look(): void {
    this.#timer = undefined;
    for (const [peer, watched] of this.#peers) {
      const frames = peer.stats.receivedFrames;
      if (frames !== watched.frames) {
        watched.frames = frames;
      } else if (watched.waiting) {
        // A whole period without a frame while a ping waits: the other side is gone or stuck.
        this.#peers.delete(peer);
        peer.close(1001, IDLE_CLOSE_REASON);
      } else if (!peer.remote) {
        // A seed client is never sent $/ping: a whole further period of silence ends it.
        watched.waiting = true;
      } else {
        watched.waiting = true;
        const answered = () => void (watched.waiting = false);
        // Any reply proves liveness, even an error from a peer that does not know $/ping. A ping
        // that could not be sent (too many calls pending) stays "waiting": silence still ends it.
        peer.call(PING_METHOD, []).then(answered, (error) => {
          if (error instanceof RemoteError) answered();
        });
      }
    }
    if (this.#peers.size > 0) {
      this.#timer = this.#clock.setTimeout(() => this.#look(), this.#periodMs);
    }
  }
}
