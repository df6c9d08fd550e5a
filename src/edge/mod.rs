//! Workers runtime glue, compiled only for wasm32: converts requests and responses and implements
//! [`Platform`] with `fetch`, secrets and timers. Everything else lives in the core.
//!
//! It talks to the runtime through wasm-bindgen, js-sys and its own shim.js only: a full Workers binding crate
//! brought per-binding classes, conversions and a second executor into the wasm and the glue, paid in every cold
//! start and in the upload.

use crate::config::{Config, ConfigError};
use crate::gateway::{self, State};
use crate::http::{Body, Headers, Method, Request, Response, StreamError};
use crate::platform::{
    Background, BodyFailure, FetchError, KvWriter, NoResponse, Platform, Timer, UpstreamRequest,
    UpstreamResponse, WholeResponse,
};
use crate::routing::Location;
use futures_util::StreamExt;
use std::cell::OnceCell;
use std::rc::Rc;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

/// The worker's `env`: bindings by name.
type Env = JsValue;

const CONFIG_BINDING: &str = "MERIDIAN_CONFIG";
/// Optional Workers KV namespace: routing estimates persist there per edge location.
const KV_BINDING: &str = "MERIDIAN_KV";
/// Durable Object namespace of [`limiter::RateLimiter`], required only when keys have rate limits.
const LIMITER_BINDING: &str = "MERIDIAN_LIMITER";

mod executor;
mod limiter;

thread_local! {
    // Bindings cannot change within an isolate, so the configuration is parsed once.
    static CONFIG: OnceCell<Rc<Result<Config, ConfigError>>> = const { OnceCell::new() };
    // What this isolate has learned about its providers, shared by all requests it serves.
    static STATE: Rc<State> = Rc::new(State::new(js_sys::Date::now().to_bits() ^ (js_sys::Math::random().to_bits() << 1)));
}

fn config(env: &Env) -> Rc<Result<Config, ConfigError>> {
    CONFIG.with(|cell| {
        cell.get_or_init(|| {
            let parsed = read_config(env).and_then(|json| Config::parse(&json));
            if let Err(e) = &parsed {
                js::log_error(&e.to_string());
            }
            Rc::new(parsed)
        })
        .clone()
    })
}

/// `MERIDIAN_CONFIG` is either a table in `wrangler.toml` (an object here) or a JSON string.
fn read_config(env: &Env) -> Result<String, ConfigError> {
    let value =
        js_sys::Reflect::get(env, &JsValue::from_str(CONFIG_BINDING)).unwrap_or(JsValue::UNDEFINED);
    if let Some(s) = value.as_string() {
        return Ok(s);
    }
    if value.is_object() {
        if let Some(s) = js_sys::JSON::stringify(&value)
            .ok()
            .and_then(|s| s.as_string())
        {
            return Ok(s);
        }
    }
    Err(ConfigError(format!(
        "the {CONFIG_BINDING} binding is missing; define it under [vars] in wrangler.toml"
    )))
}

/// The JavaScript half of the glue (shim.js): one crossing per platform step instead of one per header or field.
pub mod js {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen(module = "/src/edge/shim.js")]
    extern "C" {
        /// worker/entry.mjs's `{ request, body }`.
        pub type IncomingRequest;
        #[wasm_bindgen(js_name = requestHead)]
        pub fn request_head(req: &IncomingRequest) -> String;
        #[wasm_bindgen(js_name = requestBody)]
        pub fn request_body(req: &IncomingRequest) -> js_sys::Uint8Array;
        pub fn send(
            url: &str,
            method: &str,
            headers: &str,
            body: &[u8],
            controller: &JsValue,
        ) -> js_sys::Promise;
        #[wasm_bindgen(js_name = responseHead)]
        pub fn response_head(resp: &JsValue) -> String;
        /// A reader of the body, or None for no body.
        #[wasm_bindgen(js_name = responseReader)]
        pub fn response_reader(resp: &JsValue) -> JsValue;
        /// Reports the next chunk (a Uint8Array, or null at the end) to the executor as `slot`.
        #[wasm_bindgen(js_name = readChunk)]
        pub fn read_chunk(reader: &JsValue, slot: u32);
        #[wasm_bindgen(js_name = cancelReader)]
        pub fn cancel_reader(reader: &JsValue);
        #[wasm_bindgen(js_name = respondBytes)]
        pub fn respond_bytes(status: u16, headers: &str, body: &[u8]) -> JsValue;
        /// A response whose body task `id` pushes chunks into.
        #[wasm_bindgen(js_name = respondPushed)]
        pub fn respond_pushed(status: u16, headers: &str, id: u32) -> JsValue;
        /// 0 when the body no longer takes chunks (its reader is gone), 1 when it takes more, 2 when it is full.
        #[wasm_bindgen(js_name = pushChunk)]
        pub fn push_chunk(id: u32, chunk: &[u8]) -> u8;
        /// Reports `slot` to the executor once body `id` has room again.
        #[wasm_bindgen(js_name = whenDrained)]
        pub fn when_drained(id: u32, slot: u32);
        #[wasm_bindgen(js_name = failStream)]
        pub fn fail_stream(id: u32, message: &str);
        #[wasm_bindgen(js_name = endStream)]
        pub fn end_stream(id: u32);
        #[wasm_bindgen(js_name = respondEmpty)]
        pub fn respond_empty(status: u16, headers: &str) -> JsValue;
        #[allow(clippy::too_many_arguments)]
        pub fn exchange(
            url: &str,
            method: &str,
            headers: &str,
            body: &[u8],
            controller: &JsValue,
            first_byte_ms: f64,
            body_ms: f64,
            limit: f64,
        ) -> js_sys::Promise;
        /// What `exchange` resolves to.
        pub type Exchange;
        #[wasm_bindgen(method, getter)]
        pub fn kind(this: &Exchange) -> u8;
        #[wasm_bindgen(method, getter)]
        pub fn head(this: &Exchange) -> String;
        #[wasm_bindgen(method, getter)]
        pub fn bytes(this: &Exchange) -> Option<js_sys::Uint8Array>;
        #[wasm_bindgen(method, getter)]
        pub fn message(this: &Exchange) -> Option<String>;

        // The executor's half (executor.rs).
        pub fn register(settle: &JsValue, poll: &JsValue, cancel: &JsValue);
        pub fn schedule();
        pub fn watch(promise: &js_sys::Promise, slot: u32);
        pub fn deferred(id: u32) -> js_sys::Promise;
        pub fn finish(id: u32, response: &JsValue);
        pub fn abandon(id: u32);
        /// The text stored under `key` in KV namespace `binding`, or null (also without the binding).
        #[wasm_bindgen(js_name = kvGet)]
        pub fn kv_get(env: &JsValue, binding: &str, key: &str) -> js_sys::Promise;
        /// A KV write kept alive past the response with `ctx.waitUntil`; `metadata` is JSON or empty.
        #[wasm_bindgen(js_name = kvPut)]
        pub fn kv_put(
            env: &JsValue,
            ctx: &JsValue,
            binding: &str,
            key: &str,
            value: &str,
            ttl_s: f64,
            metadata: &str,
        );
        /// A new AbortController.
        #[wasm_bindgen(js_name = abortController)]
        pub fn abort_controller() -> JsValue;
        /// `controller.abort()`, never throwing (the request it belongs to may be gone).
        #[wasm_bindgen(js_name = abortQuietly)]
        pub fn abort_quietly(controller: &JsValue);
        /// Reports `slot` to the executor after `ms` milliseconds; returns the timer, for `cancelSleep`.
        pub fn sleep(ms: f64, slot: u32) -> JsValue;
        #[wasm_bindgen(js_name = cancelSleep)]
        pub fn cancel_sleep(timer: &JsValue);
        /// The rate-limit Durable Object named `name` in namespace `binding` asked for `url`: its body text.
        #[wasm_bindgen(js_name = limiterCheck)]
        pub fn limiter_check(
            env: &JsValue,
            binding: &str,
            name: &str,
            url: &str,
        ) -> js_sys::Promise;
        /// `ctx.waitUntil` a promise that `finish(id, …)` settles.
        #[wasm_bindgen(js_name = waitForTask)]
        pub fn wait_for_task(ctx: &JsValue, id: u32);
        #[wasm_bindgen(js_name = logError)]
        pub fn log_error(message: &str);
        /// Fails every answer and body still owed: the instance is about to trap.
        pub fn panicked();
    }
}

/// The gateway's entry point. worker/entry.mjs calls the static `Gateway.fetch({ request, body }, env, ctx)`:
/// a static method of an exported class is reached directly, where an `#[event(fetch)]` handler is called
/// through the bundle's per-request proxy objects (about 6% of throughput in `make profile`'s A/B mode).
/// It answers with the response, or with a promise of it when the request has to wait (executor.rs).
#[wasm_bindgen]
pub struct Gateway {}

#[wasm_bindgen]
impl Gateway {
    pub fn fetch(req: js::IncomingRequest, env: Env, ctx: JsValue) -> JsValue {
        let config = config(&env);
        let max_ms = match config.as_ref() {
            Ok(c) => lifetime_ms(c),
            Err(_) => LIFETIME_MARGIN_MS as f64,
        };
        executor::start(handle(req, config, env, ctx), max_ms)
    }
}

/// Beyond its deadlines, what a request may spend on KV reads and rate-limit checks.
const LIFETIME_MARGIN_MS: u64 = 60_000;

/// The longest a request can wait for its answer under `config`: failover stops starting attempts after the
/// overall deadline, and the last attempt may take its first-byte and whole-answer times.
fn lifetime_ms(config: &Config) -> f64 {
    let t = &config.timeouts;
    t.first_byte_ms
        .saturating_add(t.total_ms.saturating_mul(2))
        .saturating_add(LIFETIME_MARGIN_MS) as f64
}

async fn handle(
    req: js::IncomingRequest,
    config: Rc<Result<Config, ConfigError>>,
    env: Env,
    ctx: JsValue,
) -> JsValue {
    let head = js::request_head(&req);
    let mut lines = head.split('\n');
    let mut next = || lines.next().unwrap_or_default();
    let method = Method::parse(next());
    let path = next().to_owned();
    let location = location_from(next(), next(), next());
    let headers = Headers::decode_lines(lines);
    let body = js::request_body(&req).to_vec();
    let core_req = Request {
        method,
        path,
        headers,
        body,
        location,
    };
    let state = STATE.with(Rc::clone);
    let platform = EdgePlatform { env, ctx };
    let resp = gateway::handle(config.as_ref().as_ref(), &platform, &state, core_req).await;
    into_js_response(resp)
}

/// `request.cf`'s colo and coordinates, checked: any client can reach a worker without `cf` (local runtimes, some
/// test setups), and a colo becomes part of a KV key.
fn location_from(colo: &str, lat: &str, lon: &str) -> Location {
    let number = |s: &str| s.trim().parse::<f64>().ok().filter(|x| x.is_finite());
    Location {
        colo: Some(colo)
            .filter(|c| {
                !c.is_empty() && c.len() <= 8 && c.bytes().all(|b| b.is_ascii_alphanumeric())
            })
            .map(str::to_owned),
        lat_lon: match (number(lat), number(lon)) {
            (Some(a), Some(b)) if a.abs() <= 90.0 && b.abs() <= 180.0 => Some((a, b)),
            _ => None,
        },
    }
}

/// A thrown JavaScript value as text: an Error's message, a string as is.
fn js_message(e: &JsValue) -> String {
    e.as_string()
        .or_else(|| {
            js_sys::Reflect::get(e, &JsValue::from_str("message"))
                .ok()
                .and_then(|m| m.as_string())
        })
        .unwrap_or_else(|| "unknown JavaScript error".to_owned())
}

/// shim.js's responseHead: "status\n" and the header lines.
fn status_and_headers(head: &str) -> (u16, Headers) {
    let mut lines = head.split('\n');
    let status = lines.next().and_then(|s| s.parse().ok()).unwrap_or(502);
    (status, Headers::decode_lines(lines))
}

fn into_js_response(resp: Response) -> JsValue {
    let headers = resp.headers.encode_lines();
    match resp.body {
        Body::Empty => js::respond_empty(resp.status, &headers),
        Body::Bytes(b) => js::respond_bytes(resp.status, &headers, &b),
        Body::Stream(mut s) => {
            // A task pushes each chunk into the response's stream as it is produced, waiting while the stream
            // holds its high-water mark; the client going away cancels the stream, and the shim then drops the
            // task (and with it the provider's stream).
            let id = executor::spawn(async move {
                let id = executor::current();
                while let Some(item) = s.next().await {
                    match item.map(|chunk| js::push_chunk(id, &chunk)) {
                        // Nobody reads any more: dropping the stream stops the provider.
                        Ok(0) => return,
                        // The reader is behind: wait for it rather than read the provider on.
                        Ok(2) => {
                            let _ = executor::wait_slot(|slot| js::when_drained(id, slot)).await;
                        }
                        Ok(_) => {}
                        Err(e) => return js::fail_stream(id, &e.0),
                    }
                }
                js::end_stream(id);
            });
            js::respond_pushed(resp.status, &headers, id)
        }
    }
}

/// A provider's body being read. Dropped before its end (the client went away, a hedge lost), the read is
/// cancelled, and the guard aborts the request if it asked to be; read to its end, neither.
struct Reader {
    reader: JsValue,
    done: bool,
    guard: AbortOnDrop,
}

impl Drop for Reader {
    fn drop(&mut self) {
        if !self.done {
            js::cancel_reader(&self.reader);
        }
    }
}

struct EdgePlatform {
    env: Env,
    ctx: JsValue,
}

/// Aborts the provider request when dropped before being disarmed: a hedge that lost, or a client that went
/// away mid-stream, must not keep a provider generating tokens nobody reads. A request that finished is not
/// aborted (an abort is not free, and there is nothing left to stop).
struct AbortOnDrop(Option<JsValue>);

impl AbortOnDrop {
    /// A fetch with a signal costs measurably more in workerd, so there is a controller only when the request
    /// asks to be cancelled on drop; without one, an abandoned fetch is cancelled by the runtime when the
    /// client's request ends.
    fn new(cancel_on_drop: bool) -> Self {
        AbortOnDrop(cancel_on_drop.then(js::abort_controller))
    }

    /// What shim.js's send and exchange take: the controller, or undefined.
    fn controller(&self) -> &JsValue {
        const NONE: &JsValue = &JsValue::UNDEFINED;
        self.0.as_ref().unwrap_or(NONE)
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            js::abort_quietly(&c);
        }
    }
}

impl Platform for EdgePlatform {
    async fn fetch(&self, req: UpstreamRequest) -> Result<UpstreamResponse, FetchError> {
        let guard = AbortOnDrop::new(req.cancel_on_drop);
        let sent = js::send(
            &req.url,
            req.method.as_str(),
            &req.headers.encode_lines(),
            &req.body,
            guard.controller(),
        );
        let resp = executor::wait(&sent)
            .await
            .map_err(|e| FetchError(js_message(&e)))?;
        let (status, headers) = status_and_headers(&js::response_head(&resp));
        // Read as it arrives (answers read whole go through `fetch_whole`).
        let reader = js::response_reader(&resp);
        let body = match (!reader.is_null()).then_some(reader) {
            Some(reader) => {
                let reader = Reader {
                    reader,
                    done: false,
                    guard,
                };
                futures_util::stream::unfold(reader, |mut r| async move {
                    if r.done {
                        return None;
                    }
                    let item =
                        match executor::wait_slot(|slot| js::read_chunk(&r.reader, slot)).await {
                            Ok(v) if v.is_null() => {
                                // Ended: dropped without cancelling or aborting (an abort is not free, and there
                                // is nothing left to stop).
                                r.done = true;
                                r.guard.disarm();
                                drop(r);
                                return None;
                            }
                            Ok(v) => Ok(v.unchecked_into::<js_sys::Uint8Array>().to_vec()),
                            Err(e) => {
                                r.done = true;
                                Err(StreamError(js_message(&e)))
                            }
                        };
                    Some((item, r))
                })
                .boxed_local()
            }
            // No body at all (e.g. 204).
            None => futures_util::stream::empty().boxed_local(),
        };
        Ok(UpstreamResponse {
            status,
            headers,
            body,
        })
    }

    async fn fetch_whole(
        &self,
        req: UpstreamRequest,
        first_byte_ms: u64,
        body_ms: u64,
        limit: usize,
    ) -> Result<WholeResponse, NoResponse> {
        // Dropped (a hedge that lost) or timed out: the provider request is cancelled, if it may be.
        let mut guard = AbortOnDrop::new(req.cancel_on_drop);
        let sent = js::exchange(
            &req.url,
            req.method.as_str(),
            &req.headers.encode_lines(),
            &req.body,
            guard.controller(),
            first_byte_ms as f64,
            body_ms as f64,
            limit as f64,
        );
        let out: js::Exchange = executor::wait(&sent)
            .await
            .map_err(|e| NoResponse::Failed(FetchError(js_message(&e))))?
            .unchecked_into();
        let kind = out.kind();
        if kind != 1 && kind != 3 {
            guard.disarm();
        }
        let failed = || out.message().unwrap_or_else(|| "unknown failure".into());
        let body = match kind {
            0 => Ok(out.bytes().map(|b| b.to_vec()).unwrap_or_default()),
            1 => return Err(NoResponse::Timeout),
            2 => return Err(NoResponse::Failed(FetchError(failed()))),
            3 => Err(BodyFailure::Timeout),
            _ => Err(BodyFailure::Failed(StreamError(failed()))),
        };
        let (status, headers) = status_and_headers(&out.head());
        Ok(WholeResponse {
            status,
            headers,
            body,
        })
    }

    /// A secret is a string binding (`wrangler secret put`); anything else under that name is not one.
    fn secret(&self, name: &str) -> Option<String> {
        js_sys::Reflect::get(&self.env, &JsValue::from_str(name))
            .ok()?
            .as_string()
    }

    async fn sleep(&self, ms: u64) {
        sleep(ms).await
    }

    fn now_ms(&self) -> u64 {
        js_sys::Date::now() as u64
    }

    async fn kv_get(&self, key: &str) -> Option<String> {
        executor::wait(&js::kv_get(&self.env, KV_BINDING, key))
            .await
            .ok()?
            .as_string()
    }

    async fn rate_check(
        &self,
        key: &str,
        window_ms: u64,
        rpm: Option<u32>,
        tpm: Option<u64>,
        tokens: u64,
    ) -> Result<crate::ratelimit::Decision, String> {
        let mut url = format!("https://limiter/check?tokens={tokens}&window_ms={window_ms}");
        if let Some(r) = rpm {
            url.push_str(&format!("&rpm={r}"));
        }
        if let Some(t) = tpm {
            url.push_str(&format!("&tpm={t}"));
        }
        let text = executor::wait(&js::limiter_check(&self.env, LIMITER_BINDING, key, &url))
            .await
            .map_err(|e| js_message(&e))?
            .as_string()
            .unwrap_or_default();
        let v = serde_json::from_str::<serde_json::Value>(&text).map_err(|e| e.to_string())?;
        Ok(if v["allowed"].as_bool() == Some(true) {
            crate::ratelimit::Decision::Allowed
        } else {
            crate::ratelimit::Decision::Limited {
                retry_after_s: v["retry_after_s"].as_u64().unwrap_or(1),
            }
        })
    }

    fn timer(&self) -> Timer {
        Rc::new(|ms| Box::pin(sleep(ms)))
    }

    fn background(&self) -> Background {
        let ctx = self.ctx.clone();
        Rc::new(move |work| {
            let id = executor::spawn(async move {
                work.await;
                js::finish(executor::current(), &JsValue::UNDEFINED);
            });
            js::wait_for_task(&ctx, id);
        })
    }

    fn kv_writer(&self) -> KvWriter {
        let (env, ctx) = (self.env.clone(), self.ctx.clone());
        Rc::new(
            move |key: String, value: String, ttl_s: u64, metadata: String| {
                js::kv_put(
                    &env,
                    &ctx,
                    KV_BINDING,
                    &key,
                    &value,
                    ttl_s as f64,
                    &metadata,
                );
            },
        )
    }
}

/// A timer in the executor: one JavaScript timer reporting to a slot. Dropped before it fires (the deadline it
/// guarded was met), its JavaScript timer is cleared rather than left pending for the rest of the request.
async fn sleep(ms: u64) {
    struct Pending(Option<JsValue>);
    impl Drop for Pending {
        fn drop(&mut self) {
            if let Some(timer) = &self.0 {
                js::cancel_sleep(timer);
            }
        }
    }
    let mut pending = Pending(None);
    // A timer only ever reports success.
    let _ = executor::wait_slot(|slot| pending.0 = Some(js::sleep(ms as f64, slot))).await;
    pending.0 = None;
}

/// A panic leaves the instance unusable (panics abort): the shim fails what is still owed to callers, and the
/// next call into the wasm starts a fresh instance (wasm-bindgen's abort handler schedules it).
#[wasm_bindgen(start, private)]
fn start() {
    std::panic::set_hook(Box::new(|info| {
        js::log_error(&format!("Rust panic: {info}"));
        js::panicked();
    }));
    wasm_bindgen::handler::set_on_abort(wasm_bindgen::handler::schedule_reinit);
}
