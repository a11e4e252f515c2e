/**
 * The command line of bench/compare/main.ts.
 *
 * @module
 */

/** What the command line asks for. */
export interface Options {
  /** Small counts, for a smoke test. */
  readonly quick: boolean;
  /** Where to write the Markdown table, if anywhere. */
  readonly markdown?: string;
  /** Where to write the SVG chart, if anywhere. */
  readonly svg?: string;
  /** Interleaved rounds whose median is reported, if not the mode's default. */
  readonly rounds?: number;
  /** Only these stacks (the floor is always run), or all when undefined. */
  readonly stacks?: readonly string[];
  /** Print the usage and exit. */
  readonly help: boolean;
}

/** The usage text. */
export const USAGE = `Usage: main.ts [--quick] [--rounds N] [--markdown PATH] [--svg PATH]
                [--stacks NAME,NAME…]

Measures Mist and other RPC-over-WebSocket stacks (server and client in separate processes on
127.0.0.1) and prints a table of p50/p99 latency, calls/s with 64 in flight and MB/s for a 1 MiB
echo, each with its ratio to raw-deno, and Mist's ratios to raw-deno-strict (no JSON at all).

  --quick          small counts and one round (smoke test, under a minute)
  --rounds N       run every stack N times, interleaved, and report medians (default 3)
  --markdown PATH  also write the table as Markdown
  --svg PATH       also write a bar chart of the ratios as SVG
  --stacks LIST    only these stacks (raw-deno always runs: it is the floor; raw-deno-strict
                   runs with mist and mist-native-socket, which are also divided by it; mist
                   runs with mist-no-resume, paired with it round by round)
`;

/** Parses `args`; throws a `TypeError` with a message for the user on a bad command line. */
export function parseOptions(args: readonly string[]): Options {
  let quick = false;
  let help = false;
  const paths: { markdown?: string; svg?: string; stacks?: string; rounds?: string } = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const [flag, inline] = arg.startsWith("--") && arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, undefined];
    if (flag === "--quick") quick = true;
    else if (flag === "--help" || flag === "-h") help = true;
    else if (
      flag === "--markdown" || flag === "--svg" || flag === "--stacks" || flag === "--rounds"
    ) {
      const value = inline ?? args[++i];
      if (value === undefined || value === "") throw new TypeError(`${flag} needs a value`);
      paths[flag.slice(2) as "markdown" | "svg" | "stacks" | "rounds"] = value;
    } else throw new TypeError(`unknown argument ${arg}`);
  }
  const rounds = paths.rounds === undefined ? undefined : Number(paths.rounds);
  if (rounds !== undefined && !(Number.isInteger(rounds) && rounds >= 1 && rounds <= 9)) {
    throw new TypeError("--rounds needs a whole number from 1 to 9");
  }
  return {
    quick,
    rounds,
    help,
    markdown: paths.markdown,
    svg: paths.svg,
    stacks: paths.stacks?.split(",").map((name) => name.trim()).filter((name) => name !== ""),
  };
}
