/**
 * The local runner without its runtime: flags, the secret, the demo methods, the ready line,
 * signals and exit codes, shared by `tools/serve.ts` (Deno, `deno task serve`) and
 * `tools/serve_node.ts` (Node, `deno task serve:node`). Each of those only binds a
 * {@linkcode RunnerHost}: its `serveLocal`, environment and signals.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DEFAULT_ALLOWED_ORIGINS, isLoopbackHost } from "../_auth.ts";
import { consoleLogger, type Logger } from "../log.ts";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../peer.ts";
import { SharedSecret } from "../secret.ts";
import { DEFAULT_HOSTNAME, type LocalServer, type ServeLocalOptions } from "../_serve_core.ts";
import { createDemoRegistry } from "./demo_handlers.ts";
import { MAX_MESSAGE_BYTES_LIMIT as WIRE_MAX_MESSAGE_BYTES } from "../envelope.ts";

/** The environment variable holding the secret (64 hex characters). */
export const SECRET_ENV = "MIST_SECRET";
/** Exit code of a usage error: bad flag, bad value, malformed `MIST_SECRET`. */
export const EXIT_USAGE = 2;
/** Largest `--max-message-bytes`: Deno drops anything over 64 MiB without a close frame. */
// The runner's documented range ends one byte under the wire's ceiling.
const MAX_MESSAGE_BYTES_LIMIT = WIRE_MAX_MESSAGE_BYTES - 1;

/**
 * The `--help` text.
 *
 * @param command How the runner is started, e.g. `deno task serve`.
 * @param denoPermissions Whether Deno's permissions apply (`--allow-non-loopback` then also
 *   needs a wider `--allow-net`).
 * @returns The text.
 */
export function serveUsage(command: string, denoPermissions: boolean): string {
  const wider = denoPermissions ? " (needs a wider --allow-net)" : "";
  return `Usage: ${command} [options]

Serves Mist's demo methods (echo, sleep, fail, stats, callback) over one WebSocket on loopback.
Once listening, prints one JSON line on stdout: {"url":"ws://127.0.0.1:PORT/"}, plus "secret"
when MIST_SECRET was unset and a secret was generated. Logs go to stderr.

Options:
  --port <n>                 Port to listen on; 0 picks a free one (default: 0)
  --host <address>           Address to bind (default: ${DEFAULT_HOSTNAME}); loopback only
                             unless --allow-non-loopback
  --allow-non-loopback       Allow --host to be a non-loopback address${wider}
  --allow-origin <origin>    Also accept this browser Origin, e.g. http://localhost:5173
                             (repeatable; Tauri's origins and loopback origins are always accepted)
  --max-message-bytes <n>    Largest message in bytes, 1 to ${MAX_MESSAGE_BYTES_LIMIT} (default: ${DEFAULT_MAX_MESSAGE_BYTES})
  --verbose                  Debug logs, including one line per call (method, id, duration)
  -h, --help                 Show this help and exit

Environment:
  MIST_SECRET                The shared secret, 64 hex characters; generated when unset

Exit codes: 0 after a graceful shutdown (SIGINT, SIGTERM), 1 when serving failed, 2 on a usage
error.`;
}

/** A command-line or environment mistake: reported in one line, exit code 2. */
export class UsageError extends Error {
  /** @param message What is wrong, in "Cannot <action>: <state>" form. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The runner's settings, from its flags. */
export interface ServeConfig {
  /** Port; 0 picks a free one. */
  port: number;
  /** Address to bind. */
  host: string;
  /** Whether a non-loopback `host` was explicitly allowed. */
  allowNonLoopback: boolean;
  /** Browser origins accepted besides the defaults. */
  allowOrigins: string[];
  /** Largest message in bytes, or `undefined` for the library default. */
  maxMessageBytes: number | undefined;
  /** Log at debug level, with one line per call. */
  verbose: boolean;
}

/** What the command line asks for: the help text, or a server. */
export type ServeCommand = { kind: "help" } | { kind: "serve"; config: ServeConfig };

/**
 * Parses the runner's flags.
 *
 * @param args The arguments after the script name.
 * @returns The command.
 * @throws {UsageError} An unknown flag, a missing or bad value, or a positional argument.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseServeArgs } from "./_runner.ts";
 * const command = parseServeArgs(["--port", "8080", "--allow-origin", "http://localhost:5173"]);
 * assert.equal(command.kind === "serve" && command.config.port, 8080);
 * assert.throws(() => parseServeArgs(["--port", "http"]), /--port/);
 * ```
 */
export function parseServeArgs(args: readonly string[]): ServeCommand {
  const { values } = parseFlags(args, {
    port: { type: "string" },
    host: { type: "string" },
    "allow-non-loopback": { type: "boolean" },
    "allow-origin": { type: "string", multiple: true },
    "max-message-bytes": { type: "string" },
    verbose: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, false);
  if (values.help) return { kind: "help" };
  const host = String(values.host ?? DEFAULT_HOSTNAME);
  const allowNonLoopback = values["allow-non-loopback"] === true;
  if (!isLoopbackHost(host) && !allowNonLoopback) {
    throw new UsageError(
      `Cannot use --host "${host}": not a loopback address (add --allow-non-loopback)`,
    );
  }
  const maxMessageBytes = values["max-message-bytes"];
  return {
    kind: "serve",
    config: {
      port: values.port === undefined ? 0 : integerFlag("--port", values.port, 0, 65535),
      host,
      allowNonLoopback,
      allowOrigins: ((values["allow-origin"] ?? []) as string[]).map(checkOrigin),
      maxMessageBytes: maxMessageBytes === undefined
        ? undefined
        : integerFlag("--max-message-bytes", maxMessageBytes, 1, MAX_MESSAGE_BYTES_LIMIT),
      verbose: values.verbose === true,
    },
  };
}

/**
 * Reads the secret from the environment's value, or generates one when it is unset.
 *
 * @param value The value of `MIST_SECRET`, or `undefined`.
 * @returns The secret, and whether it was generated (then the ready line carries it).
 * @throws {UsageError} A value that is not 64 hex characters; the message never contains it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readSecret } from "./_runner.ts";
 * assert.equal(readSecret(undefined).generated, true);
 * assert.equal(readSecret("ab".repeat(32)).generated, false);
 * assert.throws(() => readSecret("hunter2"), /expected 64 hex characters/);
 * ```
 */
export function readSecret(
  value: string | undefined,
): { secret: SharedSecret; generated: boolean } {
  if (value === undefined) return { secret: SharedSecret.generate(), generated: true };
  try {
    return { secret: SharedSecret.fromHex(value.trim()), generated: false };
  } catch {
    throw new UsageError(
      `Cannot read ${SECRET_ENV}: expected 64 hex characters, got ${value.length} characters`,
    );
  }
}

/**
 * Parses `args` with `node:util`'s `parseArgs`, turning its errors into one-line
 * {@linkcode UsageError}s.
 *
 * @param args The arguments.
 * @param options `parseArgs` option specs.
 * @param allowPositionals Whether positional arguments are allowed.
 * @returns The parsed values and positionals.
 * @throws {UsageError} On any parse error.
 */
export function parseFlags(
  args: readonly string[],
  options: NonNullable<Parameters<typeof parseArgs>[0]>["options"],
  allowPositionals: boolean,
): {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
} {
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      options,
      strict: true,
      allowPositionals,
    });
    return { values, positionals };
  } catch (error) {
    throw new UsageError(flagErrorText(error));
  }
}

/** node:util's messages run to several sentences; keep the first, which names the flag. */
function flagErrorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const quoted = /'([^']+)'/.exec(text)?.[1];
  const code = (error as { code?: string }).code;
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && quoted) return `Unknown option "${quoted}"`;
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL" && quoted) {
    return `Unexpected argument "${quoted}"`;
  }
  return text.split(/(?<=\.) |\n/)[0].replace(/\.$/, "");
}

/**
 * Reads an integer flag value in `[min, max]`.
 *
 * @param name The flag, for the message.
 * @param value Its text.
 * @param min Smallest allowed.
 * @param max Largest allowed.
 * @returns The number.
 * @throws {UsageError} Not a decimal integer in range.
 */
export function integerFlag(name: string, value: unknown, min: number, max: number): number {
  const text = String(value);
  const number = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(number >= min && number <= max)) {
    throw new UsageError(
      `Cannot use ${name}: expected an integer from ${min} to ${max}, got "${text}"`,
    );
  }
  return number;
}

/** An Origin header is `scheme://host[:port]`, never a path: catch "example.com" and "…/". */
function checkOrigin(origin: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\/[^/?#\s]+$/i.test(origin)) {
    throw new UsageError(
      `Cannot use --allow-origin "${origin}": expected scheme://host[:port], e.g. http://localhost:5173`,
    );
  }
  return origin;
}

/** What the runner needs from the runtime it runs on. */
export interface RunnerHost {
  /** How the runner is started, for `--help`: `deno task serve`. */
  readonly command: string;
  /** Whether Deno's permissions apply (for `--help`). */
  readonly denoPermissions: boolean;
  /** Reads `MIST_SECRET`; `undefined` when unset. */
  secretValue(): string | undefined;
  /** The face's `serveLocal` (Deno's returns the server, Node's a promise of it). */
  serveLocal(options: ServeLocalOptions): LocalServer | Promise<LocalServer>;
  /**
   * Calls `listener` with the signal's name on each signal that means "shut down" (SIGINT and
   * SIGTERM; on Windows SIGINT only).
   *
   * @returns A function removing the listeners.
   */
  onShutdownSignal(listener: (signal: string) => void): () => void;
}

/**
 * Starts the server for a parsed command line and prints the ready line.
 *
 * @param config The runner's settings.
 * @param secretValue The value of `MIST_SECRET`, or `undefined`.
 * @param logger Where logs go.
 * @param host The runtime.
 * @returns The running server.
 * @throws {UsageError} A malformed secret.
 * @throws {RangeError} / the runtime's listen errors (port taken, not permitted), from
 *   `serveLocal`.
 */
export async function startRunner(
  config: ServeConfig,
  secretValue: string | undefined,
  logger: Logger,
  host: RunnerHost,
): Promise<LocalServer> {
  const { secret, generated } = readSecret(secretValue);
  // Only read once a request arrives, by which time `server` is assigned.
  const demo = createDemoRegistry({ connections: () => server.connections, logger });
  const server = await host.serveLocal({
    secret,
    registry: demo.registry,
    port: config.port,
    hostname: config.host,
    allowNonLoopback: config.allowNonLoopback,
    allowedOrigins: [...DEFAULT_ALLOWED_ORIGINS, ...config.allowOrigins],
    maxMessageBytes: config.maxMessageBytes,
    logger,
  });
  // Signal listeners go in before the ready line: a parent may send SIGTERM as soon as it reads it.
  const removeListeners = host.onShutdownSignal((signal) => {
    logger.info(`Shutting down (${signal})`);
    void server.shutdown();
  });
  server.closed.then(removeListeners);
  // The one and only stdout line; everything else goes to stderr.
  console.log(
    JSON.stringify(generated ? { url: server.url, secret: secret.toHex() } : { url: server.url }),
  );
  logger.info(`Listening on ${server.url}`);
  return server;
}

/**
 * Runs the runner: parses flags, serves until a signal, returns the exit code.
 *
 * @param args The command-line arguments.
 * @param host The runtime.
 * @returns 0 after a graceful shutdown or `--help`, 1 when serving failed, 2 on a usage error.
 */
export async function runRunner(args: readonly string[], host: RunnerHost): Promise<number> {
  let server: LocalServer;
  let logger: Logger = consoleLogger("info");
  let config: ServeConfig | undefined;
  try {
    const command = parseServeArgs(args);
    if (command.kind === "help") {
      console.log(serveUsage(host.command, host.denoPermissions));
      return 0;
    }
    config = command.config;
    logger = consoleLogger(command.config.verbose ? "debug" : "info");
    server = await startRunner(command.config, host.secretValue(), logger, host);
  } catch (error) {
    // One line, no stack: these are the user's mistakes or the machine's state, not bugs.
    const usage = error instanceof UsageError || error instanceof RangeError ||
      error instanceof TypeError;
    console.error(`serve: ${oneLine(error)}${usage ? " (see --help)" : ""}`);
    if (
      host.denoPermissions && config?.allowNonLoopback && error instanceof Error &&
      (error.name === "NotCapable" || error.name === "PermissionDenied")
    ) {
      // `deno task serve` grants the network on loopback only, on purpose.
      console.error(
        `serve: --allow-non-loopback needs Deno's network permission for that address too; run\n` +
          `  ./deno run --allow-net=${config.host} --allow-env=MIST_SECRET tools/serve.ts ` +
          `--host ${config.host} --allow-non-loopback\n` +
          `instead of "deno task serve", whose --allow-net is loopback only`,
      );
    }
    return usage ? EXIT_USAGE : 1;
  }
  await server.closed;
  logger.info("Stopped");
  return 0;
}

/** An error's message on one line. */
export function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\s*\n\s*/g, " ").trim();
}
