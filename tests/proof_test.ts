/**
 * The mutual proof: the secret never goes on the wire, an impostor on the port learns nothing
 * reusable and gets no call through, and a refused proof is never followed by the raw secret
 * unless the caller asked for that.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Client } from "../client.ts";
import { HandlerRegistry } from "../registry.ts";
import { SharedSecret } from "../secret.ts";
import { clientProof, serverProof } from "../_proof.ts";
import { connect, deferred, quiet, startServer, stop, within } from "./_helpers.ts";

// --- The three messages ---------------------------------------------------------------------

Deno.test("clientProof() and serverProof() agree on the answer when both know the secret", async () => {
  const secret = SharedSecret.generate();
  const client = await clientProof(secret);
  const server = await serverProof(secret, client.token);
  assert.ok(server);
  assert.equal(await client.answer(server.challenge), server.expected);
  assert.ok(!client.token.includes(secret.toHex()));
  assert.ok(!JSON.stringify(server.challenge).includes(secret.toHex()));
});

Deno.test("serverProof() refuses a token made with another secret or tampered with", async () => {
  const secret = SharedSecret.generate();
  const other = await clientProof(SharedSecret.generate());
  assert.equal(await serverProof(secret, other.token), undefined);
  const good = (await clientProof(secret)).token;
  const flipped = good.slice(0, -1) + (good.endsWith("0") ? "1" : "0");
  for (const token of [flipped, good.toUpperCase(), good + "0", "", `${good.split(".")[0]}.`]) {
    assert.equal(await serverProof(secret, token), undefined, token);
  }
});

Deno.test("clientProof().answer() refuses a challenge from a server that does not know the secret", async () => {
  const secret = SharedSecret.generate();
  const client = await clientProof(secret);
  // An impostor replays the token to a server of its own secret: its challenge proves nothing.
  const impostor = await serverProof(SharedSecret.generate(), client.token);
  assert.equal(impostor, undefined);
  const forged = { nonce: "ab".repeat(16), proof: "cd".repeat(32) };
  assert.equal(await client.answer(forged), undefined);
  for (const bad of [undefined, null, 3, { nonce: "x", proof: "y" }, { nonce: "ab".repeat(16) }]) {
    assert.equal(await client.answer(bad), undefined);
  }
});

Deno.test("serverProof() expects a fresh answer on every connection, so a recorded one is useless", async () => {
  const secret = SharedSecret.generate();
  const client = await clientProof(secret);
  const first = await serverProof(secret, client.token);
  const replayed = await serverProof(secret, client.token); // the same token, sent again
  assert.ok(first && replayed);
  assert.notEqual(first.challenge.nonce, replayed.challenge.nonce);
  assert.notEqual(await client.answer(first.challenge), replayed.expected);
});

// --- Over real sockets ----------------------------------------------------------------------

/**
 * A server that upgrades anyone and records everything it is sent.
 * `await using fake = impostor()` shuts it down.
 */
function impostor(options: { challenge?: string } = {}) {
  const seen: { url: string; headers: [string, string][] }[] = [];
  const frames: string[] = [];
  const opened = deferred();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    seen.push({ url: request.url, headers: [...request.headers] });
    const offered = request.headers.get("sec-websocket-protocol")?.split(",")[0]?.trim();
    const { socket, response } = Deno.upgradeWebSocket(request, { protocol: offered });
    socket.addEventListener("open", () => {
      // Forged traffic: a challenge it cannot prove, a reply and a call of the client's handler.
      socket.send(
        options.challenge ?? JSON.stringify({
          id: null,
          method: "$/challenge",
          params: { nonce: "ab".repeat(16), proof: "cd".repeat(32) },
        }),
      );
      socket.send('{"id":0,"result":"forged"}');
      socket.send('{"id":1,"method":"secretHandler","params":[]}');
      opened.resolve();
    });
    socket.addEventListener("message", (event) => frames.push(String(event.data)));
    return response;
  });
  return {
    server,
    seen,
    frames,
    opened,
    url: `ws://127.0.0.1:${server.addr.port}/`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test("Client with auth 'proof' sends nothing and runs nothing for an impostor on the port", async () => {
  const secret = SharedSecret.generate();
  await using fake = impostor();
  let handlerRan = false;
  const registry = new HandlerRegistry().register("secretHandler", () => handlerRan = true);
  await using client = new Client(fake.url, {
    secret,
    registry,
    auth: "proof",
    heartbeat: false,
    reconnect: false,
    logger: quiet,
  });
  const call = client.call("echo", ["private"]);
  await assert.rejects(call, (error: unknown) => {
    assert.match(String(error), /Server failed the proof/);
    return true;
  });
  assert.equal(client.state, "dead");
  await fake.opened.promise;
  const everything = JSON.stringify(fake.seen) + fake.frames.join("");
  assert.ok(!everything.includes(secret.toHex()), "the secret reached the impostor");
  assert.ok(!fake.seen[0].headers.some(([name]) => name === "x-land-secret"));
  assert.deepEqual(fake.frames, [], "the client sent a frame before the server proved itself");
  assert.equal(handlerRan, false);
});

Deno.test("Client with auth 'proof' in a browser's form (subprotocol) reveals nothing either", async () => {
  const secret = SharedSecret.generate();
  await using fake = impostor();
  await using client = new Client(fake.url, {
    secret,
    auth: "proof",
    secretVia: "protocol",
    heartbeat: false,
    reconnect: false,
    logger: quiet,
  });
  await assert.rejects(client.call("echo"), /Server failed the proof/);
  assert.ok(!JSON.stringify(fake.seen).includes(secret.toHex()));
  assert.deepEqual(fake.frames, []);
});

Deno.test("serveLocal() closes a connection that replays a recorded proof token with 1008", async () => {
  await using t = startServer();
  // Record what an honest client offers, as an impostor on the port would.
  await using recorder = impostor();
  await using victim = new Client(recorder.url, {
    secret: t.secret,
    heartbeat: false,
    reconnect: false,
    logger: quiet,
  });
  await victim.opened().catch(() => {});
  await victim.close();
  await recorder.server.shutdown();
  const token = new Map(recorder.seen[0].headers).get("x-mist-proof")!;
  assert.match(token, /^[0-9a-f]{32}\.[0-9a-f]{64}$/);
  // Replay it to the real server: the upgrade passes, the challenge cannot be answered.
  const socket = new WebSocket(t.server.url, {
    headers: { "X-Mist-Proof": token, "X-Mist-Version": "2" },
  } as unknown as string[]);
  const received: string[] = [];
  socket.addEventListener("message", (event) => received.push(event.data));
  const first = new Promise<string>((resolve) =>
    socket.addEventListener("message", (event) => resolve(event.data), { once: true })
  );
  const closed = new Promise<CloseEvent>((resolve) => socket.addEventListener("close", resolve));
  assert.equal(JSON.parse(await within(first, "the challenge")).method, "$/challenge");
  socket.send('{"id":1,"method":"$/hello","params":{"version":2,"proof":"00"}}');
  socket.send('{"id":2,"method":"echo","params":["sneaked in"]}');
  const close = await within(closed, "the close");
  assert.equal(close.code, 1008);
  assert.equal(close.reason, "Proof failed");
  assert.equal(received.length, 1, `frames after the challenge: ${received.slice(1)}`);
  assert.equal(t.peers.length, 0, "an unproven client was reported as a connection");
  await stop(t);
});

Deno.test("Client with auth 'proof' is refused by a seed server and never sends the raw secret", async () => {
  const secret = SharedSecret.generate();
  const attempts: [string, string][][] = [];
  await using seed = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    attempts.push([...request.headers]);
    if (request.headers.get("x-land-secret") !== secret.toHex()) {
      return new Response(null, { status: 401 });
    }
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.addEventListener("message", (event) => {
      const { id } = JSON.parse(event.data);
      socket.send(JSON.stringify({ id, result: null }));
    });
    return response;
  });
  const url = `ws://127.0.0.1:${seed.addr.port}/`;
  const reconnect = { delaysMs: [0, 0, 0], deadAfterMs: 60_000 };
  // A fixed endpoint: the refusal ends the attempts at once (retrying cannot cure it).
  await using strict = new Client(url, { secret, reconnect, heartbeat: false, logger: quiet });
  await assert.rejects(strict.call("anything"), /401 Unauthorized/);
  assert.equal(attempts.length, 1);
  // A provider: it is asked again before every attempt, and no attempt sends the raw secret.
  await using asking = new Client(() => ({ url, secret }), {
    reconnect,
    heartbeat: false,
    logger: quiet,
  });
  const three = deferred();
  asking.addEventListener("statechange", () => {
    if (attempts.length >= 4) three.resolve();
  });
  await within(three.promise, "three more attempts");
  await asking.close();
  await strict.close();
  assert.ok(attempts.every((headers) => !JSON.stringify(headers).includes(secret.toHex())));
  // Configured to fall back: the attempt after the refused proof sends the raw secret.
  attempts.length = 0;
  await using lenient = new Client(url, {
    secret,
    auth: "proof-then-secret",
    reconnect,
    heartbeat: false,
    logger: quiet,
  });
  assert.equal(await lenient.call("anything"), null);
  assert.equal(attempts.length, 2);
  assert.ok(new Map(attempts[0]).has("x-mist-proof"));
  assert.equal(new Map(attempts[1]).get("x-land-secret"), secret.toHex());
});

Deno.test("Client with auth 'proof' works with serveLocal in both credential forms", async () => {
  await using t = startServer();
  for (const secretVia of ["header", "protocol"] as const) {
    await using client = connect(t, { auth: "proof", secretVia });
    assert.deepEqual(await client.call("echo", [secretVia]), [secretVia]);
    assert.deepEqual(client.peer?.remote, { version: 4, features: ["binary", "resume"] });
  }
  await stop(t);
});
