/**
 * `mist` and `mist-native-socket`: the module under test, on both ends in Deno. Kept in this one
 * file so that an API change means one edit here; `mist.ts` and `mist_native_socket.ts` only
 * choose the client's socket.
 *
 * The module's files are imported dynamically: while they are missing or broken, both roles
 * print a skip instead of failing, and the rest of the comparison still runs. (`deno check`
 * type-checks these literal imports once the files exist.)
 *
 * Usage: `deno run --config bench/compare/deno.json --allow-net=127.0.0.1 --allow-env --allow-read mist.ts server|client`
 *
 * @module
 */

import { type EchoClient, type Ready, runRole, type Skipped, skipReason } from "../role.ts";

/** How long the server may take to shut down on SIGTERM before it exits regardless. */
const SHUTDOWN_GRACE_MS = 2_000;

/**
 * Runs the server or client role.
 *
 * @param socket `"default"`: the Client's own choice (the no-delay socket on Deno);
 * `"native"`: Deno's native WebSocket, to separate the socket's cost from the core's.
 */
export async function runMist(socket: "default" | "native", resume = true): Promise<void> {
  await runRole({
    async serve(): Promise<Ready | Skipped> {
      try {
        const [{ serveLocal }, { HandlerRegistry }, { SharedSecret }] = await Promise.all([
          import("../../../server.ts"),
          import("../../../registry.ts"),
          import("../../../secret.ts"),
        ]);
        const secret = SharedSecret.generate();
        const registry = new HandlerRegistry();
        registry.register("echo", (params: unknown) => params);
        const server = await serveLocal({
          secret,
          registry,
          port: 0,
          resume: resume ? undefined : false,
        });
        // Shut down the way a user would, but never let a stuck shutdown keep the process alive.
        Deno.addSignalListener("SIGTERM", () => {
          setTimeout(() => Deno.exit(0), SHUTDOWN_GRACE_MS);
          server.shutdown().finally(() => Deno.exit(0));
        });
        return { url: server.url, secret: secret.toHex() };
      } catch (error) {
        return skipReason(error);
      }
    },
    async connect({ url, secret }: Ready): Promise<EchoClient | Skipped> {
      try {
        if (secret === undefined) throw new Error("the server sent no secret");
        // mod.ts, as a Deno user imports it: its preset gives the client Mist's own socket.
        const [{ Client }, { SharedSecret }] = await Promise.all([
          import("../../../mod.ts"),
          import("../../../secret.ts"),
        ]);
        const client = new Client(url, {
          secret: SharedSecret.fromHex(secret),
          resume: resume ? undefined : false, // on by default
          webSocketFactory: socket === "native"
            ? (url, init) => new WebSocket(url, { headers: init.headers })
            : undefined,
        });
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
}
