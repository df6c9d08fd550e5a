//! Latency-tail knobs: `tail_every` / `tail_ms` and `ttft_jitter_ms`.
//!
//! Timing assertions are lower bounds only, so they hold on a loaded machine;
//! which request got the tail is checked exactly through `tail_hits`.

mod common;

use std::time::Duration;

use common::*;
use meridian_mock::{MockConfig, RunningMock};
use serde_json::json;

const TAIL: Duration = Duration::from_millis(300);

async fn tail_hits(mock: &RunningMock, region: &str) -> u64 {
    let stats = control(mock, "GET", "/_mock/stats", None).await.json();
    stats["regions"][region]["tail_hits"]
        .as_u64()
        .unwrap_or_else(|| panic!("no tail_hits in {stats}"))
}

/// Time to first content: the response head for a non-stream reply, the
/// first content event for a stream.
fn ttft(r: &Resp, stream: bool) -> Duration {
    assert_eq!(r.status, 200, "{}", r.text());
    if stream {
        r.content_events().first().expect("a content event").0.at
    } else {
        r.head_at
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_third_request_gets_the_tail() {
    let mock = start(r#"{"regions":{"a":{"tail_every":3,"tail_ms":300},"b":{}}}"#).await;
    assert_eq!(tail_hits(&mock, "a").await, 0);
    for stream in [false, true] {
        for i in 1..=3u64 {
            let r = chat(&mock, "a", &user_body("hello tail", stream)).await;
            let at = ttft(&r, stream);
            let hits = tail_hits(&mock, "a").await;
            let round = if stream { 1 } else { 0 };
            if i < 3 {
                assert_eq!(hits, round, "request {i} (stream {stream}) got no tail");
            } else {
                assert_eq!(hits, round + 1, "request 3 (stream {stream}) got the tail");
                assert!(at >= TAIL, "request 3 (stream {stream}) took only {at:?}");
            }
        }
    }
    // The other region is unaffected.
    chat(&mock, "b", &user_body("x", false)).await;
    assert_eq!(tail_hits(&mock, "b").await, 0);
    let stats = control(&mock, "GET", "/_mock/stats", None).await.json();
    assert_eq!(stats["regions"]["a"]["requests"], 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_adds_to_ttft_in_streams_of_every_dialect() {
    let mock = start(r#"{"regions":{"a":{"ttft_ms":50,"tail_every":1,"tail_ms":300}}}"#).await;
    let addr = mock.region_addr("a").unwrap();
    let body = json!({"model":"m","max_tokens":8,"stream":true,
                      "messages":[{"role":"user","content":"hi there"}]})
    .to_string();
    let at = ttft(&chat(&mock, "a", &user_body("hi there", true)).await, true);
    assert!(at >= Duration::from_millis(350), "openai stream: {at:?}");
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        request(
            addr,
            "POST",
            "/v1/messages",
            Some(&body),
            &[("anthropic-version", "2023-06-01")],
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let first = r
        .events
        .iter()
        .find(|e| e.name.as_deref() == Some("content_block_delta"))
        .expect("a content_block_delta");
    assert!(
        first.at >= Duration::from_millis(350),
        "anthropic stream: {:?}",
        first.at
    );
    // Non-stream: ttft and the tail both come before the response.
    let r = chat(&mock, "a", &user_body("hi", false)).await;
    assert!(
        ttft(&r, false) >= Duration::from_millis(350),
        "{:?}",
        r.head_at
    );
    assert_eq!(tail_hits(&mock, "a").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulted_and_hung_requests_do_not_count() {
    let mock = start(r#"{"regions":{"a":{"tail_every":2,"tail_ms":300}}}"#).await;
    let addr = mock.region_addr("a").unwrap();

    // A hung request is not counted.
    set_knobs(&mock, "a", json!({"hang": true})).await;
    let hung = tokio::time::timeout(
        Duration::from_millis(200),
        request(
            addr,
            "POST",
            "/v1/chat/completions",
            Some(&user_body("x", false)),
            &[],
        ),
    )
    .await;
    assert!(hung.is_err(), "the hung request must not be answered");
    set_knobs(&mock, "a", json!({"hang": null})).await;

    // Nor is a faulted one.
    set_knobs(&mock, "a", json!({"fail_next": 2, "status": 503})).await;
    for _ in 0..2 {
        assert_eq!(chat(&mock, "a", &user_body("x", false)).await.status, 503);
    }

    // So the 1st normal request is fast and the 2nd gets the tail.
    chat(&mock, "a", &user_body("x", false)).await;
    assert_eq!(tail_hits(&mock, "a").await, 0);
    let r = chat(&mock, "a", &user_body("x", false)).await;
    assert!(ttft(&r, false) >= TAIL, "{:?}", r.head_at);
    assert_eq!(tail_hits(&mock, "a").await, 1);
    let stats = control(&mock, "GET", "/_mock/stats", None).await.json();
    assert_eq!(stats["regions"]["a"]["requests"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_restarts_the_tail_counter() {
    let mock = start(r#"{"regions":{"a":{"tail_every":3,"tail_ms":300}}}"#).await;
    for _ in 0..4 {
        chat(&mock, "a", &user_body("x", false)).await;
    }
    assert_eq!(tail_hits(&mock, "a").await, 1);

    let r = control(&mock, "POST", "/_mock/reset", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(tail_hits(&mock, "a").await, 0);
    let stats = control(&mock, "GET", "/_mock/stats", None).await.json();
    assert_eq!(
        stats["regions"]["a"],
        json!({"requests":0,"tail_hits":0,"streams_abandoned":0,"raw_bytes_sent":0,"last_request":null})
    );

    // Counting starts over: the 4th request before the reset would have made
    // the next one the 6th; after the reset it is the 1st again.
    for _ in 0..2 {
        chat(&mock, "a", &user_body("x", false)).await;
        assert_eq!(tail_hits(&mock, "a").await, 0);
    }
    let r = chat(&mock, "a", &user_body("x", false)).await;
    assert!(ttft(&r, false) >= TAIL, "{:?}", r.head_at);
    assert_eq!(tail_hits(&mock, "a").await, 1);

    // Knobs set at runtime are dropped by reset, and so is the count.
    set_knobs(&mock, "a", json!({"tail_every": 1, "tail_ms": 10})).await;
    chat(&mock, "a", &user_body("x", false)).await;
    assert_eq!(tail_hits(&mock, "a").await, 2);
    control(&mock, "POST", "/_mock/reset", None).await;
    assert_eq!(tail_hits(&mock, "a").await, 0);
    let k = control(&mock, "GET", "/_mock/regions/a", None).await.json();
    assert_eq!(k, json!({"tail_every":3,"tail_ms":300}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_knobs_must_come_together() {
    let mock = start(r#"{"regions":{"a":{}}}"#).await;
    for bad in [
        json!({"tail_every": 3}),
        json!({"tail_ms": 300}),
        json!({"tail_every": 0, "tail_ms": 300}),
        json!({"tail_every": -1, "tail_ms": 300}),
        json!({"ttft_jitter_ms": -5}),
    ] {
        let r = control(&mock, "POST", "/_mock/regions/a", Some(&bad.to_string())).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(r.json()["error"].is_string());
        let r = control(&mock, "PUT", "/_mock/regions/a", Some(&bad.to_string())).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    let r = control(
        &mock,
        "POST",
        "/_mock/regions/a",
        Some(r#"{"tail_every":3}"#),
    )
    .await;
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("tail_every and tail_ms must be set together"),
        "{}",
        r.text()
    );
    let k = control(&mock, "GET", "/_mock/regions/a", None).await.json();
    assert_eq!(k, json!({}), "a rejected change leaves the knobs unchanged");

    // Together they are fine; removing only one of them is refused.
    let k = set_knobs(&mock, "a", json!({"tail_every": 1, "tail_ms": 300})).await;
    assert_eq!(k, json!({"tail_every":1,"tail_ms":300}));
    let r = control(
        &mock,
        "POST",
        "/_mock/regions/a",
        Some(r#"{"tail_ms":null}"#),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let k = set_knobs(&mock, "a", json!({"tail_every": null, "tail_ms": null})).await;
    assert_eq!(k, json!({}));

    // Startup configuration is validated the same way.
    for bad in [
        r#"{"regions":{"a":{"tail_every":3}}}"#,
        r#"{"regions":{"a":{"tail_ms":300}}}"#,
        r#"{"regions":{"a":{"tail_every":0,"tail_ms":300}}}"#,
    ] {
        let err = MockConfig::from_json_str(bad).unwrap_err().to_string();
        assert!(err.contains("tail_every"), "{bad}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jitter_keeps_the_ttft_lower_bound() {
    let mock = start(r#"{"regions":{"a":{"ttft_ms":40,"ttft_jitter_ms":30}}}"#).await;
    for i in 0..6 {
        let stream = i % 2 == 0;
        let r = chat(&mock, "a", &user_body("jitter", stream)).await;
        let at = ttft(&r, stream);
        assert!(at >= Duration::from_millis(40), "request {i}: {at:?}");
    }
    assert_eq!(tail_hits(&mock, "a").await, 0, "jitter is not a tail");

    // With a tail as well, the tail count stays exact.
    set_knobs(&mock, "a", json!({"tail_every": 2, "tail_ms": 300})).await;
    for i in 1..=4u64 {
        let r = chat(&mock, "a", &user_body("jitter", false)).await;
        let at = ttft(&r, false);
        assert!(at >= Duration::from_millis(40), "request {i}: {at:?}");
        if i % 2 == 0 {
            assert!(at >= Duration::from_millis(340), "request {i}: {at:?}");
        }
        assert_eq!(tail_hits(&mock, "a").await, i / 2);
    }
}
