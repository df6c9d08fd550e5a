//! The Anthropic Messages dialect as spoken by clients (`POST /v1/messages`): requests are parsed into canonical
//! ones, canonical answers, stream events and errors are written back in Anthropic's shapes.

use crate::canonical::{ChatResponse, FinishReason, Part, StreamEvent, Usage};
use crate::error::{ErrorCode, ErrorKind, GatewayError};
use crate::pricing::Quote;
use serde_json::{json, Value};

pub use super::anthropic_request::{
    parse_messages, parse_messages_for, parse_request, MessagesRequest, Purpose,
};

/// `model` stands in when the provider named none: the model field is the provider's model that answered, in
/// both dialects (as OpenAI's own API names the snapshot that answered an alias).
pub fn render_response(resp: &ChatResponse, model: &str) -> Vec<u8> {
    let content: Vec<Value> = resp.content.iter().filter_map(content_json).collect();
    let body = json!({
        "id": resp.id,
        "type": "message",
        "role": "assistant",
        "model": if resp.model.is_empty() { model } else { &resp.model },
        "content": content,
        "stop_reason": stop_reason(resp.finish),
        "stop_sequence": Value::Null,
        "usage": usage_json(&resp.usage.unwrap_or_default()),
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Anthropic's usage: `input_tokens` counts the prompt apart from what was read from or written to the cache,
/// which are reported beside it (canonical input counts the whole prompt).
fn usage_json(u: &Usage) -> Value {
    let cached = u.cached_input_tokens.unwrap_or(0);
    let written = u.cache_write_tokens.unwrap_or(0);
    let mut v = json!({
        "input_tokens": u.input_tokens.saturating_sub(cached).saturating_sub(written),
        "output_tokens": u.output_tokens,
    });
    if let Some(n) = u.cache_write_tokens {
        v["cache_creation_input_tokens"] = json!(n);
    }
    if let Some(n) = u.cached_input_tokens {
        v["cache_read_input_tokens"] = json!(n);
    }
    v
}

/// Answers hold reasoning, text and tool calls; anything else is not part of an assistant message.
fn content_json(part: &Part) -> Option<Value> {
    match part {
        Part::Text(text) => Some(json!({ "type": "text", "text": text })),
        // Reasoning from a provider that signs none still reaches the client; its empty signature tells an
        // Anthropic-family provider not to take it back (Meridian leaves such blocks out when it translates).
        Part::Reasoning { text, signature } => Some(json!({
            "type": "thinking",
            "thinking": text,
            "signature": signature.as_deref().unwrap_or_default(),
        })),
        Part::ToolCall {
            id,
            name,
            arguments,
        } => Some(json!({
            "type": "tool_use",
            "id": id,
            "name": name,
            "input": tool_input(arguments),
        })),
        Part::Image(_) | Part::ToolResult { .. } => None,
    }
}

/// `input` must be an object; arguments a model left unparsable (e.g. cut off at the token limit) become `{}`.
fn tool_input(arguments: &str) -> Value {
    match serde_json::from_slice::<Value>(arguments.as_bytes()) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}

fn stop_reason(finish: FinishReason) -> &'static str {
    match finish {
        FinishReason::Stop => "end_turn",
        FinishReason::StopSequence => "stop_sequence",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter | FinishReason::Refusal => "refusal",
    }
}

pub(crate) fn error_type(e: &GatewayError) -> &'static str {
    match e.kind() {
        ErrorKind::InvalidRequest if e.status == 413 => "request_too_large",
        ErrorKind::InvalidRequest | ErrorKind::MethodNotAllowed => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RateLimited => "rate_limit_error",
        // Anthropic SDKs retry overloaded_error, as they retry its 529.
        ErrorKind::Upstream if e.code == ErrorCode::UpstreamOverloaded => "overloaded_error",
        ErrorKind::Upstream | ErrorKind::Timeout | ErrorKind::Internal => "api_error",
    }
}

fn error_value(e: &GatewayError) -> Value {
    json!({
        "type": "error",
        "error": { "type": error_type(e), "message": e.message },
    })
}

/// `{"type":"error","error":{"type","message"}}`, the shape Anthropic SDKs parse.
pub fn error_body(e: &GatewayError) -> Vec<u8> {
    serde_json::to_vec(&error_value(e)).unwrap_or_default()
}

/// An error inside an already-started stream, as the `error` event Anthropic sends and its SDKs raise.
pub fn error_event(e: &GatewayError) -> Vec<u8> {
    let mut out = Vec::new();
    write_event(&mut out, "error", &error_value(e));
    out
}

/// Identifies a message when the provider stream never said which (no `Start` arrived). Messages have no
/// randomness source here, and a stable placeholder is more honest than a fabricated unique-looking id.
const UNKNOWN_MESSAGE_ID: &str = "msg_unknown";

#[derive(Debug, Clone, Copy)]
enum Block {
    Text { index: u32 },
    Tool { index: u32 },
    Thinking { index: u32 },
}

impl Block {
    fn index(self) -> u32 {
        match self {
            Block::Text { index } | Block::Tool { index } | Block::Thinking { index } => index,
        }
    }
}

/// Writes canonical stream events as Anthropic's SSE event sequence: `message_start`, content blocks
/// (`content_block_start` / `_delta` / `_stop`), then `message_delta` and `message_stop`.
#[derive(Debug)]
pub struct StreamEncoder {
    model: String,
    started: bool,
    /// After `finish` or `fail` nothing more may be written.
    done: bool,
    next_block: u32,
    open: Option<Block>,
    /// Tool-call index → content-block index, for routing argument deltas.
    tool_blocks: Vec<(u32, u32)>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    /// The id of a `Start` not written yet: `message_start` carries the usage known when it is written, and
    /// providers that count the prompt up front send that right after the start (clients such as Claude Code read
    /// the input count there).
    pending_start: Option<String>,
    /// The `cost` field of the final usage (none in a stream Meridian does not price).
    quote: Option<Quote>,
}

impl StreamEncoder {
    pub fn quote(&mut self, quote: Quote) {
        self.quote = Some(quote);
    }

    /// `model` stands in until the provider's start names the model that answers.
    pub fn new(model: &str) -> Self {
        StreamEncoder {
            quote: None,
            model: model.to_owned(),
            started: false,
            done: false,
            next_block: 0,
            open: None,
            tool_blocks: Vec::new(),
            finish: None,
            usage: None,
            pending_start: None,
        }
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        match ev {
            StreamEvent::Start { id, model } => {
                if !self.started && self.pending_start.is_none() {
                    self.pending_start = Some(id.clone());
                    if !model.is_empty() {
                        self.model.clone_from(model);
                    }
                }
                return;
            }
            StreamEvent::Usage(usage) => {
                self.usage = Some(*usage);
                return;
            }
            StreamEvent::Text(_)
            | StreamEvent::Reasoning(_)
            | StreamEvent::ReasoningSignature(_)
            | StreamEvent::ToolCallStart { .. }
            | StreamEvent::ToolCallArgs { .. }
            | StreamEvent::Finish(_) => self.flush_start(out),
        }
        match ev {
            StreamEvent::Start { .. } | StreamEvent::Usage(_) => {}
            StreamEvent::Text(text) => self.text(text, out),
            StreamEvent::Reasoning(text) => self.thinking(text, out),
            StreamEvent::ReasoningSignature(signature) => self.signature(signature, out),
            StreamEvent::ToolCallStart { index, id, name } => {
                self.tool_start(*index, id, name, out)
            }
            StreamEvent::ToolCallArgs { index, delta } => self.tool_args(*index, delta, out),
            // Anthropic reports it with the usage in one final message_delta, so it waits for `finish`.
            StreamEvent::Finish(reason) => self.finish = Some(*reason),
        }
    }

    /// Writes the `message_start` a `Start` asked for, with the usage known by now.
    fn flush_start(&mut self, out: &mut Vec<u8>) {
        if let Some(id) = self.pending_start.take() {
            self.start(&id, out);
        }
    }

    /// The provider stream ended normally: closes the open block and the message.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.flush_start(out);
        self.start(UNKNOWN_MESSAGE_ID, out);
        self.close_block(out);
        let reason = self.finish.unwrap_or(if self.tool_blocks.is_empty() {
            FinishReason::Stop
        } else {
            FinishReason::ToolCalls
        });
        let usage = match self.usage {
            Some(u) => {
                let mut v = usage_json(&u);
                if let Some(q) = &self.quote {
                    v["cost"] = q.field(&u.into());
                }
                v
            }
            None => json!({ "output_tokens": 0 }),
        };
        write_event(
            out,
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": { "stop_reason": stop_reason(reason), "stop_sequence": Value::Null },
                "usage": usage,
            }),
        );
        write_event(out, "message_stop", &json!({ "type": "message_stop" }));
        self.done = true;
    }

    /// The stream broke: Anthropic SDKs raise an `error` event as an exception. Nothing follows it.
    pub fn fail(&mut self, e: &GatewayError, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.flush_start(out);
        write_event(out, "error", &error_value(e));
        self.done = true;
    }

    /// Writes `message_start` once; later calls (a second `Start`, or a synthesized one) do nothing.
    fn start(&mut self, id: &str, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let usage = self.usage.map_or_else(
            || json!({ "input_tokens": 0, "output_tokens": 0 }),
            |u| usage_json(&u),
        );
        write_event(
            out,
            "message_start",
            &json!({
                "type": "message_start",
                "message": {
                    "id": id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": Value::Null,
                    "stop_sequence": Value::Null,
                    "usage": usage,
                },
            }),
        );
        write_event(out, "ping", &json!({ "type": "ping" }));
    }

    /// Reasoning goes to a `thinking` block of its own, as Anthropic streams it.
    fn thinking(&mut self, text: &str, out: &mut Vec<u8>) {
        if text.is_empty() {
            return;
        }
        self.start(UNKNOWN_MESSAGE_ID, out);
        let index = self.thinking_block(out);
        write_delta(
            out,
            index,
            json!({ "type": "thinking_delta", "thinking": text }),
        );
    }

    fn signature(&mut self, signature: &str, out: &mut Vec<u8>) {
        self.start(UNKNOWN_MESSAGE_ID, out);
        let index = self.thinking_block(out);
        write_delta(
            out,
            index,
            json!({ "type": "signature_delta", "signature": signature }),
        );
    }

    /// The open thinking block, opened if another (or none) is open.
    fn thinking_block(&mut self, out: &mut Vec<u8>) -> u32 {
        match self.open {
            Some(Block::Thinking { index }) => index,
            _ => {
                let index = self.open_block(
                    out,
                    json!({ "type": "thinking", "thinking": "", "signature": "" }),
                );
                self.open = Some(Block::Thinking { index });
                index
            }
        }
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        if text.is_empty() {
            return;
        }
        self.start(UNKNOWN_MESSAGE_ID, out);
        let index = match self.open {
            Some(Block::Text { index }) => index,
            _ => {
                let index = self.open_block(out, json!({ "type": "text", "text": "" }));
                self.open = Some(Block::Text { index });
                index
            }
        };
        write_delta(out, index, json!({ "type": "text_delta", "text": text }));
    }

    fn tool_start(&mut self, tool: u32, id: &str, name: &str, out: &mut Vec<u8>) {
        self.start(UNKNOWN_MESSAGE_ID, out);
        let index = self.open_block(
            out,
            json!({ "type": "tool_use", "id": id, "name": name, "input": {} }),
        );
        self.open = Some(Block::Tool { index });
        self.tool_blocks.push((tool, index));
    }

    /// Deltas go to the call's own block even if a later block has since opened (canonical streams may
    /// interleave calls): Anthropic SDKs accumulate deltas by block index.
    fn tool_args(&mut self, tool: u32, delta: &str, out: &mut Vec<u8>) {
        // Arguments for a call that never started cannot be attributed to a named tool: dropped.
        let Some(&(_, index)) = self.tool_blocks.iter().find(|(t, _)| *t == tool) else {
            return;
        };
        if delta.is_empty() {
            return;
        }
        write_delta(
            out,
            index,
            json!({ "type": "input_json_delta", "partial_json": delta }),
        );
    }

    /// Closes the open block, if any, and starts a new one at the next index.
    fn open_block(&mut self, out: &mut Vec<u8>, block: Value) -> u32 {
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        write_event(
            out,
            "content_block_start",
            &json!({ "type": "content_block_start", "index": index, "content_block": block }),
        );
        index
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if let Some(block) = self.open.take() {
            write_event(
                out,
                "content_block_stop",
                &json!({ "type": "content_block_stop", "index": block.index() }),
            );
        }
    }
}

/// One delta to the content block at `index`: text, tool input, thinking or its signature.
fn write_delta(out: &mut Vec<u8>, index: u32, delta: Value) {
    write_event(
        out,
        "content_block_delta",
        &json!({ "type": "content_block_delta", "index": index, "delta": delta }),
    );
}

fn write_event(out: &mut Vec<u8>, event: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(&serde_json::to_vec(data).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{ChatRequest, Image, Message, Role, Tool, ToolChoice};
    use crate::providers::anthropic as provider;

    const REQUEST: &str = include_str!("../../tests/fixtures/anthropic/messages_request.json");

    fn parse_err(body: &[u8]) -> String {
        let e = parse_request(body).unwrap_err();
        assert_eq!(e.status, 400, "{}", String::from_utf8_lossy(body));
        e.message
    }

    #[test]
    fn parses_fixture_request() {
        let r = parse_request(REQUEST.as_bytes()).unwrap();
        let want = ChatRequest {
            model: "claude-sonnet-4-5".into(),
            system: vec![
                "You are a concise weather assistant.".into(),
                "Always answer in metric units.".into(),
            ],
            messages: vec![
                Message {
                    role: Role::User,
                    content: vec![
                        Part::Text("What is the weather where this photo was taken?".into()),
                        Part::Image(Image::Base64 {
                            media_type: "image/png".into(),
                            data: "iVBORw0KGgoAAAANSUhEUg==".into(),
                        }),
                    ],
                },
                Message {
                    role: Role::Assistant,
                    content: vec![
                        Part::Text("That looks like Paris. Let me check.".into()),
                        Part::ToolCall {
                            id: "toolu_01A09q90qw90lq917835lq9".into(),
                            name: "get_weather".into(),
                            arguments: r#"{"location":"Paris, France","unit":"celsius"}"#.into(),
                        },
                    ],
                },
                Message {
                    role: Role::User,
                    content: vec![
                        Part::ToolResult {
                            call_id: "toolu_01A09q90qw90lq917835lq9".into(),
                            content: "15 degrees\nlight rain".into(),
                            is_error: false,
                        },
                        Part::Text("And here?".into()),
                        Part::Image(Image::Url("https://example.com/images/lyon.jpg".into())),
                    ],
                },
                Message {
                    role: Role::Assistant,
                    content: vec![Part::ToolCall {
                        id: "toolu_01B".into(),
                        name: "get_weather".into(),
                        arguments: r#"{"location":"Lyon, France"}"#.into(),
                    }],
                },
                Message {
                    role: Role::User,
                    content: vec![Part::ToolResult {
                        call_id: "toolu_01B".into(),
                        content: "service unavailable".into(),
                        is_error: true,
                    }],
                },
            ],
            tools: vec![Tool {
                name: "get_weather".into(),
                description: Some("Get the current weather in a given location".into()),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "location": {"type": "string", "description": "The city and country, e.g. Paris, France"},
                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
                    },
                    "required": ["location"]
                }),
            }],
            tool_choice: Some(ToolChoice::Auto),
            response_format: None,
            temperature: Some(0.2),
            top_p: Some(0.9),
            max_tokens: Some(1024),
            stop: vec!["END".into()],
            seed: None,
            user: Some("user-1234".into()),
            stream: true,
            include_usage: true,
            cache_points: vec![crate::canonical::CachePoint::System(0)],
            parallel_tool_calls: Some(false),
            thinking: None,
        };
        assert_eq!(r, want);
    }

    /// Anthropic dialect in, Anthropic provider out: everything canonical carries survives the trip.
    #[test]
    fn fixture_request_passes_through_to_anthropic() {
        let r = parse_request(REQUEST.as_bytes()).unwrap();
        let body: Value = serde_json::from_slice::<Value>(
            &provider::request_body(&r, "claude-sonnet-4-5-20250929").unwrap(),
        )
        .unwrap();
        let mut want: Value = serde_json::from_slice::<Value>(REQUEST.as_bytes()).unwrap();
        // What canonical requests do not carry: provider-specific extras (the system prompt keeps its blocks
        // because one is marked for caching).
        want["model"] = "claude-sonnet-4-5-20250929".into();
        want.as_object_mut().unwrap().remove("top_k");
        want["messages"][2]["content"][0]["content"] = "15 degrees\nlight rain".into();
        assert_eq!(body, want);
    }

    #[test]
    fn minimal_request_and_variants() {
        let r = parse_request(
            br#"{"model":"m","max_tokens":5,"system":"be nice","messages":[{"role":"user","content":"hi"}],
                "temperature":null,"tool_choice":{"type":"tool","name":"f"},"metadata":{}}"#,
        )
        .unwrap();
        assert_eq!(r.system, vec!["be nice".to_owned()]);
        assert_eq!(r.messages[0].content, vec![Part::Text("hi".into())]);
        assert_eq!(r.tool_choice, Some(ToolChoice::Tool("f".into())));
        assert_eq!((r.temperature, r.user, r.stream), (None, None, false));
        assert!(r.include_usage);
        for (choice, want) in [("any", ToolChoice::Required), ("none", ToolChoice::None)] {
            let body = format!(
                r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":"x"}}],"tool_choice":{{"type":"{choice}"}}}}"#
            );
            assert_eq!(
                parse_request(body.as_bytes()).unwrap().tool_choice,
                Some(want)
            );
        }
    }

    #[test]
    fn rejects_bad_input_with_clear_messages() {
        for (body, want) in [
            (&b"{"[..], "request body is not valid JSON"),
            (b"[1]", "request body must be a JSON object"),
            (b"\xff\xfe", "request body is not valid JSON"),
        ] {
            let got = parse_err(body);
            assert!(got.starts_with(want), "{got}");
        }

        // Each case patches one field of a valid request (`null` removes it, as absent and null are alike).
        let user = |content: Value| json!([{"role": "user", "content": content}]);
        let cases = [
            (json!({"model": null}), "model: field required"),
            (json!({"model": ""}), "model: must be a non-empty string"),
            (json!({"max_tokens": null}), "max_tokens: field required"),
            (
                json!({"max_tokens": 0}),
                "max_tokens: must be a positive integer",
            ),
            (
                json!({"max_tokens": 1.5}),
                "max_tokens: must be a positive integer",
            ),
            (
                json!({"max_tokens": "9"}),
                "max_tokens: must be a positive integer",
            ),
            (
                json!({"max_tokens": 1u64 << 40}),
                "max_tokens: must be a positive integer",
            ),
            (json!({"messages": null}), "messages: field required"),
            (json!({"messages": []}), "messages: must not be empty"),
            (
                json!({"messages": [{"role": "system", "content": "x"}]}),
                "messages[0].role: unknown role \"system\"",
            ),
            (
                json!({"messages": [{"role": "user"}]}),
                "messages[0].content: field required",
            ),
            (
                json!({"messages": user(json!([{"text": "x"}]))}),
                "messages[0].content[0].type: field required",
            ),
            (
                json!({"messages": user(json!([{"type": "text", "text": 3}]))}),
                "messages[0].content[0].text: must be a string",
            ),
            (
                json!({"messages": user(json!([{"type": "tool_use", "id": "a", "name": "f", "input": {}}]))}),
                "messages[0].content[0].type: \"tool_use\" blocks are not allowed in user messages",
            ),
            (
                json!({"messages": [{"role": "assistant", "content": [
                    {"type": "tool_use", "id": "a", "name": "f", "input": []}]}]}),
                "messages[0].content[0].input: must be an object",
            ),
            (
                json!({"messages": user(json!([{"type": "tool_result", "content": "x"}]))}),
                "messages[0].content[0].tool_use_id: field required",
            ),
            (
                json!({"system": [{"type": "image"}]}),
                "system[0].type: unsupported block type",
            ),
            (
                json!({"system": 5}),
                "system: must be a string or an array of text blocks",
            ),
            (
                json!({"tools": [{"name": "f"}]}),
                "tools[0].input_schema: field required",
            ),
            (
                json!({"tool_choice": {"type": "tool"}}),
                "tool_choice.name: field required",
            ),
            (
                json!({"tool_choice": {"type": "maybe"}}),
                "tool_choice.type: unknown tool choice \"maybe\"",
            ),
            (
                json!({"tool_choice": "auto"}),
                "tool_choice: must be an object",
            ),
            (
                json!({"stop_sequences": ["a", 1]}),
                "stop_sequences[1]: must be a string",
            ),
            (
                json!({"temperature": "hot"}),
                "temperature: must be a number",
            ),
            (json!({"stream": "yes"}), "stream: must be a boolean"),
            (
                json!({"metadata": {"user_id": 5}}),
                "metadata.user_id: must be a string",
            ),
        ];
        for (patch, want) in cases {
            let mut body = json!({"model": "m", "max_tokens": 5, "messages": user(json!("hi"))});
            for (k, v) in patch.as_object().unwrap() {
                body[k] = v.clone();
            }
            let got = parse_err(body.to_string().as_bytes());
            assert!(got.starts_with(want), "{body}\n want: {want}\n  got: {got}");
        }
    }

    #[test]
    fn what_only_anthropic_can_take_is_kept_for_it_and_unsupported_elsewhere() {
        let user = |content: Value| json!([{"role": "user", "content": content}]);
        for (patch, want) in [
            (
                json!({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": [
                    {"type": "redacted_thinking", "data": "EmwKAhgB"}, {"type": "text", "text": "b"}]}]}),
                "messages[1].content[0].type: block type \"redacted_thinking\" can only be sent to an Anthropic provider",
            ),
            (
                json!({"messages": user(json!([{"type": "image", "source": {"type": "file", "file_id": "f"}}]))}),
                "messages[0].content[0].source.type: image source type \"file\" can only be sent to an Anthropic provider",
            ),
            (
                json!({"messages": user(json!([{"type": "tool_result", "tool_use_id": "a",
                                                  "content": [{"type": "image"}]}]))}),
                "messages[0].content[0].content[0].type: block type \"image\" can only be sent to an Anthropic provider",
            ),
            (
                json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
                "tools[0].type: tool type \"web_search_20250305\" can only be sent to an Anthropic provider",
            ),
        ] {
            let mut body = json!({"model": "m", "max_tokens": 7, "stream": true, "messages": user(json!("hi"))});
            for (k, v) in patch.as_object().unwrap() {
                body[k] = v.clone();
            }
            let raw = body.to_string();
            let m = parse_messages(raw.as_bytes(), Some("interleaved-thinking-2025-05-14")).unwrap();
            let e = m.canonical.unwrap_err();
            assert_eq!(e.code, ErrorCode::UnsupportedInput);
            assert_eq!(e.message, want);
            assert_eq!((m.model.as_str(), m.stream, m.max_tokens), ("m", true, 7));
            assert_eq!(m.beta.as_deref(), Some("interleaved-thinking-2025-05-14"));
            assert_eq!(m.body.bytes(), raw.as_bytes());
        }
        // Invalid input is still refused at once; so is a beta header that is not a list of names.
        assert!(parse_messages(
            br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
            None
        )
        .is_err());
        let e = parse_messages(
            br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
            Some("a\"b"),
        )
        .unwrap_err();
        assert!(e.message.starts_with("anthropic-beta:"), "{}", e.message);
    }

    #[test]
    fn renders_response() {
        let resp = ChatResponse {
            id: "chatcmpl-123".into(),
            model: "gpt-4o-2024-08-06".into(),
            content: vec![
                Part::Text("Checking.".into()),
                Part::ToolCall {
                    id: "call_1".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Paris"}"#.into(),
                },
                Part::ToolCall {
                    id: "call_2".into(),
                    name: "get_time".into(),
                    arguments: r#"{"tz":"Eur"#.into(),
                },
            ],
            finish: FinishReason::ToolCalls,
            usage: Some(Usage {
                input_tokens: 10,
                output_tokens: 20,
                ..Default::default()
            }),
        };
        let v: Value =
            serde_json::from_slice::<Value>(&render_response(&resp, "my-alias")).unwrap();
        assert_eq!(
            v,
            json!({
                "id": "chatcmpl-123",
                "type": "message",
                "role": "assistant",
                "model": "gpt-4o-2024-08-06",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
                ],
                "stop_reason": "tool_use",
                "stop_sequence": null,
                "usage": {"input_tokens": 10, "output_tokens": 20},
            })
        );
        // The model that answered; the deployment's name only when the provider said none.
        let unnamed = ChatResponse {
            model: String::new(),
            ..resp.clone()
        };
        let v: Value = serde_json::from_slice(&render_response(&unnamed, "dep-model")).unwrap();
        assert_eq!(v["model"], "dep-model");
        for (finish, want) in [
            (FinishReason::Stop, "end_turn"),
            (FinishReason::StopSequence, "stop_sequence"),
            (FinishReason::Length, "max_tokens"),
            (FinishReason::ContentFilter, "refusal"),
        ] {
            let r = ChatResponse {
                finish,
                ..resp.clone()
            };
            let v: Value = serde_json::from_slice::<Value>(&render_response(&r, "m")).unwrap();
            assert_eq!(v["stop_reason"], want);
        }
    }

    #[test]
    fn provider_response_renders_back_to_the_same_shape() {
        let fixture = include_str!("../../tests/fixtures/anthropic/tool_use_response.json");
        let resp = provider::parse_response(fixture.as_bytes()).unwrap();
        let got: Value =
            serde_json::from_slice::<Value>(&render_response(&resp, "claude-sonnet-4-5-20250929"))
                .unwrap();
        let mut want: Value = serde_json::from_slice::<Value>(fixture.as_bytes()).unwrap();
        // The counts come back in Anthropic's own terms; `service_tier` is not carried.
        want["usage"] = json!({
            "input_tokens": 384,
            "cache_creation_input_tokens": 16,
            "cache_read_input_tokens": 2048,
            "output_tokens": 73,
        });
        assert_eq!(got, want);
    }

    #[test]
    fn error_bodies() {
        let cases = [
            (GatewayError::invalid("bad"), "invalid_request_error"),
            (
                GatewayError::new(ErrorCode::RequestTooLarge, "big"),
                "request_too_large",
            ),
            (
                GatewayError::new(ErrorCode::InvalidApiKey, "x"),
                "authentication_error",
            ),
            (
                GatewayError::new(ErrorCode::ModelNotAllowed, "x"),
                "permission_error",
            ),
            (
                GatewayError::new(ErrorCode::ModelNotFound, "x"),
                "not_found_error",
            ),
            (
                GatewayError::new(ErrorCode::MethodNotAllowed, "x"),
                "invalid_request_error",
            ),
            (
                GatewayError::new(ErrorCode::RateLimitExceeded, "x"),
                "rate_limit_error",
            ),
            (
                GatewayError::new(ErrorCode::UpstreamError, "x"),
                "api_error",
            ),
            (
                GatewayError::new(ErrorCode::UpstreamOverloaded, "x").with_status(529),
                "overloaded_error",
            ),
            (
                GatewayError::new(ErrorCode::UpstreamOverloaded, "x"),
                "overloaded_error",
            ),
            (
                GatewayError::new(ErrorCode::UpstreamTimeout, "x"),
                "api_error",
            ),
            (
                GatewayError::new(ErrorCode::InternalError, "x"),
                "api_error",
            ),
        ];
        for (e, want) in cases {
            let v: Value = serde_json::from_slice::<Value>(&error_body(&e)).unwrap();
            assert_eq!(
                v,
                json!({"type": "error", "error": {"type": want, "message": e.message}})
            );
        }
    }

    /// Parses encoder output into (event name, data) pairs, checking the SSE framing on the way.
    fn sse_events(bytes: &[u8]) -> Vec<(String, Value)> {
        let text = std::str::from_utf8(bytes).unwrap();
        assert!(text.ends_with("\n\n"), "{text:?}");
        text.trim_end()
            .split("\n\n")
            .map(|frame| {
                let (event, data) = frame.split_once('\n').unwrap();
                let event = event.strip_prefix("event: ").unwrap().to_owned();
                let data: Value =
                    serde_json::from_str::<Value>(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], event.as_str());
                (event, data)
            })
            .collect()
    }

    fn text_and_tool_events() -> Vec<StreamEvent> {
        vec![
            StreamEvent::Start {
                id: "msg_1".into(),
                model: "alias".into(),
            },
            StreamEvent::Text("Let me ".into()),
            StreamEvent::Text("check.".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "toolu_1".into(),
                name: "get_weather".into(),
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                delta: "{\"city\":".into(),
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                delta: "\"Paris\"}".into(),
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "toolu_2".into(),
                name: "get_time".into(),
            },
            StreamEvent::ToolCallArgs {
                index: 1,
                delta: "{}".into(),
            },
            StreamEvent::Finish(FinishReason::ToolCalls),
            StreamEvent::Usage(Usage {
                input_tokens: 11,
                output_tokens: 22,
                ..Default::default()
            }),
        ]
    }

    fn encode_all(model: &str, events: &[StreamEvent]) -> Vec<u8> {
        let mut enc = StreamEncoder::new(model);
        let mut out = Vec::new();
        for ev in events {
            enc.encode(ev, &mut out);
        }
        enc.finish(&mut out);
        out
    }

    #[test]
    fn encodes_full_event_sequence() {
        let out = encode_all("alias", &text_and_tool_events());
        let events = sse_events(&out);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        assert_eq!(
            events[0].1,
            json!({"type": "message_start", "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "model": "alias", "content": [],
                "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}}})
        );
        assert_eq!(
            events[2].1,
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        );
        assert_eq!(
            events[6].1,
            json!({"type": "content_block_start", "index": 1,
                   "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}})
        );
        assert_eq!(
            events[7].1,
            json!({"type": "content_block_delta", "index": 1,
                   "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}})
        );
        assert_eq!(
            events[12].1,
            json!({"type": "content_block_stop", "index": 2})
        );
        assert_eq!(
            events[13].1,
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                   "usage": {"input_tokens": 11, "output_tokens": 22}})
        );
    }

    #[test]
    fn encoder_output_decodes_to_the_same_events() {
        let events = text_and_tool_events();
        let out = encode_all("alias", &events);
        let mut dec = provider::StreamDecoder::new();
        let mut got = dec.push(&out).unwrap();
        got.extend(dec.end().unwrap());
        assert_eq!(got, events);

        // Usage before Finish is legal canonically; Anthropic reports both at once.
        let mut swapped = events.clone();
        let n = swapped.len();
        swapped.swap(n - 1, n - 2);
        let out = encode_all("alias", &swapped);
        let mut dec = provider::StreamDecoder::new();
        let mut got = dec.push(&out).unwrap();
        got.extend(dec.end().unwrap());
        assert_eq!(got, events);
    }

    #[test]
    fn decoded_fixture_reencodes_to_the_same_events() {
        let fixture = include_str!("../../tests/fixtures/anthropic/stream_tool_use.sse");
        let mut dec = provider::StreamDecoder::new();
        let mut events = dec.push(fixture.as_bytes()).unwrap();
        events.extend(dec.end().unwrap());
        let out = encode_all("claude-sonnet-4-5-20250929", &events);
        let mut dec = provider::StreamDecoder::new();
        let mut again = dec.push(&out).unwrap();
        again.extend(dec.end().unwrap());
        assert_eq!(again, events);
    }

    #[test]
    fn message_start_carries_the_count_of_the_prompt_said_with_the_start() {
        let out = encode_all(
            "alias",
            &[
                StreamEvent::Start {
                    id: "msg_1".into(),
                    model: "m".into(),
                },
                StreamEvent::Usage(Usage {
                    input_tokens: 25,
                    output_tokens: 1,
                    cached_input_tokens: Some(10),
                    cache_write_tokens: Some(0),
                    reasoning_tokens: None,
                }),
                StreamEvent::Text("hi".into()),
            ],
        );
        let events = sse_events(&out);
        assert_eq!(events[0].0, "message_start");
        assert_eq!(events[0].1["message"]["id"], "msg_1");
        assert_eq!(
            events[0].1["message"]["usage"],
            json!({"input_tokens": 15, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 10})
        );
    }

    #[test]
    fn encoder_synthesizes_start_and_defaults() {
        let out = encode_all("alias", &[StreamEvent::Text("hi".into())]);
        let events = sse_events(&out);
        assert_eq!(events[0].0, "message_start");
        assert_eq!(events[0].1["message"]["id"], UNKNOWN_MESSAGE_ID);
        assert_eq!(events[0].1["message"]["model"], "alias");
        let delta = &events[events.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], "end_turn");
        assert_eq!(delta["usage"], json!({"output_tokens": 0}));

        // Nothing at all: still a well-formed, empty message.
        let names: Vec<String> = sse_events(&encode_all("alias", &[]))
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            ["message_start", "ping", "message_delta", "message_stop"]
        );
    }

    #[test]
    fn encoder_ignores_what_it_cannot_place() {
        let out = encode_all(
            "alias",
            &[
                StreamEvent::Start {
                    id: "msg_1".into(),
                    model: "x".into(),
                },
                StreamEvent::Text(String::new()),
                StreamEvent::ToolCallArgs {
                    index: 3,
                    delta: "{}".into(),
                },
                StreamEvent::Start {
                    id: "msg_2".into(),
                    model: "x".into(),
                },
            ],
        );
        let names: Vec<String> = sse_events(&out).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["message_start", "ping", "message_delta", "message_stop"]
        );
    }

    #[test]
    fn fail_ends_the_stream_with_an_error_event() {
        let mut enc = StreamEncoder::new("alias");
        let mut out = Vec::new();
        enc.encode(&StreamEvent::Text("partial".into()), &mut out);
        let before = out.len();
        let e = GatewayError::new(ErrorCode::UpstreamOverloaded, "provider broke");
        enc.fail(&e, &mut out);
        assert_eq!(
            sse_events(&out[before..]),
            [(
                "error".to_owned(),
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "provider broke"}})
            )]
        );
        let after = out.len();
        enc.encode(&StreamEvent::Text("more".into()), &mut out);
        enc.finish(&mut out);
        enc.fail(&e, &mut out);
        assert_eq!(out.len(), after);

        // A provider decoder reading this stream surfaces the error.
        let mut dec = provider::StreamDecoder::new();
        let err = dec.push(&out).unwrap_err();
        assert_eq!(
            err.message,
            "Anthropic reported overloaded_error: provider broke"
        );
    }
}
