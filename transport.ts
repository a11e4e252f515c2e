/**
 * The narrow seam between the peer and a socket: send a frame, receive frames, close with a
 * reason. Runs in Deno, browsers and Node: no `Deno.*` here.
 *
 * @module
 */

/** A frame as a transport delivers it: text, or binary (a binary message, PROTOCOL.md §2). */
export type Frame = string | ArrayBuffer | Uint8Array;

/**
 * What a transport tells its peer about.
 *
 * @example Logging frames
 * ```ts
 * import type { TransportSink } from "./transport.ts";
 * const sink: TransportSink = {
 *   frame: (data) => console.log(typeof data),
 *   closed: (code, reason) => console.log(code, reason),
 * };
 * ```
 */
export interface TransportSink {
  /** A frame arrived. */
  frame(data: string | ArrayBuffer | Uint8Array): void;
  /** The transport closed, with the WebSocket close code and reason (1006 when abnormal). */
  closed(code: number, reason: string): void;
}

/**
 * What the peer needs from a connection, and nothing more.
 *
 * Implementations must deliver frames in order and call `closed` at most once.
 *
 * @example An in-memory transport that discards what it is sent
 * ```ts
 * import type { Transport, TransportSink } from "./transport.ts";
 * class NullTransport implements Transport {
 *   bufferedAmount = 0;
 *   #sink?: TransportSink;
 *   start(sink: TransportSink): void { this.#sink = sink; }
 *   send(_frame: string): void {}
 *   close(code: number, reason: string): void { this.#sink?.closed(code, reason); }
 * }
 * new NullTransport().close(1000, "done");
 * ```
 */
export interface Transport {
  /** Bytes accepted by `send` but not yet written to the network. */
  readonly bufferedAmount: number;
  /** Starts delivering frames and the close to `sink`. Called once. */
  start(sink: TransportSink): void;
  /**
   * Queues one text or binary frame. Must not throw once the transport is closed. A binary
   * frame is lent for the call: Mist may reuse its memory once `send` returns, so a transport
   * that writes it later copies it first (as WHATWG sockets do).
   */
  send(frame: string | Uint8Array): void;
  /** Closes with a WebSocket close code (RFC 6455 §7.4) and a short reason. */
  close(code: number, reason: string): void;
}

/**
 * The subset of the WHATWG `WebSocket` that Mist uses, so that Deno's, a browser's, Node's, or
 * a custom socket (such as Mist's no-delay socket on Deno) all fit.
 *
 * @example Any native WebSocket is a WebSocketLike
 * ```ts ignore
 * import type { WebSocketLike } from "./transport.ts";
 * const socket: WebSocketLike = new WebSocket("ws://127.0.0.1:8080/");
 * ```
 */
export interface WebSocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** Bytes queued by `send` and not yet written. */
  readonly bufferedAmount: number;
  /** The subprotocol the server selected, or `""`. */
  readonly protocol: string;
  /** How binary frames are delivered; Mist sets `"arraybuffer"`. */
  binaryType: string;
  /**
   * Queues a frame. Bytes are taken (copied) before it returns, as by WHATWG sockets: Mist
   * reuses the memory of large binary messages.
   */
  send(data: string | ArrayBuffer | Uint8Array): void;
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void;
  /** Registers a listener for `open`, `message`, `close` or `error`. */
  addEventListener(
    type: "open" | "message" | "close" | "error",
    listener: (
      event: { readonly data?: unknown; readonly code?: number; readonly reason?: string },
    ) => void,
  ): void;
}

/**
 * The fields of `open`, `message`, `close` and `error` events that Mist reads.
 *
 * @example Reading a message event
 * ```ts
 * import type { WebSocketLikeEvent } from "./transport.ts";
 * const event: WebSocketLikeEvent = { data: "{}" };
 * console.log(event.data);
 * ```
 */
export interface WebSocketLikeEvent {
  /** A message event's payload. */
  readonly data?: unknown;
  /** A close event's code. */
  readonly code?: number;
  /** A close event's reason. */
  readonly reason?: string;
}

/**
 * A {@linkcode Transport} over any {@linkcode WebSocketLike}: Deno's server or client socket, a
 * browser's, Node's, or Mist's no-delay socket.
 *
 * Close codes the WHATWG API forbids a client to send (1001, 1008, 1009: only 1000 and
 * 3000–4999 are allowed) are sent as `4000 + (code - 1000)` instead, e.g. 1009 as 4009
 * (PROTOCOL.md, "Close codes").
 *
 * @example Wrapping a socket
 * ```ts ignore
 * import { WebSocketTransport } from "./transport.ts";
 * const transport = new WebSocketTransport(new WebSocket("ws://127.0.0.1:8080/"));
 * ```
 */
export class WebSocketTransport implements Transport {
  #socket: WebSocketLike;

  /**
   * Wraps a socket.
   *
   * @param socket An open (or opening) socket; its `binaryType` is set to `"arraybuffer"`.
   */
  constructor(socket: WebSocketLike) {
    this.#socket = socket;
    socket.binaryType = "arraybuffer";
  }

  /** Bytes queued in the socket and not yet written. */
  get bufferedAmount(): number {
    return this.#socket.bufferedAmount;
  }

  /**
   * Forwards messages and the close event to `sink`.
   *
   * @param sink Receives frames and the close.
   */
  start(sink: TransportSink): void {
    this.#socket.addEventListener(
      "message",
      (event) => sink.frame(event.data as Frame),
    );
    this.#socket.addEventListener(
      "close",
      // Deno's server-side socket reports 0, not 1006, for a connection that ended without a
      // close frame.
      (event) => sink.closed(event.code || 1006, event.reason ?? ""),
    );
  }

  /**
   * Queues a frame; a frame sent after close is discarded, as the WHATWG API does.
   *
   * @param frame The text, or a binary message's bytes.
   */
  send(frame: string | Uint8Array): void {
    if (this.#socket.readyState === 1) this.#socket.send(frame);
  }

  /**
   * Starts the closing handshake.
   *
   * @param code A close code (RFC 6455 §7.4.1).
   * @param reason At most 123 bytes of UTF-8 (RFC 6455 §5.5: control frame payload ≤ 125).
   */
  close(code: number, reason: string): void {
    try {
      this.#socket.close(code, reason);
    } catch {
      // A client-side socket refuses 1xxx codes other than 1000 (InvalidAccessError).
      try {
        this.#socket.close(
          code >= 1000 && code < 2000 ? code + 3000 : 1000,
          reason,
        );
      } catch {
        this.#socket.close();
      }
    }
  }
}
