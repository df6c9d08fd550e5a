//! The spend ledger: what each gateway key (and each browser-token subject under it) spent, per model and UTC day.
//! Kept by one Durable Object per key, in its SQLite storage, so every isolate in every location adds to the same
//! rows; written after the response (`wait_until`), never on the client's path. This is the shared shape: one
//! request's entry, a row, and the dates they are filed under.

use crate::record::{Pricing, Record};
use serde::{Deserialize, Serialize};

/// What a request (or a row of requests) spent. A request the serving deployment has no price for counts in
/// `unpriced_requests` and adds nothing to `cost_usd`, so a total is never silently short: the count says how
/// many were not priced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spend {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_usd: f64,
    pub unpriced_requests: u64,
    /// Answered by Meridian's cache: free, and what they would have cost.
    pub cache_hits: u64,
    pub saved_usd: f64,
}

impl Spend {
    pub fn add(&mut self, o: &Spend) {
        self.requests += o.requests;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cached_input_tokens += o.cached_input_tokens;
        self.cache_write_tokens += o.cache_write_tokens;
        self.reasoning_tokens += o.reasoning_tokens;
        self.cost_usd += o.cost_usd;
        self.unpriced_requests += o.unpriced_requests;
        self.cache_hits += o.cache_hits;
        self.saved_usd += o.saved_usd;
    }
}

/// One request's addition to the ledger, as sent to the key's object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    pub model: String,
    /// The key's name, or `token:<sub>` for a browser token.
    pub principal: String,
    #[serde(flatten)]
    pub spend: Spend,
    /// What the request reserved of its isolate's budget slice (0 without a budget): the object counts the
    /// request's cost as used from the slices it handed out.
    #[serde(default)]
    pub from_slice_usd: f64,
}

/// A row of `GET /_meridian/spend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub day: String,
    pub model: String,
    pub principal: String,
    #[serde(flatten)]
    pub spend: Spend,
}

/// The ledger entry of a finished request that a provider (or the cache) served; `None` for anything else (an
/// error, a refusal, a count of tokens), which spends nothing.
pub fn entry(r: &Record) -> Option<Entry> {
    let mut spend = Spend {
        requests: 1,
        ..Spend::default()
    };
    match r.pricing {
        Pricing::NotServed => return None,
        Pricing::Unpriced => spend.unpriced_requests = 1,
        Pricing::At(_) => spend.cost_usd = r.cost_usd().unwrap_or(0.0),
        Pricing::Cached { saved_usd } => {
            spend.cache_hits = 1;
            spend.saved_usd = saved_usd.unwrap_or(0.0);
        }
    }
    // A cached answer's counts are the original's: they were not spent again.
    if !matches!(r.pricing, Pricing::Cached { .. }) {
        let u = &r.usage;
        spend.input_tokens = u.input.unwrap_or(0);
        spend.output_tokens = u.output.unwrap_or(0);
        spend.cached_input_tokens = u.cached_input.unwrap_or(0);
        spend.cache_write_tokens = u.cache_write.unwrap_or(0);
        spend.reasoning_tokens = u.reasoning.unwrap_or(0);
    }
    Some(Entry {
        day: day_of(r.ts),
        model: r.model.clone().unwrap_or_default(),
        principal: r.principal.clone().unwrap_or_default(),
        spend,
        from_slice_usd: 0.0,
    })
}

/// The UTC day of a Unix time in milliseconds, `YYYY-MM-DD` (the civil-from-days algorithm of the proleptic
/// Gregorian calendar).
pub fn day_of(ms: u64) -> String {
    let (y, m, d) = civil(ms / 86_400_000);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The Unix milliseconds at which the UTC day after the one of `ms` begins.
pub fn next_day_ms(ms: u64) -> u64 {
    (ms / 86_400_000 + 1) * 86_400_000
}

/// The Unix milliseconds at which the UTC month after the one of `ms` begins.
pub fn next_month_ms(ms: u64) -> u64 {
    let (y, m, _) = civil(ms / 86_400_000);
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(y, m, 1) * 86_400_000
}

/// The first day of the month of `ms`, `YYYY-MM-01`.
pub fn month_start(ms: u64) -> String {
    let (y, m, _) = civil(ms / 86_400_000);
    format!("{y:04}-{m:02}-01")
}

fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether `s` is a `YYYY-MM-DD` date (the spend endpoint's `from` and `to`).
pub fn is_day(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Operation, TokenUsage};

    #[test]
    fn days_and_months_in_utc() {
        assert_eq!(day_of(0), "1970-01-01");
        // 2026-12-07T01:40:18Z and the last millisecond of 2024-02-29.
        assert_eq!(day_of(1_796_607_618_000), "2026-12-07");
        assert_eq!(day_of(1_709_251_199_999), "2024-02-29");
        assert_eq!(next_day_ms(1_709_251_199_999), 1_709_251_200_000);
        assert_eq!(day_of(next_month_ms(1_709_251_199_999)), "2024-03-01");
        assert_eq!(day_of(next_month_ms(1_796_607_618_000)), "2027-01-01");
        assert_eq!(month_start(1_796_607_618_000), "2026-12-01");
        for d in 0..800_000u64 {
            let ms = d * 86_400_000;
            let (y, m, dd) = civil(d);
            assert_eq!(days_from_civil(y, m, dd), d, "{}", day_of(ms));
        }
        assert!(is_day("2026-12-07") && !is_day("2026-1-07") && !is_day("2026-12-0x"));
    }

    #[test]
    fn entries_count_what_was_spent_and_say_what_was_not_priced() {
        let mut r = Record::new(1_796_607_618_000, "openai", Operation::Chat);
        r.model = Some("fast".into());
        r.principal = Some("team-a".into());
        r.usage = TokenUsage {
            input: Some(1_000_000),
            output: Some(0),
            ..TokenUsage::default()
        };
        assert_eq!(entry(&r), None, "not served: nothing spent");
        r.pricing = Pricing::At(crate::pricing::Price {
            input: 2.0,
            output: 8.0,
            cached_input: 1.0,
            cache_write: 2.0,
        });
        let e = entry(&r).unwrap();
        assert_eq!(
            (e.day.as_str(), e.model.as_str(), e.principal.as_str()),
            ("2026-12-07", "fast", "team-a")
        );
        assert_eq!(
            (e.spend.requests, e.spend.input_tokens, e.spend.cost_usd),
            (1, 1_000_000, 2.0)
        );
        r.pricing = Pricing::Unpriced;
        let e = entry(&r).unwrap();
        assert_eq!((e.spend.unpriced_requests, e.spend.cost_usd), (1, 0.0));
        r.pricing = Pricing::Cached {
            saved_usd: Some(2.0),
        };
        let e = entry(&r).unwrap();
        assert_eq!(
            (e.spend.cache_hits, e.spend.saved_usd, e.spend.input_tokens),
            (1, 2.0, 0)
        );
    }
}
