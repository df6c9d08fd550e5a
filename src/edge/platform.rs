//! [`Platform`] on the Workers runtime, through the `worker` crate: fetch with an abort signal, KV, secrets,
//! timers, `ctx.wait_until` and the rate-limit Durable Object.

use super::lease_query::LeaseQuery;
use crate::http::{Headers, StreamError};
use crate::platform::{
    deadline, Background, BodyFailure, Clock, FetchError, KvWriter, LeaseAsk, LedgerWriter, Logger,
    NoResponse, Platform, RateLeaser, RateSpender, ShadowAsk, Timer, UpstreamRequest,
    UpstreamResponse, WholeResponse,
};
use crate::ratelimit::Decision;
use futures_util::StreamExt;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::web_sys;
use worker::{AbortController, Context, Delay, Env};

/// Optional Workers KV namespace: routing estimates and cached answers persist there.
const KV_BINDING: &str = "MERIDIAN_KV";
/// Durable Object namespace of [`super::RateLimiter`], required only when keys have rate limits.
const LIMITER_BINDING: &str = "MERIDIAN_LIMITER";

/// Optional Workers Analytics Engine dataset: one data point per request (`crate::analytics`).
const ANALYTICS_BINDING: &str = "MERIDIAN_ANALYTICS";

/// Durable Object namespace of [`super::SpendLedger`]: the spend ledger and budgets, one object per key.
const LEDGER_BINDING: &str = "MERIDIAN_LEDGER";

thread_local! {
    static LEDGER_MISSING_SAID: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The ledger object of key `key`, by name.
fn ledger(env: &Env, key: &str) -> Result<worker::Stub, String> {
    let ns = env
        .durable_object(LEDGER_BINDING)
        .map_err(|_| format!("the {LEDGER_BINDING} Durable Object binding is missing"))?;
    ns.get_by_name(key).map_err(message)
}

/// A slice from a key's object (a limiter's window or a ledger's budget): `GET https://<host>/lease?…`.
async fn lease(
    stub: worker::Stub,
    host: &str,
    ask: &LeaseAsk,
) -> Result<crate::ratelimit::Grant, String> {
    let query = match host {
        "ledger" => LeaseQuery::for_ledger(ask),
        _ => LeaseQuery::for_limiter(ask),
    };
    get_json(
        &stub,
        &format!("https://{host}/lease?{}", query.encode()),
        host,
    )
    .await
}

/// A key object's JSON answer to `url`; any status but 200 is an error naming `who` and saying why.
async fn get_json<T: serde::de::DeserializeOwned>(
    stub: &worker::Stub,
    url: &str,
    who: &str,
) -> Result<T, String> {
    let mut answer = stub.fetch_with_str(url).await.map_err(message)?;
    if answer.status_code() != 200 {
        let why = answer.text().await.unwrap_or_default();
        return Err(format!(
            "the {who} answered {}: {why}",
            answer.status_code()
        ));
    }
    answer.json().await.map_err(message)
}

/// `GET https://ledger/<route>?<query>` of a key's ledger object (named), its JSON answer read as `T`.
async fn ledger_get<T: serde::de::DeserializeOwned>(
    env: &Env,
    name: &str,
    route: &str,
    query: &impl serde::Serialize,
) -> Result<T, String> {
    let stub = ledger(env, name)?;
    let query = serde_urlencoded::to_string(query).map_err(|e| e.to_string())?;
    get_json(&stub, &format!("https://ledger/{route}?{query}"), "ledger").await
}

/// Test-only: milliseconds added before every call to a limiter object, so that tests and benchmarks on one
/// machine can show what an object far away would cost (README: "Rate limits decided at the edge"). Never set in
/// production.
const LIMITER_DELAY_VAR: &str = "MERIDIAN_TEST_LIMITER_DELAY_MS";

/// The configured test delay, if any (at most ten seconds).
fn limiter_delay(env: &Env) -> u64 {
    env.var(LIMITER_DELAY_VAR)
        .ok()
        .and_then(|v| v.to_string().parse::<u64>().ok())
        .map_or(0, |ms| ms.min(10_000))
}

/// Waits the test delay before a call to a limiter object.
async fn distance(env: &Env) {
    let ms = limiter_delay(env);
    if ms > 0 {
        Delay::from(Duration::from_millis(ms)).await;
    }
}

pub struct EdgePlatform {
    env: Env,
    // Shared with background work and KV writes, which outlive the handler's borrow.
    ctx: Rc<Context>,
}

impl EdgePlatform {
    pub fn new(env: Env, ctx: Context) -> Self {
        EdgePlatform {
            env,
            ctx: Rc::new(ctx),
        }
    }

    fn kv(&self) -> Option<worker::kv::KvStore> {
        self.env.kv(KV_BINDING).ok()
    }
}

/// Aborts the provider request when dropped before being disarmed: a hedge that lost, or a client that went
/// away mid-stream, must not keep a provider generating tokens nobody reads. A request read to its end is not
/// aborted (there is nothing left to stop).
struct AbortOnDrop(Option<AbortController>);

impl AbortOnDrop {
    /// A fetch with a signal costs more in workerd, so there is a controller only when the request asks to be
    /// cancelled on drop; without one, an abandoned fetch ends with the client's request.
    fn new(cancel_on_drop: bool) -> Self {
        AbortOnDrop(cancel_on_drop.then(AbortController::default))
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.abort();
        }
    }
}

fn js_message(e: &JsValue) -> String {
    e.as_string()
        .or_else(|| {
            js_sys::Reflect::get(e, &JsValue::from_str("message"))
                .ok()
                .and_then(|m| m.as_string())
        })
        .unwrap_or_else(|| "unknown JavaScript error".to_owned())
}

fn message(e: worker::Error) -> String {
    match e {
        worker::Error::JsError(s) | worker::Error::RustError(s) => s,
        worker::Error::Internal(v) => js_message(&v),
        other => other.to_string(),
    }
}

/// The runtime's Headers for the core's. Err only if the runtime refuses a header, which the core's own checks
/// (src/http.rs) rule out.
pub(super) fn to_runtime_headers(headers: &Headers) -> Result<worker::Headers, String> {
    let out = worker::Headers::new();
    for (name, value) in headers.iter() {
        out.append(name, value).map_err(message)?;
    }
    Ok(out)
}

pub(super) fn from_runtime_headers(headers: &worker::Headers) -> Headers {
    let mut out = Headers::new();
    for (name, value) in headers.entries() {
        // The runtime only hands over valid header names and values.
        let _ = out.try_insert(&name, value);
    }
    out
}

/// The runtime's fetch, called through web-sys rather than `worker::Fetch`: that path builds a Request object
/// besides the init, reads the answer's `cf` and WebSocket, and keeps only the body stream, so a non-streamed
/// answer could only be read chunk by chunk (docs/performance.md has the measurement).
async fn send(req: &UpstreamRequest, guard: &AbortOnDrop) -> Result<web_sys::Response, FetchError> {
    let fail = |e: JsValue| FetchError(js_message(&e));
    let init = web_sys::RequestInit::new();
    init.set_method(req.method.as_str());
    init.set_headers(
        to_runtime_headers(&req.headers)
            .map_err(FetchError)?
            .0
            .as_ref(),
    );
    if !req.body.is_empty() {
        init.set_body(&js_sys::Uint8Array::from(req.body.as_slice()));
    }
    if let Some(c) = &guard.0 {
        init.set_signal(Some(&c.signal()));
    }
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let resp = JsFuture::from(global.fetch_with_str_and_init(&req.url, &init))
        .await
        .map_err(fail)?;
    resp.dyn_into().map_err(fail)
}

impl Platform for EdgePlatform {
    async fn fetch(&self, req: UpstreamRequest) -> Result<UpstreamResponse, FetchError> {
        let mut guard = AbortOnDrop::new(req.cancel_on_drop);
        let resp = send(&req, &guard).await?;
        let status = resp.status();
        let headers = from_runtime_headers(&worker::Headers(resp.headers()));
        let body = match resp.body() {
            // No body at all (e.g. 204): nothing left to stop.
            None => {
                guard.disarm();
                futures_util::stream::empty().boxed_local()
            }
            // Read through wasm-streams rather than the crate's body stream, which reports a reader that failed
            // with "aborted" as a clean end: a provider cut must stay an error.
            Some(raw) => {
                // The reader is cancelled when the stream is dropped before its end; the guard then aborts the
                // request too, if it asked to be. Read to its end, neither.
                let chunks =
                    wasm_streams::ReadableStream::from_raw(raw.unchecked_into()).into_stream();
                futures_util::stream::unfold(
                    (chunks, guard),
                    |(mut chunks, mut guard)| async move {
                        match chunks.next().await {
                            None => {
                                guard.disarm();
                                None
                            }
                            Some(Ok(v)) => Some((
                                Ok(v.unchecked_into::<js_sys::Uint8Array>().to_vec()),
                                (chunks, guard),
                            )),
                            Some(Err(e)) => {
                                Some((Err(StreamError(js_message(&e))), (chunks, guard)))
                            }
                        }
                    },
                )
                .boxed_local()
            }
        };
        Ok(UpstreamResponse {
            status,
            headers,
            body,
        })
    }

    /// The body in one read (the runtime's arrayBuffer) rather than chunk by chunk through a stream reader,
    /// whose per-chunk promises and lock release cost more than the rest of the exchange.
    async fn fetch_whole(
        &self,
        req: UpstreamRequest,
        first_byte_ms: u64,
        body_ms: u64,
        limit: usize,
    ) -> Result<WholeResponse, NoResponse> {
        let mut guard = AbortOnDrop::new(req.cancel_on_drop);
        let resp = match deadline(self, first_byte_ms, send(&req, &guard)).await {
            None => return Err(NoResponse::Timeout),
            Some(r) => r.map_err(NoResponse::Failed)?,
        };
        let status = resp.status();
        let headers = from_runtime_headers(&worker::Headers(resp.headers()));
        let body = match deadline(self, body_ms, array_buffer(resp.array_buffer())).await {
            None => Err(BodyFailure::Timeout),
            Some(Err(e)) => Err(BodyFailure::Failed(StreamError(js_message(&e)))),
            Some(Ok(b)) if b.len() > limit => Err(BodyFailure::Failed(StreamError(format!(
                "body larger than {limit} bytes"
            )))),
            Some(Ok(b)) => {
                guard.disarm();
                Ok(b)
            }
        };
        Ok(WholeResponse {
            status,
            headers,
            body,
        })
    }

    /// A secret is a string binding (`wrangler secret put`); anything else under that name is not one.
    fn secret(&self, name: &str) -> Option<String> {
        self.env.secret(name).ok().map(|s| s.to_string())
    }

    async fn sleep(&self, ms: u64) {
        Delay::from(Duration::from_millis(ms)).await
    }

    fn now_ms(&self) -> u64 {
        js_sys::Date::now() as u64
    }

    fn clock(&self) -> Clock {
        Rc::new(|| js_sys::Date::now() as u64)
    }

    fn logger(&self) -> Logger {
        Rc::new(|line: &str| worker::console_log!("{line}"))
    }

    /// A correction is not worth failing anything over: a limiter that cannot be reached is logged.
    fn rate_leaser(&self) -> RateLeaser {
        let env = self.env.clone();
        Rc::new(move |ask: LeaseAsk| {
            let env = env.clone();
            Box::pin(async move {
                distance(&env).await;
                let ns = env.durable_object(LIMITER_BINDING).map_err(|_| {
                    format!("the {LIMITER_BINDING} Durable Object binding is missing")
                })?;
                let stub = ns.get_by_name(&ask.key).map_err(message)?;
                lease(stub, "limiter", &ask).await
            })
        })
    }

    fn budget_leaser(&self) -> RateLeaser {
        let env = self.env.clone();
        Rc::new(move |ask: LeaseAsk| {
            let env = env.clone();
            Box::pin(async move {
                distance(&env).await;
                lease(ledger(&env, &ask.key)?, "ledger", &ask).await
            })
        })
    }

    fn analytics(&self) -> Option<crate::platform::AnalyticsWriter> {
        // Taken as it is, not through `Env::analytics_engine`, whose check of the class name refuses the local
        // runtime's simulated dataset (`LocalAnalyticsEngineDataset`): anything with `writeDataPoint` will do.
        let binding =
            js_sys::Reflect::get(self.env.as_ref(), &JsValue::from_str(ANALYTICS_BINDING)).ok()?;
        if binding.is_undefined() || binding.is_null() {
            return None;
        }
        let dataset: worker::AnalyticsEngineDataset = binding.unchecked_into();
        Some(Rc::new(move |p: &crate::analytics::DataPoint| {
            let written = worker::AnalyticsEngineDataPointBuilder::new()
                .indexes([p.index.as_str()])
                .blobs(p.blobs.iter().map(String::as_str))
                .doubles(p.doubles.iter().copied())
                .write_to(&dataset);
            if let Err(e) = written {
                worker::console_error!("meridian: analytics data point not written: {e}");
            }
        }))
    }

    /// A ledger that cannot be written is logged: the answer was already given.
    fn ledger_writer(&self) -> LedgerWriter {
        let env = self.env.clone();
        Rc::new(
            move |key: String, entries: Vec<(crate::ledger::Entry, crate::ledger::Reserved)>| {
                let env = env.clone();
                Box::pin(async move {
                    // A gateway deployed without the ledger binding keeps no ledger (it has no budgets either: those
                    // refuse with `budget_unavailable`); it says so once per isolate.
                    if env.durable_object(LEDGER_BINDING).is_err() {
                        if !LEDGER_MISSING_SAID.with(|s| s.replace(true)) {
                            worker::console_log!(
                                "meridian: no {LEDGER_BINDING} binding: spend is not kept"
                            );
                        }
                        return;
                    }
                    let body: Vec<serde_json::Value> = entries
                        .into_iter()
                        .filter_map(|(entry, reserved)| {
                            Some(serde_json::json!({
                                "entry": serde_json::to_value(&entry).ok()?,
                                "reserved": serde_json::to_value(reserved).ok()?,
                            }))
                        })
                        .collect();
                    let body = serde_json::Value::Array(body);
                    let sent = async {
                        let stub = ledger(&env, &key)?;
                        let mut init = worker::RequestInit::new();
                        init.with_method(worker::Method::Post)
                            .with_body(Some(JsValue::from_str(&body.to_string())));
                        let req = worker::Request::new_with_init("https://ledger/record", &init)
                            .map_err(message)?;
                        let answer = stub.fetch_with_request(req).await.map_err(message)?;
                        match answer.status_code() {
                            200..=299 => Ok(()),
                            s => Err(format!("the ledger answered {s}")),
                        }
                    };
                    if let Err(e) = sent.await {
                        worker::console_error!("meridian: ledger write failed: {e}");
                    }
                })
            },
        )
    }

    async fn ledger_rows(
        &self,
        key: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<crate::ledger::Row>, String> {
        ledger_get(&self.env, key, "rows", &[("from", from), ("to", to)]).await
    }

    async fn shadow_reserve(&self, ledger_name: &str, ask: ShadowAsk) -> Result<bool, String> {
        #[derive(serde::Deserialize)]
        struct Granted {
            granted: bool,
        }
        let g: Granted = ledger_get(&self.env, ledger_name, "shadow", &ask).await?;
        Ok(g.granted)
    }

    async fn ledger_outcomes(
        &self,
        ledger_name: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<crate::shadow::StoredOutcome>, String> {
        ledger_get(
            &self.env,
            ledger_name,
            "outcomes",
            &[("from", from), ("to", to)],
        )
        .await
    }

    fn rate_spender(&self) -> RateSpender {
        let env = self.env.clone();
        Rc::new(move |key: String, window_ms: u64, delta: i64| {
            let env = env.clone();
            Box::pin(async move {
                let url = format!("https://limiter/spend?tokens={delta}&window_ms={window_ms}");
                distance(&env).await;
                let sent = match env.durable_object(LIMITER_BINDING) {
                    Ok(ns) => match ns.get_by_name(&key) {
                        Ok(stub) => match stub.fetch_with_str(&url).await {
                            Ok(answer) if answer.status_code() < 300 => Ok(()),
                            Ok(answer) => Err(worker::Error::RustError(format!(
                                "the rate limiter answered {}",
                                answer.status_code()
                            ))),
                            Err(e) => Err(e),
                        },
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                };
                if let Err(e) = sent {
                    worker::console_error!("meridian: budget correction failed: {e}");
                }
            })
        })
    }

    /// KV is an optimisation here (routing estimates, cached answers): a failing read is a miss.
    async fn kv_get(&self, key: &str) -> Option<String> {
        self.kv()?.get(key).text().await.ok().flatten()
    }

    async fn kv_delete(&self, key: &str) -> bool {
        match self.kv() {
            Some(kv) => kv.delete(key).await.is_ok(),
            None => false,
        }
    }

    async fn rate_check(
        &self,
        key: &str,
        window_ms: u64,
        rpm: Option<u32>,
        tpm: Option<u64>,
        tokens: u64,
    ) -> Result<(Decision, crate::ratelimit::Standing), String> {
        let mut url = format!("https://limiter/check?tokens={tokens}&window_ms={window_ms}");
        if let Some(r) = rpm {
            url.push_str(&format!("&rpm={r}"));
        }
        if let Some(t) = tpm {
            url.push_str(&format!("&tpm={t}"));
        }
        distance(&self.env).await;
        let ns = self
            .env
            .durable_object(LIMITER_BINDING)
            .map_err(|_| format!("the {LIMITER_BINDING} Durable Object binding is missing"))?;
        let stub = ns.get_by_name(key).map_err(message)?;
        let verdict: super::limiter::Verdict = get_json(&stub, &url, "rate limiter").await?;
        Ok(verdict.into())
    }

    fn timer(&self) -> Timer {
        Rc::new(|ms| Box::pin(Delay::from(Duration::from_millis(ms))))
    }

    fn background(&self) -> Background {
        let ctx = Rc::clone(&self.ctx);
        Rc::new(move |work| ctx.wait_until(work))
    }

    fn kv_writer(&self) -> KvWriter {
        let (env, ctx) = (self.kv().map(|_| self.env.clone()), Rc::clone(&self.ctx));
        Rc::new(
            move |key: String, value: String, ttl_s: u64, metadata: String| {
                let Some(env) = env.clone() else { return };
                ctx.wait_until(async move {
                    if let Err(e) = kv_put(&env, &key, &value, ttl_s, &metadata).await {
                        worker::console_error!("KV write failed: {e}");
                    }
                });
            },
        )
    }
}

/// A request's or response's body, from its `arrayBuffer()`, in one read.
pub(super) async fn array_buffer(
    started: Result<js_sys::Promise, JsValue>,
) -> Result<Vec<u8>, JsValue> {
    let buffer = JsFuture::from(started?).await?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// KV's own `put`, called directly: the crate's builder carries metadata as a `serde_json::Value`, whose numbers
/// under the arbitrary_precision feature do not reach JavaScript as numbers.
async fn kv_put(
    env: &Env,
    key: &str,
    value: &str,
    ttl_s: u64,
    metadata: &str,
) -> Result<(), String> {
    use js_sys::Reflect;
    let fail = |e: JsValue| js_message(&e);
    let kv = Reflect::get(env, &JsValue::from_str(KV_BINDING)).map_err(fail)?;
    let put: js_sys::Function = Reflect::get(&kv, &JsValue::from_str("put"))
        .map_err(fail)?
        .dyn_into()
        .map_err(|_| format!("{KV_BINDING} is not a KV namespace"))?;
    let options = js_sys::Object::new();
    Reflect::set(&options, &"expirationTtl".into(), &(ttl_s as f64).into()).map_err(fail)?;
    if !metadata.is_empty() {
        let parsed = js_sys::JSON::parse(metadata).map_err(fail)?;
        Reflect::set(&options, &"metadata".into(), &parsed).map_err(fail)?;
    }
    let written = put
        .call3(&kv, &key.into(), &value.into(), &options)
        .map_err(fail)?;
    JsFuture::from(js_sys::Promise::resolve(&written))
        .await
        .map(|_| ())
        .map_err(fail)
}
