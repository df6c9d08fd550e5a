//! Provider wire formats. An OpenAI-compatible host is configuration, not a module; only providers with a
//! different wire format get one, made of pure conversion functions tested against fixture files. This file
//! dispatches on the closed set of kinds.

pub mod anthropic;
pub mod bedrock;
pub mod count_tokens;
pub mod embeddings;
pub mod errors;
pub mod gemini;
pub mod openai_compat;
pub mod openai_wire;
pub mod params;

use crate::canonical::{ChatRequest, ChatResponse, StreamEvent};
use crate::config::{Deployment, ProviderKind};
use crate::error::GatewayError;
use crate::http::{Headers, Method};
use crate::platform::UpstreamRequest;
use bedrock::sigv4;

/// Anthropic API version sent with every request; the wire shapes in `anthropic.rs` follow it.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Secrets resolved for one request. Never logged, never rendered.
pub enum Credentials {
    None,
    ApiKey(String),
    Aws(sigv4::Credentials),
}

impl Credentials {
    /// Secret strings to scrub from anything a provider sends back.
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            Credentials::None => Vec::new(),
            Credentials::ApiKey(k) => vec![k.as_str()],
            Credentials::Aws(c) => {
                let mut v = vec![c.secret_access_key.as_str(), c.access_key_id.as_str()];
                if let Some(t) = &c.session_token {
                    v.push(t.as_str());
                }
                v
            }
        }
    }

    fn api_key(&self) -> Option<&str> {
        match self {
            Credentials::ApiKey(k) => Some(k),
            _ => None,
        }
    }
}

/// URL of an OpenAI-wire endpoint (OpenAI-compatible or Azure), e.g. `chat/completions`: an operation names
/// its own.
pub fn openai_wire_url(dep: &Deployment, endpoint: &str) -> String {
    let base = &dep.provider.base_url;
    match &dep.provider.kind {
        ProviderKind::Azure { api_version } => format!(
            "{base}/openai/deployments/{}/{endpoint}?api-version={api_version}",
            crate::url::segment(&dep.model)
        ),
        ProviderKind::OpenAi
        | ProviderKind::Anthropic
        | ProviderKind::Gemini
        | ProviderKind::Bedrock { .. } => format!("{base}/{endpoint}"),
    }
}

/// The chat endpoint's path under an OpenAI-wire base URL.
pub const CHAT_COMPLETIONS: &str = "chat/completions";

/// Adds the provider's authentication header for API-key kinds.
pub fn add_key_header(kind: &ProviderKind, creds: &Credentials, headers: &mut Headers) {
    let Some(key) = creds.api_key() else { return };
    match kind {
        ProviderKind::OpenAi => headers.insert("authorization", format!("Bearer {key}")),
        ProviderKind::Azure { .. } => headers.insert("api-key", key),
        ProviderKind::Anthropic => headers.insert("x-api-key", key),
        // A header rather than `?key=`: a URL can end up in logs and error messages.
        ProviderKind::Gemini => headers.insert("x-goog-api-key", key),
        ProviderKind::Bedrock { .. } => {}
    }
}

/// The provider request for a canonical chat request. Kept out of line: it holds every provider's request
/// building, which a request that is passed through never runs (and a cold isolate then never compiles).
#[inline(never)]
pub fn build_request(
    dep: &Deployment,
    req: &ChatRequest,
    creds: &Credentials,
    now_ms: u64,
) -> Result<UpstreamRequest, GatewayError> {
    let kind = &dep.provider.kind;
    let base = &dep.provider.base_url;
    let mut headers = Headers::new();
    headers.insert("content-type", "application/json");
    let sse = if req.stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let (url, body) = match kind {
        ProviderKind::OpenAi | ProviderKind::Azure { .. } => {
            headers.insert("accept", sse);
            (
                openai_wire_url(dep, CHAT_COMPLETIONS),
                openai_compat::request_body(req, &dep.model),
            )
        }
        ProviderKind::Anthropic => {
            headers.insert("accept", sse);
            headers.insert("anthropic-version", ANTHROPIC_VERSION);
            (
                format!("{base}/messages"),
                anthropic::request_body(req, &dep.model)?,
            )
        }
        ProviderKind::Gemini => {
            headers.insert("accept", sse);
            (
                format!("{base}{}", gemini::path(&dep.model, req.stream)),
                gemini::request_body(req)?,
            )
        }
        ProviderKind::Bedrock { region, .. } => {
            let url = format!("{base}{}", bedrock::converse::path(&dep.model, req.stream));
            let body = bedrock::converse::request_body(req)?;
            headers.insert(
                "accept",
                if req.stream {
                    "application/vnd.amazon.eventstream"
                } else {
                    "application/json"
                },
            );
            sign_bedrock(&url, &mut headers, &body, creds, region, now_ms);
            (url, body)
        }
    };
    add_key_header(kind, creds, &mut headers);
    Ok(UpstreamRequest {
        method: Method::Post,
        url,
        headers,
        body,
        // A stream the client leaves must stop at the provider.
        cancel_on_drop: req.stream,
    })
}

/// Signs a Bedrock request (SigV4, service `bedrock`) when the deployment has AWS credentials.
pub(crate) fn sign_bedrock(
    url: &str,
    headers: &mut Headers,
    body: &[u8],
    creds: &Credentials,
    region: &str,
    now_ms: u64,
) {
    if let Credentials::Aws(aws) = creds {
        let date = sigv4::amz_date(now_ms);
        sigv4::sign(
            "POST", url, headers, body, aws, region, "bedrock", &date, false,
        );
    }
}

/// A provider's complete answer in canonical form. `id` is used where the provider returns none.
pub fn parse_response(
    dep: &Deployment,
    body: &[u8],
    id: &str,
) -> Result<ChatResponse, GatewayError> {
    match &dep.provider.kind {
        ProviderKind::OpenAi | ProviderKind::Azure { .. } => openai_compat::parse_response(body),
        ProviderKind::Anthropic => anthropic::parse_response(body),
        ProviderKind::Gemini => gemini::parse_response(body, id),
        ProviderKind::Bedrock { .. } => bedrock::converse::parse_response(body, id, &dep.model),
    }
}

/// The human-readable message in a provider's error body, if it has one.
pub fn error_message(kind: &ProviderKind, body: &[u8]) -> Option<String> {
    match kind {
        ProviderKind::OpenAi | ProviderKind::Azure { .. } => openai_compat::error_message(body),
        ProviderKind::Anthropic => anthropic::error_message(body),
        ProviderKind::Gemini => gemini::error_message(body),
        ProviderKind::Bedrock { .. } => bedrock::converse::error_message(body),
    }
}

/// For providers without a JSON mode a plain request can switch on (Anthropic's Messages API, Bedrock's Converse), a
/// requested response format becomes an instruction: Claude follows it reliably, but nothing enforces it, so clients must still validate what they get.
pub(crate) fn json_instruction(format: &crate::canonical::ResponseFormat) -> String {
    const BASE: &str =
        "Respond with a single JSON object only, with no other text and no code fences.";
    match format {
        crate::canonical::ResponseFormat::JsonObject => BASE.to_owned(),
        crate::canonical::ResponseFormat::JsonSchema { name, schema, .. } => {
            format!(
                "{BASE} The object must conform to this JSON Schema (named {name:?}):\n{schema}"
            )
        }
    }
}

/// A request a provider kind cannot express: the deployment is skipped, and only when no deployment of the model
/// can serve it does the client get this, as a 400 naming the field and why.
pub fn unsupported(message: impl Into<String>) -> GatewayError {
    GatewayError::new(crate::error::ErrorCode::UnsupportedInput, message)
}

/// A tool call's arguments as the JSON object providers other than OpenAI-wire ones require. The same rule for
/// every such kind: arguments that are not an object are never replaced (that would change the conversation the
/// model sees); the deployment is skipped instead. Empty arguments are an empty object.
pub fn tool_arguments_object(
    arguments: &str,
    id: &str,
    message: usize,
    kind: &str,
) -> Result<serde_json::Value, GatewayError> {
    if arguments.trim().is_empty() {
        return Ok(serde_json::Value::Object(serde_json::Map::new()));
    }
    match serde_json::from_slice::<serde_json::Value>(arguments.as_bytes()) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        _ => Err(unsupported(format!(
            "messages[{message}]: the arguments of tool call {id:?} are not a JSON object, which {kind} requires"
        ))),
    }
}

/// Decodes a provider's stream into canonical events.
pub enum Decoder {
    OpenAi(openai_compat::StreamDecoder),
    Anthropic(anthropic::StreamDecoder),
    Gemini(gemini::StreamDecoder),
    Bedrock(bedrock::converse::StreamDecoder),
}

impl Decoder {
    /// `id` and `model` fill in what a provider's stream does not say itself.
    pub fn new(kind: &ProviderKind, id: &str, model: &str) -> Self {
        match kind {
            ProviderKind::OpenAi | ProviderKind::Azure { .. } => {
                Decoder::OpenAi(openai_compat::StreamDecoder::with_fallback(id, model))
            }
            ProviderKind::Anthropic => Decoder::Anthropic(anthropic::StreamDecoder::new()),
            ProviderKind::Gemini => {
                Decoder::Gemini(gemini::StreamDecoder::new(id.into(), model.into()))
            }
            ProviderKind::Bedrock { .. } => Decoder::Bedrock(
                bedrock::converse::StreamDecoder::new(id.into(), model.into()),
            ),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamEvent>, GatewayError> {
        match self {
            Decoder::OpenAi(d) => d.push(bytes),
            Decoder::Anthropic(d) => d.push(bytes),
            Decoder::Gemini(d) => d.push(bytes),
            Decoder::Bedrock(d) => d.push(bytes),
        }
    }

    /// The provider's own end marker has been seen: the answer is whole, and nothing after it is part of it.
    /// Gemini and Bedrock streams end with the body instead.
    pub fn saw_end_marker(&self) -> bool {
        match self {
            Decoder::OpenAi(d) => d.saw_done(),
            Decoder::Anthropic(d) => d.saw_stop(),
            Decoder::Gemini(_) | Decoder::Bedrock(_) => false,
        }
    }

    pub fn end(&mut self) -> Result<Vec<StreamEvent>, GatewayError> {
        match self {
            Decoder::OpenAi(d) => d.end(),
            Decoder::Anthropic(d) => d.end(),
            Decoder::Gemini(d) => d.end(),
            Decoder::Bedrock(d) => d.end(),
        }
    }
}
