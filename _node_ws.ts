/**
 * The `ws` package as the Node face (`server_node.ts`) uses it (internal; not exported by
 * mod.ts). Node-only.
 *
 * - {@linkcode WsSocket}, {@linkcode WsServer}: the few members of `ws` 8 used here (the package
 *   ships no types, and the project pins no `@types/ws`).
 * - {@linkcode NodeSocket}: a `ws` server-side socket as a {@linkcode WebSocketLike}. It is
 *   already open when `handleUpgrade` hands it over and never fires "open", while the core's
 *   connection slots start a peer on "open": the face fires it with `opened()`.
 * - {@linkcode PingWatch}: WebSocket ping frames for seed clients, one timer for all of them.
 *
 * @module
 */

import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { releaseBuffer, retainBuffer } from "./_buffer_pool.ts";
import type { Clock } from "./clock.ts";
import type { WebSocketLike, WebSocketLikeEvent } from "./transport.ts";

/**
 * The members of `ws`'s `WebSocket` (server side) used here: the WHATWG subset Mist reads of
 * any socket (`ws` implements it, "open" aside: see {@linkcode NodeSocket}), plus ping frames
 * and its EventEmitter listeners. Its `close` throws for a code a server may not send.
 */
export interface WsSocket extends WebSocketLike {
  /** Queues a frame; `done` is called once it was written (or could not be). */
  send(data: string | ArrayBuffer | Uint8Array, done?: (error?: Error) => void): void;
  /** Sends a ping frame; throws while connecting. */
  ping(): void;
  /** EventEmitter listeners: "pong", "message", "close", "error". */
  on(event: string, listener: (...args: unknown[]) => void): void;
}

/** The members of `ws`'s `WebSocketServer` (with `noServer: true`) used here. */
export interface WsServer {
  /** Completes an upgrade the face accepted; calls `done` unless it refused the request. */
  handleUpgrade(
    request: IncomingMessage,
    socket: Duplex,
    head: Uint8Array,
    done: (socket: WsSocket) => void,
  ): void;
  /** A request `handleUpgrade` refused (bad key, version, method, protocol list). */
  on(
    event: "wsClientError",
    listener: (error: Error, socket: Duplex, request: IncomingMessage) => void,
  ): void;
}

/**
 * A `ws` server-side socket as a {@linkcode WebSocketLike}: everything is passed through but
 * "open", which `ws` never fires on a server-side socket (it is open from the start). Listeners
 * for "open" are kept and called by {@linkcode NodeSocket.opened}, which the face calls right
 * after handing the socket to the core, in the same turn: no frame can arrive in between.
 *
 * @example
 * ```ts ignore
 * wss.handleUpgrade(request, socket, head, (ws) => {
 *   const socket = new NodeSocket(ws);
 *   core.connection(socket, decision.plan, from);
 *   socket.opened();
 * });
 * ```
 */
export class NodeSocket implements WebSocketLike {
  readonly #ws: WsSocket;
  #onOpen: ((event: WebSocketLikeEvent) => void)[] = [];

  /** @param ws The socket `handleUpgrade` handed over. */
  constructor(ws: WsSocket) {
    this.#ws = ws;
  }

  /** The socket's state. */
  get readyState(): number {
    return this.#ws.readyState;
  }

  /** Bytes queued and not yet written. */
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  /** The selected subprotocol, or `""`. */
  get protocol(): string {
    return this.#ws.protocol;
  }

  /** How binary messages arrive. */
  get binaryType(): string {
    return this.#ws.binaryType;
  }

  set binaryType(type: string) {
    this.#ws.binaryType = type;
  }

  /**
   * Queues a frame. `ws` writes bytes from the caller's memory later (a server does not mask),
   * while Mist may reuse a large message's memory once `send` returns (WHATWG sockets copy): so
   * the memory is retained until `ws` has written it.
   *
   * @param data The payload.
   */
  send(data: string | ArrayBuffer | Uint8Array): void {
    if (!(data instanceof Uint8Array)) return this.#ws.send(data);
    retainBuffer(data);
    this.#ws.send(data, () => releaseBuffer(data));
  }

  /**
   * Starts the closing handshake.
   *
   * @param code The close code.
   * @param reason The reason.
   */
  close(code?: number, reason?: string): void {
    this.#ws.close(code, reason);
  }

  /**
   * Registers a listener; one for "open" waits for {@linkcode NodeSocket.opened}.
   *
   * @param type The event.
   * @param listener The listener.
   */
  addEventListener(
    type: "open" | "message" | "close" | "error",
    listener: (event: WebSocketLikeEvent) => void,
  ): void {
    if (type === "open") this.#onOpen.push(listener);
    else this.#ws.addEventListener(type, listener);
  }

  /** Fires "open" once (the socket is open already). */
  opened(): void {
    for (const listener of this.#onOpen.splice(0)) listener({});
  }
}

/** The close reason of a seed client dropped for not answering ping frames (code 1001). */
export const PING_CLOSE_REASON = "No answer to ping";

/** What the watch knows of one socket. */
interface Pinged {
  /** A message or a pong arrived since the last look. */
  heard: boolean;
  /** A ping is out, sent at the last look. */
  waiting: boolean;
}

/**
 * Watches seed clients (those that did not announce `$/hello`, so may not answer `$/ping`) with
 * WebSocket ping frames, which a browser's or any library's network stack answers: a socket
 * that sent nothing for a period (half the timeout) is sent a ping; one that then sends nothing,
 * not even the pong, for another period is closed with 1001 {@linkcode PING_CLOSE_REASON}. So a
 * silent client goes after 1 to 1.5 times the timeout, as with the core's `$/ping`. One timer
 * for all sockets, armed only while there is one; a message only sets a flag.
 *
 * @example
 * ```ts ignore
 * const pings = new PingWatch(30_000, realClock);
 * pings.watch(ws); // forgotten by itself on "close"
 * pings.stop(); // on shutdown
 * ```
 */
export class PingWatch {
  readonly #periodMs: number;
  readonly #clock: Clock;
  readonly #sockets = new Map<WsSocket, Pinged>();
  #timer: unknown;
  #stopped = false;

  /**
   * @param timeoutMs A socket is pinged after at least half of this without a message, and
   *   closed after the other half without one.
   * @param clock Where the timer comes from.
   */
  constructor(timeoutMs: number, clock: Clock) {
    this.#periodMs = Math.max(1, Math.ceil(timeoutMs / 2));
    this.#clock = clock;
  }

  /** Sockets watched now. */
  get size(): number {
    return this.#sockets.size;
  }

  /**
   * Starts watching an open socket, until it closes.
   *
   * @param ws The socket.
   */
  watch(ws: WsSocket): void {
    if (this.#stopped) return;
    // As if just heard: a look right after the watch starts must not ping yet.
    const pinged: Pinged = { heard: true, waiting: false };
    this.#sockets.set(ws, pinged);
    const heard = (): void => void (pinged.heard = true);
    ws.on("message", heard);
    ws.on("pong", heard);
    ws.on("close", () => this.#forget(ws));
    this.#timer ??= this.#clock.setTimeout(() => this.#look(), this.#periodMs);
  }

  /** Stops watching every socket for good (shutdown). */
  stop(): void {
    this.#stopped = true;
    this.#sockets.clear();
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #forget(ws: WsSocket): void {
    this.#sockets.delete(ws);
    if (this.#sockets.size > 0) return;
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #look(): void {
    this.#timer = undefined;
    for (const [ws, pinged] of this.#sockets) {
      if (pinged.heard) {
        pinged.heard = pinged.waiting = false;
      } else if (pinged.waiting) {
        // `ws` ends the TCP connection itself if the close frame is not answered in time.
        this.#sockets.delete(ws);
        try {
          ws.close(1001, PING_CLOSE_REASON);
        } catch {
          // Closing already.
        }
      } else {
        pinged.waiting = true;
        try {
          ws.ping();
        } catch {
          // Not open: its "close" comes next.
        }
      }
    }
    if (this.#sockets.size > 0) {
      this.#timer = this.#clock.setTimeout(() => this.#look(), this.#periodMs);
    }
  }
}
