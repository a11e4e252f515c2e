/**
 * The raw floors' client: it sends the request text a JSON-RPC stack would send and takes the
 * next echoed frame as the reply. The echo server answers in order, so a FIFO of waiters
 * replaces id matching; JSON encode and decode are kept, since every real stack pays them.
 *
 * Runtime-agnostic: used by the Deno and the Node floor.
 *
 * @module
 */

import type { EchoClient } from "../workloads.ts";

interface Waiter {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/** An {@linkcode EchoClient} over any socket that echoes text frames in order. */
export class FifoEchoClient implements EchoClient {
  #nextId = 1;
  #waiting: Waiter[] = [];
  readonly #send: (text: string) => void;
  readonly #close: () => Promise<void>;

  /** Wraps a socket's `send` and `close`; feed its text frames to {@linkcode receive}. */
  constructor(send: (text: string) => void, close: () => Promise<void>) {
    this.#send = send;
    this.#close = close;
  }

  /** Sends `{"id":N,"method":"echo","params":…}` and resolves to the reply's `params`. */
  echo(params: readonly unknown[]): Promise<unknown> {
    const text = JSON.stringify({ id: this.#nextId++, method: "echo", params });
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#send(text);
    });
  }

  /** Delivers one echoed frame to the oldest outstanding call. */
  receive(text: string): void {
    const waiter = this.#waiting.shift();
    if (waiter === undefined) throw new Error("echo frame with no call outstanding");
    const reply: unknown = JSON.parse(text);
    if (typeof reply === "object" && reply !== null && "params" in reply) {
      waiter.resolve(reply.params);
    } else waiter.reject(new Error("echoed frame has no params"));
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
