/**
 * TCP for `NoDelayWebSocket` on Node: an adapter that gives a `node:net` socket the small
 * `Deno.Conn`-like face the socket reads and writes through ({@linkcode TcpConn}).
 *
 * Nothing here imports `node:net`. It is fetched at connect time with
 * `process.getBuiltinModule` (Node 20.16+, 22.3+), so this file loads, bundles and type-checks
 * (DOM-only lib, types of the few `node:net` members used declared below) like any browser code;
 * where that function is missing, {@linkcode isNodeTcpSupported} is false and the client keeps
 * the runtime's own `WebSocket`.
 *
 * Reading copies buffered chunks into the caller's buffer. Chunks wait in a queue of at most
 * {@linkcode READ_HIGH_WATER} bytes (plus the chunk that crossed it): past that the `net.Socket`
 * is paused until reads drain it, so a peer that sends faster than the reader reads meets TCP
 * backpressure rather than growing memory. A write resolves once Node has handed its bytes to
 * the kernel, so a writer that awaits each write never queues more than one in user space.
 *
 * @module
 */

/** The part of a TCP connection `NoDelayWebSocket` uses; `Deno.Conn` has this shape. */
export interface TcpConn {
  /** Reads into `buffer`; the byte count, or `null` at the end of the stream. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes bytes; resolves with how many were written. */
  write(bytes: Uint8Array): Promise<number>;
  /** Closes the connection at once. */
  close(): void;
  /** Turns Nagle's algorithm off (`true`, the default) or on. */
  setNoDelay(noDelay?: boolean): void;
}

/** Where to connect; `Deno.connect` takes the same. */
export interface ConnectOptions {
  /** A host name or an IP address (IPv6 without brackets). */
  hostname: string;
  /** The TCP port. */
  port: number;
  /** Aborting it while connecting rejects the connection. */
  signal?: AbortSignal;
}

/** The members of a `node:net` `Socket` used here. */
export interface NodeSocket {
  /** Whether the socket was destroyed. */
  readonly destroyed: boolean;
  /** Adds an event listener (`connect`, `data`, `end`, `error`, `close`). */
  on(event: string, listener: (...args: never[]) => void): unknown;
  /** Removes an event listener. */
  off(event: string, listener: (...args: never[]) => void): unknown;
  /** Stops `data` events; unread input then stays in the kernel. */
  pause(): unknown;
  /** Resumes `data` events. */
  resume(): unknown;
  /** Queues bytes; `callback` runs once they were written, or with the error. */
  write(bytes: Uint8Array, callback: (error?: Error | null) => void): boolean;
  /** Closes the socket at once. */
  destroy(): unknown;
  /** Sets `TCP_NODELAY`. */
  setNoDelay(noDelay?: boolean): unknown;
}

/** The member of the `node:net` module used here. */
export interface NodeNet {
  /** Starts a TCP connection. */
  connect(options: { host: string; port: number }): NodeSocket;
}

/** Unread bytes past which the `net.Socket` is paused until reads drain them. */
export const READ_HIGH_WATER: number = 64 * 1024;

type GetBuiltinModule = (id: string) => unknown;

function getBuiltinModule(): GetBuiltinModule | undefined {
  const process = (globalThis as {
    process?: { versions?: { node?: unknown }; getBuiltinModule?: GetBuiltinModule };
  }).process;
  return typeof process?.versions?.node === "string" &&
      typeof process.getBuiltinModule === "function"
    ? (id) => process.getBuiltinModule!(id)
    : undefined;
}

/**
 * Whether {@linkcode connectNode} can run here: a Node-compatible runtime with
 * `process.getBuiltinModule`. It does not load `node:net`.
 *
 * @returns True on Node 20.16+ / 22.3+ (and runtimes that copy its API), false in browsers.
 */
export function isNodeTcpSupported(): boolean {
  return getBuiltinModule() !== undefined;
}

/**
 * Connects over TCP with `node:net`, loaded now through `process.getBuiltinModule`.
 *
 * @param options Host, port and an optional abort signal.
 * @param net The `node:net` module to use (tests pass one); loaded when omitted.
 * @returns The open connection.
 * @throws {Error} `node:net` is not available here, or the connection failed or was aborted.
 */
export function connectNode(options: ConnectOptions, net?: NodeNet): Promise<TcpConn> {
  const module = net ?? (getBuiltinModule()?.("node:net") as NodeNet | undefined);
  if (typeof module?.connect !== "function") {
    return Promise.reject(new Error("no node:net here (needs process.getBuiltinModule)"));
  }
  const { hostname, port, signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const socket = module.connect({ host: hostname, port });
    const settle = () => {
      socket.off("connect", onConnect);
      socket.off("error", onError);
      signal?.removeEventListener("abort", onAbort);
    };
    const onConnect = () => {
      const conn = new NodeTcpConn(socket); // listens for errors before ours goes
      settle();
      resolve(conn);
    };
    const onError = (error: Error) => {
      settle();
      socket.destroy();
      reject(error);
    };
    const onAbort = () => {
      settle();
      socket.on("error", () => {}); // whatever destroying a connecting socket still reports
      socket.destroy();
      reject(signal!.reason);
    };
    socket.on("connect", onConnect);
    socket.on("error", onError);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A connected `net.Socket` as a {@linkcode TcpConn}; one read and one write at a time. */
class NodeTcpConn implements TcpConn {
  #socket: NodeSocket;
  #chunks: Uint8Array[] = []; // unread input: #chunks[0] from #offset on, then the others
  #offset = 0;
  #unread = 0;
  #paused = false;
  #ended = false; // the peer ended the stream, or the socket closed
  #closed = false; // close() was called
  #error?: Error;
  #wake?: () => void; // the read waiting for input
  #writes = new Set<(error: Error) => void>(); // rejects of the writes not yet done

  constructor(socket: NodeSocket) {
    this.#socket = socket;
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#unread += chunk.length;
      if (this.#unread >= READ_HIGH_WATER) this.#pause(true);
      this.#woken();
    });
    socket.on("end", () => this.#finish());
    socket.on("close", () => this.#finish());
    socket.on("error", (error: Error) => {
      this.#error ??= error;
      this.#finish();
    });
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#unread === 0) {
      if (this.#closed) return null;
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      if (buffer.length === 0) return 0;
      this.#pause(false);
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    let copied = 0;
    while (copied < buffer.length && this.#unread > 0) {
      const chunk = this.#chunks[0];
      const count = Math.min(buffer.length - copied, chunk.length - this.#offset);
      buffer.set(chunk.subarray(this.#offset, this.#offset + count), copied);
      copied += count;
      this.#unread -= count;
      this.#offset += count;
      if (this.#offset === chunk.length) {
        this.#chunks.shift();
        this.#offset = 0;
      }
    }
    if (this.#unread < READ_HIGH_WATER) this.#pause(false);
    return copied;
  }

  write(bytes: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.#closed || this.#socket.destroyed) {
        return reject(this.#error ?? new Error("connection closed"));
      }
      this.#writes.add(reject);
      // Node keeps a reference to `bytes` until the callback, which the caller awaits.
      this.#socket.write(bytes, (error) => {
        this.#writes.delete(reject);
        if (error) reject(error);
        else resolve(bytes.length);
      });
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#chunks = [];
    this.#unread = 0;
    this.#socket.destroy();
    const closed = new Error("connection closed");
    for (const reject of [...this.#writes]) reject(closed); // in case Node never calls back
    this.#writes.clear();
    this.#woken();
  }

  setNoDelay(noDelay = true): void {
    this.#socket.setNoDelay(noDelay);
  }

  #pause(pause: boolean): void {
    if (pause === this.#paused || this.#ended || this.#closed) return;
    this.#paused = pause;
    if (pause) this.#socket.pause();
    else this.#socket.resume();
  }

  #finish(): void {
    this.#ended = true;
    this.#woken();
  }

  #woken(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
