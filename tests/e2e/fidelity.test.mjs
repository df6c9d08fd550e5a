// Fidelity end to end: the official Python SDKs (sdk_fidelity.py holds their assertions) and the official JS SDKs
// (below) against the compiled worker and the mock, replaying recorded provider traffic where the mock does not
// make the answer up itself (tests/fixtures/SOURCES.md).
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { startAllKinds, DEMO_KEY, runPythonSdk } from "./harness.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FIXTURES = path.resolve(HERE, "../fixtures");
const fixture = (p) => readFileSync(path.join(FIXTURES, p), "utf8");
const sseFixture = (p) => fixture(p).replace(/\n+$/, "") + "\n\n";
const DOC = "a long shared document that many requests start with";
const DOC_WORDS = DOC.split(" ").length;
let mock, worker, anthropic, openai;

before(async () => {
  ({ mock, worker } = await startAllKinds());
  anthropic = new Anthropic({ baseURL: worker.url, apiKey: DEMO_KEY, maxRetries: 0 });
  openai = new OpenAI({ baseURL: `${worker.url}/v1`, apiKey: DEMO_KEY, maxRetries: 0 });
});

after(async () => {
  await worker?.stop();
  await mock?.stop();
});

beforeEach(async () => {
  await mock.reset();
});

const lastRequest = async (region) => (await mock.stats()).regions[region].last_request;

test("official Python SDKs: same wire, prompt caching, refusals, errors, ids", async () => {
  const { code, output } = await runPythonSdk("sdk_fidelity.py", {
    MERIDIAN_URL: worker.url, MOCK_CONTROL: mock.control, FIXTURES,
  });
  assert.equal(code, 0, "Python SDK fidelity tests failed (output above)");
  assert.match(output, /\nOK\n/);
});

test("JS: everything an Anthropic client sends reaches Anthropic, beta header included, streamed and not", async () => {
  for (const stream of [false, true]) {
    const params = {
      model: "anthropic",
      max_tokens: 2048,
      top_k: 5,
      thinking: { type: "enabled", budget_tokens: 1024 },
      system: [{ type: "text", text: "Be terse.", cache_control: { type: "ephemeral" } }],
      messages: [
        { role: "user", content: "first" },
        { role: "assistant", content: [{ type: "thinking", thinking: "Hmm.", signature: "EqQBCgIYAhIM" }, { type: "text", text: "ok" }] },
        { role: "user", content: "second" },
      ],
    };
    const opts = { headers: { "anthropic-beta": "interleaved-thinking-2025-05-14" } };
    if (stream) await anthropic.messages.stream(params, opts).finalMessage();
    else await anthropic.messages.create(params, opts);
    const req = await lastRequest("anthropic");
    assert.equal(req.body.top_k, 5);
    assert.deepEqual(req.body.thinking, { type: "enabled", budget_tokens: 1024 });
    assert.deepEqual(req.body.system[0].cache_control, { type: "ephemeral" });
    assert.equal(req.body.messages[1].content[0].type, "thinking");
    const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), v]));
    assert.equal(headers["anthropic-beta"], "interleaved-thinking-2025-05-14");
  }
});

test("JS: prompt caching reaches Anthropic and Bedrock, and the cached counts come back in both dialects", async () => {
  for (const kind of ["anthropic", "bedrock"]) {
    for (const stream of [false, true]) {
      await mock.reset();
      const ask = async (q) => {
        const params = {
          model: kind,
          max_tokens: 50,
          system: [{ type: "text", text: DOC, cache_control: { type: "ephemeral" } }],
          messages: [{ role: "user", content: q }],
        };
        return stream ? (await anthropic.messages.stream(params).finalMessage()).usage : (await anthropic.messages.create(params)).usage;
      };
      const first = await ask("one two");
      assert.equal(first.cache_creation_input_tokens, DOC_WORDS, `${kind} ${stream}`);
      const second = await ask("three four five");
      assert.equal(second.cache_read_input_tokens, DOC_WORDS, `${kind} ${stream}`);
      assert.equal(second.input_tokens, 3);

      await mock.reset();
      const askOpenAI = async (q) => {
        const params = {
          model: kind,
          messages: [
            { role: "system", content: [{ type: "text", text: DOC, cache_control: { type: "ephemeral" } }] },
            { role: "user", content: q },
          ],
        };
        if (!stream) return (await openai.chat.completions.create(params)).usage;
        let usage;
        for await (const c of await openai.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } })) {
          usage = c.usage ?? usage;
        }
        return usage;
      };
      await askOpenAI("one two");
      const usage = await askOpenAI("three four five");
      assert.equal(usage.prompt_tokens_details.cached_tokens, DOC_WORDS, `${kind} ${stream}`);
      assert.equal(usage.prompt_tokens, DOC_WORDS + 3);
    }
  }
});

test("JS: an OpenAI refusal reaches an Anthropic client as its text and stop_reason refusal, streamed and not", async () => {
  await mock.set("openai", { raw_body: fixture("openai/refusal_response.json"), raw_content_type: "application/json" });
  const m = await anthropic.messages.create({ model: "openai", max_tokens: 10, messages: [{ role: "user", content: "x" }] });
  assert.equal(m.content[0].text, "I'm very sorry, but I can't assist with that.");
  assert.equal(m.stop_reason, "refusal");
  await mock.set("openai", { raw_body: null, raw_chunks: [{ text: sseFixture("openai/stream_refusal.sse") }] });
  const final = await anthropic.messages.stream({ model: "openai", max_tokens: 10, messages: [{ role: "user", content: "x" }] }).finalMessage();
  assert.equal(final.content[0].text, "I'm sorry, I can't assist with that request.");
  assert.equal(final.stop_reason, "refusal");
});

test("JS: an overloaded Anthropic is 529 overloaded_error for Anthropic clients and 503 for OpenAI clients", async () => {
  await mock.set("anthropic", { status: 529, error_body: fixture("anthropic/overloaded_error.json") });
  await assert.rejects(
    anthropic.messages.create({ model: "anthropic", max_tokens: 10, messages: [{ role: "user", content: "x" }] }),
    (e) => e.status === 529 && e.error?.error?.type === "overloaded_error",
  );
  await assert.rejects(
    openai.chat.completions.create({ model: "anthropic", messages: [{ role: "user", content: "x" }] }),
    (e) => e.status === 503 && e.code === "upstream_overloaded",
  );
  const body = JSON.parse(fixture("anthropic/errors.json"))[0].body;
  await mock.set("anthropic", { status: 400, error_body: body });
  await assert.rejects(
    openai.chat.completions.create({ model: "anthropic", messages: [{ role: "user", content: "x" }] }),
    (e) => e.status === 400 && e.code === "context_length_exceeded",
  );
});

test("JS: Azure's content-filter chunk does not become the Anthropic message id; stop sequences come back", async () => {
  await mock.set("azure", { raw_chunks: [{ text: sseFixture("azure/stream_content_filter.sse") }] });
  const m = await anthropic.messages.stream({ model: "azure", max_tokens: 10, messages: [{ role: "user", content: "x" }] }).finalMessage();
  assert.equal(m.id, "chatcmpl-BleatwEUn3D8iXsgXpDqeOPEMuW3j");
  assert.equal(m.content[0].text, "Hallo Welt!");
  await mock.set("anthropic", { raw_body: fixture("anthropic/stop_sequence_response.json"), raw_content_type: "application/json" });
  const s = await anthropic.messages.create({ model: "anthropic", max_tokens: 10, messages: [{ role: "user", content: "x" }] });
  assert.equal(s.stop_sequence, "Paris");
});

test("JS: reasoning reaches the other dialect, and reasoning settings map both ways", async () => {
  await mock.set("bedrock", { raw_body: fixture("bedrock/converse_reasoning.json"), raw_content_type: "application/json" });
  const m = await anthropic.messages.create({ model: "bedrock", max_tokens: 10, messages: [{ role: "user", content: "x" }] });
  assert.deepEqual(m.content.map((b) => b.type), ["thinking", "text"]);
  assert.ok(m.content[0].signature.startsWith("EvYBCkgI"));
  await mock.set("anthropic", { raw_chunks: [{ text: sseFixture("anthropic/stream_thinking.sse") }] });
  let reasoning = "";
  for await (const c of await openai.chat.completions.create({ model: "anthropic", messages: [{ role: "user", content: "x" }], stream: true })) {
    reasoning += c.choices[0]?.delta?.reasoning_content ?? "";
  }
  assert.ok(reasoning.length > 0, "the thinking deltas arrive as reasoning_content");
  await mock.reset();
  await anthropic.messages.create({
    model: "gemini",
    max_tokens: 10,
    thinking: { type: "enabled", budget_tokens: 2048 },
    messages: [{ role: "user", content: "x" }],
  });
  const req = await lastRequest("gemini");
  assert.deepEqual(req.body.generationConfig.thinkingConfig, { thinkingBudget: 2048, includeThoughts: true });
});

test("JS: a field without an equivalent is unsupported_parameter, naming it", async () => {
  await assert.rejects(
    openai.chat.completions.create({ model: "gemini", logprobs: true, messages: [{ role: "user", content: "x" }] }),
    (e) => e.status === 400 && e.code === "unsupported_parameter" && e.message.includes("`logprobs`"),
  );
});
