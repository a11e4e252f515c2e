// Calls the runner's `echo` from Node with the Node bundle, and serves one method the runner
// can call back. Build the bundle once (`./deno task build` writes dist/mist_client_node.js),
// start the runner (`./deno task serve`), then, with the URL and secret it printed:
//
//   MIST_URL=ws://127.0.0.1:8080/ MIST_SECRET=<the secret> node examples/node_client.mjs
//
// Prints: echo: ["hello",42] and then callback: "from Node"
import process from "node:process";
import { Client } from "../dist/mist_client_node.js"; // from npm: "@mist/mist/client"

const { MIST_URL: url, MIST_SECRET: secret } = process.env;
if (!url || !secret) {
  console.error("Set MIST_URL and MIST_SECRET (the runner's ready line has both)");
  process.exit(2);
}

const client = new Client(url, { secret, reconnect: false });
try {
  client.registry.register("hello", () => "from Node");
  console.log(`echo: ${JSON.stringify(await client.call("echo", ["hello", 42]))}`);
  // The runner's `callback` method calls `hello` back on this client.
  console.log(`callback: ${JSON.stringify(await client.call("callback", ["hello", []]))}`);
} finally {
  await client.close();
}
