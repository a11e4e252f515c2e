/**
 * The strict floors' client: no JSON on either side. The request text of each distinct params
 * object is built once (the workloads reuse one params object per workload, and their warm-up
 * calls build it before timing starts) and then sent as is; the echo server sends each frame
 * back verbatim and in order, so a FIFO of waiters matches replies by counting, and the only
 * check is that the echoed text has the length of the text sent (reading a string's length
 * costs nothing, unlike comparing a megabyte). The call resolves to the params it was given.
 *
 * This is what a transport costs before any RPC work: the floor `raw-deno` pays a
 * `JSON.stringify` and a `JSON.parse` of every request on its client, which at 1 MiB is a large
 * part of its time.
 *
 * Runtime-agnostic.
 *
 * @module
 */

import type { EchoClient } from "../workloads.ts";

interface Waiter {
  readonly params: readonly unknown[];
  readonly length: number;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/** An {@linkcode EchoClient} over any socket that echoes text frames verbatim and in order. */
export class StrictEchoClient implements EchoClient {
  #texts = new Map<readonly unknown[], string>();
  #waiting: Waiter[] = [];
  readonly #send: (text: string) => void;
  readonly #close: () => Promise<void>;

  /** Wraps a socket's `send` and `close`; feed its text frames to {@linkcode receive}. */
  constructor(send: (text: string) => void, close: () => Promise<void>) {
    this.#send = send;
    this.#close = close;
  }

  /**
   * Sends the request text of `params` (`{"id":1,"method":"echo","params":…}`, built on the
   * first call with this params object) and resolves to `params` once its echo arrives.
   */
  echo(params: readonly unknown[]): Promise<unknown> {
    let text = this.#texts.get(params);
    if (text === undefined) {
      text = JSON.stringify({ id: 1, method: "echo", params });
      this.#texts.set(params, text);
    }
    const length = text.length;
    return new Promise((resolve, reject) => {
      this.#waiting.push({ params, length, resolve, reject });
      this.#send(text);
    });
  }

  /** Delivers one echoed frame to the oldest outstanding call. */
  receive(text: string): void {
    const waiter = this.#waiting.shift();
    if (waiter === undefined) throw new Error("echo frame with no call outstanding");
    if (text.length === waiter.length) waiter.resolve(waiter.params);
    else waiter.reject(new Error(`echoed ${text.length} characters, sent ${waiter.length}`));
  }

  /** Fails every outstanding call, e.g. when the socket closes. */
  fail(error: Error): void {
    for (const waiter of this.#waiting.splice(0)) waiter.reject(error);
  }

  /** Closes the socket. */
  close(): Promise<void> {
    return this.#close();
  }
}
