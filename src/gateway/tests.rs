use super::*;
use crate::http::Headers;
use crate::platform::fake::{FakePlatform, Piece, Scripted};
use serde_json::Value;

use super::borrowed::handle;

fn config() -> Config {
    config_with_deployments(r#"[{"provider": "up", "model": "mock-1", "region": "us-east-1"}]"#)
}

/// Key `demo`, provider `up`, and model `demo` with these deployments.
fn config_with_deployments(deployments: &str) -> Config {
    Config::parse(&format!(
        r#"{{
        "keys": [{{"name": "demo", "sha256": "2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea"}}],
        "providers": {{"up": {{"kind": "openai", "base_url": "http://up.test/v1", "api_key_secret": "UP_KEY"}}}},
        "models": {{"demo": {{"deployments": {deployments}}}}}
    }}"#
    ))
    .unwrap()
}

fn post(body: &str, key: Option<&str>) -> Request {
    let mut headers = Headers::new();
    if let Some(k) = key {
        headers.insert("authorization", format!("Bearer {k}"));
    }
    Request {
        method: Method::Post,
        path: "/v1/chat/completions".into(),
        query: String::new(),
        headers,
        body: body.as_bytes().to_vec(),
        location: Location::default(),
    }
}

const CHAT: &str = r#"{"model":"demo","messages":[{"role":"user","content":"hi"}]}"#;
const CHAT_STREAM: &str =
    r#"{"model":"demo","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

fn run(p: &FakePlatform, req: Request) -> (Response, Vec<u8>) {
    run_with(&config(), p, req)
}

fn error_of(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice::<Value>(body).unwrap();
    v["error"].clone()
}

#[test]
fn non_streaming_forwards_with_key_and_model() {
    let p = FakePlatform::new([Scripted::json(200, r#"{"id":"x","choices":[]}"#)])
        .with_secret("UP_KEY", "sk-up");
    let (resp, body) = run(&p, post(CHAT, Some("demo")));
    assert_eq!(resp.status, 200);
    assert_eq!(body, br#"{"id":"x","choices":[]}"#);
    assert_eq!(resp.headers.get("x-meridian-deployment"), Some("up/mock-1"));
    assert_eq!(resp.headers.get("x-meridian-region"), Some("us-east-1"));
    let reqs = p.requests.borrow();
    assert_eq!(reqs[0].url, "http://up.test/v1/chat/completions");
    assert_eq!(reqs[0].headers.get("authorization"), Some("Bearer sk-up"));
    let sent: Value = serde_json::from_slice::<Value>(&reqs[0].body).unwrap();
    assert_eq!(sent["model"], "mock-1");
}

#[test]
fn streaming_passes_chunks_through_as_sse() {
    let p = FakePlatform::new([Scripted::sse(&["data: {\"a\":1}\n\n", "data: [DONE]\n\n"])])
        .with_secret("UP_KEY", "k");
    let (resp, body) = run(&p, post(CHAT_STREAM, Some("demo")));
    assert_eq!(resp.status, 200);
    assert!(resp
        .headers
        .get("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(body, b"data: {\"a\":1}\n\ndata: [DONE]\n\n");
}

#[test]
fn auth_failures_are_401_and_never_reach_upstream() {
    for key in [None, Some("wrong")] {
        let p = FakePlatform::new([]);
        let (resp, body) = run(&p, post(CHAT, key));
        assert_eq!(resp.status, 401);
        assert_eq!(error_of(&body)["type"], "authentication_error");
        assert!(p.requests.borrow().is_empty());
    }
}

#[test]
fn bad_requests_and_routes() {
    let p = FakePlatform::new([]);
    let (resp, body) = run(&p, post("{", Some("demo")));
    assert_eq!(resp.status, 400);
    assert_eq!(error_of(&body)["type"], "invalid_request_error");

    let (resp, body) = run(
        &p,
        post(
            r#"{"model":"nope","messages":[{"role":"user"}]}"#,
            Some("demo"),
        ),
    );
    assert_eq!(resp.status, 404);
    assert_eq!(error_of(&body)["code"], "model_not_found");

    let mut req = post("", None);
    req.path = "/v2/whatever".into();
    assert_eq!(run(&p, req).0.status, 404);

    let mut req = post("", None);
    req.method = Method::Get;
    assert_eq!(run(&p, req).0.status, 405);

    let mut req = post("", None);
    req.method = Method::Get;
    req.path = "/healthz".into();
    assert_eq!(run(&p, req).0.status, 200);
    assert!(p.requests.borrow().is_empty());
}

#[test]
fn models_are_listed() {
    let p = FakePlatform::new([]);
    let mut req = post("", Some("demo"));
    req.method = Method::Get;
    req.path = "/v1/models".into();
    let (resp, body) = run(&p, req);
    assert_eq!(resp.status, 200);
    let v: Value = serde_json::from_slice::<Value>(&body).unwrap();
    assert_eq!(v["data"][0]["id"], "demo");
}

#[test]
fn upstream_failures_map_to_openai_errors() {
    let cases = [
        (
            Scripted::json(500, r#"{"error":{"message":"boom"}}"#),
            502,
            "upstream_error",
        ),
        (Scripted::json(429, "{}"), 429, "upstream_rate_limited"),
        (
            Scripted::ConnectError("connection refused".into()),
            502,
            "upstream_unreachable",
        ),
        (Scripted::Hang, 504, "upstream_timeout"),
    ];
    for (script, status, code) in cases {
        let p = FakePlatform::new([script]).with_secret("UP_KEY", "k");
        let (resp, body) = run(&p, post(CHAT, Some("demo")));
        assert_eq!(resp.status, status, "{code}");
        assert_eq!(error_of(&body)["code"], code);
    }
}

#[test]
fn stream_that_fails_before_first_chunk_is_an_error_status() {
    let stall = Scripted::Respond {
        status: 200,
        headers: vec![],
        body: vec![Piece::Stall],
    };
    let fail = Scripted::Respond {
        status: 200,
        headers: vec![],
        body: vec![Piece::Fail("reset".into())],
    };
    let empty = Scripted::Respond {
        status: 200,
        headers: vec![],
        body: vec![],
    };
    for (script, status, code) in [
        (stall, 504, "upstream_timeout"),
        (fail, 502, "upstream_stream_error"),
        (empty, 502, "upstream_empty_stream"),
    ] {
        let p = FakePlatform::new([script]).with_secret("UP_KEY", "k");
        let (resp, body) = run(&p, post(CHAT_STREAM, Some("demo")));
        assert_eq!(resp.status, status);
        assert_eq!(error_of(&body)["code"], code);
    }
}

#[test]
fn missing_provider_secret_is_a_clear_500() {
    let p = FakePlatform::new([]);
    let (resp, body) = run(&p, post(CHAT, Some("demo")));
    assert_eq!(resp.status, 500);
    assert!(error_of(&body)["message"]
        .as_str()
        .unwrap()
        .contains("UP_KEY is not set"));
}

#[test]
fn invalid_config_answers_500_naming_the_problem() {
    let err = Config::parse("{}").unwrap_err();
    let p = FakePlatform::new([]);
    let (resp, body) = p.run(async {
        let mut r = handle(Err(&err), &p, &State::new(1), post(CHAT, Some("demo"))).await;
        let b = std::mem::replace(&mut r.body, Body::Empty)
            .collect()
            .await
            .unwrap();
        (r, b)
    });
    assert_eq!(resp.status, 500);
    assert!(error_of(&body)["message"]
        .as_str()
        .unwrap()
        .contains("keys: at least one gateway key"));
}

fn multi_config() -> Config {
    Config::parse(
        r#"{
        "keys": [{"name": "demo", "sha256": "2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea"}],
        "providers": {
            "az": {"kind": "azure", "base_url": "https://res.openai.azure.com/", "api_version": "2024-10-21", "api_key_secret": "AZ_KEY"},
            "oa": {"kind": "openai", "api_key_secret": "OA_KEY", "region": "us-east-1"}
        },
        "models": {"gpt": {"deployments": [{"provider": "az", "model": "gpt-4o-deploy", "region": "eastus"}]}}
    }"#,
    )
    .unwrap()
}

fn run_with(cfg: &Config, p: &FakePlatform, req: Request) -> (Response, Vec<u8>) {
    p.run_collected(handle(Ok(cfg), p, &State::new(1), req))
}

#[test]
fn azure_gets_deployment_url_api_version_and_api_key_header() {
    let p = FakePlatform::new([Scripted::json(200, r#"{"id":"x","choices":[]}"#)])
        .with_secret("AZ_KEY", "az-secret");
    let (resp, _) = run_with(
        &multi_config(),
        &p,
        post(&CHAT.replace("demo", "gpt"), Some("demo")),
    );
    assert_eq!(resp.status, 200);
    let reqs = p.requests.borrow();
    assert_eq!(
        reqs[0].url,
        "https://res.openai.azure.com/openai/deployments/gpt-4o-deploy/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(reqs[0].headers.get("api-key"), Some("az-secret"));
    assert_eq!(reqs[0].headers.get("authorization"), None);
}

#[test]
fn provider_slash_model_addresses_a_provider_directly() {
    let p = FakePlatform::new([Scripted::json(200, r#"{"id":"x","choices":[]}"#)])
        .with_secret("OA_KEY", "k");
    let (resp, _) = run_with(
        &multi_config(),
        &p,
        post(&CHAT.replace("demo", "oa/gpt-4.1-nano"), Some("demo")),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.headers.get("x-meridian-deployment"),
        Some("oa/gpt-4.1-nano")
    );
    assert_eq!(resp.headers.get("x-meridian-region"), Some("us-east-1"));
    let reqs = p.requests.borrow();
    assert_eq!(reqs[0].url, "https://api.openai.com/v1/chat/completions");
    let sent: Value = serde_json::from_slice::<Value>(&reqs[0].body).unwrap();
    assert_eq!(sent["model"], "gpt-4.1-nano");

    // An unknown provider is not found; an empty segment is not a valid model name at all.
    for (name, status) in [("nope/x", 404), ("oa/", 400), ("/x", 400)] {
        let p = FakePlatform::new([]);
        let (resp, _) = run_with(
            &multi_config(),
            &p,
            post(&CHAT.replace("demo", name), Some("demo")),
        );
        assert_eq!(resp.status, status, "{name}");
        assert!(p.requests.borrow().is_empty());
    }
}

/// `demo` with two deployments, so that routing has a choice to learn for.
fn config_with_choice() -> Config {
    config_with_deployments(
        r#"[{"provider": "up", "model": "mock-1", "region": "eu-central-1"},
            {"provider": "up", "model": "mock-2", "region": "us-west-2"}]"#,
    )
}

/// A platform whose provider answers `n` requests, and a chat request from Frankfurt (colo FRA).
fn answering_from_fra(n: usize) -> (FakePlatform, Request) {
    let p = FakePlatform::new((0..n).map(|_| Scripted::json(200, r#"{"id":"x","choices":[]}"#)))
        .with_secret("UP_KEY", "k");
    let mut req = post(CHAT, Some("demo"));
    req.location = Location {
        colo: Some("FRA".into()),
        lat_lon: Some((50.1, 8.7)),
    };
    (p, req)
}

#[test]
fn a_model_without_a_choice_neither_waits_for_nor_writes_routing_state() {
    let cfg = config();
    let (p, req) = answering_from_fra(2);
    let state = State::new(1);
    p.run(handle(Ok(&cfg), &p, &state, req.clone()));
    assert!(
        !state.loaded.get(),
        "one deployment: nothing to load estimates for"
    );
    p.clock.advance(20_000 - p.elapsed_ms());
    p.run(handle(Ok(&cfg), &p, &state, req));
    assert!(
        p.kv.borrow().is_empty(),
        "an isolate that never read the location's estimates does not overwrite them"
    );
}

#[test]
fn learned_estimates_persist_per_location_and_warm_a_fresh_isolate() {
    let cfg = config_with_choice();
    let (p, req) = answering_from_fra(3);
    let state = State::new(1);
    p.run(handle(Ok(&cfg), &p, &state, req.clone()));
    assert!(p.kv.borrow().is_empty(), "writes are debounced");
    p.clock.advance(20_000 - p.elapsed_ms());
    p.run(handle(Ok(&cfg), &p, &state, req.clone()));
    let saved =
        p.kv.borrow()
            .get("routing/v1/FRA")
            .cloned()
            .expect("persisted under the colo");
    assert!(saved.contains("up/mock-1"), "{saved}");

    // A fresh isolate in the same location starts from what was learned.
    let fresh = State::new(2);
    p.run(handle(Ok(&cfg), &p, &fresh, req));
    let router = fresh.router.borrow();
    let loc = Location::default();
    let status = router.status(
        cfg.models
            .iter()
            .map(|(n, m)| (n.as_str(), m.deployments())),
        &loc,
        p.now_ms(),
    );
    let samples = status.models["demo"][0].samples;
    let status = serde_json::to_string(&status).unwrap();
    assert!(samples >= 1, "{status}");
}
