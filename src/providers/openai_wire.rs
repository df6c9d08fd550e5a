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
}

/// Whether a body is a chat completion, read without building it: a `choices` array and no `error` object.
/// Lenient about everything else (what passthrough forwards is the provider's own bytes).
pub fn is_chat_completion(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Shape {
        choices: Option<Vec<serde::de::IgnoredAny>>,
        error: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Shape>(body).is_ok_and(|s| s.choices.is_some() && s.error.is_none())
}

/// The text of an optional string field, empty when absent.
pub fn text(s: &Option<Cow<'_, str>>) -> String {
    s.as_deref().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod shape_tests {
    use super::is_chat_completion;

    #[test]
    fn a_chat_completion_has_choices_and_no_error() {
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
}
