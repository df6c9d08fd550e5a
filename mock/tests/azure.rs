//! Azure OpenAI dialect.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const ONE: &str = r#"{"regions":{"r1":{}}}"#;
const PATH: &str = "/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21";
const KEY: &[(&str, &str)] = &[("api-key", "azure-key")];

/// Azure bodies usually carry no `model`.
fn body(text: &str, stream: bool) -> String {
    json!({"stream": stream, "messages": [{"role": "user", "content": text}]}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_uses_the_deployment_as_model() {
    let mock = start(ONE).await;
    let r = post(&mock, "r1", PATH, &body("hello big world", false), KEY).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-mock-region"), Some("r1"));
    assert_eq!(
        r.json(),
        json!({
            "id": "chatcmpl-mock-92848ab48ae2747d",
            "object": "chat.completion",
            "created": 1700000000u64,
            "model": "my-gpt4o",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "Echo: hello big world"},
                "finish_reason": "stop",
                "logprobs": null
            }],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
        })
    );
    // A body model is ignored; the deployment name is percent-decoded.
    let b = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]});
    let r = post(
        &mock,
        "r1",
        "/openai/deployments/my%20dep/chat/completions?api-version=2024-06-01",
        &b.to_string(),
        KEY,
    )
    .await;
    assert_eq!(r.json()["model"], "my dep");

    let stats = control(&mock, "GET", "/_mock/stats", None).await.json();
    let last = &stats["regions"]["r1"]["last_request"];
    assert_eq!(last["query"], "api-version=2024-06-01");
    assert_eq!(last["headers"]["api-key"], "azure-key");
    assert_eq!(stats["regions"]["r1"]["requests"], 2);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_shape_and_pacing() {
    let mock =
        start(r#"{"regions":{"r1":{"header_delay_ms":60,"ttft_ms":80,"token_gap_ms":30}}}"#).await;
    let r = post(&mock, "r1", PATH, &body("a b c d", true), KEY).await;
    assert!(r.complete);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(r.head_at >= Duration::from_millis(60), "{:?}", r.head_at);
    assert_eq!(r.events.last().unwrap().data, "[DONE]");
    let ev = r.event_json();
    // Azure's opening chunk: the prompt's content-filter results, without an id, a model or choices.
    assert_eq!(ev[0]["id"], "");
    assert_eq!(ev[0]["choices"], json!([]));
    assert!(ev[0]["prompt_filter_results"].is_array());
    assert!(ev[1..].iter().all(|e| e["model"] == "my-gpt4o"));
    let content = r.content_events();
    assert_eq!(content.len(), 5);
    let joined: String = content.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(joined, "Echo: a b c d");
    let ttft = content[0].0.at - r.head_at;
    assert!(ttft >= Duration::from_millis(70), "ttft {ttft:?}");
    let spread = content[4].0.at - content[0].0.at;
    assert!(spread >= Duration::from_millis(100), "spread {spread:?}");
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_version_is_required() {
    let mock = start(ONE).await;
    for path in [
        "/openai/deployments/d/chat/completions",
        "/openai/deployments/d/chat/completions?api-version=",
        "/openai/deployments/d/chat/completions?apiversion=1",
    ] {
        let r = post(&mock, "r1", path, &body("hi", false), KEY).await;
        assert_eq!(r.status, 400, "{path}");
        let v = r.json();
        assert_eq!(v["error"]["code"], "MissingApiVersionParameter");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("api-version"));
    }
    // Bad bodies are OpenAI-style 400s.
    let r = post(&mock, "r1", PATH, "{", KEY).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_retry_after_ms() {
    let mock =
        start(r#"{"regions":{"r1":{"status":429,"retry_after":1,"retry_after_ms":1500}}}"#).await;
    let r = post(&mock, "r1", PATH, &body("hi", true), KEY).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("retry-after-ms"), Some("1500"));
    assert_eq!(r.header("x-ms-retry-after-ms"), Some("1500"));
    assert_eq!(
        r.json(),
        json!({"error": {"code": "429", "message": "mock fault: status 429", "type": "rate_limit_error"}})
    );
    let k = control(&mock, "GET", "/_mock/regions/r1", None)
        .await
        .json();
    assert_eq!(k["retry_after_ms"], 1500);

    set_knobs(&mock, "r1", json!({"status": 500, "retry_after": null})).await;
    let r = post(&mock, "r1", PATH, &body("hi", false), KEY).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.header("retry-after"), None);
    assert_eq!(r.header("x-ms-retry-after-ms"), Some("1500"));
    assert_eq!(r.json()["error"]["code"], "500");
    assert_eq!(r.json()["error"]["type"], "server_error");

    // Bad knob values are rejected.
    let r = control(
        &mock,
        "POST",
        "/_mock/regions/r1",
        Some(r#"{"retry_after_ms":"soon"}"#),
    )
    .await;
    assert_eq!(r.status, 400);

    // Normal responses carry no retry hints.
    set_knobs(&mock, "r1", json!({"status": null})).await;
    let r = post(&mock, "r1", PATH, &body("hi", false), KEY).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("retry-after-ms"), None);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls() {
    let mock = start(ONE).await;
    let req = json!({
        "messages": [{"role": "user", "content": "call Paris"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    });
    let v = post(&mock, "r1", PATH, &req.to_string(), KEY).await.json();
    assert_eq!(v["model"], "my-gpt4o");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"query": "Paris"}));
    mock.shutdown().await;
}
