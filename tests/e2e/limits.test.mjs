// Limits decided at the edge, with the limiter object made far away: MERIDIAN_TEST_LIMITER_DELAY_MS (a test-only
// setting) adds 150 ms before every call to it. A leased key's requests after the first pay nothing for it; an
// exact key's pay it every time.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { startMock, startWorker, DEMO_KEY, DEMO_KEY_SHA256 } from "./harness.mjs";

const DELAY_MS = 150;
const sha = (s) => createHash("sha256").update(s).digest("hex");
let mock, worker;

before(async () => {
  mock = await startMock({ up: {} });
  worker = await startWorker(
    {
      keys: [
        { name: "demo", sha256: DEMO_KEY_SHA256 },
        { name: "leased", sha256: sha("leased-key"), rpm: 6000 },
        { name: "exact", sha256: sha("exact-key"), rpm: 6000, exact_limits: true },
      ],
      providers: { up: { kind: "openai", base_url: `${mock.regions.up}/v1` } },
      models: { m: { deployments: [{ provider: "up", model: "mock-1", region: "us-east-1" }] } },
    },
    { MERIDIAN_TEST_LIMITER_DELAY_MS: String(DELAY_MS) },
    { limiter: true },
  );
});

after(async () => {
  await worker?.stop();
  await mock?.stop();
});

async function timed(key) {
  const t0 = performance.now();
  const r = await fetch(`${worker.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
  });
  await r.arrayBuffer();
  assert.equal(r.status, 200);
  return performance.now() - t0;
}

const p50 = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

test("with the limiter 150 ms away, a leased key's requests after the first pay no extra latency", async () => {
  const first = await timed("leased-key");
  assert.ok(first >= DELAY_MS, `a fresh isolate's first request waits for the object: ${first.toFixed(1)} ms`);
  await timed(DEMO_KEY);
  const free = [];
  const leased = [];
  const exact = [];
  for (let i = 0; i < 30; i++) {
    free.push(await timed(DEMO_KEY));
    leased.push(await timed("leased-key"));
    if (i < 5) exact.push(await timed("exact-key"));
  }
  const [f, l, e] = [p50(free), p50(leased), p50(exact)];
  process.stderr.write(
    `limiter ${DELAY_MS} ms away: p50 unlimited ${f.toFixed(2)} ms, leased ${l.toFixed(2)} ms, exact ${e.toFixed(2)} ms; leased first request ${first.toFixed(1)} ms\n`,
  );
  assert.ok(l - f < 10, `leased p50 ${l.toFixed(2)} ms vs unlimited ${f.toFixed(2)} ms`);
  assert.ok(e >= DELAY_MS, `an exact key pays the distance every time: ${e.toFixed(2)} ms`);
});
