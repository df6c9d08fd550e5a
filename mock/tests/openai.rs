//! OpenAI dialect: content, usage, streaming shape and timing, truncation.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const ONE: &str = r#"{"regions":{"r1":{}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_content_and_usage() {
    let mock = start(ONE).await;
    let body = json!({
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "you are  terse"},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [
                {"type": "text", "text": "hello big"},
                {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
                {"type": "text", "text": "world"}
            ]}
        ]
    });
    let r = chat(&mock, "r1", &body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.complete);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-mock-region"), Some("r1"));
    let v = r.json();
    // Last user text is "hello big world"; FNV-1a 64 of it is 92848ab48ae2747d.
    assert_eq!(
        v,
        json!({
            "id": "chatcmpl-mock-92848ab48ae2747d",
            "object": "chat.completion",
            "created": 1700000000u64,
            "model": "gpt-x",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "Echo: hello big world"},
                "finish_reason": "stop",
                "logprobs": null
            }],
            // prompt: 3 + 2 + 1 + 2 + 1 words; completion: 4 chunks
            "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
        })
    );
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_of_empty_or_missing_user_text() {
    let mock = start(ONE).await;
    for messages in [
        json!([{"role": "user", "content": ""}]),
        json!([{"role": "system", "content": "only system"}]),
        json!([]),
    ] {
        let body = json!({"model": "m", "messages": messages}).to_string();
        let v = chat(&mock, "r1", &body).await.json();
        assert_eq!(v["choices"][0]["message"]["content"], "Echo:");
        assert_eq!(v["usage"]["completion_tokens"], 1);
        assert_eq!(v["id"], "chatcmpl-mock-cbf29ce484222325");
    }
    // Repeated spaces survive the round trip.
    let v = chat(&mock, "r1", &user_body("a  b", false)).await.json();
    assert_eq!(v["choices"][0]["message"]["content"], "Echo: a  b");
    assert_eq!(v["usage"]["completion_tokens"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_words_are_deterministic() {
    let mock = start(r#"{"regions":{"r1":{"reply_words":6}}}"#).await;
    let a = chat(&mock, "r1", &user_body("hello big world", false))
        .await
        .json();
    let b = chat(&mock, "r1", &user_body("hello big world", false))
        .await
        .json();
    assert_eq!(a, b);
    // Pinned by an independent implementation of the README algorithm.
    assert_eq!(
        a["choices"][0]["message"]["content"],
        "meadow golf kilo mike oscar yankee"
    );
    assert_eq!(a["usage"]["completion_tokens"], 6);
    let c = chat(&mock, "r1", &user_body("", false)).await.json();
    assert_eq!(
        c["choices"][0]["message"]["content"],
        "charlie cobalt yankee amber harbor romeo"
    );
    let words = meridian_mock::seeded_words(meridian_mock::fnv1a64(b""), 6);
    assert_eq!(c["choices"][0]["message"]["content"], words.join(" "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_shape_with_usage() {
    let mock = start(ONE).await;
    let body = json!({
        "model": "gpt-s",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "one two three"}]
    });
    let r = chat(&mock, "r1", &body.to_string()).await;
    assert_eq!(r.status, 200);
    assert!(r.complete, "stream must end with the terminal chunk");
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("x-mock-region"), Some("r1"));
    assert_eq!(r.events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let ev = r.event_json();
    // role + 4 content + finish + usage
    assert_eq!(ev.len(), 7, "{ev:#?}");
    let id = ev[0]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("chatcmpl-mock-") && id.len() == "chatcmpl-mock-".len() + 16);
    for e in &ev {
        assert_eq!(e["id"], id.as_str());
        assert_eq!(e["object"], "chat.completion.chunk");
        assert_eq!(e["created"], 1700000000u64);
        assert_eq!(e["model"], "gpt-s");
    }
    // Every chunk but the last has `"usage": null` (OpenAI's API reference, stream_options.include_usage).
    assert!(
        ev[..6].iter().all(|e| e.get("usage") == Some(&json!(null))),
        "{ev:#?}"
    );
    assert_eq!(
        ev[0]["choices"],
        json!([{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}])
    );
    let pieces: Vec<&str> = ev[1..5]
        .iter()
        .map(|e| {
            assert_eq!(e["choices"][0]["finish_reason"], Value::Null);
            e["choices"][0]["delta"]["content"].as_str().unwrap()
        })
        .collect();
    assert_eq!(pieces, vec!["Echo:", " one", " two", " three"]);
    assert_eq!(
        ev[5]["choices"],
        json!([{"index":0,"delta":{},"finish_reason":"stop"}])
    );
    assert_eq!(ev[6]["choices"], json!([]));
    assert_eq!(
        ev[6]["usage"],
        json!({"prompt_tokens":3,"completion_tokens":4,"total_tokens":7})
    );

    // Without include_usage there is no usage chunk.
    let r = chat(&mock, "r1", &user_body("x", true)).await;
    let ev = r.event_json();
    assert_eq!(ev.len(), 4);
    assert!(ev.iter().all(|e| e.get("usage").is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_chunks_are_spread_over_time() {
    let mock = start(r#"{"regions":{"r1":{"token_gap_ms":30}}}"#).await;
    // "Echo: a b c d" -> 5 content chunks, 30 ms apart.
    let r = chat(&mock, "r1", &user_body("a b c d", true)).await;
    assert!(r.complete);
    let content = r.content_events();
    assert_eq!(content.len(), 5, "{:?}", r.events);
    let spread = content[4].0.at - content[0].0.at;
    assert!(spread >= Duration::from_millis(100), "spread {spread:?}");
    let mut reads: Vec<usize> = content.iter().map(|(e, _)| e.read_no).collect();
    reads.dedup();
    assert_eq!(
        reads.len(),
        5,
        "each chunk must arrive in its own read: {reads:?}"
    );
    // The role chunk comes with the headers, before the first gap.
    let first = &r.events[0];
    assert!(first.data.contains("\"role\":\"assistant\""));
    assert!(first.at < content[1].0.at);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_delay_and_ttft() {
    let mock = start(r#"{"regions":{"r1":{"header_delay_ms":120,"ttft_ms":150}}}"#).await;
    let r = chat(&mock, "r1", &user_body("hi", true)).await;
    assert!(
        r.head_at >= Duration::from_millis(120),
        "head {:?}",
        r.head_at
    );
    let content = r.content_events();
    let ttft = content[0].0.at - r.head_at;
    assert!(ttft >= Duration::from_millis(140), "ttft {ttft:?}");
    // Role chunk arrives right with the headers, before ttft elapses.
    assert!(r.events[0].at < content[0].0.at);

    // Non-streaming: header delay + ttft before the whole response.
    let r = chat(&mock, "r1", &user_body("hi", false)).await;
    assert!(
        r.head_at >= Duration::from_millis(270),
        "head {:?}",
        r.head_at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tokens_truncates() {
    let mock = start(ONE).await;
    let body =
        json!({"model":"m","max_tokens":2,"messages":[{"role":"user","content":"one two three"}]});
    let v = chat(&mock, "r1", &body.to_string()).await.json();
    assert_eq!(v["choices"][0]["message"]["content"], "Echo: one");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 2);

    // Not smaller than the chunk count: untouched.
    let body =
        json!({"model":"m","max_tokens":4,"messages":[{"role":"user","content":"one two three"}]});
    let v = chat(&mock, "r1", &body.to_string()).await.json();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");

    let body = json!({"model":"m","stream":true,"max_completion_tokens":1,
        "stream_options":{"include_usage":true},
        "messages":[{"role":"user","content":"one two three"}]});
    let r = chat(&mock, "r1", &body.to_string()).await;
    let content: Vec<String> = r.content_events().into_iter().map(|(_, c)| c).collect();
    assert_eq!(content, vec!["Echo:".to_string()]);
    let ev = r.event_json();
    assert_eq!(ev[ev.len() - 2]["choices"][0]["finish_reason"], "length");
    assert_eq!(ev[ev.len() - 1]["usage"]["completion_tokens"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_paths_and_models() {
    let mock = start(ONE).await;
    let addr = mock.region_addr("r1").unwrap();
    for body in [
        "{not json",
        "[1,2]",
        r#"{"messages":[]}"#,
        r#"{"model":"m"}"#,
        r#"{"model":"m","messages":"hi"}"#,
    ] {
        let r = send(addr, "POST", "/v1/chat/completions", Some(body)).await;
        assert_eq!(r.status, 400, "{body}");
        let v = r.json();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], Value::Null);
        assert!(v["error"]["message"].is_string());
    }

    let r = send(
        addr,
        "POST",
        "/openai/v1/chat/completions?x=1",
        Some(&user_body("p", false)),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Echo: p");

    let r = send(addr, "GET", "/v1/models", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"object":"list","data":[{"id":"mock-1","object":"model","owned_by":"mock"}]})
    );

    let r = send(addr, "GET", "/nope", None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert_eq!(r.header("x-mock-region"), Some("r1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connection_serves_many_requests() {
    let mock = start(ONE).await;
    let mut stream = tokio::net::TcpStream::connect(mock.region_addr("r1").unwrap())
        .await
        .unwrap();
    for i in 0..20 {
        let text = format!("n{i}");
        let stream_mode = i % 2 == 0;
        let r = request_on(
            &mut stream,
            "POST",
            "/v1/chat/completions",
            Some(&user_body(&text, stream_mode)),
            &[],
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200);
        assert!(r.complete);
        if stream_mode {
            let c: String = r.content_events().into_iter().map(|(_, c)| c).collect();
            assert_eq!(c, format!("Echo: {text}"));
        } else {
            assert_eq!(
                r.json()["choices"][0]["message"]["content"],
                format!("Echo: {text}")
            );
        }
    }
}

fn tool_body(text: &str, stream: bool) -> String {
    json!({
        "model": "gpt-t",
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
        "tools": [
            {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}},
            {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
        ]
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_call_replies() {
    let mock = start(ONE).await;
    let v = chat(&mock, "r1", &tool_body("call get_weather Paris", false))
        .await
        .json();
    assert_eq!(
        v["choices"][0],
        json!({
            "index": 0,
            "message": {"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_mock_0", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"query\":\"Paris\"}"}
            }]},
            "finish_reason": "tool_calls",
            "logprobs": null
        })
    );
    assert_eq!(v["usage"]["completion_tokens"], 3);
    let v = chat(&mock, "r1", &tool_body("call the  weather", false))
        .await
        .json();
    let f = &v["choices"][0]["message"]["tool_calls"][0]["function"];
    assert_eq!(f["name"], "search");
    assert_eq!(f["arguments"], "{\"query\":\"the  weather\"}");

    // Streaming: the call header with the role chunk, then argument fragments.
    let r = chat(&mock, "r1", &tool_body("call get_weather Paris", true)).await;
    assert!(r.complete);
    assert_eq!(r.events.last().unwrap().data, "[DONE]");
    let ev = r.event_json();
    assert_eq!(ev.len(), 5, "{ev:#?}");
    assert_eq!(
        ev[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "index": 0, "id": "call_mock_0", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}]})
    );
    let args: String = ev[1..4]
        .iter()
        .map(|e| {
            let tc = &e["choices"][0]["delta"]["tool_calls"][0];
            assert_eq!(tc["index"], 0);
            assert!(tc.get("id").is_none() && tc["function"].get("name").is_none());
            tc["function"]["arguments"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(args, "{\"query\":\"Paris\"}");
    assert_eq!(
        ev[4]["choices"][0],
        json!({"index": 0, "delta": {}, "finish_reason": "tool_calls"})
    );

    // Without tools, or after the tool result, the reply is the echo.
    let v = chat(&mock, "r1", &user_body("call get_weather Paris", false))
        .await
        .json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Echo: call get_weather Paris"
    );
    let after = json!({"model": "m", "messages": [
        {"role": "user", "content": "call get_weather Paris"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_mock_0", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_mock_0", "content": "sunny"}
    ], "tools": [{"type": "function", "function": {"name": "get_weather"}}]});
    let v = chat(&mock, "r1", &after.to_string()).await.json();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Echo: call get_weather Paris"
    );
}
