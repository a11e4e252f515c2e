/**
 * Builds the client of Mist as JavaScript for browsers and Node, with its types, into `dist/`:
 *
 * - `mist_client.js`, for browsers (and webviews): one ESM file with the public surface
 *   (`_api.ts`, what `mod.ts` exports but `serveLocal`) and what it needs. It imports no `node:`
 *   module and carries none of the no-delay socket's code (both checked here): clients there use
 *   the global `WebSocket`.
 * - `mist_client_node.js`, for Node (≥ 20) and Deno: the same surface with the runtime preset
 *   (`_socket/preset.ts`), so that `ws:` URLs use Mist's own no-delay socket, over `node:net`
 *   (fetched with `process.getBuiltinModule` when it connects) or `Deno.connect`. Node 20 has no
 *   global `WebSocket`, so this is the one to run there.
 * - `mist_client.d.ts` with `types/*.d.ts`: the types of both (they export the same names).
 *
 * The declarations are generated, never written by hand: {@linkcode emitDeclarations} has
 * `deno bundle --declaration` emit one `.d.ts` per module, keeps those the entry points reach,
 * and fails on an import it did not emit. `tools/build_node.ts` uses it for the Node server too.
 *
 * Usage: `deno run -A tools/build.ts [outDir]` (default `dist/`). Needs only the local Deno:
 * `deno bundle` does the bundling and emits the declarations, so it runs offline.
 *
 * @module
 */

/** The public surface the client bundles export: `mod.ts`'s, but `serveLocal`. */
export const CLIENT_API = "_api.ts";

/** The Deno and Node preset: Mist's no-delay socket for `ws:` URLs. Browsers go without. */
export const SOCKET_PRESET = "_socket/preset.ts";

const ROOT = new URL("../", import.meta.url);
/**
 * An import of a `node:` module: a static one stops browsers loading the bundle, a dynamic one
 * trips the bundlers of the bundle's users. The no-delay socket uses `process.getBuiltinModule`.
 */
const NODE_IMPORT =
  /^\s*(?:import|export)\b[^;\n]*?["']node:[^"']*["']|\bimport\s*\(\s*["']node:[^"']*["']/m;
/** `deno bundle` marks each module it inlines with a `// <path>` line. */
const SOCKET_CODE = /^\/\/ (?:\S*\/)?_socket\/\S+\.ts$/m;
const DENO = Deno.execPath();
/** The npm packages Mist's modules import (the Node server's `ws`). */
const NPM_IMPORTS: readonly string[] = ["ws"];

/** What {@linkcode build} wrote: absolute paths. */
export interface BuildResult {
  /** The browser bundle, `mist_client.js`. */
  readonly js: string;
  /** The Node and Deno bundle, `mist_client_node.js`: the same API with the no-delay socket. */
  readonly node: string;
  /** The declaration entry point of both, `mist_client.d.ts`. */
  readonly dts: string;
}

/** Options of {@linkcode build}. */
export interface BuildOptions {
  /**
   * The modules whose declarations go into `types/`, with those they reach, in one emission.
   * `tools/build_node.ts` adds the Node server's entry, so that both entries share the files.
   * @default [CLIENT_API]
   */
  readonly declarationsOf?: readonly string[];
}

/**
 * Bundles the client into `outDir`. Files are written to a temporary directory first and then
 * renamed into place, so a concurrent build or a reader never sees half a file.
 *
 * @param outDir Where to write; created when missing.
 * @param options See {@linkcode BuildOptions}.
 * @returns The paths written.
 * @throws {Error} `deno bundle` failed (its output is in the message), or the browser bundle
 *   imports a `node:` module or carries the no-delay socket.
 */
export async function build(
  outDir: string | URL = new URL("dist/", ROOT),
  options: BuildOptions = {},
): Promise<BuildResult> {
  const out = toPath(outDir);
  await Deno.mkdir(`${out}/types`, { recursive: true });
  const work = await Deno.makeTempDir({ dir: out, prefix: ".build-" });
  const api = `export * from ${JSON.stringify(moduleUrl(CLIENT_API))};\n`;
  const header = (what: string) =>
    `// @ts-self-types="./mist_client.d.ts"\n// Mist client bundle ${what}, built by tools/build.ts from ${CLIENT_API}.\n`;
  try {
    // The browser bundle: the public surface alone.
    await Deno.writeTextFile(`${work}/browser.ts`, api);
    await denoBundle(["--output", `${work}/browser.js`, `${work}/browser.ts`], "browser");
    const js = await Deno.readTextFile(`${work}/browser.js`);
    const nodeImport = NODE_IMPORT.exec(js);
    if (nodeImport) {
      throw new Error(`Cannot bundle: the bundle imports a node: module (${nodeImport[0]})`);
    }
    const socket = SOCKET_CODE.exec(js);
    if (socket) throw new Error(`Cannot bundle: the browser bundle carries ${socket[0].slice(3)}`);
    await Deno.writeTextFile(`${work}/mist_client.js`, `${header("for browsers")}${js}`);

    // The Node and Deno bundle: the same, with the runtime preset installed at load.
    await Deno.writeTextFile(
      `${work}/node.ts`,
      `import ${JSON.stringify(moduleUrl(SOCKET_PRESET))};\n${api}`,
    );
    await denoBundle(["--output", `${work}/node.js`, `${work}/node.ts`], "browser");
    const nodeJs = await Deno.readTextFile(`${work}/node.js`);
    await Deno.writeTextFile(
      `${work}/mist_client_node.js`,
      `${header("for Node and Deno (with the no-delay socket)")}${nodeJs}`,
    );

    // Declarations: one .d.ts per module the entry points reach, in types/.
    const typesDir = `${work}/types`;
    await emitDeclarations(options.declarationsOf ?? [CLIENT_API], typesDir);
    await Deno.writeTextFile(
      `${work}/mist_client.d.ts`,
      "// Types of mist_client.js and mist_client_node.js, built by tools/build.ts.\n" +
        `export * from "./types/${CLIENT_API.replace(/\.ts$/, ".js")}";\n`,
    );

    const types: string[] = [];
    for await (const file of walk(typesDir)) types.push(file);
    for (const file of types) {
      await Deno.mkdir(dirname(`${out}/types/${file}`), { recursive: true });
      await Deno.rename(`${typesDir}/${file}`, `${out}/types/${file}`);
    }
    for (const name of ["mist_client.d.ts", "mist_client_node.js", "mist_client.js"]) {
      await Deno.rename(`${work}/${name}`, `${out}/${name}`);
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
  return {
    js: `${out}/mist_client.js`,
    node: `${out}/mist_client_node.js`,
    dts: `${out}/mist_client.d.ts`,
  };
}

/** Paths of the files under `dir`, relative to it, depth first. */
export async function* walk(dir: string, prefix = ""): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(`${dir}/${prefix}`)) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory) yield* walk(dir, `${path}/`);
    else yield path;
  }
}

/**
 * Writes into `typesDir` the declarations of `entries` (modules relative to the project root)
 * and of every module their declarations import, one `<module>.d.ts` per module, with relative
 * specifiers rewritten from `./x.ts` to `./x.js` (which TypeScript maps to `./x.d.ts`).
 *
 * `deno bundle --declaration` copies a re-exported module's declarations into the re-exporting
 * one (`export … from`), which duplicates declarations and their imports. So it is run on a
 * mirror of the module graph in which each `export { a, type B } from "./m.ts"` is an import
 * plus a local export (which it keeps as such), and each `export * from "./m.ts"` is taken out
 * and put back into the emitted file.
 *
 * @param entries Entry modules, relative to the project root (e.g. `"client.ts"`).
 * @param typesDir Where to write; created when missing. Files of the same name are replaced.
 * @returns The names of the files written, sorted.
 * @throws {Error} `deno bundle` failed, a declaration imports a module that has none, or a
 *   re-export takes a form the mirror does not rewrite.
 *
 * @example
 * ```ts ignore
 * await emitDeclarations(["client.ts"], "dist/types"); // client.d.ts, peer.d.ts, …
 * ```
 */
export async function emitDeclarations(
  entries: readonly string[],
  typesDir: string,
): Promise<string[]> {
  // Inside the project, so that the mirror resolves npm packages (`ws`) as the sources do.
  const scratch = toPath(new URL("dist/", ROOT));
  await Deno.mkdir(scratch, { recursive: true });
  const work = await Deno.makeTempDir({ dir: scratch, prefix: ".declarations-" });
  try {
    const modules = await localModules(entries, work);
    const mirror = `${work}/src`;
    const appended = new Map<string, string[]>();
    for (const name of modules) {
      const { source, exportStar } = mirrorReExports(
        await Deno.readTextFile(toPath(moduleUrl(name))),
        name,
      );
      await Deno.mkdir(dirname(`${mirror}/${name}`), { recursive: true });
      await Deno.writeTextFile(`${mirror}/${name}`, source);
      appended.set(name, exportStar);
    }
    const emitted = `${work}/out`;
    // npm packages stay imports: only their types matter here.
    await denoBundle([
      "--declaration",
      ...NPM_IMPORTS.flatMap((name) => ["--external", name]),
      "--outdir",
      emitted,
      ...modules.map((name) => `${mirror}/${name}`),
    ], "deno");

    // Keep what the entry points reach; an import of a module without declarations is an error.
    await Deno.mkdir(typesDir, { recursive: true });
    const written: string[] = [];
    const queue = entries.map((name) => normalize(name));
    const seen = new Set(queue);
    while (queue.length > 0) {
      const name = queue.shift()!;
      const dts = name.replace(/\.ts$/, ".d.ts");
      let text: string;
      try {
        text = await Deno.readTextFile(`${emitted}/${dts}`);
      } catch {
        throw new Error(`Cannot emit declarations: none for ${name}`);
      }
      const star = appended.get(name) ?? [];
      if (star.length > 0) text += `${star.join("\n")}\n`;
      text = rewriteSpecifiers(text);
      for (const specifier of relativeSpecifiers(text)) {
        if (!specifier.endsWith(".js")) {
          throw new Error(`Cannot emit declarations: ${dts} imports "${specifier}"`);
        }
        const target = normalize(`${dirname(name)}/${specifier.replace(/\.js$/, ".ts")}`);
        if (!modules.includes(target)) {
          throw new Error(`Cannot emit declarations: ${dts} imports ${target}, not in the graph`);
        }
        if (!seen.has(target)) {
          seen.add(target);
          queue.push(target);
        }
      }
      await Deno.mkdir(dirname(`${typesDir}/${dts}`), { recursive: true });
      await Deno.writeTextFile(`${typesDir}/${dts}`, text);
      written.push(dts);
    }
    return written.sort();
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/** The project's own modules `entries` import, directly or not, relative to the root. */
async function localModules(entries: readonly string[], work: string): Promise<string[]> {
  const root = `${work}/graph.ts`;
  await Deno.writeTextFile(
    root,
    entries.map((name) => `import ${JSON.stringify(moduleUrl(name))};\n`).join(""),
  );
  const { success, stdout, stderr } = await new Deno.Command(DENO, {
    args: ["info", "--quiet", "--json", "--config", toPath(new URL("deno.json", ROOT)), root],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  if (!success) throw new Error(`Cannot read the module graph\n${text.decode(stderr)}`);
  const graph = JSON.parse(text.decode(stdout)) as { modules: { specifier: string }[] };
  const prefix = ROOT.href;
  return graph.modules
    .map((module) => module.specifier)
    .filter((specifier) => specifier.startsWith(prefix) && /\.ts$/.test(specifier))
    .map((specifier) => decodeURIComponent(specifier.slice(prefix.length)))
    .filter((name) => !name.startsWith("dist/"))
    .sort();
}

/** `export … from` with its clause and specifier (one statement, possibly over lines). */
const RE_EXPORT =
  /^export\s+(type\s+)?(\*(?:\s+as\s+[\w$]+)?|\{[^}]*\})\s+from\s+("[^"\n]+"|'[^'\n]+')\s*;?[ \t]*$/gm;

/**
 * Rewrites `source`'s re-exports for the declaration emitter: `export { a, type B as C } from
 * "m"` becomes `import { a, type B as C } from "m"; export { a, type C };` (a name the module
 * binds otherwise is imported as `a$reexport` and exported as `a`), and `export * from "m"` is
 * removed and returned, to be appended to the emitted declarations.
 */
function mirrorReExports(
  source: string,
  name = "module",
): { source: string; exportStar: string[] } {
  const exportStar: string[] = [];
  const bound = boundNames(source.replace(RE_EXPORT, ""));
  const rewritten = source.replace(
    RE_EXPORT,
    (statement, typeOnly: string | undefined, clause: string, specifier: string) => {
      if (clause.startsWith("*")) {
        const alias = /\bas\s+([\w$]+)/.exec(clause)?.[1];
        if (alias === undefined) {
          exportStar.push(`export ${typeOnly ?? ""}* from ${specifier};`);
          return "";
        }
        return `import ${typeOnly ?? ""}* as ${alias} from ${specifier};\n` +
          `export ${typeOnly ?? ""}{ ${alias} };`;
      }
      const items = clause.slice(1, -1)
        .replace(/\/\*[\s\S]*?\*\//g, "")
        .replace(/\/\/[^\n]*/g, "")
        .split(",")
        .map((item) => item.trim())
        .filter((item) => item !== "");
      const imports: string[] = [];
      const exports: string[] = [];
      for (const item of items) {
        const match = /^(type\s+)?([\w$]+)(?:\s+as\s+([\w$]+))?$/.exec(item);
        if (!match || match[2] === "default" || match[3] === "default") {
          throw new Error(`Cannot emit declarations: ${name} re-exports "${item}" (${statement})`);
        }
        const [, type = "", original, exported = original] = match;
        const local = bound.has(exported) ? `${exported}$reexport` : exported;
        imports.push(`${type}${original === local ? local : `${original} as ${local}`}`);
        exports.push(`${type}${local === exported ? local : `${local} as ${exported}`}`);
      }
      return `import ${typeOnly ?? ""}{ ${imports.join(", ")} } from ${specifier};\n` +
        `export ${typeOnly ?? ""}{ ${exports.join(", ")} };`;
    },
  );
  return { source: rewritten, exportStar };
}

/** Names a module binds at its top level: its imports and declarations (a superset is fine). */
function boundNames(source: string): Set<string> {
  const names = new Set<string>();
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/[^\n]*/g, "");
  for (const [, clause] of code.matchAll(/^import\s+(?:type\s+)?([^;"']*?)\s+from\s/gm)) {
    for (const match of clause.matchAll(/([\w$]+)\s*(?:,|\}|$)/g)) names.add(match[1]);
  }
  const declaration =
    /^(?:export\s+)?(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?(?:const|let|var|function\*?|class|interface|type|enum|namespace)\s+([\w$]+)/gm;
  for (const match of code.matchAll(declaration)) names.add(match[1]);
  return names;
}

/** `from "./x.ts"` becomes `from "./x.js"`, which TypeScript maps to `./x.d.ts`. */
function rewriteSpecifiers(source: string): string {
  return source.replace(
    /^((?:import|export)\b[^;]*?\bfrom\s+")(\.{1,2}\/[^"]+)\.ts(";?)$/gm,
    "$1$2.js$3",
  );
}

/** The relative specifiers of a declaration file's imports and exports (comments skipped). */
function relativeSpecifiers(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const found = new Set<string>();
  for (const match of code.matchAll(/\bfrom\s+["'](\.{1,2}\/[^"']+)["']/g)) found.add(match[1]);
  for (const match of code.matchAll(/\bimport\s*\(\s*["'](\.{1,2}\/[^"']+)["']/g)) {
    found.add(match[1]);
  }
  return [...found];
}

function dirname(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : path.slice(0, slash);
}

/** `a/./b/../c.ts` → `a/c.ts`, relative to the root. */
function normalize(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return parts.join("/");
}

/**
 * Runs `deno bundle` as ESM with the project's `deno.json`; `tools/build_node.ts` bundles with
 * it too.
 *
 * @param args The rest of its arguments: outputs, externals, entries.
 * @param platform What the bundle runs on.
 * @param what What is bundled, for the error's message.
 * @throws {Error} `deno bundle` failed: its output is in the message.
 */
export async function denoBundle(
  args: readonly string[],
  platform: "browser" | "deno" | "node",
  what?: string,
): Promise<void> {
  const { success, stdout, stderr } = await new Deno.Command(DENO, {
    args: [
      "bundle",
      "--quiet",
      "--config",
      toPath(new URL("deno.json", ROOT)),
      "--platform",
      platform,
      "--format",
      "esm",
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!success) {
    const text = new TextDecoder();
    throw new Error(
      `Cannot bundle${what ? ` ${what}` : ""}: deno bundle failed\n` +
        `${text.decode(stdout)}${text.decode(stderr)}`,
    );
  }
}

function moduleUrl(name: string): string {
  return new URL(name, ROOT).href;
}

/**
 * A file path: a URL's, or a path's relative to the working directory; no trailing slash.
 *
 * @param path A `file:` URL, or a path.
 * @returns The absolute path.
 */
export function toPath(path: string | URL): string {
  const url = path instanceof URL ? path : new URL(path, `file://${Deno.cwd()}/`);
  return decodeURIComponent(url.pathname).replace(/\/$/, "");
}

if (import.meta.main) {
  const result = await build(Deno.args[0] ?? new URL("dist/", ROOT));
  console.log(`Wrote ${result.js}, ${result.node} and ${result.dts}`);
}
