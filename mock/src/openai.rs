//! OpenAI Chat Completions dialect.
//!
//! Routes: `POST …/chat/completions` (any prefix), `GET …/v1/models`.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use crate::body::{abort_error, BodySender, MockBody};
use crate::content::{fnv1a64, reply_pieces, word_count, CREATED};
use crate::dialect::RequestCtx;
use crate::region::sleep_ms;
use crate::respond;

const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
const MALFORMED_EVENT: &[u8] = b"data: {not json\n\n";
const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

pub(crate) async fn handle(ctx: &RequestCtx<'_>) -> Response<MockBody> {
    let path = ctx.path;
    if path.ends_with("/chat/completions") {
        if ctx.method == Method::POST {
            chat_completions(ctx).await
        } else {
            method_not_allowed(ctx)
        }
    } else if path == "/v1/models" || path.ends_with("/v1/models") {
        if ctx.method == Method::GET {
            respond::json(
                StatusCode::OK,
                &json!({"object":"list","data":[{"id":"mock-1","object":"model","owned_by":"mock"}]}),
            )
        } else {
            method_not_allowed(ctx)
        }
    } else {
        error_response(
            StatusCode::NOT_FOUND,
            &format!("Unknown request URL: {} {}", ctx.method, path),
            "invalid_request_error",
        )
    }
}

fn method_not_allowed(ctx: &RequestCtx<'_>) -> Response<MockBody> {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("Method {} not allowed for {}", ctx.method, ctx.path),
        "invalid_request_error",
    )
}

/// `{"error":{"message":…,"type":…,"code":null}}`
pub(crate) fn error_json(message: &str, error_type: &str) -> Bytes {
    let v = json!({"error": {"message": message, "type": error_type, "code": null}});
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

pub(crate) fn error_response(
    status: StatusCode,
    message: &str,
    error_type: &str,
) -> Response<MockBody> {
    respond::with_body(status, respond::JSON, error_json(message, error_type))
}

/// Error `type` used for a fault status.
pub(crate) fn fault_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

pub(crate) fn fault_response(status: u16, error_body: Option<Bytes>) -> Response<MockBody> {
    let body = error_body
        .unwrap_or_else(|| error_json(&format!("mock fault: status {status}"), fault_type(status)));
    respond::with_body(respond::status_code(status), respond::JSON, body)
}

/// Text of the last `user` message: a string content as is; an array
/// content as the `text` of its `type: "text"` parts joined with " ".
fn last_user_text(messages: &[Value]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default()
}

fn text_parts(parts: &[Value]) -> impl Iterator<Item = &str> {
    parts.iter().filter_map(|p| {
        if p.get("type").and_then(Value::as_str) == Some("text") {
            p.get("text").and_then(Value::as_str)
        } else {
            None
        }
    })
}

fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => text_parts(parts).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

/// Whitespace-separated words across all text contents of all messages.
fn prompt_words(messages: &[Value]) -> u64 {
    messages
        .iter()
        .map(|m| match m.get("content") {
            Some(Value::String(s)) => word_count(s),
            Some(Value::Array(parts)) => text_parts(parts).map(word_count).sum(),
            _ => 0,
        })
        .sum()
}

#[derive(Serialize, Clone, Copy)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [CompletionChoice<'a>; 1],
    usage: Usage,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    finish_reason: &'a str,
    logprobs: Option<()>,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
}

fn bad_request(message: &str) -> Response<MockBody> {
    error_response(StatusCode::BAD_REQUEST, message, "invalid_request_error")
}

/// Everything needed to produce the reply, computed from the request.
struct Plan {
    id: String,
    model: String,
    pieces: Vec<String>,
    finish_reason: &'static str,
    usage: Usage,
    include_usage: bool,
    ttft_ms: u64,
    token_gap_ms: u64,
    cut_after: Option<usize>,
    malformed_sse: bool,
}

async fn chat_completions(ctx: &RequestCtx<'_>) -> Response<MockBody> {
    let request: Value = match serde_json::from_slice(ctx.body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("invalid JSON body: {e}")),
    };
    let Some(obj) = request.as_object() else {
        return bad_request("request body must be a JSON object");
    };
    let model = match obj.get("model") {
        Some(Value::String(m)) => m.clone(),
        _ => return bad_request("missing required parameter: 'model' (must be a string)"),
    };
    let messages = match obj.get("messages") {
        Some(Value::Array(m)) => m.as_slice(),
        _ => return bad_request("missing required parameter: 'messages' (must be an array)"),
    };
    let stream = obj.get("stream") == Some(&Value::Bool(true));
    let plan = make_plan(ctx, obj, model, messages);
    if stream {
        stream_response(plan)
    } else {
        sleep_ms(Some(plan.ttft_ms)).await;
        completion_response(&plan)
    }
}

fn make_plan(
    ctx: &RequestCtx<'_>,
    obj: &Map<String, Value>,
    model: String,
    messages: &[Value],
) -> Plan {
    let user_text = last_user_text(messages);
    let seed = fnv1a64(user_text.as_bytes());
    let mut pieces = reply_pieces(&user_text, ctx.knobs.reply_words, seed);
    let limit = obj
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| obj.get("max_tokens").and_then(Value::as_u64));
    let mut finish_reason = "stop";
    if let Some(limit) = limit {
        if limit < pieces.len() as u64 {
            pieces.truncate(limit as usize);
            finish_reason = "length";
        }
    }
    let prompt_tokens = prompt_words(messages);
    let completion_tokens = pieces.len() as u64;
    let include_usage = obj
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        == Some(&Value::Bool(true));
    Plan {
        id: format!("chatcmpl-mock-{seed:016x}"),
        model,
        pieces,
        finish_reason,
        usage: Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        },
        include_usage,
        ttft_ms: ctx.knobs.ttft_ms.unwrap_or(0),
        token_gap_ms: ctx.knobs.token_gap_ms.unwrap_or(0),
        cut_after: ctx.knobs.cut_after.map(|n| n as usize),
        malformed_sse: ctx.knobs.malformed_sse == Some(true),
    }
}

fn completion_response(plan: &Plan) -> Response<MockBody> {
    let content = plan.pieces.concat();
    let completion = Completion {
        id: &plan.id,
        object: "chat.completion",
        created: CREATED,
        model: &plan.model,
        choices: [CompletionChoice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: &content,
            },
            finish_reason: plan.finish_reason,
            logprobs: None,
        }],
        usage: plan.usage,
    };
    let body = Bytes::from(serde_json::to_vec(&completion).unwrap_or_default());
    if plan.cut_after.is_some() {
        // Promise the full length, send half of it, then close.
        let full_len = body.len();
        let mut resp = Response::new(MockBody::truncated(body.slice(..full_len / 2)));
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, respond::JSON);
        headers.insert(CONTENT_LENGTH, HeaderValue::from(full_len));
        return resp;
    }
    respond::with_body(StatusCode::OK, respond::JSON, body)
}

fn event(chunk: &Chunk<'_>) -> Bytes {
    let mut buf = Vec::with_capacity(192);
    buf.extend_from_slice(b"data: ");
    if serde_json::to_writer(&mut buf, chunk).is_err() {
        buf.extend_from_slice(b"{}");
    }
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

fn delta_event(plan: &Plan, delta: Delta<'_>, finish_reason: Option<&str>) -> Bytes {
    event(&Chunk {
        id: &plan.id,
        object: "chat.completion.chunk",
        created: CREATED,
        model: &plan.model,
        choices: &[ChunkChoice {
            index: 0,
            delta,
            finish_reason,
        }],
        usage: None,
    })
}

fn stream_response(plan: Plan) -> Response<MockBody> {
    let (tx, body) = MockBody::channel(16);
    // The channel is fresh and large enough, so these cannot fail.
    if plan.malformed_sse {
        let _ = tx.try_send(Ok(Bytes::from_static(MALFORMED_EVENT)));
    }
    let role = Delta {
        role: Some("assistant"),
        content: Some(""),
    };
    let _ = tx.try_send(Ok(delta_event(&plan, role, None)));
    tokio::spawn(produce_stream(tx, plan, Instant::now()));

    let mut resp = Response::new(body);
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, EVENT_STREAM);
    headers.insert(CACHE_CONTROL, NO_CACHE);
    resp
}

/// Waits until `at` unless the client goes away first (returns false then).
async fn wait_until(tx: &BodySender, at: Instant) -> bool {
    if at <= Instant::now() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep_until(at) => true,
        _ = tx.closed() => false,
    }
}

async fn produce_stream(tx: BodySender, plan: Plan, headers_at: Instant) {
    let first_at = headers_at + Duration::from_millis(plan.ttft_ms);
    let gap = Duration::from_millis(plan.token_gap_ms);
    for (i, piece) in plan.pieces.iter().enumerate() {
        if plan.cut_after.is_some_and(|n| i >= n) {
            let _ = tx.send(Err(abort_error())).await;
            return;
        }
        if !wait_until(&tx, first_at + gap * i as u32).await {
            return;
        }
        let delta = Delta {
            role: None,
            content: Some(piece),
        };
        if tx.send(Ok(delta_event(&plan, delta, None))).await.is_err() {
            return;
        }
    }
    if plan.cut_after.is_some() {
        let _ = tx.send(Err(abort_error())).await;
        return;
    }
    // A stream with no content pieces still honours ttft before finishing.
    if plan.pieces.is_empty() && !wait_until(&tx, first_at).await {
        return;
    }
    let finish = delta_event(&plan, Delta::default(), Some(plan.finish_reason));
    if tx.send(Ok(finish)).await.is_err() {
        return;
    }
    if plan.include_usage {
        let usage = event(&Chunk {
            id: &plan.id,
            object: "chat.completion.chunk",
            created: CREATED,
            model: &plan.model,
            choices: &[],
            usage: Some(plan.usage),
        });
        if tx.send(Ok(usage)).await.is_err() {
            return;
        }
    }
    let _ = tx.send(Ok(Bytes::from_static(DONE_EVENT))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_and_prompt_words() {
        let msgs: Vec<Value> = serde_json::from_str(
            r#"[{"role":"system","content":"be nice"},
                {"role":"user","content":"first one"},
                {"role":"assistant","content":"ok"},
                {"role":"user","content":[{"type":"text","text":"hello"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"big  world"}]}]"#,
        )
        .unwrap();
        assert_eq!(last_user_text(&msgs), "hello big  world");
        assert_eq!(prompt_words(&msgs), 2 + 2 + 1 + 3);
        assert_eq!(last_user_text(&[]), "");
    }
}
