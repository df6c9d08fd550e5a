//! The rate-limit Durable Object's state: one instance per budget key holds its minute window, so every isolate
//! in every location sees the same counter. The object itself is the `RateLimiter` class in worker/entry.mjs,
//! which keeps a [`RateWindow`] and asks it about each request.

use crate::ratelimit::{Decision, Window};
use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen]
#[derive(Default)]
pub struct RateWindow {
    window: Window,
}

#[wasm_bindgen]
impl RateWindow {
    #[wasm_bindgen(constructor)]
    pub fn new() -> RateWindow {
        RateWindow::default()
    }

    /// For `…/check?rpm=&tpm=&tokens=&window_ms=` at `now_ms`: `{"allowed":bool,"retry_after_s":n}`, spending
    /// the tokens when allowed.
    pub fn check(&mut self, url: &str, now_ms: f64) -> String {
        // Plain string parsing: the URL comes from our own gateway, and a URL parser (with IDNA tables) would
        // add about a hundred kilobytes of wasm.
        let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.parse::<u64>().ok())
        };
        let now = now_ms as u64;
        let window = param("window_ms").unwrap_or(crate::ratelimit::DEFAULT_WINDOW_MS);
        let decision = self.window.check(
            now,
            window,
            param("rpm").map(|v| v.min(u64::from(u32::MAX)) as u32),
            param("tpm"),
        );
        if decision == Decision::Allowed {
            self.window.spend(now, window, param("tokens").unwrap_or(0));
        }
        match decision {
            Decision::Allowed => r#"{"allowed":true,"retry_after_s":0}"#.to_owned(),
            Decision::Limited { retry_after_s } => {
                format!(r#"{{"allowed":false,"retry_after_s":{retry_after_s}}}"#)
            }
        }
    }
}
