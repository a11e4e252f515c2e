/**
 * What the numbers were measured on: the date, the runtimes and the CPU.
 *
 * @module
 */

import { cpus } from "node:os";

/** The facts printed above the table. */
export interface Machine {
  /** When the run started, ISO 8601 in UTC. */
  readonly date: string;
  /** The Deno that ran the Deno stacks. */
  readonly deno: string;
  /** `node --version`, or undefined when there is no `node` on the PATH. */
  readonly node: string | undefined;
  /** The CPU's model name (from /proc/cpuinfo on Linux), or "unknown". */
  readonly cpu: string;
  /** Logical CPUs. */
  readonly cores: number;
}

async function nodeVersion(): Promise<string | undefined> {
  try {
    const { success, stdout } = await new Deno.Command("node", {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return success ? new TextDecoder().decode(stdout).trim() : undefined;
  } catch {
    return undefined; // No node on the PATH: the Node stacks are skipped.
  }
}

function cpuModel(): string {
  try {
    // node:os reads /proc/cpuinfo's "model name" on Linux; Deno.readTextFile would need -A
    // for /proc, this needs only --allow-sys=cpus.
    return cpus()[0]?.model.trim() || "unknown";
  } catch {
    return "unknown"; // No --allow-sys=cpus.
  }
}

/** Describes this machine. */
export async function describeMachine(): Promise<Machine> {
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    deno: Deno.version.deno,
    node: await nodeVersion(),
    cpu: cpuModel(),
    cores: navigator.hardwareConcurrency,
  };
}
