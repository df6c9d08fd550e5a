//! OpenAI Chat Completions and every host that speaks it (Groq, Mistral, DeepSeek, Together, vLLM, Ollama, ...).

use crate::config::Deployment;
use crate::error::{ErrorKind, GatewayError};
use crate::http::{Headers, Method};
use crate::inbound::openai::ChatRequest;
use crate::platform::UpstreamRequest;
use serde_json::Value;

/// Longest provider message passed on to a client; the rest is noise at best and a leak at worst.
const MAX_UPSTREAM_MESSAGE: usize = 300;

pub fn chat_request(
    dep: &Deployment,
    chat: &ChatRequest,
    api_key: Option<&str>,
) -> UpstreamRequest {
    let mut body = chat.body.clone();
    body.insert("model".into(), Value::String(dep.model.clone()));
    let mut headers = Headers::new();
    headers.insert("content-type", "application/json");
    headers.insert(
        "accept",
        if chat.stream {
            "text/event-stream"
        } else {
            "application/json"
        },
    );
    if let Some(key) = api_key {
        headers.insert("authorization", format!("Bearer {key}"));
    }
    UpstreamRequest {
        method: Method::Post,
        url: format!("{}/chat/completions", dep.provider.base_url),
        headers,
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

/// Turns a provider's non-2xx answer into the error the client sees. The provider's own message is kept (it is
/// usually the useful part) but shortened, and the provider key is removed from it should a provider echo it.
pub fn upstream_error(
    dep: &Deployment,
    status: u16,
    headers: &Headers,
    body: &[u8],
    api_key: Option<&str>,
) -> GatewayError {
    let detail = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let detail = redact(&detail, api_key);
    let who = &dep.provider.name;
    let message = if detail.is_empty() {
        format!("provider {who} answered HTTP {status}")
    } else {
        format!("provider {who} answered HTTP {status}: {detail}")
    };
    let mut e = match status {
        400 | 413 | 422 => GatewayError::invalid(message).with_status(status),
        408 | 504 => GatewayError::new(ErrorKind::Timeout, message),
        429 => {
            let mut e = GatewayError::new(ErrorKind::RateLimited, message)
                .with_code("upstream_rate_limited");
            e.retry_after = headers
                .get("retry-after")
                .filter(|v| !v.is_empty() && v.len() < 32 && v.bytes().all(|b| b.is_ascii_digit()))
                .map(str::to_owned);
            e
        }
        // The gateway's credentials or model mapping are wrong: the client can do nothing about it.
        401 | 403 | 404 => {
            GatewayError::new(ErrorKind::Upstream, message).with_code("upstream_misconfigured")
        }
        _ => GatewayError::new(ErrorKind::Upstream, message).with_code("upstream_error"),
    };
    if e.code.is_none() {
        e.code = Some("upstream_error");
    }
    e
}

fn redact(detail: &str, api_key: Option<&str>) -> String {
    let mut s = match api_key {
        Some(k) if k.len() >= 4 => detail.replace(k, "[redacted]"),
        _ => detail.to_owned(),
    };
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
    use crate::inbound::openai::parse_chat;
    use std::rc::Rc;

    fn dep() -> Deployment {
        Deployment {
            provider: Rc::new(Provider {
                name: "p".into(),
                kind: ProviderKind::OpenAi,
                base_url: "https://api.example.test/v1".into(),
                api_key_secret: Some("K".into()),
            }),
            model: "real-model".into(),
            region: "us-east".into(),
        }
    }

    #[test]
    fn builds_request_with_rewritten_model_and_key() {
        let chat = parse_chat(br#"{"model":"alias","stream":true,"messages":[{"role":"user","content":"x"}],"top_p":0.5}"#)
            .unwrap();
        let r = chat_request(&dep(), &chat, Some("sk-123"));
        assert_eq!(r.url, "https://api.example.test/v1/chat/completions");
        assert_eq!(r.headers.get("authorization"), Some("Bearer sk-123"));
        assert_eq!(r.headers.get("accept"), Some("text/event-stream"));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["model"], "real-model");
        assert_eq!(v["top_p"], 0.5);
        assert_eq!(v["stream"], true);
    }

    #[test]
    fn maps_statuses_and_redacts_key() {
        let body = br#"{"error":{"message":"bad key sk-secret-value given"}}"#;
        let e = upstream_error(&dep(), 401, &Headers::new(), body, Some("sk-secret-value"));
        assert_eq!(e.status, 502);
        assert!(!e.message.contains("sk-secret-value"), "{}", e.message);
        assert!(e.message.contains("[redacted]"));

        let h: Headers = [("retry-after", "7")].into_iter().collect();
        let e = upstream_error(&dep(), 429, &h, b"", None);
        assert_eq!((e.status, e.retry_after.as_deref()), (429, Some("7")));
        let h: Headers = [("retry-after", "7\r\nx: y")].into_iter().collect();
        assert_eq!(upstream_error(&dep(), 429, &h, b"", None).retry_after, None);

        assert_eq!(
            upstream_error(&dep(), 400, &Headers::new(), b"", None).status,
            400
        );
        assert_eq!(
            upstream_error(&dep(), 503, &Headers::new(), b"<html>", None).status,
            502
        );
        assert_eq!(
            upstream_error(&dep(), 504, &Headers::new(), b"", None).status,
            504
        );
        let long = format!(r#"{{"error":{{"message":"{}"}}}}"#, "é".repeat(400));
        assert!(
            upstream_error(&dep(), 500, &Headers::new(), long.as_bytes(), None)
                .message
                .len()
                < 400
        );
    }
}
