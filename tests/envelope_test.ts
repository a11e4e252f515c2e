/**
 * Tests of the wire codec: round trips, lossless 64-bit ids, every invalid-frame kind, and
 * property tests (encode→decode is identity; decode never throws).
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decode,
  type DecodeErrorReason,
  encode,
  encodeFailure,
  encodeNotification,
  encodeRequest,
  encodeSuccess,
  type Envelope,
  EnvelopeDecodeError,
  ForeignId,
  type Id,
  idKey,
  MAX_FOREIGN_ID_LENGTH,
  MAX_ID,
  type RequestId,
} from "../envelope.ts";

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** Asserts `text` decodes to an error with this reason and these ids. */
function assertInvalid(
  text: string,
  reason: DecodeErrorReason,
  replyId: RequestId | null = null,
  responseId: Id | null = null,
): EnvelopeDecodeError {
  const decoded = decode(text);
  assert.equal(decoded.ok, false, `expected ${text} to be invalid`);
  if (decoded.ok) throw new Error("unreachable");
  assert.ok(decoded.error instanceof EnvelopeDecodeError);
  assert.ok(decoded.error instanceof SyntaxError);
  assert.equal(decoded.error.name, "EnvelopeDecodeError");
  assert.equal(decoded.error.reason, reason);
  assert.equal(decoded.error.replyId, replyId);
  assert.equal(decoded.error.responseId, responseId);
  assert.match(decoded.error.message, /^Cannot decode frame: /);
  return decoded.error;
}

// --- Valid envelopes ----------------------------------------------------------------------

Deno.test("decode() reads a request with positional params", () => {
  assert.deepEqual(decode('{"id":1,"method":"echo","params":["a",2,null]}'), {
    ok: true,
    envelope: { kind: "request", id: 1, method: "echo", params: ["a", 2, null] },
  });
});

Deno.test("decode() reads id 0 as a request id, not a notification", () => {
  assert.deepEqual(decode('{"id":0,"method":"echo","params":[]}'), {
    ok: true,
    envelope: { kind: "request", id: 0, method: "echo", params: [] },
  });
});

Deno.test("decode() reads id 2^64-1 exactly as a bigint", () => {
  const decoded = decode('{"id":18446744073709551615,"method":"echo","params":[]}');
  assert.deepEqual(decoded, {
    ok: true,
    envelope: { kind: "request", id: 18446744073709551615n, method: "echo", params: [] },
  });
});

Deno.test("decode() reads ids just above 2^53 exactly (no float rounding)", () => {
  for (const text of ["9007199254740992", "9007199254740993", "12345678901234567891"]) {
    const decoded = decode(`{"id":${text},"result":1}`);
    assert.ok(decoded.ok);
    if (decoded.ok && decoded.envelope.kind === "success") {
      assert.equal(decoded.envelope.id, BigInt(text));
    } else assert.fail("not a success");
  }
});

Deno.test("decode() keeps the exact big id when nested members are also named id", () => {
  const text =
    '{"params":[{"id":1},"\\"id\\":5"],"id" : 18446744073709551614,"method":"x","z":{"id":2}}';
  const decoded = decode(text);
  assert.ok(decoded.ok);
  if (decoded.ok && decoded.envelope.kind === "request") {
    assert.equal(decoded.envelope.id, 18446744073709551614n);
  } else assert.fail("not a request");
});

Deno.test("decode() reads id null and a missing id as a notification", () => {
  const expected = { ok: true, envelope: { kind: "notification", method: "log", params: [1] } };
  assert.deepEqual(decode('{"id":null,"method":"log","params":[1]}'), expected);
  assert.deepEqual(decode('{"method":"log","params":[1]}'), expected);
});

Deno.test("decode() treats missing params as an empty array", () => {
  assert.deepEqual(decode('{"id":3,"method":"ping"}'), {
    ok: true,
    envelope: { kind: "request", id: 3, method: "ping", params: [] },
  });
});

Deno.test("decode() reads success and failure replies", () => {
  assert.deepEqual(decode('{"id":4,"result":{"a":[1]}}'), {
    ok: true,
    envelope: { kind: "success", id: 4, result: { a: [1] } },
  });
  assert.deepEqual(decode('{"id":4,"result":null}'), {
    ok: true,
    envelope: { kind: "success", id: 4, result: null },
  });
  assert.deepEqual(decode('{"id":5,"error":"Disk full"}'), {
    ok: true,
    envelope: { kind: "failure", id: 5, error: "Disk full" },
  });
});

Deno.test("decode() reads a JSON-RPC 2.0 error object as its message", () => {
  assert.deepEqual(decode('{"jsonrpc":"2.0","id":6,"error":{"code":-32601,"message":"Nope"}}'), {
    ok: true,
    envelope: { kind: "failure", id: 6, error: "Nope" },
  });
});

// --- Invalid frames -------------------------------------------------------------------------

Deno.test("decode() reports malformed JSON without a reply id", () => {
  assertInvalid("{not json", "malformed-json");
  assertInvalid("", "malformed-json");
});

Deno.test("decode() reports non-objects (array, number, null, string) without a reply id", () => {
  for (const text of ['[{"id":1,"method":"echo"}]', "42", "null", '"echo"', "true"]) {
    assertInvalid(text, "not-an-object");
  }
});

Deno.test("decode() reports ids of the wrong type without a reply id", () => {
  for (const id of ["true", "false", "{}", "[1]"]) {
    assertInvalid(`{"id":${id},"method":"echo","params":[]}`, "bad-id");
  }
});

Deno.test("decode() keeps a foreign request id's exact text, and the reply echoes it", () => {
  const ids = ['"1"', '"a\\"b"', "-1", "-0", "1.0", "1e2", "1.5", "18446744073709551616", "1e400"];
  for (const text of ids) {
    for (
      const frame of [
        `{"id":${text},"method":"echo"}`,
        `{"jsonrpc":"2.0","method":"echo","id":${text}}`,
      ]
    ) {
      const decoded = decode(frame);
      assert.ok(decoded.ok && decoded.envelope.kind === "request", frame);
      const id = decoded.envelope.id;
      assert.ok(id instanceof ForeignId, frame);
      assert.equal(id.text, text);
      assert.equal(encodeSuccess(id, 1), `{"id":${text},"result":1}`);
      assert.equal(encodeFailure(id, "no"), `{"id":${text},"error":"no"}`);
    }
  }
  // A nested "id" is not the request's.
  const nested = decode('{"params":{"id":5},"id":"x","method":"m"}');
  assert.ok(nested.ok && nested.envelope.kind === "request");
  assert.equal(String(nested.envelope.id), '"x"');
});

Deno.test("decode() drops a foreign id over the length limit, and replies to foreign ids", () => {
  const long = `"${"x".repeat(MAX_FOREIGN_ID_LENGTH)}"`;
  assertInvalid(`{"id":${long},"method":"echo"}`, "bad-id");
  assert.ok(decode(`{"id":"${"x".repeat(MAX_FOREIGN_ID_LENGTH - 2)}","method":"echo"}`).ok);
  assertInvalid('{"id":"7","result":1}', "bad-id");
  assertInvalid('{"id":-1,"error":"x"}', "bad-id");
});

Deno.test("decode() reports a frame with only an id as answerable and meant for its call", () => {
  assertInvalid('{"id":7}', "no-kind", 7, 7);
  assertInvalid('{"id":7,"params":[]}', "no-kind", 7, 7);
});

Deno.test("decode() reports a frame with neither id nor kind without a reply id", () => {
  assertInvalid("{}", "no-kind");
});

Deno.test("decode() reports a non-string method, answerable when the id is usable", () => {
  assertInvalid('{"id":8,"method":3,"params":[]}', "bad-method", 8);
  assertInvalid('{"id":8,"method":null}', "bad-method", 8);
  assertInvalid('{"id":null,"method":3}', "bad-method", null);
  assertInvalid('{"id":18446744073709551615,"method":[]}', "bad-method", 18446744073709551615n);
});

Deno.test("decode() reads by-name params as the object sent", () => {
  for (
    const frame of [
      '{"id":9,"method":"echo","params":{"a":1}}',
      '{"method":"echo","id":9,"params":{"a":1}}',
    ]
  ) {
    assert.deepEqual(decode(frame), {
      ok: true,
      envelope: { kind: "request", id: 9, method: "echo", params: { a: 1 } },
    });
  }
  assert.deepEqual(decode('{"id":null,"method":"n","params":{}}'), {
    ok: true,
    envelope: { kind: "notification", method: "n", params: {} },
  });
});

Deno.test("decode() reports params that are neither array nor object, answerable when the id is usable", () => {
  const error = assertInvalid('{"id":9,"method":"echo","params":3}', "bad-params", 9);
  assert.equal(error.message, "Cannot decode frame: params is neither an array nor an object");
  assertInvalid('{"id":9,"method":"echo","params":null}', "bad-params", 9);
  assertInvalid('{"method":"echo","params":"x"}', "bad-params", null);
});

Deno.test("decode() reports a reply with both result and error as meant for its call", () => {
  assertInvalid('{"id":10,"result":1,"error":"no"}', "result-and-error", null, 10);
});

Deno.test("decode() reports an error that is neither a string nor has a message", () => {
  assertInvalid('{"id":11,"error":42}', "bad-error", null, 11);
  assertInvalid('{"id":11,"error":{"code":1}}', "bad-error", null, 11);
});

Deno.test("decode() reports a reply without an id as unanswerable", () => {
  assertInvalid('{"result":1}', "bad-id");
  assertInvalid('{"id":null,"error":"x"}', "bad-id");
});

// --- Encoding -----------------------------------------------------------------------------

Deno.test("encodeRequest() writes big ids as exact digits", () => {
  assert.equal(
    encodeRequest(MAX_ID, "echo", []),
    '{"id":18446744073709551615,"method":"echo","params":[]}',
  );
  assert.equal(encodeRequest(0, "m", [1, "a"]), '{"id":0,"method":"m","params":[1,"a"]}');
});

Deno.test("encodeNotification(), encodeSuccess(), encodeFailure() write the documented shapes", () => {
  assert.equal(encodeNotification("log", ["x"]), '{"id":null,"method":"log","params":["x"]}');
  assert.equal(encodeSuccess(1, undefined), '{"id":1,"result":null}');
  assert.equal(encodeSuccess(2n, { a: 1 }), '{"id":2,"result":{"a":1}}');
  assert.equal(encodeFailure(3, 'say "hi"'), '{"id":3,"error":"say \\"hi\\""}');
});

Deno.test("encodeRequest(), encodeNotification() and encodeSuccess() write exactly what joining the JSON of each part writes", () => {
  // The straightforward definition, kept as the oracle for the flat one-call encoders.
  const reference = {
    request: (id: Id, method: string, params: unknown[]) =>
      `{"id":${id},"method":${JSON.stringify(method)},"params":${JSON.stringify(params)}}`,
    notification: (method: string, params: unknown[]) =>
      `{"id":null,"method":${JSON.stringify(method)},"params":${JSON.stringify(params)}}`,
    success: (id: Id, result: unknown) =>
      `{"id":${id},"result":${JSON.stringify(result) ?? "null"}}`,
  };
  const value = fc.oneof(
    fc.jsonValue(),
    fc.constantFrom<unknown>(
      undefined,
      () => 1,
      [undefined, () => 1],
      { a: undefined, b: [undefined] },
      new Date(0),
      { toJSON: () => undefined },
      { toJSON: () => "x" },
      '\u2028\ud800"\\',
    ),
  );
  fc.assert(
    fc.property(idArb, fc.string(), fc.array(value), value, (id, method, params, result) => {
      assert.equal(encodeRequest(id, method, params), reference.request(id, method, params));
      assert.equal(encodeNotification(method, params), reference.notification(method, params));
      assert.equal(encodeSuccess(id, result), reference.success(id, result));
    }),
    { numRuns: 500, seed: 20261127 },
  );
});

Deno.test("encodeRequest() throws TypeError on params JSON cannot hold", () => {
  assert.throws(() => encodeRequest(1, "m", [1n]), TypeError);
  const cycle: unknown[] = [];
  cycle.push(cycle);
  assert.throws(() => encodeRequest(1, "m", cycle), TypeError);
});

Deno.test("idKey() keeps safe ids as numbers and makes big ones strings", () => {
  assert.equal(idKey(0), 0);
  assert.equal(idKey(5n), 5);
  assert.equal(idKey(BigInt(MAX_SAFE)), MAX_SAFE);
  assert.equal(idKey(MAX_ID), "18446744073709551615");
  assert.notEqual(idKey(2n ** 53n), idKey(2 ** 53 - 1));
});

// --- Properties ---------------------------------------------------------------------------

const idArb: fc.Arbitrary<Id> = fc.oneof(
  fc.integer({ min: 0, max: MAX_SAFE }),
  fc.bigInt({ min: BigInt(MAX_SAFE) + 1n, max: MAX_ID }),
  fc.constantFrom<Id>(0, MAX_SAFE, BigInt(MAX_SAFE) + 1n, MAX_ID),
);
// JSON.stringify writes -0 as 0; a value that cannot round-trip through JSON is not a valid
// envelope value, so -0 is mapped to 0 here.
const jsonArb = fc.jsonValue().map((value) => JSON.parse(JSON.stringify(value)) as unknown);

const envelopeArb: fc.Arbitrary<Envelope> = fc.oneof(
  fc.record({
    kind: fc.constant("request" as const),
    id: idArb,
    method: fc.string(),
    params: fc.array(jsonArb),
  }),
  fc.record({
    kind: fc.constant("notification" as const),
    method: fc.string(),
    params: fc.array(jsonArb),
  }),
  fc.record({ kind: fc.constant("success" as const), id: idArb, result: jsonArb }),
  fc.record({ kind: fc.constant("failure" as const), id: idArb, error: fc.string() }),
).map((envelope) => ({ ...envelope })); // fc.record makes null-prototype objects

Deno.test("encode() then decode() is the identity on valid envelopes", () => {
  fc.assert(
    fc.property(envelopeArb, (envelope) => {
      assert.deepEqual(decode(encode(envelope)), { ok: true, envelope });
    }),
    { numRuns: 2000 },
  );
});

Deno.test("decode() reads the exact id wherever the member sits among others", () => {
  const member = fc.tuple(fc.string(), jsonArb).map(([key, value]) =>
    `${JSON.stringify(`x${key}`)}:${JSON.stringify(value)}`
  );
  fc.assert(
    fc.property(
      idArb,
      fc.string(),
      fc.array(jsonArb),
      fc.array(member, { maxLength: 3 }),
      fc.nat(),
      (id, method, params, extra, at) => {
        const members = [`"method":${JSON.stringify(method)}`, `"params":${JSON.stringify(params)}`]
          .concat(extra);
        members.splice(at % (members.length + 1), 0, ` "id" :\t${id}`);
        const decoded = decode(`{${members.join(" , ")}}`);
        assert.deepEqual(decoded, { ok: true, envelope: { kind: "request", id, method, params } });
      },
    ),
    { numRuns: 1000 },
  );
});

/** Decodes and checks the result is well-formed: never a throw, never a half-made result. */
function decodesTotally(text: string): void {
  const decoded = decode(text);
  if (decoded.ok) {
    assert.ok(["request", "notification", "success", "failure"].includes(decoded.envelope.kind));
  } else {
    assert.ok(decoded.error instanceof EnvelopeDecodeError);
  }
}

Deno.test("decode() never throws on arbitrary strings", () => {
  fc.assert(fc.property(fc.string(), decodesTotally), { numRuns: 2000 });
  fc.assert(fc.property(fc.string({ unit: "binary" }), decodesTotally), { numRuns: 1000 });
});

Deno.test("decode() never throws on arbitrary JSON and mutated JSON", () => {
  fc.assert(fc.property(fc.json(), decodesTotally), { numRuns: 1000 });
  const mutated = fc.tuple(fc.json(), fc.nat(), fc.nat({ max: 3 }), fc.string({ maxLength: 3 }))
    .map(([text, at, cut, insert]) => {
      const i = at % (text.length + 1);
      return text.slice(0, i) + insert + text.slice(i + cut);
    });
  fc.assert(fc.property(mutated, decodesTotally), { numRuns: 2000 });
});

Deno.test("decode() never throws on envelope-shaped objects with hostile member values", () => {
  const hostile = fc.oneof(
    jsonArb,
    fc.constantFrom("1e400", "-0", "18446744073709551616", "1.0", "9007199254740993.5"),
  );
  const frame = fc.record(
    { id: hostile, method: hostile, params: hostile, result: hostile, error: hostile },
    { requiredKeys: [] },
  ).map((record) =>
    "{" +
    Object.entries(record).map(([key, value]) =>
      `"${key}":${
        typeof value === "string" && /^[-0-9]/.test(value) ? value : JSON.stringify(value)
      }`
    ).join(",") + "}"
  );
  fc.assert(fc.property(frame, decodesTotally), { numRuns: 2000 });
});

Deno.test("decode() reads Mist's own frames by a shortcut that agrees with the general reader", () => {
  // A leading space is insignificant JSON, and the shortcut only takes frames that start with
  // `{"id":`: so decode(" " + text) is the general reader's answer, the oracle here.
  const agrees = (text: string): void => {
    assert.deepEqual(decode(text), decode(` ${text}`), text.slice(0, 200));
  };
  // Canonical frames, then the same frames cut, spliced or extended where the shortcut looks.
  const canonical = envelopeArb.map(encode);
  const spliced = fc.tuple(
    canonical,
    fc.nat(),
    fc.nat({ max: 4 }),
    fc.constantFrom(
      "",
      " ",
      "0",
      "00",
      "-1",
      "1.5",
      "null",
      '"',
      "\\",
      "\\u0041",
      "\n",
      "\u0000",
      "}",
      "{",
      "]",
      ",",
      ',"id":7',
      ',"error":"x"',
      ',"result":1',
      ',"method":"m"',
      ',"params":[]',
      '"params":',
      "1e400",
      "9007199254740993",
      "1234567890123456",
    ),
  ).map(([text, at, cut, insert]) => {
    const i = at % (text.length + 1);
    return text.slice(0, i) + insert + text.slice(i + cut);
  });
  fc.assert(fc.property(canonical, agrees), { numRuns: 1000, seed: 20261127 });
  fc.assert(fc.property(spliced, agrees), { numRuns: 5000, seed: 20261127 });
  for (
    const text of [
      '{"id":0,"method":"m","params":[]}',
      '{"id":007,"method":"m","params":[]}',
      '{"id":123456789012345,"result":1}',
      '{"id":1234567890123456,"result":1}',
      '{"id":1,"method":"a\\"b","params":[]}',
      '{"id":1,"method":"m","params":{}}',
      '{"id":1,"method":"m","params":[1] }',
      '{"id":1,"method":"m","params":[1]},',
      '{"id":1,"method":"m","params":[1],"id":2}',
      '{"id":1,"result":1,"error":"e"}',
      '{"id":null,"result":1}',
      '{"id":null,"method":"m","params":[1]}',
      '{"id":1,"method":"m"',
      '{"id":1,"method":"',
      '{"id":}',
    ]
  ) agrees(text);
  // The last method read is matched in place: repeats, prefixes, extensions, the empty name.
  for (const method of ["echo", "echo", "ech", "echo2", "", "", "echo", 'a"b', "a", "a\\"]) {
    agrees(`{"id":1,"method":${JSON.stringify(method)},"params":[]}`);
  }
  for (const raw of ["echo", "echo\n", "echo", 'echo\\"', "echo", "echo", "echo\u0000"]) {
    agrees(`{"id":1,"method":"${raw}","params":[]}`);
  }
});
