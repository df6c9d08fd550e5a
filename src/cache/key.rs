//! Cache keys: a SHA-256 over a canonical form of everything that changes the answer, scoped by namespace.
//! Independent of JSON key order, whitespace and the client's dialect; blind to `stream`, `stream_options`,
//! `user` and transport headers.

use crate::canonical::{ChatRequest, Image, Part, ResponseFormat, Role, ToolChoice};
use crate::json::{json, Value};
use sha2::{Digest, Sha256};

/// Bumped whenever the canonical form changes, so old entries are simply never found again.
const VERSION: u32 = 1;

/// `namespace` scopes entries (a tenant, or an explicitly shared namespace); `model` is the resolved alias.
pub fn cache_key(namespace: &str, model: &str, req: &ChatRequest) -> String {
    let canonical = crate::json::to_string_sorted(&canonical_form(model, req));
    let digest = Sha256::digest(canonical.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    // KV keys are at most 512 bytes: a long namespace is hashed rather than truncated.
    let ns =
        if namespace.len() <= 128 && namespace.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
            namespace.to_owned()
        } else {
            let d = Sha256::digest(namespace.as_bytes());
            d.iter().take(16).map(|b| format!("{b:02x}")).collect()
        };
    format!("cache/v{VERSION}/{ns}/{hex}")
}

/// Written with sorted keys, so the hash is independent of the order of keys in client-given JSON (tool
/// schemas, call arguments).
pub fn canonical_form(model: &str, req: &ChatRequest) -> Value {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| {
            json!({
                "role": match m.role { Role::User => "user", Role::Assistant => "assistant" },
                "content": m.content.iter().map(part).collect::<Vec<_>>(),
            })
        })
        .collect();
    let tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "parameters": t.parameters}))
        .collect();
    json!({
        "v": VERSION,
        "model": model,
        "system": req.system,
        "messages": messages,
        "tools": tools,
        "tool_choice": req.tool_choice.as_ref().map(|c| match c {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool(n) => json!({"tool": n}),
        }),
        "response_format": req.response_format.as_ref().map(|f| match f {
            ResponseFormat::JsonObject => json!("json_object"),
            ResponseFormat::JsonSchema { name, schema, strict } => json!({"name": name, "schema": schema, "strict": strict}),
        }),
        "temperature": req.temperature,
        "top_p": req.top_p,
        "max_tokens": req.max_tokens,
        "stop": req.stop,
        "seed": req.seed,
    })
}

fn part(p: &Part) -> Value {
    match p {
        Part::Text(t) => json!({"text": t}),
        Part::Image(Image::Url(u)) => json!({"image_url": u}),
        Part::Image(Image::Base64 { media_type, data }) => {
            json!({"image": media_type, "data": data})
        }
        Part::ToolCall {
            id,
            name,
            arguments,
        } => json!({"call": id, "name": name, "arguments": normalized(arguments)}),
        Part::ToolResult {
            call_id,
            content,
            is_error,
        } => {
            json!({"result": call_id, "content": content, "error": is_error})
        }
    }
}

/// Tool-call arguments are JSON text: `{"a": 1}` and `{"a":1}` mean the same.
fn normalized(arguments: &str) -> Value {
    crate::json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::{anthropic, openai};

    fn openai_key(body: &str) -> String {
        let c = openai::parse_chat(body.as_bytes())
            .unwrap()
            .to_canonical()
            .unwrap();
        cache_key("tenant", "fast", &c)
    }

    #[test]
    fn key_order_whitespace_stream_and_user_do_not_matter() {
        let a = openai_key(
            r#"{"model":"fast","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":50}"#,
        );
        let b = openai_key(
            r#"{ "max_tokens": 50, "temperature": 0.0, "stream": true, "stream_options": {"include_usage": true},
                 "user": "u-1", "messages": [ { "content": "hi", "role": "user" } ], "model": "fast" }"#,
        );
        assert_eq!(a, b);
        assert!(a.starts_with("cache/v1/tenant/") && a.len() == "cache/v1/tenant/".len() + 64);
    }

    #[test]
    fn anything_that_changes_the_answer_changes_the_key() {
        let base = r#"{"model":"fast","messages":[{"role":"user","content":"hi"}]}"#;
        let k = openai_key(base);
        for changed in [
            r#"{"model":"fast","messages":[{"role":"user","content":"hi!"}]}"#,
            r#"{"model":"fast","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}"#,
            r#"{"model":"fast","messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#,
            r#"{"model":"fast","messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#,
            r#"{"model":"fast","messages":[{"role":"user","content":"hi"}],"seed":1}"#,
            r#"{"model":"fast","messages":[{"role":"user","content":"hi"}],"stop":"x"}"#,
            r#"{"model":"fast","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}"#,
        ] {
            assert_ne!(openai_key(changed), k, "{changed}");
        }
        let c = openai::parse_chat(base.as_bytes())
            .unwrap()
            .to_canonical()
            .unwrap();
        assert_ne!(cache_key("other-tenant", "fast", &c), k);
        assert_ne!(cache_key("tenant", "slow", &c), k);
    }

    #[test]
    fn the_same_request_in_either_dialect_has_the_same_key() {
        let o = openai_key(
            r#"{"model":"fast","max_tokens":64,"messages":[{"role":"system","content":"terse"},{"role":"user","content":"hi"}]}"#,
        );
        let a = anthropic::parse_request(
            br#"{"model":"fast","max_tokens":64,"system":"terse","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        assert_eq!(cache_key("tenant", "fast", &a), o);
    }

    #[test]
    fn tool_arguments_are_compared_as_json() {
        let a = r#"{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\": 1, \"b\": 2}"}}]},{"role":"tool","tool_call_id":"c","content":"ok"}]}"#;
        let b = a.replace(r#"{\"a\": 1, \"b\": 2}"#, r#"{\"b\":2,\"a\":1}"#);
        assert_eq!(openai_key(a), openai_key(&b));
    }

    #[test]
    fn hostile_namespaces_stay_inside_the_key_limits() {
        let c = openai::parse_chat(br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#)
            .unwrap()
            .to_canonical()
            .unwrap();
        for ns in ["a/b", &"x".repeat(600), "sp ace", "new\nline"] {
            let k = cache_key(ns, "m", &c);
            assert!(k.len() <= 512 && k.split('/').count() == 4, "{k}");
        }
    }
}
