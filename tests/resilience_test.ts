/**
 * Tests for timeouts, heartbeats, the caller's pending cap and backpressure: over real loopback
 * sockets (serveLocal, or a raw Deno.serve peer that misbehaves on purpose), and over an
 * in-memory transport whose bufferedAmount the test controls. Cancellation, the callee's
 * in-flight cap and the basic send queue are in `client_test.ts` and `peer_test.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Client, HEARTBEAT_CLOSE_CODE, type WebSocketFactory } from "../client.ts";
import { DisconnectedError, LimitError, RemoteError } from "../errors.ts";
import { Peer } from "../peer.ts";
import { HandlerRegistry } from "../registry.ts";
import { SharedSecret } from "../secret.ts";
import type { Transport, TransportSink, WebSocketLike } from "../transport.ts";
import { NoDelayWebSocket } from "../_socket/no_delay.ts";
import { FakeClock } from "./_fake_clock.ts";
import { connect, nextState, quiet, startServer, stop } from "./_helpers.ts";

/**
 * A raw WebSocket server on 127.0.0.1 that hands each socket to `onSocket`.
 * `await using server = rawServer(…)` closes its sockets with 1001 and shuts it down.
 */
function rawServer(onSocket: (socket: WebSocket) => void): {
  url: string;
  close: () => Promise<void>;
} & AsyncDisposable {
  const sockets = new Set<WebSocket>();
  const closed: Promise<void>[] = [];
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
    sockets.add(socket);
    closed.push(new Promise((resolve) => socket.addEventListener("close", () => resolve())));
    onSocket(socket);
    return response;
  });
  const close = async () => {
    for (const socket of sockets) {
      if (socket.readyState === WebSocket.OPEN) socket.close(1001, "test over");
    }
    await Promise.all(closed);
    await http.shutdown();
  };
  return {
    url: `ws://127.0.0.1:${(http.addr as Deno.NetAddr).port}/`,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Wraps a socket, reporting every text frame sent through it. */
function spySocket(socket: WebSocketLike, onSend: (frame: string) => void): WebSocketLike {
  return {
    get readyState() {
      return socket.readyState;
    },
    get bufferedAmount() {
      return socket.bufferedAmount;
    },
    get protocol() {
      return socket.protocol;
    },
    get binaryType() {
      return socket.binaryType;
    },
    set binaryType(value: string) {
      socket.binaryType = value;
    },
    send(data) {
      if (typeof data === "string") onSend(data);
      socket.send(data);
    },
    close: (code, reason) => socket.close(code, reason),
    addEventListener: (type, listener) => socket.addEventListener(type, listener),
  };
}

// ---------------------------------------------------------------------------------------------
// Timeouts and dropped connections

Deno.test("Client with defaultTimeoutMs rejects a call that sets no timeoutMs with TimeoutError", async () => {
  await using t = startServer({ shutdownGraceMs: 0 });
  await using client = connect(t, { defaultTimeoutMs: 25 });
  await client.opened();
  await assert.rejects(client.call("awaitAbort"), (error: unknown) => {
    assert.ok(error instanceof DOMException, String(error));
    assert.equal(error.name, "TimeoutError");
    return true;
  });
  await t.aborted.promise;
  assert.equal(client.peer!.stats.pendingCalls, 0);
  await stop(t, client);
});

Deno.test("Peer fires a running handler's signal with DisconnectedError when the caller's connection drops", async () => {
  await using t = startServer({ shutdownGraceMs: 0 });
  await using client = connect(t);
  await client.opened();
  const call = client.call("awaitAbort");
  const signal = await t.abortStarted.promise;
  const reconnecting = nextState(client, "reconnecting");
  client.peer!.close(1000, "bye");
  await assert.rejects(call, DisconnectedError);
  const reason = await t.aborted.promise;
  assert.ok(signal.aborted);
  assert.ok(reason instanceof DisconnectedError, String(reason));
  await reconnecting;
  await stop(t, client);
});

// ---------------------------------------------------------------------------------------------
// Heartbeat

Deno.test("Client drops a connection whose peer stops answering its $/ping (close 4000) and reconnects", async () => {
  const received: string[] = [];
  await using server = rawServer((socket) => {
    // Answers the hello (so it gets heartbeats), then reads and never answers: a frozen peer.
    socket.addEventListener("message", (event) => {
      const frame = JSON.parse(String(event.data));
      if (frame.method === "$/hello") {
        return socket.send(JSON.stringify({ id: frame.id, result: { version: 2, features: [] } }));
      }
      received.push(String(event.data));
    });
  });
  await using client = new Client(server.url, {
    secret: SharedSecret.generate(),
    auth: "secret",
    heartbeat: { intervalMs: 50, timeoutMs: 100 },
    logger: quiet,
  });
  await client.opened();
  const call = client.call("anything", ["x"]);
  const rejected = assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof DisconnectedError, String(error));
    assert.equal(error.closeCode, HEARTBEAT_CLOSE_CODE);
    assert.equal(error.closeCode, 4000);
    assert.equal(error.closeReason, "Heartbeat timeout");
    assert.equal(error.method, "anything");
    return true;
  });
  const event = await nextState(client, "reconnecting");
  await rejected;
  assert.equal(event.attempt, 1);
  assert.equal(event.delayMs, 100);
  assert.ok(event.error instanceof DisconnectedError);
  assert.equal(event.error.closeCode, 4000);
  const methods = received.map((frame) => JSON.parse(frame).method);
  assert.equal(methods[0], "anything");
  assert.ok(methods.includes("$/ping"), methods.join(","));
});

Deno.test("Client treats an error answer to $/ping as proof of liveness", async () => {
  const clock = new FakeClock();
  const pingsPerSocket: number[] = [];
  {
    await using server = rawServer((socket) => {
      const index = pingsPerSocket.push(0) - 1;
      socket.addEventListener("message", (event) => {
        const frame = JSON.parse(String(event.data));
        if (frame.id === null || frame.id === undefined) return;
        if (frame.method === "$/hello") {
          return socket.send(
            JSON.stringify({ id: frame.id, result: { version: 2, features: [] } }),
          );
        }
        if (frame.method === "$/ping") pingsPerSocket[index]++;
        socket.send(JSON.stringify({ id: frame.id, error: `Unknown method "${frame.method}"` }));
      });
    });
    await using client = new Client(server.url, {
      secret: SharedSecret.generate(),
      auth: "secret",
      clock,
      heartbeat: { intervalMs: 20, timeoutMs: 1000 },
      logger: quiet,
    });
    const states: string[] = [];
    client.addEventListener("statechange", (event) => states.push(event.state));
    await client.opened();
    for (let ping = 1; ping <= 4; ping++) {
      clock.advance(20); // silent: a ping
      // Answered in order: once this call's error came, so did the ping's.
      await assert.rejects(client.call("other"), RemoteError);
      assert.equal(pingsPerSocket[0], ping);
      clock.advance(1000); // the error answers were frames: no close
    }
    // Four pings on one socket: the error answers did not drop the connection.
    assert.deepEqual(pingsPerSocket, [4]);
    assert.equal(client.state, "open");
    assert.deepEqual(states, ["open"]);
  }
  assert.deepEqual(clock.pending, [], "close() leaves no heartbeat timer");
});

Deno.test("Client keeps a connection to serveLocal open across heartbeats ($/ping answered null)", async () => {
  const clock = new FakeClock();
  let pings = 0;
  let sockets = 0;
  const factory: WebSocketFactory = (url, init) => {
    sockets++;
    return spySocket(new NoDelayWebSocket(url, init), (frame) => {
      if (frame.includes('"method":"$/ping"')) pings++;
    });
  };
  {
    await using t = startServer();
    await using client = connect(t, {
      clock,
      heartbeat: { intervalMs: 10, timeoutMs: 1000 },
      webSocketFactory: factory,
    });
    await client.opened();
    const states: string[] = [];
    client.addEventListener("statechange", (event) => states.push(event.state));
    for (let beat = 1; beat <= 5; beat++) {
      clock.advance(10); // silent: a ping
      assert.equal(pings, beat);
      assert.deepEqual(await client.call("echo", [beat]), [beat]); // after the ping's answer
      clock.advance(1000); // frames came: no close
    }
    assert.equal(sockets, 1);
    assert.deepEqual(states, []);
    assert.equal(client.state, "open");
    await stop(t, client);
  }
  assert.deepEqual(clock.pending, [], "close() leaves no heartbeat timer");
});

Deno.test("Client sends $/ping only after heartbeat.intervalMs of silence, on its clock", async () => {
  const clock = new FakeClock();
  let pings = 0;
  {
    await using t = startServer();
    await using client = connect(t, {
      clock,
      heartbeat: { intervalMs: 777, timeoutMs: 5000 },
      resume: false, // its acknowledgement timer would run on this clock too
      webSocketFactory: (url, init) =>
        spySocket(new NoDelayWebSocket(url, init), (frame) => {
          if (frame.includes('"method":"$/ping"')) pings++;
        }),
    });
    await client.opened();
    assert.deepEqual(clock.pending, [{ due: 777, delay: 777 }]);
    // Busy: every look finds a frame, so no ping goes out.
    for (let look = 1; look <= 3; look++) {
      assert.deepEqual(await client.call("echo", [look]), [look]);
      clock.runNext();
      assert.equal(pings, 0);
      assert.deepEqual(clock.pending, [{ due: 777 * (look + 1), delay: 777 }]);
    }
    // Quiet for a whole interval: a ping, and the next look waits timeoutMs for any frame.
    clock.runNext();
    assert.equal(pings, 1);
    assert.deepEqual(clock.pending, [{ due: 777 * 4 + 5000, delay: 5000 }]);
    assert.deepEqual(await client.call("echo", ["after"]), ["after"]);
    clock.runNext(); // frames came: the connection stays, the next look is an interval away
    assert.equal(client.state, "open");
    assert.deepEqual(clock.pending, [{ due: 777 * 5 + 5000, delay: 777 }]);
    await stop(t, client);
  }
  assert.deepEqual(clock.pending, [], "close() leaves no heartbeat timer");
});

// ---------------------------------------------------------------------------------------------
// Overload: the caller's pending cap (the callee's in-flight cap is in peer_test.ts)

Deno.test("Client with maxPendingCalls: 2 rejects a third concurrent call with LimitError too-many-pending", async () => {
  await using t = startServer({ shutdownGraceMs: 0 });
  await using client = connect(t, { maxPendingCalls: 2 });
  await client.opened();
  const gates = [t.nextGate(), t.nextGate()];
  const first = client.call("gate");
  const second = client.call("gate");
  await assert.rejects(client.call("echo", ["third"]), (error: unknown) => {
    assert.ok(error instanceof LimitError, String(error));
    assert.equal(error.code, "too-many-pending");
    assert.equal(error.message, 'Cannot call "echo": 2 calls pending (maxPendingCalls)');
    assert.equal(error.closeCode, undefined);
    return true;
  });
  assert.equal(client.peer!.stats.pendingCalls, 2);
  assert.equal(client.state, "open");
  for (const gate of gates) (await gate).resolve("released");
  assert.deepEqual(await Promise.all([first, second]), ["released", "released"]);
  assert.deepEqual(await client.call("echo", ["now"]), ["now"]);
  await stop(t, client);
});

Deno.test("Client with maxPendingCalls: 2 rejects a third call waiting for a connection", async () => {
  await using t = startServer({ shutdownGraceMs: 0 });
  await using client = connect(t, { maxPendingCalls: 2 });
  await client.opened();
  const reconnecting = nextState(client, "reconnecting");
  await t.server.shutdown();
  await reconnecting;
  const waiting = [client.call("echo"), client.call("echo")];
  const settled = Promise.allSettled(waiting);
  await assert.rejects(client.call("echo", ["third"]), (error: unknown) => {
    assert.ok(error instanceof LimitError, String(error));
    assert.equal(error.code, "too-many-pending");
    assert.equal(error.message, 'Cannot call "echo": 2 calls wait for a connection');
    assert.equal(error.closeCode, undefined);
    return true;
  });
  assert.equal(client.stats.waitingCalls, 2);
  await client.close();
  assert.deepEqual((await settled).map((result) => result.status), ["rejected", "rejected"]);
  await stop(t, client);
});

// ---------------------------------------------------------------------------------------------
// Backpressure: bufferedAmount and the high-water mark

/** One end of a transport whose bufferedAmount the test sets; records what was sent. */
class ControlledTransport implements Transport {
  bufferedAmount = 0;
  /** Added to bufferedAmount on every send, like a socket that has not written yet. */
  growOnSend = false;
  readonly sent: string[] = [];
  #sink: TransportSink | undefined;
  #waiters: { count: number; resolve: () => void }[] = [];

  start(sink: TransportSink): void {
    this.#sink = sink;
  }

  send(frame: string): void {
    this.sent.push(frame);
    if (this.growOnSend) this.bufferedAmount += frame.length;
    this.#waiters = this.#waiters.filter((waiter) => {
      if (this.sent.length < waiter.count) return true;
      waiter.resolve();
      return false;
    });
  }

  close(code: number, reason: string): void {
    this.#sink?.closed(code, reason);
  }

  /** Delivers a frame from the other side. */
  receive(frame: string): void {
    this.#sink!.frame(frame);
  }

  /** Resolves once `count` frames in all have been sent. */
  sentCount(count: number): Promise<void> {
    if (this.sent.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ count, resolve }));
  }
}

function methods(frames: string[]): string[] {
  return frames.map((frame) => JSON.parse(frame).method ?? `reply:${JSON.parse(frame).id}`);
}

Deno.test("Peer sends queued frames only as fast as bufferedAmount drains", async () => {
  const transport = new ControlledTransport();
  transport.growOnSend = true;
  using peer = new Peer(transport, { highWaterMarkBytes: 10, logger: quiet });
  for (const name of ["n1", "n2", "n3", "n4"]) peer.notify(name);
  // The first frame fills the buffer past the mark; the rest wait.
  assert.deepEqual(methods(transport.sent), ["n1"]);
  assert.equal(peer.stats.queuedFrames, 3);
  for (let sent = 2; sent <= 4; sent++) {
    transport.bufferedAmount = 0; // the socket wrote everything
    await transport.sentCount(sent);
    assert.equal(transport.sent.length, sent, "one frame per drain: it refills the buffer");
    assert.equal(peer.stats.queuedFrames, 4 - sent);
  }
  assert.deepEqual(methods(transport.sent), ["n1", "n2", "n3", "n4"]);
  peer.close(1000, "done");
});

Deno.test("Peer stops at the high-water mark exactly although it reads bufferedAmount rarely", () => {
  const transport = new ControlledTransport();
  transport.growOnSend = true;
  using peer = new Peer(transport, { highWaterMarkBytes: 1_000, logger: quiet });
  for (let i = 0; i < 100; i++) peer.notify("n", [i]);
  // Every frame goes out while the buffer is at or below the mark when it is sent.
  const sizes = transport.sent.map((frame) => frame.length);
  const before = sizes.slice(0, -1).reduce((sum, size) => sum + size, 0);
  assert.ok(before <= 1_000, `${before} bytes were buffered before the last frame went out`);
  assert.ok(transport.bufferedAmount > 1_000, "it stopped only once over the mark");
  assert.equal(peer.stats.queuedFrames, 100 - sizes.length);
  peer.close(1000, "done");
});

Deno.test("Peer.notify() throws LimitError overloaded when the send queue is full", () => {
  const transport = new ControlledTransport();
  transport.bufferedAmount = 1_000;
  using peer = new Peer(transport, { highWaterMarkBytes: 10, maxPendingCalls: 3, logger: quiet });
  for (let i = 0; i < 3; i++) peer.notify("n", [i]);
  assert.equal(peer.stats.queuedFrames, 3);
  assert.throws(() => peer.notify("n", [3]), (error: unknown) => {
    assert.ok(error instanceof LimitError, String(error));
    assert.equal(error.code, "overloaded");
    assert.equal(error.message, 'Cannot notify "n": 3 frames wait for the socket to drain');
    assert.equal(error.closeCode, undefined);
    return true;
  });
  assert.equal(peer.stats.queuedFrames, 3);
  peer.close(1000, "done");
  assert.equal(peer.stats.queuedFrames, 0, "close discards queued frames");
});

Deno.test("Peer closes with 1008 when the other side keeps sending requests but does not read replies", async () => {
  const transport = new ControlledTransport();
  transport.bufferedAmount = 1_000; // the other side never reads: nothing drains
  const closes: [number, string][] = [];
  const close = transport.close.bind(transport);
  transport.close = (code, reason) => {
    closes.push([code, reason]);
    close(code, reason);
  };
  using peer = new Peer(transport, {
    highWaterMarkBytes: 10,
    maxInFlight: 1,
    maxPendingCalls: 1,
    registry: new HandlerRegistry().register("echo", (params) => params),
    logger: quiet,
  });
  transport.receive('{"id":0,"method":"echo","params":[0]}'); // answered; the reply waits
  assert.equal(peer.stats.queuedFrames, 1);
  transport.receive('{"id":1,"method":"echo","params":[1]}'); // over the cap: "overloaded", waits
  assert.equal(peer.stats.queuedFrames, 2);
  assert.equal(peer.stats.overloaded, 1);
  assert.equal(peer.closeInfo, undefined);
  transport.receive('{"id":2,"method":"echo","params":[2]}'); // maxInFlight + maxPendingCalls queued
  assert.deepEqual(peer.closeInfo, { code: 1008, reason: "Peer does not read" });
  assert.deepEqual(await peer.closed, { code: 1008, reason: "Peer does not read" });
  assert.deepEqual(closes, [[1008, "Peer does not read"]]);
  assert.equal(peer.stats.queuedFrames, 0);
  assert.deepEqual(transport.sent, [], "nothing was written while the buffer was full");
});

Deno.test("Peer.close() with frames queued sends nothing more and its drain loop stops", () => {
  const clock = new FakeClock();
  const transport = new ControlledTransport();
  transport.bufferedAmount = 1_000;
  using peer = new Peer(transport, { highWaterMarkBytes: 10, logger: quiet, clock });
  peer.notify("queued");
  assert.equal(peer.stats.queuedFrames, 1);
  assert.equal(clock.pending.length, 1, "the drain poll");
  peer.close(1000, "done");
  assert.equal(peer.stats.queuedFrames, 0);
  assert.deepEqual(clock.pending, [], "close() stops the drain poll");
  transport.bufferedAmount = 0; // the socket would accept frames again
  clock.advance(60_000);
  assert.deepEqual(transport.sent, []);
});

Deno.test("Peer clears a call's timer when it settles, times out, is aborted or the peer closes", async () => {
  const clock = new FakeClock();
  const transport = new ControlledTransport();
  using peer = new Peer(transport, { logger: quiet, clock });
  const reply = (id: number) => transport.receive(`{"id":${id},"result":"ok"}`);
  // The other side says hello, so $/cancel may be sent to it.
  transport.receive('{"id":"h","method":"$/hello","params":{"version":2}}');
  transport.sent.length = 0;
  // Settled by a reply.
  const answered = peer.call("a", [], { timeoutMs: 60_000 });
  assert.deepEqual(clock.pending, [{ due: 60_000, delay: 60_000 }]);
  reply(0);
  assert.equal(await answered, "ok");
  assert.deepEqual(clock.pending, []);
  // Aborted.
  const controller = new AbortController();
  const aborted = peer.call("b", [], { timeoutMs: 60_000, signal: controller.signal });
  controller.abort(new Error("stop"));
  await assert.rejects(aborted, /stop/);
  assert.deepEqual(clock.pending, []);
  assert.deepEqual(methods(transport.sent), ["a", "b", "$/cancel"]);
  assert.deepEqual(JSON.parse(transport.sent[2]).params, [1]);
  // Timed out, on the peer's clock.
  const timedOut = peer.call("c", [], { timeoutMs: 1 });
  assert.deepEqual(clock.runNext(), { due: 1, delay: 1 });
  await assert.rejects(timedOut, {
    name: "TimeoutError",
    message: 'Call "c" timed out after 1 ms',
  });
  assert.deepEqual(clock.pending, []);
  assert.deepEqual(JSON.parse(transport.sent.at(-1)!).params, [2]);
  // Closed while pending.
  const closing = peer.call("d", [], { timeoutMs: 60_000 });
  peer.close(1000, "done");
  await assert.rejects(closing, DisconnectedError);
  assert.deepEqual(clock.pending, []);
  assert.equal(peer.stats.pendingCalls, 0);
  // A late reply to a settled call is dropped, not delivered.
  reply(1);
});

Deno.test("Client over a real socket queues frames behind a large send until bufferedAmount drains", async () => {
  const received: unknown[][] = [];
  const got = Promise.withResolvers<void>();
  await using t = startServer({
    registry: new HandlerRegistry().register("note", (params) => {
      received.push([typeof params[0] === "string" ? params[0].length : params[0]]);
      if (received.length === 3) got.resolve();
    }),
  });
  await using client = connect(t, { highWaterMarkBytes: 1024 });
  await client.opened();
  const peer = client.peer!;
  client.notify("note", ["x".repeat(1024 * 1024)]);
  // Deno counts the whole message in bufferedAmount right after send(), so the rest wait.
  client.notify("note", [2]);
  client.notify("note", [3]);
  assert.equal(peer.stats.queuedFrames, 2);
  await got.promise;
  assert.deepEqual(received, [[1024 * 1024], [2], [3]]);
  assert.equal(peer.stats.queuedFrames, 0);
  await stop(t, client);
});

Deno.test("WebSocket.bufferedAmount counts a whole 4 MiB message right after send(), and 0 once the reply came back", async () => {
  const big = "x".repeat(4 * 1024 * 1024);
  const report: Record<string, number> = {};
  const serverGot = Promise.withResolvers<void>();
  await using server = rawServer((socket) => {
    socket.addEventListener("message", (event) => {
      if (String(event.data).length !== big.length) return;
      socket.send(big);
      report["server-side Deno.upgradeWebSocket socket"] = socket.bufferedAmount;
      serverGot.resolve();
    });
  });
  for (
    const [name, make] of [
      ["native client WebSocket", () => new WebSocket(server.url)],
      ["Mist NoDelayWebSocket", () => new NoDelayWebSocket(server.url, {})],
    ] as const
  ) {
    const socket = make();
    const opened = new Promise((resolve) => socket.addEventListener("open", resolve));
    const echoed = new Promise((resolve) => socket.addEventListener("message", resolve));
    const closed = new Promise((resolve) => socket.addEventListener("close", resolve));
    await opened;
    socket.send(big);
    report[name] = socket.bufferedAmount;
    await echoed;
    report[`${name}, after the reply came back`] = socket.bufferedAmount;
    socket.close(1000);
    await closed;
  }
  await serverGot.promise;
  // Deno's sockets, on either end, and Mist's count the UTF-8 bytes not yet written, and the
  // whole message is still unwritten when send() returns; the peer's high-water mark relies on it.
  assert.deepEqual(report, {
    "native client WebSocket": big.length,
    "native client WebSocket, after the reply came back": 0,
    "Mist NoDelayWebSocket": big.length,
    "Mist NoDelayWebSocket, after the reply came back": 0,
    "server-side Deno.upgradeWebSocket socket": big.length,
  });
});
