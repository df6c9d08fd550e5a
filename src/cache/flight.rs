//! Coalescing: while one request for a key is in flight, identical requests in this isolate follow it instead
//! of calling the provider again, receiving the same answer from the start.

use crate::canonical::StreamEvent;
use crate::error::GatewayError;
use core::pin::Pin;
use core::task::{Context, Poll};
use futures_util::Stream;
use std::cell::RefCell;
use std::rc::Rc;

/// Followers are not woken by the leader: in Workers, a task woken from another request's context would run
/// there and touch its own request's streams from the wrong context, which the runtime refuses. Followers poll
/// on their own timer instead (see `gateway::next_followed`).
#[derive(Default)]
pub struct Flight {
    events: Vec<StreamEvent>,
    outcome: Option<Result<(), GatewayError>>,
    /// Requests following this one now: while there are any, the leader's provider stream is read to its end
    /// even if the leading client goes away.
    followers: usize,
}

pub type FlightRef = Rc<RefCell<Flight>>;

impl Flight {
    pub fn push(&mut self, events: &[StreamEvent]) {
        if self.outcome.is_none() && !events.is_empty() {
            self.events.extend_from_slice(events);
        }
    }

    pub fn followed(&self) -> bool {
        self.followers > 0
    }

    pub fn finish(&mut self, outcome: Result<(), GatewayError>) {
        if self.outcome.is_none() {
            self.outcome = Some(outcome);
        }
    }
}

/// A follower's view: every event from the start, then the leader's outcome.
pub struct Follow {
    flight: FlightRef,
    next: usize,
    done: bool,
}

impl Follow {
    pub fn new(flight: FlightRef) -> Self {
        flight.borrow_mut().followers += 1;
        Follow {
            flight,
            next: 0,
            done: false,
        }
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let mut f = self.flight.borrow_mut();
        f.followers = f.followers.saturating_sub(1);
    }
}

impl Stream for Follow {
    type Item = Result<StreamEvent, GatewayError>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let flight = self.flight.clone();
        let f = flight.borrow();
        if let Some(ev) = f.events.get(self.next) {
            self.next += 1;
            return Poll::Ready(Some(Ok(ev.clone())));
        }
        match &f.outcome {
            Some(Ok(())) => {
                self.done = true;
                Poll::Ready(None)
            }
            Some(Err(e)) => {
                self.done = true;
                Poll::Ready(Some(Err(e.clone())))
            }
            // No waker is kept: the caller polls again on its own timer.
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_executor::block_on;
    use futures_util::StreamExt;

    #[test]
    fn followers_see_everything_from_the_start_then_the_outcome() {
        let f: FlightRef = Rc::default();
        f.borrow_mut().push(&[StreamEvent::Text("a".into())]);
        let mut late = Follow::new(f.clone());
        f.borrow_mut().push(&[StreamEvent::Text("b".into())]);
        f.borrow_mut().finish(Ok(()));
        let got: Vec<_> = block_on(late.by_ref().collect());
        assert!(got.iter().all(Result::is_ok));
        assert_eq!(got.len(), 2);

        let g: FlightRef = Rc::default();
        g.borrow_mut().finish(Err(GatewayError::new(
            crate::error::ErrorCode::UpstreamError,
            "boom",
        )));
        let got: Vec<_> = block_on(Follow::new(g).collect());
        assert!(matches!(&got[..], [Err(e)] if e.message == "boom"));
    }
}
