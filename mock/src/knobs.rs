//! Per-region behaviour knobs (latency shaping and fault injection).

use std::collections::BTreeMap;

use hyper::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Value of the `retry_after` knob: a number of seconds or a literal string,
/// sent back verbatim in the `retry-after` header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RetryAfter {
    Seconds(u64),
    Text(String),
}

impl RetryAfter {
    pub(crate) fn header_value(&self) -> String {
        match self {
            RetryAfter::Seconds(n) => n.to_string(),
            RetryAfter::Text(s) => s.clone(),
        }
    }
}

/// The knobs of one region. Every knob is optional; an unset knob means
/// "normal behaviour". JSON field names are the public contract.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Knobs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_gap_ms: Option<u64>,
    /// Every `tail_every`-th normally handled request gets `tail_ms` extra
    /// milliseconds of time to first content. Set together with `tail_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail_every: Option<u64>,
    /// The extra delay of a tail request (see `tail_every`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail_ms: Option<u64>,
    /// Adds a deterministic pseudo-random 0..=J ms to the time to first
    /// content of every normally handled request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_jitter_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_words: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<RetryAfter>,
    /// Milliseconds for the `retry-after-ms` and `x-ms-retry-after-ms`
    /// headers of fault responses (Azure's retry hints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hang: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_after: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed_sse: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_next: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_headers: Option<BTreeMap<String, String>>,
    /// A normal request is answered 200 with exactly this body, whatever the dialect and mode: what a broken
    /// provider sends (a JSON body to a streamed request, a stream that ends after the role chunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_body: Option<String>,
    /// `content-type` of a `raw_body` or `raw_chunks` answer (default `text/event-stream`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_content_type: Option<String>,
    /// A normal request is answered 200 with these pieces, each written and flushed on its own after its
    /// delay: how a test splits an event across reads, sends bytes that are not UTF-8, stalls mid-stream or
    /// sends megabytes to a slow reader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_chunks: Option<Vec<RawChunk>>,
    /// Extra headers on a `raw_body` or `raw_chunks` answer (what a provider says beside its body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_headers: Option<BTreeMap<String, String>>,
    /// After the last of `raw_chunks`, close the connection abruptly instead of ending the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_cut: Option<bool>,
}

/// One piece of a `raw_chunks` answer: `text` (UTF-8) or `bytes` (any octets), sent `repeat` times
/// (default 1), the first after `delay_ms`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChunk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}

impl RawChunk {
    pub(crate) fn data(&self) -> Vec<u8> {
        match (&self.text, &self.bytes) {
            (Some(t), _) => t.as_bytes().to_vec(),
            (None, Some(b)) => b.clone(),
            (None, None) => Vec::new(),
        }
    }
}

impl Knobs {
    /// Parses and validates knobs from a JSON object (unknown fields are errors,
    /// `null` means unset).
    pub fn from_json_map(map: Map<String, Value>) -> Result<Knobs, String> {
        let knobs: Knobs = serde_json::from_value(Value::Object(map))
            .map_err(|e| format!("invalid knobs: {e}"))?;
        knobs.validate()?;
        Ok(knobs)
    }

    /// Parses and validates knobs from any JSON value (must be an object).
    pub fn from_json(value: Value) -> Result<Knobs, String> {
        match value {
            Value::Object(map) => Knobs::from_json_map(map),
            other => Err(format!("knobs must be a JSON object, got {other}")),
        }
    }

    /// The knobs as a JSON object containing only the set knobs.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| Value::Object(Map::new()))
    }

    /// Returns these knobs with `patch` merged in: each key of `patch`
    /// replaces the knob of that name, and a `null` value removes it.
    pub fn merged(&self, patch: Map<String, Value>) -> Result<Knobs, String> {
        let mut current = match self.to_json() {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for (k, v) in patch {
            if v.is_null() {
                current.remove(&k);
            } else {
                current.insert(k, v);
            }
        }
        Knobs::from_json_map(current)
    }

    fn validate(&self) -> Result<(), String> {
        match (self.tail_every, self.tail_ms) {
            (Some(0), _) => return Err("invalid knobs: tail_every must be >= 1".into()),
            (Some(_), None) | (None, Some(_)) => {
                return Err("invalid knobs: tail_every and tail_ms must be set together".into())
            }
            _ => {}
        }
        if let Some(s) = self.status {
            if !(200..=599).contains(&s) {
                return Err(format!("invalid knobs: status {s} is not in 200..=599"));
            }
        }
        if let Some(RetryAfter::Text(t)) = &self.retry_after {
            HeaderValue::from_str(t).map_err(|_| {
                format!("invalid knobs: retry_after {t:?} is not a valid header value")
            })?;
        }
        if let Some(t) = &self.raw_content_type {
            HeaderValue::from_str(t).map_err(|_| {
                format!("invalid knobs: raw_content_type {t:?} is not a valid header value")
            })?;
        }
        if let Some(chunks) = &self.raw_chunks {
            if self.raw_body.is_some() {
                return Err("invalid knobs: raw_body and raw_chunks cannot both be set".into());
            }
            for (i, c) in chunks.iter().enumerate() {
                if c.text.is_some() == c.bytes.is_some() {
                    return Err(format!(
                        "invalid knobs: raw_chunks[{i}] needs exactly one of text and bytes"
                    ));
                }
            }
        }
        for (field, headers) in [
            ("error_headers", &self.error_headers),
            ("raw_headers", &self.raw_headers),
        ] {
            let Some(headers) = headers else { continue };
            for (name, value) in headers {
                let parsed = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("invalid knobs: bad header name {name:?} in {field}"))?;
                if parsed == hyper::header::CONTENT_LENGTH
                    || parsed == hyper::header::TRANSFER_ENCODING
                    || parsed == hyper::header::CONNECTION
                {
                    return Err(format!(
                        "invalid knobs: framing header {name:?} is not allowed in {field}"
                    ));
                }
                HeaderValue::from_str(value).map_err(|_| {
                    format!("invalid knobs: bad value for header {name:?} in {field}")
                })?;
            }
        }
        Ok(())
    }
}
