/**
 * `serveLocal` and the runner against a hostile local client, over real loopback sockets:
 * upgrades reset before the 101, file descriptor exhaustion, log injection and log floods, and
 * connections dropped without a close frame. Each test asserts an outcome (a slot freed, a
 * process alive, a close code, a number of log lines), never a timing.
 *
 * @module
 */
import assert from "node:assert/strict";
import net from "node:net";
import { ConnectionSlots } from "../_server_guard.ts";
import { consoleLogger, DEFAULT_LOG_MESSAGE_CHARS } from "../log.ts";
import { DEFAULT_UPGRADE_TIMEOUT_MS } from "../server.ts";
import { FakeClock } from "./_fake_clock.ts";
import {
  connect,
  connectTo,
  deferred,
  rawUpgrade,
  readyLine,
  spawn,
  startServer,
  stop,
  upgradeRequest,
  within,
} from "./_helpers.ts";

const encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Harness

/**
 * Sends an authenticated upgrade request and resets the TCP connection (RST, not FIN) as soon
 * as it is written, before the server's 101. `Deno.connect` cannot send a reset (it has no
 * SO_LINGER); node:net's `resetAndDestroy()` can.
 */
function resetUpgrade(port: number, secret: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.write(upgradeRequest(port, { "X-Land-Secret": secret }), () => {
        socket.resetAndDestroy();
        resolve();
      });
    });
    socket.on("error", reject);
  });
}

/** Waits (bounded) until `condition()` holds, looking once per event loop turn. */
async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  let stop = false;
  const poll = async () => {
    while (!stop && !(await condition())) await new Promise((r) => setTimeout(r, 5));
  };
  try {
    await within(poll(), what);
  } finally {
    stop = true;
  }
}

// ---------------------------------------------------------------------------------------------
// Upgrades reset before the 101

Deno.test("serveLocal() frees the slot of an upgrade reset before the 101 at upgradeTimeoutMs", async () => {
  const clock = new FakeClock();
  // The shutdown is bounded even when the test fails first: a hang is what it would catch.
  await using shutdown = new AsyncDisposableStack();
  const t = shutdown.adopt(
    startServer({ maxConnections: 4, clock, idleTimeoutMs: 0 }),
    (t) => within(t.server.shutdown(), "shutdown() with reset upgrades pending"),
  );
  const secret = t.secret.toHex();
  for (let round = 0; round < 3; round++) {
    // At least three times the limit: the first four hold every slot, the rest get 503.
    // (Should a reset come too late to hit the upgrade, it just opens and closes: send more.)
    for (let sent = 0; sent < 12 || (t.server.connections < 4 && sent < 400); sent++) {
      await resetUpgrade(t.server.port, secret);
    }
    await until(() => t.server.connections === 4, "the resets to take every slot");
    const full = await rawUpgrade(t.server.port, { "X-Land-Secret": secret });
    assert.equal(full.status, 503, "the reset upgrades do hold slots until the deadline");
    clock.advance(DEFAULT_UPGRADE_TIMEOUT_MS);
    await until(() => t.server.connections === 0, `round ${round}: slots freed at the deadline`);
  }
  {
    await using client = connect(t, { reconnect: false });
    assert.deepEqual(await client.call("echo", ["after the resets"]), ["after the resets"]);
    assert.equal(t.server.connections, 1);
  }
  await shutdown.disposeAsync();
  await t.server.closed;
  assert.equal(t.server.connections, 0);
});

Deno.test("ConnectionSlots closes with 1013 a socket that opens after its deadline, frees one that errors", () => {
  const clock = new FakeClock();
  const slots = new ConnectionSlots(2, 100, clock);
  const late = fakeSocket();
  const failed = fakeSocket();
  let opened = 0;
  slots.admit(late.socket, () => opened++);
  slots.admit(failed.socket, () => opened++);
  assert.ok(slots.full);
  failed.emit("error"); // the upgrade failed: no other event will come
  assert.equal(slots.size, 1);
  clock.advance(100);
  assert.equal(slots.size, 0);
  late.open();
  assert.equal(opened, 0, "a late socket never reaches the application");
  assert.deepEqual(late.closes, [[1013, "Upgrade took too long"]]);
  assert.deepEqual(clock.pending, [], "no deadline timer left");
});

/** Enough of a server-side WebSocket for ConnectionSlots. */
function fakeSocket(): {
  socket: WebSocket;
  closes: [number | undefined, string | undefined][];
  open(): void;
  emit(type: string): void;
} {
  const target = new EventTarget();
  const closes: [number | undefined, string | undefined][] = [];
  const fake = Object.assign(target, {
    readyState: WebSocket.CONNECTING as number,
    close(code?: number, reason?: string) {
      closes.push([code, reason]);
      fake.readyState = WebSocket.CLOSING;
    },
  });
  return {
    socket: fake as unknown as WebSocket,
    closes,
    open() {
      fake.readyState = WebSocket.OPEN;
      target.dispatchEvent(new Event("open"));
    },
    emit: (type) => target.dispatchEvent(new Event(type)),
  };
}

Deno.test("serve exits 0 on SIGTERM after upgrades reset before the 101", async () => {
  await using runner = spawn(Deno.execPath(), [
    "run",
    "--allow-net=127.0.0.1,[::1]",
    "--allow-env=MIST_SECRET",
    "tools/serve.ts",
  ]);
  const { url, secret } = await readyLine(runner);
  const port = Number(new URL(url).port);
  {
    await using client = connectTo(url, secret);
    const RESETS = 8;
    for (let i = 0; i < RESETS; i++) await resetUpgrade(port, secret);
    // The demo's stats count them (besides this client): the resets reached the server.
    await until(async () => {
      const { connections } = await client.call("stats") as { connections: number };
      return connections > 1;
    }, "the server to count the reset upgrades");
  }
  // Bounded by `within`: before the fix it never exited (shutdown waited on the resets).
  const status = await runner.stop("SIGTERM");
  assert.equal(status.code, 0, runner.stderr.text);
  assert.match(runner.stderr.text, /Shutting down \(SIGTERM\)/);
  assert.match(runner.stderr.text, /Stopped/);
});

// ---------------------------------------------------------------------------------------------
// File descriptors

Deno.test("serveLocal() survives running out of file descriptors and listens again on the same port", async () => {
  await using server = spawn("bash", [
    "-c",
    'ulimit -n 64 && exec "$0" "$@"',
    Deno.execPath(),
    "run",
    "--allow-net=127.0.0.1",
    "tests/fixtures/fd_exhaust_server.ts",
  ]);
  const { url, secret } = await readyLine(server);
  const port = Number(new URL(url).port);
  {
    await using survivor = connectTo(url, secret);
    using conns = new DisposableStack();
    assert.deepEqual(await survivor.call("echo", ["before"]), ["before"]);
    // Open connections until the server can no longer accept: its accept loop fails and it
    // stops listening, so connecting is refused (bounded: 64 descriptors are far fewer).
    for (let i = 0; i < 400; i++) {
      try {
        conns.use(await Deno.connect({ hostname: "127.0.0.1", port }));
      } catch {
        break;
      }
    }
    await server.stdout.waitFor('"listenError"');
    conns.dispose();
    await server.stderr.waitFor("Listening again");
    assert.ok(await server.alive(), "the server process is alive");

    {
      // Reconnecting: the server frees the closed connections' descriptors on its own time.
      await using fresh = connectTo(url, secret, { reconnect: {} });
      assert.deepEqual(await fresh.call("echo", ["after"]), ["after"], "a new client, same port");
    }
    assert.deepEqual(await survivor.call("echo", ["still"]), ["still"], "the open one stayed");
  }
  const status = await server.stop("SIGTERM");
  assert.equal(status.code, 0, server.stderr.text);
  const reports = server.stdout.text.split("\n").filter((line) => line.includes("listenError"));
  assert.equal(reports.length, 1, `one onListenError call:\n${server.stdout.text}`);
  assert.match(reports[0], /Too many open files/);
  const errors = server.stderr.text.split("\n").filter((line) => line.startsWith("ERROR "));
  assert.equal(errors.length, 1, `one error line per incident:\n${server.stderr.text}`);
  assert.doesNotMatch(server.stderr.text, /Uncaught/);
});

// ---------------------------------------------------------------------------------------------
// Logs

/** Every log line (whatever one `write` call got) the server wrote, split on line breaks. */
function capture(): {
  lines: string[];
  writes: string[];
  logger: ReturnType<typeof consoleLogger>;
} {
  const writes: string[] = [];
  const lines: string[] = [];
  const logger = consoleLogger("debug", (text) => {
    writes.push(text);
    lines.push(...text.split(/\r\n|[\n\r\u2028\u2029]/));
  });
  return { lines, writes, logger };
}

// Anything that could end a line, move the cursor or recolour a terminal.
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/;
/** A line's bound: level, message bound, cut marker. */
const LINE_BOUND = "DEBUG ".length + DEFAULT_LOG_MESSAGE_CHARS + "…(+1048576 chars)".length;

Deno.test("serveLocal() never lets a client forge a log line or write an unbounded one", async () => {
  const { lines, writes, logger } = capture();
  await using t = startServer({ logger, maxInFlight: 1 });
  await using client = connect(t, { reconnect: false });
  // One handler running: every notification beyond is dropped with a WARN naming its method.
  const gated = client.call("gate");
  const gate = await within(t.nextGate(), "the gate handler");
  const huge = "x".repeat(1 << 20);
  client.notify("echo\nWARN forged by the method name", []);
  client.notify("\x1b[2J\rERROR forged\u2028too", []);
  client.notify(huge, []);
  client.notify(`${huge}\nWARN forged after 1 MiB`, []);
  // Frames are handled in order: once this is answered ("overloaded"), all were seen.
  await assert.rejects(client.call("echo", []), /overloaded/);
  gate.resolve("done");
  assert.equal(await gated, "done");
  // A request path, header values and a protocol list a browser could send, all refused.
  const refusals = [
    rawUpgrade(t.server.port, { Origin: "http://evil.example" }, "/%0aWARN%20forged"),
    rawUpgrade(t.server.port, { "X-Land-Secret": `${"0".repeat(64)}%0aWARN` }),
    rawUpgrade(t.server.port, { Origin: `http://${"a".repeat(100_000)}.example` }),
  ];
  for (const refused of refusals) assert.ok((await refused).status >= 400);
  await stop(t, client);
  assert.ok(
    writes.some((line) => line.includes("echo\\nWARN forged by the method name")),
    `the first forged name was logged, escaped:\n${writes.join("\n").slice(0, 2000)}`,
  );
  assert.ok(writes.some((line) => line.includes("\\x1b[2J\\rERROR forged\\u2028too")));
  assert.ok(writes.some((line) => line.includes("…(+")), "the 1 MiB name was cut");
  for (const line of writes) {
    assert.doesNotMatch(
      line,
      CONTROL,
      `a control character in ${JSON.stringify(line.slice(0, 200))}`,
    );
    assert.ok(line.length <= LINE_BOUND, `a line of ${line.length} characters`);
  }
  assert.equal(lines.length, writes.length, "one line per write");
  assert.ok(!lines.some((line) => /^(WARN|ERROR) forged/.test(line)), "a forged line");
});

/** Sends one HTTP request on a new connection and reads the response's status. */
async function refusedRequest(port: number, head: string): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(encoder.encode(head));
    const buffer = new Uint8Array(1024);
    let text = "";
    while (!text.includes("\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    return Number(text.split(" ")[1]);
  } finally {
    conn.close();
  }
}

Deno.test("serveLocal() logs 10,000 refused requests in a bounded number of lines", async () => {
  const { lines, logger } = capture();
  await using t = startServer({ logger });
  const port = t.server.port;
  const heads = [
    `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`, // 426
    upgradeRequest(port, { "X-Land-Secret": "f".repeat(64) }), // 401
    upgradeRequest(port, { "X-Land-Secret": t.secret.toHex(), Origin: "https://evil.example" }), // 403
  ];
  const TOTAL = 10_000, WORKERS = 16;
  const statuses = new Map<number, number>();
  let next = 0;
  await within(
    Promise.all(Array.from({ length: WORKERS }, async () => {
      while (next < TOTAL) {
        const status = await refusedRequest(port, heads[next++ % heads.length]);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
    })),
    "10,000 refused requests",
    120_000,
  );
  await t.server.shutdown();
  assert.deepEqual([...statuses.keys()].sort(), [401, 403, 426]);
  const refusedLines = lines.filter((line) => line.startsWith("INFO Refused"));
  assert.ok(refusedLines.length <= 30, `${refusedLines.length} lines for ${TOTAL} refusals`);
  // Nothing is lost: the lines one by one plus the summaries' counts make up every refusal.
  let counted = 0;
  for (const line of refusedLines) {
    const summary = /^INFO Refused (\d+) more connections in the last \d+ s \(.*\)$/.exec(line);
    counted += summary ? Number(summary[1]) : 1;
  }
  assert.equal(counted, TOTAL, refusedLines.join("\n"));
});

// ---------------------------------------------------------------------------------------------
// Close codes

Deno.test("serveLocal() reports 1006 for a connection dropped without a close frame", async (t) => {
  for (const drop of ["end", "reset"] as const) {
    await t.step(`TCP ${drop}`, async () => {
      await using server = startServer({ idleTimeoutMs: 0 });
      const peer = server.nextPeer();
      const socket = net.connect(server.server.port, "127.0.0.1");
      using _socket = { [Symbol.dispose]: () => void socket.destroy() };
      const upgraded = deferred();
      socket.on("data", (data: Uint8Array) => {
        if (new TextDecoder().decode(data).startsWith("HTTP/1.1 101")) upgraded.resolve();
      });
      socket.on("error", () => {});
      socket.write(upgradeRequest(server.server.port, { "X-Land-Secret": server.secret.toHex() }));
      await within(upgraded.promise, "the 101");
      const closed = (await within(peer, "the server's peer")).closed;
      if (drop === "end") socket.destroy();
      else socket.resetAndDestroy();
      assert.equal((await within(closed, "the server to see the drop")).code, 1006);
    });
  }
});
