//! Embeddings at each provider kind: OpenAI-wire hosts get the client's body as sent (model replaced); Gemini
//! `batchEmbedContents`; Bedrock through `InvokeModel`, for Amazon Titan Text Embeddings V2 (one text a call) and
//! Cohere Embed (a batch). Anthropic has no embeddings. Answers are written back in OpenAI's shape.

use super::{add_key_header, sign_bedrock, unsupported, Credentials};
use crate::config::{Deployment, ProviderKind};
use crate::error::{ErrorCode, GatewayError};
use crate::http::{Headers, Method};
use crate::inbound::embeddings::{EmbeddingsRequest, Encoding, Input};
use crate::platform::UpstreamRequest;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

/// The embedding models Bedrock serves through `InvokeModel`, each with its own body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BedrockFamily {
    Titan,
    Cohere,
}

fn bedrock_family(model: &str) -> Option<BedrockFamily> {
    if model.contains("titan-embed") {
        Some(BedrockFamily::Titan)
    } else if model.contains("cohere.embed") {
        Some(BedrockFamily::Cohere)
    } else {
        None
    }
}

/// Dimensions Titan Text Embeddings V2 can return.
const TITAN_DIMENSIONS: [u32; 3] = [256, 512, 1024];

/// The request for `dep`, or `unsupported_input` when its kind cannot embed this input (the deployment is skipped).
pub fn request(
    dep: &Deployment,
    req: &EmbeddingsRequest,
    creds: &Credentials,
    now_ms: u64,
) -> Result<UpstreamRequest, GatewayError> {
    let base = &dep.provider.base_url;
    let who = || {
        format!(
            "provider {} ({})",
            dep.provider.name,
            dep.provider.kind.name()
        )
    };
    let texts = || match &req.input {
        Input::Texts(t) => Ok(t),
        Input::Tokens => Err(unsupported(format!(
            "`input` as token ids can only be sent to an OpenAI-wire provider, not {}",
            who()
        ))),
    };
    let mut headers = Headers::new();
    headers.insert("content-type", "application/json");
    headers.insert("accept", "application/json");
    let (url, body) = match &dep.provider.kind {
        ProviderKind::OpenAi | ProviderKind::Azure { .. } => (
            super::openai_wire_url(dep, EMBEDDINGS),
            req.body.with_model(&dep.model),
        ),
        ProviderKind::Gemini => {
            let model = format!("models/{}", dep.model);
            let requests: Vec<Value> = texts()?
                .iter()
                .map(|t| {
                    let mut r = json!({ "model": model, "content": { "parts": [{ "text": t }] } });
                    if let Some(d) = req.dimensions {
                        r["outputDimensionality"] = d.into();
                    }
                    r
                })
                .collect();
            (
                format!(
                    "{base}/models/{}:batchEmbedContents",
                    crate::url::segment(&dep.model)
                ),
                serde_json::to_vec(&json!({ "requests": requests })).unwrap_or_default(),
            )
        }
        ProviderKind::Bedrock { region, .. } => {
            let texts = texts()?;
            let body = match bedrock_family(&dep.model) {
                Some(BedrockFamily::Titan) => {
                    let [text] = texts.as_slice() else {
                        return Err(unsupported(format!(
                            "Titan Text Embeddings embeds one text a call; {} got {}",
                            who(),
                            texts.len()
                        )));
                    };
                    let mut b = json!({ "inputText": text });
                    match req.dimensions {
                        None => {}
                        Some(d) if TITAN_DIMENSIONS.contains(&d) => b["dimensions"] = d.into(),
                        Some(d) => {
                            return Err(unsupported(format!(
                                "`dimensions` {d}: Titan Text Embeddings V2 returns 256, 512 or 1024"
                            )))
                        }
                    }
                    b
                }
                Some(BedrockFamily::Cohere) => {
                    if req.dimensions.is_some() {
                        return Err(unsupported(
                            "`dimensions`: Cohere Embed on Bedrock returns its model's own size",
                        ));
                    }
                    // OpenAI's API has no query/document distinction: texts are embedded as documents.
                    json!({ "texts": texts, "input_type": "search_document" })
                }
                None => {
                    return Err(unsupported(format!(
                        "Bedrock model {} is not an embedding model Meridian knows (Titan Text Embeddings, Cohere Embed)",
                        dep.model
                    )))
                }
            };
            let body = serde_json::to_vec(&body).unwrap_or_default();
            let url = format!("{base}/model/{}/invoke", crate::url::segment(&dep.model));
            sign_bedrock(&url, &mut headers, &body, creds, region, now_ms);
            (url, body)
        }
        ProviderKind::Anthropic => {
            return Err(unsupported(format!("{} has no embeddings endpoint", who())))
        }
    };
    add_key_header(&dep.provider.kind, creds, &mut headers);
    Ok(UpstreamRequest {
        method: Method::Post,
        url,
        headers,
        body,
        cancel_on_drop: false,
    })
}

/// The embeddings endpoint's path under an OpenAI-wire base URL.
pub const EMBEDDINGS: &str = "embeddings";

/// A provider's vectors, in input order, and its count of the input when it gives one.
#[derive(Debug, Clone, PartialEq)]
pub struct Vectors {
    pub vectors: Vec<Vec<f32>>,
    pub input_tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    /// Gemini: `[{values}]`; Cohere: `[[...]]` (or `{float: [[...]]}` with `embedding_types`).
    #[serde(default)]
    embeddings: Option<Value>,
    /// Titan.
    #[serde(default)]
    embedding: Option<Vec<f32>>,
    #[serde(default)]
    input_text_token_count: Option<u64>,
}

fn malformed(dep: &Deployment) -> GatewayError {
    GatewayError::new(
        ErrorCode::UpstreamMalformed,
        format!(
            "provider {} answered malformed embeddings",
            dep.provider.name
        ),
    )
}

/// The vectors in a translated provider's answer; `expected`: how many inputs were sent.
pub fn parse(dep: &Deployment, body: &[u8], expected: usize) -> Result<Vectors, GatewayError> {
    let a: Answer = serde_json::from_slice(body).map_err(|_| malformed(dep))?;
    let floats = |v: &Value| serde_json::from_value::<Vec<f32>>(v.clone()).ok();
    let vectors: Option<Vec<Vec<f32>>> = match (&dep.provider.kind, &a.embedding, &a.embeddings) {
        (ProviderKind::Bedrock { .. }, Some(e), _) => Some(vec![e.clone()]),
        (ProviderKind::Gemini, _, Some(Value::Array(items))) => items
            .iter()
            .map(|i| i.get("values").and_then(floats))
            .collect(),
        (ProviderKind::Bedrock { .. }, None, Some(Value::Array(items))) => {
            items.iter().map(floats).collect()
        }
        (ProviderKind::Bedrock { .. }, None, Some(Value::Object(by_type))) => by_type
            .get("float")
            .and_then(Value::as_array)
            .and_then(|items| items.iter().map(floats).collect()),
        _ => None,
    };
    let vectors = vectors
        .filter(|v| v.len() == expected)
        .ok_or_else(|| malformed(dep))?;
    Ok(Vectors {
        vectors,
        input_tokens: a.input_text_token_count,
    })
}

/// The input count of an OpenAI-wire answer passed through, checking it is one (`None` when it is not).
pub fn passthrough_usage(body: &[u8]) -> Option<Option<u64>> {
    #[derive(Deserialize)]
    struct Usage {
        prompt_tokens: Option<u64>,
    }
    #[derive(Deserialize)]
    struct List {
        data: Vec<serde::de::IgnoredAny>,
        usage: Option<Usage>,
    }
    let l: List = serde_json::from_slice(body).ok()?;
    let _ = l.data;
    Some(l.usage.and_then(|u| u.prompt_tokens))
}

/// An answer in OpenAI's shape. `model` names the model that answered; `input_tokens` is the provider's count or
/// an estimate.
pub fn render(v: &Vectors, model: &str, encoding: Encoding, input_tokens: u64) -> Vec<u8> {
    let data: Vec<Value> = v
        .vectors
        .iter()
        .enumerate()
        .map(|(i, vector)| {
            let embedding = match encoding {
                Encoding::Float => json!(vector),
                Encoding::Base64 => {
                    let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
            };
            json!({ "object": "embedding", "index": i, "embedding": embedding })
        })
        .collect();
    serde_json::to_vec(&json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": input_tokens, "total_tokens": input_tokens },
    }))
    .unwrap_or_default()
}

/// About four characters a token (OpenAI's documented rule of thumb), for providers that do not count.
pub fn estimate(req: &EmbeddingsRequest) -> u64 {
    match &req.input {
        Input::Texts(t) => t
            .iter()
            .map(|s| (s.chars().count() as u64).div_ceil(4))
            .sum(),
        Input::Tokens => 0,
    }
}
