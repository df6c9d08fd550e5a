//! The spend ledger: what each gateway key (and each browser-token subject under it) spent, per model and UTC day.
//! Kept by one Durable Object per key, in its SQLite storage, so every isolate in every location adds to the same
//! rows; written after the response (`wait_until`), never on the client's path. This is the shared shape: one
//! request's entry, a row, and the dates they are filed under.

use crate::ratelimit::{Grant, Window};
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
    #[serde(serialize_with = "crate::pricing::serialize_usd")]
    pub cost_usd: f64,
    pub unpriced_requests: u64,
    /// Answered by Meridian's cache: free, and what they would have cost.
    pub cache_hits: u64,
    #[serde(serialize_with = "crate::pricing::serialize_usd")]
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
    pub spend: Spend,
    /// Shadow calls and experiment requests to keep (see `shadow::Outcome`); an entry with only these has an
    /// empty spend, and adds no spend row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<crate::shadow::Outcome>,
}

/// What a request reserved of its key's budgets up front, micro-dollars: of the key's whole, and of its model's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reserved {
    #[serde(default)]
    pub key: u64,
    #[serde(default)]
    pub model: u64,
}

impl Reserved {
    pub fn is_zero(&self) -> bool {
        self.key == 0 && self.model == 0
    }
}

/// A row of `GET /_meridian/spend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub day: String,
    pub model: String,
    pub principal: String,
    pub spend: Spend,
}

/// What to write for a finished request: its entry when a provider (or the cache) served it; a request that spent
/// nothing (an error, a refusal) but reserved budget writes an entry of nothing, so the reservation is given back.
pub fn entry_reserving(r: &Record, reserved: Reserved) -> Option<Entry> {
    entry(r).or_else(|| {
        (!reserved.is_zero()).then(|| Entry {
            day: day_of(r.ts),
            model: r.model.clone().unwrap_or_default(),
            principal: r.principal.clone().unwrap_or_default(),
            spend: Spend::default(),
            outcomes: Vec::new(),
        })
    })
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
        outcomes: Vec::new(),
    })
}

/// How long an isolate collects ledger entries for a key before it writes them in one call: at most one write
/// per key and isolate in that time, instead of one per request (each a Durable Object call).
pub const FLUSH_MS: u64 = 1_000;

/// Entries waiting to be written, by ledger object, with what each reserved of its budgets.
#[derive(Debug, Default)]
pub struct Batch {
    by_ledger: std::collections::HashMap<String, Vec<(Entry, Reserved)>>,
}

impl Batch {
    /// Adds an entry; `true` when it is the first waiting for that ledger (the caller schedules the write).
    /// Entries for the same day, model and principal are summed: the write carries one per row.
    pub fn add(&mut self, ledger: &str, entry: Entry, reserved: Reserved) -> bool {
        let waiting = self.by_ledger.entry(ledger.to_owned()).or_default();
        let first = waiting.is_empty();
        match waiting.iter_mut().find(|(e, _)| {
            (&e.day, &e.model, &e.principal) == (&entry.day, &entry.model, &entry.principal)
        }) {
            Some((e, r)) => {
                e.spend.add(&entry.spend);
                e.outcomes.extend(entry.outcomes);
                r.key += reserved.key;
                r.model += reserved.model;
            }
            None => waiting.push((entry, reserved)),
        }
        first
    }

    pub fn take(&mut self, ledger: &str) -> Vec<(Entry, Reserved)> {
        self.by_ledger.remove(ledger).unwrap_or_default()
    }
}

/// The UTC day of a Unix time in milliseconds, `YYYY-MM-DD` (the civil-from-days algorithm of the proleptic
/// Gregorian calendar).
pub fn day_of(ms: u64) -> String {
    let (y, m, d) = civil(ms / 86_400_000);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The Unix milliseconds at which the UTC day after the one of `ms` begins.
pub fn next_day_ms(ms: u64) -> u64 {
    (ms / DAY_MS + 1) * DAY_MS
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

const DAY_MS: u64 = 86_400_000;

/// Micro-dollars, the budget's unit (a `Window`'s tokens).
pub fn micro(usd: f64) -> u64 {
    (usd.max(0.0) * 1e6).round() as u64
}

/// A key's budget as its ledger object keeps it: a window of the UTC day whose tokens are micro-dollars spent or
/// handed out in slices, and what the month spent before today. Slices are void at the day's end, like a rate
/// window's.
#[derive(Debug, Clone)]
pub struct BudgetBook {
    pub day: String,
    window: Window,
    before_today_micro: u64,
}

impl BudgetBook {
    /// The book of `now`'s day, from what the ledger's rows say was spent today and earlier this month.
    pub fn new(now: u64, spent_today_micro: u64, before_today_micro: u64) -> Self {
        let mut window = Window::default();
        window.spend(
            now,
            DAY_MS,
            i64::try_from(spent_today_micro).unwrap_or(i64::MAX),
        );
        BudgetBook {
            day: day_of(now),
            window,
            before_today_micro,
        }
    }

    /// A slice of what today may still spend (the day's limit, and what the month's leaves after the days before
    /// today), after taking back the unused rest of the last one. An empty grant says when to try again: the
    /// day's end, or the month's when the month is what ran out.
    pub fn grant(
        &mut self,
        now: u64,
        want: (u32, u64),
        give_back: Option<(u64, u32, u64)>,
        (day, month): (Option<u64>, Option<u64>),
    ) -> Grant {
        if let Some((end, requests, tokens)) = give_back {
            self.window.give_back(now, DAY_MS, end, requests, tokens);
        }
        let month_left = month.map(|m| m.saturating_sub(self.before_today_micro));
        let limit = match (day, month_left) {
            (Some(d), Some(m)) => d.min(m),
            (d, m) => d.or(m).unwrap_or(0),
        };
        let mut grant =
            self.window
                .grant(now, DAY_MS, (None, Some(limit)), (want.0.max(1), want.1));
        if grant.requests == 0 && month_left == Some(limit) && day.is_none_or(|d| d >= limit) {
            grant.retry_after_s = next_month_ms(now).saturating_sub(now).div_ceil(1000).max(1);
        }
        grant
    }

    /// A request filed under `day` cost `cost_micro`, having reserved `reserved_micro` from a slice.
    pub fn spent(&mut self, now: u64, day: &str, cost_micro: u64, reserved_micro: u64) {
        if day == self.day {
            self.window
                .spend(now, DAY_MS, cost_micro as i64 - reserved_micro as i64);
        }
    }
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
    fn a_budget_hands_out_no_more_than_the_day_and_the_month_leave() {
        let now = 1_796_607_618_000;
        // $10 a day, $25 a month; $20 spent earlier this month, $1 today.
        let mut b = BudgetBook::new(now, micro(1.0), micro(20.0));
        let limits = (Some(micro(10.0)), Some(micro(25.0)));
        let g = b.grant(now, (5, micro(100.0)), None, limits);
        assert_eq!(
            g.tokens,
            micro(4.0),
            "the month leaves $5, of which $1 is spent today"
        );
        let empty = b.grant(now, (5, 1), None, limits);
        assert_eq!(empty.requests, 0);
        assert!(
            empty.retry_after_s > 86_400,
            "the month ran out: retry when it ends, not tomorrow ({} s)",
            empty.retry_after_s
        );
        // A request reserved $2 of the slice and cost $0.50: the book counts $0.50.
        b.spent(now, &b.day.clone(), micro(0.5), micro(2.0));
        let back = b.grant(
            now,
            (1, micro(100.0)),
            Some((g.window_end_ms, 0, 0)),
            limits,
        );
        assert_eq!(back.tokens, micro(1.5));
        // Without a month, the day: $10 less the $1 spent.
        let mut d = BudgetBook::new(now, micro(1.0), micro(20.0));
        let g = d.grant(now, (1, micro(100.0)), None, (Some(micro(10.0)), None));
        assert_eq!(g.tokens, micro(9.0));
        let empty = d.grant(now, (1, 1), None, (Some(micro(10.0)), None));
        assert!(empty.requests == 0 && empty.retry_after_s <= 86_400);
        // The next day starts whole (the window rolls; the object reloads the month's spend then).
        let tomorrow = next_day_ms(now) + 1;
        let g = d.grant(tomorrow, (1, micro(100.0)), None, (Some(micro(10.0)), None));
        assert_eq!(g.tokens, micro(10.0));
    }

    #[test]
    fn a_batch_sums_like_entries_and_says_when_a_write_is_due() {
        let e = |model: &str, cost: f64| Entry {
            day: "2026-12-07".into(),
            model: model.into(),
            principal: "k".into(),
            spend: Spend {
                requests: 1,
                cost_usd: cost,
                ..Spend::default()
            },
            outcomes: Vec::new(),
        };
        let r = |key, model| Reserved { key, model };
        let mut b = Batch::default();
        assert!(
            b.add("ledger:k", e("a", 1.0), r(5, 1)),
            "the first entry schedules the write"
        );
        assert!(!b.add("ledger:k", e("a", 2.0), r(7, 2)));
        assert!(!b.add("ledger:k", e("b", 4.0), r(0, 0)));
        assert!(
            b.add("ledger:j", e("a", 8.0), r(0, 0)),
            "another ledger has its own write"
        );
        let k = b.take("ledger:k");
        assert_eq!(k.len(), 2, "one entry per row");
        assert_eq!(
            (k[0].0.spend.requests, k[0].0.spend.cost_usd, k[0].1),
            (2, 3.0, r(12, 3))
        );
        assert!(b.take("ledger:k").is_empty());
        assert!(
            b.add("ledger:k", e("a", 1.0), r(0, 0)),
            "taken: the next entry schedules again"
        );
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
