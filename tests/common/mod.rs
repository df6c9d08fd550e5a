//! Helpers the fixture tests share: recorded traffic from tests/fixtures, decoded and re-encoded.
#![allow(clippy::disallowed_methods)] // one JSON reader is the worker's rule; this is a test
#![allow(dead_code)]

use meridian::canonical::{Part, StreamEvent};
use meridian::config::ProviderKind;
use meridian::inbound::Dialect;
use meridian::providers::Decoder;
use serde_json::Value;

pub fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub fn decode(kind: &ProviderKind, bytes: &[u8]) -> Vec<StreamEvent> {
    let mut d = Decoder::new(kind, "msg_fallback", "dep-model");
    let mut out = d.push(bytes).unwrap();
    out.extend(d.end().unwrap());
    out
}

pub fn streamed_reasoning(events: &[StreamEvent]) -> (String, Option<String>) {
    let mut text = String::new();
    let mut signature = None;
    for e in events {
        match e {
            StreamEvent::Reasoning(t) => text.push_str(t),
            StreamEvent::ReasoningSignature(s) => signature = Some(s.clone()),
            _ => {}
        }
    }
    (text, signature)
}

/// An Anthropic-dialect stream's thinking: the text of its thinking deltas, and its signature.
pub fn anthropic_thinking(events: &[StreamEvent]) -> (String, String, Vec<String>) {
    let mut enc = Dialect::Anthropic.stream_encoder("m", true, 0);
    let mut out = Vec::new();
    enc.encode_all(events, &mut out);
    enc.finish(&mut out);
    let (mut thinking, mut signature, mut blocks) = (String::new(), String::new(), Vec::new());
    for data in String::from_utf8(out)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
    {
        let v: Value = serde_json::from_str(data).unwrap();
        match v["type"].as_str().unwrap() {
            "content_block_start" => {
                blocks.push(v["content_block"]["type"].as_str().unwrap().to_owned())
            }
            "content_block_delta" => {
                thinking.push_str(v["delta"]["thinking"].as_str().unwrap_or_default());
                signature.push_str(v["delta"]["signature"].as_str().unwrap_or_default());
            }
            _ => {}
        }
    }
    (thinking, signature, blocks)
}

/// An OpenAI-dialect stream's `reasoning_content`.
pub fn openai_reasoning(events: &[StreamEvent]) -> String {
    let mut enc = Dialect::OpenAi.stream_encoder("m", true, 0);
    let mut out = Vec::new();
    enc.encode_all(events, &mut out);
    enc.finish(&mut out);
    String::from_utf8(out)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["reasoning_content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

pub fn reasoning_of(content: &[Part]) -> (String, Option<String>) {
    match &content[0] {
        Part::Reasoning { text, signature } => (text.clone(), signature.clone()),
        other => panic!("the answer starts with {other:?}, not its reasoning"),
    }
}

/// The SSE events an encoder wrote: (event name, data).
pub fn events(bytes: &[u8]) -> Vec<(String, Value)> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.into();
                }
                if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap_or(Value::String(d.into()));
                }
            }
            (name, data)
        })
        .collect()
}

/// Canonical events written for an Anthropic-dialect client.
pub fn anthropic_stream(events_in: &[StreamEvent]) -> Vec<(String, Value)> {
    let mut enc = Dialect::Anthropic.stream_encoder("dep-model", true, 0);
    let mut out = Vec::new();
    enc.encode_all(events_in, &mut out);
    enc.finish(&mut out);
    events(&out)
}
