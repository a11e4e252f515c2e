/**
 * A peer's outgoing frames (internal): straight to the transport while its buffer is at or below
 * the high-water mark, else queued in order and sent as it drains. Runs in Deno, browsers and
 * Node (no `Deno.*` here).
 *
 * @module
 */

import { releaseBuffer } from "./_buffer_pool.ts";
import type { Clock } from "./clock.ts";
import type { Transport } from "./transport.ts";

/** How often a queue waiting on `bufferedAmount` looks again; sockets have no "drain" event. */
export const DRAIN_POLL_MS = 2;

/**
 * The outgoing queue of one connection. It bounds nothing by itself: the peer reads
 * {@linkcode SendQueue.length} against its limits (`maxPendingCalls` for notifications, the
 * in-flight cap for replies) before it adds a frame.
 *
 * @example Frames wait while the buffer is over the mark
 * ```ts
 * import assert from "node:assert/strict";
 * import { SendQueue } from "./_send_queue.ts";
 * import { realClock } from "./clock.ts";
 * const sent: string[] = [];
 * const transport = { bufferedAmount: 100, start() {}, send: (f: string) => void sent.push(f), close() {} };
 * const out = new SendQueue(transport, 10, realClock);
 * out.send("a");
 * assert.deepEqual([sent, out.length], [[], 1]);
 * out.close(); // the connection closed: what waits is dropped, the poll stops
 * assert.equal(out.length, 0);
 * ```
 */
export class SendQueue {
  readonly #transport: Transport;
  readonly #highWater: number;
  readonly #clock: Clock;
  readonly #queue: (string | Uint8Array)[] = [];
  readonly #keys: (number | undefined)[] = []; // the call each queued frame belongs to
  #lastBuffered = Infinity; // bufferedAmount when last read (not yet)
  #sentUnits = 0; // UTF-16 units (or a third of the bytes) sent since then
  #timer: unknown;
  #polling = false;
  #closed = false;

  /**
   * @param transport Where frames go.
   * @param highWaterMarkBytes Frames wait while more than this many bytes are buffered.
   * @param clock Where the drain poll's timer comes from.
   */
  constructor(transport: Transport, highWaterMarkBytes: number, clock: Clock) {
    this.#transport = transport;
    this.#highWater = highWaterMarkBytes;
    this.#clock = clock;
  }

  /** Frames waiting for the transport's buffer to drain. */
  get length(): number {
    return this.#queue.length;
  }

  /**
   * Sends a frame now, or queues it behind the others; after `close()`, drops it.
   *
   * @param frame The text frame, or a binary message.
   * @param key The id of the call it is the request of, so that it can be withdrawn.
   */
  send(frame: string | Uint8Array, key?: number): void {
    if (this.#closed) return;
    if (this.#queue.length === 0 && this.#belowHighWater()) {
      this.#transport.send(frame);
      this.#sentUnits += units(frame);
      if (typeof frame !== "string") releaseBuffer(frame); // the transport took what it needs
      return;
    }
    this.#queue.push(frame);
    this.#keys.push(key);
    if (!this.#polling) this.#poll();
  }

  /**
   * Drops a call's request that is still waiting: the caller gave up before it was written, so
   * its bytes are released and the other side never runs it.
   *
   * @param key The call's id.
   * @returns Whether it was waiting.
   */
  withdraw(key: number): boolean {
    const at = this.#keys.indexOf(key);
    if (at < 0) return false;
    const [frame] = this.#queue.splice(at, 1);
    if (typeof frame !== "string") releaseBuffer(frame);
    this.#keys.splice(at, 1);
    return true;
  }

  /** Drops every waiting frame and stops polling: the connection closed. */
  close(): void {
    this.#closed = true;
    for (const frame of this.#queue) if (typeof frame !== "string") releaseBuffer(frame);
    this.#queue.length = 0;
    this.#keys.length = 0;
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#polling = false;
  }

  /**
   * Whether the transport's buffer is at or below the high-water mark. Reading
   * `bufferedAmount` costs a call into the runtime per frame, so it is read only when the bytes
   * sent since the last reading (at most 3 per UTF-16 unit) could have taken it over the mark.
   */
  #belowHighWater(): boolean {
    if (this.#lastBuffered + 3 * this.#sentUnits <= this.#highWater) return true;
    this.#lastBuffered = this.#transport.bufferedAmount;
    this.#sentUnits = 0;
    return this.#lastBuffered <= this.#highWater;
  }

  #poll(): void {
    this.#polling = true;
    this.#timer = this.#clock.setTimeout(() => this.#flush(), DRAIN_POLL_MS);
  }

  #flush(): void {
    this.#timer = undefined;
    let sent = 0;
    while (sent < this.#queue.length && this.#belowHighWater()) {
      const frame = this.#queue[sent++];
      this.#sentUnits += units(frame);
      this.#transport.send(frame);
      if (typeof frame !== "string") releaseBuffer(frame);
    }
    this.#queue.splice(0, sent);
    this.#keys.splice(0, sent);
    if (this.#queue.length > 0) this.#poll();
    else this.#polling = false;
  }
}

/** A frame's size in the units the high-water estimate counts (at most 3 bytes each). */
function units(frame: string | Uint8Array): number {
  return typeof frame === "string" ? frame.length : Math.ceil(frame.byteLength / 3);
}
