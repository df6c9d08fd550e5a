// The worker's entry. JavaScript because the runtime wants a module whose default export has `fetch` and whose
// named exports are the Durable Object classes; the gateway itself is build/index.js (`make build`), the
// `#[event(fetch)]` handler in src/edge/mod.rs. What this file adds is the last line of defence: a Rust panic
// traps the instance (the next call gets a fresh one), and the request that panicked, or any that was waiting
// on that instance, gets a JSON error in its caller's dialect instead of a hung or HTML answer.
import { fetch as gateway, guarded, RateLimiter as Limiter, SpendLedger as Ledger } from "../build/index.js";

/**
 * The rate-limit Durable Object (src/edge/limiter.rs). An object made by an instance that a panic replaced
 * cannot be used any more: it is made afresh (its window restarts).
 */
export class RateLimiter {
  constructor(state, env) {
    this.args = [state, env];
  }

  async fetch(request) {
    try {
      this.limiter ??= new Limiter(...this.args);
      return await guarded(this.limiter.fetch(request));
    } catch {
      this.limiter = new Limiter(...this.args);
      return await guarded(this.limiter.fetch(request));
    }
  }
}

/**
 * The spend ledger Durable Object (src/edge/ledger.rs). Its rows are in the object's SQLite storage, which a fresh
 * instance reads again; what a panic loses is the budget slices it had handed out.
 */
export class SpendLedger {
  constructor(state, env) {
    this.args = [state, env];
  }

  async fetch(request) {
    try {
      this.ledger ??= new Ledger(...this.args);
      return await guarded(this.ledger.fetch(request));
    } catch {
      this.ledger = new Ledger(...this.args);
      return await guarded(this.ledger.fetch(request));
    }
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

export default {
  async fetch(request, env, ctx) {
    try {
      return await guarded(gateway(request, env, ctx));
    } catch (e) {
      console.error("meridian: request failed with an internal error:", e);
      return internalError(request);
    }
  },
};
