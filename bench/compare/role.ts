/**
 * The entry point shared by every stack's program: `server` or `client`, picked by argv.
 *
 * Uses `node:process` rather than `Deno.*` so that the same file runs in Deno and, bundled, in
 * Node.
 *
 * @module
 */

import process from "node:process";
import { type Measurement, parseSpec, type Ready, type Skipped, SPEC_ENV } from "./protocol.ts";
import { type EchoClient, measure } from "./workloads.ts";

export type { Ready, Skipped } from "./protocol.ts";
export type { EchoClient } from "./workloads.ts";

/** The two halves of a stack under test. */
export interface Stack {
  /** Starts a server with an `echo` method on 127.0.0.1 and an OS-chosen port. */
  serve(): Promise<Ready | Skipped>;
  /** Connects to the server that `ready` describes; resolves once calls can be made. */
  connect(ready: Ready): Promise<EchoClient | Skipped>;
}

/** How long a client may take to close before the process exits regardless. */
const CLOSE_GRACE_MS = 2_000;

function printLine(value: Ready | Skipped | Measurement): Promise<void> {
  // Waits for the write so that `process.exit` cannot cut the line off.
  return new Promise((resolve) => {
    process.stdout.write(`${JSON.stringify(value)}\n`, () => resolve());
  });
}

async function runServer(stack: Stack): Promise<void> {
  const ready = await stack.serve();
  await printLine(ready);
  // A server that is listening keeps the process alive until the orchestrator's SIGTERM.
  if ("skipped" in ready) process.exit(0);
}

async function runClient(stack: Stack): Promise<void> {
  const text = process.env[SPEC_ENV];
  if (text === undefined) throw new Error(`${SPEC_ENV} is not set`);
  const spec = parseSpec(text);
  const client = await stack.connect(spec);
  if ("skipped" in client) {
    await printLine(client);
    process.exit(0);
  }
  const measurement = await measure(client, spec.plan);
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    client.close(),
    new Promise<void>((resolve) => timer = setTimeout(resolve, CLOSE_GRACE_MS)),
  ]);
  clearTimeout(timer);
  await printLine(measurement);
  // Some stacks leave timers or reconnect logic behind; the result is out, so leave now.
  process.exit(0);
}

/**
 * Runs `stack` in the role named by the first argument (`server` or `client`); never returns
 * normally for a client. Errors go to stderr with exit code 1.
 */
export async function runRole(stack: Stack): Promise<void> {
  const role = process.argv[2];
  try {
    if (role === "server") await runServer(stack);
    else if (role === "client") await runClient(stack);
    else throw new Error(`usage: <stack> server|client (got ${role})`);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  }
}

/** Turns an exception into a skip reason of one short line. */
export function skipReason(error: unknown): Skipped {
  const message = error instanceof Error ? error.message : String(error);
  return { skipped: message.split("\n")[0].slice(0, 120) };
}
