/**
 * The public surface shared by every preset (`mod.ts` on Deno, `server_node.ts` on Node): one
 * explicit list, so the presets differ only in their `serveLocal`. Everything not named here is
 * internal, whatever file it lives in.
 *
 * @module
 */

// Client
export {
  type AuthMode,
  Client,
  type ClientOptions,
  type ClientState,
  type EndpointProvider,
  StateChangeEvent,
} from "./client.ts";
// Server (serveLocal itself comes from each preset)
export type { LocalServer, ServeLocalOptions } from "./_serve_core.ts";
// Both ends
export { type Caller, type CallOptions, Peer, type PeerOptions, type PeerStats } from "./peer.ts";
export { type HandlerContext, type HandlerFn, HandlerRegistry } from "./registry.ts";
export type {
  CallArgs,
  Contract,
  InferContract,
  NotifyArgs,
  ParamsOf,
  ResultOf,
  StandardSchema,
} from "./contract.ts";
export type { ErrorCode, Params } from "./envelope.ts";
export {
  ChannelDeadError,
  ClosedError,
  DisconnectedError,
  LimitError,
  NotNegotiatedError,
  RemoteError,
} from "./errors.ts";
export { SharedSecret } from "./secret.ts";
export type { Transport, TransportSink, WebSocketLike } from "./transport.ts";
export { consoleLogger, type Logger } from "./log.ts";
export type { Clock } from "./clock.ts";
