//! Bounds the silence of a provider's stream: once its first chunk has arrived (until then the first-content
//! deadline applies), a stream that sends nothing for longer than the idle limit is failed, so that every layer above ends it with an error event instead of holding the
//! client (and the isolate's memory) forever.

use crate::http::{ByteStream, StreamError};
use crate::platform::Timer;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use futures_util::Stream;

pub struct IdleLimit {
    inner: ByteStream,
    ms: u64,
    timer: Timer,
    /// Armed while the provider is silent, dropped (which cancels it) when a chunk arrives.
    waiting: Option<Pin<Box<dyn Future<Output = ()>>>>,
    begun: bool,
    ended: bool,
}

impl IdleLimit {
    pub fn new(inner: ByteStream, ms: u64, timer: Timer) -> Self {
        IdleLimit {
            inner,
            ms,
            timer,
            waiting: None,
            begun: false,
            ended: false,
        }
    }
}

impl Stream for IdleLimit {
    type Item = Result<Vec<u8>, StreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(item) => {
                self.waiting = None;
                self.begun = true;
                self.ended = item.is_none();
                Poll::Ready(item)
            }
            Poll::Pending if !self.begun => Poll::Pending,
            Poll::Pending => {
                let this = &mut *self;
                let waiting = this.waiting.get_or_insert_with(|| (this.timer)(this.ms));
                match waiting.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        this.waiting = None;
                        this.ended = true;
                        Poll::Ready(Some(Err(StreamError(format!(
                            "no data for {} ms",
                            this.ms
                        )))))
                    }
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
    use std::cell::Cell;
    use std::rc::Rc;

    /// A body that sends one chunk, then goes silent.
    fn silent_after_one() -> ByteStream {
        Box::pin(stream::iter([Ok(b"a".to_vec())]).chain(stream::pending()))
    }

    #[test]
    fn a_silent_stream_fails_once_the_timer_fires_and_then_ends() {
        let armed = Rc::new(Cell::new(0));
        let count = armed.clone();
        let timer: Timer = Rc::new(move |ms| {
            assert_eq!(ms, 250);
            count.set(count.get() + 1);
            Box::pin(core::future::ready(()))
        });
        let out: Vec<_> = block_on(IdleLimit::new(silent_after_one(), 250, timer).collect());
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].as_deref().ok(), Some(&b"a"[..]));
        assert_eq!(out[1].as_ref().unwrap_err().0, "no data for 250 ms");
        assert_eq!(armed.get(), 1, "armed only while silent");
    }

    #[test]
    fn silence_before_the_first_chunk_is_left_to_the_first_content_deadline() {
        let timer: Timer = Rc::new(|_| Box::pin(core::future::ready(())));
        let mut s = IdleLimit::new(Box::pin(stream::pending()), 10, timer);
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut s).poll_next(&mut cx).is_pending());
    }

    #[test]
    fn a_stream_that_keeps_sending_is_untouched() {
        let timer: Timer = Rc::new(|_| Box::pin(core::future::pending()));
        let body: ByteStream = Box::pin(stream::iter([Ok(b"a".to_vec()), Ok(b"b".to_vec())]));
        let out: Vec<_> = block_on(IdleLimit::new(body, 10, timer).collect());
        assert_eq!(out.len(), 2);
    }
}
