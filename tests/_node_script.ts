/**
 * A Node script run by a test that reports its progress as JSON lines on stdout, one per phase
 * (`{"phase": "<name>", …}`, or `{"phase": "error", "message": …}`): tests/node_test.ts and
 * tests/resume_clients_test.ts.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Arrivals } from "./fixtures/mist_server.ts";

/** A running script. `await using` kills it by its PID and prints its stderr, if any. */
export interface NodeScript extends AsyncDisposable {
  /** Resolves with its line of that phase; fails the test on an "error" line. */
  phase(name: string): Promise<Record<string, unknown>>;
  /** Resolves when it exited. */
  readonly status: Promise<Deno.CommandStatus>;
  /** Its whole stderr, once it exited. */
  readonly stderr: Promise<string>;
}

/**
 * Starts `node --no-warnings <script> <args…>`.
 *
 * @param script The script.
 * @param args Its arguments.
 * @returns The running script.
 */
export function runNodeScript(script: URL, args: readonly string[]): NodeScript {
  const child = new Deno.Command("node", {
    args: ["--no-warnings", script.pathname, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = new Arrivals<Record<string, unknown>>();
  const stdoutDone = readJsonLines(child.stdout, lines);
  const stderr = new Response(child.stderr).text();
  return {
    status: child.status,
    stderr,
    async phase(name) {
      const line = await lines.next(
        `the Node script's "${name}" line`,
        (line) => line.phase === name || line.phase === "error",
      );
      if (line.phase === "error") assert.fail(`Node script failed: ${line.message}`);
      return line;
    },
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL"); // by its PID; throws when it has already exited
      } catch {
        // Already exited.
      }
      await child.status;
      await stdoutDone;
      const text = await stderr;
      if (text.trim() !== "") console.error(`node stderr:\n${text}`);
    },
  };
}

/** Reads JSON lines from a stream until it ends. */
async function readJsonLines(
  stream: ReadableStream<Uint8Array>,
  into: Arrivals<Record<string, unknown>>,
): Promise<void> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    for (let end = buffered.indexOf("\n"); end >= 0; end = buffered.indexOf("\n")) {
      const line = buffered.slice(0, end).trim();
      buffered = buffered.slice(end + 1);
      if (line !== "") into.push(JSON.parse(line));
    }
  }
}
