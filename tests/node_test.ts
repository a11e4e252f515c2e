/**
 * The Node client: the bundle built by `tools/build.ts` runs under the machine's Node
 * (`tests/fixtures/node_client.mjs`) against `serveLocal`, with a proof in the header, over
 * Mist's own no-delay socket (`node:net`, not Node's `WebSocket`); it calls both ways, reconnects
 * through its provider when the server restarts on a new port with a new secret, and a client
 * with a wrong secret fails with an error that names the server's 401. Bytes (a `Uint8Array`, a
 * Node `Buffer`, an `ArrayBuffer`) travel both ways, in params, results and notifications, and
 * arrive as `Uint8Array`s with the same contents (PROTOCOL.md §2).
 *
 * @module
 */
import assert from "node:assert/strict";
import { build } from "../tools/build.ts";
import { startDemoServer, STEP_TIMEOUT_MS } from "./fixtures/mist_server.ts";
import { runNodeScript } from "./_node_script.ts";
import { nagleLine, type NagleTiming, tempDir } from "./_helpers.ts";

const SCRIPT = new URL("./fixtures/node_client.mjs", import.meta.url);

async function nodeMajor(): Promise<number> {
  const { success, stdout } = await new Deno.Command("node", {
    args: ["--version"],
    stdout: "piped",
    stderr: "null",
  }).output();
  assert.ok(success, "Cannot run node --version");
  return Number(/^v(\d+)\./.exec(new TextDecoder().decode(stdout))?.[1]);
}

Deno.test("Client under Node: header proof, calls both ways (with bytes), reconnect through the provider", async () => {
  const major = await nodeMajor();
  // No --experimental-websocket on Node 20: ws: URLs need no global WebSocket any more.
  await using dist = await tempDir("mist-node-dist-");
  const bundle = (await build(dist.path)).node; // the Node bundle: Mist's socket over node:net

  await using first = await startDemoServer();
  let endpoint = { url: first.server.url, secret: first.secret.toHex() };
  await using http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => Response.json(endpoint, { headers: { "cache-control": "no-store" } }),
  );

  await using child = runNodeScript(SCRIPT, [
    new URL(`file://${bundle}`).href,
    `http://127.0.0.1:${http.addr.port}/endpoint`,
  ]);
  const { phase } = child;

  // First connection: Node to server, and the server calling back (inside "callback").
  const connected = await phase("connected");
  assert.deepEqual(connected.echo, ["hello", 42, { nested: [true] }]);
  assert.match(String(connected.callback), /^Hello callback, from Node v\d+\./);
  assert.deepEqual(connected.errorClasses, ["RemoteError", "DisconnectedError", "ClosedError"]);
  console.log(`node ${major}: ${nagleLine(connected.timing as NagleTiming)}`);
  // Bytes, client to server and back, each shown by the client as "<class>:<hex>": a plain
  // Uint8Array, never a Buffer nor an object of indices. The Buffer was a view at offset 2 of
  // "xxmistxx"; the reversed one came from the client's handler as a Buffer.
  assert.deepEqual(connected.bytes, {
    echo: [
      "Uint8Array:00017f80ff",
      { nested: { buffer: "Uint8Array:6d697374", raw: "Uint8Array:090807" } },
      "text",
    ],
    result: "Uint8Array:0726456483a2",
    callback: "Uint8Array:030201",
    large: Array(8).fill("same"),
    note: "sent",
  });
  // The client's notification with bytes, then the 50 of the timing loop.
  assert.equal(first.notes.length, 51);
  const [[byteNote]] = first.notes as [[{ blob: unknown }]];
  assert.ok(byteNote.blob instanceof Uint8Array, `note: ${Deno.inspect(byteNote)}`);
  assert.deepEqual(byteNote, { blob: new Uint8Array([0xde, 0xad]) });

  // The server calls the Node client from its handle on the connection.
  const serverSide = await first.peers.next("the Node client's connection");
  assert.match(
    String(await serverSide.call("node.greet", ["server"], { timeoutMs: STEP_TIMEOUT_MS })),
    /^Hello server, from Node v\d+\./,
  );
  // The server sends bytes to the Node client: a notification, then a call whose result (a
  // Buffer on the Node side) arrives here as a Uint8Array. The reply follows the notification,
  // so the client has seen both ("done" reports them).
  serverSide.notify("node.note", [{ blob: new Uint8Array([0xbe, 0xef]) }, "text"]);
  const reversed = await serverSide.call("node.reverse", [new Uint8Array([1, 2, 3, 250])], {
    timeoutMs: STEP_TIMEOUT_MS,
  });
  assert.ok(reversed instanceof Uint8Array, `node.reverse: ${Deno.inspect(reversed)}`);
  assert.deepEqual(reversed, new Uint8Array([250, 3, 2, 1]));

  // Restart on a new port with a new secret; the provider hands the client the new ones.
  await first.server.shutdown();
  await using second = await startDemoServer(first.server.port);
  assert.notEqual(second.secret.toHex(), first.secret.toHex());
  endpoint = { url: second.server.url, secret: second.secret.toHex() };

  const done = await phase("done");
  assert.deepEqual(done.echo, ["again"]);
  assert.match(String(done.callback), /^Hello callback 2, from Node v\d+\./);
  assert.deepEqual(done.remoteError, { isRemoteError: true, name: "RemoteError" });
  const states = done.states as string[];
  assert.equal(states[0], "open");
  assert.equal(states.at(-1), "open");
  assert.ok(states.includes("reconnecting"), `states: ${states.join(", ")}`);
  assert.ok(!states.includes("dead"), `states: ${states.join(", ")}`);
  assert.deepEqual(done.served, ["callback", "server", "callback 2"]);
  // What the client's handlers received from the server: Uint8Arrays with the bytes sent.
  assert.deepEqual(done.reversed, ["Uint8Array:010203", "Uint8Array:010203fa"]);
  assert.deepEqual(done.noted, [[{ blob: "Uint8Array:beef" }, "text"]]);

  // A wrong secret fails at once (reconnect: false), and the error names the 401.
  const refused = done.refused as { name: string; message: string; cause?: string };
  assert.equal(refused?.name, "ChannelDeadError", JSON.stringify(refused));
  // Both the error and its cause (the DisconnectedError) quote the status line.
  assert.match(refused.message, /handshake failed: HTTP\/1\.1 401 Unauthorized/);
  assert.match(String(refused.cause), /handshake failed: HTTP\/1\.1 401 Unauthorized/);
  console.log(`wrong secret: ${refused.message}`);
  await second.refusals.next("the refusal of the wrong secret");

  // Every socket carried a proof in the header (Node's default), never the secret itself,
  // and no subprotocol; the proof made with the current secret each time. Recorded on the
  // wire: Node's own WebSocket was never used.
  assert.equal(done.nativeSockets, 0);
  const sockets = done.sockets as {
    url: string;
    headers: Record<string, string> | null;
    protocols: string[] | null;
  }[];
  assert.ok(sockets.length >= 2, `sockets: ${sockets.length}`);
  for (const socket of sockets) {
    assert.deepEqual(Object.keys(socket.headers ?? {}), ["x-mist-proof", "x-mist-version"]);
    assert.match(socket.headers!["x-mist-proof"], /^[0-9a-f]{32}\.[0-9a-f]{64}$/);
    assert.equal(socket.protocols, null);
  }
  const everything = JSON.stringify(sockets);
  assert.ok(
    !everything.includes(first.secret.toHex()) && !everything.includes(second.secret.toHex()),
  );
  assert.equal(sockets[0].url, first.server.url);
  assert.equal(sockets.at(-1)!.url, second.server.url);

  const status = await Promise.race([
    child.status,
    new Promise<undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), STEP_TIMEOUT_MS);
      child.status.finally(() => clearTimeout(timer));
    }),
  ]);
  assert.ok(status, "The Node client did not exit after closing");
  assert.equal(status.code, 0, await child.stderr);
});
