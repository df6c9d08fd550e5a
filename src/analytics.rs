//! One Workers Analytics Engine data point per request, from its record: who (the key), what (model, deployment,
//! region, edge location), how it went (status, cache, error) and what it counted and cost. Never prompt or answer
//! content. The columns are fixed here and documented in the README with the SQL API queries that read them.

use crate::record::Record;

/// A data point as Analytics Engine takes it: one index (the sampling key), blobs and doubles in column order.
#[derive(Debug, Clone, PartialEq)]
pub struct DataPoint {
    pub index: String,
    pub blobs: Vec<String>,
    pub doubles: Vec<f64>,
}

/// `blob1`..`blob10` and `double1`..`double10`, in this order (the README's table).
pub const BLOBS: [&str; 10] = [
    "key",
    "principal",
    "model",
    "deployment",
    "region",
    "colo",
    "cache",
    "error",
    "dialect",
    "operation",
];
pub const DOUBLES: [&str; 10] = [
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "ttfc_ms",
    "total_ms",
    "status",
    "unpriced",
];

/// The data point of a finished record; `key` is the gateway key's name (empty before authentication).
pub fn data_point(r: &Record, key: &str) -> DataPoint {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let n = |v: Option<u64>| v.unwrap_or(0) as f64;
    let operation = serde_json::to_value(r.operation)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    DataPoint {
        index: key.to_owned(),
        blobs: vec![
            key.to_owned(),
            s(&r.principal),
            s(&r.model),
            s(&r.served_by),
            s(&r.region),
            s(&r.colo),
            r.cache.unwrap_or_default().to_owned(),
            r.error.map(|e| e.as_str().to_owned()).unwrap_or_default(),
            r.dialect.to_owned(),
            operation,
        ],
        doubles: vec![
            n(r.usage.input),
            n(r.usage.output),
            n(r.usage.cached_input),
            n(r.usage.cache_write),
            n(r.usage.reasoning),
            r.cost_usd().unwrap_or(0.0),
            n(r.ttfc_ms),
            r.total_ms as f64,
            f64::from(r.status),
            f64::from(u8::from(r.pricing == crate::record::Pricing::Unpriced)),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Operation, Pricing, TokenUsage};

    #[test]
    fn a_point_holds_the_record_in_documented_columns_and_no_content() {
        let mut r = Record::new(1, "anthropic", Operation::Chat);
        r.principal = Some("token:alice".into());
        r.model = Some("fast".into());
        r.served_by = Some("anthropic/claude-sonnet-4-5".into());
        r.region = Some("us-east-1".into());
        r.colo = Some("FRA".into());
        r.cache = Some("MISS");
        r.usage = TokenUsage {
            input: Some(1_000_000),
            output: Some(10),
            cached_input: Some(400_000),
            ..TokenUsage::default()
        };
        r.pricing = Pricing::At(crate::pricing::Price {
            input: 3.0,
            output: 15.0,
            cached_input: 0.3,
            cache_write: 3.75,
        });
        r.ttfc_ms = Some(120);
        r.total_ms = 900;
        r.status = 200;
        let p = data_point(&r, "web");
        assert_eq!(p.index, "web");
        assert_eq!(p.blobs.len(), BLOBS.len());
        assert_eq!(p.doubles.len(), DOUBLES.len());
        assert_eq!(
            p.blobs,
            [
                "web",
                "token:alice",
                "fast",
                "anthropic/claude-sonnet-4-5",
                "us-east-1",
                "FRA",
                "MISS",
                "",
                "anthropic",
                "chat"
            ]
        );
        let cost = (600_000.0 * 3.0 + 400_000.0 * 0.3 + 10.0 * 15.0) / 1e6;
        assert_eq!(p.doubles[..5], [1_000_000.0, 10.0, 400_000.0, 0.0, 0.0]);
        assert!((p.doubles[5] - cost).abs() < 1e-12);
        assert_eq!(p.doubles[6..], [120.0, 900.0, 200.0, 0.0]);
    }
}
