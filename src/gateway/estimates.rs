//! What routing learned, kept across isolates: loaded from KV once per isolate and location, written back
//! now and then in the background.

use super::*;

/// How long a cache lookup waits for KV before treating it as a miss.
pub(super) const KV_READ_WAIT_MS: u64 = 50;
/// How long the first request of an isolate waits for persisted estimates before routing on priors.
pub(super) const LOAD_WAIT_MS: u64 = 30;
/// Learned estimates are written back at most this often per isolate.
pub(super) const PERSIST_EVERY_MS: u64 = 10_000;
pub(super) const PERSIST_TTL_S: u64 = 7 * 24 * 3600;

pub(super) fn routing_key(loc: &Location) -> String {
    format!("routing/v1/{}", loc.colo.as_deref().unwrap_or("unknown"))
}

/// A fresh isolate starts from what this location learned before, if KV has it in time.
pub(super) async fn load_estimates<P: Platform>(platform: &P, state: &State, loc: &Location) {
    if state.loaded.replace(true) {
        return;
    }
    if let Some(Some(json)) =
        deadline(platform, LOAD_WAIT_MS, platform.kv_get(&routing_key(loc))).await
    {
        state.router.borrow_mut().import(&json);
    }
    state.router.borrow_mut().last_persist_ms = platform.now_ms();
}

/// Debounced write-back of learned estimates, finished after the response (`wait_until`).
pub(super) fn persist_estimates<P: Platform>(platform: &P, state: &State, loc: &Location) {
    // Not before this isolate has read what the location knows: it would overwrite it with less.
    if !state.loaded.get() {
        return;
    }
    let now = platform.now_ms();
    let mut router = state.router.borrow_mut();
    if router.dirty && now.saturating_sub(router.last_persist_ms) >= PERSIST_EVERY_MS {
        router.dirty = false;
        router.last_persist_ms = now;
        (platform.kv_writer())(
            routing_key(loc),
            router.export(),
            PERSIST_TTL_S,
            String::new(),
        );
    }
}
