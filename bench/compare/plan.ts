/**
 * How much work each of the three workloads does, in full and in quick (smoke test) mode.
 *
 * Runtime-agnostic: also bundled into the Node-side stacks.
 *
 * @module
 */

/** The counts of one run; the same plan is handed to every stack's client. */
export interface Plan {
  /** Sequential small calls made before measuring, to warm the JIT and the connection. */
  readonly sequentialWarmup: number;
  /** Sequential small calls measured, one latency sample each. */
  readonly sequentialCalls: number;
  /** Calls kept outstanding at once in the pipelined workload. */
  readonly inFlight: number;
  /** Pipelined calls made before measuring. */
  readonly pipelinedWarmup: number;
  /** Pipelined calls measured. */
  readonly pipelinedCalls: number;
  /** Payload of the bulk workload, in bytes (ASCII characters). */
  readonly bulkBytes: number;
  /** Bulk calls made before measuring. */
  readonly bulkWarmup: number;
  /** Bulk calls measured. */
  readonly bulkCalls: number;
}

/** The full run: a few seconds per stack for a fast stack, well under a minute for a slow one. */
export const FULL_PLAN: Plan = {
  sequentialWarmup: 200,
  sequentialCalls: 2_000,
  inFlight: 64,
  pipelinedWarmup: 5_000,
  // 20,000 calls took ~0.35 s, shorter than the bursts of load on a shared 2-core machine: one
  // stack's figure swung by ±25 % from round to round. 100,000 take ~2 s for the fast stacks.
  pipelinedCalls: 100_000,
  bulkBytes: 1024 * 1024,
  bulkWarmup: 3,
  bulkCalls: 30,
};

/** The smoke test: proves every stack works end to end; its numbers are noisy. */
export const QUICK_PLAN: Plan = {
  sequentialWarmup: 20,
  sequentialCalls: 200,
  inFlight: 64,
  pipelinedWarmup: 200,
  pipelinedCalls: 2_000,
  bulkBytes: 1024 * 1024,
  bulkWarmup: 1,
  bulkCalls: 3,
};

/** The small call's params, as the brief fixes them. */
export const SMALL_PARAMS: readonly unknown[] = ["hello", 42];
