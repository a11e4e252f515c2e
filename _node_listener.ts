/**
 * The Node face's listening socket (internal; not exported by mod.ts). Node-only.
 *
 * What Node does at the file descriptor limit (Node 20, libuv 1.4x, Linux): libuv keeps one
 * spare descriptor; when `accept` fails with EMFILE/ENFILE it closes the spare, accepts every
 * pending connection and closes it at once, and takes the spare back. Those clients see their
 * connection closed before any byte; the server emits nothing and keeps listening, and accepts
 * again as soon as descriptors are free. Only when that fails (no spare, or another `accept`
 * error such as ENOBUFS) does the server emit "error" (`syscall: "accept"`) — and libuv then
 * retries `accept` at once, in the same loop, so an unhandled error kills the process and a
 * handled one that is ignored can spin while the condition lasts.
 *
 * {@linkcode NodeListener} therefore handles "error" after listening as the Deno face handles a
 * failed accept loop: it reports it once per incident (an error line and `onListenError`),
 * closes that listening socket (which ends libuv's loop; accepted connections stay open), and
 * listens again on the same port after 100 ms, doubling to at most 5 s, until it can.
 *
 * @module
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Clock } from "./clock.ts";
import { type Logger, RateLimitedLog } from "./log.ts";
import { RELISTEN_FIRST_DELAY_MS, RELISTEN_MAX_DELAY_MS } from "./_server_guard.ts";

/** What {@linkcode NodeListener} needs. */
export interface NodeListenerOptions {
  /** Address to bind. */
  hostname: string;
  /** Port; 0 picks a free one the first time, and later attempts reuse the one bound. */
  port: number;
  /** Answers a request that is not an upgrade. */
  request: (request: IncomingMessage, response: ServerResponse) => Promise<void>;
  /** Takes an upgrade request; the socket has an "error" listener already. */
  upgrade: (request: IncomingMessage, socket: Duplex, head: Uint8Array) => Promise<void>;
  /** Timers of the backoff. */
  clock: Clock;
  /** Where incidents and recoveries are reported (error, then info). */
  logger: Logger;
  /** Called once per incident, when accepting fails. */
  onListenError?: (error: Error) => void;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * `node:http` servers on one address and port that outlive a failed `accept`: see the module
 * documentation. Every accepted socket is tracked, whichever server accepted it, so `stop()`
 * can end them all. A handler that throws costs its connection (a 500 for a plain request);
 * its failures are logged at error level, rate-limited.
 *
 * @example
 * ```ts ignore
 * const listener = await NodeListener.listen({ hostname, port, request, upgrade, clock, logger });
 * console.log(listener.port);
 * await listener.stop(1000);
 * ```
 */
export class NodeListener {
  readonly #options: NodeListenerOptions;
  readonly #sockets = new Set<Socket>();
  readonly #failures: RateLimitedLog;
  #port: number;
  #current: Server | undefined;
  #retry: unknown;
  #delayMs = RELISTEN_FIRST_DELAY_MS;
  #attempts = 0;
  #stopped = false;
  /** A failure was reported and no new server has kept running since. */
  #incident = false;
  #healthy: unknown;

  private constructor(options: NodeListenerOptions) {
    this.#options = options;
    this.#port = options.port;
    this.#failures = new RateLimitedLog((line) => options.logger.error(line), {
      clock: options.clock,
      summarize: (count, _counts, seconds) =>
        `${count} more requests failed in the last ${seconds} s`,
    });
  }

  /**
   * Starts listening.
   *
   * @param options See {@linkcode NodeListenerOptions}.
   * @returns The listener, once listening.
   * @throws {Error} Node's listen error, e.g. `code: "EADDRINUSE"` when the port is taken (only
   *   here, not on later attempts).
   */
  static async listen(options: NodeListenerOptions): Promise<NodeListener> {
    const listener = new NodeListener(options);
    const server = listener.#create();
    await listener.#listen(server);
    listener.#current = server;
    return listener;
  }

  /** The bound port (the real one when 0 was asked). */
  get port(): number {
    return this.#port;
  }

  /**
   * Stops listening and destroys every socket still open, then waits at most `timeoutMs` for
   * the server to report it closed.
   *
   * @param timeoutMs The bound, on the global timers.
   * @returns When closed or the bound passed.
   */
  async stop(timeoutMs: number): Promise<void> {
    this.#stopped = true;
    this.#options.clock.clearTimeout(this.#retry);
    this.#options.clock.clearTimeout(this.#healthy);
    this.#retry = this.#healthy = undefined;
    this.#failures.flush();
    const server = this.#current;
    this.#current = undefined;
    const closed = new Promise<void>((resolve) => {
      if (!server?.listening) return resolve();
      server.close(() => resolve());
    });
    for (const socket of this.#sockets) socket.destroy();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      closed,
      new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs)),
    ]);
    clearTimeout(timer);
  }

  #create(): Server {
    const { request, upgrade } = this.#options;
    // Node's defaults otherwise: Nagle off, 60 s for request headers, idle keep-alive 5 s.
    const server = createServer();
    server.on("connection", (socket: Socket) => {
      if (this.#stopped) return void socket.destroy();
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
    });
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      request(req, res).catch((error) => {
        this.#failed(error);
        if (res.headersSent) return void res.destroy();
        res.writeHead(500, { "content-type": "text/plain", connection: "close" })
          .end("Internal server error\n");
      });
    });
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Uint8Array) => {
      // Node removed its own listener: a reset while the upgrade is decided must not throw.
      socket.on("error", () => {});
      upgrade(req, socket, head).catch((error) => {
        this.#failed(error);
        socket.destroy();
      });
    });
    return server;
  }

  #failed(error: unknown): void {
    this.#failures.log("", `Request handler failed: ${errorText(error)}`);
  }

  /** Listens on the address (and the bound port once there is one); rejects on failure. */
  #listen(server: Server): Promise<void> {
    return new Promise((resolve, reject) => {
      const failed = (error: Error): void => reject(error);
      server.once("error", failed);
      server.listen(this.#port, this.#options.hostname, () => {
        server.off("error", failed);
        const address = server.address();
        if (address !== null && typeof address === "object") this.#port = address.port;
        // Any later "error" is `accept` failing (see the module documentation).
        server.on("error", (error: Error) => this.#lost(server, error));
        resolve();
      });
    });
  }

  #lost(server: Server, error: Error): void {
    if (this.#stopped || server !== this.#current) return;
    this.#current = undefined;
    // Stops libuv retrying `accept`; connections already accepted stay open.
    server.close();
    this.#options.clock.clearTimeout(this.#healthy);
    this.#healthy = undefined;
    if (!this.#incident) this.#report(error);
    this.#schedule();
  }

  #report(error: Error): void {
    this.#incident = true;
    this.#attempts = 0;
    this.#delayMs = RELISTEN_FIRST_DELAY_MS;
    const { hostname, logger, onListenError } = this.#options;
    logger.error(
      `Cannot accept connections on ${hostname}:${this.#port}: ${error.message}; ` +
        `listening again with backoff (open connections stay open)`,
    );
    try {
      onListenError?.(error);
    } catch (thrown) {
      logger.error(`onListenError threw: ${errorText(thrown)}`);
    }
  }

  #schedule(): void {
    const delayMs = this.#delayMs;
    this.#delayMs = Math.min(this.#delayMs * 2, RELISTEN_MAX_DELAY_MS);
    this.#retry = this.#options.clock.setTimeout(() => void this.#relisten(), delayMs);
  }

  async #relisten(): Promise<void> {
    this.#retry = undefined;
    if (this.#stopped) return;
    this.#attempts++;
    const server = this.#create();
    try {
      await this.#listen(server);
    } catch {
      return this.#schedule(); // still out of descriptors, or the port is taken: later
    }
    if (this.#stopped) return void server.close();
    this.#current = server;
    // Over once this server has kept accepting as long as the longest backoff step.
    this.#healthy = this.#options.clock.setTimeout(() => {
      this.#healthy = undefined;
      this.#incident = false;
    }, RELISTEN_MAX_DELAY_MS);
    const tries = this.#attempts === 1 ? "1 attempt" : `${this.#attempts} attempts`;
    this.#options.logger.info(
      `Listening again on ${this.#options.hostname}:${this.#port} after ${tries}`,
    );
  }
}
