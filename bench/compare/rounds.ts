/**
 * Repeats the comparison in interleaved rounds (every stack once, then every stack again…) and
 * keeps each figure's median, so that a burst of load from elsewhere on a small machine skews
 * one round of one stack rather than the whole row.
 *
 * @module
 */

import type { Measurement } from "./protocol.ts";
import type { Row } from "./report.ts";
import type { Outcome } from "./runner.ts";
import type { StackInfo } from "./stacks.ts";
import { median } from "./stats.ts";

/** What one attempt returns: an outcome, or "budget" when the run had no time left for it. */
export type Attempt = Outcome | "budget";

/** Each figure's median over `measurements` (taken independently per figure). */
export function combine(measurements: readonly Measurement[]): Measurement {
  const of = (pick: (m: Measurement) => number): number => median(measurements.map(pick));
  return {
    p50Us: of((m) => m.p50Us),
    p99Us: of((m) => m.p99Us),
    callsPerSecond: of((m) => m.callsPerSecond),
    megabytesPerSecond: of((m) => m.megabytesPerSecond),
  };
}

interface Tally {
  readonly stack: StackInfo;
  readonly measurements: Measurement[];
  /** Set when the stack stops being run: skipped, failed, timed out, or out of budget. */
  final?: Outcome;
}

function rowOf({ stack, measurements, final }: Tally): Row {
  // A stack that broke in any round is reported broken; running out of budget after at least
  // one round is not a fault, so the rounds it did get count.
  const outOfBudget = final?.kind === "skipped" && final.reason === BUDGET_SPENT;
  if (final !== undefined && !(outOfBudget && measurements.length > 0)) {
    return { stack, outcome: final, rounds: measurements.length, perRound: measurements };
  }
  return {
    stack,
    outcome: { kind: "measured", measurement: combine(measurements) },
    rounds: measurements.length,
    perRound: measurements,
  };
}

/** The reason given for a stack that the run's budget left out. */
export const BUDGET_SPENT = "the run's time budget is spent";

/**
 * Calls `attempt` for each stack, `rounds` times over, in interleaved order; a stack that does
 * not measure (or runs out of budget) is not attempted again. Returns one row per stack.
 */
export async function runRounds(
  stacks: readonly StackInfo[],
  rounds: number,
  attempt: (stack: StackInfo, round: number) => Promise<Attempt>,
): Promise<Row[]> {
  const tallies: Tally[] = stacks.map((stack) => ({ stack, measurements: [] }));
  for (let round = 1; round <= rounds; round++) {
    for (const tally of tallies) {
      if (tally.final !== undefined) continue;
      const outcome = await attempt(tally.stack, round);
      if (outcome === "budget") tally.final = { kind: "skipped", reason: BUDGET_SPENT };
      else if (outcome.kind === "measured") tally.measurements.push(outcome.measurement);
      else tally.final = outcome;
    }
  }
  return tallies.map(rowOf);
}
