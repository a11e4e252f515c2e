/**
 * `mist`: the Client with its default socket (on Deno, the no-delay socket).
 *
 * Usage: `deno run --config bench/compare/deno.json --allow-net=127.0.0.1 --allow-env --allow-read mist.ts server|client`
 *
 * @module
 */

import { runMist } from "./mist_role.ts";

await runMist("default");
