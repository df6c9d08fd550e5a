// An invalid configuration must answer every request with a clear 500 naming the problem, never crash.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, DEMO_KEY_SHA256, chat } from "./harness.mjs";

const workers = [];
after(() => Promise.all(workers.map((w) => w.stop())));

test("an invalid config names the offending path in a 500 error", async () => {
  const w = await startWorker({
    keys: [{ name: "demo", sha256: DEMO_KEY_SHA256 }],
    providers: { p: { kind: "openai", base_url: "http://127.0.0.1:9/v1" } },
    models: { fast: { deployments: [{ provider: "p", model: "m", region: "us-east-1" }, { provider: "nope", model: "m", region: "us-east-1" }] } },
  });
  workers.push(w);
  for (let i = 0; i < 2; i++) {
    const r = await chat(w.url, { model: "fast", messages: [{ role: "user", content: "x" }] });
    assert.equal(r.status, 500);
    const body = await r.json();
    assert.equal(body.error.code, "invalid_config");
    assert.match(body.error.message, /models\.fast\.deployments\[1\]\.provider: unknown provider "nope"/);
  }
});

test("a config given as a JSON string works like a table", async () => {
  const w = await startWorker(
    JSON.stringify({
      keys: [{ name: "demo", sha256: DEMO_KEY_SHA256 }],
      providers: { p: { kind: "openai", base_url: "http://127.0.0.1:9/v1" } },
      models: { fast: { deployments: [{ provider: "p", model: "m", region: "us-east-1" }] } },
    }),
  );
  workers.push(w);
  const r = await fetch(`${w.url}/v1/models`, { headers: { authorization: "Bearer demo" } });
  assert.equal(r.status, 200);
  assert.equal((await r.json()).data[0].id, "fast");
  // Nothing listens on port 9: a connect failure is a 502 in OpenAI's shape.
  const c = await chat(w.url, { model: "fast", messages: [{ role: "user", content: "x" }] });
  assert.equal(c.status, 502);
  assert.equal((await c.json()).error.code, "upstream_unreachable");
});

test("a panic becomes a JSON 500 in the caller's dialect, and the isolate keeps serving", async () => {
  const w = await startWorker({
    keys: [{ name: "demo", sha256: DEMO_KEY_SHA256 }],
    providers: { p: { kind: "openai", base_url: "http://127.0.0.1:9/v1" } },
    models: { fast: { deployments: [{ provider: "p", model: "m", region: "us-east-1" }] } },
    debug_panic_route: true,
  });
  workers.push(w);
  const r = await fetch(`${w.url}/_meridian/debug/panic`, { method: "POST" });
  assert.equal(r.status, 500);
  const body = await r.json();
  assert.equal(body.error.code, "internal_error");
  for (let i = 0; i < 3; i++) {
    const ok = await fetch(`${w.url}/v1/models`, { headers: { authorization: "Bearer demo" } });
    assert.equal(ok.status, 200, "the next requests are served");
  }
  const again = await fetch(`${w.url}/_meridian/debug/panic`, { method: "POST" });
  assert.equal(again.status, 500);
  assert.equal((await fetch(`${w.url}/healthz`)).status, 200);
  // A panic after the request has awaited something (its answer is then owed by a task, not by the call).
  for (let i = 0; i < 2; i++) {
    const late = await fetch(`${w.url}/_meridian/debug/panic-after-await`, { method: "POST" });
    assert.equal(late.status, 500);
    assert.equal((await late.json()).error.code, "internal_error");
  }
  const ok = await fetch(`${w.url}/v1/models`, { headers: { authorization: "Bearer demo" } });
  assert.equal(ok.status, 200, "requests after a late panic are served");
});
