// One record per request, as the structured log line the worker writes after the response (what Workers Logs and
// Logpush collect): for every provider kind, both dialects, streamed or not, with exactly the usage the mock
// counted; and exactly one line for a cache HIT, a coalesced follower, a client that leaves mid-stream, and a 4xx.
// No line holds prompt or answer text.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startAllKinds, KINDS, DEMO_KEY, chat } from "./harness.mjs";

let mock, worker;

// The mock counts words: 3 words in, and its echo ("Echo: " and the prompt) is 4 words out.
const TEXT = "hello across vendors";
const USAGE = { input: 3, output: 4 };
const ANSWER = "Echo: hello across vendors";

before(async () => {
  ({ mock, worker } = await startAllKinds({
    cached: {
      deployments: [{ provider: "mock-openai", model: "gpt-4o-mini", region: "us-east-1" }],
      cache: { ttl_s: 300, nonzero_temperature: true },
    },
    // Bedrock ranks first (weight), an OpenAI-wire deployment second.
    vision: {
      deployments: [
        { provider: "mock-bedrock", model: "anthropic.claude-3-haiku-20240307-v1:0", region: "us-east-1", weight: 1000 },
        { provider: "mock-openai", model: "gpt-4o-mini", region: "us-east-1", weight: 1 },
      ],
    },
  // No exploration: the order is the weights' (a probe would put the OpenAI-wire deployment first now and then).
  }, { routing: { exploration: 0 } }));
});

after(async () => {
  await worker?.stop();
  await mock?.stop();
});

beforeEach(() => mock.reset());

function messages(url, body, headers = {}) {
  return fetch(`${url}/v1/messages`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": DEMO_KEY, "anthropic-version": "2023-06-01", ...headers },
    body: JSON.stringify(body),
  });
}

function send(dialect, model, stream, content = TEXT, headers = {}) {
  const msgs = [{ role: "user", content }];
  if (dialect === "openai") {
    const body = { model, messages: msgs, stream };
    if (stream) body.stream_options = { include_usage: true };
    return chat(worker.url, body, { headers });
  }
  return messages(worker.url, { model, max_tokens: 100, messages: msgs, stream }, headers);
}

/** No log line may carry what was asked or answered. */
function assertNoContent() {
  for (const line of worker.logs) {
    assert.ok(!line.includes(TEXT) && !line.includes("Echo:"), `a log line holds content: ${line}`);
  }
}

const DEPLOYMENT = {
  openai: "mock-openai/gpt-4o-mini",
  azure: "mock-azure/gpt-4o-deploy",
  anthropic: "mock-anthropic/claude-sonnet-4-5",
  bedrock: "mock-bedrock/anthropic.claude-3-haiku-20240307-v1:0",
  gemini: "mock-gemini/gemini-2.5-flash",
};

for (const kind of KINDS) {
  for (const dialect of ["openai", "anthropic"]) {
    for (const stream of [false, true]) {
      test(`${dialect} dialect -> ${kind}, ${stream ? "streamed" : "whole"}: one line with the mock's usage`, async () => {
        const skip = worker.records().length;
        const resp = await send(dialect, kind, stream);
        const text = await resp.text();
        assert.equal(resp.status, 200, text);
        assert.ok(text.includes("Echo") || text.includes("across"), text);
        const recs = await worker.recordsAfter(skip, 1);
        assert.equal(recs.length, 1, JSON.stringify(recs));
        const r = recs[0];
        assert.deepEqual(r.usage, USAGE);
        assert.equal(r.principal, "demo");
        assert.equal(r.dialect, dialect);
        assert.equal(r.operation, "chat");
        assert.equal(r.model, kind);
        assert.equal(r.stream, stream);
        assert.equal(r.served_by, DEPLOYMENT[kind]);
        assert.equal(r.status, 200);
        assert.equal(r.end, "complete");
        assert.equal(r.error, undefined);
        assert.deepEqual(r.attempts.map((a) => [a.deployment, a.outcome]), [[DEPLOYMENT[kind], "committed"]]);
        assert.ok(Number.isInteger(r.ttfc_ms) && Number.isInteger(r.total_ms) && r.total_ms >= r.ttfc_ms, JSON.stringify(r));
        assertNoContent();
      });
    }
  }
}

test("a cache HIT is one line, with no provider usage", async () => {
  for (const dialect of ["openai", "anthropic"]) {
    const first = await send(dialect, "cached", false, `${TEXT} ${dialect}`);
    await first.text();
    const skip = worker.records().length;
    const hit = await send(dialect, "cached", false, `${TEXT} ${dialect}`);
    assert.equal(hit.headers.get("x-meridian-cache"), "HIT");
    await hit.text();
    const recs = await worker.recordsAfter(skip, 1);
    assert.equal(recs.length, 1, JSON.stringify(recs));
    assert.equal(recs[0].cache, "HIT");
    assert.deepEqual(recs[0].usage, {});
    assert.deepEqual(recs[0].attempts, []);
  }
  assertNoContent();
});

/** Reads an SSE response until `n` data events arrived, then stops (without reading the rest). */
async function readSome(resp, n) {
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let text = "";
  while ((text.match(/^data: /gm) || []).length < n) {
    const { value, done } = await reader.read();
    if (done) break;
    text += dec.decode(value, { stream: true });
  }
  return reader;
}

test("a coalesced follower is one line, and so is its leader that left mid-stream", async () => {
  await mock.set("openai", { token_gap_ms: 150 });
  const skip = worker.records().length;
  const body = { model: "cached", stream: true, messages: [{ role: "user", content: `${TEXT} coalesced` }] };
  const leader = await chat(worker.url, body);
  const reader = await readSome(leader, 2);
  const follower = await chat(worker.url, body);
  assert.equal(follower.headers.get("x-meridian-cache"), "COALESCED");
  await reader.cancel();
  const text = await follower.text();
  assert.ok(text.includes("[DONE]"), text);
  const recs = await worker.recordsAfter(skip, 2);
  assert.equal(recs.length, 2, JSON.stringify(recs));
  const lead = recs.find((r) => r.cache === "MISS");
  const follow = recs.find((r) => r.cache === "COALESCED");
  assert.equal(lead.end, "client_gone");
  assert.equal(follow.end, "complete");
  assert.equal(await mock.requests("openai"), 1);
  assertNoContent();
});

test("a client that leaves mid-stream is one line, written when the stream ends", async () => {
  for (const dialect of ["openai", "anthropic"]) {
    await mock.set("anthropic", { token_gap_ms: 150 });
    const skip = worker.records().length;
    const resp = await send(dialect, "anthropic", true);
    const reader = await readSome(resp, 2);
    await reader.cancel();
    const recs = await worker.recordsAfter(skip, 1);
    assert.equal(recs.length, 1, JSON.stringify(recs));
    assert.equal(recs[0].end, "client_gone");
    assert.equal(recs[0].status, 200);
    assert.equal(recs[0].served_by, DEPLOYMENT.anthropic);
  }
  assertNoContent();
});

test("a 4xx is one line with its error code", async () => {
  for (const [dialect, key, status, code] of [
    ["openai", "wrong-key", 401, "invalid_api_key"],
    ["anthropic", "wrong-key", 401, "invalid_api_key"],
  ]) {
    const skip = worker.records().length;
    const resp =
      dialect === "openai"
        ? await chat(worker.url, { model: "openai", messages: [{ role: "user", content: TEXT }] }, { key })
        : await messages(worker.url, { model: "openai", max_tokens: 10, messages: [{ role: "user", content: TEXT }] }, { "x-api-key": key });
    assert.equal(resp.status, status);
    await resp.text();
    const recs = await worker.recordsAfter(skip, 1);
    assert.equal(recs.length, 1, JSON.stringify(recs));
    assert.equal(recs[0].status, status);
    assert.equal(recs[0].error, code);
  }
  const skip = worker.records().length;
  const resp = await chat(worker.url, { model: "no-such-model", messages: [{ role: "user", content: TEXT }] });
  assert.equal(resp.status, 404);
  await resp.text();
  const recs = await worker.recordsAfter(skip, 1);
  assert.equal(recs.length, 1);
  assert.equal(recs[0].error, "model_not_found");
  assert.equal(recs[0].model, "no-such-model");
  assertNoContent();
});

test("an image URL skips the Bedrock deployment ranked first; the OpenAI-wire one answers; the record lists the skip", async () => {
  const content = [
    { type: "text", text: TEXT },
    { type: "image_url", image_url: { url: "https://example.test/cat.png" } },
  ];
  for (const dialect of ["openai", "anthropic"]) {
    const skip = worker.records().length;
    const resp =
      dialect === "openai"
        ? await chat(worker.url, { model: "vision", messages: [{ role: "user", content }] })
        : await messages(worker.url, {
            model: "vision",
            max_tokens: 100,
            messages: [{ role: "user", content: [{ type: "text", text: TEXT }, { type: "image", source: { type: "url", url: "https://example.test/cat.png" } }] }],
          });
    const text = await resp.text();
    assert.equal(resp.status, 200, text);
    assert.equal(resp.headers.get("x-meridian-deployment"), DEPLOYMENT.openai);
    const recs = await worker.recordsAfter(skip, 1);
    assert.equal(recs.length, 1);
    assert.deepEqual(
      recs[0].attempts.map((a) => [a.deployment, a.outcome, a.code]),
      [
        [DEPLOYMENT.bedrock, "skipped", "unsupported_input"],
        [DEPLOYMENT.openai, "committed", undefined],
      ],
    );
  }
  assert.equal(await mock.requests("bedrock"), 0);
});

test("an Anthropic-dialect stream from Anthropic or Gemini says the prompt's count in message_start", async () => {
  // Both count the prompt in their first event (Gemini in every chunk's usageMetadata).
  for (const kind of ["anthropic", "gemini"]) {
    const resp = await send("anthropic", kind, true);
    const text = await resp.text();
    const start = text
      .split("\n")
      .filter((l) => l.startsWith("data: "))
      .map((l) => JSON.parse(l.slice(6)))
      .find((e) => e.type === "message_start");
    assert.equal(start.message.usage.input_tokens, USAGE.input, `${kind}: ${text}`);
  }
});
