// The worker's entry: the compiled gateway (build/index.js, from `make build`) behind a last line of defence.
// A Rust panic aborts the wasm instance; the glue re-creates it for the next request. The panicking request's
// promise would never settle (its task died inside wasm), so the runtime would cancel it as hung: this wrapper
// notices the glue's critical-error flag instead and answers with a JSON error in the caller's dialect.
import { Gateway, RateLimiter } from "../build/index.js";

export { RateLimiter };

function internalError(request) {
  const anthropic = new URL(request.url).pathname === "/v1/messages";
  const message = "internal error in the gateway; the request was not completed";
  const body = anthropic
    ? { type: "error", error: { type: "api_error", message } }
    : { error: { message, type: "server_error", param: null, code: "internal_error" } };
  return new Response(JSON.stringify(body), { status: 500, headers: { "content-type": "application/json" } });
}

// The glue's panic hook sets `criticalError` on this object; a setter turns that into an event, so requests in
// flight learn of the crash at once, at no cost per request (polling the flag would take a timer per request).
const state = globalThis.__worker_init_state;
const EMPTY = new Uint8Array(0);
const waiting = new Set();
if (state) {
  let flag = Boolean(state.criticalError);
  Object.defineProperty(state, "criticalError", {
    configurable: true,
    enumerable: true,
    get: () => flag,
    set: (v) => {
      flag = Boolean(v);
      if (flag) for (const wake of waiting) wake(true);
    },
  });
}

export default {
  async fetch(request, env, ctx) {
    let wake;
    try {
      const crashed = new Promise((resolve) => waiting.add((wake = resolve)));
      // The body is read here, in JavaScript, and handed over with the request (src/edge/shim.js): a body the
      // client fails to send arrives as empty and is refused as invalid JSON.
      const body = request.body === null ? EMPTY : await request.arrayBuffer().then((b) => new Uint8Array(b), () => EMPTY);
      const answer = Gateway.fetch({ request, body }, env, ctx);
      const first = await Promise.race([answer, crashed]);
      if (first === true) {
        console.error("meridian: the request panicked");
        return internalError(request);
      }
      return first;
    } catch (e) {
      console.error("meridian: request failed with an internal error:", e);
      return internalError(request);
    } finally {
      waiting.delete(wake);
    }
  },
};
