// The worker's entry: the compiled gateway (build/index.js, from `make build`) behind a last line of defence.
// A Rust panic aborts the wasm call that was running, and the next call starts a fresh wasm instance. A panic in
// the synchronous part of a request throws here; a panic after an await would leave its request unanswered, so
// the panic hook has src/edge/shim.js reject every pending answer. Either way the caller gets a JSON error in its
// own dialect.
import { Gateway, RateWindow } from "../build/index.js";

/**
 * The rate-limit Durable Object: one per budget key, holding its window in the wasm (src/edge/limiter.rs).
 * A window from a wasm instance that a panic replaced cannot be used any more: it is started afresh.
 */
export class RateLimiter {
  fetch(request) {
    let answer;
    try {
      this.window ??= new RateWindow();
      answer = this.window.check(request.url, Date.now());
    } catch {
      this.window = new RateWindow();
      answer = this.window.check(request.url, Date.now());
    }
    return new Response(answer, { headers: { "content-type": "application/json" } });
  }
}

function internalError(request) {
  const anthropic = new URL(request.url).pathname === "/v1/messages";
  const message = "internal error in the gateway; the request was not completed";
  const body = anthropic
    ? { type: "error", error: { type: "api_error", message } }
    : { error: { message, type: "server_error", param: null, code: "internal_error" } };
  return new Response(JSON.stringify(body), { status: 500, headers: { "content-type": "application/json" } });
}

const EMPTY = new Uint8Array(0);

export default {
  async fetch(request, env, ctx) {
    try {
      // The body is read here, in JavaScript, and handed over with the request (src/edge/shim.js): a body the
      // client fails to send arrives as empty and is refused as invalid JSON.
      const body = request.body === null ? EMPTY : await request.arrayBuffer().then((b) => new Uint8Array(b), () => EMPTY);
      // The response itself when nothing had to be awaited, otherwise a promise of it (rejected if the request
      // panicked after an await: src/edge/shim.js watches the glue's panic flag).
      const answer = Gateway.fetch({ request, body }, env, ctx);
      return answer instanceof Response ? answer : await answer;
    } catch (e) {
      console.error("meridian: request failed with an internal error:", e);
      return internalError(request);
    }
  },
};
