//! What an answer said, read back from the bytes its client got (whole or streamed, in the OpenAI or Anthropic
//! wire format, with the same decoders that read providers' answers), and how two answers agree.

use crate::canonical::{FinishReason, Part, StreamEvent, Usage};
use crate::providers::{anthropic, openai_compat};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The wire format of a client's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Chat Completions.
    OpenAi,
    /// Messages.
    Anthropic,
}

/// What an answer said, for comparison.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub text: String,
    /// Tool calls in order: name and arguments as JSON text.
    pub tools: Vec<(String, String)>,
    pub finish: Option<FinishReason>,
    pub usage: Option<Usage>,
}

/// Reads an answer in `wire`'s format; `None` when the bytes are not one (an error body, a cut stream).
pub fn read_answer(wire: Wire, stream: bool, bytes: &[u8]) -> Option<Answer> {
    if !stream {
        let resp = match wire {
            Wire::OpenAi => openai_compat::parse_response(bytes),
            Wire::Anthropic => anthropic::parse_response(bytes),
        }
        .ok()?;
        let mut a = Answer {
            finish: Some(resp.finish),
            usage: resp.usage,
            ..Answer::default()
        };
        for part in resp.content {
            match part {
                Part::Text(t) => a.text.push_str(&t),
                Part::ToolCall {
                    name, arguments, ..
                } => a.tools.push((name, arguments)),
                Part::Reasoning { .. } | Part::Image(_) | Part::ToolResult { .. } => {}
            }
        }
        return Some(a);
    }
    let events = match wire {
        Wire::OpenAi => {
            let mut d = openai_compat::StreamDecoder::new();
            let mut ev = d.push(bytes).ok()?;
            ev.extend(d.end().ok()?);
            ev
        }
        Wire::Anthropic => {
            let mut d = anthropic::StreamDecoder::new();
            let mut ev = d.push(bytes).ok()?;
            ev.extend(d.end().ok()?);
            ev
        }
    };
    let mut a = Answer::default();
    let mut by_index: Vec<(u32, usize)> = Vec::new();
    for e in events {
        match e {
            StreamEvent::Text(t) => a.text.push_str(&t),
            StreamEvent::ToolCallStart { index, name, .. } => {
                by_index.push((index, a.tools.len()));
                a.tools.push((name, String::new()));
            }
            StreamEvent::ToolCallArgs { index, delta } => {
                if let Some((_, i)) = by_index.iter().find(|(k, _)| *k == index) {
                    a.tools[*i].1.push_str(&delta);
                }
            }
            StreamEvent::Finish(f) => a.finish = Some(f),
            StreamEvent::Usage(u) => a.usage = Some(u),
            StreamEvent::Start { .. }
            | StreamEvent::Reasoning(_)
            | StreamEvent::ReasoningSignature(_) => {}
        }
    }
    // A stream that never said how it ended was cut.
    a.finish?;
    Some(a)
}

/// How a shadow's answer agrees with the primary's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// The texts are equal once whitespace runs are one space, the ends trimmed and case ignored.
    pub exact: bool,
    /// Word-level similarity: the Dice coefficient of the two texts' word multisets (words: runs of letters and
    /// digits, case ignored), 2·|A∩B| / (|A|+|B|); 1 when both have no words.
    pub similarity: f64,
    /// The same tool calls (names, with JSON-equal arguments, in any order); `None` when neither called a tool.
    pub tools: Option<bool>,
    pub finish: bool,
    /// For a request asking for JSON output: whether each side's text is valid JSON (primary, shadow).
    pub json: Option<(bool, bool)>,
}

pub fn agreement(primary: &Answer, shadow: &Answer, structured: bool) -> Agreement {
    let tools = if primary.tools.is_empty() && shadow.tools.is_empty() {
        None
    } else {
        Some(same_calls(&primary.tools, &shadow.tools))
    };
    let valid = |t: &str| serde_json::from_slice::<Value>(t.trim().as_bytes()).is_ok();
    Agreement {
        exact: normalized(&primary.text) == normalized(&shadow.text),
        similarity: dice(&primary.text, &shadow.text),
        tools,
        finish: primary.finish == shadow.finish,
        json: structured.then(|| (valid(&primary.text), valid(&shadow.text))),
    }
}

fn normalized(text: &str) -> String {
    text.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

fn words(text: &str) -> Vec<String> {
    let mut w: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    w.sort_unstable();
    w
}

fn dice(a: &str, b: &str) -> f64 {
    let (a, b) = (words(a), words(b));
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    // Both sorted: count the common words as a merge does.
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    2.0 * common as f64 / (a.len() + b.len()) as f64
}

fn same_calls(a: &[(String, String)], b: &[(String, String)]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // Arguments compared as JSON values (member order and spacing aside); arguments that are not JSON as text.
    let value = |args: &str| {
        serde_json::from_slice::<Value>(args.trim().as_bytes()).map_err(|_| args.to_owned())
    };
    let mut unused: Vec<(&str, Result<Value, String>)> = b
        .iter()
        .map(|(n, args)| (n.as_str(), value(args)))
        .collect();
    a.iter().all(|(name, args)| {
        let args = value(args);
        match unused.iter().position(|(n, v)| n == name && *v == args) {
            Some(i) => {
                let _ = unused.swap_remove(i);
                true
            }
            None => false,
        }
    })
}
