//! Forwards an OpenAI-format SSE body chunk by chunk, untouched, while checking it: every event must be JSON (or
//! the `[DONE]` marker). A stream that carries garbage, fails, or ends before `data: [DONE]` gets a final error
//! event instead of looking complete, and the garbage itself is never forwarded.

use crate::error::{ErrorKind, GatewayError};
use crate::http::{ByteStream, StreamError};
use crate::inbound::openai::error_event;
use crate::json::Value;
use crate::sse::SseParser;
use core::pin::Pin;
use core::task::{Context, Poll};
use futures_util::Stream;

pub struct SsePassthrough {
    inner: ByteStream,
    sse: SseParser,
    saw_done: bool,
    saw_content: bool,
    finished: bool,
}

/// Whether a chunk carries content: a finish reason, text, a tool call, a refusal, or the usage.
fn has_content(chunk: &Value) -> bool {
    let nonempty = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
    let choice = |c: &Value| {
        !c["finish_reason"].is_null()
            || nonempty(&c["delta"]["content"])
            || !c["delta"]["tool_calls"].is_null()
            || nonempty(&c["delta"]["refusal"])
    };
    !chunk["usage"].is_null()
        || chunk["choices"]
            .as_array()
            .is_some_and(|a| a.iter().any(choice))
}

impl SsePassthrough {
    pub fn new(inner: ByteStream) -> Self {
        SsePassthrough {
            inner,
            sse: SseParser::new(),
            saw_done: false,
            saw_content: false,
            finished: false,
        }
    }

    /// Checks a chunk before it is forwarded; says whether it carried content (text, a tool call or the finish).
    /// The gateway calls this itself until the first content, so that a provider sending garbage or nothing
    /// from the start still gets an error status rather than a 200.
    pub fn accept(&mut self, chunk: &[u8]) -> Result<bool, GatewayError> {
        let malformed = || {
            GatewayError::new(
                ErrorKind::Upstream,
                "provider sent a malformed stream event",
            )
            .with_code("upstream_malformed")
        };
        let mut content = false;
        for ev in self.sse.push(chunk) {
            if ev.data == "[DONE]" {
                self.saw_done = true;
                content = true;
            } else if self.saw_done {
                // Nothing a provider sends after its end marker is part of the answer.
                return Err(GatewayError::new(
                    ErrorKind::Upstream,
                    "provider sent events after the end of its stream",
                )
                .with_code("upstream_malformed"));
            } else if self.saw_content && !ev.data.contains("\"error\"") {
                // Past the first content only well-formedness matters, and that is cheaper to check.
                crate::json::validate(ev.data.as_bytes()).map_err(|_| malformed())?;
            } else {
                let v = crate::json::from_str(&ev.data).map_err(|_| malformed())?;
                if !v["error"].is_null() {
                    return Err(GatewayError::new(
                        ErrorKind::Upstream,
                        "provider stream reported an error",
                    )
                    .with_code("upstream_stream_error"));
                }
                if has_content(&v) {
                    self.saw_content = true;
                    content = true;
                }
            }
        }
        Ok(content)
    }

    /// The next chunk from the provider, unchecked (the gateway checks it with [`SsePassthrough::accept`]).
    pub async fn next_raw(&mut self) -> Option<Result<Vec<u8>, StreamError>> {
        futures_util::StreamExt::next(&mut self.inner).await
    }

    fn end_with(&mut self, err: GatewayError) -> Poll<Option<Result<Vec<u8>, StreamError>>> {
        self.finished = true;
        Poll::Ready(Some(Ok(error_event(&err))))
    }
}

impl Stream for SsePassthrough {
    type Item = Result<Vec<u8>, StreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // After `[DONE]` the answer is complete: whatever the provider sends later is not forwarded.
        if self.finished || (self.saw_done && self.sse.is_idle()) {
            self.finished = true;
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => match self.accept(&chunk) {
                Ok(_) => Poll::Ready(Some(Ok(chunk))),
                Err(e) => self.end_with(e),
            },
            Poll::Ready(Some(Err(e))) => self.end_with(
                GatewayError::new(ErrorKind::Upstream, format!("provider stream failed: {e}"))
                    .with_code("upstream_stream_error"),
            ),
            Poll::Ready(None) if self.saw_done => {
                self.finished = true;
                Poll::Ready(None)
            }
            Poll::Ready(None) => self.end_with(
                GatewayError::new(
                    ErrorKind::Upstream,
                    "provider stream ended before completion",
                )
                .with_code("upstream_stream_truncated"),
            ),
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
}
