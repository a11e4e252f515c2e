/**
 * The server's two faces, for tests that run the same checks against both: Deno's (`server.ts`,
 * on `Deno.serve`) and Node's (`server_node.ts`, on `node:http` and `ws`), here in-process under
 * Deno's Node compatibility. Real Node runs the Node face in `server_node_test.ts`,
 * `serve_test.ts` and `interop_test.ts`.
 *
 * Each face starts a server with the usual test handlers ({@linkcode Face.start}, the shape of
 * `startServer` in `./_helpers.ts`), and states where the faces legitimately differ, as
 * documented in `server_node.ts`, so that a test asserts each face's own outcome instead of
 * skipping one.
 *
 * @example
 * ```ts ignore
 * for (const face of FACES) {
 *   Deno.test(`${face.name}: echoes`, async () => {
 *     const t = await face.start();
 *     // …
 *     await t.server.shutdown();
 *   });
 * }
 * ```
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Peer } from "../peer.ts";
import { HandlerRegistry } from "../registry.ts";
import { SharedSecret } from "../secret.ts";
import { type LocalServer, serveLocal as serveDeno, type ServeLocalOptions } from "../server.ts";
import { serveLocal as serveNode } from "../server_node.ts";
import { type CloseRecord, type Deferred, deferred, quiet, type TestServer } from "./_helpers.ts";

/** One face of the server, with what is particular to it. */
export interface Face {
  /** For test names: `"Deno face"` or `"Node face"`. */
  readonly name: string;
  /** `serveLocal` of this face, as a promise on both (Deno's returns at once). */
  serve(options: ServeLocalOptions): Promise<LocalServer>;
  /**
   * Starts a server on 127.0.0.1 port 0 with a fresh secret, a quiet logger and the test
   * handlers of {@linkcode startWith}.
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
  start: (options) => startWith((all) => serveDeno(all), options),
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
  start: (options) => startWith(serveNode, options),
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

/**
 * Starts `serve` on 127.0.0.1 port 0 with a fresh secret, a quiet logger and handlers: `echo`
 * (result = params), `fail` ([message] → throws), `callback` ([method, params] → calls that
 * method on the caller), `gate` (waits for the test to open it), `awaitAbort` (waits for its
 * signal and records the reason), `big` ([n] → a string of n "x"). The same server as
 * `startServer` of `./_helpers.ts`, on either face.
 *
 * @param serve A face's `serveLocal`.
 * @param options Options for it; `registry` replaces the test handlers.
 * @returns The server and the handlers' state, once it is listening.
 */
export async function startWith(
  serve: (options: ServeLocalOptions) => LocalServer | Promise<LocalServer>,
  options: ServeLocalOptions = {},
): Promise<TestServer> {
  const secret = options.secret ?? SharedSecret.generate();
  const registry = options.registry ?? new HandlerRegistry();
  const peers: Peer[] = [];
  const peerWaiters: ((peer: Peer) => void)[] = [];
  const gates: Deferred<unknown>[] = [];
  const gateWaiters: ((gate: Deferred<unknown>) => void)[] = [];
  const aborted = deferred<unknown>();
  const abortStarted = deferred<void>();
  if (!options.registry) {
    registry
      .register("echo", (params) => params)
      .register("fail", ([message]) => {
        throw new Error(String(message));
      })
      .register(
        "callback",
        ([method, params], ctx) => ctx.peer.call(String(method), (params ?? []) as unknown[]),
      )
      .register("gate", () => {
        const gate = deferred<unknown>();
        gates.push(gate);
        gateWaiters.shift()?.(gate);
        return gate.promise;
      })
      .register("awaitAbort", (_params, ctx) => {
        const signal = ctx.signal;
        abortStarted.resolve();
        return new Promise((_resolve, reject) => {
          signal.addEventListener("abort", () => {
            aborted.resolve(signal.reason);
            reject(signal.reason);
          }, { once: true });
        });
      })
      .register("big", ([n]) => "x".repeat(Number(n)));
  }
  const server = await serve({
    logger: quiet,
    ...options,
    // `secret: undefined` given explicitly means no secret (with insecureNoSecret).
    secret: "secret" in options ? options.secret : secret,
    registry,
    onConnection(peer) {
      peers.push(peer);
      peerWaiters.shift()?.(peer);
      options.onConnection?.(peer);
    },
  });
  let seen = 0;
  let gatesSeen = 0;
  return {
    server,
    secret,
    registry,
    peers,
    gates,
    aborted,
    abortStarted,
    nextPeer() {
      const index = seen++;
      if (index < peers.length) return Promise.resolve(peers[index]);
      return new Promise((resolve) => peerWaiters.push(resolve));
    },
    nextGate() {
      const index = gatesSeen++;
      if (index < gates.length) return Promise.resolve(gates[index]);
      return new Promise((resolve) => gateWaiters.push(resolve));
    },
  };
}
