//! Azure OpenAI dialect: `POST …/openai/deployments/{deployment}/chat/completions?api-version=…`.
//!
//! Bodies and responses are the OpenAI ones (see `openai.rs`); the response
//! `model` is the deployment name, and `api-version` is required.

use bytes::Bytes;
use hyper::{Method, Response, StatusCode};
use serde::Serialize;

use crate::body::MockBody;
use crate::dialect::RequestCtx;
use crate::openai;
use crate::respond;
use crate::stream::{percent_decode, query_param};

const PREFIX: &str = "/openai/deployments/";
const SUFFIX: &str = "/chat/completions";
const EMBEDDINGS: &str = "/embeddings";

/// The (raw) deployment segment of an Azure chat completions path.
pub(crate) fn deployment_of(path: &str) -> Option<&str> {
    let start = path.find(PREFIX)? + PREFIX.len();
    let deployment = path[start..]
        .strip_suffix(SUFFIX)
        .or_else(|| path[start..].strip_suffix(EMBEDDINGS))?;
    (!deployment.is_empty() && !deployment.contains('/')).then_some(deployment)
}

#[derive(Serialize)]
struct AzureError<'a> {
    error: AzureErrorBody<'a>,
}

#[derive(Serialize)]
struct AzureErrorBody<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
}

fn error_json(code: &str, message: &str, kind: Option<&str>) -> Bytes {
    let v = AzureError {
        error: AzureErrorBody {
            code,
            message,
            kind,
        },
    };
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response<MockBody> {
    respond::with_body(status, respond::JSON, error_json(code, message, None))
}

/// `{"error":{"code":"<status>","message":"mock fault: status N","type":…}}`:
/// Azure's `code` + `message`, plus the OpenAI `type`.
pub(crate) fn fault_response(status: u16, error_body: Option<Bytes>) -> Response<MockBody> {
    let body = error_body.unwrap_or_else(|| {
        error_json(
            &status.to_string(),
            &format!("mock fault: status {status}"),
            Some(openai::fault_type(status)),
        )
    });
    respond::with_body(respond::status_code(status), respond::JSON, body)
}

pub(crate) async fn handle(ctx: &RequestCtx<'_>) -> Response<MockBody> {
    let Some(raw) = deployment_of(ctx.path) else {
        return error_response(StatusCode::NOT_FOUND, "404", "Resource not found");
    };
    if ctx.method != Method::POST {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("Method {} not allowed for {}", ctx.method, ctx.path),
        );
    }
    if query_param(ctx.query, "api-version").is_none_or(|v| v.is_empty()) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    }
    let deployment = percent_decode(raw);
    if ctx.path.ends_with(EMBEDDINGS) {
        return openai::embeddings(ctx, Some(&deployment));
    }
    openai::chat(ctx, Some(&deployment)).await
}
