// The scripted side of tests/interop_test.ts's clients: one step runner, two client faces.
// Browser-safe and runtime-neutral (only WebSocket, timers and JSON): it runs in Deno, in Node
// 20 (with --experimental-websocket) and inside Chromium.
//
// - `rawClient` behaves on the wire like the upstream clients of ../shared/UPSTREAM.md
//   (written from that description): ids from 1, `{id, method, params}` requests,
//   `{id: null, …}` notifications, both refused at once when not connected; ANY incoming frame
//   with a numeric id settles the pending call with that id (`result ?? null`, or the error),
//   whether it has a `method` or not; it never answers requests; optional reconnect with
//   100, 200, 400, 1000, 2000, then 5000 ms, dead 30 s after the drop.
//   It records what a correct peer would never see: every frame with a `method` (a request or
//   notification from the server), every call settled by such a frame, every reply for an id
//   with no pending call, every frame it could not read.
// - `mistApi` drives Mist's own `Client` with the same steps.
//
// A script is an array of steps; `runSteps` runs them in order and returns one record per
// step, carrying the step's `label` if it has one (and prints each through `print`):
//   {op:"open", timeoutMs}                  wait until connected (a failure ends the script)
//   {op:"invoke", method, params, timeoutMs, as?}
//                                           call; with `as`, start it and record it later
//                                           with {op:"await", as, timeoutMs}
//   {op:"notify", method, params}           send a notification
//   {op:"register", method}                 (Mist clients) answer `method` with "Hello <p0>"
//   {op:"sleep", ms}                        stay idle
//   {op:"state"}                            connected?, closes so far
//   {op:"report"}                           everything recorded (see the faces)
//   {op:"close"}                            close for good
// A call record is {op, method, ok: true, result, settledBy?} or {op, method, ok: false,
// error, timeout?}. `settledBy` (raw client) is the frame that settled the call.

const DEFAULT_TIMEOUT_MS = 5000;
const RECONNECT_DELAYS_MS = [100, 200, 400, 1000, 2000];
const RECONNECT_MAX_DELAY_MS = 5000;
const DEAD_AFTER_MS = 30_000;
const CUT = 300;

/** Cuts a frame's text for a record. */
export function cut(text) {
  const value = String(text);
  return value.length <= CUT ? value : `${value.slice(0, CUT)}… (${value.length} chars)`;
}

function errorText(error) {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return typeof error === "string" ? error : JSON.stringify(error);
}

/** Waits for `promise`, at most `ms`; resolves `{timeout: true}` when it did not settle. */
function bounded(promise, ms) {
  let timer;
  return Promise.race([
    promise.then((value) => ({ value }), (error) => ({ error })),
    new Promise((resolve) => timer = setTimeout(() => resolve({ timeout: true }), ms)),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Runs a script against a client face.
 *
 * @param {object} api A face: `rawClient(…)` or `mistApi(…)`.
 * @param {object[]} steps The script.
 * @param {(record: object) => void} [print] Called with each record as it is made.
 * @returns {Promise<object[]>} One record per step run.
 */
export async function runSteps(api, steps, print = () => {}) {
  const records = [];
  const started = new Map();
  let label;
  const add = (record) => {
    const labelled = label === undefined ? record : { label, ...record };
    records.push(labelled);
    print(labelled);
    return labelled;
  };
  const settle = async (step, call) => {
    const outcome = await bounded(call.promise, step.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const base = { op: step.op, method: call.method, as: step.as };
    if (outcome.timeout) {
      return {
        ...base,
        ok: false,
        timeout: true,
        error: `no reply within ${step.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`,
      };
    }
    if ("error" in outcome) return { ...base, ok: false, error: errorText(outcome.error) };
    const { result, settledBy } = call.unwrap(outcome.value);
    return settledBy === undefined
      ? { ...base, ok: true, result }
      : { ...base, ok: true, result, settledBy };
  };
  for (const step of steps) {
    label = step.label;
    try {
      switch (step.op) {
        case "open": {
          const opened = await api.open(step.timeoutMs ?? DEFAULT_TIMEOUT_MS);
          add({ op: "open", ...opened });
          if (!opened.ok) return records;
          break;
        }
        case "invoke": {
          const call = api.invoke(step.method, step.params, step.timeoutMs ?? DEFAULT_TIMEOUT_MS);
          if (step.as !== undefined) {
            started.set(step.as, call);
            add({ op: "started", method: step.method, as: step.as, id: call.id });
          } else add(await settle(step, call));
          break;
        }
        case "await": {
          const call = started.get(step.as);
          if (!call) throw new Error(`No call started as "${step.as}"`);
          add(await settle(step, call));
          break;
        }
        case "notify":
          api.notify(step.method, step.params);
          add({ op: "notify", method: step.method, ok: true });
          break;
        case "register":
          api.register(step.method);
          add({ op: "register", method: step.method, ok: true });
          break;
        case "sleep":
          await new Promise((resolve) => setTimeout(resolve, step.ms));
          add({ op: "sleep", ms: step.ms, ok: true });
          break;
        case "state":
          add({ op: "state", ok: true, ...api.state() });
          break;
        case "report":
          add({ op: "report", ok: true, ...api.report() });
          break;
        case "close":
          await bounded(Promise.resolve(api.close()), DEFAULT_TIMEOUT_MS);
          add({ op: "close", ok: true });
          break;
        default:
          throw new Error(`Unknown step ${JSON.stringify(step)}`);
      }
    } catch (error) {
      add({ op: step.op, method: step.method, ok: false, error: errorText(error) });
    }
  }
  return records;
}

/**
 * A client with the upstream clients' wire behaviour.
 *
 * @param {object} options
 * @param {() => WebSocket} options.open Creates a socket (URL, subprotocols, headers).
 * @param {boolean} options.reconnect Whether to reconnect (the webview does, Rust does not).
 * @returns A face for `runSteps`.
 */
export function rawClient({ open, reconnect }) {
  let socket;
  let connected = false;
  let closing = false;
  let dead = false;
  let droppedAt;
  let retries = 0;
  let retryTimer;
  let nextId = 1;
  const pending = new Map();
  const openWaiters = new Set();
  const rec = {
    connections: 0,
    protocols: [],
    closes: [],
    /** Frames with a `method`: requests or notifications from the server. */
    serverFrames: [],
    /** Own calls settled by a frame that has a `method`. */
    wrongResolutions: [],
    /** Replies for an id with no pending call. */
    orphans: [],
    /** Frames that were not JSON objects, or had neither a numeric id nor a method. */
    unreadable: [],
  };

  const onFrame = (data) => {
    const text = typeof data === "string" ? data : new TextDecoder().decode(data);
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return rec.unreadable.push(cut(text));
    }
    if (message === null || typeof message !== "object") return rec.unreadable.push(cut(text));
    const hasMethod = "method" in message;
    if (hasMethod) rec.serverFrames.push(cut(text));
    if (typeof message.id !== "number") {
      if (!hasMethod) rec.unreadable.push(cut(text));
      return;
    }
    const call = pending.get(message.id);
    if (!call) {
      if (!hasMethod) rec.orphans.push(cut(text));
      return;
    }
    pending.delete(message.id);
    if (hasMethod) {
      rec.wrongResolutions.push({ id: message.id, call: call.method, frame: cut(text) });
    }
    if (message.error !== undefined && message.error !== null) {
      call.reject(message.error);
    } else call.resolve({ result: message.result ?? null, settledBy: cut(text) });
  };

  const connect = () => {
    retryTimer = undefined;
    let ws;
    try {
      ws = open();
    } catch (error) {
      return onDrop(1006, errorText(error));
    }
    socket = ws;
    ws.binaryType = "arraybuffer";
    ws.addEventListener("open", () => {
      connected = true;
      retries = 0;
      droppedAt = undefined;
      rec.connections++;
      rec.protocols.push(ws.protocol);
      for (const wake of [...openWaiters]) wake();
    });
    ws.addEventListener("message", (event) => onFrame(event.data));
    ws.addEventListener("close", (event) => {
      const wasOpen = connected;
      connected = false;
      if (wasOpen) rec.closes.push({ code: event.code, reason: event.reason });
      for (const call of pending.values()) {
        call.reject(new Error(`Disconnected (${event.code} ${event.reason})`));
      }
      pending.clear();
      onDrop(event.code, event.reason);
    });
  };

  const onDrop = (code, reason) => {
    if (closing) return;
    rec.lastDrop = { code, reason };
    if (!reconnect) {
      dead = true;
      return;
    }
    droppedAt ??= Date.now();
    if (Date.now() - droppedAt >= DEAD_AFTER_MS) {
      dead = true;
      return;
    }
    const delay = RECONNECT_DELAYS_MS[retries++] ?? RECONNECT_MAX_DELAY_MS;
    retryTimer = setTimeout(connect, delay);
  };

  connect();

  const send = (frame) => {
    if (!connected) throw new Error("Not connected");
    socket.send(JSON.stringify(frame));
  };

  return {
    open(timeoutMs) {
      if (connected) return Promise.resolve({ ok: true, protocol: socket.protocol });
      return new Promise((resolve) => {
        const wake = () => {
          openWaiters.delete(wake);
          clearTimeout(timer);
          resolve({ ok: true, protocol: socket.protocol });
        };
        const timer = setTimeout(() => {
          openWaiters.delete(wake);
          resolve({
            ok: false,
            error: `not connected within ${timeoutMs} ms (last drop: ${
              JSON.stringify(rec.lastDrop ?? null)
            }, dead: ${dead})`,
          });
        }, timeoutMs);
        openWaiters.add(wake);
      });
    },
    invoke(method, params) {
      const id = nextId++;
      const promise = new Promise((resolve, reject) => {
        if (!connected) return reject(new Error("Not connected"));
        pending.set(id, { method, resolve, reject });
        try {
          send({ id, method, params });
        } catch (error) {
          pending.delete(id);
          reject(error);
        }
      });
      promise.catch(() => {}); // awaited later (`as`): not an unhandled rejection meanwhile
      return { id, method, promise, unwrap: (value) => value };
    },
    notify(method, params) {
      send({ id: null, method, params });
    },
    register() {
      throw new Error("The upstream clients answer no requests");
    },
    state() {
      return { connected, dead, closes: [...rec.closes], pending: [...pending.keys()] };
    },
    report() {
      return { ...rec, pending: [...pending.keys()] };
    },
    close() {
      closing = true;
      clearTimeout(retryTimer);
      if (!socket || socket.readyState >= 2) return;
      return new Promise((resolve) => {
        socket.addEventListener("close", () => resolve(), { once: true });
        socket.close(1000, "Script done");
      });
    },
  };
}

/**
 * A face for Mist's own `Client`, already created (its module differs per runtime).
 *
 * @param {object} client A Mist `Client`.
 * @returns A face for `runSteps`.
 */
export function mistApi(client) {
  const states = [];
  const closes = [];
  const watch = (peer) => {
    peer?.closed.then(({ code, reason }) => closes.push({ code, reason }));
  };
  client.addEventListener("statechange", (event) => {
    states.push(event.error ? `${event.state} (${errorText(event.error)})` : event.state);
    if (event.state === "open") watch(client.peer);
  });
  if (client.state === "open") watch(client.peer);
  let counters = { dropped: 0, rejected: 0, binary: 0 };
  const readCounters = () => {
    const stats = client.peer?.stats;
    if (stats) {
      counters = {
        dropped: stats.droppedFrames,
        rejected: stats.rejectedFrames,
        binary: stats.binaryFrames,
      };
    }
    return counters;
  };
  return {
    async open(timeoutMs) {
      try {
        await client.opened({ timeoutMs });
        return { ok: true, states: [...states] };
      } catch (error) {
        return { ok: false, error: errorText(error), states: [...states] };
      }
    },
    invoke(method, params, timeoutMs) {
      let promise;
      try {
        promise = client.call(method, params, { timeoutMs });
      } catch (error) {
        promise = Promise.reject(error);
      }
      promise.catch(() => {}); // awaited later (`as`): not an unhandled rejection meanwhile
      return { id: undefined, method, promise, unwrap: (result) => ({ result }) };
    },
    notify(method, params) {
      client.notify(method, params);
    },
    register(method) {
      client.registry.register(method, ([name]) => `Hello ${name}`);
    },
    state() {
      return { connected: client.state === "open", state: client.state, closes: [...closes] };
    },
    report() {
      return { states: [...states], closes: [...closes], ...readCounters() };
    },
    async close() {
      readCounters();
      await client.close();
    },
  };
}
