// A relay: a server that forwards a call from client A to client B, which it reaches through the
// connection B opened (a client can serve methods, but nobody can dial it). All three in one
// process; from the repository's root:
//
//   ./deno run --allow-net=127.0.0.1 examples/relay.ts
//
// Prints: relayed: B says hello to A
import {
  type Caller,
  Client,
  HandlerRegistry,
  type Peer,
  serveLocal,
  SharedSecret,
} from "../mod.ts";

// The server: every open connection, and the names clients joined under.
const connected = new Set<Peer>();
const named = new Map<string, Caller>();

const registry = new HandlerRegistry()
  // [name]: the calling client takes a name; ctx.peer is its connection (the Peer above).
  .register("relay.join", ([name], ctx) => {
    named.set(String(name), ctx.peer);
    return connected.size;
  })
  // [to, method, params]: calls `method` on the client named `to` and answers with its result.
  .register("relay.call", async ([to, method, params], ctx) => {
    const target = named.get(String(to));
    if (!target) throw new Error(`No client named "${to}"`);
    // The caller's cancel or timeout (ctx.signal) cancels the forwarded call too.
    return await target.call(String(method), params as unknown[], { signal: ctx.signal });
  });

const secret = SharedSecret.generate();
await using server = serveLocal({
  secret,
  registry,
  onConnection(peer) {
    connected.add(peer);
    peer.closed.then(() => {
      connected.delete(peer);
      for (const [name, joined] of named) if (joined === peer) named.delete(name);
    });
  },
});

// Client B serves `greet` and joins as "B".
await using b = new Client(server.url, { secret });
b.registry.register("greet", ([to]) => `B says hello to ${to}`);
await b.call("relay.join", ["B"]);

// Client A calls B's `greet` through the server.
await using a = new Client(server.url, { secret });
await a.call("relay.join", ["A"]);
const answer = await a.call("relay.call", ["B", "greet", ["A"]]);
console.log(`relayed: ${answer}`);
