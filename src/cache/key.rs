//! Cache keys: a SHA-256 over a canonical form of everything that changes the answer, scoped by namespace.
//! Independent of JSON key order, whitespace and the client's dialect; blind to `stream`, `stream_options`,
//! `user` and transport headers.
//!
//! An OpenAI-dialect body may be forwarded to the provider as it is, so every field of it must count, not only
//! those the canonical request carries. It does without adding anything when it is exactly what the canonical
//! request renders to (then the same question asked in another dialect still meets it); otherwise the body
//! itself is part of the key.

use crate::canonical::{ChatRequest, Image, Message, Part, ResponseFormat, Role, Tool, ToolChoice};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Bumped whenever the canonical form changes, so old entries are simply never found again.
const VERSION: u32 = 2;

/// Fields of an OpenAI body that never change the answer (the model is the resolved alias, keyed apart).
const UNKEYED: &[&str] = &["model", "stream", "stream_options", "user"];

/// Members of a Messages body the canonical request holds (and keys) already, or that never change the answer.
const ANTHROPIC_CANONICAL: &[&str] = &[
    "model",
    "max_tokens",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "temperature",
    "top_p",
    "stop_sequences",
    "metadata",
    "stream",
];

/// The client's body, for a dialect whose bodies may be forwarded to the provider as they are: every field of
/// it must count then, not only those the canonical request carries.
pub enum Body<'a> {
    OpenAi(Map<String, Value>),
    /// With the `anthropic-beta` features asked for, which may change the answer too.
    Anthropic(Map<String, Value>, Option<&'a str>),
}

/// `namespace` scopes entries (a tenant, or an explicitly shared namespace); `model` is the resolved alias;
/// `body` is the client's body as sent.
pub fn cache_key(namespace: &str, model: &str, req: &ChatRequest, body: Option<&Body>) -> String {
    let mut form = canonical_form(model, req);
    let beyond = match body {
        None => None,
        Some(Body::OpenAi(b)) => beyond_canonical(req, b),
        Some(Body::Anthropic(b, beta)) => beyond_anthropic(b, *beta),
    };
    if let Some(body) = beyond {
        form["body"] = body;
    }
    form.sort_all_objects();
    let canonical = form.to_string();
    let digest = Sha256::digest(canonical.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    format!("cache/v{VERSION}/{}/{hex}", scoped(namespace))
}

/// KV keys are at most 512 bytes: a long namespace is hashed rather than truncated.
fn scoped(namespace: &str) -> String {
    if namespace.len() <= 128 && namespace.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
        namespace.to_owned()
    } else {
        let d = Sha256::digest(namespace.as_bytes());
        d.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

/// The key of an embeddings request: the client's body as JSON (members in any order, `null` as absent), without
/// `model` (the resolved alias is keyed apart) and `user` (never changes the vectors).
pub fn embeddings_key(namespace: &str, model: &str, body: &Map<String, Value>) -> String {
    let mut own = body.clone();
    own.shift_remove("model");
    own.shift_remove("user");
    let mut form = json!({ "v": VERSION, "endpoint": "embeddings", "model": model, "body": drop_nulls(Value::Object(own)) });
    form.sort_all_objects();
    let digest = Sha256::digest(form.to_string().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("cache/v{VERSION}/{}/{hex}", scoped(namespace))
}

/// A request the cached answer cannot reproduce (several choices, log probabilities, the model's thinking) is
/// not cached at all.
pub fn unreplayable(body: &Body) -> Option<&'static str> {
    match body {
        Body::OpenAi(b) => {
            let set = |k: &str| b.get(k).is_some_and(|v| !v.is_null());
            if set("n") && b.get("n").and_then(Value::as_u64) != Some(1) {
                return Some("n");
            }
            if b.get("logprobs").and_then(Value::as_bool) == Some(true) || set("top_logprobs") {
                return Some("logprobs");
            }
            None
        }
        Body::Anthropic(b, _) => {
            let thinking = b
                .get("thinking")
                .and_then(|t| t.get("type"))
                .and_then(Value::as_str);
            thinking
                .is_some_and(|t| t != "disabled")
                .then_some("thinking")
        }
    }
}

/// The members of a Messages body beyond the canonical request (`top_k`, `thinking`, `output_config`, ...), with
/// the beta features; nothing when there are none, so that the same question asked in another dialect still
/// meets it.
fn beyond_anthropic(body: &Map<String, Value>, beta: Option<&str>) -> Option<Value> {
    let mut own = Map::new();
    for (k, v) in body {
        if !ANTHROPIC_CANONICAL.contains(&k.as_str()) && !v.is_null() {
            own.insert(k.clone(), drop_nulls(v.clone()));
        }
    }
    if let Some(beta) = beta {
        let mut features: Vec<&str> = beta
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .collect();
        features.sort_unstable();
        own.insert("anthropic-beta".into(), features.join(",").into());
    }
    (!own.is_empty()).then_some(Value::Object(own))
}

/// The client's body, normalized, unless it is what the canonical request renders to anyway.
fn beyond_canonical(req: &ChatRequest, body: &Map<String, Value>) -> Option<Value> {
    let rendered =
        serde_json::from_slice::<Value>(&crate::providers::openai_compat::request_body(req, ""))
            .ok()
            .and_then(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .map(|m| normalized_body(&m));
    let mut own = body.clone();
    // Either name of the token limit renders as `max_completion_tokens`.
    if !own.contains_key("max_completion_tokens") {
        if let Some(v) = own.remove("max_tokens") {
            own.insert("max_completion_tokens".into(), v);
        }
    }
    if let Some(Value::String(s)) = own.get("stop") {
        let one = Value::Array(vec![Value::String(s.clone())]);
        own.insert("stop".into(), one);
    }
    let own = normalized_body(&own);
    match rendered {
        Some(r) if same(&r, &own) => None,
        _ => Some(own),
    }
}

/// Without the unkeyed fields, and with `null` members dropped (`null` asks for the default, as absence does).
fn normalized_body(body: &Map<String, Value>) -> Value {
    let mut m = body.clone();
    for k in UNKEYED {
        m.shift_remove(*k);
    }
    drop_nulls(Value::Object(m))
}

fn drop_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m.iter() {
                if !v.is_null() {
                    out.insert(k.clone(), drop_nulls(v.clone()));
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(drop_nulls).collect()),
        other => other,
    }
}

/// Equal as JSON: members in any order, numbers by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Written with sorted keys, so the hash is independent of the order of keys in client-given JSON (tool
/// schemas, call arguments). Every field is named here, none skipped with `..`: a field added to the canonical
/// request does not compile until it is keyed or declared irrelevant.
pub fn canonical_form(model: &str, req: &ChatRequest) -> Value {
    let ChatRequest {
        model: _,
        system,
        messages,
        tools,
        tool_choice,
        response_format,
        temperature,
        top_p,
        max_tokens,
        stop,
        seed,
        // Abuse tracking and transport: the same answer either way.
        user: _,
        parallel_tool_calls,
        thinking,
        stream: _,
        include_usage: _,
        // What the provider may cache of the prompt, not what it answers.
        cache_points: _,
    } = req;
    let messages: Vec<Value> = messages
        .iter()
        .map(|Message { role, content }| {
            json!({
                "role": match role { Role::User => "user", Role::Assistant => "assistant" },
                "content": content.iter().map(part).collect::<Vec<_>>(),
            })
        })
        .collect();
    let tools: Vec<Value> = tools
        .iter()
        .map(
            |Tool {
                 name,
                 description,
                 parameters,
             }| json!({"name": name, "description": description, "parameters": parameters}),
        )
        .collect();
    let mut form = json!({
        "v": VERSION,
        "model": model,
        "system": system,
        "messages": messages,
        "tools": tools,
        "tool_choice": tool_choice.as_ref().map(|c| match c {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool(n) => json!({"tool": n}),
        }),
        "response_format": response_format.as_ref().map(|f| match f {
            ResponseFormat::JsonObject => json!("json_object"),
            ResponseFormat::JsonSchema { name, schema, strict } => json!({"name": name, "schema": schema, "strict": strict}),
        }),
        "temperature": temperature,
        "top_p": top_p,
        "max_tokens": max_tokens,
        "stop": stop,
        "seed": seed,
    });
    // Only when set, so that the keys of requests without them stay what they were.
    if let Some(p) = parallel_tool_calls {
        form["parallel_tool_calls"] = json!(p);
    }
    if let Some(t) = thinking {
        form["thinking"] = json!(format!("{t:?}"));
    }
    form
}

fn part(p: &Part) -> Value {
    match p {
        Part::Text(t) => json!({"text": t}),
        // The reasoning is what the model sees again; its signature only proves it.
        Part::Reasoning { text, .. } => json!({"reasoning": text}),
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
    serde_json::from_slice::<Value>(arguments.as_bytes())
        .unwrap_or_else(|_| Value::String(arguments.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::{anthropic, openai};

    fn openai_key(body: &str) -> String {
        let chat = openai::parse_chat(body.as_bytes()).unwrap();
        cache_key(
            "tenant",
            "fast",
            &chat.to_canonical().unwrap(),
            Some(&Body::OpenAi(chat.body.object())),
        )
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
        assert!(a.starts_with("cache/v2/tenant/") && a.len() == "cache/v2/tenant/".len() + 64);
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
        let chat = openai::parse_chat(base.as_bytes()).unwrap();
        let c = chat.to_canonical().unwrap();
        assert_ne!(
            cache_key(
                "other-tenant",
                "fast",
                &c,
                Some(&Body::OpenAi(chat.body.object()))
            ),
            k
        );
        assert_ne!(
            cache_key(
                "tenant",
                "slow",
                &c,
                Some(&Body::OpenAi(chat.body.object()))
            ),
            k
        );
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
        assert_eq!(cache_key("tenant", "fast", &a, None), o);
        // With a temperature, stop sequences and tools too.
        let o = openai_key(
            r#"{"model":"fast","max_tokens":64,"temperature":0,"stop":"END","messages":[{"role":"system","content":"terse"},{"role":"user","content":"hi"}],
                "tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object"}}}]}"#,
        );
        let a = anthropic::parse_request(
            br#"{"model":"fast","max_tokens":64,"temperature":0,"stop_sequences":["END"],"system":"terse","messages":[{"role":"user","content":"hi"}],
                 "tools":[{"name":"f","description":"d","input_schema":{"type":"object"}}]}"#,
        )
        .unwrap();
        assert_eq!(cache_key("tenant", "fast", &a, None), o);
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
            let k = cache_key(ns, "m", &c, None);
            assert!(k.len() <= 512 && k.split('/').count() == 4, "{k}");
        }
    }

    #[test]
    fn every_forwarded_field_counts_and_so_does_the_place_of_the_system_message() {
        let base = r#"{"model":"fast","temperature":0,"messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}]}"#;
        let k = openai_key(base);
        for extra in [
            r#""n":2"#,
            r#""logprobs":true"#,
            r#""top_logprobs":2"#,
            r#""presence_penalty":0.5"#,
            r#""frequency_penalty":0.5"#,
            r#""logit_bias":{"50256":-100}"#,
            r#""reasoning_effort":"high""#,
            r#""parallel_tool_calls":false"#,
            r#""service_tier":"flex""#,
            r#""some_future_field":1"#,
        ] {
            let changed = base.replacen('{', &format!("{{{extra},"), 1);
            assert_ne!(openai_key(&changed), k, "{extra}");
        }
        let moved = r#"{"model":"fast","temperature":0,"messages":[{"role":"user","content":"hi"},{"role":"system","content":"s"}]}"#;
        assert_ne!(openai_key(moved), k, "the system message's position");
        let developer = base.replace(r#""role":"system""#, r#""role":"developer""#);
        assert_ne!(openai_key(&developer), k, "the system message's role");
        // Nulls ask for the default, as absence does.
        assert_eq!(openai_key(&base.replacen('{', r#"{"n":null,"#, 1)), k);
        assert_eq!(
            openai_key(&base.replacen('{', r#"{"user":"u","stream":true,"#, 1)),
            k
        );
    }

    #[test]
    fn answers_the_cache_cannot_replay_are_not_cached() {
        let body = |extra: &str| {
            let chat = openai::parse_chat(
                format!(r#"{{{extra}"model":"m","messages":[{{"role":"user","content":"x"}}]}}"#)
                    .as_bytes(),
            )
            .unwrap();
            Body::OpenAi(chat.body.object())
        };
        assert_eq!(unreplayable(&body("")), None);
        assert_eq!(unreplayable(&body(r#""n":1,"logprobs":false,"#)), None);
        assert_eq!(unreplayable(&body(r#""n":3,"#)), Some("n"));
        assert_eq!(unreplayable(&body(r#""logprobs":true,"#)), Some("logprobs"));
        assert_eq!(
            unreplayable(&body(r#""top_logprobs":1,"#)),
            Some("logprobs")
        );
        let thinking = |t: &str| {
            let m = anthropic::parse_messages(
                format!(r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":"x"}}]{t}}}"#)
                    .as_bytes(),
                None,
            )
            .unwrap();
            unreplayable(&Body::Anthropic(m.body.object(), None))
        };
        assert_eq!(thinking(""), None);
        assert_eq!(thinking(r#","thinking":{"type":"disabled"}"#), None);
        assert_eq!(
            thinking(r#","thinking":{"type":"enabled","budget_tokens":1024}"#),
            Some("thinking")
        );
    }

    fn anthropic_key(body: &str, beta: Option<&str>) -> String {
        let m = anthropic::parse_messages(body.as_bytes(), beta).unwrap();
        let c = m.canonical.as_deref().unwrap();
        cache_key(
            "tenant",
            "fast",
            c,
            Some(&Body::Anthropic(m.body.object(), m.beta.as_deref())),
        )
    }

    #[test]
    fn anthropic_fields_beyond_the_canonical_request_and_beta_features_change_the_key() {
        let base = r#"{"model":"fast","max_tokens":64,"system":"terse","messages":[{"role":"user","content":"hi"}]}"#;
        let k = anthropic_key(base, None);
        // Only what the canonical request holds: the same key as the OpenAI dialect's.
        assert_eq!(
            k,
            openai_key(
                r#"{"model":"fast","max_tokens":64,"messages":[{"role":"system","content":"terse"},{"role":"user","content":"hi"}]}"#
            )
        );
        assert_eq!(
            anthropic_key(
                r#"{"stream":true,"metadata":{"user_id":"u"},"model":"fast","max_tokens":64,"system":"terse","messages":[{"role":"user","content":"hi"}]}"#,
                None
            ),
            k
        );
        let with = |extra: &str| base.replacen('{', &format!("{{{extra},"), 1);
        let top_k = anthropic_key(&with(r#""top_k":5"#), None);
        assert_ne!(top_k, k);
        assert_ne!(anthropic_key(&with(r#""top_k":6"#), None), top_k);
        assert_ne!(
            anthropic_key(&with(r#""output_config":{"effort":"low"}"#), None),
            k
        );
        let beta = anthropic_key(base, Some("a-2025, b-2025"));
        assert_ne!(beta, k);
        assert_eq!(anthropic_key(base, Some("b-2025,a-2025")), beta);
    }
}
