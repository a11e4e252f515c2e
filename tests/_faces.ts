/**
 * The server's two faces, for tests that run the same checks against both: Deno's (`server.ts`,
 * on `Deno.serve`) and Node's (`server_node.ts`, on `node:http` and `ws`), here in-process under
 * Deno's Node compatibility. Real Node runs the Node face in `server_node_test.ts`,
 * `serve_test.ts` and `interop_test.ts`.
 *
 * Each face starts a server with the usual test handlers ({@linkcode Face.start}: `startServer`
 * of `./_helpers.ts` on that face), and states where the faces legitimately differ, as
 * documented in `server_node.ts`, so that a test asserts each face's own outcome instead of
 * skipping one.
 *
 * @example
 * ```ts ignore
 * for (const face of FACES) {
 *   Deno.test(`serveLocal() echoes [${face.name}]`, async () => {
 *     await using t = await face.start();
 *     // …
 *   });
 * }
 * ```
 *
 * @module
 */
import assert from "node:assert/strict";
import { type LocalServer, serveLocal as serveDeno, type ServeLocalOptions } from "../server.ts";
import { serveLocal as serveNode } from "../server_node.ts";
import { type CloseRecord, startServer, type TestServer } from "./_helpers.ts";

/** One face of the server, with what is particular to it. */
export interface Face {
  /** For test names: `"Deno face"` or `"Node face"`. */
  readonly name: string;
  /** `serveLocal` of this face, as a promise on both (Deno's returns at once). */
  serve(options: ServeLocalOptions): Promise<LocalServer>;
  /**
   * `startServer` of `./_helpers.ts` on this face: a server on 127.0.0.1 port 0 with a fresh
   * secret, a quiet logger and the test handlers, once it listens.
   */
  start(options?: ServeLocalOptions): Promise<TestServer>;
  /**
   * Asserts that `serveLocal(options)` refuses the options the way this face documents it:
   * Deno's throws at once, Node's returns a promise that rejects. `check` looks at the error.
   */
  refuses(options: ServeLocalOptions, check: (error: unknown) => boolean): Promise<void>;
  /**
   * What a client sees when its message is over `maxMessageBytes`: on Deno, Mist closes with
   * 1009 "Message too big"; on Node, `ws` refuses the frame and closes with 1009 itself, without
   * a reason, before Mist sees it (see `server_node.ts`).
   */
  readonly tooBig: CloseRecord;
  /**
   * What a client sees when it sends a text frame that is not UTF-8: on Deno the connection
   * drops without a close frame (1006); on Node, `ws` closes with 1007, without a reason.
   */
  readonly invalidUtf8: CloseRecord;
}

/** Deno's face: `server.ts`. */
export const DENO_FACE: Face = {
  name: "Deno face",
  serve: (options) => Promise.resolve().then(() => serveDeno(options)),
  start: (options) => Promise.resolve().then(() => startServer(options)),
  refuses(options, check) {
    assert.throws(() => serveDeno(options), check);
    return Promise.resolve();
  },
  tooBig: { code: 1009, reason: "Message too big" },
  invalidUtf8: { code: 1006, reason: "" },
};

/** Node's face: `server_node.ts`, in-process under Deno's Node compatibility. */
export const NODE_FACE: Face = {
  name: "Node face",
  serve: (options) => serveNode(options),
  start: (options = {}) => startServer(options, serveNode),
  async refuses(options, check) {
    let result: Promise<LocalServer> | undefined;
    assert.doesNotThrow(() => result = serveNode(options), "the Node face rejects, never throws");
    await assert.rejects(result!, check);
  },
  tooBig: { code: 1009, reason: "" },
  invalidUtf8: { code: 1007, reason: "" },
};

/** Both faces, Deno's first. */
export const FACES: readonly Face[] = [DENO_FACE, NODE_FACE];
