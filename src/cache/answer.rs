//! What is cached: a complete answer in canonical form, recorded from a response or a stream, and replayed as
//! either a response or a stream in any dialect.

use crate::canonical::{ChatResponse, FinishReason, Part, StreamEvent, Usage};
use serde_json::{json, Value};

/// A cached answer and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub answer: ChatResponse,
    pub deployment: String,
    pub created_ms: u64,
}

impl Entry {
    pub fn to_json(&self) -> String {
        let content: Vec<Value> = self
            .answer
            .content
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(json!({"text": t})),
                Part::ToolCall {
                    id,
                    name,
                    arguments,
                } => Some(json!({"id": id, "name": name, "arguments": arguments})),
                _ => None,
            })
            .collect();
        json!({
            "v": 1,
            "id": self.answer.id,
            "model": self.answer.model,
            "content": content,
            "finish": finish_name(self.answer.finish),
            "usage": [self.answer.usage.input_tokens, self.answer.usage.output_tokens],
            "deployment": self.deployment,
            "created_ms": self.created_ms,
        })
        .to_string()
    }

    /// KV metadata (at most 1024 bytes): enough to inspect entries without reading them.
    pub fn metadata(&self) -> String {
        json!({
            "created_ms": self.created_ms,
            "deployment": self.deployment.chars().take(200).collect::<String>(),
            "usage": [self.answer.usage.input_tokens, self.answer.usage.output_tokens],
        })
        .to_string()
    }

    /// `None` for anything unreadable: a corrupt entry is a miss, never an error.
    pub fn from_json(s: &str) -> Option<Entry> {
        let v: Value = serde_json::from_str::<Value>(s).ok()?;
        if v.get("v")?.as_u64()? != 1 {
            return None;
        }
        let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let mut content = Vec::new();
        for p in v.get("content")?.as_array()? {
            if let Some(t) = str_of(p, "text") {
                content.push(Part::Text(t));
            } else {
                content.push(Part::ToolCall {
                    id: str_of(p, "id")?,
                    name: str_of(p, "name")?,
                    arguments: str_of(p, "arguments")?,
                });
            }
        }
        let usage = v.get("usage")?.as_array()?;
        Some(Entry {
            answer: ChatResponse {
                id: str_of(&v, "id")?,
                model: str_of(&v, "model")?,
                content,
                finish: finish_from(v.get("finish")?.as_str()?)?,
                usage: Usage {
                    input_tokens: usage.first()?.as_u64()?,
                    output_tokens: usage.get(1)?.as_u64()?,
                },
            },
            deployment: str_of(&v, "deployment")?,
            created_ms: v.get("created_ms")?.as_u64()?,
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
                _ => {}
            }
        }
        out.push(StreamEvent::Finish(a.finish));
        out.push(StreamEvent::Usage(a.usage));
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

fn finish_name(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::StopSequence => "stop_sequence",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

fn finish_from(s: &str) -> Option<FinishReason> {
    Some(match s {
        "stop" => FinishReason::Stop,
        "stop_sequence" => FinishReason::StopSequence,
        "length" => FinishReason::Length,
        "tool_calls" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => return None,
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
    finish: Option<FinishReason>,
    usage: Usage,
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
            StreamEvent::Finish(f) => self.finish = Some(*f),
            StreamEvent::Usage(u) => self.usage = *u,
        }
    }

    pub fn finished(&self) -> bool {
        self.finish.is_some()
    }

    /// The complete answer, if the stream said it was complete.
    pub fn into_answer(self) -> Option<ChatResponse> {
        let finish = self.finish?;
        let mut content = Vec::new();
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
                usage: Usage {
                    input_tokens: 3,
                    output_tokens: 7,
                },
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
        ] {
            assert_eq!(Entry::from_json(bad), None, "{bad}");
        }
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
