#!/usr/bin/env node
// `make bench`: Meridian against the JavaScript floor and two peer gateways, all forwarding to the same mock
// provider on loopback, measured in one invocation with the targets interleaved round by round.
// Method and how to read the output: bench/README.md. Environment overrides:
//   BENCH_ROUNDS (3)  BENCH_SECONDS (5)  BENCH_STREAM_REQUESTS (50)  BENCH_COLD_RESTARTS (9)  BENCH_WARMUP_SECONDS (2)
//   BENCH_TARGETS (direct,js-floor,js-relay,portkey,litellm,meridian,meridian-to-anthropic,meridian-from-anthropic;
//   portkey-node is an extra: Portkey's own Node server)
//   BENCH_KEEP=1 keeps the temporary directory (configs, bundles, logs). BENCH_V8_FLAGS: V8 flags for every workerd.
//   BENCH_CACHE=1 measures the cache HIT row (else it says "not implemented yet"); BENCH_CACHE_CONFIG (JSON deep-merged
//   into Meridian's config) and BENCH_CACHE_HIT_HEADER ("name: value") override how the cache is turned on and recognised.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";

import { cpuSnapshot, foreignCpuShare, freePort, logTail, request, startProcess, stopProcess, waitForPort } from "./lib/proc.mjs";
import { CF_BLOB, CF_BLOB_HEADER, dryRunBundle, workerdBinary, workerdVersion, writeWorkerdConfig } from "./lib/workerd.mjs";
import { runWrk, writeWrkScript, writeWrkUniqueScript } from "./lib/wrk.mjs";
import { MERGED_MS, runStreams } from "./lib/stream.mjs";
import { median, percentile, round } from "./lib/stats.mjs";
import { renderMarkdown, renderText } from "./lib/report.mjs";
import { floorBundle, meridianConfig, startMock } from "./lib/setup.mjs";
import { buildPortkeyWorker, PORTKEY_PKG, portkeyVersion } from "./portkey/build.mjs";

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, "..");
const OUT = path.join(BENCH, "out");
const MOCK_BIN = path.join(ROOT, "target/release/meridian-mock");
const VENV = path.join(ROOT, ".tools/bench-venv");

const int = (name, dflt, min = 1) => {
  const v = process.env[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) die(`${name}=${v}: expected an integer ≥ ${min}`);
  return n;
};
function die(msg) {
  console.error(`bench: error: ${msg}`);
  process.exit(1);
}
const say = (msg) => console.error(`bench: ${msg}`);

const ALL_TARGETS = [
  "direct", "js-floor", "js-relay", "portkey", "litellm", "meridian", "portkey-node", "meridian-leased", "meridian-budget",
  "meridian-to-anthropic", "meridian-from-anthropic",
];
// The JavaScript workers in bench/workers/ measured as targets, each with an UPSTREAM binding to the mock.
const JS_REFERENCES = { "js-floor": "pass-through fetch", "js-relay": "reference: reads what it forwards, in JavaScript" };
const S = {
  rounds: int("BENCH_ROUNDS", 3),
  seconds: int("BENCH_SECONDS", 5),
  stream_requests: int("BENCH_STREAM_REQUESTS", 50),
  cold_restarts: int("BENCH_COLD_RESTARTS", 9),
  warmup_seconds: int("BENCH_WARMUP_SECONDS", 2, 0),
  targets: (process.env.BENCH_TARGETS || "direct,js-floor,js-relay,portkey,litellm,meridian,meridian-to-anthropic,meridian-from-anthropic").split(",").map((s) => s.trim()).filter(Boolean),
  mock_knobs: { reply_words: 20, token_gap_ms: 5 },
  c1: { threads: 1, connections: 1 },
  c32: { threads: 2, connections: 32 },
};
for (const t of S.targets) if (!ALL_TARGETS.includes(t)) die(`BENCH_TARGETS: unknown target ${t} (known: ${ALL_TARGETS.join(", ")})`);
for (const t of ["direct", "js-floor"]) if (!S.targets.includes(t)) die(`BENCH_TARGETS must include ${t}: the other targets are measured against it`);

const GATEWAY_KEY = "bench";
const LITELLM_KEY = "sk-bench"; // LiteLLM insists that master keys start with sk-
const PATH = "/v1/chat/completions";
const BODY = JSON.stringify({ model: "bench", messages: [{ role: "user", content: "hi" }] });
const STREAM_BODY = JSON.stringify({ model: "bench", stream: true, messages: [{ role: "user", content: "hi" }] });
/** What a target is asked, in its client's dialect: OpenAI Chat Completions unless the target says otherwise. */
const OPENAI_REQUEST = { dialect: "openai", path: PATH, body: BODY, streamBody: STREAM_BODY };
const ANTHROPIC_REQUEST = {
  dialect: "anthropic",
  path: "/v1/messages",
  body: JSON.stringify({ model: "bench", max_tokens: 256, messages: [{ role: "user", content: "hi" }] }),
  streamBody: JSON.stringify({ model: "bench", max_tokens: 256, stream: true, messages: [{ role: "user", content: "hi" }] }),
};
const asked = (target) => target.request ?? OPENAI_REQUEST;

// ---------------------------------------------------------------------------------------------------------------
// Preconditions: everything missing is an error with the command that fixes it.
function preconditions() {
  try {
    execFileSync("wrk", ["-v"], { stdio: "ignore" });
  } catch (e) {
    if (e.code === "ENOENT") die("wrk not found: apt-get install -y wrk");
  }
  if (!existsSync(MOCK_BIN)) die("target/release/meridian-mock is missing: run `make mock-bin` (make bench does)");
  if (!existsSync(path.join(ROOT, "build/index.js"))) die("build/index.js is missing: run `make build` (make bench does)");
  if (!existsSync(path.join(ROOT, "node_modules/.bin/wrangler"))) die("wrangler is missing: run `make bootstrap`");
  if (S.targets.some((t) => t.startsWith("portkey")) && !existsSync(path.join(PORTKEY_PKG, "package.json"))) {
    die("Portkey's gateway is missing from bench/node_modules: run bench/setup (make bench does)");
  }
  if (S.targets.includes("litellm") && !existsSync(path.join(VENV, "bin/litellm"))) {
    die("LiteLLM is missing from .tools/bench-venv: run bench/setup (make bench does)");
  }
}

function machineInfo() {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const cpu = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? "unknown";
  const sh = (cmd, args, opts = {}) => {
    try {
      return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], ...opts }).trim();
    } catch {
      return "unknown";
    }
  };
  let nproc = sh("nproc", []);
  const git = sh("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"]);
  const dirty = sh("git", ["-C", ROOT, "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock", "wrangler.toml"]);
  return {
    nproc: Number(nproc) || os.availableParallelism(),
    cpu,
    mem_gib: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    loadavg_start: os.loadavg().map((x) => x.toFixed(2)).join(" "),
    versions: {
      node: process.version,
      workerd: "?",
      wrangler: JSON.parse(readFileSync(path.join(ROOT, "node_modules/wrangler/package.json"), "utf8")).version,
      // `wrk -v` prints its version and usage, then exits 1.
      wrk: (spawnSync("wrk", ["-v"], { encoding: "utf8" }).stdout ?? "").split("\n")[0].replace(/\s*\[.*$/, "").replace(/\s*Copyright.*$/, "") || "wrk ?",
      litellm: existsSync(path.join(VENV, "bin/python"))
        ? sh(path.join(VENV, "bin/python"), ["-c", "import importlib.metadata as m; print(m.version('litellm'))"])
        : "not installed",
      portkey: existsSync(path.join(PORTKEY_PKG, "package.json")) ? portkeyVersion() : "not installed",
      meridian: git === "unknown" ? git : `${git}${dirty ? " + uncommitted changes" : ""}`,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The mock provider and the KV stand-in: one of each for the whole run.
async function startKv(tmp, workerd) {
  const dir = path.join(tmp, "kv");
  const port = await freePort();
  const bundle = { modules: [{ name: "kv.js", path: path.join(BENCH, "workers/kv.mjs"), type: "esModule" }] };
  const config = writeWorkerdConfig({ dir, port, bundle });
  const child = startProcess(workerd, ["serve", config], { log: path.join(dir, "workerd.log") });
  await waitForPort(port, { child, what: "the KV workerd" });
  return { child, address: `127.0.0.1:${port}`, url: `http://127.0.0.1:${port}` };
}

// ---------------------------------------------------------------------------------------------------------------
// Targets. Each has headers (for wrk and the stream client), a mode line for the report, and unless it is `direct`
// a `spawn(port)` giving the command that serves it; `restartable` ones get the cold-start restarts.
async function defineTargets({ tmp, mock, kv, workerd, notes }) {
  const common = { "content-type": "application/json", [CF_BLOB_HEADER]: CF_BLOB };
  const bearer = (k) => ({ ...common, authorization: `Bearer ${k}` });
  const T = {};
  const workerTarget = (name, mode, bundle, bindings, extra = {}) => ({
    name,
    mode,
    status: "ok",
    headers: bearer(GATEWAY_KEY),
    bundle,
    restartable: true,
    spawn: (port, dir) => {
      const config = writeWorkerdConfig({ dir, port, bundle, bindings });
      return { cmd: workerd, args: ["serve", config], pollMs: 1 };
    },
    ...extra,
  });
  const notRun = (name, mode, reason) => ({ name, mode, status: `not run: ${reason}` });

  for (const name of S.targets) {
    try {
      if (name === "direct") {
        T[name] = { name, mode: "wrk and the stream client straight to the mock's /v1/chat/completions", status: "ok", headers: bearer(GATEWAY_KEY), url: mock.url };
      } else if (JS_REFERENCES[name]) {
        const bundle = await floorBundle({ root: ROOT, dir: path.join(tmp, `${name}-src`), file: path.join(BENCH, `workers/${name}.mjs`) });
        T[name] = workerTarget(name, `bench/workers/${name}.mjs (${JS_REFERENCES[name]}), wrangler dry-run upload, workerd serve`, bundle, [{ name: "UPSTREAM", text: mock.url }]);
      } else if (name.startsWith("meridian")) {
        // meridian-leased: the same upload, its key limited (rpm, admitted from slices held at the edge) and the
        // limiter object made 150 ms away by the test-only MERIDIAN_TEST_LIMITER_DELAY_MS (issue 32).
        // meridian-budget: the same with a daily budget instead (slices of it from the key's ledger object, made
        // 150 ms away by the same setting), which no run of the bench spends.
        const leased = name === "meridian-leased";
        const budgeted = name === "meridian-budget";
        const dir = path.join(tmp, `${name}-upload`);
        const main = /^main\s*=\s*"([^"]+)"/m.exec(readFileSync(path.join(ROOT, "wrangler.toml"), "utf8"))?.[1];
        const bundle = await dryRunBundle({ root: ROOT, cwd: ROOT, outdir: dir, main, log: path.join(tmp, `${name}-wrangler.log`) });
        const configFile = path.join(tmp, `${name}-config.json`);
        const config = meridianConfig(mock.url, GATEWAY_KEY);
        if (leased) config.keys[0].rpm = 100_000_000;
        if (budgeted) config.keys[0].budget = { usd_per_day: 1_000_000_000 };
        // The translated paths: an OpenAI client on an Anthropic-wire deployment (the mock speaks Messages too), and
        // an Anthropic client on the OpenAI-wire one.
        if (name === "meridian-to-anthropic") {
          config.providers.mock = { kind: "anthropic", base_url: `${mock.url}/v1` };
          config.models.bench.deployments[0].model = "claude-mock-1";
        }
        writeFileSync(configFile, JSON.stringify(config));
        const dos = durableObjectBindings(bundle, notes);
        T[name] = workerTarget(name, "`wrangler deploy --dry-run` upload of build/, workerd serve, MERIDIAN_CONFIG json binding, MERIDIAN_KV kvNamespace (in-memory KV workerd)" +
          dos.map((d) => `, ${d.name} Durable Object (${d.durableObjectClass}, SQLite on local disk)`).join("") +
          (leased ? "; key limited (rpm 100000000, leased) with the limiter object 150 ms away (MERIDIAN_TEST_LIMITER_DELAY_MS)" : "") +
          (budgeted ? "; key with a daily budget (usd_per_day 1e9, slices from its ledger object) 150 ms away (MERIDIAN_TEST_LIMITER_DELAY_MS)" : "") +
          (name === "meridian-to-anthropic" ? "; an OpenAI client on an Anthropic-wire deployment (translated both ways)" : "") +
          (name === "meridian-from-anthropic" ? "; an Anthropic client (POST /v1/messages) on the OpenAI-wire deployment (translated both ways)" : ""), bundle, [
          { name: "MERIDIAN_CONFIG", jsonFile: configFile },
          { name: "MERIDIAN_KV", kvService: kv.address },
          ...dos,
          ...(leased || budgeted ? [{ name: "MERIDIAN_TEST_LIMITER_DELAY_MS", text: "150" }] : []),
        ], name === "meridian-from-anthropic"
          ? { request: ANTHROPIC_REQUEST, headers: { "x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01" } }
          : {});
      } else if (name === "portkey") {
        const headers = { ...bearer(GATEWAY_KEY), "x-portkey-provider": "openai", "x-portkey-custom-host": `${mock.url}/v1` };
        try {
          const bundle = await buildPortkeyWorker({ root: ROOT, dir: path.join(tmp, "portkey-src") });
          T[name] = workerTarget(name, `@portkey-ai/gateway ${portkeyVersion()} as a worker: its npm bundle with the Node bootstrap cut off (export default app), wrangler dry-run --minify upload, workerd serve`, bundle, [], { headers });
        } catch (e) {
          // Fallback: Portkey's own Node server, as the npm package ships it.
          notes.push(`portkey: the worker build failed, fell back to Portkey's Node server (build/start-server.js): ${e.message.split("\n")[0]}`);
          T[name] = portkeyNode(name, headers, `@portkey-ai/gateway ${portkeyVersion()} FALLBACK: Node server build/start-server.js (worker build failed)`);
        }
      } else if (name === "portkey-node") {
        const headers = { ...bearer(GATEWAY_KEY), "x-portkey-provider": "openai", "x-portkey-custom-host": `${mock.url}/v1` };
        T[name] = portkeyNode(name, headers, `@portkey-ai/gateway ${portkeyVersion()}: its Node server build/start-server.js (node ${process.version})`);
      } else if (name === "litellm") {
        const cfg = path.join(tmp, "litellm.yaml");
        writeFileSync(cfg, [
          "model_list:",
          "  - model_name: bench",
          "    litellm_params:",
          "      model: openai/mock-1",
          `      api_base: ${mock.url}/v1`,
          "      api_key: sk-provider-bench",
          "general_settings:",
          `  master_key: ${LITELLM_KEY}`,
          "litellm_settings:",
          "  telemetry: false",
          "",
        ].join("\n"));
        T[name] = {
          name,
          mode: `LiteLLM proxy ${machineVersions.litellm} (uvicorn, 1 worker, its defaults), config model bench → openai/mock-1`,
          status: "ok",
          headers: bearer(LITELLM_KEY),
          restartable: false, // its start takes seconds: the one start of the run is its cold-start sample
          spawn: (port) => ({
            cmd: path.join(VENV, "bin/litellm"),
            args: ["--config", cfg, "--host", "127.0.0.1", "--port", String(port)],
            env: { ...process.env, LITELLM_LOCAL_MODEL_COST_MAP: "True", LITELLM_TELEMETRY: "False", NO_COLOR: "1" },
            pollMs: 20,
            timeoutMs: 180000,
          }),
        };
      }
    } catch (e) {
      T[name] = notRun(name, name, e.message.split("\n")[0]);
      notes.push(`${name}: ${e.message}`);
    }
  }
  return T;
}

function portkeyNode(name, headers, mode) {
  return {
    name,
    mode,
    status: "ok",
    headers,
    restartable: true,
    spawn: (port) => ({
      cmd: process.execPath,
      args: [path.join(PORTKEY_PKG, "build/start-server.js"), `--port=${port}`, "--headless"],
      pollMs: 2,
    }),
  };
}

/**
 * The Durable Object bindings of Meridian's wrangler.toml (top level, before any [env.*]) whose class the upload's
 * main module exports, as workerd bindings; production has them, so the benchmark does too.
 */
function durableObjectBindings(bundle, notes) {
  const toml = readFileSync(path.join(ROOT, "wrangler.toml"), "utf8").split(/^\[env\./m)[0];
  const main = readFileSync(bundle.modules[0].path, "utf8");
  const out = [];
  for (const block of toml.split(/^\[\[durable_objects\.bindings\]\]\s*$/m).slice(1)) {
    const body = block.split(/^\[/m)[0];
    const name = /^name\s*=\s*"([^"]+)"/m.exec(body)?.[1];
    const cls = /^class_name\s*=\s*"([^"]+)"/m.exec(body)?.[1];
    if (!name || !cls) continue;
    if (!new RegExp(`export\\s*\\{[^}]*\\b${cls}\\b`).test(main) && !new RegExp(`export\\s+class\\s+${cls}\\b`).test(main)) {
      notes.push(`meridian: wrangler.toml binds ${name} to class ${cls}, which the upload does not export; left out`);
      continue;
    }
    out.push({ name, durableObjectClass: cls });
  }
  return out;
}

let machineVersions = {};

// ---------------------------------------------------------------------------------------------------------------
// Instances: start a target's process, wait for its port, send its first request (the cold-start sample).
let instanceSeq = 0;
async function startInstance(target, tmp) {
  const port = await freePort();
  const dir = path.join(tmp, `${target.name}-${++instanceSeq}`);
  mkdirSync(dir, { recursive: true });
  const spec = target.spawn(port, dir);
  const t0 = performance.now();
  const child = startProcess(spec.cmd, spec.args, { log: path.join(dir, "process.log"), env: spec.env, cwd: dir });
  const tListen = await waitForPort(port, { child, intervalMs: spec.pollMs, timeoutMs: spec.timeoutMs ?? 30000, what: target.name });
  const url = `http://127.0.0.1:${port}`;
  const first = await request(url + asked(target).path, { method: "POST", headers: target.headers, body: asked(target).body });
  const tFirst = performance.now();
  if (first.status !== 200) {
    await stopProcess(child);
    throw new Error(`${target.name}: first request answered ${first.status}: ${first.body.slice(0, 300)}\n${logTail(child.log)}`);
  }
  return {
    url,
    child,
    cold: { listening: tListen - t0, first_request: first.ms, start_to_first_response: tFirst - t0 },
  };
}

/**
 * Starts a target (unless it is `direct`) and checks it: a non-streaming request must succeed or the target is not
 * measured; a failed streaming request is noted (the streaming row then shows the failures).
 */
async function startChecked(target, tmp, notes) {
  if (target.spawn) target.instance = await startInstance(target, tmp);
  const url = target.instance.url;
  try {
    const r = await request(url + asked(target).path, { method: "POST", headers: target.headers, body: asked(target).body });
    let content;
    try {
      const answer = JSON.parse(r.body);
      content = asked(target).dialect === "anthropic" ? answer?.content?.[0]?.text : answer?.choices?.[0]?.message?.content;
    } catch {
      /* below */
    }
    if (r.status !== 200 || typeof content !== "string") throw new Error(`non-streaming check: ${r.status} ${r.body.slice(0, 300)}`);
  } catch (e) {
    if (target.instance.child) await stopProcess(target.instance.child);
    target.instance = null;
    throw e;
  }
  const s = await runStreams({ url: url + asked(target).path, headers: target.headers, body: asked(target).streamBody, dialect: asked(target).dialect, n: 1, expectContent: S.mock_knobs.reply_words });
  if (s.failures.length) {
    const err = target.instance.child ? logTail(target.instance.child.log, 40).split("\n").filter((l) => /error/i.test(l) && !/^\s+at /.test(l)).pop() : null;
    notes.push(`${target.name}: a streaming request failed its check (${s.failures[0]})${err ? `; its log says: ${err.trim()}` : ""}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
async function measure(target, url, tmp) {
  const script = writeWrkScript(path.join(tmp, `wrk-${target.name}.lua`), { body: asked(target).body, headers: target.headers });
  const res = {};
  for (const key of ["c1", "c32"]) {
    try {
      res[key] = await runWrk({ url: url + asked(target).path, script, seconds: S.seconds, ...S[key] });
    } catch (e) {
      res[key] = { error: e.message.split("\n")[0] };
    }
  }
  const st = await runStreams({ url: url + asked(target).path, headers: target.headers, body: asked(target).streamBody, dialect: asked(target).dialect, n: S.stream_requests, expectContent: S.mock_knobs.reply_words });
  const gaps = st.samples.flatMap((s) => s.gaps);
  res.stream = {
    requests: S.stream_requests,
    ok: st.samples.length,
    failed: st.failures.length,
    failures: [...new Set(st.failures)].slice(0, 3),
    ttfb_p50: median(st.samples.map((s) => s.ttfb)),
    ttfb_p90: percentile(st.samples.map((s) => s.ttfb), 90),
    total_p50: median(st.samples.map((s) => s.total)),
    gaps: gaps.length,
    merged: gaps.filter((g) => g < MERGED_MS).length,
    gap_p50: median(gaps),
    gap_min: gaps.length ? Math.min(...gaps) : null,
  };
  return res;
}

async function warmup(target, url, tmp) {
  if (S.warmup_seconds > 0) {
    const script = writeWrkScript(path.join(tmp, `wrk-${target.name}.lua`), { body: asked(target).body, headers: target.headers });
    await runWrk({ url: url + asked(target).path, script, seconds: S.warmup_seconds, threads: 1, connections: 4 }).catch(() => {});
  }
  await runStreams({ url: url + asked(target).path, headers: target.headers, body: asked(target).streamBody, dialect: asked(target).dialect, n: 5, expectContent: S.mock_knobs.reply_words });
}

// ---------------------------------------------------------------------------------------------------------------
function summarise(rounds, T, cold, bundles, cache) {
  const names = S.targets;
  const ok = (t) => T[t]?.status === "ok";
  const per = (t, key) => rounds.map((r) => r.results[t]?.[key]).map((x) => (x && !x.error ? x : null));
  const paired = (t, base, key, f) => rounds.map((r) => {
    const a = r.results[t]?.[key];
    const b = r.results[base]?.[key];
    return a && b && !a.error && !b.error ? f(a, b) : null;
  }).filter((x) => x !== null && Number.isFinite(x));

  const nonstream = {};
  for (const key of ["c1", "c32"]) {
    nonstream[key] = {};
    for (const t of names) {
      if (!ok(t)) continue;
      const xs = per(t, key).filter(Boolean);
      if (!xs.length) continue;
      nonstream[key][t] = {
        rounds: xs.length,
        rps: median(xs.map((x) => x.rps)),
        p50: median(xs.map((x) => x.p50)),
        p90: median(xs.map((x) => x.p90)),
        p99: median(xs.map((x) => x.p99)),
        added_p50: median(paired(t, "direct", key, (a, b) => a.p50 - b.p50)),
        added_p90: median(paired(t, "direct", key, (a, b) => a.p90 - b.p90)),
        added_p99: median(paired(t, "direct", key, (a, b) => a.p99 - b.p99)),
        vs_floor_p50: median(paired(t, "js-floor", key, (a, b) => a.p50 - b.p50)),
        rps_vs_floor: median(paired(t, "js-floor", key, (a, b) => a.rps / b.rps)),
        errors: xs.reduce((s, x) => s + x.errors, 0),
        round_errors: per(t, key).length - xs.length,
      };
    }
  }
  const stream = {};
  for (const t of names) {
    if (!ok(t)) continue;
    const xs = per(t, "stream").filter((x) => x && x.ok > 0);
    const all = per(t, "stream").filter(Boolean);
    if (!all.length) continue;
    const gaps = xs.reduce((s, x) => s + x.gaps, 0);
    const merged = xs.reduce((s, x) => s + x.merged, 0);
    const pairedTtfb = (base) => median(paired(t, base, "stream", (a, b) => (a.ok && b.ok ? a.ttfb_p50 - b.ttfb_p50 : NaN)));
    stream[t] = {
      requests: all.reduce((s, x) => s + x.requests, 0),
      failed: all.reduce((s, x) => s + x.failed, 0),
      failures: [...new Set(all.flatMap((x) => x.failures))].slice(0, 3),
      ttfb_p50: median(xs.map((x) => x.ttfb_p50)),
      ttfb_p90: median(xs.map((x) => x.ttfb_p90)),
      total_p50: median(xs.map((x) => x.total_p50)),
      added_ttfb: pairedTtfb("direct"),
      vs_floor_ttfb: pairedTtfb("js-floor"),
      gaps,
      merged,
      merged_share: gaps ? merged / gaps : null,
    };
  }
  return { nonstream, stream, cold, bundle: bundles, cache };
}

// Issue 31's targets. "Ahead of Portkey" is beyond the spread of the rounds: Meridian's worst round against
// Portkey's best (medians where there are no rounds: the cold start, the merged gaps, the upload).
function goals(summary, T, rounds) {
  const out = [];
  const g = (name, value, pass, detail) => {
    if (value === null || value === undefined || (typeof value === "number" && !Number.isFinite(value))) {
      out.push({ name, status: "NOT RUN", value: null, detail: detail ?? "no measurement" });
    } else {
      out.push({ name, status: pass(value) ? "PASS" : "MISS", value: typeof value === "number" ? round(value, 4) : value, detail });
    }
  };
  const f3 = (v) => (Number.isFinite(v) ? v.toFixed(3) : "-");
  const sign = (v) => (v >= 0 ? `+${f3(v)}` : f3(v));
  const why = T.meridian?.status !== "ok" ? `meridian ${T.meridian?.status ?? "not in BENCH_TARGETS"}` : undefined;
  const { c1, c32 } = summary.nonstream;
  const floorCold = summary.cold["js-floor"];
  const cold = summary.cold.meridian;
  const coldOk = cold?.status === "ok" && floorCold?.status === "ok";
  g("first request after a cold start ≤ 1.5× the JS floor's", coldOk ? cold.first_request / floorCold.first_request : null, (v) => v <= 1.5,
    coldOk ? `${(cold.first_request / floorCold.first_request).toFixed(2)}× (${cold.first_request.toFixed(1)} vs ${floorCold.first_request.toFixed(1)} ms, medians of ${cold.n})` : cold?.status ?? why);
  g("process start to first response ≤ 1.5× the JS floor's", coldOk ? cold.start_to_first_response / floorCold.start_to_first_response : null, (v) => v <= 1.5,
    coldOk ? `${(cold.start_to_first_response / floorCold.start_to_first_response).toFixed(2)}× (${cold.start_to_first_response.toFixed(1)} vs ${floorCold.start_to_first_response.toFixed(1)} ms)` : cold?.status ?? why);
  g("req/s at c=32 ≥ 0.70× the floor's", c32.meridian?.rps_vs_floor, (v) => v >= 0.7,
    c32.meridian ? `${c32.meridian.rps_vs_floor.toFixed(2)}× (${Math.round(c32.meridian.rps)} vs ${Math.round(c32["js-floor"]?.rps)} req/s)` : why);
  const relayAdded = c1["js-relay"]?.vs_floor_p50;
  g("added p50 at c=1 ≤ the JS relay's + 0.10 ms", c1.meridian && Number.isFinite(relayAdded) ? c1.meridian.vs_floor_p50 - relayAdded : null, (v) => v <= 0.1,
    c1.meridian ? `${sign(c1.meridian.vs_floor_p50)} ms over the floor, relay ${sign(relayAdded)} ms` : why);
  const st = summary.stream;
  for (const t of ["meridian-to-anthropic", "meridian-from-anthropic"]) {
    // What translation costs: a translated stream that starts sooner than the passthrough meets it too.
    g(`${t}: stream TTFB at most 0.3 ms over the passthrough's`, st[t] && st.meridian ? st[t].ttfb_p50 - st.meridian.ttfb_p50 : null, (v) => v <= 0.3,
      st[t] && st.meridian ? `${sign(st[t].ttfb_p50 - st.meridian.ttfb_p50)} ms (${f3(st[t].ttfb_p50)} vs ${f3(st.meridian.ttfb_p50)} ms)` : `${t} not run`);
  }
  for (const t of ["meridian", "meridian-to-anthropic", "meridian-from-anthropic"]) {
    g(`${t}: merged gaps no more than the floor's`, st[t] && st["js-floor"] ? st[t].merged_share - st["js-floor"].merged_share : null, (v) => v <= 0,
      st[t] && st["js-floor"] ? `${st[t].merged} of ${st[t].gaps} (floor ${st["js-floor"].merged} of ${st["js-floor"].gaps})` : `${t} not run`);
  }
  // Per round values of one target, for the spread.
  const perRound = (t, key, f) => rounds.map((r) => r.results[t]?.[key]).filter((x) => x && !x.error).map(f).filter(Number.isFinite);
  const pk = T.portkey?.status === "ok";
  const ahead = (name, mine, theirs, better, detail) =>
    g(`ahead of Portkey: ${name}`, pk && mine.length && theirs.length ? (better(mine, theirs) ? 1 : 0) : null, (v) => v === 1, pk ? detail(mine, theirs) : `portkey ${T.portkey?.status ?? "not in BENCH_TARGETS"}`);
  const span = (xs, d = 3) => `${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)}`;
  ahead("added p50 at c=1 (every round)", perRound("meridian", "c1", (x) => x.p50), perRound("portkey", "c1", (x) => x.p50),
    (m, p) => Math.max(...m) < Math.min(...p), (m, p) => `p50 ${span(m)} ms vs ${span(p)} ms`);
  ahead("req/s at c=32 (every round)", perRound("meridian", "c32", (x) => x.rps), perRound("portkey", "c32", (x) => x.rps),
    (m, p) => Math.min(...m) > Math.max(...p), (m, p) => `${span(m, 0)} vs ${span(p, 0)} req/s`);
  ahead("stream TTFB (every round)", perRound("meridian", "stream", (x) => x.ttfb_p50), perRound("portkey", "stream", (x) => x.ttfb_p50),
    (m, p) => Math.max(...m) < Math.min(...p), (m, p) => `${span(m)} vs ${span(p)} ms`);
  ahead("merged gaps", st.meridian ? [st.meridian.merged_share] : [], st.portkey ? [st.portkey.merged_share] : [],
    (m, p) => m[0] < p[0], () => `${st.meridian.merged} of ${st.meridian.gaps} vs ${st.portkey.merged} of ${st.portkey.gaps}`);
  const pkCold = summary.cold.portkey;
  ahead("first request after a cold start", cold?.status === "ok" ? [cold.first_request] : [], pkCold?.status === "ok" ? [pkCold.first_request] : [],
    (m, p) => m[0] < p[0], (m, p) => `${f3(m[0])} vs ${f3(p[0])} ms`);
  const b = summary.bundle.meridian;
  g("gzip upload ≤ 1 MiB", b?.status === "ok" ? b.gzip / 1024 : null, (v) => v <= 1024,
    b?.status === "ok" ? `${(b.gzip / 1024).toFixed(1)} KiB gzip (${(b.raw / 1024).toFixed(1)} KiB raw)` : b?.status ?? why);
  const c = summary.cache;
  g("cache HIT p50 ≤ 2 ms", c.status === "ok" ? c.p50 : null, (v) => v <= 2, c.status === "ok" ? `${c.p50.toFixed(3)} ms` : `cache: ${c.status}`);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Cache HIT (off by default: a placeholder row until the cache issue is done). With BENCH_CACHE=1 a second Meridian
// instance runs with the cache on (the main one stays cache-off, so the other rows keep measuring the forwarding
// path); it is primed with one request, the hit header is checked on the next, and identical requests are measured
// with wrk at c=1 once per round, in Meridian's slot.
// BENCH_CACHE=1 uses the config shape of Meridian's first cache (a per-model `cache` table; requests without a
// temperature count as sampled, hence nonzero_temperature) and its `x-meridian-cache: HIT` header.
const CACHE_DEFAULTS = {
  config: { models: { bench: { cache: { ttl_s: 300, nonzero_temperature: true } } } },
  hitHeader: "x-meridian-cache: HIT",
};

function deepMerge(a, b) {
  if (typeof a !== "object" || a === null || Array.isArray(a) || typeof b !== "object" || b === null || Array.isArray(b)) return b;
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = k in a ? deepMerge(a[k], v) : v;
  return out;
}

async function cacheInstance(T, tmp, mock, kv) {
  const on = process.env.BENCH_CACHE !== "0" || process.env.BENCH_CACHE_CONFIG;
  if (!on) return { status: "not run (BENCH_CACHE=0)", note: "BENCH_CACHE=0 skips the cache rows" };
  if (T.meridian?.status !== "ok") return { status: `not run: meridian ${T.meridian?.status}` };
  const extra = process.env.BENCH_CACHE_CONFIG ? JSON.parse(process.env.BENCH_CACHE_CONFIG) : CACHE_DEFAULTS.config;
  const configFile = path.join(tmp, "meridian-cache-config.json");
  writeFileSync(configFile, JSON.stringify(deepMerge(meridianConfig(mock.url, GATEWAY_KEY), extra)));
  const target = {
    ...T.meridian,
    name: "meridian-cache",
    spawn: (port, dir) => ({
      cmd: workerdBinary(ROOT),
      args: ["serve", writeWorkerdConfig({ dir, port, bundle: T.meridian.bundle, bindings: [{ name: "MERIDIAN_CONFIG", jsonFile: configFile }, { name: "MERIDIAN_KV", kvService: kv.address }] })],
      pollMs: 1,
    }),
  };
  const inst = await startInstance(target, tmp);
  const probe = await request(inst.url + asked(target).path, { method: "POST", headers: target.headers, body: asked(target).body });
  const [hName, hValue] = (process.env.BENCH_CACHE_HIT_HEADER || CACHE_DEFAULTS.hitHeader).split(":").map((s) => s.trim().toLowerCase());
  if (hName && (probe.headers[hName] ?? "").toLowerCase() !== hValue) {
    await stopProcess(inst.child);
    return { status: `not run: second identical request has no "${hName}: ${hValue}" header (got ${JSON.stringify(probe.headers[hName])})` };
  }
  return { status: "running", target, inst, samples: [] };
}

// ---------------------------------------------------------------------------------------------------------------
async function main() {
  preconditions();
  const startedAt = new Date();
  const t0 = performance.now();
  const tmp = mkdtempSync(path.join(os.tmpdir(), "meridian-bench-"));
  const notes = [];
  const workerd = workerdBinary(ROOT);
  const machine = machineInfo();
  machine.versions.workerd = await workerdVersion(ROOT);
  machineVersions = machine.versions;
  say(`${S.targets.length} targets × ${S.rounds} rounds; temporary files in ${tmp}`);

  const mock = await startMock({ bin: MOCK_BIN, tmp, knobs: S.mock_knobs });
  const kv = await startKv(tmp, workerd);
  say("building the worker uploads (wrangler deploy --dry-run)");
  const T = await defineTargets({ tmp, mock, kv, workerd, notes });
  if (T.direct) T.direct.instance = { url: mock.url };

  // Bundle sizes come straight from the uploads.
  const bundles = {};
  for (const t of S.targets) {
    if (t === "direct" || t === "litellm" || t === "portkey-node") continue;
    if (T[t]?.bundle) {
      bundles[t] = { status: "ok", raw: T[t].bundle.raw, gzip: T[t].bundle.gzip, files: T[t].bundle.modules.map(({ name, raw, gzip }) => ({ name, raw, gzip })), wrangler_total: T[t].bundle.wrangler_total };
    } else bundles[t] = { status: T[t]?.status?.startsWith("not run") ? T[t].status : "not run: no worker build (Node server)" };
  }

  // Long-running instances; LiteLLM first (slow), its start is its cold-start sample.
  const cold = {};
  const order = [...S.targets].sort((a, b) => (a === "litellm" ? -1 : b === "litellm" ? 1 : 0));
  for (const t of order) {
    if (!T[t] || T[t].status !== "ok" || t === "direct") continue;
    say(`starting ${t}`);
    try {
      await startChecked(T[t], tmp, notes);
    } catch (e) {
      if (t === "portkey" && T[t].bundle) {
        // The worker build does not run here: fall back to Portkey's own Node server, and say so.
        notes.push(`portkey: the worker build did not run (${e.message.split("\n")[0]}); fell back to Portkey's Node server build/start-server.js`);
        T[t] = portkeyNode(t, T[t].headers, `@portkey-ai/gateway ${portkeyVersion()} FALLBACK: Node server build/start-server.js (worker build did not run)`);
        try {
          await startChecked(T[t], tmp, notes);
        } catch (e2) {
          e = e2;
        }
      }
      if (!T[t].instance) {
        T[t].status = `not run: ${e.message.split("\n")[0]}`;
        notes.push(`${t} did not start: ${e.message}`);
      }
    }
    if (T[t].instance && !T[t].restartable) cold[t] = { status: "ok", n: 1, note: "1 start: slow", ...T[t].instance.cold };
  }
  if (T.direct) await startChecked(T.direct, tmp, notes);
  const active = S.targets.filter((t) => T[t]?.status === "ok");
  const cache = await cacheInstance(T, tmp, mock, kv).catch((e) => ({ status: `not run: ${e.message.split("\n")[0]}` }));

  say(`warming up ${active.join(", ")}`);
  for (const t of active) await warmup(T[t], T[t].instance.url, tmp);

  const rounds = [];
  for (let r = 0; r < S.rounds; r++) {
    const k = r % active.length;
    const roundOrder = [...active.slice(k), ...active.slice(0, k)];
    say(`round ${r + 1}/${S.rounds}: ${roundOrder.join(" → ")}`);
    const results = {};
    const cpu0 = cpuSnapshot();
    for (const t of roundOrder) {
      results[t] = await measure(T[t], T[t].instance.url, tmp);
      if (T[t].instance.child && T[t].instance.child.exitCode !== null) {
        notes.push(`${t} exited during round ${r + 1}: ${logTail(T[t].instance.child.log, 5)}`);
      }
      if (t === "meridian" && cache.status === "running") {
        const script = writeWrkScript(path.join(tmp, "wrk-cache.lua"), { body: BODY, headers: cache.target.headers });
        cache.samples.push(await runWrk({ url: cache.inst.url + PATH, script, seconds: S.seconds, ...S.c1 }).catch((e) => ({ error: e.message })));
        // MISS overhead: unique prompts against the cache-on instance and, paired, against the cache-off one.
        const unique = writeWrkUniqueScript(path.join(tmp, `wrk-miss-${r}.lua`), { prefix: `miss-r${r}`, headers: cache.target.headers });
        const miss = await runWrk({ url: cache.inst.url + PATH, script: unique, seconds: S.seconds, ...S.c1 }).catch((e) => ({ error: e.message }));
        const plain = await runWrk({ url: T.meridian.instance.url + PATH, script: unique, seconds: S.seconds, ...S.c1 }).catch((e) => ({ error: e.message }));
        (cache.misses ??= []).push({ miss, plain });
      }
    }
    rounds.push({ index: r + 1, order: roundOrder, foreign_cpu: round(foreignCpuShare(cpu0, cpuSnapshot(), machine.nproc), 3), results });
  }

  let cacheSummary = cache;
  if (cache.status === "running") {
    await stopProcess(cache.inst.child);
    const xs = cache.samples.filter((x) => !x.error);
    const pairs = (cache.misses ?? []).filter((m) => !m.miss.error && !m.plain.error);
    const missRow = pairs.length
      ? {
          p50: median(pairs.map((m) => m.miss.p50)),
          p99: median(pairs.map((m) => m.miss.p99)),
          plain_p50: median(pairs.map((m) => m.plain.p50)),
          plain_p99: median(pairs.map((m) => m.plain.p99)),
          overhead_p50: median(pairs.map((m) => m.miss.p50 - m.plain.p50)),
          overhead_p99: median(pairs.map((m) => m.miss.p99 - m.plain.p99)),
        }
      : null;
    cacheSummary = xs.length
      ? {
          status: "ok",
          note: "HIT: identical requests to a cache-on Meridian instance; MISS: a unique prompt per request, cache on vs the cache-off instance, paired per round (overhead = difference of the medians)",
          p50: median(xs.map((x) => x.p50)),
          p90: median(xs.map((x) => x.p90)),
          p99: median(xs.map((x) => x.p99)),
          rps: median(xs.map((x) => x.rps)),
          miss: missRow,
          samples: cache.samples,
          miss_samples: cache.misses,
        }
      : { status: `not run: ${cache.samples[0]?.error ?? "no samples"}` };
  }

  // Cold starts, after the rounds so KV holds what Meridian learned (as it would in production).
  for (const t of active) if (T[t].instance?.child && T[t].restartable) await stopProcess(T[t].instance.child);
  const restartable = active.filter((t) => T[t].restartable);
  const samples = Object.fromEntries(restartable.map((t) => [t, []]));
  const coldCpu0 = cpuSnapshot();
  if (restartable.length) say(`cold starts: ${S.cold_restarts} restarts of ${restartable.join(", ")}`);
  for (let i = 0; i < S.cold_restarts; i++) {
    for (const t of restartable) {
      try {
        const inst = await startInstance(T[t], tmp);
        samples[t].push(inst.cold);
        await stopProcess(inst.child);
      } catch (e) {
        samples[t].push({ error: e.message.split("\n")[0] });
      }
    }
  }
  const coldForeign = restartable.length ? foreignCpuShare(coldCpu0, cpuSnapshot(), machine.nproc) : null;
  for (const t of restartable) {
    const xs = samples[t].filter((x) => !x.error);
    cold[t] = xs.length
      ? {
          status: "ok",
          n: xs.length,
          listening: median(xs.map((x) => x.listening)),
          first_request: median(xs.map((x) => x.first_request)),
          start_to_first_response: median(xs.map((x) => x.start_to_first_response)),
          samples: samples[t],
        }
      : { status: `not run: ${samples[t][0]?.error ?? "no restarts"}`, samples: samples[t] };
  }
  for (const t of S.targets) if (t !== "direct" && !cold[t]) cold[t] = { status: T[t]?.status ?? "not run" };
  for (const t of S.targets) if (T[t]?.instance?.child) await stopProcess(T[t].instance.child);

  const kvStats = await request(`${kv.url}/_bench/stats`).then((r) => JSON.parse(r.body)).catch(() => null);
  await stopProcess(kv.child);
  mock.child.stdin.end();
  await stopProcess(mock.child);

  const summary = summarise(rounds, T, cold, bundles, cacheSummary);
  if (T.portkey?.status === "ok" && T.portkey.bundle) {
    notes.push("portkey: @portkey-ai/gateway on npm ships only a Node build; the worker is rebuilt from it (bench/portkey/build.mjs): the bundle minus its Node bootstrap, `export default app`, Node-only packages stubbed, `wrangler deploy --dry-run --minify` with nodejs_compat. Its stream reader waits 25 ms before passing on the first event, by design, so the events that arrive meanwhile go out merged.");
  }
  if (kvStats && T.meridian) notes.push(`MERIDIAN_KV during the run: ${kvStats.get} gets (${kvStats.hit} hits), ${kvStats.put} puts, ${kvStats.keys} keys (an in-memory workerd service on loopback; production KV is remote and slower)`);
  const foreign = rounds.map((r) => r.foreign_cpu).filter((x) => x !== null);
  if (foreign.length) {
    const worst = Math.max(...foreign);
    notes.push(`other processes used ${foreign.map((x) => `${(100 * x).toFixed(0)}%`).join(", ")} of the machine's CPU during rounds ${foreign.map((_, i) => i + 1).join(", ")}` +
      (coldForeign !== null ? `, and ${(100 * coldForeign).toFixed(0)}% during the cold starts` : "") +
      (Math.max(worst, coldForeign ?? 0) > 0.05 ? ": the machine was not quiet; rerun before trusting small differences" : " (quiet)"));
  }
  notes.push(`every worker gets request.cf from the ${CF_BLOB_HEADER} header (colo IAD) as Cloudflare's edge would fill it; wrk, the workers, the mock and the stream client share the ${machine.nproc} cores, so c=32 numbers are CPU-bound for everyone`);
  const result = {
    version: 1,
    started_at: startedAt.toISOString(),
    duration_s: (performance.now() - t0) / 1000,
    machine: { ...machine, loadavg_end: os.loadavg().map((x) => x.toFixed(2)).join(" ") },
    settings: S,
    targets: Object.fromEntries(S.targets.map((t) => [t, { status: T[t]?.status ?? "not run", mode: T[t]?.mode ?? t }])),
    rounds,
    summary,
    goals: [],
    notes,
  };
  result.goals = goals(summary, T, rounds);
  mkdirSync(OUT, { recursive: true });
  const tidy = (_, v) => (typeof v === "number" && !Number.isInteger(v) ? round(v, 4) : v);
  writeFileSync(path.join(OUT, "results.json"), JSON.stringify(result, tidy, 2) + "\n");
  writeFileSync(path.join(OUT, "results.md"), renderMarkdown(result));
  console.log(renderText(result));
  console.log(`\nwrote bench/out/results.json and bench/out/results.md`);
  if (process.env.BENCH_KEEP) say(`kept ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(`bench: error: ${e.stack ?? e}`);
  process.exit(1);
});
