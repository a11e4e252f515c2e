/**
 * Binary messages (PROTOCOL.md §2): bytes in params and results travel as bytes, both
 * directions, only between peers that negotiated them; malformed messages get an error for their
 * call and the connection survives; limits count every section; cancelling or disconnecting
 * mid-transfer leaves nothing behind. Over real loopback sockets. Node and Chromium clients:
 * tests/node_test.ts and tests/browser_test.ts.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { encodeRequest, encodeSuccess, EnvelopeDecodeError } from "../envelope.ts";
import { HandlerRegistry, LimitError, type Peer, RemoteError } from "../mod.ts";
import { encodeBinary, toBinary } from "../_binary.ts";
import {
  connect,
  connectTo,
  deferred,
  ScriptedPeer,
  startServer,
  stop,
  type TestServer,
  upgradeRequest,
  within,
  writeAll,
} from "./_helpers.ts";
import { startUpstreamServer } from "./peers/_spawn.ts";
import { FACES } from "./_faces.ts";

const MIB = 1024 * 1024;

/** `n` bytes of a pattern that no off-by-one keeps intact. */
function bytes(n: number, seed = 7): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

/** The bytes of a frame a test builds by hand. */
function u32(n: number): number[] {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

function section(content: Uint8Array | string): number[] {
  const data = typeof content === "string" ? new TextEncoder().encode(content) : content;
  return [...u32(data.length), ...data];
}

function frame(...sections: (Uint8Array | string)[]): Uint8Array {
  return new Uint8Array(sections.flatMap(section));
}

Deno.test("Bytes anywhere in params and results arrive as equal Uint8Arrays, both directions, calls and notifications", async () => {
  const noted = deferred<unknown>();
  await using t = startServer({
    registry: new HandlerRegistry()
      .register("echo", (params) => params)
      .register("root", ([n]) => bytes(Number(n)))
      .register("note", (params) => noted.resolve(params))
      .register(
        "back",
        async ([method, params], ctx) => await ctx.peer.call(String(method), params as unknown[]),
      ),
  });
  const clientNoted = deferred<unknown>();
  await using client = connect(t, {
    registry: new HandlerRegistry()
      .register("echo", (params) => params)
      .register("note", (params) => clientNoted.resolve(params)),
  });
  const server = await t.nextPeer();
  const sent = {
    file: { name: "a.png", data: bytes(1000) },
    chunks: [bytes(0), bytes(1), bytes(65_536, 3)],
    raw: bytes(10, 9).buffer, // an ArrayBuffer arrives as a Uint8Array
    node: Buffer.from([1, 2, 3]), // so does Node's Buffer
    ["__proto__"]: bytes(4), // a member name JSON keeps as an own member
    text: "héllo",
  };
  const expected = {
    ...sent,
    raw: bytes(10, 9),
    node: new Uint8Array([1, 2, 3]),
  };
  Object.defineProperty(expected, "__proto__", { value: bytes(4), enumerable: true });
  const [echoed] = await client.call("echo", [sent]) as [typeof sent];
  assert.deepEqual(echoed, expected);
  assert.ok(echoed.file.data instanceof Uint8Array);
  assert.equal(Object.getPrototypeOf(echoed), Object.prototype);
  assert.deepEqual(await client.call("root", [5]), bytes(5));
  // Many parts in one message.
  const many = Array.from({ length: 1000 }, (_, i) => bytes(i % 7, i));
  assert.deepEqual(await client.call("echo", many), many);
  // Server to client: a call (params and result) and a notification; client to server: one too.
  assert.deepEqual(await server.call("echo", [sent.file]), [expected.file]);
  assert.deepEqual(await client.call("back", ["echo", [bytes(300)]]), [bytes(300)]);
  server.notify("note", [bytes(3)]);
  assert.deepEqual(await within(clientNoted.promise, "the client's notification"), [bytes(3)]);
  client.notify("note", { blob: bytes(2) });
  assert.deepEqual(await within(noted.promise, "the server's notification"), { blob: bytes(2) });
  assert.equal(server.stats.binaryFrames, 0); // every binary frame was read, none ignored
  await stop(t, client);
});

Deno.test("Only Uint8Array and ArrayBuffer are bytes: other views are refused, naming the path", async () => {
  await using t = startServer();
  await using client = connect(t);
  await client.call("echo", []);
  await assert.rejects(client.call("echo", [{ v: new Float32Array(2) }]), {
    name: "TypeError",
    message: 'Cannot call "echo": params[0].v is a Float32Array; only Uint8Array and ArrayBuffer ' +
      "are sent as bytes, send new Uint8Array(view.buffer, view.byteOffset, view.byteLength)",
  });
  await assert.rejects(client.call("echo", bytes(3) as never), {
    name: "TypeError",
    message: 'Cannot call "echo": params is neither an array nor an object',
  });
  await stop(t, client);
});

Deno.test("A client that did not negotiate binary messages never receives a binary frame: calls to it and results for it fail clearly", async () => {
  await using t = startServer({
    registry: new HandlerRegistry()
      .register("give", () => ({ png: bytes(8) }))
      .register("echo", (params) => params),
  });
  // Says hello, but lists no features: it speaks revision 2 only.
  await using scripted = await ScriptedPeer.connect(t.server.url, t.secret, { hello: true });
  const server = await t.nextPeer();
  assert.deepEqual(server.remote?.features, []);
  await assert.rejects(server.call("anything", [bytes(1)]), {
    name: "TypeError",
    message: 'Cannot call "anything": params[0] is a Uint8Array; the other side did not ' +
      "negotiate binary messages (a seed peer), send base64 or an array of numbers",
  });
  assert.throws(() => server.notify("anything", [bytes(1)]), TypeError);
  const reply = JSON.parse(await scripted.exchange('{"id":1,"method":"give","params":[]}'));
  assert.deepEqual(reply, {
    id: 1,
    error: 'Cannot encode result of "give": result.png is a Uint8Array; the other side did not ' +
      "negotiate binary messages (a seed peer), send base64 or an array of numbers",
  });
  assert.deepEqual(scripted.binary, []);
  // A binary frame it sends anyway is ignored and counted, as the seed says; nothing breaks.
  scripted.send(toBinary([bytes(2)], (json) => encodeRequest(2, "echo", json as unknown[])));
  assert.deepEqual(await scripted.echo(3), { id: 3, result: ["still here"] });
  assert.equal(server.stats.binaryFrames, 1);
  await stop(t, scripted);
});

Deno.test("Mist's client toward a seed server refuses bytes before sending anything", async () => {
  const secretHex = "ab".repeat(32);
  await using upstream = await startUpstreamServer(secretHex);
  await using client = connectTo(upstream.url, secretHex, { auth: "secret" });
  assert.equal(await client.call("anything", []), null); // connected; the seed answers null
  assert.equal(client.peer?.remote, undefined);
  await assert.rejects(client.call("anything", [bytes(1)]), /did not negotiate binary messages/);
  const requests = upstream.events.items.filter((event) =>
    event.event === "request" && event.method === "anything"
  );
  assert.equal(requests.length, 1); // only the first call reached it
  await client.close();
});

/** A connection of a scripted client that negotiated binary messages, and its server peer. */
async function scriptedBinary(
  t: TestServer,
): Promise<{ scripted: ScriptedPeer; server: Peer }> {
  const scripted = await ScriptedPeer.connect(t.server.url, t.secret, {
    hello: true,
    features: ["binary"],
  });
  const server = await t.nextPeer();
  assert.deepEqual(server.remote?.features, ["binary"]);
  return { scripted, server };
}

Deno.test("Malformed binary messages get an error for their call, or are dropped without an id; the connection survives", async () => {
  await using t = startServer();
  const { scripted, server } = await scriptedBinary(t);
  await using _ = scripted;
  const request = (id: number, params = "[null]") =>
    `{"id":${id},"method":"echo","params":${params}}`;
  const answered: [string, Uint8Array, string][] = [
    ["no slots section", frame(request(1)), "slots section missing (0 bytes left)"],
    ["slots not JSON", frame(request(2), "[[0]"), "slots section is not JSON"],
    ["slots not an array", frame(request(3), "{}"), "slots section is not an array"],
    ["a missing part", frame(request(4), "[[0]]"), "part 0 missing (0 bytes left)"],
    [
      "a wrong length",
      new Uint8Array([...section(request(5)), ...section("[[0]]"), ...u32(100), 1, 2, 3]),
      "part 0 claims 100 bytes, 3 remain",
    ],
    ["a part without a slot", frame(request(6), "[]", bytes(2)), "6 bytes after part -1 (no slot)"],
    [
      "a slot that is not null",
      frame(request(7, "[1]"), "[[0]]", bytes(1)),
      "slot 0 is not a null member",
    ],
    [
      "a slot that is not there",
      frame(request(8), "[[3]]", bytes(1)),
      "slot 0 is not a null member",
    ],
    [
      "a slot through a string",
      frame(request(9, '["s"]'), "[[0, 0]]", bytes(1)),
      "slot 0 goes through a value that is not an array or object",
    ],
    [
      "a slot path too deep",
      frame(request(10), JSON.stringify([Array(65).fill(0)]), bytes(1)),
      "a slot is not an array of at most 64 keys",
    ],
    [
      "a bad key",
      frame(request(11), "[[true]]", bytes(1)),
      "a slot's key is neither an index nor a name",
    ],
    [
      "too many slots",
      frame(request(13), JSON.stringify(Array(65_537).fill([0]))),
      "more than 65536 slots",
    ],
    [
      "one part, two slots to it",
      frame(request(12, "[null]"), "[[0],[0]]", bytes(1), bytes(1)),
      "slot 1 is not a null member",
    ],
  ];
  for (const [what, message, problem] of answered) {
    const id = JSON.parse(
      new TextDecoder().decode(
        message.subarray(4, 4 + new DataView(message.buffer).getUint32(0)),
      ),
    ).id;
    const reply = await within(scripted.exchange(message), what);
    assert.deepEqual(
      JSON.parse(reply),
      { id, error: `Cannot decode frame: binary message: ${problem}` },
      what,
    );
  }
  // Without a readable envelope there is no id to answer: dropped, counted.
  const dropped: [string, Uint8Array][] = [
    ["shorter than a length", new Uint8Array([0, 0])],
    ["an envelope longer than the frame", new Uint8Array([...u32(100), 1, 2])],
    ["an envelope that is not UTF-8", frame(new Uint8Array([0xff, 0xfe]), "[]")],
    ["an envelope that is not JSON", frame("{", "[]")],
  ];
  const before = server.stats.droppedFrames;
  for (const [, message] of dropped) scripted.send(message);
  assert.deepEqual(await scripted.echo(20), { id: 20, result: ["still here"] });
  assert.equal(server.stats.droppedFrames - before, dropped.length);
  // A well-formed one still works on the same connection.
  const good = toBinary([{ b: bytes(5) }], (json) => encodeRequest(21, "echo", json as unknown[]));
  await scripted.exchange(good);
  assert.equal(scripted.received.at(-1), `<binary ${scripted.binary.length - 1}>`);
  assert.equal(server.stats.binaryFrames, 0);
  await stop(t, scripted);
});

Deno.test("A malformed binary reply fails the call it answers with a bad-binary error", async () => {
  await using t = startServer();
  const { scripted, server } = await scriptedBinary(t);
  await using _ = scripted;
  const call = server.call("anything", []);
  const request = JSON.parse(await scripted.next());
  scripted.send(frame(encodeSuccess(request.id, null), "[[0]]")); // the part is missing
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof EnvelopeDecodeError);
    assert.equal(error.reason, "bad-binary");
    assert.equal(
      error.message,
      "Cannot decode frame: binary message: part 0 missing (0 bytes left)",
    );
    return true;
  });
  // An error reply carries no bytes.
  const second = server.call("anything", []);
  const { id } = JSON.parse(await scripted.next());
  scripted.send(frame(`{"id":${id},"error":"no"}`, "[[0]]", bytes(1)));
  await assert.rejects(second, /binary message: an error reply has bytes/);
  assert.equal(server.stats.pendingCalls, 0);
  await stop(t, scripted);
});

Deno.test("The message limit counts every section of a binary message, on both sides", async () => {
  const limit = MIB;
  await using t = startServer({
    maxMessageBytes: limit,
    registry: new HandlerRegistry()
      .register("echo", (params) => params)
      .register("give", ([n]) => bytes(Number(n))),
  });
  await using client = connect(t, { maxMessageBytes: limit });
  await t.nextPeer(); // the client's: the scripted peer's comes next
  // Sending: the whole frame is checked before anything is written.
  const header = toBinary([bytes(0)], (json) => encodeRequest(1, "echo", json as unknown[]))
    .byteLength; // the first call's id is 1: the hello was 0
  const fits = limit - header;
  assert.equal((await client.call("echo", [bytes(fits)]) as Uint8Array[])[0].byteLength, fits);
  await assert.rejects(client.call("echo", [bytes(fits + 1)]), (error: unknown) => {
    assert.ok(error instanceof LimitError);
    assert.equal(error.code, "message-too-big");
    return true;
  });
  // Replying: a result over the limit becomes an error reply.
  await assert.rejects(client.call("give", [limit]), (error: unknown) => {
    assert.ok(error instanceof RemoteError);
    assert.equal(error.code, "result-too-big");
    return true;
  });
  // Receiving: one byte over closes with 1009, as a text frame would.
  const { scripted } = await scriptedBinary(t);
  await using _ = scripted;
  scripted.send(new Uint8Array(limit + 1));
  assert.equal((await within(scripted.closed, "the 1009 close")).code, 1009);
  assert.deepEqual(await client.call("echo", [1]), [1]); // other connections are untouched
  await stop(t, client);
});

Deno.test("A call cancelled while its bytes wait to be written is withdrawn: nothing left, never run", async () => {
  let runs = 0;
  await using t = startServer({
    maxMessageBytes: 64 * MIB,
    registry: new HandlerRegistry().register("sink", () => void runs++).register("echo", (p) => p),
  });
  // A small high-water mark: the first message fills the socket's buffer, the rest queue.
  await using client = connect(t, { maxMessageBytes: 64 * MIB, highWaterMarkBytes: 1024 });
  await client.call("echo", []);
  const controller = new AbortController();
  const calls = Array.from(
    { length: 4 },
    () => client.call("sink", [bytes(8 * MIB)], { signal: controller.signal }),
  );
  const peer = client.peer!;
  assert.ok(peer.stats.queuedFrames >= 1, `queued: ${peer.stats.queuedFrames}`);
  controller.abort(new Error("user cancelled"));
  for (const call of calls) await assert.rejects(call, /user cancelled/);
  assert.equal(peer.stats.pendingCalls, 0);
  // At most the $/cancel of the one already written waits, behind the bytes being written.
  assert.ok(peer.stats.queuedFrames <= 1, `queued: ${peer.stats.queuedFrames}`);
  // The connection still works, and only what was already written ran.
  assert.deepEqual(await client.call("echo", ["after"]), ["after"]);
  assert.equal(peer.stats.queuedFrames, 0);
  assert.ok(runs <= 1, `ran ${runs}`);
  await stop(t, client);
});

Deno.test("A client that disconnects mid-transfer, either way, leaves the server serving with nothing held", async () => {
  const started = deferred<void>();
  await using t = startServer({
    maxMessageBytes: 64 * MIB,
    registry: new HandlerRegistry()
      .register("echo", (params) => params)
      .register("give", ([n]) => (started.resolve(), bytes(Number(n)))),
  });
  // Receiving: a raw client says hello with binary, then sends half of a 16 MiB binary frame.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: t.server.port });
  const encoder = new TextEncoder();
  await writeAll(
    conn,
    encoder.encode(upgradeRequest(t.server.port, { "X-Land-Secret": t.secret.toHex() })),
  );
  const head = new Uint8Array(4096);
  await conn.read(head); // the 101
  const hello = encoder.encode(
    '{"id":0,"method":"$/hello","params":{"version":4,"features":["binary"]}}',
  );
  assert.ok(hello.length < 126);
  await writeAll(conn, new Uint8Array([0x81, 0x80 | hello.length, 0, 0, 0, 0, ...hello]));
  const size = 16 * MIB;
  await writeAll(conn, new Uint8Array([0x82, 0x80 | 127, 0, 0, 0, 0, ...u32(size), 0, 0, 0, 0]));
  await writeAll(conn, new Uint8Array(size / 2));
  conn.close();
  // Sending: a client asks for 32 MiB and closes as soon as the handler ran.
  await using client = connect(t, { maxMessageBytes: 64 * MIB, reconnect: false });
  const call = client.call("give", [32 * MIB]);
  await within(started.promise, "the handler");
  await client.close();
  await assert.rejects(call);
  await within(
    (async () => {
      while (t.server.connections > 0) await new Promise((r) => setTimeout(r, 10));
    })(),
    "both connections to end",
  );
  for (const peer of t.peers) {
    assert.deepEqual(
      [peer.stats.pendingCalls, peer.stats.runningHandlers, peer.stats.queuedFrames],
      [0, 0, 0],
    );
  }
  await using next = connect(t);
  assert.deepEqual(await next.call("echo", [bytes(3)]), [bytes(3)]);
  await stop(t, next);
});

for (const face of FACES) {
  Deno.test(`${face.name}: large binary messages in flight together arrive intact, though their memory is reused`, async () => {
    // Each large message is built in reused memory (_buffer_pool.ts), given back once sent:
    // a socket that still needs it (ws writes later) must hold it until written.
    await using t = await face.start({
      resume: false, // nothing kept for replay: the socket is the only holder
      registry: new HandlerRegistry()
        .register("pattern", ([i]) => bytes(MIB, Number(i)))
        .register("echo", (params) => params),
    });
    await using c = connect(t);
    const count = 12;
    const down = await within(
      Promise.all(Array.from({ length: count }, (_, i) => c.call("pattern", [i]))),
      "the replies",
    );
    for (let i = 0; i < count; i++) assert.deepEqual(down[i], bytes(MIB, i), `reply ${i}`);
    const up = Array.from({ length: count }, (_, i) => bytes(MIB, 100 + i));
    const echoed = await within(Promise.all(up.map((data) => c.call("echo", [data]))), "echoes");
    for (let i = 0; i < count; i++) assert.deepEqual(echoed[i], [up[i]], `echo ${i}`);
    await stop(t, c);
  });
}

Deno.test("encodeBinary() writes length-prefixed sections that decodeBinary() reads back as views", async () => {
  const { decodeBinary } = await import("../_binary.ts");
  const parts = [bytes(3), bytes(0), bytes(5, 1)];
  const message = encodeBinary('{"id":1,"result":[null,null,null]}', [[0], [1], [2]], parts);
  assert.equal(message.byteLength, 4 + 34 + 4 + 13 + 3 * 4 + 8);
  const read = decodeBinary(message);
  assert.ok(read.ok);
  assert.deepEqual(read.parts, parts);
  assert.equal(read.parts[0].buffer, message.buffer); // no copy on receipt
});
