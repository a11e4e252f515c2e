/**
 * Sample batches for the protobuf example's test and benchmark: a file's diagnostics and a tree
 * view's children, as plain objects shaped like the messages in `diagnostics.proto`. The same
 * object is the JSON payload (sent as is) and the protobuf init (`create(Schema, init)`), so both
 * encodings carry exactly the same data. Messages mix ASCII with accents, CJK and emoji (UTF-16
 * surrogate pairs), where a careless encoder goes wrong.
 *
 * Run `./deno task proto` first: `gen/` is generated.
 *
 * @module
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  CollapsibleState,
  type DiagnosticsBatchSchema,
  DiagnosticSeverity,
  type TreeChildrenSchema,
} from "./gen/diagnostics_pb.ts";

/** A diagnostics batch as a plain object: JSON-ready, and an init for `create()`. */
export type DiagnosticsInit = MessageInitShape<typeof DiagnosticsBatchSchema>;

/** A tree-children batch as a plain object: JSON-ready, and an init for `create()`. */
export type TreeChildrenInit = MessageInitShape<typeof TreeChildrenSchema>;

const MESSAGES = [
  "Cannot find name 'fetchUser'.",
  "Unused variable «résumé»; prefix it with _ to silence this",
  "型 'string' を型 'number' に割り当てることはできません。",
  "Ce paramètre implicite a le type « any ».",
  "Line too long (121 > 100) 🚀 consider wrapping",
  "Ожидалось выражение",
];
const SOURCES = ["ts", "eslint", "deno-lint", "spell"];

/**
 * A batch of `count` diagnostics for one document, deterministic. Every fifth has related
 * information; severities cycle through error, warning, information and hint.
 *
 * @param count How many diagnostics.
 * @returns The batch, as a plain object.
 */
export function sampleDiagnostics(count: number): DiagnosticsInit {
  const uri = "file:///home/dev/projekt/src/größe/main.ts";
  const diagnostics = [];
  for (let i = 0; i < count; i++) {
    const line = i * 3 + 1;
    const range = {
      start: { line, character: i % 80 },
      end: { line, character: (i % 80) + 5 + (i % 13) },
    };
    diagnostics.push({
      range,
      severity: DiagnosticSeverity.ERROR + (i % 4),
      message: `${MESSAGES[i % MESSAGES.length]} (#${i})`,
      source: SOURCES[i % SOURCES.length],
      code: String(2300 + (i % 97)),
      relatedInformation: i % 5 === 0
        ? [{
          uri: "file:///home/dev/projekt/src/lib/user.ts",
          range: { start: { line: 10, character: 2 }, end: { line: 10, character: 11 } },
          message: `'fetchUser' is declared here — ${i}`,
        }]
        : [],
    });
  }
  return { uri, version: 42, diagnostics };
}

/**
 * `count` children of the tree item `parentHandle`, deterministic: every third is a folder
 * (collapsed, with children), the others files.
 *
 * @param parentHandle The parent's handle; `""` for the root.
 * @param count How many children.
 * @returns The batch, as a plain object.
 */
export function sampleTreeChildren(parentHandle: string, count: number): TreeChildrenInit {
  const items = [];
  for (let i = 0; i < count; i++) {
    const folder = i % 3 === 0;
    const label = folder ? `módulo-${i}` : `ファイル-${i}.ts`;
    items.push({
      handle: `${parentHandle}/${i}`,
      label,
      description: folder ? `${i % 7} items` : "modified ✎",
      tooltip: `${parentHandle}/${label}`,
      collapsibleState: folder ? CollapsibleState.COLLAPSED : CollapsibleState.NONE,
      iconPath: folder ? "icons/folder.svg" : "icons/typescript.svg",
      contextValue: folder ? "folder" : "file",
      hasChildren: folder,
    });
  }
  return { parentHandle, items };
}
