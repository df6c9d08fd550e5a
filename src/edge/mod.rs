//! Workers runtime glue, compiled only for wasm32: converts requests and responses and implements
//! [`Platform`] with `fetch`, secrets and timers. Everything else lives in the core.

use crate::config::{Config, ConfigError};
use crate::gateway::{self, State};
use crate::http::{Body, Headers, Method, Request, Response, StreamError};
use crate::platform::{FetchError, KvWriter, Platform, Timer, UpstreamRequest, UpstreamResponse};
use crate::routing::Location;
use futures_util::{StreamExt, TryStreamExt};
use std::cell::OnceCell;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::JsValue;
use worker::{event, Context, Env};

const CONFIG_BINDING: &str = "MERIDIAN_CONFIG";
/// Optional Workers KV namespace: routing estimates persist there per edge location.
const KV_BINDING: &str = "MERIDIAN_KV";
/// Durable Object namespace of [`limiter::RateLimiter`], required only when keys have rate limits.
const LIMITER_BINDING: &str = "MERIDIAN_LIMITER";

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
                worker::console_error!("{e}");
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

#[event(fetch)]
async fn fetch(
    mut req: worker::Request,
    env: Env,
    ctx: Context,
) -> worker::Result<worker::Response> {
    let config = config(&env);
    let location = location_of(&req);
    let core_req = Request {
        method: Method::parse(req.method().as_ref()),
        path: req.path(),
        headers: headers_from(req.headers()),
        body: req.bytes().await.unwrap_or_default(),
        location,
    };
    let state = STATE.with(Rc::clone);
    let platform = EdgePlatform {
        env,
        ctx: Rc::new(ctx),
    };
    let resp = gateway::handle(config.as_ref().as_ref(), &platform, &state, core_req).await;
    into_worker_response(resp)
}

/// `request.cf`, read field by field: the runtime's typed accessors panic on a missing colo or an odd
/// coordinate, and any client can reach a worker without `cf` (local runtimes, some test setups).
fn location_of(req: &worker::Request) -> Location {
    let get = |obj: &JsValue, key: &str| {
        js_sys::Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    };
    let cf = get(req.inner(), "cf");
    if !cf.is_object() {
        return Location::default();
    }
    let number = |key: &str| {
        let v = get(&cf, key);
        v.as_f64()
            .or_else(|| v.as_string().and_then(|s| s.trim().parse().ok()))
            .filter(|x: &f64| x.is_finite())
    };
    Location {
        colo: get(&cf, "colo").as_string().filter(|c| {
            !c.is_empty() && c.len() <= 8 && c.bytes().all(|b| b.is_ascii_alphanumeric())
        }),
        lat_lon: match (number("latitude"), number("longitude")) {
            (Some(a), Some(b)) if a.abs() <= 90.0 && b.abs() <= 180.0 => Some((a, b)),
            _ => None,
        },
    }
}

fn headers_from(h: &worker::Headers) -> Headers {
    h.entries().collect()
}

fn into_worker_response(resp: Response) -> worker::Result<worker::Response> {
    let headers = worker::Headers::new();
    for (n, v) in resp.headers.iter() {
        headers.append(n, v)?;
    }
    let out = match resp.body {
        Body::Empty => worker::Response::empty()?,
        Body::Bytes(b) => worker::Response::from_body(worker::ResponseBody::Body(b))?,
        Body::Stream(s) => {
            worker::Response::from_stream(s.map_err(|e| worker::Error::RustError(e.0)))?
        }
    };
    Ok(out.with_status(resp.status).with_headers(headers))
}

struct EdgePlatform {
    env: Env,
    ctx: Rc<Context>,
}

/// Aborts the provider request when dropped before being disarmed: a hedge that lost, or a client that went
/// away mid-stream, must not keep a provider generating tokens nobody reads.
struct AbortOnDrop(Option<worker::AbortController>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.abort();
        }
    }
}

impl Platform for EdgePlatform {
    async fn fetch(&self, req: UpstreamRequest) -> Result<UpstreamResponse, FetchError> {
        let headers = worker::Headers::new();
        for (n, v) in req.headers.iter() {
            headers
                .append(n, v)
                .map_err(|e| FetchError(e.to_string()))?;
        }
        let mut init = worker::RequestInit::new();
        init.with_method(match req.method {
            Method::Get => worker::Method::Get,
            Method::Head => worker::Method::Head,
            Method::Options => worker::Method::Options,
            Method::Post | Method::Other => worker::Method::Post,
        })
        .with_headers(headers);
        if !req.body.is_empty() {
            init.with_body(Some(js_sys::Uint8Array::from(req.body.as_slice()).into()));
        }
        let request = worker::Request::new_with_init(&req.url, &init)
            .map_err(|e| FetchError(e.to_string()))?;
        let guard = AbortOnDrop(Some(worker::AbortController::default()));
        let signal = guard.0.as_ref().map(|c| c.signal());
        let fetch = worker::Fetch::Request(request);
        let mut resp = match &signal {
            Some(signal) => fetch.send_with_signal(signal).await,
            None => fetch.send().await,
        }
        .map_err(|e| FetchError(e.to_string()))?;
        let status = resp.status_code();
        let headers = headers_from(resp.headers());
        let body = if req.stream {
            match resp.stream() {
                Ok(s) => s
                    .map(move |r| {
                        // The guard lives as long as the body is being read.
                        let _alive = &guard;
                        r.map_err(|e| StreamError(e.to_string()))
                    })
                    .boxed_local(),
                // No body at all (e.g. 204).
                Err(_) => futures_util::stream::empty().boxed_local(),
            }
        } else {
            // One ArrayBuffer read instead of a JS/wasm crossing per network chunk; still lazy, so the core's
            // whole-answer deadline applies to it.
            futures_util::stream::once(async move {
                let _alive = guard;
                resp.bytes().await.map_err(|e| StreamError(e.to_string()))
            })
            .boxed_local()
        };
        Ok(UpstreamResponse {
            status,
            headers,
            body,
        })
    }

    fn secret(&self, name: &str) -> Option<String> {
        self.env.secret(name).ok().map(|s| s.to_string())
    }

    async fn sleep(&self, ms: u64) {
        worker::Delay::from(Duration::from_millis(ms)).await
    }

    fn now_ms(&self) -> u64 {
        js_sys::Date::now() as u64
    }

    async fn kv_get(&self, key: &str) -> Option<String> {
        let kv = self.env.kv(KV_BINDING).ok()?;
        kv.get(key).text().await.ok().flatten()
    }

    async fn rate_check(
        &self,
        key: &str,
        window_ms: u64,
        rpm: Option<u32>,
        tpm: Option<u64>,
        tokens: u64,
    ) -> Result<crate::ratelimit::Decision, String> {
        let ns = self
            .env
            .durable_object(LIMITER_BINDING)
            .map_err(|_| format!("the {LIMITER_BINDING} Durable Object binding is missing"))?;
        let stub = ns
            .id_from_name(key)
            .and_then(|id| id.get_stub())
            .map_err(|e| e.to_string())?;
        let mut url = format!("https://limiter/check?tokens={tokens}&window_ms={window_ms}");
        if let Some(r) = rpm {
            url.push_str(&format!("&rpm={r}"));
        }
        if let Some(t) = tpm {
            url.push_str(&format!("&tpm={t}"));
        }
        let mut resp = stub.fetch_with_str(&url).await.map_err(|e| e.to_string())?;
        let v: serde_json::Value =
            serde_json::from_str(&resp.text().await.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        Ok(if v["allowed"].as_bool() == Some(true) {
            crate::ratelimit::Decision::Allowed
        } else {
            crate::ratelimit::Decision::Limited {
                retry_after_s: v["retry_after_s"].as_u64().unwrap_or(1),
            }
        })
    }

    fn timer(&self) -> Timer {
        Rc::new(|ms| Box::pin(worker::Delay::from(Duration::from_millis(ms))))
    }

    fn kv_writer(&self) -> KvWriter {
        let kv = self.env.kv(KV_BINDING).ok();
        let ctx = self.ctx.clone();
        Rc::new(
            move |key: String, value: String, ttl_s: u64, metadata: String| {
                let Some(kv) = kv.clone() else { return };
                ctx.wait_until(async move {
                    let put = kv.put(&key, value).map(|p| p.expiration_ttl(ttl_s));
                    let put = match serde_json::from_str::<serde_json::Value>(&metadata) {
                        Ok(m) if !metadata.is_empty() => put.and_then(|p| p.metadata(m)),
                        _ => put,
                    };
                    let result = match put {
                        Ok(put) => put.execute().await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    if let Err(e) = result {
                        worker::console_error!("KV write failed: {e}");
                    }
                });
            },
        )
    }
}
