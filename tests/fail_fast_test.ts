/**
 * The first hour: mistakes that retrying cannot fix fail at once and say why — a bad URL or
 * secret in the constructor, a refused secret with a fixed endpoint — and connection failures
 * are visible once at the default log level.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Client, type ClientState } from "../client.ts";
import { ChannelDeadError } from "../errors.ts";
import { consoleLogger } from "../log.ts";
import { SharedSecret } from "../secret.ts";
import { FakeClock } from "./_fake_clock.ts";
import { freePort, nextState, quiet, startServer } from "./_helpers.ts";

Deno.test("new Client() refuses an endpoint that is not a ws: or wss: URL, naming it without its query", () => {
  const secret = SharedSecret.generate();
  for (
    const endpoint of [undefined, "", "not a url", "http://127.0.0.1:8080/?secret=deadbeef", 42]
  ) {
    assert.throws(
      () => new Client(endpoint as unknown as string, { secret, logger: quiet }),
      (error: unknown) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.match(error.message, /^Cannot create client: endpoint .* is not a ws: or wss: URL/);
        assert.doesNotMatch(error.message, /deadbeef/);
        return true;
      },
    );
  }
});

Deno.test("new Client() refuses a malformed secret at once, giving its length but never its value", () => {
  for (const secret of ["abc", "zz".repeat(32), "ab".repeat(33)]) {
    assert.throws(
      () => new Client("ws://127.0.0.1:9/", { secret, logger: quiet }),
      (error: unknown) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.match(error.message, /expected 64 hex characters, got \d+ characters/);
        assert.ok(!error.message.includes(secret));
        return true;
      },
    );
  }
  assert.throws(
    () => new Client("ws://127.0.0.1:9/", { secret: 7 as unknown as string, logger: quiet }),
    /options\.secret must be a SharedSecret or 64 hex characters, not number/,
  );
});

Deno.test("Client with a fixed endpoint stops at the first refusal and says why (status and reason)", async () => {
  await using t = startServer();
  const lines: string[] = [];
  const states: ClientState[] = [];
  await using client = new Client(t.server.url, {
    secret: SharedSecret.generate(), // not the server's
    auth: "secret",
    heartbeat: false,
    logger: consoleLogger("warn", (line) => lines.push(line)),
  });
  client.addEventListener("statechange", (event) => states.push(event.state));
  await assert.rejects(client.call("echo"), (error: unknown) => {
    assert.ok(error instanceof ChannelDeadError, String(error));
    assert.equal(error.deadAfterMs, undefined);
    assert.match(
      error.message,
      /^Cannot call "echo": channel dead after the connection failed and was not retried \(last error: .*401 Unauthorized: Missing or wrong secret\)\)$/,
    );
    return true;
  });
  assert.deepEqual(states, ["dead"]); // no reconnecting: one attempt
  assert.equal(lines.length, 1, lines.join("\n"));
  assert.match(
    lines[0],
    /^WARN Connection refused \(HTTP\/1\.1 401 Unauthorized: Missing or wrong secret\)/,
  );
});

Deno.test("Client with a fixed endpoint stops when the server does not take its proof", async () => {
  await using t = startServer(); // its own secret: to this client it is an impostor
  await using client = new Client(t.server.url, {
    secret: SharedSecret.generate(),
    auth: "proof",
    heartbeat: false,
    logger: quiet,
  });
  // A wrong proof is refused at the upgrade (401), before the server could prove anything.
  await assert.rejects(client.call("echo"), /401 Unauthorized/);
  assert.equal(client.state, "dead");
});

Deno.test("Client with a provider asks again after a refusal and reports it in the state event", async () => {
  await using t = startServer();
  let asked = 0;
  const clock = new FakeClock();
  await using client = new Client(() => {
    asked++;
    // The first answer has a stale secret; the native side then hands out the right one.
    return { url: t.server.url, secret: asked === 1 ? SharedSecret.generate() : t.secret };
  }, { clock, heartbeat: false, logger: quiet });
  const retry = await nextState(client, "reconnecting");
  assert.match(String(retry.error), /401 Unauthorized: Missing or wrong secret/);
  clock.advance(retry.delayMs!);
  await nextState(client, "open");
  assert.deepEqual(await client.call("echo", [1]), [1]);
  assert.equal(asked, 2);
});

Deno.test("Client logs a failing connection once at the default level, then each attempt at debug", async () => {
  const port = freePort(); // nothing listens: the server is down
  const clock = new FakeClock();
  const lines: string[] = [];
  await using client = new Client(`ws://127.0.0.1:${port}/`, {
    secret: SharedSecret.generate(),
    clock,
    heartbeat: false,
    logger: consoleLogger("debug", (line) => lines.push(line)),
  });
  for (let attempt = 1; attempt <= 3; attempt++) {
    const retry = await nextState(client, "reconnecting");
    clock.advance(retry.delayMs!);
  }
  await nextState(client, "reconnecting");
  const warnings = lines.filter((line) => line.startsWith("WARN "));
  assert.equal(warnings.length, 1, lines.join("\n"));
  assert.match(warnings[0], /^WARN Cannot connect \(.+\); retrying with backoff$/);
  assert.equal(lines.filter((line) => line.startsWith("DEBUG Connection attempt")).length, 3);
});

Deno.test("deno task serve --allow-non-loopback explains the wider --allow-net it needs", async () => {
  // Refused by Deno's permission check before anything is bound: no socket is opened.
  const output = await new Deno.Command("./deno", {
    args: ["task", "serve", "--host", "0.0.0.0", "--allow-non-loopback"],
    cwd: new URL("..", import.meta.url),
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 1, stderr);
  assert.equal(new TextDecoder().decode(output.stdout), "");
  assert.match(stderr, /serve: --allow-non-loopback needs Deno's network permission/);
  assert.match(
    stderr,
    /\.\/deno run --allow-net=0\.0\.0\.0 --allow-env=MIST_SECRET tools\/serve\.ts --host 0\.0\.0\.0 --allow-non-loopback/,
  );
});
