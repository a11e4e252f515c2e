/**
 * Percentiles of latency samples.
 *
 * Runtime-agnostic: also bundled into the Node-side stacks.
 *
 * @module
 */

/**
 * The `p`-th percentile (0 < p ≤ 100) of `samples` by the nearest-rank method: the smallest
 * sample with at least p% of the samples at or below it. Always one of the samples, so no
 * interpolation invents a latency that never happened.
 *
 * @example
 * ```ts
 * import { percentile } from "./stats.ts";
 * console.log(percentile([4, 1, 3, 2], 50)); // 2
 * ```
 */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) throw new RangeError("no samples");
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile ${p} is not in (0, 100]`);
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, rank) - 1];
}

/**
 * The median of `values`: the middle one, or the mean of the two middle ones.
 *
 * @example
 * ```ts
 * import { median } from "./stats.ts";
 * console.log(median([3, 1, 2]), median([4, 1, 3, 2])); // 2 2.5
 * ```
 */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("no values");
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
