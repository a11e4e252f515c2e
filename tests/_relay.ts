/**
 * A TCP relay on 127.0.0.1 for resume tests: it forwards each connection to a target port and
 * can cut every connection at once, as a network drop would (no WebSocket close frame).
 *
 * @module
 */

/** A running relay. `await using relay = startRelay(port)` stops it. */
export interface Relay extends AsyncDisposable {
  /** Where clients connect. */
  readonly port: number;
  /** Connections relayed so far. */
  readonly accepted: number;
  /** Closes every open connection at once, both sides. */
  cut(): void;
}

/**
 * Starts a relay to `127.0.0.1:target`.
 *
 * @param target The port to forward to.
 * @returns The relay.
 */
export function startRelay(target: number): Relay {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const pumps: Promise<void>[] = [];
  let accepted = 0;
  const pump = async (from: Deno.Conn, to: Deno.Conn) => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        let written = 0;
        while (written < n) written += await to.write(buffer.subarray(written, n));
      }
    } catch {
      // cut, or the other side closed
    }
    for (const conn of [from, to]) {
      if (open.delete(conn)) conn.close();
    }
  };
  const loop = (async () => {
    for await (const client of listener) {
      accepted++;
      const server = await Deno.connect({ hostname: "127.0.0.1", port: target });
      open.add(client).add(server);
      pumps.push(pump(client, server), pump(server, client));
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    get accepted() {
      return accepted;
    },
    cut() {
      for (const conn of open) conn.close();
      open.clear();
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      this.cut();
      await loop;
      await Promise.all(pumps);
    },
  };
}
