// Drives the gateway with the official Python SDKs (openai, anthropic from PyPI, installed by scripts/bootstrap)
// against every provider kind: sdk_clients.py holds the assertions, this file provides the worker and the mock.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startAllKinds, KINDS, runPythonSdk } from "./harness.mjs";

let mock, worker;

before(async () => {
  ({ mock, worker } = await startAllKinds());
});

after(async () => {
  await worker?.stop();
  await mock?.stop();
});

test("official openai and anthropic Python SDKs: text, streaming, tool-call round trips, every provider", async () => {
  const { code, output } = await runPythonSdk("sdk_clients.py", {
    MERIDIAN_URL: worker.url, MOCK_CONTROL: mock.control, MERIDIAN_KINDS: KINDS.join(","),
  });
  assert.equal(code, 0, "Python SDK tests failed (output above)");
  assert.match(output, /Ran \d+ tests/);
  assert.match(output, /\nOK\n/);
});
