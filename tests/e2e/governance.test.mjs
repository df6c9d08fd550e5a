// Governance: what each answer cost, for every provider kind, in both dialects, streamed and not. The cost Meridian
// reports must be the mock's counts times the configured prices, each kind of token at its own rate; a cache HIT
// costs $0 and says what it saved.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startAllKinds, KINDS, DEMO_KEY, readEvents } from "./harness.mjs";

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
  ({ mock, worker } = await startAllKinds(models, {}, { kv: true }));
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

function request(dialect, model, stream) {
  if (dialect === "openai") {
    return fetch(`${worker.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${DEMO_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({
        model,
        stream,
        ...(stream ? { stream_options: { include_usage: true } } : {}),
        messages: [{ role: "user", content: "what does it cost" }],
      }),
    });
  }
  return fetch(`${worker.url}/v1/messages`, {
    method: "POST",
    headers: { "x-api-key": DEMO_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json" },
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
