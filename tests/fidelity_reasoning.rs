//! Reasoning reaches a client of the other dialect, from every provider kind, whole and streamed, on recorded
//! real traffic (tests/fixtures/SOURCES.md): Anthropic thinking blocks, Bedrock `reasoningContent`, Gemini thought
//! parts and OpenAI-compatible `reasoning_content`. Signed reasoning keeps its signature; reasoning no provider
//! signed is never sent back to an Anthropic-family provider, which could not verify it.

use meridian::canonical::{Part, StreamEvent};
use meridian::config::ProviderKind;
use meridian::inbound::{anthropic, openai, Dialect};
use meridian::providers::{anthropic as anthropic_out, bedrock, gemini, openai_compat, Decoder};
use serde_json::Value;

fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn reasoning_of(content: &[Part]) -> (String, Option<String>) {
    match &content[0] {
        Part::Reasoning { text, signature } => (text.clone(), signature.clone()),
        other => panic!("the answer starts with {other:?}, not its reasoning"),
    }
}

fn decode(kind: &ProviderKind, bytes: &[u8]) -> Vec<StreamEvent> {
    let mut d = Decoder::new(kind, "msg_fallback", "dep-model");
    let mut out = d.push(bytes).unwrap();
    out.extend(d.end().unwrap());
    out
}

fn streamed_reasoning(events: &[StreamEvent]) -> (String, Option<String>) {
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
fn anthropic_thinking(events: &[StreamEvent]) -> (String, String, Vec<String>) {
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
fn openai_reasoning(events: &[StreamEvent]) -> String {
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
fn openai_compatible_reasoning_content_reaches_anthropic_clients() {
    let answer =
        openai_compat::parse_response(fixture("openai_compat/reasoning_content.json").as_bytes())
            .unwrap();
    let (text, _) = reasoning_of(&answer.content);
    assert!(text.starts_with("The user wants to play a dice game."));
    let v: Value = serde_json::from_slice(&anthropic::render_response(&answer, "m")).unwrap();
    assert_eq!(v["content"][0]["thinking"], text);

    let events = decode(
        &ProviderKind::OpenAi,
        fixture("openai_compat/reasoning_content_stream.sse").as_bytes(),
    );
    let (text, signature) = streamed_reasoning(&events);
    assert!(text.starts_with("H"), "{text}");
    assert_eq!(signature, None);
    let (thinking, sig, blocks) = anthropic_thinking(&events);
    assert_eq!(thinking, text);
    assert_eq!(sig, "");
    assert_eq!(blocks.first().map(String::as_str), Some("thinking"));
    assert!(blocks.contains(&"text".to_owned()), "{blocks:?}");
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
