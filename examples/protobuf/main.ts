// Protobuf batches over Mist, in one process: an editor's bulk traffic (a file's diagnostics, a
// tree view's children) encoded with @bufbuild/protobuf and sent as a Uint8Array, which Mist
// carries in a binary frame instead of JSON. From the repository's root:
//
//   ./deno task proto   # generates examples/protobuf/gen/ from diagnostics.proto
//   ./deno run --allow-net=127.0.0.1 examples/protobuf/main.ts
//
// Prints: published: 3 diagnostics for file:///src/app.ts (1 error); children of "src": lib/ (…
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Client, HandlerRegistry, serveLocal, SharedSecret } from "../../mod.ts";
import {
  CollapsibleState,
  DiagnosticsBatchSchema,
  DiagnosticSeverity,
  TreeChildrenSchema,
} from "./gen/diagnostics_pb.ts";

// The server's methods: the batches are opaque bytes to Mist; only the two ends know the schema.
interface ExtensionApi {
  "diagnostics.publish": {
    params: [batch: Uint8Array];
    result: { uri: string; count: number; errors: number };
  };
  "tree.children": { params: [parentHandle: string]; result: Uint8Array };
}

const registry = new HandlerRegistry<ExtensionApi>()
  .register("diagnostics.publish", ([bytes]) => {
    const batch = fromBinary(DiagnosticsBatchSchema, bytes);
    const errors = batch.diagnostics.filter((d) => d.severity === DiagnosticSeverity.ERROR);
    return { uri: batch.uri, count: batch.diagnostics.length, errors: errors.length };
  })
  .register("tree.children", ([parentHandle]) => {
    const item = (name: string, folder: boolean) => ({
      handle: `${parentHandle}/${name}`,
      label: folder ? `${name}/` : name,
      collapsibleState: folder ? CollapsibleState.COLLAPSED : CollapsibleState.NONE,
      hasChildren: folder,
    });
    const children = create(TreeChildrenSchema, {
      parentHandle,
      items: [item("lib", true), item("app.ts", false), item("README.md", false)],
    });
    return toBinary(TreeChildrenSchema, children); // a Uint8Array result: a binary frame back
  });

const secret = SharedSecret.generate();
await using server = serveLocal<ExtensionApi>({ secret, registry });
await using client = new Client<ExtensionApi>(server.url, { secret });

const range = (line: number) => ({ start: { line, character: 0 }, end: { line, character: 8 } });
const batch = create(DiagnosticsBatchSchema, {
  uri: "file:///src/app.ts",
  diagnostics: [
    { range: range(3), severity: DiagnosticSeverity.ERROR, message: "Cannot find name 'usr'" },
    { range: range(9), severity: DiagnosticSeverity.WARNING, message: "'tmp' is never read" },
    { range: range(12), severity: DiagnosticSeverity.HINT, message: "Use 'const' ✎" },
  ],
});
const summary = await client.call("diagnostics.publish", [toBinary(DiagnosticsBatchSchema, batch)]);
const tree = fromBinary(TreeChildrenSchema, await client.call("tree.children", ["src"]));

console.log(
  `published: ${summary.count} diagnostics for ${summary.uri} (${summary.errors} error); ` +
    `children of "${tree.parentHandle}": ${tree.items.map((item) => item.label).join(", ")}`,
);
