//! The spend ledger Durable Object: one instance per gateway key, its SQLite storage holding what the key (and each
//! browser-token subject under it) spent per model and UTC day, and its budget: the day's spend plus the slices
//! of it that isolates hold, handed out as [`crate::ratelimit::Window`] slices in micro-dollars. worker/entry.mjs
//! re-exports it (replacing an instance a panic invalidated; the table survives, the slices outstanding are
//! forgotten, which errs towards admitting at most those slices again).

use crate::ledger::{day_of, micro, month_start, BudgetBook, Entry, Row, Spend};
use serde::Deserialize;
use std::cell::RefCell;
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, SqlStorageValue, State,
};

const DAY_MS: u64 = 86_400_000;

#[durable_object(fetch)]
pub struct SpendLedger {
    state: State,
    budget: RefCell<Option<BudgetBook>>,
}

/// `…/lease?want_requests=&want_tokens=&give_end_ms=&give_requests=&give_tokens=&day=&month=`: a slice of the
/// budget in micro-dollars (`tokens`), after taking back the unused rest of the last one.
#[derive(Deserialize)]
struct LeaseQuery {
    #[serde(default)]
    want_requests: u32,
    #[serde(default)]
    want_tokens: u64,
    give_end_ms: Option<u64>,
    #[serde(default)]
    give_requests: u32,
    #[serde(default)]
    give_tokens: u64,
    day: Option<u64>,
    month: Option<u64>,
}

/// `…/rows?from=&to=`: the ledger's rows for those days (inclusive).
#[derive(Deserialize)]
struct RowsQuery {
    from: String,
    to: String,
}

/// One entry of a `POST …/record` (a JSON array of them): a request's (or like requests') spend, with what it reserved of the budget up front (micro-dollars), so that the budget counts
/// what it cost instead.
#[derive(Deserialize)]
struct Record {
    entry: Entry,
    #[serde(default)]
    reserved_micro: u64,
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
        Ok(())
    }

    fn cost_between(&self, from: &str, to_excl: &str) -> Result<u64> {
        #[derive(Deserialize)]
        struct Sum {
            usd: Option<f64>,
        }
        let rows: Vec<Sum> = self
            .sql()
            .exec(
                "SELECT SUM(cost_usd) AS usd FROM spend WHERE day >= ? AND day < ?",
                vec![from.into(), to_excl.into()],
            )?
            .to_array()?;
        Ok(micro(rows.first().and_then(|s| s.usd).unwrap_or(0.0)))
    }

    /// The budget for `now`'s day, loaded from the table when the day is new to this instance.
    fn budget(&self, now: u64) -> Result<std::cell::RefMut<'_, BudgetBook>> {
        let today = day_of(now);
        let mut b = self.budget.borrow_mut();
        if b.as_ref().is_none_or(|b| b.day != today) {
            let tomorrow = day_of(now + DAY_MS);
            let spent_today = self.cost_between(&today, &tomorrow)?;
            let before_today = self.cost_between(&month_start(now), &today)?;
            *b = Some(BudgetBook::new(now, spent_today, before_today));
        }
        Ok(std::cell::RefMut::map(b, |b| {
            b.as_mut().expect("loaded just above")
        }))
    }

    fn record(&self, r: Record, now: u64) -> Result<()> {
        let e = &r.entry;
        let s = &e.spend;
        let int = |v: u64| SqlStorageValue::Integer(i64::try_from(v).unwrap_or(i64::MAX));
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
        // The budget counts what the request cost in place of what it reserved.
        self.budget(now)?
            .spent(now, &e.day, micro(s.cost_usd), r.reserved_micro);
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
        let give_back = q
            .give_end_ms
            .map(|end| (end, q.give_requests, q.give_tokens));
        Ok(self.budget(now)?.grant(
            now,
            (q.want_requests, q.want_tokens),
            give_back,
            (q.day, q.month),
        ))
    }
}

impl DurableObject for SpendLedger {
    fn new(state: State, _env: Env) -> Self {
        SpendLedger {
            state,
            budget: RefCell::new(None),
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
            let records: Vec<Record> = match serde_json::from_str(&body) {
                Ok(r) => r,
                Err(e) => return Response::error(format!("malformed records: {e}"), 400),
            };
            for r in records {
                if let Err(e) = self.record(r, now) {
                    return Response::error(format!("ledger write: {e}"), 500);
                }
            }
            return Response::empty();
        }
        if path.ends_with("/rows") {
            let q: RowsQuery = match serde_urlencoded::from_str(query) {
                Ok(q) => q,
                Err(e) => return Response::error(format!("malformed rows query: {e}"), 400),
            };
            return match self.rows(&q) {
                Ok(rows) => Response::from_json(&rows),
                Err(e) => Response::error(format!("ledger read: {e}"), 500),
            };
        }
        if path.ends_with("/lease") {
            let q: LeaseQuery = match serde_urlencoded::from_str(query) {
                Ok(q) => q,
                Err(e) => return Response::error(format!("malformed lease: {e}"), 400),
            };
            return match self.lease(&q, now) {
                Ok(g) => Response::from_json(&g),
                Err(e) => Response::error(format!("ledger budget: {e}"), 500),
            };
        }
        Response::error("no such ledger route", 404)
    }
}
