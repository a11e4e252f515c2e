// Mist's client under Node, scripted, for tests/interop_test.ts: imports the bundle built by
// tools/build.ts and runs the steps of ./_script.mjs (`mistApi`) against one server.
//
//   node --experimental-websocket tests/peers/mist_node_client.mjs <bundle file URL> <ws URL> <hex> [options JSON] < script.json
//
// The client gets Mist's defaults for Node, plus the options given as JSON (e.g. {"auth":
// "secret"}). Prints one JSON line per step on stdout.

import process from "node:process";
import { mistApi, runSteps } from "./_script.mjs";

const [bundle, url, secret, options = "{}"] = process.argv.slice(2);
const { Client } = await import(bundle);
let text = "";
for await (const chunk of process.stdin) text += chunk;
const client = new Client(url, { ...JSON.parse(options), secret });
const api = mistApi(client);
try {
  await runSteps(api, JSON.parse(text), (record) => {
    process.stdout.write(`${JSON.stringify(record)}\n`);
  });
} finally {
  await api.close();
}
