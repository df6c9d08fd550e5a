// The dashboard at /_meridian/, driven in a real headless Chromium (Debian's, installed by scripts/bootstrap): a
// wrong key (and a gateway key) sees nothing; the admin key sees the three regions with numbers; the spend shown
// equals the sum of the costs of the requests this test made; a region slowed through the mock moves in the chart;
// every request the page makes goes to its own origin. Screenshots (laptop and phone) go to target/screenshots/,
// and with MERIDIAN_UPDATE_DOCS=1 the laptop one to docs/dashboard.png (the README's).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startMock, startWorker, launchChromium, DEMO_KEY, DEMO_KEY_SHA256 } from "./harness.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SHOTS = path.join(ROOT, "target", "screenshots");
const sha = (s) => createHash("sha256").update(s).digest("hex");
const ADMIN_KEY = "dashboard-admin-key";
const PRICE = { input: 0.15, output: 0.6 };
const REGIONS = { "us-east": "us-east-1", "eu-west": "eu-west-1", "ap-south": "ap-south-1" };
let mock, worker, chromium, browser, page;
const pageRequests = [];

before(async () => {
  mock = await startMock({
    "us-east": { header_delay_ms: 5, ttft_ms: 20 },
    "eu-west": { header_delay_ms: 10, ttft_ms: 60 },
    "ap-south": { header_delay_ms: 20, ttft_ms: 120 },
  });
  const providers = Object.fromEntries(
    Object.keys(REGIONS).map((r) => [`mock-${r}`, { kind: "openai", base_url: `${mock.regions[r]}/v1` }]),
  );
  const deployments = Object.entries(REGIONS).map(([r, region]) => ({
    provider: `mock-${r}`,
    model: "mock-1",
    region,
    price: PRICE,
  }));
  worker = await startWorker(
    {
      keys: [
        { name: "demo", sha256: DEMO_KEY_SHA256 },
        { name: "small", sha256: sha("small-key"), budget: { usd_per_day: 0.01 } },
      ],
      admin_keys: [{ name: "ops", sha256: sha(ADMIN_KEY) }],
      providers,
      models: {
        demo: {
          deployments,
          cache: { ttl_s: 600, nonzero_temperature: true },
          shadow: [{ model: "twin", share: 0.5, max_usd_per_day: 1 }],
        },
        // A second model on its own mock model name (its own deployment ids, apart from the chart's).
        twin: { deployments: [{ provider: "mock-eu-west", model: "mock-2", region: "eu-west-1", price: PRICE }] },
        ab: {
          deployments: [{ provider: "mock-ap-south", model: "mock-3", region: "ap-south-1", price: PRICE }],
          split: [{ model: "ab", weight: 1 }, { model: "twin", weight: 1 }],
        },
      },
    },
    {},
    { kv: true, ledger: true },
  );
  chromium = await launchChromium();
  browser = chromium.browser;
  page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.on("request", (r) => pageRequests.push({ url: r.url(), auth: r.headers().authorization ?? null }));
  await page.goto(`${worker.url}/_meridian/?poll_ms=300`, { waitUntil: "load" });
});

after(async () => {
  await chromium?.close();
  await worker?.stop();
  await mock?.stop();
});

async function signIn(key) {
  await page.type("#key", key);
  await page.click("#signin button");
}

async function ask(content, stream = false) {
  const r = await fetch(`${worker.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${DEMO_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "demo", stream, max_tokens: 30, messages: [{ role: "user", content }] }),
  });
  assert.equal(r.status, 200);
  await r.arrayBuffer();
  return { cost: Number(r.headers.get("x-meridian-cost-usd")), region: r.headers.get("x-meridian-region"), cache: r.headers.get("x-meridian-cache") };
}

const lastPoint = (id) =>
  page.evaluate((id) => {
    const s = window.__dashboard.series.demo?.deps[id];
    return s ? s[s.length - 1] : null;
  }, id);

test("a wrong key, and a gateway key, see nothing", async () => {
  for (const key of ["not-a-key", DEMO_KEY]) {
    await signIn(key);
    await page.waitForFunction(() => document.querySelector("#message").textContent.includes("cannot read"), { timeout: 10000 });
    assert.equal(await page.$eval("#board", (b) => b.hidden), true);
    assert.equal(await page.$$eval("#deployments tbody tr", (r) => r.length), 0);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("meridian.adminKey")), null);
  }
  // The page itself holds no figures, and the data endpoints want a key.
  const html = await (await fetch(`${worker.url}/_meridian/`)).text();
  assert.ok(!html.includes("mock-us-east"));
  assert.equal((await fetch(`${worker.url}/_meridian/status`)).status, 401);
});

test("the admin key sees the three regions with numbers, the spend the requests made, and a slowed region move", async () => {
  let spent = 0;
  const costs = [];
  for (let i = 0; i < 12; i++) {
    const a = await ask(`dashboard question ${i}`);
    costs.push(a.cost);
    spent += a.cost;
  }
  // An experiment's requests, from four users.
  for (let i = 0; i < 8; i++) {
    const r = await fetch(`${worker.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${DEMO_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "ab", user: `u${i % 4}`, messages: [{ role: "user", content: `ab ${i}` }] }),
    });
    spent += Number(r.headers.get("x-meridian-cost-usd"));
    await r.arrayBuffer();
  }
  // A repeated prompt is a cache HIT, at no cost.
  const hit = await ask("dashboard question 0");
  assert.equal(hit.cache, "HIT");
  assert.equal(hit.cost, 0);
  await signIn(ADMIN_KEY);
  await page.waitForFunction(() => document.querySelectorAll("#deployments tbody tr").length === 3, { timeout: 10000 });
  const rows = await page.$$eval("#deployments tbody tr", (rs) =>
    rs.map((r) => ({ region: r.dataset.region, ttft: Number(r.dataset.ttft), text: r.textContent })),
  );
  assert.deepEqual(rows.map((r) => r.region).sort(), Object.values(REGIONS).sort());
  for (const r of rows) assert.ok(Number.isFinite(r.ttft) && r.ttft > 0, `${r.region}: ${r.text}`);
  // The spend the page shows is the sum of what each answer said it cost (the ledger writes a second later).
  const want = Math.round(spent * 1e8) / 1e8;
  await page.waitForFunction((want) => Math.abs(Number(document.querySelector("#spend-total").dataset.usd) - want) < 1e-9, { timeout: 15000 }, want);
  const shown = await page.$eval("#spend-total", (e) => e.textContent);
  console.log(`spend: ${costs.length + 8} answers costing $${want} in all; the page shows ${shown}`);
  await page.waitForFunction(() => document.querySelectorAll("#shadows tbody tr").length === 1, { timeout: 10000 });
  await page.waitForFunction(() => document.querySelectorAll("#experiments tbody tr").length === 2, { timeout: 10000 });
  assert.equal(await page.$eval("#hits", (e) => e.textContent), "1 / 13");
  await page.waitForFunction(() => document.querySelectorAll("#budgets tbody tr").length === 1, { timeout: 10000 }).catch(async (e) => {
    throw new Error(`${e.message}: budgets ${await page.$eval("#budgets", (t) => t.outerHTML)}`);
  });

  // Slow us-east down: the streams it still gets take 400 ms more to their first token, its estimate (the chart's:
  // time to first token of a stream) climbs.
  const id = "mock-us-east/mock-1";
  // Streams first, so that the chart holds measurements rather than priors.
  const warm = [];
  for (let i = 0; i < 8; i++) warm.push((await ask(`warm up ${i}`, true)).region);
  await page.waitForFunction((id) => {
    const s = window.__dashboard.series.demo.deps[id];
    return s[s.length - 1] < 150;
  }, { timeout: 10000 }, id).catch((e) => {
    throw new Error(`${e.message}: warm-up served by ${warm}`);
  });
  const before = await lastPoint(id);
  await mock.set("us-east", { ttft_ms: 420 });
  const served = [];
  for (let i = 0; i < 15; i++) served.push((await ask(`after the slowdown ${i}`, true)).region);
  await page
    .waitForFunction((id, before) => {
      const s = window.__dashboard.series.demo.deps[id];
      // The estimate learns from the few slow answers the region gets before traffic leaves it: at least double.
      return s[s.length - 1] > 2 * before + 20;
    }, { timeout: 10000 }, id, before)
    .catch(async (e) => {
      const s = await page.evaluate(() => JSON.stringify(window.__dashboard.series.demo));
      throw new Error(`${e.message}: before ${before}, served by ${served}, series ${s.slice(-600)}`);
    });
  const after = await lastPoint(id);
  console.log(`us-east's estimate in the chart: ${before} ms before the slowdown, ${after} ms after; served by ${served.join(", ")}`);
  assert.ok(served.slice(-5).every((r) => r !== "us-east-1"), `traffic left the slowed region: ${served}`);
  const points = await page.evaluate((id) => window.__dashboard.series.demo.deps[id].filter((v) => v != null).length, id);
  assert.ok(points >= 3, "the chart has a history");

  mkdirSync(SHOTS, { recursive: true });
  await new Promise((r) => setTimeout(r, 1200));
  const laptop = path.join(SHOTS, "dashboard.png");
  await page.screenshot({ path: laptop, fullPage: true });
  if (process.env.MERIDIAN_UPDATE_DOCS === "1") copyFileSync(laptop, path.join(ROOT, "docs", "dashboard.png"));
  // On a phone: nothing wider than the screen but the tables' own scrolling.
  await page.setViewport({ width: 390, height: 844, isMobile: true, deviceScaleFactor: 2 });
  await new Promise((r) => setTimeout(r, 600));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the page is ${overflow} px wider than a phone`);
  await page.screenshot({ path: path.join(SHOTS, "dashboard-phone.png"), fullPage: true });
});

test("the page talks to its own origin only", async () => {
  const origin = new URL(worker.url).origin;
  assert.ok(pageRequests.length > 10);
  for (const r of pageRequests) {
    assert.equal(new URL(r.url).origin, origin, `the page asked ${r.url}`);
  }
  assert.ok(pageRequests.some((r) => r.auth === `Bearer ${ADMIN_KEY}`));
  const head = await fetch(`${worker.url}/_meridian/`);
  assert.match(head.headers.get("content-security-policy"), /connect-src 'self'/);
  assert.match(head.headers.get("content-security-policy"), /script-src 'self';/);
});
