// The edge cache through the compiled worker with local KV: hits cost no provider call, keys ignore JSON order
// and dialect, streams are recorded and replayed in either mode, failures are never cached, tenants are
// isolated, and concurrent identical requests share one provider call.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { startMock, startWorker, DEMO_KEY, DEMO_KEY_SHA256, readEvents } from "./harness.mjs";

let mock, worker;
let n = 0;
/** A prompt no other test uses, so entries never leak between tests. */
const fresh = (label) => `cache ${label} ${++n} ${Date.now()}`;
const OTHER_KEY = "tenant-b-key";

before(async () => {
  mock = await startMock({ up: {} });
  worker = await startWorker(
    {
      keys: [
        { name: "demo", sha256: DEMO_KEY_SHA256 },
        { name: "tenant-b", sha256: createHash("sha256").update(OTHER_KEY).digest("hex") },
      ],
      providers: { up: { kind: "openai", base_url: `${mock.regions.up}/v1` } },
      models: {
        cached: { cache: { ttl_s: 600 }, deployments: [{ provider: "up", model: "mock-1", region: "us-east-1" }] },
        sampled: {
          cache: { ttl_s: 600, nonzero_temperature: true },
          deployments: [{ provider: "up", model: "mock-2", region: "us-east-1" }],
        },
      },
    },
    {},
    { kv: true },
  );
});

after(async () => {
  await worker?.stop();
  await mock?.stop();
});

async function openai(body, { key = DEMO_KEY, headers = {}, raw = false } = {}) {
  const r = await fetch(`${worker.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  if (raw) return r;
  return { r, status: r.headers.get("x-meridian-cache"), ...(await read(r)) };
}

async function anthropic(body, { stream = false } = {}) {
  const r = await fetch(`${worker.url}/v1/messages`, {
    method: "POST",
    headers: { "x-api-key": DEMO_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json" },
    body: JSON.stringify({ ...body, stream }),
  });
  return { r, status: r.headers.get("x-meridian-cache"), ...(await read(r)) };
}

/** Text and usage of an answer in any dialect and mode. */
async function read(r) {
  assert.equal(r.status, 200, await r.clone().text());
  if (!(r.headers.get("content-type") ?? "").includes("event-stream")) {
    const b = await r.json();
    if (b.choices) return { text: b.choices[0].message.content, out: b.usage.completion_tokens };
    return { text: b.content.map((c) => c.text ?? "").join(""), out: b.usage.output_tokens };
  }
  const { events } = await readEvents(r);
  let text = "";
  let out;
  for (const e of events) {
    if (e.data === "[DONE]") continue;
    const d = JSON.parse(e.data);
    text += d.choices?.[0]?.delta?.content ?? d.delta?.text ?? "";
    out = d.usage?.completion_tokens ?? d.usage?.output_tokens ?? out;
  }
  return { text, out };
}

const upstream = () => mock.requests("up");
const ask = (content, extra = {}) => ({ model: "cached", temperature: 0, messages: [{ role: "user", content }], ...extra });

test("a cached answer is written to KV with its TTL metadata", async () => {
  const first = await openai(ask(fresh("kv")));
  assert.equal(first.status, "MISS");
  const kv = await worker.mf.getKVNamespace("MERIDIAN_KV");
  let keys = [];
  for (let i = 0; i < 50 && keys.length === 0; i++) {
    // The write finishes after the response (waitUntil).
    await new Promise((resolve) => setTimeout(resolve, 20));
    keys = (await kv.list({ prefix: "cache/" })).keys.filter((k) => k.metadata?.deployment === "up/mock-1");
  }
  assert.ok(keys.length >= 1, "no cache entry in KV");
  const entry = keys.find((k) => k.metadata.usage?.length === 2) ?? keys[0];
  assert.equal(typeof entry.metadata.created_ms, "number");
  assert.ok(entry.expiration > Date.now() / 1000 + 500, "the entry carries its ttl_s (600 s)");
  const stored = JSON.parse(await kv.get(entry.name));
  assert.equal(stored.v, 1);
});

test("a repeat is a HIT with no provider call, even with reordered JSON keys", async () => {
  const prompt = fresh("repeat");
  const calls = await upstream();
  const miss = await openai(ask(prompt));
  assert.equal(miss.status, "MISS");
  assert.equal(miss.text, `Echo: ${prompt}`);
  const hit = await openai(ask(prompt));
  assert.equal(hit.status, "HIT");
  assert.equal(hit.text, miss.text);
  assert.equal(hit.out, miss.out, "usage is reported on a hit");
  assert.ok(Number(hit.r.headers.get("x-meridian-cache-saved-tokens")) > 0);
  assert.ok(hit.r.headers.get("age") !== null);
  const reordered = `{"temperature":0.0, "messages":[{"content":${JSON.stringify(prompt)},"role":"user"}], "model":"cached", "user":"someone"}`;
  const hit2 = await openai(reordered);
  assert.equal(hit2.status, "HIT");
  assert.equal(await upstream(), calls + 1, "one provider call for three requests");
});

test("streamed MISS then non-streamed HIT, the reverse, and across dialects: same content", async () => {
  const a = fresh("stream-first");
  const s = await openai(ask(a, { stream: true, max_tokens: 50 }));
  assert.equal(s.status, "MISS");
  const j = await openai(ask(a, { max_tokens: 50 }));
  assert.equal(j.status, "HIT");
  assert.equal(j.text, s.text);
  const msg = await anthropic({ model: "cached", max_tokens: 50, temperature: 0, messages: [{ role: "user", content: a }] });
  assert.equal(msg.status, "HIT", "the same request in the Anthropic dialect hits");
  assert.equal(msg.text, s.text);
  const msgStream = await anthropic(
    { model: "cached", max_tokens: 50, temperature: 0, messages: [{ role: "user", content: a }] },
    { stream: true },
  );
  assert.equal(msgStream.status, "HIT");
  assert.equal(msgStream.text, s.text);
  assert.equal(msgStream.out, j.out, "usage reported in the replayed stream");

  const b = fresh("json-first");
  const calls = await upstream();
  const first = await anthropic({ model: "cached", max_tokens: 50, temperature: 0, messages: [{ role: "user", content: b }] });
  assert.equal(first.status, "MISS");
  const streamed = await openai(ask(b, { stream: true, max_tokens: 50, stream_options: { include_usage: true } }));
  assert.equal(streamed.status, "HIT");
  assert.equal(streamed.text, first.text);
  assert.equal(streamed.out, first.out);
  assert.equal(await upstream(), calls + 1);
});

test("errors, cut streams and disconnected clients leave nothing cached", async () => {
  // Upstream error.
  const p1 = fresh("error");
  await mock.set("up", { fail_next: 1, status: 500 });
  const e = await openai(ask(p1), { raw: true });
  assert.equal(e.status, 502);
  await e.text();
  assert.equal((await openai(ask(p1))).status, "MISS");

  // A stream cut mid-way.
  const p2 = fresh("cut");
  await mock.set("up", { cut_after: 2 });
  const cut = await openai(ask(p2, { stream: true }), { raw: true });
  await readEvents(cut);
  await mock.set("up", { cut_after: null });
  assert.equal((await openai(ask(p2))).status, "MISS", "a truncated stream was not cached");

  // A client that disconnects mid-stream.
  const p3 = fresh("disconnect");
  await mock.set("up", { token_gap_ms: 150 });
  const ctl = new AbortController();
  const r = await openai(ask(p3, { stream: true }), { raw: true, headers: {} });
  const reader = r.body.getReader();
  await reader.read();
  await reader.cancel();
  ctl.abort();
  await new Promise((res) => setTimeout(res, 800));
  await mock.set("up", { token_gap_ms: null });
  assert.equal((await openai(ask(p3))).status, "MISS", "a cancelled stream was not cached");
});

test("tenants never see each other's entries", async () => {
  const p = fresh("tenant");
  assert.equal((await openai(ask(p))).status, "MISS");
  assert.equal((await openai(ask(p))).status, "HIT");
  const other = await openai(ask(p), { key: OTHER_KEY });
  assert.equal(other.status, "MISS", "tenant B must not read tenant A's entry");
  // A per-request namespace narrows the scope within a tenant.
  const ns = await openai(ask(p), { headers: { "x-meridian-cache-namespace": "experiment-1" } });
  assert.equal(ns.status, "MISS");
});

test("controls: no-cache, no-store, sampled temperature", async () => {
  const p = fresh("controls");
  assert.equal((await openai(ask(p), { headers: { "cache-control": "no-store" } })).status, "MISS");
  assert.equal((await openai(ask(p))).status, "MISS", "no-store wrote nothing");
  assert.equal((await openai(ask(p))).status, "HIT");
  assert.equal((await openai(ask(p), { headers: { "cache-control": "no-cache" } })).status, "MISS", "no-cache skips the read");
  const sampled = await openai({ model: "cached", messages: [{ role: "user", content: p }], temperature: 0.7 });
  assert.equal(sampled.status, "BYPASS", "sampled answers are not cached unless configured");
  const q = fresh("sampled");
  const body = { model: "sampled", messages: [{ role: "user", content: q }] };
  assert.equal((await openai(body)).status, "MISS");
  assert.equal((await openai(body)).status, "HIT");
});

test("20 concurrent identical requests cause exactly one provider call", async () => {
  const p = fresh("stampede");
  await mock.set("up", { ttft_ms: 300, token_gap_ms: 20 });
  const calls = await upstream();
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) => openai(ask(p, i % 2 === 0 ? { stream: true } : {}))),
  );
  await mock.set("up", { ttft_ms: null, token_gap_ms: null });
  assert.equal(await upstream(), calls + 1, "exactly one upstream call");
  const statuses = results.map((x) => x.status).sort();
  assert.equal(statuses.filter((s) => s === "MISS").length, 1, statuses.join(","));
  for (const x of results) assert.equal(x.text, `Echo: ${p}`);
});
