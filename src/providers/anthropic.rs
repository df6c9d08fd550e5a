//! Anthropic Messages API (`POST /v1/messages`) as a provider: canonical requests out, canonical answers and
//! stream events back.

use super::Credentials;
use crate::canonical::{
    CachePoint, ChatRequest, ChatResponse, FinishReason, Image, Message, Part, Role, StreamEvent,
    Tool, ToolChoice, Usage,
};
use crate::config::Deployment;
use crate::error::{ErrorCode, GatewayError};
use crate::http::{Headers, Method};
use crate::inbound::anthropic::MessagesRequest;
use crate::platform::UpstreamRequest;
use crate::sse::{SseEvent, SseParser};
use serde_json::{json, Map, Value};

/// Anthropic requires `max_tokens` while other dialects make it optional; this is sent when the client set none.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The client's own Messages body, forwarded to an Anthropic provider with only the model replaced (same wire
/// format: every field reaches it, those Meridian does not read included), with the beta features it asked for.
pub fn passthrough_request(
    dep: &Deployment,
    req: &MessagesRequest,
    creds: &Credentials,
) -> UpstreamRequest {
    let mut headers = Headers::new();
    headers.insert("content-type", "application/json");
    headers.insert(
        "accept",
        if req.stream {
            "text/event-stream"
        } else {
            "application/json"
        },
    );
    headers.insert("anthropic-version", super::ANTHROPIC_VERSION);
    if let Some(beta) = &req.beta {
        headers.insert("anthropic-beta", beta.as_str());
    }
    super::add_key_header(&dep.provider.kind, creds, &mut headers);
    UpstreamRequest {
        method: Method::Post,
        url: format!("{}/messages", dep.provider.base_url),
        headers,
        body: req.body.with_model(&dep.model),
        cancel_on_drop: req.stream,
    }
}

pub fn request_body(req: &ChatRequest, model: &str) -> Result<Vec<u8>, GatewayError> {
    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert(
        "max_tokens".into(),
        req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).into(),
    );
    if let Some(system) = system_blocks(req) {
        body.insert("system".into(), system);
    } else if let Some(system) = system_prompt(req) {
        body.insert("system".into(), system.into());
    }
    body.insert(
        "messages".into(),
        messages(&req.messages, &req.cache_points)?,
    );
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut v = tool(t);
                if req.cache_points.contains(&CachePoint::Tool(i)) {
                    v["cache_control"] = ephemeral();
                }
                v
            })
            .collect();
        body.insert("tools".into(), tools.into());
    }
    if let Some(choice) = tool_choice(req) {
        body.insert("tool_choice".into(), choice);
    }
    if !req.stop.is_empty() {
        body.insert("stop_sequences".into(), req.stop.clone().into());
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), p.into());
    }
    // `seed` has no Anthropic equivalent and is left out rather than rejected: it is a best-effort hint everywhere.
    if let Some(user) = &req.user {
        body.insert("metadata".into(), json!({ "user_id": user }));
    }
    if let Some(t) = req.thinking {
        let max_tokens = body["max_tokens"].as_u64().unwrap_or(0) as u32;
        // Thinking needs room beyond its budget: a budget at or above the answer's limit raises the limit.
        if let Some(budget) = t.budget().filter(|b| *b >= max_tokens) {
            body.insert("max_tokens".into(), (budget + max_tokens.max(1024)).into());
        }
        let max_tokens = body["max_tokens"].as_u64().unwrap_or(0) as u32;
        body.extend(t.anthropic(max_tokens).map(|v| ("thinking".to_owned(), v)));
    }
    if req.stream {
        body.insert("stream".into(), true.into());
    }
    Ok(serde_json::to_vec(&Value::Object(body)).unwrap_or_default())
}

/// Anthropic's prompt-caching mark.
fn ephemeral() -> Value {
    json!({ "type": "ephemeral" })
}

/// System instructions as text blocks when a piece is marked for caching (a mark needs a block of its own), with
/// the JSON-output instruction last.
fn system_blocks(req: &ChatRequest) -> Option<Value> {
    if !req
        .cache_points
        .iter()
        .any(|p| matches!(p, CachePoint::System(_)))
    {
        return None;
    }
    let mut blocks = Vec::new();
    for (i, s) in req.system.iter().enumerate() {
        if s.is_empty() {
            continue;
        }
        let mut b = json!({ "type": "text", "text": s });
        if req.cache_points.contains(&CachePoint::System(i)) {
            b["cache_control"] = ephemeral();
        }
        blocks.push(b);
    }
    blocks.extend(
        req.response_format
            .as_ref()
            .map(|f| json!({ "type": "text", "text": super::json_instruction(f) })),
    );
    Some(blocks.into())
}

/// System instructions as the single string Anthropic takes, with the JSON-output instruction appended.
fn system_prompt(req: &ChatRequest) -> Option<String> {
    let mut parts: Vec<String> = req
        .system
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect();
    parts.extend(req.response_format.as_ref().map(super::json_instruction));
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

/// Consecutive messages of one role are merged: the Messages API wants alternating turns, and canonical requests
/// from other dialects may carry, say, tool results and a user question as separate user messages.
fn messages(messages: &[Message], cache_points: &[CachePoint]) -> Result<Value, GatewayError> {
    let mut turns: Vec<(Role, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let mut blocks = Vec::with_capacity(m.content.len());
        for (j, part) in m.content.iter().enumerate() {
            let mut b = block(part, i)?;
            let point = CachePoint::Message {
                message: i,
                part: j,
            };
            if let (Some(b), true) = (&mut b, cache_points.contains(&point)) {
                b["cache_control"] = ephemeral();
            }
            blocks.extend(b);
        }
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((role, content)) if *role == m.role => content.extend(blocks),
            _ => turns.push((m.role, blocks)),
        }
    }
    Ok(turns
        .into_iter()
        .map(|(role, content)| json!({ "role": role_name(role), "content": content }))
        .collect::<Vec<_>>()
        .into())
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

/// One content block; `None` for empty text, which the API rejects, and for reasoning without a signature
/// (another provider's), which Anthropic cannot verify and refuses.
fn block(part: &Part, message: usize) -> Result<Option<Value>, GatewayError> {
    Ok(Some(match part {
        Part::Text(t) if t.is_empty() => return Ok(None),
        Part::Text(t) => json!({ "type": "text", "text": t }),
        Part::Reasoning {
            text,
            signature: Some(signature),
        } if !signature.is_empty() => {
            json!({ "type": "thinking", "thinking": text, "signature": signature })
        }
        Part::Reasoning { .. } => return Ok(None),
        Part::Image(image) => json!({ "type": "image", "source": image_source(image) }),
        Part::ToolCall {
            id,
            name,
            arguments,
        } => json!({
            "type": "tool_use",
            "id": id,
            "name": name,
            "input": super::tool_arguments_object(arguments, id, message, "Anthropic")?,
        }),
        Part::ToolResult {
            call_id,
            content,
            is_error,
        } => {
            let mut b = json!({ "type": "tool_result", "tool_use_id": call_id });
            // Empty content is left out: it is optional, and an empty string is not reliably accepted.
            if !content.is_empty() {
                b["content"] = content.as_str().into();
            }
            if *is_error {
                b["is_error"] = true.into();
            }
            b
        }
    }))
}

fn image_source(image: &Image) -> Value {
    match image {
        Image::Base64 { media_type, data } => base64_source(media_type, data),
        Image::Url(url) => match parse_data_url(url) {
            Some((media_type, data)) => base64_source(media_type, data),
            None => json!({ "type": "url", "url": url }),
        },
    }
}

fn base64_source(media_type: &str, data: &str) -> Value {
    json!({ "type": "base64", "media_type": media_type, "data": data })
}

/// Splits a `data:<media type>;base64,<data>` URL. OpenAI clients send inline images this way, but providers
/// that fetch URLs cannot fetch these, so they are passed as inline data instead.
pub(crate) fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    (!media_type.is_empty()).then_some((media_type, data))
}

fn tool(t: &Tool) -> Value {
    // The API requires an object schema; tools without parameters get the empty one.
    let schema = match &t.parameters {
        Value::Object(o) if !o.is_empty() => t.parameters.clone(),
        _ => json!({ "type": "object", "properties": {} }),
    };
    let mut v = json!({ "name": t.name, "input_schema": schema });
    if let Some(d) = &t.description {
        v["description"] = d.as_str().into();
    }
    v
}

fn tool_choice(req: &ChatRequest) -> Option<Value> {
    let one_at_a_time = req.parallel_tool_calls == Some(false) && !req.tools.is_empty();
    let choice = match req.tool_choice.as_ref() {
        None if one_at_a_time => &ToolChoice::Auto,
        None => return None,
        Some(c) => c,
    };
    // Without tools, "auto" and "none" mean nothing, and the API rejects a tool_choice without tools.
    if req.tools.is_empty() && matches!(choice, ToolChoice::Auto | ToolChoice::None) {
        return None;
    }
    let mut v = match choice {
        ToolChoice::Auto => json!({ "type": "auto" }),
        ToolChoice::None => json!({ "type": "none" }),
        ToolChoice::Required => json!({ "type": "any" }),
        ToolChoice::Tool(name) => json!({ "type": "tool", "name": name }),
    };
    if one_at_a_time && !matches!(choice, ToolChoice::None) {
        v["disable_parallel_tool_use"] = true.into();
    }
    Some(v)
}

/// The Messages API's answers as Anthropic sends them: a whole message, and the events of a stream. One flat
/// shape serves every event (internally tagged enums would buffer, and lose numbers' text); fields a type does not
/// carry stay `None`, fields added later are ignored.
mod wire {
    use serde::Deserialize;
    use serde_json::value::RawValue;
    use std::borrow::Cow;

    #[derive(Debug, Default, Deserialize)]
    pub struct Body<'a> {
        #[serde(default, borrow, rename = "type")]
        pub kind: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub id: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub model: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub content: Option<Vec<Block<'a>>>,
        #[serde(default, borrow)]
        pub stop_reason: Option<Cow<'a, str>>,
        #[serde(default)]
        pub usage: Option<Usage>,
        #[serde(default, borrow)]
        pub error: Option<Error<'a>>,
        // Stream events.
        #[serde(default, borrow)]
        pub message: Option<Box<Body<'a>>>,
        #[serde(default)]
        pub index: Option<u64>,
        #[serde(default, borrow)]
        pub content_block: Option<Block<'a>>,
        #[serde(default, borrow)]
        pub delta: Option<Delta<'a>>,
    }

    #[derive(Debug, Default, Deserialize)]
    pub struct Block<'a> {
        #[serde(default, borrow, rename = "type")]
        pub kind: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub text: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub id: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub name: Option<Cow<'a, str>>,
        /// A tool call's arguments, as the JSON text the model wrote.
        #[serde(default, borrow)]
        pub input: Option<&'a RawValue>,
        #[serde(default, borrow)]
        pub thinking: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub signature: Option<Cow<'a, str>>,
    }

    /// A `content_block_delta`'s or a `message_delta`'s delta.
    #[derive(Debug, Default, Deserialize)]
    pub struct Delta<'a> {
        #[serde(default, borrow, rename = "type")]
        pub kind: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub text: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub partial_json: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub thinking: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub signature: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub stop_reason: Option<Cow<'a, str>>,
    }

    #[derive(Debug, Default, Clone, Copy, Deserialize)]
    pub struct Usage {
        #[serde(default)]
        pub input_tokens: Option<u64>,
        #[serde(default)]
        pub output_tokens: Option<u64>,
        #[serde(default)]
        pub cache_creation_input_tokens: Option<u64>,
        #[serde(default)]
        pub cache_read_input_tokens: Option<u64>,
    }

    /// An error answer: only its `error` member is read, whatever else a proxy on the way added.
    #[derive(Debug, Default, Deserialize)]
    pub struct ErrorBody<'a> {
        #[serde(default, borrow)]
        pub error: Option<Error<'a>>,
    }

    #[derive(Debug, Default, Deserialize)]
    pub struct Error<'a> {
        #[serde(default, borrow, rename = "type")]
        pub kind: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub message: Option<Cow<'a, str>>,
    }

    pub fn text(s: &Option<Cow<'_, str>>) -> String {
        s.as_deref().unwrap_or_default().to_owned()
    }
}

pub fn parse_response(body: &[u8]) -> Result<ChatResponse, GatewayError> {
    let v: wire::Body = serde_json::from_slice(body).map_err(|e| {
        upstream(match e.classify() {
            serde_json::error::Category::Data => format!("Anthropic response is malformed: {e}"),
            _ => format!("Anthropic response is not valid JSON: {e}"),
        })
    })?;
    if v.kind.as_deref() == Some("error") {
        return Err(upstream_error_event(&v, ErrorCode::UpstreamError));
    }
    let blocks = v
        .content
        .as_ref()
        .ok_or_else(|| upstream("Anthropic response has no `content` array"))?;
    Ok(ChatResponse {
        id: wire::text(&v.id),
        model: wire::text(&v.model),
        content: blocks.iter().filter_map(response_part).collect(),
        finish: v
            .stop_reason
            .as_deref()
            .map_or(FinishReason::Stop, finish_reason),
        usage: v.usage.map(|u| canonical_usage(&u, input_tokens(&u))),
    })
}

/// Reasoning, text and tool calls; redacted thinking and server-tool blocks have no canonical form and are dropped
/// (an Anthropic-dialect client gets them, passed through).
fn response_part(block: &wire::Block) -> Option<Part> {
    match block.kind.as_deref()? {
        "text" => Some(Part::Text(wire::text(&block.text))),
        "thinking" => Some(Part::Reasoning {
            text: wire::text(&block.thinking),
            signature: block.signature.as_deref().map(str::to_owned),
        }),
        "tool_use" => Some(Part::ToolCall {
            id: wire::text(&block.id),
            name: wire::text(&block.name),
            // Compact, as OpenAI-wire arguments are; member order and number text stay the model's.
            arguments: block
                .input
                .and_then(|i| serde_json::from_slice::<Value>(i.get().as_bytes()).ok())
                .map_or_else(|| "{}".to_owned(), |v| v.to_string()),
        }),
        _ => None,
    }
}

fn finish_reason(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "stop_sequence" => FinishReason::StopSequence,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::Refusal,
        // end_turn, pause_turn and reasons added later all mean the model stopped of its own accord.
        _ => FinishReason::Stop,
    }
}

/// Canonical usage from Anthropic's: the whole prompt as input (see [`input_tokens`]), the cache reads and writes
/// as its parts.
fn canonical_usage(usage: &wire::Usage, input: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: usage.output_tokens.unwrap_or(0),
        cached_input_tokens: usage.cache_read_input_tokens,
        cache_write_tokens: usage.cache_creation_input_tokens,
        reasoning_tokens: None,
    }
}

/// Anthropic counts cached prompt tokens apart from `input_tokens`; canonical usage counts the whole prompt, as
/// OpenAI's `prompt_tokens` does.
fn input_tokens(usage: &wire::Usage) -> u64 {
    [
        usage.input_tokens,
        usage.cache_creation_input_tokens,
        usage.cache_read_input_tokens,
    ]
    .into_iter()
    .flatten()
    .fold(0u64, u64::saturating_add)
}

/// The provider's own message from an error body, `{"type":"error","error":{"type","message"}}`.
pub fn error_message(body: &[u8]) -> Option<String> {
    let v: wire::ErrorBody = serde_json::from_slice(body).ok()?;
    v.error?.message.map(|m| m.into_owned())
}

/// An answer that is not the API's shape.
fn upstream(message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorCode::UpstreamMalformed, message)
}

/// An error object the provider sent with a 200 status: in a stream, or (rarely) as a whole body.
fn upstream_error_event(v: &wire::Body, code: ErrorCode) -> GatewayError {
    let e = v.error.as_ref();
    let kind = e.and_then(|e| e.kind.as_deref()).unwrap_or("error");
    let message = e.and_then(|e| e.message.as_deref()).unwrap_or("no message");
    // Overload and throttling keep their meaning (clients retry them), as the same HTTP statuses would.
    let code = match kind {
        "overloaded_error" => ErrorCode::UpstreamOverloaded,
        "rate_limit_error" => ErrorCode::UpstreamRateLimited,
        _ => code,
    };
    GatewayError::new(code, format!("Anthropic reported {kind}: {message}"))
}

/// Decodes a streamed Messages answer (`text/event-stream`) into canonical stream events.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    sse: SseParser,
    /// Content-block index → tool-call index: deltas name the block, canonical events the tool call.
    tool_blocks: Vec<(u64, u32)>,
    next_tool: u32,
    /// From `message_start`, for the usage reported at the end.
    input_tokens: u64,
    start_usage: wire::Usage,
    finished: bool,
    stopped: bool,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamEvent>, GatewayError> {
        let mut out = Vec::new();
        for event in self.sse.push(bytes)? {
            self.decode(&event, &mut out)?;
        }
        Ok(out)
    }

    /// One whole SSE event's canonical events.
    pub fn event(&mut self, event: &SseEvent) -> Result<Vec<StreamEvent>, GatewayError> {
        let mut out = Vec::new();
        self.decode(event, &mut out)?;
        Ok(out)
    }

    pub fn saw_stop(&self) -> bool {
        self.stopped
    }

    /// The body ended. Anthropic always closes a complete answer with `message_stop`; without it the connection
    /// broke mid-answer, and the client must not mistake the partial answer for a whole one.
    pub fn end(&mut self) -> Result<Vec<StreamEvent>, GatewayError> {
        if self.stopped {
            Ok(Vec::new())
        } else {
            Err(GatewayError::new(
                ErrorCode::UpstreamStreamTruncated,
                "Anthropic stream ended before completion",
            ))
        }
    }

    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), GatewayError> {
        if event.data.trim().is_empty() {
            return Ok(());
        }
        let v: wire::Body = serde_json::from_slice(event.data.as_bytes())
            .map_err(|e| upstream(format!("Anthropic sent an unreadable stream event: {e}")))?;
        let kind = v.kind.as_deref().or(event.event.as_deref()).unwrap_or("");
        match kind {
            "message_start" => self.message_start(&v, out),
            "content_block_start" => self.block_start(&v, out),
            "content_block_delta" => self.block_delta(&v, out),
            "message_delta" => self.message_delta(&v, out),
            "message_stop" => self.stopped = true,
            "error" => return Err(upstream_error_event(&v, ErrorCode::UpstreamStreamError)),
            // ping, content_block_stop, and event types introduced later carry nothing canonical.
            _ => {}
        }
        Ok(())
    }

    fn message_start(&mut self, v: &wire::Body, out: &mut Vec<StreamEvent>) {
        let message = v.message.as_deref();
        self.start_usage = message.and_then(|m| m.usage).unwrap_or_default();
        self.input_tokens = message
            .and_then(|m| m.usage)
            .map_or(0, |u| input_tokens(&u));
        out.push(StreamEvent::Start {
            id: message.map(|m| wire::text(&m.id)).unwrap_or_default(),
            model: message.map(|m| wire::text(&m.model)).unwrap_or_default(),
        });
        // The prompt is counted up front; said at once, so that a client reading `message_start` sees it (the
        // final usage follows with `message_delta`). An empty count (a start written without one) says nothing.
        if let Some(u) = message.and_then(|m| m.usage) {
            if input_tokens(&u) > 0 {
                out.push(StreamEvent::Usage(canonical_usage(&u, input_tokens(&u))));
            }
        }
    }

    fn block_start(&mut self, v: &wire::Body, out: &mut Vec<StreamEvent>) {
        let Some(block) = &v.content_block else {
            return;
        };
        match block.kind.as_deref() {
            Some("text") => {
                let text = block.text.as_deref().unwrap_or_default();
                if !text.is_empty() {
                    out.push(StreamEvent::Text(text.to_owned()));
                }
            }
            Some("thinking") => {
                let text = block.thinking.as_deref().unwrap_or_default();
                if !text.is_empty() {
                    out.push(StreamEvent::Reasoning(text.to_owned()));
                }
            }
            Some("tool_use") => {
                let index = self.next_tool;
                self.next_tool += 1;
                self.tool_blocks.push((v.index.unwrap_or(0), index));
                out.push(StreamEvent::ToolCallStart {
                    index,
                    id: wire::text(&block.id),
                    name: wire::text(&block.name),
                });
            }
            _ => {}
        }
    }

    fn block_delta(&mut self, v: &wire::Body, out: &mut Vec<StreamEvent>) {
        let Some(delta) = &v.delta else {
            return;
        };
        match delta.kind.as_deref() {
            Some("text_delta") => {
                let text = delta.text.as_deref().unwrap_or_default();
                if !text.is_empty() {
                    out.push(StreamEvent::Text(text.to_owned()));
                }
            }
            Some("input_json_delta") => {
                let partial = delta.partial_json.as_deref().unwrap_or_default();
                let block = v.index.unwrap_or(0);
                // Anthropic opens every tool block with an empty delta: nothing to report.
                if partial.is_empty() {
                    return;
                }
                if let Some(&(_, index)) = self.tool_blocks.iter().find(|(b, _)| *b == block) {
                    out.push(StreamEvent::ToolCallArgs {
                        index,
                        delta: partial.to_owned(),
                    });
                }
            }
            Some("thinking_delta") => {
                let text = delta.thinking.as_deref().unwrap_or_default();
                if !text.is_empty() {
                    out.push(StreamEvent::Reasoning(text.to_owned()));
                }
            }
            Some("signature_delta") => {
                if let Some(s) = delta.signature.as_deref().filter(|s| !s.is_empty()) {
                    out.push(StreamEvent::ReasoningSignature(s.to_owned()));
                }
            }
            // citations_delta and types added later: nothing canonical.
            _ => {}
        }
    }

    fn message_delta(&mut self, v: &wire::Body, out: &mut Vec<StreamEvent>) {
        if self.finished {
            return;
        }
        self.finished = true;
        if let Some(reason) = v.delta.as_ref().and_then(|d| d.stop_reason.as_deref()) {
            out.push(StreamEvent::Finish(finish_reason(reason)));
        }
        let mut usage = v.usage.unwrap_or_default();
        // Newer API versions repeat the (cumulative) input counts here; they supersede those of message_start.
        let input = if usage.input_tokens.is_some() {
            input_tokens(&usage)
        } else {
            usage.cache_read_input_tokens = self.start_usage.cache_read_input_tokens;
            usage.cache_creation_input_tokens = self.start_usage.cache_creation_input_tokens;
            self.input_tokens
        };
        out.push(StreamEvent::Usage(canonical_usage(&usage, input)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT_RESPONSE: &str =
        include_str!("../../tests/fixtures/anthropic/messages_response.json");
    const TOOL_RESPONSE: &str =
        include_str!("../../tests/fixtures/anthropic/tool_use_response.json");
    const STREAM_TEXT: &str = include_str!("../../tests/fixtures/anthropic/stream_text.sse");
    const STREAM_TOOL: &str = include_str!("../../tests/fixtures/anthropic/stream_tool_use.sse");

    fn text(s: &str) -> Part {
        Part::Text(s.to_owned())
    }

    fn user(content: Vec<Part>) -> Message {
        Message {
            role: Role::User,
            content,
        }
    }

    fn assistant(content: Vec<Part>) -> Message {
        Message {
            role: Role::Assistant,
            content,
        }
    }

    fn body_json(req: &ChatRequest, model: &str) -> Value {
        serde_json::from_slice::<Value>(&request_body(req, model).unwrap()).unwrap()
    }

    fn decode(chunks: &[&[u8]]) -> Result<Vec<StreamEvent>, GatewayError> {
        let mut d = StreamDecoder::new();
        let mut events = Vec::new();
        for c in chunks {
            events.extend(d.push(c)?);
        }
        events.extend(d.end()?);
        Ok(events)
    }

    #[test]
    fn request_maps_every_canonical_field() {
        let req = ChatRequest {
            model: "alias".into(),
            system: vec![
                "Be brief.".into(),
                String::new(),
                "Use metric units.".into(),
            ],
            messages: vec![
                user(vec![
                    text("Weather here?"),
                    Part::Image(Image::Url("data:image/png;base64,iVBORw0KGgo=".into())),
                    Part::Image(Image::Url("https://example.com/a.jpg".into())),
                ]),
                assistant(vec![
                    text(""),
                    Part::ToolCall {
                        id: "call_1".into(),
                        name: "get_weather".into(),
                        arguments: r#"{"city":"Paris"}"#.into(),
                    },
                    Part::ToolCall {
                        id: "call_2".into(),
                        name: "get_time".into(),
                        arguments: String::new(),
                    },
                ]),
                // Two user messages in a row, as OpenAI `tool` messages followed by a user message arrive.
                user(vec![Part::ToolResult {
                    call_id: "call_1".into(),
                    content: "15C".into(),
                    is_error: false,
                }]),
                user(vec![
                    Part::ToolResult {
                        call_id: "call_2".into(),
                        content: String::new(),
                        is_error: true,
                    },
                    Part::Image(Image::Base64 {
                        media_type: "image/jpeg".into(),
                        data: "/9j/4AAQ".into(),
                    }),
                ]),
            ],
            tools: vec![
                Tool {
                    name: "get_weather".into(),
                    description: Some("Current weather".into()),
                    parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
                },
                Tool {
                    name: "get_time".into(),
                    description: None,
                    parameters: Value::Null,
                },
            ],
            tool_choice: Some(ToolChoice::Required),
            response_format: Some(crate::canonical::ResponseFormat::JsonSchema {
                name: "answer".into(),
                schema: json!({"type": "object"}),
                strict: Some(true),
            }),
            temperature: Some(0.5),
            top_p: Some(0.9),
            max_tokens: Some(100),
            stop: vec!["END".into()],
            seed: Some(7),
            user: Some("u-1".into()),
            stream: true,
            include_usage: true,
            cache_points: Vec::new(),
            parallel_tool_calls: None,
            thinking: None,
        };
        let want = json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "system": "Be brief.\n\nUse metric units.\n\nRespond with a single JSON object only, with no other text \
                       and no code fences. The object must conform to this JSON Schema (named \"answer\"):\n\
                       {\"type\":\"object\"}",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "15C"},
                    {"type": "tool_result", "tool_use_id": "call_2", "is_error": true},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
                ]},
            ],
            "tools": [
                {"name": "get_weather", "description": "Current weather",
                 "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
            ],
            "tool_choice": {"type": "any"},
            "stop_sequences": ["END"],
            "temperature": 0.5,
            "top_p": 0.9,
            "metadata": {"user_id": "u-1"},
            "stream": true,
        });
        assert_eq!(body_json(&req, "claude-sonnet-4-5"), want);
    }

    #[test]
    fn request_minimal_uses_defaults() {
        let req = ChatRequest {
            messages: vec![user(vec![text("hi")])],
            response_format: Some(crate::canonical::ResponseFormat::JsonObject),
            tool_choice: Some(ToolChoice::None),
            ..Default::default()
        };
        let want = json!({
            "model": "m",
            "max_tokens": DEFAULT_MAX_TOKENS,
            "system": "Respond with a single JSON object only, with no other text and no code fences.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        });
        assert_eq!(body_json(&req, "m"), want);
    }

    #[test]
    fn tool_choice_mapping() {
        let tools = vec![Tool {
            name: "f".into(),
            description: None,
            parameters: json!({"type": "object"}),
        }];
        for (choice, want) in [
            (ToolChoice::Auto, json!({"type": "auto"})),
            (ToolChoice::None, json!({"type": "none"})),
            (ToolChoice::Required, json!({"type": "any"})),
            (
                ToolChoice::Tool("f".into()),
                json!({"type": "tool", "name": "f"}),
            ),
        ] {
            let req = ChatRequest {
                tools: tools.clone(),
                tool_choice: Some(choice),
                ..Default::default()
            };
            assert_eq!(body_json(&req, "m")["tool_choice"], want);
        }
    }

    #[test]
    fn request_rejects_non_object_tool_arguments() {
        let req = ChatRequest {
            messages: vec![assistant(vec![Part::ToolCall {
                id: "call_9".into(),
                name: "f".into(),
                arguments: "{\"cut off".into(),
            }])],
            ..Default::default()
        };
        let e = request_body(&req, "m").unwrap_err();
        assert_eq!(e.code, crate::error::ErrorCode::UnsupportedInput);
        assert_eq!(
            e.message,
            "messages[0]: the arguments of tool call \"call_9\" are not a JSON object, which Anthropic requires"
        );
    }

    #[test]
    fn parses_text_response() {
        let r = parse_response(TEXT_RESPONSE.as_bytes()).unwrap();
        assert_eq!(
            r,
            ChatResponse {
                id: "msg_01XFDUDYJgAACzvnptvVoYEL".into(),
                model: "claude-sonnet-4-5-20250929".into(),
                content: vec![text("Hello! How can I help you today?")],
                finish: FinishReason::Stop,
                usage: Some(Usage {
                    input_tokens: 12,
                    output_tokens: 11,
                    cached_input_tokens: Some(0),
                    cache_write_tokens: Some(0),
                    reasoning_tokens: None,
                }),
            }
        );
    }

    #[test]
    fn parses_tool_use_response_counting_cached_input() {
        let r = parse_response(TOOL_RESPONSE.as_bytes()).unwrap();
        assert_eq!(
            r,
            ChatResponse {
                id: "msg_01Aq9w938a90dw8q".into(),
                model: "claude-sonnet-4-5-20250929".into(),
                content: vec![
                    text("I'll check the current weather in Paris for you."),
                    Part::ToolCall {
                        id: "toolu_01A09q90qw90lq917835lq9".into(),
                        name: "get_weather".into(),
                        arguments: r#"{"location":"Paris, France","unit":"celsius"}"#.into(),
                    },
                ],
                finish: FinishReason::ToolCalls,
                usage: Some(Usage {
                    input_tokens: 384 + 16 + 2048,
                    output_tokens: 73,
                    cached_input_tokens: Some(2048),
                    cache_write_tokens: Some(16),
                    reasoning_tokens: None,
                }),
            }
        );
    }

    #[test]
    fn maps_stop_reasons() {
        for (reason, want) in [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::StopSequence),
            ("max_tokens", FinishReason::Length),
            ("tool_use", FinishReason::ToolCalls),
            ("refusal", FinishReason::Refusal),
            ("pause_turn", FinishReason::Stop),
        ] {
            let body = json!({"id": "m", "model": "c", "content": [], "stop_reason": reason});
            let r = parse_response(body.to_string().as_bytes()).unwrap();
            assert_eq!(r.finish, want, "{reason}");
        }
    }

    #[test]
    fn response_errors() {
        let overloaded =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let e = parse_response(overloaded).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Upstream);
        assert_eq!(e.message, "Anthropic reported overloaded_error: Overloaded");
        assert_eq!(error_message(overloaded).as_deref(), Some("Overloaded"));
        assert_eq!(error_message(b"<html>"), None);
        assert_eq!(error_message(br#"{"error":"x"}"#), None);
        for body in [&b"not json"[..], b"[]", b"{}", br#"{"content":7}"#] {
            assert_eq!(
                parse_response(body).unwrap_err().kind(),
                crate::error::ErrorKind::Upstream
            );
        }
    }

    fn text_stream_events() -> Vec<StreamEvent> {
        vec![
            StreamEvent::Start {
                id: "msg_01LrT8ZkUmxCjVpkA4ovPmnT".into(),
                model: "claude-sonnet-4-5-20250929".into(),
            },
            // message_start's count of the prompt, said at once.
            StreamEvent::Usage(Usage {
                input_tokens: 25,
                output_tokens: 1,
                cached_input_tokens: Some(0),
                cache_write_tokens: Some(0),
                reasoning_tokens: None,
            }),
            StreamEvent::Text("Hello".into()),
            StreamEvent::Text("! How can I help".into()),
            StreamEvent::Text(" you today? ✨".into()),
            StreamEvent::Finish(FinishReason::Stop),
            StreamEvent::Usage(Usage {
                input_tokens: 25,
                output_tokens: 15,
                cached_input_tokens: Some(0),
                cache_write_tokens: Some(0),
                reasoning_tokens: None,
            }),
        ]
    }

    fn tool_stream_events() -> Vec<StreamEvent> {
        let args = |index: u32, delta: &str| StreamEvent::ToolCallArgs {
            index,
            delta: delta.into(),
        };
        vec![
            StreamEvent::Start {
                id: "msg_014p7gG3wDgGV9EUtLvnow3U".into(),
                model: "claude-sonnet-4-5-20250929".into(),
            },
            StreamEvent::Usage(Usage {
                input_tokens: 572,
                output_tokens: 2,
                cached_input_tokens: Some(100),
                cache_write_tokens: Some(0),
                reasoning_tokens: None,
            }),
            StreamEvent::Text("Okay".into()),
            StreamEvent::Text(", let's check the weather and the time:".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(),
                name: "get_weather".into(),
            },
            args(0, "{\"location\":"),
            args(0, " \"San Francisc"),
            args(0, "o, CA\"}"),
            StreamEvent::ToolCallStart {
                index: 1,
                id: "toolu_01BhqGvYwzZw9bXLx3qpaHQd".into(),
                name: "get_time".into(),
            },
            args(1, "{\"timezone\": \"America/Los_Angeles\"}"),
            StreamEvent::Finish(FinishReason::ToolCalls),
            StreamEvent::Usage(Usage {
                input_tokens: 572,
                output_tokens: 89,
                // From message_start: the cache read is part of the input.
                cached_input_tokens: Some(100),
                cache_write_tokens: Some(0),
                reasoning_tokens: None,
            }),
        ]
    }

    #[test]
    fn decodes_text_stream() {
        assert_eq!(
            decode(&[STREAM_TEXT.as_bytes()]).unwrap(),
            text_stream_events()
        );
    }

    #[test]
    fn decodes_tool_use_stream() {
        assert_eq!(
            decode(&[STREAM_TOOL.as_bytes()]).unwrap(),
            tool_stream_events()
        );
    }

    #[test]
    fn same_events_at_every_split_point() {
        for (fixture, want) in [
            (STREAM_TEXT, text_stream_events()),
            (STREAM_TOOL, tool_stream_events()),
        ] {
            let bytes = fixture.as_bytes();
            for i in 0..=bytes.len() {
                let got = decode(&[&bytes[..i], &bytes[i..]]).unwrap();
                assert_eq!(got, want, "split at {i}");
            }
        }
    }

    #[test]
    fn decodes_crlf_stream() {
        let crlf = STREAM_TEXT.replace('\n', "\r\n");
        assert_eq!(decode(&[crlf.as_bytes()]).unwrap(), text_stream_events());
    }

    #[test]
    fn newer_message_delta_input_usage_wins() {
        let stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1}}}\n\n\
                      event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"input_tokens\":30,\"cache_read_input_tokens\":5,\"output_tokens\":9}}\n\n\
                      event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let events = decode(&[stream.as_bytes()]).unwrap();
        assert_eq!(
            events[1..],
            [
                StreamEvent::Usage(Usage {
                    input_tokens: 1,
                    ..Default::default()
                }),
                StreamEvent::Finish(FinishReason::Length),
                StreamEvent::Usage(Usage {
                    input_tokens: 35,
                    output_tokens: 9,
                    cached_input_tokens: Some(5),
                    cache_write_tokens: None,
                    reasoning_tokens: None,
                })
            ]
        );
    }

    #[test]
    fn stream_failures() {
        let cut = STREAM_TEXT.find("event: message_stop").unwrap();
        let e = decode(&[&STREAM_TEXT.as_bytes()[..cut]]).unwrap_err();
        assert_eq!(e.message, "Anthropic stream ended before completion");
        assert_eq!(e.kind(), crate::error::ErrorKind::Upstream);

        let error = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let e = decode(&[&STREAM_TEXT.as_bytes()[..cut], error.as_bytes()]).unwrap_err();
        assert_eq!(e.message, "Anthropic reported overloaded_error: Overloaded");

        let e = decode(&[b"data: {not json\n\n"]).unwrap_err();
        assert!(
            e.message
                .starts_with("Anthropic sent an unreadable stream event"),
            "{}",
            e.message
        );
        assert!(decode(&[]).is_err());
    }

    #[test]
    fn hostile_input_never_panics() {
        let inputs: [&[u8]; 6] = [
            b"data: {\"type\":\"content_block_delta\",\"index\":-1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":7}}\n\n",
            b"data: {\"type\":\"content_block_start\",\"index\":\"x\",\"content_block\":null}\n\n",
            b"data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":-5}}\n\n",
            b"data: {\"type\":\"message_start\",\"message\":[]}\n\n",
            b"data: 42\n\ndata: null\n\ndata: \"s\"\n\n",
            b"\xff\xfe\x00data:\n\n",
        ];
        for input in inputs {
            let mut d = StreamDecoder::new();
            let _ = d.push(input);
            let _ = d.end();
        }
        for body in inputs {
            let _ = parse_response(body);
        }
    }

    /// Recorded traffic (sources in tests/fixtures/SOURCES.md): Anthropic counts cache reads and writes apart from
    /// `input_tokens`; canonical input is the whole prompt, with the two as its parts.
    #[test]
    fn usage_counts_the_whole_prompt_with_cache_reads_and_writes_apart() {
        let whole = include_str!("../../tests/fixtures/anthropic/usage_prompt_caching.json");
        let u = parse_response(whole.as_bytes()).unwrap().usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (3 + 418 + 1111, 33));
        assert_eq!(
            (u.cached_input_tokens, u.cache_write_tokens),
            (Some(1111), Some(418))
        );

        let stream = include_str!("../../tests/fixtures/anthropic/stream_prompt_caching.sse");
        let usages: Vec<Usage> = decode(&[stream.as_bytes()])
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                StreamEvent::Usage(u) => Some(u),
                _ => None,
            })
            .collect();
        // Said with message_start, then the whole count with message_delta.
        assert_eq!(usages.len(), 2);
        assert_eq!(
            (usages[0].input_tokens, usages[0].output_tokens),
            (2 + 22 + 13993, 5)
        );
        let usage = usages[1];
        assert_eq!(usage.input_tokens, 2 + 22 + 13993);
        assert_eq!(usage.output_tokens, 61);
        assert_eq!(
            (usage.cached_input_tokens, usage.cache_write_tokens),
            (Some(13993), Some(22))
        );
    }

    /// Prompt-caching marks from an OpenAI-dialect client (content parts with `cache_control`, as OpenAI-compatible
    /// gateways accept them) reach Anthropic on the same blocks.
    #[test]
    fn cache_marks_from_the_openai_dialect_reach_anthropic() {
        let chat = crate::inbound::openai::parse_chat(
            br#"{"model":"m","messages":[
              {"role":"system","content":[{"type":"text","text":"long rules","cache_control":{"type":"ephemeral"}}]},
              {"role":"user","content":[{"type":"text","text":"doc","cache_control":{"type":"ephemeral"}},{"type":"text","text":"q"}]}],
              "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}"#,
        )
        .unwrap();
        let req = chat.to_canonical().unwrap();
        let body: Value = serde_json::from_slice(&request_body(&req, "claude").unwrap()).unwrap();
        assert_eq!(
            body["system"],
            json!([{"type": "text", "text": "long rules", "cache_control": {"type": "ephemeral"}}])
        );
        assert_eq!(
            body["messages"][0]["content"],
            json!([
                {"type": "text", "text": "doc", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "q"}
            ])
        );
        assert!(body["tools"][0].get("cache_control").is_none());
        // Unmarked, the system prompt stays one string.
        let plain = crate::inbound::openai::parse_chat(
            br#"{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}]}"#,
        )
        .unwrap()
        .to_canonical()
        .unwrap();
        let body: Value = serde_json::from_slice(&request_body(&plain, "claude").unwrap()).unwrap();
        assert_eq!(body["system"], "s");
    }
}
