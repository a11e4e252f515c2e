/**
 * Resume without loss (PROTOCOL.md §8): a TCP connection cut through a relay, with calls in
 * flight both ways and notifications, loses nothing and runs nothing twice; and each fallback
 * (server restarted, grace period over, buffer overflowed, a server without resume) ends in the
 * seed's behaviour: `DisconnectedError`, then a new connection. Over real loopback sockets.
 */

import assert from "node:assert/strict";
import { type Client, DisconnectedError, HandlerRegistry } from "../mod.ts";
import {
  connectTo,
  runToEnd,
  startServer,
  stop,
  succeeded,
  type TestServer,
  within,
} from "./_helpers.ts";
import type { ServeLocalOptions, Transport, TransportSink } from "../mod.ts";
import { type Relay, startRelay } from "./_relay.ts";

const CALLS = 100;
const NOTES = 100;

/** Handlers that count their runs: `sleep [ms, i]` answers i after ms; `note [i]` records i. */
function counting(): { registry: HandlerRegistry; runs: Map<number, number>; notes: number[] } {
  const runs = new Map<number, number>();
  const notes: number[] = [];
  const registry = new HandlerRegistry()
    .register("sleep", async ([ms, i]) => {
      runs.set(Number(i), (runs.get(Number(i)) ?? 0) + 1);
      await new Promise((resolve) => setTimeout(resolve, Number(ms)));
      return i;
    })
    .register("echo", (params) => params)
    .register("note", ([i]) => void notes.push(Number(i)));
  return { registry, runs, notes };
}

async function until(what: string, check: () => boolean, ms = 15_000): Promise<void> {
  await within(
    (async () => {
      while (!check()) await new Promise((resolve) => setTimeout(resolve, 5));
    })(),
    what,
    ms,
  );
}

function serve(options: ServeLocalOptions = {}) {
  const server = counting();
  const t = startServer({ registry: server.registry, ...options });
  return { t, server };
}

function client(port: number, t: TestServer, extra = {}): Client {
  return connectTo(`ws://127.0.0.1:${port}/`, t.secret, {
    reconnect: { delaysMs: [20], maxDelayMs: 50, deadAfterMs: 10_000 },
    ...extra,
  });
}

Deno.test("A cut connection resumes: 100 calls each way and notifications settle once, in order, nothing run twice", async () => {
  const { t, server } = serve();
  await using _t = t;
  await using relay = startRelay(t.server.port);
  const local = counting();
  await using c = client(relay.port, t, { registry: local.registry });
  await c.opened();
  const peer = await t.nextPeer();
  assert.deepEqual(peer.remote?.features, ["binary", "resume"]);
  const up = Array.from({ length: CALLS }, (_, i) => c.call("sleep", [300, i]));
  const down = Array.from({ length: CALLS }, (_, i) => peer.call("sleep", [300, i]));
  for (let i = 0; i < NOTES / 2; i++) {
    c.notify("note", [i]);
    peer.notify("note", [i]);
  }
  await until(
    "the handlers to start",
    () => server.runs.size === CALLS && local.runs.size === CALLS,
  );
  const clientPeer = c.peer!;
  relay.cut();
  // Sent after the cut, before either side noticed (and large text and bytes across the resume;
  // replaying them is proven directly by the Session test below).
  for (let i = NOTES / 2; i < NOTES; i++) {
    c.notify("note", [i]);
    peer.notify("note", [i]);
  }
  const text = "é✓".repeat(100_000);
  const bytes = new Uint8Array(300_000).map((_, i) => i * 7);
  const large = [c.call("echo", [text, bytes]), peer.call("echo", [bytes, text])];
  assert.deepEqual(await Promise.all(up), Array.from({ length: CALLS }, (_, i) => i));
  assert.deepEqual(await Promise.all(down), Array.from({ length: CALLS }, (_, i) => i));
  assert.deepEqual(await Promise.all(large), [[text, bytes], [bytes, text]]);
  await until(
    "every notification",
    () => server.notes.length >= NOTES && local.notes.length >= NOTES,
  );
  const inOrder = Array.from({ length: NOTES }, (_, i) => i);
  assert.deepEqual(server.notes, inOrder);
  assert.deepEqual(local.notes, inOrder);
  assert.ok([...server.runs.values()].every((n) => n === 1), "each request ran once on the server");
  assert.ok([...local.runs.values()].every((n) => n === 1), "each request ran once on the client");
  assert.equal(relay.accepted, 2, "one reconnection");
  assert.equal(c.peer, clientPeer, "the same session");
  assert.equal(t.peers.filter((p) => !p.closeInfo).length, 1);
  await stop(t, c);
});

Deno.test("Large binary messages sent while suspended are replayed intact, though their memory is reused", async () => {
  // Replies built in reused memory (_buffer_pool.ts) after the cut: each must be kept as it was
  // sent, not overwritten by the next one built in the same memory.
  const { t } = serve();
  await using _t = t;
  await using relay = startRelay(t.server.port);
  // The client comes back after the replies were built: they wait in the suspended session.
  await using c = client(relay.port, t, { reconnect: { delaysMs: [600], deadAfterMs: 10_000 } });
  await c.opened();
  const size = 1024 * 1024, count = 6;
  const pattern = (i: number) => new Uint8Array(size).map((_, j) => (j * 13 + i * 101) & 0xff);
  t.registry.register("pattern", async ([i, ms]) => {
    await new Promise((resolve) => setTimeout(resolve, Number(ms)));
    return pattern(Number(i));
  });
  const calls = Array.from({ length: count }, (_, i) => c.call("pattern", [i, 100]));
  await until("the calls to reach the server", () => t.peers[0]?.stats.runningHandlers === count);
  relay.cut();
  await until("the replies to be kept", () => t.peers[0].stats.runningHandlers === 0);
  const results = await within(Promise.all(calls), "the replies, after the resume");
  for (let i = 0; i < count; i++) assert.deepEqual(results[i], pattern(i), `reply ${i}`);
  assert.equal(relay.accepted, 2, "one reconnection");
  await stop(t, c);
});

Deno.test("A message bigger than the replay buffer pauses resume only until it is acknowledged", async () => {
  // One 64 KiB message through a 16 KiB buffer: while unacknowledged, a cut falls back...
  const { t } = serve({ resume: { maxBufferBytes: 16 * 1024 } });
  await using _t = t;
  await using relay = startRelay(t.server.port);
  await using c = client(relay.port, t);
  await c.opened();
  const big = "x".repeat(64 * 1024);
  assert.deepEqual(await c.call("echo", [big]), [big]); // the server's reply did not fit
  // ...once acknowledged (the client acknowledges 2 MiB or 250 ms later), the session resumes.
  await new Promise((resolve) => setTimeout(resolve, 400));
  const clientPeer = c.peer!;
  const calls = Array.from({ length: 10 }, (_, i) => c.call("sleep", [200, i]));
  await until("the calls to run", () => t.peers[0].stats.runningHandlers === 10);
  relay.cut();
  assert.deepEqual(await Promise.all(calls), Array.from({ length: 10 }, (_, i) => i));
  assert.equal(c.peer, clientPeer, "the same session");
  assert.equal(relay.accepted, 2);
  await stop(t, c);
});

/**
 * Cuts a connection with a `hang` call in flight and checks the seed's fallback: the call
 * rejects with `DisconnectedError` (never hangs, never resolves twice), the handler ran once,
 * and the client is open again on a new connection.
 */
async function fallsBack(
  t: TestServer,
  c: Client,
  relay: Relay,
  between: () => Promise<void> = async () => {},
): Promise<void> {
  await c.opened();
  let runs = 0;
  t.registry.register("hang", (_params, ctx) => {
    runs++;
    return new Promise((_resolve, reject) =>
      ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))
    );
  });
  const call = c.call("hang", []);
  await until("the call to run", () => runs === 1);
  relay.cut();
  await between();
  await within(assert.rejects(call, DisconnectedError), "the call to fail");
  await within(c.opened(), "a new connection");
  assert.deepEqual(await c.call("echo", ["again"]), ["again"]);
  assert.equal(runs, 1);
}

Deno.test("Resume falls back when the server restarted: DisconnectedError, then a new connection", async () => {
  const first = serve({ shutdownGraceMs: 0 });
  const port = first.t.server.port;
  await using relay = startRelay(port);
  await using c = client(relay.port, first.t, {
    reconnect: { delaysMs: [300], deadAfterMs: 10_000 },
  });
  let second: TestServer | undefined;
  await fallsBack(first.t, c, relay, async () => {
    await first.t.server.shutdown();
    second = startServer({ port, secret: first.t.secret }); // same port and secret, no sessions
  });
  second!.registry.register("hang", () => new Promise(() => {}));
  await stop(second!, c);
});

Deno.test("Resume falls back when the grace period ended: the server forgot the session", async () => {
  const { t } = serve({ resume: { graceMs: 100 } });
  await using _t = t;
  await using relay = startRelay(t.server.port);
  // The first retry comes after the grace period.
  await using c = client(relay.port, t, { reconnect: { delaysMs: [600], deadAfterMs: 10_000 } });
  await fallsBack(t, c, relay);
  assert.ok(t.peers[0].closeInfo, "the suspended session ended on the server");
  await stop(t, c);
});

Deno.test("Resume falls back when the replay buffer overflowed while suspended", async () => {
  const { t } = serve({ resume: { maxBufferMessages: 10 } });
  await using _t = t;
  await using relay = startRelay(t.server.port);
  await using c = client(relay.port, t, { reconnect: { delaysMs: [200], deadAfterMs: 10_000 } });
  await fallsBack(t, c, relay, async () => {
    const server = t.peers[0];
    // The server notices the cut, then sends more than its buffer keeps.
    await until("the server to notice", () => server.stats.pendingCalls === 0);
    for (let i = 0; i < 20; i++) server.notify("note", [i]);
  });
  assert.equal(t.peers[0].closeInfo?.code, 1006);
  await stop(t, c);
});

Deno.test("Without resume on either side, a cut fails the calls in flight and reconnects (the seed's behaviour)", async () => {
  for (const [serverResume, clientResume] of [[false, undefined], [undefined, false]] as const) {
    const { t } = serve({ resume: serverResume });
    await using _t = t;
    await using relay = startRelay(t.server.port);
    await using c = client(relay.port, t, { resume: clientResume });
    await c.opened();
    assert.deepEqual((await t.nextPeer()).remote?.features, ["binary"]);
    await fallsBack(t, c, relay);
    await stop(t, c);
  }
});

Deno.test("The replay buffer releases each message once acknowledged: 300 MiB through a 64 MiB heap", async () => {
  // Kept acknowledged frames until the array was compacted, this ran out of heap (fatal OOM).
  const script = new URL("./fixtures/resume_memory.ts", import.meta.url).pathname;
  const output = succeeded(
    await runToEnd(Deno.execPath(), [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-read",
      "--v8-flags=--max-old-space-size=64",
      script,
    ], { timeoutMs: 60_000 }),
    "300 sequential 1 MiB calls with resume on",
  );
  assert.match(output.stdout, /^ok \d+/);
});

/**
 * A link for the Session tests: records what is sent (bytes copied, as a socket takes them),
 * then lets `afterSend` see the frame; `drop` ends it without a close frame.
 */
function fakeLink(afterSend?: (frame: string | Uint8Array) => void) {
  const sent: (string | Uint8Array)[] = [];
  let sink: TransportSink | undefined;
  const transport: Transport = {
    bufferedAmount: 0,
    start: (s) => void (sink = s),
    send: (frame) => {
      sent.push(typeof frame === "string" ? frame : frame.slice());
      afterSend?.(frame);
    },
    close: () => sink?.closed(1006, ""),
  };
  return { transport, sent, drop: () => sink!.closed(1006, "") };
}

Deno.test("Session replays exactly the unacknowledged messages, large text and bytes unchanged", async () => {
  const { Session } = await import("../_session.ts");
  const { realClock } = await import("../clock.ts");
  const first = fakeLink();
  let suspended = 0;
  const session = new Session(
    first.transport,
    { maxBufferBytes: 1 << 24, maxBufferMessages: 100 },
    realClock,
    {
      suspended: () => void suspended++,
    },
  );
  session.start({ frame() {}, closed() {} });
  session.begin("token");
  const text = `{"id":null,"method":"n","params":["${"é✓".repeat(50_000)}"]}`;
  const frames = ['{"id":1,"method":"a","params":[]}', text, new Uint8Array([1, 2, 3])];
  for (const frame of frames) session.send(frame);
  first.drop();
  assert.equal(suspended, 1);
  assert.ok(session.suspended);
  const second = fakeLink();
  assert.ok(session.adopt(second.transport, 1)); // the other side got message 1 only
  assert.deepEqual(second.sent, frames.slice(1));
  session.close(1000, "done");
});

Deno.test("Session lends kept messages to a socket, never gives them: a second replay sends the same bytes", async () => {
  // Mist's socket frames (masks) in place a pooled message that only its sender holds; a kept
  // message replayed must stay intact for the next replay.
  const { Session } = await import("../_session.ts");
  const { realClock } = await import("../clock.ts");
  const { releaseBuffer, soleHolder, takeBuffer } = await import("../_buffer_pool.ts");
  const framedInPlace = (frame: string | Uint8Array) => {
    if (typeof frame !== "string" && soleHolder(frame)) frame.fill(0); // what masking does to it
  };
  let current = fakeLink(framedInPlace);
  const session = new Session(
    current.transport,
    { maxBufferBytes: 1 << 24, maxBufferMessages: 10 },
    realClock,
  );
  session.start({ frame() {}, closed() {} });
  session.begin("token");
  const message = takeBuffer(1 << 20).fill(7); // as the peer builds a large binary message
  session.send(message);
  releaseBuffer(message); // the send queue is done with it
  for (let round = 1; round <= 2; round++) {
    current.drop();
    current = fakeLink(framedInPlace);
    assert.ok(session.adopt(current.transport, 0), `resume ${round}`);
    const [replayed, ...more] = current.sent;
    assert.equal(more.length, 0);
    assert.ok(replayed instanceof Uint8Array && replayed.length === 1 << 20);
    assert.ok(replayed.every((byte) => byte === 7), `replay ${round} sent the message as it was`);
  }
  session.close(1000, "done");
});

Deno.test("The server's sessions together never hold more than maxTotalBufferBytes for clients that do not acknowledge", async () => {
  const { SessionTable } = await import("../_session_table.ts");
  const { realClock } = await import("../clock.ts");
  const { quiet } = await import("./_helpers.ts");
  const table = new SessionTable(
    {
      graceMs: 1000,
      maxSuspended: 4,
      maxBufferBytes: 1 << 20,
      maxBufferMessages: 10_000,
      maxTotalBufferBytes: 1 << 20,
    },
    realClock,
    quiet,
  );
  const sink: Transport = { bufferedAmount: 0, start() {}, send() {}, close() {} };
  const sessions = Array.from({ length: 4 }, () => table.create(sink));
  for (const session of sessions) {
    session.start({ frame() {}, closed() {} });
    session.issue();
    session.begin();
  }
  // Each client is sent 512 KiB it never acknowledges: 2 MiB asked for, 1 MiB allowed.
  const frame = "x".repeat(1024);
  for (const session of sessions) for (let i = 0; i < 512; i++) session.send(frame);
  assert.ok(table.bufferedBytes <= 1 << 20, `held ${table.bufferedBytes}`);
  assert.ok(table.bufferedBytes > 0);
  // The sessions that went over dropped what they kept: until the client acknowledges what
  // was dropped, they cannot be resumed...
  const resumable = sessions.map((session) => session.resumable);
  assert.ok(resumable.filter((can) => !can).length >= 2, `resumable: ${resumable}`);
  // ...and everything is released when they end.
  for (const session of sessions) session.close(1000, "done");
  assert.equal(table.bufferedBytes, 0);
});

Deno.test("The server keeps at most maxSuspended sessions: the one suspended longest ends first", async () => {
  const { SessionTable } = await import("../_session_table.ts");
  const { realClock } = await import("../clock.ts");
  const { quiet } = await import("./_helpers.ts");
  const table = new SessionTable(
    {
      graceMs: 60_000,
      maxSuspended: 2,
      maxBufferBytes: 1 << 20,
      maxBufferMessages: 100,
      maxTotalBufferBytes: 1 << 20,
    },
    realClock,
    quiet,
  );
  const closed: string[] = [];
  const sessions = ["a", "b", "c"].map((name) => {
    let sink: TransportSink | undefined;
    const link: Transport = {
      bufferedAmount: 0,
      start: (s) => void (sink = s),
      send() {},
      close() {},
    };
    const session = table.create(link);
    session.start({ frame() {}, closed: (code) => void closed.push(`${name} ${code}`) });
    session.issue();
    session.begin();
    return { session, drop: () => sink!.closed(1006, "") };
  });
  for (const { drop } of sessions) drop(); // a, then b, then c lose their sockets
  assert.equal(table.suspended, 2);
  assert.deepEqual(closed, ["a 1006"]); // a's peer sees the close: its calls fail
  assert.deepEqual(sessions.map(({ session }) => session.suspended), [false, true, true]);
  table.endAll();
  assert.equal(table.suspended, 0);
});
