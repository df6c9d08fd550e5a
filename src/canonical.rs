//! The one shape every client dialect and every provider wire format converts to and from. Dialects and providers
//! never convert into each other directly: N + M conversions instead of N × M.

use serde_json::Value;

/// A chat request after parsing, whatever dialect it arrived in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// The model (alias) as the client named it.
    pub model: String,
    /// System (and OpenAI "developer") instructions, in order. Providers that take one string join them with "\n\n".
    pub system: Vec<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    /// `Some(false)` forbids more than one tool call per turn (OpenAI `parallel_tool_calls: false`, Anthropic
    /// `tool_choice.disable_parallel_tool_use: true`).
    pub parallel_tool_calls: Option<bool>,
    /// How much the model should reason before answering (OpenAI `reasoning_effort`, Anthropic `thinking`).
    pub thinking: Option<Thinking>,
    pub response_format: Option<ResponseFormat>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<u32>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    /// End-user id for the provider's abuse tracking; never part of a cache key.
    pub user: Option<String>,
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`: whether an OpenAI-dialect stream ends with a usage chunk.
    pub include_usage: bool,
    /// Where the client marked the end of a prompt prefix for the provider to cache (Anthropic `cache_control`),
    /// in prompt order.
    pub cache_points: Vec<CachePoint>,
}

impl ChatRequest {
    /// Appends `part` to the last message when it has the same role, else starts a message: consecutive items of
    /// one role are one turn for providers that require roles to alternate.
    pub fn push_part(&mut self, role: Role, part: Part) {
        match self.messages.last_mut() {
            Some(last) if last.role == role => last.content.push(part),
            _ => self.messages.push(Message {
                role,
                content: vec![part],
            }),
        }
    }
}

/// A reasoning setting, as either dialect says it; each provider kind maps it to its own (see
/// providers::params).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thinking {
    Off,
    /// Anthropic's `budget_tokens`.
    Budget(u32),
    /// OpenAI's `reasoning_effort`.
    Effort(Effort),
    /// Anthropic's `adaptive`: the model decides.
    Adaptive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    Minimal,
    Low,
    Medium,
    High,
}

impl Effort {
    pub fn name(self) -> &'static str {
        match self {
            Effort::Minimal => "minimal",
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
        }
    }
}

impl Thinking {
    /// OpenAI's `reasoning_effort` (Chat Completions) and `reasoning.effort` (Responses) share these names;
    /// `xhigh` has no richer canonical level than `High`. `None` for a name OpenAI does not define.
    pub fn from_openai_effort(name: &str) -> Option<Thinking> {
        Some(match name {
            "none" => Thinking::Off,
            "minimal" => Thinking::Effort(Effort::Minimal),
            "low" => Thinking::Effort(Effort::Low),
            "medium" => Thinking::Effort(Effort::Medium),
            "high" | "xhigh" => Thinking::Effort(Effort::High),
            _ => return None,
        })
    }

    /// A token budget for providers that take one (Anthropic, Bedrock's Anthropic models, Gemini); `None` when
    /// reasoning is off, or left to the model.
    pub fn budget(self) -> Option<u32> {
        match self {
            Thinking::Off | Thinking::Adaptive => None,
            Thinking::Budget(n) => Some(n),
            Thinking::Effort(Effort::Minimal) => None,
            // Anthropic's minimum is 1024; the others grow fourfold, as OpenAI's efforts roughly do.
            Thinking::Effort(Effort::Low) => Some(1024),
            Thinking::Effort(Effort::Medium) => Some(4096),
            Thinking::Effort(Effort::High) => Some(16384),
        }
    }

    /// An effort for providers that take one (OpenAI-wire); `None` when reasoning is off.
    pub fn effort(self) -> Option<Effort> {
        match self {
            Thinking::Off => None,
            Thinking::Effort(e) => Some(e),
            Thinking::Adaptive => Some(Effort::Medium),
            Thinking::Budget(n) if n < 4096 => Some(Effort::Low),
            Thinking::Budget(n) if n < 16384 => Some(Effort::Medium),
            Thinking::Budget(_) => Some(Effort::High),
        }
    }

    /// Anthropic's `thinking` object (also what Bedrock's Anthropic models take).
    pub fn anthropic(self, max_tokens: u32) -> Option<serde_json::Value> {
        match (self, self.budget()) {
            (Thinking::Off, _) | (Thinking::Effort(Effort::Minimal), _) => {
                Some(serde_json::json!({ "type": "disabled" }))
            }
            (Thinking::Adaptive, _) => Some(serde_json::json!({ "type": "adaptive" })),
            // The budget must stay below `max_tokens`.
            (_, Some(n)) => Some(serde_json::json!({
                "type": "enabled",
                "budget_tokens": n.min(max_tokens.saturating_sub(1)).max(1024),
            })),
            (_, None) => None,
        }
    }
}

/// The end of a prompt prefix to cache: after a system piece, a tool, or a message's part (indexes into the
/// request's `system`, `tools` and `messages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePoint {
    System(usize),
    Tool(usize),
    Message { message: usize, part: usize },
}

/// Conversation turns alternate between the user and the assistant. Tool results travel in user turns (as
/// Anthropic, Bedrock and Gemini carry them); the OpenAI dialect maps its `tool` messages to and from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Image(Image),
    /// A call the assistant made. `arguments` is the JSON text exactly as the model produced it.
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
    ToolResult {
        call_id: String,
        content: String,
        is_error: bool,
    },
    /// The model's reasoning before its answer (Anthropic `thinking`, Bedrock `reasoningContent`, Gemini thought
    /// parts, OpenAI-compatible `reasoning_content`). `signature` is the provider's proof of it (Anthropic,
    /// Bedrock), without which no Anthropic-family provider takes it back.
    Reasoning {
        text: String,
        signature: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Image {
    Url(String),
    Base64 { media_type: String, data: String },
}

impl Image {
    /// An image as OpenAI's dialects give it (Chat `image_url.url`, Responses `input_image.image_url`): `data:`
    /// URLs carry the image inline; anything else is fetched by the provider.
    pub fn from_url(url: &str) -> Image {
        if let Some((meta, data)) = url.strip_prefix("data:").and_then(|r| r.split_once(',')) {
            if let Some(media_type) = meta.strip_suffix(";base64") {
                return Image::Base64 {
                    media_type: media_type.to_owned(),
                    data: data.to_owned(),
                };
            }
        }
        Image::Url(url.to_owned())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    Auto,
    None,
    /// The model must call some tool.
    Required,
    /// The model must call this tool.
    Tool(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    JsonObject,
    JsonSchema {
        name: String,
        schema: Value,
        strict: Option<bool>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// Natural end of the turn.
    Stop,
    /// A caller-supplied stop sequence matched.
    StopSequence,
    /// The token limit was reached.
    Length,
    ToolCalls,
    ContentFilter,
    /// The model declined to answer; the text is its refusal (OpenAI's `refusal`, Anthropic's
    /// `stop_reason: "refusal"`).
    Refusal,
}

/// Token counts, in one meaning whatever the provider: the input counts the whole prompt (cached and cache-written
/// tokens included, as OpenAI's `prompt_tokens`), the output everything generated (reasoning included, as OpenAI's
/// `completion_tokens`); the parts are `None` when the provider did not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Of the input, read from the provider's prompt cache.
    pub cached_input_tokens: Option<u64>,
    /// Of the input, written to the provider's prompt cache.
    pub cache_write_tokens: Option<u64>,
    /// Of the output, reasoning.
    pub reasoning_tokens: Option<u64>,
}

/// A complete (non-streaming) answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    pub id: String,
    /// The provider's model name.
    pub model: String,
    /// `Part::Reasoning`, `Part::Text` and `Part::ToolCall` only, in the order the model produced them.
    pub content: Vec<Part>,
    pub finish: FinishReason,
    /// `None` when the provider's answer carried no counts.
    pub usage: Option<Usage>,
}

/// One step of a streamed answer. Every provider stream decodes to these and every dialect encodes from them.
/// Order: `Start`, then any mix of `Text` and tool-call events, then `Finish` and `Usage` (either order, each at
/// most once), then the stream ends.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Start {
        id: String,
        model: String,
    },
    Text(String),
    /// More of the model's reasoning text.
    Reasoning(String),
    /// The signature of the reasoning said so far, which ends it.
    ReasoningSignature(String),
    /// A tool call begins; `index` numbers tool calls within the answer from 0.
    ToolCallStart {
        index: u32,
        id: String,
        name: String,
    },
    /// More argument JSON text for tool call `index`.
    ToolCallArgs {
        index: u32,
        delta: String,
    },
    Finish(FinishReason),
    /// The counts so far; a provider that counts the prompt up front says so right after `Start`, and the last
    /// `Usage` of a stream is the answer's.
    Usage(Usage),
}
