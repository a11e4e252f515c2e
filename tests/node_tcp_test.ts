/**
 * Tests for `_socket/node_tcp.ts`, the `node:net` adapter behind `NoDelayWebSocket` on Node. They run
 * it over Deno's `node:net` against `Deno.listen` servers on 127.0.0.1; `tests/node_test.ts`
 * runs it under Node itself, inside the bundled client.
 *
 * @module
 */
import assert from "node:assert/strict";
import net from "node:net";
import { connectNode, isNodeTcpSupported, type NodeNet } from "../_socket/node_tcp.ts";
import { replaced, within, writeAll } from "./_helpers.ts";
import { oneConnectionServer } from "./_hostile_server.ts";

const nodeNet = net as unknown as NodeNet;
const STEP_MS = 10_000;

/** Rejects if `promise` has not settled within a step's time. */
function bounded<T>(promise: Promise<T>, what: string): Promise<T> {
  return within(promise, what, STEP_MS);
}

/** A one-connection server; `serve` gets the accepted connection. */
const server = oneConnectionServer;

function pattern(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 7 + (i >> 8)) & 0xff;
  return bytes;
}

Deno.test("isNodeTcpSupported() returns false without process.getBuiltinModule", () => {
  const g = globalThis as { process?: unknown };
  using _process = replaced(g, "process", { versions: {} });
  assert.equal(isNodeTcpSupported(), false);
  g.process = { versions: { node: "20.20.2" }, getBuiltinModule: () => net };
  assert.equal(isNodeTcpSupported(), true);
});

Deno.test("connectNode() connection reads into small buffers across chunks, then null at the end; writes resolve", async () => {
  const sent = pattern(300_000);
  const received: Uint8Array[] = [];
  await using tcp = server(async (conn) => {
    await writeAll(conn, sent);
    const buffer = new Uint8Array(1000);
    let total = 0;
    while (total < 5000) {
      const read = await conn.read(buffer);
      if (read === null) break;
      received.push(buffer.slice(0, read));
      total += read;
    }
  });
  const { port, done } = tcp;
  const conn = await bounded(connectNode({ hostname: "127.0.0.1", port }, nodeNet), "connect");
  conn.setNoDelay(true);
  assert.equal(await conn.write(pattern(5000)), 5000);
  const got = new Uint8Array(sent.length);
  let filled = 0;
  const small = new Uint8Array(1500); // smaller than the chunks: the rest waits for the next read
  while (true) {
    const read = await bounded(conn.read(small), "read");
    if (read === null) break;
    assert.ok(read > 0 && read <= small.length);
    got.set(small.subarray(0, read), filled);
    filled += read;
  }
  assert.equal(filled, sent.length);
  assert.deepEqual(got, sent);
  assert.equal(await conn.read(small), null);
  await bounded(done, "server");
  assert.deepEqual(new Uint8Array(received.flatMap((chunk) => [...chunk])), pattern(5000));
  conn.close();
  await assert.rejects(conn.write(new Uint8Array(1)), /closed/);
});

Deno.test("connectNode() connection stops reading while nothing reads: the sender meets TCP backpressure", async () => {
  const total = 32 * 1024 * 1024;
  let written = 0;
  await using tcp = server(async (conn) => {
    const block = pattern(64 * 1024);
    while (written < total) written += await conn.write(block);
  });
  const { port, done } = tcp;
  const conn = await bounded(connectNode({ hostname: "127.0.0.1", port }, nodeNet), "connect");
  // Let the first read start the flow, then read nothing for a while.
  const buffer = new Uint8Array(64 * 1024);
  let read = (await bounded(conn.read(buffer), "first read"))!;
  assert.ok(read > 0);
  let stalledAt = -1;
  for (let i = 0; i < 50 && stalledAt !== written; i++) {
    stalledAt = written;
    await new Promise((resolve) => setTimeout(resolve, 40));
  }
  assert.equal(stalledAt, written, "the sender never stalled");
  // Kernel buffers on both ends hold a few MiB at most; the adapter 64 KiB and a chunk more.
  assert.ok(written < total / 2, `the sender got ${written} bytes out without a reader`);
  while (true) {
    const count = await bounded(conn.read(buffer), "read");
    if (count === null) break;
    read += count;
  }
  assert.equal(read, written); // everything, once read
  await bounded(done, "server");
  conn.close();
});

Deno.test("connectNode() rejects when refused or aborted; close() wakes a pending read with null", async () => {
  await using tcp = server(async (conn) => {
    await conn.read(new Uint8Array(16)); // until the client closes
  });
  const { port, done } = tcp;
  const conn = await bounded(connectNode({ hostname: "127.0.0.1", port }, nodeNet), "connect");
  const pending = conn.read(new Uint8Array(16));
  conn.close();
  assert.equal(await bounded(pending, "the pending read"), null);
  await bounded(done, "server");

  // The port is free again: nothing listens there.
  await assert.rejects(
    bounded(connectNode({ hostname: "127.0.0.1", port }, nodeNet), "refused connect"),
    /ECONNREFUSED|refused/i,
  );

  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const controller = new AbortController();
  const reason = new Error("gave up");
  const connecting = connectNode(
    { hostname: "127.0.0.1", port: listener.addr.port, signal: controller.signal },
    nodeNet,
  );
  controller.abort(reason);
  await assert.rejects(bounded(connecting, "aborted connect"), (error) => error === reason);
  await assert.rejects(
    connectNode({ hostname: "127.0.0.1", port: 1, signal: controller.signal }, nodeNet),
    (error) => error === reason,
  );
});

Deno.test("connectNode() without node:net rejects with a clear error", async () => {
  using _process = replaced(globalThis as { process?: unknown }, "process", { versions: {} });
  await assert.rejects(connectNode({ hostname: "127.0.0.1", port: 1 }), /no node:net here/);
});
