// Safe to expose to browsers: keys and their policies, signed browser tokens, CORS, shared rate limits, hard
// input limits, and provider secrets that never reach a client.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { startMock, startWorker, DEMO_KEY, DEMO_KEY_SHA256 } from "./harness.mjs";

const APP = "https://app.example.com";
const EVIL = "https://evil.example.net";
const TOKEN_SECRET = "token-signing-secret-0123456789abcdef";
const LIMITED_KEY = "limited-key";
const NARROW_KEY = "narrow-key";
const LEASED_KEY = "leased-key";
const PROVIDER_KEY = "sk-provider-secret-9876543210";
const sha = (s) => createHash("sha256").update(s).digest("hex");
let mock, worker;

before(async () => {
  mock = await startMock({ up: {} });
  worker = await startWorker(
    {
      keys: [
        { name: "demo", sha256: DEMO_KEY_SHA256 },
        { name: "narrow", sha256: sha(NARROW_KEY), models: ["open"] },
        { name: "limited", sha256: sha(LIMITED_KEY), rpm: 3 },
        { name: "leased", sha256: sha(LEASED_KEY), rpm: 20, exact_limits: false },
        { name: "web", sha256: sha("web-backend-key"), models: ["open", "guarded"] },
      ],
      cors_origins: [APP],
      browser_tokens: { key: "web", secrets: { k1: "TOKEN_SECRET" } },
      providers: { up: { kind: "openai", base_url: `${mock.regions.up}/v1`, api_key_secret: "PROVIDER_KEY" } },
      models: {
        open: { deployments: [{ provider: "up", model: "mock-1", region: "us-east-1" }] },
        guarded: { deployments: [{ provider: "up", model: "mock-2", region: "us-east-1" }] },
      },
      limits: { max_body_bytes: 65536, max_messages: 50, max_tokens: 4096, rate_window_s: 3 },
    },
    { TOKEN_SECRET, PROVIDER_KEY },
    { limiter: true },
  );
});

after(async () => {
  await worker?.stop();
  await mock?.stop();
});

const b64url = (buf) => Buffer.from(buf).toString("base64url");
/** Mints a token exactly as the documented format says (independently of the Rust code). */
function mint(claims, secret = TOKEN_SECRET) {
  const payload = b64url(JSON.stringify(claims));
  const sig = b64url(createHmac("sha256", secret).update(`mrd1.${payload}`).digest());
  return `mrd1.${payload}.${sig}`;
}
const now = () => Math.floor(Date.now() / 1000);

function chat(model, { key = DEMO_KEY, origin, body, headers = {} } = {}) {
  return fetch(`${worker.url}/v1/chat/completions`, {
    method: "POST",
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(origin ? { origin } : {}),
      "content-type": "application/json",
      ...headers,
    },
    body: body ?? JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
  });
}

test("no key and wrong key are 401; a key without the model is 403", async () => {
  assert.equal((await chat("open", { key: null })).status, 401);
  assert.equal((await chat("open", { key: "nope" })).status, 401);
  const r = await chat("guarded", { key: NARROW_KEY });
  assert.equal(r.status, 403);
  assert.equal((await r.json()).error.type, "permission_error");
  assert.equal((await chat("open", { key: NARROW_KEY })).status, 200);
});

test("browser tokens: valid, expired, tampered, wrong origin, wrong model", async () => {
  const claims = { exp: now() + 300, models: ["open"], origin: APP, sub: "user-1" };
  const ok = await chat("open", { key: mint(claims), origin: APP });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get("access-control-allow-origin"), APP);
  assert.match(ok.headers.get("access-control-expose-headers") ?? "", /x-meridian-deployment/);

  const expired = await chat("open", { key: mint({ ...claims, exp: now() - 120 }), origin: APP });
  assert.equal(expired.status, 401);
  assert.match((await expired.json()).error.message, /expired/i);

  const token = mint(claims);
  const [p, payload, sig] = token.split(".");
  const forged = b64url(JSON.stringify({ ...claims, models: ["*"] }));
  assert.equal((await chat("guarded", { key: `${p}.${forged}.${sig}`, origin: APP })).status, 401, "tampered payload");
  const flipped = sig.slice(0, -2) + (sig.at(-2) === "A" ? "B" : "A") + sig.at(-1);
  assert.equal((await chat("open", { key: `${p}.${payload}.${flipped}`, origin: APP })).status, 401, "tampered signature");
  assert.equal((await chat("open", { key: mint(claims, "another-secret-0123456789abcdef"), origin: APP })).status, 401);

  const wrongOrigin = await chat("open", { key: token, origin: EVIL });
  assert.equal(wrongOrigin.status, 401);
  assert.equal(wrongOrigin.headers.get("access-control-allow-origin"), null, "no CORS for a foreign origin");
  assert.equal((await chat("open", { key: token })).status, 401, "a token without its origin is refused");

  const notAllowed = await chat("guarded", { key: token, origin: APP });
  assert.equal(notAllowed.status, 403);
});

test("CORS preflight from an allowed and from a forbidden origin", async () => {
  const pre = (origin) =>
    fetch(`${worker.url}/v1/chat/completions`, {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
      },
    });
  const ok = await pre(APP);
  assert.equal(ok.status, 204);
  assert.equal(ok.headers.get("access-control-allow-origin"), APP);
  assert.match(ok.headers.get("access-control-allow-methods"), /POST/);
  assert.match(ok.headers.get("access-control-allow-headers"), /authorization/);
  const no = await pre(EVIL);
  assert.equal(no.status, 403);
  assert.equal(no.headers.get("access-control-allow-origin"), null);
});

test("the rate limit trips with a clear 429 and recovers", async () => {
  // Wait for the start of a fresh 3 s window so the count is deterministic.
  await new Promise((r) => setTimeout(r, 3000 - (Date.now() % 3000) + 50));
  const statuses = [];
  for (let i = 0; i < 5; i++) statuses.push(await chat("open", { key: LIMITED_KEY }));
  assert.deepEqual(statuses.map((r) => r.status), [200, 200, 200, 429, 429]);
  // Every answer of a limited key says where it stands (OpenAI's header names), the 429s included.
  assert.deepEqual(statuses.map((r) => r.headers.get("x-ratelimit-remaining-requests")), ["2", "1", "0", "0", "0"]);
  for (const r of statuses) {
    assert.equal(r.headers.get("x-ratelimit-limit-requests"), "3");
    assert.match(r.headers.get("x-ratelimit-reset-requests"), /^(\d+ms|[1-3]s)$/);
    assert.equal(r.headers.get("x-ratelimit-limit-tokens"), null, "the key has no tpm");
  }
  const limited = statuses[3];
  assert.ok(Number(limited.headers.get("retry-after")) >= 1);
  assert.equal((await limited.json()).error.type, "rate_limit_error");
  const anth = await fetch(`${worker.url}/v1/messages`, {
    method: "POST",
    headers: { "x-api-key": LIMITED_KEY, "content-type": "application/json" },
    body: JSON.stringify({ model: "open", max_tokens: 5, messages: [{ role: "user", content: "hi" }] }),
  });
  assert.equal(anth.status, 429);
  assert.equal((await anth.json()).error.type, "rate_limit_error", "in the caller's dialect");
  assert.equal(anth.headers.get("x-ratelimit-remaining-requests"), "0");
  const other = await chat("open");
  assert.equal(other.status, 200, "other keys are unaffected");
  assert.equal(other.headers.get("x-ratelimit-limit-requests"), null, "a key without limits has no such headers");
  await new Promise((r) => setTimeout(r, 3200));
  assert.equal((await chat("open", { key: LIMITED_KEY })).status, 200, "recovered in the next window");
});

test("limits decided at the edge: 50 concurrent requests against rpm = 20 let 20 through, 429 in both dialects", async () => {
  // Start just after a window boundary (3 s windows here), so that the burst falls in one window.
  while (Date.now() % 3000 > 300) await new Promise((r) => setTimeout(r, 20));
  const burst = await Promise.all(Array.from({ length: 50 }, () => chat("open", { key: LEASED_KEY })));
  const ok = burst.filter((r) => r.status === 200).length;
  const limited = burst.filter((r) => r.status === 429);
  for (const r of burst) await r.arrayBuffer();
  process.stderr.write(`leased limit: ${ok} of 50 concurrent requests admitted against rpm = 20\n`);
  assert.ok(ok <= 20, `at most the limit: ${ok}`);
  assert.ok(ok >= 10, `the budget is used, not stranded in slices: ${ok}`);
  assert.equal(ok + limited.length, 50);
  assert.ok(limited.every((r) => Number(r.headers.get("retry-after")) >= 1));
  assert.ok(burst.every((r) => r.headers.get("x-ratelimit-limit-requests") === "20"));
  assert.ok(limited.every((r) => r.headers.get("x-ratelimit-remaining-requests") === "0"));
  const anth = await fetch(`${worker.url}/v1/messages`, {
    method: "POST",
    headers: { "x-api-key": LEASED_KEY, "content-type": "application/json" },
    body: JSON.stringify({ model: "open", max_tokens: 5, messages: [{ role: "user", content: "hi" }] }),
  });
  if (anth.status === 429) {
    assert.equal((await anth.json()).error.type, "rate_limit_error", "in the caller's dialect");
    assert.ok(Number(anth.headers.get("retry-after")) >= 1);
  } else {
    await anth.arrayBuffer();
  }
  await new Promise((r) => setTimeout(r, 3200));
  assert.equal((await chat("open", { key: LEASED_KEY })).status, 200, "recovered in the next window");
});

test("a provider key planted in an error body or headers never reaches the client", async () => {
  await mock.set("up", {
    status: 500,
    error_body: `{"error":{"message":"upstream rejected key ${PROVIDER_KEY}"}}`,
    error_headers: { "x-debug-key": PROVIDER_KEY, "retry-after": PROVIDER_KEY },
  });
  const r = await chat("open");
  const text = await r.text();
  assert.ok(r.status >= 500);
  assert.ok(!text.includes(PROVIDER_KEY), text);
  for (const [, v] of r.headers) assert.ok(!v.includes(PROVIDER_KEY));
  assert.equal((await mock.stats()).regions.up.last_request.headers.authorization, `Bearer ${PROVIDER_KEY}`);
  await mock.reset();
});

test("hard input limits: size, nesting, message count, max_tokens, invalid UTF-8", async () => {
  const big = await chat("open", { body: JSON.stringify({ model: "open", messages: [{ role: "user", content: "x".repeat(70000) }] }) });
  assert.equal(big.status, 413);
  const deep = "[".repeat(5000) + "]".repeat(5000);
  const d = await chat("open", { body: `{"model":"open","messages":[{"role":"user","content":"x"}],"extra":${deep}}` });
  assert.equal(d.status, 400);
  const many = Array.from({ length: 60 }, () => ({ role: "user", content: "x" }));
  assert.equal((await chat("open", { body: JSON.stringify({ model: "open", messages: many }) })).status, 400);
  const tokens = await chat("open", { body: JSON.stringify({ model: "open", max_tokens: 100000, messages: [{ role: "user", content: "x" }] }) });
  assert.equal(tokens.status, 400);
  assert.match((await tokens.json()).error.message, /maximum output tokens/);
  const bad = await chat("open", { body: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]) });
  assert.equal(bad.status, 400);
  assert.equal(await mock.requests("up"), (await mock.stats()).regions.up.requests, "sanity");
});
