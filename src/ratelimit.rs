//! Per-key request and token budgets over fixed one-minute windows. The state lives in one Durable Object per
//! key (a real shared counter, not per-isolate memory); this is its pure logic.

/// The budget window: a minute, unless configured otherwise (tests use seconds).
pub const DEFAULT_WINDOW_MS: u64 = 60_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    start_ms: u64,
    requests: u32,
    tokens: u64,
}

/// A slice of a window: what its holder may admit without asking, until the window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    pub requests: u32,
    pub tokens: u64,
    /// When the window the slice belongs to ends (the object's clock): an unused slice is void after it.
    pub window_end_ms: u64,
    /// With an empty grant: when the budget has room again.
    pub retry_after_s: u64,
    /// What the window has not handed out after this grant (`None`: no such limit), for the rate-limit headers.
    #[serde(default)]
    pub left_requests: Option<u32>,
    #[serde(default)]
    pub left_tokens: Option<u64>,
}

/// Where a limited key stands in its window: what the `x-ratelimit-*` headers of its answers say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Standing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_requests: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_requests: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_tokens: Option<u64>,
    /// Until the window ends and the budgets are whole again.
    #[serde(default)]
    pub reset_ms: u64,
}

impl Standing {
    /// OpenAI's names and duration format (`x-ratelimit-reset-requests: 6m0s`), in every dialect: the headers
    /// clients and their SDKs already read. Only the budgets the key has are named.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let reset = duration(self.reset_ms);
        let mut out = Vec::with_capacity(6);
        if let Some(l) = self.limit_requests {
            out.push(("x-ratelimit-limit-requests", l.to_string()));
            let left = self.remaining_requests.unwrap_or(0);
            out.push(("x-ratelimit-remaining-requests", left.to_string()));
            out.push(("x-ratelimit-reset-requests", reset.clone()));
        }
        if let Some(l) = self.limit_tokens {
            out.push(("x-ratelimit-limit-tokens", l.to_string()));
            let left = self.remaining_tokens.unwrap_or(0);
            out.push(("x-ratelimit-remaining-tokens", left.to_string()));
            out.push(("x-ratelimit-reset-tokens", reset));
        }
        out
    }
}

/// A duration as OpenAI writes its resets: `850ms`, `12s`, `6m0s`, `1h0m0s`; whole seconds rounded up.
fn duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms.div_ceil(1000);
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Over budget: retry after this many seconds (the end of the window).
    Limited {
        retry_after_s: u64,
    },
}

impl Window {
    fn roll(&mut self, now_ms: u64, window_ms: u64) {
        let window_ms = window_ms.max(1);
        if now_ms >= self.start_ms + window_ms || now_ms < self.start_ms {
            *self = Window {
                start_ms: now_ms - now_ms % window_ms,
                requests: 0,
                tokens: 0,
            };
        }
    }

    /// Admits one request if both budgets have room; an admitted request counts against `rpm` at once.
    pub fn check(
        &mut self,
        now_ms: u64,
        window_ms: u64,
        rpm: Option<u32>,
        tpm: Option<u64>,
    ) -> Decision {
        self.roll(now_ms, window_ms);
        let over = rpm.is_some_and(|r| self.requests >= r) || tpm.is_some_and(|t| self.tokens >= t);
        if over {
            let end = self.start_ms + window_ms.max(1);
            return Decision::Limited {
                retry_after_s: (end.saturating_sub(now_ms)).div_ceil(1000).max(1),
            };
        }
        self.requests += 1;
        Decision::Allowed
    }

    /// What the window has left of each budget the key has, and how long until it ends.
    pub fn standing(
        &mut self,
        now_ms: u64,
        window_ms: u64,
        (rpm, tpm): (Option<u32>, Option<u64>),
    ) -> Standing {
        self.roll(now_ms, window_ms);
        let (remaining_requests, remaining_tokens) = self.left(rpm, tpm);
        Standing {
            limit_requests: rpm,
            limit_tokens: tpm,
            remaining_requests,
            remaining_tokens,
            reset_ms: (self.start_ms + window_ms.max(1)).saturating_sub(now_ms),
        }
    }

    fn left(&self, rpm: Option<u32>, tpm: Option<u64>) -> (Option<u32>, Option<u64>) {
        (
            rpm.map(|r| r.saturating_sub(self.requests)),
            tpm.map(|t| t.saturating_sub(self.tokens)),
        )
    }

    /// Tokens spent in the current window.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Hands out a slice of the window: up to `want_requests` requests and `want_tokens` tokens, no more than the
    /// budgets have left, counted as spent at once (what the holder does not use it gives back with
    /// [`Window::give_back`]). An unlimited budget grants what is asked.
    pub fn grant(
        &mut self,
        now_ms: u64,
        window_ms: u64,
        (rpm, tpm): (Option<u32>, Option<u64>),
        (want_requests, want_tokens): (u32, u64),
    ) -> Grant {
        self.roll(now_ms, window_ms);
        let end = self.start_ms + window_ms.max(1);
        let requests = rpm.map_or(want_requests, |r| {
            want_requests.min(r.saturating_sub(self.requests))
        });
        let tokens = tpm.map_or(want_tokens, |t| {
            want_tokens.min(t.saturating_sub(self.tokens))
        });
        let exhausted = requests == 0 || (tpm.is_some() && tokens == 0 && want_tokens > 0);
        if exhausted {
            let (left_requests, left_tokens) = self.left(rpm, tpm);
            return Grant {
                requests: 0,
                tokens: 0,
                window_end_ms: end,
                retry_after_s: end.saturating_sub(now_ms).div_ceil(1000).max(1),
                left_requests,
                left_tokens,
            };
        }
        self.requests += requests;
        self.tokens = self.tokens.saturating_add(tokens);
        let (left_requests, left_tokens) = self.left(rpm, tpm);
        Grant {
            requests,
            tokens,
            window_end_ms: end,
            retry_after_s: 0,
            left_requests,
            left_tokens,
        }
    }

    /// Takes back what a slice of the window ending at `window_end_ms` did not use; nothing if that window is over.
    pub fn give_back(
        &mut self,
        now_ms: u64,
        window_ms: u64,
        window_end_ms: u64,
        requests: u32,
        tokens: u64,
    ) {
        self.roll(now_ms, window_ms);
        if self.start_ms + window_ms.max(1) == window_end_ms {
            self.requests = self.requests.saturating_sub(requests);
            self.tokens = self.tokens.saturating_sub(tokens);
        }
    }

    /// Tokens are known only as answers complete; they count against the window they complete in.
    /// `tokens` may be negative: an estimate spent up front is corrected once the provider has counted.
    pub fn spend(&mut self, now_ms: u64, window_ms: u64, tokens: i64) {
        self.roll(now_ms, window_ms);
        self.tokens = self.tokens.saturating_add_signed(tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_per_minute_trip_and_recover() {
        let mut w = Window::default();
        let t0 = 120_000;
        for i in 0..3 {
            assert_eq!(
                w.check(t0 + i, DEFAULT_WINDOW_MS, Some(3), None),
                Decision::Allowed
            );
        }
        assert_eq!(
            w.check(t0 + 10_000, DEFAULT_WINDOW_MS, Some(3), None),
            Decision::Limited { retry_after_s: 50 }
        );
        assert_eq!(
            w.check(t0 + 60_000, DEFAULT_WINDOW_MS, Some(3), None),
            Decision::Allowed,
            "a new window"
        );
    }

    #[test]
    fn tokens_per_minute() {
        let mut w = Window::default();
        assert_eq!(
            w.check(0, DEFAULT_WINDOW_MS, None, Some(100)),
            Decision::Allowed
        );
        w.spend(1, DEFAULT_WINDOW_MS, 150);
        assert!(matches!(
            w.check(2, DEFAULT_WINDOW_MS, None, Some(100)),
            Decision::Limited { .. }
        ));
        assert_eq!(
            w.check(60_001, DEFAULT_WINDOW_MS, None, Some(100)),
            Decision::Allowed
        );
    }

    #[test]
    fn standing_counts_what_the_window_has_left() {
        let mut w = Window::default();
        let limits = (Some(10), Some(1000));
        w.check(60_000, DEFAULT_WINDOW_MS, Some(10), Some(1000));
        w.spend(60_001, DEFAULT_WINDOW_MS, 250);
        let g = w.grant(70_000, DEFAULT_WINDOW_MS, limits, (3, 300));
        assert_eq!((g.left_requests, g.left_tokens), (Some(6), Some(450)));
        let s = w.standing(75_000, DEFAULT_WINDOW_MS, limits);
        assert_eq!(
            (s.remaining_requests, s.remaining_tokens, s.reset_ms),
            (Some(6), Some(450), 45_000)
        );
        assert_eq!(
            w.standing(120_000, DEFAULT_WINDOW_MS, (Some(10), None)),
            Standing {
                limit_requests: Some(10),
                remaining_requests: Some(10),
                reset_ms: 60_000,
                ..Standing::default()
            },
            "a new window is whole"
        );
    }

    #[test]
    fn headers_name_only_the_budgets_a_key_has() {
        let s = Standing {
            limit_requests: Some(20),
            remaining_requests: Some(7),
            reset_ms: 360_000,
            ..Standing::default()
        };
        assert_eq!(
            s.headers(),
            vec![
                ("x-ratelimit-limit-requests", "20".to_owned()),
                ("x-ratelimit-remaining-requests", "7".to_owned()),
                ("x-ratelimit-reset-requests", "6m0s".to_owned()),
            ]
        );
        let names = |t: Standing| t.headers().into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(
            names(Standing {
                limit_tokens: Some(1),
                ..Standing::default()
            }),
            [
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens"
            ]
        );
        for (ms, text) in [
            (850, "850ms"),
            (1, "1ms"),
            (12_001, "13s"),
            (3_600_000, "1h0m0s"),
        ] {
            assert_eq!(duration(ms), text);
        }
    }
}
