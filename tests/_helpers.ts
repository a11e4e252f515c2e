/**
 * Test harnesses: an in-memory transport pair for peer logic; a server with the usual test
 * handlers and a client of it; a scripted peer (a raw native `WebSocket`) that sends exact frames
 * and records every reply; a raw HTTP upgrade over `Deno.connect` for status codes; subprocesses
 * with their output collected.
 *
 * Every test that opens something holds it with `await using`, so it is closed when the test
 * ends even if an assertion failed first, and Deno's leak sanitizers stay on:
 *
 * ```ts ignore
 * Deno.test("Client.call() resolves with the server's result", async () => {
 *   await using t = startServer();
 *   await using client = connect(t);
 *   assert.deepEqual(await client.call("echo", [1]), [1]);
 *   await stop(t, client); // closes both and checks nothing is left
 * });
 * ```
 *
 * @module
 */
import "../_socket/preset.ts"; // the Deno preset, as mod.ts has it: every test client uses it
import assert from "node:assert/strict";
import { Client, type ClientOptions, type ClientState, type StateChangeEvent } from "../client.ts";
import { consoleLogger, type Logger } from "../log.ts";
import type { Peer } from "../peer.ts";
import { HandlerRegistry } from "../registry.ts";
import { SharedSecret } from "../secret.ts";
import { type LocalServer, serveLocal, type ServeLocalOptions } from "../server.ts";
import type { Frame, Transport, TransportSink } from "../transport.ts";

/** A logger that drops everything. */
export const quiet: Logger = consoleLogger("silent");

/** A promise with its settle functions. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

/** Makes a promise the test settles itself. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Resolves with the next event of `type` on `target`. */
export function nextEvent<E extends Event = Event>(target: EventTarget, type: string): Promise<E> {
  return new Promise((resolve) =>
    target.addEventListener(type, (event) => resolve(event as E), { once: true })
  );
}

/** Lets queued microtasks and one macrotask turn run (for the in-memory pair). */
export function turn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

// ---------------------------------------------------------------------------------------------
// In-memory transport pair

/** One end of an in-memory pair; records what it sent. */
export class MemoryTransport implements Transport {
  bufferedAmount = 0;
  /** Every text frame this end sent, in order. */
  readonly sent: string[] = [];
  /** Close calls made on this end. */
  readonly closeCalls: { code: number; reason: string }[] = [];
  other!: MemoryTransport;
  #sink: TransportSink | undefined;
  #closed = false;
  #early: Frame[] = [];

  start(sink: TransportSink): void {
    this.#sink = sink;
    for (const frame of this.#early.splice(0)) sink.frame(frame);
  }

  send(frame: string): void {
    if (this.#closed) return;
    this.sent.push(frame);
    queueMicrotask(() => this.other.deliver(frame));
  }

  /** Sends a frame to the other end as if this end's peer had sent it (any bytes). */
  inject(frame: Frame): void {
    queueMicrotask(() => this.other.deliver(frame));
  }

  /** Delivers a frame to this end's sink. */
  deliver(frame: Frame): void {
    if (this.#closed) return;
    if (this.#sink) this.#sink.frame(frame);
    else this.#early.push(frame);
  }

  close(code: number, reason: string): void {
    this.closeCalls.push({ code, reason });
    this.#end(code, reason);
    queueMicrotask(() => this.other.#end(code, reason));
  }

  #end(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sink?.closed(code, reason);
  }
}

/** Two connected in-memory transports. */
export function memoryPair(): [MemoryTransport, MemoryTransport] {
  const a = new MemoryTransport();
  const b = new MemoryTransport();
  a.other = b;
  b.other = a;
  return [a, b];
}

// ---------------------------------------------------------------------------------------------
// Servers and clients

/**
 * What {@linkcode startServer} returns. `await using t = startServer()` shuts the server down
 * when the test ends, even when an assertion failed first.
 */
export interface TestServer extends AsyncDisposable {
  server: LocalServer;
  secret: SharedSecret;
  registry: HandlerRegistry;
  /** Server-side peers, in connection order. */
  peers: Peer[];
  /** Resolves with the next server-side peer to open. */
  nextPeer(): Promise<Peer>;
  /** The gates of every `gate` handler started so far; resolving one ends that call. */
  gates: Deferred<unknown>[];
  /** Reasons the `awaitAbort` handlers' signals fired with. */
  aborted: Deferred<unknown>;
  /** Resolves with the signal of the first `awaitAbort` handler, once it started. */
  abortStarted: Deferred<AbortSignal>;
  /** Resolves with the gate of the next `gate` handler to start, in start order. */
  nextGate(): Promise<Deferred<unknown>>;
}

/** A face's `serveLocal` that returns a promise (Node's); see `./_faces.ts`. */
export type ServeAsync = (options: ServeLocalOptions) => Promise<LocalServer>;

/**
 * Starts a server on 127.0.0.1 port 0 with a fresh secret, a quiet logger and handlers:
 * `echo` (result = params), `fail` ([message] → throws), `callback` ([method, params] →
 * calls that method on the caller), `gate` (waits for the test to open it), `awaitAbort`
 * (waits for its signal and records the reason), `big` ([n] → a string of n "x").
 *
 * @param options Options for `serveLocal`; `registry` replaces the test handlers.
 * @param serve Another face's `serveLocal` (`./_faces.ts`); Deno's when left out.
 * @returns The server and the handlers' state: at once on Deno's face, once it listens on
 * another.
 */
export function startServer(options?: ServeLocalOptions): TestServer;
export function startServer(options: ServeLocalOptions, serve: ServeAsync): Promise<TestServer>;
export function startServer(
  options: ServeLocalOptions = {},
  serve?: ServeAsync,
): TestServer | Promise<TestServer> {
  const secret = options.secret ?? SharedSecret.generate();
  const registry = options.registry ?? new HandlerRegistry();
  const peers: Peer[] = [];
  const peerWaiters: ((peer: Peer) => void)[] = [];
  const gates: Deferred<unknown>[] = [];
  const gateWaiters: ((gate: Deferred<unknown>) => void)[] = [];
  const aborted = deferred<unknown>();
  const abortStarted = deferred<AbortSignal>();
  if (!options.registry) {
    registry
      .register("echo", (params) => params)
      .register("fail", ([message]) => {
        throw new Error(String(message));
      })
      .register(
        "callback",
        ([method, params], ctx) => ctx.peer.call(String(method), (params ?? []) as unknown[]),
      )
      .register("gate", () => {
        const gate = deferred<unknown>();
        gates.push(gate);
        gateWaiters.shift()?.(gate);
        return gate.promise;
      })
      .register("awaitAbort", (_params, ctx) => {
        const signal = ctx.signal;
        abortStarted.resolve(signal);
        return new Promise((_resolve, reject) => {
          signal.addEventListener("abort", () => {
            aborted.resolve(signal.reason);
            reject(signal.reason);
          }, { once: true });
        });
      })
      .register("big", ([n]) => "x".repeat(Number(n)));
  }
  const all: ServeLocalOptions = {
    logger: quiet,
    ...options,
    // `secret: undefined` given explicitly means no secret (with insecureNoSecret).
    secret: "secret" in options ? options.secret : secret,
    registry,
    onConnection(peer) {
      peers.push(peer);
      peerWaiters.shift()?.(peer);
      options.onConnection?.(peer);
    },
  };
  let seen = 0;
  let gatesSeen = 0;
  const running = (server: LocalServer): TestServer => ({
    server,
    secret,
    registry,
    peers,
    gates,
    aborted,
    abortStarted,
    nextPeer() {
      const index = seen++;
      if (index < peers.length) return Promise.resolve(peers[index]);
      return new Promise((resolve) => peerWaiters.push(resolve));
    },
    nextGate() {
      const index = gatesSeen++;
      if (index < gates.length) return Promise.resolve(gates[index]);
      return new Promise((resolve) => gateWaiters.push(resolve));
    },
    [Symbol.asyncDispose]: () => server.shutdown(),
  });
  return serve ? serve(all).then(running) : running(serveLocal(all));
}

/**
 * A client of `t` with the heartbeat off and a quiet logger. `await using client = connect(t)`
 * closes it when the test ends.
 */
export function connect(t: TestServer, options: ClientOptions = {}): Client {
  return new Client(t.server.url, {
    secret: t.secret,
    heartbeat: false,
    logger: quiet,
    ...options,
  });
}

/**
 * A client of the server at `url` (one in a subprocess, say) with reconnection and the
 * heartbeat off and a quiet logger. `await using client = connectTo(url, secret)` closes it
 * when the test ends.
 */
export function connectTo(
  url: string,
  secret: SharedSecret | string,
  options: ClientOptions = {},
): Client {
  return new Client(url, { secret, reconnect: false, heartbeat: false, logger: quiet, ...options });
}

/**
 * Ends a test cleanly and checks that nothing is left: closes each client (checking it has no
 * pending or waiting call) and each scripted peer, shuts the server down, and checks that it
 * has no connection and that no server-side peer has a pending call or a running handler.
 * (`await using` does the same closing when a test fails before it gets here.)
 */
export async function stop(t: TestServer, ...ends: (Client | ScriptedPeer)[]): Promise<void> {
  for (const end of ends) {
    if (end instanceof ScriptedPeer) {
      await end.close();
      continue;
    }
    const peer = end.peer;
    await end.close();
    assert.equal(end.state, "closed");
    if (peer) assert.equal(peer.stats.pendingCalls, 0);
    assert.equal(end.stats.waitingCalls, 0);
  }
  await t.server.shutdown();
  assert.equal(t.server.connections, 0);
  for (const peer of t.peers) {
    assert.equal(peer.stats.pendingCalls, 0);
    assert.equal(peer.stats.runningHandlers, 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Scripted peer

/** How a socket closed. */
export interface CloseRecord {
  code: number;
  reason: string;
}

/**
 * A raw native `WebSocket` that sends exact frames and records every frame it receives.
 * Presents the secret in the `X-Land-Secret` header unless `protocols` or no secret is given.
 * `await using scripted = await ScriptedPeer.connect(…)` closes it when the test ends.
 */
export class ScriptedPeer implements AsyncDisposable {
  readonly socket: WebSocket;
  /** Every frame received, in order; a binary one as `<binary N>`, N its index in `binary`. */
  readonly received: string[] = [];
  /** Every binary frame received, in order. */
  readonly binary: Uint8Array[] = [];
  /** Resolves when the socket closed. */
  readonly closed: Promise<CloseRecord>;
  /** Resolves when the socket opened; rejects when it closed first. */
  readonly opened: Promise<void>;
  #unread: string[] = [];
  #waiting: ((text: string) => void)[] = [];

  private constructor(socket: WebSocket) {
    this.socket = socket;
    this.opened = new Promise((resolve, reject) => {
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener("close", () => reject(new Error("Closed before open")), {
        once: true,
      });
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) =>
      socket.addEventListener(
        "close",
        (event) => resolve({ code: event.code, reason: event.reason }),
      )
    );
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (event) => {
      let text: string;
      if (typeof event.data === "string") text = event.data;
      else {
        text = `<binary ${this.binary.length}>`;
        this.binary.push(new Uint8Array(event.data));
      }
      this.received.push(text);
      const waiter = this.#waiting.shift();
      if (waiter) waiter(text);
      else this.#unread.push(text);
    });
  }

  /**
   * Connects to `url`; waits for the socket to open. With `hello`, it announces itself with the
   * `X-Mist-Version` header and says `$/hello` (id `"hello"`) first, reading the reply: the
   * server may then call it. Without, it is a seed client. `features` are listed in its hello.
   */
  static async connect(
    url: string,
    secret: SharedSecret | string | undefined,
    options: { protocols?: string[]; hello?: boolean; features?: string[] } = {},
  ): Promise<ScriptedPeer> {
    const hex = typeof secret === "string" ? secret : secret?.toHex();
    const init: { headers?: Record<string, string>; protocols?: string[] } = {};
    if (options.protocols) init.protocols = options.protocols;
    else if (hex !== undefined) init.headers = { "X-Land-Secret": hex };
    if (options.hello) init.headers = { ...init.headers, "X-Mist-Version": "2" };
    // Deno's WebSocket takes a dictionary with headers and protocols.
    const socket = new WebSocket(url, init as unknown as string[]);
    const peer = new ScriptedPeer(socket);
    await peer.opened;
    if (options.hello) {
      const params = { version: 2, features: options.features ?? [] };
      const reply = JSON.parse(
        await peer.exchange(JSON.stringify({ id: "hello", method: "$/hello", params })),
      );
      if (reply.id !== "hello" || !(reply.result?.version >= 2)) {
        throw new Error(`Unexpected hello reply ${JSON.stringify(reply)}`);
      }
    }
    return peer;
  }

  /** Sends one frame exactly as given. */
  send(frame: string | Uint8Array): void {
    this.socket.send(frame as string);
  }

  /** Resolves with the next received frame not yet read by `next`. */
  next(): Promise<string> {
    if (this.#unread.length > 0) return Promise.resolve(this.#unread.shift()!);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Sends a frame and resolves with the next frame received. */
  async exchange(frame: string | Uint8Array): Promise<string> {
    const reply = this.next();
    this.send(frame);
    return await reply;
  }

  /** Sends an echo request and checks the reply; proves the connection still works. */
  async echo(id: number, value: unknown = "still here"): Promise<unknown> {
    const reply = await this.exchange(JSON.stringify({ id, method: "echo", params: [value] }));
    return JSON.parse(reply);
  }

  /** Closes with `code` and waits for the close to complete. */
  async close(code = 1000, reason = ""): Promise<CloseRecord> {
    if (this.socket.readyState < WebSocket.CLOSING) this.socket.close(code, reason);
    return await this.closed;
  }

  /** Closes with 1000 (a no-op once closed). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP upgrade

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** The answer to a raw upgrade request. */
export interface RawResponse {
  status: number;
  headers: Headers;
}

/**
 * Sends a WebSocket upgrade request byte for byte over `Deno.connect` to 127.0.0.1 and reads
 * the status line and headers. A header given as `null` is left out. On 101 it completes the
 * closing handshake (a masked close frame, then the server's close frame) before closing TCP.
 */
export async function rawUpgrade(
  port: number,
  headers: Record<string, string | null> = {},
  path = "/",
): Promise<RawResponse> {
  const head = upgradeRequest(port, headers, path);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, encoder.encode(head));
    let text = "";
    let rest = new Uint8Array(0);
    const buffer = new Uint8Array(4096);
    while (!text.includes("\r\n\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) throw new Error(`Connection closed after ${JSON.stringify(text)}`);
      text += latin1.decode(buffer.subarray(0, n));
    }
    const end = text.indexOf("\r\n\r\n");
    rest = encoder.encode(text.slice(end + 4)); // frames are ASCII-safe enough for the close check
    const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
    const status = Number(statusLine.split(" ")[1]);
    const response = new Headers();
    for (const line of lines) {
      const colon = line.indexOf(":");
      response.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
    if (status === 101) {
      // Masked close frame, code 1000, mask 0 0 0 0 (RFC 6455 §5.3 allows any mask).
      await writeAll(conn, new Uint8Array([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]));
      let first = rest.length > 0 ? rest[0] : -1;
      while (first !== 0x88) {
        const n = await conn.read(buffer);
        if (n === null) break;
        if (n > 0) first = buffer[0];
      }
    }
    return { status, headers: response };
  } finally {
    conn.close();
  }
}

/**
 * The head of a WebSocket upgrade request to 127.0.0.1:`port`, ending with its blank line:
 * Host, Upgrade, Connection, Sec-WebSocket-Key and Sec-WebSocket-Version, then `headers` (which
 * may replace any of those; a header given as `null` is left out).
 */
export function upgradeRequest(
  port: number,
  headers: Record<string, string | null> = {},
  path = "/",
): string {
  const all: Record<string, string | null> = {
    Host: `127.0.0.1:${port}`,
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
    ...headers,
  };
  let head = `GET ${path} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(all)) {
    if (value !== null) head += `${name}: ${value}\r\n`;
  }
  return `${head}\r\n`;
}

/** Writes all of `bytes` to a connection (Deno's, or the `node:net` adapter's). */
export async function writeAll(
  conn: { write(bytes: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

/**
 * Rejects if `promise` has not settled within `ms`, so a hung subprocess or socket fails the
 * test instead of hanging it.
 */
export async function within<T>(promise: Promise<T>, what: string, ms = 15_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A new temporary directory. `await using dir = await tempDir(prefix)` removes it, with what
 * is in it, when the test ends.
 */
export async function tempDir(prefix: string): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/**
 * Replaces `object[key]` with `value` until disposed: `using _connect = replaced(Deno,
 * "connect", fake)` puts the original back (or removes the property) when the test ends.
 */
export function replaced<T extends object, K extends keyof T>(
  object: T,
  key: K,
  value: T[K],
): Disposable {
  const saved = Object.getOwnPropertyDescriptor(object, key);
  Object.defineProperty(object, key, { value, configurable: true, writable: true });
  return {
    [Symbol.dispose]() {
      if (saved) Object.defineProperty(object, key, saved);
      else delete object[key];
    },
  };
}

/** A loopback port nothing listens on: bound, read, released. */
export function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

/** Resolves with the client's next state change to `state`. */
export function nextState(client: Client, state: ClientState): Promise<StateChangeEvent> {
  return new Promise((resolve) => {
    const listener = (change: StateChangeEvent) => {
      if (change.state !== state) return;
      client.removeEventListener("statechange", listener);
      resolve(change);
    };
    client.addEventListener("statechange", listener);
  });
}

// ---------------------------------------------------------------------------------------------
// Subprocesses

const ROOT = new URL("..", import.meta.url);

/** Accumulates a stream's text and lets a test wait for a substring or read it line by line. */
export class TextCollector {
  /** Everything read so far. */
  text = "";
  /** Resolves with the whole text once the stream ended (or broke with its process). */
  readonly done: Promise<string>;
  #waiters: { needle: string; resolve: () => void }[] = [];
  #lineReaders: ((ended: boolean) => void)[] = [];
  #ended = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = this.#read(stream);
  }

  async #read(stream: ReadableStream<Uint8Array>): Promise<string> {
    try {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        this.text += chunk;
        this.#waiters = this.#waiters.filter(({ needle, resolve }) =>
          this.text.includes(needle) ? (resolve(), false) : true
        );
        for (const read of this.#lineReaders) read(false);
      }
    } catch {
      // The pipe broke with the process: keep what came.
    }
    this.#ended = true;
    for (const read of this.#lineReaders) read(true);
    return this.text;
  }

  /** Resolves once the text contains `needle`; rejects if the stream ends first. */
  waitFor(needle: string): Promise<void> {
    if (this.text.includes(needle)) return Promise.resolve();
    const seen = new Promise<void>((resolve) => this.#waiters.push({ needle, resolve }));
    const ended = this.done.then((text) => {
      if (!text.includes(needle)) {
        throw new Error(`Stream ended without ${JSON.stringify(needle)}:\n${text}`);
      }
    });
    return within(Promise.race([seen, ended]), JSON.stringify(needle));
  }

  /**
   * Calls `listener` with every line (without its line break): those read already at once,
   * the rest as they come, and a last one without a line break when the stream ends.
   */
  onLine(listener: (line: string) => void): void {
    let at = 0;
    const read = (ended: boolean) => {
      for (let end = this.text.indexOf("\n", at); end >= 0; end = this.text.indexOf("\n", at)) {
        listener(this.text.slice(at, end));
        at = end + 1;
      }
      if (ended && at < this.text.length) {
        listener(this.text.slice(at));
        at = this.text.length;
      }
    };
    read(this.#ended);
    if (!this.#ended) this.#lineReaders.push(read);
  }
}

/** How a subprocess exited, with everything it wrote. */
export interface Exit {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/**
 * A subprocess with its output collected. `await using child = spawn(…)` ends it when the test
 * ends (`stop("SIGTERM")`: by its PID, SIGKILL after the bound) and waits for its exit.
 */
export interface Child extends AsyncDisposable {
  readonly pid: number;
  readonly stdout: TextCollector;
  readonly stderr: TextCollector;
  /** Resolves once it exited and both of its pipes ended. */
  readonly exited: Promise<Exit>;
  /** Whether it is still running (`exited` has not settled yet). */
  alive(): Promise<boolean>;
  /** Sends `signal` to it, by its PID (nothing once it exited). */
  kill(signal: Deno.Signal): void;
  /**
   * Sends `signal`, waits for the exit within the bound of {@linkcode within}, and SIGKILLs it
   * (then rejects) if it did not come. Resolves with how it exited, at once once it has.
   */
  stop(signal?: Deno.Signal): Promise<Exit>;
}

/**
 * Starts `program` in the project's root with the test process's environment, MIST_SECRET
 * removed (a runner then generates a secret and prints it) and `env` added. Its stdin gets
 * `input` and is closed (none without); stdout and stderr are collected.
 */
export function spawn(
  program: string,
  args: string[],
  options: { env?: Record<string, string>; input?: string } = {},
): Child {
  const env = Deno.env.toObject();
  delete env.MIST_SECRET;
  const child = new Deno.Command(program, {
    args,
    cwd: ROOT,
    env: { ...env, ...options.env },
    clearEnv: true,
    stdin: options.input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.input !== undefined) {
    const writer = child.stdin.getWriter();
    writer.write(new TextEncoder().encode(options.input))
      .then(() => writer.close())
      .catch(() => {}); // it exited before reading: its exit says why
  }
  const stdout = new TextCollector(child.stdout);
  const stderr = new TextCollector(child.stderr);
  const exited = (async () => {
    const { code, signal } = await child.status;
    const [out, err] = await Promise.all([stdout.done, stderr.done]);
    return { code, signal, stdout: out, stderr: err };
  })();
  const kill = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch {
      // Already exited.
    }
  };
  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    kill(signal);
    try {
      return await within(exited, "the subprocess to exit");
    } catch (error) {
      kill("SIGKILL");
      await exited;
      throw error;
    }
  };
  return {
    pid: child.pid,
    stdout,
    stderr,
    exited,
    async alive() {
      const marker = Symbol("running");
      // A settled exit wins the race against a promise resolved after it.
      return await Promise.race([exited, Promise.resolve().then(() => marker)]) === marker;
    },
    kill,
    stop,
    [Symbol.asyncDispose]: async () => void await stop(),
  };
}

/**
 * The first line a subprocess writes on stdout, as JSON (a runner's ready line). When it ends
 * or stalls without one, it is killed and the error carries its stderr.
 */
export async function readyLine(child: Child): Promise<Record<string, string>> {
  try {
    await child.stdout.waitFor("\n");
  } catch (error) {
    await child.stop("SIGKILL");
    throw new Error(`Subprocess did not start: ${child.stderr.text}`, { cause: error });
  }
  return JSON.parse(child.stdout.text.split("\n")[0]);
}

// ---------------------------------------------------------------------------------------------
// The notification-then-call timing the Node and browser tests print (issue 5's Nagle target)

/** Medians, in ms, of a call alone and of a notification followed by a call. */
export interface NagleTiming {
  alone: number;
  afterNote: number;
}

/** One line for the test output: both medians and their ratio. Printed, never asserted. */
export function nagleLine({ alone, afterNote }: NagleTiming): string {
  return `notification then call ${afterNote.toFixed(2)} ms, call alone ${alone.toFixed(2)} ms ` +
    `(medians of 50) = ${(afterNote / alone).toFixed(2)}×`;
}

// ---------------------------------------------------------------------------------------------
// Commands run to completion

/** What a finished command printed, and its exit code. */
export interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion (stdin closed, output collected); killed, and so failing, after
 * `timeoutMs`.
 */
export async function runToEnd(
  command: string,
  args: readonly string[],
  options: { cwd?: string | URL; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Output> {
  const decoder = new TextDecoder();
  const { code, stdout, stderr } = await new Deno.Command(command, {
    args: [...args],
    cwd: options.cwd,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
  }).output();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

/** Asserts a command exited 0, showing its output when it did not. */
export function succeeded(output: Output, what: string): Output {
  assert.equal(output.code, 0, `${what} failed:\n${output.stdout}\n${output.stderr}`);
  return output;
}
