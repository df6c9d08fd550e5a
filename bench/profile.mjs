#!/usr/bin/env node
// `make profile`: where a Meridian request spends its CPU. Serves the current build/ exactly as `make bench` does
// (wrangler dry-run upload, workerd serve, KV binding) with workerd's inspector on, drives it with wrk against the
// mock provider, records a V8 CPU profile over the inspector protocol, and prints self time per function and per
// layer (our wasm, the wasm-bindgen glue, workerd built-ins, garbage collection, idle).
// Function names inside the wasm need a build that keeps them: `MERIDIAN_KEEP_NAMES=1 make build` (make profile does).
// PROFILE_COLD=1 profiles only the first request of the fresh process (cold start).
// PROFILE_OFF=1 only measures (wrk, no profiler): a quick A/B of two builds or two workers.
// PROFILE_HEAP=1 samples allocations instead of CPU (V8's sampling heap profiler, garbage included): bytes of JS heap
// allocated per request by function. What a request allocates decides how often the isolate stops for garbage
// collection, and a full collection pauses every request and stream of the isolate for tens of milliseconds.
// PROFILE_HEAP_LIVE=1 with it keeps only what was still uncollected when sampling stopped.
// Environment: PROFILE_SECONDS (5), PROFILE_CONNECTIONS (1), PROFILE_TOP (40), PROFILE_STREAM=1 profiles streaming
// requests, PROFILE_OUT (bench/out/meridian.cpuprofile, loadable in Chrome DevTools).
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";

import { freePort, logTail, request, startProcess, stopProcess, waitForPort } from "./lib/proc.mjs";
import { CF_BLOB, CF_BLOB_HEADER, dryRunBundle, workerdBinary, writeWorkerdConfig } from "./lib/workerd.mjs";
import { runWrk, writeWrkScript } from "./lib/wrk.mjs";
import { floorBundle, meridianConfig, startMock } from "./lib/setup.mjs";

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, "..");
const env = (k, d) => (process.env[k] ? Number(process.env[k]) : d);
const SECONDS = env("PROFILE_SECONDS", 5);
const CONNECTIONS = env("PROFILE_CONNECTIONS", 1);
const TOP = env("PROFILE_TOP", 40);
const STREAM = process.env.PROFILE_STREAM === "1";
const HEAP = process.env.PROFILE_HEAP === "1";
const HEAP_LIVE = process.env.PROFILE_HEAP_LIVE === "1";
// PROFILE_TARGET=js-floor profiles the JavaScript pass-through instead, the same way: the baseline to compare with.
// PROFILE_WORKER=<file.mjs> swaps in another single-module worker for the floor (it gets the same UPSTREAM binding).
const TARGET = process.env.PROFILE_TARGET || "meridian";
const FLOOR_FILE = process.env.PROFILE_WORKER ? path.resolve(process.env.PROFILE_WORKER) : path.join(BENCH, "workers/js-floor.mjs");
const OUT = process.env.PROFILE_OUT || path.join(BENCH, `out/${TARGET}.cpuprofile`);

/** A minimal Chrome DevTools Protocol client over the inspector's WebSocket. */
async function inspector(port) {
  let targets;
  for (let i = 0; i < 100; i++) {
    try {
      targets = JSON.parse((await request(`http://127.0.0.1:${port}/json/list`)).body);
      if (targets.length) break;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!targets?.length) throw new Error("workerd's inspector lists no targets");
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve, reject) => ((ws.onopen = resolve), (ws.onerror = reject)));
  let seq = 0;
  const pending = new Map();
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.id && pending.has(msg.id)) {
      const { resolve, reject } = pending.get(msg.id);
      pending.delete(msg.id);
      msg.error ? reject(new Error(JSON.stringify(msg.error))) : resolve(msg.result);
    }
  };
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = ++seq;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  return { send, close: () => ws.close() };
}

/** Self time per node, then grouped by function and by layer. */
function summarise(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dts = profile.timeDeltas;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = dts[i + 1] ?? 0;
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + dt);
  }
  const fns = new Map();
  const layers = new Map();
  let total = 0;
  for (const [id, us] of self) {
    const n = byId.get(id);
    const f = n.callFrame;
    const name = f.functionName || "(anonymous)";
    const layer = layerOf(f);
    const key = `${layer}\t${name}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    layers.set(layer, (layers.get(layer) ?? 0) + us);
    total += us;
  }
  return { total, fns: [...fns].sort((a, b) => b[1] - a[1]), layers: [...layers].sort((a, b) => b[1] - a[1]) };
}

/** Sampled allocation bytes per allocating function (with its caller, which tells the glue's helpers apart). */
function allocations(profile) {
  const bytes = new Map();
  const walk = (node, parent) => {
    const f = node.callFrame;
    const name = `${f.functionName || "(anonymous)"} ${f.url ? path.basename(f.url) : "(built-in)"}:${f.lineNumber + 1}`;
    const key = `${name}  <- ${parent}`;
    if (node.selfSize) bytes.set(key, (bytes.get(key) ?? 0) + node.selfSize);
    for (const c of node.children ?? []) walk(c, f.functionName || "(anonymous)");
  };
  walk(profile.head, "");
  return [...bytes].sort((a, b) => b[1] - a[1]);
}

function layerOf(f) {
  const name = f.functionName;
  if (["(idle)", "(program)", "(garbage collector)", "(root)"].includes(name)) return name;
  if (f.url.startsWith("wasm://")) return "wasm";
  if (f.url.includes("entry") || f.url.includes("index.js")) return "worker JS (glue + entry)";
  if (!f.url) return "built-in";
  return f.url;
}

async function main() {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "meridian-profile-"));
  const kids = [];
  try {
    const knobs = STREAM ? { reply_words: 20, token_gap_ms: 1 } : { reply_words: 20, token_gap_ms: 0 };
    const mock = await startMock({ bin: path.join(ROOT, "target/release/meridian-mock"), tmp, knobs });
    kids.push(mock.child);
    let bundle;
    let extra = [];
    if (TARGET === "js-floor") {
      bundle = await floorBundle({ root: ROOT, dir: path.join(tmp, "floor"), file: FLOOR_FILE });
      extra = [{ name: "UPSTREAM", text: mock.url }];
    } else {
      bundle = await dryRunBundle({ root: ROOT, cwd: ROOT, outdir: path.join(tmp, "upload"), main: "worker/entry.mjs", extraArgs: ["--no-minify"] });
    }
    const cfgFile = path.join(tmp, "config.json");
    writeFileSync(cfgFile, JSON.stringify(meridianConfig(mock.url, "bench")));
    const kvPort = await freePort();
    const kvCfg = writeWorkerdConfig({ dir: path.join(tmp, "kv"), port: kvPort, bundle: { modules: [{ name: "kv.js", path: path.join(BENCH, "workers/kv.mjs"), type: "esModule" }] } });
    const kv = startProcess(workerdBinary(ROOT), ["serve", kvCfg], { log: path.join(tmp, "kv.log") });
    kids.push(kv);
    await waitForPort(kvPort, { child: kv, what: "kv" });
    const port = await freePort();
    const inspPort = await freePort();
    const cfg = writeWorkerdConfig({
      dir: path.join(tmp, "meridian"),
      port,
      bundle,
      bindings: TARGET === "js-floor" ? extra : [
        { name: "MERIDIAN_CONFIG", jsonFile: cfgFile },
        { name: "MERIDIAN_KV", kvService: `127.0.0.1:${kvPort}` },
        { name: "MERIDIAN_LIMITER", durableObjectClass: "RateLimiter" },
      ],
    });
    const log = path.join(tmp, "meridian.log");
    const w = startProcess(workerdBinary(ROOT), ["serve", cfg, `--inspector-addr=127.0.0.1:${inspPort}`], { log });
    kids.push(w);
    await waitForPort(port, { child: w, what: "meridian" });
    const headers = { "content-type": "application/json", authorization: "Bearer bench", [CF_BLOB_HEADER]: CF_BLOB };
    const body = JSON.stringify({ model: "bench", ...(STREAM ? { stream: true } : {}), messages: [{ role: "user", content: "hi" }] });
    const url = `http://127.0.0.1:${port}/v1/chat/completions`;
    if (process.env.PROFILE_COLD === "1") {
      // The first request of a fresh process, profiled alone (sampling every 20 µs).
      const cdp = await inspector(inspPort);
      await cdp.send("Profiler.enable");
      await cdp.send("Profiler.setSamplingInterval", { interval: 20 });
      await cdp.send("Profiler.start");
      const t0 = performance.now();
      const first = await request(url, { method: "POST", headers, body });
      const ms = performance.now() - t0;
      const { profile } = await cdp.send("Profiler.stop");
      cdp.close();
      if (first.status !== 200) throw new Error(`first request: ${first.status} ${first.body}\n${logTail(log)}`);
      mkdirSync(path.dirname(OUT), { recursive: true });
      writeFileSync(OUT, JSON.stringify(profile));
      const s = summarise(profile);
      console.log(`first request after start: ${ms.toFixed(1)} ms (profiler on)`);
      for (const [l, us] of s.layers) console.log(`  ${(us / 1000).toFixed(2).padStart(8)} ms  ${l}`);
      console.log(`top ${TOP} functions by self time (ms)`);
      for (const [k, us] of s.fns.slice(0, TOP)) console.log(`  ${(us / 1000).toFixed(2).padStart(8)}  ${k.replace("\t", "  ")}`);
      return;
    }
    const first = await request(url, { method: "POST", headers, body });
    if (first.status !== 200) throw new Error(`first request: ${first.status} ${first.body}\n${logTail(log)}`);
    const script = writeWrkScript(path.join(tmp, "post.lua"), { body, headers });
    await runWrk({ url, script, threads: 1, connections: CONNECTIONS, seconds: 2 });
    if (process.env.PROFILE_OFF === "1") {
      const load = await runWrk({ url, script, threads: CONNECTIONS > 1 ? 2 : 1, connections: CONNECTIONS, seconds: SECONDS });
      console.log(`${TARGET}: ${load.requests} requests in ${SECONDS} s at c=${CONNECTIONS}, ${load.rps.toFixed(0)} req/s, p50 ${load.p50.toFixed(3)} ms (no profiler)`);
      return;
    }
    // CPU samples every 50 µs, or (PROFILE_HEAP=1) allocations every 256 bytes, over the same load.
    const cdp = await inspector(inspPort);
    if (HEAP) {
      await cdp.send("HeapProfiler.enable");
      await cdp.send("HeapProfiler.startSampling", { samplingInterval: 256, includeObjectsCollectedByMajorGC: !HEAP_LIVE, includeObjectsCollectedByMinorGC: !HEAP_LIVE });
    } else {
      await cdp.send("Profiler.enable");
      await cdp.send("Profiler.setSamplingInterval", { interval: 50 });
      await cdp.send("Profiler.start");
    }
    const load = await runWrk({ url, script, threads: 1, connections: CONNECTIONS, seconds: SECONDS });
    const { profile } = await cdp.send(HEAP ? "HeapProfiler.stopSampling" : "Profiler.stop");
    cdp.close();
    const mode = `${load.requests} requests in ${SECONDS} s at c=${CONNECTIONS} (${STREAM ? "streaming" : "non-streaming"}), ${load.rps.toFixed(0)} req/s`;
    if (HEAP) {
      const rows = allocations(profile);
      const total = rows.reduce((a, [, b]) => a + b, 0);
      const perReq = (b) => (b / load.requests).toFixed(0);
      console.log(mode);
      console.log(`JS heap allocated: ${perReq(total)} bytes per request (sampled every 256 bytes, ${HEAP_LIVE ? "only what was still uncollected at the end" : "collected objects included"})`);
      console.log(`\ntop ${TOP} allocating functions (bytes per request)`);
      for (const [k, b] of rows.slice(0, TOP)) console.log(`  ${perReq(b).padStart(8)}  ${((100 * b) / total).toFixed(1).padStart(5)}%  ${k.slice(0, 140)}`);
      return;
    }
    mkdirSync(path.dirname(OUT), { recursive: true });
    writeFileSync(OUT, JSON.stringify(profile));
    const s = summarise(profile);
    const busy = s.total - (s.layers.find(([l]) => l === "(idle)")?.[1] ?? 0);
    const perReq = (us) => (us / load.requests).toFixed(1);
    console.log(`${mode}, p50 ${load.p50.toFixed(3)} ms`);
    console.log(`isolate CPU (not idle): ${(busy / 1000).toFixed(0)} ms = ${perReq(busy)} µs per request (the worker thread only; workerd's HTTP/IO threads are not sampled)`);
    console.log(`\nby layer (µs per request, share of busy time)`);
    for (const [l, us] of s.layers) if (l !== "(idle)") console.log(`  ${perReq(us).padStart(8)}  ${((100 * us) / busy).toFixed(1).padStart(5)}%  ${l}`);
    console.log(`\ntop ${TOP} functions by self time (µs per request)`);
    for (const [k, us] of s.fns.filter(([k]) => !k.startsWith("(idle)")).slice(0, TOP)) {
      const [layer, name] = k.split("\t");
      console.log(`  ${perReq(us).padStart(8)}  ${((100 * us) / busy).toFixed(1).padStart(5)}%  ${layer.padEnd(18)} ${name.slice(0, 110)}`);
    }
    console.log(`\nwrote ${path.relative(process.cwd(), OUT)} (open in Chrome DevTools → Performance)`);
  } finally {
    for (const k of kids.reverse()) await stopProcess(k);
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`profile: error: ${e.stack || e.message}`);
  process.exit(1);
});
