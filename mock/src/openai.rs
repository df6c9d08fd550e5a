//! OpenAI Chat Completions dialect.
//!
//! Routes: `POST …/chat/completions` and `POST …/embeddings` (any prefix), `GET …/v1/models`.

use bytes::Bytes;
use hyper::header::CACHE_CONTROL;
use hyper::{Method, Response, StatusCode};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::body::MockBody;
use crate::content::{seed_hex, word_count, Reply, CREATED};
use crate::dialect::RequestCtx;
use crate::respond;
use crate::stream::{self, sse, Events, Pacing, EVENT_STREAM, NO_CACHE};
const MALFORMED_EVENT: &[u8] = b"data: {not json\n\n";
const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

pub(crate) async fn handle(ctx: &RequestCtx<'_>) -> Response<MockBody> {
    let path = ctx.path;
    if path.ends_with("/embeddings") {
        if ctx.method == Method::POST {
            embeddings(ctx, None)
        } else {
            method_not_allowed(ctx)
        }
    } else if path.ends_with("/chat/completions") {
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
pub(crate) fn last_user_text(messages: &[Value]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default()
}

pub(crate) fn text_parts(parts: &[Value]) -> impl Iterator<Item = &str> {
    parts.iter().filter_map(|p| {
        if p.get("type").and_then(Value::as_str) == Some("text") {
            p.get("text").and_then(Value::as_str)
        } else {
            None
        }
    })
}

pub(crate) fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => text_parts(parts).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

/// Whitespace-separated words across all text contents of all messages.
pub(crate) fn prompt_words(messages: &[Value]) -> u64 {
    messages
        .iter()
        .map(|m| match m.get("content") {
            Some(Value::String(s)) => word_count(s),
            Some(Value::Array(parts)) => text_parts(parts).map(word_count).sum(),
            _ => 0,
        })
        .sum()
}

/// Declared tool names: `tools[].function.name`.
fn tool_names(obj: &Map<String, Value>) -> Vec<&str> {
    obj.get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t.get("function")?.get("name")?.as_str())
                .collect()
        })
        .unwrap_or_default()
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
    /// `null` for a tool call.
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallOut<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallOut<'a> {
    id: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut<'a>,
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    /// With `stream_options.include_usage`, every chunk has `"usage": null` but the last, which has the counts
    /// (OpenAI's API reference, `stream_options.include_usage`: "All other chunks will also include a usage field,
    /// but with a null value"); without it, no chunk has the field.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<Usage>>,
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
    /// `Some(None)` serializes as `"content": null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'static str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

pub(crate) const TOOL_CALL_ID: &str = "call_mock_0";

fn bad_request(message: &str) -> Response<MockBody> {
    error_response(StatusCode::BAD_REQUEST, message, "invalid_request_error")
}

/// Everything needed to produce the reply, computed from the request.
struct Plan {
    id: String,
    model: String,
    reply: Reply,
    usage: Usage,
    include_usage: bool,
}

impl Plan {
    fn finish_reason(&self) -> &'static str {
        match &self.reply {
            Reply::Tool(_) => "tool_calls",
            Reply::Text {
                truncated: true, ..
            } => "length",
            Reply::Text { .. } => "stop",
        }
    }
}

/// `POST …/embeddings` (with `deployment`, Azure's: the response `model` is the deployment).
pub(crate) fn embeddings(ctx: &RequestCtx<'_>, deployment: Option<&str>) -> Response<MockBody> {
    let request: Value = match serde_json::from_slice(ctx.body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("invalid JSON body: {e}")),
    };
    let model = match (deployment, request.get("model")) {
        (Some(d), _) => d.to_string(),
        (None, Some(Value::String(m))) => m.clone(),
        _ => return bad_request("missing required parameter: 'model' (must be a string)"),
    };
    match crate::embeddings::openai(&request, &model) {
        Ok(v) => respond::json(StatusCode::OK, &v),
        Err(e) => bad_request(&e),
    }
}

async fn chat_completions(ctx: &RequestCtx<'_>) -> Response<MockBody> {
    chat(ctx, None).await
}

/// A chat completion. With `deployment` (Azure), the response `model` is the
/// deployment name and the body's `model` is optional and ignored.
pub(crate) async fn chat(ctx: &RequestCtx<'_>, deployment: Option<&str>) -> Response<MockBody> {
    let request: Value = match serde_json::from_slice(ctx.body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("invalid JSON body: {e}")),
    };
    let Some(obj) = request.as_object() else {
        return bad_request("request body must be a JSON object");
    };
    let model = match (deployment, obj.get("model")) {
        (Some(d), _) => d.to_string(),
        (None, Some(Value::String(m))) => m.clone(),
        _ => return bad_request("missing required parameter: 'model' (must be a string)"),
    };
    let messages = match obj.get("messages") {
        Some(Value::Array(m)) => m.as_slice(),
        _ => return bad_request("missing required parameter: 'messages' (must be an array)"),
    };
    let stream = obj.get("stream") == Some(&Value::Bool(true));
    let plan = make_plan(ctx, obj, model, messages);
    if stream {
        stream_response(plan, Pacing::from_ctx(ctx), deployment.is_some())
    } else {
        completion_response(ctx, &plan).await
    }
}

fn make_plan(
    ctx: &RequestCtx<'_>,
    obj: &Map<String, Value>,
    model: String,
    messages: &[Value],
) -> Plan {
    let user_text = last_user_text(messages);
    let ends_with_user = messages
        .last()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str)
        == Some("user");
    let limit = obj
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| obj.get("max_tokens").and_then(Value::as_u64));
    let reply = Reply::build(
        &user_text,
        ends_with_user,
        &tool_names(obj),
        ctx.knobs.reply_words,
        limit,
    );
    let prompt_tokens = prompt_words(messages);
    let completion_tokens = reply.output_tokens();
    let include_usage = obj
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        == Some(&Value::Bool(true));
    Plan {
        id: format!("chatcmpl-mock-{}", seed_hex(&user_text)),
        model,
        reply,
        usage: Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        },
        include_usage,
    }
}

async fn completion_response(ctx: &RequestCtx<'_>, plan: &Plan) -> Response<MockBody> {
    let text;
    let message = match &plan.reply {
        Reply::Text { pieces, .. } => {
            text = pieces.concat();
            AssistantMessage {
                role: "assistant",
                content: Some(&text),
                tool_calls: None,
            }
        }
        Reply::Tool(call) => AssistantMessage {
            role: "assistant",
            content: None,
            tool_calls: Some([ToolCallOut {
                id: TOOL_CALL_ID,
                kind: "function",
                function: FunctionOut {
                    name: &call.name,
                    arguments: &call.arguments,
                },
            }]),
        },
    };
    let completion = Completion {
        id: &plan.id,
        object: "chat.completion",
        created: CREATED,
        model: &plan.model,
        choices: [CompletionChoice {
            index: 0,
            message,
            finish_reason: plan.finish_reason(),
            logprobs: None,
        }],
        usage: plan.usage,
    };
    stream::json_reply(ctx.knobs, &completion).await
}

fn event(chunk: &Chunk<'_>) -> Bytes {
    sse(None, chunk, b"\n\n")
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
        usage: plan.include_usage.then_some(None),
    })
}

/// Azure opens every stream with the content-filter results for the prompt: a chunk with an empty `id`,
/// `model` and `object`, no choices, and `prompt_filter_results` (recorded in
/// tests/fixtures/azure/stream_content_filter.sse).
const AZURE_PROMPT_FILTER: &[u8] = b"data: {\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\",\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{\"hate\":{\"filtered\":false,\"severity\":\"safe\"},\"self_harm\":{\"filtered\":false,\"severity\":\"safe\"},\"sexual\":{\"filtered\":false,\"severity\":\"safe\"},\"violence\":{\"filtered\":false,\"severity\":\"safe\"}}}]}\n\n";

fn stream_response(plan: Plan, pacing: Pacing, azure: bool) -> Response<MockBody> {
    let mut ev = Events::default();
    if pacing.malformed {
        ev.prelude.push(Bytes::from_static(MALFORMED_EVENT));
    }
    if azure {
        ev.prelude.push(Bytes::from_static(AZURE_PROMPT_FILTER));
    }
    match &plan.reply {
        Reply::Text { pieces, .. } => {
            let role = Delta {
                role: Some("assistant"),
                content: Some(Some("")),
                tool_calls: None,
            };
            ev.prelude.push(delta_event(&plan, role, None));
            for piece in pieces {
                let delta = Delta {
                    content: Some(Some(piece)),
                    ..Delta::default()
                };
                ev.timed.push(delta_event(&plan, delta, None));
            }
        }
        Reply::Tool(call) => {
            let start = Delta {
                role: Some("assistant"),
                content: Some(None),
                tool_calls: Some([ToolCallDelta {
                    index: 0,
                    id: Some(TOOL_CALL_ID),
                    kind: Some("function"),
                    function: FunctionDelta {
                        name: Some(&call.name),
                        arguments: "",
                    },
                }]),
            };
            ev.prelude.push(delta_event(&plan, start, None));
            for fragment in call.fragments() {
                let delta = Delta {
                    tool_calls: Some([ToolCallDelta {
                        index: 0,
                        id: None,
                        kind: None,
                        function: FunctionDelta {
                            name: None,
                            arguments: fragment,
                        },
                    }]),
                    ..Delta::default()
                };
                ev.timed.push(delta_event(&plan, delta, None));
            }
        }
    }
    ev.tail.push(delta_event(
        &plan,
        Delta::default(),
        Some(plan.finish_reason()),
    ));
    if plan.include_usage {
        ev.tail.push(event(&Chunk {
            id: &plan.id,
            object: "chat.completion.chunk",
            created: CREATED,
            model: &plan.model,
            choices: &[],
            usage: Some(Some(plan.usage)),
        }));
    }
    ev.tail.push(Bytes::from_static(DONE_EVENT));
    let mut resp = stream::respond(ev, pacing, EVENT_STREAM);
    resp.headers_mut().insert(CACHE_CONTROL, NO_CACHE);
    resp
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
