//! OpenAI Chat Completions and every host that speaks it (Groq, Mistral, DeepSeek, Together, vLLM, Ollama, ...).

use super::openai_wire::{self as wire, Completion, WireUsage};
use super::Credentials;
use crate::canonical::{
    self, ChatResponse, FinishReason, Image, Part, ResponseFormat, Role, StreamEvent, ToolChoice,
    Usage,
};
use crate::config::Deployment;
use crate::error::{ErrorCode, GatewayError};
use crate::http::{Headers, Method};
use crate::inbound::openai::ChatRequest;
use crate::platform::UpstreamRequest;
use crate::sse::SseParser;
use serde_json::{json, Map, Value};
use std::borrow::Cow;

/// The client's own OpenAI-dialect body, forwarded untranslated to an OpenAI-wire provider with only the model
/// name replaced: nothing is lost, and nothing is spent re-encoding.
pub fn passthrough_request(
    dep: &Deployment,
    chat: &ChatRequest,
    creds: &Credentials,
) -> UpstreamRequest {
    // A stream is always asked for its usage (what it cost is counted); the client's stream leaves it out unless
    // it asked too (see `passthrough::OpenAiCheck`).
    let body = if chat.stream && !chat.include_usage() {
        let mut options = chat
            .body
            .member("stream_options")
            .and_then(|o| {
                serde_json::from_slice::<serde_json::Map<String, Value>>(o.as_bytes()).ok()
            })
            .unwrap_or_default();
        options.insert("include_usage".into(), true.into());
        let model = serde_json::to_string(&dep.model).unwrap_or_default();
        let options = Value::Object(options).to_string();
        chat.body
            .with(&[("model", &model), ("stream_options", &options)])
    } else {
        chat.body.with_model(&dep.model)
    };
    let mut headers = Headers::new();
    headers.insert("content-type", "application/json");
    headers.insert(
        "accept",
        if chat.stream {
            "text/event-stream"
        } else {
            "application/json"
        },
    );
    super::add_key_header(&dep.provider.kind, creds, &mut headers);
    UpstreamRequest {
        method: Method::Post,
        url: super::openai_wire_url(dep, super::CHAT_COMPLETIONS),
        headers,
        body,
        cancel_on_drop: chat.stream,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Conversion from and to the canonical shapes, for clients that do not speak OpenAI's dialect.

/// Chat Completions body for a canonical request. Streams always ask for usage: every dialect reports it.
pub fn request_body(req: &canonical::ChatRequest, model: &str) -> Vec<u8> {
    let mut messages = Vec::new();
    if !req.system.is_empty() {
        messages.push(json!({"role": "system", "content": req.system.join("\n\n")}));
    }
    for m in &req.messages {
        match m.role {
            Role::Assistant => {
                let text: String = m
                    .content
                    .iter()
                    .filter_map(|p| {
                        if let Part::Text(t) = p {
                            Some(t.as_str())
                        } else {
                            None
                        }
                    })
                    .collect();
                let calls: Vec<Value> = m
                    .content
                    .iter()
                    .filter_map(|p| match p {
                        Part::ToolCall { id, name, arguments } => Some(json!({
                            "id": id, "type": "function", "function": {"name": name, "arguments": arguments}
                        })),
                        _ => None,
                    })
                    .collect();
                let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
                if !calls.is_empty() {
                    msg["tool_calls"] = Value::Array(calls);
                }
                messages.push(msg);
            }
            Role::User => {
                // Tool results become `tool` messages, which must directly follow the assistant's calls.
                let mut parts = Vec::new();
                for p in &m.content {
                    match p {
                        Part::ToolResult { call_id, content, .. } => {
                            messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": content}))
                        }
                        Part::Text(t) => parts.push(json!({"type": "text", "text": t})),
                        Part::Image(Image::Url(u)) => parts.push(json!({"type": "image_url", "image_url": {"url": u}})),
                        Part::Image(Image::Base64 { media_type, data }) => parts.push(
                            json!({"type": "image_url", "image_url": {"url": format!("data:{media_type};base64,{data}")}}),
                        ),
                        // Not in a user turn; an assistant's reasoning is not sent back (hosts that return
                        // `reasoning_content` refuse it in the history).
                        Part::ToolCall { .. } | Part::Reasoning { .. } => {}
                    }
                }
                if !parts.is_empty() {
                    let content = match parts.as_slice() {
                        [only] if only["type"] == "text" => only["text"].clone(),
                        _ => Value::Array(parts),
                    };
                    messages.push(json!({"role": "user", "content": content}));
                }
            }
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    if req.stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let mut set = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            body.insert(k.into(), v);
        }
    };
    set("temperature", req.temperature.map(|v| json!(v)));
    set("top_p", req.top_p.map(|v| json!(v)));
    set("max_completion_tokens", req.max_tokens.map(|v| json!(v)));
    set("seed", req.seed.map(|v| json!(v)));
    set("user", req.user.as_ref().map(|v| json!(v)));
    set("stop", (!req.stop.is_empty()).then(|| json!(req.stop)));
    set(
        "reasoning_effort",
        req.thinking
            .and_then(|t| t.effort())
            .map(|e| json!(e.name())),
    );
    // Only with tools: the API refuses the flag without them.
    if !req.tools.is_empty() {
        set(
            "parallel_tool_calls",
            req.parallel_tool_calls.map(|v| json!(v)),
        );
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut f = json!({"name": t.name, "parameters": t.parameters});
                if let Some(d) = &t.description {
                    f["description"] = json!(d);
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        set("tools", Some(Value::Array(tools)));
    }
    set(
        "tool_choice",
        req.tool_choice.as_ref().map(|c| match c {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
        }),
    );
    set(
        "response_format",
        req.response_format.as_ref().map(|f| match f {
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
            } => {
                let mut js = json!({"name": name, "schema": schema});
                if let Some(s) = strict {
                    js["strict"] = json!(s);
                }
                json!({"type": "json_schema", "json_schema": js})
            }
        }),
    );
    serde_json::to_vec(&Value::Object(body)).unwrap_or_default()
}

fn finish_from(s: &str) -> FinishReason {
    match s {
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

fn usage_from(u: &WireUsage) -> Option<Usage> {
    Some(Usage {
        input_tokens: u.prompt_tokens?,
        output_tokens: u.completion_tokens?,
        cached_input_tokens: u.cached_tokens(),
        cache_write_tokens: u.cache_write_tokens(),
        reasoning_tokens: u.reasoning_tokens(),
    })
}

fn malformed(what: &str) -> GatewayError {
    GatewayError::new(
        ErrorCode::UpstreamMalformed,
        format!("provider answered a malformed {what}"),
    )
}

pub fn parse_response(body: &[u8]) -> Result<ChatResponse, GatewayError> {
    let v: Completion =
        serde_json::from_slice(body).map_err(|_| malformed("response (not a chat completion)"))?;
    let choice = v
        .choices
        .as_ref()
        .and_then(|c| c.first())
        .ok_or_else(|| malformed("response (no choices)"))?;
    let msg = choice
        .message
        .as_ref()
        .ok_or_else(|| malformed("response (no message)"))?;
    let mut content = Vec::new();
    if let Some(t) = msg.reasoning_content.as_deref().filter(|t| !t.is_empty()) {
        content.push(Part::Reasoning {
            text: t.to_owned(),
            signature: None,
        });
    }
    if let Some(t) = msg.content.as_deref().filter(|t| !t.is_empty()) {
        content.push(Part::Text(t.to_owned()));
    }
    // A refusal is the answer's text, and says why the answer ended.
    let refusal = msg.refusal.as_deref().filter(|t| !t.is_empty());
    if let Some(t) = refusal {
        content.push(Part::Text(t.to_owned()));
    }
    for c in msg.tool_calls.iter().flatten() {
        let f = c.function.as_ref();
        content.push(Part::ToolCall {
            id: wire::text(&c.id),
            name: f.map(|f| wire::text(&f.name)).unwrap_or_default(),
            arguments: f.map(|f| wire::text(&f.arguments)).unwrap_or_default(),
        });
    }
    Ok(ChatResponse {
        id: wire::text(&v.id),
        model: wire::text(&v.model),
        content,
        finish: match finish_from(choice.finish_reason.as_deref().unwrap_or("stop")) {
            FinishReason::Stop if refusal.is_some() => FinishReason::Refusal,
            f => f,
        },
        usage: v.usage.as_ref().and_then(usage_from),
    })
}

pub fn error_message(body: &[u8]) -> Option<String> {
    let v: wire::ErrorBody = serde_json::from_slice(body).ok()?;
    v.error?.message.map(Cow::into_owned)
}

/// Decodes a Chat Completions SSE stream into canonical events.
#[derive(Default)]
pub struct StreamDecoder {
    sse: SseParser,
    started: bool,
    /// Tool-call indexes whose start has been reported.
    tools_started: Vec<u64>,
    finished: bool,
    done: bool,
    /// The answer is a refusal (`delta.refusal`): it ends as one.
    refused: bool,
    /// The id and model said in the start when the provider's chunks carry none.
    fallback: (String, String),
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// `id` and `model` stand in for an answer whose chunks carry none.
    pub fn with_fallback(id: &str, model: &str) -> Self {
        StreamDecoder {
            fallback: (id.to_owned(), model.to_owned()),
            ..Self::default()
        }
    }

    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamEvent>, GatewayError> {
        let mut out = Vec::new();
        for ev in self.sse.push(bytes)? {
            if self.done {
                break;
            }
            if ev.data == "[DONE]" {
                self.done = true;
                continue;
            }
            let v: Completion = serde_json::from_slice(ev.data.as_bytes())
                .map_err(|_| malformed("stream event"))?;
            if let Some(err) = &v.error {
                let msg = err.message.as_deref().unwrap_or("unknown error");
                return Err(GatewayError::new(
                    err.stream_code(),
                    format!("provider stream failed: {msg}"),
                ));
            }
            self.chunk(&v, &mut out);
        }
        Ok(out)
    }

    fn chunk(&mut self, v: &Completion, out: &mut Vec<StreamEvent>) {
        // Azure opens with a chunk of content-filter results for the prompt, without an id or choices: the
        // answer starts with the first chunk that is the answer's.
        let id = wire::text(&v.id);
        let answers = v.choices.as_ref().is_some_and(|c| !c.is_empty());
        if !self.started && (!id.is_empty() || answers) {
            self.started = true;
            let or = |s: String, fallback: &str| if s.is_empty() { fallback.to_owned() } else { s };
            out.push(StreamEvent::Start {
                id: or(id, &self.fallback.0),
                model: or(wire::text(&v.model), &self.fallback.1),
            });
        }
        if let Some(choice) = v.choices.as_ref().and_then(|c| c.first()) {
            let delta = choice.delta.as_ref();
            if let Some(t) = delta.and_then(|d| d.reasoning_content.as_deref()) {
                if !t.is_empty() {
                    out.push(StreamEvent::Reasoning(t.to_owned()));
                }
            }
            if let Some(t) = delta.and_then(|d| d.content.as_deref()) {
                if !t.is_empty() {
                    out.push(StreamEvent::Text(t.to_owned()));
                }
            }
            if let Some(t) = delta.and_then(|d| d.refusal.as_deref()) {
                if !t.is_empty() {
                    self.refused = true;
                    out.push(StreamEvent::Text(t.to_owned()));
                }
            }
            for c in delta
                .and_then(|d| d.tool_calls.as_ref())
                .into_iter()
                .flatten()
            {
                let index = c.index.unwrap_or(0);
                let idx = u32::try_from(index).unwrap_or(u32::MAX);
                let f = c.function.as_ref();
                if !self.tools_started.contains(&index) {
                    self.tools_started.push(index);
                    out.push(StreamEvent::ToolCallStart {
                        index: idx,
                        id: wire::text(&c.id),
                        name: f.map(|f| wire::text(&f.name)).unwrap_or_default(),
                    });
                }
                if let Some(a) = f.and_then(|f| f.arguments.as_deref()) {
                    if !a.is_empty() {
                        out.push(StreamEvent::ToolCallArgs {
                            index: idx,
                            delta: a.to_owned(),
                        });
                    }
                }
            }
            if let Some(f) = choice.finish_reason.as_deref() {
                if !self.finished {
                    self.finished = true;
                    out.push(StreamEvent::Finish(match finish_from(f) {
                        FinishReason::Stop if self.refused => FinishReason::Refusal,
                        f => f,
                    }));
                }
            }
        }
        if let Some(u) = v.usage.as_ref().and_then(usage_from) {
            out.push(StreamEvent::Usage(u));
        }
    }

    /// The upstream closed: complete only if it said so.
    pub fn saw_done(&self) -> bool {
        self.done
    }

    /// The body ended. OpenAI-wire providers close a whole answer with `data: [DONE]`; without it the answer is
    /// incomplete even after a finish reason (the passthrough path says the same to its clients).
    pub fn end(&mut self) -> Result<Vec<StreamEvent>, GatewayError> {
        if self.done {
            Ok(Vec::new())
        } else {
            Err(GatewayError::new(
                ErrorCode::UpstreamStreamTruncated,
                "provider stream ended before completion",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passthrough_keeps_every_value_as_written_and_replaces_only_the_model() {
        let raw = br#"{ "model" : "alias", "temperature":1.10,"x":2.5E-3, "big":123456789012345678901234567890,
            "s":"\u00e9\/", "o":{"b":1,"a":[1 , 2]}, "messages" : [ {"role":"user","content":"x"} ] }"#;
        let chat = parse_chat(raw).unwrap();
        let out = String::from_utf8(chat.body.with_model("gpt-4o")).unwrap();
        assert_eq!(
            out,
            r#"{"model":"gpt-4o","temperature":1.10,"x":2.5E-3,"big":123456789012345678901234567890,"s":"\u00e9\/","o":{"b":1,"a":[1 , 2]},"messages":[ {"role":"user","content":"x"} ]}"#
        );
        // A member name with escapes goes out decoded (the same name); the model keeps its place.
        let chat = parse_chat(br#"{"me\u0073sages":[{"role":"user"}],"model":"a"}"#).unwrap();
        assert_eq!(
            chat.body.with_model("b"),
            br#"{"messages":[{"role":"user"}],"model":"b"}"#
        );
    }
    use crate::config::{Provider, ProviderKind};
    use crate::inbound::openai::parse_chat;
    use std::rc::Rc;

    fn dep() -> Deployment {
        Deployment {
            provider: Rc::new(Provider {
                name: "p".into(),
                kind: ProviderKind::OpenAi,
                base_url: "https://api.example.test/v1".into(),
                api_key_secret: Some("K".into()),
                region: "global".into(),
            }),
            model: "real-model".into(),
            region: "us-east".into(),
            coords: None,
            tags: Vec::new(),
            weight: 1.0,
            price: None,
        }
    }

    #[test]
    fn builds_request_with_rewritten_model_and_key() {
        let chat = parse_chat(br#"{"model":"alias","stream":true,"messages":[{"role":"user","content":"x"}],"top_p":0.5}"#)
            .unwrap();
        let r = passthrough_request(&dep(), &chat, &Credentials::ApiKey("sk-123".into()));
        assert_eq!(r.url, "https://api.example.test/v1/chat/completions");
        assert_eq!(r.headers.get("authorization"), Some("Bearer sk-123"));
        assert_eq!(r.headers.get("accept"), Some("text/event-stream"));
        let v: Value = serde_json::from_slice::<Value>(&r.body).unwrap();
        assert_eq!(v["model"], "real-model");
        assert_eq!(v["top_p"], 0.5);
        assert_eq!(v["stream"], true);
    }

    const REQUEST: &str = include_str!("../../tests/fixtures/openai/chat_request_tools.json");
    const RESPONSE: &[u8] =
        include_bytes!("../../tests/fixtures/openai/chat_response_tool_call.json");
    const STREAM: &[u8] = include_bytes!("../../tests/fixtures/openai/stream_tool_call.sse");

    #[test]
    fn request_fixture_to_canonical() {
        let c = parse_chat(REQUEST.as_bytes())
            .unwrap()
            .to_canonical()
            .unwrap();
        assert_eq!(c.system, vec!["You are terse."]);
        assert_eq!(
            c.messages.len(),
            3,
            "tool result merged into the following user turn"
        );
        assert_eq!(
            c.messages[0].content[1],
            Part::Image(Image::Base64 {
                media_type: "image/png".into(),
                data: "iVBORw0KGgo=".into()
            })
        );
        assert_eq!(
            c.messages[1].content,
            vec![Part::ToolCall {
                id: "call_1".into(),
                name: "get_weather".into(),
                arguments: r#"{"city":"Paris"}"#.into()
            }]
        );
        assert_eq!(
            c.messages[2].content[0],
            Part::ToolResult {
                call_id: "call_1".into(),
                content: "18C and sunny".into(),
                is_error: false
            }
        );
        assert_eq!(c.tools[0].name, "get_weather");
        assert_eq!(c.tool_choice, Some(ToolChoice::Auto));
        assert!(
            matches!(c.response_format, Some(ResponseFormat::JsonSchema { ref name, strict: Some(true), .. }) if name == "answer")
        );
        assert_eq!(
            (c.temperature, c.top_p, c.max_tokens, c.seed),
            (Some(0.2), Some(0.9), Some(256), Some(42))
        );
        assert_eq!(c.stop, vec!["END"]);
        assert_eq!(c.user.as_deref(), Some("user-123"));
        assert!(c.stream && c.include_usage);
    }

    #[test]
    fn request_survives_openai_canonical_openai() {
        let c = parse_chat(REQUEST.as_bytes())
            .unwrap()
            .to_canonical()
            .unwrap();
        let body = request_body(&c, "fast");
        let again = parse_chat(&body).unwrap().to_canonical().unwrap();
        assert_eq!(again, c);
        let v: Value = serde_json::from_slice::<Value>(&body).unwrap();
        // The tool result is a `tool` message right after the assistant's call, as OpenAI requires.
        assert_eq!(v["messages"][2]["role"], "assistant");
        assert_eq!(v["messages"][3]["role"], "tool");
        assert_eq!(v["messages"][4]["role"], "user");
    }

    #[test]
    fn response_fixture_to_canonical() {
        let r = parse_response(RESPONSE).unwrap();
        assert_eq!(r.id, "chatcmpl-abc123");
        assert_eq!(r.finish, FinishReason::ToolCalls);
        assert_eq!(
            r.usage.unwrap(),
            Usage {
                input_tokens: 82,
                output_tokens: 17,
                ..Default::default()
            }
        );
        assert_eq!(
            r.content,
            vec![Part::ToolCall {
                id: "call_xyz".into(),
                name: "get_weather".into(),
                arguments: r#"{"city":"Paris"}"#.into()
            }]
        );
        assert!(parse_response(b"not json").is_err());
        assert!(parse_response(b"{}").is_err());
    }

    fn decode_all(chunks: &[&[u8]]) -> Result<Vec<StreamEvent>, GatewayError> {
        let mut d = StreamDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(d.push(c)?);
        }
        out.extend(d.end()?);
        Ok(out)
    }

    #[test]
    fn stream_fixture_decodes_at_every_split() {
        let want = vec![
            StreamEvent::Start {
                id: "chatcmpl-s1".into(),
                model: "gpt-4o-mini".into(),
            },
            StreamEvent::Text("Let me check".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_q".into(),
                name: "get_weather".into(),
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                delta: r#"{"city":"#.into(),
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                delta: r#""Paris"}"#.into(),
            },
            StreamEvent::Finish(FinishReason::ToolCalls),
            StreamEvent::Usage(Usage {
                input_tokens: 82,
                output_tokens: 17,
                ..Default::default()
            }),
        ];
        assert_eq!(decode_all(&[STREAM]).unwrap(), want);
        for i in 0..STREAM.len() {
            assert_eq!(
                decode_all(&[&STREAM[..i], &STREAM[i..]]).unwrap(),
                want,
                "split at {i}"
            );
        }
    }

    #[test]
    fn truncated_or_failing_stream_is_an_error() {
        let cut = &STREAM[..STREAM.len() / 2];
        assert_eq!(
            decode_all(&[cut]).unwrap_err().code.as_str(),
            "upstream_stream_truncated"
        );
        let err = b"data: {\"error\":{\"message\":\"overloaded\"}}\n\n";
        assert!(decode_all(&[err])
            .unwrap_err()
            .message
            .contains("overloaded"));
        assert!(decode_all(&[b"data: {not json\n\n"]).is_err());
    }

    #[test]
    fn stream_encoder_round_trips_through_decoder() {
        let events = decode_all(&[STREAM]).unwrap();
        let mut enc = crate::inbound::openai::StreamEncoder::new(1, true);
        let mut out = Vec::new();
        for e in &events {
            enc.encode(e, &mut out);
        }
        enc.finish(&mut out);
        assert_eq!(decode_all(&[&out]).unwrap(), events);
    }

    /// Recorded traffic (sources in tests/fixtures/SOURCES.md): a cache hit with its cached share of the prompt,
    /// and a stream whose usage chunk counts reasoning.
    #[test]
    fn usage_keeps_cached_cache_write_and_reasoning_counts() {
        let whole = include_bytes!("../../tests/fixtures/openai/usage_cached_reasoning.json");
        let u = parse_response(whole).unwrap().usage.unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (4020, 4));
        assert_eq!(u.cached_input_tokens, Some(4012));
        assert_eq!(u.cache_write_tokens, Some(0));
        assert_eq!(u.reasoning_tokens, Some(0));

        let stream = include_bytes!("../../tests/fixtures/openai/stream_usage_details.sse");
        let usage = decode_all(&[stream])
            .unwrap()
            .into_iter()
            .find_map(|e| match e {
                StreamEvent::Usage(u) => Some(u),
                _ => None,
            })
            .unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (12, 100));
        assert_eq!(usage.reasoning_tokens, Some(100));
        assert_eq!(usage.cached_input_tokens, Some(0));
    }
}
