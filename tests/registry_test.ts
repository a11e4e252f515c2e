/**
 * Tests of `HandlerRegistry`: register, replace, unregister, fallback, reserved names.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type HandlerFn, HandlerRegistry, RESERVED_PREFIX } from "../registry.ts";

Deno.test("HandlerRegistry.register() adds a handler that lookup() returns, and chains", () => {
  const echo: HandlerFn = (params) => params;
  const other: HandlerFn = () => 1;
  const registry = new HandlerRegistry();
  assert.equal(registry.register("echo", echo).register("other", other), registry);
  assert.equal(registry.lookup("echo"), echo);
  assert.equal(registry.lookup("other"), other);
  assert.equal(registry.lookup("missing"), undefined);
});

Deno.test("HandlerRegistry.register() replaces an existing handler", () => {
  const first: HandlerFn = () => 1;
  const second: HandlerFn = () => 2;
  const registry = new HandlerRegistry().register("m", first).register("m", second);
  assert.equal(registry.lookup("m"), second);
});

Deno.test("HandlerRegistry.register() throws TypeError for empty or reserved names", () => {
  assert.equal(RESERVED_PREFIX, "$/");
  const registry = new HandlerRegistry();
  for (const name of ["", "$/ping", "$/cancel", "$/anything"]) {
    assert.throws(() => registry.register(name, () => null), (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.equal(
        error.message,
        `Cannot register method: "${name}" is empty or reserved ("$/" prefix)`,
      );
      return true;
    });
  }
  assert.throws(() => registry.register(5 as unknown as string, () => null), TypeError);
  assert.equal(registry.lookup("$/ping"), undefined);
  // "$" alone and names merely containing "$/" are ordinary.
  registry.register("$", () => null).register("a$/b", () => null);
  assert.ok(registry.lookup("$") && registry.lookup("a$/b"));
});

Deno.test("HandlerRegistry.register() throws TypeError when the handler is not a function", () => {
  assert.throws(
    () => new HandlerRegistry().register("m", "nope" as unknown as HandlerFn),
    { name: "TypeError", message: 'Cannot register "m": handler is not a function' },
  );
});

Deno.test("HandlerRegistry.unregister() removes a handler and reports whether there was one", () => {
  const registry = new HandlerRegistry().register("m", () => 1);
  assert.equal(registry.unregister("m"), true);
  assert.equal(registry.lookup("m"), undefined);
  assert.equal(registry.unregister("m"), false);
});

Deno.test("HandlerRegistry.setFallback() answers unregistered names; own handlers win", () => {
  const own: HandlerFn = () => "own";
  const fallback: HandlerFn = (_params, ctx) => ctx.method;
  const registry = new HandlerRegistry().register("m", own);
  registry.setFallback(fallback);
  assert.equal(registry.lookup("m"), own);
  assert.equal(registry.lookup("anything"), fallback);
  registry.unregister("m");
  assert.equal(registry.lookup("m"), fallback);
  registry.setFallback(undefined);
  assert.equal(registry.lookup("anything"), undefined);
});

Deno.test("HandlerRegistry.setFallback() throws TypeError for a non-function", () => {
  assert.throws(
    () => new HandlerRegistry().setFallback(3 as unknown as HandlerFn),
    { name: "TypeError", message: "Cannot set fallback: handler is not a function" },
  );
});
