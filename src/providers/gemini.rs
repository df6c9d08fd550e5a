//! Google Gemini `generateContent` / `streamGenerateContent` (the Gemini API's v1beta REST surface) as a provider.

use super::anthropic::parse_data_url;
use crate::canonical::{
    ChatRequest, ChatResponse, Effort, FinishReason, Image, Message, Part, ResponseFormat, Role,
    StreamEvent, Thinking, Tool, ToolChoice, Usage,
};
use crate::error::{ErrorCode, GatewayError};
use crate::sse::SseParser;
use serde_json::{json, Map, Value};

/// Gemini 3 rejects replayed function calls without the thought signature it attached to them, and canonical
/// messages cannot carry signatures. Google documents this value as the way to replay calls whose signature is
/// unknown (e.g. made by another model); models that do not validate signatures ignore it.
const UNKNOWN_THOUGHT_SIGNATURE: &str = "skip_thought_signature_validator";

/// The request path under a base URL ending in `/v1beta`.
pub fn path(model: &str, stream: bool) -> String {
    let model = crate::url::segment(model);
    if stream {
        format!("/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/models/{model}:generateContent")
    }
}

pub fn request_body(req: &ChatRequest) -> Result<Vec<u8>, GatewayError> {
    let mut body = Map::new();
    let system: Vec<&str> = req
        .system
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    if !system.is_empty() {
        body.insert(
            "systemInstruction".into(),
            json!({ "parts": [{ "text": system.join("\n\n") }] }),
        );
    }
    body.insert("contents".into(), contents(&req.messages)?);
    if !req.tools.is_empty() {
        let declarations: Vec<Value> = req.tools.iter().map(function_declaration).collect();
        body.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
    }
    if let Some(choice) = &req.tool_choice {
        body.insert(
            "toolConfig".into(),
            json!({ "functionCallingConfig": function_calling_config(choice) }),
        );
    }
    let config = generation_config(req);
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(serde_json::to_vec(&Value::Object(body)).unwrap_or_default())
}

/// Consecutive messages of one role are merged into one content: parallel function responses belong together,
/// and other dialects may split one turn into several messages.
fn contents(messages: &[Message]) -> Result<Value, GatewayError> {
    // A functionResponse names the function, not the call: names are looked up from the calls seen so far. The
    // latest call with an id wins, since ids synthesized for Gemini answers (`call_0`, ...) repeat across turns.
    let mut call_names: Vec<(&str, &str)> = Vec::new();
    let mut turns: Vec<(Role, Vec<Value>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let mut parts = Vec::with_capacity(m.content.len());
        for part in &m.content {
            if let Part::ToolCall { id, name, .. } = part {
                call_names.push((id, name));
            }
            parts.extend(gemini_part(part, i, &call_names)?);
        }
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((role, existing)) if *role == m.role => existing.extend(parts),
            _ => turns.push((m.role, parts)),
        }
    }
    Ok(turns
        .into_iter()
        .map(|(role, parts)| json!({ "role": role_name(role), "parts": parts }))
        .collect::<Vec<_>>()
        .into())
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "model",
    }
}

/// One part; `None` for empty text, which Gemini rejects.
fn gemini_part(
    part: &Part,
    message: usize,
    call_names: &[(&str, &str)],
) -> Result<Option<Value>, GatewayError> {
    Ok(Some(match part {
        Part::Text(t) if t.is_empty() => return Ok(None),
        Part::Text(t) => json!({ "text": t }),
        // Gemini takes no reasoning back as text (its own thoughts return only as signatures).
        Part::Reasoning { .. } => return Ok(None),
        Part::Image(image) => image_part(image),
        Part::ToolCall {
            id,
            name,
            arguments,
        } => json!({
            "functionCall": { "name": name, "args": super::tool_arguments_object(arguments, id, message, "Gemini")? },
            "thoughtSignature": UNKNOWN_THOUGHT_SIGNATURE,
        }),
        Part::ToolResult {
            call_id,
            content,
            is_error,
        } => {
            let Some(&(_, name)) = call_names.iter().rev().find(|(id, _)| id == call_id) else {
                return Err(super::unsupported(format!(
                    "messages[{message}]: tool result for call id {call_id:?} has no earlier tool call with that id \
                     (Gemini needs the function name)"
                )));
            };
            // Gemini's convention: "error" for failures, any other key for output.
            let key = if *is_error { "error" } else { "content" };
            json!({ "functionResponse": { "name": name, "response": { key: content } } })
        }
    }))
}

/// Inline data for base64 and `data:` URLs; other URLs become `fileData`, which Gemini fetches itself (public
/// and signed HTTPS URLs are accepted as file URIs).
fn image_part(image: &Image) -> Value {
    let inline =
        |mime: &str, data: &str| json!({ "inlineData": { "mimeType": mime, "data": data } });
    match image {
        Image::Base64 { media_type, data } => inline(media_type, data),
        Image::Url(url) => match parse_data_url(url) {
            Some((mime, data)) => inline(mime, data),
            None => json!({ "fileData": { "fileUri": url, "mimeType": guess_image_type(url) } }),
        },
    }
}

/// `fileData` requires a MIME type that the canonical URL does not carry: guessed from the extension.
fn guess_image_type(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => "image/*",
    }
}

/// `parametersJsonSchema` rather than `parameters`: the latter takes only an OpenAPI subset and rejects common
/// JSON Schema keywords (`additionalProperties`, `$schema`, ...) that client tool schemas are full of.
fn function_declaration(t: &Tool) -> Value {
    let mut d = json!({ "name": t.name });
    if let Some(desc) = &t.description {
        d["description"] = desc.as_str().into();
    }
    if matches!(&t.parameters, Value::Object(o) if !o.is_empty()) {
        d["parametersJsonSchema"] = t.parameters.clone();
    }
    d
}

fn function_calling_config(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => json!({ "mode": "AUTO" }),
        ToolChoice::None => json!({ "mode": "NONE" }),
        ToolChoice::Required => json!({ "mode": "ANY" }),
        ToolChoice::Tool(name) => json!({ "mode": "ANY", "allowedFunctionNames": [name] }),
    }
}

fn generation_config(req: &ChatRequest) -> Map<String, Value> {
    let mut g = Map::new();
    if let Some(t) = req.temperature {
        g.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        g.insert("topP".into(), p.into());
    }
    if let Some(n) = req.max_tokens {
        g.insert("maxOutputTokens".into(), n.into());
    }
    if !req.stop.is_empty() {
        g.insert("stopSequences".into(), req.stop.clone().into());
    }
    if let Some(seed) = req.seed {
        // Gemini seeds are 32-bit. Truncating keeps what a seed is for: the same seed gives the same sampling.
        g.insert("seed".into(), (seed as i32).into());
    }
    if let Some(t) = req.thinking {
        // The thoughts are shown (as reasoning) whenever reasoning is asked for; -1 lets the model decide.
        let budget = match t {
            Thinking::Off | Thinking::Effort(Effort::Minimal) => 0,
            Thinking::Adaptive => -1,
            t => t.budget().map_or(-1, i64::from),
        };
        g.insert(
            "thinkingConfig".into(),
            json!({ "thinkingBudget": budget, "includeThoughts": budget != 0 }),
        );
    }
    match &req.response_format {
        Some(ResponseFormat::JsonObject) => {
            g.insert("responseMimeType".into(), "application/json".into());
        }
        // `responseJsonSchema` takes standard JSON Schema; the older `responseSchema` only an OpenAPI subset.
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            g.insert("responseMimeType".into(), "application/json".into());
            g.insert("responseJsonSchema".into(), schema.clone());
        }
        None => {}
    }
    g
}

/// `GenerateContentResponse` as Gemini sends it, whole or as one stream chunk: lenient (any field may be missing
/// or null, unknown fields are ignored), typed where Meridian reads. Strings borrow unless they carry escapes.
mod wire {
    use serde::Deserialize;
    use serde_json::Value;
    use std::borrow::Cow;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Response<'a> {
        #[serde(default, borrow)]
        pub candidates: Option<Vec<Candidate<'a>>>,
        #[serde(default, borrow)]
        pub prompt_feedback: Option<PromptFeedback<'a>>,
        #[serde(default)]
        pub usage_metadata: Option<UsageMetadata>,
        #[serde(default, borrow)]
        pub response_id: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub model_version: Option<Cow<'a, str>>,
        /// An error object where an answer was expected (inside a 200 answer or a stream).
        #[serde(default, borrow)]
        pub error: Option<Error<'a>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Candidate<'a> {
        #[serde(default, borrow)]
        pub content: Option<Content<'a>>,
        #[serde(default, borrow)]
        pub finish_reason: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    pub struct Content<'a> {
        #[serde(default, borrow)]
        pub parts: Option<Vec<Part<'a>>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Part<'a> {
        #[serde(default, borrow)]
        pub text: Option<Cow<'a, str>>,
        #[serde(default)]
        pub thought: Option<bool>,
        #[serde(default, borrow)]
        pub function_call: Option<FunctionCall<'a>>,
    }

    #[derive(Deserialize)]
    pub struct FunctionCall<'a> {
        #[serde(default, borrow)]
        pub id: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub name: Option<Cow<'a, str>>,
        /// The model's arguments: free-form JSON, numbers kept as written.
        #[serde(default)]
        pub args: Option<Value>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PromptFeedback<'a> {
        #[serde(default, borrow)]
        pub block_reason: Option<Cow<'a, str>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct UsageMetadata {
        #[serde(default)]
        pub prompt_token_count: Option<u64>,
        #[serde(default)]
        pub candidates_token_count: Option<u64>,
        #[serde(default)]
        pub thoughts_token_count: Option<u64>,
        /// Of the prompt, the part served from a cached content (included in `promptTokenCount`).
        #[serde(default)]
        pub cached_content_token_count: Option<u64>,
    }

    #[derive(Deserialize)]
    pub struct Error<'a> {
        #[serde(default, borrow)]
        pub message: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub status: Option<Cow<'a, str>>,
    }

    /// An error body: `{"error":{"code","message","status"}}`.
    #[derive(Deserialize)]
    pub struct ErrorBody<'a> {
        #[serde(default, borrow)]
        pub error: Option<Error<'a>>,
    }
}

/// A complete answer. `id` is used when Gemini sends no `responseId`.
pub fn parse_response(body: &[u8], id: &str) -> Result<ChatResponse, GatewayError> {
    let v: wire::Response = serde_json::from_slice(body)
        .map_err(|e| upstream(format!("Gemini response is not valid JSON: {e}")))?;
    if let Some(e) = error_in(&v, ErrorCode::UpstreamError) {
        return Err(e);
    }
    let mut content = Vec::new();
    let mut calls = 0;
    for part in candidate_parts(&v) {
        match answer_part(part, calls) {
            Some(Part::Text(t)) => match content.last_mut() {
                // Gemini may split one text into several parts; the answer is one text.
                Some(Part::Text(prev)) => prev.push_str(&t),
                _ => content.push(Part::Text(t)),
            },
            Some(Part::Reasoning { text, signature }) => match content.last_mut() {
                Some(Part::Reasoning { text: prev, .. }) => prev.push_str(&text),
                _ => content.push(Part::Reasoning { text, signature }),
            },
            Some(call) => {
                calls += 1;
                content.push(call);
            }
            None => {}
        }
    }
    let finish = match chunk_finish(&v, calls > 0) {
        Some(f) => f,
        None if v.candidates.is_some() => FinishReason::Stop,
        None => return Err(upstream("Gemini response has no candidates")),
    };
    Ok(ChatResponse {
        id: v.response_id.as_deref().unwrap_or(id).to_owned(),
        model: v.model_version.as_deref().unwrap_or("").to_owned(),
        content,
        finish,
        usage: v.usage_metadata.as_ref().map(usage),
    })
}

fn candidate_parts<'v, 'a>(v: &'v wire::Response<'a>) -> &'v [wire::Part<'a>] {
    v.candidates
        .as_deref()
        .and_then(<[_]>::first)
        .and_then(|c| c.content.as_ref())
        .and_then(|c| c.parts.as_deref())
        .unwrap_or(&[])
}

/// Text, reasoning (a thought summary) or a function call; other part kinds have no canonical form. `calls`
/// numbers the function calls before this one, for ids: Gemini calls carry no id unless the API assigns one.
fn answer_part(part: &wire::Part, calls: u32) -> Option<Part> {
    if part.thought == Some(true) {
        // Gemini's thought signatures prove nothing to another provider: the text alone is carried.
        let text = part.text.as_deref().filter(|t| !t.is_empty())?;
        return Some(Part::Reasoning {
            text: text.to_owned(),
            signature: None,
        });
    }
    if let Some(text) = &part.text {
        return (!text.is_empty()).then(|| Part::Text(text.to_string()));
    }
    let call = part.function_call.as_ref()?;
    Some(Part::ToolCall {
        id: call
            .id
            .as_deref()
            .filter(|id| !id.is_empty())
            .map_or_else(|| format!("call_{calls}"), str::to_owned),
        name: call.name.as_deref().unwrap_or("").to_owned(),
        arguments: call
            .args
            .as_ref()
            .map_or_else(|| "{}".to_owned(), Value::to_string),
    })
}

/// The finish reason of a response or chunk, if it has one. A prompt blocked before generation has no candidates,
/// only `promptFeedback.blockReason`.
fn chunk_finish(v: &wire::Response, saw_calls: bool) -> Option<FinishReason> {
    let first = v.candidates.as_deref().and_then(<[_]>::first);
    if let Some(reason) = first.and_then(|c| c.finish_reason.as_deref()) {
        return Some(finish_reason(reason, saw_calls));
    }
    let blocked = v
        .prompt_feedback
        .as_ref()
        .is_some_and(|f| f.block_reason.is_some());
    (first.is_none() && blocked).then_some(FinishReason::ContentFilter)
}

fn finish_reason(reason: &str, saw_calls: bool) -> FinishReason {
    match reason {
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            FinishReason::ContentFilter
        }
        // Gemini ends a turn that called functions with STOP; canonical answers say why they stopped.
        _ if saw_calls => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

/// Thinking tokens are billed as output, as OpenAI counts reasoning tokens in `completion_tokens`.
fn usage(meta: &wire::UsageMetadata) -> Usage {
    Usage {
        input_tokens: meta.prompt_token_count.unwrap_or(0),
        output_tokens: meta
            .candidates_token_count
            .unwrap_or(0)
            .saturating_add(meta.thoughts_token_count.unwrap_or(0)),
        cached_input_tokens: meta.cached_content_token_count,
        cache_write_tokens: None,
        reasoning_tokens: meta.thoughts_token_count,
    }
}

/// The provider's own message from an error body, `{"error":{"code","message","status"}}`.
pub fn error_message(body: &[u8]) -> Option<String> {
    let v: wire::ErrorBody = serde_json::from_slice(body).ok()?;
    v.error?.message.map(std::borrow::Cow::into_owned)
}

/// An error object inside a 200 answer or stream.
fn error_in(v: &wire::Response, code: ErrorCode) -> Option<GatewayError> {
    let e = v.error.as_ref()?;
    let message = e.message.as_deref().unwrap_or("no message");
    let status = e.status.as_deref().unwrap_or("error");
    // Throttling and overload keep their meaning (clients retry them), as the same HTTP statuses would.
    let code = match status {
        "RESOURCE_EXHAUSTED" => ErrorCode::UpstreamRateLimited,
        "UNAVAILABLE" => ErrorCode::UpstreamOverloaded,
        _ => code,
    };
    Some(GatewayError::new(
        code,
        format!("Gemini reported {status}: {message}"),
    ))
}

/// An answer that is not the API's shape.
fn upstream(message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorCode::UpstreamMalformed, message)
}

/// Decodes a `streamGenerateContent?alt=sse` answer: each event is a whole `GenerateContentResponse` chunk.
#[derive(Debug)]
pub struct StreamDecoder {
    sse: SseParser,
    id: String,
    model: String,
    started: bool,
    /// Function calls so far: the next call's index and synthesized id.
    calls: u32,
    finished: bool,
    /// Gemini repeats cumulative usage on chunks; only the last one counts, reported at the end.
    usage: Option<Usage>,
}

impl StreamDecoder {
    /// `id` and `model` are used for `Start` when the chunks carry no `responseId` / `modelVersion`.
    pub fn new(id: String, model: String) -> Self {
        StreamDecoder {
            sse: SseParser::new(),
            id,
            model,
            started: false,
            calls: 0,
            finished: false,
            usage: None,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamEvent>, GatewayError> {
        let mut out = Vec::new();
        for event in self.sse.push(bytes)? {
            if event.data.trim().is_empty() {
                continue;
            }
            let v: wire::Response = serde_json::from_slice(event.data.as_bytes())
                .map_err(|e| upstream(format!("Gemini sent an unreadable stream chunk: {e}")))?;
            self.chunk(&v, &mut out)?;
        }
        Ok(out)
    }

    /// The body ended. Gemini sends no end marker: a stream that never gave a finish reason was cut off.
    pub fn end(&mut self) -> Result<Vec<StreamEvent>, GatewayError> {
        if !self.finished {
            return Err(GatewayError::new(
                ErrorCode::UpstreamStreamTruncated,
                "Gemini stream ended before completion",
            ));
        }
        Ok(self
            .usage
            .take()
            .map(StreamEvent::Usage)
            .into_iter()
            .collect())
    }

    fn chunk(
        &mut self,
        v: &wire::Response,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), GatewayError> {
        if let Some(e) = error_in(v, ErrorCode::UpstreamStreamError) {
            return Err(e);
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: v.response_id.as_deref().unwrap_or(&self.id).to_owned(),
                model: v.model_version.as_deref().unwrap_or(&self.model).to_owned(),
            });
            // Gemini counts the prompt in its first chunk: said at once, before the first content, so that an
            // Anthropic-dialect client reads it in `message_start` (the final usage follows at the end).
            if let Some(meta) = &v.usage_metadata {
                let first = usage(meta);
                if first.input_tokens > 0 {
                    out.push(StreamEvent::Usage(Usage {
                        output_tokens: 0,
                        reasoning_tokens: None,
                        ..first
                    }));
                }
            }
        }
        for part in candidate_parts(v) {
            match answer_part(part, self.calls) {
                Some(Part::Text(t)) => out.push(StreamEvent::Text(t)),
                Some(Part::Reasoning { text, .. }) => out.push(StreamEvent::Reasoning(text)),
                Some(Part::ToolCall {
                    id,
                    name,
                    arguments,
                }) => {
                    let index = self.calls;
                    self.calls += 1;
                    out.push(StreamEvent::ToolCallStart { index, id, name });
                    out.push(StreamEvent::ToolCallArgs {
                        index,
                        delta: arguments,
                    });
                }
                _ => {}
            }
        }
        if let Some(meta) = &v.usage_metadata {
            self.usage = Some(usage(meta));
        }
        if !self.finished {
            if let Some(reason) = chunk_finish(v, self.calls > 0) {
                self.finished = true;
                out.push(StreamEvent::Finish(reason));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESPONSE: &str = include_str!("../../tests/fixtures/gemini/response.json");
    const CALL_RESPONSE: &str =
        include_str!("../../tests/fixtures/gemini/function_call_response.json");
    const STREAM: &str = include_str!("../../tests/fixtures/gemini/stream.sse");

    fn msg(role: Role, content: Vec<Part>) -> Message {
        Message { role, content }
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

    fn body_json(req: &ChatRequest) -> Value {
        serde_json::from_slice::<Value>(&request_body(req).unwrap()).unwrap()
    }

    fn decode(chunks: &[&[u8]]) -> Result<Vec<StreamEvent>, GatewayError> {
        let mut d = StreamDecoder::new("gw-id".into(), "gemini-configured".into());
        let mut events = Vec::new();
        for c in chunks {
            events.extend(d.push(c)?);
        }
        events.extend(d.end()?);
        Ok(events)
    }

    #[test]
    fn paths() {
        assert_eq!(
            path("gemini-2.5-flash", false),
            "/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            path("gemini-2.5-flash", true),
            "/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn request_maps_every_canonical_field() {
        let req = ChatRequest {
            model: "alias".into(),
            system: vec!["Be brief.".into(), String::new(), "Metric.".into()],
            messages: vec![
                msg(
                    Role::User,
                    vec![
                        Part::Text("Weather in Paris, and the time?".into()),
                        Part::Image(Image::Url("https://example.com/p.PNG?size=large".into())),
                        Part::Image(Image::Url("https://example.com/photo".into())),
                        Part::Image(Image::Url("data:image/jpeg;base64,/9j/4AAQ".into())),
                        Part::Image(Image::Base64 {
                            media_type: "image/webp".into(),
                            data: "UklGRg==".into(),
                        }),
                    ],
                ),
                msg(
                    Role::Assistant,
                    vec![
                        Part::Text("Checking.".into()),
                        call("call_0", "get_weather", r#"{"city":"Paris"}"#),
                        call("call_1", "get_time", ""),
                    ],
                ),
                // Separate user messages, as OpenAI `tool` messages arrive: merged into one content.
                msg(Role::User, vec![result("call_0", "15C", false)]),
                msg(
                    Role::User,
                    vec![
                        result("call_1", "clock broken", true),
                        Part::Text("Thanks".into()),
                    ],
                ),
                // Ids synthesized for Gemini answers repeat across turns: the latest call with the id names it.
                msg(Role::Assistant, vec![call("call_0", "get_time", "{}")]),
                msg(Role::User, vec![result("call_0", "12:00", false)]),
            ],
            tools: vec![
                Tool {
                    name: "get_weather".into(),
                    description: Some("Current weather".into()),
                    parameters: json!({
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "additionalProperties": false
                    }),
                },
                Tool {
                    name: "get_time".into(),
                    description: None,
                    parameters: Value::Null,
                },
            ],
            tool_choice: Some(ToolChoice::Tool("get_weather".into())),
            response_format: Some(ResponseFormat::JsonSchema {
                name: "answer".into(),
                schema: json!({"type": "object", "properties": {"answer": {"type": "string"}}}),
                strict: Some(true),
            }),
            temperature: Some(0.5),
            top_p: Some(0.9),
            max_tokens: Some(100),
            stop: vec!["END".into()],
            seed: Some(7),
            user: Some("u-1".into()),
            stream: true,
            include_usage: false,
            cache_points: Vec::new(),
            parallel_tool_calls: None,
            thinking: None,
        };
        let sig = UNKNOWN_THOUGHT_SIGNATURE;
        let want = json!({
            "systemInstruction": {"parts": [{"text": "Be brief.\n\nMetric."}]},
            "contents": [
                {"role": "user", "parts": [
                    {"text": "Weather in Paris, and the time?"},
                    {"fileData": {"fileUri": "https://example.com/p.PNG?size=large", "mimeType": "image/png"}},
                    {"fileData": {"fileUri": "https://example.com/photo", "mimeType": "image/*"}},
                    {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
                    {"inlineData": {"mimeType": "image/webp", "data": "UklGRg=="}},
                ]},
                {"role": "model", "parts": [
                    {"text": "Checking."},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": sig},
                    {"functionCall": {"name": "get_time", "args": {}}, "thoughtSignature": sig},
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"content": "15C"}}},
                    {"functionResponse": {"name": "get_time", "response": {"error": "clock broken"}}},
                    {"text": "Thanks"},
                ]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "get_time", "args": {}}, "thoughtSignature": sig},
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_time", "response": {"content": "12:00"}}},
                ]},
            ],
            "tools": [{"functionDeclarations": [
                {"name": "get_weather", "description": "Current weather", "parametersJsonSchema": {
                    "type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": false}},
                {"name": "get_time"},
            ]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
            "generationConfig": {
                "temperature": 0.5,
                "topP": 0.9,
                "maxOutputTokens": 100,
                "stopSequences": ["END"],
                "seed": 7,
                "responseMimeType": "application/json",
                "responseJsonSchema": {"type": "object", "properties": {"answer": {"type": "string"}}},
            },
        });
        assert_eq!(body_json(&req), want);
    }

    #[test]
    fn request_minimal_and_modes() {
        let req = ChatRequest {
            messages: vec![msg(Role::User, vec![Part::Text("hi".into())])],
            ..Default::default()
        };
        assert_eq!(
            body_json(&req),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        );
        for (choice, want) in [
            (ToolChoice::Auto, json!({"mode": "AUTO"})),
            (ToolChoice::None, json!({"mode": "NONE"})),
            (ToolChoice::Required, json!({"mode": "ANY"})),
        ] {
            let r = ChatRequest {
                tool_choice: Some(choice),
                ..req.clone()
            };
            assert_eq!(body_json(&r)["toolConfig"]["functionCallingConfig"], want);
        }
        let r = ChatRequest {
            response_format: Some(ResponseFormat::JsonObject),
            seed: Some(1 << 40 | 5),
            ..req
        };
        assert_eq!(
            body_json(&r)["generationConfig"],
            json!({"seed": 5, "responseMimeType": "application/json"})
        );
    }

    #[test]
    fn request_errors() {
        let orphan = ChatRequest {
            messages: vec![msg(Role::User, vec![result("toolu_9", "x", false)])],
            ..Default::default()
        };
        let e = request_body(&orphan).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message.starts_with(
                "messages[0]: tool result for call id \"toolu_9\" has no earlier tool call"
            ),
            "{}",
            e.message
        );
        let bad_args = ChatRequest {
            messages: vec![msg(Role::Assistant, vec![call("c", "f", "[1]")])],
            ..Default::default()
        };
        assert_eq!(
            request_body(&bad_args).unwrap_err().message,
            "messages[0]: the arguments of tool call \"c\" are not a JSON object, which Gemini requires"
        );
    }

    #[test]
    fn parses_text_response() {
        let r = parse_response(RESPONSE.as_bytes(), "gw-id").unwrap();
        assert_eq!(
            r,
            ChatResponse {
                id: "mM0eaOG7Ft2SqtsP5q-h8AI".into(),
                model: "gemini-2.5-flash".into(),
                content: vec![
                    Part::Reasoning {
                        text: "**Recalling the capital**\n\nThe user wants the capital of France."
                            .into(),
                        signature: None,
                    },
                    Part::Text(
                        "The capital of France is Paris. It is known for the Eiffel Tower.".into()
                    )
                ],
                finish: FinishReason::Stop,
                usage: Some(Usage {
                    input_tokens: 9,
                    output_tokens: 17 + 20,
                    reasoning_tokens: Some(20),
                    ..Default::default()
                }),
            }
        );
    }

    #[test]
    fn parses_function_call_response_with_synthesized_ids() {
        let r = parse_response(CALL_RESPONSE.as_bytes(), "gw-id").unwrap();
        assert_eq!(
            r,
            ChatResponse {
                id: "gw-id".into(),
                model: "gemini-2.5-flash".into(),
                content: vec![
                    Part::Text("Let me look both up.".into()),
                    call(
                        "call_0",
                        "get_weather",
                        r#"{"location":"Paris, France","unit":"celsius"}"#
                    ),
                    call("call_1", "get_time", r#"{"timezone":"Europe/Paris"}"#),
                ],
                finish: FinishReason::ToolCalls,
                usage: Some(Usage {
                    input_tokens: 120,
                    output_tokens: 24,
                    ..Default::default()
                }),
            }
        );

        // The answer replayed with its results finds the function names again.
        let follow_up = ChatRequest {
            messages: vec![
                msg(
                    Role::User,
                    vec![Part::Text("Weather and time in Paris?".into())],
                ),
                msg(Role::Assistant, r.content),
                msg(
                    Role::User,
                    vec![
                        result("call_1", "13:00", false),
                        result("call_0", "15C", false),
                    ],
                ),
            ],
            ..Default::default()
        };
        let body = body_json(&follow_up);
        assert_eq!(
            body["contents"][2]["parts"],
            json!([
                {"functionResponse": {"name": "get_time", "response": {"content": "13:00"}}},
                {"functionResponse": {"name": "get_weather", "response": {"content": "15C"}}},
            ])
        );
    }

    #[test]
    fn uses_call_ids_when_gemini_sends_them() {
        let body = json!({"candidates": [{"content": {"parts": [
            {"functionCall": {"id": "fc-7", "name": "f", "args": {}}}]}, "finishReason": "STOP"}]});
        let r = parse_response(body.to_string().as_bytes(), "x").unwrap();
        assert_eq!(r.content, vec![call("fc-7", "f", "{}")]);
    }

    #[test]
    fn maps_finish_reasons() {
        for (reason, want) in [
            ("STOP", FinishReason::Stop),
            ("MAX_TOKENS", FinishReason::Length),
            ("SAFETY", FinishReason::ContentFilter),
            ("RECITATION", FinishReason::ContentFilter),
            ("BLOCKLIST", FinishReason::ContentFilter),
            ("PROHIBITED_CONTENT", FinishReason::ContentFilter),
            ("SPII", FinishReason::ContentFilter),
            ("OTHER", FinishReason::Stop),
        ] {
            let body = json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]});
            let r = parse_response(body.to_string().as_bytes(), "x").unwrap();
            assert_eq!(r.finish, want, "{reason}");
        }
        let blocked = br#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":4,"totalTokenCount":4}}"#;
        let r = parse_response(blocked, "x").unwrap();
        assert_eq!(
            (r.finish, r.content.len(), r.usage.unwrap().input_tokens),
            (FinishReason::ContentFilter, 0, 4)
        );
    }

    #[test]
    fn response_errors() {
        let body = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("API key not valid. Please pass a valid API key.")
        );
        let e = parse_response(body, "x").unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Upstream);
        assert_eq!(
            e.message,
            "Gemini reported INVALID_ARGUMENT: API key not valid. Please pass a valid API key."
        );
        assert_eq!(error_message(b"nope"), None);
        for body in [&b"nope"[..], b"{}", b"[]", b"7"] {
            assert_eq!(
                parse_response(body, "x").unwrap_err().kind(),
                crate::error::ErrorKind::Upstream
            );
        }
    }

    fn stream_events() -> Vec<StreamEvent> {
        vec![
            StreamEvent::Start {
                id: "Fk0faKGdIsWJqtsPzcOp8Qc".into(),
                model: "gemini-2.5-flash".into(),
            },
            // The prompt's count, as the first chunk says it (before any content).
            StreamEvent::Usage(Usage {
                input_tokens: 8,
                ..Default::default()
            }),
            StreamEvent::Text("The quick".into()),
            StreamEvent::Text(" brown fox jumps — über".into()),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_0".into(),
                name: "lookup".into(),
            },
            StreamEvent::ToolCallArgs {
                index: 0,
                delta: r#"{"q":"fox"}"#.into(),
            },
            StreamEvent::Finish(FinishReason::ToolCalls),
            StreamEvent::Usage(Usage {
                input_tokens: 8,
                output_tokens: 19 + 4,
                reasoning_tokens: Some(4),
                ..Default::default()
            }),
        ]
    }

    #[test]
    fn decodes_stream() {
        assert_eq!(decode(&[STREAM.as_bytes()]).unwrap(), stream_events());
    }

    #[test]
    fn same_events_at_every_split_point() {
        let bytes = STREAM.as_bytes();
        for i in 0..=bytes.len() {
            assert_eq!(
                decode(&[&bytes[..i], &bytes[i..]]).unwrap(),
                stream_events(),
                "split at {i}"
            );
        }
    }

    #[test]
    fn stream_falls_back_to_given_id_and_model() {
        let chunk = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hi\"}]},\"finishReason\":\"MAX_TOKENS\"}]}\n\n";
        assert_eq!(
            decode(&[chunk.as_bytes()]).unwrap(),
            [
                StreamEvent::Start {
                    id: "gw-id".into(),
                    model: "gemini-configured".into()
                },
                StreamEvent::Text("hi".into()),
                StreamEvent::Finish(FinishReason::Length),
            ]
        );
    }

    #[test]
    fn stream_failures() {
        let last = STREAM.rfind("data: ").unwrap();
        let e = decode(&[&STREAM.as_bytes()[..last]]).unwrap_err();
        assert_eq!(e.message, "Gemini stream ended before completion");
        assert!(decode(&[]).is_err());

        let error = "data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n";
        let e = decode(&[&STREAM.as_bytes()[..last], error.as_bytes()]).unwrap_err();
        assert_eq!(
            e.message,
            "Gemini reported UNAVAILABLE: The model is overloaded."
        );

        let e = decode(&[b"data: {oops\n\n"]).unwrap_err();
        assert!(
            e.message
                .starts_with("Gemini sent an unreadable stream chunk"),
            "{}",
            e.message
        );
    }

    #[test]
    fn hostile_input_never_panics() {
        let inputs: [&[u8]; 6] = [
            b"data: {\"candidates\":7}\n\n",
            b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":5},{\"text\":9},null]}}]}\n\n",
            b"data: {\"usageMetadata\":{\"promptTokenCount\":-1,\"candidatesTokenCount\":1e99}}\n\n",
            b"data: {\"candidates\":[{\"finishReason\":42}],\"promptFeedback\":[]}\n\n",
            b"data: []\n\ndata: null\n\n",
            b"\xff\xfe\x00data:\n\n",
        ];
        for input in inputs {
            let mut d = StreamDecoder::new(String::new(), String::new());
            let _ = d.push(input);
            let _ = d.end();
            let _ = parse_response(input, "x");
        }
    }

    /// Recorded traffic (sources in tests/fixtures/SOURCES.md): Gemini's prompt count includes the cached content.
    #[test]
    fn usage_keeps_the_cached_content_count() {
        let whole = include_str!("../../tests/fixtures/gemini/usage_cached_thoughts.json");
        let u = parse_response(whole.as_bytes(), "x")
            .unwrap()
            .usage
            .unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (323388, 397));
        assert_eq!(u.cached_input_tokens, Some(323383));
        assert_eq!(u.reasoning_tokens, None, "not reported, so absent");
    }
}
