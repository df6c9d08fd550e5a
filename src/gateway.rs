//! The pure core: one request in, one response out, with all platform access through [`Platform`].

use crate::auth::{authenticate, authorize};
use crate::cache::{self, Cache, Recording, Sink};
use crate::canonical::{self, StreamEvent};
use crate::config::{CacheSettings, Model};
use crate::config::{Config, ConfigError, Deployment, Provider, ProviderKind};
use crate::cors::{self, CorsPolicy};
use crate::error::{ErrorKind, GatewayError};
use crate::http::{Body, Headers, Method, Request, Response, StreamError};
use crate::idle::IdleLimit;
use crate::inbound::{anthropic, openai, Dialect};
use crate::limits;
use crate::passthrough::SsePassthrough;
use crate::platform::{
    deadline, read_all, BodyFailure, Deadline, NoResponse, Platform, Timer, UpstreamRequest,
    UpstreamResponse,
};
use crate::providers::bedrock::sigv4;
use crate::providers::errors::upstream_error;
use crate::providers::{self, openai_compat, Credentials, Decoder};
use crate::ratelimit::Decision;
use crate::routing::{estimator, Location, Policy, Router, Shape};
use crate::scrub::Scrubber;
use crate::translate::Translate;
use core::future::Future;
use core::pin::pin;
use futures_util::future::{select, Either};
use futures_util::{stream, StreamExt};
use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;

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
}

impl State {
    pub fn new(seed: u64) -> Self {
        State {
            router: RefCell::new(Router::new(seed)),
            cache: Rc::default(),
            loaded: Cell::new(false),
            scrubber: OnceCell::new(),
        }
    }
}

/// How long a cache lookup waits for KV before treating it as a miss.
const KV_READ_WAIT_MS: u64 = 50;
/// How long the first request of an isolate waits for persisted estimates before routing on priors.
const LOAD_WAIT_MS: u64 = 30;
/// Learned estimates are written back at most this often per isolate.
const PERSIST_EVERY_MS: u64 = 10_000;
const PERSIST_TTL_S: u64 = 7 * 24 * 3600;

fn routing_key(loc: &Location) -> String {
    format!("routing/v1/{}", loc.colo.as_deref().unwrap_or("unknown"))
}

pub async fn handle<P: Platform>(
    config: Result<&Config, &ConfigError>,
    platform: &P,
    state: &State,
    req: Request,
) -> Response {
    let dialect = dialect_for(&req.path);
    let req_origin = req.headers.get("origin").map(str::to_owned);
    let result = match config {
        Ok(config) => apart(route(config, platform, state, dialect, req)).await,
        Err(e) => {
            Err(GatewayError::new(ErrorKind::Internal, e.to_string()).with_code("invalid_config"))
        }
    };
    let mut resp = result.unwrap_or_else(|e| error_response(dialect, &e));
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
            .get_or_init(|| Rc::new(Scrubber::for_config(config, platform)))
            .response(&mut resp);
    }
    resp
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

async fn route<P: Platform>(
    config: &Config,
    platform: &P,
    state: &State,
    dialect: Dialect,
    req: Request,
) -> Result<Response, GatewayError> {
    let chat_route = matches!(
        (req.method, req.path.as_str()),
        (Method::Post, "/v1/chat/completions" | "/v1/messages")
    );
    if req.method == Method::Options {
        return Ok(preflight(config, &req));
    }
    if config.debug_panic_route && req.path == "/_meridian/debug/panic-after-await" {
        // A panic in a request that has already waited once: its answer is owed by a task, not a call.
        platform.sleep(1).await;
        panic!("deliberate panic after an await, from the debug route")
    }
    if chat_route {
        // Hostile input is refused before it is parsed or any budget is spent.
        limits::check_body(&req.body, &config.limits)?;
        let principal = authorize(config, platform, &req.headers)?;
        let key = principal.key;
        let inbound = if dialect == Dialect::Anthropic {
            anthropic_inbound(&req.body, &config.limits)?
        } else {
            openai_inbound(&req.body, &config.limits)?
        };
        if !principal.allows_model(inbound.model()) {
            return Err(GatewayError::new(
                ErrorKind::Permission,
                format!("this key may not use model `{}`", inbound.model()),
            )
            .with_code("model_not_allowed"));
        }
        let (rpm, tpm) = (principal.rpm(), key.tpm);
        if rpm.is_some() || tpm.is_some() {
            // Input tokens are estimated from the body (about 4 bytes each) and spent up front.
            let estimate = (req.body.len() / 4) as u64;
            match platform
                .rate_check(
                    &principal.rate_key(),
                    config.rate_window_ms,
                    rpm,
                    tpm,
                    estimate,
                )
                .await
            {
                Ok(Decision::Allowed) => {}
                Ok(Decision::Limited { retry_after_s }) => {
                    let mut e = GatewayError::new(
                        ErrorKind::RateLimited,
                        format!("rate limit reached; retry in {retry_after_s} s"),
                    )
                    .with_code("rate_limit_exceeded");
                    e.retry_after = Some(retry_after_s.to_string());
                    return Err(e);
                }
                Err(e) => {
                    return Err(GatewayError::new(
                        ErrorKind::Internal,
                        format!("rate limits are configured but cannot be enforced: {e}"),
                    )
                    .with_code("rate_limiter_unavailable"))
                }
            }
        }
        let caller = Caller {
            location: location(config, &req),
            key_residency: &key.residency,
            requested_residency: req
                .headers
                .get("x-meridian-residency")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            body_len: req.body.len(),
            cache: cache_control(&req, &key.cache_namespace),
        };
        let result = apart(complete(config, platform, state, &caller, inbound)).await;
        persist_estimates(platform, state, &caller.location);
        let mut resp = result?;
        if let Some(origin) = req.headers.get("origin") {
            if principal.cors_allows(config, origin) {
                let policy = CorsPolicy {
                    allowed_origins: vec![origin.to_owned()],
                };
                for (n, v) in cors::response_headers(&policy, Some(origin)) {
                    resp.headers.insert(&n, v);
                }
            }
        }
        return Ok(resp);
    }
    other_route(config, platform, state, &req)
}

/// Everything but chat: kept out of line, so that a cold isolate's first chat request need not compile it.
#[inline(never)]
fn other_route<P: Platform>(
    config: &Config,
    platform: &P,
    state: &State,
    req: &Request,
) -> Result<Response, GatewayError> {
    match (req.method, req.path.as_str()) {
        (Method::Get | Method::Head, "/healthz") => {
            Ok(Response::json(200, br#"{"status":"ok"}"#.to_vec()))
        }
        (Method::Post, "/_meridian/debug/panic") if config.debug_panic_route => {
            panic!("deliberate panic from the debug route")
        }
        (Method::Get, "/v1/models") => {
            authorize(config, platform, &req.headers)?;
            Ok(Response::json(200, openai::models_list(config)))
        }
        (Method::Get, "/_meridian/status") => {
            authenticate(config, &req.headers)?;
            let loc = location(config, req);
            let models = config
                .models
                .iter()
                .map(|(n, m)| (n.as_str(), m.deployments()));
            let status = state
                .router
                .borrow()
                .status(models, &loc, platform.now_ms());
            Ok(Response::json(200, status.to_string().into_bytes()))
        }
        (
            _,
            "/healthz"
            | "/v1/models"
            | "/v1/chat/completions"
            | "/v1/messages"
            | "/_meridian/status",
        ) => Err(GatewayError::new(
            ErrorKind::MethodNotAllowed,
            format!(
                "method {} is not allowed on {}",
                req.method.as_str(),
                req.path
            ),
        )),
        (_, path) => Err(
            GatewayError::new(ErrorKind::NotFound, format!("no route for {path}"))
                .with_code("not_found"),
        ),
    }
}

/// Each dialect's parsing and input limits in a function of its own (a cold isolate compiles only the one it
/// is asked for).
#[inline(never)]
fn anthropic_inbound(body: &[u8], limits: &limits::Limits) -> Result<Inbound, GatewayError> {
    let value: serde_json::Value = serde_json::from_slice::<serde_json::Value>(body)
        .map_err(|e| GatewayError::invalid(format!("request body is not valid JSON: {e}")))?;
    limits::check_request(&value, limits)?;
    Ok(Inbound::Canonical(
        Dialect::Anthropic,
        Box::new(anthropic::parse_request(body)?),
    ))
}

#[inline(never)]
fn openai_inbound(body: &[u8], limits: &limits::Limits) -> Result<Inbound, GatewayError> {
    let chat = openai::parse_chat(body)?;
    limits::check_request_object(&chat.body, limits)?;
    Ok(Inbound::OpenAi(chat))
}

/// A fresh isolate starts from what this location learned before, if KV has it in time.
async fn load_estimates<P: Platform>(platform: &P, state: &State, loc: &Location) {
    if state.loaded.replace(true) {
        return;
    }
    if let Some(Some(json)) =
        deadline(platform, LOAD_WAIT_MS, platform.kv_get(&routing_key(loc))).await
    {
        state.router.borrow_mut().import(&json);
    }
    state.router.borrow_mut().last_persist_ms = platform.now_ms();
}

/// Debounced write-back of learned estimates, finished after the response (`wait_until`).
fn persist_estimates<P: Platform>(platform: &P, state: &State, loc: &Location) {
    // Not before this isolate has read what the location knows: it would overwrite it with less.
    if !state.loaded.get() {
        return;
    }
    let now = platform.now_ms();
    let mut router = state.router.borrow_mut();
    if router.dirty && now.saturating_sub(router.last_persist_ms) >= PERSIST_EVERY_MS {
        router.dirty = false;
        router.last_persist_ms = now;
        (platform.kv_writer())(
            routing_key(loc),
            router.export(),
            PERSIST_TTL_S,
            String::new(),
        );
    }
}

/// Origins any key (or a browser token, whose origins are listed globally) may call from.
fn origin_known(config: &Config, origin: &str) -> bool {
    config.cors.allows(origin) || config.keys.iter().any(|k| k.cors.allows(origin))
}

/// `OPTIONS`: browsers ask before sending credentials, so the answer cannot depend on the key.
fn preflight(config: &Config, req: &Request) -> Response {
    let origin = req.headers.get("origin").unwrap_or_default();
    let allowed = !origin.is_empty() && origin_known(config, origin);
    let answer = allowed.then(|| {
        let policy = CorsPolicy {
            allowed_origins: vec![origin.to_owned()],
        };
        cors::preflight(
            &policy,
            origin,
            req.headers.get("access-control-request-method"),
            req.headers.get("access-control-request-headers"),
        )
    });
    match answer.flatten() {
        Some(headers) => Response {
            status: 204,
            headers: headers.into_iter().collect(),
            body: Body::Empty,
        },
        None => Response::json(
            403,
            openai::error_body(
                &GatewayError::new(ErrorKind::Permission, "origin not allowed")
                    .with_code("cors_origin_not_allowed"),
            ),
        ),
    }
}

/// Errors are answered in the dialect of the endpoint the client called, even before its body is read.
fn dialect_for(path: &str) -> Dialect {
    if path == "/v1/messages" || path.starts_with("/v1/messages/") {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    }
}

fn error_response(dialect: Dialect, e: &GatewayError) -> Response {
    let mut r = Response::json(e.status, dialect.error_body(e));
    if let Some(s) = &e.retry_after {
        r.headers.insert("retry-after", s.clone());
    }
    r
}

/// A chat request as it arrived: OpenAI-dialect bodies stay raw so they can pass through untouched.
enum Inbound {
    OpenAi(openai::ChatRequest),
    Canonical(Dialect, Box<canonical::ChatRequest>),
}

impl Inbound {
    fn model(&self) -> &str {
        match self {
            Inbound::OpenAi(c) => &c.model,
            Inbound::Canonical(_, c) => &c.model,
        }
    }

    fn stream(&self) -> bool {
        match self {
            Inbound::OpenAi(c) => c.stream,
            Inbound::Canonical(_, c) => c.stream,
        }
    }

    fn dialect(&self) -> Dialect {
        match self {
            Inbound::OpenAi(_) => Dialect::OpenAi,
            Inbound::Canonical(d, _) => *d,
        }
    }
}

/// The deployments a model name stands for: a configured alias, or `provider/model` to address a configured
/// provider directly.
fn resolve<'c>(config: &'c Config, name: &str) -> Result<Target<'c>, GatewayError> {
    if let Some(model) = config.model(name) {
        return Ok(Target::Alias(model));
    }
    if let Some((provider, model)) = name.split_once('/') {
        if let (Some(p), false) = (config.provider(provider), model.is_empty()) {
            return Ok(Target::Direct([p.direct(model)]));
        }
    }
    Err(GatewayError::new(
        ErrorKind::NotFound,
        format!("model `{name}` does not exist; GET /v1/models lists the models served here"),
    )
    .with_code("model_not_found"))
}

enum Target<'c> {
    Alias(&'c Model),
    Direct([Deployment; 1]),
}

impl Target<'_> {
    fn deployments(&self) -> &[Deployment] {
        match self {
            Target::Alias(m) => m.deployments(),
            Target::Direct(d) => d,
        }
    }
}

fn credentials<P: Platform>(
    provider: &Provider,
    platform: &P,
) -> Result<Credentials, GatewayError> {
    let secret = |name: &str| {
        platform.secret(name).ok_or_else(|| {
            GatewayError::new(
                ErrorKind::Internal,
                format!(
                    "provider {}: worker secret {name} is not set",
                    provider.name
                ),
            )
            .with_code("missing_provider_key")
        })
    };
    Ok(match &provider.kind {
        ProviderKind::Bedrock {
            credentials: names, ..
        } => Credentials::Aws(sigv4::Credentials {
            access_key_id: secret(&names.access_key_id)?,
            secret_access_key: secret(&names.secret_access_key)?,
            session_token: names.session_token.as_deref().map(secret).transpose()?,
        }),
        _ => match &provider.api_key_secret {
            Some(name) => Credentials::ApiKey(secret(name)?),
            None => Credentials::None,
        },
    })
}

/// Who is asking and from where: what routing needs beyond the request body.
pub struct Caller<'a> {
    pub location: Location,
    /// Residency tags required by the key's policy (empty: none).
    pub key_residency: &'a [String],
    /// Residency tags requested with `x-meridian-residency` (empty: none).
    pub requested_residency: Vec<String>,
    pub body_len: usize,
    pub cache: CacheControl,
}

/// The caller's say over the cache.
#[derive(Debug, Default, Clone)]
pub struct CacheControl {
    /// `Cache-Control: no-cache`: do not answer from the cache.
    pub no_cache: bool,
    /// `Cache-Control: no-store`: do not store the answer.
    pub no_store: bool,
    /// `x-meridian-cache-ttl` (seconds).
    pub ttl_s: Option<u64>,
    /// The key's namespace, refined by `x-meridian-cache-namespace`.
    pub namespace: String,
}

fn cache_control(req: &Request, key_namespace: &str) -> CacheControl {
    let directives = req
        .headers
        .get("cache-control")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let has = |d: &str| directives.split(',').any(|x| x.trim() == d);
    let sub = req
        .headers
        .get("x-meridian-cache-namespace")
        .map(str::trim)
        .filter(|n| {
            !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
    CacheControl {
        no_cache: has("no-cache"),
        no_store: has("no-store"),
        ttl_s: req
            .headers
            .get("x-meridian-cache-ttl")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|t| t.clamp(cache::MIN_TTL_S, cache::MAX_TTL_S)),
        // Still inside the key's own namespace: a header can narrow the scope, never cross tenants.
        namespace: match sub {
            Some(sub) => format!("{key_namespace}:{sub}"),
            None => key_namespace.to_owned(),
        },
    }
}

fn residency_ok(dep: &Deployment, required: &[String]) -> bool {
    required.is_empty() || dep.tags.iter().any(|t| required.contains(t))
}

/// One chat request, tried on deployments in the order routing chose, until one commits.
struct Call<'a, P> {
    config: &'a Config,
    platform: &'a P,
    state: &'a State,
    inbound: &'a Inbound,
    /// Built on first need: only deployments that do not speak the client's wire format need it.
    canonical: OnceCell<canonical::ChatRequest>,
    shape: Shape,
    /// Set when this request leads a cache flight: taken by the attempt that commits.
    sink: RefCell<Option<Sink>>,
    /// The plan hedges: an attempt may lose and be dropped, and must then be cancelled at the provider.
    hedging: Cell<bool>,
}

/// An attempt that did not produce a response: whether another deployment may do better.
struct Failed {
    error: GatewayError,
    retryable: bool,
}

impl From<GatewayError> for Failed {
    fn from(error: GatewayError) -> Self {
        // A request the provider rejects as invalid will be rejected everywhere; anything else may be this
        // deployment's problem alone.
        let retryable = error.kind != ErrorKind::InvalidRequest;
        Failed { error, retryable }
    }
}

async fn complete<P: Platform>(
    config: &Config,
    platform: &P,
    state: &State,
    caller: &Caller<'_>,
    inbound: Inbound,
) -> Result<Response, GatewayError> {
    let target = resolve(config, inbound.model())?;
    let deps = target.deployments();
    // A model with one deployment has nothing to choose: its first request in a fresh isolate does not wait for
    // what KV knows (a cold KV read is a large share of a cold start).
    if deps.len() > 1 {
        load_estimates(platform, state, &caller.location).await;
    }
    let allowed: Vec<bool> = deps
        .iter()
        .map(|d| {
            residency_ok(d, caller.key_residency) && residency_ok(d, &caller.requested_residency)
        })
        .collect();
    if !allowed.contains(&true) {
        let mut wanted: Vec<&str> = caller.key_residency.iter().map(String::as_str).collect();
        wanted.extend(caller.requested_residency.iter().map(String::as_str));
        return Err(GatewayError::new(
            ErrorKind::Upstream,
            format!(
                "no deployment of `{}` satisfies the residency policy ({}); refusing to send it elsewhere",
                inbound.model(),
                wanted.join(", ")
            ),
        )
        .with_status(503)
        .with_code("residency_unsatisfiable"));
    }
    let (hedge_budget, max_attempts) = match &target {
        Target::Alias(m) => (m.hedge_budget, m.max_attempts),
        Target::Direct(_) => (None, 1),
    };
    let shape = Shape {
        stream: inbound.stream(),
        bucket: estimator::bucket(caller.body_len),
    };
    let policy = Policy {
        exploration: config.routing.exploration,
        hedge_budget,
    };
    let plan = state.router.borrow_mut().plan(
        deps,
        &allowed,
        &caller.location,
        shape,
        policy,
        platform.now_ms(),
    );
    let call = Call {
        config,
        platform,
        state,
        inbound: &inbound,
        canonical: OnceCell::new(),
        shape,
        sink: RefCell::new(None),
        hedging: Cell::new(plan.hedge_after_ms.is_some()),
    };
    let mut cache_status = None;
    if let Target::Alias(model) = &target {
        if let Some(settings) = model.cache {
            match apart(call.cache_lookup(model, settings, caller)).await? {
                Lookup::Answered(mut resp) => {
                    resp.headers.insert(
                        "x-meridian-colo",
                        caller
                            .location
                            .colo
                            .clone()
                            .unwrap_or_else(|| "unknown".into()),
                    );
                    return Ok(resp);
                }
                Lookup::Bypass => cache_status = Some("BYPASS"),
                Lookup::Lead(sink) => {
                    *call.sink.borrow_mut() = Some(sink);
                    cache_status = Some("MISS");
                }
            }
        }
    }
    let started_ms = platform.now_ms();
    let mut order = plan.order.iter().map(|&i| &deps[i]).take(max_attempts);
    let mut attempts = 0;
    let mut last = None;
    while let Some(dep) = order.next() {
        // Failover never outlives the overall deadline.
        if attempts > 0 && platform.now_ms().saturating_sub(started_ms) >= config.timeouts.total_ms
        {
            break;
        }
        attempts += 1;
        let hedge = match plan.hedge_after_ms {
            Some(ms) if attempts == 1 => order.clone().next().map(|second| (ms, second)),
            _ => None,
        };
        let result = match hedge {
            Some((after_ms, second)) => match apart(call.hedged(dep, second, after_ms)).await {
                (r, true) => {
                    // The second deployment was used up by the hedge: failover continues after it.
                    order.next();
                    attempts += 1;
                    r
                }
                (r, false) => r,
            },
            None => call.attempt(dep).await.map(|r| (r, dep)),
        };
        match result {
            Ok((mut resp, used)) => {
                annotate(&mut resp, used, attempts, &caller.location);
                if let Some(status) = cache_status {
                    resp.headers.insert("x-meridian-cache", status);
                }
                return Ok(resp);
            }
            Err(f) if !f.retryable => {
                call.fail_flight(&f.error);
                return Err(f.error);
            }
            Err(f) => last = Some(f.error),
        }
    }
    let err =
        last.unwrap_or_else(|| GatewayError::new(ErrorKind::Timeout, "overall deadline exceeded"));
    call.fail_flight(&err);
    Err(err)
}

/// What the cache did with a request.
enum Lookup {
    /// Served from the cache, or by following an identical request in flight.
    Answered(Response),
    /// Not cacheable (or both read and write refused by the caller).
    Bypass,
    /// A miss: this request calls the provider and stores the answer.
    Lead(Sink),
}

/// Replays a cached answer in the caller's dialect and mode.
fn replay(
    dialect: Dialect,
    c: &canonical::ChatRequest,
    entry: &cache::answer::Entry,
    now_ms: u64,
) -> Response {
    let mut resp = if c.stream {
        let mut enc = dialect.stream_encoder(&c.model, c.include_usage, now_ms);
        // One chunk per event, as a provider would send them.
        let mut chunks: Vec<Result<Vec<u8>, StreamError>> = entry
            .events()
            .iter()
            .map(|ev| {
                let mut out = Vec::new();
                enc.encode_all(std::slice::from_ref(ev), &mut out);
                Ok(out)
            })
            .filter(|c| c.as_ref().is_ok_and(|b| !b.is_empty()))
            .collect();
        let mut tail = Vec::new();
        enc.finish(&mut tail);
        chunks.push(Ok(tail));
        Response::event_stream(Box::pin(stream::iter(chunks)))
    } else {
        Response::json(
            200,
            dialect.render_response(&entry.answer, &c.model, now_ms),
        )
    };
    let u = entry.answer.usage;
    resp.headers
        .insert("x-meridian-deployment", entry.deployment.clone());
    resp.headers.insert("x-meridian-attempts", "0");
    resp.headers.insert(
        "x-meridian-cache-saved-tokens",
        (u.input_tokens + u.output_tokens).to_string(),
    );
    resp
}

impl<P: Platform> Call<'_, P> {
    async fn cache_lookup(
        &self,
        model: &Model,
        settings: CacheSettings,
        caller: &Caller<'_>,
    ) -> Result<Lookup, GatewayError> {
        let c = self.canonical()?;
        let sampled = c.temperature.is_none_or(|t| t != 0.0);
        let ctl = &caller.cache;
        let openai_body = match self.inbound {
            Inbound::OpenAi(chat) => Some(&chat.body),
            Inbound::Canonical(..) => None,
        };
        if (sampled && !settings.nonzero_temperature)
            || (ctl.no_cache && ctl.no_store)
            || openai_body.and_then(cache::key::unreplayable).is_some()
        {
            return Ok(Lookup::Bypass);
        }
        let key = cache::key::cache_key(&ctl.namespace, &model.name, c, openai_body);
        let now = self.platform.now_ms();
        let dialect = self.inbound.dialect();
        let hit = |entry: &cache::answer::Entry| {
            let mut r = replay(dialect, c, entry, now);
            r.headers.insert("x-meridian-cache", "HIT");
            r.headers.insert(
                "age",
                (now.saturating_sub(entry.created_ms) / 1000).to_string(),
            );
            Lookup::Answered(r)
        };
        if !ctl.no_cache {
            if let Some(entry) = self.state.cache.memory.borrow().get(&key, now) {
                return Ok(hit(&entry));
            }
            let flight = self.state.cache.flights.borrow().get(&key).cloned();
            if let Some(flight) = flight {
                let mut r = follow(flight, dialect, c, now, self.platform.timer()).await?;
                r.headers.insert("x-meridian-cache", "COALESCED");
                return Ok(Lookup::Answered(r));
            }
        }
        let ttl_s = ctl.ttl_s.unwrap_or(settings.ttl_s);
        // Registered before the KV read, so identical requests arriving meanwhile follow this one.
        let sink = Sink::start(
            self.state.cache.clone(),
            self.platform.kv_writer(),
            key.clone(),
            ttl_s,
            String::new(),
            now,
            !ctl.no_store,
        );
        if !ctl.no_cache {
            if let Some(Some(json)) =
                deadline(self.platform, KV_READ_WAIT_MS, self.platform.kv_get(&key)).await
            {
                if let Some(entry) = cache::answer::Entry::from_json(&json) {
                    let expires = entry.created_ms + ttl_s * 1000;
                    let size = json.len();
                    let entry = Rc::new(entry);
                    sink.resolve(&entry);
                    self.state
                        .cache
                        .memory
                        .borrow_mut()
                        .insert(key, entry.clone(), size, expires);
                    return Ok(hit(&entry));
                }
            }
        }
        Ok(Lookup::Lead(sink))
    }

    fn fail_flight(&self, err: &GatewayError) {
        if let Some(sink) = self.sink.borrow_mut().take() {
            sink.fail(err.clone());
        }
    }
}

/// How often a follower wakes on its own. The leader wakes it as events arrive, but the runtime cancels a
/// request that waits on nothing of its own (it cannot see another request's stream), so a timer is kept
/// pending.
const FOLLOW_TICK_MS: u64 = 10;

/// The next event of a flight, waking on the leader's events or the follower's own ticks.
async fn next_followed(
    events: &mut cache::flight::Follow,
    timer: &Timer,
) -> Option<Result<StreamEvent, GatewayError>> {
    loop {
        let tick = timer(FOLLOW_TICK_MS);
        match select(events.next(), tick).await {
            Either::Left((ev, _)) => return ev,
            Either::Right(_) => continue,
        }
    }
}

/// A request identical to one in flight: the same answer, from the start, without another provider call.
async fn follow(
    flight: cache::flight::FlightRef,
    dialect: Dialect,
    c: &canonical::ChatRequest,
    now_ms: u64,
    timer: Timer,
) -> Result<Response, GatewayError> {
    let mut events = cache::flight::Follow::new(flight);
    if !c.stream {
        let mut rec = cache::answer::Recorder::default();
        while let Some(ev) = next_followed(&mut events, &timer).await {
            rec.observe(&ev?);
        }
        let answer = rec.into_answer().ok_or_else(|| {
            GatewayError::new(
                ErrorKind::Upstream,
                "the request being followed did not complete",
            )
        })?;
        return Ok(Response::json(
            200,
            dialect.render_response(&answer, &c.model, now_ms),
        ));
    }
    // The first event decides the status, as for a provider stream.
    let first = match next_followed(&mut events, &timer).await {
        Some(Ok(ev)) => ev,
        Some(Err(e)) => return Err(e),
        None => {
            return Err(GatewayError::new(
                ErrorKind::Upstream,
                "the request being followed produced nothing",
            ))
        }
    };
    let mut enc = dialect.stream_encoder(&c.model, c.include_usage, now_ms);
    let mut pending = Vec::new();
    enc.encode_all(std::slice::from_ref(&first), &mut pending);
    let state = (events, enc, Some(pending), false, timer);
    let body = stream::unfold(
        state,
        |(mut events, mut enc, pending, done, timer)| async move {
            if let Some(p) = pending {
                return Some((Ok(p), (events, enc, None, done, timer)));
            }
            if done {
                return None;
            }
            let mut out = Vec::new();
            let finished = match next_followed(&mut events, &timer).await {
                Some(Ok(ev)) => {
                    enc.encode_all(std::slice::from_ref(&ev), &mut out);
                    false
                }
                Some(Err(e)) => {
                    enc.fail(&e, &mut out);
                    true
                }
                None => {
                    enc.finish(&mut out);
                    true
                }
            };
            Some((Ok(out), (events, enc, None, finished, timer)))
        },
    );
    Ok(Response::event_stream(Box::pin(body)))
}

impl<P: Platform> Call<'_, P> {
    /// Whether the client's OpenAI body can go to `dep` untranslated. Not when a cached stream needs usage the
    /// client did not ask for: then the provider is asked for it and the client's view is re-encoded.
    fn passthrough(&self, dep: &Deployment) -> bool {
        let Inbound::OpenAi(chat) = self.inbound else {
            return false;
        };
        let wants_usage = chat
            .body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        dep.provider.kind.is_openai_wire()
            && !(chat.stream && !wants_usage && self.sink.borrow().is_some())
    }

    fn canonical(&self) -> Result<&canonical::ChatRequest, GatewayError> {
        match self.inbound {
            Inbound::Canonical(_, c) => Ok(c),
            Inbound::OpenAi(chat) => {
                if let Some(c) = self.canonical.get() {
                    return Ok(c);
                }
                let c = chat.to_canonical()?;
                Ok(self.canonical.get_or_init(|| c))
            }
        }
    }

    /// Runs `first`; if it has produced nothing after `after_ms`, runs `second` alongside, and the first to
    /// produce content wins (the other is dropped, which cancels its fetch). The flag says whether `second` ran.
    async fn hedged<'d>(
        &self,
        first: &'d Deployment,
        second: &'d Deployment,
        after_ms: u64,
    ) -> (Result<(Response, &'d Deployment), Failed>, bool) {
        let a = pin!(self.attempt(first));
        let timer = pin!(self.platform.sleep(after_ms));
        let a = match select(a, timer).await {
            Either::Left((r, _)) => return (r.map(|r| (r, first)), false),
            Either::Right((_, a)) => a,
        };
        let hedge_start = self.platform.now_ms();
        self.state.router.borrow_mut().hedged(second);
        let b = pin!(self.attempt(second));
        match select(a, b).await {
            Either::Left((Ok(r), _loser)) => {
                let waited = self.platform.now_ms().saturating_sub(hedge_start) as f64;
                self.state.router.borrow_mut().at_least(
                    second,
                    self.shape,
                    waited,
                    self.platform.now_ms(),
                );
                (Ok((r, first)), true)
            }
            Either::Right((Ok(r), _loser)) => {
                let waited = (self.platform.now_ms().saturating_sub(hedge_start) + after_ms) as f64;
                self.state.router.borrow_mut().at_least(
                    first,
                    self.shape,
                    waited,
                    self.platform.now_ms(),
                );
                (Ok((r, second)), true)
            }
            Either::Left((Err(_), b)) => (b.await.map(|r| (r, second)), true),
            Either::Right((Err(_), a)) => (a.await.map(|r| (r, first)), true),
        }
    }

    /// One deployment, up to the point where the response is committed (headers and, for streams, the first
    /// content), recording what was learned.
    async fn attempt(&self, dep: &Deployment) -> Result<Response, Failed> {
        let now = self.platform.now_ms();
        self.state.router.borrow_mut().started(dep, now);
        let result = apart(self.try_deployment(dep, now)).await;
        let end = self.platform.now_ms();
        let mut router = self.state.router.borrow_mut();
        match &result {
            Ok((_, latency_ms)) => router.success(dep, self.shape, *latency_ms, end),
            Err(f) if f.retryable => {
                let retry_after_ms = f
                    .error
                    .retry_after
                    .as_deref()
                    .and_then(|s| s.parse::<u64>().ok())
                    .map(|s| s.saturating_mul(1000));
                router.failure(dep, &f.error.message, retry_after_ms, end);
            }
            // The request was at fault, not the deployment.
            Err(_) => {}
        }
        result.map(|(r, _)| r)
    }

    /// Returns the committed response and the latency to learn from: to the first content for streams, to the
    /// whole answer otherwise.
    async fn try_deployment(
        &self,
        dep: &Deployment,
        start_ms: u64,
    ) -> Result<(Response, f64), Failed> {
        let creds = credentials(&dep.provider, self.platform)?;
        let mut upstream = match self.inbound {
            // Same wire format both sides: forward the client's bytes, no translation.
            Inbound::OpenAi(chat) if self.passthrough(dep) => {
                openai_compat::passthrough_request(dep, chat, &creds)
            }
            _ => providers::build_request(dep, self.canonical()?, &creds, start_ms)?,
        };
        upstream.cancel_on_drop |= self.hedging.get();

        if self.inbound.stream() {
            apart(self.streamed(dep, upstream, start_ms, &creds)).await
        } else {
            apart(self.whole(dep, upstream, start_ms, &creds)).await
        }
    }

    /// A streamed answer: committed once the provider has produced content, recorded as it passes if this request
    /// leads a cache flight.
    async fn streamed(
        &self,
        dep: &Deployment,
        upstream: UpstreamRequest,
        start_ms: u64,
        creds: &Credentials,
    ) -> Result<(Response, f64), Failed> {
        let (config, platform) = (self.config, self.platform);
        let until = Deadline {
            start_ms,
            ms: config.timeouts.first_byte_ms,
        };
        let resp = match until.run(platform, platform.fetch(upstream)).await {
            None => return Err(timeout(dep, until.ms).into()),
            Some(Err(e)) => return Err(unreachable(dep, &e).into()),
            // Once begun, a stream is bounded by its silence. Every layer above may poll once more after the
            // end; fused, the provider's body stays ended.
            Some(Ok(r)) => UpstreamResponse {
                body: Box::pin(IdleLimit::new(
                    Box::pin(r.body.fuse()),
                    config.timeouts.idle_ms,
                    platform.timer(),
                )),
                ..r
            },
        };

        if !(200..300).contains(&resp.status) {
            let UpstreamResponse {
                status,
                headers,
                body,
            } = resp;
            let body = until
                .run(platform, read_all(body, MAX_ERROR_BODY))
                .await
                .and_then(Result::ok)
                .unwrap_or_default();
            return Err(upstream_error(dep, status, &headers, &body, creds).into());
        }

        // A cache leader records the stream as it passes; the recording only stores if this attempt commits.
        let mut resp = resp;
        let slot = if self.sink.borrow().is_some() {
            let slot = cache::SlotRef::default();
            let id = response_id(&resp.headers, start_ms);
            let decoder = Decoder::new(&dep.provider.kind, &id, &dep.model);
            let body = std::mem::replace(&mut resp.body, Box::pin(stream::empty()));
            resp.body = Box::pin(Recording::new(
                body,
                decoder,
                slot.clone(),
                platform.background(),
            ));
            Some(slot)
        } else {
            None
        };
        let r = if self.passthrough(dep) {
            apart(passthrough_stream(platform, dep, until, resp)).await?
        } else {
            let c = self.canonical()?;
            let now = platform.now_ms();
            let id = response_id(&resp.headers, now);
            let encoder = self
                .inbound
                .dialect()
                .stream_encoder(&c.model, c.include_usage, now);
            let decoder = Decoder::new(&dep.provider.kind, &id, &dep.model);
            apart(translated_stream(
                platform, dep, until, resp, decoder, encoder,
            ))
            .await?
        };
        // Committed: the recording may store once the stream completes.
        if let (Some(sink), Some(slot)) = (self.sink.borrow_mut().take(), &slot) {
            cache::attach(slot, sink, dep.id());
        }
        Ok((r, platform.now_ms().saturating_sub(start_ms) as f64))
    }

    /// A non-streamed answer: fetched and read whole (one platform step), checked, translated if the client
    /// speaks another wire format, and stored if this request leads a cache flight. The latency learned is to
    /// the whole answer, which for a non-streamed answer arrives with (or just after) the headers.
    async fn whole(
        &self,
        dep: &Deployment,
        upstream: UpstreamRequest,
        start_ms: u64,
        creds: &Credentials,
    ) -> Result<(Response, f64), Failed> {
        let (config, platform) = (self.config, self.platform);
        let (first_byte, total) = (config.timeouts.first_byte_ms, config.timeouts.total_ms);
        let resp = match platform
            .fetch_whole(upstream, first_byte, total, MAX_RESPONSE_BODY)
            .await
        {
            Err(NoResponse::Timeout) => return Err(timeout(dep, first_byte).into()),
            Err(NoResponse::Failed(e)) => return Err(unreachable(dep, &e).into()),
            Ok(r) => r,
        };
        let latency_ms = platform.now_ms().saturating_sub(start_ms) as f64;
        if !(200..300).contains(&resp.status) {
            let mut body = resp.body.unwrap_or_default();
            body.truncate(MAX_ERROR_BODY);
            return Err(upstream_error(dep, resp.status, &resp.headers, &body, creds).into());
        }
        let body = match resp.body {
            Ok(b) => b,
            Err(BodyFailure::Timeout) => return Err(timeout(dep, total).into()),
            Err(BodyFailure::Failed(e)) => {
                return Err(GatewayError::new(
                    ErrorKind::Upstream,
                    format!("provider {} response failed: {e}", dep.provider.name),
                )
                .with_code("upstream_body_error")
                .into())
            }
        };
        let commit = |answer: canonical::ChatResponse| -> Option<&'static str> {
            let mut sink = self.sink.borrow_mut().take()?;
            let store = sink.store;
            sink.set_deployment(dep.id());
            let stored = sink.complete(answer, false);
            (store && !stored).then_some("too-large-to-store")
        };
        let (mut r, note) = if self.passthrough(dep) {
            // Passed through as the provider's bytes, but never as garbage: a 200 must carry a chat completion
            // (`{}` or an error object is this provider's failure, and is failed over).
            let completion = serde_json::from_slice::<serde_json::Value>(&body)
                .is_ok_and(|v| v["choices"].as_array().is_some() && v["error"].is_null());
            if !completion {
                return Err(GatewayError::new(
                    ErrorKind::Upstream,
                    format!(
                        "provider {} answered a malformed response (not a chat completion)",
                        dep.provider.name
                    ),
                )
                .with_code("upstream_malformed")
                .into());
            }
            let note = if self.sink.borrow().is_some() {
                openai_compat::parse_response(&body).ok().and_then(commit)
            } else {
                None
            };
            (Response::json(200, body), note)
        } else {
            let c = self.canonical()?;
            let now = platform.now_ms();
            let id = response_id(&resp.headers, now);
            let answer = providers::parse_response(dep, &body, &id)?;
            let rendered = self
                .inbound
                .dialect()
                .render_response(&answer, &c.model, now);
            (Response::json(200, rendered), commit(answer))
        };
        if let Some(n) = note {
            r.headers.insert("x-meridian-cache-note", n);
        }
        Ok((r, latency_ms))
    }
}

fn unreachable(dep: &Deployment, e: &crate::platform::FetchError) -> GatewayError {
    GatewayError::new(
        ErrorKind::Upstream,
        format!("could not reach provider {}: {e}", dep.provider.name),
    )
    .with_code("upstream_unreachable")
}

/// The provider's request id where it sends one in a header, else one derived from the clock.
fn response_id(headers: &Headers, now_ms: u64) -> String {
    ["x-amzn-requestid", "request-id", "x-request-id"]
        .iter()
        .find_map(|h| headers.get(h))
        .filter(|v| {
            v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(|v| format!("msg_{v}"))
        .unwrap_or_else(|| format!("msg_meridian_{now_ms:x}"))
}

/// Holds the response until the provider has produced content (not just the role chunk), so that a provider
/// failing before its first token is still reported as an error status (and can be failed over), and so that
/// routing learns the real time to first token.
async fn passthrough_stream<P: Platform>(
    platform: &P,
    dep: &Deployment,
    until: Deadline,
    resp: UpstreamResponse,
) -> Result<Response, GatewayError> {
    let mut pass = SsePassthrough::new(resp.body);
    let first = async {
        loop {
            match pass.next_raw().await {
                // Ended before any content (a JSON body, or only the role chunk): nothing usable was produced,
                // which is this provider's failure (failover), not an empty answer.
                None => return Err(empty_stream(dep)),
                Some(Err(e)) => return Err(stream_failed(dep, &e)),
                Some(Ok(chunk)) => {
                    if pass.accept(&chunk)? {
                        return Ok(());
                    }
                }
            }
        }
    };
    match until.run(platform, first).await {
        None => return Err(timeout(dep, until.ms)),
        Some(Ok(())) => {}
        // The provider ended (or failed) before any content: an error status, nothing was sent yet.
        Some(Err(e)) => return Err(e),
    }
    // What was checked so far is held by `pass`, and forwarded first.
    Ok(Response::event_stream(Box::pin(pass)))
}

fn empty_stream(dep: &Deployment) -> GatewayError {
    GatewayError::new(
        ErrorKind::Upstream,
        format!(
            "provider {} closed the stream without data",
            dep.provider.name
        ),
    )
    .with_code("upstream_empty_stream")
}

/// Decodes until the first canonical events exist (or the provider fails) before committing to a 200.
async fn translated_stream<P: Platform>(
    platform: &P,
    dep: &Deployment,
    until: Deadline,
    resp: UpstreamResponse,
    mut decoder: Decoder,
    mut encoder: crate::inbound::Encoder,
) -> Result<Response, GatewayError> {
    let mut body = resp.body;
    let mut events = Vec::new();
    let first = async {
        loop {
            match body.next().await {
                None => {
                    events.extend(decoder.end()?);
                    return Ok(true);
                }
                Some(Err(e)) => return Err(stream_failed(dep, &e)),
                Some(Ok(chunk)) => {
                    events.extend(decoder.push(&chunk)?);
                    // Committed on the first content, not on the provider's opening message.
                    if events
                        .iter()
                        .any(|e| !matches!(e, StreamEvent::Start { .. }))
                    {
                        return Ok(false);
                    }
                }
            }
        }
    };
    let ended = match until.run(platform, first).await {
        None => return Err(timeout(dep, until.ms)),
        Some(r) => r?,
    };
    if events.is_empty() {
        return Err(GatewayError::new(
            ErrorKind::Upstream,
            format!(
                "provider {} closed the stream without data",
                dep.provider.name
            ),
        )
        .with_code("upstream_empty_stream"));
    }
    let mut pending = Vec::new();
    encoder.encode_all(&events, &mut pending);
    if ended {
        encoder.finish(&mut pending);
        let mut r = Response::event_stream(Box::pin(stream::empty()));
        r.body = Body::Bytes(pending);
        return Ok(r);
    }
    Ok(Response::event_stream(Box::pin(Translate::new(
        body, decoder, encoder, pending,
    ))))
}

fn stream_failed(dep: &Deployment, e: &StreamError) -> GatewayError {
    GatewayError::new(
        ErrorKind::Upstream,
        format!("provider {} stream failed: {e}", dep.provider.name),
    )
    .with_code("upstream_stream_error")
}

fn annotate(resp: &mut Response, dep: &Deployment, attempts: usize, loc: &Location) {
    resp.headers.insert("x-meridian-deployment", dep.id());
    resp.headers.insert("x-meridian-region", dep.region.clone());
    resp.headers
        .insert("x-meridian-attempts", attempts.to_string());
    resp.headers.insert(
        "x-meridian-colo",
        loc.colo.clone().unwrap_or_else(|| "unknown".into()),
    );
}

fn timeout(dep: &Deployment, ms: u64) -> GatewayError {
    GatewayError::new(
        ErrorKind::Timeout,
        format!(
            "provider {} did not answer within {ms} ms",
            dep.provider.name
        ),
    )
    .with_code("upstream_timeout")
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
}

#[cfg(test)]
mod tests;
