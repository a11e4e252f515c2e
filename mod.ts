/**
 * Mist: local-first JSON-RPC over one WebSocket on 127.0.0.1, with a per-spawn shared secret,
 * calls in both directions, and a client that survives the other side restarting.
 *
 * @example A server and a client
 * ```ts
 * import assert from "node:assert/strict";
 * import { Client, HandlerRegistry, serveLocal, SharedSecret } from "./mod.ts";
 *
 * const secret = SharedSecret.generate();
 * const server = serveLocal({
 *   secret,
 *   registry: new HandlerRegistry().register("greet", ([name]) => `Hello, ${name}`),
 * });
 * const client = new Client(server.url, { secret, heartbeat: false });
 * assert.equal(await client.call("greet", ["Sky"]), "Hello, Sky");
 * await client.close();
 * await server.shutdown();
 * ```
 *
 * @module
 */

export * from "./auth.ts";
export * from "./client.ts";
export * from "./clock.ts";
export * from "./envelope.ts";
export * from "./errors.ts";
export * from "./log.ts";
export * from "./peer.ts";
export * from "./registry.ts";
export * from "./secret.ts";
export * from "./server.ts";
export * from "./transport.ts";
