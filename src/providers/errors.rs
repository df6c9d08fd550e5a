//! A provider's non-2xx answer turned into the error the client sees, whatever the provider's wire format.

use super::{error_message, Credentials};
use crate::config::Deployment;
use crate::error::{ErrorCode, GatewayError};
use crate::http::Headers;

/// Longest provider message passed on to a client; the rest is noise at best and a leak at worst.
const MAX_UPSTREAM_MESSAGE: usize = 300;

/// The provider's own message is kept (it is usually the useful part) but shortened, and any credential is removed
/// from it should a provider echo one.
pub fn upstream_error(
    dep: &Deployment,
    status: u16,
    headers: &Headers,
    body: &[u8],
    creds: &Credentials,
) -> GatewayError {
    let detail = error_message(&dep.provider.kind, body).unwrap_or_default();
    let detail = redact(&detail, &creds.secrets());
    let who = &dep.provider.name;
    let message = if detail.is_empty() {
        format!("provider {who} answered HTTP {status}")
    } else {
        format!("provider {who} answered HTTP {status}: {detail}")
    };
    match status {
        400 | 413 | 422 if context_length(body, &detail) => {
            GatewayError::new(ErrorCode::ContextLengthExceeded, message)
        }
        400 | 413 | 422 => {
            GatewayError::new(ErrorCode::UpstreamRejectedRequest, message).with_status(status)
        }
        408 | 504 => GatewayError::new(ErrorCode::UpstreamTimeout, message),
        429 => {
            let mut e = GatewayError::new(ErrorCode::UpstreamRateLimited, message);
            e.retry_after = retry_after_seconds(headers);
            e
        }
        503 | 529 => GatewayError::new(ErrorCode::UpstreamOverloaded, message),
        // The gateway's credentials or model mapping are wrong: the client can do nothing about it.
        401 | 403 | 404 => GatewayError::new(ErrorCode::UpstreamMisconfigured, message),
        _ => GatewayError::new(ErrorCode::UpstreamError, message),
    }
}

/// Whether a refused request was refused for its length, in each provider's documented words: OpenAI's
/// `context_length_exceeded` code ("maximum context length"), Anthropic's "prompt is too long", Gemini's "exceeds
/// the maximum number of tokens", Bedrock's "input is too long" / "too many input tokens".
fn context_length(body: &[u8], detail: &str) -> bool {
    let detail = detail.to_ascii_lowercase();
    String::from_utf8_lossy(body).contains("context_length_exceeded")
        || [
            "maximum context length",
            "prompt is too long",
            "exceeds the maximum number of tokens",
            "input is too long",
            "too many input tokens",
            "context window",
        ]
        .iter()
        .any(|p| detail.contains(p))
}

fn number(v: &str) -> Option<&str> {
    (!v.is_empty() && v.len() < 16 && v.bytes().all(|b| b.is_ascii_digit())).then_some(v)
}

/// `retry-after` (seconds) or Azure's `retry-after-ms` / `x-ms-retry-after-ms`, as whole seconds. Only plain
/// numbers are accepted, so nothing a provider sends can inject into the client's headers.
pub fn retry_after_seconds(headers: &Headers) -> Option<String> {
    if let Some(s) = headers.get("retry-after").and_then(number) {
        return Some(s.to_owned());
    }
    let ms: u64 = headers
        .get("retry-after-ms")
        .or_else(|| headers.get("x-ms-retry-after-ms"))
        .and_then(number)?
        .parse()
        .ok()?;
    Some(ms.div_ceil(1000).to_string())
}

/// Scrubbed here as well as on the way out: shortening first could cut a secret in half, and half a secret is
/// no longer found.
fn redact(detail: &str, secrets: &[&str]) -> String {
    let mut s = crate::scrub::Scrubber::new(secrets).text(detail);
    if s.len() > MAX_UPSTREAM_MESSAGE {
        let mut cut = MAX_UPSTREAM_MESSAGE;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Provider, ProviderKind};
    use std::rc::Rc;

    fn dep() -> Deployment {
        dep_of(ProviderKind::OpenAi)
    }

    fn dep_of(kind: ProviderKind) -> Deployment {
        Deployment {
            provider: Rc::new(Provider {
                name: "p".into(),
                kind,
                base_url: "https://api.example.test/v1".into(),
                api_key_secret: Some("K".into()),
                region: "global".into(),
            }),
            model: "m".into(),
            region: "us-east".into(),
            coords: None,
            tags: Vec::new(),
            weight: 1.0,
            price: None,
        }
    }

    #[test]
    fn maps_statuses_and_redacts_key() {
        let key = Credentials::ApiKey("sk-secret-value".into());
        let body = br#"{"error":{"message":"bad key sk-secret-value given"}}"#;
        let e = upstream_error(&dep(), 401, &Headers::new(), body, &key);
        assert_eq!(e.status, 502);
        assert!(!e.message.contains("sk-secret-value"), "{}", e.message);
        assert!(e.message.contains("[redacted]"));

        let h: Headers = [("retry-after", "7")].into_iter().collect();
        let e = upstream_error(&dep(), 429, &h, b"", &Credentials::None);
        assert_eq!((e.status, e.retry_after.as_deref()), (429, Some("7")));
        let h: Headers = [("retry-after", "7\r\nx: y")].into_iter().collect();
        assert_eq!(
            upstream_error(&dep(), 429, &h, b"", &Credentials::None).retry_after,
            None
        );
        let h: Headers = [("x-ms-retry-after-ms", "1500")].into_iter().collect();
        assert_eq!(retry_after_seconds(&h).as_deref(), Some("2"));

        let none = &Credentials::None;
        assert_eq!(
            upstream_error(&dep(), 400, &Headers::new(), b"", none).status,
            400
        );
        assert_eq!(
            upstream_error(&dep(), 500, &Headers::new(), b"<html>", none).status,
            502
        );
        assert_eq!(
            upstream_error(&dep(), 529, &Headers::new(), b"", none).status,
            503
        );
        assert_eq!(
            upstream_error(&dep(), 504, &Headers::new(), b"", none).status,
            504
        );
        for (body, context) in [
            (&br#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#[..], true),
            (br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 maximum"}}"#, true),
            (br#"{"error":{"message":"temperature must be at most 2","type":"invalid_request_error"}}"#, false),
        ] {
            let e = upstream_error(&dep(), 400, &Headers::new(), body, none);
            assert_eq!(e.code == ErrorCode::ContextLengthExceeded, context, "{}", e.message);
            assert_eq!(e.status, 400);
        }
        let long = format!(r#"{{"error":{{"message":"{}"}}}}"#, "é".repeat(400));
        assert!(
            upstream_error(&dep(), 500, &Headers::new(), long.as_bytes(), none)
                .message
                .len()
                < 400
        );
    }

    /// Anthropic's error bodies as recorded (tests/fixtures/SOURCES.md): each keeps its meaning.
    #[test]
    fn anthropic_errors_keep_their_meaning() {
        #[derive(serde::Deserialize)]
        struct Recorded {
            status: u16,
            body: String,
        }
        let all: Vec<Recorded> =
            serde_json::from_str(include_str!("../../tests/fixtures/anthropic/errors.json"))
                .unwrap();
        let dep = dep_of(ProviderKind::Anthropic);
        let codes: Vec<(u16, ErrorCode, u16)> = all
            .iter()
            .map(|r| {
                let e = upstream_error(
                    &dep,
                    r.status,
                    &Headers::new(),
                    r.body.as_bytes(),
                    &Credentials::None,
                );
                assert!(
                    e.message.contains("provider p answered HTTP"),
                    "{}",
                    e.message
                );
                (r.status, e.code, e.status)
            })
            .collect();
        assert_eq!(
            codes,
            [
                // "prompt is too long: 205429 tokens > 200000 maximum"
                (400, ErrorCode::ContextLengthExceeded, 400),
                // The gateway's own provider credentials or model mapping: not the client's to fix.
                (401, ErrorCode::UpstreamMisconfigured, 502),
                (403, ErrorCode::UpstreamMisconfigured, 502),
                (404, ErrorCode::UpstreamMisconfigured, 502),
                (429, ErrorCode::UpstreamRateLimited, 429),
                (529, ErrorCode::UpstreamOverloaded, 503),
            ]
        );
        let overloaded = include_str!("../../tests/fixtures/anthropic/overloaded_error.json");
        let e = upstream_error(
            &dep,
            529,
            &Headers::new(),
            overloaded.as_bytes(),
            &Credentials::None,
        );
        assert_eq!(crate::inbound::Dialect::Anthropic.error_status(&e), 529);
        assert_eq!(crate::inbound::Dialect::OpenAi.error_status(&e), 503);
        assert_eq!(
            crate::inbound::anthropic::error_type(&e),
            "overloaded_error"
        );
    }
}
