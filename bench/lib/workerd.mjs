// Workers the way production runs them: the exact upload `wrangler deploy --dry-run --outdir` produces, served by
// `workerd serve` with a generated capnp config (no `wrangler dev`, no Miniflare proxy in front).
import { execFile } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, copyFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";

const run = promisify(execFile);

export const COMPAT_DATE = "2026-11-01"; // Meridian's wrangler.toml; every worker in the benchmark uses it.
// Every worker socket takes request.cf from this header, as Cloudflare's edge fills it in production.
export const CF_BLOB_HEADER = "cf-blob";
export const CF_BLOB = JSON.stringify({
  colo: "IAD",
  country: "US",
  continent: "NA",
  city: "Ashburn",
  region: "Virginia",
  latitude: "39.04370",
  longitude: "-77.48750",
  timezone: "America/New_York",
  httpProtocol: "HTTP/1.1",
});

export function workerdBinary(root) {
  return createRequire(path.join(root, "package.json"))("workerd").default;
}

export async function workerdVersion(root) {
  const { stdout } = await run(workerdBinary(root), ["--version"]);
  return stdout.trim().replace(/^workerd\s+/, "");
}

/**
 * Runs `wrangler deploy --dry-run --outdir <outdir>` in `cwd` (where wrangler.toml is) and describes the upload:
 * its modules (the main ES module, named after wrangler.toml's `main`, first) and raw/gzip sizes, computed like
 * scripts/size (gzip -9 per file).
 */
export async function dryRunBundle({ root, cwd, outdir, extraArgs = [], log, main }) {
  mkdirSync(outdir, { recursive: true });
  const wrangler = path.join(root, "node_modules/.bin/wrangler");
  let out;
  try {
    out = await run(wrangler, ["deploy", "--dry-run", "--outdir", outdir, ...extraArgs], {
      cwd,
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", FORCE_COLOR: "0", NO_COLOR: "1" },
      maxBuffer: 64 << 20,
    });
  } catch (e) {
    throw new Error(`wrangler deploy --dry-run failed in ${cwd}:\n${(e.stdout ?? "") + (e.stderr ?? "")}`.trim());
  }
  if (log) writeFileSync(log, out.stdout + out.stderr);
  const total = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(out.stdout + out.stderr);
  const files = readdirSync(outdir)
    .filter((f) => /\.(m?js|wasm|cjs|txt|bin|html|json)$/.test(f) && !f.endsWith(".map") && f !== "README.md")
    .sort();
  const modules = [];
  for (const f of files) {
    const p = path.join(outdir, f);
    const data = readFileSync(p);
    const type = /\.m?js$/.test(f) ? "esModule" : f.endsWith(".wasm") ? "wasm" : f.endsWith(".json") ? "json" : f.endsWith(".txt") || f.endsWith(".html") ? "text" : "data";
    modules.push({ name: f, path: p, type, raw: statSync(p).size, gzip: gzipSync(data, { level: 9 }).length });
  }
  const esm = modules.filter((m) => m.type === "esModule");
  if (esm.length === 0) throw new Error(`wrangler's dry-run output in ${outdir} has no JavaScript module`);
  // The main module comes first (workerd's rule). wrangler names it after `main` (worker/entry.mjs → entry.js).
  const stem = (f) => path.basename(f).replace(/\.[^.]*$/, "");
  const first = esm.find((m) => main && stem(m.name) === stem(main)) ?? (esm.length === 1 ? esm[0] : esm.find((m) => m.name === "index.js"));
  if (!first) throw new Error(`cannot tell the main module among ${esm.map((m) => m.name).join(", ")} in ${outdir}`);
  const ordered = [first, ...esm.filter((m) => m !== first), ...modules.filter((m) => m.type !== "esModule")];
  return {
    modules: ordered,
    raw: ordered.reduce((s, m) => s + m.raw, 0),
    gzip: ordered.reduce((s, m) => s + m.gzip, 0),
    wrangler_total: total ? { raw_kib: Number(total[1]), gzip_kib: Number(total[2]) } : null,
  };
}

const capnpString = (s) => JSON.stringify(s); // only ASCII here: JSON escapes are valid capnp escapes
// BENCH_V8_FLAGS: V8 flags for every workerd the benchmark and the profiler start, e.g. --trace-gc (diagnosis only).
const v8Flags = (process.env.BENCH_V8_FLAGS ?? "").split(/\s+/).filter(Boolean);

/**
 * Writes a workerd config into `dir` (modules copied next to it, so `embed` paths are local) and returns its path.
 * bindings: [{name, text} | {name, jsonFile} | {name, kvService} | {name, durableObjectClass}]; kvService names an
 * HTTP address "127.0.0.1:P"; durableObjectClass is a class the worker's main module exports.
 */
export function writeWorkerdConfig({ dir, port, bundle, bindings = [], compatibilityFlags = [] }) {
  mkdirSync(dir, { recursive: true });
  for (const m of bundle.modules) copyFileSync(m.path, path.join(dir, m.name));
  const services = [
    `(name = "main", worker = .mainWorker)`,
    // 127.0.0.1 is "local"; the default `internet` service would refuse it.
    `(name = "loopback", network = (allow = ["local", "private"]))`,
  ];
  const bindingText = [];
  const doClasses = [];
  // Durable Objects keep their storage in SQLite on disk, as wrangler.toml's `new_sqlite_classes` make them on
  // Cloudflare (workerd's in-memory storage has no SQL, which the spend ledger needs); a fresh directory per
  // instance, so every start is a cold one.
  const doDir = path.join(dir, "do-storage");
  mkdirSync(doDir, { recursive: true });
  services.push(`(name = "do-storage", disk = (path = ${capnpString(doDir)}, writable = true))`);
  for (const b of bindings) {
    if (b.text !== undefined) bindingText.push(`(name = ${capnpString(b.name)}, text = ${capnpString(b.text)})`);
    else if (b.jsonFile) {
      copyFileSync(b.jsonFile, path.join(dir, `${b.name}.json`));
      bindingText.push(`(name = ${capnpString(b.name)}, json = embed ${capnpString(`${b.name}.json`)})`);
    } else if (b.durableObjectClass) {
      // A Durable Object class the worker exports itself (wrangler.toml's [[durable_objects.bindings]]).
      doClasses.push(b.durableObjectClass);
      bindingText.push(`(name = ${capnpString(b.name)}, durableObjectNamespace = (className = ${capnpString(b.durableObjectClass)}))`);
    } else if (b.kvService) {
      const svc = `kv-${b.name}`;
      services.push(`(name = ${capnpString(svc)}, external = (address = ${capnpString(b.kvService)}, http = ()))`);
      bindingText.push(`(name = ${capnpString(b.name)}, kvNamespace = ${capnpString(svc)})`);
    } else throw new Error(`binding ${b.name}: unknown kind`);
  }
  const modules = bundle.modules.map((m) => `(name = ${capnpString(m.name)}, ${m.type} = embed ${capnpString(m.name)})`);
  const text = `# Generated by bench/run.mjs.
using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (${v8Flags.length ? `
  v8Flags = [${v8Flags.map(capnpString).join(", ")}],` : ""}
  services = [
    ${services.join(",\n    ")},
  ],
  sockets = [
    (name = "http", address = "127.0.0.1:${port}", http = (cfBlobHeader = ${capnpString(CF_BLOB_HEADER)}), service = "main"),
  ],
);
const mainWorker :Workerd.Worker = (
  modules = [
    ${modules.join(",\n    ")},
  ],
  compatibilityDate = ${capnpString(COMPAT_DATE)},
  compatibilityFlags = [${compatibilityFlags.map(capnpString).join(", ")}],
  bindings = [
    ${bindingText.join(",\n    ")}
  ],
  globalOutbound = "loopback",${doClasses.length ? `
  durableObjectNamespaces = [
    ${[...new Set(doClasses)].map((c) => `(className = ${capnpString(c)}, uniqueKey = ${capnpString(`bench-${c}`)}, enableSql = true)`).join(",\n    ")}
  ],
  durableObjectStorage = (localDisk = "do-storage"),` : ""}
);
`;
  const file = path.join(dir, "config.capnp");
  writeFileSync(file, text);
  return file;
}
