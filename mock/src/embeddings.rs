//! Embeddings in each provider's format: OpenAI and Azure (`…/embeddings`), Gemini (`:embedContent`,
//! `:batchEmbedContents`), Bedrock `InvokeModel` for Titan Text Embeddings (`amazon.titan-embed-…`) and Cohere
//! Embed (`cohere.embed-…`). Vectors are deterministic: each value comes from the text's seed (see
//! [`vector`]), so the same text always has the same vector and different texts differ.

use base64::Engine;
use serde_json::{json, Value};

use crate::content::{fnv1a64, word_count};

/// Dimensions when the request names none.
pub(crate) const DEFAULT_DIMENSIONS: usize = 8;

/// The vector of `text`: value `j` is `((fnv1a64(text) + j) * 0x9E3779B97F4A7C15 >> 40) / 2^24 * 2 - 1`, in
/// [-1, 1).
pub(crate) fn vector(text: &str, dimensions: usize) -> Vec<f32> {
    let seed = fnv1a64(text.as_bytes());
    (0..dimensions as u64)
        .map(|j| {
            let z = seed.wrapping_add(j).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            (z as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

/// OpenAI / Azure: `{"object":"list","data":[{"object":"embedding","index","embedding"}],"model","usage"}`, with
/// `encoding_format: "base64"` giving little-endian `f32`s, base64.
pub(crate) fn openai(body: &Value, model: &str) -> Result<Value, String> {
    let texts: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                // Token ids: embedded as their decimal text.
                other => Ok(other.to_string()),
            })
            .collect::<Result<_, String>>()?,
        _ => return Err("'input' is a required property (a string or an array)".into()),
    };
    let dims = body
        .get("dimensions")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_DIMENSIONS, |d| d as usize);
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let v = vector(t, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = texts.iter().map(|t| word_count(t)).sum();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}

fn gemini_text(request: &Value) -> String {
    request
        .get("content")
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text")?.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn gemini_dims(request: &Value) -> usize {
    request
        .get("outputDimensionality")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_DIMENSIONS, |d| d as usize)
}

/// Gemini `:embedContent` → `{"embedding":{"values"}}`; `:batchEmbedContents` → `{"embeddings":[{"values"}]}`.
pub(crate) fn gemini(body: &Value, batch: bool) -> Result<Value, String> {
    if !batch {
        return Ok(json!({"embedding": {"values": vector(&gemini_text(body), gemini_dims(body))}}));
    }
    let requests = body
        .get("requests")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
        .ok_or("* BatchEmbedContentsRequest.requests: requests is not specified")?;
    let embeddings: Vec<Value> = requests
        .iter()
        .map(|r| json!({"values": vector(&gemini_text(r), gemini_dims(r))}))
        .collect();
    Ok(json!({"embeddings": embeddings}))
}

/// Bedrock `InvokeModel`: Titan `{"inputText","dimensions"}` → `{"embedding","inputTextTokenCount"}`; Cohere
/// `{"texts","input_type"}` → `{"embeddings":[[...]],"id","response_type":"embeddings_floats","texts"}` (1024
/// dimensions, as Cohere Embed v3).
pub(crate) fn bedrock(model: &str, body: &Value) -> Result<Value, String> {
    if model.contains("titan-embed") {
        let text = body
            .get("inputText")
            .and_then(Value::as_str)
            .ok_or("Malformed input request: #: required key [inputText] not found")?;
        let dims = match body.get("dimensions").and_then(Value::as_u64) {
            None => 1024,
            Some(d @ (256 | 512 | 1024)) => d as usize,
            Some(_) => {
                return Err("Malformed input request: dimensions must be 256, 512 or 1024".into())
            }
        };
        Ok(json!({"embedding": vector(text, dims), "inputTextTokenCount": word_count(text)}))
    } else if model.contains("cohere.embed") {
        let texts: Vec<&str> = body
            .get("texts")
            .and_then(Value::as_array)
            .ok_or("Malformed input request: #: required key [texts] not found")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if body.get("input_type").and_then(Value::as_str).is_none() {
            return Err("Malformed input request: #: required key [input_type] not found".into());
        }
        Ok(json!({
            "embeddings": texts.iter().map(|t| vector(t, 1024)).collect::<Vec<_>>(),
            "id": format!("mock-{:016x}", fnv1a64(texts.join("\n").as_bytes())),
            "response_type": "embeddings_floats",
            "texts": texts,
        }))
    } else {
        Err(format!(
            "The provided model identifier is invalid: {model} is not an embedding model"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_deterministic_bounded_and_differ_by_text() {
        let a = vector("hello", 16);
        assert_eq!(a, vector("hello", 16));
        assert_ne!(a, vector("hello!", 16));
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
        assert_eq!(&vector("hello", 4)[..], &a[..4]);
    }

    #[test]
    fn each_format() {
        let o = openai(&json!({"input": ["a b", "c"], "dimensions": 3}), "m").unwrap();
        assert_eq!(o["data"][1]["embedding"].as_array().unwrap().len(), 3);
        assert_eq!(o["usage"]["prompt_tokens"], 3);
        let b = openai(&json!({"input": "a", "encoding_format": "base64"}), "m").unwrap();
        assert!(b["data"][0]["embedding"].is_string());
        let g = gemini(&json!({"requests": [{"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 5}]}), true).unwrap();
        assert_eq!(g["embeddings"][0]["values"].as_array().unwrap().len(), 5);
        let t = bedrock(
            "amazon.titan-embed-text-v2:0",
            &json!({"inputText": "one two", "dimensions": 256}),
        )
        .unwrap();
        assert_eq!(
            (
                t["embedding"].as_array().unwrap().len(),
                t["inputTextTokenCount"].as_u64()
            ),
            (256, Some(2))
        );
        let c = bedrock(
            "cohere.embed-english-v3",
            &json!({"texts": ["a", "b"], "input_type": "search_document"}),
        )
        .unwrap();
        assert_eq!(c["embeddings"].as_array().unwrap().len(), 2);
        assert!(bedrock("anthropic.claude", &json!({})).is_err());
    }
}
