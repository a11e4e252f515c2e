/**
 * The browser client in a real browser: Debian's headless Chromium, driven by playwright-core,
 * loads a page that imports the bundle (`tools/build.ts`), connects with the subprotocol form of
 * the secret, calls both ways, and reconnects through its `{url, secret}` provider when the
 * server restarts on a new port with a new secret. A page from a foreign origin is refused. Bytes
 * (a `Uint8Array`, an `ArrayBuffer`) travel both ways, in params, results and notifications, and
 * arrive as `Uint8Array`s with the same contents (PROTOCOL.md §2).
 *
 * Chromium is required: when `tools/ensure_chromium.sh` cannot provide it, this test fails.
 *
 * @module
 */
import assert from "node:assert/strict";
import { build } from "../tools/build.ts";
import { startDemoServer, STEP_TIMEOUT_MS } from "./fixtures/mist_server.ts";
import { nagleLine, type NagleTiming, tempDir } from "./_helpers.ts";
import { ensureChromium, launchChromium } from "./_chromium.ts";

const FOREIGN_HOST = "foreign.test";
const PAGE = new URL("./fixtures/browser_page.html", import.meta.url);

Deno.test("Client in headless Chromium: hex-first subprotocol secret, calls both ways (with bytes), reconnect through the provider, foreign origin refused", async () => {
  await ensureChromium();
  await using dist = await tempDir("mist-browser-dist-");
  await using profile = await tempDir("mist-chromium-profile-");
  const bundle = await Deno.readTextFile((await build(dist.path)).js);
  const page = await Deno.readTextFile(PAGE);

  await using first = await startDemoServer();
  let endpoint = { url: first.server.url, secret: first.secret.toHex() };
  await using http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { pathname } = new URL(request.url);
    const headers = { "cache-control": "no-store" };
    if (pathname === "/" || pathname === "/index.html") {
      return new Response(page, { headers: { ...headers, "content-type": "text/html" } });
    }
    if (pathname === "/mist_client.js") {
      return new Response(bundle, { headers: { ...headers, "content-type": "text/javascript" } });
    }
    if (pathname === "/endpoint") return Response.json(endpoint, { headers });
    return new Response("Not found\n", { status: 404 });
  });
  const origin = `http://127.0.0.1:${http.addr.port}`;
  const foreignOrigin = `http://${FOREIGN_HOST}:${http.addr.port}`;

  await using context = await launchChromium(profile.path, [
    // The foreign page's host resolves to loopback: no traffic leaves the machine.
    `--host-resolver-rules=MAP ${FOREIGN_HOST} 127.0.0.1`,
  ]);
  const pageErrors: string[] = [];
  const tab = await context.newPage();
  tab.on("pageerror", (error) => pageErrors.push(String(error)));
  await tab.goto(`${origin}/`);
  await tab.waitForFunction(() => "mist" in globalThis);

  // Connects with the bare hex first (what every server accepts); the server selects mist.v1.
  await tab.waitForFunction(() => globalThis.mist.states.includes("open"));
  const opening = await tab.evaluate(() => globalThis.mist.sockets[0]);
  assert.deepEqual(opening.protocols, [first.secret.toHex(), "mist.v1"]);
  assert.equal(opening.selected, "mist.v1");
  assert.equal(opening.url, first.server.url);

  // Browser to server.
  assert.deepEqual(
    await tab.evaluate(() => globalThis.mist.echo(["hello", 42, { nested: [true] }])),
    [
      "hello",
      42,
      { nested: [true] },
    ],
  );

  // Bytes, browser to server and back, each shown by the page as "<class>:<hex>": Uint8Arrays
  // with the bytes sent, never objects of indices. The view was at offset 2 of "xxpagexx".
  assert.deepEqual(await tab.evaluate(() => globalThis.mist.bytes()), {
    echo: [
      "Uint8Array:00017f80ff",
      { nested: { view: "Uint8Array:70616765", raw: "Uint8Array:090807" } },
      "text",
    ],
    result: "Uint8Array:0726456483a2",
    callback: "Uint8Array:030201",
    note: "sent",
  });
  // The page's notification with bytes, as the server's handler got it.
  assert.equal(first.notes.length, 1);
  const [[byteNote]] = first.notes as [[{ blob: unknown }]];
  assert.ok(byteNote.blob instanceof Uint8Array, `note: ${Deno.inspect(byteNote)}`);
  assert.deepEqual(byteNote, { blob: new Uint8Array([0xde, 0xad]) });

  // Server to browser: from the server's handle on the connection, and as a callback.
  const serverSide = await first.peers.next("the page's connection");
  assert.equal(
    await serverSide.call("page.greet", ["server"], { timeoutMs: STEP_TIMEOUT_MS }),
    `Hello server, from ${origin}`,
  );
  // The server sends bytes to the page: a notification, then a call whose reply (which follows
  // the notification) carries the page's reversed bytes back as a Uint8Array.
  serverSide.notify("page.note", [{ blob: new Uint8Array([0xbe, 0xef]) }, "text"]);
  const reversed = await serverSide.call("page.reverse", [new Uint8Array([1, 2, 3, 250])], {
    timeoutMs: STEP_TIMEOUT_MS,
  });
  assert.ok(reversed instanceof Uint8Array, `page.reverse: ${Deno.inspect(reversed)}`);
  assert.deepEqual(reversed, new Uint8Array([250, 3, 2, 1]));
  // What the page's handlers received from the server: Uint8Arrays with the bytes sent.
  assert.deepEqual(await tab.evaluate(() => [...globalThis.mist.reversed]), [
    "Uint8Array:010203",
    "Uint8Array:010203fa",
  ]);
  assert.deepEqual(await tab.evaluate(() => [...globalThis.mist.noted]), [
    [{ blob: "Uint8Array:beef" }, "text"],
  ]);
  assert.equal(
    await tab.evaluate(() => globalThis.mist.callback("callback")),
    `Hello callback, from ${origin}`,
  );

  // Informational: a notification then a call, in the browser.
  console.log(
    `browser: ${nagleLine(await tab.evaluate(() => globalThis.mist.notifyThenCall(50)))}`,
  );

  // Restart: the old server goes away, a new one comes up on a new port with a new secret.
  await first.server.shutdown();
  await using second = await startDemoServer(first.server.port);
  assert.notEqual(second.secret.toHex(), first.secret.toHex());
  endpoint = { url: second.server.url, secret: second.secret.toHex() };

  await tab.waitForFunction(() =>
    globalThis.mist.states.filter((state) => state === "open").length >= 2
  );
  const states = await tab.evaluate(() => [...globalThis.mist.states]);
  assert.equal(states[0], "open");
  assert.equal(states.at(-1), "open");
  assert.ok(states.includes("reconnecting"), `states: ${states.join(", ")}`);
  assert.ok(!states.includes("dead"), `states: ${states.join(", ")}`);
  const last = await tab.evaluate(() => globalThis.mist.sockets.at(-1)!);
  assert.deepEqual(last.protocols, [second.secret.toHex(), "mist.v1"]);
  assert.equal(last.url, second.server.url);
  assert.equal(last.selected, "mist.v1");

  assert.deepEqual(await tab.evaluate(() => globalThis.mist.echo(["again"])), ["again"]);
  const serverSide2 = await second.peers.next("the page's new connection");
  assert.equal(
    await serverSide2.call("page.greet", ["new server"], { timeoutMs: STEP_TIMEOUT_MS }),
    `Hello new server, from ${origin}`,
  );
  assert.deepEqual(await tab.evaluate(() => [...globalThis.mist.served]), [
    "server",
    "callback",
    "new server",
  ]);
  assert.equal(second.server.connections, 1);

  // A page from a foreign origin, with the right secret, is refused before the upgrade.
  const foreign = await context.newPage();
  foreign.on("pageerror", (error) => pageErrors.push(String(error)));
  await foreign.goto(`${foreignOrigin}/`);
  assert.equal(await foreign.evaluate(() => location.origin), foreignOrigin);
  await foreign.waitForFunction(() => "mist" in globalThis);
  const refusal = await second.refusals.next("the foreign page's refusal");
  assert.match(refusal, /403 Origin not allowed$/);
  await foreign.waitForFunction(() => globalThis.mist.states.includes("reconnecting"));
  const foreignStates = await foreign.evaluate(() => [...globalThis.mist.states]);
  assert.ok(!foreignStates.includes("open"), `states: ${foreignStates.join(", ")}`);
  assert.equal(
    await foreign.evaluate(() => globalThis.mist.sockets.some((s) => s.opened)),
    false,
  );
  assert.equal(second.server.connections, 1);
  assert.equal(second.peers.items.length, 1);

  await foreign.evaluate(() => globalThis.mist.close());
  await tab.evaluate(() => globalThis.mist.close());
  assert.deepEqual(pageErrors, []);
});

// ---------------------------------------------------------------------------------------------
// What the page exposes; the functions above run inside Chromium, not here.

interface PageSocket {
  url: string;
  protocols: string[] | null;
  selected: string | null;
  opened: boolean;
}

interface PageMist {
  states: string[];
  served: string[];
  sockets: PageSocket[];
  /** What page.reverse and page.note received, shown as "<class>:<hex>" per byte value. */
  reversed: unknown[];
  noted: unknown[];
  echo(params: unknown[]): Promise<unknown>;
  callback(name: string): Promise<unknown>;
  /** The byte checks from the page: echo, a bytes result, a callback, a notification. */
  bytes(): Promise<Record<string, unknown>>;
  notifyThenCall(rounds: number): Promise<NagleTiming>;
  close(): Promise<void>;
}

declare global {
  /** The page's `window.mist`; only defined inside Chromium (`evaluate`, `waitForFunction`). */
  var mist: PageMist;
}
