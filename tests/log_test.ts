/**
 * Tests of `consoleLogger` (levels, line format, validation), of `logSafe` and `safeLogger`
 * (attacker-controlled text on one bounded line) and of `RateLimitedLog` (floods).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  consoleLogger,
  DEFAULT_LOG_BURST,
  DEFAULT_LOG_INTERVAL_MS,
  DEFAULT_LOG_LEVEL,
  DEFAULT_LOG_VALUE_CHARS,
  type LogLevel,
  logSafe,
  RateLimitedLog,
  safeLogger,
} from "../log.ts";
import { FakeClock } from "./_fake_clock.ts";

function logAll(level: LogLevel): string[] {
  const lines: string[] = [];
  const logger = consoleLogger(level, (line) => lines.push(line));
  logger.debug("d");
  logger.info("i");
  logger.warn("w");
  logger.error("e");
  return lines;
}

Deno.test("consoleLogger() writes lines at and above its level, prefixed with the level", () => {
  assert.deepEqual(logAll("debug"), ["DEBUG d", "INFO i", "WARN w", "ERROR e"]);
  assert.deepEqual(logAll("info"), ["INFO i", "WARN w", "ERROR e"]);
  assert.deepEqual(logAll("warn"), ["WARN w", "ERROR e"]);
  assert.deepEqual(logAll("error"), ["ERROR e"]);
  assert.deepEqual(logAll("silent"), []);
});

Deno.test("consoleLogger() defaults to warn", () => {
  assert.equal(DEFAULT_LOG_LEVEL, "warn");
  const lines: string[] = [];
  const logger = consoleLogger(undefined, (line) => lines.push(line));
  logger.info("no");
  logger.warn("yes");
  assert.deepEqual(lines, ["WARN yes"]);
});

Deno.test("consoleLogger() throws RangeError for an unknown level", () => {
  assert.throws(() => consoleLogger("verbose" as LogLevel), {
    name: "RangeError",
    message: 'Cannot create logger: unknown level "verbose"',
  });
  assert.throws(() => consoleLogger("toString" as LogLevel), RangeError);
});

// --- logSafe ------------------------------------------------------------------------------

Deno.test("logSafe() escapes line breaks, C0, DEL, C1, ESC, separators and bidi controls", () => {
  assert.equal(logSafe("a\nb\rc\td"), "a\\nb\\rc\\td");
  assert.equal(logSafe("\x00\x1b[31m\x7f\x85\x9f"), "\\x00\\x1b[31m\\x7f\\x85\\x9f");
  assert.equal(logSafe("\u2028\u2029\u202e\u2066\ufeff"), "\\u2028\\u2029\\u202e\\u2066\\ufeff");
  assert.equal(logSafe("plain ascii, é, 😀"), "plain ascii, é, 😀");
});

Deno.test("logSafe() keeps surrogate pairs whole and escapes lone surrogates", () => {
  assert.equal(logSafe("😀"), "😀");
  assert.equal(logSafe("a\ud800b\udc00"), "a\\ud800b\\udc00");
  assert.equal(logSafe("😀😀", 3), "😀…(+2 chars)", "a pair is not split at the bound");
});

Deno.test("logSafe() cuts at max with a marker counting what was left out", () => {
  assert.equal(logSafe("abcdef", 6), "abcdef");
  assert.equal(logSafe("abcdefg", 6), "abcdef…(+1 chars)");
  assert.equal(logSafe("a\nb", 2), "a…(+2 chars)", "an escape is not split at the bound");
  const huge = logSafe(`${"x".repeat(1 << 20)}\nWARN forged`);
  assert.equal(huge, `${"x".repeat(DEFAULT_LOG_VALUE_CHARS)}…(+${(1 << 20) + 12 - 200} chars)`);
});

Deno.test("logSafe() stringifies anything and is idempotent", () => {
  assert.equal(logSafe(42), "42");
  assert.equal(logSafe(null), "null");
  assert.equal(logSafe(Symbol("s")), "Symbol(s)");
  assert.equal(logSafe(Object.create(null)), "<unprintable>");
  const once = logSafe("a\nb\x1b");
  assert.equal(logSafe(once), once);
});

Deno.test("logSafe() throws RangeError for a max below 1", () => {
  assert.throws(() => logSafe("x", 0), RangeError);
  assert.throws(() => logSafe("x", 1.5), RangeError);
});

Deno.test("safeLogger() makes every level's message one bounded line", () => {
  const lines: string[] = [];
  const logger = safeLogger(consoleLogger("debug", (line) => lines.push(line)), 10);
  logger.debug("a\nb");
  logger.info("c\rd");
  logger.warn("e".repeat(11));
  logger.error("\x1b");
  assert.deepEqual(lines, [
    "DEBUG a\\nb",
    "INFO c\\rd",
    "WARN eeeeeeeeee…(+1 chars)",
    "ERROR \\x1b",
  ]);
  assert.throws(() => safeLogger(consoleLogger(), 0), RangeError);
});

// --- RateLimitedLog -----------------------------------------------------------------------

Deno.test("RateLimitedLog writes a burst per interval, then one summary when the interval ends", () => {
  const clock = new FakeClock();
  const lines: string[] = [];
  const log = new RateLimitedLog((line) => lines.push(line), { burst: 2, intervalMs: 1000, clock });
  for (const key of ["401", "403", "401", "426", "401"]) log.log(key, `line ${key}`);
  assert.deepEqual(lines, ["line 401", "line 403"]);
  assert.deepEqual(clock.pending, [{ due: 1000, delay: 1000 }], "one timer, for the summary");
  clock.advance(1000);
  assert.deepEqual(lines.slice(2), ["3 more messages in the last 1 s (401: 2, 426: 1)"]);
  assert.deepEqual(clock.pending, []);
  log.log("401", "next interval");
  assert.equal(lines.at(-1), "next interval");
  log.flush();
  assert.equal(lines.length, 4, "nothing held back, no summary");
});

Deno.test("RateLimitedLog keeps a flood of 10,000 to burst + 1 lines per interval", () => {
  const clock = new FakeClock();
  const lines: string[] = [];
  const log = new RateLimitedLog((line) => lines.push(line), {
    clock,
    summarize: (count, counts, seconds) => `Refused ${count} more in ${seconds} s (${counts})`,
  });
  for (let i = 0; i < 10_000; i++) log.log(String(400 + (i % 2)), `Refused ${i}`);
  log.flush();
  assert.equal(lines.length, DEFAULT_LOG_BURST + 1);
  assert.equal(lines.at(-1), "Refused 9990 more in 1 s (400: 4995, 401: 4995)");
  assert.deepEqual(clock.pending, [], "flush() clears the timer");
  assert.equal(DEFAULT_LOG_INTERVAL_MS, 10_000);
});

Deno.test("RateLimitedLog starts a new interval after intervalMs even without a summary timer", () => {
  const clock = new FakeClock();
  const lines: string[] = [];
  const log = new RateLimitedLog((line) => lines.push(line), { burst: 1, intervalMs: 1000, clock });
  log.log("a", "first");
  clock.advance(1000);
  log.log("a", "second interval");
  assert.deepEqual(lines, ["first", "second interval"]);
  assert.throws(() => new RateLimitedLog(() => {}, { intervalMs: 0 }), RangeError);
  assert.throws(() => new RateLimitedLog(() => {}, { burst: -1 }), RangeError);
});
