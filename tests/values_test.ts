/**
 * The value policy: params (call and notify, both directions) and handler results either
 * arrive exactly as sent or are refused with the method and the offending value's path.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { RemoteError } from "../errors.ts";
import { Peer } from "../peer.ts";
import { HandlerRegistry } from "../registry.ts";
import { unsendable } from "../_values.ts";
import { connect, memoryPair, quiet, startServer, stop } from "./_helpers.ts";

class Point {
  constructor(readonly x: number, readonly y: number) {}
}

class Money {
  constructor(readonly cents: number) {}
  toJSON(): string {
    return `${this.cents / 100} EUR`;
  }
}

function cyclic(): unknown {
  const root: { a: { self?: unknown } } = { a: {} };
  root.a.self = root;
  return root;
}

const NO_BINARY = "the other side did not negotiate binary messages (a seed peer), send base64";

/** `[type, value, what the message says after the path]`: every value JSON would change. */
const REFUSED: readonly [string, () => unknown, string][] = [
  ["Map", () => new Map([["a", 1]]), "is a Map; send Object.fromEntries(map) or [...map]"],
  ["Set", () => new Set([1]), "is a Set; send [...set]"],
  ["WeakMap", () => new WeakMap(), "is a WeakMap; it cannot be sent"],
  ["WeakSet", () => new WeakSet(), "is a WeakSet; it cannot be sent"],
  ["function", () => () => 1, "is a function; functions cannot be sent"],
  ["symbol", () => Symbol("s"), "is a symbol; symbols cannot be sent"],
  ["NaN", () => NaN, "is NaN; JSON has no NaN, send null or a string"],
  ["Infinity", () => Infinity, "is Infinity; JSON has no Infinity, send null or a string"],
  ["-Infinity", () => -Infinity, "is -Infinity; JSON has no Infinity, send null or a string"],
  ["Date", () => new Date(0), "is a Date; send date.toISOString()"],
  ["RegExp", () => /x/g, "is a RegExp; send regexp.source"],
  ["Error", () => new Error("e"), "is an Error; send { name, message } or error.message"],
  ["TypeError", () => new TypeError("e"), "is an Error; send { name, message } or error.message"],
  // These peers never said hello: bytes need binary messages, which are negotiated.
  ["Uint8Array", () => new Uint8Array([1, 2]), `is a Uint8Array; ${NO_BINARY}`],
  ["ArrayBuffer", () => new ArrayBuffer(2), `is an ArrayBuffer; ${NO_BINARY}`],
  ["Buffer", () => Buffer.from([1]), `is a Buffer; ${NO_BINARY}`],
  ["DataView", () => new DataView(new ArrayBuffer(2)), `is a DataView; ${NO_BINARY}`],
  ["class instance", () => new Point(1, 2), "is a Point instance; send a plain object, or give"],
  ["Promise", () => Promise.resolve(1), "is a Promise; await it first"],
  ["bigint", () => 1n, "is a bigint; send String(n) (JSON has no bigint)"],
];

/** Plain JSON values, and what a `toJSON` value arrives as. */
const ALLOWED: readonly [string, unknown, unknown][] = [
  ["string", "héllo \u2028 \ud800", "héllo \u2028 \ud800"],
  ["finite numbers", [0, -1.5, Number.MAX_VALUE, Number.MIN_VALUE], [
    0,
    -1.5,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
  ]],
  ["booleans and null", [true, false, null], [true, false, null]],
  ["plain object", { a: { b: [1, { c: "d" }] } }, { a: { b: [1, { c: "d" }] } }],
  ["null-prototype object", Object.assign(Object.create(null), { a: 1 }), { a: 1 }],
  ["toJSON value", { price: new Money(250) }, { price: "2.5 EUR" }],
  ["deep nesting", nested(300), nested(300)],
];

function nested(depth: number): unknown {
  let value: unknown = "leaf";
  for (let i = 0; i < depth; i++) value = { next: [value] };
  return value;
}

function twoPeers(): { a: Peer; b: Peer } & AsyncDisposable {
  const [ta, tb] = memoryPair();
  const ran: string[] = [];
  const registry = () =>
    new HandlerRegistry()
      .register("echo", (params) => params)
      .register("note", (params) => void ran.push(JSON.stringify(params)))
      .register("give", ([type]) => ({ v: REFUSED.find(([name]) => name === type)![1]() }));
  const a = new Peer(ta, { logger: quiet, registry: registry() });
  const b = new Peer(tb, { logger: quiet, registry: registry() });
  return {
    a,
    b,
    async [Symbol.asyncDispose]() {
      assert.deepEqual(ran, [], "no refused notification was sent");
      b.close(1000, "done");
      await Promise.all([a.closed, b.closed]);
    },
  };
}

function refusal(message: string): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof TypeError, String(error));
    assert.ok(
      error.message.startsWith(message),
      `expected ${JSON.stringify(message)}…, got ${JSON.stringify(error.message)}`,
    );
    return true;
  };
}

Deno.test("Peer.call() and notify() refuse every value JSON would change, naming method and path, both directions", async () => {
  await using peers = twoPeers();
  for (const [from, to] of [[peers.a, peers.b], [peers.b, peers.a]]) {
    for (const [type, make, says] of REFUSED) {
      await assert.rejects(
        from.call("echo", [make()]),
        refusal(`Cannot call "echo": params[0] ${says}`),
        type,
      );
      await assert.rejects(
        from.call("echo", { items: [1, { when: make() }] }),
        refusal(`Cannot call "echo": params.items[1].when ${says}`),
        type,
      );
      assert.throws(
        () => from.notify("note", { "a b": make() }),
        refusal(`Cannot notify "note": params["a b"] ${says}`),
        type,
      );
    }
    assert.equal(from.stats.pendingCalls, 0);
    assert.equal(to.stats.receivedFrames, 0, "nothing was sent");
  }
});

Deno.test("Peer.call() refuses undefined in arrays and as an object member, and sparse arrays", async () => {
  await using peers = twoPeers();
  const { b } = peers;
  await assert.rejects(
    b.call("echo", [1, undefined]),
    refusal('Cannot call "echo": params[1] is undefined; send null'),
  );
  await assert.rejects(
    b.call("echo", [{ limit: undefined }]),
    refusal('Cannot call "echo": params[0].limit is undefined; omit the member or send null'),
  );
  // deno-lint-ignore no-sparse-arrays
  await assert.rejects(
    b.call("echo", [1, , 3]),
    refusal('Cannot call "echo": params[1] is undefined'),
  );
});

Deno.test("Peer.call() refuses a cycle, naming where it closes", async () => {
  await using peers = twoPeers();
  const { b } = peers;
  await assert.rejects(
    b.call("save", [cyclic()]),
    refusal('Cannot call "save": params[0].a.self refers back to params[0] (a cycle)'),
  );
  const list: unknown[] = [1];
  list.push({ back: list });
  assert.throws(
    () => b.notify("save", { list }),
    refusal('Cannot notify "save": params.list[1].back refers back to params.list (a cycle)'),
  );
  const deep = nested(300) as { next: unknown[] };
  let inner = deep;
  while (typeof inner.next[0] === "object") inner = inner.next[0] as typeof deep;
  inner.next.push(deep); // a cycle below the first walk's depth
  await assert.rejects(b.call("save", [deep]), /refers back to params\[0\] \(a cycle\)$/);
});

Deno.test("Peer.call() delivers allowed values exactly, both directions", async () => {
  await using peers = twoPeers();
  for (const from of [peers.a, peers.b]) {
    for (const [type, value, arrives] of ALLOWED) {
      assert.deepEqual(await from.call("echo", [value]), [arrives], type);
      assert.deepEqual(await from.call("echo", { value }), { value: arrives }, type);
    }
    assert.deepEqual(await from.call("echo", [-0]), [0], "-0 arrives as 0");
  }
});

Deno.test("Peer answers unencodable-result naming the method and path when a result breaks the policy", async () => {
  await using peers = twoPeers();
  for (const from of [peers.a, peers.b]) {
    for (const [type, , says] of REFUSED) {
      await assert.rejects(from.call("give", [type]), (error: unknown) => {
        assert.ok(error instanceof RemoteError, type);
        assert.equal(error.code, "unencodable-result", type);
        assert.ok(
          error.remoteMessage.startsWith(`Cannot encode result of "give": result.v ${says}`),
          error.remoteMessage,
        );
        return true;
      });
    }
  }
  // undefined at the top is a handler that returned nothing: null.
  const registry = new HandlerRegistry()
    .register("nothing", () => undefined)
    .register("nested", () => ({ rows: [{ at: new Date(0) }] }))
    .register("cycle", () => cyclic());
  const [ta, tb] = memoryPair();
  using a = new Peer(ta, { logger: quiet, registry });
  using b = new Peer(tb, { logger: quiet });
  assert.equal(await b.call("nothing"), null);
  await assert.rejects(b.call("nested"), {
    remoteMessage: 'Cannot encode result of "nested": result.rows[0].at is a Date; ' +
      "send date.toISOString()",
  });
  await assert.rejects(b.call("cycle"), {
    remoteMessage: 'Cannot encode result of "cycle": result.a.self refers back to result (a cycle)',
  });
  b.close();
  await a.closed;
});

Deno.test("unsendable() passes plain JSON and names nothing for it", () => {
  for (const [type, value] of ALLOWED) assert.equal(unsendable([value], "params"), undefined, type);
  assert.equal(unsendable(undefined, "result", true), undefined);
  assert.equal(
    unsendable(undefined, "result"),
    "result is undefined; send null (JSON would write null)",
  );
  assert.equal(
    unsendable({ [`k${"x".repeat(200)}`]: NaN }, "params")?.slice(0, 20),
    'params["kxxxxxxxxxxx',
  );
});

Deno.test("Client and server refuse policy-breaking values over a real loopback socket", async () => {
  await using t = startServer({
    registry: new HandlerRegistry()
      .register("echo", (params) => params)
      .register("give", ([type]) => ({ v: REFUSED.find(([name]) => name === type)![1]() })),
  });
  await using client = connect(t);
  client.registry.register("echo", (params) => params);
  const server = await t.nextPeer().then(async (peer) => {
    await client.call("echo", []); // connected, hello said
    return peer;
  });
  // Bytes travel here (binary messages are negotiated): tests/binary_test.ts.
  for (const [type, make, says] of REFUSED.filter(([, , says]) => !says.includes(NO_BINARY))) {
    await assert.rejects(
      client.call("echo", [{ v: make() }]),
      refusal(`Cannot call "echo": params[0].v ${says}`),
    );
    assert.throws(
      () => client.notify("echo", [make()]),
      refusal(`Cannot notify "echo": params[0] ${says}`),
    );
    await assert.rejects(
      server.call("echo", [make()]),
      refusal(`Cannot call "echo": params[0] ${says}`),
    );
    await assert.rejects(client.call("give", [type]), { code: "unencodable-result" });
  }
  for (const [type, value, arrives] of ALLOWED) {
    assert.deepEqual(await client.call("echo", [value]), [arrives], type);
    assert.deepEqual(await server.call("echo", [value]), [arrives], type);
  }
  await stop(t, client);
});
