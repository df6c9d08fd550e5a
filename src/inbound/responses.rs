//! The OpenAI Responses API (`POST /v1/responses`) as spoken by clients: the request read into the canonical one
//! (every provider kind is reached through translation, so that conversations continue by
//! `previous_response_id` on any of them), and answers written as the `response` object or its stream of semantic
//! events.

use super::raw::RawObject;
use crate::canonical::{
    ChatRequest, ChatResponse, FinishReason, Image, Part, ResponseFormat, Role, StreamEvent,
    Thinking, Tool, ToolChoice, Usage,
};
use crate::error::{ErrorCode, GatewayError};
use serde::Deserialize;
use serde_json::{json, Value};

/// A validated Responses request.
#[derive(Debug, Clone)]
pub struct ResponsesRequest {
    /// The response's id (`resp_…`), chosen by the gateway.
    pub id: String,
    pub model: String,
    pub stream: bool,
    /// Keep the input and output for `previous_response_id` and `GET` (the API's default).
    pub store: bool,
    pub previous_response_id: Option<String>,
    pub canonical: Box<ChatRequest>,
    /// This request's input, as items: what a stored response adds to the conversation.
    pub input_items: Vec<Value>,
    /// What the `response` object echoes of the request.
    pub echo: Echo,
    pub body: RawObject,
}

/// Request fields the `response` object repeats.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    pub instructions: Option<String>,
    pub tools: Value,
    pub tool_choice: Value,
    pub text: Value,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_output_tokens: Option<u32>,
    pub metadata: Value,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<String>,
    pub store: bool,
    pub reasoning: Value,
}

#[derive(Deserialize)]
struct Body {
    model: Option<String>,
    input: Option<Value>,
    instructions: Option<String>,
    tools: Option<Vec<ToolDef>>,
    tool_choice: Option<Value>,
    text: Option<TextConfig>,
    max_output_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    reasoning: Option<ReasoningConfig>,
    metadata: Option<Value>,
    user: Option<String>,
    stream: Option<bool>,
    store: Option<bool>,
    previous_response_id: Option<String>,
    parallel_tool_calls: Option<bool>,
}

#[derive(Deserialize)]
struct ToolDef {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    description: Option<String>,
    parameters: Option<Value>,
}

#[derive(Deserialize)]
struct TextConfig {
    format: Option<Format>,
}

#[derive(Deserialize)]
struct Format {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    schema: Option<Value>,
    strict: Option<bool>,
}

#[derive(Deserialize)]
struct ReasoningConfig {
    effort: Option<String>,
}

/// One input item: a message (`role` and `content`), a `function_call` or a `function_call_output`. Flat, as the
/// API's items are told apart by `type` (absent for a message written as `{role, content}`).
#[derive(Deserialize)]
struct Item {
    #[serde(rename = "type")]
    kind: Option<String>,
    role: Option<String>,
    content: Option<Value>,
    call_id: Option<String>,
    name: Option<String>,
    arguments: Option<String>,
    output: Option<Value>,
}

fn invalid(message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorCode::InvalidValue, message)
}

fn unsupported(message: impl Into<String>) -> GatewayError {
    GatewayError::new(ErrorCode::UnsupportedInput, message)
}

/// The request's input as items: a string is one user message.
fn input_items(input: Option<Value>) -> Result<Vec<Value>, GatewayError> {
    match input {
        Some(Value::String(s)) => Ok(vec![json!({
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": s}]
        })]),
        Some(Value::Array(items)) if !items.is_empty() => Ok(items),
        Some(Value::Array(_)) => Err(invalid("`input` must not be empty")),
        None | Some(Value::Null) => Err(invalid("missing required parameter `input`")),
        Some(_) => Err(invalid("`input` must be a string or an array of items")),
    }
}

/// Reads and validates a Responses request. `previous`: the stored conversation `previous_response_id` names
/// (its input and output items), which the new input continues.
pub fn parse(
    raw: &[u8],
    previous: Option<&[Value]>,
    id: String,
) -> Result<ResponsesRequest, GatewayError> {
    let body = RawObject::parse(raw)?;
    let b: Body = serde_json::from_slice(raw)
        .map_err(|e| GatewayError::invalid(format!("request body is malformed: {e}")))?;
    let model = match b.model {
        Some(m) if !m.is_empty() => {
            super::check_model_name(&m).map_err(|why| {
                GatewayError::new(ErrorCode::InvalidModel, format!("`model` {why}"))
            })?;
            m
        }
        _ => {
            return Err(GatewayError::new(
                ErrorCode::InvalidModel,
                "missing required parameter `model`",
            ))
        }
    };
    let items = input_items(b.input)?;
    let mut c = ChatRequest {
        model: model.clone(),
        stream: b.stream.unwrap_or(false),
        include_usage: true,
        temperature: b.temperature,
        top_p: b.top_p,
        max_tokens: b.max_output_tokens,
        user: b.user,
        parallel_tool_calls: b.parallel_tool_calls,
        ..Default::default()
    };
    if let Some(i) = &b.instructions {
        c.system.push(i.clone());
    }
    for (i, item) in previous
        .unwrap_or_default()
        .iter()
        .chain(&items)
        .enumerate()
    {
        read_item(item, i, &mut c)?;
    }
    let mut tools_echo = Vec::new();
    for (i, t) in b.tools.unwrap_or_default().into_iter().enumerate() {
        if t.kind.as_deref() != Some("function") {
            return Err(unsupported(format!(
                "tools[{i}]: tool type {:?} is not supported (only function tools)",
                t.kind.unwrap_or_default()
            )));
        }
        let name = t
            .name
            .ok_or_else(|| invalid(format!("tools[{i}].name is required")))?;
        let parameters = t.parameters.unwrap_or_else(|| json!({"type": "object"}));
        tools_echo.push(json!({"type": "function", "name": name, "description": t.description, "parameters": parameters, "strict": true}));
        c.tools.push(Tool {
            name,
            description: t.description,
            parameters,
        });
    }
    c.tool_choice = match &b.tool_choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => return Err(invalid(format!("tool_choice: unknown value {other:?}"))),
        }),
        Some(v) => match (
            v.get("type").and_then(Value::as_str),
            v.get("name").and_then(Value::as_str),
        ) {
            (Some("function"), Some(name)) => Some(ToolChoice::Tool(name.to_owned())),
            _ => return Err(invalid(
                "tool_choice must be auto, none, required or {\"type\":\"function\",\"name\":...}",
            )),
        },
    };
    let format = b.text.and_then(|t| t.format);
    let text_echo = match &format {
        Some(f) => {
            json!({"format": {"type": f.kind, "name": f.name, "schema": f.schema, "strict": f.strict}})
        }
        None => json!({"format": {"type": "text"}}),
    };
    c.response_format = match format {
        None => None,
        Some(f) => match f.kind.as_deref() {
            Some("text") | None => None,
            Some("json_object") => Some(ResponseFormat::JsonObject),
            Some("json_schema") => Some(ResponseFormat::JsonSchema {
                name: f.name.unwrap_or_else(|| "response".into()),
                schema: f
                    .schema
                    .ok_or_else(|| invalid("text.format.schema is required"))?,
                strict: f.strict,
            }),
            Some(other) => {
                return Err(invalid(format!(
                    "text.format.type: unknown value {other:?}"
                )))
            }
        },
    };
    let effort = b.reasoning.and_then(|r| r.effort);
    c.thinking = match effort.as_deref() {
        None => None,
        Some(name) => Some(
            Thinking::from_openai_effort(name)
                .ok_or_else(|| invalid(format!("reasoning.effort: unknown value {name:?}")))?,
        ),
    };
    let store = b.store.unwrap_or(true);
    let echo = Echo {
        instructions: b.instructions,
        tools: Value::Array(tools_echo),
        tool_choice: b.tool_choice.unwrap_or_else(|| json!("auto")),
        text: text_echo,
        temperature: c.temperature,
        top_p: c.top_p,
        max_output_tokens: c.max_tokens,
        metadata: b.metadata.unwrap_or_else(|| json!({})),
        parallel_tool_calls: b.parallel_tool_calls.unwrap_or(true),
        previous_response_id: b.previous_response_id.clone(),
        store,
        reasoning: json!({"effort": effort, "summary": Value::Null}),
    };
    Ok(ResponsesRequest {
        id,
        model,
        stream: c.stream,
        store,
        previous_response_id: b.previous_response_id,
        canonical: Box::new(c),
        input_items: items,
        echo,
        body,
    })
}

fn read_item(v: &Value, i: usize, out: &mut ChatRequest) -> Result<(), GatewayError> {
    let item: Item = serde_json::from_value(v.clone())
        .map_err(|e| invalid(format!("input[{i}] is malformed: {e}")))?;
    match item.kind.as_deref() {
        None | Some("message") => {
            let role = item.role.as_deref().unwrap_or("user");
            let parts: Vec<Part> = match item.content {
                Some(Value::String(s)) => vec![Part::Text(s)],
                Some(Value::Array(parts)) => parts
                    .iter()
                    .enumerate()
                    .map(|(j, p)| match p.get("type").and_then(Value::as_str) {
                        Some("input_text" | "output_text" | "text") => Ok(Part::Text(
                            p.get("text").and_then(Value::as_str).unwrap_or_default().to_owned(),
                        )),
                        Some("refusal") => Ok(Part::Text(
                            p.get("refusal").and_then(Value::as_str).unwrap_or_default().to_owned(),
                        )),
                        Some("input_image") => p
                            .get("image_url")
                            .and_then(Value::as_str)
                            .map(|u| Part::Image(Image::from_url(u)))
                            .ok_or_else(|| unsupported(format!("input[{i}].content[{j}]: only images given by `image_url` are supported"))),
                        other => Err(unsupported(format!(
                            "input[{i}].content[{j}].type: {other:?} is not supported"
                        ))),
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(invalid(format!("input[{i}].content must be a string or an array"))),
            };
            match role {
                "system" | "developer" => {
                    let text: String = parts
                        .iter()
                        .filter_map(|p| match p {
                            Part::Text(t) => Some(t.as_str()),
                            _ => None,
                        })
                        .collect();
                    out.system.push(text);
                }
                "user" => parts.into_iter().for_each(|p| out.push_part(Role::User, p)),
                "assistant" => parts
                    .into_iter()
                    .for_each(|p| out.push_part(Role::Assistant, p)),
                other => return Err(invalid(format!("input[{i}].role: unknown role {other:?}"))),
            }
        }
        Some("function_call") => {
            let (Some(call_id), Some(name)) = (item.call_id, item.name) else {
                return Err(invalid(format!(
                    "input[{i}]: a function_call needs `call_id` and `name`"
                )));
            };
            out.push_part(
                Role::Assistant,
                Part::ToolCall {
                    id: call_id,
                    name,
                    arguments: item.arguments.unwrap_or_else(|| "{}".into()),
                },
            );
        }
        Some("function_call_output") => {
            let call_id = item.call_id.ok_or_else(|| {
                invalid(format!(
                    "input[{i}]: a function_call_output needs `call_id`"
                ))
            })?;
            let content = match item.output {
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => String::new(),
            };
            out.push_part(
                Role::User,
                Part::ToolResult {
                    call_id,
                    content,
                    is_error: false,
                },
            );
        }
        // The model's reasoning from an earlier turn: carried by no other kind, left out.
        Some("reasoning") => {}
        Some(other) => {
            return Err(unsupported(format!(
                "input[{i}].type: item type {other:?} is not supported"
            )))
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Answers.

/// How a finished answer ends: `completed`, or `incomplete` with its reason.
fn status(finish: FinishReason) -> (&'static str, Value) {
    match finish {
        FinishReason::Length => ("incomplete", json!({"reason": "max_output_tokens"})),
        FinishReason::ContentFilter => ("incomplete", json!({"reason": "content_filter"})),
        FinishReason::Stop
        | FinishReason::StopSequence
        | FinishReason::ToolCalls
        | FinishReason::Refusal => ("completed", Value::Null),
    }
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_input_tokens.unwrap_or(0)},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens.unwrap_or(0)},
        "total_tokens": u.input_tokens + u.output_tokens,
    })
}

fn message_item(id: &str, text: &str, refusal: bool, status: &str) -> Value {
    let part = if refusal {
        json!({"type": "refusal", "refusal": text})
    } else {
        json!({"type": "output_text", "text": text, "annotations": []})
    };
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": [part]})
}

fn call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": arguments, "status": status})
}

fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"type": "reasoning", "id": id, "summary": [{"type": "summary_text", "text": text}]})
}

/// The `response` object around `output`.
pub fn response_object(
    id: &str,
    model: &str,
    created_at: u64,
    echo: &Echo,
    (status, incomplete): (&str, Value),
    output: Vec<Value>,
    usage: Option<&Usage>,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": Value::Null,
        "incomplete_details": incomplete,
        "instructions": echo.instructions,
        "max_output_tokens": echo.max_output_tokens,
        "model": model,
        "output": output,
        "parallel_tool_calls": echo.parallel_tool_calls,
        "previous_response_id": echo.previous_response_id,
        "reasoning": echo.reasoning,
        "store": echo.store,
        "temperature": echo.temperature,
        "text": echo.text,
        "tool_choice": echo.tool_choice,
        "tools": echo.tools,
        "top_p": echo.top_p,
        "truncation": "disabled",
        "usage": usage.map(usage_json),
        "user": Value::Null,
        "metadata": echo.metadata,
    })
}

/// A complete answer as the `response` object.
pub fn render_response(
    resp: &ChatResponse,
    id: &str,
    fallback_model: &str,
    created_at: u64,
    echo: &Echo,
) -> Value {
    let model = if resp.model.is_empty() {
        fallback_model
    } else {
        &resp.model
    };
    let mut output = Vec::new();
    let mut text = String::new();
    for p in &resp.content {
        match p {
            Part::Reasoning { text: r, .. } => {
                output.push(reasoning_item(&format!("rs_{id}_{}", output.len()), r))
            }
            Part::Text(t) => text.push_str(t),
            Part::ToolCall {
                id: call_id,
                name,
                arguments,
            } => output.push(call_item(
                &format!("fc_{id}_{}", output.len()),
                call_id,
                name,
                arguments,
                "completed",
            )),
            Part::Image(_) | Part::ToolResult { .. } => {}
        }
    }
    if !text.is_empty() {
        let refusal = resp.finish == FinishReason::Refusal;
        output.insert(
            output
                .iter()
                .take_while(|o| o["type"] == "reasoning")
                .count(),
            message_item(&format!("msg_{id}"), &text, refusal, "completed"),
        );
    }
    response_object(
        id,
        model,
        created_at,
        echo,
        status(resp.finish),
        output,
        resp.usage.as_ref(),
    )
}

/// Writes canonical stream events as the Responses API's semantic events.
pub struct StreamEncoder {
    id: String,
    model: String,
    created_at: u64,
    echo: Echo,
    seq: u64,
    started: bool,
    done: bool,
    /// Output items so far (complete ones as they will read in `response.completed`).
    output: Vec<Value>,
    /// The item being written: its output index and what kind.
    open: Option<(usize, Open)>,
    /// Canonical tool index → output index and arguments so far.
    calls: Vec<(u32, usize)>,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    /// The `cost` field of the final usage (none in a stream Meridian does not price).
    quote: Option<crate::pricing::Quote>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Reasoning,
}

impl StreamEncoder {
    pub fn new(id: &str, model: &str, created_at: u64, echo: Echo) -> Self {
        StreamEncoder {
            id: id.to_owned(),
            model: model.to_owned(),
            created_at,
            echo,
            seq: 0,
            started: false,
            done: false,
            output: Vec::new(),
            open: None,
            calls: Vec::new(),
            usage: None,
            finish: None,
            quote: None,
        }
    }

    pub fn quote(&mut self, quote: crate::pricing::Quote) {
        self.quote = Some(quote);
    }

    fn event(&mut self, name: &str, mut data: Value, out: &mut Vec<u8>) {
        data["type"] = name.into();
        data["sequence_number"] = self.seq.into();
        self.seq += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(&serde_json::to_vec(&data).unwrap_or_default());
        out.extend_from_slice(b"\n\n");
    }

    fn snapshot(&self, status: &str, incomplete: Value) -> Value {
        response_object(
            &self.id,
            &self.model,
            self.created_at,
            &self.echo,
            (status, incomplete),
            self.output.clone(),
            self.usage.as_ref(),
        )
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let r = self.snapshot("in_progress", Value::Null);
        self.event("response.created", json!({"response": r}), out);
        let r = self.snapshot("in_progress", Value::Null);
        self.event("response.in_progress", json!({"response": r}), out);
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        let Some((index, kind)) = self.open.take() else {
            return;
        };
        let item = self.output[index].clone();
        let item_id = item["id"].clone();
        match kind {
            Open::Text => {
                let text = item["content"][0]["text"].clone();
                self.event("response.output_text.done", json!({"item_id": item_id, "output_index": index, "content_index": 0, "text": text}), out);
                let part = item["content"][0].clone();
                self.event("response.content_part.done", json!({"item_id": item_id, "output_index": index, "content_index": 0, "part": part}), out);
            }
            Open::Reasoning => {
                let text = item["summary"][0]["text"].clone();
                self.event("response.reasoning_summary_text.done", json!({"item_id": item_id, "output_index": index, "summary_index": 0, "text": text}), out);
            }
        }
        self.event(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
            out,
        );
    }

    /// The open item of `kind`, opened (and any other closed) if needed.
    fn open(&mut self, kind: Open, out: &mut Vec<u8>) -> usize {
        if let Some((index, k)) = self.open {
            if k == kind {
                return index;
            }
        }
        self.close_calls(out);
        self.close(out);
        let index = self.output.len();
        let (item, added) = match kind {
            Open::Text => {
                let item = message_item(
                    &format!("msg_{}_{index}", self.id),
                    "",
                    false,
                    "in_progress",
                );
                (item.clone(), item)
            }
            Open::Reasoning => {
                let item = reasoning_item(&format!("rs_{}_{index}", self.id), "");
                (
                    item,
                    json!({"type": "reasoning", "id": format!("rs_{}_{index}", self.id), "summary": []}),
                )
            }
        };
        self.output.push(item);
        self.open = Some((index, kind));
        let mut added_item = added;
        if kind == Open::Text {
            added_item["content"] = json!([]);
        }
        self.event(
            "response.output_item.added",
            json!({"output_index": index, "item": added_item}),
            out,
        );
        let item_id = self.output[index]["id"].clone();
        match kind {
            Open::Text => self.event(
                "response.content_part.added",
                json!({"item_id": item_id, "output_index": index, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
                out,
            ),
            Open::Reasoning => self.event(
                "response.reasoning_summary_part.added",
                json!({"item_id": item_id, "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
                out,
            ),
        }
        index
    }

    /// Function calls are complete once anything else follows them.
    fn close_calls(&mut self, out: &mut Vec<u8>) {
        for (_, index) in std::mem::take(&mut self.calls) {
            let mut item = self.output[index].clone();
            item["status"] = "completed".into();
            self.output[index] = item.clone();
            let item_id = item["id"].clone();
            let arguments = item["arguments"].clone();
            self.event(
                "response.function_call_arguments.done",
                json!({"item_id": item_id, "output_index": index, "arguments": arguments}),
                out,
            );
            self.event(
                "response.output_item.done",
                json!({"output_index": index, "item": item}),
                out,
            );
        }
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        match ev {
            StreamEvent::Start { model, .. } => {
                if !self.started && !model.is_empty() {
                    self.model.clone_from(model);
                }
                return;
            }
            StreamEvent::Usage(u) => {
                self.usage = Some(*u);
                return;
            }
            StreamEvent::Finish(f) => {
                self.finish = Some(*f);
                return;
            }
            _ => self.start(out),
        }
        match ev {
            StreamEvent::Text(t) if !t.is_empty() => {
                let index = self.open(Open::Text, out);
                let text = format!(
                    "{}{t}",
                    self.output[index]["content"][0]["text"]
                        .as_str()
                        .unwrap_or_default()
                );
                self.output[index]["content"][0]["text"] = text.into();
                let item_id = self.output[index]["id"].clone();
                self.event("response.output_text.delta", json!({"item_id": item_id, "output_index": index, "content_index": 0, "delta": t}), out);
            }
            StreamEvent::Reasoning(t) if !t.is_empty() => {
                let index = self.open(Open::Reasoning, out);
                let text = format!(
                    "{}{t}",
                    self.output[index]["summary"][0]["text"]
                        .as_str()
                        .unwrap_or_default()
                );
                self.output[index]["summary"][0]["text"] = text.into();
                let item_id = self.output[index]["id"].clone();
                self.event("response.reasoning_summary_text.delta", json!({"item_id": item_id, "output_index": index, "summary_index": 0, "delta": t}), out);
            }
            StreamEvent::ToolCallStart {
                index: tool,
                id,
                name,
            } => {
                self.close(out);
                let index = self.output.len();
                let item = call_item(
                    &format!("fc_{}_{index}", self.id),
                    id,
                    name,
                    "",
                    "in_progress",
                );
                self.output.push(item.clone());
                self.calls.push((*tool, index));
                self.event(
                    "response.output_item.added",
                    json!({"output_index": index, "item": item}),
                    out,
                );
            }
            StreamEvent::ToolCallArgs { index: tool, delta } => {
                let Some(&(_, index)) = self.calls.iter().find(|(t, _)| t == tool) else {
                    return;
                };
                let args = format!(
                    "{}{delta}",
                    self.output[index]["arguments"].as_str().unwrap_or_default()
                );
                self.output[index]["arguments"] = args.into();
                let item_id = self.output[index]["id"].clone();
                self.event(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": index, "delta": delta}),
                    out,
                );
            }
            _ => {}
        }
    }

    /// The answer ended: every item closed, then `response.completed` (or `.incomplete`) with the usage.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.start(out);
        self.close_calls(out);
        self.close(out);
        let (status, incomplete) = status(self.finish.unwrap_or(FinishReason::Stop));
        let mut r = self.snapshot(status, incomplete);
        if let (Some(q), Some(u)) = (&self.quote, &self.usage) {
            r["usage"]["cost"] = q.field(&(*u).into());
        }
        let name = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.event(name, json!({"response": r}), out);
        self.done = true;
    }

    /// The stream failed: `response.failed`, never a clean completion after a cut.
    pub fn fail(&mut self, e: &GatewayError, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.start(out);
        let mut r = self.snapshot("failed", Value::Null);
        r["error"] = json!({"code": e.code.as_str(), "message": e.message});
        self.event("response.failed", json!({"response": r}), out);
        self.done = true;
    }

    /// The `response` object as streamed so far (the stored answer of a completed stream).
    pub fn response(&self) -> Value {
        let (status, incomplete) = status(self.finish.unwrap_or(FinishReason::Stop));
        self.snapshot(status, incomplete)
    }
}
