//! One record per request: who sent it, what it asked for, which deployments were tried and how each ended, what
//! the cache did, how long it took, what the provider counted, and how it ended. Filled as the request moves and
//! finished exactly once ([`Recorder::finish`] is idempotent; a stream's recorder finishes when the stream ends
//! or is dropped, after its last byte went to the client), then handed to the sinks. Sinks are in-memory and
//! cheap (the log line, counters); one with I/O to do (a budget correction) starts it in the background. They are
//! called directly rather than from a `waitUntil` task of their own, which was measured to cost far more than the
//! sinks themselves (docs/performance.md). A record never holds prompt or answer text.

use crate::canonical;
use crate::error::ErrorCode;
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// What the request asked the gateway to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Chat,
    CountTokens,
    Embeddings,
    Responses,
    Models,
    Status,
    /// `GET /_meridian/spend`.
    Spend,
    /// `GET /_meridian/shadow`.
    Shadow,
    /// `GET /_meridian/experiments`.
    Experiments,
    /// `GET /_meridian/` and its assets.
    Dashboard,
    Health,
    Preflight,
    /// No route matched, or the method did not.
    Unrouted,
}

/// The provider's token counts. A count the provider did not report is absent, never 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TokenUsage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<u64>,
}

impl TokenUsage {
    pub fn is_empty(&self) -> bool {
        *self == TokenUsage::default()
    }

    /// Input and output together, when the provider reported either.
    pub fn total(&self) -> Option<u64> {
        match (self.input, self.output) {
            (None, None) => None,
            (i, o) => Some(i.unwrap_or(0).saturating_add(o.unwrap_or(0))),
        }
    }
}

impl From<canonical::Usage> for TokenUsage {
    fn from(u: canonical::Usage) -> Self {
        TokenUsage {
            input: Some(u.input_tokens),
            output: Some(u.output_tokens),
            cached_input: u.cached_input_tokens,
            cache_write: u.cache_write_tokens,
            reasoning: u.reasoning_tokens,
        }
    }
}

/// How one deployment's attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// It produced the answer the client got.
    Committed,
    /// It failed before committing, with this code.
    Failed,
    /// It could not express the request and was not called.
    Skipped,
    /// A hedge raced it and won; it was cancelled.
    Lost,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub deployment: String,
    pub region: String,
    pub outcome: AttemptOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    pub ms: u64,
}

/// How the exchange with the client ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// The whole answer (or error) was handed to the client.
    Complete,
    /// A stream ended with an error event after it had begun.
    Failed,
    /// The client went away before a stream ended.
    ClientGone,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// Wall-clock start, Unix milliseconds.
    pub ts: u64,
    /// The gateway key's name, or `token:<sub>` for a browser token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The gateway key's name, for a browser token too (the key whose policy it inherits).
    #[serde(skip)]
    pub key: Option<String>,
    pub dialect: &'static str,
    pub operation: Operation,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub stream: bool,
    /// The deployment (`provider/model`) and region that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// For a shadow call: the model it shadows (the call's answer went to no client).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_of: Option<String>,
    /// The experiment arm (a model) that served the request, when its model runs an experiment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The fallback model that answered, when the model asked for could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colo: Option<String>,
    pub attempts: Vec<Attempt>,
    /// `HIT`, `MISS`, `COALESCED` or `BYPASS`; absent when the model has no cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<&'static str>,
    /// Time to first content: for a stream, to the first content event; otherwise to the whole answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttfc_ms: Option<u64>,
    pub total_ms: u64,
    pub usage: TokenUsage,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorCode>,
    pub end: End,
    /// Where a limited key stood once this request was admitted (or refused): its answer's rate-limit headers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<crate::ratelimit::Standing>,
    /// How the answer is priced (the log line shows the cost it comes to).
    #[serde(skip)]
    pub pricing: Pricing,
}

/// How a request's answer is priced.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Pricing {
    /// No provider answered (an error before or instead of an answer): nothing to price.
    #[default]
    NotServed,
    /// The deployment that answered has no price: its cost is unknown, never $0.
    Unpriced,
    /// At the serving deployment's price, once the provider has counted.
    At(crate::pricing::Price),
    /// Answered by Meridian's cache (or by an identical request in flight): $0, and what the original cost.
    Cached { saved_usd: Option<f64> },
}

impl Record {
    /// What the answer cost in USD: `None` when unknown (unpriced, not counted) or nothing was served.
    pub fn cost_usd(&self) -> Option<f64> {
        match self.pricing {
            Pricing::At(price) => crate::pricing::cost(&self.usage, &price),
            Pricing::Cached { .. } => Some(0.0),
            Pricing::NotServed | Pricing::Unpriced => None,
        }
    }
}

impl Record {
    pub fn new(ts: u64, dialect: &'static str, operation: Operation) -> Self {
        Record {
            ts,
            principal: None,
            key: None,
            dialect,
            operation,
            model: None,
            stream: false,
            served_by: None,
            region: None,
            fallback: None,
            shadow_of: None,
            variant: None,
            colo: None,
            attempts: Vec::new(),
            cache: None,
            ttfc_ms: None,
            total_ms: 0,
            usage: TokenUsage::default(),
            status: 0,
            error: None,
            end: End::Complete,
            rate: None,
            pricing: Pricing::NotServed,
        }
    }

    /// The structured log line: one JSON object, `"meridian":"request"` first so log queries can select it.
    pub fn log_line(&self) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            meridian: &'static str,
            #[serde(flatten)]
            record: &'a Record,
            #[serde(
                skip_serializing_if = "Option::is_none",
                serialize_with = "crate::pricing::serialize_usd_opt"
            )]
            cost_usd: Option<f64>,
            #[serde(
                skip_serializing_if = "Option::is_none",
                serialize_with = "crate::pricing::serialize_usd_opt"
            )]
            saved_usd: Option<f64>,
            #[serde(skip_serializing_if = "core::ops::Not::not")]
            unpriced: bool,
        }
        serde_json::to_string(&Line {
            meridian: "request",
            record: self,
            cost_usd: self.cost_usd(),
            saved_usd: match self.pricing {
                Pricing::Cached { saved_usd } => saved_usd,
                Pricing::NotServed | Pricing::Unpriced | Pricing::At(_) => None,
            },
            unpriced: self.pricing == Pricing::Unpriced,
        })
        .unwrap_or_default()
    }
}

/// Where finished records go: called once, when the record is finished.
pub type Sink = Rc<dyn Fn(&Record)>;

/// The record of one request as it is being filled, shared by the pieces that fill it (the lifecycle, a stream
/// body). Cloning shares it.
#[derive(Clone)]
pub struct Recorder(Rc<Inner>);

struct Inner {
    record: RefCell<Record>,
    finished: Cell<bool>,
    started_ms: u64,
    clock: Rc<dyn Fn() -> u64>,
    sinks: RefCell<Vec<Sink>>,
}

impl Recorder {
    pub fn new(record: Record, clock: Rc<dyn Fn() -> u64>, sinks: Vec<Sink>) -> Self {
        let started_ms = clock();
        Recorder(Rc::new(Inner {
            record: RefCell::new(record),
            finished: Cell::new(false),
            started_ms,
            clock,
            sinks: RefCell::new(sinks),
        }))
    }

    /// Changes the record; ignored once it is finished (what happens after that is not this request's).
    pub fn update(&self, f: impl FnOnce(&mut Record)) {
        if !self.0.finished.get() {
            f(&mut self.0.record.borrow_mut());
        }
    }

    /// Reads the record, finished or not.
    pub fn read<T>(&self, f: impl FnOnce(&Record) -> T) -> T {
        f(&self.0.record.borrow())
    }

    /// Milliseconds since the request started.
    pub fn elapsed_ms(&self) -> u64 {
        self.0.elapsed_ms()
    }

    /// Another place this record goes when finished (what only some requests need, such as a budget correction).
    pub fn add_sink(&self, sink: Sink) {
        self.0.sinks.borrow_mut().push(sink);
    }

    /// The provider's counts, from its answer or its stream's usage event.
    pub fn usage(&self, usage: TokenUsage) {
        self.update(|r| r.usage = usage);
    }

    /// A stream that had begun ended with an error event.
    pub fn stream_failed(&self, code: ErrorCode) {
        self.update(|r| r.error = Some(code));
    }

    /// Ends the record (the first call only) and hands it to the sinks.
    pub fn finish(&self, end: End) {
        self.0.finish(end);
    }
}

impl Inner {
    fn elapsed_ms(&self) -> u64 {
        (self.clock)().saturating_sub(self.started_ms)
    }

    fn finish(&self, end: End) {
        if self.finished.replace(true) {
            return;
        }
        let total_ms = self.elapsed_ms();
        let mut record = self.record.borrow_mut();
        record.end = end;
        record.total_ms = total_ms;
        for sink in self.sinks.take() {
            sink(&record);
        }
    }
}

/// The last holder of a record that was never finished is a request abandoned before its response existed (the
/// client went away, and the runtime dropped the handler): it is recorded as such, with nginx's 499.
impl Drop for Inner {
    fn drop(&mut self) {
        if !self.finished.get() {
            let mut record = self.record.borrow_mut();
            if record.status == 0 {
                record.status = 499;
            }
            drop(record);
            self.finish(End::ClientGone);
        }
    }
}

/// A streamed body that finishes its request's record when it ends, or when it is dropped before that (the client
/// went away).
pub struct Tracked {
    inner: crate::http::ByteStream,
    recorder: Recorder,
}

impl Tracked {
    pub fn new(inner: crate::http::ByteStream, recorder: Recorder) -> Self {
        Tracked { inner, recorder }
    }
}

impl futures_util::Stream for Tracked {
    type Item = Result<Vec<u8>, crate::http::StreamError>;

    fn poll_next(
        mut self: core::pin::Pin<&mut Self>,
        cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<Option<Self::Item>> {
        let r = self.inner.as_mut().poll_next(cx);
        match &r {
            core::task::Poll::Ready(None) => {
                let failed = self.recorder.0.record.borrow().error.is_some();
                self.recorder
                    .finish(if failed { End::Failed } else { End::Complete });
            }
            core::task::Poll::Ready(Some(Err(_))) => self.recorder.finish(End::Failed),
            _ => {}
        }
        r
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.recorder.finish(End::ClientGone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder(out: Rc<RefCell<Vec<Record>>>) -> Recorder {
        let out2 = out.clone();
        let sink: Sink = Rc::new(move |r: &Record| out2.borrow_mut().push(r.clone()));
        Recorder::new(
            Record::new(1, "openai", Operation::Chat),
            Rc::new(|| 5),
            vec![sink],
        )
    }

    #[test]
    fn finishes_exactly_once_and_ignores_later_updates() {
        let out = Rc::new(RefCell::new(Vec::new()));
        let r = recorder(out.clone());
        r.update(|rec| rec.status = 200);
        r.finish(End::Complete);
        r.update(|rec| rec.status = 500);
        r.finish(End::ClientGone);
        assert_eq!(out.borrow().len(), 1);
        assert_eq!(out.borrow()[0].status, 200);
        assert_eq!(out.borrow()[0].end, End::Complete);
    }

    #[test]
    fn absent_counts_are_left_out_of_the_line() {
        let mut rec = Record::new(1, "anthropic", Operation::Chat);
        rec.usage = TokenUsage {
            input: Some(3),
            output: Some(0),
            ..TokenUsage::default()
        };
        rec.error = Some(ErrorCode::UpstreamTimeout);
        let line = rec.log_line();
        assert!(
            line.starts_with(r#"{"meridian":"request","ts":1,"#),
            "{line}"
        );
        assert!(line.contains(r#""usage":{"input":3,"output":0}"#), "{line}");
        assert!(line.contains(r#""error":"upstream_timeout""#), "{line}");
        assert!(!line.contains("cached_input"), "{line}");
    }
}
