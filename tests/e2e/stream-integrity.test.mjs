// Stream integrity (issue 14), against the compiled worker: what a broken provider's stream can and cannot do
// to a client. The mock's `raw_chunks` knob sends exactly the bytes of each case, one flushed write per piece.
// Findings covered here: 7 (checking after the first content, nothing after [DONE]), 8 (only whole events, the
// error event on a fresh boundary), 12 (a failed stream is not cached), 13 (idle timeout), 14 (one first-content
// deadline), 16 (a cap per event), 17 (invalid UTF-8) and 20 (a slow reader holds the provider back).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startMock, startWorker, chat, DEMO_KEY, isolateHeapAfterGc, workerdRss } from "./harness.mjs";

// The isolate's inspector, for its live heap after a full garbage collection (finding 20).
const INSPECTOR_PORT = 9341;

const FIRST_BYTE_MS = 2000;
const IDLE_MS = 1500;
let mock, worker;

before(async () => {
  mock = await startMock({ us: {}, broken: {} });
  const p = (name) => ({ kind: "openai", base_url: `${mock.regions[name]}/v1` });
  const one = (model, extra = {}) => ({
    ...extra,
    deployments: [{ provider: "mock-broken", model, region: "us-east-1" }],
  });
  worker = await startWorker({
    keys: [{ name: "demo", sha256: "2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea" }],
    providers: { "mock-us": p("us"), "mock-broken": p("broken") },
    models: {
      // One model id per case: what routing learns from one case must not steer the next.
      ...Object.fromEntries(["f7", "f8", "f13", "f14", "f16", "f17", "f20"].map((m) => [m, one(m)])),
      f12: one("f12", { cache: { ttl_s: 3600 } }),
      "f17-before": {
        deployments: [
          { provider: "mock-broken", model: "f17b", region: "us-east-1" },
          { provider: "mock-us", model: "f17b", region: "us-east-1", weight: 0.5 },
        ],
      },
    },
    routing: { exploration: 0 },
    timeouts: { first_byte_ms: FIRST_BYTE_MS, idle_ms: IDLE_MS },
  }, {}, { inspectorPort: INSPECTOR_PORT });
});

after(async () => {
  await worker?.stop();
  await mock?.stop();
});

const chunk = (delta, finish = null, extra = {}) =>
  `data: ${JSON.stringify({
    id: "chatcmpl-1",
    object: "chat.completion.chunk",
    created: 1,
    model: "m",
    choices: [{ index: 0, delta, finish_reason: finish }],
    ...extra,
  })}\n\n`;
const ROLE = chunk({ role: "assistant", content: "" });
const HELLO = chunk({ content: "Hello" });
const STOP = chunk({}, "stop");
const DONE = "data: [DONE]\n\n";
const hi = [{ role: "user", content: "hi" }];

async function raw(chunks, extra = {}) {
  const chunkList = chunks.map((c) => (typeof c === "string" ? { text: c } : c));
  await mock.set("broken", { raw_cut: null, header_delay_ms: null, raw_chunks: chunkList, ...extra });
}

/** The whole body as text, and its SSE blocks. */
async function blocks(r) {
  const text = await r.text();
  return { text, blocks: text.split("\n\n").filter((b) => b !== "") };
}

/** Every block is one whole `data:` event whose payload is JSON or [DONE]: what the official SDKs can parse. */
function assertWholeEvents(text) {
  assert.ok(text.endsWith("\n\n"), `ends on an event boundary: ${JSON.stringify(text.slice(-80))}`);
  for (const b of text.split("\n\n").filter((x) => x !== "")) {
    assert.ok(b.startsWith("data: "), `a whole event: ${JSON.stringify(b)}`);
    const data = b.slice(6);
    if (data !== "[DONE]") JSON.parse(data);
  }
}

function lastError(text) {
  const bs = text.split("\n\n").filter((x) => x !== "");
  return JSON.parse(bs[bs.length - 1].slice(6)).error;
}

test("finding 7: an error object after content ends the stream with an error event; nothing after [DONE]", async () => {
  await raw([ROLE, HELLO, 'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n', STOP, DONE]);
  let r = await chat(worker.url, { model: "f7", stream: true, messages: hi });
  assert.equal(r.status, 200);
  let { text } = await blocks(r);
  assertWholeEvents(text);
  assert.ok(text.includes("Hello"));
  assert.equal(lastError(text).code, "upstream_stream_error");
  assert.ok(!text.includes("[DONE]"), "a failed stream never looks complete");

  await raw([ROLE, HELLO, STOP, DONE, chunk({ content: "late" }), DONE]);
  r = await chat(worker.url, { model: "f7", stream: true, messages: hi });
  ({ text } = await blocks(r));
  assert.ok(text.endsWith(DONE), text);
  assert.ok(!text.includes("late"), "nothing after the end marker");
  assert.equal(text.split(DONE).length, 2, "one [DONE]");
});

test("finding 8: half an event never reaches the client, and the error event starts on a fresh boundary", async () => {
  const cases = [
    // A garbage event split across two writes.
    [[ROLE, HELLO, "data: {not", "data\n\n", STOP, DONE], {}],
    // A valid event cut in the middle by the connection closing.
    [[ROLE, HELLO, 'data: {"choices":[{"index":0,"delta":{"content":"par'], { raw_cut: true }],
    // The same, with a clean end.
    [[ROLE, HELLO, 'data: {"choices":[{"index":0,"delta":{"content":"par'], {}],
  ];
  for (const [chunks, extra] of cases) {
    await raw(chunks, extra);
    const r = await chat(worker.url, { model: "f8", stream: true, messages: hi });
    assert.equal(r.status, 200);
    const { text } = await blocks(r);
    assertWholeEvents(text);
    assert.ok(text.includes("Hello"));
    assert.ok(!text.includes("{not") && !text.includes('"content":"par'), `no partial event: ${text}`);
    assert.match(lastError(text).code, /^upstream_(malformed|stream_error|stream_truncated)$/);
  }
  // The same through translation: an Anthropic client gets whole events and an `error` event last.
  await raw([ROLE, HELLO, "data: {not", "data\n\n", STOP, DONE]);
  const r = await fetch(`${worker.url}/v1/messages`, {
    method: "POST",
    headers: { "x-api-key": DEMO_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json" },
    body: JSON.stringify({ model: "f8", max_tokens: 10, stream: true, messages: hi }),
  });
  const text = await r.text();
  assert.ok(text.endsWith("\n\n"));
  const last = text.trim().split("\n\n").pop();
  assert.match(last, /^event: error\ndata: /);
  assert.ok(!text.includes("{not"));
});

test("finding 12: a stream the client was told failed is not cached", async () => {
  // A finish chunk, then a clean end without [DONE]: incomplete for an OpenAI-wire stream.
  await raw([ROLE, HELLO, STOP]);
  const body = {
    model: "f12",
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
    messages: [{ role: "user", content: "cache me if complete" }],
  };
  const before = await mock.requests("broken");
  let r = await chat(worker.url, body);
  assert.equal(r.status, 200);
  let { text } = await blocks(r);
  assert.equal(lastError(text).code, "upstream_stream_truncated");
  await new Promise((res) => setTimeout(res, 200));
  r = await chat(worker.url, body);
  assert.notEqual(r.headers.get("x-meridian-cache"), "HIT", "the failed stream was not stored");
  ({ text } = await blocks(r));
  assert.equal(await mock.requests("broken"), before + 2, "asked the provider again");

  // The control: the complete stream is stored, and answered from the cache next time.
  await raw([ROLE, HELLO, STOP, chunk({}, null, { choices: [], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } }), DONE]);
  r = await chat(worker.url, body);
  ({ text } = await blocks(r));
  assert.ok(text.endsWith(DONE), text);
  await new Promise((res) => setTimeout(res, 200));
  r = await chat(worker.url, body);
  assert.equal(r.headers.get("x-meridian-cache"), "HIT");
  ({ text } = await blocks(r));
  assert.ok(text.includes("Hello") && text.endsWith(DONE), text);
});

test("finding 13: a stream that goes silent after its first content ends with an error event after idle_ms", async () => {
  await raw([ROLE, HELLO, { ...{ text: chunk({ content: "too late" }) }, delay_ms: IDLE_MS * 4 }, STOP, DONE]);
  const t0 = performance.now();
  const r = await chat(worker.url, { model: "f13", stream: true, messages: hi });
  assert.equal(r.status, 200);
  const { text } = await blocks(r);
  const took = performance.now() - t0;
  assertWholeEvents(text);
  assert.ok(text.includes("Hello") && !text.includes("too late"));
  const err = lastError(text);
  assert.equal(err.code, "upstream_stream_error");
  assert.match(err.message, new RegExp(`no data for ${IDLE_MS} ms`));
  assert.ok(took >= IDLE_MS && took < IDLE_MS * 3, `ended after ${took} ms`);
  // Gaps shorter than the limit are a healthy stream.
  await raw([ROLE, HELLO, { text: chunk({ content: " world" }), delay_ms: IDLE_MS / 2 }, STOP, DONE]);
  const ok = await blocks(await chat(worker.url, { model: "f13", stream: true, messages: hi }));
  assert.ok(ok.text.includes(" world") && ok.text.endsWith(DONE), ok.text);
});

test("finding 14: the first-content deadline counts from the start of the attempt, not from the headers", async () => {
  const part = Math.round(FIRST_BYTE_MS * 0.65);
  await raw([ROLE, { text: HELLO, delay_ms: part }, STOP, DONE], { header_delay_ms: part });
  const t0 = performance.now();
  const r = await chat(worker.url, { model: "f14", stream: true, messages: hi });
  const took = performance.now() - t0;
  assert.equal(r.status, 504, `headers after ${part} ms and content ${part} ms later exceed ${FIRST_BYTE_MS} ms`);
  assert.equal((await r.json()).error.code, "upstream_timeout");
  assert.ok(took < FIRST_BYTE_MS + 600, `gave up after ${took} ms`);
  await mock.set("broken", { header_delay_ms: null });
});

test("finding 16: an event larger than the documented cap ends the stream with an error event", async () => {
  const MiB = 1024 * 1024;
  // What the finding sent: a 64 MiB line without a newline.
  await raw([ROLE, HELLO, "data: ", { text: "x".repeat(MiB), repeat: 64 }]);
  const r = await chat(worker.url, { model: "f16", stream: true, messages: hi });
  assert.equal(r.status, 200);
  const { text } = await blocks(r);
  assert.ok(text.length < 64 * 1024, "the oversized event was not forwarded");
  assertWholeEvents(text);
  const err = lastError(text);
  assert.equal(err.code, "upstream_malformed");
  assert.match(err.message, /larger than 8388608 bytes/);
  const sent = (await mock.stats()).regions.broken.raw_bytes_sent;
  assert.ok(sent < 32 * MiB, `the gateway stopped reading (${sent} bytes sent)`);
});

test("finding 17: bytes that are not UTF-8 become an error event, or a failover before the first content", async () => {
  const enc = (s) => [...Buffer.from(s)];
  const bad = [...enc('data: {"choices":[{"index":0,"delta":{"content":"'), 0xff, 0xfe, ...enc('"}}]}\n\n')];
  await raw([ROLE, HELLO, { bytes: bad }, STOP, DONE]);
  const r = await chat(worker.url, { model: "f17", stream: true, messages: hi });
  assert.equal(r.status, 200);
  const bytes = Buffer.from(await r.arrayBuffer());
  const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  assertWholeEvents(text);
  assert.ok(!text.includes("\ufffd"));
  assert.equal(lastError(text).code, "upstream_malformed");

  // Before any content, the provider has failed: the next deployment answers.
  await raw([ROLE, { bytes: bad }, STOP, DONE]);
  const fo = await chat(worker.url, { model: "f17-before", stream: true, messages: hi });
  assert.equal(fo.status, 200);
  assert.equal(fo.headers.get("x-meridian-attempts"), "2");
  const t = await fo.text();
  assert.ok(t.endsWith(DONE) && !t.includes("\ufffd"), t);
});

test("finding 20: a slow reader holds the provider back; the isolate does not buffer the stream", async () => {
  const MiB = 1024 * 1024;
  const event = chunk({ content: "x".repeat(16 * 1024 - 120) });
  const total = 6144 * event.length; // 96 MiB
  await raw([ROLE, { text: event, repeat: 6144 }, STOP, DONE]);
  const wasmMemory = async () =>
    (await (await fetch(`${worker.url}/_meridian/status`, { headers: { authorization: `Bearer ${DEMO_KEY}` } })).json())
      .wasm_memory_bytes;
  const wasmBefore = await wasmMemory();
  const heapBefore = (await isolateHeapAfterGc(INSPECTOR_PORT, "meridian")).usedSize;
  const rssBefore = workerdRss();
  assert.ok(rssBefore > 0, "found the workerd process");
  const r = await chat(worker.url, { model: "f20", stream: true, messages: hi });
  assert.equal(r.status, 200);
  const reader = r.body.getReader();
  let read = 0;
  while (read < MiB) {
    const { value, done } = await reader.read();
    assert.ok(!done);
    read += value.length;
  }
  // The client stops reading for a while; whatever the gateway does meanwhile shows in what the provider sent.
  await new Promise((res) => setTimeout(res, 1500));
  const sent = (await mock.stats()).regions.broken.raw_bytes_sent;
  const grown = workerdRss() - rssBefore;
  // What the sockets between the mock, workerd and this client hold (several MiB each on loopback) is the
  // slack; without backpressure the gateway reads the whole stream and workerd grows by twice its size.
  assert.ok(sent - read < 40 * MiB, `provider sent ${sent} bytes while the client had read ${read} (of ${total})`);
  assert.ok(grown < 64 * MiB, `workerd grew by ${grown} bytes`);
  // Nothing on the Rust side holds the stalled stream's bytes (make bench-memory: what grows is the JavaScript heap
  // every stream passing through JavaScript fills, a relay's as much).
  const wasmGrown = (await wasmMemory()) - wasmBefore;
  assert.ok(wasmGrown <= MiB, `Meridian's WebAssembly memory grew by ${wasmGrown} bytes while the stream was stalled`);
  // Nor does the JavaScript side: what workerd grew by is the garbage of the bytes that went through before the
  // stream stalled, which a full collection takes back; what stays live is a few of the stream's 16 KiB events.
  const heapHeld = (await isolateHeapAfterGc(INSPECTOR_PORT, "meridian")).usedSize - heapBefore;
  assert.ok(heapHeld <= MiB, `the isolate's live heap grew by ${heapHeld} bytes while the stream was stalled`);
  // Then it reads the rest, and gets all of it.
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    read += value.length;
  }
  assert.ok(read > total, `read ${read}`);
});
