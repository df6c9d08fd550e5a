// Analytics Engine: one data point per request, from its record, through a recording stand-in for the
// MERIDIAN_ANALYTICS binding, named as such (the local runtime's own dataset accepts points and drops them; see
// harness.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startMock, startWorker, DEMO_KEY, DEMO_KEY_SHA256 } from "./harness.mjs";

let mock, worker;

before(async () => {
  mock = await startMock({ east: {} });
  worker = await startWorker(
    {
      keys: [{ name: "demo", sha256: DEMO_KEY_SHA256 }],
      providers: { east: { kind: "openai", base_url: `${mock.regions.east}/v1` } },
      models: {
        m: { deployments: [{ provider: "east", model: "mock-1", region: "us-east-1", price: { input: 2, output: 8 } }] },
      },
    },
    {},
    { analytics: true },
  );
});

after(async () => {
  await worker?.stop();
  await mock?.stop();
});

const post = (key, body) =>
  fetch(`${worker.url}/v1/chat/completions`, {
    method: "POST",
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), "content-type": "application/json" },
    body: JSON.stringify(body),
  });

test("every request writes one data point: key, model, deployment, status, tokens and cost, never content", async () => {
  const served = await post(DEMO_KEY, { model: "m", messages: [{ role: "user", content: "secret prompt words" }] });
  const answer = await served.text();
  const cost = Number(served.headers.get("x-meridian-cost-usd"));
  const refused = await post(null, { model: "m", messages: [{ role: "user", content: "hi" }] });
  await refused.arrayBuffer();
  assert.equal(refused.status, 401);
  const end = Date.now() + 5000;
  let points = await worker.analyticsPoints();
  while (points.length < 2 && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 20));
    points = await worker.analyticsPoints();
  }
  await new Promise((r) => setTimeout(r, 200));
  points = await worker.analyticsPoints();
  process.stderr.write(`analytics stand-in received ${points.length} data points: ${JSON.stringify(points)}\n`);
  assert.equal(points.length, 2);
  const [p, q] = points;
  assert.deepEqual(p.indexes, ["demo"]);
  assert.deepEqual(p.blobs.slice(0, 4), ["demo", "demo", "m", "east/mock-1"]);
  assert.equal(p.doubles[8], 200);
  assert.ok(p.doubles[0] > 0 && p.doubles[1] > 0, "tokens");
  assert.ok(Math.abs(p.doubles[5] - cost) < 1e-8, `cost ${p.doubles[5]} vs header ${cost}`);
  assert.equal(q.doubles[8], 401);
  assert.equal(q.blobs[7], "missing_api_key");
  const text = JSON.stringify(points);
  assert.ok(!text.includes("secret prompt") && !text.includes(JSON.parse(answer).choices[0].message.content));
});
