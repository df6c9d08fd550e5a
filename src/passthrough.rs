//! Forwards an OpenAI-format SSE body chunk by chunk, untouched, while checking it: every event must be JSON (or
//! the `[DONE]` marker). A stream that carries garbage, fails, or ends before `data: [DONE]` gets a final error
//! event instead of looking complete, and the garbage itself is never forwarded.

use crate::error::{ErrorKind, GatewayError};
use crate::http::{ByteStream, StreamError};
use crate::inbound::openai::error_event;
use crate::sse::SseParser;
use core::pin::Pin;
use core::task::{Context, Poll};
use futures_util::Stream;
use serde::de::IgnoredAny;

pub struct SsePassthrough {
    inner: ByteStream,
    sse: SseParser,
    saw_done: bool,
    finished: bool,
}

impl SsePassthrough {
    pub fn new(inner: ByteStream) -> Self {
        SsePassthrough {
            inner,
            sse: SseParser::new(),
            saw_done: false,
            finished: false,
        }
    }

    /// Checks a chunk before it is forwarded. The gateway calls this for the first chunk itself, so that a
    /// provider sending garbage from the start still gets an error status rather than a 200.
    pub fn accept(&mut self, chunk: &[u8]) -> Result<(), GatewayError> {
        for ev in self.sse.push(chunk) {
            if ev.data == "[DONE]" {
                self.saw_done = true;
            } else if serde_json::from_str::<IgnoredAny>(&ev.data).is_err() {
                return Err(GatewayError::new(
                    ErrorKind::Upstream,
                    "provider sent a malformed stream event",
                )
                .with_code("upstream_malformed"));
            }
        }
        Ok(())
    }

    fn end_with(&mut self, err: GatewayError) -> Poll<Option<Result<Vec<u8>, StreamError>>> {
        self.finished = true;
        Poll::Ready(Some(Ok(error_event(&err))))
    }
}

impl Stream for SsePassthrough {
    type Item = Result<Vec<u8>, StreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => match self.accept(&chunk) {
                Ok(()) => Poll::Ready(Some(Ok(chunk))),
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
