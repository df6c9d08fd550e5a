//! Anthropic Messages dialect.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const ONE: &str = r#"{"regions":{"r1":{}}}"#;
const PATH: &str = "/v1/messages";
const HEADERS: &[(&str, &str)] = &[
    ("anthropic-version", "2023-06-01"),
    ("x-api-key", "sk-ant-test"),
];

fn body(text: &str, stream: bool) -> String {
    json!({"model": "claude-test", "max_tokens": 100, "stream": stream,
           "messages": [{"role": "user", "content": text}]})
    .to_string()
}

fn names(r: &Resp) -> Vec<String> {
    r.events
        .iter()
        .map(|e| e.name.clone().unwrap_or_default())
        .collect()
}

/// `content_block_delta` events as (event, delta object).
fn deltas(r: &Resp) -> Vec<(Event, Value)> {
    r.events
        .iter()
        .filter(|e| e.name.as_deref() == Some("content_block_delta"))
        .map(|e| {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(v["type"], "content_block_delta");
            assert_eq!(v["index"], 0);
            (e.clone(), v["delta"].clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_content_and_usage() {
    let mock = start(ONE).await;
    let req = json!({
        "model": "claude-x",
        "max_tokens": 1024,
        "system": "be  brief",
        "messages": [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [
                {"type": "text", "text": "hello big"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}},
                {"type": "text", "text": "world"}
            ]}
        ]
    });
    let r = post(&mock, "r1", PATH, &req.to_string(), HEADERS).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.complete);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-mock-region"), Some("r1"));
    assert_eq!(
        r.json(),
        json!({
            "id": "msg_mock_92848ab48ae2747d",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [{"type": "text", "text": "Echo: hello big world"}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            // system 2 + 2 + 1 + 2 + 1 words; 4 pieces
            "usage": {"input_tokens": 8, "output_tokens": 4}
        })
    );

    // max_tokens truncates.
    let req = json!({"model": "m", "max_tokens": 2,
        "messages": [{"role": "user", "content": "one two three"}]});
    let v = post(&mock, "r1", PATH, &req.to_string(), HEADERS)
        .await
        .json();
    assert_eq!(v["content"][0]["text"], "Echo: one");
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["usage"]["output_tokens"], 2);

    // reply_words applies, and any prefix ending in /messages works.
    set_knobs(&mock, "r1", json!({"reply_words": 6})).await;
    let r = post(
        &mock,
        "r1",
        "/anthropic/v1/messages?beta=true",
        &body("hello big world", false),
        HEADERS,
    )
    .await;
    assert_eq!(
        r.json()["content"][0]["text"],
        "meadow golf kilo mike oscar yankee"
    );

    let stats = control(&mock, "GET", "/_mock/stats", None).await.json();
    let r1 = &stats["regions"]["r1"];
    assert_eq!(r1["requests"], 3);
    assert_eq!(r1["last_request"]["path"], "/anthropic/v1/messages");
    assert_eq!(r1["last_request"]["query"], "beta=true");
    assert_eq!(
        r1["last_request"]["headers"]["anthropic-version"],
        "2023-06-01"
    );
    assert_eq!(r1["last_request"]["body"]["model"], "claude-test");
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_shape() {
    let mock = start(ONE).await;
    let req = json!({"model": "claude-s", "max_tokens": 50, "stream": true,
        "system": [{"type": "text", "text": "sys"}],
        "messages": [{"role": "user", "content": "one two three"}]});
    let r = post(&mock, "r1", PATH, &req.to_string(), HEADERS).await;
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(
        names(&r),
        vec![
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let ev = r.event_json();
    for (e, name) in ev.iter().zip(names(&r)) {
        assert_eq!(e["type"], name.as_str());
    }
    assert_eq!(
        ev[0]["message"],
        json!({"id": "msg_mock_a63947c27151dd91", "type": "message", "role": "assistant",
               "model": "claude-s", "content": [], "stop_reason": null, "stop_sequence": null,
               "usage": {"input_tokens": 4, "output_tokens": 1}})
    );
    assert_eq!(
        ev[1],
        json!({"type": "content_block_start", "index": 0,
               "content_block": {"type": "text", "text": ""}})
    );
    assert_eq!(ev[2], json!({"type": "ping"}));
    let text: Vec<String> = deltas(&r)
        .into_iter()
        .map(|(_, d)| {
            assert_eq!(d["type"], "text_delta");
            d["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(text, vec!["Echo:", " one", " two", " three"]);
    assert_eq!(ev[7], json!({"type": "content_block_stop", "index": 0}));
    assert_eq!(
        ev[8],
        json!({"type": "message_delta",
               "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": 4}})
    );
    assert_eq!(ev[9], json!({"type": "message_stop"}));

    // Truncated stream.
    let req = json!({"model": "m", "max_tokens": 1, "stream": true,
        "messages": [{"role": "user", "content": "one two three"}]});
    let r = post(&mock, "r1", PATH, &req.to_string(), HEADERS).await;
    assert_eq!(deltas(&r).len(), 1);
    let ev = r.event_json();
    assert_eq!(ev[ev.len() - 2]["delta"]["stop_reason"], "max_tokens");
    assert_eq!(ev[ev.len() - 2]["usage"]["output_tokens"], 1);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_pacing() {
    let mock =
        start(r#"{"regions":{"r1":{"header_delay_ms":60,"ttft_ms":80,"token_gap_ms":30}}}"#).await;
    // "Echo: a b c d" -> 5 deltas.
    let r = post(&mock, "r1", PATH, &body("a b c d", true), HEADERS).await;
    assert!(r.complete);
    assert!(r.head_at >= Duration::from_millis(60), "{:?}", r.head_at);
    let d = deltas(&r);
    assert_eq!(d.len(), 5);
    // message_start arrives with the headers, before ttft.
    assert!(r.events[0].at <= d[0].0.at);
    let ttft = d[0].0.at - r.head_at;
    assert!(ttft >= Duration::from_millis(70), "ttft {ttft:?}");
    let spread = d[4].0.at - d[0].0.at;
    assert!(spread >= Duration::from_millis(100), "spread {spread:?}");

    // Non-streaming: header delay + ttft before the response.
    let r = post(&mock, "r1", PATH, &body("a", false), HEADERS).await;
    assert!(r.head_at >= Duration::from_millis(130), "{:?}", r.head_at);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_fields_and_headers() {
    let mock = start(ONE).await;
    let check = |r: Resp, what: &str| {
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        let v = r.json();
        assert_eq!(v["type"], "error", "{what}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{what}");
        assert!(v["error"]["message"].is_string(), "{what}");
        v
    };
    let v = check(
        post(&mock, "r1", PATH, &body("hi", false), &[("x-api-key", "k")]).await,
        "no version",
    );
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anthropic-version"));
    for bad in [
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        r#"{"model":"m","max_tokens":"10","messages":[]}"#,
        r#"{"max_tokens":10,"messages":[]}"#,
        r#"{"model":"m","max_tokens":10}"#,
        "{nope",
    ] {
        check(post(&mock, "r1", PATH, bad, HEADERS).await, bad);
    }
    let stats = control(&mock, "GET", "/_mock/stats", None).await.json();
    assert_eq!(stats["regions"]["r1"]["requests"], 6);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_use_the_anthropic_error_shape() {
    let mock = start(r#"{"regions":{"r1":{"status":529,"retry_after":3}}}"#).await;
    for (code, ty) in [
        (529, "overloaded_error"),
        (503, "overloaded_error"),
        (429, "rate_limit_error"),
        (401, "authentication_error"),
        (400, "invalid_request_error"),
        (500, "api_error"),
        (502, "api_error"),
    ] {
        set_knobs(&mock, "r1", json!({"status": code})).await;
        let r = post(&mock, "r1", PATH, &body("hi", true), HEADERS).await;
        assert_eq!(r.status, code);
        assert_eq!(r.header("retry-after"), Some("3"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.json(),
            json!({"type": "error", "error": {"type": ty, "message": format!("mock fault: status {code}")}})
        );
    }
    // Faults come before header checks; fail_next is transient.
    set_knobs(&mock, "r1", json!({"status": 429, "fail_next": 1})).await;
    let r = post(&mock, "r1", PATH, &body("hi", false), &[]).await;
    assert_eq!(r.status, 429);
    let r = post(&mock, "r1", PATH, &body("hi", false), HEADERS).await;
    assert_eq!(r.status, 200);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_after_and_malformed() {
    let mock = start(r#"{"regions":{"r1":{"cut_after":2}}}"#).await;
    let r = post(&mock, "r1", PATH, &body("one two three", true), HEADERS).await;
    assert_eq!(r.status, 200);
    assert!(!r.complete);
    assert_eq!(
        names(&r),
        vec![
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta"
        ]
    );
    let r = post(&mock, "r1", PATH, &body("one two three", false), HEADERS).await;
    assert!(!r.complete);
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());

    set_knobs(
        &mock,
        "r1",
        json!({"cut_after": null, "malformed_sse": true}),
    )
    .await;
    let r = post(&mock, "r1", PATH, &body("x", true), HEADERS).await;
    assert!(r.complete);
    assert_eq!(r.events[0].name.as_deref(), Some("message_start"));
    assert_eq!(r.events[0].data, "{not json");
    assert_eq!(r.events[1].name.as_deref(), Some("message_start"));
    assert!(serde_json::from_str::<Value>(&r.events[1].data).is_ok());
    assert_eq!(
        r.events.last().unwrap().name.as_deref(),
        Some("message_stop")
    );
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_use_replies() {
    let mock = start(ONE).await;
    let tools = json!([
        {"name": "search", "description": "d", "input_schema": {"type": "object"}},
        {"name": "get_weather", "description": "d", "input_schema": {"type": "object"}}
    ]);
    let req = |text: &str, stream: bool| {
        json!({"model": "m", "max_tokens": 100, "stream": stream, "tools": tools,
               "messages": [{"role": "user", "content": text}]})
        .to_string()
    };
    let v = post(
        &mock,
        "r1",
        PATH,
        &req("call get_weather Paris", false),
        HEADERS,
    )
    .await
    .json();
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(
        v["content"],
        json!([{"type": "tool_use", "id": "toolu_mock_0", "name": "get_weather",
                "input": {"query": "Paris"}}])
    );
    assert_eq!(v["usage"]["output_tokens"], 3);
    // Unknown second word: first tool, whole rest as the query.
    let v = post(&mock, "r1", PATH, &req("call Paris now", false), HEADERS)
        .await
        .json();
    assert_eq!(v["content"][0]["name"], "search");
    assert_eq!(v["content"][0]["input"], json!({"query": "Paris now"}));

    let r = post(
        &mock,
        "r1",
        PATH,
        &req("call get_weather Paris", true),
        HEADERS,
    )
    .await;
    assert!(r.complete);
    let ev = r.event_json();
    assert_eq!(
        ev[1],
        json!({"type": "content_block_start", "index": 0,
               "content_block": {"type": "tool_use", "id": "toolu_mock_0", "name": "get_weather", "input": {}}})
    );
    let fragments: Vec<String> = deltas(&r)
        .into_iter()
        .map(|(_, d)| {
            assert_eq!(d["type"], "input_json_delta");
            d["partial_json"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(fragments.len(), 3);
    assert_eq!(fragments.concat(), r#"{"query":"Paris"}"#);
    let md = ev.iter().find(|e| e["type"] == "message_delta").unwrap();
    assert_eq!(md["delta"]["stop_reason"], "tool_use");

    // No tools, or the conversation does not end with the user: plain echo.
    let no_tools = json!({"model": "m", "max_tokens": 100,
        "messages": [{"role": "user", "content": "call get_weather Paris"}]});
    let v = post(&mock, "r1", PATH, &no_tools.to_string(), HEADERS)
        .await
        .json();
    assert_eq!(v["content"][0]["text"], "Echo: call get_weather Paris");
    let after_result = json!({"model": "m", "max_tokens": 100, "tools": tools, "messages": [
        {"role": "user", "content": "call get_weather Paris"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_mock_0", "name": "get_weather", "input": {"query": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_mock_0", "content": "sunny"}]}
    ]});
    let v = post(&mock, "r1", PATH, &after_result.to_string(), HEADERS)
        .await
        .json();
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["content"][0]["text"], "Echo:");
    mock.shutdown().await;
}
