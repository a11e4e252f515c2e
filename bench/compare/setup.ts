/**
 * Gets the npm stacks ready: installs bench/compare/node_modules from the committed lock file
 * when it is missing or stale, bundles each Node-side stack from TypeScript into one `.mjs`
 * file (Node 20 cannot run TypeScript), leaving its npm imports to node_modules, and builds
 * Mist's npm package for the stacks that load it.
 *
 * @module
 */

import { Child } from "./child.ts";
import type { StackInfo } from "./stacks.ts";

/** Where the Node-side bundles go, relative to bench/compare (ignored by git). */
export const BUILD_DIR = ".build";

const INSTALL_TIMEOUT_MS = 180_000;
const BUNDLE_TIMEOUT_MS = 60_000;

async function mtime(path: string): Promise<number | undefined> {
  try {
    return (await Deno.stat(path)).mtime?.getTime();
  } catch {
    return undefined;
  }
}

async function run(
  command: string,
  args: string[],
  cwd: string,
  label: string,
  ms: number,
): Promise<void> {
  const child = Child.spawn(command, args, { cwd, label });
  child.forwardRest(); // Tool chatter goes to stderr; stdout is kept for the table.
  const status = await child.exit(ms);
  if (!status.success) {
    throw new Error(`${label} failed with exit code ${status.code}`);
  }
}

/**
 * Runs `npm ci --ignore-scripts` in `dir` unless node_modules is at least as new as
 * package-lock.json (npm writes node_modules/.package-lock.json on every install).
 */
export async function ensureNodeModules(dir: string): Promise<void> {
  const lock = await mtime(`${dir}/package-lock.json`);
  const installed = await mtime(`${dir}/node_modules/.package-lock.json`);
  if (installed !== undefined && lock !== undefined && installed >= lock) {
    return;
  }
  console.error("bench:compare: installing the npm stacks (npm ci)…");
  await run(
    "npm",
    ["ci", "--ignore-scripts", "--no-audit", "--no-fund"],
    dir,
    "npm ci",
    INSTALL_TIMEOUT_MS,
  );
}

/** Where Mist's npm package is built for the stacks that load it, relative to bench/compare. */
export const PACKAGE_DIR = `${BUILD_DIR}/npm`;

/**
 * Builds Mist's npm package (`tools/build_node.ts --npm`, what `deno task build:node` runs)
 * into {@linkcode PACKAGE_DIR}, beside the bundles that load it: Node then resolves its `ws`
 * from bench/compare/node_modules, as the other Node stacks do. When the build fails, an older
 * package is removed, so the stacks that load it skip instead of measuring stale code.
 *
 * @returns Why the build failed, or `undefined` when it succeeded.
 */
export async function buildMistPackage(dir: string): Promise<string | undefined> {
  const tool = decodeURIComponent(new URL("../../tools/build_node.ts", import.meta.url).pathname);
  try {
    await run(
      Deno.execPath(),
      [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-run",
        tool,
        "--npm",
        "--quiet",
        PACKAGE_DIR,
      ],
      dir,
      "building Mist's npm package",
      BUNDLE_TIMEOUT_MS,
    );
    return undefined;
  } catch (error) {
    await Deno.remove(`${dir}/${PACKAGE_DIR}`, { recursive: true }).catch(() => {});
    return error instanceof Error ? error.message : String(error);
  }
}

/** The bundle a Node stack runs from, relative to bench/compare. */
export function bundlePath(stack: StackInfo): string {
  const base = stack.entry.replace(/^.*\//, "").replace(/\.ts$/, ".mjs");
  return `${BUILD_DIR}/${base}`;
}

/** Bundles each Node stack's entry; npm packages (the package.json dependencies) stay imports. */
export async function bundleNodeStacks(
  dir: string,
  stacks: readonly StackInfo[],
): Promise<void> {
  const manifest: unknown = JSON.parse(
    await Deno.readTextFile(`${dir}/package.json`),
  );
  const dependencies = typeof manifest === "object" && manifest !== null &&
      "dependencies" in manifest && typeof manifest.dependencies === "object" &&
      manifest.dependencies !== null
    ? Object.keys(manifest.dependencies)
    : [];
  const externals = dependencies.flatMap((name) => ["--external", name]);
  for (const stack of stacks) {
    await run(
      Deno.execPath(),
      [
        "bundle",
        "--quiet",
        "--config",
        "deno.json",
        "--platform",
        "deno",
        "--format",
        "esm",
        ...externals,
        "--output",
        bundlePath(stack),
        stack.entry,
      ],
      dir,
      `bundling ${stack.name}`,
      BUNDLE_TIMEOUT_MS,
    );
  }
}
