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
 * listens again on the same port after 100 ms, doubling to at most 5 s, until it can (the state
 * machine both faces share is `_relisten.ts`).
 *
 * @module
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Clock } from "./clock.ts";
import type { Logger } from "./log.ts";
import { HandlerFailures, Relisten, waitAtMost } from "./_relisten.ts";

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

/**
 * `node:http` servers on one address and port that outlive a failed `accept`: see the module
 * documentation; {@linkcode Relisten} listens again. Every accepted socket is tracked, whichever
 * server accepted it, so `stop()` can end them all. A handler that throws costs its connection
 * (a 500 for a plain request; see {@linkcode HandlerFailures}).
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
  readonly #failures: HandlerFailures;
  readonly #relisten: Relisten;
  #port: number;
  #current: Server | undefined;

  private constructor(options: NodeListenerOptions) {
    this.#options = options;
    this.#port = options.port;
    this.#failures = new HandlerFailures(options.logger, options.clock);
    const { hostname, clock, logger, onListenError } = options;
    this.#relisten = new Relisten({
      hostname,
      port: () => this.#port,
      listen: async () => {
        const server = this.#create();
        await this.#listen(server);
        if (this.#relisten.stopped) return void server.close();
        this.#current = server;
      },
      clock,
      logger,
      onListenError,
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
    this.#relisten.stop();
    this.#failures.flush();
    const server = this.#current;
    this.#current = undefined;
    const closed = new Promise<void>((resolve) => {
      if (!server?.listening) return resolve();
      server.close(() => resolve());
    });
    for (const socket of this.#sockets) socket.destroy();
    await waitAtMost(closed, timeoutMs);
  }

  #create(): Server {
    const { request, upgrade } = this.#options;
    // Node's defaults otherwise: Nagle off, 60 s for request headers, idle keep-alive 5 s.
    const server = createServer();
    server.on("connection", (socket: Socket) => {
      if (this.#relisten.stopped) return void socket.destroy();
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
    });
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      request(req, res).catch((error) => {
        this.#failures.failed(error);
        if (res.headersSent) return void res.destroy();
        res.writeHead(500, { "content-type": "text/plain", connection: "close" })
          .end("Internal server error\n");
      });
    });
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Uint8Array) => {
      // Node removed its own listener: a reset while the upgrade is decided must not throw.
      socket.on("error", () => {});
      upgrade(req, socket, head).catch((error) => {
        this.#failures.failed(error);
        socket.destroy();
      });
    });
    return server;
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
    if (this.#relisten.stopped || server !== this.#current) return;
    this.#current = undefined;
    // Stops libuv retrying `accept`; connections already accepted stay open.
    server.close();
    this.#relisten.lost(error);
  }
}
