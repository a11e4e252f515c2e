/**
 * The codec alone, per payload size, so a regression in the hot path shows. Pure CPU.
 *
 * Run: `./deno bench bench/envelope_bench.ts`
 *
 * @module
 */

import { decode, encodeRequest, encodeSuccess } from "../envelope.ts";
import { PAYLOADS } from "./_payloads.ts";

for (const [size, params] of PAYLOADS) {
  const request = encodeRequest(1, "echo", params);
  const reply = encodeSuccess(1, params);
  Deno.bench(
    `JSON.stringify request, ${size}`,
    { group: `encode, ${size}`, baseline: true },
    () => {
      JSON.stringify({ id: 1, method: "echo", params });
    },
  );
  Deno.bench(`encodeRequest, ${size}`, { group: `encode, ${size}` }, () => {
    encodeRequest(1, "echo", params);
  });
  Deno.bench(`JSON.parse request, ${size}`, { group: `decode, ${size}`, baseline: true }, () => {
    JSON.parse(request);
  });
  Deno.bench(`decode request, ${size}`, { group: `decode, ${size}` }, () => {
    decode(request);
  });
  Deno.bench(`decode reply, ${size}`, { group: `decode, ${size}` }, () => {
    decode(reply);
  });
}

const bigId = '{"id":18446744073709551615,"method":"echo","params":["hello",42]}';
Deno.bench("decode request, id above 2^53", { group: "decode, small" }, () => {
  decode(bigId);
});
