//! What is cached: a complete answer in canonical form, recorded from a response or a stream, and replayed as
//! either a response or a stream in any dialect.

use crate::canonical::{ChatResponse, FinishReason, Part, StreamEvent, Usage};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// A cached answer and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub answer: ChatResponse,
    pub deployment: String,
    pub created_ms: u64,
}

/// An entry as stored in KV (version 1). A missing or mistyped field makes the whole entry unreadable: a corrupt
/// entry is a miss, never an error.
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    v: u32,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    model: Cow<'a, str>,
    content: Vec<StoredPart<'a>>,
    finish: StoredFinish,
    /// Input and output tokens.
    usage: [u64; 2],
    #[serde(borrow)]
    deployment: Cow<'a, str>,
    created_ms: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StoredPart<'a> {
    Text {
        #[serde(borrow)]
        text: Cow<'a, str>,
    },
    ToolCall {
        #[serde(borrow)]
        id: Cow<'a, str>,
        #[serde(borrow)]
        name: Cow<'a, str>,
        #[serde(borrow)]
        arguments: Cow<'a, str>,
    },
    Reasoning {
        #[serde(borrow)]
        reasoning: Cow<'a, str>,
        #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
        signature: Option<Cow<'a, str>>,
    },
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredFinish {
    Stop,
    StopSequence,
    Length,
    ToolCalls,
    ContentFilter,
    Refusal,
}

impl From<FinishReason> for StoredFinish {
    fn from(f: FinishReason) -> Self {
        match f {
            FinishReason::Stop => StoredFinish::Stop,
            FinishReason::StopSequence => StoredFinish::StopSequence,
            FinishReason::Length => StoredFinish::Length,
            FinishReason::ToolCalls => StoredFinish::ToolCalls,
            FinishReason::ContentFilter => StoredFinish::ContentFilter,
            FinishReason::Refusal => StoredFinish::Refusal,
        }
    }
}

impl From<StoredFinish> for FinishReason {
    fn from(f: StoredFinish) -> Self {
        match f {
            StoredFinish::Stop => FinishReason::Stop,
            StoredFinish::StopSequence => FinishReason::StopSequence,
            StoredFinish::Length => FinishReason::Length,
            StoredFinish::ToolCalls => FinishReason::ToolCalls,
            StoredFinish::ContentFilter => FinishReason::ContentFilter,
            StoredFinish::Refusal => FinishReason::Refusal,
        }
    }
}

/// KV metadata (at most 1024 bytes): enough to inspect entries without reading them.
#[derive(Serialize)]
struct Metadata<'a> {
    created_ms: u64,
    deployment: &'a str,
    usage: [u64; 2],
}

impl Entry {
    pub fn to_json(&self) -> String {
        let a = &self.answer;
        let content = a
            .content
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(StoredPart::Text { text: t.into() }),
                Part::ToolCall {
                    id,
                    name,
                    arguments,
                } => Some(StoredPart::ToolCall {
                    id: id.into(),
                    name: name.into(),
                    arguments: arguments.into(),
                }),
                Part::Reasoning { text, signature } => Some(StoredPart::Reasoning {
                    reasoning: text.into(),
                    signature: signature.as_deref().map(Into::into),
                }),
                // Images and tool results are never part of an answer.
                Part::Image(_) | Part::ToolResult { .. } => None,
            })
            .collect();
        let stored = Stored {
            v: 1,
            id: a.id.as_str().into(),
            model: a.model.as_str().into(),
            content,
            finish: a.finish.into(),
            usage: {
                let u = a.usage.unwrap_or_default();
                [u.input_tokens, u.output_tokens]
            },
            deployment: self.deployment.as_str().into(),
            created_ms: self.created_ms,
        };
        serde_json::to_string(&stored).unwrap_or_default()
    }

    pub fn metadata(&self) -> String {
        let end = self
            .deployment
            .char_indices()
            .nth(200)
            .map_or(self.deployment.len(), |(i, _)| i);
        serde_json::to_string(&Metadata {
            created_ms: self.created_ms,
            deployment: &self.deployment[..end],
            usage: {
                let u = self.answer.usage.unwrap_or_default();
                [u.input_tokens, u.output_tokens]
            },
        })
        .unwrap_or_default()
    }

    /// `None` for anything unreadable: a corrupt entry is a miss, never an error.
    pub fn from_json(s: &str) -> Option<Entry> {
        let stored: Stored = serde_json::from_slice(s.as_bytes()).ok()?;
        if stored.v != 1 {
            return None;
        }
        let content = stored
            .content
            .into_iter()
            .map(|p| match p {
                StoredPart::Text { text } => Part::Text(text.into_owned()),
                StoredPart::ToolCall {
                    id,
                    name,
                    arguments,
                } => Part::ToolCall {
                    id: id.into_owned(),
                    name: name.into_owned(),
                    arguments: arguments.into_owned(),
                },
                StoredPart::Reasoning {
                    reasoning,
                    signature,
                } => Part::Reasoning {
                    text: reasoning.into_owned(),
                    signature: signature.map(Cow::into_owned),
                },
            })
            .collect();
        Some(Entry {
            answer: ChatResponse {
                id: stored.id.into_owned(),
                model: stored.model.into_owned(),
                content,
                finish: stored.finish.into(),
                usage: Some(Usage {
                    input_tokens: stored.usage[0],
                    output_tokens: stored.usage[1],
                    ..Default::default()
                }),
            },
            deployment: stored.deployment.into_owned(),
            created_ms: stored.created_ms,
        })
    }

    /// The answer as a stream: text in word-sized pieces, as a provider would send it.
    pub fn events(&self) -> Vec<StreamEvent> {
        let a = &self.answer;
        let mut out = vec![StreamEvent::Start {
            id: a.id.clone(),
            model: a.model.clone(),
        }];
        let mut tool = 0u32;
        for p in &a.content {
            match p {
                Part::Text(t) => out.extend(pieces(t).map(|s| StreamEvent::Text(s.to_owned()))),
                Part::ToolCall {
                    id,
                    name,
                    arguments,
                } => {
                    out.push(StreamEvent::ToolCallStart {
                        index: tool,
                        id: id.clone(),
                        name: name.clone(),
                    });
                    if !arguments.is_empty() {
                        out.push(StreamEvent::ToolCallArgs {
                            index: tool,
                            delta: arguments.clone(),
                        });
                    }
                    tool += 1;
                }
                Part::Reasoning { text, signature } => {
                    out.extend(pieces(text).map(|s| StreamEvent::Reasoning(s.to_owned())));
                    out.extend(signature.clone().map(StreamEvent::ReasoningSignature));
                }
                Part::Image(_) | Part::ToolResult { .. } => {}
            }
        }
        out.push(StreamEvent::Finish(a.finish));
        out.extend(a.usage.map(StreamEvent::Usage));
        out
    }
}

/// Splits before each space, so the pieces concatenate to the text exactly.
fn pieces(t: &str) -> impl Iterator<Item = &str> {
    let mut rest = t;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = rest[1..].find(' ').map_or(rest.len(), |i| i + 1);
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece)
    })
}

/// Rebuilds the complete answer from a stream's events. Only a stream that finished yields an answer.
#[derive(Debug, Default)]
pub struct Recorder {
    id: String,
    model: String,
    text: String,
    /// (id, name, arguments) by tool index; text before the first tool call stays first.
    tools: Vec<(String, String, String)>,
    text_first: bool,
    /// Reasoning comes before the answer it leads to.
    reasoning: String,
    signature: Option<String>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
}

impl Recorder {
    pub fn observe(&mut self, ev: &StreamEvent) {
        match ev {
            StreamEvent::Start { id, model } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
            }
            StreamEvent::Text(t) => {
                if self.tools.is_empty() {
                    self.text_first = true;
                }
                self.text.push_str(t);
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                let i = *index as usize;
                if self.tools.len() <= i && i < 128 {
                    self.tools.resize(i + 1, Default::default());
                }
                if let Some(t) = self.tools.get_mut(i) {
                    t.0.clone_from(id);
                    t.1.clone_from(name);
                }
            }
            StreamEvent::ToolCallArgs { index, delta } => {
                if let Some(t) = self.tools.get_mut(*index as usize) {
                    t.2.push_str(delta);
                }
            }
            StreamEvent::Reasoning(t) => self.reasoning.push_str(t),
            StreamEvent::ReasoningSignature(s) => self.signature = Some(s.clone()),
            StreamEvent::Finish(f) => self.finish = Some(*f),
            StreamEvent::Usage(u) => self.usage = Some(*u),
        }
    }

    pub fn finished(&self) -> bool {
        self.finish.is_some()
    }

    /// The complete answer, if the stream said it was complete.
    pub fn into_answer(self) -> Option<ChatResponse> {
        let finish = self.finish?;
        let mut content = Vec::new();
        if !self.reasoning.is_empty() {
            content.push(Part::Reasoning {
                text: self.reasoning,
                signature: self.signature,
            });
        }
        let text = (!self.text.is_empty()).then_some(Part::Text(self.text));
        let tools = self
            .tools
            .into_iter()
            .map(|(id, name, arguments)| Part::ToolCall {
                id,
                name,
                arguments,
            });
        if self.text_first {
            content.extend(text);
            content.extend(tools);
        } else {
            content.extend(tools);
            content.extend(text);
        }
        Some(ChatResponse {
            id: self.id,
            model: self.model,
            content,
            finish,
            usage: self.usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            answer: ChatResponse {
                id: "msg_1".into(),
                model: "m".into(),
                content: vec![
                    Part::Text("Echo: hello  there".into()),
                    Part::ToolCall {
                        id: "c1".into(),
                        name: "f".into(),
                        arguments: r#"{"q":"x"}"#.into(),
                    },
                ],
                finish: FinishReason::ToolCalls,
                usage: Some(Usage {
                    input_tokens: 3,
                    output_tokens: 7,
                    ..Default::default()
                }),
            },
            deployment: "p/m".into(),
            created_ms: 42,
        }
    }

    #[test]
    fn json_round_trip_and_corrupt_entries_are_misses() {
        let e = entry();
        assert_eq!(Entry::from_json(&e.to_json()), Some(e.clone()));
        assert!(e.metadata().len() < 1024);
        for bad in [
            "",
            "{}",
            "[]",
            r#"{"v":2}"#,
            &e.to_json().replace("tool_calls", "bogus"),
            &e.to_json().replace(r#""usage":[3,7]"#, r#""usage":[3]"#),
        ] {
            assert_eq!(Entry::from_json(bad), None, "{bad}");
        }
    }

    #[test]
    fn entries_stored_before_the_typed_format_still_read() {
        // Written by the hand-built writer this format replaced: same fields, another member order and escapes.
        let old = r#"{"created_ms":42,"deployment":"p/m","usage":[3,4],"finish":"tool_calls","v":1,
            "content":[{"text":"Echo: \u0068i"},{"id":"c1","name":"f","arguments":"{\"a\":1}"}],"model":"m","id":"x"}"#;
        let e = Entry::from_json(old).unwrap();
        assert_eq!(e.answer.content[0], Part::Text("Echo: hi".into()));
        assert_eq!(e.answer.finish, FinishReason::ToolCalls);
        assert_eq!(
            e.answer.usage.map(|u| (u.input_tokens, u.output_tokens)),
            Some((3, 4))
        );
        assert_eq!(Entry::from_json(&e.to_json()), Some(e));
    }

    #[test]
    fn replayed_events_record_back_to_the_same_answer() {
        let e = entry();
        let events = e.events();
        let texts: Vec<_> = events
            .iter()
            .filter_map(|ev| {
                if let StreamEvent::Text(t) = ev {
                    Some(t.as_str())
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(texts, vec!["Echo:", " hello", " ", " there"]);
        let mut r = Recorder::default();
        events.iter().for_each(|ev| r.observe(ev));
        assert_eq!(r.into_answer(), Some(e.answer));
    }

    #[test]
    fn an_unfinished_stream_is_not_an_answer() {
        let mut r = Recorder::default();
        r.observe(&StreamEvent::Text("partial".into()));
        assert!(!r.finished());
        assert_eq!(r.into_answer(), None);
    }
}
