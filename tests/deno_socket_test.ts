/**
 * Tests for the Deno-only no-delay WebSocket client, against real loopback servers: Deno.serve
 * with Deno.upgradeWebSocket, and a raw TCP server for frames Deno.serve never sends.
 *
 * @module
 */
import assert from "node:assert/strict";
import { isNoDelaySupported, NoDelayWebSocket } from "../_socket/no_delay.ts";
import { hostileServer, serverFrame, upgradeHead, watch, writeAll } from "./_hostile_server.ts";
import { freePort, replaced } from "./_helpers.ts";

const encoder = new TextEncoder();

interface ServerOptions {
  /** The subprotocol to select from the offered ones. */
  protocol?: (offered: string[]) => string | undefined;
  /** Answers the request without upgrading, when it returns a response. */
  reject?: (request: Request) => Response | undefined;
  /** Called with each server-side socket once it opens. */
  opened?: (socket: WebSocket, request: Request) => void;
}

/**
 * An echo server on 127.0.0.1 that ignores text frames starting with "n" (notifications).
 * `await using server = echoServer()` shuts it down.
 */
function echoServer(options: ServerOptions = {}): {
  url: string;
  requests: { url: string; headers: Headers }[]; // copied: a Request closes after upgrade
  serverClosed: Promise<{ code: number; reason: string }>;
} & AsyncDisposable {
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
    requests,
    serverClosed,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test("isNoDelaySupported() returns true in Deno", () => {
  assert.equal(isNoDelaySupported(), true);
});

Deno.test("NoDelayWebSocket() throws for wss:, http: and handshake headers, synchronously", () => {
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

Deno.test("NoDelayWebSocket opens, then sends and receives text of 5 B, 70 KiB (64-bit length) and 1 MiB", async () => {
  await using server = echoServer();
  const { url, requests } = server;
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { events, opened, closed, next } = watched;
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
  socket.close();
  const event = await closed;
  assert.equal(event.code, 1000);
  assert.equal(socket.readyState, 3);
  assert.deepEqual(events.filter((e) => e !== "message"), ["open", "close"]);
});

Deno.test("NoDelayWebSocket delivers binary messages as ArrayBuffer (and as Blob by default)", async () => {
  await using server = echoServer();
  const { url } = server;
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { opened, closed, next } = watched;
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
  socket.close();
  await closed;
});

Deno.test("NoDelayWebSocket keeps the bytes of large messages back to back although it reuses large buffers", async () => {
  await using server = echoServer();
  const { url } = server;
  const socket = new NoDelayWebSocket(url);
  socket.binaryType = "arraybuffer";
  await using watched = watch(socket);
  const { opened, closed, next } = watched;
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
  socket.close();
  await closed;
});

Deno.test("NoDelayWebSocket sends its headers and exposes the selected subprotocol", async () => {
  await using server = echoServer({
    protocol: (offered) => offered.includes("mist.v2") ? "mist.v2" : undefined,
  });
  const { url, requests } = server;
  const socket = new NoDelayWebSocket(url, {
    headers: { "X-Land-Secret": "s3cret" },
    protocols: ["mist.v1", "mist.v2"],
  });
  await using watched = watch(socket);
  const { opened, closed } = watched;
  await opened;
  assert.equal(requests[0].headers.get("x-land-secret"), "s3cret");
  assert.equal(
    requests[0].headers.get("sec-websocket-protocol"),
    "mist.v1, mist.v2",
  );
  assert.equal(socket.protocol, "mist.v2");
  socket.close();
  await closed;
});

Deno.test("NoDelayWebSocket fires error, then close 1006, on a 401 response", async () => {
  await using server = echoServer({
    reject: () => new Response("no", { status: 401 }),
  });
  const { url } = server;
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { events, closed } = watched;
  const event = await closed;
  assert.equal(event.code, 1006);
  assert.equal(socket.readyState, 3);
  assert.deepEqual(events, ["error", "close"]);
  socket.close(); // a no-op once closed
});

Deno.test("NoDelayWebSocket fires error, then close 1006, when the connection is refused", async () => {
  const port = freePort(); // nothing listens on this port now
  const socket = new NoDelayWebSocket(`ws://127.0.0.1:${port}/`);
  await using watched = watch(socket);
  const { events, closed } = watched;
  assert.equal((await closed).code, 1006);
  assert.deepEqual(events, ["error", "close"]);
});

Deno.test("NoDelayWebSocket reports a server's close with code 4001 and its reason", async () => {
  await using server = echoServer({
    opened: (socket) => socket.close(4001, "bye now"),
  });
  const { url, serverClosed } = server;
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { events, closed } = watched;
  const event = await closed;
  assert.equal(event.code, 4001);
  assert.equal(event.reason, "bye now");
  assert.deepEqual(events, ["open", "close"]);
  assert.equal((await serverClosed).code, 4001); // the client echoed the code
});

Deno.test("NoDelayWebSocket.close() reaches the server with its code and reason", async () => {
  await using server = echoServer();
  const { url, serverClosed } = server;
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { opened, closed } = watched;
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
});

Deno.test("NoDelayWebSocket.close() while connecting fires error, then close 1006", async () => {
  await using server = echoServer();
  const { url } = server;
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { events, closed } = watched;
  socket.close();
  assert.equal(socket.readyState, 2);
  assert.equal((await closed).code, 1006);
  assert.deepEqual(events, ["error", "close"]);
});

Deno.test("NoDelayWebSocket.bufferedAmount counts queued payload bytes and returns to 0", async () => {
  await using server = echoServer();
  const { url } = server;
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { opened, closed, next } = watched;
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
  socket.close();
  await closed;
});

Deno.test("NoDelayWebSocket connects to [::1] when IPv6 loopback is available", async (t) => {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
  } catch {
    await t.step({ name: "IPv6 loopback unavailable", ignore: true, fn() {} });
    return;
  }
  await using server = Deno.serve(
    { hostname: "::1", port: 0, onListen() {} },
    (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.onmessage = (event) => socket.send(event.data);
      return response;
    },
  );
  const socket = new NoDelayWebSocket(`ws://[::1]:${server.addr.port}/`);
  await using watched = watch(socket);
  const { opened, closed, next } = watched;
  await opened;
  socket.send("over IPv6");
  assert.equal(await next(), "over IPv6");
  socket.close();
  await closed;
});

Deno.test("NoDelayWebSocket sets TCP no-delay before the handshake, so a notification cannot hold back a call", async () => {
  const connect = Deno.connect;
  const log: string[] = [];
  using _connect = replaced(
    Deno,
    "connect",
    (async (options: Deno.ConnectOptions) => {
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
    }) as typeof Deno.connect,
  );
  await using server = echoServer();
  const { url } = server;
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { opened, closed, next } = watched;
  await opened;
  assert.deepEqual(log, ["setNoDelay(true)", "write"]); // before the handshake request
  for (let i = 0; i < 3; i++) { // the case Nagle delays: unanswered frame, then a call
    socket.send(`n${i}`);
    socket.send(`r${i}`);
    assert.equal(await next(), `r${i}`);
  }
  socket.close();
  await closed;
});

// Raw server: frames that Deno.serve never sends.

Deno.test("NoDelayWebSocket reassembles fragments, answers pings with their payload, and reports a close without code as 1005", async () => {
  await using server = hostileServer(async (conn, reader) => {
    await writeAll(
      conn,
      new Uint8Array([
        ...serverFrame(1, "Hé", { fin: false }),
        ...serverFrame(9, "ping!"),
        ...serverFrame(0, new Uint8Array([0xc3]), { fin: false }), // splits a UTF-8 sequence
        ...serverFrame(0, new Uint8Array([0xa9, 0x21])),
        ...serverFrame(10, "unsolicited pong"),
      ]),
    );
    const pong = await reader.frame();
    assert.equal(pong.opcode, 10);
    assert.equal(new TextDecoder().decode(pong.payload), "ping!");
    await writeAll(conn, serverFrame(8, new Uint8Array(0)));
    const close = await reader.frame();
    assert.deepEqual(close, { fin: true, opcode: 8, payload: new Uint8Array(0) });
  });
  const { url, done } = server;
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { events, closed, next } = watched;
  assert.equal(await next(), "Héé!");
  const event = await closed;
  assert.equal(event.code, 1005);
  assert.deepEqual(events, ["open", "message", "close"]);
  await done;
});

Deno.test("NoDelayWebSocket fails the connection with 1007 on invalid UTF-8", async () => {
  await using server = hostileServer(async (conn, reader) => {
    await writeAll(conn, serverFrame(1, new Uint8Array([0x61, 0xff])));
    const close = await reader.frame();
    assert.equal(close.opcode, 8);
    assert.equal((close.payload[0] << 8) | close.payload[1], 1007);
  });
  const { url, done } = server;
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { events, closed } = watched;
  assert.equal((await closed).code, 1007);
  assert.deepEqual(events, ["open", "error", "close"]);
  await done;
});

Deno.test("NoDelayWebSocket fails the connection with 1002 on a masked server frame", async () => {
  await using server = hostileServer(async (conn, reader) => {
    await writeAll(conn, new Uint8Array([0x81, 0x81, 1, 2, 3, 4, 0x61]));
    const close = await reader.frame();
    assert.equal((close.payload[0] << 8) | close.payload[1], 1002);
  });
  const { url, done } = server;
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { events, closed } = watched;
  assert.equal((await closed).code, 1002);
  assert.deepEqual(events, ["open", "error", "close"]);
  await done;
});

Deno.test("NoDelayWebSocket fails the handshake on a wrong Sec-WebSocket-Accept or an unoffered protocol", async () => {
  for (
    const response of [
      () =>
        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n",
      (accept: string) =>
        "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: other\r\n\r\n`,
    ]
  ) {
    await using server = hostileServer(async (_conn, reader) => {
      await reader.bytes(1).catch(() => {}); // until the client hangs up
    }, response);
    const { url, done } = server;
    const socket = new NoDelayWebSocket(url, { protocols: ["mist.v1"] });
    await using watched = watch(socket);
    const { events, closed } = watched;
    assert.equal((await closed).code, 1006);
    assert.deepEqual(events, ["error", "close"]);
    await done;
  }
});

Deno.test("NoDelayWebSocket closes with 1006 and no error when TCP ends abruptly", async () => {
  await using server = hostileServer(
    () => Promise.resolve(), // then hangs up
    // Frames in the same write as the handshake response.
    (accept) =>
      new Uint8Array([
        ...encoder.encode(upgradeHead(accept)),
        ...serverFrame(1, "last"),
        ...serverFrame(1, "words"),
      ]),
  );
  const { url, done } = server;
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { events, closed, next } = watched;
  assert.equal(await next(), "last"); // frames that came with the handshake response
  assert.equal(await next(), "words");
  assert.equal((await closed).code, 1006);
  assert.deepEqual(events, ["open", "message", "message", "close"]);
  await done;
});

Deno.test("NoDelayWebSocket.close() gives up on a silent server after about 2 s with 1006", async () => {
  await using server = hostileServer(async (_conn, reader) => {
    assert.equal((await reader.frame()).opcode, 8); // never answers it
    await reader.bytes(1).catch(() => {}); // until the client hangs up
  });
  const { url, done } = server;
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { opened, closed } = watched;
  await opened;
  socket.close(1000, "bye");
  assert.equal((await closed).code, 1006);
  await done;
});
