/**
 * The params every bench uses, named by size so case names carry it.
 *
 * @module
 */

const KiB = 1024;

/** `[size name, params]`: the small call, then 1 KiB, 64 KiB and 1 MiB of ASCII. */
export const PAYLOADS: readonly [string, unknown[]][] = [
  ["small", ["hello", 42]],
  ["1 KiB", ["x".repeat(KiB)]],
  ["64 KiB", ["x".repeat(64 * KiB)]],
  ["1 MiB", ["x".repeat(1024 * KiB)]],
];
