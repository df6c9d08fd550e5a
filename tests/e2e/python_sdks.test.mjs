// Drives the gateway with the official Python SDKs (openai, anthropic from PyPI, installed by scripts/bootstrap)
// against every provider kind: sdk_clients.py holds the assertions, this file provides the worker and the mock.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { startAllKinds, KINDS } from "./harness.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
let mock, worker;

before(async () => {
  ({ mock, worker } = await startAllKinds());
});

after(async () => {
  await worker?.stop();
  await mock?.stop();
});

test("official openai and anthropic Python SDKs: text, streaming, tool-call round trips, every provider", async () => {
  const python = process.env.MERIDIAN_PYTHON;
  assert.ok(python && existsSync(python), "the SDK virtualenv is missing: run scripts/bootstrap (or make test)");
  const child = spawn(python, [path.join(HERE, "sdk_clients.py")], {
    env: { ...process.env, MERIDIAN_URL: worker.url, MOCK_CONTROL: mock.control, MERIDIAN_KINDS: KINDS.join(",") },
    stdio: ["ignore", "inherit", "pipe"],
  });
  let output = "";
  child.stderr.on("data", (d) => (output += d));
  const code = await new Promise((resolve) => child.on("exit", resolve));
  process.stderr.write(output);
  assert.equal(code, 0, "Python SDK tests failed (output above)");
  assert.match(output, /Ran \d+ tests/);
  assert.match(output, /\nOK\n/);
});
