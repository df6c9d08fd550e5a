//! Bedrock Converse / ConverseStream: canonical requests to Converse JSON, and Converse answers (JSON or a binary
//! event stream) back to canonical responses and stream events.
//!
//! Converse has no JSON mode, so `response_format` becomes an instruction in the system prompt (as for Anthropic);
//! `seed` has no equivalent and `user` is not sent (see providers::params).

use super::eventstream::{self, Message as Frame};
use super::wire;
use crate::canonical::{
    CachePoint, ChatRequest, ChatResponse, FinishReason, Image, Message, Part, Role, StreamEvent,
    ToolChoice, Usage,
};
use crate::error::{ErrorCode, GatewayError};
use serde_json::{json, Map, Value};
use std::borrow::Cow;

/// Longest provider message passed on to a client; the rest is noise at best and a leak at worst.
const MAX_UPSTREAM_MESSAGE: usize = 300;

/// `/model/{modelId}/converse` (or `/converse-stream`), the model id encoded as one path segment. Sign the URL
/// built from this path as is: SigV4 encodes it once more in the canonical request.
pub fn path(model_id: &str, stream: bool) -> String {
    let operation = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    format!("/model/{}/{operation}", crate::url::segment(model_id))
}

/// The Converse / ConverseStream JSON body (the model id travels in the URL, see [`path`]). Fails on content
/// Bedrock cannot take: image URLs and image types other than PNG, JPEG, GIF and WebP.
pub fn request_body(req: &ChatRequest) -> Result<Vec<u8>, GatewayError> {
    let mut body = Map::new();
    let messages = req
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| message(m, i, &req.cache_points))
        .collect::<Result<Vec<_>, _>>()?;
    body.insert("messages".into(), Value::Array(messages));
    let mut system = Vec::new();
    for (i, s) in req.system.iter().enumerate() {
        if !s.is_empty() {
            system.push(json!({ "text": s }));
        }
        if req.cache_points.contains(&CachePoint::System(i)) && !system.is_empty() {
            system.push(cache_point());
        }
    }
    if let Some(format) = &req.response_format {
        system.push(json!({ "text": crate::providers::json_instruction(format) }));
    }
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    if let Some(config) = inference_config(req) {
        body.insert("inferenceConfig".into(), config);
    }
    if let Some(config) = tool_config(req) {
        body.insert("toolConfig".into(), config);
    }
    // Bedrock's Anthropic models take Anthropic's own `thinking` object beside the Converse fields; the answer's
    // limit must leave room beyond the thinking budget.
    if let Some(t) = req.thinking {
        let mut max_tokens = req.max_tokens.unwrap_or(0);
        if let Some(budget) = t.budget().filter(|b| *b >= max_tokens) {
            max_tokens = budget + max_tokens.max(1024);
            let config = body.entry("inferenceConfig").or_insert_with(|| json!({}));
            config["maxTokens"] = json!(max_tokens);
        }
        if let Some(thinking) = t.anthropic(max_tokens.max(1025)) {
            body.insert(
                "additionalModelRequestFields".into(),
                json!({ "thinking": thinking }),
            );
        }
    }
    Ok(serde_json::to_vec(&body).unwrap_or_default())
}

/// Bedrock's prompt caching marker: the prompt up to here may be cached (the Converse form of Anthropic's
/// `cache_control`).
fn cache_point() -> Value {
    json!({ "cachePoint": { "type": "default" } })
}

fn message(m: &Message, index: usize, cache_points: &[CachePoint]) -> Result<Value, GatewayError> {
    let role = match m.role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    let mut content = Vec::with_capacity(m.content.len());
    for (j, part) in m.content.iter().enumerate() {
        if let Some(block) = content_block(part, index)? {
            content.push(block);
        }
        let point = CachePoint::Message {
            message: index,
            part: j,
        };
        if cache_points.contains(&point) && !content.is_empty() {
            content.push(cache_point());
        }
    }
    Ok(json!({ "role": role, "content": content }))
}

fn content_block(part: &Part, message: usize) -> Result<Option<Value>, GatewayError> {
    Ok(Some(match part {
        // Bedrock rejects blank text blocks, which other dialects produce freely (e.g. an assistant turn that
        // only calls tools).
        Part::Text(text) if text.is_empty() => return Ok(None),
        Part::Text(text) => json!({ "text": text }),
        // Bedrock's Anthropic models want their signed reasoning back; reasoning without a signature (another
        // provider's) cannot be verified and is left out.
        Part::Reasoning {
            text,
            signature: Some(signature),
        } if !signature.is_empty() => {
            json!({ "reasoningContent": { "reasoningText": { "text": text, "signature": signature } } })
        }
        Part::Reasoning { .. } => return Ok(None),
        Part::Image(image) => image_block(image, message)?,
        Part::ToolCall {
            id,
            name,
            arguments,
        } => {
            let input = crate::providers::tool_arguments_object(arguments, id, message, "Bedrock")?;
            json!({ "toolUse": { "toolUseId": id, "name": name, "input": input } })
        }
        Part::ToolResult {
            call_id,
            content,
            is_error,
        } => {
            let mut result = json!({ "toolUseId": call_id, "content": [{ "text": content }] });
            if *is_error {
                result["status"] = json!("error");
            }
            json!({ "toolResult": result })
        }
    }))
}

fn image_block(image: &Image, message: usize) -> Result<Value, GatewayError> {
    let (media_type, data) = match image {
        Image::Url(_) => {
            return Err(crate::providers::unsupported(format!(
                "messages[{message}]: an image URL; Bedrock accepts only inline (base64) images"
            )))
        }
        Image::Base64 { media_type, data } => (media_type, data),
    };
    let format = match media_type.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => {
            return Err(crate::providers::unsupported(format!(
            "messages[{message}]: an image of type {:?}; Bedrock accepts PNG, JPEG, GIF and WebP",
            truncate(media_type, 64)
        )))
        }
    };
    Ok(json!({ "image": { "format": format, "source": { "bytes": data } } }))
}

fn inference_config(req: &ChatRequest) -> Option<Value> {
    let mut config = Map::new();
    if let Some(max_tokens) = req.max_tokens {
        config.insert("maxTokens".into(), json!(max_tokens));
    }
    if let Some(temperature) = req.temperature {
        config.insert("temperature".into(), json!(temperature));
    }
    if let Some(top_p) = req.top_p {
        config.insert("topP".into(), json!(top_p));
    }
    if !req.stop.is_empty() {
        config.insert("stopSequences".into(), json!(req.stop));
    }
    (!config.is_empty()).then_some(Value::Object(config))
}

/// Converse has no "none" tool choice, so forbidding tools means not offering them. Except when the history holds
/// tool calls or results: Bedrock rejects those without a `toolConfig`, so the tools stay, with the default choice.
fn tool_config(req: &ChatRequest) -> Option<Value> {
    if req.tools.is_empty() {
        return None;
    }
    let choice = match &req.tool_choice {
        None => None,
        Some(ToolChoice::None) if !has_tool_blocks(req) => return None,
        Some(ToolChoice::None) => None,
        Some(ToolChoice::Auto) => Some(json!({ "auto": {} })),
        Some(ToolChoice::Required) => Some(json!({ "any": {} })),
        Some(ToolChoice::Tool(name)) => Some(json!({ "tool": { "name": name } })),
    };
    let mut tools: Vec<Value> = Vec::with_capacity(req.tools.len());
    for (i, tool) in req.tools.iter().enumerate() {
        tools.push({
            let mut spec = Map::new();
            spec.insert("name".into(), json!(tool.name));
            if let Some(description) = &tool.description {
                spec.insert("description".into(), json!(description));
            }
            // Bedrock requires a schema; a tool declared without parameters takes none.
            let schema = match &tool.parameters {
                Value::Null => json!({ "type": "object", "properties": {} }),
                schema => schema.clone(),
            };
            spec.insert("inputSchema".into(), json!({ "json": schema }));
            json!({ "toolSpec": spec })
        });
        if req.cache_points.contains(&CachePoint::Tool(i)) {
            tools.push(cache_point());
        }
    }
    let mut config = json!({ "tools": tools });
    if let Some(choice) = choice {
        config["toolChoice"] = choice;
    }
    Some(config)
}

fn has_tool_blocks(req: &ChatRequest) -> bool {
    req.messages
        .iter()
        .flat_map(|m| &m.content)
        .any(|part| matches!(part, Part::ToolCall { .. } | Part::ToolResult { .. }))
}

/// A Converse answer. Bedrock puts no id in the body: `id` is the caller's (e.g. the `x-amzn-requestid` header),
/// and `model` the model id the request named.
pub fn parse_response(body: &[u8], id: &str, model: &str) -> Result<ChatResponse, GatewayError> {
    let v: wire::Response = serde_json::from_slice(body)
        .map_err(|e| upstream(format!("Bedrock answered invalid JSON: {e}")))?;
    let blocks = v
        .output
        .and_then(|o| o.message)
        .and_then(|m| m.content)
        .ok_or_else(|| upstream("Bedrock answered without an output message"))?;
    let mut content = Vec::with_capacity(blocks.len());
    for block in blocks {
        if let Some(text) = block.text {
            content.push(Part::Text(text.into_owned()));
        } else if let Some(tool_use) = &block.tool_use {
            content.push(tool_call(tool_use)?);
        } else if let Some(r) = block.reasoning_content.and_then(|r| r.reasoning_text) {
            content.push(Part::Reasoning {
                text: r.text.map(Cow::into_owned).unwrap_or_default(),
                signature: r.signature.map(Cow::into_owned),
            });
        }
        // Redacted reasoning, citations and other block kinds have no canonical form.
    }
    Ok(ChatResponse {
        id: id.to_owned(),
        model: model.to_owned(),
        content,
        finish: v
            .stop_reason
            .as_deref()
            .map_or(FinishReason::Stop, finish_reason),
        usage: v.usage.as_ref().map(|u| usage(Some(u))),
    })
}

fn tool_call(tool_use: &wire::ToolUse) -> Result<Part, GatewayError> {
    let (id, name) = tool_id_and_name(tool_use)?;
    Ok(Part::ToolCall {
        id,
        name,
        arguments: tool_use
            .input
            .as_ref()
            .map_or_else(|| "{}".to_owned(), Value::to_string),
    })
}

fn tool_id_and_name(tool_use: &wire::ToolUse) -> Result<(String, String), GatewayError> {
    let field = |value: &Option<Cow<str>>, name: &str| {
        value
            .as_deref()
            .map(str::to_owned)
            .ok_or_else(|| upstream(format!("Bedrock answered a toolUse block without {name}")))
    };
    Ok((
        field(&tool_use.tool_use_id, "toolUseId")?,
        field(&tool_use.name, "name")?,
    ))
}

fn finish_reason(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "stop_sequence" => FinishReason::StopSequence,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "content_filtered" | "guardrail_intervened" => FinishReason::ContentFilter,
        // end_turn, and reasons without a canonical counterpart (malformed_model_output, ...): the answer ended.
        _ => FinishReason::Stop,
    }
}

/// Bedrock counts cache reads and writes apart from `inputTokens` (as Anthropic does); canonical usage counts the
/// whole prompt, as OpenAI's `prompt_tokens` does.
fn usage(usage: Option<&wire::TokenUsage>) -> Usage {
    let read = usage.and_then(|u| u.cache_read_input_tokens);
    let write = usage.and_then(|u| u.cache_write_input_tokens);
    Usage {
        input_tokens: [usage.and_then(|u| u.input_tokens), read, write]
            .into_iter()
            .flatten()
            .fold(0u64, u64::saturating_add),
        output_tokens: usage.and_then(|u| u.output_tokens).unwrap_or(0),
        cached_input_tokens: read,
        cache_write_tokens: write,
        reasoning_tokens: None,
    }
}

/// The message of a Bedrock error body, `{"message": "..."}` (some errors spell it `Message`).
pub fn error_message(body: &[u8]) -> Option<String> {
    let v: wire::ErrorBody = serde_json::from_slice(body).ok()?;
    v.message
        .filter(|m| !m.is_empty())
        .or(v.message_capitalized)
        .filter(|m| !m.is_empty())
        .map(Cow::into_owned)
}

/// Turns ConverseStream's event stream into canonical stream events, chunk by chunk.
#[derive(Debug)]
pub struct StreamDecoder {
    id: String,
    model: String,
    frames: eventstream::Decoder,
    started: bool,
    finished: bool,
    usage_sent: bool,
    /// Content block index of each tool call, in call order: a tool call's canonical index is its position here.
    tool_blocks: Vec<u64>,
}

impl StreamDecoder {
    /// `id` and `model` name the answer in the `Start` event, as for [`parse_response`].
    pub fn new(id: String, model: String) -> Self {
        StreamDecoder {
            id,
            model,
            frames: eventstream::Decoder::new(),
            started: false,
            finished: false,
            usage_sent: false,
            tool_blocks: Vec::new(),
        }
    }

    /// Decodes a chunk of the response body. A Bedrock exception in the stream becomes an error.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamEvent>, GatewayError> {
        let frames = self
            .frames
            .push(bytes)
            .map_err(|e| upstream(format!("Bedrock sent a corrupt stream: {e}")))?;
        let mut events = Vec::new();
        for frame in &frames {
            self.on_frame(frame, &mut events)?;
        }
        Ok(events)
    }

    /// Checks that the stream ended where it may: after `messageStop`, with no partial message left.
    pub fn end(&mut self) -> Result<Vec<StreamEvent>, GatewayError> {
        if !self.frames.is_idle() {
            return Err(GatewayError::new(
                ErrorCode::UpstreamStreamTruncated,
                "Bedrock stream ended in the middle of a message",
            ));
        }
        if !self.finished {
            return Err(GatewayError::new(
                ErrorCode::UpstreamStreamTruncated,
                "Bedrock stream ended before the answer was complete",
            ));
        }
        Ok(Vec::new())
    }

    fn on_frame(
        &mut self,
        frame: &Frame,
        events: &mut Vec<StreamEvent>,
    ) -> Result<(), GatewayError> {
        match frame.header_str(":message-type") {
            Some("event") => {}
            Some("exception") => return Err(stream_exception(frame)),
            Some("error") => return Err(stream_error(frame)),
            other => {
                return Err(upstream(format!(
                    "Bedrock stream sent a message of unknown type {:?}",
                    other.map(|t| truncate(t, 64))
                )))
            }
        }
        match frame.header_str(":event-type").unwrap_or_default() {
            "messageStart" => self.emit_start(events),
            "contentBlockStart" => self.on_block_start(&payload(frame)?, events)?,
            "contentBlockDelta" => self.on_block_delta(&payload(frame)?, events)?,
            "messageStop" => {
                let stop: wire::MessageStop = payload(frame)?;
                let reason = stop
                    .stop_reason
                    .as_deref()
                    .map_or(FinishReason::Stop, finish_reason);
                if !self.finished {
                    self.finished = true;
                    self.emit(events, StreamEvent::Finish(reason));
                }
            }
            "metadata" => {
                let metadata: wire::Metadata = payload(frame)?;
                if let (Some(u), false) = (&metadata.usage, self.usage_sent) {
                    self.usage_sent = true;
                    self.emit(events, StreamEvent::Usage(usage(Some(u))));
                }
            }
            // contentBlockStop carries nothing a canonical stream needs; unknown events are future additions.
            _ => {}
        }
        Ok(())
    }

    fn on_block_start(
        &mut self,
        event: &wire::BlockStart,
        events: &mut Vec<StreamEvent>,
    ) -> Result<(), GatewayError> {
        let Some(tool_use) = event.start.as_ref().and_then(|s| s.tool_use.as_ref()) else {
            return Ok(());
        };
        let (id, name) = tool_id_and_name(tool_use)?;
        let index = u32::try_from(self.tool_blocks.len())
            .map_err(|_| upstream("Bedrock stream started too many tool calls"))?;
        self.tool_blocks
            .push(block_index(event.content_block_index)?);
        self.emit(events, StreamEvent::ToolCallStart { index, id, name });
        Ok(())
    }

    fn on_block_delta(
        &mut self,
        event: &wire::BlockDelta,
        events: &mut Vec<StreamEvent>,
    ) -> Result<(), GatewayError> {
        let Some(delta) = &event.delta else {
            return Ok(());
        };
        if let Some(text) = &delta.text {
            if !text.is_empty() {
                self.emit(events, StreamEvent::Text(text.to_string()));
            }
        } else if let Some(r) = &delta.reasoning_content {
            if let Some(text) = r.text.as_deref().filter(|t| !t.is_empty()) {
                self.emit(events, StreamEvent::Reasoning(text.to_owned()));
            }
            if let Some(s) = r.signature.as_deref().filter(|s| !s.is_empty()) {
                self.emit(events, StreamEvent::ReasoningSignature(s.to_owned()));
            }
        } else if let Some(input) = delta.tool_use.as_ref().and_then(|t| t.input.as_deref()) {
            let block = block_index(event.content_block_index)?;
            // The last start wins should Bedrock ever reuse a block index.
            let index = self
                .tool_blocks
                .iter()
                .rposition(|b| *b == block)
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| {
                    upstream(format!(
                        "Bedrock stream sent tool input for content block {block}, which started no tool call"
                    ))
                })?;
            if !input.is_empty() {
                self.emit(
                    events,
                    StreamEvent::ToolCallArgs {
                        index,
                        delta: input.to_owned(),
                    },
                );
            }
        }
        // Redacted reasoning and citation deltas have no canonical form.
        Ok(())
    }

    /// Emits `event`, preceded by `Start` if this is the first: canonical streams always open with it, even should
    /// Bedrock skip or delay messageStart.
    fn emit(&mut self, events: &mut Vec<StreamEvent>, event: StreamEvent) {
        self.emit_start(events);
        events.push(event);
    }

    fn emit_start(&mut self, events: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            events.push(StreamEvent::Start {
                id: self.id.clone(),
                model: self.model.clone(),
            });
        }
    }
}

fn payload<'a, T: serde::Deserialize<'a>>(frame: &'a Frame) -> Result<T, GatewayError> {
    serde_json::from_slice(&frame.payload).map_err(|e| {
        upstream(format!(
            "Bedrock stream sent a {} event that is not JSON: {e}",
            frame.header_str(":event-type").unwrap_or("?")
        ))
    })
}

fn block_index(index: Option<u64>) -> Result<u64, GatewayError> {
    index.ok_or_else(|| {
        upstream("Bedrock stream sent a content block event without contentBlockIndex")
    })
}

/// A modeled exception (throttlingException, modelStreamErrorException, ...) sent in place of the next event.
fn stream_exception(frame: &Frame) -> GatewayError {
    let kind = frame.header_str(":exception-type").unwrap_or("exception");
    let detail = error_message(&frame.payload).unwrap_or_default();
    let code = match kind {
        "throttlingException" => ErrorCode::UpstreamRateLimited,
        "serviceUnavailableException" => ErrorCode::UpstreamOverloaded,
        _ => ErrorCode::UpstreamStreamError,
    };
    GatewayError::new(
        code,
        format!(
            "Bedrock stream failed: {}: {}",
            truncate(kind, 64),
            truncate(&detail, MAX_UPSTREAM_MESSAGE)
        ),
    )
}

/// A protocol-level error, described by headers rather than the payload.
fn stream_error(frame: &Frame) -> GatewayError {
    let code = frame.header_str(":error-code").unwrap_or("error");
    let detail = frame.header_str(":error-message").unwrap_or_default();
    GatewayError::new(
        ErrorCode::UpstreamStreamError,
        format!(
            "Bedrock stream failed: {}: {}",
            truncate(code, 64),
            truncate(detail, MAX_UPSTREAM_MESSAGE)
        ),
    )
}

/// An answer that is not the API's shape.
fn upstream(message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorCode::UpstreamMalformed, message)
}

/// At most `max` bytes of `s`, cut on a character boundary, with an ellipsis if anything was cut.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{ResponseFormat, Tool};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bedrock");

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{FIXTURES}/{name}");
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn json_fixture(name: &str) -> Value {
        serde_json::from_slice::<Value>(&fixture(name)).unwrap()
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

    fn text(s: &str) -> Part {
        Part::Text(s.into())
    }

    fn call(id: &str, name: &str, arguments: &str) -> Part {
        Part::ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    fn result(call_id: &str, content: &str, is_error: bool) -> Part {
        Part::ToolResult {
            call_id: call_id.into(),
            content: content.into(),
            is_error,
        }
    }

    #[test]
    fn arguments_that_are_not_an_object_are_unsupported_not_replaced() {
        let req = ChatRequest {
            messages: vec![assistant(vec![call("tooluse_2", "f", r#"{"city":"#)])],
            ..Default::default()
        };
        let e = request_body(&req).unwrap_err();
        assert_eq!(e.code, crate::error::ErrorCode::UnsupportedInput);
        assert_eq!(
            e.message,
            "messages[0]: the arguments of tool call \"tooluse_2\" are not a JSON object, which Bedrock requires"
        );
    }

    fn body(req: &ChatRequest) -> Value {
        serde_json::from_slice::<Value>(&request_body(req).unwrap()).unwrap()
    }

    fn full_request() -> ChatRequest {
        ChatRequest {
            model: "claude".into(),
            system: vec![
                "You are a weather assistant.".into(),
                String::new(),
                "Answer briefly.".into(),
            ],
            messages: vec![
                user(vec![
                    text("What's the weather in Paris? Compare with this photo."),
                    Part::Image(Image::Base64 {
                        media_type: "image/jpeg".into(),
                        data: "/9j/4AAQSkZJRg==".into(),
                    }),
                ]),
                assistant(vec![
                    text(""),
                    call("tooluse_1", "get_weather", r#"{"city":"Paris"}"#),
                ]),
                user(vec![result("tooluse_1", "18°C, sunny", false)]),
                assistant(vec![
                    text("Checking the forecast too."),
                    call("tooluse_2", "get_forecast", ""),
                ]),
                user(vec![
                    result("tooluse_2", "invalid arguments", true),
                    text("Never mind the forecast."),
                ]),
            ],
            tools: vec![
                Tool {
                    name: "get_weather".into(),
                    description: Some("Current weather for a city".into()),
                    parameters: json!({
                        "type": "object",
                        "properties": { "city": { "type": "string" } },
                        "required": ["city"]
                    }),
                },
                Tool {
                    name: "get_forecast".into(),
                    description: None,
                    parameters: Value::Null,
                },
            ],
            tool_choice: Some(ToolChoice::Tool("get_weather".into())),
            response_format: Some(ResponseFormat::JsonObject),
            temperature: Some(0.2),
            top_p: Some(0.9),
            max_tokens: Some(512),
            stop: vec!["\n\nHuman:".into()],
            seed: Some(42),
            user: Some("user-1".into()),
            stream: true,
            include_usage: true,
            cache_points: Vec::new(),
            parallel_tool_calls: None,
            thinking: None,
        }
    }

    #[test]
    fn request_body_matches_fixture() {
        let mut req = full_request();
        let format = req.response_format.take();
        assert_eq!(body(&req), json_fixture("converse_request.json"));
        // A response format becomes the system prompt's last instruction.
        req.response_format = format;
        let system = body(&req)["system"].as_array().unwrap().clone();
        assert_eq!(system.len(), 3);
        assert!(system[2]["text"]
            .as_str()
            .unwrap()
            .starts_with("Respond with a single JSON object only"));
    }

    #[test]
    fn minimal_request_omits_optional_sections() {
        let req = ChatRequest {
            messages: vec![user(vec![text("hi")])],
            ..ChatRequest::default()
        };
        assert_eq!(
            body(&req),
            json!({ "messages": [{ "role": "user", "content": [{ "text": "hi" }] }] })
        );
    }

    #[test]
    fn maps_tool_choices() {
        let with_choice = |choice: Option<ToolChoice>, history: bool| {
            let mut req = full_request();
            req.tool_choice = choice;
            if !history {
                req.messages.truncate(1);
            }
            body(&req).get("toolConfig").cloned()
        };
        let choice = |c: Option<ToolChoice>| {
            with_choice(c, true).and_then(|config| config.get("toolChoice").cloned())
        };
        assert_eq!(choice(Some(ToolChoice::Auto)), Some(json!({ "auto": {} })));
        assert_eq!(
            choice(Some(ToolChoice::Required)),
            Some(json!({ "any": {} }))
        );
        assert_eq!(choice(None), None);
        // "none": no tools offered, unless the history needs a toolConfig to be accepted at all.
        assert_eq!(with_choice(Some(ToolChoice::None), false), None);
        let kept = with_choice(Some(ToolChoice::None), true).unwrap();
        assert_eq!(kept["tools"].as_array().map(Vec::len), Some(2));
        assert_eq!(kept.get("toolChoice"), None);
    }

    #[test]
    fn rejects_images_bedrock_cannot_take() {
        let with_image = |image: Image| ChatRequest {
            messages: vec![user(vec![Part::Image(image)])],
            ..ChatRequest::default()
        };
        let e = request_body(&with_image(Image::Url("https://x.test/a.png".into()))).unwrap_err();
        assert_eq!(
            (e.kind(), e.status),
            (crate::error::ErrorKind::InvalidRequest, 400)
        );
        let e = request_body(&with_image(Image::Base64 {
            media_type: "image/tiff".into(),
            data: "AAAA".into(),
        }))
        .unwrap_err();
        assert!(e.message.contains("image/tiff"), "{}", e.message);
        let ok = body(&with_image(Image::Base64 {
            media_type: "IMAGE/PNG".into(),
            data: "AAAA".into(),
        }));
        assert_eq!(
            ok.pointer("/messages/0/content/0/image/format"),
            Some(&json!("png"))
        );
    }

    #[test]
    fn builds_paths() {
        assert_eq!(
            path("anthropic.claude-3-5-sonnet-20240620-v1:0", false),
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
        );
        assert_eq!(
            path("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.x", true),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.x/converse-stream"
        );
    }

    #[test]
    fn parses_text_response_fixture() {
        let r = parse_response(&fixture("converse_response.json"), "req-1", "m").unwrap();
        assert_eq!(
            r,
            ChatResponse {
                id: "req-1".into(),
                model: "m".into(),
                content: vec![text("Hello! How can I help you today?")],
                finish: FinishReason::Stop,
                usage: Some(Usage {
                    input_tokens: 12,
                    output_tokens: 9,
                    ..Default::default()
                }),
            }
        );
    }

    #[test]
    fn parses_tool_response_fixture() {
        let r = parse_response(&fixture("converse_tool_response.json"), "req-2", "m").unwrap();
        assert_eq!(
            r.content,
            vec![
                text("Let me check the weather."),
                call(
                    "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                    "get_weather",
                    r#"{"city":"Paris","unit":"celsius"}"#
                ),
            ]
        );
        assert_eq!(r.finish, FinishReason::ToolCalls);
        assert_eq!(
            r.usage.unwrap(),
            Usage {
                input_tokens: 415,
                output_tokens: 67,
                ..Default::default()
            }
        );
    }

    #[test]
    fn maps_stop_reasons() {
        for (reason, finish) in [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::StopSequence),
            ("max_tokens", FinishReason::Length),
            ("tool_use", FinishReason::ToolCalls),
            ("content_filtered", FinishReason::ContentFilter),
            ("guardrail_intervened", FinishReason::ContentFilter),
            ("something_new", FinishReason::Stop),
        ] {
            let body = json!({
                "output": { "message": { "role": "assistant", "content": [] } },
                "stopReason": reason
            });
            let r = parse_response(body.to_string().as_bytes(), "i", "m").unwrap();
            assert_eq!(r.finish, finish, "{reason}");
        }
    }

    #[test]
    fn rejects_unusable_responses() {
        for body in [
            &b"<html>"[..],
            br#"{"output":{}}"#,
            br#"{"output":{"message":{"content":[{"toolUse":{"name":"x"}}]}}}"#,
        ] {
            let e = parse_response(body, "i", "m").unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::Upstream, "{}", e.message);
        }
    }

    #[test]
    fn extracts_error_messages() {
        assert_eq!(
            error_message(br#"{"message":"Too many requests"}"#).as_deref(),
            Some("Too many requests")
        );
        assert_eq!(
            error_message(br#"{"Message":"User is not authorized"}"#).as_deref(),
            Some("User is not authorized")
        );
        assert_eq!(error_message(br#"{"message":""}"#), None);
        assert_eq!(error_message(b"<html>"), None);
    }

    fn stream_fixture_events() -> Vec<StreamEvent> {
        vec![
            StreamEvent::Start {
                id: "req-3".into(),
                model: "m".into(),
            },
            StreamEvent::Text("Let me check".into()),
            StreamEvent::Text(" the weather.".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q".into(),
                name: "get_weather".into(),
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                delta: r#"{"city": "Par"#.into(),
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                delta: r#"is"}"#.into(),
            },
            StreamEvent::Finish(FinishReason::ToolCalls),
            StreamEvent::Usage(Usage {
                input_tokens: 415,
                output_tokens: 67,
                ..Default::default()
            }),
        ]
    }

    fn decoder() -> StreamDecoder {
        StreamDecoder::new("req-3".into(), "m".into())
    }

    fn decode_stream(chunks: &[&[u8]]) -> Result<Vec<StreamEvent>, GatewayError> {
        let mut d = decoder();
        let mut events = Vec::new();
        for chunk in chunks {
            events.extend(d.push(chunk)?);
        }
        events.extend(d.end()?);
        Ok(events)
    }

    /// An event frame as ConverseStream sends it.
    fn event(event_type: &str, payload: &str) -> Vec<u8> {
        eventstream::encode(
            &[
                (":event-type", event_type),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload.as_bytes(),
        )
    }

    /// The fixture's frames, built by the encoder from the JSON events the fixture was generated from.
    fn encoded_fixture_events() -> Vec<u8> {
        let events = json_fixture("converse_stream_events.json");
        let pair = |e: &Value| {
            (
                e[0].as_str().unwrap().to_owned(),
                e[1].as_str().unwrap().to_owned(),
            )
        };
        let events: Vec<(String, String)> = events.as_array().unwrap().iter().map(pair).collect();
        events.iter().flat_map(|(t, p)| event(t, p)).collect()
    }

    #[test]
    fn decodes_stream_fixture() {
        let bytes = fixture("converse_stream.bin");
        assert_eq!(decode_stream(&[&bytes]).unwrap(), stream_fixture_events());
    }

    #[test]
    fn stream_fixture_matches_its_source_events() {
        // converse_stream.bin was written with zlib's CRC-32, independently of `eventstream::encode`.
        assert_eq!(encoded_fixture_events(), fixture("converse_stream.bin"));
    }

    #[test]
    #[ignore = "rewrites tests/fixtures/bedrock/converse_stream.bin from converse_stream_events.json"]
    fn regenerate_stream_fixture() {
        std::fs::write(
            format!("{FIXTURES}/converse_stream.bin"),
            encoded_fixture_events(),
        )
        .unwrap();
    }

    #[test]
    fn decodes_stream_fixture_split_anywhere() {
        let bytes = fixture("converse_stream.bin");
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(
                decode_stream(&[a, b]).unwrap(),
                stream_fixture_events(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn decodes_text_stream_with_metadata_before_and_multiple_tools() {
        let mut bytes = event("messageStart", r#"{"role":"assistant"}"#);
        bytes.extend(event(
            "contentBlockStart",
            r#"{"contentBlockIndex":0,"start":{"toolUse":{"toolUseId":"a","name":"f"}}}"#,
        ));
        bytes.extend(event(
            "contentBlockStart",
            r#"{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"b","name":"g"}}}"#,
        ));
        bytes.extend(event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{}"}}}"#,
        ));
        bytes.extend(event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"toolUse":{"input":"[]"}}}"#,
        ));
        bytes.extend(event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":2,"delta":{"reasoningContent":{"text":"hm"}}}"#,
        ));
        bytes.extend(event("futureEvent", "not even json"));
        bytes.extend(event(
            "metadata",
            r#"{"usage":{"inputTokens":1,"outputTokens":2}}"#,
        ));
        bytes.extend(event("messageStop", r#"{"stopReason":"max_tokens"}"#));
        bytes.extend(event("messageStop", r#"{"stopReason":"end_turn"}"#));
        let tool_start = |index, id: &str, name: &str| StreamEvent::ToolCallStart {
            index,
            id: id.into(),
            name: name.into(),
        };
        let args = |index, delta: &str| StreamEvent::ToolCallArgs {
            index,
            delta: delta.into(),
        };
        assert_eq!(
            decode_stream(&[&bytes]).unwrap(),
            vec![
                StreamEvent::Start {
                    id: "req-3".into(),
                    model: "m".into()
                },
                tool_start(0, "a", "f"),
                tool_start(1, "b", "g"),
                args(1, "{}"),
                args(0, "[]"),
                StreamEvent::Reasoning("hm".into()),
                StreamEvent::Usage(Usage {
                    input_tokens: 1,
                    output_tokens: 2,
                    ..Default::default()
                }),
                StreamEvent::Finish(FinishReason::Length),
            ]
        );
    }

    #[test]
    fn starts_even_without_message_start() {
        let bytes = event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"hi"}}"#,
        );
        let events = decoder().push(&bytes).unwrap();
        assert_eq!(
            events,
            vec![
                StreamEvent::Start {
                    id: "req-3".into(),
                    model: "m".into()
                },
                StreamEvent::Text("hi".into()),
            ]
        );
    }

    #[test]
    fn stream_exceptions_become_upstream_errors() {
        let mut d = decoder();
        d.push(&event("messageStart", r#"{"role":"assistant"}"#))
            .unwrap();
        let exception = eventstream::encode(
            &[
                (":exception-type", "throttlingException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            br#"{"message":"Too many requests, please wait before trying again."}"#,
        );
        let e = d.push(&exception).unwrap_err();
        // Throttled is throttled, whichever provider kind says it (the same code as an HTTP 429).
        assert_eq!((e.code.as_str(), e.status), ("upstream_rate_limited", 429));
        assert_eq!(
            e.message,
            "Bedrock stream failed: throttlingException: Too many requests, please wait before trying again."
        );

        let error = eventstream::encode(
            &[
                (":message-type", "error"),
                (":error-code", "InternalFailure"),
                (":error-message", "boom"),
            ],
            b"",
        );
        let e = decoder().push(&error).unwrap_err();
        assert_eq!(e.message, "Bedrock stream failed: InternalFailure: boom");
    }

    #[test]
    fn rejects_malformed_streams() {
        let cases: [(Vec<u8>, &str); 4] = [
            (b"\x00\x00\x00\x10garbage!".to_vec(), "corrupt"),
            (event("contentBlockDelta", "{"), "not JSON"),
            (
                event(
                    "contentBlockDelta",
                    r#"{"contentBlockIndex":5,"delta":{"toolUse":{"input":"x"}}}"#,
                ),
                "started no tool call",
            ),
            (
                eventstream::encode(&[(":event-type", "messageStop")], b"{}"),
                "unknown type",
            ),
        ];
        for (bytes, why) in cases {
            let e = decoder().push(&bytes).unwrap_err();
            assert!(e.message.contains(why), "{why}: {}", e.message);
            assert_eq!(e.kind(), crate::error::ErrorKind::Upstream);
        }
    }

    #[test]
    fn end_requires_a_complete_answer() {
        let full = fixture("converse_stream.bin");
        // Cut mid-frame.
        let mut d = decoder();
        d.push(&full[..full.len() - 1]).unwrap();
        assert!(d.end().unwrap_err().message.contains("middle of a message"));
        // Whole frames, but no messageStop.
        let mut d = decoder();
        d.push(&event("messageStart", r#"{"role":"assistant"}"#))
            .unwrap();
        assert!(d
            .end()
            .unwrap_err()
            .message
            .contains("before the answer was complete"));
        // Nothing at all.
        assert!(decoder().end().is_err());
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("hello", 5), "hello");
    }

    /// Recorded traffic (sources in tests/fixtures/SOURCES.md): Bedrock's `inputTokens` leaves out cache reads and
    /// writes (its `totalTokens` is 3 + 1712 + 236 + 121); canonical input is the whole prompt.
    #[test]
    fn usage_counts_the_whole_prompt_with_cache_reads_and_writes_apart() {
        let whole = include_str!("../../../tests/fixtures/bedrock/converse_usage_cache.json");
        let u = parse_response(whole.as_bytes(), "id", "m")
            .unwrap()
            .usage
            .unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (3 + 1712 + 236, 121));
        assert_eq!(
            (u.cached_input_tokens, u.cache_write_tokens),
            (Some(1712), Some(236))
        );
    }

    /// Anthropic's `cache_control` marks become Converse `cachePoint` blocks where they were: after the tool, the
    /// system piece, the message part.
    #[test]
    fn cache_control_becomes_cache_points() {
        let req = crate::inbound::anthropic::parse_request(
            br#"{"model":"m","max_tokens":5,
              "tools":[{"name":"a","input_schema":{"type":"object"}},{"name":"b","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"}}],
              "system":[{"type":"text","text":"long rules","cache_control":{"type":"ephemeral","ttl":"1h"}},{"type":"text","text":"more"}],
              "messages":[{"role":"user","content":[{"type":"text","text":"doc","cache_control":{"type":"ephemeral"}},{"type":"text","text":"question"}]}]}"#,
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&request_body(&req).unwrap()).unwrap();
        let point = json!({"cachePoint": {"type": "default"}});
        assert_eq!(
            body["system"],
            json!([{"text": "long rules"}, point, {"text": "more"}])
        );
        assert_eq!(
            body["messages"][0]["content"],
            json!([{"text": "doc"}, point, {"text": "question"}])
        );
        let tools = body["toolConfig"]["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 3);
        assert_eq!(tools[2], point);
        assert_eq!(tools[1]["toolSpec"]["name"], "b");
        // Without marks, nothing is added.
        let plain = crate::inbound::anthropic::parse_request(
            br#"{"model":"m","max_tokens":5,"system":"s","messages":[{"role":"user","content":"q"}]}"#,
        )
        .unwrap();
        assert!(!String::from_utf8(request_body(&plain).unwrap())
            .unwrap()
            .contains("cachePoint"));
    }
}
