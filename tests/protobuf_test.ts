/**
 * The protobuf worked example of binary frames (issue 14): the batches of
 * `examples/protobuf/diagnostics.proto`, encoded with `@bufbuild/protobuf`, travel as `Uint8Array`
 * params and results over real loopback, both directions, and decode to what was sent; and
 * `examples/protobuf/main.ts` runs as its header says. Needs `./deno task proto` first (the test
 * task runs it).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  create,
  type DescMessage,
  equals,
  fromBinary,
  type MessageShape,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import {
  type DiagnosticsBatch,
  DiagnosticsBatchSchema,
  TreeChildrenSchema,
} from "../examples/protobuf/gen/diagnostics_pb.ts";
import { sampleDiagnostics, sampleTreeChildren } from "../examples/protobuf/sample.ts";
import type { HandlerRegistry } from "../registry.ts";
import {
  connect,
  type Deferred,
  deferred,
  runToEnd,
  startServer,
  stop,
  succeeded,
} from "./_helpers.ts";

const DIAGNOSTICS = 1_000;
const TREE_ITEMS = 500;
const ROOT_PATH = decodeURIComponent(new URL("../", import.meta.url).pathname);

/**
 * Registers the two batch methods on `registry`: `diagnostics.publish` ([bytes] → decodes,
 * hands the batch to `received`, answers its size) and `tree.children` ([parent] → an encoded
 * batch of {@linkcode TREE_ITEMS} children).
 */
function serveBatches(registry: HandlerRegistry, received: Deferred<DiagnosticsBatch>): void {
  registry
    .register("diagnostics.publish", ([bytes]) => {
      // Bytes arrive as bytes, not as JSON's object of indexes.
      if (!(bytes instanceof Uint8Array)) throw new TypeError("params[0] is not a Uint8Array");
      const batch = fromBinary(DiagnosticsBatchSchema, bytes);
      received.resolve(batch);
      return { count: batch.diagnostics.length };
    })
    .register("tree.children", ([parent]) => {
      const children = create(TreeChildrenSchema, sampleTreeChildren(String(parent), TREE_ITEMS));
      return toBinary(TreeChildrenSchema, children);
    });
}

/** Asserts two messages are equal by protobuf's `equals`, with a readable diff if they differ. */
function assertSameMessage<Desc extends DescMessage>(
  schema: Desc,
  actual: MessageShape<Desc>,
  expected: MessageShape<Desc>,
): void {
  assert.deepEqual(toJson(schema, actual), toJson(schema, expected));
  assert.ok(equals(schema, actual, expected));
}

/** The sample diagnostics batch, as a message. */
function diagnostics(): DiagnosticsBatch {
  return create(DiagnosticsBatchSchema, sampleDiagnostics(DIAGNOSTICS));
}

/** Decodes a tree-children result, checking it arrived as bytes. */
function decodeTree(result: unknown) {
  assert.ok(
    result instanceof Uint8Array,
    `the result is ${Object.prototype.toString.call(result)}`,
  );
  return fromBinary(TreeChildrenSchema, result);
}

Deno.test("Client.call() sends a protobuf batch as params; the server decodes what was sent", async () => {
  const received = deferred<DiagnosticsBatch>();
  await using t = startServer();
  serveBatches(t.registry, received);
  await using client = connect(t);
  const sent = diagnostics();
  const answer = await client.call("diagnostics.publish", [toBinary(DiagnosticsBatchSchema, sent)]);
  assert.deepEqual(answer, { count: DIAGNOSTICS });
  assertSameMessage(DiagnosticsBatchSchema, await received.promise, sent);
  await stop(t, client);
});

Deno.test("Client.notify() sends a protobuf batch; the server decodes what was sent", async () => {
  const received = deferred<DiagnosticsBatch>();
  await using t = startServer();
  serveBatches(t.registry, received);
  await using client = connect(t);
  const sent = diagnostics();
  client.notify("diagnostics.publish", [toBinary(DiagnosticsBatchSchema, sent)]);
  assertSameMessage(DiagnosticsBatchSchema, await received.promise, sent);
  await stop(t, client);
});

Deno.test("Client.call() receives a protobuf batch as the result and decodes it", async () => {
  await using t = startServer();
  serveBatches(t.registry, deferred());
  await using client = connect(t);
  const tree = decodeTree(await client.call("tree.children", ["src/lib"]));
  const expected = create(TreeChildrenSchema, sampleTreeChildren("src/lib", TREE_ITEMS));
  assertSameMessage(TreeChildrenSchema, tree, expected);
  await stop(t, client);
});

Deno.test("Peer.call() from the server: protobuf params to the client, a protobuf result back", async () => {
  const received = deferred<DiagnosticsBatch>();
  await using t = startServer();
  await using client = connect(t);
  serveBatches(client.registry, received);
  await client.opened();
  const serverPeer = await t.nextPeer();
  const sent = diagnostics();
  const answer = await serverPeer.call("diagnostics.publish", [
    toBinary(DiagnosticsBatchSchema, sent),
  ]);
  assert.deepEqual(answer, { count: DIAGNOSTICS });
  assertSameMessage(DiagnosticsBatchSchema, await received.promise, sent);
  const tree = decodeTree(await serverPeer.call("tree.children", [""]));
  assertSameMessage(
    TreeChildrenSchema,
    tree,
    create(TreeChildrenSchema, sampleTreeChildren("", TREE_ITEMS)),
  );
  await stop(t, client);
});

Deno.test("examples/protobuf/main.ts runs as its header says", async () => {
  const args = ["run", "--allow-net=127.0.0.1", "examples/protobuf/main.ts"];
  const source = await Deno.readTextFile(`${ROOT_PATH}examples/protobuf/main.ts`);
  assert.ok(source.includes(`./deno ${args.join(" ")}`), "the header shows the command tested");
  const output = succeeded(
    await runToEnd(Deno.execPath(), args, { cwd: ROOT_PATH, env: { NO_COLOR: "1" } }),
    "examples/protobuf/main.ts",
  );
  assert.equal(
    output.stdout,
    "published: 3 diagnostics for file:///src/app.ts (1 error); " +
      'children of "src": lib/, app.ts, README.md\n',
  );
});
