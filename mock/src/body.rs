//! The response body type used everywhere in the mock.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// Sender half of a streaming body. Sending `Err` aborts the connection.
pub(crate) type BodySender = mpsc::Sender<Result<Bytes, io::Error>>;

/// A response body: either complete, channel-fed (each item is written and
/// flushed at the time it is sent), or truncated (one piece of data, then an
/// abrupt close).
pub enum MockBody {
    Full(Option<Bytes>),
    Channel {
        rx: mpsc::Receiver<Result<Bytes, io::Error>>,
        held_error: Option<io::Error>,
    },
    Truncated {
        data: Option<Bytes>,
        state: TruncState,
    },
}

#[doc(hidden)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TruncState {
    SendData,
    Flush,
    Fail,
}

impl MockBody {
    pub(crate) fn full(b: impl Into<Bytes>) -> MockBody {
        MockBody::Full(Some(b.into()))
    }

    pub(crate) fn empty() -> MockBody {
        MockBody::Full(None)
    }

    pub(crate) fn channel(capacity: usize) -> (BodySender, MockBody) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            tx,
            MockBody::Channel {
                rx,
                held_error: None,
            },
        )
    }

    pub(crate) fn truncated(data: Bytes) -> MockBody {
        MockBody::Truncated {
            data: Some(data),
            state: TruncState::SendData,
        }
    }
}

pub(crate) fn abort_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "mock: connection cut")
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Channel { rx, held_error } => {
                if let Some(e) = held_error.take() {
                    return Poll::Ready(Some(Err(e)));
                }
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(Err(e))) => {
                        // Return Pending once so hyper flushes what it has
                        // buffered before the error tears the connection down.
                        *held_error = Some(e);
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                    Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            }
            MockBody::Truncated { data, state } => match *state {
                TruncState::SendData => {
                    *state = TruncState::Flush;
                    match data.take() {
                        Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                        None => {
                            cx.waker().wake_by_ref();
                            Poll::Pending
                        }
                    }
                }
                TruncState::Flush => {
                    *state = TruncState::Fail;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                TruncState::Fail => Poll::Ready(Some(Err(abort_error()))),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, MockBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
