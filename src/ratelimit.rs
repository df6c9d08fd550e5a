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
            return Grant {
                requests: 0,
                tokens: 0,
                window_end_ms: end,
                retry_after_s: end.saturating_sub(now_ms).div_ceil(1000).max(1),
            };
        }
        self.requests += requests;
        self.tokens = self.tokens.saturating_add(tokens);
        Grant {
            requests,
            tokens,
            window_end_ms: end,
            retry_after_s: 0,
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
}
