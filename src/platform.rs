//! What the core needs from the runtime. The edge glue implements it with Workers APIs; [`fake`] implements it in
//! memory so the core is tested with plain `cargo test`.

pub mod fake;

use crate::http::{ByteStream, Headers, Method};
use std::rc::Rc;

/// Writes `(key, value, ttl_s, metadata_json)` to KV in the background.
pub type KvWriter = Rc<dyn Fn(String, String, u64, String)>;

/// An owned timer (`'static`), for waits that outlive the handler, such as a follower's stream.
pub type Timer = Rc<dyn Fn(u64) -> core::pin::Pin<Box<dyn core::future::Future<Output = ()>>>>;
use core::fmt;

#[derive(Debug)]
pub struct UpstreamRequest {
    pub method: Method,
    pub url: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    /// The answer will be streamed: read it as it arrives. Otherwise the platform may read it in one piece,
    /// which is cheaper than chunk by chunk.
    pub stream: bool,
}

pub struct UpstreamResponse {
    pub status: u16,
    pub headers: Headers,
    pub body: ByteStream,
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
    /// A worker secret by name; `None` when unset.
    fn secret(&self, name: &str) -> Option<String>;
    /// Resolves after `ms` milliseconds; used to bound waits on providers.
    async fn sleep(&self, ms: u64);
    /// Wall-clock time, Unix milliseconds (request signing, `created` fields).
    fn now_ms(&self) -> u64;
    /// A value from the Workers KV namespace, `None` if absent or if no namespace is bound.
    async fn kv_get(&self, key: &str) -> Option<String>;
    /// Writes to KV after the response (`ctx.wait_until`); failures are logged, not surfaced. Owned, because a
    /// streamed answer is only complete (and cacheable) after the handler has returned.
    fn kv_writer(&self) -> KvWriter;
    /// Admits a request against the caller's shared per-minute budgets (a Durable Object per `key`);
    /// `tokens` is spent with it. `Err` when no limiter is bound although limits are configured.
    async fn rate_check(
        &self,
        key: &str,
        window_ms: u64,
        rpm: Option<u32>,
        tpm: Option<u64>,
        tokens: u64,
    ) -> Result<crate::ratelimit::Decision, String>;
    fn timer(&self) -> Timer;
}
