/**
 * Keeps the code in README.md from drifting: every fenced block of TypeScript, JavaScript or
 * HTML either runs under `deno test --doc README.md` (a `ts`/`js` block not marked `ignore`)
 * or is a verbatim copy of an example file, or of a marked region of one, named by an HTML
 * comment on the line just before its fence: `<!-- from examples/deno_client.ts -->` (the
 * whole file, without its final newline) or `<!-- from examples/typed.ts#schema -->` (the region
 * `schema` of the file). Such a block is usually marked `ignore`, since the test that runs the
 * example runs its code.
 *
 * A region is the lines strictly between a line containing `#region <name>` and one containing
 * `#endregion <name>` (in whatever comment the file's language has), without other region
 * marker lines and without their common indentation. Other blocks (`sh`, `text`, `json`…) are
 * not checked.
 *
 * Usage: `deno run --allow-read tools/check_readme.ts [README.md …]`; prints each problem and
 * exits 1 when there is one.
 *
 * @module
 */

/** Languages whose blocks must be runnable or sourced. */
const CHECKED = new Set([
  "ts",
  "tsx",
  "typescript",
  "mts",
  "cts",
  "js",
  "jsx",
  "javascript",
  "mjs",
  "cjs",
  "html",
  "htm",
]);
/** Languages `deno test --doc` runs. */
const RUNNABLE = new Set([...CHECKED].filter((lang) => !lang.startsWith("htm")));
const FENCE = /^( *)(`{3,}|~{3,})\s*([^`\s]*)(.*)$/;
const SOURCE = /^\s*<!--\s*from\s+([^\s#]+)(?:#([\w.-]+))?\s*-->\s*$/;

/** A fenced code block of a Markdown file. */
export interface CodeBlock {
  /** The fence's line, 1-based. */
  readonly line: number;
  /** The info string's first word (`ts`, `sh`…), lower-cased; `""` without one. */
  readonly lang: string;
  /** The info string's other words (`ignore`…). */
  readonly attributes: readonly string[];
  /** The content, without the fence's indentation, lines joined with `\n`, no final newline. */
  readonly code: string;
  /** The `<!-- from file#region -->` comment before the fence, if any. */
  readonly source?: { readonly file: string; readonly region?: string };
}

/**
 * The fenced code blocks of a Markdown text, with their source comments.
 *
 * @param markdown The text.
 * @returns The blocks, in order.
 * @throws {Error} A fence that is never closed, or a source comment not followed by a fence.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { codeBlocks } from "./check_readme.ts";
 * const [block] = codeBlocks("<!-- from a.ts#one -->\n~~~ts ignore\nx;\n~~~\n");
 * assert.deepEqual(block.source, { file: "a.ts", region: "one" });
 * assert.deepEqual(block.attributes, ["ignore"]);
 * assert.equal(block.code, "x;");
 * ```
 */
export function codeBlocks(markdown: string): CodeBlock[] {
  const lines = markdown.split("\n");
  const blocks: CodeBlock[] = [];
  let pendingSource: { line: number; file: string; region?: string } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const open = FENCE.exec(line);
    if (!open) {
      const source = SOURCE.exec(line);
      if (source) {
        if (pendingSource) throw danglingSource(pendingSource.line);
        pendingSource = { line: i + 1, file: source[1], region: source[2] };
      } else if (line.trim() !== "" && pendingSource) {
        throw danglingSource(pendingSource.line);
      }
      continue;
    }
    const [, indent, fence, lang, rest] = open;
    const close = new RegExp(`^ *${fence[0] === "`" ? "`" : "~"}{${fence.length},}\\s*$`);
    const content: string[] = [];
    let end = i + 1;
    while (end < lines.length && !close.test(lines[end])) {
      const text = lines[end];
      const strip = Math.min(indent.length, text.length - text.trimStart().length);
      content.push(text.slice(strip));
      end++;
    }
    if (end >= lines.length) throw new Error(`line ${i + 1}: the code block is never closed`);
    const source = pendingSource
      ? pendingSource.region === undefined
        ? { file: pendingSource.file }
        : { file: pendingSource.file, region: pendingSource.region }
      : undefined;
    blocks.push({
      line: i + 1,
      lang: lang.toLowerCase(),
      attributes: rest.trim().split(/[\s,]+/).filter((word) => word !== ""),
      code: content.join("\n"),
      ...(source ? { source } : {}),
    });
    pendingSource = undefined;
    i = end;
  }
  if (pendingSource) throw danglingSource(pendingSource.line);
  return blocks;
}

function danglingSource(line: number): Error {
  return new Error(`line ${line}: a "<!-- from … -->" comment must be right before a code fence`);
}

/**
 * The region `name` of a file's text: the lines between `#region name` and `#endregion name`,
 * without nested region markers and without their common indentation; the whole text (without
 * its final newline) when `name` is `undefined`.
 *
 * @param text The file's text.
 * @param name The region, or `undefined`.
 * @returns The region's text.
 * @throws {Error} The region is missing, unterminated or present twice.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { region } from "./check_readme.ts";
 * const text = "a\n  // #region r\n  b\n    c\n  // #endregion r\nd\n";
 * assert.equal(region(text, "r"), "b\n  c");
 * assert.equal(region(text, undefined), text.trimEnd());
 * ```
 */
export function region(text: string, name: string | undefined): string {
  if (name === undefined) return text.replace(/\n+$/, "");
  const lines = text.split("\n");
  const marker = (kind: string) => new RegExp(`#${kind}\\s+${escape(name)}(?![\\w.-])`);
  const starts = lines.flatMap((line, i) => marker("region").test(line) ? [i] : []);
  const ends = lines.flatMap((line, i) => marker("endregion").test(line) ? [i] : []);
  if (starts.length !== 1 || ends.length !== 1 || ends[0] < starts[0]) {
    throw new Error(
      `expected one "#region ${name}" line, then one "#endregion ${name}" line; found ` +
        `${starts.length} and ${ends.length}`,
    );
  }
  const body = lines.slice(starts[0] + 1, ends[0]).filter((line) => !/#(end)?region\b/.test(line));
  const indents = body.filter((line) => line.trim() !== "").map((line) =>
    line.length - line.trimStart().length
  );
  const common = indents.length === 0 ? 0 : Math.min(...indents);
  return body.map((line) => line.slice(common)).join("\n");
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Checks one Markdown file's blocks: each checked block runnable or equal to its source.
 *
 * @param markdownPath The Markdown file; sources are relative to the directory it is in.
 * @returns One line per problem (`README.md:12: …`); empty when all is well.
 *
 * @example
 * ```ts ignore
 * const problems = await checkMarkdown("README.md");
 * if (problems.length > 0) throw new Error(problems.join("\n"));
 * ```
 */
export async function checkMarkdown(markdownPath: string | URL): Promise<string[]> {
  const url = markdownPath instanceof URL
    ? markdownPath
    : new URL(markdownPath, `file://${Deno.cwd()}/`);
  const name = decodeURIComponent(url.pathname.slice(url.pathname.lastIndexOf("/") + 1));
  let blocks: CodeBlock[];
  try {
    blocks = codeBlocks(await Deno.readTextFile(url));
  } catch (error) {
    return [`${name}: ${(error as Error).message}`];
  }
  const problems: string[] = [];
  for (const block of blocks) {
    const at = `${name}:${block.line}`;
    if (block.source) {
      const { file, region: part } = block.source;
      let expected: string;
      try {
        expected = region(await Deno.readTextFile(new URL(file, url)), part);
      } catch (error) {
        problems.push(`${at}: cannot read ${file}${part ? `#${part}` : ""}: ${messageOf(error)}`);
        continue;
      }
      const difference = firstDifference(expected, block.code);
      if (difference) {
        problems.push(
          `${at}: the block differs from ${file}${part ? `#${part}` : ""}: ${difference}`,
        );
      }
    } else if (CHECKED.has(block.lang)) {
      if (!RUNNABLE.has(block.lang)) {
        problems.push(
          `${at}: a ${block.lang} block must be copied from a file (<!-- from path -->)`,
        );
      } else if (block.attributes.includes("ignore")) {
        problems.push(
          `${at}: an "ignore" ${block.lang} block must be runnable (drop "ignore") or copied ` +
            `from a file (<!-- from path -->)`,
        );
      }
    }
  }
  return problems;
}

/** Where two texts first differ, line by line; `undefined` when they are equal. */
function firstDifference(expected: string, actual: string): string | undefined {
  if (expected === actual) return undefined;
  const want = expected.split("\n");
  const got = actual.split("\n");
  for (let i = 0; i < Math.max(want.length, got.length); i++) {
    if (want[i] !== got[i]) {
      return `line ${i + 1} of the source is ${JSON.stringify(want[i] ?? "<end>")}, ` +
        `the block has ${JSON.stringify(got[i] ?? "<end>")}`;
    }
  }
  return "they differ";
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

if (import.meta.main) {
  const files = Deno.args.length > 0 ? Deno.args : ["README.md"];
  const problems = (await Promise.all(files.map((file) => checkMarkdown(file)))).flat();
  for (const problem of problems) console.error(problem);
  if (problems.length === 0) console.log(`${files.join(", ")}: every code block checked`);
  Deno.exit(problems.length > 0 ? 1 : 0);
}
