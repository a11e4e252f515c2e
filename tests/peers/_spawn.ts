/**
 * Process plumbing for tests/interop_test.ts: start the upstream-style server, run a scripted
 * client to completion, all bounded, every child killed by its PID.
 *
 * @module
 */
import { type Child, spawn } from "../_helpers.ts";

const PEERS = new URL("./", import.meta.url);
const DENO = Deno.execPath();

/** A record one of the scripted clients printed (see ./_script.mjs). */
export type ScriptRecord = Record<string, unknown> & {
  op: string;
  ok?: boolean;
  label?: string;
  error?: string;
};

/** A step of a script (see ./_script.mjs). */
export type Step = Record<string, unknown> & { op: string; label?: string };

/** JSON lines as they arrive; `next` waits, bounded, for the first one matching. */
export class JsonLines {
  /** Every line so far, in order (a line that is not JSON becomes `{text}`). */
  readonly items: Record<string, unknown>[] = [];
  #wakers = new Set<() => void>();

  /** Adds a line (a blank one is skipped) and wakes the waiters. */
  push(line: string): void {
    if (line.trim() === "") return;
    try {
      this.items.push(JSON.parse(line));
    } catch {
      this.items.push({ text: line });
    }
    for (const wake of [...this.#wakers]) wake();
  }

  /**
   * The first line, already here or not, that matches; `undefined` after `ms`.
   *
   * @param match The predicate.
   * @param ms How long to wait.
   * @returns The line, or `undefined` when none came in time.
   */
  next(
    match: (item: Record<string, unknown>) => boolean,
    ms: number,
  ): Promise<Record<string, unknown> | undefined> {
    return new Promise((resolve) => {
      const check = (): boolean => {
        const found = this.items.find(match);
        if (found === undefined) return false;
        this.#wakers.delete(check);
        clearTimeout(timer);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        this.#wakers.delete(check);
        resolve(undefined);
      }, ms);
      if (!check()) this.#wakers.add(check);
    });
  }
}

/**
 * A running child process (see `spawn` in `../_helpers.ts`) with its stdout read as JSON lines.
 * `await using` ends it when the test ends.
 */
export interface Spawned extends Child {
  readonly lines: JsonLines;
}

/**
 * Spawns `command` with its stdout read as JSON lines (and collected, as stderr is); writes
 * `input` to its stdin and closes it (stdin is `null` without input).
 *
 * @param command The program.
 * @param args Its arguments.
 * @param options Extra environment, stdin text.
 * @returns The handle.
 */
export function spawnLines(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; input?: string } = {},
): Spawned {
  const child = spawn(command, args, options);
  const lines = new JsonLines();
  child.stdout.onLine((line) => lines.push(line));
  return { ...child, lines };
}

/** Waits at most `ms` for `promise`; `undefined` when it did not settle in time. */
export async function atMost<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** What a scripted client run produced. */
export interface ScriptRun {
  /** One record per step run (a prefix of the script when it ended early). */
  records: ScriptRecord[];
  /** Its stderr. */
  stderr: string;
  /** Exit code, or `undefined` when it was killed for taking longer than allowed. */
  code: number | undefined;
}

/**
 * Runs a scripted client to completion: the steps go in on stdin, the records come out.
 *
 * @param command The program.
 * @param args Its arguments.
 * @param steps The script.
 * @param ms How long the whole run may take before the child is killed.
 * @returns The records, stderr and exit code.
 */
export async function runScript(
  command: string,
  args: string[],
  steps: Step[],
  ms: number,
): Promise<ScriptRun> {
  await using child = spawnLines(command, args, { input: JSON.stringify(steps) });
  const exit = await atMost(child.exited, ms);
  const { stderr } = await child.stop("SIGKILL");
  const records = child.lines.items.filter((item) => typeof item.op === "string");
  return { records: records as ScriptRecord[], stderr, code: exit?.code };
}

/** The flags Node needs for a global `WebSocket` (Node 20: `--experimental-websocket`). */
export async function nodeFlags(): Promise<string[]> {
  const { stdout } = await new Deno.Command("node", {
    args: ["--version"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const major = Number(/^v(\d+)\./.exec(new TextDecoder().decode(stdout))?.[1]);
  return major < 22 ? ["--experimental-websocket", "--no-warnings"] : ["--no-warnings"];
}

/**
 * A running upstream-style server (./upstream_server.mjs). `await using` kills it when the test
 * ends.
 */
export interface UpstreamServer extends AsyncDisposable {
  readonly port: number;
  readonly url: string;
  /** Its event lines (connection, refused, notification, request, dropped, close). */
  readonly events: JsonLines;
  /** Kills it by its PID; resolves with its stderr. */
  stop(): Promise<string>;
}

/**
 * Starts ./upstream_server.mjs under Node on a free port (PEER_ANY_PORT=1) with `secretHex`.
 *
 * @param secretHex The secret, 64 hex characters.
 * @returns The server, once it printed its ready line.
 * @throws {Error} No ready line within 10 s (its stderr is in the message).
 */
export async function startUpstreamServer(secretHex: string): Promise<UpstreamServer> {
  const child = spawnLines("node", [new URL("upstream_server.mjs", PEERS).pathname], {
    env: { COCOON_WS_PORT: "0", PEER_ANY_PORT: "1", COCOON_WS_SECRET: secretHex },
  });
  const ready = await child.lines.next((line) => typeof line.port === "number", 10_000);
  if (!ready) {
    const { stderr } = await child.stop("SIGKILL");
    throw new Error(`The upstream-style server printed no ready line within 10 s:\n${stderr}`);
  }
  const port = ready.port as number;
  const stop = async () => (await child.stop("SIGKILL")).stderr;
  return {
    port,
    url: `ws://127.0.0.1:${port}/`,
    events: child.lines,
    stop,
    [Symbol.asyncDispose]: async () => void await stop(),
  };
}

/**
 * Runs the webview-style client (./webview_client.mjs, under Node) with a script.
 *
 * @param port The server's port.
 * @param secretHex The secret.
 * @param steps The script.
 * @param ms How long the run may take.
 * @returns The run.
 */
export async function runWebviewClient(
  port: number,
  secretHex: string,
  steps: Step[],
  ms: number,
): Promise<ScriptRun> {
  const script = new URL("webview_client.mjs", PEERS).pathname;
  return await runScript(
    "node",
    [...await nodeFlags(), script, String(port), secretHex],
    steps,
    ms,
  );
}

/**
 * Runs the Rust-style client (./rust_style_client.ts, under Deno) with a script.
 *
 * @param port The server's port.
 * @param secretHex The secret.
 * @param steps The script.
 * @param ms How long the run may take.
 * @returns The run.
 */
export async function runRustStyleClient(
  port: number,
  secretHex: string,
  steps: Step[],
  ms: number,
): Promise<ScriptRun> {
  const script = new URL("rust_style_client.ts", PEERS).pathname;
  return await runScript(
    DENO,
    ["run", "--quiet", "--allow-net=127.0.0.1", script, String(port), secretHex],
    steps,
    ms,
  );
}

/**
 * Runs Mist's client under Node (./mist_node_client.mjs with the built bundle) with a script.
 *
 * @param bundle The bundle's path (tools/build.ts).
 * @param url The server's URL.
 * @param secretHex The secret.
 * @param steps The script.
 * @param ms How long the run may take.
 * @param options Client options besides the secret (JSON-serialisable).
 * @returns The run.
 */
export async function runMistNodeClient(
  bundle: string,
  url: string,
  secretHex: string,
  steps: Step[],
  ms: number,
  options: Record<string, unknown> = {},
): Promise<ScriptRun> {
  const script = new URL("mist_node_client.mjs", PEERS).pathname;
  const bundleUrl = new URL(`file://${bundle}`).href;
  return await runScript(
    "node",
    [...await nodeFlags(), script, bundleUrl, url, secretHex, JSON.stringify(options)],
    steps,
    ms,
  );
}
