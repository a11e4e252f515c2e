/**
 * The examples run as README.md says: each command of its "Examples" section is run here as
 * written (`./deno` is this Deno), from the repository's root, against the local runner started
 * as `deno task serve` starts it, and the line each example prints is checked. The browser page
 * is opened in headless Chromium. README.md's code blocks are checked against the examples they
 * are copied from (`tools/check_readme.ts`). Every wait is bounded; every process is ended by its
 * PID.
 *
 * @module
 */
import assert from "node:assert/strict";
import { build } from "../tools/build.ts";
import { checkMarkdown, codeBlocks, region } from "../tools/check_readme.ts";
import { ensureChromium, launchChromium } from "./_chromium.ts";
import { type Output, runToEnd, succeeded } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url);
const ROOT_PATH = decodeURIComponent(ROOT.pathname).replace(/\/$/, "");
const README = new URL("README.md", ROOT);
const COMMAND_TIMEOUT_MS = 60_000;
const READY_TIMEOUT_MS = 15_000;

/** The commands, exactly as README.md shows them (after `MIST_URL=… MIST_SECRET=…`). */
const COMMANDS = {
  deno: "./deno run --allow-net=127.0.0.1 --allow-env=MIST_URL,MIST_SECRET examples/deno_client.ts",
  node: "node examples/node_client.mjs",
  browser:
    "./deno run --allow-net=127.0.0.1 --allow-env=MIST_URL,MIST_SECRET --allow-read=examples/browser,dist examples/browser/serve.ts",
  typed: "./deno run --allow-net=127.0.0.1 examples/typed.ts",
  relay: "./deno run --allow-net=127.0.0.1 examples/relay.ts",
} as const;

/** A command line's program and arguments; `./deno` and `deno` are this Deno. */
function argv(command: string): [string, string[]] {
  const [program, ...args] = command.split(/\s+/);
  return [program === "./deno" || program === "deno" ? Deno.execPath() : program, args];
}

/** Runs a command line to completion from the root; killed (and failing) after the timeout. */
function run(command: string, env: Record<string, string> = {}): Promise<Output> {
  const [program, args] = argv(command);
  return runToEnd(program, args, {
    cwd: ROOT_PATH,
    env: { NO_COLOR: "1", ...env },
    timeoutMs: COMMAND_TIMEOUT_MS,
  });
}

/** A long-running command whose stdout lines are collected; `await using` ends it by its PID. */
class Running implements AsyncDisposable {
  readonly lines: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #stdout: Promise<void>;
  readonly #stderr: Promise<string>;
  #wake: (() => void) | undefined;

  constructor(command: string, env: Record<string, string>) {
    const [program, args] = argv(command);
    this.#child = new Deno.Command(program, {
      args,
      cwd: ROOT_PATH,
      env: { NO_COLOR: "1", ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdout = this.#read();
    this.#stderr = new Response(this.#child.stderr).text();
  }

  async #read(): Promise<void> {
    let buffered = "";
    for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      let end: number;
      while ((end = buffered.indexOf("\n")) >= 0) {
        this.lines.push(buffered.slice(0, end));
        buffered = buffered.slice(end + 1);
        this.#wake?.();
      }
    }
    if (buffered !== "") this.lines.push(buffered);
    this.#wake?.();
  }

  /** The first stdout line matching `pattern`, waiting at most {@linkcode READY_TIMEOUT_MS}. */
  async line(pattern: RegExp, what: string): Promise<string> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let exited = false;
    this.#child.status.then(() => exited = true);
    while (true) {
      const found = this.lines.find((line) => pattern.test(line));
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0 || exited) {
        throw new Error(`${what} printed no line matching ${pattern}:\n${await this.stop()}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, Math.min(left, 100));
      });
      clearTimeout(timer);
    }
  }

  #stopped: Promise<string> | undefined;
  /** Sends SIGTERM, then SIGKILL after 5 s; resolves with its stderr once it exited. */
  stop(): Promise<string> {
    this.#stopped ??= (async () => {
      const kill = (signal: Deno.Signal) => {
        try {
          this.#child.kill(signal); // by its PID; throws once it has exited
        } catch {
          // Already exited.
        }
      };
      kill("SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const exited = await Promise.race([
        this.#child.status.then(() => true),
        new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), 5_000)),
      ]);
      clearTimeout(timer);
      if (!exited) kill("SIGKILL");
      await this.#child.status;
      await this.#stdout;
      return await this.#stderr;
    })();
    return this.#stopped;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** The local runner, started with the command of `deno task serve`. */
async function startRunner(): Promise<Running & { url: string; secret: string }> {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const runner = new Running(config.tasks.serve, {});
  try {
    const ready = JSON.parse(await runner.line(/^\{/, "deno task serve"));
    assert.match(ready.url, /^ws:\/\/127\.0\.0\.1:\d+\/$/);
    assert.match(ready.secret, /^[0-9a-f]{64}$/, "the runner generates and prints the secret");
    return Object.assign(runner, { url: String(ready.url), secret: String(ready.secret) });
  } catch (error) {
    await runner.stop();
    throw error;
  }
}

const ok = succeeded;

Deno.test("README.md shows each example's command as the test runs it", async () => {
  const readme = await Deno.readTextFile(README);
  for (const [name, command] of Object.entries(COMMANDS)) {
    assert.ok(
      readme.includes(command),
      `README.md lacks the ${name} example's command: ${command}`,
    );
  }
  assert.ok(readme.includes("./deno task build"), "README.md says to build the bundles first");
});

Deno.test("README.md's code blocks are runnable or copied verbatim from the examples", async () => {
  assert.deepEqual(await checkMarkdown(README), []);
});

Deno.test("tools/check_readme.ts finds drift, unsourced blocks and ignored blocks", async () => {
  await using dir = await tempDirectory("mist-check-readme-");
  await Deno.writeTextFile(`${dir.path}/a.ts`, "x;\n  // #region r\n  y;\n  // #endregion r\n");
  const check = async (markdown: string) => {
    await Deno.writeTextFile(`${dir.path}/README.md`, markdown);
    return await checkMarkdown(`${dir.path}/README.md`);
  };
  const fence = "```";
  assert.deepEqual(await check(`<!-- from a.ts#r -->\n${fence}ts ignore\ny;\n${fence}\n`), []);
  // In a list item: the fence's indentation is not part of the code.
  const indented = "x;\n  // #region r\n  y;\n  // #endregion r".replaceAll("\n", "\n  ");
  assert.deepEqual(
    await check(`- item\n\n  <!-- from a.ts -->\n  ${fence}ts\n  ${indented}\n  ${fence}\n`),
    [],
  );
  const [drift] = await check(`<!-- from a.ts#r -->\n${fence}ts ignore\nz;\n${fence}\n`);
  assert.match(drift, /README\.md:2: the block differs from a\.ts#r: line 1 .*"y;".*"z;"/);
  assert.match(
    (await check(`${fence}html\n<p>\n${fence}\n`))[0],
    /README\.md:1: a html block must be copied from a file/,
  );
  assert.match(
    (await check(`${fence}ts ignore\nx;\n${fence}\n`))[0],
    /README\.md:1: an "ignore" ts block must be runnable/,
  );
  assert.deepEqual(await check(`${fence}ts\nx;\n${fence}\n\n${fence}sh\nls\n${fence}\n`), []);
  assert.match((await check(`<!-- from a.ts#nope -->\n${fence}ts\n${fence}\n`))[0], /#region nope/);
  assert.match((await check(`<!-- from a.ts -->\ntext\n`))[0], /right before a code fence/);
  assert.throws(() => codeBlocks(`${fence}ts\nx;\n`), /line 1: the code block is never closed/);
  assert.equal(
    region("a\n// #region r\n  b\n// #region s\n  c\n// #endregion s\n// #endregion r", "r"),
    "b\nc",
  );
});

Deno.test("the examples run as README.md says, against the runner", async (t) => {
  await using runner = await startRunner();
  const env = { MIST_URL: runner.url, MIST_SECRET: runner.secret };

  await t.step(
    "examples/deno_client.ts calls echo with exactly the permissions shown",
    async () => {
      const output = ok(await run(COMMANDS.deno, env), COMMANDS.deno);
      assert.equal(output.stdout, 'echo: ["hello",42]\n');
    },
  );

  await t.step("examples/deno_client.ts without MIST_URL says what to set", async () => {
    const output = await run(COMMANDS.deno, { MIST_SECRET: runner.secret, MIST_URL: "" });
    assert.equal(output.code, 2);
    assert.match(output.stderr, /Set MIST_URL and MIST_SECRET/);
  });

  // What `./deno task build` does: writes dist/ (both bundles and their types).
  await build(new URL("dist/", ROOT));

  await t.step("examples/node_client.mjs calls echo and is called back, under Node", async () => {
    const output = ok(await run(COMMANDS.node, env), COMMANDS.node);
    assert.equal(output.stdout, 'echo: ["hello",42]\ncallback: "from Node"\n');
  });

  await t.step("examples/browser/ serves a page that calls echo in headless Chromium", async () => {
    await ensureChromium();
    await using page = new Running(COMMANDS.browser, env);
    const open = await page.line(/^Open http:\/\/127\.0\.0\.1:\d+\/$/, "examples/browser/serve.ts");
    await using profile = await tempDirectory("mist-examples-chromium-");
    await using context = await launchChromium(profile.path);
    const tab = await context.newPage();
    const errors: string[] = [];
    tab.on("pageerror", (error) => errors.push(String(error)));
    const logged: string[] = [];
    tab.on("console", (message) => logged.push(message.text()));
    await tab.goto(open.slice("Open ".length));
    const result = tab.locator("#result");
    await result.filter({ hasText: "echo:" }).waitFor();
    assert.equal(await result.textContent(), 'echo: ["from the page"]');
    assert.ok(logged.includes('echo: ["from the page"]'), logged.join("\n"));
    assert.deepEqual(errors, []);
    await tab.close();
  });
});

Deno.test("examples/typed.ts: typed calls both ways, a valibot schema's refusal", async () => {
  const output = ok(await run(COMMANDS.typed), COMMANDS.typed);
  assert.equal(
    output.stdout,
    "typed: 5; file:///a.ts in dark; " +
      'refused: Remote "add" failed: Invalid params for "add": [0]: Invalid type: Expected number but received "2"; ' +
      'refused: Remote "sub" failed: Unknown method "sub"\n',
  );
});

Deno.test("examples/relay.ts: the server forwards a call from client A to client B", async () => {
  const output = ok(await run(COMMANDS.relay), COMMANDS.relay);
  assert.equal(output.stdout, "relayed: B says hello to A\n");
});

/** A temporary directory that `await using` removes. */
async function tempDirectory(prefix: string): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}
