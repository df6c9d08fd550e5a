// The rest of the API surface: the official Python SDKs (sdk_surface.py holds their assertions) and the JS SDKs
// against the compiled worker and the mock.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { generateText, streamText, tool, jsonSchema, stepCountIs } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { startAllKinds, KINDS, DEMO_KEY, runPythonSdk } from "./harness.mjs";

let mock, worker;

// Embedding models on the mock's providers.
const EMBEDDERS = {
  "emb-openai": { deployments: [{ provider: "mock-openai", model: "text-embedding-3-small", region: "us-east-1" }] },
  "emb-azure": { deployments: [{ provider: "mock-azure", model: "embed-deploy", region: "eastus" }] },
  "emb-gemini": { deployments: [{ provider: "mock-gemini", model: "gemini-embedding-001", region: "us-central1" }] },
  "emb-titan": { deployments: [{ provider: "mock-bedrock", model: "amazon.titan-embed-text-v2:0", region: "us-east-1" }] },
  "emb-cohere": { deployments: [{ provider: "mock-bedrock", model: "cohere.embed-english-v3", region: "us-east-1" }] },
};

before(async () => {
  // KV holds stored responses (previous_response_id, GET /v1/responses/{id}).
  ({ mock, worker } = await startAllKinds(EMBEDDERS, {}, { kv: true }));
});

after(async () => {
  await worker?.stop();
  await mock?.stop();
});

test("official Python SDKs: model lookup in both shapes, token counting and embeddings on every kind", async () => {
  const { code, output } = await runPythonSdk("sdk_surface.py", {
    MERIDIAN_URL: worker.url, MOCK_CONTROL: mock.control, MERIDIAN_KINDS: KINDS.join(","),
  });
  assert.equal(code, 0, "Python SDK surface tests failed (output above)");
  assert.match(output, /\nOK\n/);
});

test("JS SDKs: models.retrieve in OpenAI's shape, models.list in Anthropic's", async () => {
  const openai = new OpenAI({ baseURL: `${worker.url}/v1`, apiKey: DEMO_KEY, maxRetries: 0 });
  const anthropic = new Anthropic({ baseURL: worker.url, apiKey: DEMO_KEY, maxRetries: 0 });
  const m = await openai.models.retrieve("gemini");
  assert.equal(m.id, "gemini");
  const ids = [];
  for await (const model of anthropic.models.list()) ids.push(model.id);
  assert.deepEqual(ids.sort(), [...KINDS, ...Object.keys(EMBEDDERS)].sort());
  await assert.rejects(openai.models.retrieve("nope"), (e) => e.status === 404);
});

test("JS SDK: messages.countTokens exact from Anthropic, Bedrock and Gemini", async () => {
  const anthropic = new Anthropic({ baseURL: worker.url, apiKey: DEMO_KEY, maxRetries: 0 });
  for (const kind of ["anthropic", "bedrock", "gemini"]) {
    const r = await anthropic.messages.countTokens({ model: kind, messages: [{ role: "user", content: "one two three" }] });
    assert.equal(r.input_tokens, 3, kind);
  }
});

test("JS SDK: embeddings.create on every kind that embeds, decoding the default base64", async () => {
  const openai = new OpenAI({ baseURL: `${worker.url}/v1`, apiKey: DEMO_KEY, maxRetries: 0 });
  for (const model of ["emb-openai", "emb-azure", "emb-gemini", "emb-cohere"]) {
    const floats = await openai.embeddings.create({ model, input: ["one two", "three"], encoding_format: "float" });
    const decoded = await openai.embeddings.create({ model, input: ["one two", "three"] });
    assert.equal(decoded.data.length, 2, model);
    // The same f32 values: base64 carries them exactly, the decimal text as their shortest form.
    assert.deepEqual(decoded.data[1].embedding.map(Math.fround), floats.data[1].embedding.map(Math.fround), model);
  }
  const titan = await openai.embeddings.create({ model: "emb-titan", input: "one two three", dimensions: 256 });
  assert.equal(titan.data[0].embedding.length, 256);
  assert.equal(titan.usage.prompt_tokens, 3);
});

test("Vercel AI SDK's default openai(...) provider (the Responses API): generateText, streamText and a tool call on every kind", async () => {
  const provider = createOpenAI({ baseURL: `${worker.url}/v1`, apiKey: DEMO_KEY });
  for (const kind of KINDS) {
    const { text, usage } = await generateText({ model: provider(kind), prompt: "hello across vendors", maxRetries: 0 });
    assert.equal(text, "Echo: hello across vendors", kind);
    assert.equal(usage.inputTokens, 3, kind);
    const streamed = streamText({ model: provider(kind), prompt: "stream this please", maxRetries: 0 });
    let chunks = 0;
    let all = "";
    for await (const t of streamed.textStream) {
      chunks += 1;
      all += t;
    }
    assert.equal(all, "Echo: stream this please", kind);
    assert.ok(chunks >= 2, `${kind}: tokens arrive as they are made`);
    const calls = [];
    const withTool = await generateText({
      model: provider(kind),
      prompt: "call get_weather Paris",
      maxRetries: 0,
      tools: {
        get_weather: tool({
          description: "Current weather for a city",
          inputSchema: jsonSchema({ type: "object", properties: { query: { type: "string" } }, required: ["query"] }),
          execute: async ({ query }) => {
            calls.push(query);
            return "18C and sunny";
          },
        }),
      },
      stopWhen: stepCountIs(2),
    });
    assert.deepEqual(calls, ["Paris"], kind);
    assert.ok(withTool.text.startsWith("Echo:"), `${kind}: ${withTool.text}`);
  }
});
