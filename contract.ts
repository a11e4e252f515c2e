/**
 * Typed contracts: one TypeScript type per side, a map of method name to its params and result,
 * makes a wrong method name or a wrong params type a compile error where `call`, `notify` and
 * `register` are written. Types only, no run-time cost. A contract can also be inferred from
 * schemas (any library implementing the Standard Schema interface: zod, valibot, arktype), and
 * a registry given those schemas checks what the other side really sent before a handler runs.
 * Runs in Deno, browsers and Node (no `Deno.*` here).
 *
 * @example A contract written as a type
 * ```ts
 * import type { ParamsOf, ResultOf } from "./contract.ts";
 *
 * interface ServerApi {
 *   add: { params: [a: number, b: number]; result: number };
 *   "doc.open": { params: { uri: string }; result: { text: string } };
 *   log: { params: [line: string]; result: void };
 * }
 * const params: ParamsOf<ServerApi, "add"> = [1, 2];
 * const result: ResultOf<ServerApi, "doc.open"> = { text: "" };
 * console.log(params, result);
 * ```
 *
 * @module
 */

import type { Params } from "./envelope.ts";

/**
 * A contract: a map from method name to `{ params, result }` — `params` a tuple type
 * (positional) or an object type (by name), `result` what the method returns. This interface is
 * the shape, and also the contract of an untyped side: any method, params of either form,
 * result `unknown`. Contracts are written as interfaces or type aliases of that shape.
 */
export interface Contract {
  /** A method: its params (an array or an object) and its result. */
  [method: string]: { params: Params; result: unknown };
}

/** Whether `T` is untyped (any string names a method). */
type IsUntyped<T> = string extends keyof T ? true : false;

/** The params type of method `M` of contract `T`. */
export type ParamsOf<T, M extends keyof T> = T[M] extends { params: infer P } ? P : Params;

/** The result type of method `M` of contract `T` (`unknown` for an untyped side). */
export type ResultOf<T, M extends keyof T> = T[M] extends { result: infer R } ? R : unknown;

/**
 * The arguments after the method name of `call`: the params (optional where `[]` fits), then
 * the options.
 *
 * @typeParam T The other side's contract.
 * @typeParam M The method.
 * @typeParam O The options type.
 */
export type CallArgs<T, M extends keyof T, O> = [] extends ParamsOf<T, M>
  ? [params?: ParamsOf<T, M>, options?: O]
  : [params: ParamsOf<T, M>, options?: O];

/** The arguments after the method name of `notify`. */
export type NotifyArgs<T, M extends keyof T> = [] extends ParamsOf<T, M> ? [params?: ParamsOf<T, M>]
  : [params: ParamsOf<T, M>];

/**
 * The params a handler of method `M` receives: the contract's, or, on an untyped side,
 * positional `unknown[]` (a handler that takes by-name params says so with a contract, or by
 * checking `Array.isArray`). Internal: spelled out where it is used.
 */
export type HandlerParams<T, M extends keyof T> = IsUntyped<T> extends true ? unknown[]
  : ParamsOf<T, M>;

/** What a handler of method `M` may return: its result, or a promise of it. Internal. */
export type HandlerResult<T, M extends keyof T> = IsUntyped<T> extends true ? unknown
  : ResultOf<T, M> | PromiseLike<ResultOf<T, M>>;

// ---------------------------------------------------------------------------------------------
// Standard Schema (the interface zod 4, valibot 1 and arktype 2 implement), in our own terms

/**
 * A validator in the Standard Schema form: `schema["~standard"].validate(value)` returns (or
 * resolves to) `{ value }` or `{ issues }`. Mist depends on this shape only, not on a library.
 *
 * @typeParam Output What a valid value becomes.
 */
export interface StandardSchema<Output = unknown> {
  /** The Standard Schema properties. */
  readonly "~standard": {
    /** The interface version, 1. */
    readonly version: 1;
    /** The library that made it. */
    readonly vendor: string;
    /** Checks a value. */
    readonly validate: (
      value: unknown,
    ) =>
      | { readonly value: Output; readonly issues?: undefined }
      | {
        readonly issues: ReadonlyArray<
          {
            readonly message: string;
            readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }>;
          }
        >;
      }
      | Promise<
        | { readonly value: Output; readonly issues?: undefined }
        | {
          readonly issues: ReadonlyArray<
            {
              readonly message: string;
              readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }>;
            }
          >;
        }
      >;
    /** Types for inference only. */
    readonly types?: { readonly input: unknown; readonly output: Output };
  };
}

/** Schemas for some methods of a side: `params` is checked; `result` only gives the type. */
export type SchemaMap = {
  readonly [method: string]: {
    readonly params: StandardSchema<Params>;
    readonly result?: StandardSchema;
  };
};

/**
 * The contract a schema map describes, so one definition gives both the types and the checks.
 *
 * @example
 * ```ts ignore
 * import * as v from "valibot";
 * const schemas = { add: { params: v.tuple([v.number(), v.number()]), result: v.number() } };
 * type Api = InferContract<typeof schemas>; // { add: { params: [number, number]; result: number } }
 * ```
 */
export type InferContract<
  S extends {
    readonly [method: string]: {
      readonly params: StandardSchema<Params>;
      readonly result?: StandardSchema;
    };
  },
> = {
  -readonly [M in keyof S]: {
    params: S[M]["params"] extends StandardSchema<infer P> ? P : Params;
    result: S[M] extends { result: StandardSchema<infer R> } ? R : unknown;
  };
};
