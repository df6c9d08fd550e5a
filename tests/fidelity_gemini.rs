//! Gemini as a provider, to clients of both dialects, on recorded real traffic (tests/fixtures/SOURCES.md):
//! thought parts reach both dialects as (unsigned) reasoning, and the prompt's count said in the first chunk
//! reaches an Anthropic client's `message_start`.

mod common;

use common::*;
use meridian::canonical::{Part, StreamEvent};
use meridian::config::ProviderKind;
use meridian::inbound::{anthropic, openai};
use meridian::providers::gemini;
use serde_json::Value;

#[test]
fn gemini_thoughts_reach_both_dialects_unsigned() {
    let answer =
        gemini::parse_response(fixture("gemini/thought_parts.json").as_bytes(), "id").unwrap();
    let (text, signature) = reasoning_of(&answer.content);
    assert!(text.starts_with("**A Safe Street-Crossing Guide"));
    assert_eq!(signature, None);
    let v: Value = serde_json::from_slice(&anthropic::render_response(&answer, "m")).unwrap();
    assert_eq!(v["content"][0]["type"], "thinking");
    assert_eq!(v["content"][0]["signature"], "");
    assert!(matches!(answer.content[1], Part::Text(_)));
    let v: Value = serde_json::from_slice(&openai::render_response(&answer, 0)).unwrap();
    assert_eq!(v["choices"][0]["message"]["reasoning_content"], text);
}

#[test]
fn the_prompts_count_in_the_first_chunk_reaches_message_start() {
    let decoded = decode(
        &ProviderKind::Gemini,
        fixture("gemini/stream.sse").as_bytes(),
    );
    let out = anthropic_stream(&decoded);
    assert_eq!(out[0].0, "message_start");
    assert_eq!(out[0].1["message"]["usage"]["input_tokens"], 8);
    assert!(matches!(decoded.last(), Some(StreamEvent::Usage(u)) if u.output_tokens > 0));
}
