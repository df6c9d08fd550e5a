// Latency-aware routing through the compiled worker: the mock plays regions of different speeds; traffic must
// converge on the fastest, move when it slows down or fails, come back when it recovers, never cross a
// residency boundary, and hedging must cut the tail.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startMock, startWorker, DEMO_KEY, DEMO_KEY_SHA256, readEvents } from "./harness.mjs";

let mock, worker;
const EU_KEY = "eu-only-key";

before(async () => {
  mock = await startMock({
    near: { ttft_ms: 220 },
    quick: { ttft_ms: 40 },
    far: { ttft_ms: 110 },
    tail: { ttft_ms: 40 },
    steady: { ttft_ms: 350 },
  });
  const dep = (region, tags, model = "mock-1") => ({ provider: `mock-${region}`, model, region, tags });
  const providers = {};
  for (const [name, url] of Object.entries(mock.regions)) providers[`mock-${name}`] = { kind: "openai", base_url: `${url}/v1` };
  const { createHash } = await import("node:crypto");
  const config = {
    keys: [
      { name: "demo", sha256: DEMO_KEY_SHA256 },
      { name: "eu-team", sha256: createHash("sha256").update(EU_KEY).digest("hex"), residency: ["eu"] },
    ],
    providers,
    // The caller sits next to "near"; distance alone would pick it, measurements must not.
    regions: {
      near: { lat: 50.1, lon: 8.7 },
      quick: { lat: 53.3, lon: -6.3 },
      far: { lat: 38.9, lon: -77.4 },
      tail: { lat: 50.1, lon: 8.6 },
      steady: { lat: 48.9, lon: 2.3 },
    },
    models: {
      routed: { deployments: [dep("near", ["eu"]), dep("quick", ["eu"]), dep("far", ["us"])] },
      // Each on its own deployment ids (the mock's model name), so that each learns the regions for itself: what
      // one model measured would otherwise decide the other's first choice.
      hedged: { hedge_budget: 1.0, deployments: [dep("tail", ["eu"], "mock-h"), dep("steady", ["eu"], "mock-h")] },
      unhedged: { deployments: [dep("tail", ["eu"], "mock-u"), dep("steady", ["eu"], "mock-u")] },
    },
    routing: { trust_location_header: true, exploration: 0.1 },
    timeouts: { first_byte_ms: 5000 },
  };
  worker = await startWorker(config);
});

after(async () => {
  await worker?.stop();
  await mock?.stop();
});

/** One streaming request; returns where it went, how many attempts, and the client-seen time to first token. */
async function ask(model, { key = DEMO_KEY, residency } = {}) {
  const t0 = performance.now();
  const r = await fetch(`${worker.url}/v1/chat/completions`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${key}`,
      "content-type": "application/json",
      "x-meridian-location": "50.11,8.68,FRA",
      ...(residency ? { "x-meridian-residency": residency } : {}),
    },
    body: JSON.stringify({ model, stream: true, messages: [{ role: "user", content: "route me" }] }),
  });
  if (r.status !== 200) return { status: r.status, body: await r.json() };
  const { events } = await readEvents(r);
  const first = events.find((e) => e.data !== "[DONE]" && JSON.parse(e.data).choices?.[0]?.delta?.content);
  return {
    status: 200,
    region: r.headers.get("x-meridian-region"),
    attempts: Number(r.headers.get("x-meridian-attempts")),
    colo: r.headers.get("x-meridian-colo"),
    ttft: first.t - t0,
  };
}

async function askMany(model, n, opts) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await ask(model, opts));
  return out;
}

const share = (rs, region) => rs.filter((r) => r.region === region).length / rs.length;

test("traffic converges on the fastest region, follows a slowdown, an outage, and the recovery", async () => {
  // 1. Converge: "quick" is fastest although "near" is nearest.
  const warm = await askMany("routed", 30);
  assert.ok(warm.every((r) => r.status === 200 && r.colo === "FRA"));
  assert.ok(share(warm.slice(-15), "quick") >= 0.7, `after warm-up ${JSON.stringify(warm.map((r) => r.region))}`);

  // 2. "quick" slows down for good: traffic moves to "far" (110 ms) within a few requests.
  await mock.set("quick", { ttft_ms: 600 });
  const shifted = await askMany("routed", 20);
  const firstFar = shifted.findIndex((r) => r.region === "far");
  process.stderr.write(
    `routing: ${Math.round(share(warm.slice(-15), "quick") * 100)}% of the last 15 warm-up requests to the fastest region; after it slowed, traffic moved after ${firstFar} requests\n`,
  );
  assert.ok(firstFar >= 0 && firstFar <= 6, `moved after ${firstFar} requests: ${JSON.stringify(shifted.map((r) => r.region))}`);
  assert.ok(share(shifted.slice(-10), "far") >= 0.7, `after slowdown ${JSON.stringify(shifted.map((r) => r.region))}`);

  // 3. "far", now the best, starts failing: clients never see it (failover), and it soon stops getting traffic.
  await mock.set("far", { status: 503 });
  const farBefore = await mock.requests("far");
  const outage = await askMany("routed", 20);
  assert.ok(outage.every((r) => r.status === 200), "a failing region never reaches the client");
  assert.ok(outage.some((r) => r.attempts >= 2), "some requests failed over");
  assert.ok(outage.slice(-10).every((r) => r.region !== "far"));
  assert.ok((await mock.requests("far")) - farBefore <= 5, "the circuit opened after a few failures");

  // 4. "far" recovers: after the cooldown a trial request finds it healthy and traffic returns to it.
  await mock.set("far", { status: null });
  await new Promise((r) => setTimeout(r, 2500));
  const recovered = await askMany("routed", 20);
  assert.ok(recovered.every((r) => r.status === 200));
  assert.ok(share(recovered.slice(-10), "far") >= 0.7, `after recovery ${JSON.stringify(recovered.map((r) => r.region))}`);

  const status = await (
    await fetch(`${worker.url}/_meridian/status`, {
      headers: { authorization: `Bearer ${DEMO_KEY}`, "x-meridian-location": "50.11,8.68,FRA" },
    })
  ).json();
  const routed = Object.fromEntries(status.models.routed.map((d) => [d.region, d]));
  assert.equal(status.colo, "FRA");
  assert.ok(routed.far.failures >= 1 && routed.far.health === "closed" && routed.quick.samples > 10, JSON.stringify(status));
  await mock.set("quick", { ttft_ms: 40 });
});

test("residency holds under routing, exploration and failover", async () => {
  const usBefore = await mock.requests("far");
  // By key policy and by header: only "eu" regions, even though exploration would sometimes pick "far".
  const byKey = await askMany("routed", 15, { key: EU_KEY });
  const byHeader = await askMany("routed", 15, { residency: "eu" });
  for (const r of [...byKey, ...byHeader]) {
    assert.equal(r.status, 200);
    assert.ok(["near", "quick"].includes(r.region), r.region);
  }
  // Every EU region failing: a clear 503, never a request to the US region.
  await mock.set("near", { status: 503 });
  await mock.set("quick", { status: 503 });
  const refused = await askMany("routed", 5, { key: EU_KEY });
  for (const r of refused) assert.ok(r.status >= 500, JSON.stringify(r));
  assert.equal(await mock.requests("far"), usBefore, "no request crossed the residency boundary");
  const us = await ask("routed", { key: EU_KEY, residency: "us" });
  assert.equal(us.status, 503);
  assert.equal(us.body.error.code, "residency_unsatisfiable");
  await mock.set("near", { status: null });
  await mock.set("quick", { status: null });
});

test("hedging cuts the p99 time to first token against a region with a heavy tail", async () => {
  // "tail" is fast except every 8th request, which takes 1.5 s more; "steady" always takes 350 ms.
  const measure = async (model) => {
    await mock.reset();
    await mock.set("tail", { tail_every: 8, tail_ms: 1500 });
    const rs = await askMany(model, 48);
    assert.ok(rs.every((r) => r.status === 200));
    const ttfts = rs.map((r) => r.ttft).sort((a, b) => a - b);
    return { p50: ttfts[Math.floor(ttfts.length / 2)], p99: ttfts[ttfts.length - 1], rs };
  };
  const plain = await measure("unhedged");
  const hedged = await measure("hedged");
  console.log(`TTFT unhedged p50 ${plain.p50.toFixed(0)} ms p99 ${plain.p99.toFixed(0)} ms; ` +
    `hedged p50 ${hedged.p50.toFixed(0)} ms p99 ${hedged.p99.toFixed(0)} ms`);
  assert.ok(plain.p99 >= 1400, `the tail is real without hedging: ${plain.p99}`);
  assert.ok(hedged.p99 < plain.p99 * 0.7, `hedging cut the tail: ${hedged.p99} vs ${plain.p99}`);
  assert.ok(hedged.p50 < plain.p50 + 150, "hedging does not cost the median much");
});
