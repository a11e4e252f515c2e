/**
 * Builds Mist for Node (≥ 20) into `dist/node/`: `serve.mjs`, the local runner
 * (`tools/serve_node.ts`, what `deno task serve:node` runs), and `server.mjs`, the module with
 * the Node face of `serveLocal` (`server_node.ts`). Each is one ESM file for platform node,
 * with `node:` modules and the `ws` package left as imports; `package.json` names `ws` as the
 * one dependency (the version pinned in the project's own `package.json`).
 *
 * Usage: `deno run --allow-read --allow-write=dist --allow-run tools/build_node.ts [--quiet]
 * [outDir]`. Files are written beside their final place and renamed into it, so concurrent
 * builds and readers never see half a file. Node resolves `ws` from the nearest `node_modules`
 * up from the output, so an output inside the project finds the pinned devDependency.
 *
 * @module
 */

const ROOT = new URL("../", import.meta.url);
const DENO = Deno.execPath();

/** The files built by default: output name → entry module, relative to the project root. */
export const NODE_ENTRIES: Readonly<Record<string, string>> = {
  "serve.mjs": "tools/serve_node.ts",
  "server.mjs": "server_node.ts",
};

/** The packages left as imports; the Node package depends on them. */
export const NODE_EXTERNALS: readonly string[] = ["ws"];

/**
 * Bundles `entries` into `outDir`, with the Node package's `package.json` when they are the
 * default ones.
 *
 * @param outDir Where to write; created when missing. @default dist/node/
 * @param entries Output file name → entry module (relative to the project root); tests bundle
 *   their Node fixtures this way.
 * @returns The absolute path of each output, by output name.
 * @throws {Error} `deno bundle` failed (its output is in the message).
 *
 * @example
 * ```ts ignore
 * const { "serve.mjs": runner } = await buildNode();
 * new Deno.Command("node", { args: [runner, "--port", "0"] }).spawn();
 * ```
 */
export async function buildNode(
  outDir: string | URL = new URL("dist/node/", ROOT),
  entries: Readonly<Record<string, string>> = NODE_ENTRIES,
): Promise<Record<string, string>> {
  const out = toPath(outDir);
  await Deno.mkdir(out, { recursive: true });
  const work = await Deno.makeTempDir({ dir: out, prefix: ".build-" });
  try {
    const built: Record<string, string> = {};
    await Promise.all(
      Object.entries(entries).map(async ([name, entry]) => {
        await bundle(`${work}/${name}`, toPath(new URL(entry, ROOT)));
        built[name] = `${out}/${name}`;
      }),
    );
    const names = Object.keys(entries);
    if (entries === NODE_ENTRIES) {
      await Deno.writeTextFile(`${work}/package.json`, await packageJson());
      names.push("package.json");
    }
    for (const name of names) {
      await Deno.rename(`${work}/${name}`, `${out}/${name}`);
    }
    return built;
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/** The Node package's manifest: ESM, the two entry points, `ws` at the project's version. */
async function packageJson(): Promise<string> {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const project = JSON.parse(await Deno.readTextFile(new URL("package.json", ROOT)));
  const dependencies = Object.fromEntries(
    NODE_EXTERNALS.map((name) => [name, project.devDependencies[name]]),
  );
  return `${
    JSON.stringify(
      {
        name: "mist-node",
        version: config.version,
        private: true,
        description: "Mist for Node, built by tools/build_node.ts: the module (server.mjs) and " +
          "the local runner (serve.mjs).",
        type: "module",
        engines: { node: ">=20" },
        exports: { ".": "./server.mjs" },
        bin: { "mist-serve": "./serve.mjs" },
        dependencies,
      },
      null,
      2,
    )
  }\n`;
}

async function bundle(output: string, entry: string): Promise<void> {
  const { success, stdout, stderr } = await new Deno.Command(DENO, {
    args: [
      "bundle",
      "--quiet",
      "--config",
      toPath(new URL("deno.json", ROOT)),
      "--platform",
      "node",
      "--format",
      "esm",
      ...NODE_EXTERNALS.flatMap((name) => ["--external", name]),
      "--output",
      output,
      entry,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!success) {
    const text = new TextDecoder();
    throw new Error(
      `Cannot bundle ${entry}: deno bundle failed\n${text.decode(stdout)}${text.decode(stderr)}`,
    );
  }
}

function toPath(path: string | URL): string {
  const url = path instanceof URL ? path : new URL(path, `file://${Deno.cwd()}/`);
  return decodeURIComponent(url.pathname).replace(/\/$/, "");
}

if (import.meta.main) {
  const quiet = Deno.args.includes("--quiet");
  const outDir = Deno.args.find((arg) => arg !== "--quiet");
  const built = await buildNode(outDir ?? new URL("dist/node/", ROOT));
  // Quiet for `deno task serve:node`, whose stdout must carry only the runner's ready line.
  if (!quiet) console.log(`Wrote ${Object.values(built).join(" and ")}`);
}
