// The measurement of bench/clients/main.ts, shared as is by its Deno, Node and browser runs
// (plain JavaScript, so that Node and the page load it without a build step).

/**
 * A call alone and a notification followed by a call, interleaved round by round so that both
 * see the same machine; each after `warmup` rounds of both.
 *
 * @param {{
 *   call(method: string, params: unknown[]): Promise<unknown>;
 *   notify(method: string, params: unknown[]): void;
 * }} client A connected Mist client; the server has `echo` and a `note` notification.
 * @param {{ warmup: number; rounds: number }} plan How many rounds.
 * @returns {Promise<{ alone: number[]; afterNote: number[] }>} Round trips in milliseconds.
 */
export async function measure(client, { warmup, rounds }) {
  const alone = [];
  const afterNote = [];
  for (let i = 0; i < warmup + rounds; i++) {
    let started = performance.now();
    await client.call("echo", ["hello", 42]);
    const one = performance.now() - started;
    started = performance.now();
    client.notify("note", [i]);
    await client.call("echo", ["hello", 42]);
    const two = performance.now() - started;
    if (i >= warmup) {
      alone.push(one);
      afterNote.push(two);
    }
  }
  return { alone, afterNote };
}
