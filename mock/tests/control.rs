//! Control API, counters, reset and configuration.

mod common;

use common::*;
use meridian_mock::{Knobs, MockConfig};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_last_request_and_reset() {
    let mock = start(r#"{"regions":{"us-east":{"header_delay_ms":1},"eu-west":{}}}"#).await;
    assert_eq!(
        control(&mock, "GET", "/_mock/health", None).await.text(),
        "ok"
    );
    let stats = control(&mock, "GET", "/_mock/stats", None).await.json();
    assert_eq!(
        stats,
        json!({"regions":{
            "us-east":{"requests":0,"tail_hits":0,"streams_abandoned":0,"raw_bytes_sent":0,"last_request":null},
            "eu-west":{"requests":0,"tail_hits":0,"streams_abandoned":0,"raw_bytes_sent":0,"last_request":null}}})
    );

    let addr = mock.region_addr("us-east").unwrap();
    for i in 0..3 {
        let body = json!({"model":"m","messages":[{"role":"user","content":format!("q{i}")}]});
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            request(
                addr,
                "POST",
                "/openai/v1/chat/completions?api-version=2024-10-21",
                Some(&body.to_string()),
                &[
                    ("Authorization", "Bearer sk-test"),
                    ("X-Custom-Thing", "abc"),
                ],
            ),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(r.status, 200);
    }
    let stats = control(&mock, "GET", "/_mock/stats", None).await.json();
    let us = &stats["regions"]["us-east"];
    assert_eq!(us["requests"], 3);
    let last = &us["last_request"];
    assert_eq!(last["method"], "POST");
    assert_eq!(last["path"], "/openai/v1/chat/completions");
    assert_eq!(last["query"], "api-version=2024-10-21");
    assert_eq!(last["headers"]["authorization"], "Bearer sk-test");
    assert_eq!(last["headers"]["x-custom-thing"], "abc");
    assert_eq!(last["headers"]["content-type"], "application/json");
    assert_eq!(last["body"]["messages"][0]["content"], "q2");
    assert_eq!(stats["regions"]["eu-west"]["requests"], 0);

    // Faulted and malformed requests count too.
    set_knobs(
        &mock,
        "eu-west",
        json!({"status": 500, "header_delay_ms": 7}),
    )
    .await;
    chat(&mock, "eu-west", "not json").await;
    let stats = control(&mock, "GET", "/_mock/stats", None).await.json();
    assert_eq!(stats["regions"]["eu-west"]["requests"], 1);
    assert_eq!(
        stats["regions"]["eu-west"]["last_request"]["body"],
        "not json"
    );
    set_knobs(&mock, "us-east", json!({"ttft_ms": 3})).await;

    let r = control(&mock, "POST", "/_mock/reset", None).await;
    assert_eq!(r.status, 200);
    let stats = control(&mock, "GET", "/_mock/stats", None).await.json();
    assert_eq!(
        stats["regions"]["us-east"],
        json!({"requests":0,"tail_hits":0,"streams_abandoned":0,"raw_bytes_sent":0,"last_request":null})
    );
    assert_eq!(
        stats["regions"]["eu-west"],
        json!({"requests":0,"tail_hits":0,"streams_abandoned":0,"raw_bytes_sent":0,"last_request":null})
    );
    let all = control(&mock, "GET", "/_mock/regions", None).await.json();
    assert_eq!(
        all,
        json!({"regions":{"us-east":{"header_delay_ms":1},"eu-west":{}}})
    );
    assert_eq!(
        chat(&mock, "eu-west", &user_body("x", false)).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_merge_and_replace() {
    let mock = start(r#"{"regions":{"r":{"header_delay_ms":5}}}"#).await;
    let k = set_knobs(
        &mock,
        "r",
        json!({"status": 500, "error_headers": {"x-a": "1"}}),
    )
    .await;
    assert_eq!(
        k,
        json!({"header_delay_ms":5,"status":500,"error_headers":{"x-a":"1"}})
    );
    let k = set_knobs(&mock, "r", json!({"status": null, "ttft_ms": 2})).await;
    assert_eq!(
        k,
        json!({"header_delay_ms":5,"ttft_ms":2,"error_headers":{"x-a":"1"}})
    );
    // Empty body merge is a no-op that returns the knobs.
    let r = control(&mock, "POST", "/_mock/regions/r", None).await;
    assert_eq!(r.json(), k);

    let r = control(
        &mock,
        "PUT",
        "/_mock/regions/r",
        Some(r#"{"reply_words":3}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"reply_words":3}));
    let r = control(&mock, "PUT", "/_mock/regions/r", Some("{}")).await;
    assert_eq!(r.json(), json!({}));
    let r = control(&mock, "GET", "/_mock/regions/r", None).await;
    assert_eq!(r.json(), json!({}));

    // Errors leave the knobs unchanged.
    for (method, path, body, status) in [
        ("POST", "/_mock/regions/nope", "{}", 404),
        ("PUT", "/_mock/regions/nope", "{}", 404),
        ("POST", "/_mock/regions/r", r#"{"no_such_knob":1}"#, 400),
        ("POST", "/_mock/regions/r", r#"{"status":"500"}"#, 400),
        ("POST", "/_mock/regions/r", r#"{"status":99}"#, 400),
        ("POST", "/_mock/regions/r", r#"{"header_delay_ms":-1}"#, 400),
        (
            "POST",
            "/_mock/regions/r",
            r#"{"error_headers":{"bad header":"x"}}"#,
            400,
        ),
        (
            "POST",
            "/_mock/regions/r",
            r#"{"error_headers":{"content-length":"1"}}"#,
            400,
        ),
        ("POST", "/_mock/regions/r", "[1]", 400),
        ("PUT", "/_mock/regions/r", "{oops", 400),
        ("GET", "/_mock/nothing", "", 404),
    ] {
        let body = (!body.is_empty()).then_some(body);
        let r = control(&mock, method, path, body).await;
        assert_eq!(r.status, status, "{method} {path} {body:?}: {}", r.text());
        assert!(r.json()["error"].is_string());
    }
    let r = control(&mock, "GET", "/_mock/regions/r", None).await;
    assert_eq!(r.json(), json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_knobs_apply_and_announcement() {
    let mock = start(
        r#"{"control_port":0,"regions":{"us-east":{"port":0,"reply_words":2},"eu-west":{"port":0,"status":418}}}"#,
    )
    .await;
    let ann: Value = serde_json::from_str(&mock.announcement()).unwrap();
    assert_eq!(ann["control"], mock.control_url());
    let regions = ann["regions"].as_object().unwrap();
    assert_eq!(regions.len(), 2);
    for (name, url) in regions {
        let url = url.as_str().unwrap();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        assert_eq!(Some(url.to_string()), mock.region_url(name));
    }
    assert_eq!(mock.control_addr().ip().to_string(), "127.0.0.1");
    let v = chat(&mock, "us-east", &user_body("q", false)).await.json();
    assert_eq!(v["usage"]["completion_tokens"], 2);
    assert_eq!(
        chat(&mock, "eu-west", &user_body("q", false)).await.status,
        418
    );
}

#[test]
fn config_parsing() {
    let d = MockConfig::default();
    assert_eq!(d.control_port, 0);
    assert_eq!(d.regions.keys().collect::<Vec<_>>(), vec!["default"]);
    assert_eq!(MockConfig::from_json_str("{}").unwrap(), d);

    let c = MockConfig::from_json_str(
        r#"{"host":"127.0.0.1","control_port":9,"regions":{"x":{"port":7,"token_gap_ms":3,"hang":null}}}"#,
    )
    .unwrap();
    assert_eq!(c.control_port, 9);
    assert_eq!(c.regions["x"].port, 7);
    assert_eq!(
        c.regions["x"].knobs,
        Knobs {
            token_gap_ms: Some(3),
            ..Knobs::default()
        }
    );

    for (bad, needle) in [
        (r#"{"host":"0.0.0.0"}"#, "only binds to 127.0.0.1"),
        (
            r#"{"regions":{"x":{"host":"::"}}}"#,
            "only binds to 127.0.0.1",
        ),
        (r#"{"regions":{}}"#, "must not be empty"),
        (r#"{"regions":{"a b":{}}}"#, "invalid region name"),
        (r#"{"regions":{"x":{"port":70000}}}"#, "port"),
        (r#"{"regions":{"x":{"latency":3}}}"#, "unknown field"),
        (r#"{"control":1}"#, "unknown field"),
        ("[]", "JSON object"),
        ("{", "not valid JSON"),
    ] {
        let err = MockConfig::from_json_str(bad).unwrap_err().to_string();
        assert!(err.contains(needle), "{bad}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_port_is_a_clear_error() {
    let mock = start("{}").await;
    let port = mock.control_addr().port();
    let config = MockConfig::from_json_str(&format!(r#"{{"control_port":{port}}}"#)).unwrap();
    let err = meridian_mock::start(config)
        .await
        .err()
        .expect("bind fails");
    assert!(err.to_string().contains("cannot bind 127.0.0.1"), "{err}");
}
