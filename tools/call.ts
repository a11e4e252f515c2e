/**
 * The call CLI behind `deno task call <url> <method> [params-json]`: pokes a running Mist
 * server the way `curl` pokes HTTP. Prints the result as JSON on stdout; errors go to stderr
 * as one line, never a stack trace.
 *
 * @example
 * ```sh ignore
 * MIST_SECRET=<64 hex> deno task call ws://127.0.0.1:8080/ echo '[1, "two"]'
 * ```
 *
 * @module
 */

import "../_socket/preset.ts"; // the Deno preset
import { Client, type WebSocketFactory } from "../client.ts";
import { NoDelayWebSocket } from "../_socket/no_delay.ts";
import { ChannelDeadError, RemoteError } from "../errors.ts";
import { consoleLogger } from "../log.ts";
import { PING_METHOD } from "../peer.ts";
import type { SharedSecret } from "../secret.ts";
import {
  EXIT_USAGE,
  integerFlag,
  oneLine,
  parseFlags,
  readSecret,
  SECRET_ENV,
  UsageError,
} from "./serve.ts";

/** Default `--timeout-ms`. */
export const DEFAULT_CALL_TIMEOUT_MS = 10_000;
/** Exit code when the peer answered with an error. */
export const EXIT_REMOTE_ERROR = 1;
/** Exit code when no answer came: unreachable, refused, timed out, disconnected. */
export const EXIT_NO_ANSWER = 3;

/** `--help` text. */
export const CALL_USAGE: string = `Usage: deno task call [options] <url> <method> [params-json]

Calls <method> on the Mist server at <url> (e.g. ws://127.0.0.1:8080/) and prints the result as
JSON on stdout. params-json is a JSON array of positional parameters (default: []).

Options:
  --notify             Send a notification instead of a call; prints nothing
  --timeout-ms <n>     Give up after this many ms, connecting included (default: ${DEFAULT_CALL_TIMEOUT_MS})
  -h, --help           Show this help and exit

Environment:
  MIST_SECRET          The server's shared secret, 64 hex characters (required)

Exit codes: 0 success, 1 the server answered with an error (message on stderr), 2 usage error
(bad flag, params or MIST_SECRET), 3 no answer (unreachable, refused, timed out).`;

/** A parsed command line. */
export interface CallCommand {
  /** The server's `ws:` URL. */
  url: string;
  /** The method's wire name. */
  method: string;
  /** Positional parameters. */
  params: unknown[];
  /** Send a notification instead of a call. */
  notify: boolean;
  /** Overall deadline in ms. */
  timeoutMs: number;
}

/**
 * Parses the call CLI's arguments.
 *
 * @param args The arguments after the script name.
 * @returns `"help"`, or the command.
 * @throws {UsageError} A bad flag, URL, method count or params.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCallArgs } from "./call.ts";
 * const command = parseCallArgs(["ws://127.0.0.1:1/", "echo", "[1]"]);
 * assert.deepEqual(command !== "help" && command.params, [1]);
 * assert.throws(() => parseCallArgs(["ws://127.0.0.1:1/", "echo", "{}"]), /JSON array/);
 * ```
 */
export function parseCallArgs(args: readonly string[]): CallCommand | "help" {
  const { values, positionals } = parseFlags(args, {
    notify: { type: "boolean" },
    "timeout-ms": { type: "string" },
    help: { type: "boolean", short: "h" },
  }, true);
  if (values.help) return "help";
  if (positionals.length < 2 || positionals.length > 3) {
    throw new UsageError(
      `Cannot call: expected <url> <method> [params-json], got ${positionals.length} arguments`,
    );
  }
  const [url, method, paramsText = "[]"] = positionals;
  return {
    url: checkUrl(url),
    method,
    params: parseParams(paramsText),
    notify: values.notify === true,
    timeoutMs: values["timeout-ms"] === undefined
      ? DEFAULT_CALL_TIMEOUT_MS
      : integerFlag("--timeout-ms", values["timeout-ms"], 1, 2 ** 31 - 1),
  };
}

function checkUrl(url: string): string {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    // Reported below without the value: a URL may carry a ?secret= query.
  }
  if (parsed?.protocol !== "ws:" && parsed?.protocol !== "wss:") {
    throw new UsageError("Cannot call: <url> is not a ws: or wss: URL");
  }
  return url;
}

function parseParams(text: string): unknown[] {
  let params: unknown;
  try {
    params = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`Cannot parse params: ${oneLine(error)}`);
  }
  if (!Array.isArray(params)) {
    throw new UsageError('Cannot parse params: expected a JSON array, e.g. [1, "two"]');
  }
  return params;
}

/** The URL without query or fragment, for messages: a query may carry a secret. */
function safeUrl(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
}

/**
 * Sends one call (or notification) and reports the outcome.
 *
 * @param command The parsed command line.
 * @param secret The server's secret.
 * @returns The exit code: 0, {@linkcode EXIT_REMOTE_ERROR} or {@linkcode EXIT_NO_ANSWER}.
 */
export async function runCall(command: CallCommand, secret: SharedSecret): Promise<number> {
  const sockets = recordingFactory();
  // No reconnect and no heartbeat: a CLI should fail fast and leave no timers behind.
  const client = new Client(command.url, {
    secret,
    reconnect: false,
    heartbeat: false,
    logger: consoleLogger("error"),
    webSocketFactory: sockets.factory,
  });
  try {
    const deadline = performance.now() + command.timeoutMs;
    // Queued until open, then sent before anything else; the ping's answer proves it went out.
    if (command.notify) client.notify(command.method, command.params);
    // Wait for the connection first and pass the call a whole number of ms: Client.call()
    // computes the time left after connecting as a fraction, which its own check rejects.
    await client.opened({ timeoutMs: command.timeoutMs });
    const options = { timeoutMs: Math.max(1, Math.ceil(deadline - performance.now())) };
    if (command.notify) {
      await client.call(PING_METHOD, [], options);
    } else {
      const result = await client.call(command.method, command.params, options);
      console.log(JSON.stringify(result ?? null));
    }
    return 0;
  } catch (error) {
    if (error instanceof RemoteError) {
      console.error(`call: ${oneLine(error)}`);
      return EXIT_REMOTE_ERROR;
    }
    console.error(`call: ${describeFailure(error, command, sockets.lastError())}`);
    return EXIT_NO_ANSWER;
  } finally {
    await client.close();
  }
}

/**
 * Makes the client's sockets as it would (no-delay for `ws:`, Deno's own for `wss:`) and keeps
 * the last socket error's message: the client reports every failed attempt as "1006 Connection
 * failed", which cannot tell a refused connection from a refused secret.
 */
function recordingFactory(): { factory: WebSocketFactory; lastError: () => string | undefined } {
  let last: string | undefined;
  const factory: WebSocketFactory = (url, init) => {
    const socket = url.startsWith("ws:")
      ? new NoDelayWebSocket(url, init)
      : new WebSocket(url, { headers: init.headers, protocols: init.protocols });
    socket.addEventListener("error", (event) => {
      const message = (event as { message?: unknown }).message;
      if (typeof message === "string" && message !== "") last = message;
    });
    return socket;
  };
  return { factory, lastError: () => last };
}

/** One line saying why no answer came, naming the URL without its query. */
function describeFailure(error: unknown, command: CallCommand, socketError?: string): string {
  if (error instanceof ChannelDeadError) {
    const why = socketError ??
      (error.cause === undefined ? "connection failed" : oneLine(error.cause));
    return `Cannot connect to ${safeUrl(command.url)}: ${why}`;
  }
  if (error instanceof DOMException && error.name === "TimeoutError") {
    return `Cannot call "${command.method}": no answer within ${command.timeoutMs} ms (--timeout-ms)`;
  }
  return oneLine(error);
}

/**
 * Runs the CLI.
 *
 * @param args The command-line arguments.
 * @returns The exit code (see {@linkcode CALL_USAGE}).
 */
export async function main(args: readonly string[]): Promise<number> {
  let command: CallCommand | "help";
  let secret: SharedSecret;
  try {
    command = parseCallArgs(args);
    if (command === "help") {
      console.log(CALL_USAGE);
      return 0;
    }
    const value = Deno.env.get(SECRET_ENV);
    if (value === undefined) throw new UsageError(`Cannot call: ${SECRET_ENV} is not set`);
    secret = readSecret(value).secret;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`call: ${error.message} (see --help)`);
    return EXIT_USAGE;
  }
  return await runCall(command, secret);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
