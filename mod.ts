/**
 * Mist: local-first JSON-RPC over one WebSocket on 127.0.0.1, with a per-spawn shared secret,
 * calls in both directions, and a client that survives the other side restarting. This entry
 * point is the Deno preset: its `serveLocal` runs on `Deno.serve`, and its `Client` uses Mist's
 * no-delay socket. The browser and Node builds are made from `client.ts` and `server_node.ts`.
 *
 * @example A typed server and client
 * ```ts
 * import assert from "node:assert/strict";
 * import { Client, HandlerRegistry, serveLocal, SharedSecret } from "./mod.ts";
 *
 * interface Api {
 *   greet: { params: [name: string]; result: string };
 * }
 * const secret = SharedSecret.generate();
 * const server = serveLocal({
 *   secret,
 *   registry: new HandlerRegistry<Api>().register("greet", ([name]) => `Hello, ${name}`),
 * });
 * const client = new Client<Api>(server.url, { secret, heartbeat: false });
 * assert.equal(await client.call("greet", ["Sky"]), "Hello, Sky");
 * await client.close();
 * await server.shutdown();
 * ```
 *
 * @module
 */

import "./_socket/preset.ts"; // Deno: the client's no-delay socket

export * from "./_api.ts";
export { serveLocal } from "./server.ts";
