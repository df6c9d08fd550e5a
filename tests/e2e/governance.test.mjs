// Governance: what each answer cost, for every provider kind, in both dialects, streamed and not. The cost Meridian
// reports must be the mock's counts times the configured prices, each kind of token at its own rate; a cache HIT
// costs $0 and says what it saved.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { startAllKinds, KINDS, DEMO_KEY, DEMO_KEY_SHA256, readEvents } from "./harness.mjs";

const sha = (s) => createHash("sha256").update(s).digest("hex");
const ADMIN_KEY = "admin-e2e-key";
// Two more gateway keys; `small` has a daily budget that a few dozen requests spend.
const KEYS = { demo: DEMO_KEY, "team-a": "team-a-key", "team-b": "team-b-key" };
const SMALL_KEY = "small-budget-key";
const SMALL_BUDGET_USD = 0.02;

// Distinct prices per kind, so that a deployment priced at another's rates shows.
const PRICES = Object.fromEntries(
  KINDS.map((k, i) => [k, { input: 1 + i, output: 10 + 2 * i, cached_input: 0.25 + i / 10, cache_write: 1.5 + i }]),
);
const DEPLOYMENTS = {
  openai: { provider: "mock-openai", model: "gpt-4o-mini", region: "us-east-1" },
  azure: { provider: "mock-azure", model: "gpt-4o-deploy", region: "eastus" },
  anthropic: { provider: "mock-anthropic", model: "claude-sonnet-4-5", region: "us-east-1" },
  bedrock: { provider: "mock-bedrock", model: "anthropic.claude-3-haiku-20240307-v1:0", region: "us-east-1" },
  gemini: { provider: "mock-gemini", model: "gemini-2.5-flash", region: "us-central1" },
};
let mock, worker;

before(async () => {
  const models = Object.fromEntries(KINDS.map((k) => [k, { deployments: [{ ...DEPLOYMENTS[k], price: PRICES[k] }] }]));
  models.cached = { deployments: [{ ...DEPLOYMENTS.openai, price: PRICES.openai }], cache: { ttl_s: 600 } };
  const keys = [
    { name: "demo", sha256: DEMO_KEY_SHA256 },
    { name: "team-a", sha256: sha(KEYS["team-a"]) },
    { name: "team-b", sha256: sha(KEYS["team-b"]) },
    { name: "small", sha256: sha(SMALL_KEY), budget: { usd_per_day: SMALL_BUDGET_USD } },
  ];
  ({ mock, worker } = await startAllKinds(
    models,
    { keys, admin_keys: [{ name: "ops", sha256: sha(ADMIN_KEY) }] },
    { kv: true, ledger: true },
  ));
});

after(async () => {
  await worker?.stop();
  await mock?.stop();
});

/** The cost of a record's usage at `p`, USD. */
function priced(u, p) {
  const input = u.input ?? 0;
  const read = u.cached_input ?? 0;
  const write = u.cache_write ?? 0;
  return ((input - read - write) * p.input + read * p.cached_input + write * p.cache_write + (u.output ?? 0) * p.output) / 1e6;
}

// A system block marked for prompt caching (the mock's cache accounts marked prefixes as Anthropic does).
const SHARED = "a long shared document about edge routing ".repeat(20);

function request(dialect, model, stream, key = DEMO_KEY) {
  if (dialect === "openai") {
    return fetch(`${worker.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({
        model,
        stream,
        ...(stream ? { stream_options: { include_usage: true } } : {}),
        max_tokens: 100,
        messages: [{ role: "user", content: "what does it cost" }],
      }),
    });
  }
  return fetch(`${worker.url}/v1/messages`, {
    method: "POST",
    headers: { "x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json" },
    body: JSON.stringify({
      model,
      stream,
      max_tokens: 100,
      system: [{ type: "text", text: SHARED, cache_control: { type: "ephemeral" } }],
      messages: [{ role: "user", content: "what does it cost" }],
    }),
  });
}

/** The `cost` of a stream's final usage. */
function streamCost(dialect, events) {
  for (const e of [...events].reverse()) {
    let v;
    try {
      v = JSON.parse(e.data);
    } catch {
      continue;
    }
    if (dialect === "openai" && v.usage) return v.usage.cost;
    if (dialect === "anthropic" && v.type === "message_delta") return v.usage.cost;
  }
  throw new Error(`no final usage in ${JSON.stringify(events)}`);
}

test("every kind, both dialects, streamed and not: the cost is the mock's counts at the configured prices", async () => {
  let cachedRateSeen = 0;
  const lines = [];
  for (const kind of KINDS) {
    for (const dialect of ["openai", "anthropic"]) {
      // Twice each in Anthropic's dialect: the second reads the marked prefix from the provider's cache.
      for (const stream of [false, true, false]) {
        const skip = worker.records().length;
        const r = await request(dialect, kind, stream);
        assert.equal(r.status, 200, `${kind} ${dialect} ${stream}: ${await r.clone().text()}`);
        let reported;
        if (stream) {
          assert.equal(r.headers.get("x-meridian-cost-usd"), null);
          reported = streamCost(dialect, (await readEvents(r)).events);
        } else {
          await r.arrayBuffer();
          reported = Number(r.headers.get("x-meridian-cost-usd"));
        }
        const [rec] = await worker.recordsAfter(skip, 1);
        const want = priced(rec.usage, PRICES[kind]);
        assert.ok(want > 0, `${kind}: counted ${JSON.stringify(rec.usage)}`);
        assert.ok(Math.abs(reported - want) < 1e-8, `${kind} ${dialect} stream=${stream}: reported ${reported}, want ${want}`);
        assert.ok(Math.abs(rec.cost_usd - want) < 1e-12, `${kind}: the record's ${rec.cost_usd}`);
        if (rec.usage.cached_input) cachedRateSeen += 1;
        lines.push(`${kind}/${dialect}/${stream ? "stream" : "whole"} ${JSON.stringify(rec.usage)} $${reported}`);
      }
    }
  }
  process.stderr.write(`costs:\n  ${lines.join("\n  ")}\n`);
  assert.ok(cachedRateSeen >= 2, "cached input was priced at the cached rate for the kinds that report it");
});

test("a cache HIT costs $0 and says what it saved; an unknown deployment is unpriced, never $0", async () => {
  const body = { model: "cached", temperature: 0, messages: [{ role: "user", content: "cache me" }] };
  const post = () =>
    fetch(`${worker.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${DEMO_KEY}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const first = await post();
  await first.arrayBuffer();
  assert.equal(first.headers.get("x-meridian-cache"), "MISS");
  const paid = Number(first.headers.get("x-meridian-cost-usd"));
  assert.ok(paid > 0);
  let hit;
  for (let i = 0; i < 50; i++) {
    hit = await post();
    await hit.arrayBuffer();
    if (hit.headers.get("x-meridian-cache") === "HIT") break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(hit.headers.get("x-meridian-cache"), "HIT");
  assert.equal(hit.headers.get("x-meridian-cost-usd"), "0");
  assert.equal(Number(hit.headers.get("x-meridian-cost-saved-usd")), paid);

  // `provider/model` addressing of a model the built-in table does not know.
  const r = await fetch(`${worker.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${DEMO_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "mock-openai/some-unlisted-model", messages: [{ role: "user", content: "hi" }] }),
  });
  await r.arrayBuffer();
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("x-meridian-cost-usd"), "unpriced");
});

/** What one answer cost, as Meridian reported it to the client. */
async function reportedCost(r, dialect, stream) {
  if (stream) return streamCost(dialect, (await readEvents(r)).events);
  await r.arrayBuffer();
  return Number(r.headers.get("x-meridian-cost-usd"));
}

async function spendReport(query = "", key = ADMIN_KEY) {
  const r = await fetch(`${worker.url}/_meridian/spend${query}`, { headers: { authorization: `Bearer ${key}` } });
  return { status: r.status, body: await r.json() };
}

/** Waits until the ledger shows `n` requests for `key` (entries are written in batches after the responses). */
async function ledgerTotal(key, n) {
  const end = Date.now() + 10_000;
  for (;;) {
    const { body } = await spendReport(`?key=${key}`);
    const total = body.keys[0].total;
    if (total.requests >= n || Date.now() > end) return total;
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("the ledger's sums equal the per-request costs of 200 mixed requests through three keys", async () => {
  // What earlier tests spent is written within a second (entries are batched per isolate and key).
  await new Promise((r) => setTimeout(r, 1500));
  const spentBefore = {};
  for (const k of Object.keys(KEYS)) spentBefore[k] = await ledgerTotal(k, 0);
  const sums = Object.fromEntries(Object.keys(KEYS).map((k) => [k, { requests: 0, cost: 0 }]));
  let seed = 7;
  const pick = (xs) => xs[(seed = (seed * 1103515245 + 12345) % 2147483648) % xs.length];
  for (let batch = 0; batch < 20; batch++) {
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        const [key, kind, dialect, stream] = [pick(Object.keys(KEYS)), pick(KINDS), pick(["openai", "anthropic"]), pick([false, true])];
        const r = await request(dialect, kind, stream, KEYS[key]);
        assert.equal(r.status, 200);
        const cost = await reportedCost(r, dialect, stream);
        sums[key].cost += cost;
        sums[key].requests += 1;
      }),
    );
  }
  const lines = [];
  for (const k of Object.keys(KEYS)) {
    const total = await ledgerTotal(k, spentBefore[k].requests + sums[k].requests);
    const cost = total.cost_usd - spentBefore[k].cost_usd;
    lines.push(`${k}: ${sums[k].requests} requests, reported $${sums[k].cost.toFixed(8)}, ledger $${cost.toFixed(8)}`);
    assert.equal(total.requests - spentBefore[k].requests, sums[k].requests, k);
    // Each reported cost is rounded to 1e-8 USD.
    assert.ok(Math.abs(cost - sums[k].cost) <= 1e-8 * sums[k].requests + 1e-12, lines.at(-1));
  }
  process.stderr.write(`ledger vs reported:\n  ${lines.join("\n  ")}\n`);
  const { status, body } = await spendReport("", DEMO_KEY);
  assert.equal(status, 403, "a gateway key cannot read the ledger");
  assert.equal(body.error.code, "admin_key_required");
});

test("50 concurrent requests against a small daily budget: 429 budget_exceeded in both dialects, overshoot within the bound", async () => {
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) => {
      const dialect = i % 2 ? "anthropic" : "openai";
      return request(dialect, "anthropic", false, SMALL_KEY).then(async (r) => ({ dialect, r, body: await r.text() }));
    }),
  );
  const ok = results.filter((x) => x.r.status === 200);
  const refused = results.filter((x) => x.r.status === 429);
  assert.equal(ok.length + refused.length, 50, results.map((x) => x.r.status).join(","));
  const reported = ok.reduce((s, x) => s + Number(x.r.headers.get("x-meridian-cost-usd")), 0);
  const total = await ledgerTotal("small", ok.length);
  // Every request sets max_tokens and a text prompt: its reservation covers what it can cost, so the bound is 0.
  process.stderr.write(
    `budget $${SMALL_BUDGET_USD}: ${ok.length} of 50 admitted, reported $${reported.toFixed(6)}, ledger $${total.cost_usd.toFixed(6)}, overshoot $${Math.max(0, total.cost_usd - SMALL_BUDGET_USD).toFixed(6)}\n`,
  );
  assert.ok(total.cost_usd <= SMALL_BUDGET_USD + 1e-9, `spent ${total.cost_usd}`);
  assert.ok(ok.length >= 1 && refused.length >= 1);
  for (const dialect of ["openai", "anthropic"]) {
    const x = refused.find((y) => y.dialect === dialect);
    assert.ok(x, `a refusal in the ${dialect} dialect`);
    const body = JSON.parse(x.body);
    if (dialect === "openai") assert.equal(body.error.code, "budget_exceeded");
    else assert.equal(body.error.type, "rate_limit_error");
    assert.ok(Number(x.r.headers.get("retry-after")) >= 1);
    assert.match(x.body, /resets in \d+ s/);
  }
});
