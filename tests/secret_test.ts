/**
 * Tests of `SharedSecret`: generation, hex round trip, validation, comparison, redaction.
 *
 * @module
 */
import assert from "node:assert/strict";
import { SECRET_BYTES, SharedSecret } from "../secret.ts";

const HEX = "0123456789abcdef".repeat(4);

Deno.test("SharedSecret.generate() makes 32 random bytes as 64 lowercase hex", () => {
  assert.equal(SECRET_BYTES, 32);
  const seen = new Set<string>();
  for (let i = 0; i < 16; i++) {
    const hex = SharedSecret.generate().toHex();
    assert.match(hex, /^[0-9a-f]{64}$/);
    seen.add(hex);
  }
  assert.equal(seen.size, 16);
});

Deno.test("SharedSecret.fromHex() round-trips through toHex(), lowercasing", () => {
  assert.equal(SharedSecret.fromHex(HEX).toHex(), HEX);
  assert.equal(SharedSecret.fromHex(HEX.toUpperCase()).toHex(), HEX);
  const generated = SharedSecret.generate();
  assert.equal(SharedSecret.fromHex(generated.toHex()).toHex(), generated.toHex());
});

Deno.test("SharedSecret.fromHex() throws TypeError for anything but 64 hex characters, without echoing it", () => {
  const bad = [
    "",
    "abc",
    HEX.slice(1),
    HEX + "0",
    HEX.slice(2) + "zz",
    ` ${HEX.slice(1)}`,
    `${HEX}\n`,
    "0x" + HEX.slice(2),
  ];
  for (const value of bad) {
    assert.throws(() => SharedSecret.fromHex(value), (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.equal(
        error.message,
        `Cannot read secret: expected 64 hex characters, got ${value.length} characters`,
      );
      return true;
    });
  }
  assert.throws(() => SharedSecret.fromHex(42 as unknown as string), {
    name: "TypeError",
    message: "Cannot read secret: expected 64 hex characters, got number",
  });
});

Deno.test("SharedSecret.matches() is true only for the same bytes, as secret or hex", () => {
  const secret = SharedSecret.fromHex(HEX);
  assert.ok(secret.matches(SharedSecret.fromHex(HEX)));
  assert.ok(secret.matches(HEX));
  assert.ok(secret.matches(HEX.toUpperCase()));
  // Differs only in the last byte, and only in the first byte.
  assert.ok(!secret.matches(HEX.slice(0, 62) + "ee"));
  assert.ok(!secret.matches("ff" + HEX.slice(2)));
  assert.ok(!secret.matches(SharedSecret.generate()));
  for (const malformed of ["", "not hex", HEX.slice(2), HEX + "00", null, 7, {}]) {
    assert.equal(secret.matches(malformed as unknown as string), false);
  }
});

Deno.test("SharedSecret's string, JSON and inspected forms never contain the hex", () => {
  const secret = SharedSecret.fromHex(HEX);
  const forms = [
    String(secret),
    `${secret}`,
    JSON.stringify(secret),
    JSON.stringify({ secret }),
    Deno.inspect(secret),
    Deno.inspect({ nested: [secret] }, { depth: 10 }),
    Deno.inspect(secret, { showHidden: true }),
  ];
  for (const form of forms) {
    assert.ok(!form.toLowerCase().includes(HEX.slice(0, 8)), form);
    assert.ok(form.includes("SharedSecret(<redacted>)"), form);
  }
  assert.deepEqual(Object.keys(secret), []);
});
