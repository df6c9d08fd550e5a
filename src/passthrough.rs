//! Forwards an OpenAI-format SSE body chunk by chunk, untouched, and makes a broken upstream visible: a stream
//! that fails or ends before `data: [DONE]` gets a final error event instead of looking complete.

use crate::error::{ErrorKind, GatewayError};
use crate::http::{ByteStream, StreamError};
use crate::inbound::openai::error_event;
use core::pin::Pin;
use core::task::{Context, Poll};
use futures_util::Stream;

const DONE: &[u8] = b"data: [DONE]";

pub struct SsePassthrough {
    inner: ByteStream,
    /// Last bytes seen, so a `[DONE]` marker split across chunks is still found.
    tail: Vec<u8>,
    saw_done: bool,
    finished: bool,
}

impl SsePassthrough {
    pub fn new(inner: ByteStream) -> Self {
        SsePassthrough {
            inner,
            tail: Vec::with_capacity(2 * DONE.len()),
            saw_done: false,
            finished: false,
        }
    }

    fn observe(&mut self, chunk: &[u8]) {
        if self.saw_done {
            return;
        }
        let keep = DONE.len() - 1;
        let mut joined = core::mem::take(&mut self.tail);
        joined.extend_from_slice(&chunk[..chunk.len().min(keep)]);
        if contains(&joined, DONE) || contains(chunk, DONE) {
            self.saw_done = true;
            return;
        }
        // The new tail is the last `keep` bytes of everything seen so far.
        self.tail = if chunk.len() >= keep {
            chunk[chunk.len() - keep..].to_vec()
        } else {
            joined.drain(..joined.len().saturating_sub(keep));
            joined
        };
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

impl Stream for SsePassthrough {
    type Item = Result<Vec<u8>, StreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                self.observe(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.finished = true;
                let err =
                    GatewayError::new(ErrorKind::Upstream, format!("provider stream failed: {e}"))
                        .with_code("upstream_stream_error");
                Poll::Ready(Some(Ok(error_event(&err))))
            }
            Poll::Ready(None) => {
                self.finished = true;
                if self.saw_done {
                    Poll::Ready(None)
                } else {
                    let err = GatewayError::new(
                        ErrorKind::Upstream,
                        "provider stream ended before completion",
                    )
                    .with_code("upstream_stream_truncated");
                    Poll::Ready(Some(Ok(error_event(&err))))
                }
            }
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
    fn done_split_across_chunks_is_found() {
        for split in 1..12 {
            let full = "data: {}\n\ndata: [DONE]\n\n";
            let (a, b) = full.split_at(full.len() - 14 + split.min(13));
            let out = run(vec![Ok(a), Ok(b)]);
            assert_eq!(out.len(), 2, "split {split}: {out:?}");
        }
        let out = run(vec![Ok("da"), Ok("ta"), Ok(": [D"), Ok("ONE]"), Ok("\n\n")]);
        assert_eq!(out.len(), 5);
    }

    #[test]
    fn truncation_and_failure_end_with_an_error_event() {
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
    }
}
