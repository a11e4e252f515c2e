/**
 * A small leveled logger: Mist's stand-in for `@std/log`. Runs in Deno, browsers and Node.
 * Mist never passes the secret, a header value or a URL query to it.
 *
 * @module
 */

import { checkInt } from "./_options.ts";
import { type Clock, realClock } from "./clock.ts";

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
  level: "debug" | "info" | "warn" | "error" | "silent" = DEFAULT_LOG_LEVEL,
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

// ---------------------------------------------------------------------------------------------
// Attacker-controlled text in log lines

/** Default `max` of {@linkcode logSafe}: characters of a value kept in a log line. */
export const DEFAULT_LOG_VALUE_CHARS = 200;
/** Default `maxChars` of {@linkcode safeLogger}: characters of a whole message. */
export const DEFAULT_LOG_MESSAGE_CHARS = 1000;

/**
 * Characters that must not reach a log line raw: C0 controls (with `\n`, `\r`, `\t` and ANSI
 * ESC), DEL, C1 controls, the Unicode line and paragraph separators, the bidirectional
 * formatting controls (which reorder what a terminal shows), the BOM, and UTF-16 surrogates
 * (a lone one is escaped; a valid pair is kept).
 */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff\ud800-\udfff]/;

/**
 * Makes any value fit on one bounded log line: control and formatting characters are escaped
 * (`\n`, `\r`, `\t`, otherwise `\xNN` below U+0100 and `\uNNNN` above), and text beyond `max`
 * characters is cut and replaced by a marker `…(+N chars)` giving how many source characters
 * (UTF-16 units) were left out. An escape sequence or a surrogate pair is never split. Only
 * the kept prefix is looked at, so a 1 MiB value costs no more than a short one.
 *
 * The result contains no character that {@linkcode logSafe} would escape, so applying it
 * twice changes nothing but, at most, the length bound. Backslashes are kept as they are:
 * an escape in the output may also have been typed by the sender, but it can never break a
 * line.
 *
 * @param value Anything; non-strings go through `String()` (`"<unprintable>"` if that throws).
 * @param max Most characters of escaped text kept before the marker (at least 1).
 * @returns At most `max` characters, plus the marker when something was cut.
 * @throws {RangeError} `max` is not an integer of at least 1.
 *
 * @example A forged line and a huge method name, made harmless
 * ```ts
 * import assert from "node:assert/strict";
 * import { logSafe } from "./log.ts";
 * assert.equal(logSafe("echo\nWARN forged"), "echo\\nWARN forged");
 * assert.equal(logSafe("\x1b[31mred"), "\\x1b[31mred");
 * assert.equal(logSafe("x".repeat(1 << 20), 5), "xxxxx…(+1048571 chars)");
 * ```
 */
export function logSafe(value: unknown, max: number = DEFAULT_LOG_VALUE_CHARS): string {
  if (!Number.isInteger(max) || max < 1) {
    throw new RangeError(`Cannot use max: expected an integer of at least 1, got ${String(max)}`);
  }
  let text: string;
  try {
    text = typeof value === "string" ? value : String(value);
  } catch {
    text = "<unprintable>";
  }
  // Fast path: short and clean. The test is on a bounded slice, never on the whole of a huge value.
  if (text.length <= max && !UNSAFE.test(text)) return text;
  let out = "";
  let i = 0;
  while (i < text.length) {
    const code = text.charCodeAt(i);
    let piece = text[i];
    let units = 1;
    if (code >= 0xd800 && code <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) {
      piece = text.slice(i, i + 2); // a valid pair stays whole
      units = 2;
    } else if (UNSAFE.test(piece)) {
      piece = escapeUnit(code);
    }
    if (out.length + piece.length > max) break;
    out += piece;
    i += units;
  }
  return i < text.length ? `${out}…(+${text.length - i} chars)` : out;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

function escapeUnit(code: number): string {
  switch (code) {
    case 0x0a:
      return "\\n";
    case 0x0d:
      return "\\r";
    case 0x09:
      return "\\t";
  }
  return code < 0x100
    ? `\\x${code.toString(16).padStart(2, "0")}`
    : `\\u${code.toString(16).padStart(4, "0")}`;
}

/**
 * Wraps a logger so that every message passes through {@linkcode logSafe}: one line, at most
 * `maxChars` characters plus the cut marker, whatever a peer put in it (a method name, an
 * error message). Servers use it on the logger they are given, so an attacker's text cannot
 * forge a line or fill the disk one huge line at a time.
 *
 * @param logger Where the made-safe messages go.
 * @param maxChars Most characters of a message (at least 1).
 * @returns The wrapping logger.
 * @throws {RangeError} `maxChars` is not an integer of at least 1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { consoleLogger, safeLogger } from "./log.ts";
 * const lines: string[] = [];
 * const logger = safeLogger(consoleLogger("warn", (line) => lines.push(line)), 40);
 * logger.warn('Dropping notification "x\nERROR forged"');
 * assert.deepEqual(lines, ['WARN Dropping notification "x\\nERROR forged"']);
 * ```
 */
export function safeLogger(
  logger: Logger,
  maxChars: number = DEFAULT_LOG_MESSAGE_CHARS,
): Logger {
  logSafe("", maxChars); // validates maxChars now, not on the first message
  return {
    debug: (message) => logger.debug(logSafe(message, maxChars)),
    info: (message) => logger.info(logSafe(message, maxChars)),
    warn: (message) => logger.warn(logSafe(message, maxChars)),
    error: (message) => logger.error(logSafe(message, maxChars)),
  };
}

// ---------------------------------------------------------------------------------------------
// Rate limit

/** Default {@linkcode RateLimitedLogOptions.burst}. */
export const DEFAULT_LOG_BURST = 10;
/** Default {@linkcode RateLimitedLogOptions.intervalMs}. */
export const DEFAULT_LOG_INTERVAL_MS = 10_000;

/** Options of {@linkcode RateLimitedLog}. */
export interface RateLimitedLogOptions {
  /** Messages written one by one in each interval; later ones are only counted. @default {10} */
  burst?: number;
  /** Length of an interval, in ms. @default {10000} */
  intervalMs?: number;
  /**
   * Turns what was held back in an interval into one line: how many, the counts by key
   * (`"401: 3, 403: 2"`, keys sorted) and the seconds they arrived in (rounded up).
   * @default `${count} more messages in the last ${seconds} s (${counts})`
   */
  summarize?: (count: number, counts: string, seconds: number) => string;
  /** Where the interval's timer comes from. @default the global timers */
  clock?: Clock;
}

/**
 * Writes the first `burst` messages of each interval and counts the rest by key; one summary
 * line per interval says how many were held back. A flood of N events costs at most
 * `burst + 1` lines per interval, whatever N is.
 *
 * An interval starts with the first message after the previous one ended; its summary is
 * written when it ends (a timer, armed only while something is held back) or on `flush()`.
 *
 * @example Refused connections, at most 2 lines per interval plus a summary
 * ```ts
 * import assert from "node:assert/strict";
 * import { RateLimitedLog } from "./log.ts";
 * const lines: string[] = [];
 * const log = new RateLimitedLog((line) => lines.push(line), {
 *   burst: 2,
 *   summarize: (count, counts, seconds) =>
 *     `Refused ${count} more connections in the last ${seconds} s (${counts})`,
 * });
 * for (const status of [401, 401, 403, 401, 403]) log.log(String(status), `Refused: ${status}`);
 * log.flush();
 * assert.deepEqual(lines, [
 *   "Refused: 401",
 *   "Refused: 401",
 *   "Refused 3 more connections in the last 1 s (401: 1, 403: 2)",
 * ]);
 * ```
 */
export class RateLimitedLog {
  readonly #write: (message: string) => void;
  readonly #burst: number;
  readonly #intervalMs: number;
  readonly #summarize: (count: number, counts: string, seconds: number) => string;
  readonly #clock: Clock;
  #start: number | undefined;
  #written = 0;
  #held = new Map<string, number>();
  #heldCount = 0;
  #timer: unknown;

  /**
   * Makes a log; nothing is written until the first message.
   *
   * @param write Where lines go, e.g. `(line) => logger.info(line)`.
   * @param options See {@linkcode RateLimitedLogOptions}.
   * @throws {RangeError} `burst` below 0 or `intervalMs` below 1.
   */
  constructor(write: (message: string) => void, options: RateLimitedLogOptions = {}) {
    this.#write = write;
    this.#burst = checkInt("burst", options.burst, DEFAULT_LOG_BURST, 0);
    this.#intervalMs = checkInt("intervalMs", options.intervalMs, DEFAULT_LOG_INTERVAL_MS, 1);
    this.#summarize = options.summarize ??
      ((count, counts, seconds) => `${count} more messages in the last ${seconds} s (${counts})`);
    this.#clock = options.clock ?? realClock;
  }

  /**
   * Writes `message`, or counts it under `key` when this interval's burst is spent.
   *
   * @param key What the summary counts it under (e.g. an HTTP status).
   * @param message The line.
   */
  log(key: string, message: string): void {
    const now = this.#clock.now();
    if (this.#start === undefined || now - this.#start >= this.#intervalMs) {
      this.flush();
      this.#start = now;
    }
    if (this.#written < this.#burst) {
      this.#written++;
      this.#write(message);
      return;
    }
    this.#held.set(key, (this.#held.get(key) ?? 0) + 1);
    this.#heldCount++;
    this.#timer ??= this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.flush();
    }, this.#start + this.#intervalMs - now);
  }

  /** Writes the summary of what was held back, if anything, and ends the interval. */
  flush(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#heldCount > 0 && this.#start !== undefined) {
      const counts = [...this.#held].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
        .map(([key, count]) => `${key}: ${count}`).join(", ");
      const seconds = Math.max(1, Math.ceil((this.#clock.now() - this.#start) / 1000));
      this.#write(this.#summarize(this.#heldCount, counts, seconds));
    }
    this.#start = undefined;
    this.#written = 0;
    this.#held.clear();
    this.#heldCount = 0;
  }
}
