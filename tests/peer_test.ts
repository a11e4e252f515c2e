/**
 * Tests of the shared peer over the in-memory transport pair: calls both ways, errors,
 * timeouts and cancellation, limits, notifications, concurrency, drain and close.
 *
 * @module
 */
import assert from "node:assert/strict";
import { EnvelopeDecodeError } from "../envelope.ts";
import { DisconnectedError, LimitError, NotNegotiatedError, RemoteError } from "../errors.ts";
import { consoleLogger } from "../log.ts";
import { Peer, type PeerOptions } from "../peer.ts";
import { type HandlerContext, HandlerRegistry } from "../registry.ts";
import { FakeClock } from "./_fake_clock.ts";
import { deferred, memoryPair, type MemoryTransport, quiet, turn } from "./_helpers.ts";

/**
 * Two peers over an in-memory pair: `a` serves `registry` with `options`, `b` has `bOptions`.
 * `await using peers = pair(…)` closes both when the test ends.
 */
function pair(
  registry = new HandlerRegistry(),
  options: PeerOptions = {},
  bOptions: PeerOptions = {},
): { a: Peer; b: Peer; ta: MemoryTransport; tb: MemoryTransport } & AsyncDisposable {
  const [ta, tb] = memoryPair();
  const a = new Peer(ta, { logger: quiet, ...options, registry });
  const b = new Peer(tb, { logger: quiet, ...bOptions });
  return {
    a,
    b,
    ta,
    tb,
    async [Symbol.asyncDispose]() {
      b.close(1000, "done");
      await Promise.all([a.closed, b.closed]);
    },
  };
}

/** Closes both peers and checks nothing is left. */
async function finish(a: Peer, b: Peer): Promise<void> {
  b.close(1000, "done");
  await Promise.all([a.closed, b.closed]);
  for (const peer of [a, b]) {
    assert.equal(peer.stats.pendingCalls, 0);
    assert.equal(peer.stats.runningHandlers, 0);
    assert.equal(peer.stats.queuedFrames, 0);
  }
}

// --- Options ------------------------------------------------------------------------------

Deno.test("Peer() throws RangeError naming the option and its value", () => {
  const cases: [PeerOptions, string][] = [
    [{ maxMessageBytes: 0 }, "maxMessageBytes"],
    [{ maxMessageBytes: 64 * 1024 * 1024 + 1 }, "maxMessageBytes"],
    [{ maxInFlight: 0 }, "maxInFlight"],
    [{ maxPendingCalls: 1.5 }, "maxPendingCalls"],
    [{ highWaterMarkBytes: -1 }, "highWaterMarkBytes"],
    [{ defaultTimeoutMs: 0 }, "defaultTimeoutMs"],
  ];
  for (const [options, name] of cases) {
    const [transport] = memoryPair();
    const value = String(Object.values(options)[0]);
    assert.throws(() => new Peer(transport, options), (error: unknown) => {
      assert.ok(error instanceof RangeError);
      assert.ok(error.message.includes(name), error.message);
      assert.ok(error.message.includes(value), error.message);
      return true;
    });
  }
});

// --- Calls --------------------------------------------------------------------------------

Deno.test("Peer.call() resolves with the result, in both directions", async () => {
  const [ta, tb] = memoryPair();
  using a = new Peer(ta, {
    logger: quiet,
    registry: new HandlerRegistry().register("add", ([x, y]) => Number(x) + Number(y)),
  });
  using b = new Peer(tb, {
    logger: quiet,
    registry: new HandlerRegistry().register("neg", ([x]) => -Number(x)),
  });
  assert.equal(await b.call("add", [2, 3]), 5);
  assert.equal(await a.call("neg", [4]), -4);
  await finish(a, b);
});

Deno.test("Peer.call() resolves with null when the handler returns undefined", async () => {
  await using peers = pair(new HandlerRegistry().register("nothing", () => undefined));
  const { a, b } = peers;
  assert.equal(await b.call("nothing"), null);
  await finish(a, b);
});

Deno.test("Peer.call() rejects with RemoteError carrying the thrown message", async () => {
  await using peers = pair(
    new HandlerRegistry()
      .register("fail", () => {
        throw new Error("Disk full");
      })
      .register("failAsync", () => Promise.reject(new Error("Later")))
      .register("throwString", () => {
        throw "plain";
      }),
  );
  const { a, b } = peers;
  await assert.rejects(b.call("fail"), (error: unknown) => {
    assert.ok(error instanceof RemoteError);
    assert.equal(error.method, "fail");
    assert.equal(error.remoteMessage, "Disk full");
    assert.equal(error.message, 'Remote "fail" failed: Disk full');
    return true;
  });
  await assert.rejects(b.call("failAsync"), { name: "RemoteError", remoteMessage: "Later" });
  await assert.rejects(b.call("throwString"), { name: "RemoteError", remoteMessage: "plain" });
  await finish(a, b);
});

class NotFound extends Error {
  override name = "NotFound";
}

Deno.test("Peer answers what a handler threw with a useful message; an error's name survives as a prefix", async () => {
  const cyclic: Record<string, unknown> = { reason: "loop" };
  cyclic.self = cyclic;
  const cases: [string, () => unknown, string, string | undefined][] = [
    ["Error", () => new Error("Disk full"), "Disk full", undefined],
    ["TypeError", () => new TypeError("bad"), "TypeError: bad", "TypeError"],
    ["subclass", () => new NotFound("no such file"), "NotFound: no such file", "NotFound"],
    [
      "DOMException",
      () => new DOMException("gone", "AbortError"),
      "AbortError: gone",
      "AbortError",
    ],
    ["empty message", () => new RangeError(""), "RangeError", undefined],
    ["empty Error", () => new Error(), "Error", undefined],
    ["odd name", () => Object.assign(new Error("m"), { name: "not a name" }), "m", undefined],
    [
      "error-like object",
      () => ({ name: "Busy", message: "try later" }),
      "Busy: try later",
      "Busy",
    ],
    ["object with message", () => ({ message: "plain object" }), "plain object", undefined],
    ["object", () => ({ code: 7, path: ["a"] }), '{"code":7,"path":["a"]}', undefined],
    [
      "long object",
      () => ({ text: "x".repeat(600) }),
      `{"text":"${"x".repeat(491)}…(+111 chars)`,
      undefined,
    ],
    ["cyclic object", () => cyclic, "[object Object]", undefined],
    [
      "null-prototype object",
      () => Object.assign(Object.create(null), { n: 1n }),
      "[object Object]",
      undefined,
    ],
    ["string", () => "plain", "plain", undefined],
    ["number", () => 42, "42", undefined],
    ["undefined", () => undefined, "undefined", undefined],
    [
      "coded form",
      () => new TypeError('Invalid params for "m": [0]: Expected number'),
      'Invalid params for "m": [0]: Expected number',
      undefined,
    ],
  ];
  const registry = new HandlerRegistry();
  for (const [name, make] of cases) {
    registry.register(`sync ${name}`, () => {
      throw make();
    });
    registry.register(`async ${name}`, () => Promise.reject(make()));
  }
  await using peers = pair(registry);
  const { a, b } = peers;
  for (const [name, , message, remoteName] of cases) {
    for (const kind of ["sync", "async"]) {
      await assert.rejects(b.call(`${kind} ${name}`), (error: unknown) => {
        assert.ok(error instanceof RemoteError, name);
        assert.equal(error.remoteMessage, message, name);
        assert.equal(error.remoteName, remoteName, name);
        return true;
      });
    }
  }
  await finish(a, b);
});

Deno.test("Peer logs throwing handlers at warn, rate-limited and escaped; a stopped handler's at debug", async () => {
  const lines: string[] = [];
  const clock = new FakeClock();
  const gate = deferred<void>();
  const [ta, tb] = memoryPair();
  const a = new Peer(ta, {
    clock,
    logger: consoleLogger("debug", (line) => lines.push(line)),
    registry: new HandlerRegistry()
      .register("bad\nWARN forged", () => {
        throw new TypeError("line\nbreak");
      })
      .register("stopped", async (_params, ctx) => {
        gate.resolve();
        await new Promise((_resolve, reject) => ctx.signal.addEventListener("abort", reject));
      }),
  });
  const b = new Peer(tb, { logger: quiet });
  for (let i = 0; i < 12; i++) await assert.rejects(b.call("bad\nWARN forged"), RemoteError);
  b.notify("bad\nWARN forged");
  await turn();
  const warned = lines.filter((line) => line.includes("WARN") && line.includes("threw"));
  assert.equal(warned.length, 10, lines.join("\n")); // the burst; the rest are counted
  assert.match(
    warned[0],
    /Request handler "bad\\nWARN forged" threw: TypeError: line\\nbreak$/,
  );
  await b.hello(); // so that b tells a when it gives up on a call
  const stopped = b.call("stopped", [], { timeoutMs: 1 });
  await gate.promise;
  await assert.rejects(stopped, { name: "TimeoutError" }); // $/cancel fires the handler's signal
  await turn();
  assert.ok(
    lines.some((line) => /DEBUG.*Request handler "stopped" threw/.test(line)),
    lines.join("\n"),
  );
  b.close();
  await a.closed;
  const summary = lines.at(-1)!;
  assert.match(summary, /WARN.*3 more handlers threw in the last \d+ s \("bad\\nWARN forged": 3\)/);
  assert.ok(lines.every((line) => !line.includes("\n")));
  assert.equal(clock.pending.length, 0, "no timer left");
});

Deno.test("Peer.call() rejects with RemoteError 'Unknown method' for an unregistered method", async () => {
  await using peers = pair();
  const { a, b } = peers;
  await assert.rejects(b.call("nope", [1]), (error: unknown) => {
    assert.ok(error instanceof RemoteError);
    assert.equal(error.remoteMessage, 'Unknown method "nope"');
    return true;
  });
  await finish(a, b);
});

Deno.test("Peer.call() answers the reserved $/ping with null", async () => {
  await using peers = pair();
  const { a, b } = peers;
  assert.equal(await b.call("$/ping"), null);
  await finish(a, b);
});

Deno.test("Peer.call() throws TypeError for a non-string method or non-array params", async () => {
  await using peers = pair();
  const { a, b } = peers;
  await assert.rejects(b.call(5 as unknown as string), TypeError);
  await assert.rejects(b.call("echo", "x" as unknown as unknown[]), TypeError);
  await assert.rejects(b.call("echo", [1n]), TypeError);
  assert.equal(b.stats.pendingCalls, 0);
  await finish(a, b);
});

Deno.test("Peer.call() answers 'Cannot encode result' when the result is not JSON", async () => {
  await using peers = pair(new HandlerRegistry().register("bad", () => 1n));
  const { a, b } = peers;
  await assert.rejects(b.call("bad"), (error: unknown) => {
    assert.ok(error instanceof RemoteError);
    assert.match(error.remoteMessage, /^Cannot encode result of "bad": /);
    return true;
  });
  await finish(a, b);
});

Deno.test("Peer handlers get ctx.peer to call back the caller over the same connection", async () => {
  const [tc, td] = memoryPair();
  using server = new Peer(tc, {
    logger: quiet,
    registry: new HandlerRegistry().register("twice", async ([x], ctx: HandlerContext) => {
      const once = await ctx.peer.call("once", [x]);
      assert.equal(ctx.method, "twice");
      assert.equal(ctx.id, 0);
      return [once, once];
    }),
  });
  using client = new Peer(td, {
    logger: quiet,
    registry: new HandlerRegistry().register("once", ([x]) => `${x}!`),
  });
  assert.deepEqual(await client.call("twice", ["hi"]), ["hi!", "hi!"]);
  await finish(server, client);
});

// --- Timeouts and cancellation -------------------------------------------------------------

Deno.test("Peer.call() with timeoutMs rejects TimeoutError and fires the remote handler's signal", async () => {
  const started = deferred<AbortSignal>();
  await using peers = pair(
    new HandlerRegistry().register("hang", (_params, ctx) => {
      started.resolve(ctx.signal);
      return new Promise((_resolve, reject) =>
        ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))
      );
    }),
  );
  const { a, b } = peers;
  await b.hello(); // $/cancel goes only to a peer that said hello
  const call = b.call("hang", [], { timeoutMs: 1 });
  const signal = await started.promise;
  const remoteAbort = new Promise((resolve) => signal.addEventListener("abort", resolve));
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof DOMException);
    assert.equal(error.name, "TimeoutError");
    assert.equal(error.message, 'Call "hang" timed out after 1 ms');
    return true;
  });
  await remoteAbort;
  assert.ok(signal.reason instanceof DOMException);
  assert.equal(signal.reason.name, "AbortError");
  assert.equal(b.stats.pendingCalls, 0);
  await finish(a, b);
});

Deno.test("Peer.call() with defaultTimeoutMs times out calls that set none", async () => {
  const never = deferred<unknown>();
  await using peers = pair(
    new HandlerRegistry().register("hang", () => never.promise),
    {},
    { defaultTimeoutMs: 1 },
  );
  const { a, b } = peers;
  await assert.rejects(b.call("hang"), { name: "TimeoutError" });
  never.resolve(null);
  await finish(a, b);
});

Deno.test("Peer.call() rejects RangeError for a bad timeoutMs", async () => {
  await using peers = pair();
  const { a, b } = peers;
  await assert.rejects(b.call("x", [], { timeoutMs: -1 }), RangeError);
  await assert.rejects(b.call("x", [], { timeoutMs: 1.5 }), /timeoutMs/);
  assert.equal(b.stats.pendingCalls, 0);
  await finish(a, b);
});

Deno.test("Peer.call() rejects with signal.reason on abort and cancels the remote handler", async () => {
  const started = deferred<AbortSignal>();
  await using peers = pair(
    new HandlerRegistry().register("hang", (_params, ctx) => {
      started.resolve(ctx.signal);
      return new Promise((_resolve, reject) =>
        ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))
      );
    }),
  );
  const { a, b } = peers;
  await b.hello();
  const controller = new AbortController();
  const call = b.call("hang", [], { signal: controller.signal });
  const signal = await started.promise;
  const remoteAbort = new Promise((resolve) => signal.addEventListener("abort", resolve));
  const reason = new Error("user gave up");
  controller.abort(reason);
  await assert.rejects(call, (error: unknown) => error === reason);
  await remoteAbort;
  assert.equal(b.stats.pendingCalls, 0);
  await finish(a, b);
});

Deno.test("Peer.call() with an already-aborted signal rejects with its reason at once and sends nothing", async () => {
  let ran = 0;
  await using peers = pair(
    new HandlerRegistry().register("echo", (p) => p).register("block", () => void ran++),
  );
  const { a, b, tb } = peers;
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(b.call("block", [], { signal: controller.signal }), { name: "AbortError" });
  const reason = new Error("too late");
  const withReason = new AbortController();
  withReason.abort(reason);
  await assert.rejects(
    b.call("block", [], { signal: withReason.signal }),
    (error: unknown) => error === reason,
  );
  assert.deepEqual(tb.sent, []);
  assert.equal(b.stats.pendingCalls, 0);
  assert.deepEqual(await b.call("echo", [3]), [3]);
  assert.equal(ran, 0, "the handler never ran");
  await finish(a, b);
});

// --- Limits -------------------------------------------------------------------------------

Deno.test("Peer.call() rejects LimitError too-many-pending beyond maxPendingCalls", async () => {
  const gate = deferred<unknown>();
  await using peers = pair(
    new HandlerRegistry().register("wait", () => gate.promise),
    {},
    { maxPendingCalls: 2 },
  );
  const { a, b } = peers;
  const first = b.call("wait");
  const second = b.call("wait");
  await assert.rejects(b.call("wait"), (error: unknown) => {
    assert.ok(error instanceof LimitError);
    assert.equal(error.code, "too-many-pending");
    assert.equal(error.message, 'Cannot call "wait": 2 calls pending (maxPendingCalls)');
    assert.equal(error.closeCode, undefined);
    return true;
  });
  gate.resolve("ok");
  assert.deepEqual(await Promise.all([first, second]), ["ok", "ok"]);
  await finish(a, b);
});

Deno.test("Peer.call() rejects LimitError message-too-big and sends nothing", async () => {
  await using peers = pair(new HandlerRegistry(), {}, { maxMessageBytes: 64 });
  const { a, b, tb } = peers;
  await assert.rejects(b.call("echo", ["x".repeat(64)]), (error: unknown) => {
    assert.ok(error instanceof LimitError);
    assert.equal(error.code, "message-too-big");
    assert.equal(error.message, 'Cannot call "echo": message over 64 bytes (maxMessageBytes)');
    assert.equal(error.closeCode, undefined);
    return true;
  });
  assert.throws(() => b.notify("echo", ["é".repeat(40)]), {
    name: "LimitError",
    code: "message-too-big",
    message: 'Cannot notify "echo": message over 64 bytes (maxMessageBytes)',
  });
  assert.deepEqual(tb.sent, []);
  assert.equal(b.stats.pendingCalls, 0);
  await finish(a, b);
});

Deno.test("Peer closes with 1009 on an incoming message one byte over maxMessageBytes", async () => {
  await using peers = pair(new HandlerRegistry().register("echo", (p) => p), {
    maxMessageBytes: 100,
  });
  const { a, b, tb } = peers;
  const overhead = '{"id":0,"method":"echo","params":[""]}'.length;
  const fill = "x".repeat(100 - overhead);
  // A call of exactly 100 bytes is accepted; the same with one byte more closes with 1009.
  assert.deepEqual(await b.call("echo", [fill]), [fill]);
  const frame = `{"id":1,"method":"echo","params":["${fill}x"]}`;
  assert.equal(new TextEncoder().encode(frame).length, 101);
  tb.inject(frame);
  assert.deepEqual(await a.closed, { code: 1009, reason: "Message too big" });
  assert.deepEqual(await b.closed, { code: 1009, reason: "Message too big" });
  assert.equal(a.stats.runningHandlers, 0);
});

Deno.test("Peer counts multi-byte characters as UTF-8 bytes against maxMessageBytes", async () => {
  await using peers = pair(new HandlerRegistry(), { maxMessageBytes: 100 });
  const { a, b, tb } = peers;
  // 29 + 3 * 24 = 101 bytes in 53 UTF-16 units.
  const frame = '{"id":null,"method":"m","p":"' + "€".repeat(24);
  tb.inject(frame);
  assert.deepEqual(await a.closed, { code: 1009, reason: "Message too big" });
  await b.closed;
});

Deno.test("Peer answers 'overloaded' beyond maxInFlight, drops notifications, and serves again once handlers finish", async () => {
  const gate = deferred<unknown>();
  const seen: string[] = [];
  await using peers = pair(
    new HandlerRegistry()
      .register("wait", () => gate.promise)
      .register("note", ([x]) => void seen.push(String(x)))
      .register("echo", (p) => p),
    { maxInFlight: 2 },
  );
  const { a, b } = peers;
  const first = b.call("wait");
  const second = b.call("wait");
  await turn();
  assert.equal(a.stats.runningHandlers, 2);
  b.notify("note", ["dropped"]);
  await turn();
  assert.equal(a.stats.overloaded, 1, "the dropped notification is counted");
  await assert.rejects(b.call("wait", ["third"]), (error: unknown) => {
    assert.ok(error instanceof RemoteError, String(error));
    assert.equal(error.method, "wait");
    assert.match(error.message, /overloaded/);
    assert.equal(error.remoteMessage, 'Cannot run "wait": overloaded (2 requests in flight)');
    return true;
  });
  assert.equal(a.stats.overloaded, 2);
  assert.equal(a.stats.runningHandlers, 2);
  assert.equal(a.closeInfo, undefined, "the connection stays open");
  gate.resolve("done");
  assert.deepEqual(await Promise.all([first, second]), ["done", "done"]);
  b.notify("note", ["kept"]);
  assert.deepEqual(await b.call("wait"), "done");
  assert.deepEqual(await b.call("echo", ["again"]), ["again"]);
  assert.equal(a.stats.runningHandlers, 0);
  assert.deepEqual(seen, ["kept"]);
  await finish(a, b);
});

Deno.test("Peer queues frames while bufferedAmount is above highWaterMarkBytes and sends them in order once it drains", async () => {
  const gate = deferred<unknown>();
  await using peers = pair(
    new HandlerRegistry().register("echo", (p) => p).register("wait", () => gate.promise),
    {},
    { highWaterMarkBytes: 10 },
  );
  const { a, b, tb } = peers;
  const methods = () => tb.sent.map((frame) => JSON.parse(frame).method);
  tb.bufferedAmount = 11; // over the mark from the first frame: nothing goes out
  const one = b.call("echo", [1]);
  const two = b.call("echo", [2]);
  assert.equal(b.stats.queuedFrames, 2);
  assert.deepEqual(tb.sent, []);
  tb.bufferedAmount = 0;
  assert.deepEqual(await Promise.all([one, two]), [[1], [2]]);
  assert.deepEqual(tb.sent.map((frame) => JSON.parse(frame).params), [[1], [2]]);
  assert.equal(b.stats.queuedFrames, 0);
  tb.sent.length = 0;
  tb.bufferedAmount = 10; // at the mark: still sent at once
  b.notify("a");
  assert.deepEqual(methods(), ["a"]);
  tb.bufferedAmount = 11; // one byte over: queued, calls and notifications alike
  b.notify("b");
  const waiting = b.call("wait");
  b.notify("d");
  assert.deepEqual(methods(), ["a"]);
  assert.equal(b.stats.queuedFrames, 3);
  assert.equal(b.stats.pendingCalls, 1);
  tb.bufferedAmount = 0;
  // Once a queue exists, new frames join it even though the socket has room: order is kept.
  b.notify("e");
  assert.equal(b.stats.queuedFrames, 4);
  assert.deepEqual(await b.call("echo", ["f"]), ["f"]); // queued behind the others, so sent last
  assert.deepEqual(methods(), ["a", "b", "wait", "d", "e", "echo"]);
  assert.equal(b.stats.queuedFrames, 0);
  b.close(1000, "done");
  await assert.rejects(waiting, DisconnectedError);
  assert.equal(b.stats.pendingCalls, 0);
  gate.resolve(null); // the handler ends; its reply has nowhere to go
  await finish(a, b);
});

// --- Notifications, ordering, concurrency ---------------------------------------------------

Deno.test("Peer.notify() runs the handler and never sends a reply, even on error", async () => {
  const seen: unknown[] = [];
  await using peers = pair(
    new HandlerRegistry()
      .register("note", ([x]) => void seen.push(x))
      .register("boom", () => {
        throw new Error("ignored");
      })
      .register("boomAsync", () => Promise.reject(new Error("ignored"))),
  );
  const { a, b, ta } = peers;
  b.notify("note", [1]);
  b.notify("boom");
  b.notify("boomAsync");
  b.notify("unknown");
  assert.equal(await b.call("$/ping"), null);
  assert.deepEqual(seen, [1]);
  assert.deepEqual(ta.sent.map((frame) => JSON.parse(frame)), [{ id: 0, result: null }]);
  assert.equal(a.stats.droppedFrames, 1); // the unknown notification
  await finish(a, b);
});

Deno.test("Peer starts handlers in arrival order", async () => {
  const order: number[] = [];
  await using peers = pair(
    new HandlerRegistry().register("log", async ([x]) => {
      order.push(Number(x));
      await new Promise<void>((resolve) => queueMicrotask(resolve));
    }),
  );
  const { a, b } = peers;
  for (let i = 0; i < 20; i++) b.notify("log", [i]);
  await b.call("$/ping");
  assert.deepEqual(order, Array.from({ length: 20 }, (_, i) => i));
  await finish(a, b);
});

Deno.test("Peer runs handlers concurrently: a slow handler does not delay a fast one", async () => {
  const gate = deferred<unknown>();
  await using peers = pair(
    new HandlerRegistry().register("slow", () => gate.promise).register("fast", () => "fast"),
  );
  const { a, b } = peers;
  const settled: string[] = [];
  const slow = b.call("slow").then((value) => settled.push(String(value)));
  const fast = b.call("fast").then((value) => settled.push(String(value)));
  await fast;
  assert.deepEqual(settled, ["fast"]);
  assert.equal(a.stats.runningHandlers, 1);
  gate.resolve("slow");
  await slow;
  assert.deepEqual(settled, ["fast", "slow"]);
  await finish(a, b);
});

// --- Invalid frames -----------------------------------------------------------------------

Deno.test("Peer answers an invalid frame that has a usable id, and stays usable", async () => {
  await using peers = pair(new HandlerRegistry().register("echo", (p) => p));
  const { a, b, ta, tb } = peers;
  tb.inject('{"id":77,"method":5}');
  assert.equal(await b.call("echo", [1]).then(() => "ok"), "ok");
  assert.deepEqual(JSON.parse(ta.sent[0]), {
    id: 77,
    error: "Cannot decode frame: method is not a string",
  });
  assert.equal(a.stats.rejectedFrames, 1);
  await finish(a, b);
});

Deno.test("Peer drops unanswerable frames and counts them", async () => {
  await using peers = pair(new HandlerRegistry().register("echo", (p) => p));
  const { a, b, ta, tb } = peers;
  for (const frame of ["{oops", "[1]", '{"id":true,"method":"echo"}', '{"id":999,"result":1}']) {
    tb.inject(frame);
  }
  assert.deepEqual(await b.call("echo", ["x"]), ["x"]);
  assert.equal(a.stats.droppedFrames, 4);
  assert.equal(ta.sent.length, 1);
  await finish(a, b);
});

Deno.test("Peer fails the pending call a reply with both result and error was meant for", async () => {
  await using peers = pair(new HandlerRegistry().register("never", () => new Promise(() => {})));
  const { a, b, ta } = peers;
  const call = b.call("never");
  ta.inject('{"id":0,"result":1,"error":"two"}');
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof EnvelopeDecodeError);
    assert.equal(error.reason, "result-and-error");
    return true;
  });
  assert.equal(b.stats.pendingCalls, 0);
  assert.equal(b.stats.rejectedFrames, 1);
  b.close();
  await a.closed;
});

Deno.test("Peer counts binary frames and ignores them", async () => {
  await using peers = pair(new HandlerRegistry().register("echo", (p) => p));
  const { a, b, tb } = peers;
  tb.inject(new Uint8Array([1, 2, 3]));
  tb.inject(new ArrayBuffer(4));
  assert.deepEqual(await b.call("echo", [1]), [1]);
  assert.equal(a.stats.binaryFrames, 2);
  await finish(a, b);
});

// --- Close and drain ----------------------------------------------------------------------

Deno.test("Peer.close() rejects pending calls with DisconnectedError and aborts running handlers", async () => {
  const started = deferred<AbortSignal>();
  await using peers = pair(
    new HandlerRegistry().register("hang", (_params, ctx) => {
      started.resolve(ctx.signal);
      return new Promise(() => {});
    }),
  );
  const { a, b } = peers;
  const call = b.call("hang");
  const signal = await started.promise;
  b.close(4321, "bye");
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof DisconnectedError);
    assert.equal(error.closeCode, 4321);
    assert.equal(error.closeReason, "bye");
    assert.equal(error.method, "hang");
    assert.equal(error.message, 'Cannot complete "hang": connection closed (4321 bye)');
    return true;
  });
  assert.deepEqual(await a.closed, { code: 4321, reason: "bye" });
  assert.ok(signal.aborted);
  assert.ok(signal.reason instanceof DisconnectedError);
  assert.equal(b.stats.pendingCalls, 0);
  assert.deepEqual(b.closeInfo, { code: 4321, reason: "bye" });
});

Deno.test("Peer aborts a handler that closed the connection before returning its promise", async () => {
  let signal: AbortSignal | undefined;
  const registry = new HandlerRegistry().register("closeThenWait", (_params, ctx) => {
    server.close(4001, "closed by the handler");
    signal = ctx.signal;
    return new Promise(() => {});
  });
  await using peers = pair(registry);
  const { a: server, b } = peers;
  await assert.rejects(b.call("closeThenWait"), DisconnectedError);
  assert.ok(signal?.aborted);
  assert.ok(signal.reason instanceof DisconnectedError);
  assert.equal(signal.reason.closeCode, 4001);
});

Deno.test("Peer.call() and notify() after close fail with DisconnectedError", async () => {
  await using peers = pair();
  const { a, b } = peers;
  b.close(1000, "done");
  await a.closed;
  await assert.rejects(b.call("echo"), DisconnectedError);
  assert.throws(() => b.notify("echo"), DisconnectedError);
});

Deno.test("Peer[Symbol.dispose]() closes with 1000", async () => {
  const [ta, tb] = memoryPair();
  using a = new Peer(ta, { logger: quiet });
  {
    using _b = new Peer(tb, { logger: quiet });
  }
  assert.deepEqual(await a.closed, { code: 1000, reason: "" });
});

Deno.test("Peer.drain() lets running handlers finish and answers new requests 'shutting down'", async () => {
  const gate = deferred<unknown>();
  await using peers = pair(
    new HandlerRegistry().register("slow", () => gate.promise).register("echo", (p) => p),
  );
  const { a, b } = peers;
  const slow = b.call("slow");
  await turn();
  const drained = a.drain(60_000);
  await assert.rejects(b.call("echo", [1]), (error: unknown) => {
    assert.ok(error instanceof RemoteError);
    assert.equal(error.remoteMessage, 'Cannot run "echo": peer is shutting down');
    return true;
  });
  gate.resolve("finished");
  await drained;
  assert.equal(await slow, "finished");
  await finish(a, b);
});

Deno.test("Peer.drain() fires running handlers' signals when the grace period ends", async () => {
  const started = deferred<AbortSignal>();
  await using peers = pair(
    new HandlerRegistry().register("hang", (_params, ctx) => {
      started.resolve(ctx.signal);
      return new Promise((_resolve, reject) =>
        ctx.signal.addEventListener("abort", () => reject(new Error("stopped")))
      );
    }),
  );
  const { a, b } = peers;
  const call = b.call("hang");
  const signal = await started.promise;
  await a.drain(0);
  assert.ok(signal.aborted);
  assert.equal(signal.reason.name, "AbortError");
  await assert.rejects(call, { name: "RemoteError", remoteMessage: "stopped" });
  await finish(a, b);
});

Deno.test("Peer.drain() measures its grace period on the peer's clock", async () => {
  const clock = new FakeClock();
  const started = deferred<AbortSignal>();
  await using peers = pair(
    new HandlerRegistry().register("hang", (_params, ctx) => {
      started.resolve(ctx.signal);
      return new Promise((_resolve, reject) =>
        ctx.signal.addEventListener("abort", () => reject(new Error("stopped")))
      );
    }),
    { clock },
  );
  const { a, b } = peers;
  const call = b.call("hang");
  const signal = await started.promise;
  const drained = a.drain(5000);
  assert.deepEqual(clock.pending, [{ due: 5000, delay: 5000 }]);
  clock.advance(4999);
  assert.equal(signal.aborted, false);
  clock.advance(1);
  await drained;
  assert.ok(signal.aborted);
  await assert.rejects(call, { name: "RemoteError", remoteMessage: "stopped" });
  assert.deepEqual(clock.pending, []);
  await finish(a, b);
});

Deno.test("Peer.drain() clears its grace timer when the last handler finishes", async () => {
  const clock = new FakeClock();
  const gate = deferred<unknown>();
  await using peers = pair(new HandlerRegistry().register("slow", () => gate.promise), { clock });
  const { a, b } = peers;
  const slow = b.call("slow");
  await turn();
  const drained = a.drain(60_000);
  assert.equal(clock.pending.length, 1);
  gate.resolve("finished");
  await drained;
  assert.deepEqual(clock.pending, []);
  assert.equal(await slow, "finished");
  await finish(a, b);
});

// --- Negotiation ($/hello) and other peers' dialects --------------------------------------

Deno.test("Peer.hello() declares this side and learns the other's; reserved methods follow it", async () => {
  await using peers = pair(
    new HandlerRegistry().register(
      "hang",
      (_params, ctx) =>
        new Promise((_resolve, reject) =>
          ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))
        ),
    ),
  );
  const { a, b, tb } = peers;
  assert.equal(b.remote, undefined);
  // Before hello: a timed-out call sends no $/cancel (a seed peer never sees a reserved method).
  await assert.rejects(b.call("hang", [], { timeoutMs: 1 }), { name: "TimeoutError" });
  assert.ok(!tb.sent.some((frame) => frame.includes("$/cancel")));
  assert.deepEqual(await b.hello(), { version: 4, features: ["binary"] });
  assert.deepEqual(a.remote, { version: 4, features: ["binary"] });
  assert.deepEqual(b.remote, { version: 4, features: ["binary"] });
  await assert.rejects(b.call("hang", [], { timeoutMs: 1 }), { name: "TimeoutError" });
  assert.ok(tb.sent.some((frame) => frame.includes("$/cancel")));
  await finish(a, b);
});

Deno.test("Peer with requireHello rejects calls with NotNegotiatedError until the other side says hello", async () => {
  await using peers = pair(new HandlerRegistry(), { requireHello: true });
  const { a, b, ta } = peers;
  await assert.rejects(a.call("anything"), (error: unknown) => {
    assert.ok(error instanceof NotNegotiatedError);
    assert.equal(error.method, "anything");
    return true;
  });
  assert.deepEqual(ta.sent, []); // nothing was sent
  await b.hello();
  await assert.rejects(a.call("anything"), RemoteError); // now sent: b answers unknown method
  await finish(a, b);
});

Deno.test("Peer.hello() toward a seed peer leaves remote undefined, whether it answers null or an error", async () => {
  for (const reply of ['{"id":0,"result":null}', '{"id":0,"error":"Unknown method: $/hello"}']) {
    const [ta, tb] = memoryPair();
    using b = new Peer(tb, { logger: quiet });
    const hello = b.hello();
    await turn();
    assert.deepEqual(JSON.parse(tb.sent[0]), {
      id: 0,
      method: "$/hello",
      params: { version: 4, features: ["binary"] },
    });
    ta.send(reply);
    assert.equal(await hello, undefined);
    assert.equal(b.remote, undefined);
    b.close();
  }
});

Deno.test("Peer answers a hello without a version >= 2 with an error and stays in seed mode", async () => {
  const [ta, tb] = memoryPair();
  using a = new Peer(ta, { logger: quiet, requireHello: true });
  const replies: string[] = [];
  tb.start({ frame: (data) => replies.push(data as string), closed: () => {} });
  tb.send('{"id":1,"method":"$/hello","params":{"version":1}}');
  tb.send('{"id":2,"method":"$/hello","params":[2]}');
  await turn();
  assert.equal(replies.length, 2);
  for (const reply of replies) assert.match(JSON.parse(reply).error, /no version >= 2/);
  assert.equal(a.remote, undefined);
  a.close();
});

Deno.test("Peer passes by-name params both ways, and missing params as []", async () => {
  const seen: unknown[] = [];
  await using peers = pair(
    new HandlerRegistry()
      .register<{ a: number }>("named", (params) => params.a + 1)
      .register("note", (params) => void seen.push(params)),
  );
  const { a, b, tb } = peers;
  assert.equal(await b.call("named", { a: 41 }), 42);
  assert.deepEqual(JSON.parse(tb.sent[0]).params, { a: 41 });
  b.notify("note", { x: [1] });
  tb.inject('{"id":null,"method":"note"}');
  await turn();
  assert.deepEqual(seen, [{ x: [1] }, []]);
  assert.throws(() => b.notify("note", 3 as unknown as []), TypeError);
  await finish(a, b);
});

Deno.test("Peer answers another peer's string, negative and fractional ids with their exact text", async () => {
  await using peers = pair(new HandlerRegistry().register("echo", (p) => p));
  const { a, b, ta, tb } = peers;
  const ids = ['"abc"', "-1", "1.0", "1e2", "-0", '"18446744073709551616"'];
  for (const id of ids) tb.inject(`{"jsonrpc":"2.0","id":${id},"method":"echo","params":[1]}`);
  assert.deepEqual(await b.call("echo", [2]), [2]); // frames are handled in order
  assert.deepEqual(ta.sent.slice(0, ids.length), ids.map((id) => `{"id":${id},"result":[1]}`));
  await finish(a, b);
});

Deno.test("Peer settles a call with null when the reply has neither result nor error", async () => {
  await using peers = pair(new HandlerRegistry().register("never", () => new Promise(() => {})));
  const { a, b, ta } = peers;
  const call = b.call("never");
  await turn();
  ta.inject('{"id":0}');
  assert.equal(await call, null);
  assert.equal(b.stats.pendingCalls, 0);
  b.close();
  await a.closed;
});

Deno.test("Peer bounds and escapes a method name the other side chose, in replies and log lines", async () => {
  const lines: string[] = [];
  const [ta, tb] = memoryPair();
  using a = new Peer(ta, {
    logger: consoleLogger("debug", (line) => lines.push(line)),
    maxInFlight: 1,
    registry: new HandlerRegistry().register("hang", () => new Promise(() => {})),
  });
  const replies: string[] = [];
  tb.start({ frame: (data) => replies.push(data as string), closed: () => {} });
  const huge = "m".repeat(1024 * 1024) + "\nERROR forged line";
  tb.send(JSON.stringify({ id: 1, method: huge, params: [] })); // unknown method
  tb.send(JSON.stringify({ id: 2, method: "hang", params: [] })); // takes the one slot
  tb.send(JSON.stringify({ id: null, method: huge, params: [] })); // dropped: overloaded
  await turn();
  assert.equal(replies.length, 1);
  const { error } = JSON.parse(replies[0]);
  assert.ok(error.length < 300, `reply of ${error.length} chars`);
  assert.ok(!error.includes("\n"));
  assert.match(error, /^Unknown method "m+…\(\+\d+ chars\)"$/);
  assert.ok(lines.length > 0);
  for (const line of lines) {
    assert.ok(line.length <= 1100, `a log line of ${line.length} chars`);
    assert.ok(!line.includes("\n"), line);
  }
  a.close();
});

Deno.test("RemoteError.code names each error Mist itself produces, and none for a handler's own", async () => {
  const [ta, tb] = memoryPair();
  const gate = deferred<unknown>();
  using a = new Peer(ta, {
    logger: quiet,
    maxInFlight: 1,
    maxMessageBytes: 1024,
    registry: new HandlerRegistry()
      .register("gate", () => gate.promise)
      .register("big", () => "x".repeat(2048))
      .register("bigint", () => 1n)
      .register("own", () => {
        throw new Error("Disk full");
      })
      .register("callBack", (_params, ctx) => ctx.peer.call("anything")),
  });
  using b = new Peer(tb, { logger: quiet });
  const codeOf = (call: Promise<unknown>) =>
    call.then(() => "resolved", (error) => error instanceof RemoteError ? error.code : error);
  assert.equal(await codeOf(b.call("nope")), "unknown-method");
  assert.equal(await codeOf(b.call("big")), "result-too-big");
  assert.equal(await codeOf(b.call("bigint")), "unencodable-result");
  assert.equal(await codeOf(b.call("own")), undefined);
  assert.equal(await codeOf(b.call("$/hello", { version: 1 })), "bad-hello");
  const held = b.call("gate");
  assert.equal(await codeOf(b.call("own")), "overloaded");
  gate.resolve(null);
  await held;
  const drained = a.drain(1000);
  assert.equal(await codeOf(b.call("own")), "shutting-down");
  await drained;
  b.close();
  await a.closed;
});

Deno.test("RemoteError.code reads not-negotiated and invalid-frame from their messages", () => {
  assert.equal(
    new RemoteError("callback", new NotNegotiatedError("x").message).code,
    "not-negotiated",
  );
  assert.equal(
    new RemoteError("m", "Cannot decode frame: method is not a string").code,
    "invalid-frame",
  );
  assert.equal(
    new RemoteError("m", 'Invalid params for "m": [0]: Expected number').code,
    "invalid-params",
  );
});
