/**
 * The server's idle check: a connection that has sent nothing for half the idle timeout is asked
 * `$/ping` (only a client that said `$/hello`; a seed client is just given the other half), and
 * one that then sends nothing for the other half is closed with 1001. Any frame counts as life.
 * Clients that did not announce `$/hello` at the upgrade are watched by Deno's ping frames
 * instead (`server.ts`). The rule is the client heartbeat's too (`_liveness.ts`); here it only
 * gets the server's numbers and close.
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
import { LivenessWatch } from "./_liveness.ts";
import { IDLE_CLOSE_REASON } from "./envelope.ts";
/** The close reason of a connection dropped for not answering `$/ping` (close code 1001). */
export { IDLE_CLOSE_REASON };

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
export class IdleWatch extends LivenessWatch {
  /**
   * @param idleTimeoutMs A connection is pinged after at least half of this without a frame,
   *   and closed after the other half without one; so a silent peer goes after 1 to 1.5 times it.
   * @param clock Where the timer comes from.
   */
  constructor(idleTimeoutMs: number, clock: Clock) {
    const halfMs = Math.max(1, Math.ceil(idleTimeoutMs / 2));
    super(
      { quietMs: halfMs, answerMs: halfMs, closeCode: 1001, closeReason: IDLE_CLOSE_REASON },
      clock,
    );
  }
}
