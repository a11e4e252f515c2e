/**
 * Option validation shared by the peer, client and server (internal; not exported by mod.ts).
 * Runs in Deno, browsers and Node.
 *
 * @module
 */

/**
 * Reads an integer option, throwing a `RangeError` naming it.
 *
 * @param name The option's name.
 * @param value The given value.
 * @param fallback The default.
 * @param min Smallest allowed.
 * @param max Largest allowed.
 * @returns The value or the default.
 */
export function checkInt(
  name: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < min ||
    value > max
  ) {
    throw new RangeError(
      `Cannot use ${name}: expected an integer from ${min} to ${max}, got ${String(value)}`,
    );
  }
  return value;
}
