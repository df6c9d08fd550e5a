// Shadows and experiments through the compiled worker against the mock: the client's bytes and time to first byte
// with a shadow at share 1 against the same request with none (two workers on the same mock), the shadow's
// provider asked (the mock's counters), agreement figures exact against the mock's deterministic answers (echo:
// identical; `reply_words`: different; a recorded-shape tool call with other arguments), the daily cap, residency,
// no-store, and a 90/10 experiment over 1000 requests from 100 users.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { startMock, startWorker, DEMO_KEY, DEMO_KEY_SHA256, readEvents } from "./harness.mjs";

const sha = (s) => createHash("sha256").update(s).digest("hex");
const ADMIN_KEY = "shadow-admin-key";
const EU_KEY = "eu-only-key";
const PRICE = { input: 1, output: 1 };
const CAP_USD = 0.0002;
// A tool call in OpenAI's documented non-streaming shape (API reference, "Create chat completion", function
// calling example), with arguments other than the mock's for the same request.
const OTHER_TOOL_CALL = JSON.stringify({
  id: "chatcmpl-other",
  object: "chat.completion",
  created: 1700000000,
  model: "mock-1",
  choices: [
    {
      index: 0,
      message: {
        role: "assistant",
        content: null,
        tool_calls: [{ id: "call_0", type: "function", function: { name: "get_weather", arguments: '{"query":"Lyon"}' } }],
      },
      finish_reason: "tool_calls",
    },
  ],
  usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 },
});

let mock, shadowed, plain;

function dep(region, tags = []) {
  return { provider: `mock-${region}`, model: "mock-1", region, tags, price: PRICE };
}

function configWith(shadows) {
  const regions = ["primary", "twin", "differ", "toolsx", "capped", "faraway", "arma", "armb"];
  const providers = Object.fromEntries(
    regions.map((r) => [`mock-${r}`, { kind: "openai", base_url: `${mock.regions[r]}/v1` }]),
  );
  const models = {
    twin: { deployments: [dep("twin")] },
    differ: { deployments: [dep("differ")] },
    toolsx: { deployments: [dep("toolsx")] },
    twin2: { deployments: [dep("capped")] },
    faraway: { deployments: [dep("faraway", ["us"])] },
    main: { deployments: [dep("primary", ["eu"])] },
    varied: { deployments: [dep("primary")] },
    tooled: { deployments: [dep("primary")] },
    capped: { deployments: [dep("primary")] },
    resident: { deployments: [dep("primary", ["eu"])] },
    armb: { deployments: [dep("armb")] },
    exp: { deployments: [dep("arma")], split: [{ model: "exp", weight: 9 }, { model: "armb", weight: 1 }] },
  };
  if (shadows) {
    const s = (model, extra = {}) => ({ model, share: 1, max_usd_per_day: 5, ...extra });
    models.main.shadow = [s("twin", { keep_samples: 3 })];
    models.varied.shadow = [s("differ")];
    models.tooled.shadow = [s("twin"), s("toolsx")];
    models.capped.shadow = [s("twin2", { max_usd_per_day: CAP_USD })];
    models.resident.shadow = [s("faraway")];
  }
  return {
    keys: [
      { name: "demo", sha256: DEMO_KEY_SHA256 },
      { name: "eu", sha256: sha(EU_KEY), residency: ["eu"] },
    ],
    admin_keys: [{ name: "ops", sha256: sha(ADMIN_KEY) }],
    providers,
    models,
    regions: Object.fromEntries(regions.map((r, i) => [r, { lat: i, lon: i }])),
  };
}

before(async () => {
  mock = await startMock({
    primary: { ttft_ms: 40, token_gap_ms: 5 },
    twin: { ttft_ms: 60, token_gap_ms: 5 },
    differ: { reply_words: 6 },
    toolsx: { raw_body: OTHER_TOOL_CALL, raw_content_type: "application/json" },
    capped: {},
    faraway: {},
    arma: {},
    armb: { ttft_ms: 20 },
  });
  shadowed = await startWorker(configWith(true), {}, { ledger: true });
  plain = await startWorker(configWith(false), {}, { ledger: true });
});

after(async () => {
  await shadowed?.stop();
  await plain?.stop();
  await mock?.stop();
});

function ask(worker, model, { stream = false, content = "hello shadow world", key = DEMO_KEY, headers = {}, extra = {} } = {}) {
  return fetch(`${worker.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
    body: JSON.stringify({ model, stream, max_tokens: 20, messages: [{ role: "user", content }], ...extra }),
  });
}

const requests = async (region) => mock.requests(region);

/** The shadow report once the ledger holds `n` calls (and skips) of a pair: writes are batched a second. */
async function pairOf(primary, shadow, n, query = "") {
  for (let i = 0; i < 50; i++) {
    const r = await fetch(`${shadowed.url}/_meridian/shadow?${query}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    assert.equal(r.status, 200);
    const report = await r.json();
    const p = report.pairs.find((x) => x.primary === primary && x.shadow === shadow);
    const seen = p ? p.requests + Object.values(p.skipped).reduce((a, b) => a + b, 0) : 0;
    if (seen >= n) return p;
    await new Promise((res) => setTimeout(res, 200));
  }
  assert.fail(`the ledger never showed ${n} outcomes of ${primary} -> ${shadow}`);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

test("a shadow at share 1 leaves the client's bytes and time to first byte alone; its provider is asked", async () => {
  const before = await requests("twin");
  for (const stream of [false, true]) {
    const withShadow = await (await ask(shadowed, "main", { stream })).arrayBuffer();
    const without = await (await ask(plain, "main", { stream })).arrayBuffer();
    assert.deepEqual(Buffer.from(withShadow), Buffer.from(without), `stream=${stream}: the bodies differ`);
  }
  const ttfb = { on: [], off: [] };
  for (let i = 0; i < 15; i++) {
    for (const [name, worker] of [["on", shadowed], ["off", plain]]) {
      const t0 = performance.now();
      const r = await ask(worker, "main", { stream: true, content: `timing ${i}` });
      const { events } = await readEvents(r);
      ttfb[name].push(events[0].t - t0);
    }
  }
  const on = median(ttfb.on);
  const off = median(ttfb.off);
  console.log(`stream TTFB median over 15: shadow on ${on.toFixed(1)} ms, off ${off.toFixed(1)} ms`);
  assert.ok(on <= off * 1.25 + 5, `the shadow slowed the client: ${on} against ${off} ms`);
  // 2 byte comparisons and 15 timed requests, each shadowed once.
  for (let i = 0; i < 50 && (await requests("twin")) < before + 17; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal((await requests("twin")) - before, 17);
  const last = (await mock.stats()).regions.twin.last_request;
  assert.equal(last.body.model, "mock-1");
  assert.equal(last.body.messages[0].content, "timing 14");
});

test("agreement is exact against the mock's deterministic answers: identical 100%, different 0%", async () => {
  const same = await pairOf("main", "twin", 17);
  assert.equal(same.agreement.compared, 17);
  assert.equal(same.agreement.exact.rate, 1);
  assert.equal(same.agreement.similarity, 1);
  assert.equal(same.agreement.finish_reason.rate, 1);
  assert.equal(same.shadow_side.errors, 0);
  assert.ok(same.shadow_side.ttft_ms.p50 >= 60, `the twin region's ttft is 60 ms: ${same.shadow_side.ttft_ms.p50}`);
  assert.ok(same.shadow_side.cost_usd > 0);
  for (let i = 0; i < 4; i++) assert.equal((await ask(shadowed, "varied", { content: `different ${i}` })).status, 200);
  const diff = await pairOf("varied", "differ", 4);
  assert.equal(diff.agreement.exact.rate, 0);
  assert.ok(diff.agreement.similarity < 0.5, `${diff.agreement.similarity}`);
  // Kept samples are shown for one key: the three most recent, newest first.
  const one = await pairOf("main", "twin", 17, "key=demo");
  assert.equal(one.samples.length, 3);
  assert.match(one.samples[0].primary, /^Echo: timing 1[234]$/);
  assert.equal(one.samples[0].primary, one.samples[0].shadow);
  console.log(`agreement: main->twin exact ${same.agreement.exact.rate}, varied->differ exact ${diff.agreement.exact.rate} similarity ${diff.agreement.similarity.toFixed(3)}`);
});

test("tool calls agree when the shadow calls the same tool with JSON-equal arguments, and not otherwise", async () => {
  const tools = [
    { type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { query: { type: "string" } } } } },
  ];
  for (let i = 0; i < 3; i++) {
    const r = await ask(shadowed, "tooled", { content: "call get_weather Paris", extra: { tools, seed: i } });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).choices[0].finish_reason, "tool_calls");
  }
  const same = await pairOf("tooled", "twin", 3);
  const other = await pairOf("tooled", "toolsx", 3);
  assert.deepEqual([same.agreement.tool_calls.of, same.agreement.tool_calls.rate], [3, 1]);
  assert.deepEqual([other.agreement.tool_calls.of, other.agreement.tool_calls.rate], [3, 0]);
});

test("the daily cap stops shadow calls", async () => {
  const before = await requests("capped");
  const n = 20;
  for (let i = 0; i < n; i++) assert.equal((await ask(shadowed, "capped", { content: `capped ${i}` })).status, 200);
  const p = await pairOf("capped", "twin2", n);
  const sent = (await requests("capped")) - before;
  console.log(`cap $${CAP_USD}/day: ${sent} of ${n} shadowed, ${p.skipped.budget} skipped, spent $${p.shadow_side.cost_usd}`);
  assert.ok(sent >= 1 && sent < n, `${sent} shadow calls of ${n}`);
  assert.equal(p.requests, sent);
  assert.equal(p.skipped.budget, n - sent);
  assert.ok(p.shadow_side.cost_usd <= CAP_USD, `${p.shadow_side.cost_usd}`);
});

test("residency blocks a shadow in the wrong region, and no-store is never shadowed", async () => {
  const far = await requests("faraway");
  const twin = await requests("twin");
  assert.equal((await ask(shadowed, "resident", { key: EU_KEY })).status, 200);
  assert.equal((await ask(shadowed, "main", { headers: { "cache-control": "no-store" }, content: "private" })).status, 200);
  const resident = await pairOf("resident", "faraway", 1);
  assert.equal(resident.skipped.residency, 1);
  assert.equal(resident.requests, 0);
  const main = await pairOf("main", "twin", 18);
  assert.equal(main.skipped.no_store, 1);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await requests("faraway"), far, "the shadow went to a region the key may not use");
  assert.equal(await requests("twin"), twin, "a no-store request was shadowed");
});

test("an experiment at 90/10 over 1000 requests from 100 users keeps each user on one arm", async () => {
  const arms = new Map();
  let onB = 0;
  // Ten at a time; every user's requests go to the same arm whatever the order.
  for (let i = 0; i < 1000; i += 10) {
    const batch = Array.from({ length: 10 }, async (_, j) => {
      const user = `user-${(i + j) % 100}`;
      const r = await ask(shadowed, "exp", { content: `q ${i + j}`, extra: { user } });
      assert.equal(r.status, 200);
      await r.arrayBuffer();
      return [user, r.headers.get("x-meridian-variant")];
    });
    for (const [user, arm] of await Promise.all(batch)) {
      if (arms.has(user)) assert.equal(arms.get(user), arm, `${user} moved between arms`);
      arms.set(user, arm);
      if (arm === "armb") onB++;
    }
  }
  // Sticky per user: the share on the 10% arm is the share of users on it, binomial over 100 users (sd 3 points).
  console.log(`experiment 90/10: ${onB} of 1000 requests (${[...arms.values()].filter((a) => a === "armb").length} of 100 users) on the 10% arm`);
  assert.ok(onB >= 50 && onB <= 150, `${onB} of 1000 within 10% ± 5 points`);
  let report;
  for (let i = 0; i < 50; i++) {
    const r = await fetch(`${shadowed.url}/_meridian/experiments`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    report = await r.json();
    if (report.arms.reduce((a, x) => a + x.requests, 0) >= 1000) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  const b = report.arms.find((a) => a.arm === "armb");
  const a = report.arms.find((x) => x.arm === "exp");
  assert.equal(b.requests, onB);
  assert.equal(a.requests, 1000 - onB);
  assert.equal(b.errors, 0);
  assert.ok(b.ttft_ms.p50 >= 20, "the 10% arm's region waits 20 ms before its first content");
  assert.ok(a.ttft_ms.p50 < b.ttft_ms.p50, "each arm's own figures");
  assert.ok(b.cost_usd > 0 && b.output_tokens > 0);
});
