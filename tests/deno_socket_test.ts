/**
 * Tests for the Deno-only no-delay WebSocket client, against real loopback servers: Deno.serve
 * with Deno.upgradeWebSocket, and a raw TCP server for frames Deno.serve never sends.
 *
 * @module
 */
import assert from "node:assert/strict";
import { isNoDelaySupported, NoDelayWebSocket } from "../_socket/no_delay.ts";
import type { WebSocketLikeEvent } from "../transport.ts";

const encoder = new TextEncoder();

/** Records a socket's events in order; `closed` settles with the close event. */
function watch(socket: NoDelayWebSocket): {
  events: string[];
  messages: unknown[];
  opened: Promise<void>;
  closed: Promise<WebSocketLikeEvent>;
  next: () => Promise<unknown>;
} {
  const events: string[] = [];
  const messages: unknown[] = [];
  const waiting: ((data: unknown) => void)[] = [];
  socket.addEventListener("message", (event) => {
    events.push("message");
    const resolve = waiting.shift();
    if (resolve) resolve(event.data);
    else messages.push(event.data);
  });
  socket.addEventListener("error", () => events.push("error"));
  const opened = new Promise<void>((resolve) =>
    socket.addEventListener("open", () => {
      events.push("open");
      resolve();
    })
  );
  const closed = new Promise<WebSocketLikeEvent>((resolve) =>
    socket.addEventListener("close", (event) => {
      events.push("close");
      resolve(event);
    })
  );
  const next = (): Promise<unknown> =>
    messages.length > 0
      ? Promise.resolve(messages.shift())
      : new Promise((resolve) => waiting.push(resolve));
  return { events, messages, opened, closed, next };
}

interface ServerOptions {
  /** The subprotocol to select from the offered ones. */
  protocol?: (offered: string[]) => string | undefined;
  /** Answers the request without upgrading, when it returns a response. */
  reject?: (request: Request) => Response | undefined;
  /** Called with each server-side socket once it opens. */
  opened?: (socket: WebSocket, request: Request) => void;
}

/** An echo server on 127.0.0.1 that ignores text frames starting with "n" (notifications). */
function echoServer(options: ServerOptions = {}): {
  url: string;
  server: Deno.HttpServer<Deno.NetAddr>;
  requests: { url: string; headers: Headers }[]; // copied: a Request closes after upgrade
  serverClosed: Promise<{ code: number; reason: string }>;
} {
  const requests: { url: string; headers: Headers }[] = [];
  let reportClose: (close: { code: number; reason: string }) => void = () => {};
  const serverClosed = new Promise<{ code: number; reason: string }>((r) => reportClose = r);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      requests.push({
        url: request.url,
        headers: new Headers(request.headers),
      });
      const rejected = options.reject?.(request);
      if (rejected) return rejected;
      const offered = (request.headers.get("sec-websocket-protocol") ?? "")
        .split(",").map((p) => p.trim()).filter((p) => p !== "");
      const protocol = options.protocol?.(offered);
      const { socket, response } = Deno.upgradeWebSocket(request, { protocol });
      socket.binaryType = "arraybuffer";
      socket.onopen = () => options.opened?.(socket, request);
      socket.onmessage = (event) => {
        if (typeof event.data !== "string" || !event.data.startsWith("n")) {
          socket.send(event.data);
        }
      };
      socket.onclose = (event) => reportClose({ code: event.code, reason: event.reason });
      return response;
    },
  );
  return {
    url: `ws://127.0.0.1:${server.addr.port}/mist?x=1`,
    server,
    requests,
    serverClosed,
  };
}

/** Closes the client normally and waits for both ends, then stops the server. */
async function finish(
  socket: NoDelayWebSocket,
  closed: Promise<WebSocketLikeEvent>,
  server: Deno.HttpServer,
): Promise<WebSocketLikeEvent> {
  socket.close();
  const event = await closed;
  await server.shutdown();
  return event;
}

Deno.test("isNoDelaySupported is true in Deno", () => {
  assert.equal(isNoDelaySupported(), true);
});

Deno.test("constructor rejects wss:, http: and handshake headers synchronously", () => {
  assert.throws(() => new NoDelayWebSocket("wss://127.0.0.1:1/"), TypeError);
  assert.throws(() => new NoDelayWebSocket("http://127.0.0.1:1/"), TypeError);
  assert.throws(
    () =>
      new NoDelayWebSocket("ws://127.0.0.1:1/", {
        headers: { Upgrade: "h2c" },
      }),
    TypeError,
  );
  assert.throws(
    () =>
      new NoDelayWebSocket("ws://127.0.0.1:1/", {
        headers: { "X-A": "a\r\nB: b" },
      }),
    TypeError,
  );
  assert.throws(
    () => new NoDelayWebSocket("ws://127.0.0.1:1/", { protocols: ["a", "a"] }),
    /subprotocol/,
  );
});

Deno.test("handshake, then text echo of 5 B, 70 KiB (64-bit length) and 1 MiB", async () => {
  const { url, server, requests } = echoServer();
  const socket = new NoDelayWebSocket(url);
  const { events, opened, closed, next } = watch(socket);
  assert.equal(socket.readyState, 0);
  assert.throws(() => socket.send("early"), { name: "InvalidStateError" });
  await opened;
  assert.equal(socket.readyState, 1);
  assert.equal(socket.protocol, "");
  assert.equal(new URL(requests[0].url).pathname, "/mist");
  assert.equal(new URL(requests[0].url).search, "?x=1");
  for (const size of [5, 125, 126, 65535, 65536, 70 * 1024, 1024 * 1024]) {
    const text = "é".repeat(size >> 1) + "x".repeat(size & 1); // multi-byte UTF-8
    socket.send(text);
    assert.equal(await next(), text, `echo of ${size} bytes`);
  }
  for (const text of ["", "a😀é\uFFFD", "x".repeat(200) + "😀".repeat(70_000)]) {
    socket.send(text); // surrogate pairs, a genuine U+FFFD, growth past the 1-byte guess
    assert.equal(await next(), text);
  }
  const event = await finish(socket, closed, server);
  assert.equal(event.code, 1000);
  assert.equal(socket.readyState, 3);
  assert.deepEqual(events.filter((e) => e !== "message"), ["open", "close"]);
});

Deno.test("binary messages arrive as ArrayBuffer (and as Blob by default)", async () => {
  const { url, server } = echoServer();
  const socket = new NoDelayWebSocket(url);
  const { opened, closed, next } = watch(socket);
  await opened;
  assert.equal(socket.binaryType, "blob");
  socket.send(new Uint8Array([1, 2, 3]).buffer);
  const blob = await next();
  assert.ok(blob instanceof Blob);
  assert.deepEqual(
    new Uint8Array(await blob.arrayBuffer()),
    new Uint8Array([1, 2, 3]),
  );
  socket.binaryType = "arraybuffer";
  const big = crypto.getRandomValues(new Uint8Array(65536)); // getRandomValues caps at 64 KiB
  const large = new Uint8Array(1024 * 1024 + 3);
  for (let i = 0; i < 16; i++) large.set(big, i * 65536);
  for (const bytes of [new Uint8Array([0, 255]), large.subarray(1)]) {
    socket.send(bytes);
    const data = await next();
    assert.ok(data instanceof ArrayBuffer);
    assert.deepEqual(new Uint8Array(data), bytes);
  }
  await finish(socket, closed, server);
});

Deno.test("large messages back to back keep their bytes although large buffers are reused", async () => {
  const { url, server } = echoServer();
  const socket = new NoDelayWebSocket(url);
  socket.binaryType = "arraybuffer";
  const { opened, closed, next } = watch(socket);
  await opened;
  // Sent in one turn: the second and third cannot reuse the first's buffer, still unwritten.
  const texts = ["a", "b", "c"].map((letter) => letter.repeat(300_000));
  for (const text of texts) socket.send(text);
  for (const text of texts) assert.equal(await next(), text);
  // A binary message is handed out: a large text arriving after it must not overwrite it.
  const bytes = new Uint8Array(300_000).map((_, i) => i % 251);
  socket.send(bytes);
  const binary = await next();
  socket.send("d".repeat(300_000));
  assert.equal(await next(), "d".repeat(300_000));
  assert.ok(binary instanceof ArrayBuffer);
  const received = new Uint8Array(binary);
  // (Not deepEqual: its diff of 300,000 bytes would take minutes.)
  assert.ok(
    received.length === bytes.length && received.every((byte, i) => byte === bytes[i]),
    "the binary message changed after a later text message arrived",
  );
  await finish(socket, closed, server);
});

Deno.test("headers reach the server and the selected subprotocol is exposed", async () => {
  const { url, server, requests } = echoServer({
    protocol: (offered) => offered.includes("mist.v2") ? "mist.v2" : undefined,
  });
  const socket = new NoDelayWebSocket(url, {
    headers: { "X-Land-Secret": "s3cret" },
    protocols: ["mist.v1", "mist.v2"],
  });
  const { opened, closed } = watch(socket);
  await opened;
  assert.equal(requests[0].headers.get("x-land-secret"), "s3cret");
  assert.equal(
    requests[0].headers.get("sec-websocket-protocol"),
    "mist.v1, mist.v2",
  );
  assert.equal(socket.protocol, "mist.v2");
  await finish(socket, closed, server);
});

Deno.test("a 401 response fires error, then close 1006", async () => {
  const { url, server } = echoServer({
    reject: () => new Response("no", { status: 401 }),
  });
  const socket = new NoDelayWebSocket(url);
  const { events, closed } = watch(socket);
  const event = await closed;
  assert.equal(event.code, 1006);
  assert.equal(socket.readyState, 3);
  assert.deepEqual(events, ["error", "close"]);
  socket.close(); // a no-op once closed
  await server.shutdown();
});

Deno.test("connection refused fires error, then close 1006", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close(); // nothing listens on this port now
  const socket = new NoDelayWebSocket(`ws://127.0.0.1:${port}/`);
  const { events, closed } = watch(socket);
  assert.equal((await closed).code, 1006);
  assert.deepEqual(events, ["error", "close"]);
});

Deno.test("server-initiated close delivers code 4001 and its reason", async () => {
  const { url, server, serverClosed } = echoServer({
    opened: (socket) => socket.close(4001, "bye now"),
  });
  const socket = new NoDelayWebSocket(url);
  const { events, closed } = watch(socket);
  const event = await closed;
  assert.equal(event.code, 4001);
  assert.equal(event.reason, "bye now");
  assert.deepEqual(events, ["open", "close"]);
  assert.equal((await serverClosed).code, 4001); // the client echoed the code
  await server.shutdown();
});

Deno.test("client close reaches the server with its code and reason", async () => {
  const { url, server, serverClosed } = echoServer();
  const socket = new NoDelayWebSocket(url);
  const { opened, closed } = watch(socket);
  await opened;
  assert.throws(() => socket.close(1001), { name: "InvalidAccessError" });
  assert.throws(() => socket.close(4000, "x".repeat(124)), {
    name: "SyntaxError",
  });
  socket.close(4002, "client done");
  assert.equal(socket.readyState, 2);
  socket.send("ignored while closing");
  assert.deepEqual(await serverClosed, { code: 4002, reason: "client done" });
  const event = await closed;
  assert.equal(event.code, 4002);
  assert.equal(socket.readyState, 3);
  await server.shutdown();
});

Deno.test("close while connecting fires error, then close 1006", async () => {
  const { url, server } = echoServer();
  const socket = new NoDelayWebSocket(url);
  const { events, closed } = watch(socket);
  socket.close();
  assert.equal(socket.readyState, 2);
  assert.equal((await closed).code, 1006);
  assert.deepEqual(events, ["error", "close"]);
  await server.shutdown();
});

Deno.test("bufferedAmount counts queued payload bytes and returns to 0", async () => {
  const { url, server } = echoServer();
  const socket = new NoDelayWebSocket(url);
  const { opened, closed, next } = watch(socket);
  await opened;
  assert.equal(socket.bufferedAmount, 0);
  const text = "x".repeat(4 * 1024 * 1024);
  socket.send(text);
  socket.send("after");
  assert.ok(socket.bufferedAmount > 0);
  assert.ok(socket.bufferedAmount <= text.length + 5);
  assert.equal(await next(), text);
  assert.equal(await next(), "after");
  assert.equal(socket.bufferedAmount, 0);
  await finish(socket, closed, server);
});

Deno.test("connects to [::1] when IPv6 loopback is available", async (t) => {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
  } catch {
    await t.step({ name: "IPv6 loopback unavailable", ignore: true, fn() {} });
    return;
  }
  const server = Deno.serve(
    { hostname: "::1", port: 0, onListen() {} },
    (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.onmessage = (event) => socket.send(event.data);
      return response;
    },
  );
  const socket = new NoDelayWebSocket(`ws://[::1]:${server.addr.port}/`);
  const { opened, closed, next } = watch(socket);
  await opened;
  socket.send("over IPv6");
  assert.equal(await next(), "over IPv6");
  await finish(socket, closed, server);
});

Deno.test("TCP no-delay is set before the handshake, so a notification cannot hold back a call", async () => {
  const connect = Deno.connect;
  const log: string[] = [];
  Deno.connect = (async (options: Deno.ConnectOptions) => {
    const conn = await connect(options);
    const setNoDelay = conn.setNoDelay.bind(conn);
    const write = conn.write.bind(conn);
    conn.setNoDelay = (noDelay?: boolean) => {
      log.push(`setNoDelay(${noDelay})`);
      setNoDelay(noDelay);
    };
    conn.write = (bytes: Uint8Array) => {
      if (log.at(-1) !== "write") log.push("write");
      return write(bytes);
    };
    return conn;
  }) as typeof Deno.connect;
  const { url, server } = echoServer();
  try {
    const socket = new NoDelayWebSocket(url);
    const { opened, closed, next } = watch(socket);
    await opened;
    assert.deepEqual(log, ["setNoDelay(true)", "write"]); // before the handshake request
    for (let i = 0; i < 3; i++) { // the case Nagle delays: unanswered frame, then a call
      socket.send(`n${i}`);
      socket.send(`r${i}`);
      assert.equal(await next(), `r${i}`);
    }
    await finish(socket, closed, server);
  } finally {
    Deno.connect = connect;
  }
});

// Raw server: frames that Deno.serve never sends.

/** Reads exact byte counts from a connection. */
class Reader {
  #conn: Deno.Conn;
  #buffered = new Uint8Array(0);
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }
  async bytes(count: number): Promise<Uint8Array> {
    while (this.#buffered.length < count) { // each read adds a byte or throws
      const chunk = new Uint8Array(65536);
      const read = await this.#conn.read(chunk);
      if (read === null) throw new Error("connection ended");
      const next = new Uint8Array(this.#buffered.length + read);
      next.set(this.#buffered);
      next.set(chunk.subarray(0, read), this.#buffered.length);
      this.#buffered = next;
    }
    const out = this.#buffered.slice(0, count);
    this.#buffered = this.#buffered.slice(count);
    return out;
  }
  async head(): Promise<string> {
    let text = "";
    while (!text.endsWith("\r\n\r\n")) { // bounded by the 8 KiB check
      text += String.fromCharCode((await this.bytes(1))[0]);
      if (text.length > 8192) throw new Error("head too long");
    }
    return text;
  }
  /** One client frame, unmasked; asserts that it was masked. */
  async frame(): Promise<{ opcode: number; payload: Uint8Array }> {
    const [b0, b1] = await this.bytes(2);
    assert.equal(b1 & 0x80, 0x80, "client frames are masked");
    let length = b1 & 0x7f;
    if (length === 126) {
      length = new DataView((await this.bytes(2)).buffer).getUint16(0);
    } else if (length === 127) {
      length = Number(
        new DataView((await this.bytes(8)).buffer).getBigUint64(0),
      );
    }
    const mask = await this.bytes(4);
    const payload = await this.bytes(length);
    for (let i = 0; i < length; i++) payload[i] ^= mask[i & 3];
    return { opcode: b0 & 0x0f, payload };
  }
}

/** An unmasked server frame. */
function serverFrame(
  opcode: number,
  payload: Uint8Array | string,
  fin = true,
): Uint8Array {
  const body = typeof payload === "string" ? encoder.encode(payload) : payload;
  assert.ok(body.length < 126);
  return new Uint8Array([(fin ? 0x80 : 0) | opcode, body.length, ...body]);
}

async function acceptFor(key: string): Promise<string> {
  const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  const digest = await crypto.subtle.digest(
    "SHA-1",
    encoder.encode(key + GUID),
  );
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/** A one-connection TCP server that answers the handshake (unless told otherwise) and runs `script`. */
function rawServer(
  script: (conn: Deno.Conn, reader: Reader) => Promise<void>,
  response?: (accept: string) => string,
  sameWrite: Uint8Array = new Uint8Array(0), // frames sent in the response's own write
): { url: string; done: Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    const conn = await listener.accept();
    listener.close();
    try {
      const reader = new Reader(conn);
      const head = await reader.head();
      const key = /sec-websocket-key: (\S+)/i.exec(head)?.[1] ?? "";
      const accept = await acceptFor(key);
      const reply = encoder.encode(
        response?.(accept) ??
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
            `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
      );
      await conn.write(new Uint8Array([...reply, ...sameWrite]));
      await script(conn, reader);
    } finally {
      conn.close();
    }
  })();
  return { url: `ws://127.0.0.1:${listener.addr.port}/`, done };
}

Deno.test("fragments are reassembled, pings answered with the same payload, close without code is 1005", async () => {
  const { url, done } = rawServer(async (conn, reader) => {
    await conn.write(
      new Uint8Array([
        ...serverFrame(1, "Hé", false),
        ...serverFrame(9, "ping!"),
        ...serverFrame(0, new Uint8Array([0xc3]), false), // splits a UTF-8 sequence
        ...serverFrame(0, new Uint8Array([0xa9, 0x21])),
        ...serverFrame(10, "unsolicited pong"),
      ]),
    );
    const pong = await reader.frame();
    assert.equal(pong.opcode, 10);
    assert.equal(new TextDecoder().decode(pong.payload), "ping!");
    await conn.write(serverFrame(8, new Uint8Array(0)));
    const close = await reader.frame();
    assert.deepEqual(close, { opcode: 8, payload: new Uint8Array(0) });
  });
  const socket = new NoDelayWebSocket(url);
  const { events, closed, next } = watch(socket);
  assert.equal(await next(), "Héé!");
  const event = await closed;
  assert.equal(event.code, 1005);
  assert.deepEqual(events, ["open", "message", "close"]);
  await done;
});

Deno.test("invalid UTF-8 fails the connection with 1007", async () => {
  const { url, done } = rawServer(async (conn, reader) => {
    await conn.write(serverFrame(1, new Uint8Array([0x61, 0xff])));
    const close = await reader.frame();
    assert.equal(close.opcode, 8);
    assert.equal((close.payload[0] << 8) | close.payload[1], 1007);
  });
  const socket = new NoDelayWebSocket(url);
  const { events, closed } = watch(socket);
  assert.equal((await closed).code, 1007);
  assert.deepEqual(events, ["open", "error", "close"]);
  await done;
});

Deno.test("a masked server frame fails the connection with 1002", async () => {
  const { url, done } = rawServer(async (conn, reader) => {
    await conn.write(new Uint8Array([0x81, 0x81, 1, 2, 3, 4, 0x61]));
    const close = await reader.frame();
    assert.equal((close.payload[0] << 8) | close.payload[1], 1002);
  });
  const socket = new NoDelayWebSocket(url);
  const { events, closed } = watch(socket);
  assert.equal((await closed).code, 1002);
  assert.deepEqual(events, ["open", "error", "close"]);
  await done;
});

Deno.test("a wrong Sec-WebSocket-Accept or an unoffered protocol fails the handshake", async () => {
  for (
    const response of [
      () =>
        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n",
      (accept: string) =>
        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: other\r\n\r\n`,
    ]
  ) {
    const { url, done } = rawServer(async (_conn, reader) => {
      await reader.bytes(1).catch(() => {}); // until the client hangs up
    }, response);
    const socket = new NoDelayWebSocket(url, { protocols: ["mist.v1"] });
    const { events, closed } = watch(socket);
    assert.equal((await closed).code, 1006);
    assert.deepEqual(events, ["error", "close"]);
    await done;
  }
});

Deno.test("an abrupt TCP end closes with 1006 and no error", async () => {
  const { url, done } = rawServer(
    () => Promise.resolve(), // then hangs up
    undefined,
    new Uint8Array([...serverFrame(1, "last"), ...serverFrame(1, "words")]),
  );
  const socket = new NoDelayWebSocket(url);
  const { events, closed, next } = watch(socket);
  assert.equal(await next(), "last"); // frames that came with the handshake response
  assert.equal(await next(), "words");
  assert.equal((await closed).code, 1006);
  assert.deepEqual(events, ["open", "message", "message", "close"]);
  await done;
});

Deno.test("close gives up on a silent server after about 2 s with 1006", async () => {
  const { url, done } = rawServer(async (_conn, reader) => {
    assert.equal((await reader.frame()).opcode, 8); // never answers it
    await reader.bytes(1).catch(() => {}); // until the client hangs up
  });
  const socket = new NoDelayWebSocket(url);
  const { opened, closed } = watch(socket);
  await opened;
  socket.close(1000, "bye");
  assert.equal((await closed).code, 1006);
  await done;
});
