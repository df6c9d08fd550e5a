// `make bench-memory`: what a stalled stream costs the isolate. N raw-socket clients ask for a long stream the mock
// sends with no gap (`reply_words`, `token_gap_ms: 0`), read the response headers and stop reading; after a few
// seconds the growth of the workerd process (RSS) is divided by N. RSS also counts the heap V8 grew for the garbage
// of the bytes that went through JavaScript before the streams stalled, so the isolate's live heap is read too,
// after a full garbage collection forced through the inspector (a heap snapshot), before and with the stalled
// clients: what the streams themselves hold. Two waves: the second shows whether the first wave's memory is reused
// once its clients are gone. Three targets in the same runtime (Miniflare's workerd), one after another: the
// JavaScript pass-through floor (`new Response(upstream.body)`: the bytes never enter JavaScript), a JavaScript relay
// that reads what it forwards through a `ReadableStream` (highWaterMark 0), and Meridian (also reporting its
// WebAssembly memory, from `/_meridian/status`). RSS counts this process's workerd children: one target runs at a
// time. MINIFLARE_WORKERD_V8_FLAGS passes V8 flags to workerd (e.g. `--max-heap-size=32` to see the heap capped).
// Usage: node bench/stalled.mjs [clients=10] [words=60000]   (SETTLE_MS: how long the clients stall, 4000)
import net from "node:net";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { startMock, startWorker, configFor, DEMO_KEY, isolateHeapAfterGc, workerdRss } from "../tests/e2e/harness.mjs";

const N = Number(process.argv[2] ?? 10);
const WORDS = Number(process.argv[3] ?? 60000);
const SETTLE_MS = 4000;
const MiB = 1024 * 1024;
const INSPECTOR_PORT = 9339;

const FORWARD = {
  floor: "return new Response(up.body, { status: up.status, headers: up.headers });",
  relay: `const reader = up.body.getReader();
    const out = new ReadableStream({ async pull(c) { const { value, done } = await reader.read(); if (done) c.close(); else c.enqueue(value); } }, { highWaterMark: 0 });
    return new Response(out, { status: up.status, headers: up.headers });`,
};

async function start(target, upstream, regions) {
  if (target === "meridian") {
    const w = await startWorker(configFor(regions), {}, { inspectorPort: INSPECTOR_PORT });
    return { url: w.url, worker: "meridian", stop: () => w.stop() };
  }
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      modules: true,
      script: `export default { async fetch(req, env) {
        const up = await fetch(env.UPSTREAM + new URL(req.url).pathname, { method: req.method, headers: req.headers, body: req.body });
        ${FORWARD[target]}
      } }`,
      bindings: { UPSTREAM: upstream },
      compatibilityDate: "2026-11-01",
      host: "127.0.0.1",
      port: 0,
      inspectorPort: INSPECTOR_PORT,
    }),
  );
  return { url: (await mf.ready).toString().replace(/\/$/, ""), worker: "", stop: () => mf.dispose() };
}

function stalledClient(url, body) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: u.hostname, port: Number(u.port) }, () => {
      s.write(
        `POST /v1/chat/completions HTTP/1.1\r\nhost: ${u.host}\r\nauthorization: Bearer ${DEMO_KEY}\r\n` +
          `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    });
    let got = Buffer.alloc(0);
    const onData = (d) => {
      got = Buffer.concat([got, d]);
      if (got.includes("\r\n\r\n")) {
        s.pause();
        s.off("data", onData);
        resolve(s);
      }
    };
    s.on("data", onData);
    s.on("error", reject);
  });
}

async function measure(target) {
  const mock = await startMock({ long: { reply_words: WORDS, token_gap_ms: 0 } });
  const w = await start(target, mock.regions.long, mock.regions);
  const ask = (extra) =>
    fetch(`${w.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${DEMO_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "long", messages: [{ role: "user", content: "go" }], ...extra }),
    });
  // The first requests compile; they are not what is measured.
  for (let i = 0; i < 2; i++) await (await ask({ max_tokens: 5 })).arrayBuffer();
  const body = JSON.stringify({ model: "long", stream: true, messages: [{ role: "user", content: "go" }] });
  const waves = [];
  for (let wave = 0; wave < 2; wave++) {
    const idleHeap = (await isolateHeapAfterGc(INSPECTOR_PORT, w.worker)).usedSize;
    const before = workerdRss();
    const clients = [];
    for (let i = 0; i < N; i++) clients.push(await stalledClient(w.url, body));
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const grown = workerdRss() - before;
    const heap = (await isolateHeapAfterGc(INSPECTOR_PORT, w.worker)).usedSize;
    let wasm = null;
    if (target === "meridian") {
      const st = await (await fetch(`${w.url}/_meridian/status`, { headers: { authorization: `Bearer ${DEMO_KEY}` } })).json();
      wasm = st.wasm_memory_bytes;
    }
    for (const c of clients) c.destroy();
    await new Promise((r) => setTimeout(r, 2000));
    waves.push({ perClient: grown / N, heapPerClient: (heap - idleHeap) / N, wasm });
  }
  await w.stop();
  await mock.stop();
  return waves;
}

const rows = [];
for (const target of (process.env.TARGETS ?? "floor,relay,meridian").split(",")) rows.push([target, await measure(target)]);
const fmt = (b) => `${(b / MiB).toFixed(2)} MiB`;
console.log(`\n${N} stalled clients on a ${WORDS}-word stream sent with no gap, growth of workerd per client:\n`);
console.log("| target | RSS wave 1 | RSS wave 2 | live JS heap held, wave 1 / 2 (after a full GC) | WebAssembly memory after each wave |");
console.log("|---|---|---|---|---|");
const kib = (b) => `${(b / 1024).toFixed(1)} KiB`;
for (const [t, [a, b]] of rows) {
  const wasm = a.wasm == null ? "–" : `${fmt(a.wasm)} / ${fmt(b.wasm)}`;
  console.log(`| ${t} | ${fmt(a.perClient)} | ${fmt(b.perClient)} | ${kib(a.heapPerClient)} / ${kib(b.heapPerClient)} | ${wasm} |`);
}
// The targets (31), and the one this runtime allows any gateway that reads what it forwards.
const byTarget = Object.fromEntries(rows);
const { floor, relay, meridian } = byTarget;
if (floor && relay && meridian) {
  const check = (ok, what) => console.log(`${ok ? "PASS" : "MISS"}  ${what}`);
  console.log("");
  check(meridian[0].perClient <= 2 * floor[0].perClient, `RSS growth per stalled stream within 2x the floor's (${fmt(meridian[0].perClient)} vs ${fmt(floor[0].perClient)})`);
  check(meridian[0].perClient <= 2 * relay[0].perClient, `RSS growth per stalled stream within 2x the JavaScript relay's (${fmt(meridian[0].perClient)} vs ${fmt(relay[0].perClient)})`);
  check(meridian[0].heapPerClient <= 64 * 1024, `live JS heap a stalled stream holds after a full GC at most 64 KiB (${kib(meridian[0].heapPerClient)}; floor ${kib(floor[0].heapPerClient)})`);
  check(meridian[1].perClient <= meridian[0].perClient, `a second wave grows the isolate by no more than the first (${fmt(meridian[1].perClient)} vs ${fmt(meridian[0].perClient)})`);
  check(meridian[1].wasm - meridian[0].wasm <= MiB, `Meridian's WebAssembly memory does not grow with stalled streams (${fmt(meridian[0].wasm)} then ${fmt(meridian[1].wasm)})`);
}
