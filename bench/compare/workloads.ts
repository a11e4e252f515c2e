/**
 * The three workloads, written once against {@linkcode EchoClient} so that every stack is driven
 * by the same code.
 *
 * Runtime-agnostic (only `performance.now()`): also bundled into the Node-side stacks.
 *
 * @module
 */

import { type Plan, SMALL_PARAMS } from "./plan.ts";
import type { Measurement } from "./protocol.ts";
import { percentile } from "./stats.ts";

/** One stack's client, reduced to what the workloads need. */
export interface EchoClient {
  /** Calls the server's `echo` method with `params` in the stack's native way; resolves to the result. */
  echo(params: readonly unknown[]): Promise<unknown>;
  /** Closes the connection. */
  close(): Promise<void>;
}

function checkSmall(result: unknown): void {
  // Cheap enough to do on every call, and it keeps a stack from "winning" by returning nothing.
  if (!Array.isArray(result) || result.length !== 2 || result[0] !== "hello" || result[1] !== 42) {
    throw new Error(`echo returned ${JSON.stringify(result)?.slice(0, 100)}`);
  }
}

function checkBulk(result: unknown, bytes: number): void {
  if (
    !Array.isArray(result) || result.length !== 1 || typeof result[0] !== "string" ||
    result[0].length !== bytes
  ) {
    throw new Error("bulk echo returned something other than its params");
  }
}

/** Sequential small calls; returns the measured round trips in microseconds. */
export async function sequential(
  client: EchoClient,
  warmup: number,
  calls: number,
): Promise<number[]> {
  for (let i = 0; i < warmup; i++) checkSmall(await client.echo(SMALL_PARAMS));
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) {
    const start = performance.now();
    const result = await client.echo(SMALL_PARAMS);
    samples.push((performance.now() - start) * 1000);
    checkSmall(result);
  }
  return samples;
}

async function pipelineOnce(client: EchoClient, depth: number, calls: number): Promise<void> {
  let started = 0;
  // Each lane starts its next call as soon as its previous one resolves, so `depth` calls are
  // outstanding until fewer than `depth` remain.
  const lane = async (): Promise<void> => {
    while (started < calls) {
      started++;
      checkSmall(await client.echo(SMALL_PARAMS));
    }
  };
  await Promise.all(Array.from({ length: Math.min(depth, calls) }, lane));
}

/** Small calls with `depth` outstanding; returns calls per second. */
export async function pipelined(
  client: EchoClient,
  depth: number,
  warmup: number,
  calls: number,
): Promise<number> {
  await pipelineOnce(client, depth, warmup);
  const start = performance.now();
  await pipelineOnce(client, depth, calls);
  return calls / ((performance.now() - start) / 1000);
}

/**
 * Sequential echoes of one ASCII string of `bytes` characters; returns MB/s counted as payload
 * bytes sent plus payload bytes received (2 × bytes per call) per second, in units of 10⁶ bytes.
 * Envelopes (ids, method names, frame headers) are not counted.
 */
export async function bulk(
  client: EchoClient,
  bytes: number,
  warmup: number,
  calls: number,
): Promise<number> {
  const params = ["x".repeat(bytes)];
  for (let i = 0; i < warmup; i++) checkBulk(await client.echo(params), bytes);
  const start = performance.now();
  for (let i = 0; i < calls; i++) checkBulk(await client.echo(params), bytes);
  const seconds = (performance.now() - start) / 1000;
  return (2 * bytes * calls) / seconds / 1e6;
}

/** Runs the three workloads in order on one connection. */
export async function measure(client: EchoClient, plan: Plan): Promise<Measurement> {
  const samples = await sequential(client, plan.sequentialWarmup, plan.sequentialCalls);
  const callsPerSecond = await pipelined(
    client,
    plan.inFlight,
    plan.pipelinedWarmup,
    plan.pipelinedCalls,
  );
  const megabytesPerSecond = await bulk(client, plan.bulkBytes, plan.bulkWarmup, plan.bulkCalls);
  return {
    p50Us: percentile(samples, 50),
    p99Us: percentile(samples, 99),
    callsPerSecond,
    megabytesPerSecond,
  };
}
