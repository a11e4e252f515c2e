/**
 * The comparison as a table: plain text for the terminal and Markdown for a file, both from one
 * matrix of cells, with every figure's ratio to the floor from the same run.
 *
 * @module
 */

import type { Machine } from "./machine.ts";
import type { Plan } from "./plan.ts";
import type { Measurement } from "./protocol.ts";
import type { Outcome } from "./runner.ts";
import type { StackInfo } from "./stacks.ts";
import { median } from "./stats.ts";

/** One stack's row: what it is and what became of it. */
export interface Row {
  /** The stack. */
  readonly stack: StackInfo;
  /** Its result: for a measured stack, each figure's median over its rounds. */
  readonly outcome: Outcome;
  /** How many rounds it was measured in. */
  readonly rounds: number;
  /** Its figures in each of those rounds, in order. */
  readonly perRound?: readonly Measurement[];
}

/** Everything a report shows. */
export interface Report {
  /** The machine and runtimes. */
  readonly machine: Machine;
  /** The counts that were run. */
  readonly plan: Plan;
  /** The interleaved rounds asked for; figures are medians over them. */
  readonly rounds: number;
  /** "full" or "quick". */
  readonly mode: string;
  /** The floor's name. */
  readonly floor: string;
  /**
   * The strict floor's name: the second base of the stacks marked `versusStrict`, shown in a
   * table of its own so that every other ratio stays a ratio to {@linkcode floor}.
   */
  readonly strictFloor: string;
  /** One row per stack, the floor's among them. */
  readonly rows: readonly Row[];
  /** Wall-clock seconds of the whole run. */
  readonly seconds: number;
}

/** A column: its header, how to read the figure, and which way is better. */
interface Column {
  readonly header: string;
  readonly value: (m: Measurement) => number;
  readonly format: (value: number) => string;
}

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

const COLUMNS: readonly Column[] = [
  { header: "p50 (sequential)", value: (m) => m.p50Us, format: (v) => `${v.toFixed(1)} µs` },
  { header: "p99 (sequential)", value: (m) => m.p99Us, format: (v) => `${v.toFixed(1)} µs` },
  {
    header: "calls/s (64 in flight)",
    value: (m) => m.callsPerSecond,
    format: (v) => integer.format(v),
  },
  {
    header: "MB/s (1 MiB echo)",
    value: (m) => m.megabytesPerSecond,
    format: (v) => v.toFixed(1),
  },
];

/**
 * A stack's measurement ÷ a floor's (by default the report's floor), per column; undefined where
 * either is missing.
 */
export function ratios(report: Report, row: Row, base = report.floor): (number | undefined)[] {
  const floor = report.rows.find((r) => r.stack.name === base)?.outcome;
  return COLUMNS.map((column) => {
    if (row.outcome.kind !== "measured" || floor?.kind !== "measured") return undefined;
    const base = column.value(floor.measurement);
    return base > 0 ? column.value(row.outcome.measurement) / base : undefined;
  });
}

function cells(report: Report): string[][] {
  const header = ["stack", ...COLUMNS.map((c) => c.header), "runtime"];
  const body = report.rows.map((row) => {
    const { outcome, stack } = row;
    if (outcome.kind !== "measured") {
      // The reason is in the notes: it would make the column as wide as a sentence.
      return [stack.name, `${outcome.kind} (see notes)`, "", "", "", stack.runtime];
    }
    const rowRatios = ratios(report, row);
    const figures = COLUMNS.map((column, i) => {
      const ratio = rowRatios[i];
      const text = column.format(column.value(outcome.measurement));
      return ratio === undefined ? text : `${text} (${ratio.toFixed(2)}×)`;
    });
    return [stack.name, ...figures, stack.runtime];
  });
  return [header, ...body];
}

/** The second table: each `versusStrict` stack's ratios to the strict floor; empty if none. */
function strictCells(report: Report): string[][] {
  const floor = report.rows.find((row) => row.stack.name === report.strictFloor);
  const rows = report.rows.filter((row) =>
    row.stack.versusStrict && row.outcome.kind === "measured"
  );
  if (floor?.outcome.kind !== "measured" || rows.length === 0) return [];
  const header = [`÷ ${report.strictFloor}`, ...COLUMNS.map((c) => c.header), "runtime"];
  const body = rows.map((row) => [
    row.stack.name,
    ...ratios(report, row, report.strictFloor).map((r) =>
      r === undefined ? "n/a" : `${r.toFixed(2)}×`
    ),
    row.stack.runtime,
  ]);
  return [header, ...body];
}

/**
 * For each stack with `pairedWith`: that stack ÷ this one, calls/s with 64 in flight, one ratio
 * per round (the two ran back to back) and their median. Empty if none.
 */
function pairedLines(report: Report): string[] {
  const lines: string[] = [];
  for (const row of report.rows) {
    const name = row.stack.pairedWith;
    const other = report.rows.find((candidate) => candidate.stack.name === name);
    if (name === undefined || row.outcome.kind !== "measured") continue;
    if (other?.outcome.kind !== "measured") continue;
    const mine = row.perRound ?? [], theirs = other.perRound ?? [];
    const ratios = theirs.slice(0, mine.length).map((m, i) =>
      m.callsPerSecond / mine[i].callsPerSecond
    );
    if (ratios.length === 0) continue;
    lines.push(
      `${name} ÷ ${row.stack.name}, calls/s with 64 in flight, paired by round (run back to ` +
        `back): median ${median(ratios).toFixed(3)} (${
          ratios.map((r) => r.toFixed(3)).join(", ")
        })`,
      "",
    );
  }
  return lines;
}

function notes(report: Report): string[] {
  const { machine, plan } = report;
  const lines = [
    `Date: ${machine.date}; mode: ${report.mode}; whole run: ${report.seconds.toFixed(1)} s`,
    `Deno ${machine.deno}; Node ${machine.node ?? "(not found)"}; CPU: ${machine.cpu} ` +
    `(${machine.cores} logical cores)`,
    `Server and client are separate processes on 127.0.0.1, one stack at a time; each stack ` +
    `calls an "echo" method (result = params) in its own wire format.`,
    report.rounds === 1
      ? "Each figure is from one round."
      : `Each figure is the median over ${report.rounds} interleaved rounds (every stack once, ` +
        `then again).`,
    ...report.rows.filter((row) => row.outcome.kind === "measured" && row.rounds < report.rounds)
      .map((row) => `${row.stack.name}: ${row.rounds} round(s) only (the run's budget ran out)`),
    `Sequential: ${plan.sequentialCalls} calls of ["hello", 42] after ${plan.sequentialWarmup} ` +
    `warm-up; p50/p99 by nearest rank.`,
    `In flight: ${plan.pipelinedCalls} calls with ${plan.inFlight} outstanding, after ` +
    `${plan.pipelinedWarmup} warm-up.`,
    `1 MiB echo: ${plan.bulkCalls} sequential calls with one ${plan.bulkBytes}-character ASCII ` +
    `string after ${plan.bulkWarmup} warm-up; MB/s = 2 × payload bytes × calls / seconds / 10⁶ ` +
    `(payload out and back; envelopes not counted).`,
    `(N.NN×) = this stack ÷ ${report.floor} from the same run: above 1 is slower for latency, ` +
    `below 1 is slower for throughput.`,
    `${report.strictFloor} echoes like ${report.floor} with no JSON on either side; the ` +
    `"÷ ${report.strictFloor}" table divides by it instead (same run, same meaning of above/below 1).`,
    `The Node stacks run from TypeScript bundled by deno bundle, npm packages left external.`,
    `Runtimes (server and client):`,
    ...report.rows.map((row) => `  ${row.stack.name}: ${row.stack.runtime} — ${row.stack.note}`),
    ...report.rows.flatMap(({ stack, outcome }) =>
      outcome.kind === "measured" ? [] : [`${stack.name} ${outcome.kind}: ${outcome.reason}`]
    ),
  ];
  return lines;
}

function alignedText(matrix: string[][]): string[] {
  if (matrix.length === 0) return [];
  const widths = matrix[0].map((_, column) => Math.max(...matrix.map((row) => row[column].length)));
  const line = (row: string[]): string =>
    row.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join("  ")
      .trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(matrix[0]), rule, ...matrix.slice(1).map(line), ""];
}

/** The tables as aligned plain text, followed by the notes. */
export function renderText(report: Report): string {
  return [
    ...alignedText(cells(report)),
    ...alignedText(strictCells(report)),
    ...pairedLines(report),
    ...notes(report),
    "",
  ].join("\n");
}

function escapeMarkdown(text: string): string {
  return text.replaceAll("|", "\\|");
}

function markdownTable(matrix: string[][]): string[] {
  if (matrix.length === 0) return [];
  const [header, ...body] = matrix;
  const row = (cells: string[]): string => `| ${cells.map(escapeMarkdown).join(" | ")} |`;
  const align = `| ${header.map((_, i) => i === 0 ? ":--" : "--:").join(" | ")} |`;
  return [row(header), align, ...body.map(row), ""];
}

/** The tables as Markdown, followed by the notes as a list. */
export function renderMarkdown(report: Report): string {
  return [
    `# Mist vs other RPC stacks over WebSocket (${report.mode})`,
    "",
    ...markdownTable(cells(report)),
    ...markdownTable(strictCells(report)),
    ...pairedLines(report),
    ...notes(report).map((note) => note.startsWith("  ") ? `  - ${note.trim()}` : `- ${note}`),
    "",
  ].join("\n");
}
