/**
 * The method dispatch table. Runs in Deno, browsers and Node (no `Deno.*` here).
 *
 * @module
 */

import type { Params, RequestId } from "./envelope.ts";
import type { Caller } from "./peer.ts";

/** Method names starting with this prefix are Mist's own (`$/cancel`, `$/ping`). */
export const RESERVED_PREFIX = "$/";

/**
 * What a handler learns besides its params.
 *
 * @example Calling back the peer that called
 * ```ts ignore
 * registry.register("twice", async (params, ctx) => {
 *   const once = await ctx.peer.call("once", params, { signal: ctx.signal });
 *   return [once, once];
 * });
 * ```
 */
export interface HandlerContext {
  /** Fires when the caller cancels, the connection drops, or the server's grace period ends. */
  readonly signal: AbortSignal;
  /** The peer that called, to call it back over the same connection. */
  readonly peer: Caller;
  /** The method's wire name (useful in a fallback). */
  readonly method: string;
  /** The request id (another peer's may be a `ForeignId`), or `null` for a notification. */
  readonly id: RequestId | null;
}

/**
 * A method's implementation: returns (or resolves to) the result; a thrown `Error` becomes the
 * error string sent back (its `message`; other thrown values are stringified).
 *
 * @typeParam P The params it expects: positional (an array, the default) or by name (an
 * object). It receives what the caller sent; a handler that may be called both ways checks
 * `Array.isArray(params)`.
 */
export type HandlerFn<P extends Params = unknown[]> = (
  params: P,
  context: HandlerContext,
) => unknown;

/**
 * Maps wire names to handlers, with an optional fallback for unregistered names.
 *
 * @example Registering, looking up, removing
 * ```ts
 * import assert from "node:assert/strict";
 * import { HandlerRegistry } from "./registry.ts";
 *
 * const registry = new HandlerRegistry()
 *   .register("echo", (params) => params);
 * assert.ok(registry.lookup("echo"));
 * assert.equal(registry.unregister("echo"), true);
 * assert.equal(registry.lookup("echo"), undefined);
 * ```
 */
export class HandlerRegistry {
  #handlers = new Map<string, HandlerFn<Params>>();
  #fallback: HandlerFn<Params> | undefined;

  /**
   * Registers (or replaces) the handler for a method.
   *
   * @param method The wire name; must not start with `$/`.
   * @typeParam P The params form the handler expects (see {@linkcode HandlerFn}).
   * @param handler The implementation.
   * @returns This registry, for chaining.
   * @throws {TypeError} When `method` is empty, reserved, or `handler` is not a function.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { HandlerRegistry } from "./registry.ts";
   * assert.throws(() => new HandlerRegistry().register("$/ping", () => null), TypeError);
   * ```
   */
  register<P extends Params = unknown[]>(method: string, handler: HandlerFn<P>): this {
    if (
      typeof method !== "string" || method === "" ||
      method.startsWith(RESERVED_PREFIX)
    ) {
      throw new TypeError(
        `Cannot register method: "${String(method)}" is empty or reserved ("$/" prefix)`,
      );
    }
    if (typeof handler !== "function") {
      throw new TypeError(
        `Cannot register "${method}": handler is not a function`,
      );
    }
    // P only says which form the handler expects; it receives whatever the caller sent.
    this.#handlers.set(method, handler as HandlerFn<Params>);
    return this;
  }

  /**
   * Removes a method's handler.
   *
   * @param method The wire name.
   * @returns Whether a handler was registered.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { HandlerRegistry } from "./registry.ts";
   * assert.equal(new HandlerRegistry().unregister("nope"), false);
   * ```
   */
  unregister(method: string): boolean {
    return this.#handlers.delete(method);
  }

  /**
   * Sets the handler for methods with no handler of their own (`undefined` removes it).
   * Without one, such requests are answered `Unknown method "<name>"`.
   *
   * @typeParam P The params form the fallback expects (see {@linkcode HandlerFn}).
   * @param handler The fallback; it reads the method from `context.method`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { HandlerRegistry } from "./registry.ts";
   * const registry = new HandlerRegistry();
   * registry.setFallback((_params, ctx) => ctx.method);
   * assert.ok(registry.lookup("anything"));
   * ```
   */
  setFallback<P extends Params = unknown[]>(handler: HandlerFn<P> | undefined): void {
    if (handler !== undefined && typeof handler !== "function") {
      throw new TypeError("Cannot set fallback: handler is not a function");
    }
    this.#fallback = handler as HandlerFn<Params> | undefined;
  }

  /**
   * The handler that would run for a method: its own, else the fallback.
   *
   * @param method The wire name.
   * @returns The handler, or `undefined`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { HandlerRegistry } from "./registry.ts";
   * assert.equal(new HandlerRegistry().lookup("echo"), undefined);
   * ```
   */
  lookup(method: string): HandlerFn<Params> | undefined {
    return this.#handlers.get(method) ?? this.#fallback;
  }
}
