/**
 * A child process with a hard deadline: its stdout is read as lines, its stderr goes to ours,
 * and it is killed by its PID (SIGTERM, then SIGKILL) when it overstays.
 *
 * @module
 */

/** Thrown when a child does not answer in time; the child has been killed by then. */
export class ChildTimeout extends Error {
  /** Names the child and the deadline. */
  constructor(what: string, ms: number) {
    super(`${what} did not answer within ${Math.round(ms / 1000)} s`);
    this.name = "ChildTimeout";
  }
}

/** How long a child has to exit after SIGTERM before it gets SIGKILL. */
const TERM_GRACE_MS = 3_000;

function sleep(ms: number): { done: Promise<void>; cancel(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = new Promise<void>((resolve) => timer = setTimeout(resolve, ms));
  return { done, cancel: () => clearTimeout(timer) };
}

/** Writes all of `text` to our stderr. */
export async function writeStderr(text: string): Promise<void> {
  let bytes = new TextEncoder().encode(text);
  // Each write takes at least one byte or throws, so this ends.
  while (bytes.length > 0) bytes = bytes.subarray(await Deno.stderr.write(bytes));
}

/** Options of {@linkcode Child.spawn}. */
export interface SpawnOptions {
  /** The working directory. */
  readonly cwd: string;
  /** Extra environment variables. */
  readonly env?: Record<string, string>;
  /** What to call the child in messages. */
  readonly label: string;
}

/** A running child process. */
export class Child {
  readonly #process: Deno.ChildProcess;
  readonly #lines: ReadableStreamDefaultReader<string>;
  readonly #label: string;
  #buffer = "";
  #exited = false;
  readonly #status: Promise<Deno.CommandStatus>;

  private constructor(process: Deno.ChildProcess, label: string) {
    this.#process = process;
    this.#label = label;
    this.#lines = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#status = process.status.then((status) => {
      this.#exited = true;
      return status;
    });
  }

  /** Starts `command args…`. */
  static spawn(command: string, args: readonly string[], options: SpawnOptions): Child {
    const process = new Deno.Command(command, {
      args: [...args],
      cwd: options.cwd,
      env: options.env,
      stdin: "null",
      stdout: "piped",
      stderr: "inherit", // Children print errors and npm chatter there; our stdout stays the table.
    }).spawn();
    return new Child(process, options.label);
  }

  /** The child's process id. */
  get pid(): number {
    return this.#process.pid;
  }

  /**
   * Reads the next line of stdout (without its newline), or undefined at end of stream. Kills
   * the child and throws {@linkcode ChildTimeout} after `ms`.
   */
  async nextLine(ms: number): Promise<string | undefined> {
    const timer = sleep(ms);
    try {
      // Bounded by the stream's end and by the timer: each read either adds text or ends.
      while (!this.#buffer.includes("\n")) {
        const read = await Promise.race([this.#lines.read(), timer.done.then(() => "timeout")]);
        if (read === "timeout") {
          await this.stop();
          throw new ChildTimeout(this.#label, ms);
        }
        if (typeof read === "string" || read.done) {
          const rest = this.#buffer;
          this.#buffer = "";
          return rest === "" ? undefined : rest;
        }
        this.#buffer += read.value;
      }
      const end = this.#buffer.indexOf("\n");
      const line = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 1);
      return line;
    } finally {
      timer.cancel();
    }
  }

  /**
   * Copies whatever else the child prints on stdout to our stderr, in the background, so that
   * a chatty server can never fill its pipe and stall. Ends when the child's stdout does.
   */
  forwardRest(): void {
    const pump = async (): Promise<void> => {
      await writeStderr(this.#buffer);
      this.#buffer = "";
      for (let read = await this.#lines.read(); !read.done; read = await this.#lines.read()) {
        await writeStderr(read.value);
      }
    };
    pump().catch(() => {}); // Cancelled by stop(): nothing left to copy.
  }

  /** Waits for the child to exit; kills it and throws {@linkcode ChildTimeout} after `ms`. */
  async exit(ms: number): Promise<Deno.CommandStatus> {
    const timer = sleep(ms);
    try {
      const status = await Promise.race([this.#status, timer.done.then(() => undefined)]);
      if (status !== undefined) return status;
      await this.stop();
      throw new ChildTimeout(this.#label, ms);
    } finally {
      timer.cancel();
    }
  }

  /** Sends SIGTERM to the child's PID, then SIGKILL if it has not exited after a grace period. */
  async stop(): Promise<void> {
    if (this.#exited) return;
    this.#signal("SIGTERM");
    const grace = sleep(TERM_GRACE_MS);
    const exited = await Promise.race([
      this.#status.then(() => true),
      grace.done.then(() => false),
    ]);
    grace.cancel();
    if (!exited) {
      this.#signal("SIGKILL");
      await this.#status;
    }
    await this.#lines.cancel().catch(() => {});
  }

  #signal(signal: Deno.Signal): void {
    try {
      Deno.kill(this.#process.pid, signal);
    } catch {
      // It exited between the check and the signal.
    }
  }
}
