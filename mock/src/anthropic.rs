//! Anthropic Messages dialect: `POST …/messages`.

use bytes::Bytes;
use hyper::header::CACHE_CONTROL;
use hyper::{Method, Response, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::body::MockBody;
use crate::content::{reasoning, seed_hex, word_count, Reply};
use crate::dialect::RequestCtx;
use crate::openai::last_user_text;
use crate::prompt_cache::Walk;
use crate::respond;
use crate::stream::{self, sse, Events, Pacing, EVENT_STREAM, NO_CACHE};

pub(crate) const TOOL_USE_ID: &str = "toolu_mock_0";
const SEP: &[u8] = b"\n\n";
const MALFORMED_EVENT: &[u8] = b"event: message_start\ndata: {not json\n\n";

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

fn error_json(kind: &str, message: &str) -> Bytes {
    let v = ErrorEnvelope {
        kind: "error",
        error: ErrorBody { kind, message },
    };
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

fn error_response(status: StatusCode, kind: &str, message: &str) -> Response<MockBody> {
    respond::with_body(status, respond::JSON, error_json(kind, message))
}

fn bad_request(message: &str) -> Response<MockBody> {
    error_response(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

/// Error `type` used for a fault status.
pub(crate) fn fault_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

pub(crate) fn fault_response(status: u16, error_body: Option<Bytes>) -> Response<MockBody> {
    let body = error_body
        .unwrap_or_else(|| error_json(fault_type(status), &format!("mock fault: status {status}")));
    respond::with_body(respond::status_code(status), respond::JSON, body)
}

pub(crate) async fn handle(ctx: &RequestCtx<'_>) -> Response<MockBody> {
    if ctx.method != Method::POST {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            &format!("Method {} not allowed for {}", ctx.method, ctx.path),
        );
    }
    if ctx.header("anthropic-version").is_none() {
        return bad_request("anthropic-version: header is required");
    }
    let request: Value = match serde_json::from_slice(ctx.body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("invalid JSON body: {e}")),
    };
    let Some(obj) = request.as_object() else {
        return bad_request("request body must be a JSON object");
    };
    let Some(model) = obj.get("model").and_then(Value::as_str) else {
        return bad_request("model: Field required (must be a string)");
    };
    let Some(messages) = obj.get("messages").and_then(Value::as_array) else {
        return bad_request("messages: Field required (must be an array)");
    };
    // `POST …/messages/count_tokens`: the prompt's words, as `{"input_tokens": N}`.
    if ctx.path.ends_with("/count_tokens") {
        let n = walk(obj, messages).words();
        let body =
            serde_json::to_vec(&serde_json::json!({ "input_tokens": n })).unwrap_or_default();
        return respond::with_body(StatusCode::OK, respond::JSON, Bytes::from(body));
    }
    let Some(max_tokens) = obj.get("max_tokens").and_then(Value::as_u64) else {
        return bad_request("max_tokens: Field required (must be a non-negative integer)");
    };
    let user_text = last_user_text(messages);
    let ends_with_user = messages
        .last()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str)
        == Some("user");
    let reply = Reply::build(
        &user_text,
        ends_with_user,
        &tool_names(obj),
        ctx.knobs.reply_words,
        Some(max_tokens),
    );
    let counts = ctx.prompt_cache.account(&walk(obj, messages));
    let cached = |n: u64| counts.marked.then_some(n);
    let thinks = matches!(
        obj.get("thinking")
            .and_then(|t| t.get("type"))
            .and_then(Value::as_str),
        Some("enabled" | "adaptive")
    );
    let thinking = thinks.then(|| reasoning(&user_text));
    let thinking_words = thinking.as_ref().map_or(0, |(t, _)| word_count(t));
    let plan = Plan {
        id: format!("msg_mock_{}", seed_hex(&user_text)),
        model,
        thinking,
        usage: Usage {
            input_tokens: counts.uncached,
            output_tokens: reply.output_tokens() + thinking_words,
            cache_creation_input_tokens: cached(counts.write),
            cache_read_input_tokens: cached(counts.read),
        },
        reply,
    };
    if obj.get("stream") == Some(&Value::Bool(true)) {
        stream_response(&plan, Pacing::from_ctx(ctx))
    } else {
        let message = plan.message();
        stream::json_reply(ctx.knobs, &message).await
    }
}

/// The prompt in caching order (tools, system, messages), with its `cache_control` marks.
fn walk(obj: &Map<String, Value>, messages: &[Value]) -> Walk {
    let mut w = Walk::default();
    let blocks = |v: Option<&Value>, w: &mut Walk| match v {
        Some(Value::String(s)) => w.block(&Value::Null, Some(s)),
        Some(Value::Array(items)) => {
            for b in items {
                let text = (b.get("type").and_then(Value::as_str) == Some("text"))
                    .then(|| b.get("text").and_then(Value::as_str))
                    .flatten();
                w.block(b, text);
                if b.get("cache_control").is_some_and(|c| !c.is_null()) {
                    w.mark();
                }
            }
        }
        _ => {}
    };
    blocks(obj.get("tools"), &mut w);
    blocks(obj.get("system"), &mut w);
    for m in messages {
        blocks(m.get("content"), &mut w);
    }
    w
}

/// Declared tool names: `tools[].name`.
fn tool_names(obj: &Map<String, Value>) -> Vec<&str> {
    obj.get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t.get("name")?.as_str())
                .collect()
        })
        .unwrap_or_default()
}

struct Plan<'a> {
    id: String,
    model: &'a str,
    /// The reasoning's text and signature, when the request asked for thinking.
    thinking: Option<(String, String)>,
    reply: Reply,
    usage: Usage,
}

#[derive(Serialize, Clone, Copy)]
struct Usage {
    input_tokens: u64,
    output_tokens: u64,
    /// Present when the prompt carried a `cache_control` mark.
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_creation_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_read_input_tokens: Option<u64>,
}

#[derive(Serialize)]
struct Message<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Block<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<()>,
    usage: Usage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    Text {
        text: String,
    },
    ToolUse {
        id: &'static str,
        name: &'a str,
        input: Value,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent<'a> {
    MessageStart {
        message: Message<'a>,
    },
    ContentBlockStart {
        index: u32,
        content_block: Block<'a>,
    },
    Ping,
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta<'a>,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        usage: OutputUsage,
    },
    MessageStop,
}

// The variants are Anthropic's own delta type names (`thinking_delta`, `text_delta`, ...).
#[allow(clippy::enum_variant_names)]
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta<'a> {
    ThinkingDelta { thinking: &'a str },
    SignatureDelta { signature: &'a str },
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
struct MessageDeltaBody {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

#[derive(Serialize)]
struct OutputUsage {
    output_tokens: u64,
}

impl Plan<'_> {
    fn stop_reason(&self) -> &'static str {
        match &self.reply {
            Reply::Tool(_) => "tool_use",
            Reply::Text {
                truncated: true, ..
            } => "max_tokens",
            Reply::Text { .. } => "end_turn",
        }
    }

    fn message(&self) -> Message<'_> {
        let block = match &self.reply {
            Reply::Text { pieces, .. } => Block::Text {
                text: pieces.concat(),
            },
            Reply::Tool(call) => Block::ToolUse {
                id: TOOL_USE_ID,
                name: &call.name,
                input: serde_json::json!({ "query": call.query }),
            },
        };
        let mut content: Vec<Block<'_>> = self
            .thinking
            .iter()
            .map(|(thinking, signature)| Block::Thinking {
                thinking,
                signature,
            })
            .collect();
        content.push(block);
        Message {
            id: &self.id,
            kind: "message",
            role: "assistant",
            model: self.model,
            content,
            stop_reason: Some(self.stop_reason()),
            stop_sequence: None,
            usage: self.usage,
        }
    }
}

fn event(ev: &StreamEvent<'_>) -> Bytes {
    let name = match ev {
        StreamEvent::MessageStart { .. } => "message_start",
        StreamEvent::ContentBlockStart { .. } => "content_block_start",
        StreamEvent::Ping => "ping",
        StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
        StreamEvent::ContentBlockStop { .. } => "content_block_stop",
        StreamEvent::MessageDelta { .. } => "message_delta",
        StreamEvent::MessageStop => "message_stop",
    };
    sse(Some(name), ev, SEP)
}

fn stream_response(plan: &Plan<'_>, pacing: Pacing) -> Response<MockBody> {
    let mut ev = Events::default();
    if pacing.malformed {
        ev.prelude.push(Bytes::from_static(MALFORMED_EVENT));
    }
    ev.prelude.push(event(&StreamEvent::MessageStart {
        message: Message {
            id: &plan.id,
            kind: "message",
            role: "assistant",
            model: plan.model,
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: Usage {
                output_tokens: 1,
                ..plan.usage
            },
        },
    }));
    let content_block = match &plan.reply {
        Reply::Text { .. } => Block::Text {
            text: String::new(),
        },
        Reply::Tool(call) => Block::ToolUse {
            id: TOOL_USE_ID,
            name: &call.name,
            input: Value::Object(Map::new()),
        },
    };
    // Thinking comes first, as block 0: its start goes with the headers, its deltas, its end and the answer's
    // start are the first timed event.
    let index = u32::from(plan.thinking.is_some());
    let mut first = Vec::new();
    if let Some((thinking, signature)) = &plan.thinking {
        ev.prelude.push(event(&StreamEvent::ContentBlockStart {
            index: 0,
            content_block: Block::Thinking {
                thinking: "",
                signature: "",
            },
        }));
        for delta in [
            BlockDelta::ThinkingDelta { thinking },
            BlockDelta::SignatureDelta { signature },
        ] {
            first.extend_from_slice(&event(&StreamEvent::ContentBlockDelta { index: 0, delta }));
        }
        first.extend_from_slice(&event(&StreamEvent::ContentBlockStop { index: 0 }));
        first.extend_from_slice(&event(&StreamEvent::ContentBlockStart {
            index,
            content_block,
        }));
    } else {
        ev.prelude.push(event(&StreamEvent::ContentBlockStart {
            index,
            content_block,
        }));
    }
    ev.prelude.push(event(&StreamEvent::Ping));
    let delta = |delta| event(&StreamEvent::ContentBlockDelta { index, delta });
    match &plan.reply {
        Reply::Text { pieces, .. } => {
            ev.timed = pieces
                .iter()
                .map(|text| delta(BlockDelta::TextDelta { text }))
                .collect();
        }
        Reply::Tool(call) => {
            ev.timed = call
                .fragments()
                .into_iter()
                .map(|partial_json| delta(BlockDelta::InputJsonDelta { partial_json }))
                .collect();
        }
    }
    if !first.is_empty() {
        ev.timed.insert(0, Bytes::from(first));
    }
    ev.tail
        .push(event(&StreamEvent::ContentBlockStop { index }));
    ev.tail.push(event(&StreamEvent::MessageDelta {
        delta: MessageDeltaBody {
            stop_reason: plan.stop_reason(),
            stop_sequence: None,
        },
        usage: OutputUsage {
            output_tokens: plan.usage.output_tokens,
        },
    }));
    ev.tail.push(event(&StreamEvent::MessageStop));
    let mut resp = stream::respond(ev, pacing, EVENT_STREAM);
    resp.headers_mut().insert(CACHE_CONTROL, NO_CACHE);
    resp
}
