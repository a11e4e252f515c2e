// Calls the runner's `echo` from Deno and prints the result. Start the runner first
// (`./deno task serve`), then, with the URL and secret it printed:
//
//   MIST_URL=ws://127.0.0.1:8080/ MIST_SECRET=<the secret> \
//     ./deno run --allow-net=127.0.0.1 --allow-env=MIST_URL,MIST_SECRET examples/deno_client.ts
//
// Prints: echo: ["hello",42]
import { Client } from "../mod.ts"; // in your project: "@mist/mist" (see "Examples" in README.md)

const url = Deno.env.get("MIST_URL");
const secret = Deno.env.get("MIST_SECRET");
if (!url || !secret) {
  console.error("Set MIST_URL and MIST_SECRET (the runner's ready line has both)");
  Deno.exit(2);
}

await using client = new Client(url, { secret, reconnect: false });
const result = await client.call("echo", ["hello", 42]);
console.log(`echo: ${JSON.stringify(result)}`);
