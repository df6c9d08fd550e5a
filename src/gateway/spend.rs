//! `GET /_meridian/spend?from=YYYY-MM-DD&to=YYYY-MM-DD&key=<name>`: what each gateway key spent, per model,
//! per principal (the key, or `token:<sub>` for its browser tokens) and UTC day, from the ledger objects, with
//! totals. An admin key only. `from` defaults to the first day of the current month, `to` to today; `key` to
//! every configured key.

use super::*;
use crate::ledger::{self, Row, Spend};

#[derive(serde::Serialize)]
struct KeySpend {
    key: String,
    rows: Vec<Row>,
    total: Spend,
}

#[derive(serde::Serialize)]
struct Report {
    from: String,
    to: String,
    keys: Vec<KeySpend>,
    total: Spend,
}

#[derive(serde::Deserialize)]
struct Query {
    from: Option<String>,
    to: Option<String>,
    key: Option<String>,
}

pub(super) async fn spend<P: Platform>(
    config: &Config,
    platform: &P,
    req: &Request,
) -> Result<Response, GatewayError> {
    crate::auth::authenticate_admin(config, &req.headers)?;
    let q: Query = serde_urlencoded::from_str(&req.query)
        .map_err(|e| GatewayError::invalid(format!("query: {e}")))?;
    let now = platform.now_ms();
    let from = q.from.unwrap_or_else(|| ledger::month_start(now));
    let to = q.to.unwrap_or_else(|| ledger::day_of(now));
    for (name, day) in [("from", &from), ("to", &to)] {
        if !ledger::is_day(day) {
            return Err(GatewayError::invalid(format!(
                "`{name}` must be a date, YYYY-MM-DD"
            )));
        }
    }
    let keys: Vec<&str> = match &q.key {
        Some(k) if config.keys.iter().any(|g| &g.name == k) => vec![k.as_str()],
        Some(k) => {
            return Err(GatewayError::new(
                ErrorCode::NotFound,
                format!("no gateway key named `{k}`"),
            ))
        }
        None => config.keys.iter().map(|k| k.name.as_str()).collect(),
    };
    // The keys' objects are asked together: each lives where it was first used.
    let (from_ref, to_ref) = (from.as_str(), to.as_str());
    let reads = keys.iter().map(|k| async move {
        let rows = platform
            .ledger_rows(&admission::ledger_name(k), from_ref, to_ref)
            .await;
        (*k, rows)
    });
    let mut report = Report {
        from: from.clone(),
        to: to.clone(),
        keys: Vec::new(),
        total: Spend::default(),
    };
    for (key, rows) in futures_util::future::join_all(reads).await {
        let rows = rows.map_err(|e| {
            GatewayError::new(
                ErrorCode::BudgetUnavailable,
                format!("the spend ledger cannot be read: {e}"),
            )
        })?;
        let mut total = Spend::default();
        for r in &rows {
            total.add(&r.spend);
        }
        report.total.add(&total);
        report.keys.push(KeySpend {
            key: key.to_owned(),
            rows,
            total,
        });
    }
    Ok(Response::json(
        200,
        serde_json::to_vec(&report).unwrap_or_default(),
    ))
}
