// Pieces `make bench` (run.mjs) and `make profile` (profile.mjs) both set up: the mock provider, the JavaScript
// floor's upload and Meridian's configuration for it.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";

import { logTail, request, startProcess } from "./proc.mjs";
import { COMPAT_DATE, dryRunBundle } from "./workerd.mjs";

/** The mock as one region `bench` with `knobs`, ending when the benchmark does (stdin closes). */
export async function startMock({ bin, tmp, knobs }) {
  const child = startProcess(bin, ["--regions", JSON.stringify({ regions: { bench: {} } }), "--exit-on-stdin-eof"], {
    log: path.join(tmp, "mock.log"),
    stdin: "pipe",
    stdout: "pipe",
  });
  const line = await new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout });
    rl.once("line", (l) => {
      rl.close();
      resolve(l);
    });
    child.once("exit", (code) => reject(new Error(`meridian-mock exited with ${code} before listening:\n${logTail(child.log)}`)));
  });
  const { control, regions } = JSON.parse(line);
  const r = await request(`${control}/_mock/regions/bench`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(knobs),
  });
  if (r.status !== 200) throw new Error(`mock knobs: ${r.status} ${r.body}`);
  return { child, control, url: regions.bench };
}

/** The `wrangler deploy --dry-run` upload of a single-module worker (`file`), built in `dir`. */
export async function floorBundle({ root, dir, file }) {
  mkdirSync(dir, { recursive: true });
  const stem = path.basename(file).replace(/\.[^.]*$/, "");
  const main = `${stem}.mjs`;
  writeFileSync(path.join(dir, main), readFileSync(file));
  writeFileSync(path.join(dir, "wrangler.toml"), `name = "${stem.replace(/[^a-z0-9-]/gi, "-")}"\nmain = "${main}"\ncompatibility_date = "${COMPAT_DATE}"\n`);
  return dryRunBundle({ root, cwd: dir, outdir: path.join(dir, "upload"), main });
}

/** Meridian's configuration: model `bench` → the mock as an `openai` provider, gateway key `key` (stored hashed). */
export function meridianConfig(mockUrl, key) {
  return {
    keys: [{ name: "bench", sha256: createHash("sha256").update(key).digest("hex") }],
    providers: { mock: { kind: "openai", base_url: `${mockUrl}/v1` } },
    // Priced as production deployments are (a budget needs a price; every Meridian target prices the answer).
    models: { bench: { deployments: [{ provider: "mock", model: "mock-1", region: "us-east-1", price: { input: 0.15, output: 0.6 } }] } },
  };
}
