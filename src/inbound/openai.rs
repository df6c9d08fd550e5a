//! The OpenAI Chat Completions dialect as spoken by clients.

use crate::config::Config;
use crate::error::{ErrorKind, GatewayError};
use serde_json::{json, Map, Value};

const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// A validated chat request. The body is kept whole so fields Meridian does not interpret still reach the provider.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub model: String,
    pub stream: bool,
    pub body: Map<String, Value>,
}

pub fn parse_chat(body: &[u8]) -> Result<ChatRequest, GatewayError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::invalid(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(body) = value else {
        return Err(GatewayError::invalid("request body must be a JSON object"));
    };
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => return Err(param_error("model", "`model` must be a non-empty string")),
        None => return Err(param_error("model", "missing required parameter `model`")),
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(param_error("stream", "`stream` must be a boolean")),
    };
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => {
            return Err(param_error("messages", "`messages` must not be empty"))
        }
        Some(_) => return Err(param_error("messages", "`messages` must be an array")),
        None => {
            return Err(param_error(
                "messages",
                "missing required parameter `messages`",
            ))
        }
    };
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str);
        match role {
            Some(r) if ROLES.contains(&r) => {}
            Some(r) => {
                return Err(param_error(
                    "messages",
                    format!("messages[{i}].role: unknown role {r:?}"),
                ))
            }
            None => {
                return Err(param_error(
                    "messages",
                    format!("messages[{i}] must be an object with a string `role`"),
                ))
            }
        }
    }
    Ok(ChatRequest {
        model,
        stream,
        body,
    })
}

fn param_error(param: &'static str, message: impl Into<String>) -> GatewayError {
    let mut e = GatewayError::invalid(message);
    e.code = Some(match param {
        "model" => "invalid_model",
        "messages" => "invalid_messages",
        _ => "invalid_value",
    });
    e
}

fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::NotFound | ErrorKind::MethodNotAllowed => {
            "invalid_request_error"
        }
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::Upstream | ErrorKind::Timeout => "api_error",
        ErrorKind::Internal => "server_error",
    }
}

fn error_value(e: &GatewayError) -> Value {
    json!({
        "error": {
            "message": e.message,
            "type": error_type(e.kind),
            "param": Value::Null,
            "code": e.code,
        }
    })
}

/// `{"error":{"message","type","param","code"}}`, the shape OpenAI SDKs parse.
pub fn error_body(e: &GatewayError) -> Vec<u8> {
    serde_json::to_vec(&error_value(e)).unwrap_or_default()
}

/// An error inside an already-started stream, as an SSE event that OpenAI SDKs raise as an exception.
pub fn error_event(e: &GatewayError) -> Vec<u8> {
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(&error_body(e));
    out.extend_from_slice(b"\n\n");
    out
}

/// `GET /v1/models`: the aliases this deployment serves.
pub fn models_list(config: &Config) -> Vec<u8> {
    let data: Vec<Value> = config
        .models
        .keys()
        .map(|name| json!({"id": name, "object": "model", "created": 0, "owned_by": "meridian"}))
        .collect();
    serde_json::to_vec(&json!({"object": "list", "data": data})).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_minimal_and_keeps_unknown_fields() {
        let r =
            parse_chat(br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":7}"#)
                .unwrap();
        assert_eq!(r.model, "m");
        assert!(!r.stream);
        assert_eq!(r.body["seed"], 7);
        let r = parse_chat(
            br#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        assert!(r.stream);
    }

    #[test]
    fn rejects_bad_input_with_clear_messages() {
        let cases: &[(&[u8], &str)] = &[
            (b"{", "not valid JSON"),
            (b"[1]", "must be a JSON object"),
            (
                br#"{"messages":[{"role":"user"}]}"#,
                "missing required parameter `model`",
            ),
            (
                br#"{"model":1,"messages":[{"role":"user"}]}"#,
                "`model` must be a non-empty string",
            ),
            (br#"{"model":"m"}"#, "missing required parameter `messages`"),
            (
                br#"{"model":"m","messages":[]}"#,
                "`messages` must not be empty",
            ),
            (
                br#"{"model":"m","messages":{}}"#,
                "`messages` must be an array",
            ),
            (
                br#"{"model":"m","messages":[{"role":"robot"}]}"#,
                "messages[0].role: unknown role \"robot\"",
            ),
            (
                br#"{"model":"m","messages":[1]}"#,
                "messages[0] must be an object",
            ),
            (
                br#"{"model":"m","stream":"yes","messages":[{"role":"user"}]}"#,
                "`stream` must be a boolean",
            ),
            (b"\xff\xfe", "not valid JSON"),
        ];
        for (body, want) in cases {
            let e = parse_chat(body).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(
                e.message.contains(want),
                "{:?} -> {}",
                String::from_utf8_lossy(body),
                e.message
            );
        }
    }

    #[test]
    fn error_shape() {
        let e = GatewayError::new(ErrorKind::NotFound, "nope").with_code("model_not_found");
        let v: Value = serde_json::from_slice(&error_body(&e)).unwrap();
        assert_eq!(v["error"]["message"], "nope");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        let ev = error_event(&e);
        assert!(ev.starts_with(b"data: {") && ev.ends_with(b"}\n\n"));
    }
}
