// The first vertical slice through the compiled worker: OpenAI-dialect chat completions to an OpenAI-compatible
// upstream (the mock), non-streaming and streaming, with errors in OpenAI's shape.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startMock, startWorker, configFor, chat, readEvents, DEMO_KEY } from "./harness.mjs";

let mock, worker, client;
const MSG = [{ role: "user", content: "hello from the edge" }];

before(async () => {
  mock = await startMock({ fast: {}, paced: {}, faulty: {}, keyed: {} });
  const config = configFor(mock.regions, { timeouts: { first_byte_ms: 1500 } });
  config.providers["mock-keyed"].api_key_secret = "MOCK_PROVIDER_KEY";
  worker = await startWorker(config, { MOCK_PROVIDER_KEY: "sk-mock-e2e-secret-value" });
  client = new OpenAI({ baseURL: `${worker.url}/v1`, apiKey: DEMO_KEY, maxRetries: 0 });
});

after(async () => {
  await worker?.stop();
  await mock?.stop();
});

beforeEach(() => mock.reset());

test("healthz answers", async () => {
  const r = await fetch(`${worker.url}/healthz`);
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { status: "ok" });
});

test("non-streaming completion through the official OpenAI SDK", async () => {
  const { data, response } = await client.chat.completions
    .create({ model: "fast", messages: MSG })
    .withResponse();
  assert.equal(data.choices[0].message.content, "Echo: hello from the edge");
  assert.equal(data.choices[0].finish_reason, "stop");
  assert.deepEqual(data.usage, { prompt_tokens: 4, completion_tokens: 5, total_tokens: 9 });
  assert.equal(response.headers.get("x-meridian-deployment"), "mock-fast/mock-1");
  assert.equal(response.headers.get("x-meridian-region"), "fast");
  const stats = await mock.stats();
  assert.equal(stats.regions.fast.requests, 1);
  assert.equal(stats.regions.fast.last_request.body.model, "mock-1", "alias rewritten to the provider's model");
});

test("streaming completion through the official OpenAI SDK", async () => {
  const stream = await client.chat.completions.create({
    model: "fast",
    messages: MSG,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let usage;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? "";
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, "Echo: hello from the edge");
  assert.equal(usage.completion_tokens, 5);
});

test("stream chunks arrive spread over time as the provider emits them", async () => {
  await mock.set("paced", { ttft_ms: 50, token_gap_ms: 120 });
  const t0 = performance.now();
  const r = await chat(worker.url, { model: "paced", stream: true, messages: MSG });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /^text\/event-stream/);
  const { events } = await readEvents(r);
  const content = events.filter((e) => e.data !== "[DONE]" && JSON.parse(e.data).choices[0]?.delta?.content);
  assert.equal(content.length, 5);
  assert.equal(events.at(-1).data, "[DONE]");
  // The mock sends the 5 content chunks 120 ms apart: each must arrive on its own, not merged by buffering.
  const gaps = content.slice(1).map((e, i) => e.t - content[i].t);
  for (const g of gaps) assert.ok(g >= 60, `chunk gaps ${gaps.map(Math.round)} ms: a chunk was held back`);
  assert.ok(content[0].t - t0 < 2000, "first token was not forwarded promptly");
  assert.ok(content.at(-1).t - content[0].t >= 400, "stream was delivered in one piece");
});

test("a client that leaves mid-stream stops the provider's stream", async () => {
  // 20 chunks 200 ms apart: the provider would stream for 4 s; the client leaves after the first event.
  await mock.set("paced", { ttft_ms: 20, token_gap_ms: 200, reply_words: 20 });
  const before = (await mock.stats()).regions.paced.streams_abandoned;
  const ctl = new AbortController();
  const t0 = performance.now();
  const r = await fetch(`${worker.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${DEMO_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "paced", stream: true, messages: MSG }),
    signal: ctl.signal,
  });
  assert.equal(r.status, 200);
  const reader = r.body.getReader();
  await reader.read();
  await reader.cancel();
  ctl.abort();
  let after = before;
  while (after === before && performance.now() - t0 < 3000) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    after = (await mock.stats()).regions.paced.streams_abandoned;
  }
  assert.equal(after, before + 1, "the provider kept streaming to a gateway whose client had left");
});

test("missing and wrong gateway keys are 401 in OpenAI's shape and never reach the provider", async () => {
  for (const key of [null, "not-the-key"]) {
    const r = await chat(worker.url, { model: "fast", messages: MSG }, { key });
    assert.equal(r.status, 401);
    const body = await r.json();
    assert.equal(body.error.type, "authentication_error");
    assert.equal(typeof body.error.message, "string");
  }
  await assert.rejects(
    new OpenAI({ baseURL: `${worker.url}/v1`, apiKey: "wrong", maxRetries: 0 }).chat.completions.create({
      model: "fast",
      messages: MSG,
    }),
    OpenAI.AuthenticationError,
  );
  assert.equal(await mock.requests("fast"), 0);
});

test("bad requests are 400 and unknown models 404, without an upstream call", async () => {
  let r = await chat(worker.url, "{not json");
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error.type, "invalid_request_error");
  r = await chat(worker.url, { model: "fast", messages: [] });
  assert.equal(r.status, 400);
  assert.match((await r.json()).error.message, /messages/);
  r = await chat(worker.url, { model: "no-such-model", messages: MSG });
  assert.equal(r.status, 404);
  assert.equal((await r.json()).error.code, "model_not_found");
  r = await fetch(`${worker.url}/v1/nothing-here`);
  assert.equal(r.status, 404);
  r = await fetch(`${worker.url}/v1/chat/completions`);
  assert.equal(r.status, 405);
  assert.equal(await mock.requests("fast"), 0);
});

test("GET /v1/models lists the configured models", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids.sort(), ["fast", "faulty", "keyed", "paced"]);
});

test("provider errors come back as OpenAI errors with a fitting status", async () => {
  await mock.set("faulty", { status: 500 });
  let r = await chat(worker.url, { model: "faulty", messages: MSG });
  assert.equal(r.status, 502);
  let body = await r.json();
  assert.equal(body.error.type, "api_error");
  assert.match(body.error.message, /HTTP 500/);

  await mock.set("faulty", { status: 429, retry_after: "7" });
  r = await chat(worker.url, { model: "faulty", messages: MSG, stream: true });
  assert.equal(r.status, 429);
  assert.equal(r.headers.get("retry-after"), "7");
  assert.equal((await r.json()).error.type, "rate_limit_error");

  await mock.set("faulty", { status: 400 });
  r = await chat(worker.url, { model: "faulty", messages: MSG });
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error.type, "invalid_request_error");
});

test("a provider that hangs is a 504 after the first-byte timeout, not a hang", async () => {
  await mock.set("faulty", { hang: true });
  for (const stream of [false, true]) {
    const t0 = performance.now();
    const r = await chat(worker.url, { model: "faulty", messages: MSG, stream });
    const elapsed = performance.now() - t0;
    assert.equal(r.status, 504);
    assert.equal((await r.json()).error.code, "upstream_timeout");
    assert.ok(elapsed >= 1400 && elapsed < 10000, `answered after ${Math.round(elapsed)} ms`);
  }
});

test("a stream cut mid-way ends with an error event, never a silent truncation", async () => {
  await mock.set("faulty", { cut_after: 2 });
  const r = await chat(worker.url, { model: "faulty", messages: MSG, stream: true });
  assert.equal(r.status, 200);
  const { events } = await readEvents(r);
  const last = JSON.parse(events.at(-1).data);
  assert.equal(last.error.type, "api_error");
  assert.ok(!events.some((e) => e.data === "[DONE]"));

  const stream = await client.chat.completions.create({ model: "faulty", messages: MSG, stream: true });
  await assert.rejects(async () => {
    for await (const _ of stream);
  }, /ended before completion|stream failed/);
});

test("the provider key comes from a worker secret and never reaches the client", async () => {
  const r = await chat(worker.url, { model: "keyed", messages: MSG });
  assert.equal(r.status, 200);
  const stats = await mock.stats();
  assert.equal(stats.regions.keyed.last_request.headers.authorization, "Bearer sk-mock-e2e-secret-value");
  assert.equal(stats.regions.fast.requests, 0);

  await mock.set("keyed", {
    status: 401,
    error_body: '{"error":{"message":"Incorrect API key provided: sk-mock-e2e-secret-value"}}',
  });
  const e = await chat(worker.url, { model: "keyed", messages: MSG });
  const text = await e.text();
  assert.equal(e.status, 502);
  assert.ok(!text.includes("sk-mock-e2e-secret-value"), text);
  for (const [, v] of e.headers) assert.ok(!v.includes("sk-mock-e2e"), "key leaked in a header");
});
