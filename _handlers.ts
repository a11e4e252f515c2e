/**
 * The other side's calls while their handlers run (internal): each handler's context and
 * signal, cancellation, the drain before a shutdown, and the abort when the connection closes.
 * Runs in Deno, browsers and Node (no `Deno.*` here).
 *
 * @module
 */

import { idKey, type Params, type RequestId } from "./envelope.ts";
import type { Clock } from "./clock.ts";
import { type Logger, RateLimitedLog } from "./log.ts";
import type { HandlerContext, HandlerFn } from "./registry.ts";
import type { Caller } from "./peer.ts";
import { Deadline } from "./_deadline.ts";
import { quoted, thrownText } from "./_reply.ts";

/** A handler's context; the signal is made on first use since most handlers never read it. */
class Context<Remote> implements HandlerContext<Remote> {
  readonly peer: Caller<Remote>;
  readonly method: string;
  readonly #id: RequestId | null;
  #controller: AbortController | undefined;
  #reason: unknown;
  #aborted = false;

  constructor(peer: Caller<Remote>, method: string, id: RequestId | null) {
    this.peer = peer;
    this.method = method;
    this.#id = id;
  }

  /** Another peer's id is given as its JSON text. */
  get id(): number | bigint | string | null {
    const id = this.#id;
    return typeof id === "object" && id !== null ? id.text : id;
  }

  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    if (this.#aborted) this.#controller.abort(this.#reason);
    return this.#controller.signal;
  }

  /** Whether the handler was told to stop (cancelled, drained, disconnected). */
  get aborted(): boolean {
    return this.#aborted;
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}

/**
 * Runs handlers and tracks those still running. Handlers start synchronously, in the order
 * `run()` is called, and run concurrently; a request's outcome goes to `reply`. A handler that
 * throws is logged at warn (rate-limited), or at debug when it was told to stop first.
 *
 * @example
 * ```ts ignore
 * const handlers = new RunningHandlers(peer, reply, logger, clock);
 * handlers.run(handler, 7, "echo", [1]); // reply(7, "echo", true, [1]) once it returns
 * ```
 */
export class RunningHandlers<Remote> {
  readonly #peer: Caller<Remote>;
  readonly #reply: (id: RequestId, method: string, ok: boolean, value: unknown) => void;
  readonly #logger: Logger;
  readonly #clock: Clock;
  /** Requests still running, by id key: those `$/cancel`, a drain or the close can abort. */
  readonly #running = new Map<number | string, Context<Remote>>();
  /** Throwing handlers: the first few per interval, then a summary counted by method. */
  readonly #failures: RateLimitedLog;
  #count = 0;
  #idle: (() => void) | undefined;
  #closed: unknown;

  /**
   * @param peer The `ctx.peer` of every handler.
   * @param reply Sends a request's outcome.
   * @param logger Where a handler's failure is reported.
   * @param clock Where `drain()`'s timer comes from.
   */
  constructor(
    peer: Caller<Remote>,
    reply: (id: RequestId, method: string, ok: boolean, value: unknown) => void,
    logger: Logger,
    clock: Clock,
  ) {
    this.#peer = peer;
    this.#reply = reply;
    this.#logger = logger;
    this.#clock = clock;
    this.#failures = new RateLimitedLog((line) => logger.warn(line), {
      clock,
      summarize: (count, counts, seconds) =>
        `${count} more handlers threw in the last ${seconds} s (${counts})`,
    });
  }

  /** Handlers running, of requests and notifications. */
  get count(): number {
    return this.#count;
  }

  /**
   * Starts a handler.
   *
   * @param handler The registered function.
   * @param id The request's id, or `null` for a notification.
   * @param method The wire name.
   * @param params Its params.
   */
  run(
    handler: HandlerFn<Params, Remote>,
    id: RequestId | null,
    method: string,
    params: Params,
  ): void {
    const context = new Context(this.#peer, method, id);
    this.#count++;
    let result: unknown;
    try {
      result = handler(params, context);
    } catch (error) {
      return this.#done(context, undefined, id, method, false, error);
    }
    if (
      !(result instanceof Promise) &&
      (typeof result !== "object" || result === null ||
        typeof (result as PromiseLike<unknown>).then !== "function")
    ) {
      return this.#done(context, undefined, id, method, true, result);
    }
    // Only a handler still running can be cancelled or aborted, so only such a one is listed.
    const key = id === null ? undefined : idKey(id);
    if (key !== undefined) this.#running.set(key, context);
    // The handler itself closed the connection, before it was listed.
    if (this.#closed !== undefined) context.abort(this.#closed);
    (result as PromiseLike<unknown>).then(
      (value) => this.#done(context, key, id, method, true, value),
      (error) => this.#done(context, key, id, method, false, error),
    );
  }

  /**
   * Fires a running request's signal (`$/cancel`); nothing when it is not running.
   *
   * @param key The request's id key.
   * @param reason The signal's reason.
   */
  abort(key: number | string, reason: unknown): void {
    this.#running.get(key)?.abort(reason);
  }

  /**
   * Waits for running handlers to finish, at most `graceMs`; then fires the signals of those
   * still running.
   *
   * @param graceMs How long they may take.
   * @returns When none runs, or the grace period ended.
   */
  async drain(graceMs: number): Promise<void> {
    if (this.#count > 0) {
      await new Promise<void>((resolve) => {
        const grace = new Deadline(this.#clock, graceMs, undefined, "Drain", () => resolve());
        this.#idle = () => {
          grace.clear();
          resolve();
        };
      });
      this.#idle = undefined;
    }
    this.#abortAll(new DOMException("Grace period ended", "AbortError"));
  }

  /**
   * Fires every running handler's signal, and that of any listed later: the connection closed.
   *
   * @param reason The signals' reason.
   */
  close(reason: unknown): void {
    this.#closed = reason;
    this.#abortAll(reason);
    this.#failures.flush(); // its summary timer must not outlive the connection
  }

  #abortAll(reason: unknown): void {
    for (const context of this.#running.values()) context.abort(reason);
  }

  #done(
    context: Context<Remote>,
    key: number | string | undefined,
    id: RequestId | null,
    method: string,
    ok: boolean,
    value: unknown,
  ): void {
    this.#count--;
    if (key !== undefined) this.#running.delete(key);
    if (this.#count === 0) this.#idle?.();
    if (!ok) {
      const kind = id === null ? "Notification" : "Request";
      const line = `${kind} handler ${quoted(method)} threw: ${thrownText(value)}`;
      // A handler told to stop that throws its signal's reason is no news.
      if (context.aborted || this.#closed !== undefined) this.#logger.debug(line);
      else this.#failures.log(quoted(method), line);
    }
    if (id !== null) this.#reply(id, method, ok, value);
  }
}
