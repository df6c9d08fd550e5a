//! Google Gemini dialect.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const ONE: &str = r#"{"regions":{"r1":{}}}"#;
const GEN: &str = "/v1beta/models/gemini-2.0-flash:generateContent";
const STREAM: &str = "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse";
const KEY: &[(&str, &str)] = &[("x-goog-api-key", "AIza-test")];

fn body(text: &str) -> String {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}]}).to_string()
}

/// Text of one response chunk's first part.
fn part_text(v: &Value) -> &str {
    v["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text part in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_content_and_usage() {
    let mock = start(ONE).await;
    let req = json!({
        "systemInstruction": {"parts": [{"text": "be  brief"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "first question"}]},
            {"role": "model", "parts": [{"text": "ok"}]},
            {"role": "user", "parts": [{"text": "hello big "}, {"inlineData": {"mimeType": "image/png", "data": "AA=="}}, {"text": "world"}]}
        ]
    });
    let r = post(&mock, "r1", GEN, &req.to_string(), KEY).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.complete);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({
            "candidates": [{
                "content": {"role": "model", "parts": [{"text": "Echo: hello big world"}]},
                "finishReason": "STOP",
                "index": 0
            }],
            // 2 + 2 + 1 + 2 + 1 words (per part); 4 pieces
            "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 4, "totalTokenCount": 12},
            "modelVersion": "gemini-2.0-flash",
            "responseId": "mock-92848ab48ae2747d"
        })
    );
    // maxOutputTokens truncates; the key may come as a query parameter; a
    // content without a role is the user's.
    let req = json!({"contents": [{"parts": [{"text": "one two three"}]}],
        "generationConfig": {"maxOutputTokens": 2}});
    let v = post(
        &mock,
        "r1",
        "/v1beta/models/gemini-pro:generateContent?key=AIza-q",
        &req.to_string(),
        &[],
    )
    .await
    .json();
    assert_eq!(part_text(&v), "Echo: one");
    assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 2);
    assert_eq!(v["modelVersion"], "gemini-pro");

    let stats = control(&mock, "GET", "/_mock/stats", None).await.json();
    let last = &stats["regions"]["r1"]["last_request"];
    assert_eq!(last["query"], "key=AIza-q");
    assert_eq!(last["path"], "/v1beta/models/gemini-pro:generateContent");
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_stream_shape() {
    let mock = start(ONE).await;
    let r = post(&mock, "r1", STREAM, &body("one two three"), KEY).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.complete);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    // Events are separated by CRLF blank lines.
    assert!(r.body.ends_with(b"}\r\n\r\n"));
    assert_eq!(r.text().matches("\r\n\r\n").count(), 4);
    let ev = r.event_json();
    assert_eq!(ev.len(), 4);
    let text: Vec<&str> = ev.iter().map(part_text).collect();
    assert_eq!(text, vec!["Echo:", " one", " two", " three"]);
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e["modelVersion"], "gemini-2.0-flash");
        assert_eq!(e["responseId"], "mock-a63947c27151dd91");
        assert_eq!(e["candidates"][0]["content"]["role"], "model");
        assert_eq!(e["candidates"][0]["index"], 0);
        let last = i == 3;
        assert_eq!(e["candidates"][0].get("finishReason").is_some(), last);
        // Every chunk counts the prompt, as Gemini's do; the answer's count grows with the pieces sent before.
        let usage = &e["usageMetadata"];
        assert_eq!(usage["promptTokenCount"], 3);
        if !last {
            assert_eq!(usage.get("candidatesTokenCount").is_some(), i > 0);
            assert_eq!(usage["totalTokenCount"], 3 + i as u64);
        }
    }
    assert_eq!(ev[3]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        ev[3]["usageMetadata"],
        json!({"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7})
    );

    // Without alt=sse: a JSON array, written chunk by chunk.
    let r = post(
        &mock,
        "r1",
        "/v1beta/models/g:streamGenerateContent",
        &body("one two"),
        KEY,
    )
    .await;
    assert!(r.complete);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let arr = r.json();
    let text: Vec<&str> = arr.as_array().unwrap().iter().map(part_text).collect();
    assert_eq!(text, vec!["Echo:", " one", " two"]);
    assert_eq!(arr[2]["candidates"][0]["finishReason"], "STOP");
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_stream_pacing() {
    let mock =
        start(r#"{"regions":{"r1":{"header_delay_ms":60,"ttft_ms":80,"token_gap_ms":30}}}"#).await;
    let r = post(&mock, "r1", STREAM, &body("a b c d"), KEY).await;
    assert!(r.complete);
    assert!(r.head_at >= Duration::from_millis(60), "{:?}", r.head_at);
    assert_eq!(r.events.len(), 5);
    let ttft = r.events[0].at - r.head_at;
    assert!(ttft >= Duration::from_millis(70), "ttft {ttft:?}");
    let spread = r.events[4].at - r.events[0].at;
    assert!(spread >= Duration::from_millis(100), "spread {spread:?}");
    let r = post(&mock, "r1", GEN, &body("a"), KEY).await;
    assert!(r.head_at >= Duration::from_millis(130), "{:?}", r.head_at);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_required() {
    let mock = start(ONE).await;
    for (path, headers) in [
        (GEN, &[][..]),
        (STREAM, &[][..]),
        (GEN, &[("x-goog-api-key", "")][..]),
        (
            "/v1beta/models/g:generateContent?key=",
            &[("authorization", "Bearer x")][..],
        ),
    ] {
        let r = post(&mock, "r1", path, &body("hi"), headers).await;
        assert_eq!(r.status, 403, "{path}");
        let v = r.json();
        assert_eq!(v["error"]["code"], 403);
        assert_eq!(v["error"]["status"], "PERMISSION_DENIED");
        assert!(v["error"]["message"].is_string());
    }
    for bad in ["{", "[]", r#"{"contents":{}}"#, "{}"] {
        let r = post(&mock, "r1", GEN, bad, KEY).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
        assert_eq!(r.json()["error"]["code"], 400);
    }
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_cut_and_malformed() {
    let mock = start(r#"{"regions":{"r1":{"status":429,"retry_after":5}}}"#).await;
    for (code, status) in [
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (400, "INVALID_ARGUMENT"),
        (403, "PERMISSION_DENIED"),
    ] {
        set_knobs(&mock, "r1", json!({"status": code})).await;
        let r = post(&mock, "r1", STREAM, &body("hi"), KEY).await;
        assert_eq!(r.status, code);
        assert_eq!(r.header("retry-after"), Some("5"));
        assert_eq!(
            r.json(),
            json!({"error": {"code": code, "message": format!("mock fault: status {code}"), "status": status}})
        );
    }

    // cut_after: two chunks, none of them final, then the cut.
    set_knobs(
        &mock,
        "r1",
        json!({"status": null, "retry_after": null, "cut_after": 2}),
    )
    .await;
    let r = post(&mock, "r1", STREAM, &body("one two three"), KEY).await;
    assert_eq!(r.status, 200);
    assert!(!r.complete);
    let ev = r.event_json();
    assert_eq!(ev.len(), 2);
    assert!(ev
        .iter()
        .all(|e| e["candidates"][0].get("finishReason").is_none()));

    set_knobs(
        &mock,
        "r1",
        json!({"cut_after": null, "malformed_sse": true}),
    )
    .await;
    let r = post(&mock, "r1", STREAM, &body("x"), KEY).await;
    assert!(r.complete);
    assert!(r.body.starts_with(b"data: {not json\r\n\r\n"));
    assert_eq!(r.events.len(), 3);
    assert!(serde_json::from_str::<Value>(&r.events[0].data).is_err());
    assert_eq!(
        part_text(&serde_json::from_str(&r.events[2].data).unwrap()),
        " x"
    );
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_call_replies() {
    let mock = start(ONE).await;
    let req = json!({
        "contents": [{"role": "user", "parts": [{"text": "call get_weather Paris"}]}],
        "tools": [{"functionDeclarations": [
            {"name": "search", "parameters": {"type": "object"}},
            {"name": "get_weather", "parameters": {"type": "object"}}
        ]}]
    })
    .to_string();
    let v = post(&mock, "r1", GEN, &req, KEY).await.json();
    assert_eq!(
        v["candidates"][0]["content"],
        json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"query": "Paris"}}}]})
    );
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 3);

    let r = post(&mock, "r1", STREAM, &req, KEY).await;
    assert!(r.complete);
    let ev = r.event_json();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        ev[0]["candidates"][0]["content"]["parts"][0]["functionCall"],
        json!({"name": "get_weather", "args": {"query": "Paris"}})
    );
    assert_eq!(ev[0]["candidates"][0]["finishReason"], "STOP");

    // After the function response, the reply is text again.
    let req = json!({
        "contents": [
            {"role": "user", "parts": [{"text": "call get_weather Paris"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"query": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": 20}}}]}
        ],
        "tools": [{"functionDeclarations": [{"name": "get_weather"}]}]
    });
    let v = post(&mock, "r1", GEN, &req.to_string(), KEY).await.json();
    assert_eq!(part_text(&v), "Echo:");
    mock.shutdown().await;
}
