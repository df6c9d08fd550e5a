//! Converse and ConverseStream answers as Bedrock sends them: the whole response, each stream event's payload, and
//! error bodies. Lenient (any field may be missing or null, unknown fields are ignored), typed where Meridian
//! reads. Strings borrow unless they carry escapes; tool inputs are free-form JSON and keep their numbers' text.

use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response<'a> {
    #[serde(default, borrow)]
    pub output: Option<Output<'a>>,
    #[serde(default, borrow)]
    pub stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub usage: Option<TokenUsage>,
}

#[derive(Deserialize)]
pub struct Output<'a> {
    #[serde(default, borrow)]
    pub message: Option<OutputMessage<'a>>,
}

#[derive(Deserialize)]
pub struct OutputMessage<'a> {
    #[serde(default, borrow)]
    pub content: Option<Vec<Block<'a>>>,
}

/// A content block: text, a tool call, reasoning, or a kind with no canonical form (citations, ...).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Block<'a> {
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub tool_use: Option<ToolUse<'a>>,
    #[serde(default, borrow)]
    pub reasoning_content: Option<Reasoning<'a>>,
}

/// `reasoningContent`: the model's reasoning with its signature (or `redactedContent`, which has no canonical
/// form).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reasoning<'a> {
    #[serde(default, borrow)]
    pub reasoning_text: Option<ReasoningText<'a>>,
}

#[derive(Deserialize)]
pub struct ReasoningText<'a> {
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub signature: Option<Cow<'a, str>>,
}

/// A tool call: whole in a response, without `input` in a stream's contentBlockStart.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUse<'a> {
    #[serde(default, borrow)]
    pub tool_use_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(default)]
    pub input: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    /// The prompt apart from what was read from or written to the prompt cache.
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_write_input_tokens: Option<u64>,
}

/// `{"message": "..."}`; some errors spell it `Message`.
#[derive(Deserialize)]
pub struct ErrorBody<'a> {
    #[serde(default, borrow)]
    pub message: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "Message")]
    pub message_capitalized: Option<Cow<'a, str>>,
}

/// The payload of `messageStop`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStop<'a> {
    #[serde(default, borrow)]
    pub stop_reason: Option<Cow<'a, str>>,
}

/// The payload of `metadata`.
#[derive(Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub usage: Option<TokenUsage>,
}

/// The payload of `contentBlockStart`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStart<'a> {
    #[serde(default)]
    pub content_block_index: Option<u64>,
    #[serde(default, borrow)]
    pub start: Option<StartBlock<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartBlock<'a> {
    #[serde(default, borrow)]
    pub tool_use: Option<ToolUse<'a>>,
}

/// The payload of `contentBlockDelta`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDelta<'a> {
    #[serde(default)]
    pub content_block_index: Option<u64>,
    #[serde(default, borrow)]
    pub delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delta<'a> {
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub tool_use: Option<ToolUseDelta<'a>>,
    /// In a stream: `{"text": ...}` or `{"signature": ...}` (or `redactedContent`).
    #[serde(default, borrow)]
    pub reasoning_content: Option<ReasoningText<'a>>,
}

/// A piece of a tool call's input JSON, as text.
#[derive(Deserialize)]
pub struct ToolUseDelta<'a> {
    #[serde(default, borrow)]
    pub input: Option<Cow<'a, str>>,
}
