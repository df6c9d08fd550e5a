//! What the core needs from the runtime. The edge glue implements it with Workers APIs; [`fake`] implements it in
//! memory so the core is tested with plain `cargo test`.

#[cfg(test)]
pub mod fake;

use crate::http::{ByteStream, Headers, Method, StreamError};
use core::future::Future;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use std::pin::pin;
use std::rc::Rc;

/// Writes `(key, value, ttl_s, metadata_json)` to KV in the background.
pub type KvWriter = Rc<dyn Fn(String, String, u64, String)>;

/// Runs a future to its end in the background, keeping the request it came from alive meanwhile
/// (`ctx.wait_until`): a coalesced stream whose leading client went away is read on for its followers.
pub type Background = Rc<dyn Fn(Work)>;

/// A piece of background work.
pub type Work = core::pin::Pin<Box<dyn core::future::Future<Output = ()>>>;

/// An owned clock (`'static`): Unix milliseconds, for what outlives the handler (a stream's record).
pub type Clock = Rc<dyn Fn() -> u64>;

/// Writes one line to the log, owned.
pub type Logger = Rc<dyn Fn(&str)>;

/// Spends (or, negative, gives back) tokens of a key's per-minute budget: `(key, window_ms, delta)`. The future it
/// returns is run in the background.
pub type RateSpender = Rc<dyn Fn(String, u64, i64) -> Work>;

/// What a lease asks a key's limiter object: the key, the window length, the limits, and the slice wanted (with
/// the unused rest of the slice held, given back).
#[derive(Debug, Clone)]
pub struct LeaseAsk {
    pub key: String,
    pub window_ms: u64,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub want: crate::lease::Want,
    /// A budget's monthly limit in micro-dollars (`tpm` holds the daily one); `None` for rate limits.
    pub per_month: Option<u64>,
    /// A budget's scope: the model whose own budget this is; `None` for the key's whole (and rate limits).
    pub scope: Option<String>,
}

/// What a shadow call reserves of its daily cap from the key's ledger object before it is sent.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShadowAsk {
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    pub primary: String,
    pub shadow: String,
    /// The call's worst-case cost, USD.
    pub usd: f64,
    /// The shadow's `max_usd_per_day`.
    pub max_usd: f64,
}

/// Writes a data point to the Workers Analytics Engine dataset (the runtime sends it on; nothing to wait for).
pub type AnalyticsWriter = Rc<dyn Fn(&crate::analytics::DataPoint)>;

/// Adds entries to a key's ledger object (named first), each with what it reserved of the key's budget up front in
/// micro-dollars (0 without a budget). The future it returns is run in the background.
pub type LedgerWriter =
    Rc<dyn Fn(String, Vec<(crate::ledger::Entry, crate::ledger::Reserved)>) -> Work>;

/// Asks a key's limiter object for a slice of its window; owned, so that a refill can run in the background.
pub type RateLeaser = Rc<
    dyn Fn(
        LeaseAsk,
    ) -> core::pin::Pin<
        Box<dyn core::future::Future<Output = Result<crate::ratelimit::Grant, String>>>,
    >,
>;

/// An owned timer (`'static`), for waits that outlive the handler, such as a follower's stream.
pub type Timer = Rc<dyn Fn(u64) -> core::pin::Pin<Box<dyn core::future::Future<Output = ()>>>>;
use core::fmt;

#[derive(Debug)]
pub struct UpstreamRequest {
    pub method: Method,
    pub url: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    /// Dropping the request before it has been read to the end must cancel it at the provider (a stream the
    /// client left, a hedge that lost). Otherwise an abandoned request ends with the client's request, and the
    /// platform may skip the cancellation machinery, which is not free.
    pub cancel_on_drop: bool,
}

pub struct UpstreamResponse {
    pub status: u16,
    pub headers: Headers,
    pub body: ByteStream,
}

/// A non-streamed answer, read whole.
pub struct WholeResponse {
    pub status: u16,
    pub headers: Headers,
    /// The body, or why it could not be read completely.
    pub body: Result<Vec<u8>, BodyFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyFailure {
    /// Not complete within the body deadline.
    Timeout,
    /// Failed, or longer than the limit.
    Failed(StreamError),
}

/// Why [`Platform::fetch_whole`] has no response at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoResponse {
    /// No headers within the first-byte deadline.
    Timeout,
    Failed(FetchError),
}

/// The request never produced a response (DNS, connect, TLS, reset before headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError(pub String);

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Workers are single-threaded, so these futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Platform {
    async fn fetch(&self, req: UpstreamRequest) -> Result<UpstreamResponse, FetchError>;
    /// Fetches a non-streamed answer and reads it whole: headers within `first_byte_ms`, then the body within
    /// `body_ms` and at most `limit` bytes. This default composes [`Platform::fetch`] and [`Platform::sleep`]; a
    /// platform that can read a body whole in one step does so (the edge glue: the runtime's arrayBuffer).
    async fn fetch_whole(
        &self,
        req: UpstreamRequest,
        first_byte_ms: u64,
        body_ms: u64,
        limit: usize,
    ) -> Result<WholeResponse, NoResponse> {
        let UpstreamResponse {
            status,
            headers,
            body,
        } = deadline(self, first_byte_ms, self.fetch(req))
            .await
            .ok_or(NoResponse::Timeout)?
            .map_err(NoResponse::Failed)?;
        let body = match deadline(self, body_ms, read_all(body, limit)).await {
            None => Err(BodyFailure::Timeout),
            Some(r) => r.map_err(BodyFailure::Failed),
        };
        Ok(WholeResponse {
            status,
            headers,
            body,
        })
    }
    /// A worker secret by name; `None` when unset.
    fn secret(&self, name: &str) -> Option<String>;
    /// Resolves after `ms` milliseconds; used to bound waits on providers.
    async fn sleep(&self, ms: u64);
    /// Wall-clock time, Unix milliseconds (request signing, `created` fields).
    fn now_ms(&self) -> u64;
    /// The clock [`Platform::now_ms`] reads, owned.
    fn clock(&self) -> Clock;
    /// Writes lines to the runtime's log (what Workers Logs and Logpush collect).
    fn logger(&self) -> Logger;
    /// A value from the Workers KV namespace, `None` if absent or if no namespace is bound.
    async fn kv_get(&self, key: &str) -> Option<String>;
    /// Deletes a KV entry; `false` when no namespace is bound or the delete failed.
    async fn kv_delete(&self, key: &str) -> bool;
    /// Writes to KV after the response (`ctx.wait_until`); failures are logged, not surfaced. Owned, because a
    /// streamed answer is only complete (and cacheable) after the handler has returned.
    fn kv_writer(&self) -> KvWriter;
    /// Admits a request against the caller's shared per-minute budgets (a Durable Object per `key`);
    /// `tokens` is spent with it. With the decision, where the key stands after it. `Err` when no limiter is bound although limits are configured.
    async fn rate_check(
        &self,
        key: &str,
        window_ms: u64,
        rpm: Option<u32>,
        tpm: Option<u64>,
        tokens: u64,
    ) -> Result<(crate::ratelimit::Decision, crate::ratelimit::Standing), String>;
    /// Corrects a budget after the fact: the tokens spent up front were an estimate, the record has the count.
    fn rate_spender(&self) -> RateSpender;
    /// Slices of a key's window from its limiter object (see [`crate::lease`]).
    fn rate_leaser(&self) -> RateLeaser;
    /// Writes to the spend ledger (a Durable Object per key); failures are logged, not surfaced.
    fn ledger_writer(&self) -> LedgerWriter;
    /// The Analytics Engine dataset, when one is bound.
    fn analytics(&self) -> Option<AnalyticsWriter>;
    /// A key's ledger rows for the days `from` to `to` (`YYYY-MM-DD`, inclusive). `Err` when no ledger is bound.
    async fn ledger_rows(
        &self,
        key: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<crate::ledger::Row>, String>;
    /// Slices of a key's budget (micro-dollars, as `tokens`) from its ledger object, as [`Platform::rate_leaser`]
    /// hands out slices of a rate window.
    fn budget_leaser(&self) -> RateLeaser;
    /// Reserves what a shadow call may cost from its daily cap in the key's ledger object (named first): `true`
    /// when granted; the outcome booked later settles it to the cost.
    async fn shadow_reserve(&self, ledger: &str, ask: ShadowAsk) -> Result<bool, String>;
    /// The outcomes a key's ledger object (named first) keeps for the days `from` to `to`, inclusive.
    async fn ledger_outcomes(
        &self,
        ledger: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<crate::shadow::StoredOutcome>, String>;
    fn timer(&self) -> Timer;
    fn background(&self) -> Background;
}

/// `Some(output)` if `fut` finishes within `ms`, `None` otherwise.
pub async fn deadline<P: Platform + ?Sized, F: Future>(
    platform: &P,
    ms: u64,
    fut: F,
) -> Option<F::Output> {
    let fut = pin!(fut);
    let timer = pin!(platform.sleep(ms));
    match select(fut, timer).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(_) => None,
    }
}

/// One deadline for a sequence of waits (the headers, then the first content): each wait gets what is left of
/// `ms` counted from `start_ms`, so that no stage restarts the clock.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub start_ms: u64,
    pub ms: u64,
}

impl Deadline {
    pub fn left(&self, now_ms: u64) -> u64 {
        self.start_ms.saturating_add(self.ms).saturating_sub(now_ms)
    }

    /// `fut`'s output, or `None` once the deadline has passed.
    pub async fn run<P: Platform + ?Sized, F: Future>(
        &self,
        platform: &P,
        fut: F,
    ) -> Option<F::Output> {
        match self.left(platform.now_ms()) {
            0 => None,
            left => deadline(platform, left, fut).await,
        }
    }
}

/// The whole body, refused past `limit` bytes.
pub async fn read_all(mut body: ByteStream, limit: usize) -> Result<Vec<u8>, StreamError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > limit {
            return Err(StreamError(format!("body larger than {limit} bytes")));
        }
        if out.is_empty() {
            out = chunk;
        } else {
            out.extend_from_slice(&chunk);
        }
    }
    Ok(out)
}
