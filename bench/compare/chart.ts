/**
 * A hand-written SVG bar chart of each stack's ratio to the floor: one panel per workload, one
 * bar per stack, a dashed line at 1×. No dependencies.
 *
 * @module
 */

import { ratios, type Report } from "./report.ts";

/** The workloads charted, with the index of their column in {@linkcode ratios}. */
const PANELS = [
  { title: "Sequential p50 latency", hint: "× floor, lower is better", column: 0 },
  { title: "64 in flight, calls/s", hint: "× floor, higher is better", column: 2 },
  { title: "1 MiB echo, MB/s", hint: "× floor, higher is better", column: 3 },
] as const;

/** Bar colours, by row; also the series colours of bench/payload_sweep.ts. */
export const COLORS: readonly string[] = [
  "#6b7280",
  "#374151",
  "#9ca3af",
  "#2563eb",
  "#f59e0b",
  "#fcd34d",
  "#10b981",
  "#ef4444",
  "#8b5cf6",
  "#ec4899",
  "#14b8a6",
];

/** Bars above this ratio are cut (and marked) so that one outlier does not flatten the rest. */
const CAP = 5;

const PANEL_WIDTH = 320;
const PLOT_HEIGHT = 240;
const TOP = 70;
const LEFT = 40;

/** Escapes `text` for SVG text content and attribute values. */
export function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

/** One SVG `<text>` element at (x, y), its content escaped; `attributes` are written as is. */
export function text(x: number, y: number, content: string, attributes = ""): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attributes}>${escapeXml(content)}</text>`;
}

function panel(report: Report, index: number): string {
  const { title, hint, column } = PANELS[index];
  const values = report.rows.map((row) => ratios(report, row)[column]);
  const top = Math.min(CAP, Math.max(1, ...values.map((v) => v ?? 0))) * 1.15; // Label room.
  const x0 = LEFT + index * PANEL_WIDTH;
  const plotWidth = PANEL_WIDTH - 40;
  const slot = plotWidth / Math.max(1, values.length);
  const y = (value: number): number => TOP + PLOT_HEIGHT - (value / top) * PLOT_HEIGHT;
  const parts = [
    text(x0 + plotWidth / 2, 28, title, 'text-anchor="middle" font-weight="bold"'),
    text(x0 + plotWidth / 2, 46, hint, 'text-anchor="middle" fill="#555"'),
    `<line x1="${x0}" y1="${TOP + PLOT_HEIGHT}" x2="${x0 + plotWidth}" y2="${
      TOP + PLOT_HEIGHT
    }" stroke="#333"/>`,
  ];
  values.forEach((value, i) => {
    const x = x0 + i * slot + slot * 0.15;
    const width = slot * 0.7;
    if (value === undefined) {
      parts.push(text(x + width / 2, TOP + PLOT_HEIGHT - 6, "n/a", 'text-anchor="middle"'));
      return;
    }
    const shown = Math.min(value, CAP);
    const color = COLORS[i % COLORS.length];
    const tip = escapeXml(`${report.rows[i].stack.name}: ${value.toFixed(2)}×`);
    parts.push(
      `<rect x="${x.toFixed(1)}" y="${y(shown).toFixed(1)}" width="${width.toFixed(1)}" ` +
        `height="${(TOP + PLOT_HEIGHT - y(shown)).toFixed(1)}" fill="${color}">` +
        `<title>${tip}</title></rect>`,
      text(x + width / 2, y(shown) - 4, `${value.toFixed(2)}×`, 'text-anchor="middle"'),
    );
    if (value > CAP) {
      // A white zigzag across the bar: it is cut, and its label has the real ratio.
      const cut = y(shown) + 14;
      const points = [[0, 0], [1 / 3, -5], [2 / 3, 5], [1, 0]]
        .map(([dx, dy]) => `${(x + dx * width).toFixed(1)},${(cut + dy).toFixed(1)}`);
      parts.push(
        `<polyline points="${points.join(" ")}" fill="none" stroke="white" stroke-width="3"/>`,
      );
    }
  });
  parts.push(
    `<line x1="${x0}" y1="${y(1).toFixed(1)}" x2="${x0 + plotWidth}" y2="${
      y(1).toFixed(1)
    }" stroke="#111" stroke-dasharray="4 3"/>`,
  );
  const strictRow = report.rows.find((row) => row.stack.name === report.strictFloor);
  const strict = strictRow === undefined ? undefined : ratios(report, strictRow)[column];
  if (strict !== undefined && strict <= CAP) {
    // A dotted line at the strict floor, so a bar can be read against either floor.
    parts.push(
      `<line x1="${x0}" y1="${y(strict).toFixed(1)}" x2="${x0 + plotWidth}" y2="${
        y(strict).toFixed(1)
      }" stroke="#374151" stroke-dasharray="1 3"/>`,
      text(x0 + plotWidth + 2, y(strict) + 4, "strict", 'fill="#374151" font-size="10"'),
    );
  }
  return parts.join("\n");
}

function legend(report: Report, top: number): string {
  return report.rows.map((row, i) => {
    const x = LEFT + (i % 4) * 230;
    const y = top + Math.floor(i / 4) * 22;
    return `<rect x="${x}" y="${y - 11}" width="14" height="14" fill="${
      COLORS[i % COLORS.length]
    }"/>\n${text(x + 20, y, `${row.stack.name} (${row.stack.runtime})`)}`;
  }).join("\n");
}

/** The chart as a standalone SVG document. */
export function renderSvg(report: Report): string {
  const width = LEFT + PANELS.length * PANEL_WIDTH;
  const legendTop = TOP + PLOT_HEIGHT + 36;
  const height = legendTop + Math.ceil(report.rows.length / 4) * 22 + 30;
  const caption = `Ratio to ${report.floor} (dashed line = 1×, dotted = ${report.strictFloor}; ` +
    `bars above ${CAP}× are cut), ` +
    `${report.mode} run, ` +
    `${report.machine.date}, Deno ${report.machine.deno}, Node ${report.machine.node ?? "n/a"}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...PANELS.map((_, i) => panel(report, i)),
    legend(report, legendTop),
    text(LEFT, height - 10, caption, 'fill="#555" font-size="11"'),
    `</svg>`,
    "",
  ].join("\n");
}
