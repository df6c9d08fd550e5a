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
    /// The key's own budget limits, USD, when it has a budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    budget: Option<BudgetLimits>,
}

#[derive(serde::Serialize)]
struct BudgetLimits {
    usd_per_day: Option<f64>,
    usd_per_month: Option<f64>,
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

/// An admin's read of the ledger objects: the days (inclusive) and the keys asked about.
struct Asked<'c> {
    from: String,
    to: String,
    keys: Vec<&'c str>,
    /// One key was named.
    one_key: bool,
}

fn asked<'c, P: Platform>(
    config: &'c Config,
    platform: &P,
    req: &Request,
) -> Result<Asked<'c>, GatewayError> {
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
        Some(k) => match config.keys.iter().find(|g| &g.name == k) {
            Some(g) => vec![g.name.as_str()],
            None => {
                return Err(GatewayError::new(
                    ErrorCode::NotFound,
                    format!("no gateway key named `{k}`"),
                ))
            }
        },
        None => config.keys.iter().map(|k| k.name.as_str()).collect(),
    };
    Ok(Asked {
        from,
        to,
        one_key: q.key.is_some(),
        keys,
    })
}

pub(super) async fn spend<P: Platform>(
    config: &Config,
    platform: &P,
    req: &Request,
) -> Result<Response, GatewayError> {
    let Asked { from, to, keys, .. } = asked(config, platform, req)?;
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
        let budget = config
            .keys
            .iter()
            .find(|k| k.name == key)
            .and_then(|k| k.budget.as_ref())
            .map(|b| BudgetLimits {
                usd_per_day: b.per_day,
                usd_per_month: b.per_month,
            });
        report.keys.push(KeySpend {
            key: key.to_owned(),
            rows,
            total,
            budget,
        });
    }
    Ok(Response::json(
        200,
        serde_json::to_vec(&report).unwrap_or_default(),
    ))
}

/// Which comparison an admin asks for.
pub(super) enum Kind {
    Shadow,
    Experiments,
}

#[derive(serde::Serialize)]
struct Comparisons {
    from: String,
    to: String,
    keys: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pairs: Option<Vec<crate::shadow::PairDay>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arms: Option<Vec<crate::shadow::ArmDay>>,
}

/// `GET /_meridian/shadow` and `GET /_meridian/experiments` (same query as the spend): the statistics per day over
/// the outcomes the keys' ledger objects keep, the keys' together. Kept samples are shown only for one key
/// (`key=`): a person reads one tenant's requests at a time.
pub(super) async fn comparisons<P: Platform>(
    config: &Config,
    platform: &P,
    req: &Request,
    kind: Kind,
) -> Result<Response, GatewayError> {
    let asked = asked(config, platform, req)?;
    let (from_ref, to_ref) = (asked.from.as_str(), asked.to.as_str());
    let reads = asked.keys.iter().map(|k| async move {
        platform
            .ledger_outcomes(&admission::ledger_name(k), from_ref, to_ref)
            .await
            .map(|o| (*k, o))
    });
    let mut outcomes = Vec::new();
    for read in futures_util::future::join_all(reads).await {
        let (key, mut o) = read.map_err(|e| {
            GatewayError::new(
                ErrorCode::BudgetUnavailable,
                format!("the ledger cannot be read: {e}"),
            )
        })?;
        for s in &mut o {
            s.key = key.to_owned();
        }
        outcomes.extend(o);
    }
    let mut report = Comparisons {
        from: asked.from.clone(),
        to: asked.to.clone(),
        keys: asked.keys.iter().map(|k| (*k).to_owned()).collect(),
        pairs: None,
        arms: None,
    };
    match kind {
        Kind::Shadow => {
            let mut pairs = crate::shadow::pair_stats(&outcomes);
            if !asked.one_key {
                for p in &mut pairs {
                    p.samples.clear();
                }
            }
            report.pairs = Some(pairs);
        }
        Kind::Experiments => report.arms = Some(crate::shadow::arm_stats(&outcomes)),
    }
    Ok(Response::json(
        200,
        serde_json::to_vec(&report).unwrap_or_default(),
    ))
}
