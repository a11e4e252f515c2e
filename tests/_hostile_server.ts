/**
 * Test harness for `NoDelayWebSocket` against a hostile server: a one-connection TCP server on
 * 127.0.0.1 that answers the opening handshake by hand and then writes whatever raw frames its
 * script likes; a reader for the client's masked frames; an in-memory `Deno.connect` stand-in
 * for driving the socket's parser in-process; and, run as a program, the flood scenarios that
 * `hostile_server_test.ts` runs in a subprocess with a small heap.
 *
 * @module
 */
import { NoDelayWebSocket, type NoDelayWebSocketOptions } from "../_socket/no_delay.ts";

const encoder = new TextEncoder();
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; // RFC 6455 §1.3

/** 1 MiB. */
export const MIB = 1024 * 1024;

/**
 * An unmasked server frame with the shortest length encoding, or with `announce` as its
 * 64-bit length field (whatever the payload's real length).
 */
export function serverFrame(
  opcode: number,
  payload: Uint8Array | string = new Uint8Array(0),
  options: { fin?: boolean; announce?: bigint } = {},
): Uint8Array {
  const body = typeof payload === "string" ? encoder.encode(payload) : payload;
  const { fin = true, announce } = options;
  const length = body.length;
  const head = announce !== undefined ? 10 : length < 126 ? 2 : length < 65536 ? 4 : 10;
  const out = new Uint8Array(head + length);
  out[0] = (fin ? 0x80 : 0) | opcode;
  out[1] = head === 2 ? length : head === 4 ? 126 : 127;
  const view = new DataView(out.buffer);
  if (head === 4) view.setUint16(2, length);
  if (head === 10) view.setBigUint64(2, announce ?? BigInt(length));
  out.set(body, head);
  return out;
}

/** The `Sec-WebSocket-Accept` value for a key. */
export async function acceptFor(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", encoder.encode(key + GUID));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/** A valid 101 response head for `accept`, with `extra` header lines (each ending in CRLF). */
export function upgradeHead(accept: string, extra = ""): string {
  return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${accept}\r\n${extra}\r\n`;
}

/** Writes all of `bytes`. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/** Reads the client's bytes: the request head, then masked frames. */
export class Reader {
  #conn: Deno.Conn;
  #buf = new Uint8Array(256 * 1024);
  #start = 0;
  #end = 0;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Until `count` bytes are buffered (at most the buffer's size); throws at the end. */
  async #fill(count: number): Promise<void> {
    if (this.#buf.length - this.#start < count) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      [this.#start, this.#end] = [0, this.#end - this.#start];
    }
    while (this.#end - this.#start < count) { // each read adds a byte or ends the loop
      const read = await this.#conn.read(this.#buf.subarray(this.#end));
      if (read === null) throw new Error("connection ended");
      this.#end += read;
    }
  }

  /** The next `count` bytes (a copy). */
  async bytes(count: number): Promise<Uint8Array> {
    const out = new Uint8Array(count);
    for (let done = 0; done < count;) { // in pieces no larger than the buffer
      const piece = Math.min(count - done, 64 * 1024);
      await this.#fill(piece);
      out.set(this.#buf.subarray(this.#start, this.#start + piece), done);
      this.#start += piece;
      done += piece;
    }
    return out;
  }

  /** The request head, up to and including the empty line. */
  async head(): Promise<string> {
    let text = "";
    while (!text.endsWith("\r\n\r\n")) { // bounded by the length check
      text += String.fromCharCode((await this.bytes(1))[0]);
      if (text.length > 8192) throw new Error("request head too long");
    }
    return text;
  }

  /** One client frame, unmasked; throws if it was not masked. */
  async frame(): Promise<{ fin: boolean; opcode: number; payload: Uint8Array }> {
    const [b0, b1] = await this.bytes(2);
    if ((b1 & 0x80) === 0) throw new Error("client frame not masked");
    let length = b1 & 0x7f;
    if (length === 126) length = new DataView((await this.bytes(2)).buffer).getUint16(0);
    else if (length === 127) {
      length = Number(new DataView((await this.bytes(8)).buffer).getBigUint64(0));
    }
    const mask = await this.bytes(4);
    const payload = await this.bytes(length);
    for (let i = 0; i < length; i++) payload[i] ^= mask[i & 3];
    return { fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload };
  }

  /** The client's close frame's code (1005 when it has none). */
  async closeCode(): Promise<number> {
    for (let frames = 0; frames < 1_000_000; frames++) { // skips pongs
      const { opcode, payload } = await this.frame();
      if (opcode === 8) return payload.length >= 2 ? (payload[0] << 8) | payload[1] : 1005;
    }
    throw new Error("no close frame");
  }
}

/**
 * A one-connection TCP server on 127.0.0.1; `serve` gets the accepted connection, which is
 * closed after it. `await using tcp = oneConnectionServer(…)` stops listening, closes the
 * connection and waits (briefly) for `serve` when the test ends.
 */
export function oneConnectionServer(
  serve: (conn: Deno.Conn) => Promise<void>,
): { port: number; done: Promise<void> } & AsyncDisposable {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let listening = true;
  const stopListening = () => {
    if (listening) listener.close();
    listening = false;
  };
  let accepted: Deno.Conn | undefined;
  const done = (async () => {
    const conn = accepted = await listener.accept();
    stopListening();
    try {
      await serve(conn);
    } finally {
      try {
        conn.close();
      } catch { /* the script closed it */ }
    }
  })();
  done.catch(() => {}); // a test that fails first must not also die of an unhandled rejection
  return {
    port: listener.addr.port,
    done,
    async [Symbol.asyncDispose]() {
      // No client came: the accept fails. A script still waiting: its reads and writes fail.
      stopListening();
      try {
        accepted?.close();
      } catch { /* closed already */ }
      // A script waiting on something else (a test that failed first) is not waited for long.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const waited = new Promise<void>((resolve) => timer = setTimeout(resolve, 1000));
      await Promise.race([done.catch(() => {}), waited]);
      clearTimeout(timer);
    },
  };
}

/**
 * A one-connection WebSocket server on 127.0.0.1: reads the request head, answers it with
 * `head(accept)` (a valid 101 by default; bytes are written as given, so frames may ride in the
 * same write) and runs `script`. `done` settles after the script, with its error.
 * `await using server = hostileServer(…)` stops listening, closes the connection and waits for
 * the script when the test ends (a test that passed has awaited `done` already).
 */
export function hostileServer(
  script: (conn: Deno.Conn, reader: Reader) => Promise<void>,
  head: (accept: string) => string | Uint8Array = upgradeHead,
): { url: string; done: Promise<void> } & AsyncDisposable {
  const tcp = oneConnectionServer(async (conn) => {
    const reader = new Reader(conn);
    const request = await reader.head();
    const key = /sec-websocket-key: (\S+)/i.exec(request)?.[1] ?? "";
    const response = head(await acceptFor(key));
    await writeAll(conn, typeof response === "string" ? encoder.encode(response) : response);
    await script(conn, reader);
  });
  return {
    url: `ws://127.0.0.1:${tcp.port}/`,
    done: tcp.done,
    [Symbol.asyncDispose]: () => tcp[Symbol.asyncDispose](),
  };
}

/**
 * What a socket reported, in order; `opened` settles with the open event, `closed` with the
 * close event. `await using watched = watch(socket)` closes the socket (if it is not closed yet)
 * and waits for its close event when the test ends.
 */
export interface Watched extends AsyncDisposable {
  events: string[];
  messages: unknown[];
  opened: Promise<void>;
  closed: Promise<{ code: number; reason: string }>;
  /** The next message (waits for it). */
  next: () => Promise<unknown>;
}

/** Records a socket's events. */
export function watch(socket: NoDelayWebSocket): Watched {
  const events: string[] = [];
  const messages: unknown[] = [];
  const waiting: ((data: unknown) => void)[] = [];
  let seen = 0;
  const opened = new Promise<void>((resolve) =>
    socket.addEventListener("open", () => {
      events.push("open");
      resolve();
    })
  );
  socket.addEventListener("error", () => events.push("error"));
  socket.addEventListener("message", (event) => {
    events.push("message");
    messages.push(event.data);
    waiting.shift()?.(event.data);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    socket.addEventListener("close", (event) => {
      events.push("close");
      resolve({ code: event.code ?? 0, reason: event.reason ?? "" });
    })
  );
  const next = (): Promise<unknown> =>
    seen < messages.length
      ? Promise.resolve(messages[seen++])
      : new Promise((resolve) => waiting.push((data) => resolve((seen++, data))));
  return {
    events,
    messages,
    opened,
    closed,
    next,
    async [Symbol.asyncDispose]() {
      if (socket.readyState < 2) socket.close(); // CONNECTING or OPEN
      await closed;
    },
  };
}

/** Heap and `ArrayBuffer` memory in use, after a full collection when `gc` is exposed. */
export function memoryInUse(): number {
  (globalThis as { gc?: () => void }).gc?.();
  const { heapUsed, external } = Deno.memoryUsage();
  return heapUsed + external;
}

// ---------------------------------------------------------------------------------------------
// In-memory connection

/** What an in-memory connection saw from the socket. */
export interface FakeConn {
  /** Bytes the socket wrote after its request head, copied. */
  written: Uint8Array[];
  /** Whether the socket closed the connection. */
  closed: boolean;
  /** The largest buffer the socket offered to a read: what it allocated for input. */
  largestRead: number;
}

/**
 * Opens a `NoDelayWebSocket` over an in-memory connection instead of TCP: the connection
 * answers the handshake with a valid 101, then hands the socket `head + stream` in reads of the
 * sizes in `sizes` (used in turn; the rest in one read), then ends.
 */
export function fakeSocket(
  stream: Uint8Array,
  sizes: number[],
  options: NoDelayWebSocketOptions = {},
): { socket: NoDelayWebSocket; conn: FakeConn } {
  const conn: FakeConn = { written: [], closed: false, largestRead: 0 };
  const input = Promise.withResolvers<Uint8Array>();
  let pending: Uint8Array | undefined, at = 0, turn = 0;
  const fake = {
    async read(buffer: Uint8Array): Promise<number | null> {
      conn.largestRead = Math.max(conn.largestRead, buffer.length);
      pending ??= await input.promise;
      if (conn.closed) throw new Error("closed");
      if (at >= pending.length) return null;
      const size = Math.max(
        1,
        Math.min(buffer.length, sizes[turn++] ?? pending.length, pending.length - at),
      );
      buffer.set(pending.subarray(at, at + size));
      at += size;
      return size;
    },
    async write(bytes: Uint8Array): Promise<number> {
      if (conn.closed) throw new Error("closed");
      const text = new TextDecoder("latin1").decode(bytes);
      const key = /sec-websocket-key: (\S+)/i.exec(text)?.[1];
      if (key && text.startsWith("GET ")) {
        const head = encoder.encode(upgradeHead(await acceptFor(key)));
        const all = new Uint8Array(head.length + stream.length);
        all.set(head);
        all.set(stream, head.length);
        input.resolve(all);
      } else conn.written.push(bytes.slice());
      return bytes.length;
    },
    close(): void {
      conn.closed = true;
    },
    setNoDelay(): void {},
  };
  const connect = Deno.connect;
  Deno.connect = (() => Promise.resolve(fake)) as unknown as typeof Deno.connect;
  try { // the socket calls connect synchronously in its constructor
    return { socket: new NoDelayWebSocket("ws://fake.invalid/", options), conn };
  } finally {
    Deno.connect = connect;
  }
}

/** Unmasks a client byte stream into frames. */
export function clientFrames(bytes: Uint8Array): { opcode: number; payload: Uint8Array }[] {
  const frames: { opcode: number; payload: Uint8Array }[] = [];
  for (let at = 0; at + 2 <= bytes.length;) { // each frame moves `at` forward
    let length = bytes[at + 1] & 0x7f, head = 2;
    if (length === 126) [length, head] = [(bytes[at + 2] << 8) | bytes[at + 3], 4];
    else if (length === 127) {
      length = Number(new DataView(bytes.buffer, bytes.byteOffset + at + 2, 8).getBigUint64(0));
      head = 10;
    }
    const mask = bytes.subarray(at + head, at + head + 4);
    const payload = bytes.slice(at + head + 4, at + head + 4 + length);
    for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
    frames.push({ opcode: bytes[at] & 0x0f, payload });
    at += head + 4 + length;
  }
  return frames;
}

// ---------------------------------------------------------------------------------------------
// Flood scenarios, run in a subprocess: `deno run -A --v8-flags=--max-old-space-size=64,--expose-gc
// tests/_hostile_server.ts empty|one-byte`. Prints `{"code":…,"growth":…}` (bytes) on success.

/** Continuation frames without FIN sent after a 1-byte text start (~4 to 6 MB of them). */
export const FLOOD_FRAMES = 2_000_000;

async function flood(kind: string): Promise<void> {
  const piece = kind === "empty" ? [0x00, 0x00] : [0x00, 0x01, 0x78];
  const perWrite = 32_768;
  const batch = new Uint8Array(piece.length * perWrite);
  for (let i = 0; i < batch.length; i++) batch[i] = piece[i % piece.length];
  const { url, done } = hostileServer(async (conn) => {
    try {
      await writeAll(conn, serverFrame(1, "a", { fin: false }));
      for (let sent = 0; sent < FLOOD_FRAMES; sent += perWrite) await writeAll(conn, batch);
      await writeAll(conn, new Uint8Array([...serverFrame(0, "z"), ...serverFrame(8)]));
    } catch { /* the client hung up */ }
  });
  const before = memoryInUse();
  const socket = new NoDelayWebSocket(url);
  const { closed } = watch(socket);
  const { code } = await closed;
  await done;
  console.log(JSON.stringify({ code, growth: memoryInUse() - before }));
}

if (import.meta.main) await flood(Deno.args[0]);
