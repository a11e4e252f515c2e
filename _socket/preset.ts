/**
 * The Deno and Node preset: importing this module makes Mist's no-delay socket the client's
 * default for `ws:` URLs (where `Deno.connect` or `node:net` exists). `mod.ts`, `server_node.ts`
 * and the Node client bundle import it; the browser bundle does not, so it carries none of the
 * socket's code.
 *
 * @module
 */

import { installSocketPreset } from "../_client_options.ts";
import { isNoDelaySupported, NoDelayWebSocket } from "./no_delay.ts";

installSocketPreset({
  supported: isNoDelaySupported,
  create: (url, init) => new NoDelayWebSocket(url, init),
});
