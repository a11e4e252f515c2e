/**
 * A test peer that behaves on the wire like the Rust original's client ("Mist",
 * tokio-tungstenite), as ../shared/UPSTREAM.md describes it: the secret in the `X-Land-Secret`
 * header (the hex exactly as given), no subprotocol, ids from 1, replies matched by id alone
 * (the wire behaviour is in ./_script.mjs, `rawClient`), no reconnect. Written from that
 * description, for tests/interop_test.ts. Not part of Mist.
 *
 * ```sh
 * ./deno run --allow-net=127.0.0.1 tests/peers/rust_style_client.ts <port> <64-hex secret> < script.json
 * ```
 *
 * Reads a JSON array of steps (see ./_script.mjs) from stdin, runs them, prints one JSON line
 * per step on stdout and exits 0 (1 when the arguments are unusable).
 *
 * @module
 */
import { rawClient, runSteps } from "./_script.mjs";

const [port, secret] = Deno.args;
if (!/^\d+$/.test(port ?? "") || !/^[0-9a-fA-F]{64}$/.test(secret ?? "")) {
  console.log(JSON.stringify({ op: "usage", ok: false, error: "expected <port> <hex>" }));
  Deno.exit(1);
}

const steps = JSON.parse(await new Response(Deno.stdin.readable).text());
const url = `ws://127.0.0.1:${port}/`;
// Deno's WebSocket takes a dictionary with headers (not in the DOM types).
const init = { headers: { "X-Land-Secret": secret } } as unknown as string[];
const client = rawClient({ open: () => new WebSocket(url, init), reconnect: false });
await runSteps(client, steps, (record) => console.log(JSON.stringify(record)));
await client.close();
