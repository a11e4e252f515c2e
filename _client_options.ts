/**
 * The client's options: their types, defaults and validation, and the runtime-dependent
 * defaults (how the secret travels, which socket) (internal; `client.ts` re-exports what callers
 * use). Runs in Deno, browsers and Node (no `Deno.*` here).
 *
 * @module
 */

import { checkInt } from "./_options.ts";
import type { Clock } from "./clock.ts";
import type { Untyped } from "./contract.ts";
import { isNoDelaySupported, NoDelayWebSocket } from "./deno_socket.ts";
import type { Logger } from "./log.ts";
import { MAX_MESSAGE_BYTES_LIMIT, type PeerOptions, resolvePeerOptions } from "./_peer_options.ts";
import { type ReconnectOptions, ReconnectPolicy } from "./_reconnect.ts";
import type { SharedSecret } from "./secret.ts";
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

/** Where to connect and with which secret; a provider returns one before every attempt. */
export interface Endpoint {
  /** A `ws:` URL, e.g. `ws://127.0.0.1:8080/`. */
  readonly url: string;
  /** The server's secret, or its 64-hex form. */
  readonly secret: SharedSecret | string;
}

/** Called before every connection attempt, so a restarted peer's new port and secret are used. */
export type EndpointProvider = () => Endpoint | Promise<Endpoint>;

/**
 * The client's liveness probe, sent only to a server that answered `$/hello`: after `intervalMs`
 * without any frame from the server, a `$/ping` request; if then nothing at all arrives for
 * `timeoutMs`, the connection is dropped (close 4000) and reconnected. Any frame counts as
 * life, the probe's answer included, so a busy connection is never probed.
 */
export interface HeartbeatOptions {
  /**
   * Silence before a probe. The connection is looked at every `intervalMs`, so a probe goes out
   * after `intervalMs` to twice that of silence. @default {15000}
   */
  intervalMs?: number;
  /** Further silence after a probe that drops the connection (close 4000). @default {10000} */
  timeoutMs?: number;
}

/** How the secret travels: the `X-Land-Secret` header, or a `Sec-WebSocket-Protocol` entry. */
export type SecretTransport = "header" | "protocol";

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

/**
 * Creates a socket; Mist passes either `headers` or `protocols`.
 */
export type WebSocketFactory = (
  url: string,
  init: { headers?: Record<string, string>; protocols?: string[]; maxMessageBytes?: number },
) => WebSocketLike;

/** Options of a {@linkcode Client}; the peer options apply to each connection. */
export interface ClientOptions<Local = Untyped, Remote = Untyped>
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
   * How to present the secret. Browsers cannot set headers, so `"header"` is for Deno and Node.
   * @default "header" in Deno and Node, "protocol" elsewhere
   */
  secretVia?: SecretTransport;
  /** Reconnect policy, or `false` to go dead on the first failure. @default {} */
  reconnect?: ReconnectOptions | false;
  /** Liveness probe, or `false` for none. @default {} */
  heartbeat?: HeartbeatOptions | false;
  /** An attempt that has not opened by then fails. @default {5000} */
  connectTimeoutMs?: number;
  /** Reject calls made while not connected at once, instead of waiting. @default false */
  failFast?: boolean;
  /** Notifications kept while not connected; older ones are dropped beyond it. @default {256} */
  maxQueuedNotifications?: number;
  /**
   * Creates sockets. @default Mist's no-delay socket for `ws:` URLs on Deno and Node (20.16+), the
   * global `WebSocket` elsewhere
   */
  webSocketFactory?: WebSocketFactory;
  /**
   * Where the timers come from: backoff, give-up, connect timeout and heartbeat, and those of
   * each connection's peer (call timeouts, the send queue). Replaceable in tests.
   * @default the global timers
   */
  clock?: Clock;
}

/** Every client option with its value, validated; each connection's peer gets `peer`. */
export interface ResolvedClientOptions<Local, Remote> {
  /** Asked before every attempt. */
  readonly provider: EndpointProvider;
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
  if (typeof endpoint === "function") provider = endpoint;
  else {
    if (options.secret === undefined) {
      throw new TypeError("Cannot create client: a URL endpoint needs options.secret");
    }
    const fixed: Endpoint = { url: String(endpoint), secret: options.secret };
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
    !options.webSocketFactory && !isNoDelaySupported() &&
    typeof globalThis.WebSocket !== "function"
  ) {
    throw new TypeError(
      "Cannot create client: no global WebSocket here (Node before 20.16: run with --experimental-websocket)",
    );
  }
  const reconnect = options.reconnect ?? {};
  const beat = options.heartbeat ?? {};
  return {
    provider,
    peer,
    clock: peer.clock,
    logger: peer.logger,
    failFast: options.failFast ?? false,
    via: options.secretVia ?? (isServerRuntime() ? "header" : "protocol"),
    auth,
    secretInQuery: options.secretInQuery ?? false,
    factory: options.webSocketFactory ?? defaultFactory(),
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

/** Deno and Node clients can set headers; a browser cannot. */
function isServerRuntime(): boolean {
  const g = globalThis as { Deno?: unknown; process?: { versions?: { node?: string } } };
  return g.Deno !== undefined || typeof g.process?.versions?.node === "string";
}

function defaultFactory(): WebSocketFactory {
  if (isNoDelaySupported()) {
    return (url, init) =>
      url.startsWith("ws:") ? new NoDelayWebSocket(url, init) : nativeSocket(url, init);
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
