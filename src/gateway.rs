//! The pure core: one request in, one response out, with all platform access through [`Platform`].

use crate::auth::authenticate;
use crate::canonical;
use crate::config::{Config, ConfigError, Deployment, Provider, ProviderKind};
use crate::error::{ErrorKind, GatewayError};
use crate::http::{Body, ByteStream, Method, Request, Response, StreamError};
use crate::inbound::{anthropic, openai, Dialect};
use crate::passthrough::SsePassthrough;
use crate::platform::{Platform, UpstreamResponse};
use crate::providers::bedrock::sigv4;
use crate::providers::errors::upstream_error;
use crate::providers::{self, openai_compat, Credentials, Decoder};
use crate::translate::Translate;
use core::future::Future;
use core::pin::pin;
use futures_util::future::{select, Either};
use futures_util::{stream, StreamExt};

/// Largest provider error body read before giving up on it.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Largest non-streaming provider answer accepted.
const MAX_RESPONSE_BODY: usize = 32 * 1024 * 1024;

pub async fn handle<P: Platform>(
    config: Result<&Config, &ConfigError>,
    platform: &P,
    req: Request,
) -> Response {
    let dialect = dialect_for(&req.path);
    let result = match config {
        Ok(config) => route(config, platform, dialect, req).await,
        Err(e) => {
            Err(GatewayError::new(ErrorKind::Internal, e.to_string()).with_code("invalid_config"))
        }
    };
    result.unwrap_or_else(|e| error_response(dialect, &e))
}

/// Errors are answered in the dialect of the endpoint the client called, even before its body is read.
fn dialect_for(path: &str) -> Dialect {
    if path == "/v1/messages" {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    }
}

fn error_response(dialect: Dialect, e: &GatewayError) -> Response {
    let mut r = Response::json(e.status, dialect.error_body(e));
    if let Some(s) = &e.retry_after {
        r.headers.insert("retry-after", s.clone());
    }
    r
}

async fn route<P: Platform>(
    config: &Config,
    platform: &P,
    dialect: Dialect,
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
            complete(config, platform, Inbound::OpenAi(chat)).await
        }
        (Method::Post, "/v1/messages") => {
            authenticate(config, &req.headers)?;
            let chat = anthropic::parse_request(&req.body)?;
            complete(
                config,
                platform,
                Inbound::Canonical(dialect, Box::new(chat)),
            )
            .await
        }
        (_, "/healthz" | "/v1/models" | "/v1/chat/completions" | "/v1/messages") => {
            Err(GatewayError::new(
                ErrorKind::MethodNotAllowed,
                format!(
                    "method {} is not allowed on {}",
                    req.method.as_str(),
                    req.path
                ),
            ))
        }
        (_, path) => Err(
            GatewayError::new(ErrorKind::NotFound, format!("no route for {path}"))
                .with_code("not_found"),
        ),
    }
}

/// A chat request as it arrived: OpenAI-dialect bodies stay raw so they can pass through untouched.
enum Inbound {
    OpenAi(openai::ChatRequest),
    Canonical(Dialect, Box<canonical::ChatRequest>),
}

impl Inbound {
    fn model(&self) -> &str {
        match self {
            Inbound::OpenAi(c) => &c.model,
            Inbound::Canonical(_, c) => &c.model,
        }
    }

    fn stream(&self) -> bool {
        match self {
            Inbound::OpenAi(c) => c.stream,
            Inbound::Canonical(_, c) => c.stream,
        }
    }

    fn dialect(&self) -> Dialect {
        match self {
            Inbound::OpenAi(_) => Dialect::OpenAi,
            Inbound::Canonical(d, _) => *d,
        }
    }

    fn into_canonical(self) -> Result<canonical::ChatRequest, GatewayError> {
        match self {
            Inbound::OpenAi(c) => c.to_canonical(),
            Inbound::Canonical(_, c) => Ok(*c),
        }
    }
}

/// A configured alias, or `provider/model` to address a configured provider directly.
fn resolve(config: &Config, name: &str) -> Result<Deployment, GatewayError> {
    if let Some(model) = config.model(name) {
        return Ok(model.primary().clone());
    }
    if let Some((provider, model)) = name.split_once('/') {
        if let (Some(p), false) = (config.provider(provider), model.is_empty()) {
            return Ok(Deployment {
                provider: p.clone(),
                model: model.to_owned(),
                region: p.region.clone(),
            });
        }
    }
    Err(GatewayError::new(
        ErrorKind::NotFound,
        format!("model `{name}` does not exist; GET /v1/models lists the models served here"),
    )
    .with_code("model_not_found"))
}

fn credentials<P: Platform>(
    provider: &Provider,
    platform: &P,
) -> Result<Credentials, GatewayError> {
    let secret = |name: &str| {
        platform.secret(name).ok_or_else(|| {
            GatewayError::new(
                ErrorKind::Internal,
                format!(
                    "provider {}: worker secret {name} is not set",
                    provider.name
                ),
            )
            .with_code("missing_provider_key")
        })
    };
    Ok(match &provider.kind {
        ProviderKind::Bedrock {
            credentials: names, ..
        } => Credentials::Aws(sigv4::Credentials {
            access_key_id: secret(&names.access_key_id)?,
            secret_access_key: secret(&names.secret_access_key)?,
            session_token: names.session_token.as_deref().map(secret).transpose()?,
        }),
        _ => match &provider.api_key_secret {
            Some(name) => Credentials::ApiKey(secret(name)?),
            None => Credentials::None,
        },
    })
}

async fn complete<P: Platform>(
    config: &Config,
    platform: &P,
    inbound: Inbound,
) -> Result<Response, GatewayError> {
    let dep = resolve(config, inbound.model())?;
    let creds = credentials(&dep.provider, platform)?;
    let now_ms = platform.now_ms();
    let (dialect, stream) = (inbound.dialect(), inbound.stream());
    let (upstream, canonical) = match inbound {
        // Same wire format both sides: forward the client's bytes, no translation.
        Inbound::OpenAi(chat) if dep.provider.kind.is_openai_wire() => (
            openai_compat::passthrough_request(&dep, &chat, &creds),
            None,
        ),
        inbound => {
            let c = inbound.into_canonical()?;
            (providers::build_request(&dep, &c, &creds, now_ms)?, Some(c))
        }
    };

    let first_byte = config.timeouts.first_byte_ms;
    let resp = match deadline(platform, first_byte, platform.fetch(upstream)).await {
        None => return Err(timeout(&dep, first_byte)),
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
        return Err(upstream_error(&dep, status, &headers, &body, &creds));
    }

    let mut out = match canonical {
        None if stream => passthrough_stream(platform, &dep, first_byte, resp).await?,
        None => {
            let body = read_body(platform, config, &dep, resp).await?;
            // Passed through unparsed, but never as garbage: a 200 must carry a JSON answer.
            if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
                return Err(GatewayError::new(
                    ErrorKind::Upstream,
                    format!(
                        "provider {} answered a malformed response",
                        dep.provider.name
                    ),
                )
                .with_code("upstream_malformed"));
            }
            Response::json(200, body)
        }
        Some(c) => {
            let id = response_id(&resp, now_ms);
            if c.stream {
                let encoder = dialect.stream_encoder(&c.model, c.include_usage, now_ms);
                let decoder = Decoder::new(&dep.provider.kind, &id, &dep.model);
                translated_stream(platform, &dep, first_byte, resp, decoder, encoder).await?
            } else {
                let body = read_body(platform, config, &dep, resp).await?;
                let answer = providers::parse_response(&dep, &body, &id)?;
                Response::json(200, dialect.render_response(&answer, &c.model, now_ms))
            }
        }
    };
    annotate(&mut out, &dep);
    Ok(out)
}

/// The provider's request id where it sends one in a header, else one derived from the clock.
fn response_id(resp: &UpstreamResponse, now_ms: u64) -> String {
    ["x-amzn-requestid", "request-id", "x-request-id"]
        .iter()
        .find_map(|h| resp.headers.get(h))
        .filter(|v| {
            v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(|v| format!("msg_{v}"))
        .unwrap_or_else(|| format!("msg_meridian_{now_ms:x}"))
}

async fn read_body<P: Platform>(
    platform: &P,
    config: &Config,
    dep: &Deployment,
    resp: UpstreamResponse,
) -> Result<Vec<u8>, GatewayError> {
    let total = config.timeouts.total_ms;
    match deadline(platform, total, read_all(resp.body, MAX_RESPONSE_BODY)).await {
        None => Err(timeout(dep, total)),
        Some(Err(e)) => Err(GatewayError::new(
            ErrorKind::Upstream,
            format!("provider {} response failed: {e}", dep.provider.name),
        )
        .with_code("upstream_body_error")),
        Some(Ok(b)) => Ok(b),
    }
}

/// Waits for the first chunk before committing to a 200, so a provider that fails before producing anything is
/// still reported as an error status (and, later, can be failed over).
async fn passthrough_stream<P: Platform>(
    platform: &P,
    dep: &Deployment,
    first_byte: u64,
    resp: UpstreamResponse,
) -> Result<Response, GatewayError> {
    let mut body = resp.body;
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
        Some(Some(Err(e))) => return Err(stream_failed(dep, &e)),
        Some(Some(Ok(first))) => first,
    };
    let mut rest = SsePassthrough::new(body);
    rest.accept(&first)?;
    let joined: ByteStream = Box::pin(stream::once(async move { Ok(first) }).chain(rest));
    Ok(Response::event_stream(joined))
}

/// Decodes until the first canonical events exist (or the provider fails) before committing to a 200.
async fn translated_stream<P: Platform>(
    platform: &P,
    dep: &Deployment,
    first_byte: u64,
    resp: UpstreamResponse,
    mut decoder: Decoder,
    mut encoder: crate::inbound::Encoder,
) -> Result<Response, GatewayError> {
    let mut body = resp.body;
    let first = async {
        loop {
            match body.next().await {
                None => return Ok((decoder.end()?, true)),
                Some(Err(e)) => return Err(stream_failed(dep, &e)),
                Some(Ok(chunk)) => {
                    let events = decoder.push(&chunk)?;
                    if !events.is_empty() {
                        return Ok((events, false));
                    }
                }
            }
        }
    };
    let (events, ended) = match deadline(platform, first_byte, first).await {
        None => return Err(timeout(dep, first_byte)),
        Some(r) => r?,
    };
    if events.is_empty() {
        return Err(GatewayError::new(
            ErrorKind::Upstream,
            format!(
                "provider {} closed the stream without data",
                dep.provider.name
            ),
        )
        .with_code("upstream_empty_stream"));
    }
    let mut pending = Vec::new();
    encoder.encode_all(&events, &mut pending);
    if ended {
        encoder.finish(&mut pending);
        let mut r = Response::event_stream(Box::pin(stream::empty()));
        r.body = Body::Bytes(pending);
        return Ok(r);
    }
    Ok(Response::event_stream(Box::pin(Translate::new(
        body, decoder, encoder, pending,
    ))))
}

fn stream_failed(dep: &Deployment, e: &StreamError) -> GatewayError {
    GatewayError::new(
        ErrorKind::Upstream,
        format!("provider {} stream failed: {e}", dep.provider.name),
    )
    .with_code("upstream_stream_error")
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
