/**
 * Tests of `Client` against a real `serveLocal` on loopback: calls both ways, errors the
 * caller can tell apart, timeouts, cancellation, limits, disconnects and option validation.
 *
 * @module
 */
import assert from "node:assert/strict";
import { SECRET_HEADER } from "../_auth.ts";
import { Client, type ClientOptions } from "../client.ts";
import {
  ChannelDeadError,
  ClosedError,
  DisconnectedError,
  LimitError,
  RemoteError,
} from "../errors.ts";
import type { Peer } from "../peer.ts";
import { HandlerRegistry } from "../registry.ts";
import { SharedSecret } from "../secret.ts";
import { connect, deferred, quiet, startServer, stop } from "./_helpers.ts";

// --- Calls --------------------------------------------------------------------------------

Deno.test("Client.call() resolves with the server's result over loopback", async () => {
  await using t = startServer();
  await using client = connect(t);
  assert.deepEqual(await client.call("echo", ["hello", 42, { a: [null] }]), [
    "hello",
    42,
    { a: [null] },
  ]);
  assert.equal(client.state, "open");
  assert.equal(t.server.connections, 1);
  await stop(t, client);
});

Deno.test("Client.opened() resolves once the client is open", async () => {
  await using t = startServer();
  await using client = connect(t);
  await client.opened();
  assert.equal(client.state, "open");
  assert.ok(client.peer);
  await stop(t, client);
});

Deno.test("Client with auth 'secret' presents the secret in the X-Land-Secret header and offers no subprotocol", async () => {
  const secret = SharedSecret.generate();
  const seen = deferred<Headers>();
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    seen.resolve(new Headers(request.headers)); // a copy: the request is gone once upgraded
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.addEventListener("message", (event) => {
      const { id } = JSON.parse(event.data);
      socket.send(JSON.stringify({ id, result: "ok" }));
    });
    return response;
  });
  await using client = new Client(`ws://127.0.0.1:${server.addr.port}/`, {
    secret,
    auth: "secret",
    heartbeat: false,
    reconnect: false,
    logger: quiet,
  });
  assert.equal(await client.call("anything"), "ok");
  const headers = await seen.promise;
  assert.equal(headers.get(SECRET_HEADER), secret.toHex());
  assert.equal(headers.get("x-mist-version"), "2");
  assert.equal(headers.get("sec-websocket-protocol"), null);
});

Deno.test("Client with secretVia 'protocol' connects to serveLocal", async () => {
  await using t = startServer();
  await using client = connect(t, { secretVia: "protocol" });
  assert.deepEqual(await client.call("echo", [1]), [1]);
  await stop(t, client);
});

Deno.test("Client.call() rejects with RemoteError carrying the server's message", async () => {
  await using t = startServer();
  await using client = connect(t);
  await assert.rejects(client.call("fail", ["Disk full"]), (error: unknown) => {
    assert.ok(error instanceof RemoteError);
    assert.equal(error.method, "fail");
    assert.equal(error.remoteMessage, "Disk full");
    assert.equal(error.message, 'Remote "fail" failed: Disk full');
    return true;
  });
  await assert.rejects(client.call("nope"), {
    name: "RemoteError",
    remoteMessage: 'Unknown method "nope"',
  });
  assert.deepEqual(await client.call("echo", [1]), [1]);
  await stop(t, client);
});

Deno.test("Client.notify() runs the server handler without a reply", async () => {
  const got = deferred<unknown[]>();
  const registry = new HandlerRegistry()
    .register("note", (params) => void got.resolve(params))
    .register("echo", (params) => params);
  await using t = startServer({ registry });
  await using client = connect(t);
  await client.opened();
  client.notify("note", ["a", 1]);
  assert.deepEqual(await got.promise, ["a", 1]);
  assert.deepEqual(await client.call("echo", []), []);
  await stop(t, client);
});

Deno.test("Client.call() resolves a fast call while a slow handler is still running", async () => {
  await using t = startServer();
  await using client = connect(t);
  const order: string[] = [];
  const gate = t.nextGate();
  const slow = client.call("gate").then((value) => order.push(`slow ${value}`));
  const open = await gate;
  const fast = client.call("echo", ["fast"]).then(() => order.push("fast"));
  await fast;
  assert.deepEqual(order, ["fast"]);
  open.resolve("done");
  await slow;
  assert.deepEqual(order, ["fast", "slow done"]);
  await stop(t, client);
});

// --- Calls from the server ----------------------------------------------------------------

Deno.test("Client.registry serves calls from the server's onConnection peer", async () => {
  const serverPeer = deferred<Peer>();
  await using t = startServer({ onConnection: (peer) => serverPeer.resolve(peer) });
  await using client = connect(t);
  client.registry.register("clientEcho", (params) => ({ fromClient: params }));
  // The server calls as soon as the connection opens, before the client has sent anything.
  // The timeout only turns a lost frame into a failure instead of a hang.
  const peer = await serverPeer.promise;
  const first = await peer.call("clientEcho", [7], { timeoutMs: 10_000 }).catch((e) => e);
  const missing = await peer.call("missing").catch((e) => e);
  await stop(t, client);
  assert.deepEqual(first, { fromClient: [7] });
  assert.ok(missing instanceof RemoteError);
  assert.equal(missing.remoteMessage, 'Unknown method "missing"');
});

Deno.test("Client.registry answers a server handler calling back through ctx.peer", async () => {
  await using t = startServer();
  const registry = new HandlerRegistry().register("double", ([x]) => Number(x) * 2);
  await using client = connect(t, { registry });
  assert.equal(await client.call("callback", ["double", [21]]), 42);
  await assert.rejects(client.call("callback", ["missing", []]), {
    name: "RemoteError",
    remoteMessage: 'RemoteError: Remote "missing" failed: Unknown method "missing"',
    remoteName: "RemoteError",
  });
  await stop(t, client);
});

// --- Timeouts and cancellation -------------------------------------------------------------

Deno.test("Client.call() with timeoutMs rejects with TimeoutError and fires the server handler's signal", async () => {
  await using t = startServer();
  await using client = connect(t);
  await client.opened();
  const call = client.call("awaitAbort", [], { timeoutMs: 30 });
  const signal = await t.abortStarted.promise;
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof DOMException, String(error));
    assert.equal(error.name, "TimeoutError");
    assert.equal(error.message, 'Call "awaitAbort" timed out after 30 ms');
    return true;
  });
  assert.equal(client.peer!.stats.pendingCalls, 0);
  const reason = await t.aborted.promise;
  assert.ok(signal.aborted);
  assert.ok(reason instanceof DOMException);
  assert.equal(reason.name, "AbortError");
  // A round trip later the server's handler has finished and the late reply was dropped.
  assert.deepEqual(await client.call("echo", [1]), [1]);
  assert.equal(t.peers[0].stats.runningHandlers, 0);
  assert.equal(client.peer!.stats.pendingCalls, 0);
  await stop(t, client);
});

Deno.test("Client.call() rejects with signal.reason on abort and fires the server handler's signal", async () => {
  await using t = startServer();
  await using client = connect(t);
  const controller = new AbortController();
  const call = client.call("awaitAbort", [], { signal: controller.signal });
  const signal = await t.abortStarted.promise;
  assert.equal(client.peer!.stats.pendingCalls, 1);
  const reason = new Error("user cancelled");
  controller.abort(reason);
  await assert.rejects(call, (error: unknown) => error === reason);
  assert.equal(client.peer!.stats.pendingCalls, 0, "settled at once, before any reply");
  const remote = await t.aborted.promise;
  assert.ok(signal.aborted);
  assert.equal((remote as DOMException).name, "AbortError");
  assert.deepEqual(await client.call("echo", [2]), [2]);
  assert.equal(t.peers[0].stats.runningHandlers, 0);
  await stop(t, client);
});

// --- Limits -------------------------------------------------------------------------------

Deno.test("Client.call() rejects LimitError message-too-big for an outgoing call over the limit", async () => {
  await using t = startServer();
  await using client = connect(t, { maxMessageBytes: 1024 });
  await client.opened();
  await assert.rejects(client.call("echo", ["x".repeat(1024)]), (error: unknown) => {
    assert.ok(error instanceof LimitError);
    assert.equal(error.code, "message-too-big");
    assert.equal(error.message, 'Cannot call "echo": message over 1024 bytes (maxMessageBytes)');
    assert.equal(error.closeCode, undefined);
    return true;
  });
  assert.deepEqual(await client.call("echo", [1]), [1]);
  await stop(t, client);
});

Deno.test("Client closes with 1009 when a reply is over its maxMessageBytes", async () => {
  await using t = startServer();
  await using client = connect(t, { maxMessageBytes: 1024, reconnect: false });
  await client.opened();
  const peer = client.peer!;
  await assert.rejects(client.call("big", [2000]), (error: unknown) => {
    assert.ok(error instanceof DisconnectedError);
    assert.equal(error.closeCode, 1009);
    assert.match(error.closeReason, /^message too big$/i);
    assert.match(
      error.message,
      /^Cannot complete "big": connection closed \(1009 message too big\)$/i,
    );
    return true;
  });
  assert.equal(peer.stats.pendingCalls, 0);
  await stop(t, client);
});

// --- Disconnects --------------------------------------------------------------------------

Deno.test("Client.call() rejects with DisconnectedError when the server goes away", async () => {
  await using t = startServer({ shutdownGraceMs: 0 });
  await using client = connect(t, { reconnect: false });
  const gate = t.nextGate();
  const call = client.call("gate");
  const open = await gate;
  const peer = client.peer!;
  const rejected = assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof DisconnectedError);
    assert.equal(error.closeCode, 1001);
    assert.equal(error.closeReason, "Server shutting down");
    assert.equal(error.method, "gate");
    return true;
  });
  await t.server.shutdown(); // the call may fail before shutdown() resolves
  await rejected;
  open.resolve(null); // the handler ends; its reply has nowhere to go
  assert.equal(peer.stats.pendingCalls, 0);
  assert.equal(t.server.connections, 0);
  await client.close();
});

Deno.test("Client.call() rejects with DisconnectedError when the server-side peer closes", async () => {
  const serverPeer = deferred<Peer>();
  await using t = startServer({ onConnection: (peer) => serverPeer.resolve(peer) });
  await using client = connect(t, { reconnect: false });
  const gate = t.nextGate();
  const call = client.call("gate");
  const open = await gate;
  (await serverPeer.promise).close(4001, "Kicked");
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof DisconnectedError);
    assert.equal(error.closeCode, 4001);
    assert.equal(error.closeReason, "Kicked");
    return true;
  });
  open.resolve(null);
  await stop(t, client);
});

Deno.test("Client.call() after close() rejects with ClosedError", async () => {
  await using t = startServer();
  await using client = connect(t);
  await client.opened();
  await client.close();
  await assert.rejects(client.call("echo"), (error: unknown) => {
    assert.ok(error instanceof ClosedError);
    assert.equal(error.message, 'Cannot call "echo": client is closed');
    return true;
  });
  assert.throws(() => client.notify("echo"), ClosedError);
  await stop(t, client);
});

Deno.test("Client with a wrong secret and no reconnect goes dead; waiting calls reject ChannelDeadError", async () => {
  await using t = startServer();
  await using client = connect(t, { secret: SharedSecret.generate(), reconnect: false });
  await assert.rejects(client.call("echo"), ChannelDeadError);
  assert.equal(client.state, "dead");
  assert.equal(t.peers.length, 0);
  await stop(t, client);
});

// --- Options ------------------------------------------------------------------------------

Deno.test("Client() throws TypeError for a URL endpoint without a secret", () => {
  assert.throws(
    () => new Client("ws://127.0.0.1:9/", { heartbeat: false }),
    (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.equal(error.message, "Cannot create client: a URL endpoint needs options.secret");
      return true;
    },
  );
});

Deno.test("Client() throws RangeError naming an out-of-range option", () => {
  const secret = SharedSecret.generate();
  const cases: [ClientOptions, string][] = [
    [{ reconnect: { delaysMs: [-1] } }, "reconnect.delaysMs[0]"],
    [{ reconnect: { maxDelayMs: 1.5 } }, "reconnect.maxDelayMs"],
    [{ reconnect: { jitter: 2 } }, "reconnect.jitter"],
    [{ connectTimeoutMs: 0 }, "connectTimeoutMs"],
    [{ heartbeat: { intervalMs: 0 } }, "heartbeat.intervalMs"],
    [{ maxQueuedNotifications: -1 }, "maxQueuedNotifications"],
    [{ maxMessageBytes: 0 }, "maxMessageBytes"],
  ];
  for (const [options, name] of cases) {
    assert.throws(
      () => new Client("ws://127.0.0.1:9/", { secret, heartbeat: false, ...options }),
      (error: unknown) => {
        assert.ok(error instanceof RangeError, name);
        assert.ok(error.message.includes(name), error.message);
        return true;
      },
    );
  }
});

Deno.test("Client.close() rejects calls in flight with ClosedError, not DisconnectedError", async () => {
  await using t = startServer();
  await using client = connect(t);
  const gate = t.nextGate();
  const call = client.call("gate");
  const open = await gate;
  await client.close();
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof ClosedError, String(error));
    assert.equal(error.method, "gate");
    return true;
  });
  open.resolve(null);
  await stop(t, client);
});

Deno.test("Client with secretInQuery adds ?secret= to the URL, and a browser's protocols put the hex first", async () => {
  const secret = SharedSecret.generate();
  const seen: { url: string; protocols: string | null }[] = [];
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    seen.push({ url: request.url, protocols: request.headers.get("sec-websocket-protocol") });
    const offered = request.headers.get("sec-websocket-protocol")?.split(",")[0].trim();
    const { socket, response } = Deno.upgradeWebSocket(request, { protocol: offered });
    socket.addEventListener("message", (event) => {
      const { id } = JSON.parse(event.data);
      socket.send(JSON.stringify({ id, result: null })); // a seed server: hello answered null
    });
    return response;
  });
  for (const secretVia of ["header", "protocol"] as const) {
    await using client = new Client(`ws://127.0.0.1:${server.addr.port}/path?x=1`, {
      secret,
      auth: "secret",
      secretVia,
      secretInQuery: true,
      heartbeat: false,
      reconnect: false,
      logger: quiet,
    });
    assert.equal(await client.call("anything"), null);
    assert.equal(client.peer?.remote, undefined, "a seed server");
  }
  assert.equal(seen.length, 2);
  for (const { url } of seen) {
    assert.equal(new URL(url).searchParams.get("secret"), secret.toHex());
    assert.equal(new URL(url).searchParams.get("x"), "1");
  }
  assert.equal(seen[0].protocols, null);
  assert.equal(seen[1].protocols, `${secret.toHex()}, mist.v1`);
});

Deno.test("Client.closed, Peer.close() and LocalServer.closed resolve once each is closed", async () => {
  await using t = startServer();
  await using client = connect(t);
  await client.opened();
  const serverPeer = await t.nextPeer();
  let clientClosed = false;
  client.closed.then(() => clientClosed = true);
  await serverPeer.close(4001, "Bye"); // awaitable, like client.close()
  assert.deepEqual(serverPeer.closeInfo, { code: 4001, reason: "Bye" });
  assert.equal(clientClosed, false, "a dropped connection does not close the client");
  await client.close();
  assert.equal(clientClosed, true);
  await client.close(); // again: already closed, resolves at once
  let serverClosed = false;
  t.server.closed.then(() => serverClosed = true);
  await t.server.shutdown();
  await t.server.closed;
  assert.equal(serverClosed, true);
});
