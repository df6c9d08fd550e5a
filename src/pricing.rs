//! What a request cost: prices per deployment (configured, or from the built-in table), and the cost of the
//! provider's counted usage at them, each kind of token at its own rate.

use crate::record::TokenUsage;

mod table;

/// USD per million tokens. Reasoning tokens are output (every provider in the table bills them so).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Input read from the provider's prompt cache.
    pub cached_input: f64,
    /// Input written to the provider's prompt cache (Anthropic's five-minute writes; others charge input).
    pub cache_write: f64,
}

/// Which provider's published prices a row is: Azure OpenAI's global deployments are priced as OpenAI's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    OpenAi,
    Anthropic,
    Bedrock,
    Gemini,
}

/// One row of the built-in table.
#[derive(Debug)]
pub struct Row {
    pub vendor: Vendor,
    /// The model's name at that vendor; dated and versioned names that begin with it match too.
    pub model: &'static str,
    pub price: Price,
    /// Where the price was read, and when.
    pub source: &'static str,
    pub checked: &'static str,
}

impl Vendor {
    /// By provider kind name (`ProviderKind::name`), so that the configuration can resolve prices as it is
    /// validated without this module depending on it.
    fn of(kind: &str) -> Option<Vendor> {
        Some(match kind {
            "openai" | "azure" => Vendor::OpenAi,
            "anthropic" => Vendor::Anthropic,
            "bedrock" => Vendor::Bedrock,
            "gemini" => Vendor::Gemini,
            _ => return None,
        })
    }
}

/// The built-in price of `model` at a provider of kind `kind`: the row with the longest name that `model` is, or begins
/// with followed by `-`, `@` or `:` (a date or version). Bedrock's cross-region prefixes (`us.`, `eu.`, `apac.`,
/// `global.`) are priced as the model they route to.
pub fn builtin(kind: &str, model: &str) -> Option<&'static Row> {
    let vendor = Vendor::of(kind)?;
    let model = match vendor {
        Vendor::Bedrock => ["us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au."]
            .iter()
            .find_map(|p| model.strip_prefix(p))
            .unwrap_or(model),
        _ => model,
    };
    table::TABLE
        .iter()
        .filter(|r| r.vendor == vendor)
        .filter(|r| model.strip_prefix(r.model).is_some_and(dated_or_versioned))
        .max_by_key(|r| r.model.len())
}

/// What may follow a row's name and still be that model: nothing, a date (`-2024-07-18`, `-20250929`), a version
/// (`-v1:0`, `-001`, `-latest`), or `@`/`:` and anything (Vertex and Bedrock versions). A name that goes on with a
/// word (`-mini`, `-lite`, `-deep-research`) is another model, priced by its own row or not at all.
fn dated_or_versioned(rest: &str) -> bool {
    let Some(tail) = rest.strip_prefix('-') else {
        return rest.is_empty() || rest.starts_with(['@', ':']);
    };
    let first = tail.split(['-', '@', ':']).next().unwrap_or("");
    first == "latest"
        || (first.len() >= 3 && first.bytes().all(|b| b.is_ascii_digit()))
        || first
            .strip_prefix('v')
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
}

/// The cost of `usage` at `price`, in USD; `None` when the provider counted nothing. The input counts the whole
/// prompt (cached and cache-written tokens are part of it) and each part is priced at its own rate.
pub fn cost(usage: &TokenUsage, price: &Price) -> Option<f64> {
    if usage.input.is_none() && usage.output.is_none() {
        return None;
    }
    let input = usage.input.unwrap_or(0);
    let cached = usage.cached_input.unwrap_or(0).min(input);
    let written = usage.cache_write.unwrap_or(0).min(input - cached);
    let plain = input - cached - written;
    let output = usage.output.unwrap_or(0);
    let micro = plain as f64 * price.input
        + cached as f64 * price.cached_input
        + written as f64 * price.cache_write
        + output as f64 * price.output;
    Some(micro / 1_000_000.0)
}

/// What a streamed answer's final usage says it cost: the `cost` field Meridian adds to it (as OpenRouter does).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quote {
    /// The deployment has no price: `"cost": null`, never a silent 0.
    Unpriced,
    At(Price),
    /// Answered from Meridian's cache: `"cost": 0`.
    Free,
}

impl Quote {
    pub fn of(price: Option<Price>) -> Quote {
        price.map_or(Quote::Unpriced, Quote::At)
    }

    /// The `cost` field for a usage: USD, or null when unpriced.
    pub fn field(&self, usage: &TokenUsage) -> serde_json::Value {
        match self {
            Quote::Unpriced => serde_json::Value::Null,
            Quote::Free => 0.into(),
            Quote::At(p) => cost(usage, p).map_or(serde_json::Value::Null, usd),
        }
    }
}

/// A cost as JSON: dollars to the millionth of a cent, so sums of many small requests stay exact enough.
pub fn usd(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(round_usd(v))
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// Dollars to the millionth of a cent (what every reported cost is rounded to).
pub fn round_usd(v: f64) -> f64 {
    (v * 1e8).round() / 1e8
}

/// Serializes a cost rounded as reported (`#[serde(serialize_with)]`), without binary fractions' long tails.
pub fn serialize_usd<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round_usd(*v))
}

/// The same for an optional cost.
pub fn serialize_usd_opt<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_some(&round_usd(*v)),
        None => s.serialize_none(),
    }
}

/// A cost as a header value (`x-meridian-cost-usd`): the same rounding, no exponent.
pub fn usd_text(v: f64) -> String {
    let s = format!("{v:.8}");
    let s = s.trim_end_matches('0');
    s.strip_suffix('.')
        .map_or_else(|| s.to_owned(), |s| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Price = Price {
        input: 3.0,
        output: 15.0,
        cached_input: 0.3,
        cache_write: 3.75,
    };

    #[test]
    fn each_kind_of_token_is_priced_at_its_own_rate() {
        // 10,000 prompt tokens: 6,000 read from the cache, 1,000 written to it, 3,000 plain; 500 out.
        let u = TokenUsage {
            input: Some(10_000),
            output: Some(500),
            cached_input: Some(6_000),
            cache_write: Some(1_000),
            reasoning: Some(200),
        };
        let want = (3_000.0 * 3.0 + 6_000.0 * 0.3 + 1_000.0 * 3.75 + 500.0 * 15.0) / 1e6;
        assert!((cost(&u, &P).unwrap() - want).abs() < 1e-12);
        assert_eq!(cost(&TokenUsage::default(), &P), None, "nothing counted");
        // Parts larger than the whole (a provider's inconsistency) never make the plain input negative.
        let odd = TokenUsage {
            input: Some(10),
            cached_input: Some(50),
            ..TokenUsage::default()
        };
        assert!((cost(&odd, &P).unwrap() - 10.0 * 0.3 / 1e6).abs() < 1e-15);
    }

    #[test]
    fn quotes_say_unpriced_as_null_and_cached_as_zero() {
        let u = TokenUsage {
            input: Some(1_000_000),
            output: Some(0),
            ..TokenUsage::default()
        };
        assert_eq!(Quote::At(P).field(&u), serde_json::json!(3.0));
        assert_eq!(Quote::Unpriced.field(&u), serde_json::Value::Null);
        assert_eq!(Quote::Free.field(&u), serde_json::json!(0));
        assert_eq!(usd_text(0.000_123_456_789), "0.00012346");
        assert_eq!(usd_text(3.0), "3");
        assert_eq!(usd_text(0.0), "0");
    }

    #[test]
    fn built_in_rows_match_dated_and_regional_names_and_nothing_else() {
        for row in table::TABLE {
            let kind = match row.vendor {
                Vendor::OpenAi => "openai",
                Vendor::Anthropic => "anthropic",
                Vendor::Bedrock => "bedrock",
                Vendor::Gemini => "gemini",
            };
            let found = builtin(kind, row.model).unwrap();
            assert!(std::ptr::eq(found, row), "{} finds its own row", row.model);
            assert!(
                !row.source.is_empty() && row.checked.len() == 10,
                "{}",
                row.model
            );
            let p = row.price;
            assert!(
                [p.input, p.output, p.cached_input, p.cache_write]
                    .iter()
                    .all(|r| r.is_finite() && *r >= 0.0),
                "{}",
                row.model
            );
            let dated = format!("{}-20250101", row.model);
            assert!(std::ptr::eq(builtin(kind, &dated).unwrap(), row));
            let azure_or_same = if kind == "openai" { "azure" } else { kind };
            assert!(builtin(azure_or_same, row.model).is_some());
            // A name that merely starts the same way is not this model.
            assert!(builtin(kind, &format!("{}x", row.model)).is_none_or(|r| r.model != row.model));
        }
        if let Some(r) = builtin("bedrock", "us.anthropic.claude-3-haiku-20240307-v1:0") {
            assert_eq!(r.vendor, Vendor::Bedrock);
        }
        assert!(builtin("openai", "llama-3.1-8b-instant").is_none());
        // A variant is not its base model.
        assert!(builtin("openai", "o4-mini-deep-research").is_none_or(|r| r.model != "o4-mini"));
        assert!(builtin("gemini", "gemini-2.0-flash-lite")
            .is_none_or(|r| r.model != "gemini-2.0-flash"));
        assert!(dated_or_versioned("-2024-07-18") && dated_or_versioned("-20250929-v1:0"));
        assert!(
            dated_or_versioned("-latest")
                && dated_or_versioned("@20240620")
                && dated_or_versioned("")
        );
        assert!(
            !dated_or_versioned("-mini") && !dated_or_versioned("x") && !dated_or_versioned("-4")
        );
        assert!(builtin("unknown-kind", "gpt-4o").is_none());
    }
}
