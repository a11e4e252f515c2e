/**
 * Headless Chromium for tests: Debian's `chromium` (provided by `tools/ensure_chromium.sh`),
 * driven through playwright-core, with the flags that keep it quiet and on this machine. Shared by
 * `tests/browser_test.ts` and `tests/examples_test.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type BrowserContext, chromium } from "playwright-core";
import { STEP_TIMEOUT_MS } from "./fixtures/mist_server.ts";

/** Where Debian installs Chromium. */
export const CHROMIUM = "/usr/bin/chromium";
const ENSURE_CHROMIUM = new URL("../tools/ensure_chromium.sh", import.meta.url);

/**
 * Makes sure Chromium is installed (installing Debian's package when it is missing).
 *
 * @throws {assert.AssertionError} It is missing and could not be installed; its output says why.
 */
export async function ensureChromium(): Promise<void> {
  const { success, stderr } = await new Deno.Command("sh", {
    args: [ENSURE_CHROMIUM.pathname],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(
    success,
    `Chromium is required for this test and could not be provided:\n${
      new TextDecoder().decode(stderr)
    }`,
  );
}

/**
 * Launches headless Chromium with a profile in `profileDir`; every step is bounded by
 * {@linkcode STEP_TIMEOUT_MS}. `await using` closes it.
 *
 * @param profileDir An empty directory for the profile.
 * @param extraArgs More command-line flags (e.g. `--host-resolver-rules`).
 * @returns The browser context.
 */
export async function launchChromium(
  profileDir: string,
  extraArgs: readonly string[] = [],
): Promise<BrowserContext> {
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: STEP_TIMEOUT_MS,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-quic",
      ...extraArgs,
    ],
  });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  return context;
}
