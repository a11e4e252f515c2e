/**
 * `mist-node`: Mist on Node, as a Node user installs it. The server is the npm package's
 * `./server` entry (`serveLocal` of `server_node.ts`, on `node:http` and `ws`), the client its
 * `./client` entry as Node resolves it (the client with Mist's own no-delay socket over
 * `node:net`). Both come from the package that `setup.ts` builds into `.build/npm/` with
 * `tools/build_node.ts --npm`, so `ws` resolves to bench/compare/node_modules, the same `ws`
 * as the `raw-ws` floor's.
 *
 * The package is loaded at run time, beside this program's bundle: while it is missing or
 * broken, both roles print a skip instead of failing.
 *
 * Usage (bundled by main.ts): `node .build/mist_node.mjs server|client`
 *
 * @module
 */

import process from "node:process";
import { type EchoClient, type Ready, runRole, type Skipped, skipReason } from "../role.ts";

type ServerEntry = typeof import("../../../server_node.ts");
type ClientEntry = typeof import("../../../_api.ts");

/** How long the server may take to shut down on SIGTERM before it exits regardless. */
const SHUTDOWN_GRACE_MS = 2_000;

/** One of the package's entry points, from `npm/` beside this program's bundle. */
function load<T>(file: string): Promise<T> {
  // A computed URL: the bundler leaves the import alone, so Node loads the package's own file.
  return import(new URL(`./npm/${file}`, import.meta.url).href) as Promise<T>;
}

await runRole({
  async serve(): Promise<Ready | Skipped> {
    try {
      const { HandlerRegistry, serveLocal, SharedSecret } = await load<ServerEntry>(
        "node/server.js",
      );
      const secret = SharedSecret.generate();
      const registry = new HandlerRegistry().register("echo", (params: unknown) => params);
      const server = await serveLocal({ secret, registry, port: 0 });
      // Shut down the way a user would, but never let a stuck shutdown keep the process alive.
      process.once("SIGTERM", () => {
        setTimeout(() => process.exit(0), SHUTDOWN_GRACE_MS).unref();
        server.shutdown().finally(() => process.exit(0));
      });
      return { url: server.url, secret: secret.toHex() };
    } catch (error) {
      return skipReason(error);
    }
  },
  async connect({ url, secret }: Ready): Promise<EchoClient | Skipped> {
    try {
      if (secret === undefined) throw new Error("the server sent no secret");
      const { Client, SharedSecret } = await load<ClientEntry>("node/client.js");
      const client = new Client(url, { secret: SharedSecret.fromHex(secret) });
      // Connect (and authenticate) before timing starts.
      await client.call("echo", []);
      return {
        echo: (params) => client.call("echo", params),
        close: () => client.close(),
      };
    } catch (error) {
      return skipReason(error);
    }
  },
});
