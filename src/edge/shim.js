// The JavaScript half of the edge glue. Every call between wasm and JavaScript costs a crossing, string transcoding
// and often a closure; the generic bindings pay that per header, per property and per object (and read request.cf,
// which the runtime rebuilds on every access, more than once). These helpers do each platform step in one call, so
// a proxied request crosses about a dozen times instead of about a hundred (bench/profile.mjs shows the split).
//
// Header lists travel as one string, "name\nvalue\n" per header: the Fetch standard forbids CR, LF and NUL in
// header names and values, so the separator cannot occur inside one.

function headerLines(headers) {
  let out = "";
  for (const [name, value] of headers) out += name + "\n" + value + "\n";
  return out;
}

function headersFrom(lines) {
  const h = new Headers();
  const parts = lines.split("\n");
  for (let i = 0; i + 1 < parts.length; i += 2) h.append(parts[i], parts[i + 1]);
  return h;
}

function field(v) {
  return v === undefined || v === null ? "" : String(v);
}

// `request.cf` is rebuilt from its serialized form on every access, which costs more than the rest of this file
// together. An isolate runs in one data center, so its colo never changes; its coordinates are taken from the
// first request that carries them and stand for the edge location (routing measures distance from the edge,
// where the provider call starts, not from the caller).
let location;

function locationOf(req) {
  if (location !== undefined) return location;
  const cf = req.cf;
  if (!cf || typeof cf !== "object") return "\n\n";
  location = field(cf.colo) + "\n" + field(cf.latitude) + "\n" + field(cf.longitude);
  return location;
}

/**
 * "METHOD\npath\ncolo\nlatitude\nlongitude\n" followed by the header lines; the query string is not part of path.
 * `inbound` is what worker/entry.mjs hands to the wasm: `{ request, body }`, the body already read (awaiting it
 * here, from wasm, would cost a promise round trip through the Rust executor).
 */
export function requestHead(inbound) {
  const req = inbound.request;
  const url = req.url;
  const scheme = url.indexOf("://");
  let start = url.indexOf("/", scheme < 0 ? 0 : scheme + 3);
  let path = start < 0 ? "/" : url.slice(start);
  const cut = path.indexOf("?");
  if (cut >= 0) path = path.slice(0, cut);
  return req.method + "\n" + path + "\n" + locationOf(req) + "\n" + headerLines(req.headers);
}

/** The request body as bytes (empty for none). */
export function requestBody(inbound) {
  return inbound.body;
}

/** Starts a fetch; `body` is a view into wasm memory (copied here), `signal` an AbortSignal or undefined. */
export function send(url, method, lines, body, signal) {
  const init = { method, headers: headersFrom(lines) };
  if (body.length > 0) init.body = body.slice();
  if (signal) init.signal = signal;
  return fetch(url, init);
}

/** "status\n" followed by the header lines. */
export function responseHead(resp) {
  return resp.status + "\n" + headerLines(resp.headers);
}

/** The whole body in one read (no per-chunk crossings); empty when there is none. */
export async function responseBytes(resp) {
  if (resp.body === null) return new Uint8Array(0);
  return new Uint8Array(await resp.arrayBuffer());
}

/** The body stream, or null. */
export function responseStream(resp) {
  return resp.body;
}

/** A response with a body copied out of wasm memory (`bytes` is a view), a stream, or nothing. */
export function respondBytes(status, lines, bytes) {
  return new Response(bytes.slice(), { status, headers: headersFrom(lines) });
}

export function respondStream(status, lines, stream) {
  return new Response(stream, { status, headers: headersFrom(lines) });
}

export function respondEmpty(status, lines) {
  return new Response(null, { status, headers: headersFrom(lines) });
}

/**
 * A non-streamed exchange in one promise (one await in wasm instead of one per step, and no wasm timers): the
 * headers within `firstByteMs`, then the whole body within `bodyMs` and `limit` bytes. Never rejects; resolves
 * to `{ kind, head, bytes, message }`, kind 0 = complete, 1 = no headers in time, 2 = no response (message),
 * 3 = body not complete in time, 4 = body failed or too long (message). `head` is responseHead's text.
 */
export function exchange(url, method, lines, body, signal, firstByteMs, bodyMs, limit) {
  return new Promise((resolve) => {
    let head = "";
    const done = (kind, bytes, message) => {
      clearTimeout(timer);
      resolve({ kind, head, bytes, message });
    };
    let timer = setTimeout(() => done(1), firstByteMs);
    send(url, method, lines, body, signal).then(
      (resp) => {
        clearTimeout(timer);
        head = responseHead(resp);
        timer = setTimeout(() => done(3), bodyMs);
        responseBytes(resp).then(
          (bytes) => (bytes.length > limit ? done(4, undefined, `body larger than ${limit} bytes`) : done(0, bytes)),
          (e) => done(4, undefined, String(e?.message ?? e)),
        );
      },
      (e) => done(2, undefined, String(e?.message ?? e)),
    );
  });
}

// The request executor's half (src/edge/executor.rs): settled promises are handed back to the wasm through one
// callback registered per instance, instead of two wasm-bindgen closures per awaited promise.
let settleFn = () => {};
let pollFn = () => {};
// Task id -> the reject of its answer's promise, kept to fail it if the wasm panics.
const answers = new Map();
const resolvers = new Map();
let crashWatch = false;

/**
 * Called once per wasm instance. The first call also watches the glue's `criticalError` flag, which its panic
 * hook sets: a task that panicked after an await would never answer, so every answer still pending is rejected
 * (worker/entry.mjs turns that into a JSON 500; the instance's state is suspect after a panic).
 */
export function register(settle, poll) {
  settleFn = settle;
  pollFn = poll;
  const state = globalThis.__worker_init_state;
  if (crashWatch || !state) return;
  crashWatch = true;
  let flag = Boolean(state.criticalError);
  Object.defineProperty(state, "criticalError", {
    configurable: true,
    enumerable: true,
    get: () => flag,
    set: (v) => {
      flag = Boolean(v);
      if (!flag) return;
      const failed = [...answers.values()];
      answers.clear();
      resolvers.clear();
      for (const reject of failed) reject(new Error("the request panicked"));
    },
  });
}

/** Runs the executor's poll loop in a microtask: a task was woken by something other than `watch`. */
export function schedule() {
  queueMicrotask(() => pollFn());
}

/** Reports `promise`'s outcome to the executor as `slot`. */
export function watch(promise, slot) {
  const settle = settleFn;
  promise.then(
    (v) => settle(slot, true, v),
    (e) => settle(slot, false, e),
  );
}

/** The promise of task `id`'s response, settled by `finish`. */
export function deferred(id) {
  return new Promise((resolve, reject) => {
    resolvers.set(id, resolve);
    answers.set(id, reject);
  });
}

export function finish(id, response) {
  const resolve = resolvers.get(id);
  resolvers.delete(id);
  answers.delete(id);
  if (resolve) resolve(response);
}
