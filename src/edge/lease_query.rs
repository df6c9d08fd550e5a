//! The `…/lease` query both kinds of key object answer (a limiter's window, a ledger's budget): written by the
//! gateway's side ([`super::platform`]) and read by the objects' ([`super::limiter`], [`super::ledger`]) from this
//! one type, so the two sides cannot drift apart. Each asks for a slice and gives back the unused rest of the last.

use crate::platform::LeaseAsk;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LeaseQuery {
    /// A limiter's window: its length and limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// A ledger's budget: micro-dollars per day and per month, and the model whose own budget it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub month: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub want_requests: u32,
    #[serde(default)]
    pub want_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub give_end_ms: Option<u64>,
    #[serde(default)]
    pub give_requests: u32,
    #[serde(default)]
    pub give_tokens: u64,
}

impl LeaseQuery {
    fn wanting(ask: &LeaseAsk) -> Self {
        let (give_end_ms, give_requests, give_tokens) = match ask.want.give_back {
            Some((end, requests, tokens)) => (Some(end), requests, tokens),
            None => (None, 0, 0),
        };
        LeaseQuery {
            want_requests: ask.want.requests,
            want_tokens: ask.want.tokens,
            give_end_ms,
            give_requests,
            give_tokens,
            ..LeaseQuery::default()
        }
    }

    /// A limiter's: the window and its `rpm` and `tpm`.
    pub fn for_limiter(ask: &LeaseAsk) -> Self {
        LeaseQuery {
            window_ms: Some(ask.window_ms),
            rpm: ask.rpm.map(u64::from),
            tpm: ask.tpm,
            ..Self::wanting(ask)
        }
    }

    /// A ledger's: the budget's daily limit (the ask's `tpm`), monthly limit and scope.
    pub fn for_ledger(ask: &LeaseAsk) -> Self {
        LeaseQuery {
            day: ask.tpm,
            month: ask.per_month,
            model: ask.scope.clone(),
            ..Self::wanting(ask)
        }
    }

    /// The query string (form-encoded, as `serde_urlencoded` reads it back: a `+` in a model name stays one).
    pub fn encode(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }

    /// What the asker gives back: the window it belongs to, requests and tokens.
    pub fn give_back(&self) -> Option<(u64, u32, u64)> {
        self.give_end_ms
            .map(|end| (end, self.give_requests, self.give_tokens))
    }
}
