/**
 * The server's idle check over real loopback sockets, its timer driven by a fake clock: a quiet
 * client is sent `$/ping`, a client that answers (or sends anything) stays, a silent one is
 * closed with 1001.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DisconnectedError } from "../errors.ts";
import { IDLE_CLOSE_REASON } from "../_idle_watch.ts";
import { FakeClock } from "./_fake_clock.ts";
import { connect, ScriptedPeer, startServer, stop, turn, within } from "./_helpers.ts";

const IDLE_MS = 1000;
const PERIOD_MS = IDLE_MS / 2;

/** Reads the next frame and checks that it is a `$/ping` request; returns its id. */
async function nextPing(scripted: ScriptedPeer): Promise<number> {
  const frame = JSON.parse(await within(scripted.next(), "the server's $/ping"));
  assert.equal(frame.method, "$/ping");
  assert.deepEqual(frame.params, []);
  assert.equal(typeof frame.id, "number");
  return frame.id;
}

Deno.test("serveLocal() pings a quiet client each silent period and keeps it while it answers", async () => {
  const clock = new FakeClock();
  await using t = startServer({ clock, idleTimeoutMs: IDLE_MS });
  await using scripted = await ScriptedPeer.connect(t.server.url, t.secret, { hello: true });
  const peer = await t.nextPeer();
  assert.deepEqual(clock.pending.map(({ delay }) => delay), [PERIOD_MS]);
  for (let round = 1; round <= 3; round++) {
    clock.advance(PERIOD_MS); // a period with no frame: ping
    assert.equal(peer.stats.pendingCalls, 1);
    const id = await nextPing(scripted);
    scripted.send(JSON.stringify({ id, result: null }));
    // Frames are handled in order: once this echo is answered, the server has read the answer.
    assert.deepEqual(await scripted.echo(round), { id: round, result: ["still here"] });
    assert.equal(peer.stats.pendingCalls, 0);
    clock.advance(PERIOD_MS); // frames came: neither a close nor another ping
    assert.equal(peer.closeInfo, undefined);
    assert.equal(peer.stats.pendingCalls, 0);
  }
  assert.equal(scripted.received.filter((frame) => frame.includes("$/ping")).length, 3);
  await stop(t, scripted);
  assert.deepEqual(clock.pending, []);
});

Deno.test("serveLocal() closes a client that sends nothing for a period after a ping with 1001", async () => {
  const clock = new FakeClock();
  await using t = startServer({ clock, idleTimeoutMs: IDLE_MS });
  await using scripted = await ScriptedPeer.connect(t.server.url, t.secret, { hello: true });
  const peer = await t.nextPeer();
  clock.advance(PERIOD_MS);
  await nextPing(scripted);
  clock.advance(PERIOD_MS);
  assert.deepEqual(peer.closeInfo, { code: 1001, reason: IDLE_CLOSE_REASON });
  assert.deepEqual(await within(scripted.closed, "the close"), {
    code: 1001,
    reason: IDLE_CLOSE_REASON,
  });
  assert.deepEqual(clock.pending, [], "no connection left to watch, so no timer");
  await stop(t, scripted);
});

Deno.test("serveLocal() counts any frame as life: a client that never answers stays while it sends", async () => {
  const clock = new FakeClock();
  await using t = startServer({ clock, idleTimeoutMs: IDLE_MS });
  await using scripted = await ScriptedPeer.connect(t.server.url, t.secret, { hello: true });
  const peer = await t.nextPeer();
  clock.advance(PERIOD_MS);
  await nextPing(scripted);
  scripted.send('{"id":null,"method":"nope","params":[]}');
  await scripted.echo(1);
  clock.advance(PERIOD_MS);
  assert.equal(peer.closeInfo, undefined);
  assert.equal(peer.stats.pendingCalls, 1, "the first ping is still out; no second one");
  clock.advance(PERIOD_MS); // silent for a period: pinged again, as any quiet client
  assert.equal(peer.closeInfo, undefined);
  await nextPing(scripted);
  assert.equal(peer.stats.pendingCalls, 2);
  clock.advance(PERIOD_MS); // silent since that ping
  assert.deepEqual(peer.closeInfo, { code: 1001, reason: IDLE_CLOSE_REASON });
  assert.equal((await within(scripted.closed, "the close")).code, 1001);
  await stop(t, scripted);
});

Deno.test("serveLocal() takes an error reply to $/ping as an answer and pings again later", async () => {
  const clock = new FakeClock();
  await using t = startServer({ clock, idleTimeoutMs: IDLE_MS });
  await using scripted = await ScriptedPeer.connect(t.server.url, t.secret, { hello: true });
  const peer = await t.nextPeer();
  clock.advance(PERIOD_MS);
  const id = await nextPing(scripted);
  scripted.send(JSON.stringify({ id, error: 'Unknown method "$/ping"' }));
  await scripted.echo(1);
  assert.equal(peer.stats.pendingCalls, 0);
  clock.advance(PERIOD_MS); // frames came
  clock.advance(PERIOD_MS); // silent again: a new ping, not a close
  assert.equal(peer.closeInfo, undefined);
  assert.equal(peer.stats.pendingCalls, 1);
  await nextPing(scripted);
  await stop(t, scripted);
});

Deno.test("serveLocal() closes a silent client even when its ping cannot be sent", async () => {
  const clock = new FakeClock();
  await using t = startServer({ clock, idleTimeoutMs: IDLE_MS, maxPendingCalls: 1 });
  await using scripted = await ScriptedPeer.connect(t.server.url, t.secret, { hello: true });
  const peer = await t.nextPeer();
  const unanswered = peer.call("neverAnswered").catch((error) => error);
  clock.advance(PERIOD_MS); // the ping is refused locally: one call already pending
  await turn(); // let the refusal settle
  assert.equal(peer.stats.pendingCalls, 1);
  clock.advance(PERIOD_MS);
  assert.deepEqual(peer.closeInfo, { code: 1001, reason: IDLE_CLOSE_REASON });
  assert.ok(await unanswered instanceof DisconnectedError);
  assert.equal((await within(scripted.closed, "the close")).code, 1001);
  await stop(t, scripted);
});

Deno.test("serveLocal() pings a Mist client with heartbeat off, and the client answers by itself", async () => {
  const clock = new FakeClock();
  await using t = startServer({ clock, idleTimeoutMs: IDLE_MS });
  await using client = connect(t);
  assert.deepEqual(await client.call("echo", [1]), [1]);
  const peer = await t.nextPeer();
  clock.advance(PERIOD_MS); // the echo was a frame
  assert.equal(peer.stats.pendingCalls, 0);
  clock.advance(PERIOD_MS);
  assert.equal(peer.stats.pendingCalls, 1);
  // The client answers the ping as it reads it; a call sent after that answer is read after it.
  await client.call("echo", [2]);
  await client.call("echo", [3]);
  assert.equal(peer.stats.pendingCalls, 0);
  clock.advance(PERIOD_MS);
  assert.equal(peer.closeInfo, undefined);
  assert.equal(client.state, "open");
  await stop(t, client);
});

Deno.test("serveLocal() shares one idle timer, and pings a later connection only after a silent period", async () => {
  const clock = new FakeClock();
  await using t = startServer({ clock, idleTimeoutMs: IDLE_MS });
  await using first = await ScriptedPeer.connect(t.server.url, t.secret, { hello: true });
  const firstPeer = await t.nextPeer();
  clock.advance(PERIOD_MS / 2);
  await using second = await ScriptedPeer.connect(t.server.url, t.secret, { hello: true });
  const secondPeer = await t.nextPeer();
  assert.deepEqual(clock.pending, [{ due: PERIOD_MS, delay: PERIOD_MS }], "one timer for both");
  clock.advance(PERIOD_MS / 2); // the first is pinged; the second was quiet for half a period
  await nextPing(first);
  assert.equal(secondPeer.stats.pendingCalls, 0);
  clock.advance(PERIOD_MS); // the first stayed silent after its ping; the second is pinged
  assert.deepEqual(firstPeer.closeInfo, { code: 1001, reason: IDLE_CLOSE_REASON });
  await nextPing(second);
  assert.equal(secondPeer.closeInfo, undefined);
  await stop(t, first, second);
  assert.deepEqual(clock.pending, []);
});

Deno.test("LocalServer.shutdown() stops the idle check of the connections it closes", async () => {
  const clock = new FakeClock();
  await using t = startServer({ clock, idleTimeoutMs: IDLE_MS });
  await using scripted = await ScriptedPeer.connect(t.server.url, t.secret, { hello: true });
  assert.equal(clock.pending.length, 1);
  await t.server.shutdown();
  assert.deepEqual(clock.pending, []);
  assert.equal((await within(scripted.closed, "the close")).code, 1001);
});

Deno.test("serveLocal() with idleTimeoutMs 0 sets no idle timer", async () => {
  const clock = new FakeClock();
  await using t = startServer({ clock, idleTimeoutMs: 0 });
  await using scripted = await ScriptedPeer.connect(t.server.url, t.secret, { hello: true });
  assert.deepEqual(await scripted.echo(1), { id: 1, result: ["still here"] });
  assert.deepEqual(clock.pending, []);
  await stop(t, scripted);
});
