//! A request body kept as the client sent it, for a provider that speaks the client's own wire format: its
//! top-level members are indexed once, so it can be forwarded with only the model replaced and every other byte
//! as sent, and read member by member without parsing it again.

use crate::error::GatewayError;
use core::ops::Range;
use indexmap::IndexMap;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;

#[derive(Debug, Clone)]
pub struct RawObject {
    raw: Vec<u8>,
    /// Top-level members in order: the name, and where the value's JSON text lies in `raw`.
    members: Vec<(String, Range<usize>)>,
}

impl RawObject {
    /// The body, which must be one JSON object.
    pub fn parse(raw: &[u8]) -> Result<Self, GatewayError> {
        let members: IndexMap<Cow<'_, str>, &RawValue> = match serde_json::from_slice(raw) {
            Ok(m) => m,
            Err(e) => {
                return Err(match serde_json::from_slice::<IgnoredAny>(raw) {
                    Ok(_) => GatewayError::invalid("request body must be a JSON object"),
                    Err(_) => GatewayError::invalid(format!("request body is not valid JSON: {e}")),
                })
            }
        };
        let base = raw.as_ptr() as usize;
        let members = members
            .iter()
            .map(|(name, v)| {
                // Every value borrows from `raw`: its position there is its offset from the start.
                let start = v.get().as_ptr() as usize - base;
                (name.to_string(), start..start + v.get().len())
            })
            .collect();
        Ok(RawObject {
            raw: raw.to_vec(),
            members,
        })
    }

    /// The body as the client sent it.
    pub fn bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The top-level members as the client sent them: name, and the value's JSON text.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members.iter().map(|(name, range)| {
            // `raw` was valid UTF-8 JSON and each range is one whole value inside it.
            (
                name.as_str(),
                core::str::from_utf8(&self.raw[range.clone()]).unwrap_or("null"),
            )
        })
    }

    /// The JSON text of member `name`, if the client sent it.
    pub fn member(&self, name: &str) -> Option<&str> {
        self.members().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The body as a JSON object, parsed on demand: for the cache key, which compares every forwarded field as
    /// JSON (free-form by definition: any field a client sends counts).
    pub fn object(&self) -> Map<String, Value> {
        // `parse` accepted these bytes as an object.
        serde_json::from_slice(&self.raw).unwrap_or_default()
    }

    /// The body with `model` as its model (in the member's place), every other member as sent.
    pub fn with_model(&self, model: &str) -> Vec<u8> {
        let model = serde_json::to_string(model).unwrap_or_default();
        self.with(&[("model", &model)])
    }

    /// The body with each `(name, JSON text)` of `set` as that member's value (in its place, or added at the end),
    /// every other member as sent.
    pub fn with(&self, set: &[(&str, &str)]) -> Vec<u8> {
        let extra: usize = set.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let mut out = Vec::with_capacity(self.raw.len() + extra);
        out.push(b'{');
        let mut replaced = vec![false; set.len()];
        let mut first = true;
        let mut member = |out: &mut Vec<u8>, k: &str, v: &str| {
            if !first {
                out.push(b',');
            }
            first = false;
            let _ = serde_json::to_writer(&mut *out, k);
            out.push(b':');
            out.extend_from_slice(v.as_bytes());
        };
        for (k, v) in self.members() {
            match set.iter().position(|(name, _)| *name == k) {
                Some(i) => {
                    replaced[i] = true;
                    member(&mut out, k, set[i].1);
                }
                None => member(&mut out, k, v),
            }
        }
        for (i, (k, v)) in set.iter().enumerate() {
            if !replaced[i] {
                member(&mut out, k, v);
            }
        }
        out.push(b'}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_set_in_place_or_added_at_the_end() {
        let o = RawObject::parse(br#"{"stream":true, "model" : "a","x":[1 ,2]}"#).unwrap();
        assert_eq!(
            o.with(&[
                ("model", r#""b""#),
                ("stream_options", r#"{"include_usage":true}"#)
            ]),
            br#"{"stream":true,"model":"b","x":[1 ,2],"stream_options":{"include_usage":true}}"#
        );
        let empty = RawObject::parse(b"{}").unwrap();
        assert_eq!(empty.with_model("m"), br#"{"model":"m"}"#);
    }

    #[test]
    fn model_is_replaced_in_place_and_everything_else_kept_byte_for_byte() {
        let raw = br#"{ "top_k" : 5, "model":"alias","x":{"b":1.50,"a":[1,2]} }"#;
        let o = RawObject::parse(raw).unwrap();
        assert_eq!(
            String::from_utf8(o.with_model("claude-x")).unwrap(),
            r#"{"top_k":5,"model":"claude-x","x":{"b":1.50,"a":[1,2]}}"#
        );
        assert_eq!(o.member("x"), Some(r#"{"b":1.50,"a":[1,2]}"#));
        let o = RawObject::parse(b"{}").unwrap();
        assert_eq!(o.with_model("m"), br#"{"model":"m"}"#);
    }

    #[test]
    fn only_an_object_is_a_body() {
        for (body, want) in [
            (&b"[1]"[..], "must be a JSON object"),
            (b"{", "not valid JSON"),
        ] {
            let e = RawObject::parse(body).unwrap_err();
            assert!(e.message.contains(want), "{}", e.message);
        }
    }
}
