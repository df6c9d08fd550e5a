// Finding 19 of issue 14: the official OpenAI and Anthropic JavaScript SDKs, in browser mode, in a real headless
// Chromium (Debian's, installed by scripts/bootstrap), calling the worker from another origin with a browser token:
// the CORS preflight must allow what they send (x-stainless-*, anthropic-dangerous-direct-browser-access, ...),
// and both answer shapes and both kinds of stream must reach the page.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { createServer } from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { startMock, startWorker, launchChromium, DEMO_KEY_SHA256 } from "./harness.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const TOKEN_SECRET = "browser-test-signing-secret-0123456789";
let mock, worker, site, origin, chromium, browser;

/** The page's script: both SDKs, bundled for the browser as a web app would ship them. */
const PAGE_SCRIPT = `
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
const ask = [{ role: "user", content: "hello from the browser" }];
async function step(out, name, f) {
  try { out[name] = await f(); } catch (e) { out[name] = "ERROR: " + (e?.message ?? e); }
}
window.run = async (gateway, token) => {
  const out = {};
  const openai = new OpenAI({ apiKey: token, baseURL: gateway + "/v1", dangerouslyAllowBrowser: true, maxRetries: 0 });
  await step(out, "openai", async () => {
    const { data, response } = await openai.chat.completions.create({ model: "web", messages: ask }).withResponse();
    return { text: data.choices[0].message.content, deployment: response.headers.get("x-meridian-deployment") };
  });
  await step(out, "openaiStream", async () => {
    const stream = await openai.chat.completions.create({ model: "web", stream: true, messages: ask });
    let text = "", chunks = 0;
    for await (const c of stream) { chunks++; text += c.choices[0]?.delta?.content ?? ""; }
    return { text, chunks };
  });
  const anthropic = new Anthropic({ apiKey: token, baseURL: gateway, dangerouslyAllowBrowser: true, maxRetries: 0 });
  await step(out, "anthropic", async () => {
    const m = await anthropic.messages.create({ model: "web", max_tokens: 64, messages: ask });
    return { text: m.content[0].text, stop: m.stop_reason };
  });
  await step(out, "anthropicStream", async () => {
    const stream = anthropic.messages.stream({ model: "web", max_tokens: 64, messages: ask });
    let text = "";
    for await (const ev of stream) if (ev.type === "content_block_delta") text += ev.delta.text;
    const final = await stream.finalMessage();
    return { text, stop: final.stop_reason };
  });
  return out;
};
`;

function mint(claims) {
  const payload = Buffer.from(JSON.stringify(claims)).toString("base64url");
  const sig = createHmac("sha256", TOKEN_SECRET).update(`mrd1.${payload}`).digest("base64url");
  return `mrd1.${payload}.${sig}`;
}

before(async () => {
  const bundle = await build({
    stdin: { contents: PAGE_SCRIPT, resolveDir: ROOT, loader: "js" },
    bundle: true,
    format: "iife",
    platform: "browser",
    write: false,
    logLevel: "silent",
  });
  const js = bundle.outputFiles[0].text;
  site = createServer((req, res) => {
    if (req.url === "/sdk.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      return res.end(js);
    }
    res.writeHead(200, { "content-type": "text/html" });
    res.end('<!doctype html><title>app</title><script src="/sdk.js"></script>');
  });
  await new Promise((r) => site.listen(0, "127.0.0.1", r));
  origin = `http://127.0.0.1:${site.address().port}`;
  mock = await startMock({ up: {} });
  worker = await startWorker(
    {
      keys: [
        { name: "demo", sha256: DEMO_KEY_SHA256 },
        { name: "webapp", sha256: createHash("sha256").update("webapp-backend-key").digest("hex"), models: ["web"] },
      ],
      cors_origins: [origin],
      browser_tokens: { key: "webapp", secrets: { k1: "TOKEN_SECRET" } },
      providers: { up: { kind: "openai", base_url: `${mock.regions.up}/v1` } },
      models: { web: { deployments: [{ provider: "up", model: "mock-1", region: "us-east-1" }] } },
    },
    { TOKEN_SECRET },
  );
  chromium = await launchChromium();
  browser = chromium.browser;
});

after(async () => {
  await chromium?.close();
  await worker?.stop();
  await mock?.stop();
  site?.close();
});

test("finding 19: both JavaScript SDKs in a real browser, with a browser token, streaming included", async () => {
  const page = await browser.newPage();
  const console = [];
  page.on("console", (m) => console.push(m.text()));
  await page.goto(origin);
  const token = mint({ exp: Math.floor(Date.now() / 1000) + 300, models: ["web"], origin, sub: "browser-user" });
  const out = await page.evaluate((g, t) => window.run(g, t), worker.url, token);
  const why = `${JSON.stringify(out, null, 2)}\nconsole:\n${console.join("\n")}`;
  const echo = "Echo: hello from the browser";
  assert.deepEqual(out.openai, { text: echo, deployment: "up/mock-1" }, why);
  assert.equal(out.openaiStream.text, echo, why);
  assert.ok(out.openaiStream.chunks > 2, `streamed in chunks: ${why}`);
  assert.deepEqual(out.anthropic, { text: echo, stop: "end_turn" }, why);
  assert.deepEqual(out.anthropicStream, { text: echo, stop: "end_turn" }, why);
  await page.close();
});

test("finding 19: another origin is still refused by the browser", async () => {
  const page = await browser.newPage();
  // The same page served from an origin the gateway does not know (localhost is another origin than 127.0.0.1).
  await page.goto(origin.replace("127.0.0.1", "localhost"));
  const token = mint({ exp: Math.floor(Date.now() / 1000) + 300, models: ["web"], origin, sub: "browser-user" });
  const out = await page.evaluate((g, t) => window.run(g, t), worker.url, token);
  for (const step of ["openai", "openaiStream", "anthropic", "anthropicStream"]) {
    assert.match(String(out[step]), /^ERROR: /, `${step}: ${JSON.stringify(out[step])}`);
  }
  await page.close();
});
