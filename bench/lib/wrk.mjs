// Closed-loop load with wrk: a generated Lua script sets the POST, its JSON body and headers, and prints wrk's own
// summary and latency histogram as one JSON line when the run is done.
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { promisify } from "node:util";

const run = promisify(execFile);

// A Lua long string cannot contain its own closing bracket; none of our bodies or headers do.
const luaLong = (s) => {
  if (s.includes("]==]")) throw new Error(`cannot quote for Lua: ${s}`);
  return `[==[${s}]==]`;
};

export function writeWrkScript(file, { body, headers }) {
  const lines = [
    `wrk.method = "POST"`,
    `wrk.body = ${luaLong(body)}`,
    ...Object.entries(headers).map(([k, v]) => `wrk.headers[ ${luaLong(k)} ] = ${luaLong(v)}`),
    `done = function(summary, latency, requests)`,
    `  local e = summary.errors`,
    `  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,` +
      `"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},` +
      `"lat_us":{"min":%d,"max":%d,"mean":%.3f,"stdev":%.3f,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\\n',`,
    `    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,`,
    `    latency.min, latency.max, latency.mean, latency.stdev,`,
    `    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))`,
    `end`,
  ];
  writeFileSync(file, lines.join("\n") + "\n");
  return file;
}

/** Like writeWrkScript, but every request carries a different prompt (`<prefix> <n>`), so none can be a cache hit. */
export function writeWrkUniqueScript(file, { prefix, headers }) {
  writeWrkScript(file, { body: "{}", headers });
  const lines = [
    `local counter = 0`,
    `local salt = tostring(math.random(1, 1000000000))`,
    `request = function()`,
    `  counter = counter + 1`,
    `  local body = '{"model":"bench","messages":[{"role":"user","content":"${prefix} ' .. salt .. ' ' .. counter .. '"}]}'`,
    `  return wrk.format(nil, nil, nil, body)`,
    `end`,
  ];
  writeFileSync(file, lines.join("\n") + "\n", { flag: "a" });
  return file;
}

/** Runs wrk; resolves to {rps, p50, p90, p99, p999, mean (ms), requests, errors, non2xx}. */
export async function runWrk({ url, script, threads, connections, seconds }) {
  const args = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, "--timeout", "10s", "--latency", "-s", script, url];
  let stdout;
  try {
    ({ stdout } = await run("wrk", args, { maxBuffer: 16 << 20 }));
  } catch (e) {
    throw new Error(`wrk ${args.join(" ")} failed: ${e.message}\n${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
  const line = stdout.split("\n").find((l) => l.startsWith("WRKJSON "));
  if (!line) throw new Error(`wrk printed no summary:\n${stdout}`);
  const s = JSON.parse(line.slice(8));
  const ms = (us) => us / 1000;
  const errors = Object.values(s.errors).reduce((a, b) => a + b, 0);
  return {
    rps: s.requests / (s.duration_us / 1e6),
    requests: s.requests,
    p50: ms(s.lat_us.p50),
    p90: ms(s.lat_us.p90),
    p99: ms(s.lat_us.p99),
    p999: ms(s.lat_us.p999),
    mean: ms(s.lat_us.mean),
    max: ms(s.lat_us.max),
    errors,
    error_detail: s.errors,
  };
}
