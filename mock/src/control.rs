//! Control API: stats, knob changes, reset, health.

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::body::MockBody;
use crate::knobs::Knobs;
use crate::respond;
use crate::state::MockState;

fn error(status: StatusCode, message: &str) -> Response<MockBody> {
    respond::json(status, &json!({"error": message}))
}

async fn read_object(body: Incoming) -> Result<Map<String, Value>, Response<MockBody>> {
    let bytes = body
        .collect()
        .await
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("cannot read body: {e}")))?
        .to_bytes();
    let text = if bytes.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        &bytes[..]
    };
    match serde_json::from_slice::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "body must be a JSON object of knobs",
        )),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("invalid JSON: {e}"),
        )),
    }
}

pub(crate) async fn handle(state: Arc<MockState>, req: Request<Incoming>) -> Response<MockBody> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let method = &parts.method;
    match (method, path) {
        (&Method::GET, "/_mock/health") => respond::text(StatusCode::OK, "ok"),
        (&Method::GET, "/_mock/stats") => respond::json(StatusCode::OK, &state.stats_json()),
        (&Method::POST, "/_mock/reset") => {
            state.reset();
            respond::json(StatusCode::OK, &json!({"ok": true}))
        }
        (&Method::GET, "/_mock/regions") => {
            let all: Map<String, Value> = state
                .regions
                .iter()
                .map(|(name, r)| (name.clone(), r.knobs().to_json()))
                .collect();
            respond::json(StatusCode::OK, &json!({"regions": all}))
        }
        _ => {
            let Some(name) = path.strip_prefix("/_mock/regions/") else {
                return error(
                    StatusCode::NOT_FOUND,
                    &format!("unknown control path {path}"),
                );
            };
            let Some(region) = state.regions.get(name) else {
                return error(StatusCode::NOT_FOUND, &format!("unknown region {name:?}"));
            };
            let result = match *method {
                Method::GET => Ok(region.knobs()),
                Method::POST => match read_object(body).await {
                    Ok(patch) => region.merge_knobs(patch),
                    Err(resp) => return resp,
                },
                Method::PUT => match read_object(body).await {
                    Ok(map) => Knobs::from_json_map(map).map(|k| {
                        region.set_knobs(k);
                        region.knobs()
                    }),
                    Err(resp) => return resp,
                },
                _ => {
                    return error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "use GET, POST (merge) or PUT (replace)",
                    )
                }
            };
            match result {
                Ok(knobs) => respond::json(StatusCode::OK, &knobs.to_json()),
                Err(msg) => error(StatusCode::BAD_REQUEST, &msg),
            }
        }
    }
}
