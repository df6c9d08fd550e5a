//! The rate-limit Durable Object: one instance per budget key holds its minute window, so every isolate in every
//! location sees the same counter. worker/entry.mjs re-exports it (replacing an instance a panic invalidated).

use super::lease_query::LeaseQuery;
use crate::ratelimit::{Decision, Standing, Window, DEFAULT_WINDOW_MS};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

#[durable_object(fetch)]
pub struct RateLimiter {
    window: RefCell<Window>,
}

/// `…/check?tokens=&window_ms=&rpm=&tpm=`, from the gateway's own [`super::platform`].
#[derive(Deserialize)]
struct Check {
    #[serde(default)]
    tokens: u64,
    window_ms: Option<u64>,
    rpm: Option<u64>,
    tpm: Option<u64>,
}

/// `…/spend?tokens=&window_ms=`: a correction after the provider counted (negative gives tokens back).
#[derive(Deserialize)]
struct Spend {
    tokens: i64,
    window_ms: Option<u64>,
}

/// The object's answer.
#[derive(Serialize, Deserialize)]
pub struct Verdict {
    allowed: bool,
    retry_after_s: u64,
    /// Where the key stands after this request, for its answer's rate-limit headers.
    #[serde(default)]
    standing: Standing,
}

impl From<Verdict> for (Decision, Standing) {
    fn from(v: Verdict) -> Self {
        let decision = if v.allowed {
            Decision::Allowed
        } else {
            Decision::Limited {
                retry_after_s: v.retry_after_s,
            }
        };
        (decision, v.standing)
    }
}

impl DurableObject for RateLimiter {
    fn new(_state: State, _env: Env) -> Self {
        RateLimiter {
            window: RefCell::new(Window::default()),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        // The query read without a URL parser: `Request::query` parses the whole URL, and the parser's IDNA
        // tables are about 40 KB of the module, which every cold start pays for (docs/performance.md).
        let url = req.inner().url();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        if path.ends_with("/lease") {
            let q: LeaseQuery = match serde_urlencoded::from_str(query) {
                Ok(q) => q,
                Err(e) => return Response::error(format!("malformed lease: {e}"), 400),
            };
            let now = js_sys::Date::now() as u64;
            let window = q.window_ms.unwrap_or(DEFAULT_WINDOW_MS);
            let mut w = self.window.borrow_mut();
            if let Some((end, requests, tokens)) = q.give_back() {
                w.give_back(now, window, end, requests, tokens);
            }
            let rpm = q.rpm.map(|v| v.min(u64::from(u32::MAX)) as u32);
            let grant = w.grant(now, window, (rpm, q.tpm), (q.want_requests, q.want_tokens));
            return Response::from_json(&grant);
        }
        if path.ends_with("/spend") {
            let q: Spend = match serde_urlencoded::from_str(query) {
                Ok(q) => q,
                Err(e) => return Response::error(format!("malformed spend: {e}"), 400),
            };
            let now = js_sys::Date::now() as u64;
            let window = q.window_ms.unwrap_or(DEFAULT_WINDOW_MS);
            self.window.borrow_mut().spend(now, window, q.tokens);
            return Response::empty();
        }
        // A malformed check is answered, not thrown: worker/entry.mjs replaces the object on a rejection (that is
        // how a panic shows), which would lose the window.
        let q: Check = match serde_urlencoded::from_str(query) {
            Ok(q) => q,
            Err(e) => return Response::error(format!("malformed check: {e}"), 400),
        };
        let now = js_sys::Date::now() as u64;
        let window = q.window_ms.unwrap_or(DEFAULT_WINDOW_MS);
        let mut w = self.window.borrow_mut();
        let rpm = q.rpm.map(|v| v.min(u64::from(u32::MAX)) as u32);
        let decision = w.check(now, window, rpm, q.tpm);
        if decision == Decision::Allowed {
            w.spend(now, window, i64::try_from(q.tokens).unwrap_or(i64::MAX));
        }
        let standing = w.standing(now, window, (rpm, q.tpm));
        Response::from_json(&match decision {
            Decision::Allowed => Verdict {
                allowed: true,
                retry_after_s: 0,
                standing,
            },
            Decision::Limited { retry_after_s } => Verdict {
                allowed: false,
                retry_after_s,
                standing,
            },
        })
    }
}
