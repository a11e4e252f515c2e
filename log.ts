/**
 * A small leveled logger: Mist's stand-in for `@std/log`. Runs in Deno, browsers and Node.
 * Mist never passes the secret, a header value or a URL query to it.
 *
 * @module
 */

/** Levels in increasing severity; `"silent"` logs nothing. */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

const RANK: Record<LogLevel, number> = {
  debug: 0,
  info: 1,
  warn: 2,
  error: 3,
  silent: 4,
};

/**
 * Where Mist reports what happened. Any object with these four methods fits (a `console`, a
 * structured logger).
 *
 * @example A logger that keeps lines in memory
 * ```ts
 * import type { Logger } from "./log.ts";
 * const lines: string[] = [];
 * const logger: Logger = {
 *   debug: (m) => lines.push(m),
 *   info: (m) => lines.push(m),
 *   warn: (m) => lines.push(m),
 *   error: (m) => lines.push(m),
 * };
 * logger.info("hello");
 * ```
 */
export interface Logger {
  /** Detail useful when debugging (binary frames ignored, frames dropped). */
  debug(message: string): void;
  /** Lifecycle (connections opened and closed). */
  info(message: string): void;
  /** Something a peer did wrong that Mist survived. */
  warn(message: string): void;
  /** Something Mist itself could not do. */
  error(message: string): void;
}

/** The level of {@linkcode consoleLogger} when none is given. */
export const DEFAULT_LOG_LEVEL: LogLevel = "warn";

/**
 * A logger writing `LEVEL message` lines through `write` (default: `console.error`, which is
 * stderr in Deno and Node), dropping lines below `level`.
 *
 * @param level The lowest level written.
 * @param write Where a line goes.
 * @returns The logger.
 *
 * @example Only warnings and errors
 * ```ts
 * import assert from "node:assert/strict";
 * import { consoleLogger } from "./log.ts";
 * const lines: string[] = [];
 * const logger = consoleLogger("warn", (line) => lines.push(line));
 * logger.info("ignored");
 * logger.warn("kept");
 * assert.deepEqual(lines, ["WARN kept"]);
 * ```
 */
export function consoleLogger(
  level: LogLevel = DEFAULT_LOG_LEVEL,
  write: (line: string) => void = (line) => console.error(line),
): Logger {
  if (!Object.hasOwn(RANK, level)) { // not `in`: "toString" is in every object
    throw new RangeError(`Cannot create logger: unknown level "${level}"`);
  }
  const at = (own: LogLevel) =>
    RANK[own] < RANK[level]
      ? () => {}
      : (message: string) => write(`${own.toUpperCase()} ${message}`);
  return {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
  };
}
