/**
 * The method dispatch table, typed by a contract and optionally checked by schemas. Runs in
 * Deno, browsers and Node (no `Deno.*` here).
 *
 * @module
 */

import type {
  Contract,
  InferContract,
  ParamsOf,
  ResultOf,
  SchemaMap,
  StandardSchema,
} from "./contract.ts";
import type { Params } from "./envelope.ts";
import type { Caller } from "./peer.ts";

import { RESERVED_PREFIX } from "./envelope.ts";
export { RESERVED_PREFIX };

/**
 * What a handler learns besides its params.
 *
 * @typeParam Remote The contract of the side that called, for calling it back.
 *
 * @example Calling back the peer that called
 * ```ts ignore
 * registry.register("twice", async (params, ctx) => {
 *   const once = await ctx.peer.call("once", params, { signal: ctx.signal });
 *   return [once, once];
 * });
 * ```
 */
export interface HandlerContext<Remote = Contract> {
  /** Fires when the caller cancels, the connection drops, or the server's grace period ends. */
  readonly signal: AbortSignal;
  /** The peer that called, to call it back over the same connection. */
  readonly peer: Caller<Remote>;
  /** The method's wire name (useful in a fallback). */
  readonly method: string;
  /**
   * The request id, or `null` for a notification: a number (a `bigint` above 2^53), or, for an
   * id another peer chose that is not a u64 (a string, a negative number…), its JSON text.
   */
  readonly id: number | bigint | string | null;
}

/**
 * A method's implementation: returns (or resolves to) the result; a thrown `Error` becomes the
 * error string sent back (its `message`; other thrown values are stringified).
 *
 * @typeParam P The params it expects: positional (an array, the default) or by name (an
 * object). On an untyped registry it receives what the caller sent; a handler that may be
 * called both ways checks `Array.isArray(params)`.
 * @typeParam Remote The contract of the calling side.
 */
export type HandlerFn<P extends Params = unknown[], Remote = Contract> = (
  params: P,
  context: HandlerContext<Remote>,
) => unknown;

/** One issue a Standard Schema reported. */
type Issue = StandardSchema extends {
  "~standard": { validate(value: unknown): infer R };
} ? Awaited<R> extends infer O ? O extends { issues: ReadonlyArray<infer I> } ? I : never : never
  : never;

/**
 * Maps wire names to handlers, with an optional fallback for unregistered names. With a
 * contract `Local` (this side's methods), `register` checks each name, params and result at
 * compile time; with schemas, incoming params are checked at run time before the handler runs.
 *
 * @typeParam Local The contract this side serves.
 * @typeParam Remote The contract of the other side, for `ctx.peer`.
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
 *
 * @example A typed registry
 * ```ts
 * import assert from "node:assert/strict";
 * import { HandlerRegistry } from "./registry.ts";
 *
 * interface Api {
 *   add: { params: [a: number, b: number]; result: number };
 * }
 * const registry = new HandlerRegistry<Api>().register("add", ([a, b]) => a + b);
 * // @ts-expect-error: "sub" is not in the contract
 * assert.throws(() => registry.register("sub", () => 0).register("$/x", () => 0), TypeError);
 * ```
 */
export class HandlerRegistry<Local = Contract, Remote = Contract> {
  #handlers = new Map<string, HandlerFn<Params, Remote>>();
  #fallback: HandlerFn<Params, Remote> | undefined;
  readonly #schemas: SchemaMap;

  /**
   * Creates an empty registry.
   *
   * @param options `schemas`: Standard Schema validators of some methods' params (zod, valibot,
   *   arktype…). A request or notification whose params fail is answered
   *   `Invalid params for "<method>": <path>: <issue>` and its handler never runs.
   * @throws {TypeError} A schema that is not a Standard Schema.
   */
  constructor(
    options: {
      readonly schemas?: {
        readonly [method: string]: {
          readonly params: StandardSchema<Params>;
          readonly result?: StandardSchema;
        };
      };
    } = {},
  ) {
    const schemas = options.schemas ?? {};
    for (const [method, spec] of Object.entries(schemas)) {
      if (typeof spec?.params?.["~standard"]?.validate !== "function") {
        throw new TypeError(
          `Cannot use schemas["${method}"].params: not a Standard Schema (no ~standard.validate)`,
        );
      }
    }
    this.#schemas = schemas;
  }

  /**
   * A registry typed by its schemas: one definition gives the contract and its checks.
   *
   * @typeParam S The schema map.
   * @param schemas Standard Schema validators of each method's params (and optional result).
   * @returns A registry whose contract is inferred from `schemas`.
   *
   * @example
   * ```ts ignore
   * import * as v from "valibot";
   * const registry = HandlerRegistry.fromSchemas({
   *   add: { params: v.tuple([v.number(), v.number()]), result: v.number() },
   * }).register("add", ([a, b]) => a + b); // a and b are numbers
   * ```
   */
  static fromSchemas<
    S extends {
      readonly [method: string]: {
        readonly params: StandardSchema<Params>;
        readonly result?: StandardSchema;
      };
    },
  >(schemas: S): HandlerRegistry<InferContract<S>> {
    return new HandlerRegistry<InferContract<S>>({ schemas });
  }

  /**
   * Registers (or replaces) the handler for a method.
   *
   * @typeParam M The method, one of the contract's.
   * @param method The wire name; must not start with `$/`.
   * @param handler The implementation; its params and result are the contract's.
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
  register<M extends keyof Local & string>(
    method: M,
    handler: (
      params: string extends keyof Local ? unknown[] : ParamsOf<Local, M>,
      context: HandlerContext<Remote>,
    ) => string extends keyof Local ? unknown
      : ResultOf<Local, M> | PromiseLike<ResultOf<Local, M>>,
  ): this;
  /**
   * On an untyped registry: registers a handler that expects by-name params (`P` an object
   * type) or positional params of a given tuple type.
   *
   * @typeParam P The params form the handler expects.
   * @param method The wire name; must not start with `$/`.
   * @param handler The implementation.
   * @returns This registry, for chaining.
   */
  register<P extends Params>(
    this: string extends keyof Local ? this : never,
    method: string,
    handler: HandlerFn<P, Remote>,
  ): this;
  register(method: string, handler: HandlerFn<never, Remote>): this {
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
    // The types say which form the handler expects; at run time it receives what was sent,
    // checked first when there is a schema.
    const run = handler as unknown as HandlerFn<Params, Remote>;
    const schema = Object.hasOwn(this.#schemas, method) ? this.#schemas[method].params : undefined;
    this.#handlers.set(method, schema ? validated(method, schema, run) : run);
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
  setFallback<P extends Params = unknown[]>(handler: HandlerFn<P, Remote> | undefined): void {
    if (handler !== undefined && typeof handler !== "function") {
      throw new TypeError("Cannot set fallback: handler is not a function");
    }
    this.#fallback = handler as HandlerFn<Params, Remote> | undefined;
  }

  /**
   * The handler that would run for a method: its own (behind its schema, if any), else the
   * fallback.
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
  lookup(method: string): HandlerFn<Params, Remote> | undefined {
    return this.#handlers.get(method) ?? this.#fallback;
  }
}

/** The handler behind its schema: invalid params throw, and the handler gets the output. */
function validated<Remote>(
  method: string,
  schema: StandardSchema<Params>,
  handler: HandlerFn<Params, Remote>,
): HandlerFn<Params, Remote> {
  const check = schema["~standard"].validate;
  type Outcome = ReturnType<typeof check> extends infer R ? Awaited<R> : never;
  const then = (outcome: Outcome, context: HandlerContext<Remote>): unknown => {
    if (outcome.issues) throw new InvalidParams(method, outcome.issues);
    return handler(outcome.value, context);
  };
  return (params, context) => {
    const outcome = check(params);
    return outcome instanceof Promise
      ? outcome.then((settled) => then(settled, context))
      : then(outcome, context);
  };
}

/** Params a schema refused; its message is what the caller gets. */
class InvalidParams extends TypeError {
  constructor(method: string, issues: ReadonlyArray<Issue>) {
    const first = issues.slice(0, 3).map(describeIssue).join("; ");
    const more = issues.length > 3 ? `; and ${issues.length - 3} more` : "";
    super(`Invalid params for "${method}": ${first}${more}`);
    this.name = "InvalidParams";
  }
}

/** `[0].uri: Expected string`, or the message alone at the root. */
function describeIssue(issue: Issue): string {
  const path = (issue.path ?? []).map((segment) => {
    const key = typeof segment === "object" && segment !== null && "key" in segment
      ? segment.key
      : segment;
    return typeof key === "number" ? `[${key}]` : `.${String(key)}`;
  }).join("").replace(/^\./, "");
  return path === "" ? issue.message : `${path}: ${issue.message}`;
}
