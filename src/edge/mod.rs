//! Workers runtime glue, compiled only for wasm32: the `#[event(fetch)]` entry converts the runtime's request into
//! the core's, hands it to [`gateway::handle`], and converts the answer back. [`platform::EdgePlatform`] gives the
//! core fetch, KV, secrets, timers and the rate-limit Durable Object through the `worker` crate. Everything else
//! lives in the core, tested on the host.

use crate::config::{Config, ConfigError};
use crate::gateway::{self, State};
use crate::http::{Body, Method, Request, Response};
use crate::routing::Location;
use futures_util::TryStreamExt;
use std::cell::{Cell, OnceCell};
use std::rc::Rc;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::worker_sys::web_sys;
use worker::{event, Context, Env};

mod lease_query;
mod ledger;
mod limiter;
mod platform;

const CONFIG_BINDING: &str = "MERIDIAN_CONFIG";

thread_local! {
    // Bindings cannot change within an isolate, so the configuration is parsed once.
    static CONFIG: OnceCell<Rc<Result<Rc<Config>, ConfigError>>> = const { OnceCell::new() };
    // What this isolate has learned about its providers, shared by all requests it serves.
    static STATE: Rc<State> = Rc::new(State::new(js_sys::Date::now().to_bits() ^ (js_sys::Math::random().to_bits() << 1)));
    // An isolate runs in one data centre: its location is read from the first request that carries one
    // (`request.cf` is rebuilt from its serialized form on every access, which costs more than the rest of the
    // conversion together).
    static LOCATION: OnceCell<Location> = const { OnceCell::new() };
    static PANIC_NET: Cell<bool> = const { Cell::new(false) };
}

/// panic.js: the net under a panic (see that file for why it is JavaScript).
#[wasm_bindgen(module = "/src/edge/panic.js")]
extern "C" {
    fn panicked();
}

/// The request is taken as the runtime's own object rather than `worker::Request`, whose conversion reads
/// `request.cf` on every request (docs/performance.md has the measurement).
#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> worker::Result<worker::Response> {
    install_panic_net();
    let config = config(&env);
    let core_req = from_runtime(req).await;
    let state = STATE.with(Rc::clone);
    let platform = Rc::new(platform::EdgePlatform::new(env, ctx));
    let resp = gateway::handle(config.as_ref().as_ref(), &platform, &state, core_req).await;
    Ok(into_runtime(resp))
}

/// The `worker` crate's start hook logs a panic and schedules a fresh instance; this one, chained after it,
/// also fails every answer still owed (panic.js), since a panic traps the instance inside a microtask and the
/// promise of a request that was waiting would otherwise never settle.
fn install_panic_net() {
    if PANIC_NET.with(|p| p.replace(true)) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        panicked();
    }));
}

fn config(env: &Env) -> Rc<Result<Rc<Config>, ConfigError>> {
    CONFIG.with(|cell| {
        cell.get_or_init(|| {
            let parsed = read_config(env)
                .and_then(|json| Config::parse(&json))
                .map(Rc::new);
            if let Err(e) = &parsed {
                worker::console_error!("{e}");
            }
            Rc::new(parsed)
        })
        .clone()
    })
}

/// `MERIDIAN_CONFIG` is either a table in `wrangler.toml` (an object here) or a JSON string. The object is read
/// back as JSON text: Config::parse reports errors by path on that text.
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

async fn from_runtime(raw: web_sys::Request) -> Request {
    let url = raw.url();
    let location = LOCATION.with(|cell| match cell.get() {
        Some(l) => l.clone(),
        None => {
            let l = location_of(&raw);
            if l.colo.is_some() || l.lat_lon.is_some() {
                let _ = cell.set(l.clone());
            }
            l
        }
    });
    let headers = platform::from_runtime_headers(&worker::Headers(raw.headers()));
    let method = Method::parse(raw.method().as_str());
    // A body the client fails to send arrives as empty, and is refused as invalid JSON.
    let body = match method {
        Method::Get | Method::Options => Vec::new(),
        _ => platform::array_buffer(raw.array_buffer())
            .await
            .unwrap_or_default(),
    };
    Request {
        method,
        path: crate::http::path_of(&url).to_owned(),
        query: crate::http::query_of(&url).to_owned(),
        headers,
        body,
        location,
    }
}

/// `request.cf`'s colo and coordinates. Read by hand: the crate's accessors unwrap what a client may leave out.
fn location_of(raw: &web_sys::Request) -> Location {
    let cf = js_sys::Reflect::get(raw, &JsValue::from_str("cf")).unwrap_or(JsValue::UNDEFINED);
    if !cf.is_object() {
        return Location::default();
    }
    let field = |name: &str| {
        let v = js_sys::Reflect::get(&cf, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED);
        v.as_string()
            .or_else(|| v.as_f64().map(|n| n.to_string()))
            .unwrap_or_default()
    };
    Location::from_fields(&field("colo"), &field("latitude"), &field("longitude"))
}

/// The core's answer as the runtime's. A streamed body becomes a pull-driven ReadableStream: the runtime asks
/// for the next chunk only when its queue is empty, so a slow reader holds the provider back (through our reads
/// of its body) instead of the isolate buffering the whole answer, and a client that goes away cancels the
/// stream, which drops the provider's.
fn into_runtime(resp: Response) -> worker::Response {
    // The core only builds valid headers (src/http.rs); should one still be refused, the caller gets a JSON 500
    // that both dialects' SDKs can read.
    let headers = match platform::to_runtime_headers(&resp.headers) {
        Ok(h) => h,
        Err(e) => {
            worker::console_error!("meridian: could not build a response: {e}");
            return internal_error();
        }
    };
    let builder = worker::ResponseBuilder::new()
        .with_status(resp.status)
        .with_headers(headers);
    match resp.body {
        Body::Empty => builder.empty(),
        Body::Bytes(b) => builder.fixed(b),
        Body::Stream(s) => builder
            .from_stream(s.map_err(|e| worker::Error::RustError(e.0)))
            .unwrap_or_else(|_| internal_error()),
    }
}

fn internal_error() -> worker::Response {
    let headers = worker::Headers::new();
    let _ = headers.set("content-type", "application/json");
    worker::ResponseBuilder::new()
        .with_status(500)
        .with_headers(headers)
        .fixed(INTERNAL_ERROR.as_bytes().to_vec())
}

/// Readable by both dialects' SDKs.
const INTERNAL_ERROR: &str = r#"{"type":"error","error":{"type":"api_error","message":"internal error in the gateway; the request was not completed","param":null,"code":"internal_error"}}"#;
