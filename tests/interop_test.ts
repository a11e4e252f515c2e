/**
 * Interoperability matrix (issue 11): Mist against test peers that behave on the wire like the
 * three programs it must talk to (`../shared/UPSTREAM.md` beside the project; the peers are in `tests/peers/`).
 *
 * Columns: Mist's server (`serveLocal` in-process, the demo handlers of `tools/demo_handlers.ts`
 * plus a `note` sink), the same on Node (the Node face, `server_node.ts`, in the fixture
 * `tests/fixtures/node_server.ts` under the machine's Node) and the upstream-style server
 * (`tests/peers/upstream_server.mjs`, Node + `ws`). Every row that runs against Mist's server
 * runs against both of its faces. Rows: Mist's client on Deno (in-process), on Node (the bundle of `tools/build.ts`) and
 * in headless Chromium (the page of `tests/fixtures/browser_page.html`); the webview-style and
 * Rust-style clients against Mist's server only. Plus two cells: a 17 MiB reply from the
 * upstream-style server to Mist's Deno client, and a by-name params call to a by-name route.
 *
 * Every cell checks: connected; an echo round trip; a remote error surfaces as an error; a
 * notification reaches the server; nothing was resolved by the wrong frame; nothing was
 * dropped. The upstream-style clients against Mist's server also stay idle longer than the
 * server's idle check (a short `idleTimeoutMs`) with a `callback` call in flight: they must stay
 * connected, their own calls must not be settled by server requests, and the callback call
 * must fail with a clear error. Each cell reports everything that went wrong in one message.
 *
 * @module
 */
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import type { BrowserContext } from "playwright-core";
import { Client, type ClientOptions } from "../client.ts";
import type { Logger } from "../log.ts";
import type { Peer } from "../peer.ts";
import { SharedSecret } from "../secret.ts";
import { type LocalServer, serveLocal } from "../server.ts";
import { build } from "../tools/build.ts";
import { createDemoRegistry } from "../tools/demo_handlers.ts";
import { quiet, within } from "./_helpers.ts";
import { ensureChromium, launchChromium } from "./_chromium.ts";
import { startNodeServer } from "./fixtures/node_harness.ts";
import { mistApi, runSteps } from "./peers/_script.mjs";
import {
  atMost,
  runMistNodeClient,
  runRustStyleClient,
  runWebviewClient,
  type ScriptRecord,
  startUpstreamServer,
  type Step,
} from "./peers/_spawn.ts";

const PAGE = new URL("./fixtures/browser_page.html", import.meta.url);
const SCRIPT_CORE = new URL("./peers/_script.mjs", import.meta.url);

/** How long a client may take to connect. */
const OPEN_MS = 4000;
/** How long one client's whole script may run. */
const SCRIPT_MS = 25_000;
/** Mist's server idle timeout in the upstream-client cells: pinged after 250–500 ms. */
const IDLE_TIMEOUT_MS = 500;
/** How long the upstream-style clients stay idle: longer than a whole idle check. */
const IDLE_MS = 1500;
/** A `sleep` call kept in flight over the idle period. */
const SLOW_MS = 1000;
/** The 17 MiB reply: over Mist's old 16 MiB limit, under the new 64 MiB one. */
const BIG_BYTES = 17 * 1024 * 1024;

const ECHO = ["hello", 42, { nested: [true], text: "héllo ✓" }];

/**
 * Mist's Deno and Node clients against the upstream-style server: by default they show the
 * secret with the mutual proof, which only Mist's servers accept; `auth: "secret"` is how a
 * user reaches a seed server. (The browser client's default already is "secret".)
 */
const UPSTREAM_CLIENT_OPTIONS: ClientOptions = { auth: "secret" };

// ---------------------------------------------------------------------------------------------
// What went wrong in a cell

/**
 * Handlers that throw on purpose in the cells, whose errors the server logs: the demo `fail`
 * method, and `callback` toward a seed client (it may not be called: NotNegotiatedError).
 */
const EXPECTED_THROWS =
  /^Request handler "fail" threw: |^Request handler "callback" threw: Cannot call "[^"]*": the client did not say \$\/hello|^\d+ more handlers threw /;

/** Collects every problem of one cell; `finish` fails with all of them. */
class Findings {
  readonly #problems: string[] = [];
  readonly #context: string[] = [];

  /** Adds a problem (one line: what was expected, what happened). */
  add(problem: string): void {
    this.#problems.push(problem);
  }

  /** Adds a line shown under the problems (stderr, what the page offered…). */
  context(line: string): void {
    if (line.trim() !== "") this.#context.push(line);
  }

  /** Fails the cell when anything went wrong. */
  finish(): void {
    if (this.#problems.length === 0) return;
    const context = this.#context.length === 0
      ? ""
      : `\n  context:\n    ${this.#context.join("\n").split("\n").slice(-20).join("\n    ")}`;
    assert.fail(
      `${this.#problems.length} problem(s):\n  - ${this.#problems.join("\n  - ")}${context}`,
    );
  }
}

/** JSON, cut to 300 characters, 64-hex runs (secrets) redacted. */
function show(value: unknown): string {
  const text = (typeof value === "string" ? value : JSON.stringify(value) ?? "undefined")
    .replace(/[0-9a-fA-F]{64}/g, "<hex>");
  return text.length <= 300 ? text : `${text.slice(0, 300)}… (${text.length} chars)`;
}

function at(records: ScriptRecord[], label: string): ScriptRecord | undefined {
  return records.find((record) => record.label === label);
}

function tail(text: string, lines = 8): string {
  return text.trim().split("\n").slice(-lines).join("\n");
}

// ---------------------------------------------------------------------------------------------
// The two servers

/** One cell's server and what it saw. `await using` stops it when the cell ends. */
interface CellServer extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  readonly secretHex: string;
  /** Whether the `note` notification with these params reached a handler (waits ≤ 2 s). */
  noted(params: unknown): Promise<boolean>;
  /** Every notification the server's handlers got. */
  notesSeen(): unknown[];
  /** Dropped or rejected frames, connections the server closed: each one a problem. */
  problems(): string[];
  /** Connection attempts refused before the upgrade, with why. */
  refusals(): string[];
  /** Connections accepted. */
  connections(): number;
  /** Requests the server got: `{method, params}` (the upstream-style server only). */
  requests(): Record<string, unknown>[];
  /** Stops it (once: later calls return the first one's promise). */
  stop(): Promise<void>;
}

/** `server` with its `stop` run once, and disposable by it. */
function cellServer(server: Omit<CellServer, typeof Symbol.asyncDispose>): CellServer {
  let stopped: Promise<void> | undefined;
  const stop = () => stopped ??= server.stop();
  return { ...server, stop, [Symbol.asyncDispose]: stop };
}

/** Mist's server: the demo handlers plus a `note` sink that records its params. */
function startMistServer(idleTimeoutMs?: number): CellServer {
  const secret = SharedSecret.generate();
  const notes: unknown[] = [];
  const refusals: string[] = [];
  const logLines: string[] = [];
  let stopping = false; // our own shutdown's 1001 is no problem
  const peers: Peer[] = [];
  const closes: string[] = [];
  const logger: Logger = {
    debug(message) {
      if (/^(Dropping|Ignoring)/.test(message)) logLines.push(message);
    },
    info(message) {
      if (message.startsWith("Refused")) refusals.push(message);
    },
    warn: (message) => EXPECTED_THROWS.test(message) || logLines.push(message),
    error: (message) => logLines.push(message),
  };
  // `stats` reads the connection count only once a request comes, after `server` is set.
  const demo = createDemoRegistry({ connections: () => server.connections, logger: quiet });
  demo.registry.register("note", (params) => void notes.push(params));
  const server: LocalServer = serveLocal({
    secret,
    registry: demo.registry,
    logger,
    idleTimeoutMs,
    onConnection(peer) {
      const n = peers.push(peer);
      peer.closed.then(({ code, reason }) => {
        if (code !== 1000 && !(stopping && code === 1001)) {
          closes.push(`connection ${n} closed with ${code} "${reason}"`);
        }
      });
    },
  });
  return cellServer({
    url: server.url,
    port: server.port,
    secretHex: secret.toHex(),
    noted: (params) => Promise.resolve(notes.some((note) => isDeepStrictEqual(note, params))),
    notesSeen: () => [...notes],
    problems() {
      const found: string[] = [];
      peers.forEach((peer, i) => {
        const { droppedFrames, rejectedFrames, binaryFrames } = peer.stats;
        if (droppedFrames + rejectedFrames + binaryFrames > 0) {
          found.push(
            `Mist's server, connection ${i + 1}: ${droppedFrames} frame(s) dropped, ` +
              `${rejectedFrames} rejected as invalid, ${binaryFrames} binary ignored`,
          );
        }
      });
      return [...found, ...closes, ...logLines.map((line) => `Mist's server logged: ${line}`)];
    },
    refusals: () => [...refusals],
    connections: () => peers.length,
    requests: () => [],
    async stop() {
      // Let the clients' closes land first, so that only connections still open get 1001.
      for (let i = 0; i < 40 && server.connections > 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      stopping = true;
      await server.shutdown();
    },
  });
}

/** Mist's server on Node: the fixture serves what `startMistServer` serves, and reports it. */
async function startMistNodeServer(idleTimeoutMs?: number): Promise<CellServer> {
  const node = await startNodeServer(idleTimeoutMs === undefined ? {} : { idleTimeoutMs });
  const where = "Mist's server on Node";
  let exitProblems: string[] = [];
  const logs = (match: (level: string, message: string) => boolean) =>
    node.seen("log").filter((event) => match(String(event.level), String(event.message)))
      .map((event) => String(event.message));
  return cellServer({
    url: node.url,
    port: node.port,
    secretHex: node.secretHex,
    async noted(params) {
      const match = (event: Record<string, unknown>) =>
        event.event === "note" && isDeepStrictEqual(event.params, params);
      return (await node.events.next(match, 2000)) !== undefined;
    },
    notesSeen: () => node.seen("note").map((event) => event.params),
    problems() {
      // Our own shutdown's 1001 is no problem: closes after "stopping".
      const stoppingAt = node.events.items.findIndex((event) => event.event === "stopping");
      const found: string[] = [];
      node.events.items.forEach((event, index) => {
        if (event.event !== "close") return;
        const { n, code, reason } = event;
        const counts = [event.dropped, event.rejected, event.binary] as number[];
        if (counts.some((count) => count > 0)) {
          found.push(
            `${where}, connection ${n}: ${counts[0]} frame(s) dropped, ${counts[1]} rejected as ` +
              `invalid, ${counts[2]} binary ignored`,
          );
        }
        if (code !== 1000 && !(stoppingAt >= 0 && index > stoppingAt && code === 1001)) {
          found.push(`${where}: connection ${n} closed with ${code} "${reason}"`);
        }
      });
      const logged = logs((level, message) =>
        // The cells call the demo `fail` method on purpose; its thrown errors are logged.
        ((level === "warn" || level === "error") && !EXPECTED_THROWS.test(message)) ||
        (level === "debug" && /^(Dropping|Ignoring)/.test(message))
      );
      return [...found, ...logged.map((line) => `${where} logged: ${line}`), ...exitProblems];
    },
    refusals: () => logs((level, message) => level === "info" && message.startsWith("Refused")),
    connections: () => node.seen("connection").length,
    requests: () => [],
    async stop() {
      // Let the clients' closes land first, so that only connections still open get 1001.
      for (let i = 0; i < 40 && node.seen("close").length < node.seen("connection").length; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const exit = await node.stop();
      exitProblems = [
        ...(exit.code === 0 ? [] : [`${where} exited with ${exit.code ?? "a timeout"}`]),
        ...(/Uncaught|Error: /.test(exit.stderr) ? [`${where} stderr: ${tail(exit.stderr)}`] : []),
      ];
    },
  });
}

/** Which Mist server a cell runs against: in-process on Deno, or on Node. */
type MistFace = "mist" | "mist-node";

function startMist(face: MistFace, idleTimeoutMs?: number): Promise<CellServer> {
  return face === "mist"
    ? Promise.resolve(startMistServer(idleTimeoutMs))
    : startMistNodeServer(idleTimeoutMs);
}

/** The upstream-style server (Node + ws) in a child process. */
async function startUpstream(): Promise<CellServer> {
  const secretHex = SharedSecret.generate().toHex();
  const up = await startUpstreamServer(secretHex);
  const events = (kind: string) => up.events.items.filter((event) => event.event === kind);
  let stderr = "";
  return cellServer({
    url: up.url,
    port: up.port,
    secretHex,
    async noted(params) {
      const match = (event: Record<string, unknown>) =>
        event.event === "notification" && event.method === "note" &&
        isDeepStrictEqual(event.params, params);
      return (await up.events.next(match, 2000)) !== undefined;
    },
    notesSeen: () => events("notification").map(({ method, params }) => ({ method, params })),
    problems: () => [
      ...events("dropped").map((event) =>
        `the upstream-style server dropped a frame (${event.reason}): ${show(event.frame)}`
      ),
      ...events("close").filter((event) => event.code !== 1000).map((event) =>
        `upstream-style server: connection ${event.n} closed with ${event.code} "${event.reason}"`
      ),
      ...(stderr.includes("Error") ? [`upstream-style server stderr: ${tail(stderr)}`] : []),
    ],
    refusals: () =>
      events("refused").map((event) =>
        `${event.status}, credential taken from ${event.via}: "${event.shape}"`
      ),
    connections: () => events("connection").length,
    requests: () => events("request").map(({ method, params }) => ({ method, params })),
    async stop() {
      stderr = await up.stop();
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Scripts and their checks

/** The steps every cell runs after connecting (labels are what the checks look for). */
function basicSteps(row: string): Step[] {
  return [
    { op: "invoke", label: "echo", method: "echo", params: ECHO },
    { op: "invoke", label: "fail", method: "fail", params: ["boom"] },
    { op: "notify", label: "note", method: "note", params: [`from ${row}`] },
    // Handlers start in arrival order: once this is answered, `note` has run.
    { op: "invoke", label: "afterNote", method: "echo", params: ["after note"] },
  ];
}

/** Mist's clients: the basics, and against Mist's server a call back into the client. */
function mistClientSteps(row: string, callback: boolean): Step[] {
  return [
    ...(callback ? [{ op: "register", method: "greet" }] : []),
    { op: "open", label: "open", timeoutMs: OPEN_MS },
    ...basicSteps(row),
    ...(callback
      ? [{ op: "invoke", label: "callback", method: "callback", params: ["greet", ["server"]] }]
      : []),
    { op: "report", label: "report" },
    { op: "close", label: "close" },
  ];
}

/** The upstream-style clients: a call and a callback in flight over an idle period, then the basics. */
function upstreamClientSteps(row: string): Step[] {
  return [
    { op: "open", label: "open", timeoutMs: OPEN_MS },
    { op: "invoke", label: "slow", method: "sleep", params: [SLOW_MS], as: "slow" },
    { op: "invoke", label: "cb", method: "callback", params: [`${row}.hello`, []], as: "cb" },
    { op: "sleep", label: "idle", ms: IDLE_MS },
    { op: "state", label: "afterIdle" },
    ...basicSteps(row),
    { op: "await", label: "slowDone", as: "slow", timeoutMs: 3000 },
    { op: "await", label: "cbDone", as: "cb", timeoutMs: 3000 },
    { op: "report", label: "report" },
    { op: "close", label: "close" },
  ];
}

/** One line per distinct refusal, with how many times it happened. */
function addRefusals(f: Findings, server: CellServer): void {
  const counts = new Map<string, number>();
  for (const refusal of server.refusals()) counts.set(refusal, (counts.get(refusal) ?? 0) + 1);
  for (const [refusal, n] of counts) f.add(`the server refused ${n} attempt(s): ${refusal}`);
}

/** Connected, echo, remote error, notification delivered, server-side drops. */
async function checkBasics(
  f: Findings,
  records: ScriptRecord[],
  server: CellServer,
  row: string,
): Promise<boolean> {
  const open = at(records, "open");
  if (!open?.ok) {
    f.add(`not connected: ${open?.error ?? "the client's script never got to connect"}`);
    addRefusals(f, server);
    if (open?.states) f.context(`client states: ${show(open.states)}`);
    return false;
  }
  const echo = at(records, "echo");
  if (!echo?.ok) f.add(`echo round trip failed: ${echo?.error ?? "not run"}`);
  else if (!isDeepStrictEqual(echo.result, ECHO)) {
    f.add(`echo round trip returned ${show(echo.result)}, expected ${show(ECHO)}`);
  }
  const fail = at(records, "fail");
  if (!fail) f.add(`"fail" was not run`);
  else if (fail.ok) {
    f.add(`the remote error did not surface: "fail" resolved with ${show(fail.result)}`);
  } else if (!String(fail.error).includes("boom")) {
    f.add(`"fail" rejected without the server's message "boom": ${fail.error}`);
  }
  const note = at(records, "note");
  if (!note?.ok) f.add(`the notification could not be sent: ${note?.error ?? "not run"}`);
  const afterNote = at(records, "afterNote");
  if (!afterNote?.ok || !isDeepStrictEqual(afterNote.result, ["after note"])) {
    f.add(
      `the echo after the notification failed: ${show(afterNote?.error ?? afterNote?.result)}`,
    );
  }
  const params = [`from ${row}`];
  if (!await server.noted(params)) {
    f.add(
      `the notification note ${show(params)} never reached the server (it got: ${
        show(server.notesSeen())
      })`,
    );
  }
  return true;
}

/** Mist's clients: no invalid frames seen on their side either. */
function checkMistClientReport(f: Findings, records: ScriptRecord[]): void {
  const report = at(records, "report");
  if (!report?.ok) return f.add(`no report from the client: ${report?.error ?? "not run"}`);
  const { dropped, rejected, binary } = report as Record<string, number>;
  if (dropped + rejected + binary > 0) {
    f.add(
      `Mist's client dropped ${dropped} frame(s), rejected ${rejected} as invalid, ignored ${binary} binary`,
    );
  }
  const closes = report.closes as unknown[];
  if (closes.length > 0) f.add(`Mist's client lost its connection: ${show(closes)}`);
}

/** The upstream-style clients' own records: wrong resolutions, server requests, orphans. */
function checkRawClientReport(f: Findings, records: ScriptRecord[]): void {
  const report = at(records, "report");
  if (!report?.ok) return f.add(`no report from the client: ${report?.error ?? "not run"}`);
  const list = (name: string) => (report[name] ?? []) as unknown[];
  const wrong = list("wrongResolutions");
  if (wrong.length > 0) {
    f.add(
      `${wrong.length} of the client's own calls were settled by a server request: ${show(wrong)}`,
    );
  }
  const serverFrames = list("serverFrames");
  if (serverFrames.length > 0) {
    f.add(
      `the server sent ${serverFrames.length} request(s)/notification(s) to a client that never ` +
        `said $/hello: ${show(serverFrames.slice(0, 4))}`,
    );
  }
  const orphans = list("orphans");
  if (orphans.length > 0) f.add(`replies for ids with no pending call: ${show(orphans)}`);
  const unreadable = list("unreadable");
  if (unreadable.length > 0) f.add(`frames the client could not read: ${show(unreadable)}`);
}

/** The idle period: still connected, own call not hijacked, callback failed clearly. */
function checkIdle(f: Findings, records: ScriptRecord[], server: CellServer): void {
  const afterIdle = at(records, "afterIdle");
  const closes = (afterIdle?.closes ?? []) as { code: number; reason: string }[];
  if (!afterIdle?.connected || closes.length > 0) {
    f.add(
      `the connection did not survive ${IDLE_MS} ms idle (server idleTimeoutMs ${IDLE_TIMEOUT_MS}): ` +
        `connected ${afterIdle?.connected}, closes ${show(closes)}`,
    );
  }
  const slow = at(records, "slowDone");
  if (!slow) f.add(`the "sleep" call in flight was never awaited`);
  else if (!slow.ok) f.add(`the "sleep" call in flight failed: ${slow.error}`);
  else if (String(slow.settledBy ?? "").includes('"method"')) {
    f.add(`the "sleep" call in flight was settled by a server request: ${show(slow.settledBy)}`);
  } else if (slow.result !== null) f.add(`"sleep" resolved with ${show(slow.result)}, not null`);
  const cb = at(records, "cbDone");
  if (!cb) f.add(`the "callback" call in flight was never awaited`);
  else if (cb.ok) {
    f.add(
      `"callback" resolved with ${show(cb.result)} (settled by ${show(cb.settledBy)}); it must ` +
        `fail with a clear error, since this client cannot be called back`,
    );
  } else if (cb.timeout) f.add(`"callback" got no answer: ${cb.error}`);
  else if (String(cb.error).startsWith("Error: Disconnected")) {
    f.add(`"callback" failed only because the connection dropped: ${cb.error}`);
  } else if (String(cb.error).trim() === "") f.add(`"callback" failed with an empty error`);
  if (server.connections() !== 1) {
    f.add(`the server saw ${server.connections()} connections from one client, expected 1`);
  }
}

function checkServer(f: Findings, server: CellServer): void {
  for (const problem of server.problems()) f.add(problem);
}

// ---------------------------------------------------------------------------------------------
// Clients

/**
 * Shared across cells: the bundle, the browser and the page's HTTP server, made on first use.
 * `await using shared = new Shared()` closes and removes them when the test ends.
 */
class Shared implements AsyncDisposable {
  #dist: string | undefined;
  #bundles: Promise<{ js: string; node: string }> | undefined;
  #browser: Promise<{ context: BrowserContext; profile: string }> | undefined;
  #http: Deno.HttpServer<Deno.NetAddr> | undefined;
  endpoint = { url: "", secret: "" };

  /** The client bundles: `js` for the browser, `node` (with Mist's socket) for Node. */
  bundles(): Promise<{ js: string; node: string }> {
    this.#bundles ??= (async () => {
      this.#dist = await Deno.makeTempDir({ prefix: "mist-interop-dist-" });
      return await build(this.#dist);
    })();
    return this.#bundles;
  }

  /** The page's origin, serving the fixture page, the bundle, `/script.mjs` and `/endpoint`. */
  async origin(): Promise<string> {
    if (!this.#http) {
      const bundle = await Deno.readTextFile((await this.bundles()).js);
      const page = await Deno.readTextFile(PAGE);
      const script = await Deno.readTextFile(SCRIPT_CORE);
      const js = { "content-type": "text/javascript", "cache-control": "no-store" };
      this.#http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
        const { pathname } = new URL(request.url);
        if (pathname === "/") {
          return new Response(page, { headers: { "content-type": "text/html" } });
        }
        if (pathname === "/mist_client.js") return new Response(bundle, { headers: js });
        if (pathname === "/script.mjs") return new Response(script, { headers: js });
        if (pathname === "/endpoint") {
          return Response.json(this.endpoint, { headers: { "cache-control": "no-store" } });
        }
        return new Response("Not found\n", { status: 404 });
      });
    }
    return `http://127.0.0.1:${this.#http.addr.port}`;
  }

  browser(): Promise<BrowserContext> {
    this.#browser ??= (async () => {
      await ensureChromium();
      const profile = await Deno.makeTempDir({ prefix: "mist-interop-chromium-" });
      const context = await launchChromium(profile);
      return { context, profile };
    })();
    return this.#browser.then(({ context }) => context);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#browser) {
      const { context, profile } = await this.#browser;
      await context.close();
      await Deno.remove(profile, { recursive: true });
    }
    await this.#http?.shutdown();
    if (this.#dist) await Deno.remove(this.#dist, { recursive: true });
  }
}

type RunClient = (
  shared: Shared,
  server: CellServer,
  steps: Step[],
  f: Findings,
  options: ClientOptions,
) => Promise<ScriptRecord[]>;

/** Mist's Deno client of `server`, closed (waiting 5 s at the most) with `cleanup`. */
function denoClient(
  cleanup: AsyncDisposableStack,
  server: CellServer,
  options: ClientOptions,
): Client {
  const client = new Client(server.url, { ...options, secret: server.secretHex, logger: quiet });
  return cleanup.adopt(client, (client) => atMost(client.close(), 5000));
}

const mistOnDeno: RunClient = async (_shared, server, steps, _f, options) => {
  await using cleanup = new AsyncDisposableStack();
  const client = denoClient(cleanup, server, options);
  const records = await atMost(runSteps(mistApi(client), steps), SCRIPT_MS);
  return (records ?? [{ op: "timeout", ok: false }]) as unknown as ScriptRecord[];
};

const mistOnNode: RunClient = async (shared, server, steps, f, options) => {
  const run = await runMistNodeClient(
    (await shared.bundles()).node,
    server.url,
    server.secretHex,
    steps,
    SCRIPT_MS,
    options as Record<string, unknown>,
  );
  if (run.code !== 0) f.add(`the Node client exited with ${run.code ?? "a timeout"}`);
  f.context(`node stderr: ${tail(run.stderr)}`);
  return run.records;
};

/** The fixture page makes its own client, with the browser defaults (`options` unused). */
const mistInChromium: RunClient = async (shared, server, steps, f) => {
  const origin = await shared.origin();
  const context = await shared.browser();
  shared.endpoint = { url: server.url, secret: server.secretHex };
  await using tab = await context.newPage();
  const pageErrors: string[] = [];
  tab.on("pageerror", (error) => pageErrors.push(String(error)));
  await tab.goto(`${origin}/`);
  await tab.waitForFunction(() => "mist" in globalThis);
  const records = await within(
    tab.evaluate(async ({ steps, script }) => {
      const core = await import(script);
      const page = globalThis as unknown as { mist: { client: unknown } };
      const api = core.mistApi(page.mist.client);
      try {
        return await core.runSteps(api, steps);
      } finally {
        await api.close();
      }
    }, { steps, script: "/script.mjs" }),
    "the page's script",
    SCRIPT_MS,
  );
  const sockets = await tab.evaluate(() =>
    (globalThis as unknown as { mist: { sockets: unknown[] } }).mist.sockets
  );
  f.context(`the page's sockets (offered protocols, selected): ${show(sockets)}`);
  for (const error of pageErrors) f.add(`page error: ${error}`);
  return records as ScriptRecord[];
};

const webviewStyle: RunClient = async (_shared, server, steps, f) => {
  const run = await runWebviewClient(server.port, server.secretHex, steps, SCRIPT_MS);
  if (run.code !== 0) f.add(`the webview-style client exited with ${run.code ?? "a timeout"}`);
  f.context(`webview-style client stderr: ${tail(run.stderr)}`);
  return run.records;
};

const rustStyle: RunClient = async (_shared, server, steps, f) => {
  const run = await runRustStyleClient(server.port, server.secretHex, steps, SCRIPT_MS);
  if (run.code !== 0) f.add(`the Rust-style client exited with ${run.code ?? "a timeout"}`);
  f.context(`Rust-style client stderr: ${tail(run.stderr)}`);
  return run.records;
};

// ---------------------------------------------------------------------------------------------
// Cells

/** Mist's client (any runtime) × any server. */
async function mistClientCell(
  shared: Shared,
  kind: MistFace | "upstream",
  row: string,
  run: RunClient,
): Promise<void> {
  const f = new Findings();
  const mist = kind !== "upstream";
  await using server = mist ? await startMist(kind) : await startUpstream();
  const steps = mistClientSteps(row, mist);
  const records = await run(shared, server, steps, f, mist ? {} : UPSTREAM_CLIENT_OPTIONS);
  if (await checkBasics(f, records, server, row)) {
    if (mist) {
      const callback = at(records, "callback");
      if (!callback?.ok || callback.result !== "Hello server") {
        f.add(
          `the server's call back into the client failed: ${
            show(callback?.error ?? callback?.result)
          }`,
        );
      }
    }
    checkMistClientReport(f, records);
  }
  await server.stop();
  checkServer(f, server);
  f.finish();
}

/** An upstream-style client × Mist's server (either face), with the idle period. */
async function upstreamClientCell(
  shared: Shared,
  face: MistFace,
  row: string,
  run: RunClient,
): Promise<void> {
  const f = new Findings();
  await using server = await startMist(face, IDLE_TIMEOUT_MS);
  const records = await run(shared, server, upstreamClientSteps(row), f, {});
  if (await checkBasics(f, records, server, row)) {
    checkIdle(f, records, server);
    checkRawClientReport(f, records);
  }
  await server.stop();
  checkServer(f, server);
  f.finish();
}

/** Mist's Deno client calling the upstream-style server directly. */
async function withUpstreamAndDenoClient(
  body: (client: Client, server: CellServer, f: Findings) => Promise<void>,
): Promise<void> {
  const f = new Findings();
  await using server = await startUpstream();
  await using cleanup = new AsyncDisposableStack();
  const client = denoClient(cleanup, server, UPSTREAM_CLIENT_OPTIONS);
  try {
    await client.opened({ timeoutMs: OPEN_MS });
  } catch (error) {
    f.add(`not connected: ${String(error)}`);
    addRefusals(f, server);
  }
  if (client.state === "open") await body(client, server, f);
  await cleanup.disposeAsync();
  await server.stop();
  checkServer(f, server);
  f.finish();
}

/** By-name params: Mist's `call()` takes an array today; the by-name change widens it. */
function byName(params: Record<string, unknown>): unknown[] {
  return params as unknown as unknown[];
}

Deno.test({
  name: "Client and serveLocal() interoperate with the upstream-style peers: one step per cell",
  // Steps share a browser and spawn processes; `await using` stops each by its PID.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using shared = new Shared();
    const cell = (name: string, fn: () => Promise<void>) =>
      t.step({ name, fn, sanitizeOps: false, sanitizeResources: false });
    const faces: [MistFace, string][] = [
      ["mist", "Mist server"],
      ["mist-node", "Mist server on Node"],
    ];
    for (const [face, column] of faces) {
      await cell(
        `${column} × Mist client on Deno`,
        () => mistClientCell(shared, face, "deno", mistOnDeno),
      );
      await cell(
        `${column} × Mist client on Node`,
        () => mistClientCell(shared, face, "node", mistOnNode),
      );
      await cell(
        `${column} × Mist client in Chromium`,
        () => mistClientCell(shared, face, "chromium", mistInChromium),
      );
      await cell(
        `${column} × webview-style client (idle, callback in flight)`,
        () => upstreamClientCell(shared, face, "sky", webviewStyle),
      );
      await cell(
        `${column} × Rust-style client (idle, callback in flight)`,
        () => upstreamClientCell(shared, face, "rust", rustStyle),
      );
    }
    await cell(
      "upstream-style server × Mist client on Deno",
      () => mistClientCell(shared, "upstream", "deno", mistOnDeno),
    );
    await cell(
      "upstream-style server × Mist client on Node",
      () => mistClientCell(shared, "upstream", "node", mistOnNode),
    );
    await cell(
      "upstream-style server × Mist client in Chromium",
      () => mistClientCell(shared, "upstream", "chromium", mistInChromium),
    );
    await cell(
      "upstream-style server → Mist client on Deno: a 17 MiB reply arrives intact",
      () =>
        withUpstreamAndDenoClient(async (client, _server, f) => {
          let result: unknown;
          try {
            result = await client.call("big", [BIG_BYTES], { timeoutMs: 20_000 });
          } catch (error) {
            return f.add(`the ${BIG_BYTES}-byte reply did not arrive: ${String(error)}`);
          }
          if (typeof result !== "string") return f.add(`"big" resolved with ${show(result)}`);
          if (result.length !== BIG_BYTES || !/^x*$/.test(result)) {
            f.add(`the reply arrived damaged: ${result.length} characters, not ${BIG_BYTES} "x"`);
          }
        }),
    );
    await cell(
      "upstream-style server ← Mist client on Deno: by-name params reach a by-name route",
      () =>
        withUpstreamAndDenoClient(async (client, server, f) => {
          let result: unknown;
          try {
            result = await client.call("ext.get", byName({ extensionId: "vscode.git" }), {
              timeoutMs: 5000,
            });
          } catch (error) {
            return f.add(`client.call("ext.get", {extensionId}) failed: ${String(error)}`);
          }
          if (result !== "vscode.git") {
            const requests = server.requests().filter((event) => event.method === "ext.get");
            f.add(
              `ext.get answered ${show(result)}, expected "vscode.git" (the route reads ` +
                `params.extensionId; the server got ${show(requests)})`,
            );
          }
        }),
    );
  },
});
