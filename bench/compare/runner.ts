/**
 * Runs one stack: its server child, then its client child against it, then stops the server.
 *
 * @module
 */

import { Child, ChildTimeout } from "./child.ts";
import type { Plan } from "./plan.ts";
import {
  type ClientSpec,
  isSkipped,
  type Measurement,
  parseMeasurement,
  parseReady,
  SPEC_ENV,
} from "./protocol.ts";
import { bundlePath } from "./setup.ts";
import type { StackInfo } from "./stacks.ts";

/** What became of one stack. */
export type Outcome =
  | { readonly kind: "measured"; readonly measurement: Measurement }
  | {
    readonly kind: "skipped" | "timeout" | "failed";
    readonly reason: string;
  };

/** The deadlines of one stack's children. */
export interface Deadlines {
  /** For the server's ready line (includes runtime start-up and module loading). */
  readonly readyMs: number;
  /** For the client's whole run: connect, three workloads, result line. */
  readonly clientMs: number;
  /** The `performance.now()` by which the whole run must end; caps both of the above. */
  readonly runEnd: number;
}

function capped(ms: number, deadlines: Deadlines): number {
  return Math.max(0, Math.min(ms, deadlines.runEnd - performance.now()));
}

/** The command line of one role of a stack. */
function commandOf(
  stack: StackInfo,
  role: "server" | "client",
): [string, string[]] {
  if (stack.runtime === "node") return ["node", [bundlePath(stack), role]];
  return [Deno.execPath(), [
    "run",
    "--quiet",
    "--config",
    "deno.json",
    ...stack.permissions,
    stack.entry,
    role,
  ]];
}

function spawn(
  stack: StackInfo,
  role: "server" | "client",
  dir: string,
  env?: Record<string, string>,
): Child {
  const [command, args] = commandOf(stack, role);
  return Child.spawn(command, args, {
    cwd: dir,
    env,
    label: `${stack.name} ${role}`,
  });
}

async function runClient(
  stack: StackInfo,
  spec: ClientSpec,
  dir: string,
  ms: number,
): Promise<Outcome> {
  const client = spawn(stack, "client", dir, {
    [SPEC_ENV]: JSON.stringify(spec),
  });
  try {
    const line = await client.nextLine(ms);
    const status = await client.exit(5_000);
    if (line === undefined || !status.success) {
      return {
        kind: "failed",
        reason: `client exited with code ${status.code} (see stderr)`,
      };
    }
    const result = parseMeasurement(line);
    return isSkipped(result)
      ? { kind: "skipped", reason: result.skipped }
      : { kind: "measured", measurement: result };
  } finally {
    await client.stop();
  }
}

/** Runs `stack` with `plan` from `dir` (bench/compare); never throws, never hangs past its deadlines. */
export async function runStack(
  stack: StackInfo,
  plan: Plan,
  dir: string,
  deadlines: Deadlines,
): Promise<Outcome> {
  let server: Child | undefined;
  try {
    server = spawn(stack, "server", dir);
    const line = await server.nextLine(capped(deadlines.readyMs, deadlines));
    if (line === undefined) {
      return { kind: "failed", reason: "server exited before it was ready" };
    }
    server.forwardRest();
    const ready = parseReady(line);
    if (isSkipped(ready)) return { kind: "skipped", reason: ready.skipped };
    const counts = stack.shrink?.(plan) ?? plan;
    const clientMs = capped(deadlines.clientMs, deadlines);
    return await runClient(stack, { ...ready, plan: counts }, dir, clientMs);
  } catch (error) {
    if (error instanceof ChildTimeout) {
      return { kind: "timeout", reason: error.message };
    }
    return {
      kind: "failed",
      reason: error instanceof Error ? error.message : String(error),
    };
  } finally {
    await server?.stop();
  }
}
