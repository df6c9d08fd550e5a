// Child processes of the benchmark: each runs in its own process group, is tracked, and is ended by its id
// (group) when it is no longer needed or when the benchmark exits for any reason.
import { spawn } from "node:child_process";
import { openSync, closeSync, readFileSync, existsSync } from "node:fs";
import net from "node:net";
import http from "node:http";
import { performance } from "node:perf_hooks";

const live = new Set();

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

process.on("exit", () => {
  for (const c of live) killGroup(c, "SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    console.error(`\nbench: ${sig}, stopping child processes`);
    process.exit(130);
  });
}

/** Spawns `cmd` in its own process group with stdout and stderr appended to `log`. */
export function startProcess(cmd, args, { log, env, cwd, stdin = "ignore", stdout } = {}) {
  const fd = log ? openSync(log, "a") : "ignore";
  const child = spawn(cmd, args, {
    cwd,
    env: env ?? process.env,
    detached: true,
    stdio: [stdin, stdout ?? fd, fd],
  });
  if (typeof fd === "number") closeSync(fd);
  live.add(child);
  child.exited = new Promise((resolve) => child.once("exit", (code, signal) => {
    live.delete(child);
    resolve({ code, signal });
  }));
  child.log = log;
  return child;
}

/** Ends a child (SIGTERM to its group, SIGKILL after `graceMs`) and waits for it. */
export async function stopProcess(child, graceMs = 3000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  killGroup(child, "SIGTERM");
  const timer = setTimeout(() => killGroup(child, "SIGKILL"), graceMs);
  await child.exited;
  clearTimeout(timer);
}

export function logTail(file, lines = 15) {
  if (!file || !existsSync(file)) return "";
  return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function tryConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls until 127.0.0.1:port accepts a TCP connection; resolves to performance.now() at that moment. */
export async function waitForPort(port, { child, timeoutMs = 30000, intervalMs = 2, what = `port ${port}` } = {}) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await tryConnect(port)) return performance.now();
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(`${what} exited (code ${child.exitCode ?? child.signalCode}) before listening:\n${logTail(child.log)}`);
    }
    if (performance.now() > deadline) throw new Error(`${what} did not listen within ${timeoutMs} ms:\n${logTail(child?.log)}`);
    await sleep(intervalMs);
  }
}

/** One HTTP request on a fresh connection; resolves to {status, headers, body, ms}. */
export function request(url, { method = "GET", headers = {}, body, timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request(url, {
      method,
      agent: false,
      headers: body === undefined ? headers : { ...headers, "content-length": Buffer.byteLength(body) },
    }, (res) => {
      const parts = [];
      res.on("data", (c) => parts.push(c));
      res.on("end", () => resolve({
        status: res.statusCode,
        headers: res.headers,
        body: Buffer.concat(parts).toString("utf8"),
        ms: performance.now() - t0,
      }));
      res.on("error", reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}

export { sleep };

// CPU time used by processes that are not the benchmark's (other sessions' builds, tests...), to tell how quiet
// the machine was. /proc/stat's busy time minus our own: this process, its reaped children (wrk runs) and its live
// children (workerd, the mock, LiteLLM). In clock ticks (USER_HZ = 100).
function procTicks(pid, withChildren) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]) + (withChildren ? Number(f[13]) + Number(f[14]) : 0);
  } catch {
    return 0;
  }
}

export function cpuSnapshot() {
  const v = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] || 0);
  let ours = procTicks(process.pid, true);
  for (const c of live) ours += procTicks(c.pid, false);
  return { t: performance.now(), busy, ours };
}

/** Share of the machine's CPU (0..1) that other processes used between two snapshots. */
export function foreignCpuShare(a, b, nproc) {
  const ticks = (b.t - a.t) / 10; // 100 ticks per second
  if (ticks <= 0) return null;
  return Math.max(0, (b.busy - a.busy) - (b.ours - a.ours)) / (ticks * nproc);
}
