// A test peer that behaves on the wire like the editor's extension-host server ("Cocoon"), as
// ../shared/UPSTREAM.md describes it: Node + `ws` 8. Written from that description, for
// tests/interop_test.ts. Not part of Mist.
//
//   COCOON_WS_PORT=<port> COCOON_WS_SECRET=<64 hex> node tests/peers/upstream_server.mjs
//
// Like the original it starts only when COCOON_WS_PORT is set and non-zero (else it exits 1).
// Test-only: PEER_ANY_PORT=1 lets COCOON_WS_PORT=0 mean "any free port".
//
// Stdout, one JSON object a line: first the ready line {"port":N}, then one event line per
// thing a test may want to check (nothing here is part of the upstream behaviour):
//   {"event":"connection","n","via","protocol"}   accepted; `via` = where the credential was
//   {"event":"refused","status":401,"via","shape"} refused; `shape` is the candidate with every
//                                                   64-hex run replaced by <hex>
//   {"event":"notification","n","method","params"} a frame with a method and no id
//   {"event":"request","n","id","method","params"} a frame with a method and an id
//   {"event":"dropped","n","reason","frame"}       a frame dropped (not JSON, no method)
//   {"event":"close","n","code","reason"}          a connection closed
// Large params/frames are cut to 300 characters in these lines. The log line of the original
// (`WebSocket server on 127.0.0.1:<port>`) goes to stderr.
//
// Routes (a regex table; params arrive as `params ?? {}`, by name, as upstream's routes read
// them; the test-only ones also take the positional form Mist's client sends):
//   echo            → params as given
//   fail            → throws Error(params.message ?? params[0] ?? "Failed on purpose")
//   sleep           → null after params.ms ?? params[0] ms (0 to 60000)
//   big             → a string of params.bytes ?? params[0] "x" characters (at most 64 MiB)
//   ext.get         → params.extensionId (by name only, like upstream's getExtension)
//   config.get      → params.key (by name only)
//   note            → null (a notification sink; every notification is also printed)
//   test.stats      → {notifications:[{method,params}], requests, dropped} of all connections
// Any other method answers {"id", "result": null}; a thrown error {"id", "error": message}.

import { timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import process from "node:process";
import { WebSocketServer } from "ws";

const MAX_SLEEP_MS = 60_000;
const MAX_BIG_BYTES = 64 * 1024 * 1024;

const portText = process.env.COCOON_WS_PORT ?? "";
const anyPort = process.env.PEER_ANY_PORT === "1";
const port = Number(portText);
if (portText === "" || !Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write("upstream_server: COCOON_WS_PORT unset or invalid; not starting\n");
  process.exit(1);
}
if (port === 0 && !anyPort) {
  process.stderr.write("upstream_server: COCOON_WS_PORT is 0; not starting\n");
  process.exit(1);
}
const expected = lenientHex(String(process.env.COCOON_WS_SECRET ?? "").toLowerCase());
if (expected.length !== 32) {
  process.stderr.write("upstream_server: COCOON_WS_SECRET is not 64 hex characters\n");
  process.exit(1);
}

function print(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Cuts a value's JSON to 300 characters for an event line. */
function brief(value) {
  const text = JSON.stringify(value) ?? "undefined";
  return text.length <= 300 ? value : { cut: text.slice(0, 300), length: text.length };
}

function redact(text) {
  return String(text).replace(/[0-9a-fA-F]{64}/g, "<hex>");
}

/** Hex-decodes leniently: stops at the first pair holding a non-hex character. */
function lenientHex(text) {
  const bytes = [];
  for (let i = 0; i + 1 < text.length; i += 2) {
    const pair = text.slice(i, i + 2);
    if (!/^[0-9a-f]{2}$/.test(pair)) break;
    bytes.push(parseInt(pair, 16));
  }
  return Buffer.from(bytes);
}

function firstValue(value) {
  return Array.isArray(value) ? value[0] : value;
}

/** The credential: the first non-empty of the query, the whole protocol header, X-Land-Secret. */
function credentialOf(request) {
  const query = new URL(request.url ?? "/", "http://127.0.0.1").searchParams.get("secret");
  if (query) return { via: "query", value: query };
  const protocol = firstValue(request.headers["sec-websocket-protocol"]);
  if (protocol) return { via: "protocol", value: protocol };
  const header = firstValue(request.headers["x-land-secret"]);
  if (header) return { via: "header", value: header };
  return { via: "none", value: "" };
}

function accepts(candidate) {
  const bytes = lenientHex(candidate.toLowerCase());
  return bytes.length === expected.length && timingSafeEqual(bytes, expected);
}

// Test-side records, for test.stats.
const seen = { notifications: [], requests: 0, dropped: 0 };

function numberParam(params, name, max) {
  const value = Array.isArray(params) ? params[0] : params[name];
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
    throw new Error(`Expected ${name} from 0 to ${max}`);
  }
  return value;
}

const routes = [
  [/^echo$/, (params) => params],
  [/^fail$/, (params) => {
    throw new Error(String(params.message ?? params[0] ?? "Failed on purpose"));
  }],
  [/^sleep$/, (params) => {
    const ms = numberParam(params, "ms", MAX_SLEEP_MS);
    return new Promise((resolve) => setTimeout(() => resolve(null), ms));
  }],
  [/^big$/, (params) => "x".repeat(numberParam(params, "bytes", MAX_BIG_BYTES))],
  [/^ext\.get$/, (params) => params.extensionId],
  [/^config\.get$/, (params) => params.key],
  [/^note$/, () => null],
  [/^test\.stats$/, () => seen],
];

async function route(method, params) {
  for (const [pattern, handler] of routes) {
    if (pattern.test(method)) return await handler(params);
  }
  return null;
}

let connections = 0;

function onConnection(socket, n) {
  socket.on("message", (data) => {
    // Text or binary, every frame is read as UTF-8 JSON.
    const text = Buffer.isBuffer(data)
      ? data.toString("utf8")
      : Buffer.concat([].concat(data)).toString("utf8");
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      seen.dropped++;
      return print({ event: "dropped", n, reason: "not JSON", frame: brief(text) });
    }
    if (!message || !message.method) {
      seen.dropped++;
      return print({ event: "dropped", n, reason: "no method", frame: brief(text) });
    }
    const id = message.id ?? null;
    const params = message.params ?? {};
    if (id === null) {
      seen.notifications.push({ method: message.method, params });
      print({ event: "notification", n, method: message.method, params: brief(params) });
    } else {
      seen.requests++;
      print({ event: "request", n, id, method: message.method, params: brief(params) });
    }
    // Concurrent: nothing waits for the previous request.
    route(String(message.method), params).then(
      (value) => {
        if (id !== null) socket.send(JSON.stringify({ id, result: value ?? null }));
      },
      (error) => {
        if (id !== null) {
          socket.send(JSON.stringify({ id, error: String(error?.message ?? error) }));
        }
      },
    );
  });
  socket.on("close", (code, reason) => {
    print({ event: "close", n, code, reason: reason.toString("utf8") });
  });
  socket.on("error", () => {});
}

// No handleProtocols: `ws` selects the first offered protocol. maxPayload: `ws`'s 100 MiB.
const wss = new WebSocketServer({ noServer: true });
const http = createServer((_request, response) => {
  response.writeHead(426).end();
});
http.on("upgrade", (request, socket, head) => {
  const { via, value } = credentialOf(request);
  if (!value || !accepts(value)) {
    print({ event: "refused", status: 401, via, shape: redact(value) });
    socket.write("HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n");
    socket.destroy();
    return;
  }
  wss.handleUpgrade(request, socket, head, (ws) => {
    const n = ++connections;
    print({ event: "connection", n, via, protocol: redact(ws.protocol) });
    onConnection(ws, n);
  });
});
http.listen(port, "127.0.0.1", () => {
  const bound = http.address().port;
  process.stderr.write(`WebSocket server on 127.0.0.1:${bound}\n`);
  print({ port: bound });
});
