/**
 * Tests for the local runner: its flag parsing in process, and the runner itself as a
 * subprocess driven by a real Client. Every subprocess test runs once per runtime: on Deno
 * (`tools/serve.ts`, started exactly as `deno task serve` starts it) and on Node
 * (`tools/serve_node.ts`, bundled by `tools/build_node.ts` and run by the machine's `node`, as
 * `deno task serve:node` does).
 *
 * @module
 */
import assert from "node:assert/strict";
import { DisconnectedError, RemoteError } from "../errors.ts";
import { SharedSecret } from "../secret.ts";
import { buildNode } from "../tools/build_node.ts";
import { parseServeArgs, readSecret, UsageError } from "../tools/serve.ts";
import {
  type Child,
  connectTo,
  deferred,
  type Exit,
  readyLine,
  spawn,
  within,
} from "./_helpers.ts";

/** The permissions of the `serve` task in deno.json. */
const TASK_FLAGS = ["run", "--allow-net=127.0.0.1,[::1]", "--allow-env=MIST_SECRET"];

/** A runtime the runner runs on: how to start it directly, and its README command. */
interface Runtime {
  readonly name: "deno" | "node";
  /** The program and its arguments before the runner's own. */
  direct(): Promise<[string, string[]]>;
  /** The `./deno task …` of the README. */
  readonly task: string;
}

let nodeBuild: Promise<string> | undefined;

const RUNTIMES: readonly Runtime[] = [
  {
    name: "deno",
    direct: () => Promise.resolve([Deno.execPath(), [...TASK_FLAGS, "tools/serve.ts"]]),
    task: "serve",
  },
  {
    name: "node",
    // Built once per test run, where `deno task serve:node` builds it.
    direct: async () => ["node", [await (nodeBuild ??= buildNode().then((b) => b["serve.mjs"]))]],
    task: "serve:node",
  },
];

/** Registers one test per runtime, named `name [runtime]`. */
function runnerTest(
  name: string,
  fn: (runtime: Runtime, t: Deno.TestContext) => Promise<void>,
): void {
  for (const runtime of RUNTIMES) {
    Deno.test(`${name} [${runtime.name}]`, (t) => fn(runtime, t));
  }
}

// ---------------------------------------------------------------------------------------------
// Harness

/** `direct`: the runtime with the task's flags; `readme`: the README's `./deno task …` itself. */
type Launch = "direct" | "readme";

/** Spawns the runner, with MIST_SECRET set to `secret` when given (and unset otherwise). */
async function spawnRunner(
  runtime: Runtime,
  args: string[],
  secret: string | undefined,
  launch: Launch = "direct",
): Promise<Child> {
  const [program, before] = launch === "direct"
    ? await runtime.direct()
    : ["./deno", ["task", runtime.task]];
  return spawn(program, [...before, ...args], {
    env: secret === undefined ? {} : { MIST_SECRET: secret },
  });
}

/** Runs the runner to completion (for flags that must make it exit at once). */
async function runToExit(runtime: Runtime, args: string[], secret?: string): Promise<Exit> {
  await using child = await spawnRunner(runtime, args, secret);
  return await within(child.exited, "the runner to exit by itself");
}

/**
 * A runner that printed its ready line. `await using runner = await startRunner(…)` stops it
 * when the test ends.
 */
interface Runner extends Child {
  url: string;
  /** The secret to connect with: the generated one, or the one given. */
  secret: string;
  ready: Record<string, string>;
}

/** Starts the runner and waits for its ready line. */
async function startRunner(
  runtime: Runtime,
  args: string[] = [],
  secret?: string,
  launch: Launch = "direct",
): Promise<Runner> {
  const child = await spawnRunner(runtime, args, secret, launch);
  const ready = await readyLine(child);
  return { ...child, url: ready.url, secret: secret ?? ready.secret, ready };
}

const GIVEN_SECRET = "0123456789abcdef".repeat(4);
const STACK_FRAME = /^\s+at /m;

// ---------------------------------------------------------------------------------------------
// Flags, in process

Deno.test("parseServeArgs() reads every flag, repeating --allow-origin", () => {
  const command = parseServeArgs([
    "--port=8080",
    "--host",
    "::1",
    "--allow-origin",
    "http://localhost:5173",
    "--allow-origin",
    "app://main",
    "--max-message-bytes",
    "1024",
    "--verbose",
  ]);
  assert.deepEqual(command, {
    kind: "serve",
    config: {
      port: 8080,
      host: "::1",
      allowNonLoopback: false,
      allowOrigins: ["http://localhost:5173", "app://main"],
      maxMessageBytes: 1024,
      verbose: true,
    },
  });
});

Deno.test("parseServeArgs() defaults to port 0 on 127.0.0.1", () => {
  const command = parseServeArgs([]);
  assert.equal(command.kind, "serve");
  if (command.kind !== "serve") return;
  assert.equal(command.config.port, 0);
  assert.equal(command.config.host, "127.0.0.1");
  assert.equal(command.config.maxMessageBytes, undefined);
});

Deno.test("parseServeArgs() rejects bad values with a UsageError naming the flag", () => {
  const cases: [string[], string][] = [
    [["--port", "65536"], "--port"],
    [["--port", "-1"], "--port"],
    [["--max-message-bytes", "0"], "--max-message-bytes"],
    [["--max-message-bytes", String(64 * 1024 * 1024)], "--max-message-bytes"],
    [["--allow-origin", "localhost:5173"], "--allow-origin"],
    [["--allow-origin", "http://localhost:5173/"], "--allow-origin"],
    [["--host", "0.0.0.0"], "--allow-non-loopback"],
    [["--nope"], "--nope"],
  ];
  for (const [args, flag] of cases) {
    assert.throws(() => parseServeArgs(args), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, new RegExp(flag));
      assert.doesNotMatch(error.message, /\n/);
      return true;
    });
  }
});

Deno.test("parseServeArgs() lets --allow-non-loopback bind any address", () => {
  const command = parseServeArgs(["--host", "0.0.0.0", "--allow-non-loopback"]);
  assert.equal(command.kind === "serve" && command.config.host, "0.0.0.0");
});

Deno.test("readSecret() never puts the value in its error", () => {
  assert.throws(() => readSecret("sekrit-value"), (error: unknown) => {
    assert.ok(error instanceof UsageError);
    assert.match(error.message, /expected 64 hex characters/);
    assert.doesNotMatch(error.message, /sekrit/);
    return true;
  });
});

// ---------------------------------------------------------------------------------------------
// The runner as a subprocess: start-up

runnerTest("serve prints one ready line with the url and the generated secret", async (runtime) => {
  await using runner = await startRunner(runtime);
  const exit = await runner.stop();
  assert.deepEqual(Object.keys(runner.ready).sort(), ["secret", "url"]);
  assert.match(runner.url, /^ws:\/\/127\.0\.0\.1:\d+\/$/);
  assert.match(String(runner.ready.secret), /^[0-9a-f]{64}$/);
  assert.equal(exit.stdout, `${JSON.stringify(runner.ready)}\n`, "nothing else on stdout");
  assert.equal(exit.code, 0);
});

runnerTest("serve prints no secret field when MIST_SECRET is set", async (runtime) => {
  await using runner = await startRunner(runtime, [], GIVEN_SECRET);
  await using client = connectTo(runner.url, runner.secret);
  assert.deepEqual(Object.keys(runner.ready), ["url"]);
  assert.deepEqual(await client.call("echo", ["given"]), ["given"], "serves with that secret");
});

runnerTest("serve --help prints usage on stdout and exits 0", async (runtime) => {
  const exit = await runToExit(runtime, ["--help"]);
  assert.equal(exit.code, 0);
  assert.match(exit.stdout, /^Usage: deno task serve/);
  assert.match(exit.stdout, /--allow-origin/);
  assert.equal(exit.stderr, "");
});

runnerTest("serve exits 2 with one line on stderr for an unknown flag", async (runtime) => {
  const exit = await runToExit(runtime, ["--frobnicate"]);
  assert.equal(exit.code, 2);
  assert.equal(exit.stdout, "");
  assert.equal(exit.stderr.trimEnd().split("\n").length, 1);
  assert.match(exit.stderr, /--frobnicate/);
});

runnerTest("serve exits 2 for a bad flag value", async (runtime) => {
  const exit = await runToExit(runtime, ["--port", "seventy"]);
  assert.equal(exit.code, 2);
  assert.equal(exit.stdout, "");
  assert.match(exit.stderr, /^serve: Cannot use --port: .*\n$/);
});

runnerTest("serve exits 2 for a malformed MIST_SECRET without echoing it", async (runtime) => {
  const bad = "not-a-secret-4242";
  const exit = await runToExit(runtime, [], bad);
  assert.equal(exit.code, 2);
  assert.equal(exit.stdout, "");
  assert.equal(exit.stderr.trimEnd().split("\n").length, 1, exit.stderr);
  assert.match(exit.stderr, /expected 64 hex characters/);
  assert.ok(!exit.stderr.includes(bad));
  assert.doesNotMatch(exit.stderr, STACK_FRAME);
});

runnerTest("serve exits 1 with one line on stderr when the port is taken", async (runtime) => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const exit = await runToExit(runtime, ["--port", String(taken.addr.port)]);
  assert.equal(exit.code, 1);
  assert.equal(exit.stdout, "");
  assert.equal(exit.stderr.trimEnd().split("\n").length, 1, exit.stderr);
  assert.match(exit.stderr, /^serve: .*(in use|EADDRINUSE)/i);
});

runnerTest("serve never writes the secret or a URL query to stderr", async (runtime) => {
  await using runner = await startRunner(runtime, ["--verbose"]);
  {
    await using client = connectTo(runner.url, runner.secret);
    assert.deepEqual(await client.call("echo", [1]), [1]);
    // A refused attempt that carries the secret in the query (not accepted by default).
    const socket = new WebSocket(`${runner.url}?secret=${runner.secret}`);
    await new Promise((resolve) => socket.addEventListener("close", resolve, { once: true }));
  }
  const exit = await runner.stop();
  assert.match(exit.stderr, /Connection 1 opened/);
  assert.match(exit.stderr, /Call \d+ "echo" ok in [\d.]+ ms/, "--verbose logs each call");
  assert.match(exit.stderr, /401/);
  assert.ok(!exit.stderr.includes(runner.secret), "secret in stderr");
  assert.ok(!exit.stderr.includes("?"), "URL query in stderr");
});

runnerTest(
  "serve applies --max-message-bytes: a larger message closes with 1009",
  async (runtime) => {
    await using runner = await startRunner(runtime, ["--max-message-bytes", "1024"]);
    await using client = connectTo(runner.url, runner.secret);
    await assert.rejects(client.call("echo", ["x".repeat(2048)]), (error: unknown) => {
      assert.ok(error instanceof DisconnectedError);
      assert.equal(error.closeCode, 1009);
      return true;
    });
  },
);

// ---------------------------------------------------------------------------------------------
// The runner as a subprocess: demo methods over a real Client

runnerTest("serve's demo methods answer a real Client", async (runtime, t) => {
  await using runner = await startRunner(runtime, [], GIVEN_SECRET);
  await using client = connectTo(runner.url, runner.secret);
  await t.step("echo returns its params", async () => {
    assert.deepEqual(await client.call("echo", [1, "two", { three: [3] }]), [
      1,
      "two",
      { three: [3] },
    ]);
  });
  await t.step("sleep resolves with null", async () => {
    assert.equal(await client.call("sleep", [10]), null);
  });
  await t.step("sleep rejects a bad duration", async () => {
    for (const ms of [-1, 60_001, "5", null]) {
      await assert.rejects(client.call("sleep", [ms]), RemoteError);
    }
  });
  await t.step("fail rejects with a RemoteError carrying the message", async () => {
    await assert.rejects(client.call("fail", ["Disk on fire"]), (error: unknown) => {
      assert.ok(error instanceof RemoteError);
      assert.equal(error.remoteMessage, "Disk on fire");
      return true;
    });
  });
  await t.step("an unknown method is answered Unknown method", async () => {
    await assert.rejects(client.call("nope"), (error: unknown) => {
      assert.ok(error instanceof RemoteError);
      assert.equal(error.remoteMessage, 'Unknown method "nope"');
      return true;
    });
  });
  await t.step("stats counts notifications of any method, connections and calls", async () => {
    const before = await client.call("stats") as Record<string, number>;
    client.notify("anything", [1]);
    client.notify("echo", [2]);
    const after = await client.call("stats") as Record<string, number>;
    assert.equal(after.notifications - before.notifications, 2);
    assert.equal(after.calls - before.calls, 1);
    assert.equal(after.connections, 1);
  });
  await t.step("callback calls the client's method and returns its answer", async () => {
    client.registry.register("whoami", ([greeting]) => `${greeting}, client`);
    assert.equal(await client.call("callback", ["whoami", ["hello"]]), "hello, client");
  });
});

// ---------------------------------------------------------------------------------------------
// The runner as a subprocess: graceful shutdown

/** Sends `signal` while a `sleep` is in flight; the sleep's result must still arrive. */
async function shutdownWithSleepInFlight(runtime: Runtime, signal: Deno.Signal): Promise<void> {
  await using runner = await startRunner(runtime, [], GIVEN_SECRET);
  await using client = connectTo(runner.url, runner.secret);
  const sleeping = client.call("sleep", [500]);
  // Requests start in arrival order: once echo is answered, sleep is running.
  await client.call("echo", []);
  const exit = runner.stop(signal);
  assert.equal(await within(sleeping, "the sleep result"), null);
  const { code } = await exit;
  assert.equal(code, 0);
  await runner.stderr.waitFor(`Shutting down (${signal})`);
}

runnerTest("serve exits 0 on SIGTERM after an in-flight sleep finishes", async (runtime) => {
  await shutdownWithSleepInFlight(runtime, "SIGTERM");
});

runnerTest("serve exits 0 on SIGINT after an in-flight sleep finishes", async (runtime) => {
  await shutdownWithSleepInFlight(runtime, "SIGINT");
});

runnerTest(
  "serve's shutdown waits for a handler still running when the signal arrives",
  async (runtime) => {
    await using runner = await startRunner(runtime, [], GIVEN_SECRET);
    await using client = connectTo(runner.url, runner.secret);
    const entered = deferred();
    const release = deferred<string>();
    client.registry.register("hold", () => {
      entered.resolve();
      return release.promise;
    });
    // Answered when the test ends, so that closing the client never waits on it.
    using _release = { [Symbol.dispose]: () => release.resolve("") };
    // The server's callback handler is running until the client answers "hold".
    const answer = client.call("callback", ["hold", []]);
    await within(entered.promise, "the callback to arrive");
    // The peer, not the client's state: Client with reconnect: false stays "open" after a drop.
    const closed = client.peer!.closed;
    runner.kill("SIGTERM");
    await runner.stderr.waitFor("Shutting down (SIGTERM)");
    release.resolve("held");
    assert.equal(await within(answer, "the callback's result"), "held");
    const exit = await within(runner.exited, "the runner to exit");
    assert.equal(exit.code, 0);
    assert.equal((await within(closed, "the client to see the close")).code, 1001);
  },
);

runnerTest("serve's generated secrets differ between runs", async (runtime) => {
  await using a = await startRunner(runtime);
  await using b = await startRunner(runtime);
  assert.notEqual(a.secret, b.secret);
  assert.ok(SharedSecret.fromHex(a.secret));
});

runnerTest(
  "./deno task serve[:node] (the README command) passes SIGTERM to the runner, which exits 0",
  async (runtime) => {
    // npm's Node wrapper for deno does not forward signals; ./deno must run Deno itself, and
    // `deno task` passes them on to Node. serve:node builds first, quietly.
    await using runner = await startRunner(runtime, [], undefined, "readme");
    const exit = await runner.stop("SIGTERM");
    assert.equal(exit.code, 0);
    assert.equal(exit.stdout, `${JSON.stringify(runner.ready)}\n`, "nothing else on stdout");
    assert.match(exit.stderr, /Shutting down \(SIGTERM\)/);
    assert.match(exit.stderr, /Stopped/);
  },
);
