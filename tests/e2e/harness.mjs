// E2E harness: the mock provider and the *compiled* worker (worker/entry.mjs and build/) in workerd via Miniflare, on
// free loopback ports, started once per test file and torn down after it.
import { execFileSync, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import path from "node:path";
import assert from "node:assert/strict";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const MOCK_BIN = path.join(ROOT, "target/release/meridian-mock");
const BUILD = path.join(ROOT, "build");
const WORKER = path.join(BUILD, "index.js");
const ENTRY = path.join(ROOT, "worker/entry.mjs");
export const DEMO_KEY = "demo";
export const DEMO_KEY_SHA256 = "2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea";

function need(file, how) {
  if (!existsSync(file)) throw new Error(`${path.relative(ROOT, file)} is missing: ${how}`);
}

/** Starts meridian-mock with the given regions; resolves to {control, regions, set, reset, stats, stop}. */
export async function startMock(regions) {
  need(MOCK_BIN, "run `make test` (or `cargo build --release -p meridian-mock`)");
  const child = spawn(MOCK_BIN, ["--regions", JSON.stringify({ regions }), "--exit-on-stdin-eof"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const line = await new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout });
    rl.once("line", (l) => { rl.close(); resolve(l); });
    child.once("exit", (code) => reject(new Error(`meridian-mock exited with ${code} before listening`)));
  });
  const { control, regions: urls } = JSON.parse(line);
  const call = async (method, p, body) => {
    const r = await fetch(control + p, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!r.ok) throw new Error(`mock control ${method} ${p}: ${r.status} ${await r.text()}`);
    return r.json();
  };
  return {
    control,
    regions: urls,
    /** Merges knobs into a region's current knobs. */
    set: (region, knobs) => call("POST", `/_mock/regions/${region}`, knobs),
    reset: () => call("POST", "/_mock/reset", {}),
    stats: () => call("GET", "/_mock/stats"),
    requests: async (region) => (await call("GET", "/_mock/stats")).regions[region].requests,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once("exit", resolve);
      child.stdin.end();
      setTimeout(() => child.kill("SIGKILL"), 3000).unref();
    }),
  };
}

/** Runs the compiled worker in workerd with MERIDIAN_CONFIG (object or string) and extra string bindings. */
export async function startWorker(config, bindings = {}, { kv = false, limiter = false, ledger = false, analytics = false, inspectorPort } = {}) {
  need(WORKER, "run `make build` first");
  // What the worker logs, line by line (the request records among them); warnings and errors still reach stderr.
  const logs = [];
  const handleStructuredLogs = ({ level, message }) => {
    for (const line of String(message).split("\n")) logs.push(line);
    if (level === "error" || level === "warn") process.stderr.write(`${message}\n`);
  };
  const meridian = {
    name: "meridian",
    // The entry wrapper, the bundle scripts/build-worker writes, and the wasm it imports as "./index_bg.wasm".
    modulesRoot: ROOT,
    modules: [
      { type: "ESModule", path: ENTRY },
      { type: "ESModule", path: WORKER },
      { type: "CompiledWasm", path: path.join(BUILD, "index_bg.wasm") },
    ],
    compatibilityDate: "2026-11-01",
    bindings: { MERIDIAN_CONFIG: config, ...bindings },
    // In-memory local KV, as `wrangler dev` provides it.
    ...(kv ? { kvNamespaces: ["MERIDIAN_KV"] } : {}),
    // The Durable Objects exported by the worker itself: the rate limiter and the spend ledger (SQLite).
    ...(limiter || ledger
      ? {
          durableObjects: {
            ...(limiter ? { MERIDIAN_LIMITER: "RateLimiter" } : {}),
            ...(ledger ? { MERIDIAN_LEDGER: { className: "SpendLedger", useSQLite: true } } : {}),
          },
        }
      : {}),
  };
  // A recording stand-in for the Analytics Engine binding (the local runtime's own dataset accepts data points and
  // drops them): MERIDIAN_ANALYTICS is bound to a second worker's RPC entrypoint whose writeDataPoint keeps each
  // point, and whose fetch hands them to this process.
  const recorder = {
    name: "analytics-recorder-stand-in",
    modules: true,
    script: `import { WorkerEntrypoint } from "cloudflare:workers";
      const points = [];
      export class AnalyticsEngineRecordingStandIn extends WorkerEntrypoint {
        writeDataPoint(point) { points.push(point); }
      }
      export default { fetch() { return Response.json(points); } };`,
    compatibilityDate: "2026-11-01",
  };
  const shared = {
    host: "127.0.0.1",
    port: 0,
    handleStructuredLogs,
    kvPersist: false,
    durableObjectsPersist: false,
    ...(inspectorPort ? { inspectorPort } : {}),
  };
  // Miniflare 5 (the one wrangler 4.164 ships) takes a new option shape; the v4 shape converts to it.
  const mf = new Miniflare(
    convertV4MiniflareOptions(
      analytics
        ? {
            ...shared,
            workers: [
              {
                ...meridian,
                serviceBindings: { MERIDIAN_ANALYTICS: { name: recorder.name, entrypoint: "AnalyticsEngineRecordingStandIn" } },
              },
              recorder,
            ],
          }
        : { ...shared, ...meridian },
    ),
  );
  let url;
  try {
    url = (await mf.ready).toString().replace(/\/$/, "");
  } catch (e) {
    await mf.dispose().catch(() => {});
    throw e;
  }
  const records = () =>
    logs.flatMap((l) => {
      try {
        const v = JSON.parse(l);
        return v && v.meridian === "request" ? [v] : [];
      } catch {
        return [];
      }
    });
  return {
    url,
    mf,
    logs,
    records,
    /** The data points the Analytics Engine stand-in received (with `analytics: true`). */
    async analyticsPoints() {
      const stub = await mf.getWorker(recorder.name);
      return (await stub.fetch("http://stand-in/")).json();
    },
    /** The request records logged after the first `skip`, once there are `n` of them (they are written after the
     *  response), then a short quiet period so that an extra record would be seen. */
    async recordsAfter(skip, n, { timeoutMs = 5000, quietMs = 150 } = {}) {
      const end = Date.now() + timeoutMs;
      while (records().length - skip < n && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, quietMs));
      return records().slice(skip);
    },
    stop: () => mf.dispose(),
  };
}

/** A demo-like configuration: one model per mock region, named after the region. */
export function configFor(mockRegions, extra = {}) {
  const providers = {};
  const models = {};
  const regions = {};
  let i = 0;
  for (const [name, url] of Object.entries(mockRegions)) {
    providers[`mock-${name}`] = { kind: "openai", base_url: `${url}/v1` };
    models[name] = { deployments: [{ provider: `mock-${name}`, model: "mock-1", region: name }] };
    // Mock regions are named for what they test, so they need coordinates of their own.
    regions[name] = { lat: 10 * i, lon: 10 * i++ };
  }
  return {
    keys: [{ name: "demo", sha256: DEMO_KEY_SHA256 }],
    providers,
    models,
    regions,
    ...extra,
  };
}

/** POSTs a chat completion; returns the fetch Response. */
export function chat(url, body, { key = DEMO_KEY, headers = {} } = {}) {
  return fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(key === null ? {} : { authorization: `Bearer ${key}` }),
      ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Reads an SSE body, timestamping each `data:` event when it arrives. */
export async function readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const events = [];
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const now = performance.now();
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      for (const l of block.split("\n")) {
        if (l.startsWith("data: ")) events.push({ t: now, data: l.slice(6) });
      }
    }
  }
  return { events, rest: buf };
}

// ---------------------------------------------------------------------------------------------------------------
// Every provider kind at once: one mock region per kind, one model per kind named after it.
export const PROVIDER_KEY = "sk-provider-e2e-0123456789";
export const KINDS = ["openai", "azure", "anthropic", "bedrock", "gemini"];

function allKindsConfig(regions) {
  const u = (k) => regions[k];
  return {
    keys: [{ name: "demo", sha256: DEMO_KEY_SHA256 }],
    providers: {
      "mock-openai": { kind: "openai", base_url: `${u("openai")}/v1`, api_key_secret: "PROVIDER_KEY" },
      "mock-azure": { kind: "azure", base_url: u("azure"), api_version: "2024-10-21", api_key_secret: "PROVIDER_KEY" },
      "mock-anthropic": { kind: "anthropic", base_url: `${u("anthropic")}/v1`, api_key_secret: "PROVIDER_KEY" },
      "mock-bedrock": {
        kind: "bedrock",
        base_url: u("bedrock"),
        region: "us-east-1",
        access_key_id_secret: "AWS_ACCESS_KEY_ID",
        secret_access_key_secret: "AWS_SECRET_ACCESS_KEY",
      },
      "mock-gemini": { kind: "gemini", base_url: `${u("gemini")}/v1beta`, api_key_secret: "PROVIDER_KEY" },
    },
    models: {
      openai: { deployments: [{ provider: "mock-openai", model: "gpt-4o-mini", region: "us-east-1" }] },
      azure: { deployments: [{ provider: "mock-azure", model: "gpt-4o-deploy", region: "eastus" }] },
      anthropic: { deployments: [{ provider: "mock-anthropic", model: "claude-sonnet-4-5", region: "us-east-1" }] },
      bedrock: {
        deployments: [{ provider: "mock-bedrock", model: "anthropic.claude-3-haiku-20240307-v1:0", region: "us-east-1" }],
      },
      gemini: { deployments: [{ provider: "mock-gemini", model: "gemini-2.5-flash", region: "us-central1" }] },
    },
    timeouts: { first_byte_ms: 3000 },
  };
}

/** `extraModels` are added to the configuration's models (they may use the `mock-<kind>` providers), and
 *  `overrides` replace top-level sections (e.g. `routing`); `options` are startWorker's (`kv`, `limiter`). */
export async function startAllKinds(extraModels = {}, overrides = {}, options = {}) {
  const mock = await startMock(Object.fromEntries(KINDS.map((k) => [k, {}])));
  try {
    const config = { ...allKindsConfig(mock.regions), ...overrides };
    Object.assign(config.models, extraModels);
    const worker = await startWorker(config, {
      PROVIDER_KEY,
      AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
      AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    }, options);
    return { mock, worker };
  } catch (e) {
    await mock.stop();
    throw e;
  }
}

// Runs one of the Python SDK scripts beside this file with the virtualenv scripts/bootstrap made, its standard
// error captured (and echoed, so a failure's traceback is in the test output). A missing virtualenv fails.
export async function runPythonSdk(script, env) {
  const python = process.env.MERIDIAN_PYTHON;
  assert.ok(python && existsSync(python), "the SDK virtualenv is missing: run scripts/bootstrap (or make test)");
  const child = spawn(python, [path.join(HERE, script)], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "pipe"],
  });
  let output = "";
  child.stderr.on("data", (d) => (output += d));
  const code = await new Promise((resolve) => child.on("exit", resolve));
  process.stderr.write(output);
  return { code, output };
}

/** Resident memory of the workerd processes this process started (its children), in bytes. */
export function workerdRss() {
  const out = execFileSync("ps", ["-o", "pid=,comm=", "--ppid", String(process.pid)], { encoding: "utf8" });
  let total = 0;
  for (const line of out.trim().split("\n")) {
    const [pid, comm] = line.trim().split(/\s+/);
    if (!comm?.includes("workerd")) continue;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    total += Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) * 1024;
  }
  return total;
}

/** Forces a full garbage collection in one worker's isolate and returns its V8 heap usage (`usedSize`, `totalSize`,
 *  `backingStorageSize`), through the inspector Miniflare opened on `port` (`inspectorPort`). The inspector's own
 *  `HeapProfiler.collectGarbage` does not answer under workerd; a heap snapshot collects first and does. */
export async function isolateHeapAfterGc(port, worker) {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
  const target = targets.find((t) => t.id === `core:user:${worker}`);
  assert.ok(target, `no inspector target for worker "${worker}" (have ${targets.map((t) => t.id).join(", ")})`);
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  let next = 0;
  const waiting = new Map();
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    // Snapshot chunks are events (no id); they are not needed, only the collection that precedes them.
    if (msg.id !== undefined && waiting.has(msg.id)) waiting.get(msg.id)(msg);
  };
  const call = (method, params = {}) =>
    new Promise((resolve) => {
      waiting.set(++next, resolve);
      ws.send(JSON.stringify({ id: next, method, params }));
    });
  try {
    await call("HeapProfiler.enable");
    await call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
    const { result } = await call("Runtime.getHeapUsage");
    return result;
  } finally {
    ws.close();
  }
}

/** Debian's Chromium (MERIDIAN_CHROMIUM, set by scripts/bootstrap in .tools/env), headless, driven by puppeteer-core,
 *  with a profile of its own; `close()` ends it and removes the profile. */
export async function launchChromium() {
  const executablePath = process.env.MERIDIAN_CHROMIUM;
  assert.ok(executablePath, "MERIDIAN_CHROMIUM is set by scripts/bootstrap (.tools/env)");
  const { default: puppeteer } = await import("puppeteer-core");
  const profile = mkdtempSync(path.join(tmpdir(), "meridian-chromium-"));
  const browser = await puppeteer.launch({
    executablePath,
    headless: true,
    userDataDir: profile,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  return {
    browser,
    close: async () => {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
