/**
 * The cost of validation where trust ends: the same call over loopback to a registry without
 * schemas (the baseline), with a valibot schema of the params, and with an async Standard Schema
 * that does no work (the floor of any async validator: one extra promise). Small params and a
 * 1,000-element object array, each its own group. Loopback only; Deno.bench bounds every loop.
 *
 * Run: `./deno bench -A bench/validation_bench.ts`
 *
 * @module
 */

import * as v from "valibot";
import { Client, HandlerRegistry, serveLocal, SharedSecret } from "../mod.ts";
import { consoleLogger } from "../log.ts";
import type { StandardSchema } from "../contract.ts";
import type { Params } from "../envelope.ts";

const quiet = consoleLogger("error");
const item = v.object({ uri: v.string(), line: v.number(), open: v.boolean() });
const schemas = {
  small: { params: v.tuple([v.string(), v.number()]) },
  items: { params: v.tuple([v.array(item)]) },
};
const passThrough: StandardSchema<Params> = {
  "~standard": {
    version: 1,
    vendor: "bench",
    validate: (value) => Promise.resolve({ value: value as Params }),
  },
};

/** A server with `small` and `items` handlers behind the given schemas, and its client. */
async function setup(
  registrySchemas: ConstructorParameters<typeof HandlerRegistry>[0],
): Promise<Client> {
  const secret = SharedSecret.generate();
  const registry = new HandlerRegistry(registrySchemas)
    .register("small", () => null)
    .register("items", () => null);
  const server = serveLocal({ secret, registry, logger: quiet });
  const client = new Client(server.url, { secret, heartbeat: false, logger: quiet });
  await client.opened();
  return client;
}

const plain = await setup({});
const checked = await setup({ schemas });
const asyncOnly = await setup({
  schemas: { small: { params: passThrough }, items: { params: passThrough } },
});

const small: unknown[] = ["hello", 42];
const items: unknown[] = [
  Array.from({ length: 1000 }, (_, i) => ({ uri: `file:///${i}.ts`, line: i, open: i % 2 === 0 })),
];

for (const [name, params] of [["small", small], ["items", items]] as const) {
  const group = name === "small" ? "validation, small params" : "validation, 1,000 objects";
  Deno.bench(`no schema, ${name}`, { group, baseline: true }, async () => {
    await plain.call(name, params);
  });
  Deno.bench(`valibot schema, ${name}`, { group }, async () => {
    await checked.call(name, params);
  });
  Deno.bench(`async pass-through schema, ${name}`, { group }, async () => {
    await asyncOnly.call(name, params);
  });
}
