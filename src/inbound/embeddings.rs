//! The Embeddings request (`POST /v1/embeddings`, OpenAI's shape), kept as sent for OpenAI-wire providers and read
//! into what other kinds need: the texts (or token ids, which only OpenAI-wire providers take), the dimensions and
//! the encoding the client wants back.

use super::raw::RawObject;
use crate::error::{ErrorCode, GatewayError};
use serde::Deserialize;
use serde_json::Value;

/// What to embed.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Texts(Vec<String>),
    /// Token ids (one list per input): only a provider with OpenAI's tokenizer can read them.
    Tokens,
}

/// How the vectors are written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Float,
    /// Little-endian `f32`s, base64: a quarter of the size of decimal text.
    Base64,
}

#[derive(Debug, Clone)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub input: Input,
    pub dimensions: Option<u32>,
    pub encoding: Encoding,
    pub body: RawObject,
}

/// Most inputs one request may carry (OpenAI's own limit).
pub const MAX_INPUTS: usize = 2048;

#[derive(Deserialize)]
struct Body {
    model: Option<Value>,
    input: Option<Value>,
    dimensions: Option<Value>,
    encoding_format: Option<Value>,
}

fn invalid(message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorCode::InvalidValue, message)
}

pub fn parse(raw: &[u8]) -> Result<EmbeddingsRequest, GatewayError> {
    let body = RawObject::parse(raw)?;
    let b: Body = serde_json::from_slice(raw)
        .map_err(|e| GatewayError::invalid(format!("request body is malformed: {e}")))?;
    let model = match b.model {
        Some(Value::String(m)) if !m.is_empty() => {
            super::check_model_name(&m).map_err(|why| {
                GatewayError::new(ErrorCode::InvalidModel, format!("`model` {why}"))
            })?;
            m
        }
        None | Some(Value::Null) => {
            return Err(GatewayError::new(
                ErrorCode::InvalidModel,
                "missing required parameter `model`",
            ))
        }
        Some(_) => {
            return Err(GatewayError::new(
                ErrorCode::InvalidModel,
                "`model` must be a non-empty string",
            ))
        }
    };
    let input = match b.input {
        Some(Value::String(s)) => Input::Texts(vec![s]),
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(invalid("`input` must not be empty"))
        }
        Some(Value::Array(items)) if items.len() > MAX_INPUTS => {
            return Err(invalid(format!("`input` may hold at most {MAX_INPUTS} items")))
        }
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Input::Texts(
            items
                .into_iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
        ),
        Some(Value::Array(items))
            if items.iter().all(|v| v.is_u64())
                || items
                    .iter()
                    .all(|v| v.as_array().is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_u64))) =>
        {
            Input::Tokens
        }
        None | Some(Value::Null) => return Err(invalid("missing required parameter `input`")),
        Some(_) => {
            return Err(invalid(
                "`input` must be a string, an array of strings, or token ids (an array of integers, or of arrays of them)",
            ))
        }
    };
    if let Input::Texts(texts) = &input {
        if texts.iter().any(String::is_empty) {
            return Err(invalid("`input` must not contain empty strings"));
        }
    }
    let dimensions = match b.dimensions {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|n| (1..=65_536).contains(n))
                .map(|n| n as u32)
                .ok_or_else(|| invalid("`dimensions` must be a positive integer"))?,
        ),
    };
    let encoding = match &b.encoding_format {
        None | Some(Value::Null) => Encoding::Float,
        Some(Value::String(s)) if s == "float" => Encoding::Float,
        Some(Value::String(s)) if s == "base64" => Encoding::Base64,
        Some(_) => return Err(invalid("`encoding_format` must be \"float\" or \"base64\"")),
    };
    Ok(EmbeddingsRequest {
        model,
        input,
        dimensions,
        encoding,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        parse(body.as_bytes()).unwrap_err().message
    }

    #[test]
    fn inputs_dimensions_and_encodings() {
        let r = parse(br#"{"model":"e","input":"hello"}"#).unwrap();
        assert_eq!(r.input, Input::Texts(vec!["hello".into()]));
        assert_eq!((r.dimensions, r.encoding), (None, Encoding::Float));
        let r = parse(
            br#"{"model":"e","input":["a","b"],"dimensions":256,"encoding_format":"base64"}"#,
        )
        .unwrap();
        assert_eq!(r.input, Input::Texts(vec!["a".into(), "b".into()]));
        assert_eq!((r.dimensions, r.encoding), (Some(256), Encoding::Base64));
        assert_eq!(
            parse(br#"{"model":"e","input":[1,2,3]}"#).unwrap().input,
            Input::Tokens
        );
        assert_eq!(
            parse(br#"{"model":"e","input":[[1],[2,3]]}"#)
                .unwrap()
                .input,
            Input::Tokens
        );
        assert_eq!(
            parse(br#"{"model":"e","input":"x","encoding_format":null}"#)
                .unwrap()
                .encoding,
            Encoding::Float
        );
    }

    #[test]
    fn bad_input_is_named() {
        assert!(err(r#"{"input":"x"}"#).contains("`model`"));
        assert!(err(r#"{"model":"e"}"#).contains("`input`"));
        assert!(err(r#"{"model":"e","input":[]}"#).contains("must not be empty"));
        assert!(err(r#"{"model":"e","input":[""]}"#).contains("empty strings"));
        assert!(err(r#"{"model":"e","input":[1,"a"]}"#).contains("token ids"));
        assert!(err(r#"{"model":"e","input":"x","dimensions":0}"#).contains("`dimensions`"));
        assert!(err(r#"{"model":"e","input":"x","encoding_format":"int8"}"#)
            .contains("`encoding_format`"));
        assert!(err(r#"[1]"#).contains("JSON object"));
    }
}
