/**
 * Resume without loss (PROTOCOL.md §8) from the built clients: the Node bundle under the
 * machine's Node (`tests/fixtures/node_resume_client.mjs`) and the browser bundle in headless
 * Chromium (`tests/fixtures/browser_page.html`), each connected to `serveLocal` through a TCP
 * relay (`./_relay.ts`) that is cut while calls run both ways: every call settles with its own
 * result, every handler runs once, and the client comes back on one new connection to the same
 * session. Then a reloaded page is a new session: the old one, suspended on the server, is not
 * resumed by it and ends after the grace period, failing the call that was pending on it.
 *
 * `tests/resume_test.ts` proves the same for the Deno client, with the fallbacks.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Client, DisconnectedError, HandlerRegistry, type Peer } from "../mod.ts";
import { build } from "../tools/build.ts";
import { ensureChromium, launchChromium } from "./_chromium.ts";
import { startServer, stop, tempDir, within } from "./_helpers.ts";
import { startRelay } from "./_relay.ts";
import { STEP_TIMEOUT_MS } from "./fixtures/mist_server.ts";
import { runNodeScript } from "./_node_script.ts";

/** Calls in flight each way when the relay is cut. */
const CALLS = 20;
/** How long each of those calls runs in its handler. */
const HANDLER_MS = 500;
/** The server's grace period for a suspended session (the reload part waits it out). */
const GRACE_MS = 3_000;

const NODE_CLIENT = new URL("./fixtures/node_resume_client.mjs", import.meta.url);
const PAGE = new URL("./fixtures/browser_page.html", import.meta.url);

/** 0, 1, … CALLS − 1, each as a settled call shows it. */
const EXPECTED = Array.from({ length: CALLS }, (_, i) => ({ ok: i }));
/** Each of the CALLS handlers ran once. */
const ONCE_EACH = Object.fromEntries(EXPECTED.map(({ ok }) => [ok, 1]));

/**
 * The server's handlers: `slow [ms, i]` counts its runs of each i and answers i after ms
 * (`finished` counts the answers); `echo`.
 */
function counting() {
  const state = { runs: new Map<number, number>(), finished: 0 };
  const registry = new HandlerRegistry()
    .register("slow", async ([ms, i]) => {
      state.runs.set(Number(i), (state.runs.get(Number(i)) ?? 0) + 1);
      await new Promise((resolve) => setTimeout(resolve, Number(ms)));
      state.finished++;
      return i;
    })
    .register("echo", (params) => params);
  return { registry, state };
}

/** The server calling `method` [HANDLER_MS, i] CALLS times on `peer`; `settled` counts. */
function callMany(peer: Peer, method: string) {
  const progress = { settled: 0 };
  const calls = Array.from(
    { length: CALLS },
    (_, i) =>
      peer.call(method, [HANDLER_MS, i], { timeoutMs: STEP_TIMEOUT_MS })
        .finally(() => progress.settled++),
  );
  return { progress, results: settled(calls) };
}

/** Each call as `{ok: result}` or `{error: name, message}`. */
async function settled(calls: Promise<unknown>[]): Promise<unknown[]> {
  return (await Promise.allSettled(calls)).map((outcome) =>
    outcome.status === "fulfilled"
      ? { ok: outcome.value }
      : { error: outcome.reason?.name, message: String(outcome.reason?.message) }
  );
}

/** The runs per i, as an object (the shape JSON gives it). */
function runsOf(runs: Map<number, number>): Record<string, number> {
  return Object.fromEntries(runs);
}

async function until(what: string, check: () => boolean): Promise<void> {
  await within(
    (async () => {
      while (!check()) await new Promise((resolve) => setTimeout(resolve, 5));
    })(),
    what,
    STEP_TIMEOUT_MS,
  );
}

Deno.test("Node client resumes a cut connection: 20 calls in flight each way settle with their own results, each handler runs once, one reconnection", async () => {
  await using dist = await tempDir("mist-node-resume-dist-");
  const bundle = (await build(dist.path)).node;
  const server = counting();
  await using t = startServer({ registry: server.registry });
  await using relay = startRelay(t.server.port);

  await using child = runNodeScript(NODE_CLIENT, [
    new URL(`file://${bundle}`).href,
    `ws://127.0.0.1:${relay.port}/`,
    t.secret.toHex(),
    String(CALLS),
    String(HANDLER_MS),
  ]);
  const { phase } = child;

  await phase("open");
  const peer = await within(t.nextPeer(), "the Node client's session");
  // The server calls the client's "node.slow" while the client calls the server's "slow".
  const down = callMany(peer, "node.slow");
  await phase("inflight"); // the client's calls are sent, the server's run in the client
  await until("the server's handlers to start", () => server.state.runs.size === CALLS);
  // Both ways in flight: no handler has answered yet.
  assert.equal(server.state.finished, 0);
  assert.equal(down.progress.settled, 0);
  relay.cut(); // a network drop: no close frame either way

  // Client to server: each call resolved with its own result, each handler ran once.
  const up = await phase("settled");
  assert.deepEqual(up.results, EXPECTED);
  assert.deepEqual(runsOf(server.state.runs), ONCE_EACH);
  // Server to client: the same.
  assert.deepEqual(await within(down.results, "the server's calls"), EXPECTED);
  peer.notify("node.finish", []);
  const done = await phase("done");
  assert.deepEqual(done.runs, ONCE_EACH);

  // One reconnection, which resumed the session: the same peer on both sides.
  assert.equal(relay.accepted, 2, "one reconnection");
  assert.equal(done.sameSession, true, "the client kept its session");
  assert.deepEqual(t.peers, [peer], "no new session on the server");
  assert.equal(peer.closeInfo, undefined);
  assert.deepEqual(peer.remote?.features, ["binary", "resume"]);
  const states = done.states as string[];
  assert.equal(states.filter((state) => state === "open").length, 2, `states: ${states}`);
  assert.ok(!states.includes("dead"), `states: ${states}`);

  const status = await within(child.status, "the Node client to exit");
  assert.equal(status.code, 0, await child.stderr);
  await stop(t);
});

Deno.test("Chromium client resumes a cut connection (20 calls in flight each way, each run once, one reconnection); a reloaded page is a new session", async () => {
  await ensureChromium();
  await using dist = await tempDir("mist-browser-resume-dist-");
  await using profile = await tempDir("mist-chromium-resume-profile-");
  const bundle = await Deno.readTextFile((await build(dist.path)).js);
  const html = await Deno.readTextFile(PAGE);
  const server = counting();
  await using t = startServer({ registry: server.registry, resume: { graceMs: GRACE_MS } });
  await using relay = startRelay(t.server.port);
  // The page finds the server through GET /endpoint: the relay. While `paused`, it answers 503
  // and the page keeps retrying, without connecting.
  const endpoint = { url: `ws://127.0.0.1:${relay.port}/`, secret: t.secret.toHex() };
  let paused = false;
  await using http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { pathname } = new URL(request.url);
    const headers = { "cache-control": "no-store" };
    if (pathname === "/") {
      return new Response(html, { headers: { ...headers, "content-type": "text/html" } });
    }
    if (pathname === "/mist_client.js") {
      return new Response(bundle, { headers: { ...headers, "content-type": "text/javascript" } });
    }
    if (pathname === "/endpoint") {
      return paused
        ? new Response("Paused\n", { status: 503, headers })
        : Response.json(endpoint, { headers });
    }
    return new Response("Not found\n", { status: 404 });
  });

  await using context = await launchChromium(profile.path);
  const pageErrors: string[] = [];
  const tab = await context.newPage();
  tab.on("pageerror", (error) => pageErrors.push(String(error)));
  await tab.goto(`http://127.0.0.1:${http.addr.port}/`);
  await tab.waitForFunction(() =>
    (globalThis as unknown as PageGlobals).mist?.states.includes("open")
  );
  const peer = await within(t.nextPeer(), "the page's session");
  assert.deepEqual(peer.remote?.features, ["binary", "resume"]);

  // The page's handlers: "page.slow" [ms, i] counts its runs and answers i after ms;
  // "page.hang" never answers. Then the page calls the server's "slow" CALLS times, and the
  // server the page's "page.slow".
  await tab.evaluate(({ calls, ms }) => {
    const page = globalThis as unknown as PageGlobals;
    const client = page.mist.client;
    const test: PageTest = { runs: {}, hangs: 0, calls: [], session: client.peer };
    page.test = test;
    client.registry
      .register("page.slow", async ([ms, i]) => {
        test.runs[Number(i)] = (test.runs[Number(i)] ?? 0) + 1;
        await new Promise((resolve) => setTimeout(resolve, Number(ms)));
        return i;
      })
      .register("page.hang", () => {
        test.hangs++;
        return new Promise(() => {});
      });
    test.calls = Array.from(
      { length: calls },
      (_, i) => client.call("slow", [ms, i], { timeoutMs: 15_000 }),
    );
  }, { calls: CALLS, ms: HANDLER_MS });
  const down = callMany(peer, "page.slow");
  await until("the server's handlers to start", () => server.state.runs.size === CALLS);
  await tab.waitForFunction(
    (calls) => Object.keys((globalThis as unknown as PageGlobals).test.runs).length === calls,
    CALLS,
  );
  assert.equal(server.state.finished, 0);
  assert.equal(down.progress.settled, 0);
  relay.cut();

  // Page to server: each call resolved with its own result, each handler ran once.
  const up = await tab.evaluate(async () => {
    const settled = await Promise.allSettled((globalThis as unknown as PageGlobals).test.calls);
    return settled.map((outcome) =>
      outcome.status === "fulfilled"
        ? { ok: outcome.value }
        : { error: outcome.reason?.name, message: String(outcome.reason?.message) }
    );
  });
  assert.deepEqual(up, EXPECTED);
  assert.deepEqual(runsOf(server.state.runs), ONCE_EACH);
  // Server to page: the same.
  assert.deepEqual(await within(down.results, "the server's calls"), EXPECTED);
  assert.deepEqual(
    await tab.evaluate(() => (globalThis as unknown as PageGlobals).test.runs),
    ONCE_EACH,
  );
  // One reconnection, which resumed the session: the same peer on both sides.
  assert.equal(relay.accepted, 2, "one reconnection");
  assert.equal(
    await tab.evaluate(() => {
      const page = globalThis as unknown as PageGlobals;
      return page.mist.client.peer === page.test.session;
    }),
    true,
    "the page kept its session",
  );
  assert.deepEqual(t.peers, [peer], "no new session on the server");
  assert.equal(peer.closeInfo, undefined);
  const states = await tab.evaluate(() => [...(globalThis as unknown as PageGlobals).mist.states]);
  assert.equal(states.filter((state) => state === "open").length, 2, `states: ${states}`);

  // A reload is a new session. The server calls "page.hang" and the page's socket drops: the
  // session is suspended on the server, resumable, and the page cannot reconnect (503).
  const hanging = peer.call("page.hang", [], { timeoutMs: STEP_TIMEOUT_MS });
  hanging.catch(() => {});
  await tab.waitForFunction(() => (globalThis as unknown as PageGlobals).test.hangs === 1);
  paused = true;
  relay.cut();
  await until("the server to see the drop", () => t.server.connections === 0);
  assert.equal(peer.closeInfo, undefined, "suspended, not ended");
  // Reloaded (the old page's script is gone once this resolves), the page connects anew.
  await tab.reload();
  paused = false;
  const fresh = await within(t.nextPeer(), "the reloaded page's session");
  assert.notEqual(fresh, peer, "a new session");
  assert.deepEqual(fresh.remote?.features, ["binary", "resume"]);
  assert.equal(relay.accepted, 3);
  assert.equal(peer.closeInfo, undefined, "the old session is still suspended, not taken over");
  assert.deepEqual(
    await tab.evaluate(() => (globalThis as unknown as PageGlobals).mist.echo(["new page"])),
    ["new page"],
  );
  // Never resumed, the old session ends after the grace period, failing its pending call.
  const error = await within(
    hanging.then(() => assert.fail("page.hang resolved"), (error) => error),
    "the old session to end",
    GRACE_MS + STEP_TIMEOUT_MS,
  );
  assert.ok(error instanceof DisconnectedError, String(error));
  assert.equal(error.closeCode, 1006);
  assert.match(error.closeReason, /not resumed within 3000 ms/);
  assert.equal((await within(peer.closed, "the old session's end")).code, 1006);
  assert.equal(fresh.closeInfo, undefined);
  assert.deepEqual(t.peers, [peer, fresh]);

  await tab.evaluate(() => (globalThis as unknown as PageGlobals).mist.close());
  assert.deepEqual(pageErrors, []);
  await stop(t);
});

// ---------------------------------------------------------------------------------------------
// What the page exposes (tests/fixtures/browser_page.html) and what this test adds to it; the
// functions above that use them run inside Chromium, not here.

interface PageGlobals {
  mist: {
    client: Client;
    states: string[];
    echo(params: unknown[]): Promise<unknown>;
    close(): Promise<void>;
  };
  test: PageTest;
}

interface PageTest {
  /** Runs of "page.slow" per i. */
  runs: Record<number, number>;
  /** Runs of "page.hang". */
  hangs: number;
  /** The page's calls of "slow". */
  calls: Promise<unknown>[];
  /** The client's session (its peer) when the calls started. */
  session: unknown;
}
