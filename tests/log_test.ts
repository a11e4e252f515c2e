/**
 * Tests of `consoleLogger`: levels, line format, validation.
 *
 * @module
 */
import assert from "node:assert/strict";
import { consoleLogger, DEFAULT_LOG_LEVEL, type LogLevel } from "../log.ts";

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
