//! Token counting (`POST /v1/messages/count_tokens`, Anthropic's shape) at each provider kind that counts exactly:
//! Anthropic's own endpoint (the client's body, passed through with the model replaced), Bedrock's `CountTokens`
//! and Gemini's `countTokens` (the request translated as for a chat). OpenAI-wire hosts have no counting endpoint;
//! the gateway estimates for them (`gateway::count_tokens`).

use super::{add_key_header, bedrock, gemini, sign_bedrock, unsupported, Credentials};
use crate::canonical::ChatRequest;
use crate::config::{Deployment, ProviderKind};
use crate::error::{ErrorCode, GatewayError};
use crate::http::{Headers, Method};
use crate::inbound::anthropic::MessagesRequest;
use crate::platform::UpstreamRequest;
use serde::Deserialize;
use serde_json::{json, Value};

/// The counting request for `dep`; `unsupported_input` for kinds that cannot count (the deployment is skipped).
/// `canonical` is the request translated, for kinds other than Anthropic.
pub fn request(
    dep: &Deployment,
    m: &MessagesRequest,
    canonical: Result<&ChatRequest, GatewayError>,
    creds: &Credentials,
    now_ms: u64,
) -> Result<UpstreamRequest, GatewayError> {
    let base = &dep.provider.base_url;
    let mut headers = Headers::new();
    headers.insert("content-type", "application/json");
    headers.insert("accept", "application/json");
    let (url, body) = match &dep.provider.kind {
        ProviderKind::Anthropic => {
            headers.insert("anthropic-version", super::ANTHROPIC_VERSION);
            if let Some(beta) = &m.beta {
                headers.insert("anthropic-beta", beta.as_str());
            }
            (
                format!("{base}/messages/count_tokens"),
                m.body.with_model(&dep.model),
            )
        }
        ProviderKind::Bedrock { region, .. } => {
            let converse: Value =
                serde_json::from_slice(&bedrock::converse::request_body(canonical?)?)
                    .unwrap_or_default();
            // What CountTokens takes of a Converse request: the conversation, the system prompt, the tools.
            let mut input = serde_json::Map::new();
            for k in ["messages", "system", "toolConfig"] {
                if let Some(v) = converse.get(k) {
                    input.insert(k.into(), v.clone());
                }
            }
            let body =
                serde_json::to_vec(&json!({ "input": { "converse": input } })).unwrap_or_default();
            let url = format!(
                "{base}/model/{}/count-tokens",
                crate::url::segment(&dep.model)
            );
            sign_bedrock(&url, &mut headers, &body, creds, region, now_ms);
            (url, body)
        }
        ProviderKind::Gemini => {
            let mut request: Value =
                serde_json::from_slice(&gemini::request_body(canonical?)?).unwrap_or_default();
            request["model"] = format!("models/{}", dep.model).into();
            let body = serde_json::to_vec(&json!({ "generateContentRequest": request }))
                .unwrap_or_default();
            (
                format!(
                    "{base}/models/{}:countTokens",
                    crate::url::segment(&dep.model)
                ),
                body,
            )
        }
        ProviderKind::OpenAi | ProviderKind::Azure { .. } => {
            return Err(unsupported(format!(
                "provider {} ({}) has no token counting endpoint",
                dep.provider.name,
                dep.provider.kind.name()
            )))
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Counted {
    /// Anthropic.
    #[serde(default, rename = "input_tokens")]
    input_tokens_snake: Option<u64>,
    /// Bedrock.
    #[serde(default)]
    input_tokens: Option<u64>,
    /// Gemini.
    #[serde(default)]
    total_tokens: Option<u64>,
}

/// The count in a provider's answer.
pub fn parse(kind: &ProviderKind, body: &[u8]) -> Result<u64, GatewayError> {
    let v: Counted = serde_json::from_slice(body).map_err(|_| malformed(kind))?;
    match kind {
        ProviderKind::Anthropic => v.input_tokens_snake,
        ProviderKind::Bedrock { .. } => v.input_tokens,
        ProviderKind::Gemini => v.total_tokens,
        ProviderKind::OpenAi | ProviderKind::Azure { .. } => None,
    }
    .ok_or_else(|| malformed(kind))
}

fn malformed(kind: &ProviderKind) -> GatewayError {
    GatewayError::new(
        ErrorCode::UpstreamMalformed,
        format!("{} answered a malformed token count", kind.name()),
    )
}

/// An estimate where no provider counts: about four characters a token over the text the model would read (the
/// rule of thumb OpenAI documents for English), plus a few tokens a message for the chat framing.
pub fn estimate(req: &ChatRequest) -> u64 {
    use crate::canonical::Part;
    let mut chars = req.system.iter().map(|s| s.chars().count()).sum::<usize>();
    for m in &req.messages {
        for p in &m.content {
            chars += match p {
                Part::Text(t) | Part::Reasoning { text: t, .. } => t.chars().count(),
                Part::ToolCall {
                    name, arguments, ..
                } => name.len() + arguments.len(),
                Part::ToolResult { content, .. } => content.chars().count(),
                // OpenAI's documented cost of a low-detail image; high detail costs more.
                Part::Image(_) => 85 * 4,
            };
        }
    }
    for t in &req.tools {
        chars += t.name.len()
            + t.description.as_deref().map_or(0, str::len)
            + t.parameters.to_string().len();
    }
    (chars as u64).div_ceil(4) + 3 * req.messages.len() as u64 + 3
}
