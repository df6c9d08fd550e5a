// Every provider wire format behind both client dialects, through the compiled worker against the mock: a client
// written for one vendor's SDK reaches any provider, streaming and tool calls included, with usage reported.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { startAllKinds, KINDS, PROVIDER_KEY, DEMO_KEY, chat, readEvents } from "./harness.mjs";

let mock, worker, oai, ant;

before(async () => {
  ({ mock, worker } = await startAllKinds());
  oai = new OpenAI({ baseURL: `${worker.url}/v1`, apiKey: DEMO_KEY, maxRetries: 0 });
  ant = new Anthropic({ baseURL: worker.url, apiKey: DEMO_KEY, maxRetries: 0 });
});

after(async () => {
  await worker?.stop();
  await mock?.stop();
});

beforeEach(() => mock.reset());

const TEXT = "hello across vendors";
const ECHO = `Echo: ${TEXT}`;
const WEATHER_TOOL = {
  name: "get_weather",
  description: "Current weather for a city",
  schema: { type: "object", properties: { query: { type: "string" } }, required: ["query"] },
};

test("GET /v1/models lists a model per provider kind", async () => {
  const ids = [];
  for await (const m of oai.models.list()) ids.push(m.id);
  assert.deepEqual(ids.sort(), [...KINDS].sort());
});

for (const kind of KINDS) {
  test(`OpenAI SDK -> ${kind}: non-streaming and streaming, usage reported`, async () => {
    const r = await oai.chat.completions.create({ model: kind, messages: [{ role: "user", content: TEXT }] });
    assert.equal(r.choices[0].message.content, ECHO);
    assert.equal(r.choices[0].finish_reason, "stop");
    assert.equal(r.usage.completion_tokens, 4);
    assert.ok(r.usage.prompt_tokens >= 3);

    const s = await oai.chat.completions.create({
      model: kind,
      messages: [{ role: "user", content: TEXT }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage, finish;
    for await (const c of s) {
      text += c.choices[0]?.delta?.content ?? "";
      finish ??= c.choices[0]?.finish_reason ?? undefined;
      if (c.usage) usage = c.usage;
    }
    assert.equal(text, ECHO);
    assert.equal(finish, "stop");
    assert.equal(usage?.completion_tokens, 4);
    assert.equal(await mock.requests(kind), 2);
  });

  test(`Anthropic SDK -> ${kind}: non-streaming and streaming, usage reported`, async () => {
    const m = await ant.messages.create({ model: kind, max_tokens: 100, messages: [{ role: "user", content: TEXT }] });
    assert.equal(m.type, "message");
    assert.equal(m.content[0].type, "text");
    assert.equal(m.content[0].text, ECHO);
    assert.equal(m.stop_reason, "end_turn");
    assert.equal(m.usage.output_tokens, 4);

    const stream = ant.messages.stream({ model: kind, max_tokens: 100, messages: [{ role: "user", content: TEXT }] });
    const types = [];
    stream.on("streamEvent", (e) => types.push(e.type));
    const final = await stream.finalMessage();
    assert.equal(final.content[0].text, ECHO);
    assert.equal(final.stop_reason, "end_turn");
    assert.equal(final.usage.output_tokens, 4);
    assert.equal(types[0], "message_start");
    assert.ok(types.includes("content_block_start") && types.includes("content_block_delta"));
    assert.deepEqual(types.slice(-3), ["content_block_stop", "message_delta", "message_stop"]);
  });

  test(`tool calls from ${kind} reach both SDKs`, async () => {
    const r = await oai.chat.completions.create({
      model: kind,
      messages: [{ role: "user", content: "call get_weather Paris" }],
      tools: [{ type: "function", function: { name: WEATHER_TOOL.name, description: WEATHER_TOOL.description, parameters: WEATHER_TOOL.schema } }],
    });
    const call = r.choices[0].message.tool_calls?.[0];
    assert.ok(call, JSON.stringify(r));
    assert.equal(call.function.name, "get_weather");
    assert.deepEqual(JSON.parse(call.function.arguments), { query: "Paris" });
    assert.equal(r.choices[0].finish_reason, kind === "gemini" ? "tool_calls" : "tool_calls");

    const s = await oai.chat.completions.create({
      model: kind,
      stream: true,
      messages: [{ role: "user", content: "call get_weather Paris" }],
      tools: [{ type: "function", function: { name: WEATHER_TOOL.name, parameters: WEATHER_TOOL.schema } }],
    });
    let args = "";
    let name;
    for await (const c of s) {
      for (const tc of c.choices[0]?.delta?.tool_calls ?? []) {
        name ??= tc.function?.name;
        args += tc.function?.arguments ?? "";
      }
    }
    assert.equal(name, "get_weather");
    assert.deepEqual(JSON.parse(args), { query: "Paris" });

    const stream = ant.messages.stream({
      model: kind,
      max_tokens: 100,
      messages: [{ role: "user", content: "call get_weather Paris" }],
      tools: [{ name: WEATHER_TOOL.name, description: WEATHER_TOOL.description, input_schema: WEATHER_TOOL.schema }],
    });
    const m = await stream.finalMessage();
    const use = m.content.find((b) => b.type === "tool_use");
    assert.ok(use, JSON.stringify(m));
    assert.equal(use.name, "get_weather");
    assert.deepEqual(use.input, { query: "Paris" });
    assert.equal(m.stop_reason, "tool_use");
  });
}

test("a translated stream is forwarded as the provider produces it", async () => {
  await mock.set("bedrock", { ttft_ms: 50, token_gap_ms: 120 });
  const r = await fetch(`${worker.url}/v1/messages`, {
    method: "POST",
    headers: { "x-api-key": DEMO_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json" },
    body: JSON.stringify({ model: "bedrock", max_tokens: 50, stream: true, messages: [{ role: "user", content: TEXT }] }),
  });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /^text\/event-stream/);
  const { events } = await readEvents(r);
  const deltas = events.filter((e) => JSON.parse(e.data).type === "content_block_delta");
  assert.equal(deltas.length, 4);
  const gaps = deltas.slice(1).map((e, i) => e.t - deltas[i].t);
  for (const g of gaps) assert.ok(g >= 60, `delta gaps ${gaps.map(Math.round)} ms: translation buffered the stream`);
});

test("Bedrock requests are SigV4-signed and Gemini keys travel in a header, not the URL", async () => {
  await chat(worker.url, { model: "bedrock", messages: [{ role: "user", content: TEXT }] });
  await chat(worker.url, { model: "gemini", messages: [{ role: "user", content: TEXT }] });
  await chat(worker.url, { model: "anthropic", messages: [{ role: "user", content: TEXT }] });
  await chat(worker.url, { model: "azure", messages: [{ role: "user", content: TEXT }] });
  const s = (await mock.stats()).regions;
  const b = s.bedrock.last_request;
  assert.match(b.path, /^\/model\/anthropic\.claude-3-haiku-20240307-v1%3A0\/converse$/);
  assert.match(
    b.headers.authorization,
    /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/us-east-1\/bedrock\/aws4_request, SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*, Signature=[0-9a-f]{64}$/,
  );
  assert.match(b.headers["x-amz-date"], /^\d{8}T\d{6}Z$/);
  const g = s.gemini.last_request;
  assert.equal(g.headers["x-goog-api-key"], PROVIDER_KEY);
  assert.ok(!(g.query ?? "").includes(PROVIDER_KEY) && !g.path.includes(PROVIDER_KEY));
  assert.equal(s.anthropic.last_request.headers["x-api-key"], PROVIDER_KEY);
  assert.equal(s.anthropic.last_request.headers["anthropic-version"], "2023-06-01");
  assert.equal(s.azure.last_request.headers["api-key"], PROVIDER_KEY);
  assert.match(s.azure.last_request.path, /^\/openai\/deployments\/gpt-4o-deploy\/chat\/completions$/);
});

test("errors are in the caller's dialect, with the provider's status mapped", async () => {
  let r = await fetch(`${worker.url}/v1/messages`, {
    method: "POST",
    headers: { "x-api-key": "wrong", "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(r.status, 401);
  let body = await r.json();
  assert.equal(body.type, "error");
  assert.equal(body.error.type, "authentication_error");

  r = await fetch(`${worker.url}/v1/messages`, {
    method: "POST",
    headers: { "x-api-key": DEMO_KEY, "content-type": "application/json" },
    body: JSON.stringify({ model: "openai", messages: [{ role: "user", content: "hi" }] }),
  });
  assert.equal(r.status, 400, "max_tokens is required by the Anthropic dialect");
  assert.equal((await r.json()).error.type, "invalid_request_error");

  await mock.set("openai", { status: 429, retry_after: "3" });
  await assert.rejects(
    ant.messages.create({ model: "openai", max_tokens: 10, messages: [{ role: "user", content: "hi" }] }),
    (e) => e instanceof Anthropic.RateLimitError && e.headers?.get?.("retry-after") === "3",
  );
  await mock.set("anthropic", { status: 500 });
  await assert.rejects(
    oai.chat.completions.create({ model: "anthropic", messages: [{ role: "user", content: "hi" }] }),
    (e) => e instanceof OpenAI.APIError && e.status === 502,
  );
});

test("a translated stream cut mid-way ends with an error event in the client's dialect", async () => {
  await mock.set("gemini", { cut_after: 2 });
  const stream = ant.messages.stream({ model: "gemini", max_tokens: 50, messages: [{ role: "user", content: TEXT }] });
  await assert.rejects(stream.finalMessage(), /ended before completion|stream/);

  await mock.set("anthropic", { cut_after: 2 });
  const s = await oai.chat.completions.create({ model: "anthropic", stream: true, messages: [{ role: "user", content: TEXT }] });
  await assert.rejects(async () => {
    for await (const _ of s);
  }, /ended before completion|stream/);
});
