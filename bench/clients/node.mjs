// The Node run of bench/clients/main.ts: connects the bundled Mist client to the server named
// in MIST_BENCH_ENDPOINT ({url, secret}, not in argv), measures, prints one JSON line, exits.
//
// Usage: node [--experimental-websocket] node.mjs <bundle file URL> <warmup> <rounds>
import process from "node:process";
import { measure } from "./measure.js";

const [bundle, warmup, rounds] = process.argv.slice(2);
const { url, secret } = JSON.parse(process.env.MIST_BENCH_ENDPOINT ?? "{}");
const { Client } = await import(bundle);
const client = new Client(url, { secret, heartbeat: false });
try {
  const samples = await measure(client, { warmup: Number(warmup), rounds: Number(rounds) });
  process.stdout.write(`${JSON.stringify(samples)}\n`);
} finally {
  await client.close();
}
