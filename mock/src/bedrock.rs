//! AWS Bedrock Converse dialect: `POST …/model/{modelId}/converse` and
//! `…/model/{modelId}/converse-stream` (binary event-stream frames).

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::body::MockBody;
use crate::content::{reasoning, word_count, Reply};
use crate::dialect::RequestCtx;
use crate::eventstream::event_frame;
use crate::prompt_cache::Walk;
use crate::respond;
use crate::stream::{self, percent_decode, Events, Pacing};

pub(crate) const TOOL_USE_ID: &str = "tooluse_mock_0";
const ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("application/vnd.amazon.eventstream");
const AUTH_PREFIX: &str = "AWS4-HMAC-SHA256 Credential=";

/// The raw (percent-encoded) model id of an `InvokeModel` path (`/model/{id}/invoke`).
pub(crate) fn invoke_route_of(path: &str) -> Option<&str> {
    let rest = path.strip_suffix("/invoke")?;
    let start = rest.find("/model/")? + "/model/".len();
    Some(&rest[start..])
}

/// The raw (percent-encoded) model id of a `CountTokens` path (`/model/{id}/count-tokens`).
pub(crate) fn count_route_of(path: &str) -> Option<&str> {
    let rest = path.strip_suffix("/count-tokens")?;
    let start = rest.find("/model/")? + "/model/".len();
    Some(&rest[start..])
}

/// The raw (percent-encoded) model id and whether the path is the
/// streaming operation.
pub(crate) fn route_of(path: &str) -> Option<(&str, bool)> {
    let (rest, stream) = if let Some(r) = path.strip_suffix("/converse-stream") {
        (r, true)
    } else {
        (path.strip_suffix("/converse")?, false)
    };
    let start = rest.find("/model/")? + "/model/".len();
    Some((&rest[start..], stream))
}

/// `x-amzn-errortype` for a fault status.
pub(crate) fn error_type(status: u16) -> &'static str {
    match status {
        401 => "UnrecognizedClientException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        400..=499 => "ValidationException",
        _ => "InternalServerException",
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
}

fn error_with_body(
    status: StatusCode,
    error_type: &'static str,
    body: Bytes,
) -> Response<MockBody> {
    let mut resp = respond::with_body(status, respond::JSON, body);
    resp.headers_mut()
        .insert(ERROR_TYPE, HeaderValue::from_static(error_type));
    resp
}

fn error_json(message: &str) -> Bytes {
    Bytes::from(serde_json::to_vec(&ErrorBody { message }).unwrap_or_default())
}

fn error_response(
    status: StatusCode,
    error_type: &'static str,
    message: &str,
) -> Response<MockBody> {
    error_with_body(status, error_type, error_json(message))
}

fn bad_request(message: &str) -> Response<MockBody> {
    error_response(StatusCode::BAD_REQUEST, "ValidationException", message)
}

pub(crate) fn fault_response(status: u16, error_body: Option<Bytes>) -> Response<MockBody> {
    let body = error_body.unwrap_or_else(|| error_json(&format!("mock fault: status {status}")));
    error_with_body(respond::status_code(status), error_type(status), body)
}

/// Text blocks (`{"text": …}`) of a Converse content array.
fn text_blocks(content: Option<&Value>) -> impl Iterator<Item = &str> {
    content
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|b| b.get("text")?.as_str())
}

/// Declared tool names: `toolConfig.tools[].toolSpec.name`.
fn tool_names(obj: &Map<String, Value>) -> Vec<&str> {
    obj.get("toolConfig")
        .and_then(|c| c.get("tools"))
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t.get("toolSpec")?.get("name")?.as_str())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) async fn handle(ctx: &RequestCtx<'_>) -> Response<MockBody> {
    let invoking = invoke_route_of(ctx.path);
    let (raw_model, streaming, counting) =
        match (route_of(ctx.path), count_route_of(ctx.path), invoking) {
            (Some((model, streaming)), _, _) => (model, streaming, false),
            (None, Some(model), _) => (model, false, true),
            (None, None, Some(model)) => (model, false, false),
            (None, None, None) => {
                return error_response(
                    StatusCode::NOT_FOUND,
                    "UnknownOperationException",
                    "unknown operation",
                )
            }
        };
    if ctx.method != Method::POST {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "UnknownOperationException",
            &format!("Method {} not allowed for {}", ctx.method, ctx.path),
        );
    }
    if !ctx
        .header("authorization")
        .is_some_and(|a| a.starts_with(AUTH_PREFIX))
    {
        return error_response(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token: an authorization header starting with 'AWS4-HMAC-SHA256 Credential=' is required",
        );
    }
    if ctx.header("x-amz-date").is_none() {
        return error_response(
            StatusCode::FORBIDDEN,
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        );
    }
    let model_id = percent_decode(raw_model);
    if model_id.is_empty() {
        return bad_request("modelId must not be empty");
    }
    let request: Value = match serde_json::from_slice(ctx.body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("invalid JSON body: {e}")),
    };
    let Some(obj) = request.as_object() else {
        return bad_request("request body must be a JSON object");
    };
    // `InvokeModel`: the embedding models' own bodies.
    if invoking.is_some() {
        return match crate::embeddings::bedrock(&model_id, &request) {
            Ok(v) => respond::json(StatusCode::OK, &v),
            Err(e) => bad_request(&e),
        };
    }
    // `CountTokens`: `{"input": {"converse": {messages, system, ...}}}` answered `{"inputTokens": N}`.
    if counting {
        let Some(converse) = obj
            .get("input")
            .and_then(|i| i.get("converse"))
            .and_then(Value::as_object)
        else {
            return bad_request("input: required, must hold `converse` (or `invokeModel`)");
        };
        let messages = converse
            .get("messages")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let n = walk(converse, messages).words();
        let body = serde_json::to_vec(&serde_json::json!({ "inputTokens": n })).unwrap_or_default();
        return respond::with_body(StatusCode::OK, respond::JSON, Bytes::from(body));
    }
    let Some(messages) = obj.get("messages").and_then(Value::as_array) else {
        return bad_request("messages: required, must be an array");
    };
    let role = |m: &Value| m.get("role").and_then(Value::as_str) == Some("user");
    let user_text = messages
        .iter()
        .rev()
        .find(|m| role(m))
        .map(|m| text_blocks(m.get("content")).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let ends_with_user = messages.last().is_some_and(role);
    let limit = obj
        .get("inferenceConfig")
        .and_then(|c| c.get("maxTokens"))
        .and_then(Value::as_u64);
    let reply = Reply::build(
        &user_text,
        ends_with_user,
        &tool_names(obj),
        ctx.knobs.reply_words,
        limit,
    );
    let counts = ctx.prompt_cache.account(&walk(obj, messages));
    // Anthropic models on Bedrock reason when asked through `additionalModelRequestFields.thinking`.
    let thinks = matches!(
        obj.get("additionalModelRequestFields")
            .and_then(|f| f.get("thinking"))
            .and_then(|t| t.get("type"))
            .and_then(Value::as_str),
        Some("enabled" | "adaptive")
    );
    let thinking = thinks.then(|| reasoning(&user_text));
    let output_tokens = reply.output_tokens() + thinking.as_ref().map_or(0, |(t, _)| word_count(t));
    let cached = |n: u64| counts.marked.then_some(n);
    let usage = Usage {
        input_tokens: counts.uncached,
        output_tokens,
        total_tokens: counts.uncached + counts.read + counts.write + output_tokens,
        cache_read_input_tokens: cached(counts.read),
        cache_write_input_tokens: cached(counts.write),
    };
    if streaming {
        stream_response(&reply, thinking.as_ref(), usage, Pacing::from_ctx(ctx))
    } else {
        let content = match &reply {
            Reply::Text { pieces, .. } => ContentBlock::Text {
                text: pieces.concat(),
            },
            Reply::Tool(call) => ContentBlock::ToolUse {
                tool_use_id: TOOL_USE_ID,
                name: &call.name,
                input: serde_json::json!({ "query": call.query }),
            },
        };
        let mut blocks: Vec<ContentBlock<'_>> = thinking
            .iter()
            .map(|(text, signature)| {
                ContentBlock::ReasoningContent(
                    serde_json::json!({ "reasoningText": { "text": text, "signature": signature } }),
                )
            })
            .collect();
        blocks.push(content);
        let body = ConverseResponse {
            output: Output {
                message: OutMessage {
                    role: "assistant",
                    content: blocks,
                },
            },
            stop_reason: stop_reason(&reply),
            usage,
            metrics: METRICS,
        };
        stream::json_reply(ctx.knobs, &body).await
    }
}

fn stop_reason(reply: &Reply) -> &'static str {
    match reply {
        Reply::Tool(_) => "tool_use",
        Reply::Text {
            truncated: true, ..
        } => "max_tokens",
        Reply::Text { .. } => "end_turn",
    }
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct Usage {
    input_tokens: u64,
    output_tokens: u64,
    total_tokens: u64,
    /// Present when the prompt carried a `cachePoint`.
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_read_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_write_input_tokens: Option<u64>,
}

/// The prompt in caching order (tools, system, messages), with its `cachePoint` marks.
fn walk(obj: &Map<String, Value>, messages: &[Value]) -> Walk {
    let mut w = Walk::default();
    let blocks = |v: Option<&Value>, w: &mut Walk| {
        for b in v.and_then(Value::as_array).into_iter().flatten() {
            if b.get("cachePoint").is_some() {
                w.mark();
            } else {
                w.block(b, b.get("text").and_then(Value::as_str));
            }
        }
    };
    blocks(obj.get("toolConfig").and_then(|c| c.get("tools")), &mut w);
    blocks(obj.get("system"), &mut w);
    for m in messages {
        blocks(m.get("content"), &mut w);
    }
    w
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct Metrics {
    latency_ms: u64,
}

const METRICS: Metrics = Metrics { latency_ms: 1 };

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConverseResponse<'a> {
    output: Output<'a>,
    stop_reason: &'static str,
    usage: Usage,
    metrics: Metrics,
}

#[derive(Serialize)]
struct Output<'a> {
    message: OutMessage<'a>,
}

#[derive(Serialize)]
struct OutMessage<'a> {
    role: &'static str,
    content: Vec<ContentBlock<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum ContentBlock<'a> {
    #[serde(rename_all = "camelCase")]
    ToolUse {
        tool_use_id: &'static str,
        name: &'a str,
        input: Value,
    },
    ReasoningContent(Value),
    #[serde(untagged)]
    Text {
        text: String,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeltaEvent<'a> {
    delta: Delta<'a>,
    content_block_index: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum Delta<'a> {
    ToolUse {
        input: &'a str,
    },
    #[serde(untagged)]
    Text {
        text: &'a str,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StartEvent<'a> {
    start: Start<'a>,
    content_block_index: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Start<'a> {
    tool_use: ToolUseStart<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseStart<'a> {
    tool_use_id: &'static str,
    name: &'a str,
}

#[derive(Serialize)]
struct MetadataEvent {
    usage: Usage,
    metrics: Metrics,
}

fn frame<T: Serialize>(event_type: &str, payload: &T) -> Bytes {
    let json = serde_json::to_vec(payload).unwrap_or_default();
    Bytes::from(event_frame(event_type, &json))
}

fn stream_response(
    reply: &Reply,
    thinking: Option<&(String, String)>,
    usage: Usage,
    pacing: Pacing,
) -> Response<MockBody> {
    let mut ev = Events::default();
    let start = frame("messageStart", &serde_json::json!({"role": "assistant"}));
    if pacing.malformed {
        let mut bad = start.to_vec();
        let n = bad.len();
        for b in &mut bad[n - 4..] {
            *b ^= 0xFF;
        }
        ev.prelude.push(Bytes::from(bad));
    }
    ev.prelude.push(start);
    // Reasoning is block 0, streamed as one first timed event (its text, its signature, its end); the answer
    // follows as block 1.
    let index = u32::from(thinking.is_some());
    let reasoning_first = thinking.map(|(text, signature)| {
        let mut first = Vec::new();
        for r in [
            serde_json::json!({ "text": text }),
            serde_json::json!({ "signature": signature }),
        ] {
            first.extend_from_slice(&frame(
                "contentBlockDelta",
                &serde_json::json!({ "delta": { "reasoningContent": r }, "contentBlockIndex": 0 }),
            ));
        }
        first.extend_from_slice(&frame(
            "contentBlockStop",
            &serde_json::json!({"contentBlockIndex": 0}),
        ));
        Bytes::from(first)
    });
    let delta = |delta| {
        frame(
            "contentBlockDelta",
            &DeltaEvent {
                delta,
                content_block_index: index,
            },
        )
    };
    match reply {
        Reply::Text { pieces, .. } => {
            ev.timed = pieces
                .iter()
                .map(|text| delta(Delta::Text { text }))
                .collect();
        }
        Reply::Tool(call) => {
            ev.prelude.push(frame(
                "contentBlockStart",
                &StartEvent {
                    start: Start {
                        tool_use: ToolUseStart {
                            tool_use_id: TOOL_USE_ID,
                            name: &call.name,
                        },
                    },
                    content_block_index: index,
                },
            ));
            ev.timed = call
                .fragments()
                .into_iter()
                .map(|input| delta(Delta::ToolUse { input }))
                .collect();
        }
    }
    if let Some(first) = reasoning_first {
        ev.timed.insert(0, first);
    }
    ev.tail.push(frame(
        "contentBlockStop",
        &serde_json::json!({"contentBlockIndex": index}),
    ));
    ev.tail.push(frame(
        "messageStop",
        &serde_json::json!({"stopReason": stop_reason(reply)}),
    ));
    ev.tail.push(frame(
        "metadata",
        &MetadataEvent {
            usage,
            metrics: METRICS,
        },
    ));
    stream::respond(ev, pacing, EVENT_STREAM)
}
