//! The rate-limit Durable Object: one instance per budget key holds its minute window, so every isolate in
//! every location sees the same counter.

use crate::ratelimit::{Decision, Window};
use std::cell::RefCell;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

#[durable_object(fetch)]
pub struct RateLimiter {
    window: RefCell<Window>,
}

impl DurableObject for RateLimiter {
    fn new(_state: State, _env: Env) -> Self {
        RateLimiter {
            window: RefCell::new(Window::default()),
        }
    }

    /// `GET /check?rpm=&tpm=&tokens=` answers `{"allowed":bool,"retry_after_s":n}`.
    async fn fetch(&self, req: Request) -> Result<Response> {
        // Plain string parsing: the URL comes from our own gateway, and a URL parser (with IDNA tables) would
        // add about a hundred kilobytes of wasm.
        let url = req.inner().url();
        let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.parse::<u64>().ok())
        };
        let now = js_sys::Date::now() as u64;
        let mut w = self.window.borrow_mut();
        let window = param("window_ms").unwrap_or(crate::ratelimit::DEFAULT_WINDOW_MS);
        let decision = w.check(
            now,
            window,
            param("rpm").map(|v| v.min(u64::from(u32::MAX)) as u32),
            param("tpm"),
        );
        if decision == Decision::Allowed {
            w.spend(now, window, param("tokens").unwrap_or(0));
        }
        let body = match decision {
            Decision::Allowed => r#"{"allowed":true,"retry_after_s":0}"#.to_owned(),
            Decision::Limited { retry_after_s } => {
                format!(r#"{{"allowed":false,"retry_after_s":{retry_after_s}}}"#)
            }
        };
        Response::ok(body)
    }
}
