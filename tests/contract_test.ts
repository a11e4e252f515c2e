/**
 * Typed contracts and validation where trust ends: a wrong method name or params type is a
 * compile error (each `@ts-expect-error` below fails `deno check` if the line type-checks), and
 * a registry with Standard Schema validators (valibot here) refuses bad params before the
 * handler runs, over a real loopback socket.
 *
 * @module
 */
import assert from "node:assert/strict";
import * as v from "valibot";
import { Client, type ClientState } from "../client.ts";
import type { InferContract } from "../contract.ts";
import { RemoteError } from "../errors.ts";
import { HandlerRegistry } from "../registry.ts";
import { serveLocal } from "../server.ts";
import { SharedSecret } from "../secret.ts";
import { quiet } from "./_helpers.ts";

/** The server's methods. */
interface ServerApi {
  add: { params: [a: number, b: number]; result: number };
  "doc.open": { params: { uri: string; line?: number }; result: { text: string } };
  ping: { params: []; result: "pong" };
  log: { params: [line: string]; result: void };
}

/** The client's methods, which the server may call back. */
interface ClientApi {
  theme: { params: []; result: "dark" | "light" };
}

/** Compiles only when its argument's type is exactly `T`. */
function exactly<T>(value: T): T {
  return value;
}

Deno.test("Client and HandlerRegistry typed by a contract check calls, notifications, handlers and call-backs at compile time", async () => {
  const secret = SharedSecret.generate();
  const registry = new HandlerRegistry<ServerApi, ClientApi>()
    .register("add", ([a, b]) => a + b)
    .register("doc.open", async ({ uri, line }, ctx) => {
      const theme = await ctx.peer.call("theme"); // typed by ClientApi
      return { text: `${uri}:${line ?? 1} (${exactly<"dark" | "light">(theme)})` };
    })
    .register("ping", () => "pong" as const)
    .register("log", () => {});
  // @ts-expect-error: "sub" is not a method of ServerApi
  new HandlerRegistry<ServerApi>().register("sub", () => 0);
  // @ts-expect-error: the handler of "add" must return a number
  new HandlerRegistry<ServerApi>().register("add", () => "three");

  await using server = serveLocal<ServerApi, ClientApi>({ secret, registry, logger: quiet });
  await using client = new Client<ServerApi, ClientApi>(server.url, {
    secret,
    heartbeat: false,
    logger: quiet,
  });
  client.registry.register("theme", () => "dark" as const);
  exactly<number>(await client.call("add", [2, 3]));
  assert.equal(await client.call("add", [2, 3]), 5);
  const doc = await client.call("doc.open", { uri: "file:///a.ts" });
  assert.equal(exactly<{ text: string }>(doc).text, "file:///a.ts:1 (dark)");
  assert.equal(exactly<"pong">(await client.call("ping")), "pong");
  client.notify("log", ["a line"]);

  // Each of these lines fails to compile; at run time they reach the server and fail there.
  // @ts-expect-error: "sub" is not a method of ServerApi
  await assert.rejects(client.call("sub", [1, 2]), RemoteError);
  // @ts-expect-error: the params of "add" are two numbers
  assert.equal(await client.call("add", ["2", 3]), "23");
  // @ts-expect-error: "doc.open" takes by-name params, not positional
  await client.call("doc.open", ["file:///a.ts"]).catch(() => {});
  // @ts-expect-error: "add" needs its params
  await client.call("add").catch(() => {});
  // @ts-expect-error: notifications are checked too
  client.notify("log", [42]);
});

Deno.test("Client and HandlerRegistry without a contract take any method, with params and result unknown", async () => {
  const secret = SharedSecret.generate();
  const registry = new HandlerRegistry()
    .register("echo", (params) => params)
    .register<{ name: string }>("greet", ({ name }) => `Hello, ${name}`);
  await using server = serveLocal({ secret, registry, logger: quiet });
  await using client = new Client(server.url, { secret, heartbeat: false, logger: quiet });
  const states: ClientState[] = [];
  // The listener's event is a StateChangeEvent without a cast.
  client.addEventListener("statechange", (event) => states.push(exactly<ClientState>(event.state)));
  const echoed: unknown = await client.call("echo", [1, "a"]);
  assert.deepEqual(echoed, [1, "a"]);
  assert.equal(await client.call("greet", { name: "Sky" }), "Hello, Sky");
  assert.deepEqual(states, ["open"]);
});

// --- Validation where trust ends -----------------------------------------------------------

const schemas = {
  add: { params: v.tuple([v.number(), v.number()]), result: v.number() },
  "doc.open": {
    params: v.object({
      uri: v.pipe(v.string(), v.startsWith("file://")),
      line: v.optional(v.number()),
    }),
  },
};
type Validated = InferContract<typeof schemas>;

Deno.test("HandlerRegistry.fromSchemas() types handlers from the schemas and refuses bad params before they run", async () => {
  const secret = SharedSecret.generate();
  const ran: string[] = [];
  const registry = HandlerRegistry.fromSchemas(schemas)
    .register("add", ([a, b]) => {
      ran.push("add");
      return exactly<number>(a) + b;
    })
    .register("doc.open", ({ uri }) => {
      ran.push("doc.open");
      return exactly<string>(uri).length;
    });
  await using server = serveLocal({ secret, registry, logger: quiet });
  await using client = new Client<Validated>(server.url, {
    secret,
    heartbeat: false,
    logger: quiet,
  });
  assert.equal(exactly<number>(await client.call("add", [2, 3])), 5);
  assert.equal(await client.call("doc.open", { uri: "file:///x" }), 9);
  const untyped = client as unknown as Client;
  const cases: [string, unknown, RegExp][] = [
    ["add", [2, "3"], /^Invalid params for "add": \[1\]: Invalid type: Expected number/],
    ["add", [2], /^Invalid params for "add": /],
    ["add", { a: 1 }, /^Invalid params for "add": Invalid type: Expected Array/],
    ["doc.open", { uri: "http://x" }, /^Invalid params for "doc\.open": uri: Invalid start/],
    ["doc.open", { uri: "file:///x", line: "7" }, /^Invalid params for "doc\.open": line: /],
  ];
  for (const [method, params, message] of cases) {
    await assert.rejects(untyped.call(method, params as unknown[]), (error: unknown) => {
      assert.ok(error instanceof RemoteError, String(error));
      assert.match(error.remoteMessage, message);
      return true;
    });
  }
  assert.deepEqual(ran, ["add", "doc.open"], "a handler ran with invalid params");
});

Deno.test("HandlerRegistry() throws for a schema that is not a Standard Schema", () => {
  assert.throws(
    () => new HandlerRegistry({ schemas: { add: { params: {} as never } } }),
    /schemas\["add"\]\.params: not a Standard Schema/,
  );
});

Deno.test("HandlerRegistry validates with an async schema too, and a notification with bad params is dropped", async () => {
  let checked = 0;
  const asyncSchema = {
    "~standard": {
      version: 1 as const,
      vendor: "test",
      validate: (value: unknown) => {
        checked++;
        return Promise.resolve(
          Array.isArray(value) && typeof value[0] === "string"
            ? { value: value as [string] }
            : { issues: [{ message: "Expected a string", path: [0] }] },
        );
      },
    },
  };
  const notes: string[] = [];
  const secret = SharedSecret.generate();
  const registry = new HandlerRegistry<{ note: { params: [string]; result: void } }>({
    schemas: { note: { params: asyncSchema } },
  }).register("note", ([text]) => void notes.push(text));
  await using server = serveLocal({ secret, registry, logger: quiet });
  await using client = new Client(server.url, { secret, heartbeat: false, logger: quiet });
  client.notify("note", [1]);
  client.notify("note", ["kept"]);
  await assert.rejects(
    client.call("note", [2]),
    /Invalid params for "note": \[0\]: Expected a string/,
  );
  assert.equal(await client.call("note", ["also kept"]), null);
  assert.deepEqual(notes, ["kept", "also kept"]);
  assert.equal(checked, 4);
});
