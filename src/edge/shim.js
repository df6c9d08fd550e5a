// The JavaScript half of the edge glue. Every call between wasm and JavaScript costs a crossing, string transcoding
// and often a closure; the generic bindings pay that per header, per property and per object (and read request.cf,
// which the runtime rebuilds on every access, more than once). These helpers do each platform step in one call, so
// a proxied request crosses about a dozen times instead of about a hundred (bench/profile.mjs shows the split).
//
// Header lists travel as one string, "name\nvalue\n" per header: the Fetch standard forbids CR, LF and NUL in
// header names and values, and the core's Headers (src/http.rs) refuses them, so the separator cannot occur
// inside one.

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

/** Starts a fetch; `body` is a view into wasm memory (copied here), `controller` an AbortController or undefined. */
export function send(url, method, lines, body, controller) {
  try {
    const init = { method, headers: headersFrom(lines) };
    if (body.length > 0) init.body = body.slice();
    if (controller) init.signal = controller.signal;
    return fetch(url, init);
  } catch (e) {
    // A rejected promise is a provider failure the core handles; a throw would unwind through the wasm.
    return Promise.reject(e);
  }
}

/** "status\n" followed by the header lines. */
export function responseHead(resp) {
  return resp.status + "\n" + headerLines(resp.headers);
}

/** A reader of the body, or null when there is none. */
export function responseReader(resp) {
  return resp.body === null ? null : resp.body.getReader();
}

/** Reports the next chunk (a Uint8Array, or null at the end) to the executor as `slot`: one promise per chunk. */
export function readChunk(reader, slot) {
  const settle = settleFn;
  reader.read().then(
    (r) => settle(slot, true, r.done ? null : r.value),
    (e) => settle(slot, false, e),
  );
}

export function cancelReader(reader) {
  reader.cancel().catch(() => {});
}

// The last line of defence: building a Response must never throw into the wasm (an exception unwinds through
// it and leaves the executor's state behind). The core only builds valid headers (src/http.rs); should one
// still be refused, the caller gets a JSON 500 that both dialects' SDKs can read.
const INTERNAL_ERROR = JSON.stringify({
  type: "error",
  error: {
    type: "api_error",
    message: "internal error in the gateway; the request was not completed",
    param: null,
    code: "internal_error",
  },
});

function respond(body, status, lines) {
  try {
    return new Response(body, { status, headers: headersFrom(lines) });
  } catch (e) {
    console.error(`meridian: could not build a response: ${e?.message ?? e}`);
    return new Response(INTERNAL_ERROR, { status: 500, headers: { "content-type": "application/json" } });
  }
}

/** A response with a body copied out of wasm memory (`bytes` is a view), a stream, or nothing. */
export function respondBytes(status, lines, bytes) {
  return respond(bytes.slice(), status, lines);
}

// Response bodies produced by executor tasks, by task id: the task pushes chunks as they are ready.
const bodies = new Map();

/** Removes and returns the entry for `id` (undefined when there is none). */
function take(map, id) {
  const v = map.get(id);
  map.delete(id);
  return v;
}

// Bytes a response body holds ahead of its reader before the task producing it waits: a slow reader holds the
// provider back (through our reads of its body) instead of the isolate buffering the whole answer.
const BODY_HIGH_WATER = 256 * 1024;
// Body id -> the executor slot of its task, waiting for room.
const drainWaiters = new Map();

function wakeProducer(id) {
  const slot = take(drainWaiters, id);
  if (slot !== undefined) settleFn(slot, true, undefined);
}

export function respondPushed(status, lines, id) {
  const stream = new ReadableStream(
    {
      start(controller) {
        bodies.set(id, controller);
      },
      // Called whenever the queue has room again.
      pull() {
        wakeProducer(id);
      },
      cancel() {
        drainWaiters.delete(id);
        if (bodies.delete(id)) cancelFn(id);
      },
    },
    { highWaterMark: BODY_HIGH_WATER, size: (chunk) => chunk.byteLength },
  );
  return respond(stream, status, lines);
}

/**
 * `chunk` is a view into wasm memory: copied. 0 when the body no longer takes chunks (its reader left, or the
 * runtime closed it): the task then stops; 1 when it has room for more; 2 when it is full, and the task waits
 * (`whenDrained`) before it reads on. Never throws, since an exception would unwind through the wasm.
 */
export function pushChunk(id, chunk) {
  const c = bodies.get(id);
  if (c === undefined) return 0;
  try {
    c.enqueue(chunk.slice());
    return c.desiredSize > 0 ? 1 : 2;
  } catch {
    bodies.delete(id);
    return 0;
  }
}

/** Reports `slot` once body `id` has room (or is gone); from a microtask, never inside the wasm's call. */
export function whenDrained(id, slot) {
  const c = bodies.get(id);
  if (c === undefined || c.desiredSize > 0) {
    queueMicrotask(() => settleFn(slot, true, undefined));
  } else {
    drainWaiters.set(id, slot);
  }
}

/** Ends body `id` with `end(controller)`; a body its reader already closed is left as it is. */
function endBody(id, end) {
  drainWaiters.delete(id);
  const c = take(bodies, id);
  try {
    if (c !== undefined) end(c);
  } catch {
    // Already closed by its reader.
  }
}

export function failStream(id, message) {
  endBody(id, (c) => c.error(new Error(message)));
}

export function endStream(id) {
  endBody(id, (c) => c.close());
}

export function respondEmpty(status, lines) {
  return respond(null, status, lines);
}

/**
 * A non-streamed exchange in one promise (one await in wasm instead of one per step, and no wasm timers): the
 * headers within `firstByteMs`, then the whole body within `bodyMs` and `limit` bytes. Never rejects; resolves
 * to `{ kind, head, bytes, message }`, kind 0 = complete, 1 = no headers in time, 2 = no response (message),
 * 3 = body not complete in time, 4 = body failed or too long (message). `head` is responseHead's text.
 *
 * One timer serves both deadlines and is never cleared: when it fires it checks the current one and re-arms for
 * what is left. setTimeout and clearTimeout per phase were about 5% of a request's CPU in `make profile`; a timer
 * still pending when the request ends is dropped by the runtime with the request. (Timers cannot be shared across
 * requests: the runtime cancels a request's timers when it ends.)
 */
export function exchange(url, method, lines, body, controller, firstByteMs, bodyMs, limit) {
  return new Promise((resolve) => {
    let head = "";
    let settled = false;
    let expired = 1;
    let due = Date.now() + firstByteMs;
    let armedFor = due;
    const done = (kind, bytes, message) => {
      if (settled) return;
      settled = true;
      resolve({ kind, head, bytes, message });
    };
    const check = () => {
      if (settled) return;
      const left = due - Date.now();
      if (left > 0) {
        armedFor = due;
        setTimeout(check, left);
      } else done(expired);
    };
    setTimeout(check, firstByteMs);
    const failed = (kind) => (e) => done(kind, undefined, String(e?.message ?? e));
    send(url, method, lines, body, controller).then((resp) => {
      if (settled) return;
      head = responseHead(resp);
      expired = 3;
      due = Date.now() + bodyMs;
      if (due < armedFor) {
        armedFor = due;
        setTimeout(check, bodyMs);
      }
      if (resp.body === null) return done(0, new Uint8Array(0));
      resp.arrayBuffer().then(
        (b) => (b.byteLength > limit ? done(4, undefined, `body larger than ${limit} bytes`) : done(0, new Uint8Array(b))),
        failed(4),
      );
    }, failed(2));
  });
}

// The request executor's half (src/edge/executor.rs): settled promises are handed back to the wasm through one
// callback registered per instance, instead of two wasm-bindgen closures per awaited promise.
let settleFn = () => {};
let pollFn = () => {};
let cancelFn = () => {};
// Task id -> { resolve, reject } of its answer's promise.
const answers = new Map();

/** Called once per wasm instance (a panic replaces the instance). */
export function register(settle, poll, cancel) {
  settleFn = settle;
  pollFn = poll;
  cancelFn = cancel;
}

/**
 * Called by the panic hook, just before the instance traps: a task that panicked after an await would never
 * answer, so every answer still pending is rejected (worker/entry.mjs turns that into a JSON 500; the instance's
 * state is lost with it), and every body still being produced fails, as a provider's broken stream does.
 */
export function panicked() {
  for (const id of [...answers.keys()]) failAnswer(id, "the request panicked");
  for (const id of [...bodies.keys()]) failStream(id, "the gateway panicked");
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
  return new Promise((resolve, reject) => answers.set(id, { resolve, reject }));
}

export function finish(id, response) {
  take(answers, id)?.resolve(response);
}

function failAnswer(id, message) {
  const answer = take(answers, id);
  try {
    answer?.reject(new Error(message));
  } catch {
    // Its request is gone.
  }
}

/** Task `id` was dropped without an answer (see executor.rs's sweep). */
export function abandon(id) {
  failAnswer(id, "the request outlived its deadlines and was abandoned");
}

export function abortController() {
  return new AbortController();
}

export function abortQuietly(controller) {
  try {
    controller.abort();
  } catch {
    // Its request is gone.
  }
}

/** Reports `slot` to the executor after `ms` milliseconds; the timer is returned for cancelSleep. */
export function sleep(ms, slot) {
  const settle = settleFn;
  return setTimeout(() => settle(slot, true, undefined), ms);
}

export function cancelSleep(timer) {
  clearTimeout(timer);
}

/**
 * Keeps the request alive (ctx.waitUntil) until background task `id` reports its end with `finish`: JavaScript,
 * because the context object is the runtime's and waitUntil is its method.
 */
export function waitForTask(ctx, id) {
  try {
    ctx.waitUntil(deferred(id));
  } catch (e) {
    console.error(`meridian: could not keep the request alive: ${e?.message ?? e}`);
  }
}

export function logError(message) {
  console.error(message);
}

/**
 * Asks the rate-limit Durable Object `name` of namespace `binding` (src/edge/limiter.rs) for `url`; resolves to
 * the answer's text, rejects with a message.
 */
export function limiterCheck(env, binding, name, url) {
  try {
    const ns = env[binding];
    if (!ns) return Promise.reject(new Error(`the ${binding} Durable Object binding is missing`));
    return ns
      .get(ns.idFromName(name))
      .fetch(url)
      .then((r) => r.text());
  } catch (e) {
    return Promise.reject(e);
  }
}

// Workers KV. It is an optimisation here (routing estimates, cached answers), so a failing read is a miss and a
// failing write is logged.
export function kvGet(env, binding, key) {
  const kv = env[binding];
  if (!kv) return Promise.resolve(null);
  try {
    return kv.get(key).catch(() => null);
  } catch {
    return Promise.resolve(null);
  }
}

export function kvPut(env, ctx, binding, key, value, ttlS, metadata) {
  const kv = env[binding];
  if (!kv) return;
  const options = { expirationTtl: ttlS };
  if (metadata) {
    try {
      options.metadata = JSON.parse(metadata);
    } catch {
      // Written without it.
    }
  }
  const failed = (e) => console.error(`KV write failed: ${e?.message ?? e}`);
  try {
    ctx.waitUntil(kv.put(key, value, options).catch(failed));
  } catch (e) {
    failed(e);
  }
}
