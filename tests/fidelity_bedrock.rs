//! Bedrock as a provider, to clients of the other dialect, on recorded real traffic (tests/fixtures/SOURCES.md):
//! `reasoningContent` reaches Anthropic clients as signed thinking.

mod common;

use common::*;
use meridian::inbound::anthropic;
use meridian::providers::bedrock;
use serde_json::Value;

#[test]
fn bedrock_reasoning_reaches_anthropic_clients_signed() {
    let answer = bedrock::converse::parse_response(
        fixture("bedrock/converse_reasoning.json").as_bytes(),
        "id",
        "anthropic.claude",
    )
    .unwrap();
    let (text, signature) = reasoning_of(&answer.content);
    assert!(text.starts_with("Let me count the r's in \"strawberry\""));
    let v: Value = serde_json::from_slice(&anthropic::render_response(&answer, "m")).unwrap();
    assert_eq!(v["content"][0]["type"], "thinking");
    assert_eq!(v["content"][0]["thinking"], text);
    assert_eq!(v["content"][0]["signature"], signature.unwrap().as_str());
    assert_eq!(v["content"][1]["type"], "text");
}
