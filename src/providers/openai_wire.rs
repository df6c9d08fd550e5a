//! The Chat Completions answer as providers send it (OpenAI, Azure, compatible hosts): a whole completion, and the
//! chunks of a stream. Lenient where hosts differ (any field may be missing or null; unknown fields are
//! ignored), typed where Meridian reads. Strings borrow from the body unless they carry escapes.

use serde::Deserialize;
use std::borrow::Cow;

/// A `chat.completion` or a `chat.completion.chunk`: the same shape, with `message` in one and `delta` in the
/// other.
#[derive(Debug, Default, Deserialize)]
pub struct Completion<'a> {
    #[serde(default, borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
    /// An error object where an answer was expected (some hosts answer 200 with one, or send it mid-stream).
    #[serde(default, borrow)]
    pub error: Option<WireError<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Choice<'a> {
    #[serde(default, borrow)]
    pub message: Option<Message<'a>>,
    #[serde(default, borrow)]
    pub delta: Option<Message<'a>>,
    #[serde(default, borrow)]
    pub finish_reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Message<'a> {
    #[serde(default, borrow)]
    pub content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub refusal: Option<Cow<'a, str>>,
    /// The reasoning OpenAI-compatible hosts (DeepSeek, vLLM, ...) return beside the answer.
    #[serde(default, borrow)]
    pub reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ToolCall<'a> {
    /// Streams only: which call a delta continues.
    #[serde(default)]
    pub index: Option<u64>,
    #[serde(default, borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub function: Option<Function<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Function<'a> {
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub arguments: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct WireUsage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionDetails>,
}

/// Of the prompt: what was read from the provider's prompt cache (included in `prompt_tokens`).
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
    /// Written to the prompt cache by this request (newer answers).
    #[serde(default)]
    pub cache_write_tokens: Option<u64>,
}

/// Of the completion: reasoning (included in `completion_tokens`).
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct CompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

/// An error answer: only its `error` member is read, whatever else a proxy on the way added.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody<'a> {
    #[serde(default, borrow)]
    pub error: Option<WireError<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct WireError<'a> {
    #[serde(default, borrow)]
    pub message: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    /// A string at OpenAI (`rate_limit_exceeded`), a number or a numeric string at some hosts and Azure.
    #[serde(default)]
    pub code: Option<serde_json::Value>,
}

impl WireError<'_> {
    /// The code of an error reported inside a stream: throttling and overload keep their meaning (clients retry
    /// them), as the same HTTP statuses and the other provider kinds' stream errors do.
    pub fn stream_code(&self) -> crate::error::ErrorCode {
        use crate::error::ErrorCode;
        let code = match &self.code {
            Some(serde_json::Value::String(s)) => s.to_ascii_lowercase(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let kind = self
            .kind
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let says = |word: &str| code.contains(word) || kind.contains(word);
        if says("rate_limit") || code == "429" {
            ErrorCode::UpstreamRateLimited
        } else if says("overloaded") || code == "503" || code == "529" {
            ErrorCode::UpstreamOverloaded
        } else {
            ErrorCode::UpstreamStreamError
        }
    }
}

/// The usage of a chat completion, read without building it; `None` when the body is not one (a chat completion
/// has a `choices` array and no `error` object). Lenient about everything else (what passthrough forwards is the
/// provider's own bytes). Counts the provider did not report are absent.
pub fn chat_completion_usage(body: &[u8]) -> Option<crate::record::TokenUsage> {
    #[derive(Deserialize)]
    struct Shape {
        choices: Option<Vec<serde::de::IgnoredAny>>,
        error: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        usage: Option<WireUsage>,
    }
    let s = serde_json::from_slice::<Shape>(body).ok()?;
    if s.choices.is_none() || s.error.is_some() {
        return None;
    }
    Some(s.usage.map(WireUsage::counts).unwrap_or_default())
}

impl WireUsage {
    /// The counts as the record keeps them.
    pub fn counts(self) -> crate::record::TokenUsage {
        crate::record::TokenUsage {
            input: self.prompt_tokens,
            output: self.completion_tokens,
            cached_input: self.cached_tokens(),
            cache_write: self.cache_write_tokens(),
            reasoning: self.reasoning_tokens(),
        }
    }

    pub fn cache_write_tokens(&self) -> Option<u64> {
        self.prompt_tokens_details
            .and_then(|d| d.cache_write_tokens)
    }

    pub fn cached_tokens(&self) -> Option<u64> {
        self.prompt_tokens_details.and_then(|d| d.cached_tokens)
    }

    pub fn reasoning_tokens(&self) -> Option<u64> {
        self.completion_tokens_details
            .and_then(|d| d.reasoning_tokens)
    }
}

/// The text of an optional string field, empty when absent.
pub fn text(s: &Option<Cow<'_, str>>) -> String {
    s.as_deref().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod shape_tests {
    use super::chat_completion_usage;

    fn is_chat_completion(body: &[u8]) -> bool {
        chat_completion_usage(body).is_some()
    }

    #[test]
    fn a_chat_completion_has_choices_and_no_error() {
        let u = chat_completion_usage(
            br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#,
        )
        .unwrap();
        assert_eq!((u.input, u.output), (Some(3), Some(4)));
        assert!(chat_completion_usage(br#"{"choices":[]}"#)
            .unwrap()
            .is_empty());
        assert!(is_chat_completion(br#"{"choices":[]}"#));
        assert!(is_chat_completion(
            br#"{"id":"x","choices":[{"index":0,"x":1.50}],"error":null}"#
        ));
        for not in [
            &b"{}"[..],
            br#"{"choices":null}"#,
            br#"{"choices":[],"error":{"message":"m"}}"#,
            b"[1]",
            b"garbage",
        ] {
            assert!(!is_chat_completion(not), "{}", String::from_utf8_lossy(not));
        }
    }

    #[test]
    fn stream_errors_keep_throttling_and_overload() {
        use crate::error::ErrorCode;
        let code = |body: &str| {
            let c: super::Completion = serde_json::from_slice(body.as_bytes()).unwrap();
            c.error.unwrap().stream_code()
        };
        // OpenAI's error object (code and type), Azure's numeric code, and a plain failure.
        assert_eq!(
            code(
                r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#
            ),
            ErrorCode::UpstreamRateLimited
        );
        assert_eq!(
            code(r#"{"error":{"message":"busy","code":"429"}}"#),
            ErrorCode::UpstreamRateLimited
        );
        assert_eq!(
            code(
                r#"{"error":{"message":"The server is overloaded","type":"overloaded_error","code":529}}"#
            ),
            ErrorCode::UpstreamOverloaded
        );
        assert_eq!(
            code(r#"{"error":{"message":"boom","type":"server_error","code":null}}"#),
            ErrorCode::UpstreamStreamError
        );
    }
}
