//! The request path of a region: count, record, decide, delay, dispatch.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};

use std::sync::atomic::Ordering;

use crate::body::{abort_error, MockBody};
use crate::dialect::{Dialect, RequestCtx};
use crate::knobs::Knobs;
use crate::state::{Decision, LastRequest, RegionState};

pub(crate) const REGION_HEADER: HeaderName = HeaderName::from_static("x-mock-region");
const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
const MS_RETRY_AFTER_MS: HeaderName = HeaderName::from_static("x-ms-retry-after-ms");

pub(crate) async fn sleep_ms(ms: Option<u64>) {
    if let Some(ms) = ms.filter(|&ms| ms > 0) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

pub(crate) async fn handle(region: Arc<RegionState>, req: Request<Incoming>) -> Response<MockBody> {
    region.count_request();
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            let mut resp = Response::new(MockBody::empty());
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            return resp;
        }
    };
    let path = parts.uri.path();
    region.record(LastRequest {
        method: parts.method.clone(),
        path: path.to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let (mut knobs, decision) = region.decide();
    if decision == Decision::Normal {
        // Tail latency and jitter: extra time to first content.
        let extra = region.extra_ttft_ms(&knobs);
        if extra > 0 {
            let mut k = (*knobs).clone();
            k.ttft_ms = Some(k.ttft_ms.unwrap_or(0).saturating_add(extra));
            knobs = Arc::new(k);
        }
    }
    if region.log_requests {
        eprintln!(
            "meridian-mock: [{}] {} {} -> {:?} (ttft {} ms)",
            region.name,
            parts.method,
            path,
            decision,
            knobs.ttft_ms.unwrap_or(0)
        );
    }
    let dialect = Dialect::for_path(path);
    let mut resp = match decision {
        Decision::Hang => {
            // Never answer; the future is dropped when the client goes away
            // or the server shuts down.
            std::future::pending::<()>().await;
            unreachable!()
        }
        Decision::Fault(status) => {
            sleep_ms(knobs.header_delay_ms).await;
            let mut resp = dialect.fault_response(status, knobs.error_body.as_deref());
            let headers = resp.headers_mut();
            if let Some(ra) = &knobs.retry_after {
                if let Ok(v) = HeaderValue::from_str(&ra.header_value()) {
                    headers.insert(RETRY_AFTER, v);
                }
            }
            if let Some(ms) = knobs.retry_after_ms {
                headers.insert(RETRY_AFTER_MS, HeaderValue::from(ms));
                headers.insert(MS_RETRY_AFTER_MS, HeaderValue::from(ms));
            }
            add_headers(&mut resp, knobs.error_headers.as_ref());
            resp
        }
        Decision::Normal if knobs.raw_chunks.is_some() => {
            sleep_ms(knobs.header_delay_ms).await;
            raw_chunks(&knobs, &region)
        }
        Decision::Normal if knobs.raw_body.is_some() => {
            sleep_ms(knobs.header_delay_ms).await;
            let body = knobs.raw_body.clone().unwrap_or_default();
            let mut resp = Response::new(MockBody::full(body));
            resp.headers_mut()
                .insert(hyper::header::CONTENT_TYPE, raw_content_type(&knobs));
            add_headers(&mut resp, knobs.raw_headers.as_ref());
            resp
        }
        Decision::Normal => {
            sleep_ms(knobs.header_delay_ms).await;
            let ctx = RequestCtx {
                method: &parts.method,
                path,
                query: parts.uri.query(),
                headers: &parts.headers,
                body: &body,
                knobs: &knobs,
                abandoned: &region.abandoned,
                prompt_cache: &region.prompt_cache,
            };
            dialect.handle(&ctx).await
        }
    };
    resp.headers_mut()
        .insert(REGION_HEADER, region.header_value.clone());
    resp
}

fn raw_content_type(knobs: &Knobs) -> HeaderValue {
    knobs
        .raw_content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static("text/event-stream"))
}

/// Streams the `raw_chunks` pieces one write each; the channel holds one piece, so a client that reads
/// slowly holds the mock back and `raw_bytes_sent` shows how far the client has really read.
fn raw_chunks(knobs: &Knobs, region: &Arc<RegionState>) -> Response<MockBody> {
    let chunks = knobs.raw_chunks.clone().unwrap_or_default();
    let cut = knobs.raw_cut == Some(true);
    let (tx, body) = MockBody::channel(1);
    let sent = region.raw_bytes_sent.clone();
    let abandoned = region.abandoned.clone();
    tokio::spawn(async move {
        for chunk in &chunks {
            let data = bytes::Bytes::from(chunk.data());
            for i in 0..chunk.repeat.unwrap_or(1) {
                if i == 0 {
                    sleep_ms(chunk.delay_ms).await;
                }
                if tx.send(Ok(data.clone())).await.is_err() {
                    abandoned.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                sent.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        if cut {
            let _ = tx.send(Err(abort_error())).await;
        }
    });
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, raw_content_type(knobs));
    add_headers(&mut resp, knobs.raw_headers.as_ref());
    resp
}

/// Headers a knob adds (validated when the knob was set), overriding defaults such as `content-type`.
fn add_headers(
    resp: &mut Response<MockBody>,
    extra: Option<&std::collections::BTreeMap<String, String>>,
) {
    for (name, value) in extra.into_iter().flatten() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            resp.headers_mut().insert(n, v);
        }
    }
}
