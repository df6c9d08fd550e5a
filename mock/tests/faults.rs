//! Fault injection knobs.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const TWO: &str = r#"{"regions":{"a":{},"b":{}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_fault_with_header_delay() {
    let mock = start(r#"{"regions":{"a":{"status":503,"header_delay_ms":80}}}"#).await;
    let r = chat(&mock, "a", &user_body("hi", true)).await;
    assert_eq!(r.status, 503);
    assert!(r.head_at >= Duration::from_millis(80), "{:?}", r.head_at);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-mock-region"), Some("a"));
    assert_eq!(
        r.json(),
        json!({"error":{"message":"mock fault: status 503","type":"server_error","code":null}})
    );
    // Persistent: the next one fails too, and so does a bad request.
    assert_eq!(chat(&mock, "a", "{").await.status, 503);

    for (code, ty) in [(400, "invalid_request_error"), (500, "server_error")] {
        set_knobs(&mock, "a", json!({"status": code, "header_delay_ms": null})).await;
        let r = chat(&mock, "a", &user_body("hi", false)).await;
        assert_eq!(r.status, code);
        assert_eq!(r.json()["error"]["type"], ty);
        assert_eq!(
            r.json()["error"]["message"],
            format!("mock fault: status {code}")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_body_and_error_headers() {
    let mock = start(TWO).await;
    set_knobs(
        &mock,
        "a",
        json!({
            "status": 502,
            "error_body": "{\"error\":\"upstream secret sk-live-123\"}",
            "error_headers": {"x-request-id": "req-9", "Set-Cookie": "s=1"}
        }),
    )
    .await;
    let r = chat(&mock, "a", &user_body("hi", false)).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.text(), "{\"error\":\"upstream secret sk-live-123\"}");
    assert_eq!(r.header("x-request-id"), Some("req-9"));
    assert_eq!(r.header("set-cookie"), Some("s=1"));
    // Region b is untouched.
    let r = chat(&mock, "b", &user_body("hi", false)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_with_retry_after() {
    let mock = start(r#"{"regions":{"a":{"status":429,"retry_after":7}}}"#).await;
    let r = chat(&mock, "a", &user_body("hi", false)).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    set_knobs(
        &mock,
        "a",
        json!({"retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"}),
    )
    .await;
    let r = chat(&mock, "a", &user_body("hi", false)).await;
    assert_eq!(
        r.header("retry-after"),
        Some("Wed, 21 Oct 2015 07:28:00 GMT")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_next_is_transient() {
    let mock = start(TWO).await;
    let k = set_knobs(&mock, "a", json!({"fail_next": 2})).await;
    assert_eq!(k, json!({"fail_next": 2}));
    for _ in 0..2 {
        let r = chat(&mock, "a", &user_body("hi", false)).await;
        assert_eq!(r.status, 500);
        assert_eq!(r.json()["error"]["message"], "mock fault: status 500");
    }
    for _ in 0..3 {
        assert_eq!(chat(&mock, "a", &user_body("hi", false)).await.status, 200);
    }
    let k = control(&mock, "GET", "/_mock/regions/a", None).await.json();
    assert_eq!(k, json!({"fail_next": 0}));

    // With a status: that status is used, and it stops once fail_next runs out.
    set_knobs(
        &mock,
        "a",
        json!({"fail_next": 1, "status": 503, "retry_after": 1}),
    )
    .await;
    let r = chat(&mock, "a", &user_body("hi", true)).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = chat(&mock, "a", &user_body("hi", true)).await;
    assert_eq!(r.status, 200);
    assert!(r.complete);

    let stats = control(&mock, "GET", "/_mock/stats", None).await.json();
    assert_eq!(stats["regions"]["a"]["requests"], 7);
    assert_eq!(stats["regions"]["b"]["requests"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_after_stream_ends_without_done() {
    let mock = start(r#"{"regions":{"a":{"cut_after":2,"token_gap_ms":5}}}"#).await;
    let r = chat(&mock, "a", &user_body("one two three four", true)).await;
    assert_eq!(r.status, 200);
    assert!(!r.complete, "chunked stream must be cut, not terminated");
    let content: Vec<String> = r.content_events().into_iter().map(|(_, c)| c).collect();
    assert_eq!(content, vec!["Echo:".to_string(), " one".to_string()]);
    assert!(r.events.iter().all(|e| e.data != "[DONE]"));
    assert!(r
        .events
        .iter()
        .all(|e| !e.data.contains("\"finish_reason\":\"stop\"")));
    assert_eq!(r.events.len(), 3, "role + 2 content: {:?}", r.events);

    // cut_after 0: only the role chunk. cut_after >= pieces: all content, no finish.
    for (n, expect) in [(0, 0), (50, 5)] {
        set_knobs(&mock, "a", json!({"cut_after": n})).await;
        let r = chat(&mock, "a", &user_body("one two three four", true)).await;
        assert!(!r.complete);
        assert_eq!(r.content_events().len(), expect);
        assert!(r.events.iter().all(|e| e.data != "[DONE]"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_after_non_stream_truncates_body() {
    let mock = start(r#"{"regions":{"a":{"cut_after":1}}}"#).await;
    let r = chat(&mock, "a", &user_body("hello there", false)).await;
    assert_eq!(r.status, 200);
    assert!(!r.complete);
    let promised: usize = r.header("content-length").unwrap().parse().unwrap();
    assert!(!r.body.is_empty());
    assert!(r.body.len() < promised, "{} vs {promised}", r.body.len());
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sse_first_event() {
    let mock = start(r#"{"regions":{"a":{"malformed_sse":true}}}"#).await;
    let r = chat(&mock, "a", &user_body("x y", true)).await;
    assert!(r.complete);
    assert_eq!(r.events[0].data, "{not json");
    assert!(serde_json::from_str::<Value>(&r.events[0].data).is_err());
    assert!(r.events[1].data.contains("\"role\":\"assistant\""));
    let content: String = r.content_events().into_iter().map(|(_, c)| c).collect();
    assert_eq!(content, "Echo: x y");
    assert_eq!(r.events.last().unwrap().data, "[DONE]");
    // Non-streaming responses are unaffected.
    let r = chat(&mock, "a", &user_body("x y", false)).await;
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Echo: x y");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_holds_the_request_but_others_are_served() {
    let mock = start(TWO).await;
    set_knobs(
        &mock,
        "a",
        json!({"hang": true, "status": 500, "fail_next": 3}),
    )
    .await;
    let a = mock.region_addr("a").unwrap();
    let body = user_body("hi", false);
    let hung = tokio::spawn(async move {
        tokio::time::timeout(
            Duration::from_millis(400),
            request(a, "POST", "/v1/chat/completions", Some(&body), &[]),
        )
        .await
    });
    // While it hangs, everything else works.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(chat(&mock, "b", &user_body("hi", false)).await.status, 200);
    assert_eq!(
        control(&mock, "GET", "/_mock/health", None).await.status,
        200
    );
    assert!(hung.await.unwrap().is_err(), "client must time out");

    // hang wins over faults and does not consume fail_next.
    let k = control(&mock, "GET", "/_mock/regions/a", None).await.json();
    assert_eq!(k["fail_next"], 3);
    let stats = control(&mock, "GET", "/_mock/stats", None).await.json();
    assert_eq!(stats["regions"]["a"]["requests"], 1);
    assert_eq!(
        stats["regions"]["a"]["last_request"]["path"],
        "/v1/chat/completions"
    );

    // Un-hang: the region answers again (fail_next now applies).
    set_knobs(
        &mock,
        "a",
        json!({"hang": null, "fail_next": null, "status": null}),
    )
    .await;
    assert_eq!(chat(&mock, "a", &user_body("hi", false)).await.status, 200);

    // Shutdown does not wait for hung requests.
    set_knobs(&mock, "a", json!({"hang": true})).await;
    let a = mock.region_addr("a").unwrap();
    let pending =
        tokio::spawn(
            async move { request(a, "POST", "/v1/chat/completions", Some("{}"), &[]).await },
        );
    tokio::time::sleep(Duration::from_millis(50)).await;
    tokio::time::timeout(Duration::from_secs(5), mock.shutdown())
        .await
        .expect("shutdown is prompt");
    let res = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("hung client released on shutdown")
        .unwrap();
    assert!(res.is_err(), "connection closed without a response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_chunks_arrive_as_separate_writes_in_order_and_can_be_cut() {
    let mock = start(r#"{"regions":{"a":{}}}"#).await;
    set_knobs(
        &mock,
        "a",
        json!({"raw_chunks": [
            {"text": "data: {\"a\""},
            {"text": ":1}\n\n", "delay_ms": 80},
            {"bytes": [100, 97, 116, 97, 58, 32, 255, 10, 10], "repeat": 2, "delay_ms": 80}
        ]}),
    )
    .await;
    let r = chat(&mock, "a", &user_body("x", true)).await;
    assert_eq!(r.status, 200);
    assert!(r.complete);
    let mut expect = b"data: {\"a\":1}\n\n".to_vec();
    expect.extend_from_slice(b"data: \xff\n\ndata: \xff\n\n");
    assert_eq!(r.body, expect);
    // The pieces came in separate reads, spaced by their delays.
    assert!(r.marks.len() >= 3, "{:?}", r.marks);
    assert!(r.marks.last().unwrap().0 >= Duration::from_millis(150));
    let stats = control(&mock, "GET", "/_mock/stats", None).await.json();
    assert_eq!(stats["regions"]["a"]["raw_bytes_sent"], expect.len());

    set_knobs(
        &mock,
        "a",
        json!({"raw_chunks": [{"text": "data: {}\n\n"}], "raw_cut": true}),
    )
    .await;
    let r = chat(&mock, "a", &user_body("x", true)).await;
    assert!(!r.complete, "cut, not terminated");
    assert_eq!(r.body, b"data: {}\n\n");

    // Exactly one of text and bytes; not together with raw_body.
    let bad = control(
        &mock,
        "POST",
        "/_mock/regions/a",
        Some(r#"{"raw_chunks":[{"text":"a","bytes":[1]}]}"#),
    )
    .await;
    assert_eq!(bad.status, 400);
    let bad = control(
        &mock,
        "POST",
        "/_mock/regions/a",
        Some(r#"{"raw_chunks":[],"raw_body":"x"}"#),
    )
    .await;
    assert_eq!(bad.status, 400);
}
