//! Forwards a provider's SSE body untouched, event by event, to a client of the same wire format, while checking
//! it: every event must be one of the format's (an OpenAI chunk or `[DONE]`, an Anthropic event). Only whole,
//! checked events are forwarded, so a stream that carries garbage, reports an error, fails, or ends before its end
//! marker gets a final error event in the client's format that starts on an event boundary, and neither the
//! garbage, the provider's error nor half an event ever reaches the client. Nothing after the end is forwarded.

use crate::error::{ErrorCode, GatewayError};
use crate::http::{ByteStream, StreamError};
use crate::inbound::openai::error_event;
use crate::pricing::Quote;
use crate::providers::anthropic::StreamDecoder;
use crate::providers::openai_wire::{Choice, Completion};
use crate::record::Recorder;
use crate::sse::{SseEvent, SseParser};
use core::pin::Pin;
use core::task::{Context, Poll};
use futures_util::Stream;
use std::borrow::Cow;

/// What one event of a wire format says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Nothing the client waits for (a role chunk, a start, a ping).
    Nothing,
    /// Content: text, a tool call, a refusal, the finish or the usage.
    Content,
    /// The format's end marker: the answer is complete.
    End,
}

/// How the events of one wire format are checked.
pub trait WireCheck {
    /// Checks one whole event, telling `recorder` the usage it carries. An error when the provider reported one
    /// or the event is not the format's.
    fn event(&mut self, ev: &SseEvent, recorder: Option<&Recorder>) -> Result<Seen, GatewayError>;

    /// The error event that ends a failed stream, in the client's (and so the provider's) format.
    fn error_event(&self, e: &GatewayError) -> Vec<u8>;

    /// What to forward instead of a checked event, if anything: the event rewritten (the cost added to the final
    /// usage) or nothing at all (usage Meridian asked for and the client did not). `None`: the provider's bytes.
    fn amend(&mut self, ev: &SseEvent) -> Option<Vec<u8>> {
        let _ = ev;
        None
    }
}

/// An SSE event with `data` as its data (and `name`, if any, as its type).
fn sse_event(name: Option<&str>, data: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(n) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(n.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    let _ = serde_json::to_writer(&mut out, data);
    out.extend_from_slice(b"\n\n");
    out
}

/// OpenAI-wire chunks, ended by `data: [DONE]`.
#[derive(Debug, Default)]
pub struct OpenAiCheck {
    saw_content: bool,
    /// The cost to add to the final usage.
    quote: Option<Quote>,
    /// Meridian asked for the usage, the client did not: the usage chunk and each chunk's `"usage":null` are
    /// taken out.
    strip_usage: bool,
}

impl OpenAiCheck {
    pub fn new(quote: Quote, strip_usage: bool) -> Self {
        OpenAiCheck {
            saw_content: false,
            quote: Some(quote),
            strip_usage,
        }
    }
}

impl WireCheck for OpenAiCheck {
    fn event(&mut self, ev: &SseEvent, recorder: Option<&Recorder>) -> Result<Seen, GatewayError> {
        if ev.data == "[DONE]" {
            return Ok(Seen::End);
        }
        // Usage is read where it is sent (the last chunk, when the client asked for it).
        let plain = !ev.data.contains("\"error\"") && !ev.data.contains("\"usage\"");
        if self.saw_content && plain {
            // Past the first content only well-formedness matters, and that is cheaper to check.
            serde_json::from_slice::<serde::de::IgnoredAny>(ev.data.as_bytes())
                .map_err(|_| malformed())?;
            return Ok(Seen::Nothing);
        }
        let v: Completion = serde_json::from_slice(ev.data.as_bytes()).map_err(|_| malformed())?;
        if let Some(e) = &v.error {
            return Err(GatewayError::new(
                e.stream_code(),
                "provider stream reported an error",
            ));
        }
        if let (Some(u), Some(r)) = (v.usage, recorder) {
            r.usage(u.counts());
        }
        Ok(if has_content(&v) {
            self.saw_content = true;
            Seen::Content
        } else {
            Seen::Nothing
        })
    }

    fn error_event(&self, e: &GatewayError) -> Vec<u8> {
        error_event(e)
    }

    fn amend(&mut self, ev: &SseEvent) -> Option<Vec<u8>> {
        if (self.quote.is_none() && !self.strip_usage) || !ev.data.contains("\"usage\"") {
            return None;
        }
        if self.strip_usage && !ev.data.contains('\n') {
            // Each chunk's `"usage":null`, as OpenAI writes it, comes out without parsing the chunk (one line of
            // data; an event of several is rewritten whole below).
            for null in [",\"usage\":null", ", \"usage\": null"] {
                if let Some(at) = ev.data.find(null) {
                    let mut data = ev.data.clone();
                    data.replace_range(at..at + null.len(), "");
                    return Some(format!("data: {data}\n\n").into_bytes());
                }
            }
        }
        let mut v: serde_json::Value = serde_json::from_slice(ev.data.as_bytes()).ok()?;
        let obj = v.as_object_mut()?;
        match obj.get("usage") {
            Some(u) if u.is_object() => {
                let no_choices = obj
                    .get("choices")
                    .and_then(|c| c.as_array())
                    .is_none_or(|c| c.is_empty());
                if self.strip_usage && no_choices {
                    return Some(Vec::new());
                }
                if self.strip_usage {
                    obj.remove("usage");
                } else if let Some(q) = &self.quote {
                    let counts =
                        serde_json::from_value::<crate::providers::openai_wire::WireUsage>(
                            u.clone(),
                        )
                        .ok()?
                        .counts();
                    let cost = q.field(&counts);
                    obj.get_mut("usage")?
                        .as_object_mut()?
                        .insert("cost".into(), cost);
                }
            }
            Some(_) if self.strip_usage => {
                obj.remove("usage");
            }
            Some(_) | None => return None,
        }
        Some(sse_event(None, &v))
    }
}

/// Anthropic Messages events, ended by `message_stop`; read by the same decoder that translates them.
#[derive(Debug, Default)]
pub struct AnthropicCheck {
    decoder: StreamDecoder,
    /// The cost to add to the final usage (`message_delta`'s).
    quote: Option<Quote>,
    /// The usage the last event reported (the whole answer's, at `message_delta`).
    usage: Option<crate::canonical::Usage>,
}

impl AnthropicCheck {
    pub fn new(quote: Quote) -> Self {
        AnthropicCheck {
            decoder: StreamDecoder::default(),
            quote: Some(quote),
            usage: None,
        }
    }
}

impl WireCheck for AnthropicCheck {
    fn event(&mut self, ev: &SseEvent, recorder: Option<&Recorder>) -> Result<Seen, GatewayError> {
        let events = self.decoder.event(ev)?;
        if let Some(r) = recorder {
            crate::translate::observe(&events, r);
        }
        self.usage = events.iter().rev().find_map(|e| match e {
            crate::canonical::StreamEvent::Usage(u) => Some(*u),
            _ => None,
        });
        let content = events.iter().any(|e| {
            !matches!(
                e,
                crate::canonical::StreamEvent::Start { .. }
                    | crate::canonical::StreamEvent::Usage(_)
            )
        });
        Ok(if self.decoder.saw_stop() {
            Seen::End
        } else if content {
            Seen::Content
        } else {
            Seen::Nothing
        })
    }

    fn error_event(&self, e: &GatewayError) -> Vec<u8> {
        crate::inbound::anthropic::error_event(e)
    }

    fn amend(&mut self, ev: &SseEvent) -> Option<Vec<u8>> {
        let quote = self.quote?;
        if ev.event.as_deref() != Some("message_delta") {
            return None;
        }
        // The decoder reports the whole answer's usage (message_start's input with this delta's output) here.
        let counts = crate::record::TokenUsage::from(self.usage?);
        let mut v: serde_json::Value = serde_json::from_slice(ev.data.as_bytes()).ok()?;
        v.get_mut("usage")?
            .as_object_mut()?
            .insert("cost".into(), quote.field(&counts));
        Some(sse_event(ev.event.as_deref(), &v))
    }
}

pub struct SsePassthrough<C: WireCheck = OpenAiCheck> {
    check: C,
    inner: ByteStream,
    sse: SseParser,
    /// Bytes taken from the provider and not yet forwarded: checked events, then the event being read.
    pending: Vec<u8>,
    /// Stream offset of `pending[0]`, and of the end of what has been checked.
    pending_at: u64,
    checked_to: u64,
    /// How much longer `pending` is than the stream bytes it holds (amended events differ in length).
    shift: i64,
    saw_done: bool,
    /// Why the stream is being ended: sent as an error event once the checked events before it are out.
    failure: Option<GatewayError>,
    finished: bool,
    /// Told the provider's usage as it passes, and how the stream ended if it failed.
    recorder: Option<Recorder>,
}

/// Whether a chunk carries content: a finish reason, text, reasoning, a tool call, a refusal, or the usage.
fn has_content(chunk: &Completion) -> bool {
    let nonempty = |s: &Option<Cow<str>>| s.as_deref().is_some_and(|s| !s.is_empty());
    let choice = |c: &Choice| {
        c.finish_reason.is_some()
            || c.delta.as_ref().is_some_and(|d| {
                nonempty(&d.content)
                    || d.tool_calls.is_some()
                    || nonempty(&d.refusal)
                    || nonempty(&d.reasoning_content)
            })
    };
    chunk.usage.is_some() || chunk.choices.iter().flatten().any(choice)
}

fn malformed() -> GatewayError {
    GatewayError::new(
        ErrorCode::UpstreamMalformed,
        "provider sent a malformed stream event",
    )
}

impl SsePassthrough {
    pub fn new(inner: ByteStream) -> Self {
        Self::checked(inner, OpenAiCheck::default())
    }
}

impl<C: WireCheck> SsePassthrough<C> {
    pub fn checked(inner: ByteStream, check: C) -> Self {
        SsePassthrough {
            check,
            inner,
            sse: SseParser::new(),
            pending: Vec::new(),
            pending_at: 0,
            checked_to: 0,
            shift: 0,
            saw_done: false,
            failure: None,
            finished: false,
            recorder: None,
        }
    }

    pub fn with_recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Takes a chunk and checks the events it completes; says whether one carried content (text, a tool call or
    /// the finish). The gateway calls this itself until the first content, so that a provider sending garbage or
    /// nothing from the start still gets an error status rather than a 200. Events before a bad one stay
    /// forwardable.
    pub fn accept(&mut self, chunk: &[u8]) -> Result<bool, GatewayError> {
        if self.saw_done {
            // Nothing a provider sends after its end marker is part of the answer.
            return Ok(false);
        }
        self.pending.extend_from_slice(chunk);
        let mut content = false;
        for ev in self.sse.push(chunk)? {
            let seen = self.check.event(&ev, self.recorder.as_ref())?;
            if let Some(bytes) = self.check.amend(&ev) {
                // The event (and any comment before it) goes out as amended.
                let (from, to) = (self.index(self.checked_to), self.index(ev.end));
                self.shift += bytes.len() as i64 - (to - from) as i64;
                self.pending.splice(from..to, bytes);
            }
            match seen {
                Seen::End => {
                    self.saw_done = true;
                    self.checked_to = ev.end;
                    return Ok(true);
                }
                Seen::Content => content = true,
                Seen::Nothing => {}
            }
            self.checked_to = ev.end;
        }
        // Comments and empty events between checked events go along with them.
        self.checked_to = self.sse.boundary();
        Ok(content)
    }

    /// Where stream offset `at` (not yet forwarded) is in `pending`.
    fn index(&self, at: u64) -> usize {
        ((at - self.pending_at) as i64 + self.shift) as usize
    }

    /// The checked bytes not yet forwarded.
    fn take_checked(&mut self) -> Vec<u8> {
        let n = self.index(self.checked_to);
        self.pending_at = self.checked_to;
        self.shift = 0;
        if n == self.pending.len() {
            std::mem::take(&mut self.pending)
        } else {
            self.pending.drain(..n).collect()
        }
    }

    /// The next chunk from the provider, unchecked (the gateway checks it with [`SsePassthrough::accept`]).
    pub async fn next_raw(&mut self) -> Option<Result<Vec<u8>, StreamError>> {
        futures_util::StreamExt::next(&mut self.inner).await
    }
}

impl<C: WireCheck + Unpin> Stream for SsePassthrough<C> {
    type Item = Result<Vec<u8>, StreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.finished {
                return Poll::Ready(None);
            }
            if self.checked_to > self.pending_at {
                let checked = self.take_checked();
                // An event taken out entirely leaves nothing to send: a body never carries an empty chunk.
                if !checked.is_empty() {
                    return Poll::Ready(Some(Ok(checked)));
                }
                continue;
            }
            if let Some(e) = self.failure.take() {
                self.finished = true;
                self.pending = Vec::new();
                return Poll::Ready(Some(Ok(self.check.error_event(&e))));
            }
            if self.saw_done {
                self.finished = true;
                self.pending = Vec::new();
                return Poll::Ready(None);
            }
            let failure = match self.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => match self.accept(&chunk) {
                    Ok(_) => continue,
                    Err(e) => e,
                },
                Poll::Ready(Some(Err(e))) => GatewayError::new(
                    ErrorCode::UpstreamStreamError,
                    format!("provider stream failed: {e}"),
                ),
                Poll::Ready(None) => GatewayError::new(
                    ErrorCode::UpstreamStreamTruncated,
                    "provider stream ended before completion",
                ),
            };
            if let Some(r) = &self.recorder {
                r.stream_failed(failure.code);
            }
            self.failure = Some(failure);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_executor::block_on;
    use futures_util::{stream, StreamExt};

    fn run(chunks: Vec<Result<&'static str, &'static str>>) -> Vec<String> {
        let inner = stream::iter(chunks.into_iter().map(|c| {
            c.map(|s| s.as_bytes().to_vec())
                .map_err(|e| StreamError(e.into()))
        }));
        let out: Vec<_> = block_on(SsePassthrough::new(Box::pin(inner)).collect());
        out.into_iter()
            .map(|r| String::from_utf8(r.unwrap()).unwrap())
            .collect()
    }

    fn run_checked<C: WireCheck + Unpin>(check: C, chunks: &[&str]) -> String {
        let owned: Vec<Result<Vec<u8>, StreamError>> =
            chunks.iter().map(|c| Ok(c.as_bytes().to_vec())).collect();
        let out: Vec<_> = block_on(
            SsePassthrough::checked(Box::pin(stream::iter(owned)), check).collect::<Vec<_>>(),
        );
        out.into_iter()
            .map(|r| {
                let b = r.unwrap();
                assert!(!b.is_empty(), "never an empty chunk");
                String::from_utf8(b).unwrap()
            })
            .collect()
    }

    /// Chunks as OpenAI streams them with `stream_options.include_usage` (every chunk's `"usage":null`, then a
    /// usage chunk with no choices), shape from the API reference's chat streaming example.
    const WITH_USAGE: &[&str] = &[
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi \\\"usage\\\":null\"},\"finish_reason\":null}],\"usage\":null}\n\n: keep-alive\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\ndata: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":1000,\"completion_tokens\":100,\"total_tokens\":1100,\"prompt_tokens_details\":{\"cached_tokens\":400}}}\n\n",
        "data: [DONE]\n\n",
    ];

    const PRICE: crate::pricing::Price = crate::pricing::Price {
        input: 1.0,
        output: 10.0,
        cached_input: 0.1,
        cache_write: 1.0,
    };

    #[test]
    fn usage_the_client_did_not_ask_for_is_taken_out_and_nothing_else() {
        let out = run_checked(OpenAiCheck::new(Quote::At(PRICE), true), WITH_USAGE);
        let want = WITH_USAGE[..3].concat().replace(",\"usage\":null}", "}");
        let usage_chunk = want.rfind("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[],").unwrap();
        assert_eq!(out, format!("{}data: [DONE]\n\n", &want[..usage_chunk]));
        assert!(
            out.contains("Hi \\\"usage\\\":null"),
            "content is never touched: {out}"
        );
    }

    #[test]
    fn the_final_usage_says_what_the_answer_cost() {
        let out = run_checked(OpenAiCheck::new(Quote::At(PRICE), false), WITH_USAGE);
        // 600 plain input at 1, 400 cached at 0.1, 100 out at 10 (USD per million).
        let cost = (600.0 * 1.0 + 400.0 * 0.1 + 100.0 * 10.0) / 1e6;
        let last = out
            .split("\n\n")
            .filter(|e| e.contains("prompt_tokens"))
            .last()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(last.trim_start_matches("data: ")).unwrap();
        assert!(
            (v["usage"]["cost"].as_f64().unwrap() - cost).abs() < 1e-9,
            "{v}"
        );
        assert_eq!(v["usage"]["prompt_tokens"], 1000);
        // Every other event as the provider sent it.
        assert!(out.starts_with(&WITH_USAGE[..2].concat()));
        let unpriced = run_checked(OpenAiCheck::new(Quote::Unpriced, false), WITH_USAGE);
        assert!(unpriced.contains("\"cost\":null"));
    }

    #[test]
    fn anthropic_message_delta_carries_the_cost_of_the_whole_answer() {
        // Event shapes from Anthropic's streaming documentation.
        let events = [
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ];
        let out = run_checked(AnthropicCheck::new(Quote::At(PRICE)), &events);
        assert!(out.starts_with(&events[..4].concat()));
        assert!(out.ends_with(events[5]));
        let delta = out
            .split("\n\n")
            .find(|e| e.contains("message_delta"))
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_str(delta.split("data: ").nth(1).unwrap()).unwrap();
        let cost = (25.0 * 1.0 + 15.0 * 10.0) / 1e6;
        assert!(
            (v["usage"]["cost"].as_f64().unwrap() - cost).abs() < 1e-12,
            "{v}"
        );
        assert_eq!(v["usage"]["output_tokens"], 15);
    }

    #[test]
    fn complete_stream_is_untouched() {
        let out = run(vec![Ok("data: {\"a\":1}\n\n"), Ok("data: [DONE]\n\n")]);
        assert_eq!(out, vec!["data: {\"a\":1}\n\n", "data: [DONE]\n\n"]);
    }

    #[test]
    fn events_split_across_chunks_are_checked_whole() {
        let full = "data: {\"a\":\"b\"}\n\ndata: [DONE]\n\n";
        for split in 1..full.len() {
            let (a, b) = full.split_at(split);
            let a: &'static str = Box::leak(a.to_owned().into_boxed_str());
            let b: &'static str = Box::leak(b.to_owned().into_boxed_str());
            let out = run(vec![Ok(a), Ok(b)]);
            assert_eq!(out.concat(), full, "split {split}");
        }
    }

    #[test]
    fn an_error_mid_stream_ends_it_and_nothing_follows_done() {
        let out = run(vec![
            Ok("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"),
            Ok("data: {\"error\":{\"message\":\"overloaded\"}}\n\n"),
            Ok("data: [DONE]\n\n"),
        ]);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[1].contains("upstream_stream_error"));
        assert!(!out.concat().contains("[DONE]"));
        let out = run(vec![
            Ok("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"),
            Ok("data: [DONE]\n\n"),
            Ok("data: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n"),
        ]);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(!out.concat().contains("late"));
    }

    #[test]
    fn truncation_failure_and_garbage_end_with_an_error_event() {
        let out = run(vec![Ok("data: {}\n\n")]);
        assert_eq!(out.len(), 2);
        assert!(out[1].contains("upstream_stream_truncated"));
        let out = run(vec![
            Ok("data: {}\n\n"),
            Err("reset"),
            Ok("data: [DONE]\n\n"),
        ]);
        assert_eq!(out.len(), 2);
        assert!(out[1].contains("provider stream failed: reset"));
        let out = run(vec![
            Ok("data: {}\n\n"),
            Ok("data: {not json\n\n"),
            Ok("data: [DONE]\n\n"),
        ]);
        assert_eq!(out.len(), 2);
        assert!(out[1].contains("upstream_malformed"));
        assert!(
            !out.concat().contains("not json"),
            "garbage is never forwarded"
        );
    }

    #[test]
    fn half_an_event_is_never_forwarded_and_the_error_starts_on_a_boundary() {
        let good = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n";
        for bad in ["data: {notdata\n\n", "data: {\"choices\":[{\"delta\":"] {
            let full = format!("{good}{bad}");
            for split in 0..=full.len() {
                let (a, b) = full.split_at(split);
                let a: &'static str = Box::leak(a.to_owned().into_boxed_str());
                let b: &'static str = Box::leak(b.to_owned().into_boxed_str());
                let out = run(vec![Ok(a), Ok(b)]).concat();
                assert!(out.starts_with(good), "split {split}: {out}");
                let rest = &out[good.len()..];
                assert!(rest.starts_with("data: {\"error\""), "split {split}: {out}");
                assert!(rest.ends_with("\n\n") && rest.matches("\n\n").count() == 1);
            }
        }
    }

    #[test]
    fn the_end_marker_ends_the_stream_within_its_chunk() {
        let out = run(vec![Ok(
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\ndata: {\"late\":1}\n\n",
        )]);
        let out = out.concat();
        assert!(out.ends_with("data: [DONE]\n\n"), "{out}");
        assert!(!out.contains("late"));
    }

    #[test]
    fn bytes_that_are_not_utf8_end_the_stream_with_an_error() {
        let inner = stream::iter([
            Ok(b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n".to_vec()),
            Ok(b"data: {\"choices\":[{\"delta\":{\"content\":\"\xff\"}}]}\n\n".to_vec()),
        ]);
        let out: Vec<_> = block_on(SsePassthrough::new(Box::pin(inner)).collect());
        let last = out.last().unwrap().as_ref().unwrap();
        assert!(String::from_utf8(last.clone())
            .unwrap()
            .contains("not UTF-8"));
        assert!(out
            .iter()
            .all(|c| std::str::from_utf8(c.as_ref().unwrap()).is_ok()));
    }
}
