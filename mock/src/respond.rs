//! Small helpers to build responses.

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::body::MockBody;

pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json");
pub(crate) const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

pub(crate) fn with_body(
    status: StatusCode,
    content_type: HeaderValue,
    body: Bytes,
) -> Response<MockBody> {
    let mut resp = Response::new(MockBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, content_type);
    resp
}

pub(crate) fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<MockBody> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
    with_body(status, JSON, Bytes::from(body))
}

pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<MockBody> {
    with_body(status, TEXT, Bytes::from_static(body.as_bytes()))
}

pub(crate) fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
