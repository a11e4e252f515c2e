/**
 * The RFC 6455 opening handshake for a client (§4.1, §4.2.2): the request head, and the checks
 * of the server's response. Pure functions; used by `no_delay.ts`.
 *
 * @module
 */

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; // RFC 6455 §1.3
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/; // RFC 7230 token, for subprotocol names
const RESERVED = new Set( // request headers that the handshake itself sets
  "host upgrade connection sec-websocket-key sec-websocket-version sec-websocket-protocol sec-websocket-extensions"
    .split(" "),
);
const encoder = new TextEncoder();

/** Standard base64 of bytes. */
function base64(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}

/**
 * The upgrade request for `target`, with a fresh `Sec-WebSocket-Key`.
 *
 * @param target A `ws:` URL.
 * @param options Extra headers and the subprotocols to offer.
 * @returns The request head, the key (for checking the answer) and the offered protocols.
 * @throws {TypeError} A header the handshake sets itself, or an invalid header.
 * @throws {DOMException} `SyntaxError` for a bad or repeated subprotocol.
 */
export function handshakeRequest(
  target: URL,
  options: { headers?: Record<string, string>; protocols?: string[] },
): { head: string; key: string; protocols: string[] } {
  const protocols = options.protocols ?? [];
  if (
    new Set(protocols).size !== protocols.length ||
    !protocols.every((p) => TOKEN.test(p))
  ) {
    throw new DOMException("invalid or repeated subprotocol", "SyntaxError");
  }
  const key = base64(crypto.getRandomValues(new Uint8Array(16)));
  const lines = [
    `GET ${target.pathname}${target.search} HTTP/1.1`,
    `Host: ${target.host}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${key}`,
    "Sec-WebSocket-Version: 13",
  ];
  if (protocols.length > 0) {
    lines.push(`Sec-WebSocket-Protocol: ${protocols.join(", ")}`);
  }
  for (const [name, value] of new Headers(options.headers)) { // Headers validates names and values
    if (RESERVED.has(name)) {
      throw new TypeError(`the handshake sets the ${name} header`);
    }
    lines.push(`${name}: ${value}`);
  }
  return { head: `${lines.join("\r\n")}\r\n\r\n`, key, protocols };
}

/**
 * Checks the server's response head.
 *
 * @param head The response head, without the final empty line.
 * @param key The `Sec-WebSocket-Key` that was sent.
 * @param protocols The subprotocols that were offered.
 * @returns The selected subprotocol, `""` for none.
 * @throws {Error} The response is not a valid 101 for this key and these protocols.
 */
export async function checkHandshake(
  head: string,
  key: string,
  protocols: string[],
): Promise<string> {
  const [status, ...lines] = head.split("\r\n");
  if (!/^HTTP\/1\.1 101(?: |$)/.test(status)) {
    throw new Error(`handshake failed: ${status}`);
  }
  const fields = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const previous = fields.get(name);
    if (colon > 0) {
      fields.set(name, previous ? `${previous}, ${value}` : value);
    }
  }
  const accept = encoder.encode(key + GUID);
  const digest = await crypto.subtle.digest("SHA-1", accept);
  const protocol = fields.get("sec-websocket-protocol") ?? "";
  if (
    fields.get("upgrade")?.toLowerCase() !== "websocket" ||
    !/(?:^|,)\s*upgrade\s*(?:,|$)/i.test(fields.get("connection") ?? "") ||
    fields.get("sec-websocket-accept") !== base64(new Uint8Array(digest)) ||
    fields.has("sec-websocket-extensions") ||
    (protocol !== "" && !protocols.includes(protocol))
  ) throw new Error("handshake failed: bad upgrade response headers");
  return protocol;
}
