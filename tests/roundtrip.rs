//! Property tests: answers survive translation between dialects through the canonical form, where the formats
//! can express the same thing.

use meridian::canonical::{ChatResponse, FinishReason, Part, StreamEvent, Usage};
use meridian::inbound::{anthropic as anthropic_in, openai as openai_in};
use meridian::providers::{anthropic as anthropic_out, openai_compat};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    // Printable text including quotes, escapes and non-ASCII, never empty.
    "[a-zA-Z0-9 .,:;!?\"'\\\\/\\n\\téü日本🙂]{1,40}"
}

fn arguments() -> impl Strategy<Value = String> {
    // Compact JSON objects with sorted keys: the text every JSON round trip reproduces exactly.
    prop::collection::btree_map(
        "[a-z_]{1,8}",
        prop_oneof![
            text().prop_map(serde_json::Value::from),
            any::<i32>().prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from)
        ],
        0..4,
    )
    .prop_map(|m| serde_json::to_string(&m).unwrap())
}

fn tool_call(i: usize) -> impl Strategy<Value = Part> {
    ("[a-zA-Z_][a-zA-Z0-9_]{0,20}", arguments()).prop_map(move |(name, arguments)| Part::ToolCall {
        id: format!("call_{i}"),
        name,
        arguments,
    })
}

fn finish() -> impl Strategy<Value = FinishReason> {
    prop_oneof![
        Just(FinishReason::Stop),
        Just(FinishReason::Length),
        Just(FinishReason::ToolCalls),
        Just(FinishReason::ContentFilter),
    ]
}

fn response() -> impl Strategy<Value = ChatResponse> {
    (
        prop::option::of(text()),
        prop::collection::vec(0usize..1, 0..3),
        finish(),
        any::<u32>(),
        any::<u32>(),
        "[a-zA-Z0-9_-]{1,30}",
    )
        .prop_flat_map(|(text, calls, finish, input, output, id)| {
            let calls: Vec<_> = (0..calls.len()).map(tool_call).collect();
            (
                Just(text),
                calls,
                Just(finish),
                Just(input),
                Just(output),
                Just(id),
            )
        })
        .prop_filter("an answer says something", |(t, c, ..)| {
            t.is_some() || !c.is_empty()
        })
        .prop_map(|(text, calls, finish, input, output, id)| {
            let mut content: Vec<Part> = text.into_iter().map(Part::Text).collect();
            content.extend(calls);
            ChatResponse {
                id: format!("msg_{id}"),
                model: "model-x".into(),
                content,
                finish,
                // Prompt-cache parts on every other answer (they must survive both dialects); reasoning is not
                // counted apart in Anthropic's usage, so it is left out here.
                usage: Some(Usage {
                    input_tokens: input.into(),
                    output_tokens: output.into(),
                    cached_input_tokens: (output % 2 == 0).then_some(u64::from(input) / 3),
                    cache_write_tokens: (output % 2 == 0).then_some(u64::from(input) / 5),
                    reasoning_tokens: None,
                }),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// OpenAI wire -> canonical -> Anthropic wire -> canonical gives the same canonical answer.
    #[test]
    fn response_openai_to_anthropic(resp in response()) {
        let openai_json = openai_in::render_response(&resp, 1);
        let from_openai = openai_compat::parse_response(&openai_json).unwrap();
        prop_assert_eq!(&from_openai, &resp);
        let anthropic_json = anthropic_in::render_response(&from_openai, "model-x");
        let from_anthropic = anthropic_out::parse_response(&anthropic_json).unwrap();
        prop_assert_eq!(from_anthropic, ChatResponse { finish: via_anthropic(resp.finish), ..resp });
    }

    /// The same answer streamed: canonical events through the OpenAI dialect and back, then through the
    /// Anthropic dialect and back, arrive unchanged.
    #[test]
    fn stream_openai_to_anthropic(resp in response(), cut in 1usize..64) {
        let mut events = vec![StreamEvent::Start { id: resp.id.clone(), model: resp.model.clone() }];
        for (i, p) in resp.content.iter().enumerate() {
            match p {
                Part::Text(t) => events.push(StreamEvent::Text(t.clone())),
                Part::ToolCall { id, name, arguments } => {
                    let index = (i - usize::from(matches!(resp.content[0], Part::Text(_)))) as u32;
                    events.push(StreamEvent::ToolCallStart { index, id: id.clone(), name: name.clone() });
                    if !arguments.is_empty() {
                        events.push(StreamEvent::ToolCallArgs { index, delta: arguments.clone() });
                    }
                }
                _ => {}
            }
        }
        events.push(StreamEvent::Finish(resp.finish));
        events.extend(resp.usage.map(StreamEvent::Usage));

        let mut wire = Vec::new();
        let mut enc = openai_in::StreamEncoder::new(1, true);
        for e in &events { enc.encode(e, &mut wire); }
        enc.finish(&mut wire);
        let back = decode(&wire, cut, openai_compat::StreamDecoder::new(), |d, b| d.push(b), |d| d.end());
        prop_assert_eq!(&back, &events);

        let mut wire = Vec::new();
        let mut enc = anthropic_in::StreamEncoder::new("model-x");
        for e in &back { enc.encode(e, &mut wire); }
        enc.finish(&mut wire);
        let again = decode(&wire, cut, anthropic_out::StreamDecoder::new(), |d, b| d.push(b), |d| d.end());
        let events: Vec<StreamEvent> = events
            .into_iter()
            .map(|e| match e {
                StreamEvent::Finish(f) => StreamEvent::Finish(via_anthropic(f)),
                e => e,
            })
            .collect();
        prop_assert_eq!(normalize(again), normalize(events));
    }
}

/// Anthropic has one stop reason for a model that declined and a filter that stopped it: `refusal`.
fn via_anthropic(f: FinishReason) -> FinishReason {
    match f {
        FinishReason::ContentFilter => FinishReason::Refusal,
        f => f,
    }
}

/// Feeds `wire` in chunks of `cut` bytes, as a network would.
fn decode<D, E>(
    wire: &[u8],
    cut: usize,
    mut d: D,
    push: impl Fn(&mut D, &[u8]) -> Result<Vec<StreamEvent>, E>,
    end: impl Fn(&mut D) -> Result<Vec<StreamEvent>, E>,
) -> Vec<StreamEvent>
where
    E: std::fmt::Debug,
{
    let mut out = Vec::new();
    for chunk in wire.chunks(cut) {
        out.extend(push(&mut d, chunk).unwrap());
    }
    out.extend(end(&mut d).unwrap());
    out
}

/// Anthropic reports the stop reason and usage together, so their relative order is not preserved.
fn normalize(mut events: Vec<StreamEvent>) -> Vec<StreamEvent> {
    let rank = |e: &StreamEvent| match e {
        StreamEvent::Finish(_) => 1,
        StreamEvent::Usage(_) => 2,
        _ => 0,
    };
    events.sort_by_key(|e| rank(e) > 0);
    let tail = events
        .iter()
        .position(|e| rank(e) > 0)
        .unwrap_or(events.len());
    events[tail..].sort_by_key(rank);
    events
}
