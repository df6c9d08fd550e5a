//! The pure core: one request in, one response out, with all platform access through [`Platform`].

use crate::auth::authenticate;
use crate::config::{Config, ConfigError, Deployment, ProviderKind};
use crate::error::{ErrorKind, GatewayError};
use crate::http::{Body, ByteStream, Method, Request, Response, StreamError};
use crate::inbound::openai::{self, ChatRequest};
use crate::passthrough::SsePassthrough;
use crate::platform::{Platform, UpstreamResponse};
use crate::providers::openai_compat;
use core::future::Future;
use core::pin::pin;
use futures_util::future::{select, Either};
use futures_util::{stream, StreamExt};

/// Largest provider error body read before giving up on it.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Largest non-streaming provider answer passed through.
const MAX_RESPONSE_BODY: usize = 32 * 1024 * 1024;

pub async fn handle<P: Platform>(
    config: Result<&Config, &ConfigError>,
    platform: &P,
    req: Request,
) -> Response {
    let result = match config {
        Ok(config) => route(config, platform, req).await,
        Err(e) => {
            Err(GatewayError::new(ErrorKind::Internal, e.to_string()).with_code("invalid_config"))
        }
    };
    result.unwrap_or_else(|e| error_response(&e))
}

fn error_response(e: &GatewayError) -> Response {
    let mut r = Response::json(e.status, openai::error_body(e));
    if let Some(s) = &e.retry_after {
        r.headers.insert("retry-after", s.clone());
    }
    r
}

async fn route<P: Platform>(
    config: &Config,
    platform: &P,
    req: Request,
) -> Result<Response, GatewayError> {
    match (req.method, req.path.as_str()) {
        (Method::Get | Method::Head, "/healthz") => {
            Ok(Response::json(200, br#"{"status":"ok"}"#.to_vec()))
        }
        (Method::Get, "/v1/models") => {
            authenticate(config, &req.headers)?;
            Ok(Response::json(200, openai::models_list(config)))
        }
        (Method::Post, "/v1/chat/completions") => {
            authenticate(config, &req.headers)?;
            let chat = openai::parse_chat(&req.body)?;
            chat_completions(config, platform, chat).await
        }
        (_, "/healthz" | "/v1/models" | "/v1/chat/completions") => Err(GatewayError::new(
            ErrorKind::MethodNotAllowed,
            format!(
                "method {} is not allowed on {}",
                req.method.as_str(),
                req.path
            ),
        )),
        (_, path) => Err(
            GatewayError::new(ErrorKind::NotFound, format!("no route for {path}"))
                .with_code("not_found"),
        ),
    }
}

async fn chat_completions<P: Platform>(
    config: &Config,
    platform: &P,
    chat: ChatRequest,
) -> Result<Response, GatewayError> {
    let model = config.model(&chat.model).ok_or_else(|| {
        GatewayError::new(
            ErrorKind::NotFound,
            format!(
                "model `{}` does not exist; GET /v1/models lists the models served here",
                chat.model
            ),
        )
        .with_code("model_not_found")
    })?;
    let dep = model.primary();
    let api_key = match &dep.provider.api_key_secret {
        None => None,
        Some(name) => Some(platform.secret(name).ok_or_else(|| {
            GatewayError::new(
                ErrorKind::Internal,
                format!(
                    "provider {}: worker secret {name} is not set",
                    dep.provider.name
                ),
            )
            .with_code("missing_provider_key")
        })?),
    };
    let upstream = match dep.provider.kind {
        ProviderKind::OpenAi => openai_compat::chat_request(dep, &chat, api_key.as_deref()),
    };

    let first_byte = config.timeouts.first_byte_ms;
    let resp = match deadline(platform, first_byte, platform.fetch(upstream)).await {
        None => return Err(timeout(dep, first_byte)),
        Some(Err(e)) => {
            return Err(GatewayError::new(
                ErrorKind::Upstream,
                format!("could not reach provider {}: {e}", dep.provider.name),
            )
            .with_code("upstream_unreachable"))
        }
        Some(Ok(r)) => r,
    };

    if !(200..300).contains(&resp.status) {
        let UpstreamResponse {
            status,
            headers,
            body,
        } = resp;
        let body = deadline(platform, first_byte, read_all(body, MAX_ERROR_BODY))
            .await
            .and_then(Result::ok)
            .unwrap_or_default();
        return Err(match dep.provider.kind {
            ProviderKind::OpenAi => {
                openai_compat::upstream_error(dep, status, &headers, &body, api_key.as_deref())
            }
        });
    }

    let mut out = if chat.stream {
        let mut body = resp.body;
        // Wait for the first chunk before committing to a 200, so a provider that fails before producing
        // anything is still reported as an error status.
        let first = match deadline(platform, first_byte, body.next()).await {
            None => return Err(timeout(dep, first_byte)),
            Some(None) => {
                return Err(GatewayError::new(
                    ErrorKind::Upstream,
                    format!(
                        "provider {} closed the stream without data",
                        dep.provider.name
                    ),
                )
                .with_code("upstream_empty_stream"))
            }
            Some(Some(Err(e))) => {
                return Err(GatewayError::new(
                    ErrorKind::Upstream,
                    format!("provider {} stream failed: {e}", dep.provider.name),
                )
                .with_code("upstream_stream_error"))
            }
            Some(Some(Ok(first))) => first,
        };
        let joined: ByteStream = Box::pin(stream::once(async move { Ok(first) }).chain(body));
        Response::event_stream(Box::pin(SsePassthrough::new(joined)))
    } else {
        let total = config.timeouts.total_ms;
        let body = match deadline(platform, total, read_all(resp.body, MAX_RESPONSE_BODY)).await {
            None => return Err(timeout(dep, total)),
            Some(Err(e)) => {
                return Err(GatewayError::new(
                    ErrorKind::Upstream,
                    format!("provider {} response failed: {e}", dep.provider.name),
                )
                .with_code("upstream_body_error"))
            }
            Some(Ok(b)) => b,
        };
        Response::json(200, body)
    };
    annotate(&mut out, dep);
    Ok(out)
}

fn annotate(resp: &mut Response, dep: &Deployment) {
    resp.headers.insert("x-meridian-deployment", dep.id());
    resp.headers.insert("x-meridian-region", dep.region.clone());
    resp.headers.insert("x-meridian-attempts", "1");
}

fn timeout(dep: &Deployment, ms: u64) -> GatewayError {
    GatewayError::new(
        ErrorKind::Timeout,
        format!(
            "provider {} did not answer within {ms} ms",
            dep.provider.name
        ),
    )
    .with_code("upstream_timeout")
}

/// `Some(output)` if `fut` finishes within `ms`, `None` otherwise.
async fn deadline<P: Platform, F: Future>(platform: &P, ms: u64, fut: F) -> Option<F::Output> {
    let fut = pin!(fut);
    let timer = pin!(platform.sleep(ms));
    match select(fut, timer).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(_) => None,
    }
}

async fn read_all(mut body: ByteStream, limit: usize) -> Result<Vec<u8>, StreamError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > limit {
            return Err(StreamError(format!("body larger than {limit} bytes")));
        }
        if out.is_empty() {
            out = chunk;
        } else {
            out.extend_from_slice(&chunk);
        }
    }
    Ok(out)
}

impl Body {
    /// Collects the whole body; for tests and small bodies.
    pub async fn collect(self) -> Result<Vec<u8>, StreamError> {
        match self {
            Body::Empty => Ok(Vec::new()),
            Body::Bytes(b) => Ok(b),
            Body::Stream(s) => read_all(s, usize::MAX).await,
        }
    }
}

#[cfg(test)]
mod tests;
