/**
 * The Node face (`server_node.ts`) under the machine's Node: the fixture `fixtures/node_server.ts`
 * (demo methods, bundled by `tools/build_node.ts`) in a child process, driven over real loopback
 * sockets from here: refusals before the upgrade, the message limit, the idle check (ping
 * frames for a seed client, `$/ping` for a Mist client), the mutual proof with Mist's Deno
 * client, a bounded shutdown, and what happens when accepting fails.
 *
 * @module
 */
import assert from "node:assert/strict";
import { SECRET_HEADER, VERSION_HEADER } from "../_auth.ts";
import type { Client } from "../client.ts";
import { DisconnectedError } from "../errors.ts";
import { SharedSecret } from "../secret.ts";
import { SHUTDOWN_MARGIN_MS } from "../_serve_core.ts";
import { PING_CLOSE_REASON } from "../_node_ws.ts";
import { encodeFrame } from "../_socket/frame.ts";
import {
  connectTo,
  deferred,
  rawUpgrade,
  ScriptedPeer,
  upgradeRequest,
  within,
} from "./_helpers.ts";
import { type NodeServer, startNodeServer } from "./fixtures/node_harness.ts";

/** The fixture's idle timeout in the idle tests: ping after 300–600 ms of silence. */
const IDLE_MS = 600;

/**
 * Stops the fixture (SIGTERM) and checks that it exited 0 by itself with nothing uncaught on
 * stderr. (`await using` stops it too, unchecked, when a test fails first.)
 */
async function stopCleanly(server: NodeServer): Promise<void> {
  const exit = await server.stop();
  assert.equal(exit.code, 0, `the Node server did not exit 0 after SIGTERM:\n${exit.stderr}`);
  // Log lines may quote a handler's error; anything else on stderr is a crash.
  const unlogged = exit.stderr.split("\n").filter((line) =>
    !/^(DEBUG|INFO|WARN|ERROR) /.test(line)
  );
  assert.doesNotMatch(unlogged.join("\n"), /Uncaught|Error: |at .*\.mjs:/);
}

/** A client of the fixture, with its secret unless another is given. */
function connect(server: NodeServer, secret = server.secretHex): Client {
  return connectTo(server.url, secret);
}

function logged(server: NodeServer, level: string, pattern: RegExp): string[] {
  return server.seen("log")
    .filter((event) => event.level === level && pattern.test(String(event.message)))
    .map((event) => String(event.message));
}

// ---------------------------------------------------------------------------------------------
// A raw WebSocket client: exact handshakes, and every frame the server sends (pings included)

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface RawFrame {
  opcode: number;
  payload: Uint8Array;
}

/**
 * One raw TCP connection speaking just enough WebSocket to see frames the APIs hide.
 * `using raw = await RawSocket.open(…)` closes it when the test ends.
 */
class RawSocket implements Disposable {
  readonly #conn: Deno.Conn;
  #buffer = new Uint8Array(0);
  #pending: Promise<Uint8Array | null> | undefined;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Connects and upgrades; fails unless the answer is 101. */
  static async open(port: number, headers: Record<string, string>): Promise<RawSocket> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const socket = new RawSocket(conn);
    try {
      await socket.#write(encoder.encode(upgradeRequest(port, headers)));
      const head = await within(socket.#head(), "the upgrade response");
      assert.match(head, /^HTTP\/1\.1 101 /, head);
      return socket;
    } catch (error) {
      socket.close();
      throw error;
    }
  }

  /** The next frame, `"eof"` when the server ended the connection, `"timeout"` after `ms`. */
  async frame(ms: number): Promise<RawFrame | "eof" | "timeout"> {
    const deadline = Date.now() + ms;
    while (true) {
      const frame = this.#parse();
      if (frame) return frame;
      const left = deadline - Date.now();
      if (left <= 0) return "timeout";
      const chunk = await this.#read(left);
      if (chunk === "timeout") return "timeout";
      if (chunk === null) return "eof";
      this.#append(chunk);
    }
  }

  /** Sends one masked text frame. */
  sendText(text: string): Promise<void> {
    return this.#write(encodeFrame(0x1, text));
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Closed already.
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async #head(): Promise<string> {
    while (true) {
      const text = new TextDecoder("latin1").decode(this.#buffer);
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        this.#buffer = this.#buffer.slice(end + 4);
        return text.slice(0, end);
      }
      const chunk = await this.#read(15_000);
      if (chunk === null || chunk === "timeout") throw new Error(`No response head: ${text}`);
      this.#append(chunk);
    }
  }

  /** A read that outlives a timeout: the next call picks it up. */
  async #read(ms: number): Promise<Uint8Array | null | "timeout"> {
    this.#pending ??= (async () => {
      const buffer = new Uint8Array(65536);
      try {
        const n = await this.#conn.read(buffer);
        return n === null ? null : buffer.slice(0, n);
      } catch {
        return null;
      }
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const result = await Promise.race([
      this.#pending,
      new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), ms)),
    ]);
    clearTimeout(timer);
    if (result !== "timeout") this.#pending = undefined;
    return result;
  }

  #append(chunk: Uint8Array): void {
    const joined = new Uint8Array(this.#buffer.length + chunk.length);
    joined.set(this.#buffer);
    joined.set(chunk, this.#buffer.length);
    this.#buffer = joined;
  }

  /** A whole unmasked server frame off the buffer, if there is one. */
  #parse(): RawFrame | undefined {
    const b = this.#buffer;
    if (b.length < 2) return undefined;
    let length = b[1] & 0x7f;
    let at = 2;
    if (length === 126) {
      if (b.length < 4) return undefined;
      length = (b[2] << 8) | b[3];
      at = 4;
    } else if (length === 127) {
      if (b.length < 10) return undefined;
      length = Number(new DataView(b.buffer, b.byteOffset + 2, 8).getBigUint64(0));
      at = 10;
    }
    if (b.length < at + length) return undefined;
    const frame = { opcode: b[0] & 0x0f, payload: b.slice(at, at + length) };
    this.#buffer = b.slice(at + length);
    return frame;
  }

  async #write(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.length) written += await this.#conn.write(bytes.subarray(written));
  }
}

/** A close frame's code and reason. */
function closeOf(frame: RawFrame): { code: number; reason: string } {
  const view = new DataView(frame.payload.buffer, frame.payload.byteOffset);
  return {
    code: frame.payload.length >= 2 ? view.getUint16(0) : 1005,
    reason: decoder.decode(frame.payload.subarray(2)),
  };
}

/** The whole response to a raw request head, read until the server ends the connection. */
async function rawExchange(port: number, head: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(encoder.encode(head));
    let text = "";
    const buffer = new Uint8Array(4096);
    const readAll = async () => {
      for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
        text += decoder.decode(buffer.subarray(0, n));
      }
    };
    await within(readAll().catch(() => {}), "the server to end the connection");
    return text;
  } finally {
    conn.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Before the upgrade

Deno.test("serveLocal() under Node refuses before upgrading with 426, 403, 401, 400 and 503, like Deno's", async () => {
  await using server = await startNodeServer({ maxConnections: 1 });
  const { port, secretHex } = server;
  const secret = { [SECRET_HEADER]: secretHex };

  const plain = await fetch(`http://127.0.0.1:${port}/`);
  assert.equal(plain.status, 426);
  assert.equal(plain.headers.get("connection"), "close");
  assert.equal(await plain.text(), "WebSocket upgrade required\n");

  assert.equal((await rawUpgrade(port, { ...secret, Host: "evil.example" })).status, 403);
  const origin = await rawUpgrade(port, { ...secret, Origin: "https://evil.example" });
  assert.equal(origin.status, 403);
  assert.equal((await rawUpgrade(port, { [SECRET_HEADER]: "ab".repeat(32) })).status, 401);
  // `ws` refuses what it cannot upgrade; the face answers and logs it as Deno's does.
  assert.equal((await rawUpgrade(port, { ...secret, "Sec-WebSocket-Key": null })).status, 400);
  // Not an upgrade for Node without `Connection: upgrade`: a request passing every check.
  assert.equal((await rawUpgrade(port, { ...secret, Connection: "keep-alive" })).status, 400);

  // The whole refusal: status line, Connection: close, text body, then the server hangs up.
  const refusal = await rawExchange(port, upgradeRequest(port));
  assert.match(refusal, /^HTTP\/1\.1 401 Unauthorized\r\n/);
  assert.match(refusal, /\r\nconnection: close\r\n/i);
  assert.match(refusal, /\r\ncontent-type: text\/plain\r\n/i);
  assert.match(refusal, /\r\n\r\nMissing or wrong secret\n$/);

  {
    await using client = connect(server);
    assert.deepEqual(await client.call("echo", ["one"]), ["one"]);
    assert.equal((await rawUpgrade(port, secret)).status, 503, "beyond maxConnections");
  }
  const refused = logged(server, "info", /^Refused /).join("\n");
  for (const status of ["426", "403", "401", "400", "503"]) {
    assert.match(refused, new RegExp(`^Refused 127\\.0\\.0\\.1:\\d+: ${status} `, "m"));
  }
  assert.ok(!refused.includes(secretHex), "the secret in the log");
  await stopCleanly(server);
});

Deno.test("serveLocal() under Node selects mist.v1 for a browser-style client offering the secret as a protocol", async () => {
  await using server = await startNodeServer();
  {
    await using socket = await within(
      ScriptedPeer.connect(server.url, undefined, { protocols: [server.secretHex, "mist.v1"] }),
      "the socket to open",
    );
    assert.equal(socket.socket.protocol, "mist.v1");
  }
  await stopCleanly(server);
});

// ---------------------------------------------------------------------------------------------
// Connections

Deno.test("serveLocal() under Node accepts Mist's Deno client by the mutual proof, calls it back, and refuses a wrong secret", async () => {
  await using server = await startNodeServer();
  {
    await using client = connect(server); // auth "proof" by default: X-Mist-Proof, then $/challenge
    client.registry.register("greet", ([who]) => `Hello ${who}`);
    assert.deepEqual(await client.call("echo", ["proved"]), ["proved"]);
    assert.equal(await client.call("callback", ["greet", ["Node"]]), "Hello Node");
  }
  {
    await using wrong = connect(server, SharedSecret.generate().toHex());
    await assert.rejects(within(wrong.opened({ timeoutMs: 5000 }), "the refusal"));
  }
  assert.equal(logged(server, "info", /: 401 Wrong proof$/).length, 1);
  await stopCleanly(server);
});

Deno.test("serveLocal() under Node closes with 1009 a connection that sends a message over maxMessageBytes", async () => {
  await using server = await startNodeServer({ maxMessageBytes: 1024 });
  {
    await using client = connect(server);
    assert.deepEqual(await client.call("echo", ["x".repeat(900)]), ["x".repeat(900)]);
    await assert.rejects(client.call("echo", ["x".repeat(2048)]), (error: unknown) => {
      assert.ok(error instanceof DisconnectedError);
      assert.equal(error.closeCode, 1009);
      return true;
    });
  }
  const warned = (event: Record<string, unknown>) =>
    event.level === "warn" && /message over 1024 bytes \(maxMessageBytes\)/.test(
      String(event.message),
    );
  assert.ok(await server.events.next(warned, 5000), "no warning logged");
  await stopCleanly(server);
});

Deno.test("serveLocal() under Node sends a silent seed client ping frames, then 1001, and a Mist client $/ping", async (t) => {
  await using server = await startNodeServer({ idleTimeoutMs: IDLE_MS });
  await t.step("a seed client that never answers: one ping frame, then a close 1001", async () => {
    using raw = await RawSocket.open(server.port, { [SECRET_HEADER]: server.secretHex });
    const started = Date.now();
    const ping = await raw.frame(2 * IDLE_MS);
    assert.ok(ping !== "eof" && ping !== "timeout", `no ping frame: ${ping}`);
    assert.equal(ping.opcode, 0x9, "a ping frame");
    const close = await raw.frame(2 * IDLE_MS);
    assert.ok(close !== "eof" && close !== "timeout", `no close frame: ${close}`);
    assert.equal(close.opcode, 0x8);
    assert.deepEqual(closeOf(close), { code: 1001, reason: PING_CLOSE_REASON });
    const silentMs = Date.now() - started;
    assert.ok(silentMs >= IDLE_MS - 50 && silentMs <= 1.5 * IDLE_MS + 400, `${silentMs} ms`);
  });

  await t.step("a seed client whose stack answers pings stays past the timeout", async () => {
    // No mist.v1: a seed client.
    await using socket = await within(
      ScriptedPeer.connect(server.url, undefined, { protocols: [server.secretHex] }),
      "the socket to open",
    );
    const closes: number[] = [];
    socket.closed.then(({ code }) => closes.push(code));
    await new Promise((resolve) => setTimeout(resolve, 2.5 * IDLE_MS));
    assert.deepEqual(closes, [], "closed while answering pings");
  });

  await t.step("a client that said $/hello is asked $/ping, never sent a ping frame", async () => {
    using raw = await RawSocket.open(server.port, {
      [SECRET_HEADER]: server.secretHex,
      [VERSION_HEADER]: "2",
    });
    await raw.sendText('{"id":"hello","method":"$/hello","params":{"version":2}}');
    const reply = await raw.frame(2000);
    assert.ok(reply !== "eof" && reply !== "timeout" && reply.opcode === 0x1);
    assert.match(decoder.decode(reply.payload), /"id":"hello"/);
    const next = await raw.frame(2 * IDLE_MS);
    assert.ok(next !== "eof" && next !== "timeout", `nothing after the hello: ${next}`);
    assert.equal(next.opcode, 0x1, `a text frame, not opcode ${next.opcode}`);
    assert.equal(JSON.parse(decoder.decode(next.payload)).method, "$/ping");
  });
  await stopCleanly(server);
});

// ---------------------------------------------------------------------------------------------
// Shutdown

Deno.test("LocalServer.shutdown() under Node ends within the grace period plus the margin whatever clients do", async () => {
  const GRACE_MS = 300;
  await using server = await startNodeServer({ shutdownGraceMs: GRACE_MS });
  {
    await using client = connect(server);
    const entered = deferred();
    client.registry.register("hold", () => { // never answers: the server's handler waits on it
      entered.resolve();
      return new Promise(() => {});
    });
    // A seed client that never reads: it will not answer the close frame either.
    using _raw = await RawSocket.open(server.port, { [SECRET_HEADER]: server.secretHex });
    const held = client.call("callback", ["hold", []]).catch(() => "failed");
    await within(entered.promise, "the callback to arrive");
    const closed = client.peer!.closed;
    server.signal("SIGTERM");
    const stopped = await server.events.next((event) => event.event === "stopped", 10_000);
    assert.ok(stopped, "the server never reported it stopped");
    const ms = stopped.ms as number;
    assert.ok(ms <= GRACE_MS + SHUTDOWN_MARGIN_MS + 300, `shutdown took ${ms} ms`);
    assert.equal((await within(closed, "the client to see the close")).code, 1001);
    assert.equal(await within(held, "the held call to settle"), "failed");
  }
  await stopCleanly(server);
});

// ---------------------------------------------------------------------------------------------
// When accepting fails

Deno.test("serveLocal() under Node drops new connections at the file descriptor limit and recovers alone", async () => {
  await using server = await startNodeServer({}, { ulimit: 64 });
  {
    await using survivor = connect(server);
    using opened = new DisposableStack();
    assert.deepEqual(await survivor.call("echo", ["before"]), ["before"]);
    // Far more than 64 descriptors: the kernel completes them all, libuv accepts what it can
    // and accepts-and-closes the rest with its spare descriptor.
    const conns: Deno.Conn[] = [];
    for (let i = 0; i < 150; i++) {
      conns.push(opened.use(await Deno.connect({ hostname: "127.0.0.1", port: server.port })));
    }
    const ended = await Promise.all(conns.map((conn) =>
      within(
        Promise.race([
          conn.read(new Uint8Array(16)).then((n) => n === null, () => true),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1000)),
        ]),
        "a read",
      )
    ));
    assert.ok(ended.filter(Boolean).length > 0, "no connection was dropped: no limit reached?");
    assert.deepEqual(await survivor.call("echo", ["during"]), ["during"], "the open one stayed");
    opened.dispose();
    // The server frees the closed connections' descriptors on its own time: until then a new
    // connection may still be dropped.
    const deadline = Date.now() + 10_000;
    let answer: unknown;
    while (answer === undefined) {
      await using fresh = connect(server);
      try {
        answer = await fresh.call("echo", ["after"], { timeoutMs: 5000 });
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    assert.deepEqual(answer, ["after"], "a new client, same port");
  }
  assert.deepEqual(server.seen("listenError"), [], "libuv reports nothing: no incident");
  await stopCleanly(server);
});

Deno.test("serveLocal() under Node reports an accept error once per incident and listens again on the same port", async () => {
  await using server = await startNodeServer();
  {
    await using survivor = connect(server);
    assert.deepEqual(await survivor.call("echo", ["before"]), ["before"]);
    server.signal("SIGUSR2"); // the listening server emits an accept error (EMFILE)
    const again = (n: number) =>
      server.events.next(
        () => logged(server, "info", /^Listening again on 127\.0\.0\.1:\d+ after/).length >= n,
        10_000,
      );
    assert.ok(await again(1), "it never listened again");
    server.signal("SIGUSR2"); // the same incident: no new report
    assert.ok(await again(2), "it never listened again after the second failure");
    assert.deepEqual(await survivor.call("echo", ["still"]), ["still"], "the open one stayed");
    {
      await using fresh = connect(server);
      assert.deepEqual(await fresh.call("echo", ["after"]), ["after"], "the same port");
    }
  }
  assert.deepEqual(server.seen("listenError").map((event) => event.message), ["accept EMFILE"]);
  const errors = logged(server, "error", /Cannot accept connections/);
  assert.equal(errors.length, 1, "one error line per incident");
  assert.match(errors[0], /accept EMFILE; listening again with backoff/);
  await stopCleanly(server);
});
