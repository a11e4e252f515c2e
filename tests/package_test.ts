/**
 * The npm package `@mist/mist` as a Node user gets it: built by `buildNpm` (what `deno task
 * build:node` runs), checked with `npm pack --dry-run`, packed, installed offline into a
 * temporary project (its `ws` linked from this project's `node_modules`, an empty npm cache, so
 * nothing can be fetched), then used under the machine's Node: `examples/node_extension_host.mjs`
 * copied in unchanged and called from Mist's Deno client; both entry points share their classes;
 * the generated declarations type-check a typed consumer (`deno check --all`, which checks the
 * package's `.d.ts` files too). Every command is bounded; the example is ended by its PID.
 *
 * @module
 */
import assert from "node:assert/strict";
import { SharedSecret } from "../secret.ts";
import { buildNpm, NPM_EXAMPLE, type NpmBuild } from "../tools/build_node.ts";
import { atMost, spawnLines } from "./peers/_spawn.ts";
import { connectTo, type Output, runToEnd, succeeded, tempDir } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url);
const COMMAND_TIMEOUT_MS = 60_000;

/** The version pinned in the project, which the package must depend on. */
const WS_VERSION: string = JSON.parse(
  await Deno.readTextFile(new URL("package.json", ROOT)),
).devDependencies.ws;

/** A static import of a `node:` module or of `ws`. */
const STATIC_NODE_OR_WS = /^\s*(?:import|export)\b[^;]*?["'](?:node:[^"']*|ws)["']/m;

/** What the package may hold: bundles, declarations, README, LICENSE, manifest. */
const PACKED =
  /^(LICENSE|README\.md|package\.json|mist_client\.(js|d\.ts)|mist_server\.d\.ts|node\/(client|server|chunk-[\w-]+)\.js|types\/[\w/]+\.d\.ts)$/;

/** Runs a command to completion in `cwd`; killed (and failing) after the timeout. */
function run(
  command: string,
  args: string[],
  cwd: string,
  env?: Record<string, string>,
): Promise<Output> {
  return runToEnd(command, args, { cwd, env, timeoutMs: COMMAND_TIMEOUT_MS });
}

const ok = succeeded;

/** npm's own warnings on stderr ("npm warn …", "npm WARN …"). */
function npmWarnings(stderr: string): string[] {
  return stderr.split("\n").filter((line) => /\bwarn\b/i.test(line));
}

/** The packed tarball, installed offline into a new project in `dir`. */
async function install(dir: string, tarball: string): Promise<string> {
  const app = `${dir}/app`;
  await Deno.mkdir(app);
  const ws = decodeURIComponent(new URL("node_modules/ws", ROOT).pathname);
  await Deno.writeTextFile(
    `${app}/package.json`,
    JSON.stringify({ private: true, type: "module", dependencies: { ws: `file:${ws}` } }),
  );
  const installed = ok(
    await run("npm", [
      "install",
      "--offline",
      "--no-audit",
      "--no-fund",
      "--cache",
      `${dir}/npm-cache`,
      tarball,
    ], app),
    "npm install --offline",
  );
  assert.deepEqual(npmWarnings(installed.stderr), []);
  return app;
}

Deno.test("buildNpm() makes a package that packs clean, installs offline, serves the example under Node and type-checks", async (t) => {
  await using temp = await tempDir("mist-package-");
  const dir = temp.path;
  let built!: NpmBuild;
  await t.step(
    "the build writes the manifest, bundles, declarations, README and LICENSE",
    async () => {
      built = await buildNpm(`${dir}/npm`);
      const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
      const manifest = JSON.parse(await Deno.readTextFile(`${built.dir}/package.json`));
      assert.equal(manifest.name, "@mist/mist");
      assert.equal(manifest.version, config.version);
      assert.equal(manifest.type, "module");
      assert.deepEqual(manifest.exports, {
        "./client": {
          types: "./mist_client.d.ts",
          node: "./node/client.js",
          default: "./mist_client.js",
        },
        "./server": { types: "./mist_server.d.ts", default: "./node/server.js" },
        "./package.json": "./package.json",
      });
      assert.deepEqual(manifest.dependencies, { ws: WS_VERSION });
      assert.equal(manifest.devDependencies, undefined);
      assert.deepEqual(manifest.engines, { node: ">=20" });
      // The browser bundle: no node: import, no ws, none of the no-delay socket's code.
      const browser = await Deno.readTextFile(`${built.dir}/mist_client.js`);
      assert.doesNotMatch(browser, STATIC_NODE_OR_WS);
      assert.doesNotMatch(browser, /\bimport\s*\(/);
      assert.doesNotMatch(browser, /^\/\/ \S*_socket\//m);
      // The Node client needs no ws; the server imports it, and shares a chunk with the client.
      const client = await Deno.readTextFile(`${built.dir}/node/client.js`);
      const server = await Deno.readTextFile(`${built.dir}/node/server.js`);
      assert.doesNotMatch(client, STATIC_NODE_OR_WS);
      assert.match(server, /^import\b[^;]*?from "ws";$/m);
      const chunk = /from "(\.\/chunk-[\w-]+\.js)"/.exec(client)?.[1];
      assert.ok(chunk, "the Node client imports no chunk");
      assert.ok(server.includes(`from "${chunk}"`), "the server does not share the chunk");
      // The README shows the example file as it is.
      const readme = await Deno.readTextFile(`${built.dir}/README.md`);
      const example = await Deno.readTextFile(new URL(NPM_EXAMPLE, ROOT));
      assert.ok(
        readme.includes(`\`\`\`js\n${example.trimEnd()}\n\`\`\``),
        "README lacks the example",
      );
      assert.equal(
        await Deno.readTextFile(`${built.dir}/LICENSE`),
        await Deno.readTextFile(new URL("LICENSE", ROOT)),
      );
    },
  );

  await t.step(
    "npm pack --dry-run lists exactly the package's files, without warnings",
    async () => {
      const packed = ok(await run("npm", ["pack", "--dry-run", "--json"], built.dir), "npm pack");
      assert.deepEqual(npmWarnings(packed.stderr), [], packed.stderr);
      const [report] = JSON.parse(packed.stdout) as { name: string; files: { path: string }[] }[];
      assert.equal(report.name, "@mist/mist");
      const files = report.files.map((file) => file.path).sort();
      assert.deepEqual(files, [...built.files]);
      for (
        const file of [
          "LICENSE",
          "README.md",
          "package.json",
          "mist_client.js",
          "mist_client.d.ts",
          "mist_server.d.ts",
          "node/client.js",
          "node/server.js",
          "types/_api.d.ts",
          "types/server_node.d.ts",
        ]
      ) assert.ok(files.includes(file), `${file} is not packed`);
      const unexpected = files.filter((file) => !PACKED.test(file));
      assert.deepEqual(unexpected, [], "only bundles, declarations, README, LICENSE, manifest");
      assert.ok(!files.some((file) => /test|\.map$|\.mjs$/.test(file)), files.join(", "));
    },
  );

  let app!: string;
  await t.step("the tarball installs offline, with ws as its one dependency", async () => {
    const packed = ok(
      await run("npm", ["pack", "--json", "--pack-destination", dir], built.dir),
      "npm pack",
    );
    assert.deepEqual(npmWarnings(packed.stderr), []);
    const [{ filename }] = JSON.parse(packed.stdout) as { filename: string }[];
    app = await install(dir, `${dir}/${filename}`);
    const modules = [...Deno.readDirSync(`${app}/node_modules`)].map((entry) => entry.name);
    assert.deepEqual(modules.filter((name) => !name.startsWith(".")).sort(), ["@mist", "ws"]);
    assert.ok((await Deno.lstat(`${app}/node_modules/ws`)).isSymlink, "ws is the project's");
  });

  await t.step("the extension host example serves echo under Node until SIGTERM", async () => {
    await Deno.copyFile(new URL(NPM_EXAMPLE, ROOT), `${app}/node_extension_host.mjs`);
    const secret = SharedSecret.generate();
    await using host = spawnLines("node", [`${app}/node_extension_host.mjs`], {
      env: { MIST_SECRET: secret.toHex(), MIST_PORT: "0" },
    });
    const ready = await host.lines.next((line) => typeof line.url === "string", 15_000);
    if (!ready) assert.fail(`no {"url": …} line:\n${(await host.stop("SIGKILL")).stderr}`);
    assert.deepEqual(Object.keys(ready), ["url"]);
    assert.match(String(ready.url), /^ws:\/\/127\.0\.0\.1:\d+\/$/);
    {
      await using client = connectTo(String(ready.url), secret);
      const echoed = await client.call("echo", ["from Deno", 42]);
      assert.deepEqual(echoed, ["from Deno", 42]);
    }
    host.kill("SIGTERM");
    const exit = await atMost(host.exited, 10_000);
    assert.ok(exit, "the host did not exit within 10 s of SIGTERM");
    assert.equal(exit.code, 0, exit.stderr);
    assert.equal(exit.stderr, "");
    assert.equal(host.lines.items.length, 1, JSON.stringify(host.lines.items));
  });

  await t.step("the example refuses to start without MIST_SECRET", async () => {
    const output = await run("node", ["node_extension_host.mjs"], app, { MIST_SECRET: "" });
    assert.equal(output.code, 2);
    assert.equal(output.stdout, "");
    assert.match(output.stderr, /MIST_SECRET is not set/);
  });

  await t.step(
    "on Node both entries share their classes; the browser bundle has the same names",
    async () => {
      await Deno.writeTextFile(
        `${app}/entries.mjs`,
        `import * as server from "@mist/mist/server";
import * as client from "@mist/mist/client";
import * as browser from "./node_modules/@mist/mist/mist_client.js";
const names = Object.keys(client).sort();
console.log(JSON.stringify({
  names,
  browser: Object.keys(browser).sort(),
  different: names.filter((name) => server[name] !== client[name]),
  sameAsBrowser: names.filter((name) => browser[name] === client[name]),
  serverOnly: Object.keys(server).filter((name) => !(name in client)).sort(),
}));
`,
      );
      const output = ok(await run("node", ["entries.mjs"], app), "entries.mjs");
      const result = JSON.parse(output.stdout);
      assert.ok(result.names.includes("Client") && result.names.includes("RemoteError"));
      assert.deepEqual(result.browser, result.names);
      assert.deepEqual(result.different, []);
      assert.deepEqual(result.sameAsBrowser, [], "on Node, ./client is the Node build");
      assert.deepEqual(result.serverOnly, ["serveLocal"]);
    },
  );

  await t.step("the declarations type-check a typed consumer of both entries", async () => {
    await Deno.writeTextFile(
      `${app}/consumer.ts`,
      `import {
  HandlerRegistry,
  type LocalServer,
  RemoteError,
  serveLocal,
  SharedSecret,
} from "@mist/mist/server";
import { Client, type ClientState, RemoteError as ClientRemoteError } from "@mist/mist/client";

interface Api {
  add: { params: [a: number, b: number]; result: number };
}
export async function main(): Promise<number> {
  const secret = SharedSecret.generate();
  const registry = new HandlerRegistry<Api>().register("add", ([a, b]) => a + b);
  const server: LocalServer = await serveLocal<Api>({ secret, registry });
  const client = new Client<Api>(server.url, { secret });
  const state: ClientState = client.state;
  const sum: number = await client.call("add", [1, 2]);
  // @ts-expect-error: the params are two numbers
  await client.call("add", ["1", 2]);
  // @ts-expect-error: no such method
  await client.call("sub", [1, 2]);
  // @ts-expect-error: on Node, serveLocal returns a promise
  serveLocal({ secret }).url;
  const same: typeof ClientRemoteError = RemoteError;
  await client.close();
  await server.shutdown();
  return sum + state.length + same.length;
}
`,
    );
    ok(await run(Deno.execPath(), ["check", "--all", "consumer.ts"], app), "deno check");
  });
});
