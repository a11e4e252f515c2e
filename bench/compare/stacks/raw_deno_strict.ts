/**
 * `raw-deno-strict`, the strict floor: the same `Deno.serve` server as `raw-deno` (echoes every
 * frame verbatim) and the same client socket (Deno's native `WebSocket`), but with no JSON on
 * either side: the client sends pre-built request text and matches echoes by counting
 * ({@linkcode StrictEchoClient}). The difference from `raw-deno` is what JSON costs its client.
 *
 * Usage: `deno run --allow-net=127.0.0.1 --allow-env raw_deno_strict.ts server|client`
 *
 * @module
 */

import { StrictEchoClient } from "./strict.ts";
import { runRawDeno } from "./raw_deno_role.ts";

await runRawDeno((send, close) => new StrictEchoClient(send, close));
