//! Workers runtime glue, compiled only for wasm32: converts requests and responses and implements
//! [`Platform`] with `fetch`, secrets and timers. Everything else lives in the core.

use crate::config::{Config, ConfigError};
use crate::gateway;
use crate::http::{Body, Headers, Method, Request, Response, StreamError};
use crate::platform::{FetchError, Platform, UpstreamRequest, UpstreamResponse};
use futures_util::{StreamExt, TryStreamExt};
use std::cell::OnceCell;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::JsValue;
use worker::{event, Context, Env};

const CONFIG_BINDING: &str = "MERIDIAN_CONFIG";

thread_local! {
    // Bindings cannot change within an isolate, so the configuration is parsed once.
    static CONFIG: OnceCell<Rc<Result<Config, ConfigError>>> = const { OnceCell::new() };
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
    _ctx: Context,
) -> worker::Result<worker::Response> {
    let config = config(&env);
    let core_req = Request {
        method: Method::parse(req.method().as_ref()),
        path: req.path(),
        headers: headers_from(req.headers()),
        body: req.bytes().await.unwrap_or_default(),
    };
    let platform = EdgePlatform { env };
    let resp = gateway::handle(config.as_ref().as_ref(), &platform, core_req).await;
    into_worker_response(resp)
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
        let mut resp = worker::Fetch::Request(request)
            .send()
            .await
            .map_err(|e| FetchError(e.to_string()))?;
        let status = resp.status_code();
        let headers = headers_from(resp.headers());
        let body = match resp.stream() {
            Ok(s) => s
                .map(|r| r.map_err(|e| StreamError(e.to_string())))
                .boxed_local(),
            // No body at all (e.g. 204).
            Err(_) => futures_util::stream::empty().boxed_local(),
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
}
