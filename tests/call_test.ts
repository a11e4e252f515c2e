/**
 * Tests for the call CLI (`tools/call.ts`): its argument parsing in process, and the CLI as a
 * subprocess against the local runner as a subprocess, both started as their deno.json tasks
 * start them.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseCallArgs } from "../tools/call.ts";
import { UsageError } from "../tools/serve.ts";
import { freePort, within } from "./_helpers.ts";

const ROOT = new URL("..", import.meta.url);
/** The permissions of the `serve` and `call` tasks in deno.json. */
const TASK_FLAGS = ["run", "--allow-net=127.0.0.1,[::1]", "--allow-env=MIST_SECRET"];
const SECRET = "fedcba9876543210".repeat(4);
const STACK_FRAME = /^\s+at /m;

// ---------------------------------------------------------------------------------------------
// Harness

interface Exit {
  code: number;
  stdout: string;
  stderr: string;
}

function spawn(script: string, args: string[], secret: string | null): Deno.ChildProcess {
  const env = Deno.env.toObject();
  delete env.MIST_SECRET;
  if (secret !== null) env.MIST_SECRET = secret;
  return new Deno.Command(Deno.execPath(), {
    args: [...TASK_FLAGS, script, ...args],
    cwd: ROOT,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Waits for a child's exit and output; SIGKILLs it if that takes longer than `within` allows. */
async function exitOf(child: Deno.ChildProcess, what: string): Promise<Exit> {
  const output = child.output();
  try {
    const { code, stdout, stderr } = await within(output, what);
    const decoder = new TextDecoder();
    return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await output;
    throw error;
  }
}

/** Runs `deno task call` with `args` and MIST_SECRET (the shared one unless given; null: unset). */
function call(args: string[], secret: string | null = SECRET): Promise<Exit> {
  return exitOf(spawn("tools/call.ts", args, secret), "the call CLI to exit");
}

/**
 * Starts the local runner and reads its ready line. `await using runner = await startRunner()`
 * stops it with SIGTERM when the test ends, and checks that it exits 0.
 */
async function startRunner(): Promise<{ url: string } & AsyncDisposable> {
  const child = spawn("tools/serve.ts", [], SECRET);
  const stderr = new Response(child.stderr).text(); // drained so the runner never blocks
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    while (!(await within(reader.read(), "the runner's stdout to end")).done) {
      // Nothing more is expected; read to the end so the stream closes.
    }
    const status = await within(child.status, "the runner to exit");
    await stderr;
    assert.equal(status.code, 0, "the runner shuts down cleanly");
  };
  let text = "";
  try {
    while (!text.includes("\n")) {
      const { value, done } = await within(reader.read(), "the ready line");
      if (done) throw new Error(`Runner exited before its ready line: ${await stderr}`);
      text += value;
    }
  } catch (error) {
    await stop().catch(() => {}); // the ready line's error is the one to report
    throw error;
  }
  return { url: JSON.parse(text.split("\n")[0]).url, [Symbol.asyncDispose]: stop };
}

/** Asserts one line on stderr, no stack frame, nothing on stdout. */
function assertOneLineError(exit: Exit): void {
  assert.equal(exit.stdout, "");
  assert.equal(exit.stderr.trimEnd().split("\n").length, 1, exit.stderr);
  assert.doesNotMatch(exit.stderr, STACK_FRAME);
}

// ---------------------------------------------------------------------------------------------
// Arguments, in process

Deno.test("parseCallArgs() reads url, method, params and flags", () => {
  assert.deepEqual(
    parseCallArgs(["--notify", "ws://127.0.0.1:1/", "ping", '["a", 1]', "--timeout-ms", "250"]),
    { url: "ws://127.0.0.1:1/", method: "ping", params: ["a", 1], notify: true, timeoutMs: 250 },
  );
});

Deno.test("parseCallArgs() defaults params to [] and the timeout to 10 s", () => {
  const command = parseCallArgs(["ws://127.0.0.1:1/", "stats"]);
  assert.ok(command !== "help");
  assert.deepEqual(command.params, []);
  assert.equal(command.timeoutMs, 10_000);
  assert.equal(command.notify, false);
});

Deno.test("parseCallArgs() rejects params that are not a JSON array, and bad URLs", () => {
  for (
    const args of [
      ["ws://127.0.0.1:1/", "echo", "[1"],
      ["ws://127.0.0.1:1/", "echo", '{"a":1}'],
      ["http://127.0.0.1:1/", "echo"],
      ["ws://127.0.0.1:1/"],
      ["ws://127.0.0.1:1/", "echo", "[]", "extra"],
      ["ws://127.0.0.1:1/", "echo", "--timeout-ms", "0"],
    ]
  ) {
    assert.throws(() => parseCallArgs(args), UsageError, args.join(" "));
  }
});

// ---------------------------------------------------------------------------------------------
// The CLI as a subprocess

Deno.test("call prints --help on stdout and exits 0", async () => {
  const exit = await call(["--help"]);
  assert.equal(exit.code, 0);
  assert.match(exit.stdout, /^Usage: deno task call/);
});

Deno.test("call exits 2 on params that are not valid JSON", async () => {
  const exit = await call(["ws://127.0.0.1:1/", "echo", "[1,"]);
  assert.equal(exit.code, 2);
  assertOneLineError(exit);
  assert.match(exit.stderr, /Cannot parse params/);
});

Deno.test("call exits 2 when MIST_SECRET is missing or malformed", async () => {
  const missing = await call(["ws://127.0.0.1:1/", "echo"], null);
  assert.equal(missing.code, 2);
  assertOneLineError(missing);
  assert.match(missing.stderr, /MIST_SECRET/);
  const malformed = await call(["ws://127.0.0.1:1/", "echo"], "letmein");
  assert.equal(malformed.code, 2);
  assertOneLineError(malformed);
  assert.ok(!malformed.stderr.includes("letmein"));
});

Deno.test("call fails with one line and a non-zero exit when nothing listens", async () => {
  const port = freePort(); // free a moment ago
  const exit = await call([`ws://127.0.0.1:${port}/`, "echo"]);
  assert.notEqual(exit.code, 0);
  assertOneLineError(exit);
  assert.match(exit.stderr, /Cannot connect to ws:\/\/127\.0\.0\.1:\d+\//);
});

Deno.test("call against the local runner prints results, and fails with one line on errors", async (t) => {
  await using runner = await startRunner();
  const url = runner.url;
  await t.step("prints the result as JSON and exits 0", async () => {
    const exit = await call([url, "echo", '[1, "two", {"three": null}]']);
    assert.equal(exit.code, 0, exit.stderr);
    assert.deepEqual(JSON.parse(exit.stdout), [1, "two", { three: null }]);
    assert.equal(exit.stdout.trimEnd().split("\n").length, 1);
  });

  await t.step("prints a remote error on stderr and exits 1", async () => {
    const exit = await call([url, "fail", '["Out of cheese"]']);
    assert.equal(exit.code, 1);
    assertOneLineError(exit);
    assert.match(exit.stderr, /Out of cheese/);
  });

  await t.step("--notify sends a notification the server counts", async () => {
    const before = await call([url, "stats"]);
    const sent = await call(["--notify", url, "anything", "[1]"]);
    const after = await call([url, "stats"]);
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(sent.stdout, "");
    assert.equal(
      JSON.parse(after.stdout).notifications - JSON.parse(before.stdout).notifications,
      1,
    );
  });

  await t.step("--timeout-ms gives up on a slow call", async () => {
    const exit = await call(["--timeout-ms", "50", url, "sleep", "[10000]"]);
    assert.notEqual(exit.code, 0);
    assertOneLineError(exit);
    assert.match(exit.stderr, /no answer within 50 ms/);
  });

  await t.step("a wrong secret fails with one line and a non-zero exit", async () => {
    const exit = await call([url, "echo"], "00".repeat(32));
    assert.notEqual(exit.code, 0);
    assertOneLineError(exit);
    assert.match(exit.stderr, /401/);
  });
});
