//! What an endpoint plugs into the one request lifecycle ([`super::lifecycle`]). The lifecycle owns everything
//! that is the same for every endpoint: resolving the model, the plan (routing, health, residency), capability
//! skips, deadlines, failover, hedging, the HTTP exchange with the provider up to its status, committing, the
//! record and the estimates routing learns. An operation says only what differs: how its request is built for a
//! provider kind (and whether it is passed through), when a provider's answer is committed and how it reaches the
//! client (whole or streamed), its usage, and whether and how it is cached.

use crate::config::{CacheSettings, Deployment, Model};
use crate::error::{ErrorCode, GatewayError};
use crate::http::{Headers, Response};
use crate::platform::{Deadline, Platform, UpstreamRequest, UpstreamResponse};
use crate::providers::Credentials;
use crate::record::{Recorder, TokenUsage};

/// How one attempt speaks to its deployment, decided once when its request is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wire {
    /// The client's own bytes go to the provider and the provider's come back (same wire format both sides).
    Passthrough,
    /// Converted to the provider's wire format and back.
    Translated,
}

/// A deployment's request, ready to send.
pub(super) struct Prepared {
    pub upstream: UpstreamRequest,
    pub wire: Wire,
}

/// What the cache did before any provider was called.
pub(super) enum Lookup {
    /// Answered without a provider call: `HIT` (from the cache) or `COALESCED` (following an identical request).
    Answered(Response, &'static str),
    /// Not cacheable, or the caller refused both reading and writing.
    Bypass,
    /// A miss: this request calls the provider, and its answer is stored once committed.
    Miss,
}

/// A whole answer, checked and rendered for the client.
pub(super) struct Whole {
    pub response: Response,
    pub usage: TokenUsage,
}

// Workers are single-threaded, so these futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub(super) trait Operation {
    /// The model the client asked for (an alias or `provider/model`).
    fn model(&self) -> &str;

    /// Whether the provider bills the answer (what it cost is reported and spent). Counting tokens is free.
    fn billed(&self) -> bool {
        true
    }

    /// Whether the client wants the answer streamed. An operation that can stream overrides this and
    /// [`Operation::stream_from`] together.
    fn stream(&self) -> bool {
        false
    }

    /// The request for `dep`, or `unsupported_input` when `dep`'s provider kind cannot express it (the lifecycle
    /// then skips `dep`). Any other error is the client's request being invalid everywhere.
    fn prepare(
        &self,
        dep: &Deployment,
        creds: &Credentials,
        now_ms: u64,
    ) -> Result<Prepared, GatewayError>;

    /// A 2xx answer read whole: checked (a malformed answer is the provider's failure, and is failed over),
    /// rendered in the client's dialect, and stored if this request leads a cache flight.
    fn whole(
        &self,
        dep: &Deployment,
        wire: Wire,
        body: Vec<u8>,
        headers: &Headers,
        now_ms: u64,
    ) -> Result<Whole, GatewayError>;

    /// A 2xx streamed answer: read until its first content (within `until`), so that a provider failing before
    /// it is still failed over, then the client's stream. The recorder is told the usage as it passes.
    async fn stream_from<P: Platform>(
        &self,
        platform: &P,
        dep: &Deployment,
        wire: Wire,
        until: Deadline,
        resp: UpstreamResponse,
        recorder: &Recorder,
    ) -> Result<Response, GatewayError> {
        let _ = (platform, dep, wire, until, resp, recorder);
        Err(GatewayError::new(
            ErrorCode::InternalError,
            "this operation's answers are never streamed",
        ))
    }

    /// Looks the request up in the cache (and among identical requests in flight) for a model with a cache.
    /// An operation whose answers are never cached keeps the default: every request calls a provider.
    async fn lookup<P: Platform>(
        &self,
        platform: &P,
        state: &super::State,
        model: &Model,
        settings: CacheSettings,
        ctl: &super::CacheControl,
        recorder: &Recorder,
    ) -> Result<Lookup, GatewayError> {
        let _ = (platform, state, model, settings, ctl, recorder);
        Ok(Lookup::Bypass)
    }

    /// No deployment committed: identical requests following this one get `err` too. Only an operation that
    /// coalesces identical requests has followers to tell.
    fn failed(&self, err: &GatewayError) {
        let _ = err;
    }
}
