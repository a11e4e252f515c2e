/**
 * The JSON lines that pass between the orchestrator and its child processes, and their
 * validation (children are separate programs, so what they print is checked, not trusted).
 *
 * Runtime-agnostic: also bundled into the Node-side stacks.
 *
 * @module
 */

import type { Plan } from "./plan.ts";

/** The environment variable that carries a {@linkcode ClientSpec} to a client child. */
export const SPEC_ENV = "MIST_BENCH_SPEC";

/** A server child's one ready line: where to connect and, for Mist, the shared secret. */
export interface Ready {
  /** A `ws://127.0.0.1:PORT/...` URL. */
  readonly url: string;
  /** The shared secret as 64 hex characters, for stacks that authenticate. */
  readonly secret?: string;
}

/** Printed instead of a result when a stack cannot run here (e.g. Mist not written yet). */
export interface Skipped {
  /** Why, in a few words. */
  readonly skipped: string;
}

/** What a client child is told, through {@linkcode SPEC_ENV} (argv would show the secret). */
export interface ClientSpec extends Ready {
  /** The counts to run. */
  readonly plan: Plan;
}

/** What one stack measured. */
export interface Measurement {
  /** Median round trip of a sequential small call, in microseconds. */
  readonly p50Us: number;
  /** 99th percentile round trip of a sequential small call, in microseconds. */
  readonly p99Us: number;
  /** Small calls completed per second with {@linkcode Plan.inFlight} outstanding. */
  readonly callsPerSecond: number;
  /** Bulk echo throughput: payload bytes sent plus payload bytes received, per second, / 1e6. */
  readonly megabytesPerSecond: number;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : undefined;
}

function finite(value: unknown, name: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`${name} is not a non-negative number`);
  }
  return value;
}

function parseObject(line: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new TypeError(`${what} is not JSON: ${line.slice(0, 200)}`);
  }
  const object = record(value);
  if (object === undefined) throw new TypeError(`${what} is not a JSON object`);
  return object;
}

function skippedOf(object: Record<string, unknown>): Skipped | undefined {
  return typeof object.skipped === "string" ? { skipped: object.skipped } : undefined;
}

/** Parses a server's ready line; throws a `TypeError` naming what is wrong. */
export function parseReady(line: string): Ready | Skipped {
  const object = parseObject(line, "ready line");
  const skipped = skippedOf(object);
  if (skipped) return skipped;
  const { url, secret } = object;
  if (typeof url !== "string" || !url.startsWith("ws://127.0.0.1:")) {
    throw new TypeError("ready line has no ws://127.0.0.1 url");
  }
  if (secret !== undefined && typeof secret !== "string") {
    throw new TypeError("ready line's secret is not a string");
  }
  return secret === undefined ? { url } : { url, secret };
}

/** Parses a client child's result line; throws a `TypeError` naming what is wrong. */
export function parseMeasurement(line: string): Measurement | Skipped {
  const object = parseObject(line, "result line");
  const skipped = skippedOf(object);
  if (skipped) return skipped;
  return {
    p50Us: finite(object.p50Us, "p50Us"),
    p99Us: finite(object.p99Us, "p99Us"),
    callsPerSecond: finite(object.callsPerSecond, "callsPerSecond"),
    megabytesPerSecond: finite(object.megabytesPerSecond, "megabytesPerSecond"),
  };
}

/** Parses the spec a client child was given; throws a `TypeError` naming what is wrong. */
export function parseSpec(text: string): ClientSpec {
  const object = parseObject(text, SPEC_ENV);
  const ready = parseReady(text);
  if ("skipped" in ready) throw new TypeError(`${SPEC_ENV} is a skip, not a spec`);
  const plan = record(object.plan);
  if (plan === undefined) throw new TypeError(`${SPEC_ENV} has no plan`);
  const count = (name: keyof Plan): number => finite(plan[name], `plan.${name}`);
  return {
    ...ready,
    plan: {
      sequentialWarmup: count("sequentialWarmup"),
      sequentialCalls: count("sequentialCalls"),
      inFlight: count("inFlight"),
      pipelinedWarmup: count("pipelinedWarmup"),
      pipelinedCalls: count("pipelinedCalls"),
      bulkBytes: count("bulkBytes"),
      bulkWarmup: count("bulkWarmup"),
      bulkCalls: count("bulkCalls"),
    },
  };
}

/** Whether a parsed line is a skip. */
export function isSkipped(value: object): value is Skipped {
  return "skipped" in value;
}
