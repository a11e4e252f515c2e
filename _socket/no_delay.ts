/**
 * A WebSocket client socket with Nagle's algorithm turned off, for Deno and Node. It opens its
 * TCP connection with `Deno.connect` where that exists, else with `node:net` through the
 * adapter in `node_tcp.ts`, which fetches the module at connect time with
 * `process.getBuiltinModule`. Neither is imported: `Deno.connect` is found on `globalThis` and
 * typed here (`DenoNet` below), so this file also type-checks with a DOM-only lib, and the
 * client that imports it stays loadable in browsers, where it is never used
 * ({@linkcode isNoDelaySupported} is false there).
 *
 * Why it exists: Deno's native `WebSocket` client leaves Nagle's algorithm on (`Deno.serve`
 * turns it off on the server side only). When a client sends a frame that gets no immediate
 * reply, such as a JSON-RPC notification, and then a request, the kernel holds the request back
 * until the server's delayed ACK for the notification arrives: the call takes ~44 ms instead of
 * ~0.1 ms. On Node, undici's `WebSocket` leaves Nagle on too, and its error for a refused
 * upgrade says only "non-101 status code"; this socket's names the status ("handshake failed:
 * HTTP/1.1 401 Unauthorized"). `NoDelayWebSocket` connects, calls `setNoDelay(true)` and speaks
 * RFC 6455 itself: the opening handshake (§4.1, §4.2.2), base framing and client masking
 * (§5.2, §5.3), fragmentation (§5.4), control frames (§5.5) and the closing handshake (§5.5.1,
 * §7). It supports `ws:` URLs only (no TLS) and no extensions.
 *
 * It does not trust the server. A message is refused (close 1009) as soon as a frame head shows
 * that it would pass `maxMessageBytes` or {@linkcode MAX_FRAGMENTS} frames, before any of it is
 * allocated; fragments are gathered in one buffer. Only the latest ping is answered, and while
 * more than {@linkcode MAX_QUEUED_BYTES} wait to be written the socket stops reading, so a
 * server that floods it without reading cannot make it buffer without bound. The handshake
 * response head may take at most 16 KiB.
 *
 * @module
 */
import { MAX_MESSAGE_BYTES_LIMIT } from "../envelope.ts";
import { logSafe } from "../log.ts";
import type { WebSocketLike, WebSocketLikeEvent } from "../transport.ts";
import { checkHandshake, handshakeRequest } from "./handshake.ts";
import { decodeText, REUSE_MAX, validCloseCode } from "./frame.ts";
import { FrameWriter } from "./writer.ts";
import { connectNode, type ConnectOptions, isNodeTcpSupported, type TcpConn } from "./node_tcp.ts";

/** The part of Deno's TCP API used here. */
interface DenoNet {
  connect(options: ConnectOptions): Promise<TcpConn>;
}

function denoNet(): DenoNet | undefined {
  return (globalThis as { Deno?: DenoNet }).Deno;
}

/** TCP through `Deno.connect` on Deno, through `node:net` elsewhere (Node). */
function connectTcp(options: ConnectOptions): Promise<TcpConn> {
  const deno = denoNet();
  return typeof deno?.connect === "function" ? deno.connect(options) : connectNode(options);
}

/**
 * Reports a listener's exception without stopping the others: `reportError`, which Node 20
 * lacks, else an uncaught exception a task later (what Node's `EventTarget` does).
 */
function report(error: unknown): void {
  const g = globalThis as { reportError?: (error: unknown) => void };
  if (typeof g.reportError === "function") return g.reportError(error);
  setTimeout(() => {
    throw error;
  }, 0);
}

const MAX_REFUSAL_BODY = 512; // a refusal's text body read for its reason, at most
const MAX_MESSAGE = MAX_MESSAGE_BYTES_LIMIT; // like Deno's native WebSocket; larger → close 1009
const MAX_HEAD = 16 * 1024; // largest handshake response head accepted, final CRLFCRLF included
const FRAGMENTS_KEPT = 64 * 1024; // a fragment buffer up to this size is kept for the next one
const CLOSE_TIMEOUT_MS = 2000; // how long closing waits for the peer before dropping TCP
const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1"); // one char per byte, for the response head

type EventType = "open" | "message" | "close" | "error";
type Listener = (event: WebSocketLikeEvent) => void;

/** What a `NoDelayWebSocket` event carries: `WebSocketLikeEvent` plus the usual extras. */
interface SocketEvent extends WebSocketLikeEvent {
  readonly type: EventType;
  readonly wasClean?: boolean;
  readonly message?: string;
}

/**
 * Options for {@linkcode NoDelayWebSocket}.
 *
 * @example Offering a subprotocol and sending a credential
 * ```ts
 * import type { NoDelayWebSocketOptions } from "./no_delay.ts";
 * const options: NoDelayWebSocketOptions = {
 *   headers: { "X-Land-Secret": "s3cret" },
 *   protocols: ["mist.v1"],
 * };
 * ```
 */
export interface NoDelayWebSocketOptions {
  /** Extra handshake request headers, such as credentials. Handshake headers are refused. */
  headers?: Record<string, string>;
  /** Subprotocols to offer, in order of preference. */
  protocols?: string[];
  /**
   * Largest message accepted, in bytes, all its fragments together; a longer one closes the
   * connection with 1009 as soon as a frame head announces it, before its payload is read or
   * allocated. An integer from 1 to 64 MiB.
   *
   * @default {64 MiB}
   */
  maxMessageBytes?: number;
}

/**
 * Whether {@linkcode NoDelayWebSocket} can run here: true in Deno, where `Deno.connect` exists,
 * and in Node 20.16+ / 22.3+, where `process.getBuiltinModule` can load `node:net`; false in
 * browsers.
 *
 * @example Picking a socket at runtime
 * ```ts
 * import { isNoDelaySupported, NoDelayWebSocket } from "./no_delay.ts";
 * const open = (url: string) =>
 *   isNoDelaySupported() && url.startsWith("ws:") ? new NoDelayWebSocket(url) : new WebSocket(url);
 * console.log(typeof open);
 * ```
 */
export function isNoDelaySupported(): boolean {
  return typeof denoNet()?.connect === "function" || isNodeTcpSupported();
}

/**
 * Most frames one message may arrive in (RFC 6455 §5.4 fragmentation); a message in more
 * closes the connection with 1009. As many as a 4 MiB message in fragments of 64 bytes needs.
 */
export const MAX_FRAGMENTS: number = 65_536;

/**
 * While more bytes than this wait to be written (queued frames, heads included), the socket
 * does not read from its connection, so a peer that sends without reading meets TCP
 * backpressure instead of growing the queue; reading resumes once the queue is back under it.
 */
export const MAX_QUEUED_BYTES: number = 4 * 1024 * 1024;

async function writeAll(conn: TcpConn, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) {
    const written = await conn.write(bytes.subarray(offset));
    if (written <= 0) throw new Error("write made no progress");
    offset += written;
  }
}

/**
 * A `WebSocketLike` client over TCP (`Deno.connect`, or `node:net` on Node) with no-delay, so that a frame that gets no
 * reply does not hold back the next one. Events fire as with the WHATWG `WebSocket`: `open`;
 * `message` with `data` (a string, or an `ArrayBuffer` when `binaryType` is `"arraybuffer"`,
 * else a `Blob`); `error` when the handshake or the protocol fails; `close` exactly once, with
 * `code` (1006 when the connection ended without a closing handshake) and `reason`.
 *
 * @example Calling after a notification without waiting for a delayed ACK
 * ```ts ignore
 * import { NoDelayWebSocket } from "./no_delay.ts";
 * const socket = new NoDelayWebSocket("ws://127.0.0.1:8080/", { protocols: ["mist.v1"] });
 * socket.binaryType = "arraybuffer";
 * socket.addEventListener("open", () => {
 *   socket.send('{"jsonrpc":"2.0","method":"hello"}');
 *   socket.send('{"jsonrpc":"2.0","id":1,"method":"ping"}');
 * });
 * socket.addEventListener("message", (event) => {
 *   console.log(event.data);
 *   socket.close(1000, "done");
 * });
 * socket.addEventListener("close", (event) => console.log(event.code, event.reason));
 * ```
 */
export class NoDelayWebSocket implements WebSocketLike {
  /** How binary messages are delivered: `"arraybuffer"`, or `"blob"` (the default). */
  binaryType = "blob";
  #readyState = 0;
  #protocol = "";
  #listeners = new Map<string, Listener[]>();
  #abort = new AbortController();
  #conn?: TcpConn;
  #connClosed = false;
  #out = new FrameWriter();
  #writing = false;
  #pumping: Promise<void> = Promise.resolve();
  #closeSent = false;
  #result?: { code: number; reason: string; failed: boolean }; // why reading stopped
  #timer?: ReturnType<typeof setTimeout>;
  #buf = new Uint8Array(64 * 1024); // unparsed input is #buf[#start, #end)
  #start = 0;
  #end = 0;
  #payload?: Uint8Array<ArrayBuffer>; // a frame payload too big for #buf, filled in place
  #spare = new Uint8Array(0); // reused for text payloads too big for #buf
  #filled = 0;
  #opcode = 0;
  #fin = false;
  #fragOpcode = 0; // opcode of the fragmented message being reassembled, or 0
  #fragments = new Uint8Array(0); // its payload so far is #fragments[0, #fragSize)
  #fragSize = 0;
  #fragCount = 0; // its frames so far
  #maxMessage: number;
  #resume?: () => void; // wakes the read loop waiting for the outgoing queue to drain

  /**
   * Starts connecting to a `ws:` URL; throws a `TypeError` for any other scheme or a bad header,
   * a `SyntaxError` for a bad or repeated subprotocol, a `RangeError` for a bad
   * `maxMessageBytes`. Connection failures arrive as `error` and `close` (1006) events, never as
   * exceptions.
   */
  constructor(url: string, options: NoDelayWebSocketOptions = {}) {
    const target = new URL(url);
    if (target.protocol !== "ws:") {
      throw new TypeError(
        `NoDelayWebSocket supports only ws: URLs, not ${target.protocol}`,
      );
    }
    const max = options.maxMessageBytes ?? MAX_MESSAGE;
    if (!Number.isInteger(max) || max < 1 || max > MAX_MESSAGE) {
      throw new RangeError(`maxMessageBytes must be an integer from 1 to ${MAX_MESSAGE}`);
    }
    this.#maxMessage = max;
    const { head, key, protocols } = handshakeRequest(target, options);
    void this.#run(target, head, key, protocols);
  }

  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  get readyState(): number {
    return this.#readyState;
  }

  /** Payload bytes given to `send` and not yet written to the TCP connection. */
  get bufferedAmount(): number {
    return this.#out.buffered;
  }

  /** The subprotocol the server selected, or `""`. */
  get protocol(): string {
    return this.#protocol;
  }

  /** Queues a text (string) or binary frame; throws while connecting, ignored once closing. */
  send(data: string | ArrayBuffer | Uint8Array): void {
    if (this.#readyState === 0) {
      throw new DOMException("still connecting", "InvalidStateError");
    }
    if (this.#readyState !== 1) return;
    if (typeof data === "string") this.#out.text(data);
    else this.#out.bytes(2, data instanceof Uint8Array ? data : new Uint8Array(data), true);
    this.#flush();
  }

  /** Starts the closing handshake; code 1000 or 3000–4999, reason at most 123 UTF-8 bytes. */
  close(code = 1000, reason = ""): void {
    if (
      !Number.isInteger(code) || (code !== 1000 && (code < 3000 || code > 4999))
    ) {
      throw new DOMException(`bad close code ${code}`, "InvalidAccessError");
    }
    if (encoder.encode(reason).length > 123) {
      throw new DOMException("reason over 123 bytes", "SyntaxError");
    }
    if (this.#readyState >= 2) return;
    if (this.#readyState === 0) {
      this.#readyState = 2; // #run sees this, fails the connection: error, then close 1006
      this.#abort.abort();
      this.#closeConn();
      return;
    }
    this.#readyState = 2;
    this.#sendClose(code, reason);
  }

  /** Registers a listener for `open`, `message`, `close` or `error` (once per listener). */
  addEventListener(type: EventType, listener: Listener): void {
    const listeners = this.#listeners.get(type) ?? [];
    if (!listeners.includes(listener)) {
      this.#listeners.set(type, [...listeners, listener]);
    }
  }

  /** Removes a listener registered with `addEventListener`. */
  removeEventListener(type: EventType, listener: Listener): void {
    const listeners = this.#listeners.get(type) ?? [];
    this.#listeners.set(type, listeners.filter((l) => l !== listener));
  }

  #emit(event: SocketEvent): void {
    for (const listener of this.#listeners.get(event.type) ?? []) { // copy-on-write
      try {
        listener(event);
      } catch (error) {
        report(error); // as an EventTarget would
      }
    }
  }

  async #run(
    url: URL,
    head: string,
    key: string,
    protocols: string[],
  ): Promise<void> {
    let message = "";
    try {
      const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
      const port = Number(url.port || 80);
      const signal = this.#abort.signal;
      this.#conn = await connectTcp({ hostname, port, signal });
      if (this.#readyState !== 0) throw new Error("closed while connecting");
      this.#conn.setNoDelay(true);
      await writeAll(this.#conn, encoder.encode(head));
      const response = await this.#readHead(this.#conn);
      if (!response.startsWith("HTTP/1.1 101")) await this.#refused(this.#conn, response);
      this.#protocol = await checkHandshake(response, key, protocols);
      if (this.#readyState !== 0) throw new Error("closed while connecting");
      this.#readyState = 1;
      this.#emit({ type: "open" });
      // Frames that arrived with the handshake response are delivered a task later, as the
      // WHATWG socket does, so listeners attached in reaction to "open" see them.
      await new Promise((resolve) => setTimeout(resolve, 0));
      this.#parse();
      await this.#readLoop(this.#conn);
    } catch (error) {
      message = error instanceof Error ? error.message : String(error);
    }
    this.#readyState = 2; // no more sends
    this.#timer ??= setTimeout(() => this.#closeConn(), CLOSE_TIMEOUT_MS); // bounds the flush
    await this.#pumping;
    clearTimeout(this.#timer);
    this.#closeConn();
    this.#readyState = 3;
    const { code, reason, failed } = this.#result ??
      { code: 1006, reason: "", failed: message !== "" }; // "" when TCP just ended
    if (failed) this.#emit({ type: "error", message: message || reason });
    const wasClean = this.#result?.failed === false;
    this.#emit({ type: "close", code, reason, wasClean });
  }

  /**
   * Fails the handshake with the status line and, when the refusal carries a short text body
   * (Mist's servers send their reason), that reason: escaped and cut, since the server chose it.
   */
  async #refused(conn: TcpConn, head: string): Promise<never> {
    const eol = head.indexOf("\r\n");
    const status = eol < 0 ? head : head.slice(0, eol);
    const length = Number(/\r\ncontent-length:\s*(\d{1,4})\s*(?:\r\n|$)/i.exec(head)?.[1] ?? 0);
    let reason = "";
    if (length > 0 && length <= MAX_REFUSAL_BODY) {
      // The body follows the head: what came with it, then at most a few more reads.
      for (let reads = 0; this.#end - this.#start < length && reads < 4; reads++) {
        const read = await conn.read(this.#space());
        if (read === null) break;
        this.#end += read;
      }
      const end = Math.min(this.#end, this.#start + length);
      reason = logSafe(latin1.decode(this.#buf.subarray(this.#start, end)).trim(), 200);
    }
    throw new Error(`handshake failed: ${logSafe(status, 100)}${reason ? `: ${reason}` : ""}`);
  }

  /** The response head, without its final CRLFCRLF; at most MAX_HEAD bytes with it. */
  async #readHead(conn: TcpConn): Promise<string> {
    const buf = this.#buf; // large enough: #space() neither grows nor moves it here
    while (this.#end < MAX_HEAD) { // each read adds at least one byte
      const from = Math.max(3, this.#end); // only new bytes can end the head
      const read = await conn.read(this.#space());
      if (read === null) {
        throw new Error("connection closed during the handshake");
      }
      this.#end += read;
      for (let i = from, end = Math.min(this.#end, MAX_HEAD); i < end; i++) {
        if (buf[i] === 10 && buf[i - 1] === 13 && buf[i - 2] === 10 && buf[i - 3] === 13) {
          this.#start = i + 1;
          return latin1.decode(buf.subarray(0, i - 3));
        }
      }
    }
    throw new Error("handshake response head too large");
  }

  async #readLoop(conn: TcpConn): Promise<void> {
    while (!this.#result) { // ends with the connection: each read returns data or null
      if (this.#writing && this.#out.queued > MAX_QUEUED_BYTES) { // backpressure
        await new Promise<void>((resolve) => this.#resume = resolve);
        continue; // the pump woke us: drained, or writing stopped
      }
      const payload = this.#payload;
      let read: number | null;
      try {
        read = await conn.read(
          payload?.subarray(this.#filled) ?? this.#space(),
        );
      } catch {
        read = null;
      }
      if (read === null) return;
      if (!payload) this.#end += read;
      else if ((this.#filled += read) === payload.length) {
        this.#payload = undefined;
        this.#frame(this.#opcode, this.#fin, payload, true);
      }
      this.#parse();
    }
  }

  /** Free space at the end of #buf, compacting or growing it when little is left. */
  #space(): Uint8Array {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#buf.length - this.#end < 4096) {
      const live = this.#buf.subarray(this.#start, this.#end);
      const grow = live.length + 8192 > this.#buf.length;
      const next = grow ? new Uint8Array(this.#buf.length * 2) : this.#buf;
      next.set(live);
      [this.#buf, this.#start, this.#end] = [next, 0, live.length];
    }
    return this.#buf.subarray(this.#end);
  }

  /** Handles every complete frame in #buf; a partial payload moves to #payload (§5.2). */
  #parse(): void {
    const buf = this.#buf;
    while (!this.#result && !this.#payload && this.#end - this.#start >= 2) {
      const start = this.#start, b0 = buf[start], b1 = buf[start + 1];
      const available = this.#end - start;
      let length = b1 & 0x7f, head = 2, top = 0;
      if (length === 126) {
        if (available < 4) return;
        [length, head] = [(buf[start + 2] << 8) | buf[start + 3], 4];
      } else if (length === 127) {
        if (available < 10) return;
        top = buf[start + 2]; // its most significant bit must be 0 (§5.2)
        const high = top * 2 ** 24 +
          ((buf[start + 3] << 16) | (buf[start + 4] << 8) | buf[start + 5]);
        const low = ((buf[start + 6] << 24) | (buf[start + 7] << 16) | (buf[start + 8] << 8) |
          buf[start + 9]) >>> 0;
        [length, head] = [high * 2 ** 32 + low, 10]; // exact below 2^53; larger ones fail below
      }
      const opcode = b0 & 0x0f, fin = (b0 & 0x80) !== 0;
      if (
        (b0 & 0x70) !== 0 || (b1 & 0x80) !== 0 || top >= 0x80 ||
        (opcode >= 8 && (length > 125 || !fin)) ||
        (head === 4 && length < 126) || (head === 10 && length < 65536)
      ) return this.#fail(1002, "protocol error");
      // A data frame must fit the message in progress (§5.4), and the message its limits: both
      // are checked before anything is allocated for it.
      const isData = opcode < 8, fragment = isData && (!fin || opcode === 0);
      if (
        (opcode > 2 && opcode < 8) || opcode > 10 ||
        (isData && (opcode === 0) !== (this.#fragOpcode !== 0))
      ) return this.#fail(1002, "unexpected opcode");
      if (isData && length > this.#maxMessage - this.#fragSize) {
        return this.#fail(1009, "message too big");
      }
      if (fragment && ++this.#fragCount > MAX_FRAGMENTS) {
        return this.#fail(1009, "message in too many fragments");
      }
      this.#start = start + head;
      if (this.#end - this.#start >= length) {
        this.#start += length;
        const data = buf.subarray(this.#start - length, this.#start);
        this.#frame(opcode, fin, data, false);
      } else {
        this.#payload = fragment
          ? this.#fragmentSpace(length) // read in place, after the fragments before it
          : this.#payloadBuffer(opcode === 1, length);
        this.#payload.set(buf.subarray(this.#start, this.#end));
        this.#filled = this.#end - this.#start;
        [this.#opcode, this.#fin, this.#start, this.#end] = [opcode, fin, 0, 0];
      }
    }
  }

  /**
   * Room for a payload too big for #buf. A whole text message reuses one buffer: it becomes a
   * string at once, and a fresh buffer per large message costs page faults and garbage
   * collections (~10 % of a 1 MiB echo). Binary data is handed out, so it gets its own.
   */
  #payloadBuffer(text: boolean, length: number): Uint8Array<ArrayBuffer> {
    if (!text || length > REUSE_MAX) return new Uint8Array(length);
    if (this.#spare.length < length) this.#spare = new Uint8Array(length);
    return this.#spare.subarray(0, length);
  }

  /**
   * Room for `length` more bytes of the fragmented message, after those so far: one buffer that
   * grows by doubling, up to the message limit (which the caller checked).
   */
  #fragmentSpace(length: number): Uint8Array<ArrayBuffer> {
    const size = this.#fragSize, need = size + length;
    if (need > this.#fragments.length) {
      const grown = new Uint8Array(
        Math.min(this.#maxMessage, Math.max(need, 2 * this.#fragments.length, 1024)),
      );
      grown.set(this.#fragments.subarray(0, size));
      this.#fragments = grown;
    }
    return this.#fragments.subarray(size, need);
  }

  /**
   * One frame, checked by #parse; `owned` says whether `data` may be kept (else it is a view of
   * #buf, or of #fragments when it was read there in place).
   */
  #frame(opcode: number, fin: boolean, data: Uint8Array, owned: boolean): void {
    if (opcode === 8) return this.#receiveClose(data);
    if (opcode === 9 && !this.#closeSent) {
      this.#out.pong(data); // replaces a pong still waiting (§5.5.3)
      this.#flush();
    }
    if (opcode === 9 || opcode === 10) return;
    if (!fin || opcode === 0) { // §5.4 fragmentation
      this.#fragOpcode ||= opcode;
      if (data.buffer !== this.#fragments.buffer) this.#fragmentSpace(data.length).set(data);
      this.#fragSize += data.length;
      if (!fin) return;
      data = this.#fragments.subarray(0, this.#fragSize);
      [opcode, owned] = [this.#fragOpcode, false];
      [this.#fragOpcode, this.#fragSize, this.#fragCount] = [0, 0, 0];
      if (this.#fragments.length > FRAGMENTS_KEPT) this.#fragments = new Uint8Array(0);
    }
    if (this.#readyState !== 1) return;
    let message: string | ArrayBuffer | Blob;
    if (opcode === 1) {
      try {
        message = decodeText(data);
      } catch {
        return this.#fail(1007, "invalid UTF-8");
      }
    } else if (this.binaryType === "blob") message = new Blob([data.slice()]);
    else if (owned && data.byteLength === data.buffer.byteLength) {
      message = data.buffer as ArrayBuffer;
    } else message = data.slice().buffer;
    this.#emit({ type: "message", data: message });
  }

  #receiveClose(data: Uint8Array): void {
    let code = 1005, reason = "";
    if (data.length === 1) return this.#fail(1002, "close frame of one byte");
    if (data.length >= 2) {
      code = (data[0] << 8) | data[1];
      if (!validCloseCode(code)) {
        return this.#fail(1002, `invalid close code ${code}`);
      }
      try {
        reason = decodeText(data.subarray(2));
      } catch {
        return this.#fail(1007, "invalid UTF-8 in close reason");
      }
    }
    this.#result = { code, reason, failed: false };
    this.#readyState = 2;
    if (!this.#closeSent) this.#sendClose(code === 1005 ? undefined : code, "");
  }

  /** Fails the connection (§7.1.7): sends a close frame with `code`, then drops TCP. */
  #fail(code: number, reason: string): void {
    this.#result ??= { code, reason, failed: true };
    this.#readyState = 2;
    if (!this.#closeSent) this.#sendClose(code, reason);
  }

  #sendClose(code: number | undefined, reason: string): void {
    this.#closeSent = true;
    const text = encoder.encode(reason);
    const body = new Uint8Array(code === undefined ? 0 : 2 + text.length);
    if (code !== undefined) body.set([code >> 8, code & 0xff, ...text]);
    this.#out.bytes(8, body, false);
    this.#flush();
    this.#timer ??= setTimeout(() => this.#closeConn(), CLOSE_TIMEOUT_MS);
  }

  #closeConn(): void {
    if (!this.#conn || this.#connClosed) return;
    this.#connClosed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }

  #flush(): void {
    if (this.#writing) return;
    this.#writing = true;
    this.#pumping = this.#pump();
  }

  /** Writes queued frames in order, one write at a time, small ones together. */
  async #pump(): Promise<void> {
    // Start after the current task's synchronous code, so frames sent together (a
    // notification, then a call) leave in one write: a microtask, not a timer tick.
    await null;
    try {
      for (let bytes = this.#out.next(); bytes && this.#conn; bytes = this.#out.next()) {
        await writeAll(this.#conn, bytes);
        this.#out.written();
        if (this.#resume && this.#out.queued <= MAX_QUEUED_BYTES) this.#wake();
      }
    } catch {
      this.#out.clear();
      this.#closeConn(); // the read loop then ends and reports the close
    } finally {
      this.#writing = false;
      this.#wake();
    }
  }

  /** Lets the read loop read again, if it waits for the outgoing queue to drain. */
  #wake(): void {
    const resume = this.#resume;
    this.#resume = undefined;
    resume?.();
  }
}
