// Hardening (issue 14): what a hostile client or a broken provider tried, each against the compiled worker.
// Findings covered here: 1 (client-controlled headers), 2 (a bad header must not cut other streams),
// 3 (a provider stream without content must not panic the instance), 5 (URL injection through provider/model),
// 6 (a 200 that is no answer), 9 (coalesced followers outlive their leader), 10 (the cache key covers every forwarded field), 11 (cache namespaces cannot
// collide across tenants), 15 (number text is kept), 18 (errors reach the client as JSON in its dialect) and
// 20's unknown /v1/messages paths.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { startMock, startWorker, chat, readEvents, DEMO_KEY, DEMO_KEY_SHA256 } from "./harness.mjs";

const sha = (s) => createHash("sha256").update(s).digest("hex");

const GEMINI_KEY = "gemini-key-for-hardening-0123";
let mock, worker;

before(async () => {
  mock = await startMock({ us: {}, slow: { token_gap_ms: 60 }, broken: {}, gem: {} });
  const p = (name) => ({ kind: "openai", base_url: `${mock.regions[name]}/v1` });
  worker = await startWorker(
    {
      keys: [
        { name: "demo", sha256: DEMO_KEY_SHA256 },
        // Finding 11: a key name that looks like another key's namespace refinement.
        { name: "tenant-b", sha256: sha("key-of-tenant-b") },
        { name: "tenant-b:eu", sha256: sha("key-of-tenant-b-eu") },
      ],
      cors_origins: ["https://app.example.com"],
      providers: {
        "mock-us": p("us"),
        "mock-slow": p("slow"),
        "mock-broken": p("broken"),
        "mock-gem": { kind: "gemini", base_url: `${mock.regions.gem}/v1beta`, api_key_secret: "GEMINI_KEY" },
      },
      models: {
        us: { deployments: [{ provider: "mock-us", model: "mock-1", region: "us-east-1" }] },
        cached: { cache: { ttl_s: 3600 }, deployments: [{ provider: "mock-us", model: "mock-1", region: "us-east-1" }] },
        "cached-slow": {
          cache: { ttl_s: 3600 },
          deployments: [{ provider: "mock-slow", model: "mock-1", region: "us-east-1" }],
        },
        slow: { deployments: [{ provider: "mock-slow", model: "mock-1", region: "us-east-1" }] },
        broken: { deployments: [{ provider: "mock-broken", model: "mock-1", region: "us-east-1" }] },
        // One alias per case, so that what routing learned from one case does not decide the order in the next.
        ...Object.fromEntries(
          ["fo-1", "fo-2", "fo-3"].map((id) => [
            id,
            {
              deployments: [
                { provider: "mock-broken", model: id, region: "us-east-1" },
                { provider: "mock-us", model: id, region: "us-east-1", weight: 0.5 },
              ],
            },
          ]),
        ),
      },
      routing: { exploration: 0, trust_location_header: true },
      timeouts: { first_byte_ms: 3000 },
    },
    { GEMINI_KEY },
  );
});

after(async () => {
  await worker?.stop();
  await mock?.stop();
});

const hi = [{ role: "user", content: "hi" }];

function messages(body) {
  return fetch(`${worker.url}/v1/messages`, {
    method: "POST",
    headers: { "x-api-key": DEMO_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

test("finding 1: a model name cannot add response headers; it is a 400 in the caller's dialect", async () => {
  for (const model of [
    "mock-us/a\nset-cookie\nsid=attacker; Path=/",
    "mock-us/a\naccess-control-allow-origin\n*",
    "mock-us/a\r\nset-cookie: sid=attacker",
    "mock-us/a\u0000b",
    "mock-us/" + "m".repeat(300),
  ]) {
    const r = await chat(worker.url, { model, messages: hi });
    assert.equal(r.status, 400, JSON.stringify(model));
    assert.equal(r.headers.get("set-cookie"), null);
    assert.equal(r.headers.get("access-control-allow-origin"), null);
    const body = await r.json();
    assert.equal(body.error.type, "invalid_request_error");
    assert.equal(body.error.code, "invalid_model");
    const a = await messages({ model, max_tokens: 10, messages: hi });
    assert.equal(a.status, 400);
    assert.equal(a.headers.get("set-cookie"), null);
    const ab = await a.json();
    assert.equal(ab.type, "error");
    assert.equal(ab.error.type, "invalid_request_error");
  }
  // Names real providers use still pass.
  const ok = await chat(worker.url, { model: "mock-us/org.model-v1:0@latest+x", messages: hi });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get("x-meridian-deployment"), "mock-us/org.model-v1:0@latest+x");
});

test("finding 2: a bad header name is a 400 at once, and six streams beside it finish whole", async () => {
  const streams = Array.from({ length: 6 }, () =>
    chat(worker.url, { model: "slow", stream: true, messages: [{ role: "user", content: "one two three four five" }] }).then(
      async (r) => {
        assert.equal(r.status, 200);
        return readEvents(r);
      },
    ),
  );
  await new Promise((r) => setTimeout(r, 150));
  const t0 = performance.now();
  for (const model of ["mock-slow/a\nbad name\nx", "mock-slow/a\n\u0000\nx", "mock-slow/a\r\nx"]) {
    const bad = await chat(worker.url, { model, stream: true, messages: hi });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.code, "invalid_model");
  }
  assert.ok(performance.now() - t0 < 1000, "answered at once, not after first_byte_ms");
  for (const { events, rest } of await Promise.all(streams)) {
    assert.equal(rest, "");
    assert.equal(events.at(-1).data, "[DONE]");
    const text = events
      .slice(0, -1)
      .map((e) => JSON.parse(e.data).choices?.[0]?.delta?.content ?? "")
      .join("");
    assert.equal(text, "Echo: one two three four five");
    assert.ok(!events.some((e) => e.data.includes("error")));
  }
});

const ROLE_ONLY =
  'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n';
const JSON_BODY =
  '{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"x"},"finish_reason":"stop"}]}';

/**
 * Sends `model` (the broken deployment and a healthy one) four times: every answer comes from the healthy one,
 * checked whole by `checkBody`, and at least one failed over from the broken one (routing may try either first).
 */
async function assertFailsOver(model, stream, checkBody) {
  let failedOver = 0;
  for (let i = 0; i < 4; i++) {
    const r = await chat(worker.url, { model, stream, messages: [{ role: "user", content: "after failover" }] });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("x-meridian-deployment"), `mock-us/${model}`);
    if (r.headers.get("x-meridian-attempts") === "2") failedOver++;
    await checkBody(r);
  }
  assert.ok(failedOver >= 1, `the broken deployment was tried and failed over (it saw ${await mock.requests("broken")})`);
}

test("finding 3: a stream without content is a provider failure: failover, else 502, never a panic", async () => {
  for (const [raw, ct, model] of [
    [JSON_BODY, "application/json", "fo-1"],
    [ROLE_ONLY, "text/event-stream", "fo-2"],
  ]) {
    await mock.set("broken", { raw_body: raw, raw_content_type: ct });
    // With another deployment: failed over before the client saw a byte.
    await assertFailsOver(model, true, async (r) => {
      const { events } = await readEvents(r);
      assert.equal(events.at(-1).data, "[DONE]");
    });
    // Alone: a 502 in the caller's dialect.
    const alone = await chat(worker.url, { model: "broken", stream: true, messages: hi });
    assert.equal(alone.status, 502);
    assert.equal((await alone.json()).error.code, "upstream_empty_stream");
    const a = await messages({ model: "broken", max_tokens: 10, stream: true, messages: hi });
    assert.equal(a.status, 502);
    assert.equal((await a.json()).type, "error");
  }
  await mock.set("broken", { raw_body: null, raw_content_type: null });
  // The instance survived: the breaker learned about the broken deployment (state a panic would have lost).
  const status = await (await fetch(`${worker.url}/_meridian/status`, { headers: { authorization: `Bearer ${DEMO_KEY}` } })).json();
  const text = JSON.stringify(status);
  assert.ok(text.includes("mock-broken"), text);
  assert.ok(/"failures":[1-9]/.test(text) || /"consecutive_failures":[1-9]/.test(text) || text.includes("open"), text);
});

test("finding 6: a non-streamed 200 that is not a chat completion is a provider failure", async () => {
  for (const raw of ["{}", '{"error":{"message":"quota","type":"insufficient_quota"}}']) {
    await mock.set("broken", { raw_body: raw, raw_content_type: "application/json" });
    const alone = await chat(worker.url, { model: "broken", messages: hi });
    assert.equal(alone.status, 502, raw);
    assert.equal((await alone.json()).error.code, "upstream_malformed");
  }
  await assertFailsOver("fo-3", false, async (r) => {
    assert.equal((await r.json()).choices[0].message.content, "Echo: after failover");
  });
  await mock.set("broken", { raw_body: null, raw_content_type: null });
});

test("finding 5: provider/model cannot reach another Gemini path or add query parameters", async () => {
  for (const model of [
    "mock-gem/../../../v1/models#",
    "mock-gem/x?alt=json&key=abc",
    "mock-gem/../../v1/models",
    "mock-gem/a/./b",
  ]) {
    const before = await mock.requests("gem");
    const r = await chat(worker.url, { model, messages: hi });
    assert.equal(r.status, 400, model);
    assert.equal(await mock.requests("gem"), before, "nothing was sent");
  }
  // A name with characters that need encoding stays one path segment.
  const r = await chat(worker.url, { model: "mock-gem/tuned/gemini:exp", messages: hi });
  await r.arrayBuffer();
  const last = (await mock.stats()).regions.gem.last_request;
  assert.equal(last.path, "/v1beta/models/tuned%2Fgemini%3Aexp:generateContent");
  assert.equal(last.query, null);
});

test("finding 11: a tenant's namespace refinement never reaches another tenant's entries", async () => {
  const body = { model: "cached", temperature: 0, messages: [{ role: "user", content: "tenant secret question" }] };
  const first = await chat(worker.url, body, { key: "key-of-tenant-b", headers: { "x-meridian-cache-namespace": "eu" } });
  assert.equal(first.status, 200);
  assert.equal(first.headers.get("x-meridian-cache"), "MISS");
  await first.arrayBuffer();
  const again = await chat(worker.url, body, { key: "key-of-tenant-b", headers: { "x-meridian-cache-namespace": "eu" } });
  assert.equal(again.headers.get("x-meridian-cache"), "HIT");
  await again.arrayBuffer();
  const other = await chat(worker.url, body, { key: "key-of-tenant-b-eu" });
  assert.equal(other.status, 200);
  assert.equal(other.headers.get("x-meridian-cache"), "MISS", "key `tenant-b:eu` has its own namespace");
  await other.arrayBuffer();
});

test("finding 10: every forwarded field and the system message's place are part of the cache key", async () => {
  const base = {
    model: "cached",
    temperature: 0,
    messages: [
      { role: "system", content: "be brief" },
      { role: "user", content: "finding 10 question" },
    ],
  };
  const status = async (body) => {
    const r = await chat(worker.url, body);
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    return r.headers.get("x-meridian-cache");
  };
  assert.equal(await status(base), "MISS");
  assert.equal(await status(base), "HIT");
  const variants = {
    presence_penalty: 0.5,
    frequency_penalty: 0.5,
    logit_bias: { 50256: -100 },
    reasoning_effort: "high",
    parallel_tool_calls: false,
    a_field_added_next_year: true,
  };
  for (const [field, value] of Object.entries(variants)) {
    const body = { ...base, [field]: value };
    assert.equal(await status(body), "MISS", field);
    assert.equal(await status(body), "HIT", `${field} has an entry of its own`);
  }
  // Answers a cached entry cannot reproduce are not cached.
  for (const extra of [{ n: 2 }, { logprobs: true }, { logprobs: true, top_logprobs: 2 }]) {
    assert.equal(await status({ ...base, ...extra }), "BYPASS", JSON.stringify(extra));
  }
  const moved = { ...base, messages: [base.messages[1], base.messages[0]] };
  assert.equal(await status(moved), "MISS", "the system message after the question is another request");
  const developer = { ...base, messages: [{ role: "developer", content: "be brief" }, base.messages[1]] };
  assert.equal(await status(developer), "MISS", "a developer message is another request");
  // What never changes the answer still shares the entry.
  assert.equal(await status({ ...base, user: "someone" }), "HIT");
});

test("finding 15: forwarded JSON keeps every number's text, both ways", async () => {
  const text =
    '{"model":"us","messages":[{"role":"user","content":"n"}],"temperature":1.10,"x_big":123456789012345678901234567890,"x_zero":-0,"x_exp":2.5E-3}';
  const r = await chat(worker.url, text);
  assert.equal(r.status, 200);
  await r.arrayBuffer();
  const sent = (await mock.stats()).regions.us.last_request.body_text;
  for (const n of ['"temperature":1.10', '"x_big":123456789012345678901234567890', '"x_zero":-0,', '"x_exp":2.5E-3']) {
    assert.ok(sent.includes(n), `${n} in ${sent}`);
  }
  // A provider's answer reaches the client as it was written.
  const answer =
    '{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"x"},"finish_reason":"stop","logprobs":{"x":123456789012345678901234567890,"y":-0,"z":1.50}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}';
  await mock.set("broken", { raw_body: answer, raw_content_type: "application/json" });
  const b = await chat(worker.url, { model: "broken", messages: hi });
  assert.equal(b.status, 200);
  assert.equal(await b.text(), answer);
  await mock.set("broken", { raw_body: null, raw_content_type: null });
});

test("finding 9: followers of a coalesced stream get the whole answer when the leading client goes away", async () => {
  const body = {
    model: "cached-slow",
    temperature: 0,
    stream: true,
    messages: [{ role: "user", content: "one two three four five six seven eight nine ten" }],
  };
  const before = await mock.requests("slow");
  const leader = await chat(worker.url, body);
  assert.equal(leader.headers.get("x-meridian-cache"), "MISS");
  const reader = leader.body.getReader();
  await reader.read();
  const followers = await Promise.all([chat(worker.url, body), chat(worker.url, body)]);
  for (const f of followers) assert.equal(f.headers.get("x-meridian-cache"), "COALESCED");
  // The leading client goes away mid-answer.
  await reader.cancel();
  for (const f of followers) {
    const { events, rest } = await readEvents(f);
    assert.equal(rest, "");
    const text = events.map((e) => e.data);
    assert.equal(text.at(-1), "[DONE]", "a whole answer, not an error");
    assert.ok(!text.some((d) => d.includes('"error"')), text.join("\n"));
    const content = text
      .filter((d) => d !== "[DONE]")
      .map((d) => JSON.parse(d).choices?.[0]?.delta?.content ?? "")
      .join("");
    assert.equal(content, "Echo: one two three four five six seven eight nine ten");
  }
  assert.equal(await mock.requests("slow"), before + 1, "one provider call for all three");
  // And the answer read on for them was stored.
  await new Promise((r) => setTimeout(r, 200));
  const again = await chat(worker.url, body);
  assert.equal(again.headers.get("x-meridian-cache"), "HIT");
  await again.arrayBuffer();
});

test("finding 20: unknown paths under /v1/messages answer 404 in the Anthropic shape", async () => {
  for (const p of ["/v1/messages/batches", "/v1/messages/nope/deeper"]) {
    const r = await fetch(`${worker.url}${p}`, { method: "POST", headers: { "x-api-key": DEMO_KEY }, body: "{}" });
    assert.equal(r.status, 404);
    const b = await r.json();
    assert.equal(b.type, "error");
    assert.equal(b.error.type, "not_found_error");
  }
});
