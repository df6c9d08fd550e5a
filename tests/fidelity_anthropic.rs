//! Anthropic as a provider, to clients of the other dialect, on recorded real traffic (tests/fixtures/SOURCES.md):
//! thinking (whole and streamed, signed) reaches OpenAI clients as `reasoning_content`; an Anthropic-dialect
//! history's reasoning goes back only where it can be verified; reasoning settings map both ways.

mod common;

use common::*;
use meridian::config::ProviderKind;
use meridian::inbound::{anthropic, openai};
use meridian::providers::{anthropic as anthropic_out, bedrock, gemini, openai_compat};
use serde_json::Value;

#[test]
fn anthropic_thinking_reaches_openai_clients_and_goes_back_signed() {
    let answer =
        anthropic_out::parse_response(fixture("anthropic/thinking_response.json").as_bytes())
            .unwrap();
    let (text, signature) = reasoning_of(&answer.content);
    assert!(text.starts_with("I need to find all roots of this cubic"));
    assert!(signature.as_deref().unwrap().starts_with("CAISqwQKhw"));
    let v: Value = serde_json::from_slice(&openai::render_response(&answer, 0)).unwrap();
    assert_eq!(v["choices"][0]["message"]["reasoning_content"], text);

    let events = decode(
        &ProviderKind::Anthropic,
        fixture("anthropic/stream_thinking.sse").as_bytes(),
    );
    let (text, signature) = streamed_reasoning(&events);
    assert!(!text.is_empty());
    assert!(signature.unwrap().starts_with("EuYDCmMIDBgC"));
    assert_eq!(openai_reasoning(&events), text);
    // Back to Anthropic (an OpenAI client's history, or Anthropic's own answer re-encoded): the same blocks.
    let (thinking, sig, blocks) = anthropic_thinking(&events);
    assert_eq!(thinking, text);
    assert!(sig.starts_with("EuYDCmMIDBgC"));
    assert_eq!(blocks[0], "thinking");
}

#[test]
fn reasoning_goes_back_only_where_it_can_be_verified() {
    // An Anthropic-dialect history with signed and unsigned thinking.
    let req = anthropic::parse_request(
        br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"q"},
            {"role":"assistant","content":[{"type":"thinking","thinking":"signed","signature":"sig-1"},
                                           {"type":"thinking","thinking":"unsigned","signature":""},
                                           {"type":"text","text":"a"}]},
            {"role":"user","content":"next"}]}"#,
    )
    .unwrap();
    let to_anthropic: Value =
        serde_json::from_slice(&anthropic_out::request_body(&req, "claude").unwrap()).unwrap();
    assert_eq!(
        to_anthropic["messages"][1]["content"],
        serde_json::json!([{"type":"thinking","thinking":"signed","signature":"sig-1"},{"type":"text","text":"a"}])
    );
    let to_bedrock: Value =
        serde_json::from_slice(&bedrock::converse::request_body(&req).unwrap()).unwrap();
    assert_eq!(
        to_bedrock["messages"][1]["content"],
        serde_json::json!([{"reasoningContent":{"reasoningText":{"text":"signed","signature":"sig-1"}}},{"text":"a"}])
    );
    let to_openai: Value =
        serde_json::from_slice(&openai_compat::request_body(&req, "gpt")).unwrap();
    assert_eq!(
        to_openai["messages"][1],
        serde_json::json!({"role":"assistant","content":"a"})
    );
}

#[test]
fn reasoning_settings_map_between_effort_and_budget() {
    let chat = openai::parse_chat(
        br#"{"model":"m","reasoning_effort":"high","max_tokens":1000,"messages":[{"role":"user","content":"q"}]}"#,
    )
    .unwrap()
    .to_canonical()
    .unwrap();
    let a: Value =
        serde_json::from_slice(&anthropic_out::request_body(&chat, "claude").unwrap()).unwrap();
    assert_eq!(
        a["thinking"],
        serde_json::json!({"type": "enabled", "budget_tokens": 16384})
    );
    assert_eq!(
        a["max_tokens"],
        16384 + 1024,
        "room for the answer beyond the budget"
    );
    let b: Value =
        serde_json::from_slice(&bedrock::converse::request_body(&chat).unwrap()).unwrap();
    assert_eq!(
        b["additionalModelRequestFields"]["thinking"],
        serde_json::json!({"type": "enabled", "budget_tokens": 16384})
    );
    assert_eq!(b["inferenceConfig"]["maxTokens"], 16384 + 1024);
    let g: Value = serde_json::from_slice(&gemini::request_body(&chat).unwrap()).unwrap();
    assert_eq!(
        g["generationConfig"]["thinkingConfig"],
        serde_json::json!({"thinkingBudget": 16384, "includeThoughts": true})
    );

    let effort_of = |thinking: &str| {
        let req = anthropic::parse_request(
            format!(r#"{{"model":"m","max_tokens":64000,"thinking":{thinking},"messages":[{{"role":"user","content":"q"}}]}}"#)
                .as_bytes(),
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&openai_compat::request_body(&req, "o4")).unwrap();
        v.get("reasoning_effort").cloned()
    };
    assert_eq!(
        effort_of(r#"{"type":"enabled","budget_tokens":2048}"#),
        Some("low".into())
    );
    assert_eq!(
        effort_of(r#"{"type":"enabled","budget_tokens":8000}"#),
        Some("medium".into())
    );
    assert_eq!(
        effort_of(r#"{"type":"enabled","budget_tokens":32000}"#),
        Some("high".into())
    );
    assert_eq!(effort_of(r#"{"type":"adaptive"}"#), Some("medium".into()));
    assert_eq!(effort_of(r#"{"type":"disabled"}"#), None);
    assert!(anthropic::parse_request(
        br#"{"model":"m","max_tokens":5,"thinking":{"type":"enabled"},"messages":[{"role":"user","content":"q"}]}"#
    )
    .is_err());
}
