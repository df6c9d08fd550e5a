//! Shadows and experiments on a model, validated into types that cannot be invalid: a shadow is another model
//! asked the same question in the background (its answer compared, never served), an experiment splits a model's
//! traffic between models by weight, sticky per user.

use super::raw::{RawArm, RawShadow};
use super::{err, ConfigError};

/// The most pairs a shadow keeps for people to read.
pub const MAX_KEEP_SAMPLES: u32 = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct Shadow {
    /// A configured model, other than the one shadowed.
    pub model: String,
    /// Share of requests shadowed, in (0, 1].
    pub share: f64,
    /// What the shadow calls of one UTC day may cost in all, USD (positive).
    pub max_usd_per_day: f64,
    /// The most recent pairs kept to read side by side (0: none).
    pub keep_samples: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    /// A configured model (the split model itself serves its own arm with its own deployments).
    pub model: String,
    /// This arm's share of the split, in (0, 1]; the arms' shares add up to 1.
    pub share: f64,
}

/// Validates `models.<name>.shadow`; `priced` says whether every deployment of a model has a price (None: no
/// such model).
pub(super) fn shadows(
    name: &str,
    raw: Vec<RawShadow>,
    priced: &dyn Fn(&str) -> Option<bool>,
) -> Result<Vec<Shadow>, ConfigError> {
    let mut out: Vec<Shadow> = Vec::with_capacity(raw.len());
    for (i, s) in raw.into_iter().enumerate() {
        let path = format!("models.{name}.shadow[{i}]");
        match priced(&s.model) {
            None => {
                return Err(err(
                    format_args!("{path}.model"),
                    format_args!("unknown model {:?}", s.model),
                ))
            }
            Some(false) => {
                return Err(err(
                    format_args!("{path}.model"),
                    format_args!(
                        "every deployment of {:?} needs a price (configured or built in): max_usd_per_day caps what the shadow costs",
                        s.model
                    ),
                ))
            }
            Some(true) => {}
        }
        if s.model == name {
            return Err(err(
                format_args!("{path}.model"),
                "a model cannot shadow itself",
            ));
        }
        if out.iter().any(|o| o.model == s.model) {
            return Err(err(
                format_args!("{path}.model"),
                format_args!("{:?} is listed twice", s.model),
            ));
        }
        if !(s.share > 0.0 && s.share <= 1.0) {
            return Err(err(format_args!("{path}.share"), "must be in (0, 1]"));
        }
        let Some(max) = s.max_usd_per_day.filter(|m| *m > 0.0 && m.is_finite()) else {
            return Err(err(
                format_args!("{path}.max_usd_per_day"),
                "required, and positive: what this shadow may cost per UTC day, in USD",
            ));
        };
        let keep_samples = s.keep_samples.unwrap_or(0);
        if keep_samples > MAX_KEEP_SAMPLES {
            return Err(err(
                format_args!("{path}.keep_samples"),
                format_args!("at most {MAX_KEEP_SAMPLES}"),
            ));
        }
        out.push(Shadow {
            model: s.model,
            share: s.share,
            max_usd_per_day: max,
            keep_samples,
        });
    }
    Ok(out)
}

/// Validates `models.<name>.split`: at least two arms, each a configured model named once, positive weights.
pub(super) fn split(
    name: &str,
    raw: Vec<RawArm>,
    is_model: &dyn Fn(&str) -> bool,
) -> Result<Vec<Arm>, ConfigError> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    let path = format!("models.{name}.split");
    if raw.len() < 2 {
        return Err(err(&path, "an experiment needs at least two arms"));
    }
    let mut total = 0.0;
    for (i, a) in raw.iter().enumerate() {
        if a.model != name && !is_model(&a.model) {
            return Err(err(
                format_args!("{path}[{i}].model"),
                format_args!("unknown model {:?}", a.model),
            ));
        }
        if raw[..i].iter().any(|b| b.model == a.model) {
            return Err(err(
                format_args!("{path}[{i}].model"),
                format_args!("{:?} is listed twice", a.model),
            ));
        }
        if !(a.weight > 0.0 && a.weight.is_finite()) {
            return Err(err(format_args!("{path}[{i}].weight"), "must be positive"));
        }
        total += a.weight;
    }
    Ok(raw
        .into_iter()
        .map(|a| Arm {
            share: a.weight / total,
            model: a.model,
        })
        .collect())
}
