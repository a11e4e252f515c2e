/**
 * The local runner on Node (≥ 20), behind `deno task serve:node`: the same flags, `MIST_SECRET`,
 * ready line, demo methods, exit codes and graceful shutdown on SIGINT/SIGTERM as
 * `deno task serve` (both are `tools/_runner.ts`), served by the Node face (`server_node.ts`).
 * `tools/build_node.ts` bundles it as `dist/node/serve.mjs`; run that with `node`.
 *
 * @example Starting the built runner from a script
 * ```ts ignore
 * const child = new Deno.Command("node", { args: ["dist/node/serve.mjs"], stdout: "piped" }).spawn();
 * // The first stdout line is {"url":"ws://127.0.0.1:PORT/","secret":"<64 hex>"}.
 * ```
 *
 * @module
 */

import { realpathSync } from "node:fs";
import { resolve } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { serveLocal } from "../server_node.ts";
import { type RunnerHost, runRunner, SECRET_ENV } from "./_runner.ts";

/** The oldest Node major the runner runs on. */
export const MIN_NODE_MAJOR = 20;

/** The runner's runtime: Node. */
export const NODE_HOST: RunnerHost = {
  command: "deno task serve:node",
  denoPermissions: false,
  secretValue: () => process.env[SECRET_ENV],
  serveLocal,
  onShutdownSignal(listener) {
    const signals: NodeJS.Signals[] = process.platform === "win32"
      ? ["SIGINT"]
      : ["SIGINT", "SIGTERM"];
    const removers = signals.map((signal) => {
      const handler = (): void => listener(signal);
      process.on(signal, handler);
      return () => void process.off(signal, handler);
    });
    return () => removers.forEach((remove) => remove());
  },
};

/**
 * Runs the runner on Node: checks the version, then as `deno task serve`.
 *
 * @param args The command-line arguments.
 * @returns The exit code (1 on a Node older than {@linkcode MIN_NODE_MAJOR}).
 */
export async function main(args: readonly string[]): Promise<number> {
  const major = Number(process.versions.node.split(".")[0]);
  if (major < MIN_NODE_MAJOR) {
    console.error(`serve: Cannot run on Node ${process.version}: Node ${MIN_NODE_MAJOR} or later`);
    return 1;
  }
  return await runRunner(args, NODE_HOST);
}

/** Whether this module is the program: `import.meta.main` is Deno's (and Node 24's) only. */
function isMain(): boolean {
  if (typeof import.meta.main === "boolean") return import.meta.main;
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return pathToFileURL(realpathSync(resolve(script))).href === import.meta.url;
  } catch {
    return false;
  }
}

if (isMain()) {
  const code = await main(process.argv.slice(2));
  // Exit once stdout is written (a pipe may still hold the ready line or the help text).
  process.stdout.write("", () => process.exit(code));
}
