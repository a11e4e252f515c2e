// An extension host ("Cocoon") on Node serving its API to the editor's webview ("Sky") over Mist.
// Its spawner chooses the per-spawn secret and passes it, with the port, in the environment:
//
//   MIST_SECRET=<64 hex characters> MIST_PORT=0 node node_extension_host.mjs
//
// It prints one JSON line, {"url": …}, once it is listening (port 0: a free one), and shuts down
// gracefully on SIGTERM: calls in flight finish, connections close with 1001, exit code 0.
import process from "node:process";
import { HandlerRegistry, serveLocal, SharedSecret } from "@mist/mist/server";
import { Client } from "@mist/mist/client";

if (!process.env.MIST_SECRET) {
  console.error("MIST_SECRET is not set (64 hex characters)");
  process.exit(2);
}
const secret = SharedSecret.fromHex(process.env.MIST_SECRET);
const registry = new HandlerRegistry()
  .register("echo", (params) => params);
const server = await serveLocal({ secret, registry, port: Number(process.env.MIST_PORT ?? 0) });

// Sky connects with the same client (the bundle also runs in the webview). Call once through it
// before telling the spawner where to connect.
const client = new Client(server.url, { secret });
const echoed = await client.call("echo", ["ready"]);
await client.close();
if (JSON.stringify(echoed) !== '["ready"]') {
  throw new Error(`echo answered ${JSON.stringify(echoed)}`);
}

console.log(JSON.stringify({ url: server.url }));
process.once("SIGTERM", () => void server.shutdown());
await server.closed;
