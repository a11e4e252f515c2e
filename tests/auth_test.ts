/**
 * The auth matrix against a real `serveLocal` on loopback: status codes from raw HTTP upgrade
 * requests over `Deno.connect`, selected subprotocols from real `WebSocket`s; plus unit tests
 * of `authorize()` and `isLoopbackHost()`.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  authorize,
  type AuthPolicy,
  DEFAULT_ALLOWED_ORIGINS,
  isLoopbackHost,
  PROTOCOL_VERSION,
  SECRET_HEADER,
  SECRET_PROTOCOL_PREFIX,
} from "../_auth.ts";
import { consoleLogger } from "../log.ts";
import { SharedSecret } from "../secret.ts";
import { rawUpgrade, ScriptedPeer, startServer, stop } from "./_helpers.ts";

// --- Where the secret comes from -----------------------------------------------------------

Deno.test("serveLocal() accepts the secret in the X-Land-Secret header", async () => {
  await using t = startServer();
  const raw = await rawUpgrade(t.server.port, { [SECRET_HEADER]: t.secret.toHex() });
  assert.equal(raw.status, 101);
  assert.equal(raw.headers.get("sec-websocket-protocol"), null);
  await using scripted = await ScriptedPeer.connect(t.server.url, t.secret);
  assert.equal(scripted.socket.protocol, "");
  assert.deepEqual(await scripted.echo(1), { id: 1, result: ["still here"] });
  await stop(t, scripted);
});

Deno.test("serveLocal() accepts the header secret in either case of hex", async () => {
  await using t = startServer();
  const raw = await rawUpgrade(t.server.port, {
    [SECRET_HEADER]: t.secret.toHex().toUpperCase(),
  });
  assert.equal(raw.status, 101);
  await stop(t);
});

Deno.test("serveLocal() accepts a bare 64-hex subprotocol and echoes it when it is the only one", async () => {
  await using t = startServer();
  const hex = t.secret.toHex();
  const raw = await rawUpgrade(t.server.port, { "Sec-WebSocket-Protocol": hex });
  assert.equal(raw.status, 101);
  assert.equal(raw.headers.get("sec-websocket-protocol"), hex);
  await using scripted = await ScriptedPeer.connect(t.server.url, undefined, { protocols: [hex] });
  assert.equal(scripted.socket.protocol, hex);
  assert.deepEqual(await scripted.echo(1), { id: 1, result: ["still here"] });
  await stop(t, scripted);
});

Deno.test("serveLocal() accepts mist.secret.<hex> with mist.v1 and selects mist.v1, never the secret", async () => {
  await using t = startServer();
  const entry = SECRET_PROTOCOL_PREFIX + t.secret.toHex();
  for (const offered of [`${PROTOCOL_VERSION}, ${entry}`, `${entry}, ${PROTOCOL_VERSION}`]) {
    const raw = await rawUpgrade(t.server.port, { "Sec-WebSocket-Protocol": offered });
    assert.equal(raw.status, 101);
    assert.equal(raw.headers.get("sec-websocket-protocol"), PROTOCOL_VERSION);
  }
  await using scripted = await ScriptedPeer.connect(t.server.url, undefined, {
    protocols: [PROTOCOL_VERSION, entry],
  });
  assert.equal(scripted.socket.protocol, PROTOCOL_VERSION);
  assert.deepEqual(await scripted.echo(1), { id: 1, result: ["still here"] });
  await stop(t, scripted);
});

Deno.test("serveLocal() selects another non-secret protocol over the bare secret", async () => {
  await using t = startServer();
  const raw = await rawUpgrade(t.server.port, {
    "Sec-WebSocket-Protocol": `${t.secret.toHex()}, other.v2`,
  });
  assert.equal(raw.status, 101);
  assert.equal(raw.headers.get("sec-websocket-protocol"), "other.v2");
  await stop(t);
});

Deno.test("serveLocal() echoes mist.secret.<hex> when it is the only protocol offered", async () => {
  await using t = startServer();
  const entry = SECRET_PROTOCOL_PREFIX + t.secret.toHex();
  const raw = await rawUpgrade(t.server.port, { "Sec-WebSocket-Protocol": entry });
  assert.equal(raw.status, 101);
  assert.equal(raw.headers.get("sec-websocket-protocol"), entry);
  await stop(t);
});

Deno.test("serveLocal() refuses ?secret= with 401 by default", async () => {
  await using t = startServer();
  const raw = await rawUpgrade(t.server.port, {}, `/?secret=${t.secret.toHex()}`);
  assert.equal(raw.status, 401);
  await stop(t);
});

Deno.test("serveLocal() accepts ?secret= when allowQuerySecret is set", async () => {
  await using t = startServer({ allowQuerySecret: true });
  const ok = await rawUpgrade(t.server.port, {}, `/?secret=${t.secret.toHex()}`);
  assert.equal(ok.status, 101);
  const wrong = await rawUpgrade(t.server.port, {}, `/?secret=${"0".repeat(64)}`);
  assert.equal(wrong.status, 401);
  await stop(t);
});

Deno.test("serveLocal() refuses a missing secret with 401", async () => {
  await using t = startServer();
  assert.equal((await rawUpgrade(t.server.port)).status, 401);
  assert.equal(
    (await rawUpgrade(t.server.port, { "Sec-WebSocket-Protocol": PROTOCOL_VERSION })).status,
    401,
  );
  await stop(t);
});

Deno.test("serveLocal() refuses a wrong secret with 401, in every form", async () => {
  await using t = startServer();
  const wrong = SharedSecret.generate().toHex();
  const port = t.server.port;
  assert.equal((await rawUpgrade(port, { [SECRET_HEADER]: wrong })).status, 401);
  assert.equal((await rawUpgrade(port, { [SECRET_HEADER]: "short" })).status, 401);
  assert.equal((await rawUpgrade(port, { [SECRET_HEADER]: "" })).status, 401);
  assert.equal((await rawUpgrade(port, { "Sec-WebSocket-Protocol": wrong })).status, 401);
  assert.equal(
    (await rawUpgrade(port, {
      "Sec-WebSocket-Protocol": `${PROTOCOL_VERSION}, ${SECRET_PROTOCOL_PREFIX}${wrong}`,
    })).status,
    401,
  );
  // The first credential found decides: a wrong header is not rescued by a right subprotocol.
  assert.equal(
    (await rawUpgrade(port, {
      [SECRET_HEADER]: wrong,
      "Sec-WebSocket-Protocol": t.secret.toHex(),
    })).status,
    401,
  );
  await stop(t);
});

Deno.test("serveLocal() refuses a native WebSocket with a wrong secret before it opens", async () => {
  await using t = startServer();
  await assert.rejects(
    ScriptedPeer.connect(t.server.url, SharedSecret.generate()),
    /Closed before open/,
  );
  assert.equal(t.server.connections, 0);
  assert.equal(t.peers.length, 0);
  await stop(t);
});

// --- Origin and Host ------------------------------------------------------------------------

Deno.test("serveLocal() refuses a foreign Origin with 403 even with the right secret", async () => {
  await using t = startServer();
  const header = { [SECRET_HEADER]: t.secret.toHex() };
  for (
    const origin of ["https://evil.example", "null", "http://127.0.0.1.evil.example", "file://"]
  ) {
    const raw = await rawUpgrade(t.server.port, { ...header, Origin: origin });
    assert.equal(raw.status, 403, origin);
  }
  await stop(t);
});

Deno.test("serveLocal() accepts loopback and Tauri webview Origins", async () => {
  await using t = startServer();
  const header = { [SECRET_HEADER]: t.secret.toHex() };
  const origins = [
    "http://127.0.0.1:5173",
    "http://localhost:3000",
    "https://localhost",
    "http://[::1]:8080",
    ...DEFAULT_ALLOWED_ORIGINS,
  ];
  assert.ok(origins.includes("tauri://localhost"));
  for (const origin of origins) {
    const raw = await rawUpgrade(t.server.port, { ...header, Origin: origin });
    assert.equal(raw.status, 101, origin);
  }
  await stop(t);
});

Deno.test("serveLocal() allowedOrigins replaces the default list", async () => {
  await using t = startServer({ allowedOrigins: ["https://app.example"] });
  const header = { [SECRET_HEADER]: t.secret.toHex() };
  assert.equal(
    (await rawUpgrade(t.server.port, { ...header, Origin: "https://app.example" })).status,
    101,
  );
  assert.equal(
    (await rawUpgrade(t.server.port, { ...header, Origin: "tauri://localhost" })).status,
    403,
  );
  await stop(t);
});

Deno.test("serveLocal() refuses a non-loopback Host with 403 (DNS rebinding)", async () => {
  await using t = startServer();
  const header = { [SECRET_HEADER]: t.secret.toHex() };
  for (
    const host of ["evil.example", `evil.example:${t.server.port}`, "127.0.0.1.evil.example"]
  ) {
    assert.equal((await rawUpgrade(t.server.port, { ...header, Host: host })).status, 403, host);
  }
  for (const host of [`localhost:${t.server.port}`, "127.0.0.2", `[::1]:${t.server.port}`]) {
    assert.equal((await rawUpgrade(t.server.port, { ...header, Host: host })).status, 101, host);
  }
  await stop(t);
});

Deno.test("serveLocal() answers a request that is not a WebSocket upgrade with 426", async () => {
  await using t = startServer();
  const raw = await rawUpgrade(t.server.port, {
    [SECRET_HEADER]: t.secret.toHex(),
    Upgrade: null,
    Connection: null,
  });
  assert.equal(raw.status, 426);
  await stop(t);
});

Deno.test("serveLocal() with insecureNoSecret accepts a connection without a secret", async () => {
  await using t = startServer({ insecureNoSecret: true, secret: undefined });
  assert.equal((await rawUpgrade(t.server.port)).status, 101);
  await stop(t);
});

Deno.test("serveLocal() never logs the secret, a header value or the query", async () => {
  const lines: string[] = [];
  await using t = startServer({
    allowQuerySecret: true,
    logger: consoleLogger("debug", (line) => lines.push(line)),
  });
  const hex = t.secret.toHex();
  const wrong = "ab".repeat(32);
  await rawUpgrade(t.server.port, { [SECRET_HEADER]: wrong });
  await rawUpgrade(t.server.port, { [SECRET_HEADER]: hex, Origin: "https://evil.example" });
  await rawUpgrade(t.server.port, {}, `/?secret=${hex}`);
  await rawUpgrade(t.server.port, {}, `/?secret=${wrong}`);
  await stop(t);
  assert.ok(lines.length > 0);
  for (const line of lines) {
    for (const leak of [hex, wrong, "secret=", "evil.example"]) {
      assert.ok(!line.includes(leak), `log line leaks ${leak}: ${line}`);
    }
  }
});

// --- authorize() and isLoopbackHost() --------------------------------------------------------

function policy(overrides: Partial<AuthPolicy> = {}): AuthPolicy {
  return {
    secret: SharedSecret.fromHex("11".repeat(32)),
    allowedOrigins: DEFAULT_ALLOWED_ORIGINS,
    allowQuerySecret: false,
    allowedHosts: [],
    ...overrides,
  };
}

function request(headers: Record<string, string>, url = "http://127.0.0.1:9/"): Request {
  return new Request(url, { headers: { upgrade: "websocket", host: "127.0.0.1:9", ...headers } });
}

Deno.test("authorize() checks upgrade, then Host, then Origin, then the secret", () => {
  assert.deepEqual(authorize(new Request("http://127.0.0.1:9/"), policy()), {
    ok: false,
    status: 426,
    reason: "WebSocket upgrade required",
  });
  assert.deepEqual(
    authorize(request({ host: "evil.example", origin: "https://x.example" }), policy()),
    {
      ok: false,
      status: 403,
      reason: "Host not allowed",
    },
  );
  assert.deepEqual(authorize(request({ origin: "https://x.example" }), policy()), {
    ok: false,
    status: 403,
    reason: "Origin not allowed",
  });
  assert.deepEqual(authorize(request({}), policy()), {
    ok: false,
    status: 401,
    reason: "Missing or wrong secret",
  });
  assert.deepEqual(authorize(request({ "x-land-secret": "11".repeat(32) }), policy()), {
    ok: true,
    protocol: undefined,
    proof: undefined,
    announced: false,
  });
});

Deno.test("authorize() accepts a non-loopback Host listed in allowedHosts", () => {
  const ok = authorize(
    request({ host: "10.0.0.5:9", "x-land-secret": "11".repeat(32) }),
    policy({ allowedHosts: ["10.0.0.5"] }),
  );
  assert.deepEqual(ok, { ok: true, protocol: undefined, proof: undefined, announced: false });
});

Deno.test("authorize() with a null secret accepts any upgrade from an allowed origin", () => {
  assert.deepEqual(authorize(request({}), policy({ secret: null })), {
    ok: true,
    protocol: undefined,
    proof: undefined,
    announced: false,
  });
});

Deno.test("isLoopbackHost() accepts loopback names and addresses only", () => {
  for (const host of ["localhost", "LOCALHOST", "127.0.0.1", "127.255.255.254", "::1", "[::1]"]) {
    assert.ok(isLoopbackHost(host), host);
  }
  for (
    const host of ["0.0.0.0", "127.0.0.256", "128.0.0.1", "localhost.evil.example", "", "::"]
  ) {
    assert.ok(!isLoopbackHost(host), host);
  }
});

Deno.test("authorize() takes a proof token instead of the secret and marks the client announced", () => {
  const token = `${"a".repeat(32)}.${"b".repeat(64)}`;
  assert.deepEqual(authorize(request({ "x-mist-proof": token }), policy()), {
    ok: true,
    protocol: undefined,
    proof: token,
    announced: true,
  });
  const offered = { "sec-websocket-protocol": `mist.v1, mist.proof.${token}` };
  assert.deepEqual(authorize(request(offered), policy()), {
    ok: true,
    protocol: "mist.v1",
    proof: token,
    announced: true,
  });
  // Only a proof entry offered: it is selected (a browser needs one), it carries no secret.
  const alone = authorize(request({ "sec-websocket-protocol": `mist.proof.${token}` }), policy());
  assert.ok(alone.ok && alone.protocol === `mist.proof.${token}`);
});

Deno.test("authorize() reads the announcement header and the offered mist.v1", () => {
  const secret = "11".repeat(32);
  const header = authorize(request({ "x-land-secret": secret, "x-mist-version": "2" }), policy());
  assert.ok(header.ok && header.announced);
  const browser = authorize(
    request({ "sec-websocket-protocol": `${secret}, mist.v1` }),
    policy(),
  );
  assert.ok(browser.ok && browser.announced && browser.protocol === "mist.v1");
  const seed = authorize(request({ "sec-websocket-protocol": secret }), policy());
  assert.ok(seed.ok && !seed.announced && seed.protocol === secret);
});
