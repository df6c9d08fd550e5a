//! What becomes of each request field of a client dialect when the request is translated for a provider of
//! another kind: mapped to its equivalent, ignored (it never changes the answer), or unsupported (no equivalent:
//! a value other than the default is refused with `unsupported_parameter`, or dropped when the model sets
//! `drop_unsupported`). A provider of the client's own wire format gets the body as sent. The README's mapping
//! table is rendered from these rows, and a test keeps the two equal.

use crate::config::ProviderKind;
use crate::inbound::raw::RawObject;
use crate::inbound::Dialect;
use serde_json::Value;

/// What a translated request does with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Sent as its equivalent (named).
    Mapped(&'static str),
    /// Mapped, except for values the note names, which are unsupported.
    MappedExcept(&'static str),
    /// Left out: it never changes the answer (why).
    Ignored(&'static str),
    /// No equivalent: only its default value is accepted.
    Unsupported,
}

/// One field of a dialect's request body.
pub struct Field {
    pub name: &'static str,
    /// Whether the value asks for nothing the provider cannot do (for `Unsupported` and `MappedExcept`).
    pub default: fn(&Value) -> bool,
    pub openai_wire: Fate,
    pub anthropic: Fate,
    pub bedrock: Fate,
    pub gemini: Fate,
}

fn any(_: &Value) -> bool {
    true
}
fn null(v: &Value) -> bool {
    v.is_null()
}
fn null_or_false(v: &Value) -> bool {
    matches!(v, Value::Null | Value::Bool(false))
}
fn null_or_true(v: &Value) -> bool {
    matches!(v, Value::Null | Value::Bool(true))
}
fn null_or_zero(v: &Value) -> bool {
    v.is_null() || v.as_f64() == Some(0.0)
}
fn null_or_one(v: &Value) -> bool {
    v.is_null() || v.as_u64() == Some(1)
}
fn null_or_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}
fn null_or_auto(v: &Value) -> bool {
    v.is_null() || matches!(v.as_str(), Some("auto" | "default" | "standard_only"))
}
fn text_only(v: &Value) -> bool {
    v.is_null() || v.as_array().is_some_and(|a| a == &[Value::from("text")])
}
fn parallel_allowed(v: &Value) -> bool {
    v.get("disable_parallel_tool_use") != Some(&Value::Bool(true))
}
fn format_only(v: &Value) -> bool {
    v.is_null()
        || v.as_object()
            .is_some_and(|o| o.keys().all(|k| k == "format"))
}

use Fate::{Ignored, Mapped, MappedExcept, Unsupported};

const SAME: Fate = Mapped("the same field");

/// A field every kind maps.
const fn everywhere(
    name: &'static str,
    anthropic: &'static str,
    bedrock: &'static str,
    gemini: &'static str,
) -> Field {
    Field {
        name,
        default: any,
        openai_wire: SAME,
        anthropic: Mapped(anthropic),
        bedrock: Mapped(bedrock),
        gemini: Mapped(gemini),
    }
}

/// A field no other kind has.
const fn openai_only(name: &'static str, default: fn(&Value) -> bool) -> Field {
    Field {
        name,
        default,
        openai_wire: SAME,
        anthropic: Unsupported,
        bedrock: Unsupported,
        gemini: Unsupported,
    }
}

const fn anthropic_only(name: &'static str, default: fn(&Value) -> bool) -> Field {
    Field {
        name,
        default,
        openai_wire: Unsupported,
        anthropic: SAME,
        bedrock: Unsupported,
        gemini: Unsupported,
    }
}

const ABUSE_ID: Fate = Ignored("an end-user id for abuse tracking, not a generation setting");

/// Chat Completions fields (`POST /v1/chat/completions`).
pub const OPENAI: &[Field] = &[
    everywhere(
        "model",
        "the deployment's model",
        "the deployment's model (in the path)",
        "the deployment's model (in the path)",
    ),
    everywhere(
        "messages",
        "`system` and `messages` (tool results as `tool_result` blocks)",
        "`system` and `messages`",
        "`systemInstruction` and `contents`",
    ),
    everywhere(
        "stream",
        "`stream`",
        "`/converse-stream`",
        "`:streamGenerateContent?alt=sse`",
    ),
    everywhere(
        "stream_options",
        "usage is always streamed",
        "usage is always streamed",
        "usage is always streamed",
    ),
    everywhere(
        "temperature",
        "`temperature`",
        "`inferenceConfig.temperature`",
        "`generationConfig.temperature`",
    ),
    everywhere(
        "top_p",
        "`top_p`",
        "`inferenceConfig.topP`",
        "`generationConfig.topP`",
    ),
    everywhere(
        "max_tokens",
        "`max_tokens`",
        "`inferenceConfig.maxTokens`",
        "`generationConfig.maxOutputTokens`",
    ),
    everywhere(
        "max_completion_tokens",
        "`max_tokens`",
        "`inferenceConfig.maxTokens`",
        "`generationConfig.maxOutputTokens`",
    ),
    everywhere(
        "stop",
        "`stop_sequences`",
        "`inferenceConfig.stopSequences`",
        "`generationConfig.stopSequences`",
    ),
    everywhere(
        "tools",
        "`tools`",
        "`toolConfig.tools`",
        "`tools.functionDeclarations`",
    ),
    everywhere(
        "tool_choice",
        "`tool_choice`",
        "`toolConfig.toolChoice`",
        "`toolConfig.functionCallingConfig`",
    ),
    everywhere(
        "response_format",
        "an instruction in the system prompt (not enforced)",
        "an instruction in the system prompt (not enforced)",
        "`generationConfig.responseMimeType` / `responseSchema`",
    ),
    Field {
        name: "seed",
        default: null,
        openai_wire: SAME,
        anthropic: Unsupported,
        bedrock: Unsupported,
        gemini: Mapped("`generationConfig.seed`"),
    },
    Field {
        name: "user",
        default: any,
        openai_wire: SAME,
        anthropic: Mapped("`metadata.user_id`"),
        bedrock: ABUSE_ID,
        gemini: ABUSE_ID,
    },
    Field {
        name: "parallel_tool_calls",
        default: null_or_true,
        openai_wire: SAME,
        anthropic: Mapped("`tool_choice.disable_parallel_tool_use`"),
        bedrock: Unsupported,
        gemini: Unsupported,
    },
    Field {
        name: "metadata",
        default: any,
        openai_wire: SAME,
        anthropic: Ignored("tags for OpenAI's stored completions"),
        bedrock: Ignored("tags for OpenAI's stored completions"),
        gemini: Ignored("tags for OpenAI's stored completions"),
    },
    Field {
        name: "prompt_cache_key",
        default: any,
        openai_wire: SAME,
        anthropic: Ignored("a routing hint for OpenAI's prompt cache"),
        bedrock: Ignored("a routing hint for OpenAI's prompt cache"),
        gemini: Ignored("a routing hint for OpenAI's prompt cache"),
    },
    Field {
        name: "safety_identifier",
        default: any,
        openai_wire: SAME,
        anthropic: ABUSE_ID,
        bedrock: ABUSE_ID,
        gemini: ABUSE_ID,
    },
    openai_only("n", null_or_one),
    openai_only("logprobs", null_or_false),
    openai_only("top_logprobs", null_or_zero),
    openai_only("presence_penalty", null_or_zero),
    openai_only("frequency_penalty", null_or_zero),
    openai_only("logit_bias", null_or_empty),
    Field {
        name: "reasoning_effort",
        default: any,
        openai_wire: SAME,
        anthropic: Mapped("`thinking`: low, medium, high as budgets of 1024, 4096, 16384 tokens (`max_tokens` raised above the budget); minimal and none disable it"),
        bedrock: Mapped("`additionalModelRequestFields.thinking` as for Anthropic (Anthropic models)"),
        gemini: Mapped("`generationConfig.thinkingConfig`: the same budgets, thoughts included; minimal and none: budget 0"),
    },
    openai_only("verbosity", null),
    openai_only("service_tier", null_or_auto),
    openai_only("store", null_or_false),
    openai_only("modalities", text_only),
    openai_only("audio", null),
    openai_only("prediction", null),
    openai_only("web_search_options", null),
    openai_only("functions", null),
    openai_only("function_call", null),
];

/// Messages fields (`POST /v1/messages`).
pub const ANTHROPIC: &[Field] = &[
    Field {
        name: "model",
        default: any,
        openai_wire: Mapped("the deployment's model"),
        anthropic: SAME,
        bedrock: Mapped("the deployment's model (in the path)"),
        gemini: Mapped("the deployment's model (in the path)"),
    },
    Field {
        name: "max_tokens",
        default: any,
        openai_wire: Mapped("`max_completion_tokens` (`max_tokens` on Azure)"),
        anthropic: SAME,
        bedrock: Mapped("`inferenceConfig.maxTokens`"),
        gemini: Mapped("`generationConfig.maxOutputTokens`"),
    },
    Field {
        name: "messages",
        default: any,
        openai_wire: Mapped("`messages` (tool results as `tool` messages)"),
        anthropic: SAME,
        bedrock: Mapped("`messages`; `cache_control` as `cachePoint` blocks"),
        gemini: Mapped("`contents`"),
    },
    Field {
        name: "system",
        default: any,
        openai_wire: Mapped("a `system` message"),
        anthropic: SAME,
        bedrock: Mapped("`system`; `cache_control` as `cachePoint` blocks"),
        gemini: Mapped("`systemInstruction`"),
    },
    Field {
        name: "stream",
        default: any,
        openai_wire: Mapped("`stream`, with `stream_options.include_usage`"),
        anthropic: SAME,
        bedrock: Mapped("`/converse-stream`"),
        gemini: Mapped("`:streamGenerateContent?alt=sse`"),
    },
    Field {
        name: "tools",
        default: any,
        openai_wire: Mapped("`tools` (functions)"),
        anthropic: SAME,
        bedrock: Mapped("`toolConfig.tools`; `cache_control` as a `cachePoint`"),
        gemini: Mapped("`tools.functionDeclarations`"),
    },
    Field {
        name: "tool_choice",
        default: parallel_allowed,
        openai_wire: Mapped(
            "`tool_choice`; `disable_parallel_tool_use` as `parallel_tool_calls: false`",
        ),
        anthropic: SAME,
        bedrock: MappedExcept(
            "`toolConfig.toolChoice`; `disable_parallel_tool_use: true` is unsupported",
        ),
        gemini: MappedExcept(
            "`toolConfig.functionCallingConfig`; `disable_parallel_tool_use: true` is unsupported",
        ),
    },
    Field {
        name: "temperature",
        default: any,
        openai_wire: SAME,
        anthropic: SAME,
        bedrock: Mapped("`inferenceConfig.temperature`"),
        gemini: Mapped("`generationConfig.temperature`"),
    },
    Field {
        name: "top_p",
        default: any,
        openai_wire: SAME,
        anthropic: SAME,
        bedrock: Mapped("`inferenceConfig.topP`"),
        gemini: Mapped("`generationConfig.topP`"),
    },
    Field {
        name: "stop_sequences",
        default: any,
        openai_wire: Mapped("`stop`"),
        anthropic: SAME,
        bedrock: Mapped("`inferenceConfig.stopSequences`"),
        gemini: Mapped("`generationConfig.stopSequences`"),
    },
    Field {
        name: "metadata",
        default: any,
        openai_wire: Mapped("`user` (from `metadata.user_id`)"),
        anthropic: SAME,
        bedrock: ABUSE_ID,
        gemini: ABUSE_ID,
    },
    Field {
        name: "output_config",
        default: format_only,
        openai_wire: MappedExcept("`format` as `response_format`; `effort` is unsupported"),
        anthropic: SAME,
        bedrock: MappedExcept(
            "`format` as an instruction in the system prompt; `effort` is unsupported",
        ),
        gemini: MappedExcept(
            "`format` as `generationConfig.responseSchema`; `effort` is unsupported",
        ),
    },
    anthropic_only("top_k", null),
    Field {
        name: "thinking",
        default: any,
        openai_wire: Mapped("`reasoning_effort`: a budget under 4096 tokens is low, under 16384 medium, else high; adaptive is medium; disabled sends none"),
        anthropic: SAME,
        bedrock: Mapped("`additionalModelRequestFields.thinking` (Anthropic models)"),
        gemini: Mapped("`generationConfig.thinkingConfig.thinkingBudget` (adaptive: -1, the model decides), thoughts included"),
    },
    anthropic_only("service_tier", null_or_auto),
    anthropic_only("container", null),
    anthropic_only("mcp_servers", null_or_empty),
    anthropic_only("context_management", null),
];

/// A Responses field every kind maps (requests in this dialect are always translated, OpenAI's included).
const fn responses(
    name: &'static str,
    openai: &'static str,
    anthropic: &'static str,
    bedrock: &'static str,
    gemini: &'static str,
) -> Field {
    Field {
        name,
        default: any,
        openai_wire: Mapped(openai),
        anthropic: Mapped(anthropic),
        bedrock: Mapped(bedrock),
        gemini: Mapped(gemini),
    }
}

/// A Responses field Meridian itself serves, whatever the kind.
const fn meridian(name: &'static str, how: &'static str) -> Field {
    responses(name, how, how, how, how)
}

/// A Responses field no chat API has.
const fn responses_only(name: &'static str, default: fn(&Value) -> bool) -> Field {
    Field {
        name,
        default,
        openai_wire: Unsupported,
        anthropic: Unsupported,
        bedrock: Unsupported,
        gemini: Unsupported,
    }
}

fn disabled(v: &Value) -> bool {
    v.is_null() || v.as_str() == Some("disabled")
}

/// Responses fields (`POST /v1/responses`): translated for every kind, through Chat Completions for OpenAI-wire
/// hosts; conversations are stored by Meridian.
pub const RESPONSES: &[Field] = &[
    responses(
        "model",
        "the deployment's model",
        "the deployment's model",
        "the deployment's model (in the path)",
        "the deployment's model (in the path)",
    ),
    responses(
        "input",
        "`messages` (function calls and outputs as tool calls and `tool` messages)",
        "`messages` (function calls as `tool_use`, outputs as `tool_result`)",
        "`messages`",
        "`contents`",
    ),
    responses(
        "instructions",
        "a `system` message",
        "`system`",
        "`system`",
        "`systemInstruction`",
    ),
    responses(
        "tools",
        "`tools` (function tools; others are unsupported)",
        "`tools`",
        "`toolConfig.tools`",
        "`tools.functionDeclarations`",
    ),
    responses(
        "tool_choice",
        "`tool_choice`",
        "`tool_choice`",
        "`toolConfig.toolChoice`",
        "`toolConfig.functionCallingConfig`",
    ),
    responses(
        "text",
        "`response_format` from `text.format`",
        "an instruction in the system prompt",
        "an instruction in the system prompt",
        "`generationConfig.responseJsonSchema`",
    ),
    responses(
        "max_output_tokens",
        "`max_completion_tokens`",
        "`max_tokens`",
        "`inferenceConfig.maxTokens`",
        "`generationConfig.maxOutputTokens`",
    ),
    responses(
        "temperature",
        "`temperature`",
        "`temperature`",
        "`inferenceConfig.temperature`",
        "`generationConfig.temperature`",
    ),
    responses(
        "top_p",
        "`top_p`",
        "`top_p`",
        "`inferenceConfig.topP`",
        "`generationConfig.topP`",
    ),
    responses(
        "reasoning",
        "`reasoning_effort` from `reasoning.effort`",
        "`thinking` (as for `reasoning_effort`)",
        "`additionalModelRequestFields.thinking`",
        "`generationConfig.thinkingConfig`",
    ),
    responses(
        "user",
        "`user`",
        "`metadata.user_id`",
        "ignored: an end-user id for abuse tracking, not a generation setting",
        "ignored: an end-user id for abuse tracking, not a generation setting",
    ),
    responses(
        "parallel_tool_calls",
        "`parallel_tool_calls`",
        "`tool_choice.disable_parallel_tool_use`",
        "unsupported when `false`",
        "unsupported when `false`",
    ),
    responses(
        "stream",
        "`stream`, with usage",
        "`stream`",
        "`/converse-stream`",
        "`:streamGenerateContent?alt=sse`",
    ),
    meridian(
        "store",
        "stored by Meridian (KV, per key, 30 days) for `previous_response_id` and `GET`",
    ),
    meridian(
        "previous_response_id",
        "the stored conversation, continued by Meridian",
    ),
    meridian("metadata", "echoed in the response object"),
    meridian(
        "prompt_cache_key",
        "ignored: a routing hint for OpenAI's prompt cache",
    ),
    meridian(
        "safety_identifier",
        "ignored: an end-user id for abuse tracking, not a generation setting",
    ),
    responses_only("truncation", disabled),
    responses_only("include", null_or_empty),
    responses_only("background", null_or_false),
    responses_only("service_tier", null_or_auto),
    responses_only("top_logprobs", null_or_zero),
    responses_only("max_tool_calls", null),
    responses_only("conversation", null),
    responses_only("prompt", null),
];

/// The fields of a dialect.
pub fn fields(dialect: Dialect) -> &'static [Field] {
    match dialect {
        Dialect::OpenAi => OPENAI,
        Dialect::Anthropic => ANTHROPIC,
        Dialect::Responses => RESPONSES,
    }
}

impl Field {
    pub fn fate(&self, kind: &ProviderKind) -> Fate {
        match kind {
            ProviderKind::OpenAi | ProviderKind::Azure { .. } => self.openai_wire,
            ProviderKind::Anthropic => self.anthropic,
            ProviderKind::Bedrock { .. } => self.bedrock,
            ProviderKind::Gemini => self.gemini,
        }
    }
}

/// The members of a `dialect` body that a provider of `kind` has no equivalent for, with values it cannot honour:
/// unknown members (other than `null`) and unsupported ones set to something other than their default.
pub fn unsupported(dialect: Dialect, body: &RawObject, kind: &ProviderKind) -> Vec<String> {
    let fields = fields(dialect);
    let mut out = Vec::new();
    for (name, text) in body.members() {
        let field = fields.iter().find(|f| f.name == name);
        let checked = match field.map(|f| f.fate(kind)) {
            Some(Mapped(_) | Ignored(_)) => continue,
            Some(Unsupported | MappedExcept(_)) | None => field,
        };
        let value: Value = serde_json::from_slice(text.as_bytes()).unwrap_or(Value::Null);
        let fine = match checked {
            Some(f) => (f.default)(&value),
            None => value.is_null(),
        };
        if !fine {
            out.push(name.to_owned());
        }
    }
    out
}

/// The README's mapping table: every field of both dialects, and what each provider kind gets.
pub fn table() -> String {
    let cell = |f: Fate, own: bool| match f {
        _ if own => "as sent".to_owned(),
        Mapped(how) | MappedExcept(how) => how.to_owned(),
        Ignored(why) => format!("ignored: {why}"),
        Unsupported => "**unsupported**".to_owned(),
    };
    let mut out = String::from(
        "| dialect | field | OpenAI, Azure | Anthropic | Bedrock | Gemini |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for dialect in [Dialect::OpenAi, Dialect::Anthropic, Dialect::Responses] {
        for f in fields(dialect) {
            out.push_str(&format!(
                "| {} | `{}` | {} | {} | {} | {} |\n",
                dialect.name(),
                f.name,
                cell(f.openai_wire, dialect == Dialect::OpenAi),
                cell(f.anthropic, dialect == Dialect::Anthropic),
                cell(f.bedrock, false),
                cell(f.gemini, false),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bedrock() -> ProviderKind {
        ProviderKind::Bedrock {
            region: "us-east-1".into(),
            credentials: crate::config::AwsSecretNames {
                access_key_id: "A".into(),
                secret_access_key: "S".into(),
                session_token: None,
            },
        }
    }

    fn check(dialect: Dialect, body: &str, kind: &ProviderKind) -> Vec<String> {
        unsupported(dialect, &RawObject::parse(body.as_bytes()).unwrap(), kind)
    }

    #[test]
    fn non_default_values_without_an_equivalent_are_named() {
        let b = r#"{"model":"m","messages":[],"n":2,"logprobs":true,"seed":1,"user":"u","temperature":0.5,
                    "parallel_tool_calls":false,"presence_penalty":0,"logit_bias":{},"novel_field":1,"nothing":null}"#;
        assert_eq!(
            check(Dialect::OpenAi, b, &bedrock()),
            [
                "n",
                "logprobs",
                "seed",
                "parallel_tool_calls",
                "novel_field"
            ]
        );
        assert_eq!(
            check(Dialect::OpenAi, b, &ProviderKind::Gemini),
            ["n", "logprobs", "parallel_tool_calls", "novel_field"]
        );
        assert_eq!(
            check(Dialect::OpenAi, b, &ProviderKind::Anthropic),
            ["n", "logprobs", "seed", "novel_field"]
        );
        let defaults = r#"{"model":"m","messages":[],"n":1,"logprobs":false,"parallel_tool_calls":true,"service_tier":"auto","modalities":["text"]}"#;
        assert!(check(Dialect::OpenAi, defaults, &ProviderKind::Gemini).is_empty());
    }

    #[test]
    fn anthropic_fields_too() {
        let b = r#"{"model":"m","max_tokens":5,"messages":[],"top_k":5,"thinking":{"type":"enabled","budget_tokens":1024},
                    "output_config":{"format":{"type":"json_schema","schema":{}}},"tool_choice":{"type":"auto","disable_parallel_tool_use":true}}"#;
        assert_eq!(
            check(Dialect::Anthropic, b, &ProviderKind::OpenAi),
            ["top_k"]
        );
        assert_eq!(
            check(Dialect::Anthropic, b, &ProviderKind::Gemini),
            ["top_k", "tool_choice"]
        );
        let effort = r#"{"model":"m","max_tokens":5,"messages":[],"output_config":{"effort":"low"},"thinking":{"type":"disabled"}}"#;
        assert_eq!(
            check(Dialect::Anthropic, effort, &ProviderKind::OpenAi),
            ["output_config"]
        );
    }

    #[test]
    fn readme_mapping_table_is_current() {
        let readme = include_str!("../../README.md");
        let table = table();
        assert!(
            readme.contains(&table),
            "README.md's mapping table is stale; the current table is:\n{table}"
        );
    }
}
