//! The streaming engine shared by every dialect, and other small pieces of
//! wire plumbing (SSE framing, query strings, percent-decoding, truncated
//! non-stream bodies).
//!
//! A stream is three lists of ready-made byte chunks:
//!
//! - `prelude`: handed to hyper together with the response headers;
//! - `timed`: chunk *i* is written at `ttft_ms + i × token_gap_ms` after the
//!   headers (these are what `cut_after` counts);
//! - `tail`: written right after the last timed chunk (or at `ttft_ms` when
//!   there are no timed chunks).
//!
//! With `cut_after: N` the prelude and the first N timed chunks are sent and
//! then the connection is cut (no tail, no terminating zero-length chunk).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;
use tokio::time::Instant;

use crate::body::{abort_error, BodySender, MockBody};
use crate::dialect::RequestCtx;
use crate::knobs::Knobs;
use crate::region::sleep_ms;
use crate::respond;

pub(crate) const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
pub(crate) const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");

/// The chunks of one streamed response.
#[derive(Default)]
pub(crate) struct Events {
    pub prelude: Vec<Bytes>,
    pub timed: Vec<Bytes>,
    pub tail: Vec<Bytes>,
}

/// Timing and cutting knobs of a stream.
#[derive(Clone)]
pub(crate) struct Pacing {
    pub ttft_ms: u64,
    pub token_gap_ms: u64,
    pub cut_after: Option<usize>,
    pub malformed: bool,
    abandoned: Arc<AtomicU64>,
}

impl Pacing {
    pub fn from_ctx(ctx: &RequestCtx<'_>) -> Pacing {
        let k = ctx.knobs;
        Pacing {
            abandoned: ctx.abandoned.clone(),
            ttft_ms: k.ttft_ms.unwrap_or(0),
            token_gap_ms: k.token_gap_ms.unwrap_or(0),
            cut_after: k.cut_after.map(|n| n as usize),
            malformed: k.malformed_sse == Some(true),
        }
    }

    pub fn cut(&self) -> bool {
        self.cut_after.is_some()
    }
}

/// Starts a streamed 200 response with the given content type.
pub(crate) fn respond(
    events: Events,
    pacing: Pacing,
    content_type: HeaderValue,
) -> Response<MockBody> {
    let Events {
        prelude,
        timed,
        tail,
    } = events;
    let (tx, body) = MockBody::channel(prelude.len() + 8);
    for chunk in prelude {
        // The channel is fresh and has room for the whole prelude.
        let _ = tx.try_send(Ok(chunk));
    }
    tokio::spawn(produce(tx, timed, tail, pacing, Instant::now()));
    let mut resp = Response::new(body);
    resp.headers_mut().insert(CONTENT_TYPE, content_type);
    resp
}

/// Waits until `at` unless the client goes away first (returns false then).
async fn wait_until(tx: &BodySender, at: Instant) -> bool {
    if at <= Instant::now() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep_until(at) => true,
        _ = tx.closed() => false,
    }
}

async fn produce(
    tx: BodySender,
    timed: Vec<Bytes>,
    tail: Vec<Bytes>,
    pacing: Pacing,
    headers_at: Instant,
) {
    let first_at = headers_at + Duration::from_millis(pacing.ttft_ms);
    let gap = Duration::from_millis(pacing.token_gap_ms);
    let empty = timed.is_empty();
    for (i, chunk) in timed.into_iter().enumerate() {
        if pacing.cut_after.is_some_and(|n| i >= n) {
            let _ = tx.send(Err(abort_error())).await;
            return;
        }
        if !wait_until(&tx, first_at + gap * i as u32).await || tx.send(Ok(chunk)).await.is_err() {
            pacing.abandoned.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    if pacing.cut() {
        let _ = tx.send(Err(abort_error())).await;
        return;
    }
    // A stream without timed chunks still honours ttft before finishing.
    if empty && !wait_until(&tx, first_at).await {
        return;
    }
    for chunk in tail {
        if tx.send(Ok(chunk)).await.is_err() {
            return;
        }
    }
}

/// A complete (non-streamed) 200 JSON response after `ttft_ms`; with
/// `cut_after` set, `content-length` promises the full body but only the
/// first half is sent before the connection is closed.
pub(crate) async fn json_reply<T: Serialize + ?Sized>(
    knobs: &Knobs,
    value: &T,
) -> Response<MockBody> {
    sleep_ms(knobs.ttft_ms).await;
    let body = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
    if knobs.cut_after.is_some() {
        let full_len = body.len();
        let mut resp = Response::new(MockBody::truncated(body.slice(..full_len / 2)));
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, respond::JSON);
        headers.insert(CONTENT_LENGTH, HeaderValue::from(full_len));
        return resp;
    }
    respond::with_body(StatusCode::OK, respond::JSON, body)
}

/// One SSE event: optional `event: <name>` line, a `data: <json>` line and
/// the blank line (`sep` is `"\n\n"` or `"\r\n\r\n"`; with `\r\n` the line
/// break after the event name is `\r\n` as well).
pub(crate) fn sse<T: Serialize + ?Sized>(event: Option<&str>, data: &T, sep: &[u8]) -> Bytes {
    let mut buf = Vec::with_capacity(192);
    if let Some(name) = event {
        buf.extend_from_slice(b"event: ");
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(&sep[..sep.len() / 2]);
    }
    buf.extend_from_slice(b"data: ");
    if serde_json::to_writer(&mut buf, data).is_err() {
        buf.extend_from_slice(b"{}");
    }
    buf.extend_from_slice(sep);
    Bytes::from(buf)
}

/// Decodes `%XX` escapes (invalid escapes are kept as they are). The result
/// is UTF-8 with invalid sequences replaced.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    if !bytes.contains(&b'%') {
        return s.to_string();
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The percent-decoded value of the first `name=value` pair of a query
/// string, if present (`+` is not treated as a space).
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("anthropic.claude-3-haiku-20240307-v1%3A0"),
            "anthropic.claude-3-haiku-20240307-v1:0"
        );
        assert_eq!(percent_decode("a%2Fb%2f"), "a/b/");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%41"), "A");
    }

    #[test]
    fn query_params() {
        let q = Some("alt=sse&key=k%2B1&empty=&flag");
        assert_eq!(query_param(q, "alt").as_deref(), Some("sse"));
        assert_eq!(query_param(q, "key").as_deref(), Some("k+1"));
        assert_eq!(query_param(q, "empty").as_deref(), Some(""));
        assert_eq!(query_param(q, "flag").as_deref(), Some(""));
        assert_eq!(query_param(q, "nope"), None);
        assert_eq!(query_param(None, "alt"), None);
    }

    #[test]
    fn sse_framing() {
        let v = serde_json::json!({"a": 1});
        assert_eq!(&sse(None, &v, b"\n\n")[..], b"data: {\"a\":1}\n\n");
        assert_eq!(
            &sse(Some("ping"), &v, b"\n\n")[..],
            b"event: ping\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(&sse(None, &v, b"\r\n\r\n")[..], b"data: {\"a\":1}\r\n\r\n");
    }
}
