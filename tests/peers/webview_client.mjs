// A test peer that behaves on the wire like the editor's webview client ("Sky"), as
// ../shared/UPSTREAM.md describes it (the wire behaviour is in ./_script.mjs, `rawClient`).
// Written from that description, for tests/interop_test.ts. Not part of Mist.
//
//   node --experimental-websocket tests/peers/webview_client.mjs <port> <64-hex secret> < script.json
//
// (Node 22+ needs no flag; Deno runs it too, with --allow-net=127.0.0.1.)
// Connects to ws://127.0.0.1:<port>/?secret=<hex> offering exactly one subprotocol, the bare
// hex secret; reconnects with 100, 200, 400, 1000, 2000, then 5000 ms, dead after 30 s.
// Reads a JSON array of steps (see ./_script.mjs) from stdin, runs them, prints one JSON line
// per step on stdout and exits 0 (1 when the arguments or the script are unusable).

import process from "node:process";
import { rawClient, runSteps } from "./_script.mjs";

const [port, secret] = process.argv.slice(2);
if (!/^\d+$/.test(port ?? "") || !/^[0-9a-fA-F]{64}$/.test(secret ?? "")) {
  process.stdout.write(
    `${JSON.stringify({ op: "usage", ok: false, error: "expected <port> <hex>" })}\n`,
  );
  process.exit(1);
}
if (typeof globalThis.WebSocket !== "function") {
  throw new TypeError("No global WebSocket: on Node 20 run with --experimental-websocket");
}

let text = "";
for await (const chunk of process.stdin) text += chunk;
const steps = JSON.parse(text);
const url = `ws://127.0.0.1:${port}/?secret=${secret}`;
const client = rawClient({ open: () => new WebSocket(url, [secret]), reconnect: true });
await runSteps(client, steps, (record) => process.stdout.write(`${JSON.stringify(record)}\n`));
await client.close();
