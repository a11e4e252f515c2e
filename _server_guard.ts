/**
 * What keeps `serveLocal` standing against a hostile local client (internal; not exported by
 * mod.ts). Deno-only.
 *
 * - {@linkcode ConnectionSlots}: counts a socket against `maxConnections` from the upgrade until
 *   it closes, but a socket that is still connecting only until `upgradeTimeoutMs`: Deno never
 *   fires any event on an upgraded socket whose TCP connection was reset before the 101 (it
 *   stays CONNECTING for good), so counting it until "close" leaked the slot forever.
 * - {@linkcode Listener}: `Deno.serve` whose accept loop may fail (at the file descriptor limit
 *   it rejects `finished` and stops listening) and is then started again on the same port with
 *   backoff (`_relisten.ts`), existing connections untouched; and whose stop is bounded, since
 *   `HttpServer.shutdown()` never resolves while such a reset upgrade is pending.
 *
 * @module
 */

import type { Clock } from "./clock.ts";
import { type Logger, RateLimitedLog } from "./log.ts";
import type { WebSocketLike } from "./transport.ts";
import { HandlerFailures, Relisten, waitAtMost } from "./_relisten.ts";

/** Refusals logged one by one per interval; the rest are summed up in one line per interval. */
export const REFUSAL_LOG_BURST = 10;
/** The refusal log's interval. */
export const REFUSAL_LOG_INTERVAL_MS = 10_000;

/** `readyState` of a socket still connecting (WHATWG, and `ws` on Node). */
const CONNECTING = 0;

/** The close code and reason of a socket that opened after its upgrade deadline. */
const LATE_CLOSE: [number, string] = [1013, "Upgrade took too long"];

/**
 * Connection slots: at most `max` sockets held at once. A socket holds its slot from the upgrade
 * until its "close" (or an "error" before it opened), and while still connecting at most until
 * the upgrade deadline. A socket that opens after its deadline (or after `releaseConnecting()`)
 * is closed at once with 1013 and never reaches the application.
 *
 * @example
 * ```ts ignore
 * const slots = new ConnectionSlots(1024, 5000, realClock);
 * if (slots.full) return refuse(503, "Too many connections");
 * const { socket, response } = Deno.upgradeWebSocket(request);
 * slots.admit(socket, () => startPeer(socket));
 * ```
 */
export class ConnectionSlots {
  readonly #max: number;
  readonly #upgradeTimeoutMs: number;
  readonly #clock: Clock;
  /** Held sockets, with the deadline timer of those still connecting. */
  readonly #held = new Map<WebSocketLike, { timer: unknown }>();
  #emptied: (() => void)[] = [];

  /**
   * Makes the slots; nothing is held yet.
   *
   * @param max Most sockets held at once.
   * @param upgradeTimeoutMs How long a socket may stay connecting and still hold a slot.
   * @param clock Where the deadline timers come from.
   */
  constructor(max: number, upgradeTimeoutMs: number, clock: Clock) {
    this.#max = max;
    this.#upgradeTimeoutMs = upgradeTimeoutMs;
    this.#clock = clock;
  }

  /** Sockets holding a slot now. */
  get size(): number {
    return this.#held.size;
  }

  /** Whether a new socket would exceed the limit. */
  get full(): boolean {
    return this.#held.size >= this.#max;
  }

  /**
   * Holds a slot for a socket just upgraded (by `Deno.upgradeWebSocket`, or `ws` on Node).
   *
   * @param socket The upgraded socket, still connecting.
   * @param opened Called once when it opens in time; not called if it never does.
   */
  admit(socket: WebSocketLike, opened: () => void): void {
    const entry = {
      timer: this.#clock.setTimeout(() => {
        entry.timer = undefined;
        if (socket.readyState === CONNECTING) this.#release(socket);
      }, this.#upgradeTimeoutMs),
    };
    this.#held.set(socket, entry);
    let open = false;
    socket.addEventListener("open", () => {
      open = true;
      this.#clock.clearTimeout(entry.timer);
      entry.timer = undefined;
      if (this.#held.get(socket) !== entry) return closeQuietly(socket, ...LATE_CLOSE);
      opened();
    });
    // An "error" before "open" is the upgrade failing: no other event follows.
    socket.addEventListener("error", () => open || this.#release(socket));
    socket.addEventListener("close", () => this.#release(socket));
  }

  /** Frees the slots of every socket still connecting (shutdown); those that open are closed. */
  releaseConnecting(): void {
    for (const socket of [...this.#held.keys()]) {
      if (socket.readyState === CONNECTING) this.#release(socket);
    }
  }

  /**
   * Resolves once no socket holds a slot, or after `timeoutMs`, whichever comes first.
   *
   * @param timeoutMs The bound, on the global timers (shutdown must end even with a fake clock).
   * @returns When empty or timed out.
   */
  async whenEmpty(timeoutMs: number): Promise<void> {
    if (this.#held.size === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let wake!: () => void;
    try {
      await new Promise<void>((resolve) => {
        wake = resolve;
        this.#emptied.push(wake);
        timer = setTimeout(resolve, timeoutMs);
      });
    } finally {
      clearTimeout(timer);
      this.#emptied = this.#emptied.filter((waiter) => waiter !== wake);
    }
  }

  #release(socket: WebSocketLike): void {
    const entry = this.#held.get(socket);
    if (!entry) return;
    this.#clock.clearTimeout(entry.timer);
    this.#held.delete(socket);
    if (this.#held.size === 0) { for (const wake of this.#emptied.splice(0)) wake(); }
  }
}

function closeQuietly(socket: WebSocketLike, code: number, reason: string): void {
  try {
    socket.close(code, reason);
  } catch {
    socket.close();
  }
}

/**
 * The server's log of refused requests: anyone who can reach the port (a web page, too) can
 * cause refusals, so at most {@linkcode REFUSAL_LOG_BURST} lines per
 * {@linkcode REFUSAL_LOG_INTERVAL_MS} are written one by one, and one more sums up the rest:
 * "Refused 9990 more connections in the last 10 s (401: 9000, 426: 990)". Keyed by HTTP status.
 *
 * @param logger Where the lines go (info level).
 * @param clock Where the interval's timer comes from.
 * @returns The log; `flush()` it on shutdown.
 */
export function refusalLog(logger: Logger, clock: Clock): RateLimitedLog {
  return new RateLimitedLog((line) => logger.info(line), {
    burst: REFUSAL_LOG_BURST,
    intervalMs: REFUSAL_LOG_INTERVAL_MS,
    clock,
    summarize: (count, counts, seconds) =>
      `Refused ${count} more connections in the last ${seconds} s (${counts})`,
  });
}

/** What {@linkcode Listener} needs. */
export interface ListenerOptions {
  /** Address to bind. */
  hostname: string;
  /** Port; 0 picks a free one the first time, and later attempts reuse the one bound. */
  port: number;
  /** Answers every request. */
  handler: (
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ) => Response | Promise<Response>;
  /** Timers of the backoff. */
  clock: Clock;
  /** Where incidents and recoveries are reported (error, then info). */
  logger: Logger;
  /** Called once per incident, when the accept loop fails. */
  onListenError?: (error: Error) => void;
}

/** One `Deno.serve` and whether its accept loop is still running. */
interface Instance {
  readonly server: Deno.HttpServer<Deno.NetAddr>;
  readonly controller: AbortController;
  running: boolean;
}

/**
 * `Deno.serve` that outlives a failed accept loop. When `finished` settles while the listener
 * is not being stopped (at the file descriptor limit Deno rejects it with "Too many open files"
 * and closes the listening socket), {@linkcode Relisten} reports it once per incident and
 * serves again on the same address and port with backoff, until it can or `stop()` is called.
 * Connections already accepted, upgraded or not, stay open: the failed server is left alone,
 * never shut down. A handler that throws gets a 500 (see {@linkcode HandlerFailures}).
 *
 * @example
 * ```ts ignore
 * const listener = new Listener({ hostname, port, handler, clock, logger });
 * console.log(listener.port);
 * await listener.stop(1000);
 * ```
 */
export class Listener {
  readonly #options: ListenerOptions;
  /** The bound port (the real one when 0 was asked). */
  readonly port: number;
  readonly #relisten: Relisten;
  readonly #failures: HandlerFailures;
  #current: Instance | undefined;

  /**
   * Starts listening.
   *
   * @param options See {@linkcode ListenerOptions}.
   * @throws {Deno.errors.AddrInUse} The port is taken (only here, not on later attempts).
   */
  constructor(options: ListenerOptions) {
    this.#options = options;
    this.#failures = new HandlerFailures(options.logger, options.clock);
    const { hostname, clock, logger, onListenError } = options;
    this.#relisten = new Relisten({
      hostname,
      port: () => this.port,
      // Synchronous: Deno.serve throws when it cannot listen.
      listen: () => {
        this.#current = this.#serve(this.port);
      },
      clock,
      logger,
      onListenError,
    });
    this.#current = this.#serve(options.port);
    this.port = this.#current.server.addr.port;
  }

  /**
   * Stops listening and ends the connections of the current server, then waits at most
   * `timeoutMs` for its `finished`. Not `shutdown()`: that waits for every connection, and a
   * reset upgrade never ends. Instead the server's own signal is aborted, which closes them.
   *
   * @param timeoutMs The bound, on the global timers.
   * @returns When the server finished or the bound passed.
   */
  async stop(timeoutMs: number): Promise<void> {
    this.#relisten.stop();
    this.#failures.flush();
    const instance = this.#current;
    this.#current = undefined;
    // Never abort a server whose loop ended: Deno's abort listener would throw BadResource.
    if (!instance?.running) return;
    instance.controller.abort();
    await waitAtMost(instance.server.finished, timeoutMs);
  }

  #serve(port: number): Instance {
    const { hostname, handler } = this.#options;
    const onError = (error: unknown): Response => {
      this.#failures.failed(error);
      return new Response("Internal server error\n", {
        status: 500,
        headers: { "content-type": "text/plain", connection: "close" },
      });
    };
    const controller = new AbortController();
    const server = Deno.serve(
      { hostname, port, signal: controller.signal, onListen() {}, onError },
      handler,
    );
    const instance: Instance = { server, controller, running: true };
    server.finished.then(
      () => this.#lost(instance, new Error("Listener stopped")),
      (error) => this.#lost(instance, error),
    );
    return instance;
  }

  #lost(instance: Instance, error: unknown): void {
    instance.running = false;
    if (this.#relisten.stopped || instance !== this.#current) return;
    this.#current = undefined;
    this.#relisten.lost(error);
  }
}
