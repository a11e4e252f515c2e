/**
 * Tests of `serveLocal` over real loopback sockets, driven by the scripted peer: exact frames
 * in, every reply recorded. Covers ids, notifications, every invalid-frame kind, binary
 * frames, the 1009 limit, connection limits and graceful shutdown. Every test runs against both
 * faces of the server (`./_faces.ts`): Deno's, and Node's in-process under Deno's Node
 * compatibility; where they differ by design, each face's documented outcome is asserted.
 *
 * @module
 */
import assert from "node:assert/strict";
import { EnvelopeDecodeError } from "../envelope.ts";
import { NotNegotiatedError, RemoteError } from "../errors.ts";
import { SharedSecret } from "../secret.ts";
import { DEFAULT_HOSTNAME } from "../server.ts";
import { FACES } from "./_faces.ts";
import { type CloseRecord, rawUpgrade, ScriptedPeer, stop, within, writeAll } from "./_helpers.ts";

/**
 * Upgrades a raw TCP connection with the secret in the header, sends `frame` (one masked
 * frame, as given), and reads until the server closes: its close frame's code and reason, or
 * 1006 when the connection ends without one.
 */
async function rawFrameClose(
  port: number,
  secret: SharedSecret,
  frame: Uint8Array,
): Promise<CloseRecord> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const head = `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
    `Sec-WebSocket-Version: 13\r\nX-Land-Secret: ${secret.toHex()}\r\n\r\n`;
  for (const bytes of [new TextEncoder().encode(head), frame]) await writeAll(conn, bytes);
  let data = new Uint8Array(0);
  const buffer = new Uint8Array(4096);
  const read = async (): Promise<boolean> => {
    const n = await conn.read(buffer).catch(() => null); // a reset ends it like EOF
    if (n === null) return false;
    const joined = new Uint8Array(data.length + n);
    joined.set(data);
    joined.set(buffer.subarray(0, n), data.length);
    data = joined;
    return true;
  };
  const text = () => new TextDecoder("latin1").decode(data);
  while (!text().includes("\r\n\r\n")) {
    assert.ok(await read(), `no upgrade response: ${text()}`);
  }
  const end = text().indexOf("\r\n\r\n") + 4;
  assert.match(text(), /^HTTP\/1\.1 101 /);
  data = data.slice(end);
  // Unmasked server frames, each shorter than 126 bytes: skip all but a close frame.
  while (true) {
    while (data.length >= 2 && data.length >= 2 + (data[1] & 0x7f)) {
      const length = data[1] & 0x7f;
      const payload = data.subarray(2, 2 + length);
      if ((data[0] & 0x0f) === 0x8) {
        return {
          code: length >= 2 ? (payload[0] << 8) | payload[1] : 1005,
          reason: new TextDecoder().decode(payload.subarray(2)),
        };
      }
      data = data.slice(2 + length);
    }
    if (!await read()) return { code: 1006, reason: "" };
  }
}

for (const face of FACES) {
  // --- Construction -------------------------------------------------------------------------

  Deno.test(`serveLocal() refuses with TypeError without a secret [${face.name}]`, async () => {
    await face.refuses({}, (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.equal(
        error.message,
        "Cannot serve: no secret (pass one, or set insecureNoSecret explicitly)",
      );
      return true;
    });
  });

  Deno.test(`serveLocal() refuses with RangeError a non-loopback hostname without opt-in [${face.name}]`, async () => {
    const secret = SharedSecret.generate();
    for (const hostname of ["0.0.0.0", "192.168.1.10", "example.com"]) {
      await face.refuses({ secret, hostname }, (error: unknown) => {
        assert.ok(error instanceof RangeError);
        assert.equal(
          error.message,
          `Cannot listen on "${hostname}": not a loopback address (set allowNonLoopback)`,
        );
        return true;
      });
    }
  });

  Deno.test(`serveLocal() refuses with RangeError naming an out-of-range option [${face.name}]`, async () => {
    const secret = SharedSecret.generate();
    const cases: [Record<string, number>, string][] = [
      [{ port: 70000 }, "port"],
      [{ shutdownGraceMs: -1 }, "shutdownGraceMs"],
      [{ maxConnections: 0 }, "maxConnections"],
      [{ upgradeTimeoutMs: 0 }, "upgradeTimeoutMs"],
      [{ maxMessageBytes: 0 }, "maxMessageBytes"],
    ];
    for (const [options, name] of cases) {
      await face.refuses({ secret, ...options }, (error: unknown) => {
        assert.ok(error instanceof RangeError);
        assert.ok(error.message.includes(name), error.message);
        return true;
      });
    }
  });

  Deno.test(`serveLocal() on port 0 reports the real port in port and url [${face.name}]`, async () => {
    await using t = await face.start();
    assert.equal(t.server.hostname, DEFAULT_HOSTNAME);
    assert.ok(t.server.port > 0);
    assert.equal(t.server.url, `ws://127.0.0.1:${t.server.port}/`);
    await using scripted = await ScriptedPeer.connect(t.server.url, t.secret);
    assert.equal(t.server.connections, 1);
    await stop(t, scripted);
  });

  // --- Ids and replies ----------------------------------------------------------------------

  Deno.test(`serveLocal() answers ids 0 and 2^64-1 with exactly the id sent [${face.name}]`, async () => {
    await using t = await face.start();
    await using scripted = await ScriptedPeer.connect(t.server.url, t.secret);
    assert.equal(
      await scripted.exchange('{"id":0,"method":"echo","params":[]}'),
      '{"id":0,"result":[]}',
    );
    const reply = await scripted.exchange(
      '{"id":18446744073709551615,"method":"echo","params":[]}',
    );
    assert.equal(reply, '{"id":18446744073709551615,"result":[]}');
    assert.ok(reply.includes('"id":18446744073709551615,'));
    const above53 = await scripted.exchange(
      '{"id":9007199254740993,"method":"fail","params":["x"]}',
    );
    assert.equal(above53, '{"id":9007199254740993,"error":"x"}');
    await stop(t, scripted);
  });

  Deno.test(`serveLocal() answers an unknown method with 'Unknown method' [${face.name}]`, async () => {
    await using t = await face.start();
    await using scripted = await ScriptedPeer.connect(t.server.url, t.secret);
    assert.deepEqual(JSON.parse(await scripted.exchange('{"id":3,"method":"nope","params":[]}')), {
      id: 3,
      error: 'Unknown method "nope"',
    });
    await stop(t, scripted);
  });

  Deno.test(`serveLocal() answers a thrown Error with its message as the error string [${face.name}]`, async () => {
    await using t = await face.start();
    await using scripted = await ScriptedPeer.connect(t.server.url, t.secret);
    assert.deepEqual(
      JSON.parse(await scripted.exchange('{"id":4,"method":"fail","params":["Disk full"]}')),
      { id: 4, error: "Disk full" },
    );
    await stop(t, scripted);
  });

  Deno.test(`serveLocal() never answers notifications, not even unknown or failing ones [${face.name}]`, async () => {
    await using t = await face.start();
    await using scripted = await ScriptedPeer.connect(t.server.url, t.secret);
    const peer = await t.nextPeer();
    scripted.send('{"id":null,"method":"nope","params":[]}');
    scripted.send('{"id":null,"method":"fail","params":["boom"]}');
    scripted.send('{"method":"fail","params":["no id member"]}');
    scripted.send('{"method":"nope"}');
    assert.equal(
      await scripted.exchange('{"id":1,"method":"echo","params":["only"]}'),
      '{"id":1,"result":["only"]}',
    );
    assert.equal(await scripted.exchange('{"id":2,"method":"$/ping"}'), '{"id":2,"result":null}');
    assert.deepEqual(scripted.received, ['{"id":1,"result":["only"]}', '{"id":2,"result":null}']);
    assert.equal(peer.stats.droppedFrames, 2); // the two unknown notifications
    await stop(t, scripted);
  });

  // --- Invalid frames -----------------------------------------------------------------------

  Deno.test(`serveLocal() drops every unanswerable invalid frame, counts it, and stays usable [${face.name}]`, async () => {
    await using t = await face.start();
    await using scripted = await ScriptedPeer.connect(t.server.url, t.secret);
    const peer = await t.nextPeer();
    const frames = [
      "{not json", // malformed JSON
      "[1,2]", // array
      "42", // number
      "null", // null
      '{"id":true,"method":"echo","params":[]}', // bool id
      '{"id":{},"method":"echo","params":[]}', // object id
      `{"id":"${"x".repeat(200)}","method":"echo","params":[]}`, // id too long to echo
      '{"id":999,"result":"nobody asked"}', // response to an unknown id
      '{"id":"999","result":"nobody asked"}', // response to an id Mist never sends
      '{"id":998,"result":1,"error":"both"}', // both, for an unknown id
      '{"id":null,"method":5}', // non-string method, no id
    ];
    for (const [i, frame] of frames.entries()) {
      scripted.send(frame);
      assert.deepEqual(
        await scripted.echo(100 + i),
        { id: 100 + i, result: ["still here"] },
        frame,
      );
    }
    assert.equal(scripted.received.length, frames.length);
    assert.equal(peer.stats.droppedFrames, frames.length);
    assert.equal(peer.stats.rejectedFrames, 0);
    await stop(t, scripted);
  });

  Deno.test(`serveLocal() answers invalid frames that carry a usable id, and stays usable [${face.name}]`, async () => {
    await using t = await face.start();
    await using scripted = await ScriptedPeer.connect(t.server.url, t.secret);
    const peer = await t.nextPeer();
    const cases: [string, string][] = [
      ['{"id":11}', '{"id":11,"error":"Cannot decode frame: neither method, result nor error"}'],
      [
        '{"id":12,"params":[]}',
        '{"id":12,"error":"Cannot decode frame: neither method, result nor error"}',
      ],
      [
        '{"id":13,"method":7,"params":[]}',
        '{"id":13,"error":"Cannot decode frame: method is not a string"}',
      ],
      [
        '{"id":14,"method":null}',
        '{"id":14,"error":"Cannot decode frame: method is not a string"}',
      ],
      [
        '{"id":15,"method":"echo","params":3}',
        '{"id":15,"error":"Cannot decode frame: params is neither an array nor an object"}',
      ],
      [
        '{"id":18446744073709551615,"method":"echo","params":"x"}',
        '{"id":18446744073709551615,"error":"Cannot decode frame: params is neither an array nor an object"}',
      ],
    ];
    for (const [i, [frame, expected]] of cases.entries()) {
      assert.equal(await scripted.exchange(frame), expected, frame);
      assert.deepEqual(await scripted.echo(200 + i), { id: 200 + i, result: ["still here"] });
    }
    assert.equal(peer.stats.rejectedFrames, cases.length);
    assert.equal(peer.stats.droppedFrames, 0);
    await stop(t, scripted);
  });

  Deno.test(`serveLocal() answers other peers' string, negative, fractional and huge ids with their exact text [${face.name}]`, async () => {
    await using t = await face.start();
    await using scripted = await ScriptedPeer.connect(t.server.url, t.secret);
    for (const id of ['"7"', "-1", "1.5", "-0", "1e2", "18446744073709551616"]) {
      const reply = await scripted.exchange(`{"id":${id},"method":"echo","params":{"by":"name"}}`);
      assert.equal(reply, `{"id":${id},"result":{"by":"name"}}`);
    }
    await stop(t, scripted);
  });

  Deno.test(`serveLocal() never sends a request to a client that did not say $/hello [${face.name}]`, async () => {
    await using t = await face.start();
    await using scripted = await ScriptedPeer.connect(t.server.url, t.secret);
    const peer = await t.nextPeer();
    await assert.rejects(peer.call("clientMethod"), NotNegotiatedError);
    // The demo callback fails with a clear error instead of sending the client a request.
    const reply = JSON.parse(
      await scripted.exchange('{"id":1,"method":"callback","params":["clientMethod",[]]}'),
    );
    assert.equal(reply.id, 1);
    assert.match(reply.error, /did not say \$\/hello/);
    assert.deepEqual(await scripted.echo(2), { id: 2, result: ["still here"] });
    assert.equal(scripted.received.length, 2, scripted.received.join("\n"));
    await stop(t, scripted);
  });

  Deno.test(`serveLocal() fails the server's pending call when the reply has both result and error [${face.name}]`, async () => {
    await using t = await face.start();
    await using scripted = await ScriptedPeer.connect(t.server.url, t.secret, { hello: true });
    const peer = await t.nextPeer();
    const call = peer.call("clientMethod", [1]);
    const request = JSON.parse(await scripted.next());
    assert.equal(request.method, "clientMethod");
    scripted.send(JSON.stringify({ id: request.id, result: 1, error: "two answers" }));
    await assert.rejects(call, (error: unknown) => {
      assert.ok(error instanceof EnvelopeDecodeError);
      assert.equal(error.reason, "result-and-error");
      return true;
    });
    assert.equal(peer.stats.pendingCalls, 0);
    assert.deepEqual(await scripted.echo(1), { id: 1, result: ["still here"] });
    await stop(t, scripted);
  });

  Deno.test(`serveLocal() reads a JSON-RPC 2.0 error object from a client as its message [${face.name}]`, async () => {
    await using t = await face.start();
    await using scripted = await ScriptedPeer.connect(t.server.url, t.secret, { hello: true });
    const peer = await t.nextPeer();
    const call = peer.call("clientMethod");
    const request = JSON.parse(await scripted.next());
    scripted.send(
      JSON.stringify({
        jsonrpc: "2.0",
        id: request.id,
        error: { code: -32601, message: "Method not found" },
      }),
    );
    await assert.rejects(call, (error: unknown) => {
      assert.ok(error instanceof RemoteError);
      assert.equal(error.remoteMessage, "Method not found");
      assert.equal(error.method, "clientMethod");
      return true;
    });
    await stop(t, scripted);
  });

  Deno.test(`serveLocal() ignores binary frames, counts them, and stays usable [${face.name}]`, async () => {
    await using t = await face.start();
    await using scripted = await ScriptedPeer.connect(t.server.url, t.secret);
    const peer = await t.nextPeer();
    scripted.send(new Uint8Array([0, 1, 2, 3]));
    scripted.send(new TextEncoder().encode('{"id":1,"method":"echo","params":[]}'));
    assert.deepEqual(await scripted.echo(2), { id: 2, result: ["still here"] });
    assert.equal(peer.stats.binaryFrames, 2);
    assert.equal(scripted.received.length, 1);
    await stop(t, scripted);
  });

  // --- Limits -------------------------------------------------------------------------------

  Deno.test(`serveLocal() closes a connection with 1009 on a message one byte over maxMessageBytes; others unaffected [${face.name}]`, async () => {
    await using t = await face.start({ maxMessageBytes: 1024 });
    await using victim = await ScriptedPeer.connect(t.server.url, t.secret);
    await using bystander = await ScriptedPeer.connect(t.server.url, t.secret);
    const head = '{"id":1,"method":"echo","params":["';
    const tail = '"]}';
    const exact = head + "x".repeat(1024 - head.length - tail.length) + tail;
    assert.equal(exact.length, 1024);
    assert.equal(JSON.parse(await victim.exchange(exact)).id, 1);
    victim.send(exact.replace('"x', '"xx'));
    assert.deepEqual(await victim.closed, face.tooBig);
    assert.deepEqual(await bystander.echo(5), { id: 5, result: ["still here"] });
    assert.equal(t.server.connections, 1);
    await stop(t, bystander);
  });

  Deno.test(`serveLocal() drops a connection that sends invalid UTF-8 as its face documents; others unaffected [${face.name}]`, async () => {
    await using t = await face.start();
    await using bystander = await ScriptedPeer.connect(t.server.url, t.secret);
    // A masked text frame (mask 0) whose payload, 0xc3 0x28, is not UTF-8.
    const frame = new Uint8Array([0x81, 0x82, 0, 0, 0, 0, 0xc3, 0x28]);
    const closed: CloseRecord = await within(
      rawFrameClose(t.server.port, t.secret, frame),
      "the server to drop the connection",
    );
    assert.deepEqual(closed, face.invalidUtf8);
    assert.deepEqual(await bystander.echo(1), { id: 1, result: ["still here"] });
    await stop(t, bystander);
  });

  Deno.test(`serveLocal() refuses connections beyond maxConnections with 503 [${face.name}]`, async () => {
    await using t = await face.start({ maxConnections: 1 });
    await using first = await ScriptedPeer.connect(t.server.url, t.secret);
    const refused = await rawUpgrade(t.server.port, { "X-Land-Secret": t.secret.toHex() });
    assert.equal(refused.status, 503);
    assert.deepEqual(await first.echo(1), { id: 1, result: ["still here"] });
    await stop(t, first);
  });

  Deno.test(`serveLocal() refuses with Connection: close, and a malformed upgrade with 400 [${face.name}]`, async () => {
    await using t = await face.start();
    const secret = t.secret.toHex();
    const wrong = await rawUpgrade(t.server.port, { "X-Land-Secret": "f".repeat(64) });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get("connection"), "close", "a refused client cannot linger");
    // Deno.upgradeWebSocket throws on this, ws refuses it: the client's mistake, not a 500.
    const keyless = await rawUpgrade(t.server.port, {
      "X-Land-Secret": secret,
      "Sec-WebSocket-Key": null,
    });
    assert.equal(keyless.status, 400);
    assert.equal(keyless.headers.get("connection"), "close");
    assert.equal(t.server.connections, 0);
    await stop(t);
  });

  // --- Shutdown -----------------------------------------------------------------------------

  Deno.test(`LocalServer.shutdown() lets in-flight handlers reply, refuses new requests, then closes with 1001 [${face.name}]`, async () => {
    await using t = await face.start();
    await using scripted = await ScriptedPeer.connect(t.server.url, t.secret);
    const gate = t.nextGate();
    scripted.send('{"id":1,"method":"gate","params":[]}');
    const open = await gate;
    const done = t.server.shutdown();
    assert.equal(
      await scripted.exchange('{"id":2,"method":"echo","params":[]}'),
      '{"id":2,"error":"Cannot run \\"echo\\": peer is shutting down"}',
    );
    open.resolve("finished");
    assert.equal(await scripted.next(), '{"id":1,"result":"finished"}');
    assert.deepEqual(await scripted.closed, { code: 1001, reason: "Server shutting down" });
    await done;
    await t.server.closed;
    assert.equal(t.server.connections, 0);
    assert.equal(t.peers[0].stats.pendingCalls, 0);
    assert.equal(t.peers[0].stats.runningHandlers, 0);
  });

  Deno.test(`LocalServer.shutdown() fires handlers' signals when the grace period ends [${face.name}]`, async () => {
    await using t = await face.start({ shutdownGraceMs: 0 });
    await using scripted = await ScriptedPeer.connect(t.server.url, t.secret);
    scripted.send('{"id":1,"method":"awaitAbort","params":[]}');
    await t.abortStarted.promise;
    await t.server.shutdown();
    const reason = await t.aborted.promise;
    assert.ok(reason instanceof DOMException);
    assert.equal(reason.name, "AbortError");
    assert.deepEqual(await scripted.closed, { code: 1001, reason: "Server shutting down" });
    assert.equal(t.server.connections, 0);
  });

  Deno.test(`LocalServer.shutdown() is idempotent and [Symbol.asyncDispose] shuts down [${face.name}]`, async () => {
    await using t = await face.start();
    {
      await using server = t.server;
      await using scripted = await ScriptedPeer.connect(server.url, t.secret);
      assert.deepEqual(await scripted.echo(1), { id: 1, result: ["still here"] });
    }
    await t.server.shutdown();
    await t.server.closed;
    assert.equal(t.server.connections, 0);
  });

  Deno.test(`serveLocal() shuts down when its signal aborts [${face.name}]`, async () => {
    const controller = new AbortController();
    await using t = await face.start({ signal: controller.signal });
    await using scripted = await ScriptedPeer.connect(t.server.url, t.secret);
    controller.abort();
    assert.deepEqual(await scripted.closed, { code: 1001, reason: "Server shutting down" });
    await t.server.closed;
    assert.equal(t.server.connections, 0);
  });
}
