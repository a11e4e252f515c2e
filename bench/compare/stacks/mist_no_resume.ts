/**
 * `mist-no-resume`: as `mist`, with resume (PROTOCOL.md §8) off on both sides, to measure what
 * numbering, buffering and acknowledging every message costs.
 *
 * Usage: `deno run --config bench/compare/deno.json --allow-net=127.0.0.1 --allow-env --allow-read mist_no_resume.ts server|client`
 *
 * @module
 */

import { runMist } from "./mist_role.ts";

await runMist("default", false);
