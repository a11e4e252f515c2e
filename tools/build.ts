/**
 * Builds the browser and Node face of Mist: `dist/mist_client.js`, one ESM file with the client
 * and everything it needs, and `dist/mist_client.d.ts` with `dist/types/*.d.ts` for TypeScript
 * users. Nothing Deno- or Node-specific runs at load, and the bundle imports no `node:` module
 * (checked here), so it loads in browsers. The no-delay socket is bundled and picked at run time:
 * on Deno through `globalThis.Deno.connect`, on Node through `node:net`, which it fetches with
 * `process.getBuiltinModule` when it connects; browsers keep their `WebSocket`.
 *
 * Usage: `deno run -A tools/build.ts [outDir]` (default `dist/`). Needs only the local Deno:
 * `deno bundle` does the bundling and emits the declarations, so it runs offline.
 *
 * @module
 */

/** The browser-safe modules the bundle exposes: everything in `mod.ts` except the server. */
export const BUNDLED_MODULES: readonly string[] = [
  "auth.ts",
  "client.ts",
  "clock.ts",
  "envelope.ts",
  "errors.ts",
  "log.ts",
  "peer.ts",
  "registry.ts",
  "secret.ts",
  "transport.ts",
];

const ROOT = new URL("../", import.meta.url);
/**
 * An import of a `node:` module: a static one stops browsers loading the bundle, a dynamic one
 * trips the bundlers of the bundle's users. The no-delay socket uses `process.getBuiltinModule`.
 */
const NODE_IMPORT =
  /^\s*(?:import|export)\b[^;\n]*?["']node:[^"']*["']|\bimport\s*\(\s*["']node:[^"']*["']/m;
const DENO = Deno.execPath();

/** What {@linkcode build} wrote. */
export interface BuildResult {
  /** Absolute path of the ESM bundle. */
  readonly js: string;
  /** Absolute path of its declaration entry point. */
  readonly dts: string;
}

/**
 * Bundles the client into `outDir`. Files are written to a temporary directory first and then
 * renamed into place, so a concurrent build or a reader never sees half a file.
 *
 * @param outDir Where to write; created when missing.
 * @returns The paths written.
 * @throws {Error} `deno bundle` failed (its output is in the message).
 */
export async function build(outDir: string | URL = new URL("dist/", ROOT)): Promise<BuildResult> {
  const out = toPath(outDir);
  await Deno.mkdir(`${out}/types`, { recursive: true });
  const work = await Deno.makeTempDir({ dir: out, prefix: ".build-" });
  try {
    // The bundle: one generated entry re-exporting the browser-safe modules.
    const entry = `${work}/mist_client.ts`;
    await Deno.writeTextFile(
      entry,
      BUNDLED_MODULES.map((name) => `export * from ${JSON.stringify(moduleUrl(name))};\n`)
        .join(""),
    );
    await bundle(["--output", `${work}/bundle.js`, entry]);
    const js = await Deno.readTextFile(`${work}/bundle.js`);
    const nodeImport = NODE_IMPORT.exec(js);
    if (nodeImport) {
      throw new Error(`Cannot bundle: the bundle imports a node: module (${nodeImport[0]})`);
    }
    await Deno.writeTextFile(
      `${work}/mist_client.js`,
      `// @ts-self-types="./mist_client.d.ts"\n// Mist client bundle, built by tools/build.ts from client.ts and what it imports.\n${js}`,
    );

    // Declarations: one .d.ts per module, with specifiers rewritten for ESM type resolution.
    const typesDir = `${work}/types`;
    await bundle([
      "--declaration",
      "--outdir",
      typesDir,
      ...BUNDLED_MODULES.map((name) => toPath(moduleUrl(name))),
    ]);
    for await (const file of Deno.readDir(typesDir)) {
      const path = `${typesDir}/${file.name}`;
      if (!file.name.endsWith(".d.ts")) {
        await Deno.remove(path);
        continue;
      }
      await Deno.writeTextFile(path, rewriteSpecifiers(await Deno.readTextFile(path)));
    }
    await Deno.writeTextFile(
      `${work}/mist_client.d.ts`,
      "// Types of mist_client.js, built by tools/build.ts.\n" +
        BUNDLED_MODULES.map((name) => `export * from "./types/${name.replace(/\.ts$/, ".js")}";\n`)
          .join(""),
    );

    for await (const file of Deno.readDir(typesDir)) {
      await Deno.rename(`${typesDir}/${file.name}`, `${out}/types/${file.name}`);
    }
    await Deno.rename(`${work}/mist_client.d.ts`, `${out}/mist_client.d.ts`);
    await Deno.rename(`${work}/mist_client.js`, `${out}/mist_client.js`);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
  return { js: `${out}/mist_client.js`, dts: `${out}/mist_client.d.ts` };
}

/** `from "./x.ts"` becomes `from "./x.js"`, which TypeScript maps to `./x.d.ts`. */
function rewriteSpecifiers(source: string): string {
  return source.replace(
    /^((?:import|export)\b[^;]*?\bfrom\s+")(\.\/[^"]+)\.ts(";?)$/gm,
    "$1$2.js$3",
  );
}

async function bundle(args: string[]): Promise<void> {
  const { success, stdout, stderr } = await new Deno.Command(DENO, {
    args: [
      "bundle",
      "--quiet",
      "--config",
      toPath(new URL("deno.json", ROOT)),
      "--platform",
      "browser",
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
      `Cannot bundle: deno bundle failed\n${text.decode(stdout)}${text.decode(stderr)}`,
    );
  }
}

function moduleUrl(name: string): string {
  return new URL(name, ROOT).href;
}

function toPath(path: string | URL): string {
  const url = path instanceof URL ? path : new URL(path, `file://${Deno.cwd()}/`);
  return decodeURIComponent(url.pathname).replace(/\/$/, "");
}

if (import.meta.main) {
  const result = await build(Deno.args[0] ?? new URL("dist/", ROOT));
  console.log(`Wrote ${result.js} and ${result.dts}`);
}
