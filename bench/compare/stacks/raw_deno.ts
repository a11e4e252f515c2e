/**
 * `raw-deno`, the floor: a `Deno.serve` server that echoes every text frame verbatim, and Deno's
 * native WebSocket client sending the request text a JSON-RPC stack would send.
 *
 * Usage: `deno run --allow-net=127.0.0.1 --allow-env raw_deno.ts server|client`
 *
 * @module
 */

import { FifoEchoClient } from "./fifo.ts";
import { runRawDeno } from "./raw_deno_role.ts";

await runRawDeno((send, close) => new FifoEchoClient(send, close));
