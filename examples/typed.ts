// The typed API in one process: a server ("Cocoon") whose contract and run-time checks come
// from valibot schemas, a client ("Sky") whose methods are an interface, each side typed with
// both contracts. From the repository's root:
//
//   ./deno run --allow-net=127.0.0.1 examples/typed.ts
//
// Prints: typed: 5; file:///a.ts in dark; refused: Remote "add" failed: Invalid params for "add": …
import * as v from "valibot";
import {
  Client,
  HandlerRegistry,
  type InferContract,
  RemoteError,
  serveLocal,
  SharedSecret,
} from "../mod.ts";

// #region schema
// Cocoon's methods: one definition gives the contract and the check of what callers send.
const schemas = {
  add: { params: v.tuple([v.number(), v.number()]), result: v.number() },
  "doc.open": {
    params: v.object({ uri: v.string() }),
    result: v.object({ text: v.string() }),
  },
};
type CocoonApi = InferContract<typeof schemas>;

// Sky's methods, which Cocoon may call back: a contract is a type, each method's params and result.
interface SkyApi {
  theme: { params: []; result: "dark" | "light" };
}

const registry = HandlerRegistry.fromSchemas(schemas) // HandlerRegistry<CocoonApi>
  .register("add", ([a, b]) => a + b) // a, b: number
  .register("doc.open", async ({ uri }, ctx) => {
    const theme = await ctx.peer.call("theme"); // back to the caller, over the same connection
    return { text: `${uri} in ${theme}` };
  });
// #endregion schema

const secret = SharedSecret.generate();
await using server = serveLocal<CocoonApi, SkyApi>({ secret, registry });

// #region calls
await using client = new Client<CocoonApi, SkyApi>(server.url, { secret });
client.registry.register("theme", () => "dark" as const); // must return "dark" | "light"
const sum = await client.call("add", [2, 3]); // number
const doc = await client.call("doc.open", { uri: "file:///a.ts" }); // { text: string }
// Mistakes the compiler refuses; sent anyway (from untyped code), the other side refuses them
// (`refusal`, at the end of this file, resolves with the error's message).
// @ts-expect-error: the params are two numbers
const badParams = await refusal(client.call("add", ["2", 3])); // the schema: invalid params
// @ts-expect-error: no such method
const noMethod = await refusal(client.call("sub", [1]));
// #endregion calls

console.log(`typed: ${sum}; ${doc.text}; refused: ${badParams}; refused: ${noMethod}`);

/** The message a call was refused with. */
async function refusal(call: Promise<unknown>): Promise<string> {
  try {
    return `answered ${JSON.stringify(await call)}`;
  } catch (error) {
    if (!(error instanceof RemoteError)) throw error;
    return error.message;
  }
}
