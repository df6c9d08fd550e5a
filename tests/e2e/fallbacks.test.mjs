// Fallbacks across models: when every deployment of the model asked for fails, the next model serves, in its own
// wire format (here an OpenAI-wire model falling back to an Anthropic one), before the client has seen a byte. And
// rules that route by request: a virtual model sends `code` tasks and tool-using requests to their models.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startMock, startWorker, readEvents, DEMO_KEY, DEMO_KEY_SHA256 } from "./harness.mjs";

let mock, worker;

before(async () => {
  mock = await startMock({ primary: {}, backup: {} });
  worker = await startWorker(
    {
      keys: [{ name: "demo", sha256: DEMO_KEY_SHA256 }],
      providers: {
        primary: { kind: "openai", base_url: `${mock.regions.primary}/v1` },
        backup: { kind: "anthropic", base_url: `${mock.regions.backup}/v1`, api_key_secret: "BACKUP_KEY" },
      },
      models: {
        m: { fallbacks: ["claude"], deployments: [{ provider: "primary", model: "mock-1", region: "us-east-1" }] },
        claude: { deployments: [{ provider: "backup", model: "claude-sonnet-4-5", region: "us-west-2" }] },
        tools: { deployments: [{ provider: "primary", model: "mock-tools", region: "us-east-1" }] },
      },
      virtual_models: {
        smart: {
          rules: [
            { name: "code", when: { header: { "x-meridian-task": "code" } }, model: "claude" },
            { name: "tools", when: { tools: true }, model: "tools" },
            { model: "m" },
          ],
        },
      },
    },
    { BACKUP_KEY: "sk-backup-e2e" },
  );
});

after(async () => {
  await worker?.stop();
  await mock?.stop();
});

function ask(dialect, stream) {
  const anthropic = dialect === "anthropic";
  return fetch(`${worker.url}${anthropic ? "/v1/messages" : "/v1/chat/completions"}`, {
    method: "POST",
    headers: {
      ...(anthropic ? { "x-api-key": DEMO_KEY, "anthropic-version": "2023-06-01" } : { authorization: `Bearer ${DEMO_KEY}` }),
      "content-type": "application/json",
    },
    body: JSON.stringify({ model: "m", stream, max_tokens: 50, messages: [{ role: "user", content: "fall back" }] }),
  });
}

async function text(r, dialect, stream) {
  if (!stream) {
    const v = await r.json();
    return dialect === "anthropic" ? v.content[0].text : v.choices[0].message.content;
  }
  const { events } = await readEvents(r);
  return events
    .map((e) => {
      try {
        const v = JSON.parse(e.data);
        return dialect === "anthropic" ? (v.delta?.text ?? "") : (v.choices?.[0]?.delta?.content ?? "");
      } catch {
        return "";
      }
    })
    .join("");
}

test("every deployment of the model down: its fallback model answers, both dialects, streamed and not", async () => {
  let r = await ask("openai", false);
  assert.equal(r.headers.get("x-meridian-model"), "m");
  await r.arrayBuffer();
  await mock.set("primary", { status: 503 });
  const before = await mock.requests("backup");
  for (const dialect of ["openai", "anthropic"]) {
    for (const stream of [false, true]) {
      r = await ask(dialect, stream);
      assert.equal(r.status, 200, `${dialect} ${stream}`);
      assert.equal(r.headers.get("x-meridian-model"), "claude");
      assert.equal(r.headers.get("x-meridian-route-reason"), "fallback");
      assert.equal(await text(r, dialect, stream), "Echo: fall back");
    }
  }
  assert.equal((await mock.requests("backup")) - before, 4, "the fallback's provider answered each");
  await mock.reset();
});

test("a virtual model routes a code request and a tool-using request to their models, anything else to its default", async () => {
  const post = (body, headers = {}) =>
    fetch(`${worker.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${DEMO_KEY}`, "content-type": "application/json", ...headers },
      body: JSON.stringify({ model: "smart", max_tokens: 20, messages: [{ role: "user", content: "route me" }], ...body }),
    });
  const seen = [];
  for (const [body, headers] of [
    [{}, { "x-meridian-task": "code" }],
    [{ tools: [{ type: "function", function: { name: "lookup", parameters: { type: "object", properties: {} } } }] }, {}],
    [{}, {}],
  ]) {
    const r = await post(body, headers);
    await r.arrayBuffer();
    assert.equal(r.status, 200);
    seen.push([r.headers.get("x-meridian-model"), r.headers.get("x-meridian-route-reason")]);
  }
  assert.deepEqual(seen, [
    ["claude", "rule:code"],
    ["tools", "rule:tools"],
    ["m", "rule:rules[2]"],
  ]);
  const models = await (await fetch(`${worker.url}/v1/models`, { headers: { authorization: `Bearer ${DEMO_KEY}` } })).json();
  assert.ok(models.data.some((m) => m.id === "smart"), "listed with the models");
});
