//! OpenAI-wire providers (OpenAI, Azure OpenAI) to clients of the other dialect, on recorded real traffic
//! (tests/fixtures/SOURCES.md names each recording): refusals keep their text and their meaning, and Azure's
//! opening content-filter chunk does not become the answer's start, and OpenAI-compatible hosts' reasoning reaches
//! Anthropic clients as thinking.

mod common;

use common::*;
use meridian::canonical::{FinishReason, Part, StreamEvent};
use meridian::config::ProviderKind;
use meridian::inbound::{anthropic, openai};
use meridian::providers::openai_compat;
use serde_json::Value;

const REFUSAL: &str = "I'm very sorry, but I can't assist with that.";

#[test]
fn a_refusal_reaches_an_anthropic_client_as_its_text_and_stop_reason_refusal() {
    let answer =
        openai_compat::parse_response(fixture("openai/refusal_response.json").as_bytes()).unwrap();
    assert_eq!(answer.content, vec![Part::Text(REFUSAL.into())]);
    assert_eq!(answer.finish, FinishReason::Refusal);
    let v: Value = serde_json::from_slice(&anthropic::render_response(&answer, "x")).unwrap();
    assert_eq!(v["content"][0]["text"], REFUSAL);
    assert_eq!(v["stop_reason"], "refusal");
    assert_eq!(v["model"], "gpt-4o-2024-08-06");
    // Back in OpenAI's dialect (a cached answer replayed) it is a refusal again, as OpenAI writes one.
    let v: Value = serde_json::from_slice(&openai::render_response(&answer, 0)).unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["message"]["refusal"], REFUSAL);
    assert_eq!(choice["message"]["content"], Value::Null);
    assert_eq!(choice["finish_reason"], "stop");
}

#[test]
fn a_streamed_refusal_reaches_an_anthropic_client_as_text_deltas_and_stop_reason_refusal() {
    let decoded = decode(
        &ProviderKind::OpenAi,
        fixture("openai/stream_refusal.sse").as_bytes(),
    );
    let text: String = decoded
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "I'm sorry, I can't assist with that request.");
    assert!(decoded.contains(&StreamEvent::Finish(FinishReason::Refusal)));
    let out = anthropic_stream(&decoded);
    let deltas: String = out
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deltas, text);
    let (_, delta) = out.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "refusal");
    assert_eq!(delta["usage"]["output_tokens"], 11);
}

#[test]
fn azures_content_filter_chunk_is_not_the_start_of_the_answer() {
    let kind = ProviderKind::Azure {
        api_version: "2024-10-21".into(),
    };
    // The recording was kept in a Java text block, which ends with one newline: the wire's blank line after
    // `[DONE]` is restored.
    let sse = format!(
        "{}\n\n",
        fixture("azure/stream_content_filter.sse").trim_end()
    );
    let decoded = decode(&kind, sse.as_bytes());
    assert_eq!(
        decoded[0],
        StreamEvent::Start {
            id: "chatcmpl-BleatwEUn3D8iXsgXpDqeOPEMuW3j".into(),
            model: "gpt-4o-2024-08-06".into(),
        }
    );
    let out = anthropic_stream(&decoded);
    assert_eq!(out[0].0, "message_start");
    assert_eq!(
        out[0].1["message"]["id"],
        "chatcmpl-BleatwEUn3D8iXsgXpDqeOPEMuW3j"
    );
    assert_eq!(out[0].1["message"]["model"], "gpt-4o-2024-08-06");
    let text: String = out
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "Hallo Welt!");
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
