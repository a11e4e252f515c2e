/**
 * `mist-native-socket`: the Client on Deno's native WebSocket (Nagle on), to separate the cost
 * of Mist's no-delay socket from the cost of the RPC core.
 *
 * Usage: `deno run --config bench/compare/deno.json --allow-net=127.0.0.1 --allow-env --allow-read mist_native_socket.ts server|client`
 *
 * @module
 */

import { runMist } from "./mist_role.ts";

await runMist("native");
