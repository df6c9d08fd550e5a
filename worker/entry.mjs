// The worker's entry: the compiled gateway (build/index.js, from `make build`) behind a last line of defence.
// A Rust panic aborts the wasm instance; the glue re-creates it for the next request. The panicking request's
// promise would never settle (its task died inside wasm), so the runtime would cancel it as hung: this wrapper
// notices the glue's critical-error flag instead and answers with a JSON error in the caller's dialect.
import Meridian, { RateLimiter } from "../build/index.js";

export { RateLimiter };

function internalError(request) {
  const anthropic = new URL(request.url).pathname === "/v1/messages";
  const message = "internal error in the gateway; the request was not completed";
  const body = anthropic
    ? { type: "error", error: { type: "api_error", message } }
    : { error: { message, type: "server_error", param: null, code: "internal_error" } };
  return new Response(JSON.stringify(body), { status: 500, headers: { "content-type": "application/json" } });
}

/** Resolves when the wasm instance has crashed (the glue sets the flag from its panic hook). */
function crashed(signal) {
  const state = globalThis.__worker_init_state;
  return new Promise((resolve) => {
    const check = () => {
      if (state?.criticalError) return resolve(true);
      if (!signal.done) setTimeout(check, 2);
    };
    setTimeout(check, 2);
  });
}

export default {
  async fetch(request, env, ctx) {
    const signal = { done: false };
    try {
      const answer = new Meridian(ctx, env).fetch(request);
      const first = await Promise.race([answer, crashed(signal)]);
      if (first === true) {
        console.error("meridian: the request panicked");
        return internalError(request);
      }
      return first;
    } catch (e) {
      console.error("meridian: request failed with an internal error:", e);
      return internalError(request);
    } finally {
      signal.done = true;
    }
  },
};
