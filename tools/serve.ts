/**
 * The local runner behind `deno task serve`: serves the demo methods on loopback, prints one
 * JSON line (`{"url": …}`, plus `"secret"` when it generated one) on stdout once listening, logs
 * to stderr, and shuts down gracefully on SIGINT/SIGTERM.
 *
 * Stdout carries only the ready line, so a parent process can read it as its handshake.
 *
 * @example Starting the runner from a script
 * ```ts ignore
 * const child = new Deno.Command(Deno.execPath(), {
 *   args: ["run", "--allow-net=127.0.0.1,[::1]", "--allow-env=MIST_SECRET", "tools/serve.ts"],
 *   stdout: "piped",
 * }).spawn();
 * // The first stdout line is {"url":"ws://127.0.0.1:PORT/","secret":"<64 hex>"}.
 * ```
 *
 * @module
 */

import type { Logger } from "../log.ts";
import { type LocalServer, serveLocal } from "../server.ts";
import {
  type RunnerHost,
  runRunner,
  SECRET_ENV,
  type ServeConfig,
  serveUsage,
  startRunner as startWith,
} from "./_runner.ts";

export {
  EXIT_USAGE,
  integerFlag,
  oneLine,
  parseFlags,
  parseServeArgs,
  readSecret,
  type RunnerHost,
  SECRET_ENV,
  type ServeCommand,
  type ServeConfig,
  serveUsage,
  UsageError,
} from "./_runner.ts";

/** `--help` text. */
export const SERVE_USAGE: string = serveUsage("deno task serve", true);

/** The runner's runtime: Deno. */
export const DENO_HOST: RunnerHost = {
  command: "deno task serve",
  denoPermissions: true,
  secretValue: () => Deno.env.get(SECRET_ENV),
  serveLocal,
  onShutdownSignal(listener) {
    // Windows delivers only SIGINT (and SIGBREAK) to Deno.
    const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    const removers = signals.map((signal) => {
      const handler = (): void => listener(signal);
      Deno.addSignalListener(signal, handler);
      return () => Deno.removeSignalListener(signal, handler);
    });
    return () => removers.forEach((remove) => remove());
  },
};

/**
 * Starts the server for a parsed command line and prints the ready line.
 *
 * @param config The runner's settings.
 * @param secretValue The value of `MIST_SECRET`, or `undefined`.
 * @param logger Where logs go.
 * @returns The running server.
 * @throws {UsageError} A malformed secret.
 * @throws {RangeError} / {Deno.errors.AddrInUse} / {Deno.errors.NotCapable} from `serveLocal`.
 */
export function startRunner(
  config: ServeConfig,
  secretValue: string | undefined,
  logger: Logger,
): Promise<LocalServer> {
  return startWith(config, secretValue, logger, DENO_HOST);
}

/**
 * Runs the runner: parses flags, serves until a signal, returns the exit code.
 *
 * @param args The command-line arguments.
 * @returns 0 after a graceful shutdown or `--help`, 1 when serving failed, 2 on a usage error.
 */
export function main(args: readonly string[]): Promise<number> {
  return runRunner(args, DENO_HOST);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
