/**
 * The client's options: their types, defaults and validation, and the runtime-dependent
 * defaults (how the secret travels, which socket) (internal; `client.ts` re-exports what callers
 * use). Runs in Deno, browsers and Node (no `Deno.*` here).
 *
 * @module
 */

import { DEFAULT_REPLAY_LIMITS, type ReplayLimits } from "./_session.ts";
import { checkInt } from "./_options.ts";
import type { Clock } from "./clock.ts";
import type { Contract } from "./contract.ts";
import { type Logger, logSafe } from "./log.ts";
import { MAX_MESSAGE_BYTES_LIMIT, type PeerOptions, resolvePeerOptions } from "./_peer_options.ts";
import { ReconnectPolicy } from "./_reconnect.ts";
import { SharedSecret } from "./secret.ts";
import type { WebSocketLike } from "./transport.ts";

/** Default {@linkcode ClientOptions.connectTimeoutMs}. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
/** Default {@linkcode HeartbeatOptions.intervalMs}. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 15_000;
/** Default {@linkcode HeartbeatOptions.timeoutMs}. */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 10_000;
/** Default {@linkcode ClientOptions.maxQueuedNotifications}. */
export const DEFAULT_MAX_QUEUED_NOTIFICATIONS = 256;
/**
 * Default {@linkcode PeerOptions.maxMessageBytes} of a client: 64 MiB, so a large reply from a
 * server that allows more than Mist's server does (the upstream one allows 100 MiB) gets through.
 */
export const DEFAULT_CLIENT_MAX_MESSAGE_BYTES: number = MAX_MESSAGE_BYTES_LIMIT;

/**
 * Called before every connection attempt, so a restarted peer's new port and secret are used.
 * Returns `url` (a `ws:` URL, e.g. `ws://127.0.0.1:8080/`) and `secret` (the server's secret, or
 * its 64-hex form).
 */
export type EndpointProvider = () =>
  | { readonly url: string; readonly secret: SharedSecret | string }
  | Promise<{ readonly url: string; readonly secret: SharedSecret | string }>;

/** What a provider returns. */
export type Endpoint = Awaited<ReturnType<EndpointProvider>>;

/**
 * How the client shows it knows the secret (PROTOCOL.md §1):
 * - `"proof"`: the mutual proof; the secret never goes on the wire, and nothing is sent or
 *   accepted until the server has proved it knows the secret too. Mist's servers only.
 * - `"secret"`: the seed's raw secret; every server accepts it, and whoever holds the port gets it.
 * - `"proof-then-secret"`: a proof first; after an attempt with a proof fails, the next attempt
 *   sends the raw secret. A downgrade an impostor can force: only where both kinds of server
 *   must be reached with one configuration.
 */
export type AuthMode = "proof" | "secret" | "proof-then-secret";

/** Options of a {@linkcode Client}; the peer options apply to each connection. */
export interface ClientOptions<Local = Contract, Remote = Contract>
  extends PeerOptions<Local, Remote> {
  /** The secret, when the endpoint is a URL. */
  secret?: SharedSecret | string;
  /**
   * How to show the secret. Browsers default to `"secret"` so that the seed's servers accept
   * them. @default "proof" in Deno and Node, "secret" elsewhere
   */
  auth?: AuthMode;
  /**
   * With `auth: "secret"`, also put the secret in the URL's `?secret=` (servers that read only
   * the query). URLs end up in logs: only where needed. @default false
   */
  secretInQuery?: boolean;
  /**
   * How to present the secret: the `X-Land-Secret` header, or a `Sec-WebSocket-Protocol` entry.
   * Browsers cannot set headers, so `"header"` is for Deno and Node.
   * @default "header" in Deno and Node, "protocol" elsewhere
   */
  secretVia?: "header" | "protocol";
  /**
   * The reconnect policy, or `false` to go dead on the first failure. Delays follow `delaysMs`,
   * then `maxDelayMs` for every further attempt; `deadAfterMs` after the connection dropped
   * without a new one, the channel is dead. @default {}
   */
  reconnect?: {
    /** Delays before attempts 1, 2, … @default [100, 200, 400, 1000, 2000] */
    delaysMs?: readonly number[];
    /** Delay of every attempt past `delaysMs`. @default {5000} */
    maxDelayMs?: number;
    /** Give-up time, from the drop. @default {30000} */
    deadAfterMs?: number;
    /** Random extra up to this fraction of each delay (0 to 1). @default {0} */
    jitter?: number;
    /**
     * A connection that closes sooner than this after opening does not reset the delays: a
     * server that accepts and drops at once is retried ever more slowly. @default {5000}
     */
    stableAfterMs?: number;
  } | false;
  /**
   * The liveness probe, or `false` for none. Sent only to a server that answered `$/hello`:
   * after `intervalMs` without any frame from the server, a `$/ping` request; if then nothing
   * at all arrives for `timeoutMs`, the connection is dropped (close 4000) and reconnected. Any
   * frame counts as life, so a busy connection is never probed. @default {}
   */
  heartbeat?: {
    /**
     * Silence before a probe. The connection is looked at every `intervalMs`, so a probe goes
     * out after `intervalMs` to twice that of silence. @default {15000}
     */
    intervalMs?: number;
    /** Further silence after a probe that drops the connection (close 4000). @default {10000} */
    timeoutMs?: number;
  } | false;
  /** An attempt that has not opened by then fails. @default {5000} */
  connectTimeoutMs?: number;
  /** Reject calls made while not connected at once, instead of waiting. @default false */
  failFast?: boolean;
  /** Notifications kept while not connected; older ones are dropped beyond it. @default {256} */
  maxQueuedNotifications?: number;
  /**
   * Resuming a dropped connection without loss, with a server that supports it (PROTOCOL.md
   * §8): calls in flight, running handlers and notifications survive a drop, as long as the
   * client reconnects to the same server within its grace period. What the client sent and the
   * server has not acknowledged is kept, at most `maxBufferBytes` and `maxBufferMessages`;
   * beyond, the connection can no longer be resumed and a drop fails the calls in flight as
   * without resume. `false` turns it off.
   * @default {{ maxBufferBytes: 8388608, maxBufferMessages: 4096 }}
   */
  resume?: false | { maxBufferBytes?: number; maxBufferMessages?: number };
  /**
   * Creates sockets. @default Mist's no-delay socket for `ws:` URLs on Deno and Node (20.16+), the
   * global `WebSocket` elsewhere
   */
  webSocketFactory?: (
    url: string,
    init: { headers?: Record<string, string>; protocols?: string[]; maxMessageBytes?: number },
  ) => WebSocketLike;
  /**
   * Where the timers come from: backoff, give-up, connect timeout and heartbeat, and those of
   * each connection's peer (call timeouts, the send queue). Replaceable in tests.
   * @default the global timers
   */
  clock?: Clock;
}

/** The liveness probe's options (internal name; the public type is `ClientOptions.heartbeat`). */
export type HeartbeatOptions = Exclude<NonNullable<ClientOptions["heartbeat"]>, false>;
/** How a socket is made (internal name; the public type is `ClientOptions.webSocketFactory`). */
export type WebSocketFactory = NonNullable<ClientOptions["webSocketFactory"]>;
/** How the secret travels (internal name). */
export type SecretTransport = NonNullable<ClientOptions["secretVia"]>;

/** Every client option with its value, validated; each connection's peer gets `peer`. */
export interface ResolvedClientOptions<Local, Remote> {
  /** Asked before every attempt. */
  readonly provider: EndpointProvider;
  /** The endpoint is a URL, not a provider: a refusal cannot be cured by asking again. */
  readonly fixedEndpoint: boolean;
  /** Each connection's peer options (the client's clock and logger included). */
  readonly peer: ReturnType<typeof resolvePeerOptions<Local, Remote>>;
  /** Timers of the client and its peers. */
  readonly clock: Clock;
  /** The peers' bounded logger. */
  readonly logger: Logger;
  /** Reject calls at once while not connected. */
  readonly failFast: boolean;
  /** Where the secret or the proof goes: headers or protocols. */
  readonly via: SecretTransport;
  /** How the client shows it knows the secret. */
  readonly auth: AuthMode;
  /** With the raw secret, also put it in the URL's query. */
  readonly secretInQuery: boolean;
  /** Makes each socket. */
  readonly factory: WebSocketFactory;
  /** The delays and the give-up time; `undefined` with `reconnect: false`. */
  readonly reconnect: ReconnectPolicy | undefined;
  /** One attempt's deadline: open, proof and hello. */
  readonly connectTimeoutMs: number;
  /** The heartbeat's silences; `undefined` with `heartbeat: false`. */
  readonly heartbeat: Required<HeartbeatOptions> | undefined;
  /** Notifications kept while not connected. */
  readonly maxQueued: number;
  /**
   * Whether the sockets are Mist's (Nagle off) or the browser's own (Chromium turns Nagle off),
   * not ones the application supplied.
   */
  readonly ownSocket: boolean;
  /** The replay buffer's bounds; `undefined` with `resume: false`. */
  readonly resume: ReplayLimits | undefined;
}

/**
 * Validates a client's options and fills in their defaults, before the first connection.
 *
 * @param endpoint A `ws:` URL (with `options.secret`), or a provider of `{url, secret}`.
 * @param options As given.
 * @returns Every option with its value.
 * @throws {TypeError} No secret for a URL endpoint, an unknown `auth`, or no `WebSocket` here.
 * @throws {RangeError} An option out of range (the message names it).
 */
export function resolveClientOptions<Local, Remote>(
  endpoint: string | URL | EndpointProvider,
  options: ClientOptions<Local, Remote>,
): ResolvedClientOptions<Local, Remote> {
  let provider: EndpointProvider;
  const fixedEndpoint = typeof endpoint !== "function";
  if (typeof endpoint === "function") provider = endpoint;
  else {
    const url = checkUrl(endpoint);
    if (options.secret === undefined) {
      throw new TypeError("Cannot create client: a URL endpoint needs options.secret");
    }
    const fixed: Endpoint = { url, secret: checkSecret(options.secret) };
    provider = () => fixed;
  }
  const peer = resolvePeerOptions<Local, Remote>({
    ...options,
    maxMessageBytes: options.maxMessageBytes ?? DEFAULT_CLIENT_MAX_MESSAGE_BYTES,
  });
  const auth = options.auth ?? (isServerRuntime() ? "proof" : "secret");
  if (!["proof", "secret", "proof-then-secret"].includes(auth)) {
    throw new TypeError(
      `Cannot use auth: expected "proof", "secret" or "proof-then-secret", got "${auth}"`,
    );
  }
  if (
    !options.webSocketFactory && !preset?.supported() &&
    typeof globalThis.WebSocket !== "function"
  ) {
    throw new TypeError(
      "Cannot create client: no global WebSocket here (Node before 20.16: run with --experimental-websocket)",
    );
  }
  const reconnect = options.reconnect ?? {};
  const beat = options.heartbeat ?? {};
  const resume = options.resume ?? {};
  return {
    resume: resume === false ? undefined : {
      maxBufferBytes: checkInt(
        "resume.maxBufferBytes",
        resume.maxBufferBytes,
        DEFAULT_REPLAY_LIMITS.maxBufferBytes,
        0,
      ),
      maxBufferMessages: checkInt(
        "resume.maxBufferMessages",
        resume.maxBufferMessages,
        DEFAULT_REPLAY_LIMITS.maxBufferMessages,
        0,
      ),
    },
    provider,
    fixedEndpoint,
    peer,
    clock: peer.clock,
    logger: peer.logger,
    failFast: options.failFast ?? false,
    via: options.secretVia ?? (isServerRuntime() ? "header" : "protocol"),
    auth,
    secretInQuery: options.secretInQuery ?? false,
    factory: options.webSocketFactory ?? defaultFactory(),
    ownSocket: !options.webSocketFactory,
    reconnect: reconnect === false ? undefined : new ReconnectPolicy(reconnect),
    connectTimeoutMs: checkInt(
      "connectTimeoutMs",
      options.connectTimeoutMs,
      DEFAULT_CONNECT_TIMEOUT_MS,
      1,
    ),
    heartbeat: beat === false ? undefined : {
      intervalMs: checkInt(
        "heartbeat.intervalMs",
        beat.intervalMs,
        DEFAULT_HEARTBEAT_INTERVAL_MS,
        1,
      ),
      timeoutMs: checkInt("heartbeat.timeoutMs", beat.timeoutMs, DEFAULT_HEARTBEAT_TIMEOUT_MS, 1),
    },
    maxQueued: checkInt(
      "maxQueuedNotifications",
      options.maxQueuedNotifications,
      DEFAULT_MAX_QUEUED_NOTIFICATIONS,
      0,
    ),
  };
}

/**
 * A `ws:` or `wss:` URL, else a `TypeError` naming it (without its query, where a secret may be).
 *
 * @param endpoint What the caller gave.
 * @returns The URL's text.
 */
export function checkUrl(endpoint: unknown): string {
  let url: URL | undefined;
  try {
    if (typeof endpoint === "string" || endpoint instanceof URL) url = new URL(endpoint);
  } catch {
    // reported below
  }
  if (url?.protocol !== "ws:" && url?.protocol !== "wss:") {
    const shown = url
      ? `"${logSafe(url.origin + url.pathname, 100)}"`
      : typeof endpoint === "string"
      ? `"${logSafe(endpoint.replace(/\?.*$/s, ""), 100)}"`
      : String(endpoint);
    throw new TypeError(
      `Cannot create client: endpoint ${shown} is not a ws: or wss: URL (e.g. "ws://127.0.0.1:8080/")`,
    );
  }
  return url.href;
}

/**
 * The secret as given, checked: a `SharedSecret`, or its 64 hex characters (a `TypeError`
 * giving the length, never the value, otherwise).
 */
function checkSecret(secret: unknown): SharedSecret {
  if (secret instanceof SharedSecret) return secret;
  if (typeof secret === "string") return SharedSecret.fromHex(secret);
  throw new TypeError(
    `Cannot create client: options.secret must be a SharedSecret or 64 hex characters, not ${typeof secret}`,
  );
}

/** Deno and Node clients can set headers; a browser cannot. */
function isServerRuntime(): boolean {
  const g = globalThis as { Deno?: unknown; process?: { versions?: { node?: string } } };
  return g.Deno !== undefined || typeof g.process?.versions?.node === "string";
}

/**
 * The socket a runtime preset installs (`_socket/preset.ts`, imported by the Deno and Node entry
 * points): Mist's no-delay socket. The browser build never imports it, so it is not bundled.
 */
let preset: { supported(): boolean; create: WebSocketFactory } | undefined;

/**
 * Installs the runtime preset's socket as the default for `ws:` URLs, where it is supported.
 *
 * @param socket Whether it can run here, and how it is made.
 */
export function installSocketPreset(
  socket: { supported(): boolean; create: WebSocketFactory },
): void {
  preset = socket;
}

function defaultFactory(): WebSocketFactory {
  if (preset?.supported()) {
    const { create } = preset;
    return (url, init) => url.startsWith("ws:") ? create(url, init) : nativeSocket(url, init);
  }
  return nativeSocket;
}

function nativeSocket(
  url: string,
  init: { headers?: Record<string, string>; protocols?: string[] },
): WebSocketLike {
  const Native =
    (globalThis as { WebSocket?: new (url: string, init?: unknown) => WebSocketLike }).WebSocket;
  if (!Native) {
    throw new TypeError(
      "Cannot connect: no global WebSocket here (Node before 20.16: run with --experimental-websocket)",
    );
  }
  // Deno and Node (undici) take a dictionary with headers; browsers only a protocol list.
  return init.headers
    ? new Native(url, { headers: init.headers })
    : new Native(url, init.protocols);
}
