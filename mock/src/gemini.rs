//! Google Gemini dialect: `POST …/models/{model}:generateContent` and
//! `…/models/{model}:streamGenerateContent` (`?alt=sse` for SSE, otherwise
//! a progressively written JSON array).

use bytes::Bytes;
use hyper::header::CACHE_CONTROL;
use hyper::{Method, Response, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::body::MockBody;
use crate::content::{reasoning, seed_hex, word_count, Reply};
use crate::dialect::RequestCtx;
use crate::respond;
use crate::stream::{
    self, percent_decode, query_param, sse, Events, Pacing, EVENT_STREAM, NO_CACHE,
};

const SEP: &[u8] = b"\r\n\r\n";
const MALFORMED_EVENT: &[u8] = b"data: {not json\r\n\r\n";

/// The raw model name of an `:embedContent` or `:batchEmbedContents` path, and whether it is the batch.
pub(crate) fn embed_route_of(path: &str) -> Option<(&str, bool)> {
    let (rest, batch) = match path.strip_suffix(":batchEmbedContents") {
        Some(r) => (r, true),
        None => (path.strip_suffix(":embedContent")?, false),
    };
    let slash = rest.rfind('/')?;
    rest[..=slash]
        .ends_with("/models/")
        .then_some((&rest[slash + 1..], batch))
}

/// The raw model name of a `:countTokens` path.
pub(crate) fn count_route_of(path: &str) -> Option<&str> {
    let rest = path.strip_suffix(":countTokens")?;
    let slash = rest.rfind('/')?;
    rest[..=slash]
        .ends_with("/models/")
        .then_some(&rest[slash + 1..])
}

/// The raw model name and whether the path is the streaming method.
pub(crate) fn route_of(path: &str) -> Option<(&str, bool)> {
    let (rest, stream) = if let Some(r) = path.strip_suffix(":streamGenerateContent") {
        (r, true)
    } else {
        (path.strip_suffix(":generateContent")?, false)
    };
    let slash = rest.rfind('/')?;
    let dir = &rest[..=slash];
    (dir.ends_with("/models/") || dir.ends_with("/tunedModels/"))
        .then_some((&rest[slash + 1..], stream))
}

/// Google's canonical status name for an HTTP status.
pub(crate) fn status_name(status: u16) -> &'static str {
    match status {
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "NOT_IMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        400..=499 => "INVALID_ARGUMENT",
        500..=599 => "INTERNAL",
        _ => "UNKNOWN",
    }
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: u16,
    message: &'a str,
    status: &'static str,
}

fn error_json(code: u16, message: &str) -> Bytes {
    let v = ErrorEnvelope {
        error: ErrorBody {
            code,
            message,
            status: status_name(code),
        },
    };
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

fn error_response(status: StatusCode, message: &str) -> Response<MockBody> {
    respond::with_body(status, respond::JSON, error_json(status.as_u16(), message))
}

fn bad_request(message: &str) -> Response<MockBody> {
    error_response(StatusCode::BAD_REQUEST, message)
}

pub(crate) fn fault_response(status: u16, error_body: Option<Bytes>) -> Response<MockBody> {
    let body =
        error_body.unwrap_or_else(|| error_json(status, &format!("mock fault: status {status}")));
    respond::with_body(respond::status_code(status), respond::JSON, body)
}

/// Text of a `Content`: its `parts[].text` concatenated.
fn parts_text(content: &Value) -> String {
    parts(content).collect()
}

fn parts(content: &Value) -> impl Iterator<Item = &str> {
    content
        .get("parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text")?.as_str())
}

/// A `Content` without a role counts as the user's.
fn is_user(content: &Value) -> bool {
    match content.get("role") {
        None | Some(Value::Null) => true,
        Some(r) => r.as_str() == Some("user"),
    }
}

fn declarations(tool: &Value) -> Option<&Vec<Value>> {
    tool.get("functionDeclarations")
        .or_else(|| tool.get("function_declarations"))
        .and_then(Value::as_array)
}

/// Declared tool names: `tools[].functionDeclarations[].name`.
fn tool_names(obj: &Map<String, Value>) -> Vec<&str> {
    obj.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(declarations)
        .flatten()
        .filter_map(|d| d.get("name")?.as_str())
        .collect()
}

pub(crate) async fn handle(ctx: &RequestCtx<'_>) -> Response<MockBody> {
    let embedding = embed_route_of(ctx.path);
    let (raw_model, streaming, counting) =
        match (route_of(ctx.path), count_route_of(ctx.path), embedding) {
            (Some((model, streaming)), _, _) => (model, streaming, false),
            (None, Some(model), _) => (model, false, true),
            (None, None, Some((model, _))) => (model, false, false),
            (None, None, None) => return error_response(StatusCode::NOT_FOUND, "unknown method"),
        };
    if ctx.method != Method::POST {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("Method {} not allowed for {}", ctx.method, ctx.path),
        );
    }
    let has_key = ctx.header("x-goog-api-key").is_some()
        || query_param(ctx.query, "key").is_some_and(|k| !k.is_empty());
    if !has_key {
        return error_response(
            StatusCode::FORBIDDEN,
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        );
    }
    let request: Value = match serde_json::from_slice(ctx.body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("Invalid JSON payload received. {e}")),
    };
    let Some(obj) = request.as_object() else {
        return bad_request("Invalid JSON payload received: the body must be an object");
    };
    if let Some((_, batch)) = embedding {
        return match crate::embeddings::gemini(&request, batch) {
            Ok(v) => respond::json(StatusCode::OK, &v),
            Err(e) => bad_request(&e),
        };
    }
    // `:countTokens`: `{"contents": [...]}` or `{"generateContentRequest": {...}}`, answered `{"totalTokens": N}`.
    if counting {
        let inner = obj
            .get("generateContentRequest")
            .and_then(Value::as_object)
            .unwrap_or(obj);
        let n: u64 = inner
            .get("contents")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(inner.get("systemInstruction"))
            .flat_map(parts)
            .map(word_count)
            .sum();
        let body = serde_json::to_vec(&serde_json::json!({ "totalTokens": n })).unwrap_or_default();
        return respond::with_body(StatusCode::OK, respond::JSON, Bytes::from(body));
    }
    let Some(contents) = obj.get("contents").and_then(Value::as_array) else {
        return bad_request("* GenerateContentRequest.contents: contents is not specified");
    };
    let model = percent_decode(raw_model);
    let user_text = contents
        .iter()
        .rev()
        .find(|c| is_user(c))
        .map(parts_text)
        .unwrap_or_default();
    let ends_with_user = contents.last().is_some_and(is_user);
    let limit = obj
        .get("generationConfig")
        .and_then(|c| c.get("maxOutputTokens"))
        .and_then(Value::as_u64);
    let reply = Reply::build(
        &user_text,
        ends_with_user,
        &tool_names(obj),
        ctx.knobs.reply_words,
        limit,
    );
    let prompt: u64 = contents
        .iter()
        .chain(obj.get("systemInstruction"))
        .flat_map(parts)
        .map(word_count)
        .sum();
    let candidates = reply.output_tokens();
    let thinks = obj
        .get("generationConfig")
        .and_then(|c| c.get("thinkingConfig"))
        .and_then(|t| t.get("includeThoughts"))
        == Some(&Value::Bool(true));
    let thought = thinks.then(|| reasoning(&user_text).0);
    let thoughts = thought.as_deref().map(word_count);
    let plan = Plan {
        model: &model,
        response_id: format!("mock-{}", seed_hex(&user_text)),
        usage: UsageMetadata {
            prompt_token_count: prompt,
            candidates_token_count: Some(candidates),
            thoughts_token_count: thoughts,
            total_token_count: prompt + candidates + thoughts.unwrap_or(0),
        },
        thought,
        reply,
    };
    if !streaming {
        let part = match &plan.reply {
            Reply::Text { pieces, .. } => Part::Text {
                text: pieces.concat().into(),
            },
            Reply::Tool(_) => plan.function_call(),
        };
        let mut parts = plan.thought_part().into_iter().collect::<Vec<_>>();
        parts.push(part);
        let body = plan.chunk(parts, true, 0);
        return stream::json_reply(ctx.knobs, &body).await;
    }
    let pacing = Pacing::from_ctx(ctx);
    if query_param(ctx.query, "alt").as_deref() == Some("sse") {
        let mut ev = Events::default();
        if pacing.malformed {
            ev.prelude.push(Bytes::from_static(MALFORMED_EVENT));
        }
        ev.timed = plan
            .stream_chunks(&pacing)
            .iter()
            .map(|c| sse(None, c, SEP))
            .collect();
        let mut resp = stream::respond(ev, pacing, EVENT_STREAM);
        resp.headers_mut().insert(CACHE_CONTROL, NO_CACHE);
        resp
    } else {
        let mut ev = Events::default();
        for (i, c) in plan.stream_chunks(&pacing).iter().enumerate() {
            let mut buf = Vec::with_capacity(256);
            buf.extend_from_slice(if i == 0 { b"[" } else { b",\r\n" });
            if serde_json::to_writer(&mut buf, c).is_err() {
                buf.extend_from_slice(b"{}");
            }
            ev.timed.push(Bytes::from(buf));
        }
        ev.tail.push(Bytes::from_static(b"]"));
        stream::respond(ev, pacing, respond::JSON)
    }
}

struct Plan<'a> {
    model: &'a str,
    response_id: String,
    usage: UsageMetadata,
    /// The thought summary, when the request asked for thoughts.
    thought: Option<String>,
    reply: Reply,
}

impl Plan<'_> {
    fn thought_part(&self) -> Option<Part<'_>> {
        self.thought.as_deref().map(|text| Part::Thought {
            text,
            thought: true,
        })
    }

    fn finish_reason(&self) -> &'static str {
        match &self.reply {
            Reply::Text {
                truncated: true, ..
            } => "MAX_TOKENS",
            _ => "STOP",
        }
    }

    fn function_call(&self) -> Part<'_> {
        match &self.reply {
            Reply::Tool(call) => Part::FunctionCall {
                function_call: FunctionCall {
                    name: &call.name,
                    args: serde_json::json!({ "query": call.query }),
                },
            },
            Reply::Text { .. } => Part::Text { text: "".into() },
        }
    }

    /// `done`: the pieces sent before this chunk. Every chunk carries the usage so far, as Gemini's do: the
    /// prompt's count from the first, the answer's as it grows, the whole on the last.
    fn chunk<'p>(
        &'p self,
        parts: Vec<Part<'p>>,
        last: bool,
        done: u64,
    ) -> GenerateContentResponse<'p> {
        let so_far = UsageMetadata {
            prompt_token_count: self.usage.prompt_token_count,
            candidates_token_count: (done > 0).then_some(done),
            thoughts_token_count: None,
            total_token_count: self.usage.prompt_token_count + done,
        };
        GenerateContentResponse {
            candidates: [Candidate {
                content: Content {
                    role: "model",
                    parts,
                },
                finish_reason: last.then(|| self.finish_reason()),
                index: 0,
            }],
            usage_metadata: Some(if last { self.usage } else { so_far }),
            model_version: self.model,
            response_id: &self.response_id,
        }
    }

    /// One chunk per piece (at least one); the last carries `finishReason`
    /// and `usageMetadata` unless the stream is going to be cut.
    fn stream_chunks(&self, pacing: &Pacing) -> Vec<GenerateContentResponse<'_>> {
        let parts: Vec<Part<'_>> = match &self.reply {
            Reply::Text { pieces, .. } if pieces.is_empty() => vec![Part::Text { text: "".into() }],
            Reply::Text { pieces, .. } => pieces
                .iter()
                .map(|p| Part::Text {
                    text: p.as_str().into(),
                })
                .collect(),
            Reply::Tool(_) => vec![self.function_call()],
        };
        let n = parts.len();
        let chunks = parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| self.chunk(vec![p], i + 1 == n && !pacing.cut(), i as u64));
        // Thoughts come first, in a chunk of their own.
        self.thought_part()
            .map(|t| self.chunk(vec![t], false, 0))
            .into_iter()
            .chain(chunks)
            .collect()
    }
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates_token_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thoughts_token_count: Option<u64>,
    total_token_count: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentResponse<'a> {
    candidates: [Candidate<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_metadata: Option<UsageMetadata>,
    model_version: &'a str,
    response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'static str>,
    index: u32,
}

#[derive(Serialize)]
struct Content<'a> {
    role: &'static str,
    parts: Vec<Part<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Part<'a> {
    /// A thought summary (`thought: true`), sent when `thinkingConfig.includeThoughts` asks for them.
    Thought {
        text: &'a str,
        thought: bool,
    },
    Text {
        text: std::borrow::Cow<'a, str>,
    },
    #[serde(rename_all = "camelCase")]
    FunctionCall {
        function_call: FunctionCall<'a>,
    },
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    args: Value,
}
