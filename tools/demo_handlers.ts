/**
 * The local runner's demo methods (`echo`, `sleep`, `fail`, `stats`, `callback`), so a new user
 * can try every feature from the call CLI. Kept apart from `serve.ts` so tests can build the
 * registry without spawning a process.
 *
 * @module
 */

import type { HandlerContext, HandlerFn } from "../registry.ts";
import { HandlerRegistry } from "../registry.ts";
import type { Logger } from "../log.ts";

/** The longest `sleep` accepted, in ms: bounds how long a demo call can pin a handler slot. */
export const MAX_SLEEP_MS = 60_000;

/** What `stats` answers. */
export interface DemoStats {
  /** Notifications received, of any method (known or not), over all connections. */
  notifications: number;
  /** Connections open now. */
  connections: number;
  /** Requests received so far over all connections, the current one included. */
  calls: number;
}

/** Options of {@linkcode createDemoRegistry}. */
export interface DemoOptions {
  /** Reads the server's open connection count (the server exists after the registry). */
  connections: () => number;
  /** Where per-call lines go, at debug level: method, id and duration, never params. */
  logger: Logger;
}

/** The demo registry and the counters behind `stats`. */
export interface DemoRegistry {
  /** Handlers to pass to `serveLocal`. */
  registry: HandlerRegistry;
  /** The counters now, as `stats` would answer them. */
  stats(): DemoStats;
}

/**
 * Builds the demo registry: `echo` (result = params), `sleep` ([ms] → null after ms,
 * cancellable), `fail` ([message] → error), `stats` (counters) and `callback` ([method, params]
 * → the calling client's answer to that call). A fallback counts unknown notifications and
 * answers unknown requests `Unknown method "<name>"`.
 *
 * @param options See {@linkcode DemoOptions}.
 * @returns The registry and a reader of its counters.
 *
 * @example Calling `echo` directly
 * ```ts
 * import assert from "node:assert/strict";
 * import { createDemoRegistry } from "./demo_handlers.ts";
 * import { consoleLogger } from "../log.ts";
 * const demo = createDemoRegistry({ connections: () => 0, logger: consoleLogger("silent") });
 * const echo = demo.registry.lookup("echo")!;
 * const ctx = { signal: new AbortController().signal, peer: null!, method: "echo", id: 1 };
 * assert.deepEqual(await echo([1, "a"], ctx), [1, "a"]);
 * assert.equal(demo.stats().calls, 1);
 * ```
 */
export function createDemoRegistry(options: DemoOptions): DemoRegistry {
  const counts = { notifications: 0, calls: 0 };
  const stats = (): DemoStats => ({ ...counts, connections: options.connections() });
  // Every handler, the fallback included, goes through `counted` so `stats` sees everything.
  const counted = (handler: HandlerFn): HandlerFn => {
    const run = timed(handler, options.logger);
    return (params, ctx) => {
      // Counted synchronously on arrival, so a reply sent after this frame sees the count.
      if (ctx.id === null) counts.notifications++;
      else counts.calls++;
      return run(params, ctx);
    };
  };
  const registry = new HandlerRegistry()
    .register("echo", counted((params) => params))
    .register("sleep", counted(sleep))
    .register("fail", counted(fail))
    .register("stats", counted(stats))
    .register("callback", counted(callback));
  registry.setFallback(counted(unknown));
  return { registry, stats };
}

/** Wraps a handler to log method, id and duration at debug level once it settles. */
function timed(handler: HandlerFn, logger: Logger): HandlerFn {
  return async (params, ctx) => {
    const started = performance.now();
    let outcome = "failed";
    try {
      const result = await handler(params, ctx);
      outcome = "ok";
      return result;
    } finally {
      const ms = (performance.now() - started).toFixed(1);
      const what = ctx.id === null
        ? `Notification "${ctx.method}"`
        : `Call ${ctx.id} "${ctx.method}"`;
      logger.debug(`${what} ${outcome} in ${ms} ms`);
    }
  };
}

function sleep([ms]: unknown[], ctx: HandlerContext): Promise<null> {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0 || ms > MAX_SLEEP_MS) {
    throw new RangeError(
      `Cannot sleep: expected ms from 0 to ${MAX_SLEEP_MS}, got ${describe(ms)}`,
    );
  }
  const signal = ctx.signal;
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(null);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function fail([message]: unknown[]): never {
  throw new Error(message === undefined ? "Failed on purpose" : String(message));
}

async function callback([method, params = []]: unknown[], ctx: HandlerContext): Promise<unknown> {
  if (typeof method !== "string" || !Array.isArray(params)) {
    throw new TypeError(
      `Cannot call back: expected [method, params], got [${describe(method)}, ${describe(params)}]`,
    );
  }
  return await ctx.peer.call(method, params, { signal: ctx.signal });
}

function unknown(_params: unknown[], ctx: HandlerContext): null {
  // Requests reach the fallback too; only notifications are silently accepted.
  if (ctx.id !== null) throw new Error(`Unknown method "${ctx.method}"`);
  return null;
}

/** A short description of a bad value for an error message (never the whole value). */
function describe(value: unknown): string {
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return `"${value.slice(0, 40)}"`;
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
}
