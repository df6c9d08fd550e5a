//! The Anthropic Messages request (`POST /v1/messages`) as typed serde structs, parsed straight from the body
//! (strings borrow from it unless they carry escapes) and converted to the canonical request. Absent and `null`
//! are alike. Errors name the offending field by its path, in Anthropic's own words where the type is wrong
//! (`messages[0].content[1].text: must be a string`).

use super::raw::RawObject;
use crate::canonical::{
    CachePoint, ChatRequest, Image, Message, Part, ResponseFormat, Role, Thinking, Tool, ToolChoice,
};
use crate::error::{ErrorCode, GatewayError};
use core::fmt;
use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    max_tokens: Option<PositiveU32>,
    #[serde(borrow)]
    messages: Option<Vec<InMessage<'a>>>,
    #[serde(borrow)]
    system: Option<TextOrTextBlocks<'a>>,
    #[serde(borrow)]
    tools: Option<Vec<ToolDef<'a>>>,
    #[serde(borrow)]
    tool_choice: Option<Choice<'a>>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    #[serde(borrow)]
    stop_sequences: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    metadata: Option<Metadata<'a>>,
    stream: Option<bool>,
    output_config: Option<OutputConfig>,
    #[serde(borrow)]
    thinking: Option<ThinkingConfig<'a>>,
}

#[derive(Deserialize)]
struct ThinkingConfig<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    budget_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow)]
    user_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct InMessage<'a> {
    #[serde(borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<Content<'a>>,
}

/// A message's `content`: a string, or an array of content blocks.
enum Content<'a> {
    Text(Cow<'a, str>),
    List(Vec<Block<'a>>),
}

/// One content block; `type` says which of the other fields it carries (a flat struct rather than a tagged enum:
/// serde buffers tagged content, and buffered numbers lose their text).
#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source: Option<Source<'a>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    /// A tool call's arguments: free-form JSON.
    input: Option<Value>,
    #[serde(borrow)]
    tool_use_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<TextOrTextBlocks<'a>>,
    is_error: Option<bool>,
    cache_control: Option<de::IgnoredAny>,
    #[serde(borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow)]
    signature: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Source<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    media_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: Option<Cow<'a, str>>,
    #[serde(borrow)]
    url: Option<Cow<'a, str>>,
}

/// `system` and a tool result's `content`: a string, or an array of text blocks.
enum TextOrTextBlocks<'a> {
    Text(Cow<'a, str>),
    List(Vec<TextBlock<'a>>),
}

#[derive(Deserialize)]
struct TextBlock<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    cache_control: Option<de::IgnoredAny>,
}

#[derive(Deserialize)]
struct ToolDef<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    description: Option<Cow<'a, str>>,
    /// JSON Schema: free-form.
    input_schema: Option<Value>,
    cache_control: Option<de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    disable_parallel_tool_use: Option<bool>,
}

/// `output_config`: its `format` is what the canonical request holds (structured output); `effort` has no
/// equivalent elsewhere (see providers::params).
#[derive(Deserialize)]
struct OutputConfig {
    format: Option<OutputFormat>,
}

#[derive(Deserialize)]
struct OutputFormat {
    #[serde(rename = "type")]
    kind: Option<String>,
    /// JSON Schema: free-form.
    schema: Option<Value>,
}

/// `max_tokens`: Anthropic requires a positive integer, so this dialect does too.
struct PositiveU32(u32);

impl<'de> Deserialize<'de> for PositiveU32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PositiveU32;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a positive integer")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<PositiveU32, E> {
                u32::try_from(n)
                    .ok()
                    .filter(|n| *n > 0)
                    .map(PositiveU32)
                    .ok_or_else(|| E::invalid_value(Unexpected::Unsigned(n), &self))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PositiveU32, E> {
                Err(E::invalid_value(Unexpected::Signed(n), &self))
            }
        }
        // Asked for as an integer: a number read through `deserialize_any` would arrive as serde_json's
        // arbitrary-precision map.
        d.deserialize_u64(V)
    }
}

string_or_list!(Content, Block<'a>, "a string or an array of content blocks");
string_or_list!(
    TextOrTextBlocks,
    TextBlock<'a>,
    "a string or an array of text blocks"
);

fn invalid(path: &str, message: impl fmt::Display) -> GatewayError {
    GatewayError::invalid(format!("{path}: {message}"))
}

/// Valid Messages API input that the canonical request cannot hold: an Anthropic provider takes it as sent, other
/// kinds are skipped.
fn unsupported(path: &str, message: impl fmt::Display) -> GatewayError {
    GatewayError::new(ErrorCode::UnsupportedInput, format!("{path}: {message}"))
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// serde's account of a wrong type, in this dialect's words: `field required`, `must be …`.
fn type_error(e: crate::json::ParseError) -> GatewayError {
    let (path, inner) = match e {
        crate::json::ParseError::At { path, error } => (path, error),
        crate::json::ParseError::Trailing(e) => {
            return GatewayError::invalid(format!("request body is not valid JSON: {e}"))
        }
    };
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        return GatewayError::invalid(format!("request body is not valid JSON: {inner}"));
    }
    let text = crate::error::json_message_without_position(&inner);
    let text = text.as_str();
    if let Some(field) = text
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        return invalid(&join(&path, field), "field required");
    }
    match text.split_once(", expected ") {
        Some((found, _)) if found.ends_with("null") => invalid(&path, "field required"),
        Some((_, expected)) => invalid(&path, format!("must be {}", wording(expected))),
        None => invalid(&path, text),
    }
}

/// Rust's names for what serde expected, as a client would say them.
fn wording(expected: &str) -> &str {
    match expected {
        "f64" | "f32" => "a number",
        "a sequence" => "an array",
        "a borrowed string" => "a string",
        e if e.starts_with("struct ") => "an object",
        e => e,
    }
}

/// A validated Messages request. The body is kept as the client sent it, for an Anthropic provider (same wire
/// format: nothing dropped); the canonical form serves every other kind.
#[derive(Debug, Clone)]
pub struct MessagesRequest {
    pub model: String,
    pub stream: bool,
    pub max_tokens: u32,
    /// How many entries `messages` has (the input limits check it).
    pub message_count: usize,
    pub body: RawObject,
    /// `unsupported_input` when the request holds what only an Anthropic provider can take.
    pub canonical: Result<Box<ChatRequest>, GatewayError>,
    /// The `anthropic-beta` header as the client sent it, for an Anthropic provider.
    pub beta: Option<String>,
}

/// Longest `anthropic-beta` value taken: a comma-separated list of feature names.
const MAX_BETA_LEN: usize = 1024;

/// What a Messages body is for: a message to create (`max_tokens` required) or one to count
/// (`/v1/messages/count_tokens`, where it is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Create,
    Count,
}

/// Reads and validates a Messages request. `beta` is the client's `anthropic-beta` header.
pub fn parse_messages(body: &[u8], beta: Option<&str>) -> Result<MessagesRequest, GatewayError> {
    parse_messages_for(body, beta, Purpose::Create)
}

/// [`parse_messages`] for a purpose.
pub fn parse_messages_for(
    body: &[u8],
    beta: Option<&str>,
    purpose: Purpose,
) -> Result<MessagesRequest, GatewayError> {
    let canonical = match parse_request_for(body, purpose) {
        Ok(c) => Ok(Box::new(c)),
        Err(e) if e.code == ErrorCode::UnsupportedInput => Err(e),
        Err(e) => return Err(e),
    };
    let raw = RawObject::parse(body)?;
    let (model, stream, max_tokens, message_count) = match &canonical {
        Ok(c) => (
            c.model.clone(),
            c.stream,
            c.max_tokens.unwrap_or(0),
            c.messages.len(),
        ),
        // Validated by `parse_request` before it met what it cannot convert.
        Err(_) => {
            #[derive(Deserialize)]
            struct Head {
                model: String,
                #[serde(default)]
                max_tokens: u32,
                stream: Option<bool>,
                messages: Vec<de::IgnoredAny>,
            }
            let h: Head = serde_json::from_slice(body)
                .map_err(|e| GatewayError::invalid(format!("request body is malformed: {e}")))?;
            (
                h.model,
                h.stream.unwrap_or(false),
                h.max_tokens,
                h.messages.len(),
            )
        }
    };
    let beta = match beta {
        None => None,
        Some(b)
            if b.len() <= MAX_BETA_LEN
                && b.bytes().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b',' | b' ')
                }) =>
        {
            Some(b.to_owned())
        }
        Some(_) => {
            return Err(GatewayError::invalid(
                "anthropic-beta: must be a comma-separated list of feature names",
            ))
        }
    };
    Ok(MessagesRequest {
        model,
        stream,
        max_tokens,
        message_count,
        body: raw,
        canonical,
        beta,
    })
}

pub fn parse_request(body: &[u8]) -> Result<ChatRequest, GatewayError> {
    parse_request_for(body, Purpose::Create)
}

fn parse_request_for(body: &[u8], purpose: Purpose) -> Result<ChatRequest, GatewayError> {
    let text = core::str::from_utf8(body)
        .map_err(|e| GatewayError::invalid(format!("request body is not valid JSON: {e}")))?;
    // A struct would also be read from an array, field by field: only an object is a request.
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_slice::<de::IgnoredAny>(body) {
            Ok(_) => GatewayError::invalid("request body must be a JSON object"),
            Err(e) => GatewayError::invalid(format!("request body is not valid JSON: {e}")),
        });
    }
    let b: Body = crate::json::parse_named(body).map_err(type_error)?;
    let model = b.model.ok_or_else(|| invalid("model", "field required"))?;
    if model.is_empty() {
        return Err(invalid("model", "must be a non-empty string"));
    }
    super::check_model_name(&model).map_err(|why| invalid("model", why))?;
    let max_tokens = match (b.max_tokens, purpose) {
        (Some(n), _) => Some(n.0),
        (None, Purpose::Count) => None,
        (None, Purpose::Create) => return Err(invalid("max_tokens", "field required")),
    };
    // Cache points in prompt order: tools, system, messages.
    let mut cache_points = Vec::new();
    let tools = b
        .tools
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            if t.cache_control.is_some() {
                cache_points.push(CachePoint::Tool(i));
            }
            tool(t, &format!("tools[{i}]"))
        })
        .collect::<Result<_, _>>()?;
    let mut system = Vec::new();
    if let Some(s) = b.system {
        for (text, cached) in text_pieces(s, "system", TextField::System)? {
            if !text.is_empty() {
                system.push(text);
            }
            // After the last piece kept: an empty piece marked for caching marks what precedes it.
            if cached && !system.is_empty() {
                cache_points.push(CachePoint::System(system.len() - 1));
            }
        }
    }
    let messages = match b.messages {
        None => return Err(invalid("messages", "field required")),
        Some(m) if m.is_empty() => return Err(invalid("messages", "must not be empty")),
        Some(m) => m
            .into_iter()
            .enumerate()
            .map(|(i, m)| message(m, i, &mut cache_points))
            .collect::<Result<_, _>>()?,
    };
    Ok(ChatRequest {
        model: model.into_owned(),
        system,
        messages,
        tools,
        thinking: b.thinking.map(thinking).transpose()?,
        parallel_tool_calls: b
            .tool_choice
            .as_ref()
            .and_then(|c| c.disable_parallel_tool_use)
            .map(|disabled| !disabled),
        tool_choice: b.tool_choice.map(tool_choice).transpose()?,
        response_format: b
            .output_config
            .and_then(|o| o.format)
            .map(output_format)
            .transpose()?,
        temperature: b.temperature,
        top_p: b.top_p,
        max_tokens,
        stop: b
            .stop_sequences
            .unwrap_or_default()
            .into_iter()
            .map(Cow::into_owned)
            .collect(),
        seed: None,
        user: b.metadata.and_then(|m| m.user_id).map(Cow::into_owned),
        stream: b.stream.unwrap_or(false),
        // Anthropic streams always end with usage.
        include_usage: true,
        cache_points,
    })
}

/// Where a string-or-text-blocks field is: `system` takes text blocks only; a tool result may also hold images
/// and documents, which only an Anthropic provider can take.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TextField {
    System,
    ToolResult,
}

/// Each piece of a string-or-text-blocks field, and whether it is marked for caching.
fn text_pieces(
    v: TextOrTextBlocks,
    path: &str,
    field: TextField,
) -> Result<Vec<(String, bool)>, GatewayError> {
    match v {
        TextOrTextBlocks::Text(s) => Ok(vec![(s.into_owned(), false)]),
        TextOrTextBlocks::List(blocks) => blocks
            .into_iter()
            .enumerate()
            .map(|(i, b)| {
                let cached = b.cache_control.is_some();
                Ok((text_block(b, &format!("{path}[{i}]"), field)?, cached))
            })
            .collect(),
    }
}

/// A block that the canonical request holds only as `{"type":"text","text":...}`.
fn text_block(b: TextBlock, path: &str, field: TextField) -> Result<String, GatewayError> {
    match (b.kind.as_deref(), field) {
        (None, _) => Err(invalid(&join(path, "type"), "field required")),
        (Some("text"), _) => Ok(b
            .text
            .ok_or_else(|| invalid(&join(path, "text"), "field required"))?
            .into_owned()),
        (Some(other), TextField::System) => Err(invalid(
            &join(path, "type"),
            format!("unsupported block type {other:?} (only \"text\" is allowed here)"),
        )),
        (Some(other), TextField::ToolResult) => Err(unsupported(
            &join(path, "type"),
            format!("block type {other:?} can only be sent to an Anthropic provider"),
        )),
    }
}

fn message(
    m: InMessage,
    index: usize,
    cache_points: &mut Vec<CachePoint>,
) -> Result<Message, GatewayError> {
    let path = &format!("messages[{index}]");
    let role = match m.role.as_deref() {
        None => return Err(invalid(&join(path, "role"), "field required")),
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some(other) => {
            return Err(invalid(
                &join(path, "role"),
                format!("unknown role {other:?} (expected \"user\" or \"assistant\")"),
            ))
        }
    };
    let content = match m.content {
        None => return Err(invalid(&join(path, "content"), "field required")),
        Some(Content::Text(s)) => vec![Part::Text(s.into_owned())],
        Some(Content::List(blocks)) => blocks
            .into_iter()
            .enumerate()
            .map(|(j, b)| {
                if b.cache_control.is_some() {
                    cache_points.push(CachePoint::Message {
                        message: index,
                        part: j,
                    });
                }
                content_block(b, role, &format!("{path}.content[{j}]"))
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Message { role, content })
}

fn required<'a>(
    v: Option<Cow<'a, str>>,
    path: &str,
    key: &str,
) -> Result<Cow<'a, str>, GatewayError> {
    v.ok_or_else(|| invalid(&join(path, key), "field required"))
}

fn content_block(b: Block, role: Role, path: &str) -> Result<Part, GatewayError> {
    let kind = required(b.kind, path, "type")?;
    match (&*kind, role) {
        ("text", _) => Ok(Part::Text(required(b.text, path, "text")?.into_owned())),
        ("image", _) => image(b.source, &join(path, "source")).map(Part::Image),
        ("tool_use", Role::Assistant) => {
            let arguments = match b.input {
                Some(input @ Value::Object(_)) => input.to_string(),
                Some(_) => return Err(invalid(&join(path, "input"), "must be an object")),
                None => "{}".to_owned(),
            };
            Ok(Part::ToolCall {
                id: required(b.id, path, "id")?.into_owned(),
                name: required(b.name, path, "name")?.into_owned(),
                arguments,
            })
        }
        ("thinking", Role::Assistant) => Ok(Part::Reasoning {
            text: required(b.thinking, path, "thinking")?.into_owned(),
            signature: b.signature.map(Cow::into_owned),
        }),
        ("tool_result", Role::User) => {
            let call_id = required(b.tool_use_id, path, "tool_use_id")?;
            // Canonical tool results are text: text blocks are joined, anything else cannot be carried.
            let content = match b.content {
                None => String::new(),
                Some(c) => text_pieces(c, &join(path, "content"), TextField::ToolResult)?
                    .into_iter()
                    .map(|(text, _)| text)
                    .collect::<Vec<_>>()
                    .join("\n"),
            };
            Ok(Part::ToolResult {
                call_id: call_id.into_owned(),
                content,
                is_error: b.is_error.unwrap_or(false),
            })
        }
        (kind @ ("tool_use" | "tool_result"), _) => Err(invalid(
            &join(path, "type"),
            format!(
                "{kind:?} blocks are not allowed in {} messages",
                match role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                }
            ),
        )),
        // Block types added to the API (documents, thinking, server tools' results, ...) are Anthropic's to
        // judge: only an Anthropic provider can take them.
        (other, _) => Err(unsupported(
            &join(path, "type"),
            format!("block type {other:?} can only be sent to an Anthropic provider"),
        )),
    }
}

fn image(source: Option<Source>, path: &str) -> Result<Image, GatewayError> {
    let s = source.ok_or_else(|| invalid(path, "must be an object"))?;
    match required(s.kind, path, "type")?.as_ref() {
        "base64" => Ok(Image::Base64 {
            media_type: required(s.media_type, path, "media_type")?.into_owned(),
            data: required(s.data, path, "data")?.into_owned(),
        }),
        "url" => Ok(Image::Url(required(s.url, path, "url")?.into_owned())),
        other => Err(unsupported(
            &join(path, "type"),
            format!("image source type {other:?} can only be sent to an Anthropic provider"),
        )),
    }
}

fn tool(t: ToolDef, path: &str) -> Result<Tool, GatewayError> {
    // Server tools (web search, code execution, ...) run inside Anthropic and have no canonical form.
    match t.kind.as_deref() {
        None | Some("custom") => {}
        Some(other) => {
            return Err(unsupported(
                &join(path, "type"),
                format!("tool type {other:?} can only be sent to an Anthropic provider"),
            ))
        }
    }
    let parameters = match t.input_schema {
        Some(schema @ Value::Object(_)) => schema,
        Some(_) => return Err(invalid(&join(path, "input_schema"), "must be an object")),
        None => return Err(invalid(&join(path, "input_schema"), "field required")),
    };
    Ok(Tool {
        name: required(t.name, path, "name")?.into_owned(),
        description: t.description.map(Cow::into_owned),
        parameters,
    })
}

fn thinking(t: ThinkingConfig) -> Result<Thinking, GatewayError> {
    match t.kind.as_deref() {
        Some("enabled") => {
            Ok(Thinking::Budget(t.budget_tokens.ok_or_else(|| {
                invalid("thinking.budget_tokens", "field required")
            })?))
        }
        Some("disabled") => Ok(Thinking::Off),
        Some("adaptive") => Ok(Thinking::Adaptive),
        other => Err(invalid(
            "thinking.type",
            format!("unknown type {other:?} (expected \"enabled\", \"disabled\" or \"adaptive\")"),
        )),
    }
}

/// `output_config.format`: a JSON Schema the answer must follow.
fn output_format(f: OutputFormat) -> Result<ResponseFormat, GatewayError> {
    match f.kind.as_deref() {
        Some("json_schema") => Ok(ResponseFormat::JsonSchema {
            name: "response".into(),
            schema: f
                .schema
                .ok_or_else(|| invalid("output_config.format.schema", "field required"))?,
            strict: Some(true),
        }),
        other => Err(invalid(
            "output_config.format.type",
            format!("unknown format {other:?} (expected \"json_schema\")"),
        )),
    }
}

fn tool_choice(c: Choice) -> Result<ToolChoice, GatewayError> {
    Ok(match required(c.kind, "tool_choice", "type")?.as_ref() {
        "auto" => ToolChoice::Auto,
        "any" => ToolChoice::Required,
        "none" => ToolChoice::None,
        "tool" => ToolChoice::Tool(required(c.name, "tool_choice", "name")?.into_owned()),
        other => {
            return Err(invalid(
                "tool_choice.type",
                format!(
                "unknown tool choice {other:?} (expected \"auto\", \"any\", \"tool\" or \"none\")"
            ),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::parse_request;
    use crate::canonical::Part;

    fn with(extra: &str) -> Result<crate::canonical::ChatRequest, String> {
        parse_request(
            format!(r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":"x"}}]{extra}}}"#)
                .as_bytes(),
        )
        .map_err(|e| e.message)
    }

    #[test]
    fn wrong_types_read_in_the_dialects_words() {
        for (extra, want) in [
            (r#","temperature":"hot""#, "temperature: must be a number"),
            (
                r#","stop_sequences":[1]"#,
                "stop_sequences[0]: must be a string",
            ),
            (
                r#","stop_sequences":"END""#,
                "stop_sequences: must be an array",
            ),
            (r#","metadata":5"#, "metadata: must be an object"),
            (r#","stream":"yes""#, "stream: must be a boolean"),
            (r#","tools":{}"#, "tools: must be an array"),
        ] {
            assert_eq!(with(extra).unwrap_err(), want, "{extra}");
        }
        assert!(with(r#","x":1} trailing"#)
            .unwrap_err()
            .starts_with("request body is not valid JSON"));
    }

    #[test]
    fn tool_inputs_and_schemas_keep_their_numbers() {
        let r = parse_request(
            br#"{"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[
                {"type":"tool_use","id":"t","name":"f","input":{"x": 1.50, "big": 123456789012345678901234567890}}]}],
              "tools":[{"name":"f","input_schema":{"type":"object","properties":{"x":{"maximum":2.50}}}}]}"#,
        )
        .unwrap();
        assert!(
            matches!(&r.messages[0].content[0], Part::ToolCall { arguments, .. }
            if arguments == r#"{"x":1.50,"big":123456789012345678901234567890}"#)
        );
        assert_eq!(
            r.tools[0].parameters.to_string(),
            r#"{"type":"object","properties":{"x":{"maximum":2.50}}}"#
        );
    }
}
