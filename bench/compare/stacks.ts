/**
 * The stacks under comparison: which program, in which runtime, with which permissions.
 *
 * @module
 */

import type { Plan } from "./plan.ts";

/** Where a stack's two processes run. */
export type Runtime = "deno" | "node";

/** One row of the comparison. */
export interface StackInfo {
  /** The row's name. */
  readonly name: string;
  /** The runtime of both its server and its client process. */
  readonly runtime: Runtime;
  /** Its program, relative to bench/compare; takes `server` or `client` as argument. */
  readonly entry: string;
  /** For Deno stacks, the permission flags of both processes. */
  readonly permissions: readonly string[];
  /** How the two sides are built, for the table's notes. */
  readonly note: string;
  /** Smaller counts for a stack too slow for the plan's deadline; say so in `note`. */
  readonly shrink?: (plan: Plan) => Plan;
  /** Loads Mist's npm package, which `setup.ts` builds into `.build/npm/` before the run. */
  readonly mistPackage?: boolean;
  /** Also report its ratios to {@linkcode STRICT_FLOOR} (runs the strict floor with it). */
  readonly versusStrict?: boolean;
  /**
   * Also report the named stack ÷ this one as ratios paired by round: the named stack runs just
   * before this one in each round, so a change of load between rounds falls on both.
   */
  readonly pairedWith?: string;
}

/** The floor that every ratio is taken against; always run first. */
export const FLOOR = "raw-deno";

/**
 * The strict floor: a verbatim echo with no JSON on either side. A row with its ratio to
 * {@linkcode FLOOR}, and the second base of the stacks marked {@linkcode StackInfo.versusStrict}.
 */
export const STRICT_FLOOR = "raw-deno-strict";

const DENO_NET = ["--allow-net=127.0.0.1", "--allow-env"];

/** Every stack, in the order they run and are listed. */
export const STACKS: readonly StackInfo[] = [
  {
    name: FLOOR,
    runtime: "deno",
    entry: "stacks/raw_deno.ts",
    permissions: DENO_NET,
    note: "Deno.serve echoing frames verbatim; Deno's native WebSocket client (Nagle on), " +
      "JSON encode/decode, replies matched in order",
  },
  {
    name: STRICT_FLOOR,
    runtime: "deno",
    entry: "stacks/raw_deno_strict.ts",
    permissions: DENO_NET,
    note: "the strict floor: the same server and client socket as raw-deno, but no JSON on " +
      "either side (pre-built request text, echoes matched by counting and checked by length)",
  },
  {
    name: "raw-ws",
    runtime: "node",
    entry: "stacks/raw_ws.ts",
    permissions: [],
    note: "ws server echoing frames verbatim; ws client, same requests as raw-deno: " +
      "the floor for the Node stacks",
  },
  {
    name: "mist",
    runtime: "deno",
    entry: "stacks/mist.ts",
    permissions: [...DENO_NET, "--allow-read"],
    note: "serveLocal server; Mist Client, authenticated with a SharedSecret",
    versusStrict: true,
  },
  {
    name: "mist-no-resume",
    runtime: "deno",
    entry: "stacks/mist_no_resume.ts",
    permissions: [...DENO_NET, "--allow-read"],
    note: "as mist, with resume off on both sides: the cost of resume is mist ÷ this",
    pairedWith: "mist",
  },
  {
    name: "mist-native-socket",
    runtime: "deno",
    entry: "stacks/mist_native_socket.ts",
    permissions: [...DENO_NET, "--allow-read"],
    note: "as mist, but the Client on Deno's native WebSocket (Nagle on): the RPC core alone",
    versusStrict: true,
  },
  {
    name: "mist-node",
    runtime: "node",
    entry: "stacks/mist_node.ts",
    permissions: [],
    mistPackage: true,
    note: "Mist's npm package on Node: its server entry (serveLocal on node:http and ws) and its " +
      "client entry (Mist's no-delay socket over node:net)",
  },
  {
    name: "capnweb",
    runtime: "node",
    entry: "stacks/capnweb.ts",
    permissions: [],
    note: "newWebSocketRpcSession on a ws server and on a ws client socket",
  },
  {
    name: "capnweb-deno",
    runtime: "deno",
    entry: "stacks/capnweb_deno.ts",
    permissions: DENO_NET,
    note: "newWebSocketRpcSession on Deno.upgradeWebSocket and on Deno's WebSocket client " +
      "(Nagle on: a call is two frames, push and pull, so the pull waits for a delayed ACK); " +
      "a tenth of the sequential and pipelined calls, as a call takes ~44 ms",
    shrink: (plan) => ({
      ...plan,
      sequentialWarmup: Math.ceil(plan.sequentialWarmup / 10),
      sequentialCalls: Math.ceil(plan.sequentialCalls / 10),
      pipelinedWarmup: Math.ceil(plan.pipelinedWarmup / 10),
      pipelinedCalls: Math.ceil(plan.pipelinedCalls / 10),
    }),
  },
  {
    name: "birpc",
    runtime: "node",
    entry: "stacks/birpc.ts",
    permissions: [],
    note: "createBirpc over ws on both ends, JSON serializer",
  },
  {
    name: "rpc-websockets",
    runtime: "node",
    entry: "stacks/rpc_websockets.ts",
    permissions: [],
    note: "its Server and Client (both on ws)",
  },
  {
    name: "vscode-jsonrpc",
    runtime: "node",
    entry: "stacks/vscode_jsonrpc.ts",
    permissions: [],
    note: "MessageConnection over vscode-ws-jsonrpc's reader/writer on ws sockets, both ends",
  },
];
