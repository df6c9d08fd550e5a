//! The outcomes a key's ledger object keeps (one per shadow call, skipped shadow, or request of an experiment),
//! and the statistics over them per day: per (primary, shadow) pair and per experiment arm.

use super::Agreement;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One side of a call as it went: timings from the start of its call, what it used and cost, how it failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// To first content (a whole answer's: to the answer).
    pub ttft_ms: Option<u64>,
    /// To the answer's end.
    pub total_ms: Option<u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// `None`: not counted (unpriced, or the provider never said).
    pub cost_usd: Option<f64>,
    /// The error code the call ended with.
    pub error: Option<String>,
}

/// Why a sampled request was not shadowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// No deployment of the shadow model is one the request may reach.
    Residency,
    /// The shadow's `max_usd_per_day` is spent (or the ledger could not say).
    Budget,
    /// The request said `Cache-Control: no-store`.
    NoStore,
}

impl Skip {
    fn name(self) -> &'static str {
        match self {
            Skip::Residency => "residency",
            Skip::Budget => "budget",
            Skip::NoStore => "no_store",
        }
    }
}

/// Two answers side by side, for a person to read (each truncated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at: u64,
    pub primary: String,
    pub shadow: String,
}

/// Externally tagged: an internally tagged enum reads through serde's buffer, which cannot hold this crate's
/// arbitrary-precision numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A shadow call and the primary answer it is compared with.
    Pair {
        primary: String,
        shadow: String,
        primary_side: Side,
        shadow_side: Side,
        /// `None` when either answer could not be read (an error, a stream cut short).
        agreement: Option<Agreement>,
        /// What was reserved of the shadow's daily cap before the call (the ledger books the cost instead).
        reserved_usd: f64,
        /// Kept when the shadow keeps samples (its `keep_samples`, the most recent kept).
        sample: Option<Sample>,
        keep_samples: u32,
    },
    Skipped {
        primary: String,
        shadow: String,
        reason: Skip,
    },
    /// A request an experiment's arm served.
    Arm {
        experiment: String,
        arm: String,
        side: Side,
    },
}

impl Outcome {
    /// What booking a shadow call changes in its daily cap: `(primary, shadow, USD)` to add to what the cap holds
    /// spent, its cost in place of the reservation made before it was sent (a cost not known keeps the
    /// reservation). `None` for other outcomes.
    pub fn cap_settlement(&self) -> Option<(&str, &str, f64)> {
        match self {
            Outcome::Pair {
                primary,
                shadow,
                shadow_side,
                reserved_usd,
                ..
            } => Some((
                primary,
                shadow,
                shadow_side.cost_usd.unwrap_or(*reserved_usd) - reserved_usd,
            )),
            Outcome::Skipped { .. } | Outcome::Arm { .. } => None,
        }
    }
}

/// An outcome as the ledger object returns it: with its day and key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredOutcome {
    pub day: String,
    pub key: String,
    pub outcome: Outcome,
}

/// p50 and p90 by nearest rank; `None` with no values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: Option<u64>,
    pub p90: Option<u64>,
}

fn percentiles(mut v: Vec<u64>) -> Percentiles {
    v.sort_unstable();
    let rank = |p: f64| {
        let n = v.len();
        (n > 0).then(|| v[((p * n as f64).ceil() as usize).clamp(1, n) - 1])
    };
    Percentiles {
        p50: rank(0.5),
        p90: rank(0.9),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SideStats {
    pub ttft_ms: Percentiles,
    pub total_ms: Percentiles,
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(serialize_with = "crate::pricing::serialize_usd")]
    pub cost_usd: f64,
    /// Calls whose cost is not known (counted as nothing in `cost_usd`).
    pub uncosted: u64,
    pub errors: u64,
}

fn side_stats<'a>(sides: impl Iterator<Item = &'a Side>) -> SideStats {
    let (mut ttft, mut total) = (Vec::new(), Vec::new());
    let mut s = SideStats::default();
    for side in sides {
        ttft.extend(side.ttft_ms);
        total.extend(side.total_ms);
        s.input_tokens += side.input_tokens;
        s.output_tokens += side.output_tokens;
        match side.cost_usd {
            Some(c) => s.cost_usd += c,
            None => s.uncosted += 1,
        }
        s.errors += u64::from(side.error.is_some());
    }
    s.ttft_ms = percentiles(ttft);
    s.total_ms = percentiles(total);
    s
}

/// A rate over the calls it applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Rate {
    pub of: u64,
    /// `None` when it applies to none.
    pub rate: Option<f64>,
}

fn rate(hits: u64, of: u64) -> Rate {
    Rate {
        of,
        rate: (of > 0).then(|| hits as f64 / of as f64),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgreementStats {
    /// Pairs whose both answers could be read.
    pub compared: u64,
    pub exact: Rate,
    /// Mean word-level similarity (see `Agreement::similarity`).
    pub similarity: Option<f64>,
    /// Over pairs where either side called a tool.
    pub tool_calls: Rate,
    pub finish_reason: Rate,
    /// Over requests asking for JSON output: each side's valid-JSON rate.
    pub json_valid_primary: Rate,
    pub json_valid_shadow: Rate,
}

/// One (primary, shadow) pair on one day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PairDay {
    pub day: String,
    pub primary: String,
    pub shadow: String,
    /// Shadow calls made.
    pub requests: u64,
    /// By reason.
    pub skipped: BTreeMap<&'static str, u64>,
    pub primary_side: SideStats,
    pub shadow_side: SideStats,
    pub agreement: AgreementStats,
    /// The most recent pairs kept, newest first.
    pub samples: Vec<Sample>,
}

/// Statistics per day and pair over `outcomes` (any order); sorted by day, primary, shadow.
pub fn pair_stats(outcomes: &[StoredOutcome]) -> Vec<PairDay> {
    type Id<'a> = (&'a str, &'a str, &'a str);
    let mut groups: BTreeMap<Id, (Vec<&Outcome>, BTreeMap<&'static str, u64>)> = BTreeMap::new();
    for o in outcomes {
        match &o.outcome {
            Outcome::Pair {
                primary, shadow, ..
            } => groups
                .entry((&o.day, primary, shadow))
                .or_default()
                .0
                .push(&o.outcome),
            Outcome::Skipped {
                primary,
                shadow,
                reason,
            } => {
                *groups
                    .entry((&o.day, primary, shadow))
                    .or_default()
                    .1
                    .entry(reason.name())
                    .or_default() += 1
            }
            Outcome::Arm { .. } => {}
        }
    }
    groups
        .into_iter()
        .map(|((day, primary, shadow), (pairs, skipped))| {
            let mut primaries = Vec::new();
            let mut shadows = Vec::new();
            let mut agreements = Vec::new();
            let mut samples = Vec::new();
            for p in &pairs {
                if let Outcome::Pair {
                    primary_side,
                    shadow_side,
                    agreement,
                    sample,
                    ..
                } = p
                {
                    primaries.push(primary_side);
                    shadows.push(shadow_side);
                    agreements.extend(agreement);
                    samples.extend(sample.clone());
                }
            }
            samples.sort_by_key(|s| std::cmp::Reverse(s.at));
            PairDay {
                day: day.to_owned(),
                primary: primary.to_owned(),
                shadow: shadow.to_owned(),
                requests: pairs.len() as u64,
                skipped,
                primary_side: side_stats(primaries.into_iter()),
                shadow_side: side_stats(shadows.into_iter()),
                agreement: agreement_stats(&agreements),
                samples,
            }
        })
        .collect()
}

fn agreement_stats(a: &[Agreement]) -> AgreementStats {
    let n = a.len() as u64;
    let count = |f: &dyn Fn(&Agreement) -> bool| a.iter().filter(|x| f(x)).count() as u64;
    let tools: Vec<bool> = a.iter().filter_map(|x| x.tools).collect();
    let json: Vec<(bool, bool)> = a.iter().filter_map(|x| x.json).collect();
    AgreementStats {
        compared: n,
        exact: rate(count(&|x| x.exact), n),
        similarity: (n > 0).then(|| a.iter().map(|x| x.similarity).sum::<f64>() / n as f64),
        tool_calls: rate(
            tools.iter().filter(|t| **t).count() as u64,
            tools.len() as u64,
        ),
        finish_reason: rate(count(&|x| x.finish), n),
        json_valid_primary: rate(
            json.iter().filter(|j| j.0).count() as u64,
            json.len() as u64,
        ),
        json_valid_shadow: rate(
            json.iter().filter(|j| j.1).count() as u64,
            json.len() as u64,
        ),
    }
}

/// One arm of an experiment on one day.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ArmDay {
    pub day: String,
    pub experiment: String,
    pub arm: String,
    pub requests: u64,
    #[serde(flatten)]
    pub stats: SideStats,
}

/// Statistics per day, experiment and arm over `outcomes`; sorted by day, experiment, arm.
pub fn arm_stats(outcomes: &[StoredOutcome]) -> Vec<ArmDay> {
    let mut groups: BTreeMap<(&str, &str, &str), Vec<&Side>> = BTreeMap::new();
    for o in outcomes {
        if let Outcome::Arm {
            experiment,
            arm,
            side,
        } = &o.outcome
        {
            groups
                .entry((&o.day, experiment, arm))
                .or_default()
                .push(side);
        }
    }
    groups
        .into_iter()
        .map(|((day, experiment, arm), sides)| ArmDay {
            day: day.to_owned(),
            experiment: experiment.to_owned(),
            arm: arm.to_owned(),
            requests: sides.len() as u64,
            stats: side_stats(sides.into_iter()),
        })
        .collect()
}
