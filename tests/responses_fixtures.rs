//! Meridian's Responses API answers against OpenAI's own, recorded (tests/fixtures/SOURCES.md): the same semantic
//! events in the same order for the same answer, and the same fields in the `response` object and its items.
#![allow(clippy::disallowed_methods)] // one JSON reader is the worker's rule; this is a test

mod common;

use common::fixture;
use meridian::canonical::{ChatResponse, FinishReason, Part, StreamEvent, Usage};
use meridian::inbound::responses::{render_response, Echo, StreamEncoder};
use serde_json::Value;
use std::collections::BTreeSet;

/// (event type, data) of an SSE body.
fn events(sse: &str) -> Vec<(String, Value)> {
    sse.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_default()
                .to_owned();
            let data = e
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or("null");
            (name, serde_json::from_str(data).unwrap())
        })
        .collect()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn encode(canonical: &[StreamEvent]) -> Vec<(String, Value)> {
    let mut enc = StreamEncoder::new("resp_1", "gpt-4o-2024-08-06", 1, Echo::default());
    let mut out = Vec::new();
    for e in canonical {
        enc.encode(e, &mut out);
    }
    enc.finish(&mut out);
    events(&String::from_utf8(out).unwrap())
}

fn usage(input: u64, output: u64) -> StreamEvent {
    StreamEvent::Usage(Usage {
        input_tokens: input,
        output_tokens: output,
        ..Default::default()
    })
}

#[test]
fn a_text_answer_streams_the_events_openai_sends() {
    let recorded = events(&fixture("openai/responses_stream_text.sse"));
    let mut canonical = vec![StreamEvent::Start {
        id: "x".into(),
        model: "gpt-4o-2024-08-06".into(),
    }];
    for (name, data) in &recorded {
        if name == "response.output_text.delta" {
            canonical.push(StreamEvent::Text(data["delta"].as_str().unwrap().into()));
        }
    }
    canonical.extend([StreamEvent::Finish(FinishReason::Stop), usage(278, 9)]);
    let ours = encode(&canonical);
    let names = |e: &[(String, Value)]| e.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&recorded));
    // Each event and the final response carry at least OpenAI's fields.
    for ((name, theirs), (_, mine)) in recorded.iter().zip(&ours) {
        let missing: Vec<_> = keys(theirs).difference(&keys(mine)).cloned().collect();
        assert!(missing.is_empty(), "{name}: missing {missing:?}");
    }
    let (_, done) = ours.last().unwrap();
    assert_eq!(
        done["response"]["output"][0]["content"][0]["text"],
        "The capital of France is Paris."
    );
    assert_eq!(done["response"]["usage"]["total_tokens"], 287);
    let theirs = &recorded.last().unwrap().1["response"];
    let missing: Vec<_> = keys(theirs)
        .difference(&keys(&done["response"]))
        .cloned()
        .collect();
    assert!(missing.is_empty(), "response: missing {missing:?}");
    for field in ["output_text.done", "content_part.done", "output_item.done"] {
        let find = |e: &[(String, Value)]| {
            e.iter()
                .find(|(n, _)| n.ends_with(field))
                .unwrap()
                .1
                .clone()
        };
        let (a, b) = (find(&recorded), find(&ours));
        assert_eq!(a["output_index"], b["output_index"], "{field}");
    }
}

#[test]
fn a_function_call_streams_the_events_openai_sends() {
    let recorded = events(&fixture("openai/responses_stream_function_call.sse"));
    let mut canonical = vec![
        StreamEvent::Start {
            id: "x".into(),
            model: "gpt-4o-2024-08-06".into(),
        },
        StreamEvent::ToolCallStart {
            index: 0,
            id: "call_kL0PCQV7M2WMoVX8V8OtYSAL".into(),
            name: "get_capital".into(),
        },
    ];
    for (name, data) in &recorded {
        if name == "response.function_call_arguments.delta" {
            canonical.push(StreamEvent::ToolCallArgs {
                index: 0,
                delta: data["delta"].as_str().unwrap().into(),
            });
        }
    }
    canonical.extend([StreamEvent::Finish(FinishReason::ToolCalls), usage(255, 16)]);
    let ours = encode(&canonical);
    let names = |e: &[(String, Value)]| e.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&recorded));
    let item = |e: &[(String, Value)]| {
        e.iter()
            .find(|(n, _)| n == "response.output_item.done")
            .unwrap()
            .1["item"]
            .clone()
    };
    let (theirs, mine) = (item(&recorded), item(&ours));
    assert_eq!(keys(&theirs), keys(&mine));
    assert_eq!(
        (mine["arguments"].as_str(), mine["call_id"].as_str()),
        (theirs["arguments"].as_str(), theirs["call_id"].as_str())
    );
}

#[test]
fn a_whole_response_has_openais_fields() {
    let theirs: Value = serde_json::from_str(&fixture("openai/responses_response.json")).unwrap();
    let answer = ChatResponse {
        id: "x".into(),
        model: "gpt-4o-mini-2024-07-18".into(),
        content: vec![Part::Text("7 + 7 equals 14.".into())],
        finish: FinishReason::Stop,
        usage: Some(Usage {
            input_tokens: 14,
            output_tokens: 9,
            cached_input_tokens: Some(0),
            reasoning_tokens: Some(0),
            ..Default::default()
        }),
    };
    let mine = render_response(&answer, "resp_1", "m", 1, &Echo::default());
    let missing: Vec<_> = keys(&theirs).difference(&keys(&mine)).cloned().collect();
    // Fields of features Meridian does not offer are left out by design.
    let by_design: BTreeSet<String> = [
        "background",
        "billing",
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "top_logprobs",
        "max_tool_calls",
        "conversation",
        "prompt",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let missing: Vec<_> = missing
        .into_iter()
        .filter(|k| !by_design.contains(k))
        .collect();
    assert!(missing.is_empty(), "missing {missing:?}");
    assert_eq!(mine["usage"], theirs["usage"]);
    assert_eq!(keys(&mine["output"][0]), keys(&theirs["output"][0]));
    assert_eq!(
        mine["output"][0]["content"][0]["text"],
        theirs["output"][0]["content"][0]["text"]
    );
}
