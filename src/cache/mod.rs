//! The edge cache for identical prompts: canonical keys ([`key`]), an in-isolate tier ([`memory`]) in front of
//! Workers KV, streams recorded as they pass ([`Recording`]) and replayed in any dialect ([`answer`]), and
//! coalescing of concurrent identical requests ([`flight`]).

pub mod answer;
pub mod flight;
pub mod key;
pub mod memory;

use crate::canonical::ChatResponse;
use crate::error::{ErrorCode, GatewayError};
use crate::http::{ByteStream, StreamError};
use crate::platform::{Background, KvWriter};
use crate::providers::Decoder;
use answer::{Entry, Recorder};
use core::pin::Pin;
use core::task::{Context, Poll};
use flight::{Flight, FlightRef};
use futures_util::Stream;
use memory::Memory;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Workers KV's value limit; larger answers are served but not cached.
pub const MAX_VALUE_BYTES: usize = 25 * 1024 * 1024;
pub use crate::config::{MAX_TTL_S, MIN_TTL_S};

/// Per-isolate cache state.
#[derive(Default)]
pub struct Cache {
    pub memory: RefCell<Memory>,
    pub flights: RefCell<HashMap<String, FlightRef>>,
}

/// What a finished recording does with its answer. Owned (`'static`), because a stream finishes after the
/// handler has returned its response.
pub struct Sink {
    pub key: String,
    pub ttl_s: u64,
    pub deployment: String,
    pub created_ms: u64,
    /// `Cache-Control: no-store`: followers are still served, nothing is written.
    pub store: bool,
    pub cache: Rc<Cache>,
    pub kv: KvWriter,
    pub flight: FlightRef,
    done: bool,
}

impl Sink {
    /// Registers a new flight for `key`; identical requests arriving meanwhile follow it.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        cache: Rc<Cache>,
        kv: KvWriter,
        key: String,
        ttl_s: u64,
        deployment: String,
        created_ms: u64,
        store: bool,
    ) -> Sink {
        let flight: FlightRef = Rc::new(RefCell::new(Flight::default()));
        cache
            .flights
            .borrow_mut()
            .insert(key.clone(), flight.clone());
        Sink {
            key,
            ttl_s,
            deployment,
            created_ms,
            store,
            cache,
            kv,
            flight,
            done: false,
        }
    }

    /// The deployment that actually answered (known only after routing).
    pub fn set_deployment(&mut self, deployment: String) {
        self.deployment = deployment;
    }

    /// A complete, successful answer: followers finish, and the entry is stored unless it is too large.
    /// Returns whether it was stored.
    pub fn complete(mut self, answer: ChatResponse, pushed_events: bool) -> bool {
        let entry = Entry {
            answer,
            deployment: std::mem::take(&mut self.deployment),
            created_ms: self.created_ms,
        };
        if !pushed_events {
            self.flight.borrow_mut().push(&entry.events());
        }
        self.flight.borrow_mut().finish(Ok(()));
        self.done = true;
        self.cache.flights.borrow_mut().remove(&self.key);
        if !self.store {
            return false;
        }
        let json = entry.to_json();
        if json.len() > MAX_VALUE_BYTES {
            return false;
        }
        let size = json.len();
        let expires = self.created_ms + self.ttl_s * 1000;
        (self.kv)(self.key.clone(), json, self.ttl_s, entry.metadata());
        self.cache
            .memory
            .borrow_mut()
            .insert(self.key.clone(), Rc::new(entry), size, expires);
        true
    }

    /// Found in KV after all: followers get that entry, nothing is written.
    pub fn resolve(mut self, entry: &Entry) {
        self.flight.borrow_mut().push(&entry.events());
        self.flight.borrow_mut().finish(Ok(()));
        self.done = true;
        self.cache.flights.borrow_mut().remove(&self.key);
    }

    /// Nothing is cached; followers get the error.
    pub fn fail(mut self, err: GatewayError) {
        self.abandon(err);
    }

    fn abandon(&mut self, err: GatewayError) {
        if !self.done {
            self.done = true;
            self.flight.borrow_mut().finish(Err(err));
            self.cache.flights.borrow_mut().remove(&self.key);
        }
    }
}

impl Drop for Sink {
    /// A recording dropped before its stream finished: the client went away, or the provider never completed.
    fn drop(&mut self) {
        self.abandon(GatewayError::new(
            ErrorCode::CoalescedLeaderFailed,
            "the request being followed did not complete",
        ));
    }
}

/// Shared between a [`Recording`] and the gateway: the sink arrives only if this attempt commits (a failed or
/// losing hedged attempt never gets one), and events seen before that are kept for it.
#[derive(Default)]
pub struct Handoff {
    sink: Option<Sink>,
    early: Vec<crate::canonical::StreamEvent>,
    /// How the stream ended, when it ended before the sink arrived (a short answer, whole before the commit).
    outcome: Option<Result<ChatResponse, GatewayError>>,
}

fn settle(sink: Sink, outcome: Result<ChatResponse, GatewayError>) {
    match outcome {
        Ok(answer) => {
            sink.complete(answer, true);
        }
        Err(e) => sink.fail(e),
    }
}

pub type HandoffRef = Rc<RefCell<Handoff>>;

/// Hands the flight's sink to the attempt that committed; followers get what it has seen so far at once.
pub fn attach(slot: &HandoffRef, mut sink: Sink, deployment: String) {
    sink.set_deployment(deployment);
    let mut s = slot.borrow_mut();
    let early = std::mem::take(&mut s.early);
    sink.flight.borrow_mut().push(&early);
    match s.outcome.take() {
        Some(outcome) => settle(sink, outcome),
        None => s.sink = Some(sink),
    }
}

/// Passes a provider stream through unchanged while decoding a copy into the answer to cache. Only a stream
/// that ends with the provider's own completion is stored (its end marker where its wire format has one: the
/// forwarder stops reading there); errors, truncation and cancellation store nothing.
pub struct Recording {
    inner: ByteStream,
    decoder: Decoder,
    recorder: Recorder,
    slot: HandoffRef,
    settled: bool,
    /// Where the rest of the stream is read if the leading client goes away while others follow.
    background: Option<Background>,
}

impl Recording {
    pub fn new(
        inner: ByteStream,
        decoder: Decoder,
        slot: HandoffRef,
        background: Background,
    ) -> Self {
        Recording {
            inner,
            decoder,
            recorder: Recorder::default(),
            slot,
            settled: false,
            background: Some(background),
        }
    }

    fn settle(&mut self, outcome: Result<ChatResponse, GatewayError>) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let mut slot = self.slot.borrow_mut();
        match slot.sink.take() {
            Some(sink) => {
                drop(slot);
                settle(sink, outcome);
            }
            None => slot.outcome = Some(outcome),
        }
    }

    fn record(&mut self, events: Vec<crate::canonical::StreamEvent>) {
        for ev in &events {
            self.recorder.observe(ev);
        }
        let mut slot = self.slot.borrow_mut();
        match &slot.sink {
            Some(s) => s.flight.borrow_mut().push(&events),
            None => slot.early.extend(events),
        }
    }

    /// The provider's stream is over (its end marker, or the end of the body): whole, or not.
    fn end(&mut self) {
        match self.decoder.end() {
            Ok(events) => self.record(events),
            Err(e) => return self.settle(Err(e)),
        }
        let outcome = std::mem::take(&mut self.recorder)
            .into_answer()
            .ok_or_else(|| {
                GatewayError::new(
                    ErrorCode::UpstreamStreamTruncated,
                    "provider stream ended before completion",
                )
            });
        self.settle(outcome);
    }
}

/// The leading client went away. With followers, and once this attempt has committed, the provider's stream is
/// read on in the background so that they get the whole answer (and the cache its entry); otherwise dropping it
/// stops the provider.
impl Drop for Recording {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let followed = self
            .slot
            .borrow()
            .sink
            .as_ref()
            .is_some_and(|s| s.flight.borrow().followed());
        let Some(background) = self.background.take().filter(|_| followed) else {
            return;
        };
        let rest = Recording {
            inner: std::mem::replace(&mut self.inner, Box::pin(futures_util::stream::empty())),
            decoder: std::mem::replace(
                &mut self.decoder,
                Decoder::OpenAi(crate::providers::openai_compat::StreamDecoder::new()),
            ),
            recorder: std::mem::take(&mut self.recorder),
            slot: self.slot.clone(),
            settled: false,
            background: None,
        };
        background(Box::pin(async move {
            let mut rest = rest;
            while futures_util::StreamExt::next(&mut rest).await.is_some() {}
        }));
    }
}

impl Stream for Recording {
    type Item = Result<Vec<u8>, StreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                if !this.settled {
                    match this.decoder.push(&chunk) {
                        Ok(events) => {
                            this.record(events);
                            if this.decoder.saw_end_marker() {
                                this.end();
                            }
                        }
                        Err(e) => this.settle(Err(e)),
                    }
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.settle(Err(GatewayError::new(
                    ErrorCode::UpstreamStreamError,
                    format!("provider stream failed: {e}"),
                )));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                if !this.settled {
                    this.end();
                }
                Poll::Ready(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fake::FakePlatform;
    use crate::platform::Platform;
    use futures_util::{stream, StreamExt};

    const CHUNKS: [&str; 4] = [
        "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n",
    ];

    /// A committed leader's recording with the flight it feeds, stopped after its first chunk.
    fn leader(p: &FakePlatform, cache: &Rc<Cache>) -> (Recording, FlightRef) {
        let sink = Sink::start(
            cache.clone(),
            p.kv_writer(),
            "k".into(),
            60,
            String::new(),
            0,
            true,
        );
        let flight = sink.flight.clone();
        let body = stream::iter(CHUNKS.map(|c| Ok(c.as_bytes().to_vec())));
        let slot = HandoffRef::default();
        let decoder = Decoder::OpenAi(crate::providers::openai_compat::StreamDecoder::new());
        let mut rec = Recording::new(Box::pin(body), decoder, slot.clone(), p.background());
        attach(&slot, sink, "d".into());
        assert!(futures_util::FutureExt::now_or_never(rec.next()).is_some());
        (rec, flight)
    }

    #[test]
    fn a_followed_stream_is_read_to_its_end_after_the_leader_goes_away() {
        let (p, cache) = (FakePlatform::new([]), Rc::new(Cache::default()));
        let (rec, flight) = leader(&p, &cache);
        let follower = flight::Follow::new(flight.clone());
        drop(rec);
        assert!(p.run_background());
        let events: Vec<_> =
            futures_util::FutureExt::now_or_never(follower.collect::<Vec<_>>()).unwrap();
        assert!(events.iter().all(Result::is_ok), "{events:?}");
        assert!(events
            .iter()
            .any(|e| matches!(e, Ok(crate::canonical::StreamEvent::Text(t)) if t == "Hi")));
        assert!(cache.memory.borrow().get("k", 0).is_some(), "and stored");
    }

    #[test]
    fn an_unfollowed_stream_stops_with_its_client() {
        let (p, cache) = (FakePlatform::new([]), Rc::new(Cache::default()));
        let (rec, flight) = leader(&p, &cache);
        drop(rec);
        assert!(p.background.borrow().is_empty(), "nothing read on");
        let follower = flight::Follow::new(flight);
        let events: Vec<_> =
            futures_util::FutureExt::now_or_never(follower.collect::<Vec<_>>()).unwrap();
        assert!(
            matches!(events.last(), Some(Err(_))),
            "a late follower sees the failure"
        );
        assert!(cache.memory.borrow().get("k", 0).is_none());
    }
}
