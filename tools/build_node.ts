/**
 * Builds Mist for Node (≥ 20).
 *
 * - {@linkcode buildNode} writes `dist/node/`: `serve.mjs`, the local runner
 *   (`tools/serve_node.ts`, what `deno task serve:node` runs), and `server.mjs`, the module with
 *   the Node face of `serveLocal` (`server_node.ts`). Each is one ESM file for platform node,
 *   with `node:` modules and the `ws` package left as imports; `package.json` names `ws` as the
 *   one dependency (the version pinned in the project's own `package.json`).
 * - {@linkcode buildNpm} writes `dist/npm/`, the installable package `@mist/mist` (what
 *   `deno task build:node` runs). `./client` resolves by condition: browsers get the browser
 *   bundle of `tools/build.ts` (`mist_client.js`, byte for byte), Node and Deno (condition
 *   `node`) get `node/client.js`, the same API with Mist's no-delay socket (Node 20 has no global
 *   `WebSocket`). `./server` is `node/server.js`, the Node face of `serveLocal` with the same
 *   API. The two Node entries are bundled together with code splitting, so they share one chunk:
 *   one `Client`, `SharedSecret`, `HandlerRegistry` and one set of error classes, whichever entry
 *   they come from. Declarations are generated (`emitDeclarations` of `tools/build.ts`, one
 *   emission for both entries). `tests/package_test.ts` packs and installs it offline and runs
 *   `examples/node_extension_host.mjs` against it.
 *
 * Usage: `deno run --allow-read --allow-write=dist --allow-run tools/build_node.ts [--quiet]
 * [--npm] [outDir]`. Files are written beside their final place and renamed into it, so
 * concurrent builds and readers never see half a file. Node resolves `ws` from the nearest
 * `node_modules` up from the output, so an output inside the project finds the pinned
 * devDependency.
 *
 * @module
 */

import { build, CLIENT_API, denoBundle, SOCKET_PRESET, toPath, walk } from "./build.ts";

const ROOT = new URL("../", import.meta.url);

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

/** Where {@linkcode buildNpm} writes by default. */
export const NPM_DIR: URL = new URL("dist/npm/", ROOT);

/** The example the package's README shows and `tests/package_test.ts` runs. */
export const NPM_EXAMPLE = "examples/node_extension_host.mjs";

/** What {@linkcode buildNpm} wrote: absolute paths. */
export interface NpmBuild {
  /** The package directory. */
  readonly dir: string;
  /** Its `package.json`, as written. */
  readonly manifest: NpmManifest;
  /** Every file in the package, relative to `dir`, sorted. */
  readonly files: readonly string[];
}

/** The fields of the package's `package.json` that tests look at. */
export interface NpmManifest {
  readonly name: string;
  readonly version: string;
  readonly type: "module";
  readonly exports: Record<string, string | Record<string, string>>;
  readonly dependencies: Record<string, string>;
  readonly engines: { readonly node: string };
  readonly files: readonly string[];
}

/** The browser bundle, as `tools/build.ts` writes it. */
const CLIENT_JS = "mist_client.js";
/** The Node entries, bundled together into `node/` (plus their shared chunk). */
const NODE_CLIENT_JS = "node/client.js";
const NODE_SERVER_JS = "node/server.js";

/**
 * Builds the npm package `@mist/mist` into `outDir`: `package.json`, `README.md` (from
 * `tools/package/README.md`, with {@linkcode NPM_EXAMPLE} inserted), `LICENSE`, the browser
 * bundle `mist_client.js` (as `tools/build.ts` builds it), `node/client.js`, `node/server.js`
 * and their shared chunk, `mist_client.d.ts`, `mist_server.d.ts` and `types/`. The directory is
 * built beside `outDir` and swapped in whole, so no file of an earlier build stays behind.
 *
 * @param outDir Where to write. @default dist/npm/
 * @returns What was written.
 * @throws {Error} A bundle or declaration step failed, the Node client imports `ws` or a
 *   `node:` module, or the server carries its own copy of the client's code.
 *
 * @example
 * ```ts ignore
 * const { dir } = await buildNpm();
 * new Deno.Command("npm", { args: ["pack", "--dry-run"], cwd: dir }).spawn();
 * ```
 */
export async function buildNpm(outDir: string | URL = NPM_DIR): Promise<NpmBuild> {
  const out = toPath(outDir);
  const parent = out.slice(0, out.lastIndexOf("/")) || "/";
  await Deno.mkdir(parent, { recursive: true });
  const work = await Deno.makeTempDir({ dir: parent, prefix: ".npm-" });
  let old: string | undefined;
  try {
    // One emission of declarations for both entries: they share types/, file for file.
    await build(work, { declarationsOf: [CLIENT_API, "server_node.ts"] });
    await Deno.remove(`${work}/mist_client_node.js`); // node/client.js takes its place
    await bundleNodeEntries(work);
    await Deno.writeTextFile(
      `${work}/mist_server.d.ts`,
      '// Types of node/server.js, built by tools/build_node.ts.\nexport * from "./types/server_node.js";\n',
    );

    const manifest = await npmManifest();
    await Deno.writeTextFile(`${work}/package.json`, `${JSON.stringify(manifest, null, 2)}\n`);
    await Deno.writeTextFile(`${work}/README.md`, await npmReadme());
    await Deno.copyFile(toPath(new URL("LICENSE", ROOT)), `${work}/LICENSE`);

    const files: string[] = [];
    for await (const file of walk(work)) files.push(file);
    files.sort();

    // Swap the new directory in (a temporary directory is private; a package is not).
    await Deno.chmod(work, 0o755);
    if (await exists(out)) {
      old = `${work}.old`;
      await Deno.rename(out, old);
    }
    await Deno.rename(work, out);
    return { dir: out, manifest, files };
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
    if (old) await Deno.remove(old, { recursive: true });
  }
}

/**
 * Bundles the Node client (the public surface with the socket preset) and the Node server
 * (`server_node.ts`) together into `dir/node/`, with code splitting: what both use goes into a
 * shared chunk that both import, so each class exists once.
 */
async function bundleNodeEntries(dir: string): Promise<void> {
  const entries = `${dir}/.node-entries`;
  await Deno.mkdir(entries);
  const url = (name: string) => JSON.stringify(new URL(name, ROOT).href);
  await Deno.writeTextFile(
    `${entries}/client.ts`,
    `import ${url(SOCKET_PRESET)};\nexport * from ${url(CLIENT_API)};\n`,
  );
  await Deno.writeTextFile(`${entries}/server.ts`, `export * from ${url("server_node.ts")};\n`);
  await denoBundle(
    [
      "--code-splitting",
      ...NODE_EXTERNALS.flatMap((name) => ["--external", name]),
      "--outdir",
      `${dir}/node`,
      `${entries}/client.ts`,
      `${entries}/server.ts`,
    ],
    "node",
    "the Node entries",
  );
  await Deno.remove(entries, { recursive: true });

  const client = await Deno.readTextFile(`${dir}/${NODE_CLIENT_JS}`);
  const server = await Deno.readTextFile(`${dir}/${NODE_SERVER_JS}`);
  const staticImport = /^\s*import\b[^;]*?["'](?:node:[^"']*|ws)["']/m.exec(client);
  if (staticImport) {
    throw new Error(`Cannot build the package: the Node client imports ${staticImport[0]}`);
  }
  // The server's own code is the face; the client, core and socket come from the chunk.
  if (!/^import\b[^;]*?from "\.\/chunk-[\w-]+\.js";$/m.test(server)) {
    throw new Error("Cannot build the package: the Node server shares no chunk with the client");
  }
  for (const [name, js] of [["client.js", client], ["server.js", server]]) {
    await Deno.writeTextFile(
      `${dir}/node/${name}`,
      `// @ts-self-types="../${name === "client.js" ? "mist_client" : "mist_server"}.d.ts"\n` +
        `// Mist for Node, built by tools/build_node.ts; node/chunk-*.js holds what both entries share.\n${js}`,
    );
  }
}

/** The package's manifest: ESM, two entry points with their types, `ws` as the one dependency. */
async function npmManifest(): Promise<NpmManifest & Record<string, unknown>> {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const project = JSON.parse(await Deno.readTextFile(new URL("package.json", ROOT)));
  return {
    name: config.name,
    version: config.version,
    description: "Local-first JSON-RPC over one WebSocket on 127.0.0.1: the client (browsers, " +
      "Node, Deno) and the server for Node.",
    license: config.license,
    type: "module",
    exports: {
      "./client": {
        types: "./mist_client.d.ts",
        node: `./${NODE_CLIENT_JS}`,
        default: `./${CLIENT_JS}`,
      },
      "./server": { types: "./mist_server.d.ts", default: `./${NODE_SERVER_JS}` },
      "./package.json": "./package.json",
    },
    files: [CLIENT_JS, "mist_client.d.ts", "mist_server.d.ts", "node/", "types/"],
    engines: { node: ">=20" },
    dependencies: Object.fromEntries(
      NODE_EXTERNALS.map((name) => [name, project.devDependencies[name]]),
    ),
  };
}

/** `tools/package/README.md` with the line `{{example}}` replaced by the example, fenced. */
async function npmReadme(): Promise<string> {
  const template = await Deno.readTextFile(new URL("tools/package/README.md", ROOT));
  const example = await Deno.readTextFile(new URL(NPM_EXAMPLE, ROOT));
  const lines = template.split("\n");
  const at = lines.indexOf("{{example}}");
  if (at < 0) throw new Error("Cannot build the package: no {{example}} line in its README");
  lines.splice(at, 1, "```js", example.trimEnd(), "```");
  return lines.join("\n");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function bundle(output: string, entry: string): Promise<void> {
  return denoBundle(
    [
      ...NODE_EXTERNALS.flatMap((name) => ["--external", name]),
      "--output",
      output,
      entry,
    ],
    "node",
    entry,
  );
}

if (import.meta.main) {
  const quiet = Deno.args.includes("--quiet");
  const npm = Deno.args.includes("--npm");
  const outDir = Deno.args.find((arg) => arg !== "--quiet" && arg !== "--npm");
  if (npm) {
    const { dir, files } = await buildNpm(outDir ?? NPM_DIR);
    if (!quiet) console.log(`Wrote ${dir}: ${files.join(", ")}`);
  } else {
    const built = await buildNode(outDir ?? new URL("dist/node/", ROOT));
    // Quiet for `deno task serve:node`, whose stdout must carry only the runner's ready line.
    if (!quiet) console.log(`Wrote ${Object.values(built).join(" and ")}`);
  }
}
