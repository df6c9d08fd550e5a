//! Client dialects: how requests are read and how answers and errors are written back.

/// `Deserialize` for an enum `$ty<'a> { Text(Cow<'a, str>), List(Vec<$item>) }`: a field that is a string or an
/// array, read without buffering (serde's untagged enums buffer, and buffered numbers lose their text), borrowing
/// the string when it carries no escapes. `$expecting` names the field's shape in type errors.
macro_rules! string_or_list {
    ($ty:ident, $item:ty, $expecting:literal) => {
        impl<'de: 'a, 'a> serde::Deserialize<'de> for $ty<'a> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V<'a>(core::marker::PhantomData<&'a ()>);
                impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
                    type Value = $ty<'a>;
                    fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                        Ok($ty::Text(std::borrow::Cow::Borrowed(s)))
                    }
                    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                        Ok($ty::Text(std::borrow::Cow::Owned(s.to_owned())))
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<Self::Value, A::Error> {
                        let mut all = Vec::new();
                        while let Some(item) = seq.next_element::<$item>()? {
                            all.push(item);
                        }
                        Ok($ty::List(all))
                    }
                }
                d.deserialize_any(V(core::marker::PhantomData))
            }
        }
    };
}

pub mod anthropic;
mod anthropic_request;
pub mod embeddings;
pub mod models;
pub mod openai;
mod openai_request;
pub mod raw;
pub mod responses;

use crate::canonical::{ChatResponse, StreamEvent};
use crate::error::{ErrorCode, GatewayError};

/// The API a client speaks, decided by the path it called. Errors are always answered in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Anthropic,
    /// OpenAI's Responses API: OpenAI's error shape, its own answers.
    Responses,
}

/// Longest model name a client may send.
pub const MAX_MODEL_NAME: usize = 256;

/// A client-supplied model name: 1 to 256 bytes of ASCII letters, digits and `. _ - : / @ +`, with no empty,
/// `.` or `..` segment between slashes. That covers aliases and every provider's model ids (Bedrock ARNs and
/// inference profiles, `org/model` hosts, `llama3.1:8b`), and keeps names out of headers and URLs unharmed.
pub fn check_model_name(model: &str) -> Result<(), &'static str> {
    if model.is_empty() || model.len() > MAX_MODEL_NAME {
        return Err("must be 1 to 256 characters long");
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b".-_:/@+".contains(&b);
    if !model.bytes().all(allowed) {
        return Err("may only contain ASCII letters, digits and . _ - : / @ +");
    }
    if model
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err("may not contain empty, `.` or `..` path segments");
    }
    Ok(())
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
            Dialect::Responses => "responses",
        }
    }

    pub fn error_body(self, e: &GatewayError) -> Vec<u8> {
        match self {
            Dialect::OpenAi | Dialect::Responses => openai::error_body(e),
            Dialect::Anthropic => anthropic::error_body(e),
        }
    }

    /// The status an error is answered with: the code's, but Anthropic's own 529 for an overloaded provider in
    /// its dialect (its SDKs and tools key their retries on it).
    pub fn error_status(self, e: &GatewayError) -> u16 {
        match self {
            Dialect::Anthropic if e.code == ErrorCode::UpstreamOverloaded => 529,
            Dialect::Anthropic | Dialect::OpenAi | Dialect::Responses => e.status,
        }
    }

    /// A complete answer. `model` stands in when the provider named none; `now_ms` dates OpenAI's `created`. A
    /// Responses answer rendered here has no request to echo (the gateway renders those with theirs).
    pub fn render_response(self, resp: &ChatResponse, model: &str, now_ms: u64) -> Vec<u8> {
        match self {
            Dialect::OpenAi => openai::render_response(resp, now_ms / 1000),
            Dialect::Anthropic => anthropic::render_response(resp, model),
            Dialect::Responses => serde_json::to_vec(&responses::render_response(
                resp,
                &format!("resp_{now_ms:x}"),
                model,
                now_ms / 1000,
                &responses::Echo::default(),
            ))
            .unwrap_or_default(),
        }
    }

    pub fn stream_encoder(self, model: &str, include_usage: bool, now_ms: u64) -> Encoder {
        match self {
            Dialect::OpenAi => {
                Encoder::OpenAi(openai::StreamEncoder::new(now_ms / 1000, include_usage))
            }
            Dialect::Anthropic => Encoder::Anthropic(anthropic::StreamEncoder::new(model)),
            Dialect::Responses => Encoder::Responses(Box::new(responses::StreamEncoder::new(
                &format!("resp_{now_ms:x}"),
                model,
                now_ms / 1000,
                responses::Echo::default(),
            ))),
        }
    }
}

/// Writes canonical stream events in a client dialect.
pub enum Encoder {
    OpenAi(openai::StreamEncoder),
    Anthropic(anthropic::StreamEncoder),
    Responses(Box<responses::StreamEncoder>),
}

impl Encoder {
    pub fn encode_all(&mut self, events: &[StreamEvent], out: &mut Vec<u8>) {
        for ev in events {
            match self {
                Encoder::OpenAi(e) => e.encode(ev, out),
                Encoder::Anthropic(e) => e.encode(ev, out),
                Encoder::Responses(e) => e.encode(ev, out),
            }
        }
    }

    /// Adds a `cost` field to the final usage.
    pub fn quote(&mut self, quote: crate::pricing::Quote) {
        match self {
            Encoder::OpenAi(e) => e.quote(quote),
            Encoder::Anthropic(e) => e.quote(quote),
            Encoder::Responses(e) => e.quote(quote),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi(e) => e.finish(out),
            Encoder::Anthropic(e) => e.finish(out),
            Encoder::Responses(e) => e.finish(out),
        }
    }

    /// Ends the stream with an error event in the dialect's own shape.
    pub fn fail(&mut self, err: &GatewayError, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi(e) => e.fail(err, out),
            Encoder::Anthropic(e) => e.fail(err, out),
            Encoder::Responses(e) => e.fail(err, out),
        }
    }
}

/// The README's error table, rendered from [`ErrorCode::spec`] and each dialect's error types: code, status, each dialect's error type,
/// whether it fails over, and what it means.
pub fn error_table() -> String {
    let mut out = String::from(
        "| code | status | OpenAI `type` | Anthropic `type` | fails over | meaning |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for &code in ErrorCode::ALL {
        let s = code.spec();
        let e = GatewayError::new(code, "");
        let anthropic_status = Dialect::Anthropic.error_status(&e);
        let status = if anthropic_status == s.status {
            s.status.to_string()
        } else {
            format!("{} (Anthropic dialect: {anthropic_status})", s.status)
        };
        out.push_str(&format!(
            "| `{}` | {} | `{}` | `{}` | {} | {} |\n",
            s.name,
            status,
            openai::error_type(s.kind),
            anthropic::error_type(&e),
            if s.fails_over { "yes" } else { "no" },
            s.meaning
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn readme_error_table_is_current() {
        let readme = include_str!("../../README.md");
        let table = super::error_table();
        assert!(
            readme.contains(&table),
            "README.md's error table is stale; the current table is:\n{table}"
        );
    }
}
