//! The spend ledger Durable Object: one instance per gateway key, its SQLite storage holding what the key (and each
//! browser-token subject under it) spent per model and UTC day, and its budgets (the key's whole, and any model's
//! own): each the day's spend plus the slices of it that isolates hold, handed out as
//! [`crate::ratelimit::Window`] slices in micro-dollars. worker/entry.mjs
//! re-exports it (replacing an instance a panic invalidated; the table survives, the slices outstanding are
//! forgotten, which errs towards admitting at most those slices again).

use super::lease_query::LeaseQuery;
use crate::ledger::{day_of, micro, month_start, BudgetBook, Entry, Reserved, Row, Spend};
use crate::platform::ShadowAsk;
use crate::shadow::{Outcome, StoredOutcome};
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::HashMap;
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, SqlStorageValue, State,
};

const DAY_MS: u64 = 86_400_000;
/// How long shadow and experiment outcomes are kept, days.
const OUTCOME_DAYS: u64 = 90;

#[durable_object(fetch)]
pub struct SpendLedger {
    state: State,
    /// By scope: "" for the key's whole budget, a model alias for that model's own.
    books: RefCell<HashMap<String, BudgetBook>>,
}

/// `…/rows?from=&to=`: the ledger's rows for those days (inclusive).
#[derive(Deserialize)]
struct RowsQuery {
    from: String,
    to: String,
}

/// One entry of a `POST …/record` (a JSON array of them): a request's (or like requests') spend, with what it
/// reserved of the budgets up front, so that they count what it cost instead.
#[derive(Deserialize)]
struct Record {
    entry: Entry,
    #[serde(default)]
    reserved: Reserved,
}

impl SpendLedger {
    fn sql(&self) -> worker::SqlStorage {
        self.state.storage().sql()
    }

    fn ensure_table(&self) -> Result<()> {
        self.sql().exec(
            "CREATE TABLE IF NOT EXISTS spend (day TEXT NOT NULL, model TEXT NOT NULL, principal TEXT NOT NULL, \
             requests INTEGER NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, \
             cached_input_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL, \
             reasoning_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL, unpriced_requests INTEGER NOT NULL, \
             cache_hits INTEGER NOT NULL, saved_usd REAL NOT NULL, PRIMARY KEY (day, model, principal))",
            None,
        )?;
        // Shadow calls and experiments' requests, one row each (`shadow::Outcome` as JSON); a pair's sample apart,
        // so that only the most recent few are kept.
        self.sql().exec(
            "CREATE TABLE IF NOT EXISTS outcomes (day TEXT NOT NULL, at INTEGER NOT NULL,              primary_model TEXT NOT NULL, shadow_model TEXT NOT NULL, body TEXT NOT NULL, sample TEXT)",
            None,
        )?;
        self.sql().exec(
            "CREATE INDEX IF NOT EXISTS outcomes_day ON outcomes (day)",
            None,
        )?;
        // What each shadow has spent (and holds reserved) of its daily cap.
        self.sql().exec(
            "CREATE TABLE IF NOT EXISTS shadow_spend (day TEXT NOT NULL, primary_model TEXT NOT NULL,              shadow_model TEXT NOT NULL, usd REAL NOT NULL, PRIMARY KEY (day, primary_model, shadow_model))",
            None,
        )?;
        Ok(())
    }

    /// Keeps an outcome; a shadow call's settles its reservation to its cost (a cost not known keeps the
    /// reservation), and its sample pushes the oldest beyond the shadow's `keep_samples` out.
    fn keep(&self, day: &str, mut o: Outcome, now: u64) -> Result<()> {
        if let Some((primary, shadow, usd)) = o.cap_settlement() {
            self.sql().exec(
                "UPDATE shadow_spend SET usd = usd + ? WHERE day = ? AND primary_model = ? AND shadow_model = ?",
                vec![SqlStorageValue::Float(usd), day.into(), primary.into(), shadow.into()],
            )?;
        }
        let (primary, shadow, sample) = match &mut o {
            Outcome::Pair {
                primary,
                shadow,
                sample,
                ..
            } => (primary.clone(), shadow.clone(), sample.take()),
            Outcome::Skipped {
                primary, shadow, ..
            } => (primary.clone(), shadow.clone(), None),
            Outcome::Arm {
                experiment, arm, ..
            } => (experiment.clone(), arm.clone(), None),
        };
        let sample_text: SqlStorageValue = match &sample {
            Some(s) => serde_json::to_string(s).unwrap_or_default().into(),
            None => SqlStorageValue::Null,
        };
        self.sql().exec(
            "INSERT INTO outcomes VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                day.into(),
                SqlStorageValue::Integer(now as i64),
                primary.clone().into(),
                shadow.clone().into(),
                serde_json::to_string(&o).unwrap_or_default().into(),
                sample_text,
            ],
        )?;
        if let (Some(_), Outcome::Pair { keep_samples, .. }) = (&sample, &o) {
            self.sql().exec(
                "UPDATE outcomes SET sample = NULL WHERE primary_model = ? AND shadow_model = ?                  AND sample IS NOT NULL AND rowid NOT IN (SELECT rowid FROM outcomes WHERE primary_model = ?                  AND shadow_model = ? AND sample IS NOT NULL ORDER BY at DESC, rowid DESC LIMIT ?)",
                vec![
                    primary.clone().into(),
                    shadow.clone().into(),
                    primary.into(),
                    shadow.into(),
                    SqlStorageValue::Integer(i64::from(*keep_samples)),
                ],
            )?;
        }
        Ok(())
    }

    /// Outcomes and shadow caps older than [`OUTCOME_DAYS`] days are dropped (spend rows are kept).
    fn forget(&self, now: u64) -> Result<()> {
        let oldest = day_of(now.saturating_sub(OUTCOME_DAYS * DAY_MS));
        self.sql().exec(
            "DELETE FROM outcomes WHERE day < ?",
            vec![oldest.clone().into()],
        )?;
        self.sql().exec(
            "DELETE FROM shadow_spend WHERE day < ?",
            vec![oldest.into()],
        )?;
        Ok(())
    }

    /// Reserves a shadow call's worst case from its daily cap: granted only if it fits.
    fn shadow_reserve(&self, ask: &ShadowAsk) -> Result<bool> {
        #[derive(Deserialize)]
        struct Spent {
            usd: f64,
        }
        let sql = self.sql();
        let spent: Vec<Spent> = sql
            .exec(
                "SELECT usd FROM shadow_spend WHERE day = ? AND primary_model = ? AND shadow_model = ?",
                vec![ask.day.clone().into(), ask.primary.clone().into(), ask.shadow.clone().into()],
            )?
            .to_array()?;
        let spent = spent.first().map_or(0.0, |s| s.usd);
        if spent + ask.usd > ask.max_usd {
            return Ok(false);
        }
        sql.exec(
            "INSERT INTO shadow_spend VALUES (?, ?, ?, ?) ON CONFLICT (day, primary_model, shadow_model)              DO UPDATE SET usd = usd + excluded.usd",
            vec![
                ask.day.clone().into(),
                ask.primary.clone().into(),
                ask.shadow.clone().into(),
                SqlStorageValue::Float(ask.usd),
            ],
        )?;
        Ok(true)
    }

    fn outcomes(&self, q: &RowsQuery) -> Result<Vec<StoredOutcome>> {
        #[derive(Deserialize)]
        struct Flat {
            day: String,
            body: String,
            sample: Option<String>,
        }
        let flat: Vec<Flat> = self
            .sql()
            .exec(
                "SELECT day, body, sample FROM outcomes WHERE day >= ? AND day <= ? ORDER BY day, at",
                vec![q.from.clone().into(), q.to.clone().into()],
            )?
            .to_array()?;
        Ok(flat
            .into_iter()
            .filter_map(|f| {
                let mut outcome: Outcome = serde_json::from_slice(f.body.as_bytes()).ok()?;
                if let (Outcome::Pair { sample, .. }, Some(s)) = (&mut outcome, f.sample) {
                    *sample = serde_json::from_slice(s.as_bytes()).ok();
                }
                Some(StoredOutcome {
                    day: f.day,
                    key: String::new(),
                    outcome,
                })
            })
            .collect())
    }

    /// Micro-dollars spent from day `from` to the day before `to_excl`, on `model` or on every model.
    fn cost_between(&self, from: &str, to_excl: &str, model: Option<&str>) -> Result<u64> {
        #[derive(Deserialize)]
        struct Sum {
            usd: Option<f64>,
        }
        let sql = self.sql();
        let cursor = match model {
            None => sql.exec(
                "SELECT SUM(cost_usd) AS usd FROM spend WHERE day >= ? AND day < ?",
                vec![from.into(), to_excl.into()],
            )?,
            Some(m) => sql.exec(
                "SELECT SUM(cost_usd) AS usd FROM spend WHERE day >= ? AND day < ? AND model = ?",
                vec![from.into(), to_excl.into(), m.into()],
            )?,
        };
        let rows: Vec<Sum> = cursor.to_array()?;
        Ok(micro(rows.first().and_then(|s| s.usd).unwrap_or(0.0)))
    }

    /// Runs `f` on the book of `scope` for `now`'s day, loaded from the table when the day is new to it.
    fn with_book<T>(
        &self,
        scope: &str,
        now: u64,
        f: impl FnOnce(&mut BudgetBook) -> T,
    ) -> Result<T> {
        let today = day_of(now);
        let mut books = self.books.borrow_mut();
        if books.get(scope).is_none_or(|b| b.day != today) {
            let model = (!scope.is_empty()).then_some(scope);
            let tomorrow = day_of(now + DAY_MS);
            let spent_today = self.cost_between(&today, &tomorrow, model)?;
            let before_today = self.cost_between(&month_start(now), &today, model)?;
            books.insert(
                scope.to_owned(),
                BudgetBook::new(now, spent_today, before_today),
            );
        }
        Ok(f(books.get_mut(scope).expect("loaded just above")))
    }

    fn record(&self, r: Record, now: u64) -> Result<()> {
        let e = &r.entry;
        for o in &e.outcomes {
            self.keep(&e.day, o.clone(), now)?;
        }
        let s = &e.spend;
        let int = |v: u64| SqlStorageValue::Integer(i64::try_from(v).unwrap_or(i64::MAX));
        // An entry of nothing only gives back what its request reserved.
        if s.requests > 0 {
            self.sql().exec(
                "INSERT INTO spend VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (day, model, principal) DO UPDATE SET requests = requests + excluded.requests, \
                 input_tokens = input_tokens + excluded.input_tokens, \
                 output_tokens = output_tokens + excluded.output_tokens, \
                 cached_input_tokens = cached_input_tokens + excluded.cached_input_tokens, \
                 cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens, \
                 reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens, \
                 cost_usd = cost_usd + excluded.cost_usd, \
                 unpriced_requests = unpriced_requests + excluded.unpriced_requests, \
                 cache_hits = cache_hits + excluded.cache_hits, saved_usd = saved_usd + excluded.saved_usd",
                vec![
                    e.day.clone().into(),
                    e.model.clone().into(),
                    e.principal.clone().into(),
                    int(s.requests),
                    int(s.input_tokens),
                    int(s.output_tokens),
                    int(s.cached_input_tokens),
                    int(s.cache_write_tokens),
                    int(s.reasoning_tokens),
                    SqlStorageValue::Float(s.cost_usd),
                    int(s.unpriced_requests),
                    int(s.cache_hits),
                    SqlStorageValue::Float(s.saved_usd),
                ],
            )?;
        }
        // The budgets count what the request cost in place of what it reserved. A book not loaded yet reads the
        // table (this entry included) when it is.
        let cost = micro(s.cost_usd);
        let mut books = self.books.borrow_mut();
        if let Some(b) = books.get_mut("") {
            b.spent(now, &e.day, cost, r.reserved.key);
        }
        if let Some(b) = books
            .get_mut(e.model.as_str())
            .filter(|_| !e.model.is_empty())
        {
            b.spent(now, &e.day, cost, r.reserved.model);
        }
        Ok(())
    }

    fn rows(&self, q: &RowsQuery) -> Result<Vec<Row>> {
        #[derive(Deserialize)]
        struct Flat {
            day: String,
            model: String,
            principal: String,
            #[serde(flatten)]
            spend: Spend,
        }
        let flat: Vec<Flat> = self
            .sql()
            .exec(
                "SELECT * FROM spend WHERE day >= ? AND day <= ? ORDER BY day, model, principal",
                vec![q.from.clone().into(), q.to.clone().into()],
            )?
            .to_array()?;
        Ok(flat
            .into_iter()
            .map(|f| Row {
                day: f.day,
                model: f.model,
                principal: f.principal,
                spend: f.spend,
            })
            .collect())
    }

    fn lease(&self, q: &LeaseQuery, now: u64) -> Result<crate::ratelimit::Grant> {
        let give_back = q.give_back();
        let scope = q.model.as_deref().unwrap_or("");
        self.with_book(scope, now, |book| {
            book.grant(
                now,
                (q.want_requests, q.want_tokens),
                give_back,
                (q.day, q.month),
            )
        })
    }
}

impl DurableObject for SpendLedger {
    fn new(state: State, _env: Env) -> Self {
        SpendLedger {
            state,
            books: RefCell::new(HashMap::new()),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        // Every path answers rather than throws: worker/entry.mjs replaces the instance on a rejection.
        let url = req.inner().url();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let now = js_sys::Date::now() as u64;
        if let Err(e) = self.ensure_table() {
            return Response::error(format!("ledger storage: {e}"), 500);
        }
        if path.ends_with("/record") {
            let body = req.text().await?;
            let records: Vec<Record> = match serde_json::from_slice(body.as_bytes()) {
                Ok(r) => r,
                Err(e) => return Response::error(format!("malformed records: {e}"), 400),
            };
            for r in records {
                if let Err(e) = self.record(r, now) {
                    return Response::error(format!("ledger write: {e}"), 500);
                }
            }
            if let Err(e) = self.forget(now) {
                return Response::error(format!("ledger retention: {e}"), 500);
            }
            return Response::empty();
        }
        if path.ends_with("/rows") {
            return answer(
                query,
                "malformed rows query",
                "ledger read",
                |q: RowsQuery| self.rows(&q),
            );
        }
        if path.ends_with("/outcomes") {
            return answer(
                query,
                "malformed outcomes query",
                "ledger read",
                |q: RowsQuery| self.outcomes(&q),
            );
        }
        if path.ends_with("/shadow") {
            return answer(
                query,
                "malformed shadow ask",
                "ledger shadow cap",
                |ask: ShadowAsk| Ok(serde_json::json!({ "granted": self.shadow_reserve(&ask)? })),
            );
        }
        if path.ends_with("/lease") {
            return answer(
                query,
                "malformed lease",
                "ledger budget",
                |q: LeaseQuery| self.lease(&q, now),
            );
        }
        Response::error("no such ledger route", 404)
    }
}

/// A route that reads its query: 400 (`malformed`: the reason) when it does not parse, else `f`'s result as JSON,
/// or 500 (`failed`: the reason) when `f` fails.
fn answer<Q: serde::de::DeserializeOwned, T: serde::Serialize>(
    query: &str,
    malformed: &str,
    failed: &str,
    f: impl FnOnce(Q) -> Result<T>,
) -> Result<Response> {
    match serde_urlencoded::from_str(query) {
        Ok(q) => match f(q) {
            Ok(v) => Response::from_json(&v),
            Err(e) => Response::error(format!("{failed}: {e}"), 500),
        },
        Err(e) => Response::error(format!("{malformed}: {e}"), 400),
    }
}
