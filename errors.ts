/**
 * The error classes a caller branches on. Runs in Deno, browsers and Node (no `Deno.*` here).
 *
 * Timeouts and cancellation are not classes of their own: a call rejects with its signal's
 * reason (a `DOMException` named `TimeoutError` or `AbortError`, or what was passed to
 * `abort()`).
 *
 * @module
 */

import { type ErrorCode, errorCodeOf } from "./envelope.ts";

/** The `"<Name>: "` prefix of a handler's error message (PROTOCOL.md §4). */
const REMOTE_NAME = /^([A-Za-z_$][\w$]{0,63}): /;

/**
 * The peer ran the method and answered with an error.
 *
 * @example Telling a remote failure apart
 * ```ts
 * import assert from "node:assert/strict";
 * import { RemoteError } from "./errors.ts";
 * const error = new RemoteError("fail", "Disk full");
 * assert.equal(error.message, 'Remote "fail" failed: Disk full');
 * assert.equal(error.remoteMessage, "Disk full");
 * assert.equal(error.code, undefined); // the handler's own error
 * assert.equal(new RemoteError("x", 'Unknown method "x"').code, "unknown-method");
 * assert.equal(new RemoteError("open", "NotFound: no such file").remoteName, "NotFound");
 * ```
 */
export class RemoteError extends Error {
  /** The method that was called. */
  readonly method: string;
  /** The error string the peer sent. */
  readonly remoteMessage: string;
  /**
   * The stable code when Mist itself produced the error (unknown method, overloaded, invalid
   * params…; PROTOCOL.md lists them), `undefined` for a handler's own error.
   */
  readonly code: ErrorCode | undefined;
  /**
   * The name of the error the handler threw, read from the message's `"<Name>: "` prefix
   * (`TypeError: bad` → `"TypeError"`; PROTOCOL.md §4). `undefined` for a plain `Error`, a
   * thrown non-error and Mist's own errors. A seed peer's message that itself starts with a
   * word and `": "` reads the same way.
   */
  readonly remoteName: string | undefined;

  /**
   * Creates the instance.
   *
   * @param method The method that was called.
   * @param remoteMessage The error string the peer sent.
   */
  constructor(method: string, remoteMessage: string) {
    super(`Remote "${method}" failed: ${remoteMessage}`);
    this.name = "RemoteError";
    this.method = method;
    this.remoteMessage = remoteMessage;
    this.code = errorCodeOf(remoteMessage);
    this.remoteName = this.code === undefined ? REMOTE_NAME.exec(remoteMessage)?.[1] : undefined;
  }
}

/**
 * The connection dropped while the call was pending. The call may or may not have run on the
 * other side; whether to retry is the caller's decision.
 *
 * @example Reading the close code
 * ```ts
 * import assert from "node:assert/strict";
 * import { DisconnectedError } from "./errors.ts";
 * const error = new DisconnectedError(1001, "Server shutting down", "echo");
 * assert.equal(error.closeCode, 1001);
 * assert.equal(error.message, 'Cannot complete "echo": connection closed (1001 Server shutting down)');
 * ```
 */
export class DisconnectedError extends Error {
  /** The WebSocket close code (1006 when the connection broke without a close frame). */
  readonly closeCode: number;
  /** The close reason, possibly empty. */
  readonly closeReason: string;
  /** The method that was pending, if any. */
  readonly method: string | undefined;

  /**
   * Creates the instance.
   *
   * @param closeCode The WebSocket close code.
   * @param closeReason The close reason.
   * @param method The pending method.
   * @param options `cause`: the original error, when there was one.
   */
  constructor(
    closeCode: number,
    closeReason: string,
    method?: string,
    options?: ErrorOptions,
  ) {
    const what = method === undefined ? "call" : `"${method}"`;
    const why = closeReason === "" ? `${closeCode}` : `${closeCode} ${closeReason}`;
    super(`Cannot complete ${what}: connection closed (${why})`, options);
    this.name = "DisconnectedError";
    this.closeCode = closeCode;
    this.closeReason = closeReason;
    this.method = method;
  }
}

/**
 * The client was closed by the application; nothing more will be sent.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClosedError } from "./errors.ts";
 * assert.equal(new ClosedError("echo").message, 'Cannot call "echo": client is closed');
 * ```
 */
export class ClosedError extends Error {
  /** The method that was called, if any. */
  readonly method: string | undefined;

  /**
   * Creates the instance.
   *
   * @param method The method that was called.
   */
  constructor(method?: string) {
    super(
      `Cannot call${method === undefined ? "" : ` "${method}"`}: client is closed`,
    );
    this.name = "ClosedError";
    this.method = method;
  }
}

/**
 * The other side never said `$/hello`, so it speaks only the seed's format and may not answer
 * requests: a server does not call such a client (PROTOCOL.md §5). Nothing was sent.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NotNegotiatedError } from "./errors.ts";
 * const error = new NotNegotiatedError("refresh");
 * assert.equal(error.name, "NotNegotiatedError");
 * assert.match(error.message, /^Cannot call "refresh": the client did not say \$\/hello/);
 * ```
 */
export class NotNegotiatedError extends Error {
  /** The method that was not called. */
  readonly method: string;

  /**
   * Creates the instance.
   *
   * @param method The method that was not called.
   */
  constructor(method: string) {
    super(
      `Cannot call "${method}": the client did not say $/hello, so it may not answer requests`,
    );
    this.name = "NotNegotiatedError";
    this.method = method;
  }
}

/**
 * Reconnection failed for longer than the give-up time; the client stopped trying. Only an
 * explicit `client.connect()` starts again.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ChannelDeadError } from "./errors.ts";
 * const error = new ChannelDeadError(30_000, "echo");
 * assert.equal(error.message, 'Cannot call "echo": channel dead after 30000 ms without a connection');
 * ```
 */
export class ChannelDeadError extends Error {
  /** The give-up time that passed, or `undefined` when the failed attempt was not retried. */
  readonly deadAfterMs: number | undefined;
  /** The method of the call that failed, if any. */
  readonly method: string | undefined;

  /**
   * Creates the instance.
   *
   * @param deadAfterMs The give-up time, or `undefined` when the attempts were not retried
   *   (reconnect off, or a refusal that retrying cannot cure).
   * @param method The method of the call that failed.
   * @param options `cause`: the last connection error; its message is quoted.
   */
  constructor(deadAfterMs: number | undefined, method?: string, options?: ErrorOptions) {
    const what = method === undefined ? "connect" : `call "${method}"`;
    const when = deadAfterMs === undefined
      ? "the connection failed and was not retried"
      : `${deadAfterMs} ms without a connection`;
    const cause = options?.cause;
    const last = cause === undefined
      ? ""
      : ` (last error: ${cause instanceof Error ? cause.message : String(cause)})`;
    super(`Cannot ${what}: channel dead after ${when}${last}`, options);
    this.name = "ChannelDeadError";
    this.deadAfterMs = deadAfterMs;
    this.method = method;
  }
}

/** Stable codes of {@linkcode LimitError}; listed in the README's limits table. */
export type LimitCode = "message-too-big" | "too-many-pending" | "overloaded";

/**
 * A documented limit was hit. `closeCode` is the WebSocket close code the connection was
 * closed with (1009 too big, 1008 policy), or `undefined` when it stayed open.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LimitError } from "./errors.ts";
 * const error = new LimitError("too-many-pending", "Cannot call \"echo\": 1024 calls pending");
 * assert.equal(error.code, "too-many-pending");
 * assert.equal(error.closeCode, undefined);
 * ```
 */
export class LimitError extends RangeError {
  /** Which limit. */
  readonly code: "message-too-big" | "too-many-pending" | "overloaded";
  /** The close code the connection was closed with, if it was. */
  readonly closeCode: number | undefined;

  /**
   * Creates the instance.
   *
   * @param code Which limit.
   * @param message What happened, in "Cannot <action>: <state>" form.
   * @param closeCode The close code, if the connection was closed.
   */
  constructor(
    code: "message-too-big" | "too-many-pending" | "overloaded",
    message: string,
    closeCode?: number,
  ) {
    super(message);
    this.name = "LimitError";
    this.code = code;
    this.closeCode = closeCode;
  }
}
