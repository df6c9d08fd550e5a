// Routing by price: a model with `objective = "cost"` takes its cheaper deployment while that is predicted to
// answer within `max_ttft_ms`, and moves to the faster one when the mock slows the cheap one past it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startMock, startWorker, DEMO_KEY, DEMO_KEY_SHA256 } from "./harness.mjs";

let mock, worker;

before(async () => {
  mock = await startMock({ cheap: { header_delay_ms: 40 }, fast: {} });
  worker = await startWorker({
    keys: [{ name: "demo", sha256: DEMO_KEY_SHA256 }],
    providers: {
      cheap: { kind: "openai", base_url: `${mock.regions.cheap}/v1` },
      fast: { kind: "openai", base_url: `${mock.regions.fast}/v1` },
    },
    models: {
      m: {
        objective: "cost",
        max_ttft_ms: 250,
        deployments: [
          { provider: "fast", model: "mock-1", region: "fast", price: { input: 2.5, output: 10 } },
          { provider: "cheap", model: "mock-1", region: "cheap", price: { input: 0.15, output: 0.6 } },
        ],
      },
    },
    regions: { cheap: { lat: 40, lon: -75 }, fast: { lat: 40, lon: -75 } },
    // No exploration probes: every request shows the policy's own choice.
    routing: { exploration: 0 },
  });
});

after(async () => {
  await worker?.stop();
  await mock?.stop();
});

async function ask() {
  const r = await fetch(`${worker.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${DEMO_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
  });
  await r.arrayBuffer();
  assert.equal(r.status, 200);
  return { region: r.headers.get("x-meridian-region"), reason: r.headers.get("x-meridian-route-reason") };
}

test("cost routing takes the cheaper region within max_ttft_ms and the faster one once the cheap one is slowed past it", async () => {
  const first = [];
  for (let i = 0; i < 20; i++) first.push(await ask());
  const cheapShare = first.filter((a) => a.region === "cheap").length;
  assert.ok(cheapShare >= 19, `the cheap region while it is within 250 ms: ${JSON.stringify(first)}`);
  assert.equal(first.at(-1).reason, "cheapest-within-ttft");

  await mock.set("cheap", { header_delay_ms: 600 });
  const after = [];
  for (let i = 0; i < 40; i++) after.push(await ask());
  const moved = after.findIndex((a) => a.region === "fast");
  const tail = after.slice(-20);
  process.stderr.write(
    `cost routing: ${cheapShare}/20 to the cheap region at 40 ms; slowed to 600 ms, moved after ${moved} requests; last 20: ${tail.filter((a) => a.region === "fast").length} to the fast one (${tail.at(-1).reason})\n`,
  );
  assert.ok(moved >= 0 && moved <= 10, `moves to the faster region: ${JSON.stringify(after)}`);
  assert.ok(tail.every((a) => a.region === "fast"), JSON.stringify(tail));
  assert.equal(tail.at(-1).reason, "cheapest-within-ttft", "the fast one is now the cheapest within the limit");
});
