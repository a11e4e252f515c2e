/**
 * `NoDelayWebSocket` against a malicious server: a raw TCP server on 127.0.0.1 that answers the
 * handshake by hand and then writes frames no honest server sends. Each test asserts an outcome
 * (the close code, a memory bound, the process surviving), never a timing.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MAX_FRAGMENTS, NoDelayWebSocket } from "../_socket/no_delay.ts";
import {
  hostileServer,
  memoryInUse,
  MIB,
  serverFrame,
  upgradeHead,
  watch,
  writeAll,
} from "./_hostile_server.ts";
import { replaced } from "./_helpers.ts";

const encoder = new TextEncoder();

/** Runs a flood scenario of `_hostile_server.ts` in a Deno with a 64 MiB old space. */
async function floodInSmallHeap(kind: string): Promise<{ code: number; growth: number }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "--v8-flags=--max-old-space-size=64,--expose-gc",
      new URL("./_hostile_server.ts", import.meta.url).href,
      kind,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout);
  assert.equal(code, 0, `the client process died:\n${new TextDecoder().decode(stderr)}`);
  return JSON.parse(text);
}

Deno.test("NoDelayWebSocket closes with 1009 within a 64 MiB heap on a flood of empty continuation frames", async () => {
  const { code, growth } = await floodInSmallHeap("empty");
  assert.equal(code, 1009);
  assert.ok(growth < 8 * MIB, `memory grew by ${growth} bytes`);
});

Deno.test("NoDelayWebSocket closes with 1009 within a 64 MiB heap on a flood of 1-byte continuation frames", async () => {
  const { code, growth } = await floodInSmallHeap("one-byte");
  assert.equal(code, 1009);
  assert.ok(growth < 8 * MIB, `memory grew by ${growth} bytes`);
});

Deno.test("NoDelayWebSocket delivers a message in MAX_FRAGMENTS frames, and closes with 1009 on one in a frame more", async () => {
  /** A text message of `count` one-byte frames: "a", then "b"s, then "c" with FIN. */
  const fragmented = (count: number): Uint8Array => {
    const out = new Uint8Array(3 * count).fill(0x62);
    for (let i = 0; i < count; i++) out.set([0x00, 1], 3 * i);
    out.set([0x01, 1, 0x61]);
    out.set([0x80, 1, 0x63], 3 * (count - 1));
    return out;
  };
  await using server = hostileServer(async (conn, reader) => {
    await writeAll(conn, fragmented(MAX_FRAGMENTS));
    await writeAll(conn, fragmented(MAX_FRAGMENTS + 1));
    await conn.closeWrite(); // nothing more
    assert.equal(await reader.closeCode(), 1009);
  });
  const { url, done } = server;
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { next, closed } = watched;
  assert.equal(await next(), "a" + "b".repeat(MAX_FRAGMENTS - 2) + "c");
  assert.equal((await closed).code, 1009);
  await done;
});

Deno.test("NoDelayWebSocket keeps one pong, the latest, under a ping flood from a server that does not read", async () => {
  const PINGS = 100_000, PER_WRITE = 500;
  const payload = (i: number): string => String(i).padStart(125, "."); // 125 bytes
  const release = Promise.withResolvers<void>();
  const seen = { pongs: 0, last: "" };
  await using server = hostileServer(async (conn, reader) => {
    const batch = new Uint8Array(127 * PER_WRITE); // reused: the server makes no garbage
    for (let i = 0; i < PINGS; i += PER_WRITE) {
      for (let j = 0; j < PER_WRITE; j++) {
        batch.set([0x89, 125], 127 * j);
        encoder.encodeInto(payload(i + j), batch.subarray(127 * j + 2, 127 * (j + 1)));
      }
      await writeAll(conn, batch);
    }
    await writeAll(conn, serverFrame(1, "done"));
    await release.promise; // only now does the server read
    for (let frames = 0; frames <= PINGS && seen.last !== payload(PINGS - 1); frames++) {
      const { opcode, payload } = await reader.frame();
      assert.equal(opcode, 10);
      seen.pongs++;
      seen.last = new TextDecoder().decode(payload);
    }
    await writeAll(conn, serverFrame(8, new Uint8Array([0x03, 0xe8])));
    assert.equal(await reader.closeCode(), 1000);
  });
  const { url, done } = server;
  const before = memoryInUse();
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { next, closed } = watched;
  assert.equal(await next(), "done"); // every ping has been read
  const growth = memoryInUse() - before;
  release.resolve();
  await done;
  assert.equal((await closed).code, 1000);
  assert.equal(seen.last, payload(PINGS - 1), "the last pong answers the latest ping");
  // One pong per ping would be 100,000 (13 MB); here at most one waits while one is written.
  assert.ok(seen.pongs <= PINGS / 10, `${seen.pongs} pongs for ${PINGS} pings`);
  assert.ok(growth < 16 * MIB, `memory grew by ${growth} bytes`);
});

Deno.test("NoDelayWebSocket stops reading while its outgoing queue is over its bound", async () => {
  const gate = Promise.withResolvers<void>(); // holds the client's large write: a peer not reading
  let reading = false;
  const connect = Deno.connect;
  using _connect = replaced(
    Deno,
    "connect",
    (async (options: Deno.ConnectOptions) => {
      const conn = await connect(options);
      const [read, write] = [conn.read.bind(conn), conn.write.bind(conn)];
      conn.read = async (buffer: Uint8Array) => {
        reading = true;
        try {
          return await read(buffer);
        } finally {
          reading = false;
        }
      };
      conn.write = async (bytes: Uint8Array) => {
        if (bytes.length > MIB) await gate.promise;
        return write(bytes);
      };
      return conn;
    }) as typeof Deno.connect,
  );
  const second = Promise.withResolvers<void>();
  const big = "x".repeat(5 * MIB);
  await using server = hostileServer(async (conn, reader) => {
    await writeAll(conn, serverFrame(1, "first"));
    await second.promise;
    await writeAll(conn, serverFrame(1, "second"));
    const frame = await reader.frame();
    assert.equal(frame.payload.length, big.length);
    await writeAll(conn, serverFrame(8, new Uint8Array([0x03, 0xe8])));
    assert.equal(await reader.closeCode(), 1000);
  });
  const { url, done } = server;
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { next, closed, events } = watched;
  socket.addEventListener("message", (event) => {
    if (event.data === "first") socket.send(big); // over the 4 MiB bound; its write is held
  });
  assert.equal(await next(), "first");
  assert.equal(reading, false, "the socket reads although 5 MiB wait to be written");
  second.resolve();
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(reading, false);
  assert.deepEqual(events, ["open", "message"]);
  gate.resolve(); // the queue drains, and reading resumes
  assert.equal(await next(), "second");
  assert.equal((await closed).code, 1000);
  await done;
});

Deno.test("NoDelayWebSocket closes with 1002 on a 64-bit length with its most significant bit set", async () => {
  await using server = hostileServer(async (conn, reader) => {
    await writeAll(conn, serverFrame(2, "abc", { announce: 2n ** 63n + 3n }));
    assert.equal(await reader.closeCode(), 1002);
  });
  const { url, done } = server;
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { closed, events } = watched;
  assert.equal((await closed).code, 1002);
  assert.deepEqual(events, ["open", "error", "close"]);
  await done;
});

Deno.test("NoDelayWebSocket fails the handshake on a response head over 16 KiB, and passes one of exactly 16 KiB", async () => {
  const padded = (accept: string, size: number): string => {
    const head = upgradeHead(accept, "X-Pad: \r\n");
    return upgradeHead(accept, `X-Pad: ${"p".repeat(size - head.length)}\r\n`);
  };
  for (const size of [20 * 1024, 16 * 1024 + 1]) {
    await using server = hostileServer(async (conn) => {
      await writeAll(conn, serverFrame(1, "too late")); // then hangs up
    }, (accept) => padded(accept, size));
    const { url, done } = server;
    const socket = new NoDelayWebSocket(url);
    await using watched = watch(socket);
    const { closed, events } = watched;
    assert.equal((await closed).code, 1006, `head of ${size} bytes`);
    assert.deepEqual(events, ["error", "close"], `head of ${size} bytes`);
    await done;
  }
  await using server = hostileServer(async (conn, reader) => {
    await writeAll(conn, serverFrame(1, "ok"));
    assert.equal(await reader.closeCode(), 1000);
    await writeAll(conn, serverFrame(8, new Uint8Array([0x03, 0xe8])));
  }, (accept) => padded(accept, 16 * 1024));
  const { url, done } = server;
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { next, closed } = watched;
  assert.equal(await next(), "ok");
  socket.close();
  assert.equal((await closed).code, 1000);
  await done;
});

Deno.test("NoDelayWebSocket delivers a leading byte order mark, not stripped", async () => {
  await using server = hostileServer(async (conn, reader) => {
    await writeAll(
      conn,
      new Uint8Array([
        ...serverFrame(1, new Uint8Array([0xef, 0xbb, 0xbf, 0x61])),
        ...serverFrame(1, "\uFEFF\uFFFD"), // a genuine U+FFFD takes the strict decoder
        ...serverFrame(1, new Uint8Array([0xef, 0xbb]), { fin: false }),
        ...serverFrame(0, new Uint8Array([0xbf])),
        ...serverFrame(8, new Uint8Array([0x0f, 0xa0, 0xef, 0xbb, 0xbf, 0x62])),
      ]),
    );
    assert.equal(await reader.closeCode(), 4000);
  });
  const { url, done } = server;
  const socket = new NoDelayWebSocket(url);
  await using watched = watch(socket);
  const { next, closed } = watched;
  assert.equal(await next(), "\uFEFFa");
  assert.equal(await next(), "\uFEFF\uFFFD");
  assert.equal(await next(), "\uFEFF");
  assert.deepEqual(await closed, { code: 4000, reason: "\uFEFFb" });
  await done;
});

Deno.test("NoDelayWebSocket with maxMessageBytes closes with 1009 on a longer frame before its payload is allocated", async () => {
  await using server = hostileServer(async (conn, reader) => {
    // Announces 48 MiB, sends 5 bytes, and stops sending.
    await writeAll(conn, serverFrame(2, "12345", { announce: BigInt(48 * MIB) }));
    await conn.closeWrite(); // and nothing more
    assert.equal(await reader.closeCode(), 1009);
  });
  const { url, done } = server;
  const before = memoryInUse();
  const socket = new NoDelayWebSocket(url, { maxMessageBytes: MIB });
  await using watched = watch(socket);
  const { closed, events } = watched;
  assert.equal((await closed).code, 1009);
  const growth = memoryInUse() - before;
  assert.deepEqual(events, ["open", "error", "close"]);
  assert.ok(growth < 16 * MIB, `memory grew by ${growth} bytes`);
  await done;
});

Deno.test("NoDelayWebSocket with maxMessageBytes counts all fragments of a message: at the limit it passes, over it 1009", async () => {
  const parts = (total: number): Uint8Array => {
    const third = Math.floor(total / 3);
    return new Uint8Array([
      ...serverFrame(1, "a".repeat(third), { fin: false }),
      ...serverFrame(9, "ping in between"),
      ...serverFrame(0, "b".repeat(third), { fin: false }),
      ...serverFrame(0, "c".repeat(total - 2 * third)),
    ]);
  };
  await using server = hostileServer(async (conn, reader) => {
    await writeAll(conn, new Uint8Array([...parts(1000), ...parts(1001)]));
    await conn.closeWrite(); // nothing more
    assert.equal((await reader.frame()).opcode, 10);
    assert.equal(await reader.closeCode(), 1009);
  });
  const { url, done } = server;
  const socket = new NoDelayWebSocket(url, { maxMessageBytes: 1000 });
  await using watched = watch(socket);
  const { next, closed } = watched;
  assert.equal(await next(), "a".repeat(333) + "b".repeat(333) + "c".repeat(334));
  assert.equal((await closed).code, 1009);
  await done;
});

Deno.test("NoDelayWebSocket() throws RangeError unless maxMessageBytes is an integer from 1 to 64 MiB", () => {
  for (const maxMessageBytes of [0, -1, 1.5, 64 * MIB + 1, NaN]) {
    assert.throws(() => new NoDelayWebSocket("ws://127.0.0.1:1/", { maxMessageBytes }), RangeError);
  }
  for (const maxMessageBytes of [1, 64 * MIB]) {
    const socket = new NoDelayWebSocket("ws://127.0.0.1:1/", { maxMessageBytes });
    socket.close(); // never connects
  }
});

Deno.test("NoDelayWebSocket with maxMessageBytes closes with 1009 on an unfragmented message over it, and delivers one at it", async () => {
  await using server = hostileServer(async (conn, reader) => {
    await writeAll(
      conn,
      new Uint8Array([
        ...serverFrame(2, new Uint8Array(300)),
        ...serverFrame(2, new Uint8Array(301)),
      ]),
    );
    await conn.closeWrite(); // nothing more
    assert.equal(await reader.closeCode(), 1009);
  });
  const { url, done } = server;
  const socket = new NoDelayWebSocket(url, { maxMessageBytes: 300 });
  socket.binaryType = "arraybuffer";
  await using watched = watch(socket);
  const { next, closed } = watched;
  assert.equal(((await next()) as ArrayBuffer).byteLength, 300);
  assert.equal((await closed).code, 1009);
  await done;
});
