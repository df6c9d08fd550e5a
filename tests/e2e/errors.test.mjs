// Bad input and bad upstreams get a clear error in the caller's own dialect, with a fitting status.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { startAllKinds, DEMO_KEY } from "./harness.mjs";

let mock, worker;
before(async () => ({ mock, worker } = await startAllKinds()));
after(async () => {
  await worker?.stop();
  await mock?.stop();
});
beforeEach(() => mock.reset());

const openai = (body) =>
  fetch(`${worker.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${DEMO_KEY}`, "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
const anthropic = (body) =>
  fetch(`${worker.url}/v1/messages`, {
    method: "POST",
    headers: { "x-api-key": DEMO_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

/** Asserts an OpenAI-shaped error and returns it. */
async function openaiError(r, status) {
  assert.equal(r.status, status);
  assert.match(r.headers.get("content-type"), /application\/json/);
  const b = await r.json();
  assert.equal(typeof b.error?.message, "string", JSON.stringify(b));
  assert.equal(typeof b.error?.type, "string");
  return b.error;
}

/** Asserts an Anthropic-shaped error and returns it. */
async function anthropicError(r, status) {
  assert.equal(r.status, status);
  const b = await r.json();
  assert.equal(b.type, "error", JSON.stringify(b));
  assert.equal(typeof b.error?.message, "string");
  assert.equal(typeof b.error?.type, "string");
  return b.error;
}

const MSG = [{ role: "user", content: "hi" }];

test("malformed JSON", async () => {
  assert.match((await openaiError(await openai("{\"model\": "), 400)).message, /not valid JSON/);
  assert.equal((await anthropicError(await anthropic("{\"model\": "), 400)).type, "invalid_request_error");
});

test("unknown model", async () => {
  assert.equal((await openaiError(await openai({ model: "nope", messages: MSG }), 404)).code, "model_not_found");
  assert.equal((await anthropicError(await anthropic({ model: "nope", max_tokens: 5, messages: MSG }), 404)).type, "not_found_error");
});

test("missing required fields", async () => {
  assert.match((await openaiError(await openai({ model: "openai" }), 400)).message, /messages/);
  assert.match((await openaiError(await openai({ messages: MSG }), 400)).message, /model/);
  assert.match((await anthropicError(await anthropic({ model: "openai", messages: MSG }), 400)).message, /max_tokens/);
  assert.match((await anthropicError(await anthropic({ model: "openai", max_tokens: 5 }), 400)).message, /messages/);
});

test("wrong types", async () => {
  assert.match((await openaiError(await openai({ model: "openai", messages: MSG, stream: "yes" }), 400)).message, /stream/);
  assert.match((await openaiError(await openai({ model: 7, messages: MSG }), 400)).message, /model/);
  // Only checked when translating: an Anthropic-bound request must be fully understood.
  assert.match(
    (await openaiError(await openai({ model: "anthropic", messages: MSG, temperature: "hot" }), 400)).message,
    /temperature/,
  );
  assert.match((await anthropicError(await anthropic({ model: "openai", max_tokens: "many", messages: MSG }), 400)).message, /max_tokens/);
  assert.match(
    (await anthropicError(await anthropic({ model: "openai", max_tokens: 5, messages: [{ role: "user", content: [{ type: "hologram" }] }] }), 400))
      .message,
    /messages\[0\]\.content\[0\]\.type/,
  );
});

test("an upstream that answers garbage is a 502, never passed on", async () => {
  for (const kind of ["openai", "anthropic", "bedrock", "gemini"]) {
    await mock.set(kind, { status: 200, error_body: "<html>proxy error</html>" });
    const e = await openaiError(await openai({ model: kind, messages: MSG }), 502);
    assert.match(e.message, /malformed|invalid JSON|not valid JSON/i, kind);
    const a = await anthropicError(await anthropic({ model: kind, max_tokens: 5, messages: MSG }), 502);
    assert.match(a.message, /malformed|JSON/i, kind);
  }
});

test("an upstream stream that starts with garbage is a 502 in the caller's dialect", async () => {
  for (const kind of ["openai", "anthropic", "bedrock", "gemini"]) {
    await mock.set(kind, { malformed_sse: true });
    const r = await openai({ model: kind, messages: MSG, stream: true });
    const e = await openaiError(r, 502);
    assert.ok(!e.message.includes("not json"), e.message);
    await anthropicError(await anthropic({ model: kind, max_tokens: 5, stream: true, messages: MSG }), 502);
  }
});
