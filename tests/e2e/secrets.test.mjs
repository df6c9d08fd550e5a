// Finding 4 of issue 14: no configured secret reaches a client, however a provider reflects it. Each provider kind
// is made to echo every secret (the API key, the AWS key id and secret key) in every place a provider's text can
// take to the client: an error body, a success body, stream content, a mid-stream error event, and a header that
// becomes the answer's id; each in both dialects. The plants must land (the client sees `[redacted]`), and no form
// of a secret (as is, or JSON-escaped) may appear.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startAllKinds, chat, DEMO_KEY, PROVIDER_KEY, KINDS } from "./harness.mjs";

const AWS_ID = "AKIDEXAMPLE";
const AWS_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SECRETS = [PROVIDER_KEY, AWS_ID, AWS_SECRET];
/** What a provider might say: each secret as is; JSON.stringify of it is the JSON-escaped form. */
const LEAK = `keys: ${PROVIDER_KEY} ${AWS_ID} ${AWS_SECRET}`;
/** The same in the `\/` and `\u` forms a JSON encoder may write (only inside JSON strings). */
const LEAK_ESCAPED = `keys: ${PROVIDER_KEY} ${AWS_ID} ${AWS_SECRET.replace("/", "\\/").replace("+", "\\u002b")}`;

let mock, worker;
before(async () => {
  ({ mock, worker } = await startAllKinds());
});
after(async () => {
  await worker?.stop();
  await mock?.stop();
});

/** A JSON string literal of `text` with the escaped forms kept (JSON.stringify would re-escape the backslashes). */
const jsonText = (text) => JSON.stringify(text).replaceAll("\\\\/", "\\/").replaceAll("\\\\u002b", "\\u002b");

function assertClean(text, where) {
  for (const s of SECRETS) {
    for (const form of [s, JSON.stringify(s).slice(1, -1), s.replace("/", "\\/"), s.replace("+", "\\u002b")]) {
      assert.ok(!text.includes(form), `${where}: a form of a secret leaked: ${form}\n${text.slice(0, 600)}`);
    }
  }
  assert.ok(text.includes("[redacted]"), `${where}: the plant landed\n${text.slice(0, 600)}`);
}

/** A whole answer in each provider's wire format whose text is `t` (a JSON string literal). */
const WHOLE = {
  openai: (t) =>
    `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":${t}},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`,
  anthropic: (t) =>
    `{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":${t}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}`,
  gemini: (t) =>
    `{"candidates":[{"content":{"role":"model","parts":[{"text":${t}}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":1,"totalTokenCount":2}}`,
  bedrock: (t) =>
    `{"output":{"message":{"role":"assistant","content":[{"text":${t}}]}},"stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2}}`,
};
WHOLE.azure = WHOLE.openai;

/** A stream whose content is `t`, then (with `fail`) an error event carrying `t` instead of the end. */
const STREAM = {
  openai: (t, fail) =>
    [
      `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n`,
      `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":${t}},"finish_reason":null}]}\n\n`,
      fail
        ? `data: {"error":{"message":${t},"type":"server_error"}}\n\n`
        : `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n`,
    ],
  anthropic: (t, fail) => [
    `event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"usage":{"input_tokens":1,"output_tokens":0}}}\n\n`,
    `event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n`,
    `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":${t}}}\n\n`,
    fail
      ? `event: error\ndata: {"type":"error","error":{"type":"api_error","message":${t}}}\n\n`
      : `event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\nevent: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":1}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n`,
  ],
  gemini: (t, fail) => [
    `data: {"candidates":[{"content":{"role":"model","parts":[{"text":${t}}]},"index":0}]}\r\n\r\n`,
    fail
      ? `data: {"error":{"code":500,"message":${t},"status":"INTERNAL"}}\r\n\r\n`
      : `data: {"candidates":[{"content":{"role":"model","parts":[{"text":"."}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":1,"totalTokenCount":2}}\r\n\r\n`,
  ],
};
STREAM.azure = STREAM.openai;

async function ask(kind, { stream, dialect }) {
  if (dialect === "openai") return chat(worker.url, { model: kind, stream, messages: [{ role: "user", content: "hi" }] });
  return fetch(`${worker.url}/v1/messages`, {
    method: "POST",
    headers: { "x-api-key": DEMO_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json" },
    body: JSON.stringify({ model: kind, max_tokens: 50, stream, messages: [{ role: "user", content: "hi" }] }),
  });
}

const reset = (kind) =>
  mock.set(kind, {
    status: null,
    error_body: null,
    error_headers: null,
    raw_body: null,
    raw_chunks: null,
    raw_headers: null,
    raw_content_type: null,
  });

for (const kind of KINDS) {
  for (const dialect of ["openai", "anthropic"]) {
    test(`finding 4: ${kind} echoing the secrets reaches an ${dialect}-dialect client redacted`, async () => {
      // An error answer (the provider's message is passed on, shortened).
      for (const status of [400, 401, 500]) {
        await mock.set(kind, { status, error_body: `{"error":{"message":${jsonText(LEAK_ESCAPED)}},"message":${jsonText(LEAK)}}` });
        const r = await ask(kind, { stream: false, dialect });
        assert.ok(r.status >= 400);
        assertClean(await r.text(), `${kind} HTTP ${status}`);
      }
      await reset(kind);
      // A whole answer that quotes them, with a request id that does.
      await mock.set(kind, {
        raw_body: WHOLE[kind](jsonText(LEAK_ESCAPED)),
        raw_content_type: "application/json",
        raw_headers: { "x-request-id": PROVIDER_KEY, "request-id": PROVIDER_KEY, "x-amzn-requestid": PROVIDER_KEY },
      });
      let r = await ask(kind, { stream: false, dialect });
      assert.equal(r.status, 200, kind);
      let text = await r.text();
      assertClean(text, `${kind} whole answer`);
      assertClean([...r.headers].join("\n") + text, `${kind} headers`);
      await reset(kind);
      // Streams (Bedrock's binary event stream is covered by its error and whole answers).
      if (STREAM[kind]) {
        for (const fail of [false, true]) {
          await mock.set(kind, {
            raw_chunks: STREAM[kind](jsonText(LEAK_ESCAPED), fail).map((c) => ({ text: c })),
            raw_headers: { "x-request-id": PROVIDER_KEY, "request-id": PROVIDER_KEY },
          });
          r = await ask(kind, { stream: true, dialect });
          assert.equal(r.status, 200, `${kind} stream`);
          text = await r.text();
          assertClean([...r.headers].join("\n") + text, `${kind} stream${fail ? " with an error event" : ""}`);
        }
        await reset(kind);
      }
    });
  }
}
