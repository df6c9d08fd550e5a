//! Fuzz-style property tests: everything that parses bytes from clients or providers is fed arbitrary bytes,
//! structurally plausible but mangled JSON, and corrupted streams split into random chunks. The property is that
//! nothing panics (a panic aborts the whole worker invocation); results may be `Ok` or `Err`. Where a stronger
//! property holds for any input (stream parsers give the same result however the input is chunked), it is
//! checked too.
//!
//! Each property runs proptest's default number of cases (256), so `cargo test` stays fast. `PROPTEST_CASES`
//! overrides it; for a long run:
//!
//! ```sh
//! PROPTEST_CASES=200000 cargo test --release --test fuzz
//! ```
#![allow(clippy::disallowed_methods)] // one JSON reader is the worker's rule; this is a test

use meridian::browser_token::{self, Claims};
use meridian::inbound::{anthropic as anthropic_in, openai as openai_in};
use meridian::limits::{self, Limits};
use meridian::providers::bedrock::{converse, eventstream};
use meridian::providers::{anthropic, gemini, openai_compat};
use meridian::sse::{SseError, SseEvent, SseParser};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::{Map, Value};

// ---------------------------------------------------------------------------------------------------------------
// Inputs: fixtures, JSON values and mutations.

const OPENAI_REQUEST: &str = include_str!("fixtures/openai/chat_request_tools.json");
const ANTHROPIC_REQUEST: &str = include_str!("fixtures/anthropic/messages_request.json");
const OPENAI_STREAM: &str = include_str!("fixtures/openai/stream_tool_call.sse");
const ANTHROPIC_STREAM_TEXT: &str = include_str!("fixtures/anthropic/stream_text.sse");
const ANTHROPIC_STREAM_TOOLS: &str = include_str!("fixtures/anthropic/stream_tool_use.sse");
const GEMINI_STREAM: &str = include_str!("fixtures/gemini/stream.sse");
const BEDROCK_STREAM: &[u8] = include_bytes!("fixtures/bedrock/converse_stream.bin");
const BEDROCK_EVENTS: &str = include_str!("fixtures/bedrock/converse_stream_events.json");

/// Member names of every dialect and wire format, so generated objects hit real code paths.
const KEYS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "image_url",
    "url",
    "detail",
    "tool_calls",
    "id",
    "function",
    "name",
    "arguments",
    "tool_call_id",
    "tools",
    "parameters",
    "description",
    "tool_choice",
    "response_format",
    "json_schema",
    "schema",
    "strict",
    "stream",
    "stream_options",
    "include_usage",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "user",
    "system",
    "source",
    "media_type",
    "data",
    "input",
    "tool_use_id",
    "is_error",
    "metadata",
    "user_id",
    "stop_sequences",
    "cache_control",
    "input_schema",
    "disable_parallel_tool_use",
    "refusal",
    "choices",
    "delta",
    "index",
    "finish_reason",
    "usage",
    "prompt_tokens",
    "completion_tokens",
    "candidates",
    "parts",
    "functionCall",
    "args",
    "usageMetadata",
    "promptTokenCount",
    "candidatesTokenCount",
    "finishReason",
    "message",
    "content_block",
    "partial_json",
    "stop_reason",
    "input_tokens",
    "output_tokens",
    "error",
    "responseId",
    "modelVersion",
    "contentBlockIndex",
    "start",
    "toolUse",
    "toolUseId",
    "stopReason",
    "inputTokens",
    "outputTokens",
    "totalTokens",
];

/// String values with meaning somewhere (roles, part types, reasons, event names), plus awkward text.
const STRINGS: &[&str] = &[
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "function",
    "text",
    "image_url",
    "image",
    "tool_use",
    "tool_result",
    "json_object",
    "json_schema",
    "auto",
    "none",
    "required",
    "any",
    "base64",
    "url",
    "image/png",
    "data:image/png;base64,iVBORw0KGgo=",
    "data:;base64,",
    "data:image/png,xx",
    "https://example.com/a.png",
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "STOP",
    "MAX_TOKENS",
    "SAFETY",
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
    "text_delta",
    "input_json_delta",
    "{\"a\":1}",
    "{",
    "",
    "[DONE]",
    "fast",
    "日本🙂",
    "\u{0}\u{7f}",
];

const EVENT_NAMES: &[&str] = &[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
    "",
];

const BEDROCK_EVENT_TYPES: &[&str] = &[
    "messageStart",
    "contentBlockStart",
    "contentBlockDelta",
    "contentBlockStop",
    "messageStop",
    "metadata",
    "internalServerException",
    "",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (0u32..5000).prop_map(Value::from),
        select(STRINGS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ]
}

/// Arbitrary JSON built from the vocabulary above.
fn json() -> BoxedStrategy<Value> {
    leaf()
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((select(KEYS), inner), 0..6).prop_map(|members| {
                    Value::Object(
                        members
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect::<Map<_, _>>(),
                    )
                }),
            ]
        })
        .boxed()
}

/// A chat request shaped enough to get past the first checks of either dialect.
fn request_shaped() -> impl Strategy<Value = Value> {
    let message = (
        select(&["user", "assistant", "system", "tool", "developer", "bogus"][..]),
        json(),
        prop::collection::vec((select(KEYS), json()), 0..3),
    )
        .prop_map(|(role, content, extra)| {
            let mut m = Map::new();
            m.insert("role".into(), role.into());
            m.insert("content".into(), content);
            for (k, v) in extra {
                m.insert(k.into(), v);
            }
            Value::Object(m)
        });
    (
        select(&["m", "fast", ""][..]),
        prop::collection::vec(message, 0..4),
        prop::collection::vec((select(KEYS), json()), 0..4),
    )
        .prop_map(|(model, messages, extra)| {
            let mut r = Map::new();
            for (k, v) in extra {
                r.insert(k.into(), v);
            }
            r.insert("model".into(), model.into());
            r.insert("messages".into(), Value::Array(messages));
            Value::Object(r)
        })
}

/// A change to one node of a JSON document, chosen by position in a pre-order walk.
#[derive(Debug, Clone)]
enum Edit {
    Replace(Index, Value),
    Remove(Index),
    /// Wraps the node in an array: right content, wrong type.
    Wrap(Index),
    /// Replaces the node by its own serialization as a string.
    Stringify(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), json()).prop_map(|(i, v)| Edit::Replace(i, v)),
        2 => any::<Index>().prop_map(Edit::Remove),
        1 => any::<Index>().prop_map(Edit::Wrap),
        1 => any::<Index>().prop_map(Edit::Stringify),
    ]
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// JSON pointers of every node, root first.
fn pointers(root: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), root)];
    while let Some((ptr, v)) = stack.pop() {
        match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    stack.push((format!("{ptr}/{i}"), item));
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    stack.push((format!("{ptr}/{}", escape(k)), item));
                }
            }
            _ => {}
        }
        out.push(ptr);
    }
    out
}

fn apply_edit(root: &mut Value, edit: &Edit) {
    let ptrs = pointers(root);
    let pick = |i: &Index| ptrs[i.index(ptrs.len())].clone();
    match edit {
        Edit::Replace(i, v) => {
            if let Some(node) = root.pointer_mut(&pick(i)) {
                *node = v.clone();
            }
        }
        Edit::Wrap(i) => {
            if let Some(node) = root.pointer_mut(&pick(i)) {
                *node = Value::Array(vec![node.take()]);
            }
        }
        Edit::Stringify(i) => {
            if let Some(node) = root.pointer_mut(&pick(i)) {
                *node = Value::String(node.to_string());
            }
        }
        Edit::Remove(i) => {
            let ptr = pick(i);
            let Some((parent, last)) = ptr.rsplit_once('/') else {
                return;
            };
            let key = last.replace("~1", "/").replace("~0", "~");
            match root.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(&key);
                }
                Some(Value::Array(items)) => {
                    if let Ok(idx) = key.parse::<usize>() {
                        if idx < items.len() {
                            items.remove(idx);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// A byte-level corruption.
#[derive(Debug, Clone)]
enum ByteEdit {
    Xor(Index, u8),
    Insert(Index, u8),
    InsertStr(Index, &'static str),
    Delete(Index),
    Truncate(Index),
    Duplicate(Index, Index),
}

/// Fragments that matter to the formats being fuzzed.
const FRAGMENTS: &[&str] = &[
    "\n", "\r", "\r\n", "\n\n", "data: ", "event: ", ":", "\"", "\\", "{", "}", "[", "]", ",",
    "\\u", "\\ud800", "null", "1e999", "-", "\u{feff}", "\u{0}",
];

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<Index>(), 1u8..=255).prop_map(|(i, x)| ByteEdit::Xor(i, x)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        (any::<Index>(), select(FRAGMENTS)).prop_map(|(i, s)| ByteEdit::InsertStr(i, s)),
        any::<Index>().prop_map(ByteEdit::Delete),
        any::<Index>().prop_map(ByteEdit::Truncate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| ByteEdit::Duplicate(a, b)),
    ]
}

fn mangle(bytes: &mut Vec<u8>, edits: &[ByteEdit]) {
    for e in edits {
        let len = bytes.len();
        let at = |i: &Index| i.index(len + 1);
        match e {
            ByteEdit::Xor(i, x) if len > 0 => bytes[i.index(len)] ^= x,
            ByteEdit::Insert(i, b) => bytes.insert(at(i), *b),
            ByteEdit::InsertStr(i, s) => {
                let p = at(i);
                bytes.splice(p..p, s.bytes());
            }
            ByteEdit::Delete(i) if len > 0 => {
                bytes.remove(i.index(len));
            }
            ByteEdit::Truncate(i) => bytes.truncate(at(i)),
            ByteEdit::Duplicate(a, b) => {
                // Repeats a run of at most 64 bytes right after itself.
                let (a, b) = (at(a), at(b));
                let lo = a.min(b);
                let hi = a.max(b).min(lo + 64);
                let copy = bytes[lo..hi].to_vec();
                bytes.splice(hi..hi, copy);
            }
            _ => {}
        }
    }
}

/// Splits `bytes` at the given points (in any order, repeats giving empty chunks).
fn chunks<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::with_capacity(points.len() + 1);
    let mut start = 0;
    for p in points {
        out.push(&bytes[start..p]);
        start = p;
    }
    out.push(&bytes[start..]);
    out
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn byte_edits() -> impl Strategy<Value = Vec<ByteEdit>> {
    prop::collection::vec(byte_edit(), 0..4)
}

fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..8)
}

/// An SSE stream as (event name, data) pairs, read with the parser itself.
fn sse_events(text: &str) -> Vec<SseEvent> {
    let mut p = SseParser::new();
    let mut events = p.push(text.as_bytes()).unwrap();
    events.extend(p.push(b"\n\n").unwrap());
    events
}

/// Rebuilds an SSE stream from events whose JSON data was edited, with events dropped, duplicated or added.
fn edited_sse(
    events: &[SseEvent],
    edits: &[(Index, Edit)],
    drops: &[Index],
    added: &[(Index, Option<&'static str>, Value)],
) -> Vec<u8> {
    let mut events: Vec<(Option<String>, String)> = events
        .iter()
        .map(|e| (e.event.clone(), e.data.clone()))
        .collect();
    for (which, e) in edits {
        if events.is_empty() {
            break;
        }
        let n = which.index(events.len());
        if let Ok(mut v) = serde_json::from_str::<Value>(&events[n].1) {
            apply_edit(&mut v, e);
            events[n].1 = v.to_string();
        }
    }
    for d in drops {
        if !events.is_empty() {
            let n = d.index(events.len());
            events.remove(n);
        }
    }
    for (at, name, v) in added {
        let n = at.index(events.len() + 1);
        events.insert(n, (name.map(str::to_owned), v.to_string()));
    }
    let mut out = Vec::new();
    for (name, data) in events {
        if let Some(name) = name {
            out.extend_from_slice(format!("event: {name}\n").as_bytes());
        }
        for line in data.split('\n') {
            out.extend_from_slice(format!("data: {line}\n").as_bytes());
        }
        out.push(b'\n');
    }
    out
}

/// Parameters of a corrupted stream: data edits, dropped events, added events, byte corruption, chunking.
type StreamCase = (
    Vec<(Index, Edit)>,
    Vec<Index>,
    Vec<(Index, Option<&'static str>, Value)>,
    Vec<ByteEdit>,
    Vec<Index>,
);

fn stream_case() -> impl Strategy<Value = StreamCase> {
    (
        prop::collection::vec((any::<Index>(), edit()), 0..3),
        prop::collection::vec(any::<Index>(), 0..2),
        prop::collection::vec(
            (
                any::<Index>(),
                prop::option::of(select(EVENT_NAMES)),
                json(),
            ),
            0..2,
        ),
        prop::collection::vec(byte_edit(), 0..2),
        cuts(),
    )
}

/// Builds the corrupted stream for one case from a fixture.
fn corrupt_stream(fixture: &str, case: &StreamCase) -> Vec<u8> {
    let (edits, drops, added, byte_edits, _) = case;
    let mut bytes = edited_sse(&sse_events(fixture), edits, drops, added);
    mangle(&mut bytes, byte_edits);
    bytes
}

/// Feeds chunks to a provider stream decoder until the first error, as the gateway does, then ends it.
macro_rules! drive {
    ($decoder:expr, $chunks:expr) => {{
        let mut decoder = $decoder;
        let mut ok = true;
        for chunk in $chunks {
            if decoder.push(chunk).is_err() {
                ok = false;
                break;
            }
        }
        if ok {
            let _ = decoder.end();
        }
    }};
}

// ---------------------------------------------------------------------------------------------------------------
// (a), (b): client request parsers.

fn parse_openai(body: &[u8]) {
    if let Ok(req) = openai_in::parse_chat(body) {
        let _ = req.to_canonical();
    }
}

proptest! {
    #[test]
    fn openai_parse_arbitrary_bytes(body in bytes(512)) {
        parse_openai(&body);
    }

    #[test]
    fn openai_parse_shaped_requests(req in request_shaped(), mangling in byte_edits()) {
        let mut body = serde_json::to_vec(&req).unwrap();
        parse_openai(&body);
        mangle(&mut body, &mangling);
        parse_openai(&body);
    }

    #[test]
    fn openai_parse_edited_fixture(
        edits in prop::collection::vec(edit(), 1..4),
        mangling in byte_edits(),
    ) {
        let mut v: Value = serde_json::from_str(OPENAI_REQUEST).unwrap();
        for e in &edits {
            apply_edit(&mut v, e);
        }
        let mut body = serde_json::to_vec(&v).unwrap();
        parse_openai(&body);
        mangle(&mut body, &mangling);
        parse_openai(&body);
    }

    #[test]
    fn anthropic_parse_arbitrary_bytes(body in bytes(512)) {
        let _ = anthropic_in::parse_request(&body);
    }

    #[test]
    fn anthropic_parse_shaped_requests(req in request_shaped(), mangling in byte_edits()) {
        let mut body = serde_json::to_vec(&req).unwrap();
        let _ = anthropic_in::parse_request(&body);
        mangle(&mut body, &mangling);
        let _ = anthropic_in::parse_request(&body);
    }

    #[test]
    fn anthropic_parse_edited_fixture(
        edits in prop::collection::vec(edit(), 1..4),
        mangling in byte_edits(),
    ) {
        let mut v: Value = serde_json::from_str(ANTHROPIC_REQUEST).unwrap();
        for e in &edits {
            apply_edit(&mut v, e);
        }
        let mut body = serde_json::to_vec(&v).unwrap();
        let _ = anthropic_in::parse_request(&body);
        mangle(&mut body, &mangling);
        let _ = anthropic_in::parse_request(&body);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// (c): the SSE parser gives the same events for any chunking of any input as for the whole input.

/// Events, final idleness and boundary for `chunks` pushed in order, or the error that stopped the parser:
/// whether the input is refused (not UTF-8) does not depend on how it is cut either.
/// (An event's `end` may fall between the `\r` and `\n` of its last line when a cut does; the final boundary
/// may not.)
type Parsed = (Vec<(Option<String>, String)>, bool, u64);
fn sse_all(chunks: &[&[u8]]) -> Result<Parsed, SseError> {
    let mut p = SseParser::new();
    let mut events = Vec::new();
    for c in chunks {
        events.extend(p.push(c)?.into_iter().map(|e| (e.event, e.data)));
    }
    Ok((events, p.is_idle(), p.boundary()))
}

/// Chunked parsing, empty chunks included, gives exactly what whole parsing gives.
fn sse_same_however_chunked(input: &[u8], cuts: &[Index]) -> Result<(), TestCaseError> {
    let all = chunks(input, cuts);
    prop_assert_eq!(sse_all(&all), sse_all(&[input]));
    Ok(())
}

proptest! {
    #[test]
    fn sse_parser_random_bytes(input in bytes(512), cuts in cuts()) {
        sse_same_however_chunked(&input, &cuts)?;
    }

    #[test]
    fn sse_parser_sse_like_text(
        parts in prop::collection::vec(
            prop_oneof![select(FRAGMENTS).prop_map(str::to_owned), ".{0,8}"],
            0..40,
        ),
        cuts in cuts(),
    ) {
        sse_same_however_chunked(parts.concat().as_bytes(), &cuts)?;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// (d): the AWS event-stream decoder.

fn frames_all(chunks: &[&[u8]]) -> Result<Vec<eventstream::Message>, eventstream::DecodeError> {
    let mut d = eventstream::Decoder::new();
    let mut out = Vec::new();
    for c in chunks {
        out.extend(d.push(c)?);
    }
    Ok(out)
}

proptest! {
    #[test]
    fn eventstream_random_bytes(input in bytes(512), cuts in cuts()) {
        let _ = frames_all(&chunks(&input, &cuts));
    }

    #[test]
    fn eventstream_valid_frames_chunked(
        frames in prop::collection::vec(
            (prop::collection::vec((".{0,10}", ".{0,20}"), 0..4), bytes(64)),
            0..4,
        ),
        cuts in cuts(),
    ) {
        let mut stream = Vec::new();
        for (headers, payload) in &frames {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            stream.extend(eventstream::encode(&headers, payload));
        }
        let whole = frames_all(&[&stream]).unwrap();
        prop_assert_eq!(whole.len(), frames.len());
        prop_assert_eq!(frames_all(&chunks(&stream, &cuts)).unwrap(), whole);
    }

    #[test]
    fn eventstream_corrupted_frames(
        mangling in prop::collection::vec(byte_edit(), 1..4),
        cuts in cuts(),
    ) {
        let mut stream = BEDROCK_STREAM.to_vec();
        mangle(&mut stream, &mangling);
        let _ = frames_all(&chunks(&stream, &cuts));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// (e): provider stream decoders.

proptest! {
    #[test]
    fn stream_decoders_random_bytes(input in bytes(512), cuts in cuts()) {
        let c = chunks(&input, &cuts);
        drive!(openai_compat::StreamDecoder::new(), c.iter().copied());
        drive!(anthropic::StreamDecoder::new(), c.iter().copied());
        drive!(gemini::StreamDecoder::new("id".into(), "m".into()), c.iter().copied());
        drive!(converse::StreamDecoder::new("id".into(), "m".into()), c.iter().copied());
    }

    #[test]
    fn stream_decoders_random_json_events(
        events in prop::collection::vec(
            (any::<Index>(), prop::option::of(select(EVENT_NAMES)), json()),
            0..8,
        ),
        cuts in cuts(),
    ) {
        let input = edited_sse(&[], &[], &[], &events);
        let c = chunks(&input, &cuts);
        drive!(openai_compat::StreamDecoder::new(), c.iter().copied());
        drive!(anthropic::StreamDecoder::new(), c.iter().copied());
        drive!(gemini::StreamDecoder::new("id".into(), "m".into()), c.iter().copied());
    }

    #[test]
    fn openai_stream_decoder_corrupted(case in stream_case()) {
        let input = corrupt_stream(OPENAI_STREAM, &case);
        drive!(openai_compat::StreamDecoder::new(), chunks(&input, &case.4));
    }

    #[test]
    fn anthropic_stream_decoder_corrupted(case in stream_case(), tools in any::<bool>()) {
        let fixture = if tools { ANTHROPIC_STREAM_TOOLS } else { ANTHROPIC_STREAM_TEXT };
        let input = corrupt_stream(fixture, &case);
        drive!(anthropic::StreamDecoder::new(), chunks(&input, &case.4));
    }

    #[test]
    fn gemini_stream_decoder_corrupted(case in stream_case()) {
        let input = corrupt_stream(GEMINI_STREAM, &case);
        drive!(gemini::StreamDecoder::new("id".into(), "m".into()), chunks(&input, &case.4));
    }

    #[test]
    fn bedrock_stream_decoder_edited_events(
        edits in prop::collection::vec((any::<Index>(), edit()), 0..3),
        added in prop::collection::vec(
            (
                any::<Index>(),
                select(BEDROCK_EVENT_TYPES),
                select(&["event", "exception", "error", "bogus"][..]),
                json(),
            ),
            0..3,
        ),
        mangling in prop::collection::vec(byte_edit(), 0..2),
        cuts in cuts(),
    ) {
        let fixture: Vec<(String, String)> = serde_json::from_str(BEDROCK_EVENTS).unwrap();
        let mut events: Vec<(String, &str, String)> = fixture
            .into_iter()
            .map(|(t, p)| (t, "event", p))
            .collect();
        for (which, e) in &edits {
            let n = which.index(events.len());
            if let Ok(mut v) = serde_json::from_str::<Value>(&events[n].2) {
                apply_edit(&mut v, e);
                events[n].2 = v.to_string();
            }
        }
        for (at, event_type, message_type, v) in &added {
            let n = at.index(events.len() + 1);
            events.insert(n, ((*event_type).to_owned(), message_type, v.to_string()));
        }
        let mut stream = Vec::new();
        for (event_type, message_type, payload) in &events {
            stream.extend(eventstream::encode(
                &[
                    (":event-type", event_type),
                    (":exception-type", event_type),
                    (":content-type", "application/json"),
                    (":message-type", message_type),
                ],
                payload.as_bytes(),
            ));
        }
        mangle(&mut stream, &mangling);
        drive!(converse::StreamDecoder::new("id".into(), "m".into()), chunks(&stream, &cuts));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// (f): browser tokens.

const SECRET: &[u8] = b"fuzzing-secret-0123456789abcdef";

fn verify_any(token: &str, now: u64, origin: Option<&str>) {
    let secrets: [(&str, &[u8]); 2] = [("", SECRET), ("k1", b"another-secret-0123456789abcdef")];
    let _ = browser_token::verify(token, &secrets, now, origin);
    let _ = browser_token::is_browser_token(token);
}

proptest! {
    #[test]
    fn browser_token_arbitrary_strings(
        s in ".{0,200}",
        now in any::<u64>(),
        origin in prop::option::of(".{0,30}"),
    ) {
        verify_any(&s, now, origin.as_deref());
        verify_any(&format!("mrd1.{s}"), now, origin.as_deref());
    }

    #[test]
    fn browser_token_base64_segments(
        a in "[A-Za-z0-9_=+/-]{0,120}",
        b in "[A-Za-z0-9_=+/-]{0,60}",
        now in any::<u64>(),
    ) {
        verify_any(&format!("mrd1.{a}.{b}"), now, Some("https://app.example.com"));
    }

    #[test]
    fn browser_token_signed_arbitrary_claims(claims in json()) {
        // Correctly signed payloads of any shape: claims parsing must hold up on its own.
        let payload = serde_json::to_vec(&claims).unwrap();
        let mut t = String::from("mrd1.");
        t.push_str(&b64url(&payload));
        let mac = browser_token::hmac_sha256(SECRET, t.as_bytes());
        t.push('.');
        t.push_str(&b64url(&mac));
        verify_any(&t, 0, Some("https://app.example.com"));
    }

    #[test]
    fn browser_token_mangled_valid_tokens(
        exp in any::<u64>(),
        models in prop::collection::vec(".{0,8}", 0..3),
        origin in ".{0,30}",
        kid in prop::option::of(select(&["", "k1", "k2"][..])),
        mangling in prop::collection::vec(byte_edit(), 0..3),
        now in any::<u64>(),
    ) {
        let claims = Claims {
            exp,
            iat: None,
            models,
            origin: origin.clone(),
            rpm: None,
            sub: None,
            kid: kid.map(str::to_owned),
        };
        let mut t = browser_token::mint(SECRET, &claims).into_bytes();
        mangle(&mut t, &mangling);
        verify_any(&String::from_utf8_lossy(&t), now, Some(&origin));
    }
}

/// Unpadded base64url, for building tokens by hand.
fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let v = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(char::from(A[((v >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------
// (g): body limits.

fn tiny_limits() -> Limits {
    Limits {
        max_body_bytes: 256,
        max_messages: 2,
        max_tokens: 100,
        max_json_depth: 3,
        max_string_bytes: 16,
    }
}

fn check_limits(body: &[u8]) {
    for l in [Limits::default(), tiny_limits()] {
        if limits::check_body(body, &l).is_ok() {
            let _ = limits::check_strings_in(body, &l);
            if let Ok(text) = core::str::from_utf8(body) {
                let _ = limits::check_max_tokens_text(text, &l);
            }
        }
    }
}

proptest! {
    #[test]
    fn limits_arbitrary_bytes(body in bytes(512)) {
        check_limits(&body);
    }

    #[test]
    fn limits_mangled_json(req in request_shaped(), mangling in byte_edits()) {
        let mut body = serde_json::to_vec(&req).unwrap();
        check_limits(&body);
        mangle(&mut body, &mangling);
        check_limits(&body);
    }

    #[test]
    fn limits_depth_scan_agrees_with_the_parser(v in json()) {
        // For valid JSON the scan's depth is exact: a document passes a depth limit iff its real depth fits.
        fn depth(v: &Value) -> usize {
            match v {
                Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
                Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
                _ => 0,
            }
        }
        let body = serde_json::to_vec(&v).unwrap();
        let d = depth(&v);
        for limit in [0, 1, 2, 3, 4, 5] {
            let l = Limits { max_json_depth: limit, ..Limits::default() };
            let ok = limits::check_body(&body, &l).is_ok();
            prop_assert_eq!(ok, d <= limit, "depth {} limit {}", d, limit);
        }
    }
}

/// Re-serialises JSON with every object's keys in reverse order and extra whitespace: the same request.
fn reordered(v: &Value) -> String {
    match v {
        Value::Object(o) => {
            let parts: Vec<String> = o
                .iter()
                .rev()
                .map(|(k, v)| format!("{} : {}", Value::String(k.clone()), reordered(v)))
                .collect();
            format!("{{ {} }}", parts.join(" ,\n "))
        }
        Value::Array(a) => format!(
            "[ {} ]",
            a.iter().map(reordered).collect::<Vec<_>>().join(" , ")
        ),
        other => other.to_string(),
    }
}

fn key_of(body: &[u8]) -> Option<String> {
    let chat = openai_in::parse_chat(body).ok()?;
    let c = chat.to_canonical().ok()?;
    Some(meridian::cache::key::cache_key(
        "tenant",
        "model",
        &c,
        Some(&meridian::cache::key::Body::OpenAi(chat.body.object())),
    ))
}

proptest! {
    /// Cache keys: never a panic on mangled requests, and blind to key order and whitespace.
    #[test]
    fn cache_key_canonicalisation(req in request_shaped(), mangling in byte_edits()) {
        let body = serde_json::to_vec(&req).unwrap();
        let key = key_of(&body);
        if let Some(k) = &key {
            prop_assert!(k.len() <= 512);
        }
        prop_assert_eq!(key_of(reordered(&req).as_bytes()), key);
        let mut mangled = body.clone();
        mangle(&mut mangled, &mangling);
        let _ = key_of(&mangled);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The cache key changes when any field that is forwarded changes: one leaf of a request that uses every kind of
// field is changed at a time (strings grow, numbers move, booleans flip); whatever still parses must get another
// key. Only the fields that never change the answer (model, stream, stream_options, user) are exempt.

const RICH_REQUEST: &str = r#"{
  "model": "m", "temperature": 0, "top_p": 0.9, "max_tokens": 64, "seed": 7, "stop": ["END", "STOP"],
  "n": 1, "logprobs": false, "presence_penalty": 0.1, "frequency_penalty": 0.2, "logit_bias": {"50256": -100},
  "reasoning_effort": "low", "parallel_tool_calls": true, "service_tier": "auto", "metadata": {"team": "a"},
  "prediction": {"type": "content", "content": "draft"}, "user": "u-1", "stream": true,
  "stream_options": {"include_usage": true},
  "response_format": {"type": "json_schema", "json_schema": {"name": "r", "strict": true, "schema": {"type": "object"}}},
  "tools": [{"type": "function", "function": {"name": "f", "description": "d", "strict": true,
             "parameters": {"type": "object", "properties": {"a": {"type": "integer", "minimum": 1}}}}}],
  "tool_choice": {"type": "function", "function": {"name": "f"}},
  "messages": [
    {"role": "developer", "content": "be terse"},
    {"role": "system", "content": [{"type": "text", "text": "metric units"}]},
    {"role": "user", "name": "ann", "content": [{"type": "text", "text": "hi"},
      {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}}]},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
      "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    {"role": "user", "content": "and now?"}
  ]
}"#;

fn leaf_pointers(root: &Value) -> Vec<String> {
    pointers(root)
        .into_iter()
        .filter(|p| !matches!(root.pointer(p), Some(Value::Array(_) | Value::Object(_))))
        .collect()
}

fn changed_leaf(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(format!("{s}x")),
        Value::Bool(b) => Value::Bool(!b),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            match n.as_i64() {
                Some(i) => Value::from(i + 1),
                None => Value::from(f + 1.0),
            }
        }
        Value::Null => Value::from(1),
        other => other.clone(),
    }
}

proptest! {
    #[test]
    fn cache_key_changes_with_any_forwarded_field(pick in any::<Index>()) {
        let base: Value = serde_json::from_str(RICH_REQUEST).unwrap();
        let key = key_of(RICH_REQUEST.as_bytes()).expect("the fixture is a valid request");
        let leaves = leaf_pointers(&base);
        let ptr = &leaves[pick.index(leaves.len())];
        let mut changed = base.clone();
        let node = changed.pointer_mut(ptr).unwrap();
        *node = changed_leaf(node);
        let exempt = ["/model", "/stream", "/stream_options", "/user"]
            .iter()
            .any(|e| ptr == e || ptr.starts_with(&format!("{e}/")));
        if let Some(k) = key_of(&serde_json::to_vec(&changed).unwrap()) {
            if exempt {
                prop_assert_eq!(&k, &key, "{} does not change the answer", ptr);
            } else {
                prop_assert_ne!(&k, &key, "changing {} must change the key", ptr);
            }
        }
    }
}

#[test]
fn cache_key_changes_with_any_forwarded_field_exhaustively() {
    // The same, every leaf in turn: the property above samples, this proves the fixture whole.
    let base: Value = serde_json::from_str(RICH_REQUEST).unwrap();
    let key = key_of(RICH_REQUEST.as_bytes()).unwrap();
    let mut checked = 0;
    for ptr in leaf_pointers(&base) {
        if ["/model", "/stream", "/user"].contains(&ptr.as_str())
            || ptr.starts_with("/stream_options")
        {
            continue;
        }
        let mut changed = base.clone();
        let node = changed.pointer_mut(&ptr).unwrap();
        *node = changed_leaf(node);
        if let Some(k) = key_of(&serde_json::to_vec(&changed).unwrap()) {
            assert_ne!(k, key, "changing {ptr} must change the key");
            checked += 1;
        }
    }
    assert!(
        checked >= 40,
        "most leaves still parse when changed ({checked})"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Every decoder ended early at every boundary: a provider's connection can close after any byte. None may panic,
// and a stream cut before its end marker must never decode as complete. Each cut is also split once more inside,
// so that the state carried between two pushes is exercised at every point.

/// Pushes `stream[..cut]` in two pieces (split at `split`), then ends the decoder: whether it ended complete.
macro_rules! ended_early {
    ($decoder:expr, $stream:expr, $cut:expr, $split:expr) => {{
        let mut d = $decoder;
        let prefix = &$stream[..$cut];
        let (a, b) = prefix.split_at($split.min(prefix.len()));
        d.push(a).is_ok() && d.push(b).is_ok() && d.end().is_ok()
    }};
}

/// Offset just past the last complete event: a cut before it loses the end marker.
fn last_event_start(stream: &[u8]) -> usize {
    let text = std::str::from_utf8(stream).unwrap();
    let trimmed = text.trim_end_matches(['\n', '\r']);
    trimmed
        .rfind("\n\n")
        .or_else(|| trimmed.rfind("\r\n\r\n"))
        .unwrap()
}

#[test]
fn sse_decoders_ended_at_every_boundary() {
    for (name, fixture) in [
        ("openai", OPENAI_STREAM),
        ("anthropic text", ANTHROPIC_STREAM_TEXT),
        ("anthropic tools", ANTHROPIC_STREAM_TOOLS),
        ("gemini", GEMINI_STREAM),
    ] {
        let s = fixture.as_bytes();
        let end_marker_from = last_event_start(s);
        for cut in 0..=s.len() {
            for split in [0, cut / 3, cut / 2, cut.saturating_sub(1)] {
                let complete = match name {
                    "openai" => ended_early!(openai_compat::StreamDecoder::new(), s, cut, split),
                    "gemini" => ended_early!(
                        gemini::StreamDecoder::new("id".into(), "m".into()),
                        s,
                        cut,
                        split
                    ),
                    _ => ended_early!(anthropic::StreamDecoder::new(), s, cut, split),
                };
                if cut <= end_marker_from {
                    assert!(
                        !complete,
                        "{name}: cut at {cut} (split {split}) decoded as complete"
                    );
                }
            }
        }
        let whole = match name {
            "openai" => ended_early!(openai_compat::StreamDecoder::new(), s, s.len(), 0),
            "gemini" => ended_early!(
                gemini::StreamDecoder::new("id".into(), "m".into()),
                s,
                s.len(),
                0
            ),
            _ => ended_early!(anthropic::StreamDecoder::new(), s, s.len(), 0),
        };
        assert!(whole, "{name}: the whole fixture is complete");
    }
}

#[test]
fn bedrock_decoder_ended_at_every_boundary() {
    let s = BEDROCK_STREAM;
    // A frame's first four bytes are its total length: the last frame starts where the others end.
    let mut last_frame = 0;
    while last_frame
        + u32::from_be_bytes(s[last_frame..last_frame + 4].try_into().unwrap()) as usize
        != s.len()
    {
        last_frame +=
            u32::from_be_bytes(s[last_frame..last_frame + 4].try_into().unwrap()) as usize;
    }
    for cut in 0..=s.len() {
        for split in [0, cut / 2, cut.saturating_sub(1)] {
            let complete = ended_early!(
                converse::StreamDecoder::new("id".into(), "m".into()),
                s,
                cut,
                split
            );
            // The message is whole at `messageStop`; only the `metadata` frame (usage) follows it.
            if cut < last_frame {
                assert!(
                    !complete,
                    "cut at {cut} (split {split}) decoded as complete"
                );
            }
        }
    }
    assert!(ended_early!(
        converse::StreamDecoder::new("id".into(), "m".into()),
        s,
        s.len(),
        0
    ));
}

#[test]
fn passthrough_ended_at_every_boundary_forwards_only_whole_events_then_an_error() {
    use futures_util::StreamExt;
    use meridian::passthrough::SsePassthrough;
    let s = OPENAI_STREAM.as_bytes();
    let whole = sse_events(OPENAI_STREAM).len();
    for cut in 0..s.len() {
        for split in [0, cut / 2] {
            let (a, b) = s[..cut].split_at(split);
            let body = futures_util::stream::iter([Ok(a.to_vec()), Ok(b.to_vec())]);
            let out: Vec<_> =
                futures_executor::block_on(SsePassthrough::new(Box::pin(body)).collect());
            let text =
                String::from_utf8(out.into_iter().flat_map(Result::unwrap).collect()).unwrap();
            let forwarded = text
                .strip_suffix("\n\n")
                .and_then(|t| t.rsplit_once("\n\n"));
            let error = text.rsplit("\n\n").nth(1).unwrap_or(&text);
            assert!(
                error.starts_with("data: {\"error\""),
                "cut {cut}: ends with an error event: {text}"
            );
            if let Some((before, _)) = forwarded {
                assert!(
                    s.starts_with(format!("{before}\n\n").as_bytes()),
                    "cut {cut}: a prefix of whole events"
                );
            }
            assert!(sse_events(&text).len() <= whole);
        }
    }
}
