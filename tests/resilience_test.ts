/**
 * Tests for cancellation, timeouts, heartbeats, overload and backpressure: over real loopback
 * sockets (serveLocal, or a raw Deno.serve peer that misbehaves on purpose), and over an
 * in-memory transport whose bufferedAmount the test controls.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  Client,
  type ClientOptions,
  HEARTBEAT_CLOSE_CODE,
  type WebSocketFactory,
} from "../client.ts";
import { DisconnectedError, LimitError, RemoteError } from "../errors.ts";
import { consoleLogger } from "../log.ts";
import { Peer } from "../peer.ts";
import { HandlerRegistry } from "../registry.ts";
import { SharedSecret } from "../secret.ts";
import { type LocalServer, serveLocal, type ServeLocalOptions } from "../server.ts";
import type { Transport, TransportSink, WebSocketLike } from "../transport.ts";
import { NoDelayWebSocket } from "../_socket/no_delay.ts";
import { FakeClock } from "./_fake_clock.ts";
import { nextState } from "./_helpers.ts";

const silent = consoleLogger("silent");

/**
 * A serveLocal server whose "block" handler waits for `release`, records its signal, and
 * reports when it started and when its signal fired; plus a connected client.
 */
async function setup(
  serverOptions: Partial<ServeLocalOptions> = {},
  clientOptions: ClientOptions = {},
): Promise<{
  server: LocalServer;
  client: Client;
  serverPeer: () => Peer;
  started: PromiseWithResolvers<AbortSignal>[];
  aborted: PromiseWithResolvers<unknown>[];
  release: PromiseWithResolvers<void>;
  dispose: () => Promise<void>;
}> {
  const started: PromiseWithResolvers<AbortSignal>[] = [];
  const aborted: PromiseWithResolvers<unknown>[] = [];
  const slot = <T>(list: PromiseWithResolvers<T>[], n: number) => {
    while (list.length <= n) list.push(Promise.withResolvers<T>());
    return list[n];
  };
  let blocks = 0;
  const release = Promise.withResolvers<void>();
  const registry = new HandlerRegistry()
    .register("echo", (params) => params)
    .register("block", (_params, context) => {
      const n = blocks++;
      const signal = context.signal;
      signal.addEventListener("abort", () => slot(aborted, n).resolve(signal.reason));
      slot(started, n).resolve(signal);
      // Finishes when released or when cancelled, so no handler outlives the test.
      return Promise.race([
        release.promise.then(() => "released"),
        new Promise((resolve) => signal.addEventListener("abort", () => resolve("aborted"))),
      ]);
    });
  const secret = SharedSecret.generate();
  const peers: Peer[] = [];
  const server = serveLocal({
    secret,
    registry,
    logger: silent,
    shutdownGraceMs: 0,
    onConnection: (peer) => peers.push(peer),
    ...serverOptions,
  });
  const client = new Client(server.url, {
    secret,
    heartbeat: false,
    logger: silent,
    ...clientOptions,
  });
  await client.opened();
  return {
    server,
    client,
    serverPeer: () => peers[0],
    started: new Proxy(started, {
      get: (target, key) =>
        typeof key === "string" && /^\d+$/.test(key)
          ? slot(target, Number(key))
          : Reflect.get(target, key),
    }),
    aborted: new Proxy(aborted, {
      get: (target, key) =>
        typeof key === "string" && /^\d+$/.test(key)
          ? slot(target, Number(key))
          : Reflect.get(target, key),
    }),
    release,
    dispose: async () => {
      release.resolve();
      await client.close();
      await server.shutdown();
    },
  };
}

/** A raw WebSocket server on 127.0.0.1 that hands each socket to `onSocket`. */
function rawServer(onSocket: (socket: WebSocket) => void): {
  url: string;
  close: () => Promise<void>;
} {
  const sockets = new Set<WebSocket>();
  const closed: Promise<void>[] = [];
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
    sockets.add(socket);
    closed.push(new Promise((resolve) => socket.addEventListener("close", () => resolve())));
    onSocket(socket);
    return response;
  });
  return {
    url: `ws://127.0.0.1:${(http.addr as Deno.NetAddr).port}/`,
    close: async () => {
      for (const socket of sockets) {
        if (socket.readyState === WebSocket.OPEN) socket.close(1001, "test over");
      }
      await Promise.all(closed);
      await http.shutdown();
    },
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
// Cancellation and timeouts

Deno.test("Client.call() with timeoutMs rejects with TimeoutError and fires the remote handler's signal", async () => {
  const t = await setup();
  try {
    const call = t.client.call("block", [], { timeoutMs: 30 });
    const signal = await t.started[0].promise;
    await assert.rejects(call, (error: unknown) => {
      assert.ok(error instanceof DOMException, String(error));
      assert.equal(error.name, "TimeoutError");
      assert.equal(error.message, 'Call "block" timed out after 30 ms');
      return true;
    });
    assert.equal(t.client.peer!.stats.pendingCalls, 0);
    const reason = await t.aborted[0].promise;
    assert.ok(signal.aborted);
    assert.ok(reason instanceof DOMException);
    assert.equal(reason.name, "AbortError");
    // A round trip later the server's handler has finished and the late reply was dropped.
    assert.deepEqual(await t.client.call("echo", [1]), [1]);
    assert.equal(t.serverPeer().stats.runningHandlers, 0);
    assert.equal(t.client.peer!.stats.pendingCalls, 0);
  } finally {
    await t.dispose();
  }
});

Deno.test("Client.call() aborted by its signal rejects with the reason and fires the remote handler's signal", async () => {
  const t = await setup();
  try {
    const controller = new AbortController();
    const call = t.client.call("block", [], { signal: controller.signal });
    const signal = await t.started[0].promise;
    assert.equal(t.client.peer!.stats.pendingCalls, 1);
    const reason = new Error("the user closed the panel");
    controller.abort(reason);
    await assert.rejects(call, (error: unknown) => error === reason);
    assert.equal(t.client.peer!.stats.pendingCalls, 0, "settled at once, before any reply");
    await t.aborted[0].promise;
    assert.ok(signal.aborted);
    assert.deepEqual(await t.client.call("echo", [2]), [2]);
    assert.equal(t.serverPeer().stats.runningHandlers, 0);
  } finally {
    await t.dispose();
  }
});

Deno.test("Client.call() with an already aborted signal rejects with its reason and sends nothing", async () => {
  const t = await setup();
  try {
    const controller = new AbortController();
    const reason = new Error("too late");
    controller.abort(reason);
    await assert.rejects(
      t.client.call("block", [], { signal: controller.signal }),
      (error: unknown) => error === reason,
    );
    assert.equal(t.client.peer!.stats.pendingCalls, 0);
    assert.deepEqual(await t.client.call("echo", [3]), [3]);
    assert.equal(t.started.length, 0, "the handler never ran");
  } finally {
    await t.dispose();
  }
});

Deno.test("Client defaultTimeoutMs applies to calls that set none", async () => {
  const t = await setup({}, { defaultTimeoutMs: 25 });
  try {
    await assert.rejects(t.client.call("block"), (error: unknown) => {
      assert.ok(error instanceof DOMException, String(error));
      assert.equal(error.name, "TimeoutError");
      return true;
    });
    await t.aborted[0].promise;
    assert.equal(t.client.peer!.stats.pendingCalls, 0);
  } finally {
    await t.dispose();
  }
});

Deno.test("Peer's remote handler signal fires when the caller's connection drops", async () => {
  const t = await setup();
  try {
    const call = t.client.call("block");
    const signal = await t.started[0].promise;
    const reconnecting = nextState(t.client, "reconnecting");
    t.client.peer!.close(1000, "bye");
    await assert.rejects(call, DisconnectedError);
    const reason = await t.aborted[0].promise;
    assert.ok(signal.aborted);
    assert.ok(reason instanceof DisconnectedError, String(reason));
    await reconnecting;
  } finally {
    await t.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// Heartbeat

Deno.test("Client drops a connection whose peer stops answering its $/ping (close 4000) and reconnects", async () => {
  const received: string[] = [];
  const server = rawServer((socket) => {
    // Answers the hello (so it gets heartbeats), then reads and never answers: a frozen peer.
    socket.addEventListener("message", (event) => {
      const frame = JSON.parse(String(event.data));
      if (frame.method === "$/hello") {
        return socket.send(JSON.stringify({ id: frame.id, result: { version: 2, features: [] } }));
      }
      received.push(String(event.data));
    });
  });
  const client = new Client(server.url, {
    secret: SharedSecret.generate(),
    auth: "secret",
    heartbeat: { intervalMs: 50, timeoutMs: 100 },
    logger: silent,
  });
  try {
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
  } finally {
    await client.close();
    await server.close();
  }
});

Deno.test("Client treats an error answer to $/ping as proof of liveness", async () => {
  const clock = new FakeClock();
  const pingsPerSocket: number[] = [];
  const server = rawServer((socket) => {
    const index = pingsPerSocket.push(0) - 1;
    socket.addEventListener("message", (event) => {
      const frame = JSON.parse(String(event.data));
      if (frame.id === null || frame.id === undefined) return;
      if (frame.method === "$/hello") {
        return socket.send(JSON.stringify({ id: frame.id, result: { version: 2, features: [] } }));
      }
      if (frame.method === "$/ping") pingsPerSocket[index]++;
      socket.send(JSON.stringify({ id: frame.id, error: `Unknown method "${frame.method}"` }));
    });
  });
  const client = new Client(server.url, {
    secret: SharedSecret.generate(),
    auth: "secret",
    clock,
    heartbeat: { intervalMs: 20, timeoutMs: 1000 },
    logger: silent,
  });
  const states: string[] = [];
  client.addEventListener("statechange", (event) => states.push(event.state));
  try {
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
  } finally {
    await client.close();
    await server.close();
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
  const t = await setup({}, {
    clock,
    heartbeat: { intervalMs: 10, timeoutMs: 1000 },
    webSocketFactory: factory,
  });
  const states: string[] = [];
  t.client.addEventListener("statechange", (event) => states.push(event.state));
  try {
    for (let beat = 1; beat <= 5; beat++) {
      clock.advance(10); // silent: a ping
      assert.equal(pings, beat);
      assert.deepEqual(await t.client.call("echo", [beat]), [beat]); // after the ping's answer
      clock.advance(1000); // frames came: no close
    }
    assert.equal(sockets, 1);
    assert.deepEqual(states, []);
    assert.equal(t.client.state, "open");
  } finally {
    await t.dispose();
  }
  assert.deepEqual(clock.pending, [], "close() leaves no heartbeat timer");
});

Deno.test("Client sends $/ping only after heartbeat.intervalMs of silence, on its clock", async () => {
  const clock = new FakeClock();
  let pings = 0;
  const t = await setup({}, {
    clock,
    heartbeat: { intervalMs: 777, timeoutMs: 5000 },
    webSocketFactory: (url, init) =>
      spySocket(new NoDelayWebSocket(url, init), (frame) => {
        if (frame.includes('"method":"$/ping"')) pings++;
      }),
  });
  try {
    assert.deepEqual(clock.pending, [{ due: 777, delay: 777 }]);
    // Busy: every look finds a frame, so no ping goes out.
    for (let look = 1; look <= 3; look++) {
      assert.deepEqual(await t.client.call("echo", [look]), [look]);
      clock.runNext();
      assert.equal(pings, 0);
      assert.deepEqual(clock.pending, [{ due: 777 * (look + 1), delay: 777 }]);
    }
    // Quiet for a whole interval: a ping, and the next look waits timeoutMs for any frame.
    clock.runNext();
    assert.equal(pings, 1);
    assert.deepEqual(clock.pending, [{ due: 777 * 4 + 5000, delay: 5000 }]);
    assert.deepEqual(await t.client.call("echo", ["after"]), ["after"]);
    clock.runNext(); // frames came: the connection stays, the next look is an interval away
    assert.equal(t.client.state, "open");
    assert.deepEqual(clock.pending, [{ due: 777 * 5 + 5000, delay: 777 }]);
  } finally {
    await t.dispose();
  }
  assert.deepEqual(clock.pending, [], "close() leaves no heartbeat timer");
});

// ---------------------------------------------------------------------------------------------
// Overload: the callee's in-flight cap, the caller's pending cap

Deno.test("Peer answers 'overloaded' beyond maxInFlight and serves again once handlers finish", async () => {
  const t = await setup({ maxInFlight: 2 });
  try {
    const first = t.client.call("block");
    const second = t.client.call("block");
    await t.started[0].promise;
    await t.started[1].promise;
    await assert.rejects(t.client.call("block", ["third"]), (error: unknown) => {
      assert.ok(error instanceof RemoteError, String(error));
      assert.equal(error.method, "block");
      assert.match(error.message, /overloaded/);
      assert.equal(error.remoteMessage, 'Cannot run "block": overloaded (2 requests in flight)');
      return true;
    });
    assert.equal(t.serverPeer().stats.overloaded, 1);
    assert.equal(t.serverPeer().stats.runningHandlers, 2);
    assert.equal(t.client.state, "open", "the connection stays open");
    t.release.resolve();
    assert.deepEqual(await Promise.all([first, second]), ["released", "released"]);
    assert.deepEqual(await t.client.call("echo", ["again"]), ["again"]);
    assert.equal(t.serverPeer().stats.runningHandlers, 0);
  } finally {
    await t.dispose();
  }
});

Deno.test("Peer drops notifications beyond maxInFlight and counts them", async () => {
  const t = await setup({ maxInFlight: 1 });
  try {
    const first = t.client.call("block");
    await t.started[0].promise;
    t.client.notify("echo", ["dropped"]);
    await assert.rejects(t.client.call("echo"), /overloaded/);
    assert.equal(t.serverPeer().stats.overloaded, 2);
    t.release.resolve();
    assert.equal(await first, "released");
  } finally {
    await t.dispose();
  }
});

Deno.test("Client with maxPendingCalls: 2 rejects a third concurrent call with LimitError too-many-pending", async () => {
  const t = await setup({}, { maxPendingCalls: 2 });
  try {
    const first = t.client.call("block");
    const second = t.client.call("block");
    await assert.rejects(t.client.call("echo", ["third"]), (error: unknown) => {
      assert.ok(error instanceof LimitError, String(error));
      assert.equal(error.code, "too-many-pending");
      assert.equal(error.message, 'Cannot call "echo": 2 calls pending (maxPendingCalls)');
      assert.equal(error.closeCode, undefined);
      return true;
    });
    assert.equal(t.client.peer!.stats.pendingCalls, 2);
    assert.equal(t.client.state, "open");
    t.release.resolve();
    assert.deepEqual(await Promise.all([first, second]), ["released", "released"]);
    assert.deepEqual(await t.client.call("echo", ["now"]), ["now"]);
  } finally {
    await t.dispose();
  }
});

Deno.test("Client with maxPendingCalls: 2 rejects a third call waiting for a connection", async () => {
  const t = await setup({}, { maxPendingCalls: 2 });
  try {
    const reconnecting = nextState(t.client, "reconnecting");
    await t.server.shutdown();
    await reconnecting;
    const waiting = [t.client.call("echo"), t.client.call("echo")];
    const settled = Promise.allSettled(waiting);
    await assert.rejects(t.client.call("echo", ["third"]), (error: unknown) => {
      assert.ok(error instanceof LimitError, String(error));
      assert.equal(error.code, "too-many-pending");
      assert.equal(error.message, 'Cannot call "echo": 2 calls wait for a connection');
      assert.equal(error.closeCode, undefined);
      return true;
    });
    assert.equal(t.client.stats.waitingCalls, 2);
    await t.client.close();
    assert.deepEqual((await settled).map((result) => result.status), ["rejected", "rejected"]);
  } finally {
    await t.dispose();
  }
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

Deno.test("Peer queues frames while bufferedAmount is above highWaterMarkBytes and sends them in order once it drains", async () => {
  const transport = new ControlledTransport();
  const peer = new Peer(transport, { highWaterMarkBytes: 10, logger: silent });
  transport.bufferedAmount = 10; // at the mark: still sent at once
  peer.notify("a");
  assert.deepEqual(methods(transport.sent), ["a"]);
  transport.bufferedAmount = 11; // one byte over: queued
  peer.notify("b");
  const call = peer.call("c");
  peer.notify("d");
  assert.deepEqual(methods(transport.sent), ["a"]);
  assert.equal(peer.stats.queuedFrames, 3);
  assert.equal(peer.stats.pendingCalls, 1);
  transport.bufferedAmount = 0;
  // Once a queue exists, new frames join it even though the socket has room: order is kept.
  peer.notify("e");
  assert.equal(peer.stats.queuedFrames, 4);
  await transport.sentCount(5);
  assert.deepEqual(methods(transport.sent), ["a", "b", "c", "d", "e"]);
  assert.equal(peer.stats.queuedFrames, 0);
  peer.close(1000, "done");
  await assert.rejects(call, DisconnectedError);
  assert.equal(peer.stats.pendingCalls, 0);
});

Deno.test("Peer sends queued frames only as fast as bufferedAmount drains", async () => {
  const transport = new ControlledTransport();
  transport.growOnSend = true;
  const peer = new Peer(transport, { highWaterMarkBytes: 10, logger: silent });
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
  const peer = new Peer(transport, { highWaterMarkBytes: 1_000, logger: silent });
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
  const peer = new Peer(transport, { highWaterMarkBytes: 10, maxPendingCalls: 3, logger: silent });
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
  const peer = new Peer(transport, {
    highWaterMarkBytes: 10,
    maxInFlight: 1,
    maxPendingCalls: 1,
    registry: new HandlerRegistry().register("echo", (params) => params),
    logger: silent,
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
  const peer = new Peer(transport, { highWaterMarkBytes: 10, logger: silent, clock });
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
  const peer = new Peer(transport, { logger: silent, clock });
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
  const t = await setup({
    registry: new HandlerRegistry().register("note", (params) => {
      received.push([typeof params[0] === "string" ? params[0].length : params[0]]);
      if (received.length === 3) got.resolve();
    }),
  }, { highWaterMarkBytes: 1024 });
  try {
    const peer = t.client.peer!;
    t.client.notify("note", ["x".repeat(1024 * 1024)]);
    // Deno counts the whole message in bufferedAmount right after send(), so the rest wait.
    t.client.notify("note", [2]);
    t.client.notify("note", [3]);
    assert.equal(peer.stats.queuedFrames, 2);
    await got.promise;
    assert.deepEqual(received, [[1024 * 1024], [2], [3]]);
    assert.equal(peer.stats.queuedFrames, 0);
  } finally {
    await t.dispose();
  }
});

Deno.test("WebSocket bufferedAmount right after sending 4 MiB (informational: what Deno reports)", async () => {
  const big = "x".repeat(4 * 1024 * 1024);
  const report: Record<string, number> = {};
  const serverGot = Promise.withResolvers<void>();
  const server = rawServer((socket) => {
    socket.addEventListener("message", (event) => {
      if (String(event.data).length !== big.length) return;
      socket.send(big);
      report["server-side Deno.upgradeWebSocket socket"] = socket.bufferedAmount;
      serverGot.resolve();
    });
  });
  try {
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
    console.log("bufferedAmount right after send(4 MiB):", report);
    for (const value of Object.values(report)) assert.equal(typeof value, "number");
  } finally {
    await server.close();
  }
});
