/**
 * Tests for the client's reconnect behaviour: the exact backoff schedule and the 30 s dead
 * signal (driven by a fake clock), and reconnection over real loopback sockets to a server
 * restarted on a new port with a new secret.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Client, type ClientOptions, type Endpoint, StateChangeEvent } from "../client.ts";
import { ChannelDeadError, ClosedError, DisconnectedError } from "../errors.ts";
import { HandlerRegistry } from "../registry.ts";
import { SharedSecret } from "../secret.ts";
import { type LocalServer, serveLocal } from "../server.ts";
import { FakeClock } from "./_fake_clock.ts";
import { freePort, nextState, quiet } from "./_helpers.ts";

/** Every state change of `client`, plus a way to await the next one. */
function recordStates(client: Client): {
  events: StateChangeEvent[];
  next: () => Promise<StateChangeEvent>;
} {
  const events: StateChangeEvent[] = [];
  const unread: StateChangeEvent[] = [];
  const waiting: ((event: StateChangeEvent) => void)[] = [];
  client.addEventListener("statechange", (event) => {
    const change = event;
    events.push(change);
    const resolve = waiting.shift();
    if (resolve) resolve(change);
    else unread.push(change);
  });
  const next = () =>
    unread.length > 0
      ? Promise.resolve(unread.shift()!)
      : new Promise<StateChangeEvent>((resolve) => waiting.push(resolve));
  return { events, next };
}

/**
 * A server that can be shut down and started again on a new port with a new secret; its
 * `provider` always answers the current endpoint. Each start gets its own registry, whose
 * handlers record what reached that generation.
 */
class RestartableServer {
  generation = 0;
  server!: LocalServer;
  secret!: SharedSecret;
  /** Notifications ("note") received, per generation. */
  readonly notes: unknown[][][] = [];
  /** The n-th entry resolves when the n-th "hang" handler starts, with its signal. */
  readonly hanging: PromiseWithResolvers<AbortSignal>[] = [];
  #hangs = 0;
  /** Releases every "hang" handler. */
  readonly release: PromiseWithResolvers<void> = Promise.withResolvers();
  providerCalls = 0;

  constructor() {
    this.start();
  }

  readonly provider = (): Endpoint => {
    this.providerCalls++;
    return { url: this.server.url, secret: this.secret };
  };

  start(): LocalServer {
    const generation = ++this.generation;
    const notes: unknown[][] = [];
    this.notes[generation] = notes;
    const registry = new HandlerRegistry()
      .register("echo", (params) => [generation, ...params])
      .register("note", (params) => void notes.push(params))
      .register("hang", (_params, context) => {
        this.#hangSlot(this.#hangs++).resolve(context.signal);
        return this.release.promise.then(() => "released");
      });
    this.secret = SharedSecret.generate();
    this.server = serveLocal({
      secret: this.secret,
      registry,
      shutdownGraceMs: 0,
      logger: quiet,
    });
    return this.server;
  }

  /** Waits until the n-th "hang" handler (0-based) started; returns its signal. */
  hangStarted(n: number): Promise<AbortSignal> {
    return this.#hangSlot(n).promise;
  }

  #hangSlot(n: number): PromiseWithResolvers<AbortSignal> {
    while (this.hanging.length <= n) this.hanging.push(Promise.withResolvers());
    return this.hanging[n];
  }

  async stop(): Promise<void> {
    await this.server.shutdown();
  }

  /** Stops the server and waits until `client` has seen the drop and is reconnecting. */
  async dropUnder(client: Client): Promise<void> {
    const reconnecting = nextState(client, "reconnecting");
    await this.stop();
    await reconnecting;
  }

  /** `await using servers = new RestartableServer()` releases the handlers and shuts it down. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.release.resolve();
    await this.server.shutdown();
  }
}

/** A client of `servers` with the heartbeat off and a silent logger. */
function clientOf(servers: RestartableServer, options: ClientOptions = {}): Client {
  return new Client(servers.provider, { heartbeat: false, logger: quiet, ...options });
}

// ---------------------------------------------------------------------------------------------
// The schedule, with a fake clock

Deno.test("Client retries with delays 100, 200, 400, 1000, 2000, then 5000 ms, and goes dead 30 s after the start", async () => {
  const port = freePort();
  const clock = new FakeClock();
  const secret = SharedSecret.generate();
  let provided = 0;
  await using client = new Client(() => {
    provided++;
    return { url: `ws://127.0.0.1:${port}/`, secret };
  }, { clock, heartbeat: false, logger: quiet });
  const { events, next } = recordStates(client);
  const waiting = client.call("echo", ["waiting"]);
  const waitingRejected = assert.rejects(waiting, (error: unknown) => {
    assert.ok(error instanceof ChannelDeadError, String(error));
    assert.equal(error.deadAfterMs, 30_000);
    assert.equal(error.method, "echo");
    return true;
  });

  const delays: number[] = [];
  for (;;) {
    // Attempts fail asynchronously (a refused TCP connect): wait for the failure to be reported.
    const event = await next();
    assert.equal(event.state, "reconnecting");
    delays.push(event.delayMs!);
    assert.equal(event.attempt, delays.length + 1, "the attempt number of the next attempt");
    assert.equal(provided, delays.length, "the provider is called before every attempt");
    // Only the retry timer and the give-up timer are left (the connect timeout was cleared).
    const retryDue = clock.now() + event.delayMs!;
    assert.deepEqual(
      clock.pending,
      [{ due: retryDue, delay: event.delayMs! }, { due: 30_000, delay: 30_000 }]
        .sort((a, b) => a.due - b.due),
    );
    if (retryDue >= 30_000) break;
    assert.deepEqual(clock.runNext(), { due: retryDue, delay: event.delayMs! });
  }
  assert.deepEqual(delays, [100, 200, 400, 1000, 2000, 5000, 5000, 5000, 5000, 5000, 5000]);
  assert.equal(clock.now(), 28_700);

  // The give-up timer fires before the next retry.
  assert.deepEqual(clock.runNext(), { due: 30_000, delay: 30_000 });
  assert.equal(client.state, "dead");
  const dead = events.at(-1)!;
  assert.equal(dead.state, "dead");
  assert.equal(dead.delayMs, undefined);
  assert.equal(await next(), dead);
  await waitingRejected;
  assert.equal(client.stats.waitingCalls, 0);

  // No further attempt: no timer is left, and time passing calls the provider no more.
  assert.deepEqual(clock.pending, []);
  assert.equal(clock.advance(600_000), 0);
  assert.equal(provided, 11);
  assert.equal(client.state, "dead");

  // While dead: calls reject at once and notifications throw, with the same error class.
  await assert.rejects(client.call("echo"), ChannelDeadError);
  assert.throws(() => client.notify("note"), ChannelDeadError);

  // An explicit connect() starts again, with a fresh schedule and a fresh give-up time.
  client.connect();
  const connecting = await next();
  assert.equal(connecting.state, "connecting");
  assert.equal(connecting.attempt, 1);
  assert.equal(provided, 12);
  const again = await next();
  assert.equal(again.state, "reconnecting");
  assert.equal(again.delayMs, 100);
  assert.equal(again.attempt, 2);
  assert.deepEqual(clock.pending, [
    { due: 630_000 + 100, delay: 100 },
    { due: 630_000 + 30_000, delay: 30_000 },
  ]);

  await client.close();
  assert.equal(client.state, "closed");
  assert.deepEqual(clock.pending, [], "close() clears every timer");
});

Deno.test("Client counts the 30 s give-up time from the moment the connection dropped", async () => {
  const clock = new FakeClock();
  await using servers = new RestartableServer();
  await using client = clientOf(servers, { clock });
  const { next } = recordStates(client);
  assert.equal((await next()).state, "open");
  assert.deepEqual(clock.pending, [], "no timers while open with the heartbeat off");
  clock.advance(12_345); // a long healthy connection
  await servers.stop();
  const first = await next();
  assert.equal(first.state, "reconnecting");
  assert.equal(first.attempt, 1);
  assert.equal(first.delayMs, 100);
  assert.ok(first.error instanceof DisconnectedError);
  assert.equal(first.error.closeCode, 1001);
  assert.deepEqual(clock.pending, [
    { due: 12_345 + 100, delay: 100 },
    { due: 12_345 + 30_000, delay: 30_000 },
  ]);
  const delays = [first.delayMs!];
  const nextTimer = () => clock.pending.at(0)!;
  while (nextTimer().delay !== 30_000) {
    clock.runNext();
    const event = await next();
    assert.equal(event.state, "reconnecting");
    delays.push(event.delayMs!);
  }
  assert.deepEqual(delays, [100, 200, 400, 1000, 2000, 5000, 5000, 5000, 5000, 5000, 5000]);
  clock.runNext();
  assert.equal(client.state, "dead");
  assert.equal(clock.now(), 12_345 + 30_000);
  await client.close();
  assert.deepEqual(clock.pending, []);
});

Deno.test("Client retries a provider that throws like a failed attempt", async () => {
  const clock = new FakeClock();
  let provided = 0;
  await using client = new Client(() => {
    provided++;
    throw new Error("native side not ready");
  }, { clock, heartbeat: false, logger: quiet });
  const { next } = recordStates(client);
  const first = await next();
  assert.equal(first.state, "reconnecting");
  assert.equal(first.delayMs, 100);
  assert.match(String(first.error), /native side not ready/);
  clock.runNext();
  const second = await next();
  assert.equal(second.delayMs, 200);
  assert.equal(provided, 2);
});

Deno.test("Client gives up an attempt that does not open within connectTimeoutMs (on its clock)", async () => {
  // A TCP server that accepts and never answers the upgrade request.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const clock = new FakeClock();
  const secret = SharedSecret.generate();
  await using client = new Client(
    () => ({ url: `ws://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/`, secret }),
    { clock, heartbeat: false, logger: quiet, connectTimeoutMs: 1234 },
  );
  const { next } = recordStates(client);
  using _conn = await accepted; // held open, never answered
  assert.deepEqual(clock.pending, [
    { due: 1234, delay: 1234 },
    { due: 30_000, delay: 30_000 },
  ]);
  clock.runNext();
  const event = await next();
  assert.equal(event.state, "reconnecting");
  assert.equal(event.delayMs, 100);
  assert.ok(event.error instanceof DisconnectedError, String(event.error));
  assert.equal(event.error.closeCode, 1006);
  assert.equal(event.error.closeReason, "No connection within 1234 ms");
});

// ---------------------------------------------------------------------------------------------
// Reconnecting to a restarted server, over real loopback sockets

Deno.test("Client rejects calls in flight at the drop with DisconnectedError", async () => {
  await using servers = new RestartableServer();
  await using client = clientOf(servers);
  await client.opened();
  const inFlight = client.call("hang", ["x"]);
  const signal = await servers.hangStarted(0);
  const reconnecting = nextState(client, "reconnecting");
  const rejected = assert.rejects(inFlight, (error: unknown) => {
    assert.ok(error instanceof DisconnectedError, String(error));
    assert.equal(error.closeCode, 1001);
    assert.equal(error.closeReason, "Server shutting down");
    assert.equal(error.method, "hang");
    return true;
  });
  await servers.stop(); // the call may fail before shutdown() resolves
  await rejected;
  assert.ok(signal.aborted, "the server's handler was told");
  const event = await reconnecting;
  assert.equal(event.attempt, 1);
  assert.equal(event.delayMs, 100);
  assert.equal(client.peer, undefined);
});

Deno.test("Client delivers calls made while reconnecting to the server restarted on a new port with a new secret", async () => {
  await using servers = new RestartableServer();
  await using client = clientOf(servers);
  await client.opened();
  assert.deepEqual(await client.call("echo", ["before"]), [1, "before"]);
  const oldPort = servers.server.port;
  const oldSecret = servers.secret.toHex();
  await servers.dropUnder(client);

  const later = [client.call("echo", ["a"]), client.call("echo", ["b"])];
  assert.equal(client.stats.waitingCalls, 2);
  const opened = nextState(client, "open");
  servers.start();
  assert.notEqual(servers.server.port, oldPort);
  assert.notEqual(servers.secret.toHex(), oldSecret);

  assert.deepEqual(await Promise.all(later), [[2, "a"], [2, "b"]]);
  const open = await opened;
  assert.ok(open.attempt >= 1);
  assert.equal(client.state, "open");
  assert.equal(client.stats.waitingCalls, 0);
  assert.equal(client.peer!.stats.pendingCalls, 0);
  assert.ok(servers.providerCalls >= 2, "the provider was asked again");
});

Deno.test("Client.call() with timeoutMs made while reconnecting goes out after the reconnect", async () => {
  await using servers = new RestartableServer();
  await using client = clientOf(servers);
  await client.opened();
  await servers.dropUnder(client);
  // The time left is handed to the connection's peer once open; it must still be accepted.
  const call = client.call("echo", ["timed"], { timeoutMs: 5000 });
  assert.equal(client.stats.waitingCalls, 1);
  servers.start();
  assert.deepEqual(await call, [2, "timed"]);
  assert.equal(client.peer!.stats.pendingCalls, 0);
});

Deno.test("Client.call() with timeoutMs made before the first connection opened is delivered", async () => {
  await using servers = new RestartableServer();
  await using client = clientOf(servers);
  assert.equal(client.state, "connecting");
  assert.deepEqual(await client.call("echo", ["first"], { timeoutMs: 5000 }), [1, "first"]);
});

Deno.test("Client.call() retried as soon as an in-flight call failed with DisconnectedError waits for the reconnect", async () => {
  await using servers = new RestartableServer();
  await using client = clientOf(servers);
  await client.opened();
  const inFlight = client.call("hang");
  await servers.hangStarted(0);
  const stopped = servers.stop();
  // A supervisor that retries on DisconnectedError, right in its catch block.
  const retried = Promise.allSettled([
    inFlight.catch((error) => {
      assert.ok(error instanceof DisconnectedError, String(error));
      return client.call("echo", ["retry"]);
    }),
  ]);
  await stopped;
  servers.start();
  assert.deepEqual(await retried, [{ status: "fulfilled", value: [2, "retry"] }]);
});

Deno.test("Client.notify() right after an in-flight call failed with DisconnectedError is queued, not thrown", async () => {
  await using servers = new RestartableServer();
  await using client = clientOf(servers);
  await client.opened();
  const inFlight = client.call("hang");
  await servers.hangStarted(0);
  const stopped = servers.stop();
  const notified = Promise.allSettled([
    inFlight.catch(() => client.notify("note", ["after drop"])),
  ]);
  await stopped;
  assert.deepEqual(await notified, [{ status: "fulfilled", value: undefined }]);
  servers.start();
  assert.deepEqual(await client.call("echo", ["flush"]), [2, "flush"]);
  assert.deepEqual(servers.notes[2], [["after drop"]]);
});

Deno.test("Client.close() during the first connection attempt leaves no socket open", async () => {
  await using servers = new RestartableServer();
  await using client = clientOf(servers);
  assert.equal(client.state, "connecting");
  const call = client.call("echo");
  await client.close();
  await assert.rejects(call, ClosedError);
  assert.equal(client.state, "closed");
});

Deno.test("Client with reconnect: false goes dead on the first failure", async () => {
  const port = freePort();
  const secret = SharedSecret.generate();
  let provided = 0;
  await using client = new Client(() => {
    provided++;
    return { url: `ws://127.0.0.1:${port}/`, secret };
  }, { reconnect: false, heartbeat: false, logger: quiet });
  const call = client.call("echo");
  const dead = await nextState(client, "dead");
  assert.ok(dead.error instanceof DisconnectedError, String(dead.error));
  await assert.rejects(call, ChannelDeadError);
  assert.equal(provided, 1);
  assert.equal(client.stats.waitingCalls, 0);
});

Deno.test("Client with reconnect.jitter lengthens each delay by at most that fraction", async () => {
  const port = freePort();
  const clock = new FakeClock();
  const secret = SharedSecret.generate();
  await using client = new Client(() => ({ url: `ws://127.0.0.1:${port}/`, secret }), {
    clock,
    reconnect: { jitter: 0.5 },
    heartbeat: false,
    logger: quiet,
  });
  const { next } = recordStates(client);
  const bases = [100, 200, 400, 1000, 2000, 5000, 5000];
  for (const base of bases) {
    const event = await next();
    assert.equal(event.state, "reconnecting");
    assert.ok(
      event.delayMs! >= base && event.delayMs! <= base * 1.5,
      `${event.delayMs} for ${base}`,
    );
    assert.equal(clock.pending[0].delay, event.delayMs);
    clock.runNext();
  }
});

Deno.test("Client asks the provider before every attempt, so a stale secret is replaced", async () => {
  await using servers = new RestartableServer();
  await using client = clientOf(servers);
  await client.opened();
  await servers.dropUnder(client);
  // The new server is up, but the provider still hands out the old secret: refused (401).
  const staleSecret = servers.secret;
  servers.start();
  const freshSecret = servers.secret;
  servers.secret = staleSecret;
  const refused = nextState(client, "reconnecting");
  const calls = servers.providerCalls;
  const retry = await refused;
  assert.ok(servers.providerCalls > calls);
  assert.ok(retry.error instanceof DisconnectedError, String(retry.error));
  assert.notEqual(client.state, "open");
  // Now the provider knows the new secret.
  servers.secret = freshSecret;
  await client.opened();
  assert.deepEqual(await client.call("echo", ["ok"]), [2, "ok"]);
});

Deno.test("Client sends notifications queued while disconnected in order after reconnecting", async () => {
  await using servers = new RestartableServer();
  await using client = clientOf(servers);
  await client.opened();
  await servers.dropUnder(client);
  for (let i = 1; i <= 5; i++) client.notify("note", [i]);
  assert.deepEqual(client.stats, {
    waitingCalls: 0,
    queuedNotifications: 5,
    droppedNotifications: 0,
  });
  servers.start();
  // A call made after the notifications goes out after them on the same socket.
  assert.deepEqual(await client.call("echo", ["flush"]), [2, "flush"]);
  assert.deepEqual(servers.notes[2], [[1], [2], [3], [4], [5]]);
  assert.equal(client.stats.queuedNotifications, 0);
});

Deno.test("Client drops the oldest queued notifications beyond maxQueuedNotifications and counts them", async () => {
  await using servers = new RestartableServer();
  await using client = clientOf(servers, { maxQueuedNotifications: 3 });
  await client.opened();
  await servers.dropUnder(client);
  for (let i = 1; i <= 7; i++) client.notify("note", [i]);
  assert.deepEqual(client.stats, {
    waitingCalls: 0,
    queuedNotifications: 3,
    droppedNotifications: 4,
  });
  servers.start();
  assert.deepEqual(await client.call("echo", ["flush"]), [2, "flush"]);
  assert.deepEqual(servers.notes[2], [[5], [6], [7]]);
  assert.equal(client.stats.droppedNotifications, 4);
});

Deno.test("Client with maxQueuedNotifications: 0 drops and counts every notification while disconnected", async () => {
  await using servers = new RestartableServer();
  await using client = clientOf(servers, { maxQueuedNotifications: 0 });
  await client.opened();
  await servers.dropUnder(client);
  client.notify("note", [1]);
  client.notify("note", [2]);
  assert.deepEqual(client.stats, {
    waitingCalls: 0,
    queuedNotifications: 0,
    droppedNotifications: 2,
  });
  servers.start();
  assert.deepEqual(await client.call("echo", ["flush"]), [2, "flush"]);
  assert.deepEqual(servers.notes[2], []);
});

Deno.test("Client with failFast rejects calls at once while disconnected", async () => {
  await using servers = new RestartableServer();
  await using client = clientOf(servers, { failFast: true });
  // Not client.opened(): with failFast it rejects while connecting (see the next test).
  if (client.state !== "open") await nextState(client, "open");
  await servers.dropUnder(client);
  const call = client.call("echo", ["x"]);
  assert.equal(client.stats.waitingCalls, 0, "nothing waits");
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof DisconnectedError, String(error));
    assert.equal(error.closeCode, 1006);
    assert.equal(error.method, "echo");
    return true;
  });
  assert.equal(client.state, "reconnecting", "rejected before any new attempt finished");
  const opened = nextState(client, "open");
  servers.start();
  await opened;
  assert.deepEqual(await client.call("echo", ["y"]), [2, "y"]);
});

Deno.test("Client.opened() with failFast waits for the connection instead of rejecting", async () => {
  await using servers = new RestartableServer();
  await using client = clientOf(servers, { failFast: true });
  assert.equal(client.state, "connecting");
  // failFast is documented for calls; opened() is how an application waits for the link.
  await client.opened();
  assert.equal(client.state, "open");
});

Deno.test("Client.call() waiting for a connection rejects with TimeoutError after its timeoutMs, on its clock", async () => {
  const clock = new FakeClock();
  await using servers = new RestartableServer();
  await using client = clientOf(servers, { clock });
  await client.opened();
  await servers.dropUnder(client);
  const call = client.call("echo", [], { timeoutMs: 20 });
  assert.equal(client.stats.waitingCalls, 1);
  clock.advance(20); // before the retry, due at 100 ms
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof DOMException, String(error));
    assert.equal(error.name, "TimeoutError");
    assert.equal(error.message, 'Call "echo" timed out after 20 ms');
    return true;
  });
  assert.equal(client.stats.waitingCalls, 0);
  assert.equal(client.state, "reconnecting");
});

Deno.test("Client.call() waiting for a connection rejects with the signal's reason when aborted", async () => {
  await using servers = new RestartableServer();
  await using client = clientOf(servers);
  await client.opened();
  await servers.dropUnder(client);
  const controller = new AbortController();
  const call = client.call("echo", [], { signal: controller.signal });
  assert.equal(client.stats.waitingCalls, 1);
  const reason = new Error("user navigated away");
  controller.abort(reason);
  await assert.rejects(call, (error: unknown) => error === reason);
  assert.equal(client.stats.waitingCalls, 0);
});

Deno.test("Client.call() with an invalid timeoutMs while reconnecting rejects with RangeError and leaves no waiter", async () => {
  await using servers = new RestartableServer();
  await using client = clientOf(servers);
  await client.opened();
  await servers.dropUnder(client);
  await assert.rejects(client.call("echo", [], { timeoutMs: -1 }), RangeError);
  assert.equal(client.stats.waitingCalls, 0);
});

Deno.test("Client.close() rejects calls waiting for a connection with ClosedError", async () => {
  await using servers = new RestartableServer();
  await using client = clientOf(servers);
  await client.opened();
  await servers.dropUnder(client);
  const call = client.call("echo");
  client.notify("note", [1]);
  const closed = nextState(client, "closed");
  await client.close();
  await assert.rejects(call, ClosedError);
  assert.equal((await closed).state, "closed");
  assert.deepEqual(client.stats, {
    waitingCalls: 0,
    queuedNotifications: 0,
    droppedNotifications: 0,
  });
});

Deno.test("StateChangeEvent reports connecting, open, reconnecting, open, closed in order", async () => {
  await using servers = new RestartableServer();
  await using client = clientOf(servers);
  const { events } = recordStates(client);
  await client.opened();
  await servers.dropUnder(client);
  servers.start();
  await client.opened();
  await client.close();
  const states = events.map((event) => event.state);
  // The constructor's "connecting" happens before any listener can be added.
  assert.equal(states[0], "open");
  assert.equal(states[1], "reconnecting");
  assert.equal(states.at(-2), "open");
  assert.equal(states.at(-1), "closed");
  assert.ok(
    states.slice(1, -2).every((state) => state === "reconnecting"),
    states.join(","),
  );
  assert.ok(events.every((event) => event instanceof StateChangeEvent));
});

Deno.test("Client does not start the delays over after a connection that closed at once", async () => {
  const clock = new FakeClock();
  const secret = SharedSecret.generate();
  // Accepts, answers the hello, then drops the connection: a flapping server.
  await using server = serveLocal({
    secret,
    logger: quiet,
    clock,
    onConnection: (peer) => peer.close(4001, "Go away"),
  });
  await using client = new Client(server.url, { secret, clock, heartbeat: false, logger: quiet });
  const { next } = recordStates(client);
  const delays: number[] = [];
  while (delays.length < 4) {
    const event = await next();
    if (event.state !== "reconnecting") continue;
    delays.push(event.delayMs!);
    clock.advance(event.delayMs!);
  }
  assert.deepEqual(delays, [100, 200, 400, 1000]);
});

Deno.test("Client starts the delays over after a connection that stayed up for stableAfterMs", async () => {
  const clock = new FakeClock();
  await using servers = new RestartableServer();
  await using client = clientOf(servers, { clock, reconnect: { stableAfterMs: 1000 } });
  const { next } = recordStates(client);
  assert.equal((await next()).state, "open");
  clock.advance(999);
  await servers.stop();
  assert.equal((await next()).delayMs, 100);
  servers.start();
  clock.advance(100);
  assert.equal((await next()).state, "open");
  await servers.stop(); // up for 0 ms: the delays go on
  assert.equal((await next()).delayMs, 200);
  servers.start();
  clock.advance(200);
  assert.equal((await next()).state, "open");
  clock.advance(1000); // stable now
  await servers.stop();
  assert.equal((await next()).delayMs, 100);
  await client.close();
});

Deno.test("Client with reconnect: false says why it is dead, not after how long", async () => {
  const port = freePort();
  await using client = new Client(`ws://127.0.0.1:${port}/`, {
    secret: SharedSecret.generate(),
    reconnect: false,
    heartbeat: false,
    logger: quiet,
  });
  await assert.rejects(client.call("echo"), (error: unknown) => {
    assert.ok(error instanceof ChannelDeadError);
    assert.equal(error.deadAfterMs, undefined);
    assert.doesNotMatch(error.message, /30000/);
    assert.match(error.message, /the connection failed and was not retried \(last error: .+\)$/);
    return true;
  });
});
