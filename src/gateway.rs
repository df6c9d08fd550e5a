//! The pure core: one request in, one response out, with all platform access through [`Platform`].

use crate::auth::{authenticate, authorize, Principal};
use crate::cache::{self, Cache, Recording, Sink};
use crate::canonical::{self, StreamEvent};
use crate::config::{CacheSettings, Model};
use crate::config::{Config, ConfigError, Deployment, Provider, ProviderKind};
use crate::cors::{self, CorsPolicy};
use crate::error::{ErrorCode, GatewayError};
use crate::http::{Body, Headers, Method, Request, Response, StreamError};
use crate::idle::IdleLimit;
use crate::inbound::{anthropic, openai, Dialect};
use crate::limits;
use crate::passthrough::{AnthropicCheck, OpenAiCheck, SsePassthrough, WireCheck};
use crate::platform::{
    deadline, read_all, BodyFailure, Deadline, NoResponse, Platform, Timer, UpstreamResponse,
};
use crate::providers::bedrock::sigv4;
use crate::providers::errors::upstream_error;
use crate::providers::{self, openai_compat, Credentials, Decoder};
use crate::ratelimit::Decision;
use crate::record::{self, End, Operation, Pricing, Record, Recorder, Tracked};
use crate::routing::{estimator, Location, Policy, Router, Shape};
use crate::scrub::Scrubber;
use crate::translate::Translate;
use core::future::Future;
use core::pin::pin;
use futures_util::future::{select, Either};
use futures_util::{stream, StreamExt};
use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;

mod admission;
mod chat;
mod count_tokens;
mod dashboard;
mod embeddings;
mod estimates;
mod lifecycle;
mod operation;
mod responses;
mod routes;
mod shadow;
mod spend;

use admission::*;
use estimates::*;
use routes::{NoRoute, Route};

/// Largest provider error body read before giving up on it.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Largest non-streaming provider answer accepted.
const MAX_RESPONSE_BODY: usize = 32 * 1024 * 1024;

/// What lives as long as the isolate: the routing state learned from this edge location's traffic.
pub struct State {
    pub router: RefCell<Router>,
    pub cache: Rc<Cache>,
    /// Persisted estimates have been looked for in KV.
    loaded: Cell<bool>,
    /// Built on the first request: configuration and secrets cannot change within an isolate.
    scrubber: OnceCell<Rc<Scrubber>>,
    /// What this isolate's requests did, by status, error code and cache status (the status endpoint shows it).
    pub counters: Rc<RefCell<Counters>>,
    /// Responses this isolate has created: part of each new response id.
    responses: Cell<u64>,
    /// Slices of limited keys' windows this isolate admits from (see `lease`).
    pub leases: Rc<RefCell<crate::lease::Leases>>,
    /// Ledger entries waiting to be written (see `ledger::Batch`).
    pub ledger: Rc<RefCell<crate::ledger::Batch>>,
}

/// Totals over the records this isolate finished.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Counters {
    pub total: u64,
    pub by_status: std::collections::BTreeMap<u16, u64>,
    pub by_error: std::collections::BTreeMap<&'static str, u64>,
    pub by_cache: std::collections::BTreeMap<&'static str, u64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The last [`RECENT_ERRORS`] errors, oldest first.
    #[serde(skip)]
    pub recent: std::collections::VecDeque<RecentError>,
}

/// How many errors the status keeps for the dashboard.
const RECENT_ERRORS: usize = 50;

/// An error this isolate answered, for the dashboard.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecentError {
    pub ts: u64,
    pub status: u16,
    pub code: Option<&'static str>,
    pub key: Option<String>,
    pub model: Option<String>,
    pub deployment: Option<String>,
}

impl Counters {
    fn add(&mut self, r: &Record) {
        if r.error.is_some() || r.status >= 400 {
            if self.recent.len() == RECENT_ERRORS {
                self.recent.pop_front();
            }
            self.recent.push_back(RecentError {
                ts: r.ts,
                status: r.status,
                code: r.error.map(|e| e.as_str()),
                key: r.key.clone(),
                model: r.model.clone(),
                deployment: r.served_by.clone(),
            });
        }
        self.total += 1;
        *self.by_status.entry(r.status).or_default() += 1;
        if let Some(e) = r.error {
            *self.by_error.entry(e.as_str()).or_default() += 1;
        }
        if let Some(c) = r.cache {
            *self.by_cache.entry(c).or_default() += 1;
        }
        self.input_tokens += r.usage.input.unwrap_or(0);
        self.output_tokens += r.usage.output.unwrap_or(0);
    }
}

impl State {
    pub fn new(seed: u64) -> Self {
        State {
            router: RefCell::new(Router::new(seed)),
            cache: Rc::default(),
            loaded: Cell::new(false),
            scrubber: OnceCell::new(),
            counters: Rc::default(),
            responses: Cell::new(0),
            leases: Rc::default(),
            ledger: Rc::default(),
        }
    }
}

/// Owned handles (`Rc`), so that work after the answer (shadow calls) can keep what it needs.
pub async fn handle<P: Platform + 'static>(
    config: Result<&Rc<Config>, &ConfigError>,
    platform: &Rc<P>,
    state: &Rc<State>,
    req: Request,
) -> Response {
    let owned = config.ok().map(|c| shadow::Owned {
        config: Rc::clone(c),
        platform: Rc::clone(platform),
        state: Rc::clone(state),
    });
    respond(config.map(|c| &**c), &**platform, state, req, owned).await
}

/// [`handle`] on borrowed handles; `owned` (the same, owned) lets work outlive the answer: without it, nothing is
/// shadowed.
async fn respond<P: Platform + 'static>(
    config: Result<&Config, &ConfigError>,
    platform: &P,
    state: &State,
    req: Request,
    owned: Option<shadow::Owned<P>>,
) -> Response {
    let dialect = routes::dialect_for(&req.path, req.headers.get("anthropic-version").is_some());
    let req_origin = req.headers.get("origin").map(str::to_owned);
    let debug_routes = config.is_ok_and(|c| c.debug_panic_route);
    let found = routes::find(req.method, &req.path, debug_routes);
    let operation = match (req.method, found) {
        (Method::Options, _) => Operation::Preflight,
        (_, Ok(route)) => route.operation(),
        (_, Err(_)) => Operation::Unrouted,
    };
    let recorder = recorder_for(platform, state, dialect, operation);
    let result = match config {
        Ok(config) => {
            apart(route(
                config,
                platform,
                state,
                found,
                req,
                &recorder,
                owned.as_ref(),
            ))
            .await
        }
        Err(e) => Err(GatewayError::new(ErrorCode::InvalidConfig, e.to_string())),
    };
    let mut resp = result.unwrap_or_else(|e| {
        recorder.update(|r| r.error = Some(e.code));
        error_response(dialect, &e)
    });
    // Every answer of a limited key says where it stands, errors included (a 429 says it has nothing left).
    if let Some(standing) = recorder.read(|r| r.rate) {
        for (name, value) in standing.headers() {
            resp.headers.insert(name, value);
        }
    }
    // Which arm of an experiment served it.
    if let Some(arm) = recorder.read(|r| r.variant.clone()) {
        resp.headers.insert("x-meridian-variant", arm);
    }
    // What a whole answer cost (a stream says so in its final usage).
    if !matches!(resp.body, Body::Stream(_)) {
        for (name, value) in recorder.read(cost_headers) {
            resp.headers.insert(name, value);
        }
    }
    // Browsers may read errors too (a 401 or 429 a frontend must react to), from origins this gateway knows.
    if let (Some(origin), Ok(config)) = (req_origin, config) {
        if resp.headers.get("access-control-allow-origin").is_none()
            && origin_known(config, &origin)
        {
            let policy = CorsPolicy {
                allowed_origins: vec![origin.clone()],
            };
            for (n, v) in cors::response_headers(&policy, Some(&origin)) {
                resp.headers.insert(&n, v);
            }
        }
    }
    // The one place every answer passes on its way out, errors and streams included.
    if let Ok(config) = config {
        state
            .scrubber
            .get_or_init(|| Rc::new(scrubber_for(config, platform)))
            .response(&mut resp);
    }
    recorder.update(|r| r.status = resp.status);
    // A stream's record is finished when the stream ends (or the client leaves); anything else's now.
    resp.body = match std::mem::replace(&mut resp.body, Body::Empty) {
        Body::Stream(s) => Body::Stream(Box::pin(Tracked::new(s, recorder))),
        whole => {
            recorder.finish(End::Complete);
            whole
        }
    };
    resp
}

/// `x-meridian-cost-usd` for an answer a provider (or the cache) served: USD, `unpriced` when the deployment has
/// no price, `unknown` when the provider did not count; with `x-meridian-cost-saved-usd` for a cache HIT.
fn cost_headers(r: &Record) -> Vec<(&'static str, String)> {
    let cost = |r: &Record| {
        r.cost_usd()
            .map_or_else(|| "unknown".to_owned(), crate::pricing::usd_text)
    };
    match r.pricing {
        Pricing::NotServed => Vec::new(),
        Pricing::Unpriced => vec![("x-meridian-cost-usd", "unpriced".to_owned())],
        Pricing::At(_) => vec![("x-meridian-cost-usd", cost(r))],
        Pricing::Cached { saved_usd } => {
            let mut h = vec![("x-meridian-cost-usd", "0".to_owned())];
            if let Some(s) = saved_usd {
                h.push(("x-meridian-cost-saved-usd", crate::pricing::usd_text(s)));
            }
            h
        }
    }
}

/// The request's record, with the sinks every request has: the log line and this isolate's counters (admission
/// adds the correction of a token budget for keys that have one).
fn recorder_for<P: Platform>(
    platform: &P,
    state: &State,
    dialect: Dialect,
    operation: Operation,
) -> Recorder {
    let record = Record::new(platform.now_ms(), dialect.name(), operation);
    let log_line = {
        let log = platform.logger();
        Rc::new(move |r: &Record| log(&r.log_line())) as record::Sink
    };
    let counters = {
        let counters = state.counters.clone();
        Rc::new(move |r: &Record| counters.borrow_mut().add(r)) as record::Sink
    };
    let mut sinks = vec![log_line, counters];
    if let Some(write) = platform.analytics() {
        sinks.push(Rc::new(move |r: &Record| {
            write(&crate::analytics::data_point(
                r,
                r.key.as_deref().unwrap_or(""),
            ))
        }));
    }
    Recorder::new(record, platform.clock(), sinks)
}

/// The scrubber for the secrets the configuration names, read from the platform.
fn scrubber_for<P: Platform + ?Sized>(config: &Config, platform: &P) -> Scrubber {
    let mut names: Vec<&str> = Vec::new();
    for p in config.providers.values() {
        if let Some(n) = &p.api_key_secret {
            names.push(n);
        }
        if let ProviderKind::Bedrock { credentials, .. } = &p.kind {
            names.push(&credentials.access_key_id);
            names.push(&credentials.secret_access_key);
            if let Some(t) = &credentials.session_token {
                names.push(t);
            }
        }
    }
    if let Some(t) = &config.tokens {
        names.extend(t.secrets.iter().map(|(_, n)| n.as_str()));
    }
    Scrubber::new(names.into_iter().filter_map(|n| platform.secret(n)))
}

/// Where the caller is: the runtime's view, or (only when configured, for tests and demos) the
/// `x-meridian-location: lat,lon[,COLO]` header.
fn location(config: &Config, req: &Request) -> Location {
    if config.routing.trust_location_header {
        if let Some(v) = req.headers.get("x-meridian-location") {
            let mut parts = v.split(',').map(str::trim);
            let lat = parts.next().and_then(|p| p.parse::<f64>().ok());
            let lon = parts.next().and_then(|p| p.parse::<f64>().ok());
            let colo = parts
                .next()
                .filter(|c| {
                    !c.is_empty() && c.len() <= 8 && c.bytes().all(|b| b.is_ascii_alphanumeric())
                })
                .map(str::to_owned);
            if let (Some(lat), Some(lon)) = (lat, lon) {
                if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) {
                    return Location {
                        colo: colo.or_else(|| req.location.colo.clone()),
                        lat_lon: Some((lat, lon)),
                    };
                }
            }
        }
    }
    req.location.clone()
}

async fn route<P: Platform + 'static>(
    config: &Config,
    platform: &P,
    state: &State,
    found: Result<Route, NoRoute>,
    req: Request,
    recorder: &Recorder,
    owned: Option<&shadow::Owned<P>>,
) -> Result<Response, GatewayError> {
    if req.method == Method::Options {
        let resp = preflight(config, &req);
        if resp.status == 403 {
            recorder.update(|r| r.error = Some(ErrorCode::CorsOriginNotAllowed));
        }
        return Ok(resp);
    }
    let route = found.map_err(|why| match why {
        NoRoute::NotFound => {
            GatewayError::new(ErrorCode::NotFound, format!("no route for {}", req.path))
        }
        NoRoute::MethodNotAllowed => GatewayError::new(
            ErrorCode::MethodNotAllowed,
            format!(
                "method {} is not allowed on {}",
                req.method.as_str(),
                req.path
            ),
        ),
    })?;
    match route {
        Route::Chat(dialect) => {
            apart(chat(
                config, platform, state, dialect, &req, recorder, owned,
            ))
            .await
        }
        Route::Embeddings => {
            apart(embeddings::embeddings(
                config, platform, state, &req, recorder,
            ))
            .await
        }
        Route::Responses => apart(responses::create(config, platform, state, &req, recorder)).await,
        Route::StoredResponse => apart(responses::stored(config, platform, &req)).await,
        Route::Spend => apart(spend::spend(config, platform, &req)).await,
        Route::Shadow => {
            apart(spend::comparisons(
                config,
                platform,
                &req,
                spend::Kind::Shadow,
            ))
            .await
        }
        Route::Experiments => {
            apart(spend::comparisons(
                config,
                platform,
                &req,
                spend::Kind::Experiments,
            ))
            .await
        }
        Route::CountTokens => {
            apart(count_tokens::count_tokens(
                config, platform, state, &req, recorder,
            ))
            .await
        }
        Route::DebugPanicAfterAwait => {
            // A panic in a request that has already waited once: its answer is owed by a task, not a call.
            platform.sleep(1).await;
            panic!("deliberate panic after an await, from the debug route")
        }
        Route::Models
        | Route::Model
        | Route::Status
        | Route::Health
        | Route::Dashboard
        | Route::DebugPanic => other_route(config, platform, state, route, &req),
    }
}

/// A chat request: admitted, then run through the lifecycle as the chat operation, then shadowed when its model
/// samples it.
async fn chat<P: Platform + 'static>(
    config: &Config,
    platform: &P,
    state: &State,
    dialect: Dialect,
    req: &Request,
    recorder: &Recorder,
    owned: Option<&shadow::Owned<P>>,
) -> Result<Response, GatewayError> {
    let (admitted, inbound) = admit(
        config,
        platform,
        state,
        req,
        recorder,
        true,
        |req, limits| match dialect {
            Dialect::Anthropic => anthropic_inbound(req, limits, anthropic::Purpose::Create),
            Dialect::OpenAi => openai_inbound(&req.body, limits),
            // Its own route reads it (a stored conversation comes first).
            Dialect::Responses => Err(GatewayError::new(
                ErrorCode::InternalError,
                "a Responses request is admitted by its own route",
            )),
        },
    )
    .await?;
    let op = chat::Chat::new(inbound, admitted.target.drop_unsupported());
    let result = apart(lifecycle::run(config, platform, state, &admitted, &op)).await;
    persist_estimates(platform, state, &admitted.caller.location);
    let mut resp = result?;
    if let Some(owned) = owned {
        shadow::after(owned, &admitted, req, &op.inbound, &mut resp);
    }
    if let Some(origin) = req.headers.get("origin") {
        if admitted.principal.cors_allows(config, origin) {
            let policy = CorsPolicy {
                allowed_origins: vec![origin.to_owned()],
            };
            for (n, v) in cors::response_headers(&policy, Some(origin)) {
                resp.headers.insert(&n, v);
            }
        }
    }
    Ok(resp)
}

/// Everything but chat: kept out of line, so that a cold isolate's first chat request need not compile it.
#[inline(never)]
fn other_route<P: Platform>(
    config: &Config,
    platform: &P,
    state: &State,
    route: Route,
    req: &Request,
) -> Result<Response, GatewayError> {
    match route {
        Route::Health => Ok(Response::json(200, br#"{"status":"ok"}"#.to_vec())),
        Route::Dashboard => dashboard::serve(&req.path),
        Route::DebugPanic => panic!("deliberate panic from the debug route"),
        Route::Models | Route::Model => {
            authorize(config, platform, &req.headers)?;
            let dialect =
                routes::dialect_for(&req.path, req.headers.get("anthropic-version").is_some());
            let body = match req.path.strip_prefix("/v1/models/") {
                None => crate::inbound::models::list(config, dialect),
                Some(id) => crate::inbound::models::retrieve(config, dialect, id)?,
            };
            Ok(Response::json(200, body))
        }
        Route::Status => {
            // An admin key (the dashboard's) also sees the recent errors, which name every tenant's keys and models.
            let admin = crate::auth::authenticate_admin(config, &req.headers).is_ok();
            if !admin {
                authenticate(config, &req.headers)?;
            }
            let loc = location(config, req);
            let models = config
                .models
                .iter()
                .map(|(n, m)| (n.as_str(), m.deployments()));
            let router = state.router.borrow();
            #[derive(serde::Serialize)]
            struct Status<'a> {
                #[serde(flatten)]
                routing: crate::routing::Status<'a>,
                /// What this isolate's requests did.
                requests: Counters,
                /// This isolate's WebAssembly memory, bytes (it grows, never shrinks; 0 off wasm).
                wasm_memory_bytes: usize,
                /// The last errors this isolate answered, newest first (admin keys only).
                #[serde(skip_serializing_if = "Option::is_none")]
                recent_errors: Option<Vec<RecentError>>,
            }
            let status = Status {
                routing: router.status(models, &loc, platform.now_ms()),
                requests: state.counters.borrow().clone(),
                wasm_memory_bytes: wasm_memory_bytes(),
                recent_errors: admin.then(|| {
                    state
                        .counters
                        .borrow()
                        .recent
                        .iter()
                        .rev()
                        .cloned()
                        .collect()
                }),
            };
            Ok(Response::json(
                200,
                serde_json::to_vec(&status).unwrap_or_default(),
            ))
        }
        // Run by `route` itself.
        Route::Chat(_)
        | Route::CountTokens
        | Route::Embeddings
        | Route::Responses
        | Route::StoredResponse
        | Route::Spend
        | Route::Shadow
        | Route::Experiments
        | Route::DebugPanicAfterAwait => Err(GatewayError::new(
            ErrorCode::InternalError,
            "route dispatched to the wrong handler",
        )),
    }
}

/// The size of this instance's linear memory (what a stream's buffers would grow).
fn wasm_memory_bytes() -> usize {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::memory_size(0) * 65_536
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}

fn error_response(dialect: Dialect, e: &GatewayError) -> Response {
    let mut r = Response::json(dialect.error_status(e), dialect.error_body(e));
    if let Some(s) = &e.retry_after {
        r.headers.insert("retry-after", s.clone());
    }
    r
}

/// Polls `fut` through a vtable, so that its state machine stays a function of its own instead of being inlined
/// into its caller's. The wasm engine compiles a function whole on its first call: with the paths apart, a
/// fresh isolate's first request compiles only the ones it takes (cold start), at the cost of one allocation.
fn apart<'a, T>(
    fut: impl Future<Output = T> + 'a,
) -> core::pin::Pin<Box<dyn Future<Output = T> + 'a>> {
    Box::pin(fut)
}

impl Body {
    /// Collects the whole body; for tests and small bodies.
    pub async fn collect(self) -> Result<Vec<u8>, StreamError> {
        match self {
            Body::Empty => Ok(Vec::new()),
            Body::Bytes(b) => Ok(b),
            Body::Stream(s) => read_all(s, usize::MAX).await,
        }
    }

    /// Collects the whole body, refusing one longer than `limit` bytes.
    pub async fn collect_limited(self, limit: usize) -> Result<Vec<u8>, StreamError> {
        match self {
            Body::Stream(s) => read_all(s, limit).await,
            Body::Bytes(b) if b.len() > limit => Err(StreamError("body over the limit".into())),
            other => other.collect().await,
        }
    }
}

/// The gateway on borrowed handles, as most tests hold them: everything but shadows (`shadow_tests` runs those
/// through [`handle`]).
#[cfg(test)]
mod borrowed {
    use super::*;

    pub(super) async fn handle(
        config: Result<&Config, &ConfigError>,
        platform: &crate::platform::fake::FakePlatform,
        state: &State,
        req: Request,
    ) -> Response {
        respond(config, platform, state, req, None).await
    }
}

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod tests;
