//! The OpenAI Chat Completions dialect as spoken by clients.

use super::raw::RawObject;
use crate::canonical::{ChatResponse, FinishReason, Part, StreamEvent, Usage};
use crate::error::{ErrorCode, ErrorKind, GatewayError};
use crate::pricing::Quote;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::borrow::Cow;

const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// A validated chat request. The body is kept as the client sent it, so fields Meridian does not interpret reach
/// the provider byte for byte.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub model: String,
    pub stream: bool,
    /// How many entries `messages` has (the input limits check it).
    pub message_count: usize,
    /// The body as the client sent it.
    pub body: RawObject,
}

/// What is read of each message before a provider is chosen: its role.
#[derive(Deserialize)]
struct MessageHead<'a> {
    #[serde(borrow)]
    role: Option<Cow<'a, str>>,
}

pub fn parse_chat(raw: &[u8]) -> Result<ChatRequest, GatewayError> {
    let body = RawObject::parse(raw)?;
    let member = |name: &str| body.member(name);
    let model = match member("model") {
        None => return Err(param_error("model", "missing required parameter `model`")),
        Some(v) => match serde_json::from_slice::<String>(v.as_bytes()) {
            Ok(m) if !m.is_empty() => match super::check_model_name(&m) {
                Ok(()) => m,
                Err(why) => return Err(param_error("model", format!("`model` {why}"))),
            },
            _ => return Err(param_error("model", "`model` must be a non-empty string")),
        },
    };
    let stream =
        match member("stream").map(|v| serde_json::from_slice::<Option<bool>>(v.as_bytes())) {
            None => false,
            Some(Ok(b)) => b.unwrap_or(false),
            Some(Err(_)) => return Err(param_error("stream", "`stream` must be a boolean")),
        };
    let messages =
        match member("messages").map(|v| serde_json::from_slice::<Vec<&RawValue>>(v.as_bytes())) {
            Some(Ok(m)) if !m.is_empty() => m,
            Some(Ok(_)) => return Err(param_error("messages", "`messages` must not be empty")),
            Some(Err(_)) => return Err(param_error("messages", "`messages` must be an array")),
            None => {
                return Err(param_error(
                    "messages",
                    "missing required parameter `messages`",
                ))
            }
        };
    for (i, m) in messages.iter().enumerate() {
        match serde_json::from_slice::<MessageHead>(m.get().as_bytes()).map(|h| h.role) {
            Ok(Some(r)) if ROLES.contains(&&*r) => {}
            Ok(Some(r)) => {
                return Err(param_error(
                    "messages",
                    format!("messages[{i}].role: unknown role {r:?}"),
                ))
            }
            _ => {
                return Err(param_error(
                    "messages",
                    format!("messages[{i}] must be an object with a string `role`"),
                ))
            }
        }
    }
    let message_count = messages.len();
    Ok(ChatRequest {
        model,
        stream,
        message_count,
        body,
    })
}

impl ChatRequest {
    /// The JSON text of member `name`, if the client sent it.
    pub fn member(&self, name: &str) -> Option<&str> {
        self.body.member(name)
    }

    /// `stream_options.include_usage`: whether a streamed answer should end with usage.
    pub fn include_usage(&self) -> bool {
        #[derive(Deserialize)]
        struct StreamOptions {
            include_usage: Option<bool>,
        }
        self.member("stream_options")
            .and_then(|v| serde_json::from_slice::<Option<StreamOptions>>(v.as_bytes()).ok())
            .flatten()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

fn param_error(param: &'static str, message: impl Into<String>) -> GatewayError {
    let code = match param {
        "model" => ErrorCode::InvalidModel,
        "messages" => ErrorCode::InvalidMessages,
        _ => ErrorCode::InvalidValue,
    };
    GatewayError::new(code, message)
}

pub(crate) fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::NotFound | ErrorKind::MethodNotAllowed => {
            "invalid_request_error"
        }
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::Upstream | ErrorKind::Timeout => "api_error",
        ErrorKind::Internal => "server_error",
    }
}

fn error_value(e: &GatewayError) -> Value {
    json!({
        "error": {
            "message": e.message,
            "type": error_type(e.kind()),
            "param": Value::Null,
            "code": e.code.as_str(),
        }
    })
}

/// `{"error":{"message","type","param","code"}}`, the shape OpenAI SDKs parse.
pub fn error_body(e: &GatewayError) -> Vec<u8> {
    serde_json::to_vec(&error_value(e)).unwrap_or_default()
}

/// An error inside an already-started stream, as an SSE event that OpenAI SDKs raise as an exception.
pub fn error_event(e: &GatewayError) -> Vec<u8> {
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(&error_body(e));
    out.extend_from_slice(b"\n\n");
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Canonical answers in this dialect (requests convert in openai_request.rs).

pub fn finish_reason(f: FinishReason) -> &'static str {
    match f {
        // OpenAI ends a refusal as a natural stop, with the text in `refusal`.
        FinishReason::Stop | FinishReason::StopSequence | FinishReason::Refusal => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

fn usage_value(u: &Usage) -> Value {
    let mut v = json!({
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
    });
    // Parts of the two counts, where the provider reported them.
    if u.cached_input_tokens.is_some() || u.cache_write_tokens.is_some() {
        let mut details = json!({});
        if let Some(n) = u.cached_input_tokens {
            details["cached_tokens"] = json!(n);
        }
        if let Some(n) = u.cache_write_tokens {
            details["cache_write_tokens"] = json!(n);
        }
        v["prompt_tokens_details"] = details;
    }
    if let Some(n) = u.reasoning_tokens {
        v["completion_tokens_details"] = json!({ "reasoning_tokens": n });
    }
    v
}

/// A `chat.completion` object for a canonical answer.
pub fn render_response(resp: &ChatResponse, created: u64) -> Vec<u8> {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for p in &resp.content {
        match p {
            Part::Text(t) => text.push_str(t),
            Part::Reasoning { text, .. } => reasoning.push_str(text),
            Part::ToolCall {
                id,
                name,
                arguments,
            } => calls.push(json!({
                "id": id, "type": "function", "function": {"name": name, "arguments": arguments}
            })),
            Part::Image(_) | Part::ToolResult { .. } => {}
        }
    }
    let mut message = if resp.finish == FinishReason::Refusal {
        json!({"role": "assistant", "content": Value::Null, "refusal": text})
    } else {
        json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }})
    };
    // Reasoning in the field OpenAI-compatible hosts (DeepSeek, vLLM, OpenRouter) use; OpenAI's own API shows none.
    if !reasoning.is_empty() {
        message["reasoning_content"] = Value::String(reasoning);
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    serde_json::to_vec(&json!({
        "id": resp.id,
        "object": "chat.completion",
        "created": created,
        "model": resp.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(resp.finish), "logprobs": null}],
        "usage": usage_value(&resp.usage.unwrap_or_default()),
    }))
    .unwrap_or_default()
}

/// Writes canonical stream events as OpenAI `chat.completion.chunk` SSE events.
pub struct StreamEncoder {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    started: bool,
    usage: Option<Usage>,
    /// The `cost` field of the final usage (none in a stream Meridian does not price).
    quote: Option<Quote>,
}

impl StreamEncoder {
    pub fn new(created: u64, include_usage: bool) -> Self {
        StreamEncoder {
            id: String::new(),
            model: String::new(),
            created,
            include_usage,
            started: false,
            usage: None,
            quote: None,
        }
    }

    pub fn quote(&mut self, quote: Quote) {
        self.quote = Some(quote);
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, out: &mut Vec<u8>) {
        self.write(
            json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }),
            out,
        );
    }

    fn write(&self, v: Value, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: ");
        // Writing a `Value` into a vector cannot fail.
        let _ = serde_json::to_writer(&mut *out, &v);
        out.extend_from_slice(b"\n\n");
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            if let StreamEvent::Start { id, model } = ev {
                self.id.clone_from(id);
                self.model.clone_from(model);
            }
            self.chunk(json!({"role": "assistant", "content": ""}), None, out);
        }
        match ev {
            StreamEvent::Start { .. } => {}
            StreamEvent::Text(t) => self.chunk(json!({"content": t}), None, out),
            StreamEvent::Reasoning(t) => self.chunk(json!({"reasoning_content": t}), None, out),
            // OpenAI's dialect has no place for it.
            StreamEvent::ReasoningSignature(_) => {}
            StreamEvent::ToolCallStart { index, id, name } => self.chunk(
                json!({"tool_calls": [{"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                None,
                out,
            ),
            StreamEvent::ToolCallArgs { index, delta } => self.chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": delta}}]}),
                None,
                out,
            ),
            StreamEvent::Finish(f) => self.chunk(json!({}), Some(finish_reason(*f)), out),
            StreamEvent::Usage(u) => self.usage = Some(*u),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.include_usage {
            if let Some(u) = &self.usage {
                let mut usage = usage_value(u);
                if let Some(q) = &self.quote {
                    usage["cost"] = q.field(&(*u).into());
                }
                let v = json!({
                    "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                    "choices": [], "usage": usage,
                });
                self.write(v, out);
            }
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    pub fn fail(&mut self, e: &GatewayError, out: &mut Vec<u8>) {
        out.extend_from_slice(&error_event(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_minimal_and_keeps_unknown_fields() {
        let r =
            parse_chat(br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":7}"#)
                .unwrap();
        assert_eq!(r.model, "m");
        assert!(!r.stream);
        assert_eq!(r.member("seed"), Some("7"));
        assert_eq!(r.message_count, 1);
        let r = parse_chat(
            br#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        assert!(r.stream);
    }

    #[test]
    fn rejects_bad_input_with_clear_messages() {
        let cases: &[(&[u8], &str)] = &[
            (b"{", "not valid JSON"),
            (b"[1]", "must be a JSON object"),
            (
                br#"{"messages":[{"role":"user"}]}"#,
                "missing required parameter `model`",
            ),
            (
                br#"{"model":1,"messages":[{"role":"user"}]}"#,
                "`model` must be a non-empty string",
            ),
            (br#"{"model":"m"}"#, "missing required parameter `messages`"),
            (
                br#"{"model":"m","messages":[]}"#,
                "`messages` must not be empty",
            ),
            (
                br#"{"model":"m","messages":{}}"#,
                "`messages` must be an array",
            ),
            (
                br#"{"model":"m","messages":[{"role":"robot"}]}"#,
                "messages[0].role: unknown role \"robot\"",
            ),
            (
                br#"{"model":"m","messages":[1]}"#,
                "messages[0] must be an object",
            ),
            (
                br#"{"model":"m","stream":"yes","messages":[{"role":"user"}]}"#,
                "`stream` must be a boolean",
            ),
            (b"\xff\xfe", "not valid JSON"),
        ];
        for (body, want) in cases {
            let e = parse_chat(body).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(
                e.message.contains(want),
                "{:?} -> {}",
                String::from_utf8_lossy(body),
                e.message
            );
        }
    }

    #[test]
    fn error_shape() {
        let e = GatewayError::new(ErrorCode::ModelNotFound, "nope");
        let v: Value = serde_json::from_slice::<Value>(&error_body(&e)).unwrap();
        assert_eq!(v["error"]["message"], "nope");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        let ev = error_event(&e);
        assert!(ev.starts_with(b"data: {") && ev.ends_with(b"}\n\n"));
    }
}
