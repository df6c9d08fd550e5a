//! AWS Bedrock Converse dialect, including an independent event-stream
//! decoder.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const ONE: &str = r#"{"regions":{"r1":{}}}"#;
const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1%3A0";
const AUTH: &[(&str, &str)] = &[
    (
        "authorization",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=deadbeef",
    ),
    ("x-amz-date", "20240101T000000Z"),
];

fn path(stream: bool) -> String {
    let op = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    format!("/model/{MODEL}/{op}")
}

fn body(text: &str) -> String {
    json!({"messages": [{"role": "user", "content": [{"text": text}]}]}).to_string()
}

/// Bitwise CRC-32 (IEEE, reflected 0xEDB88320), written independently of
/// the mock's table-driven one.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[derive(Debug)]
struct Frame {
    /// Offset just past the frame in the body.
    end: usize,
    headers: BTreeMap<String, String>,
    payload: Value,
    crc_ok: bool,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Decodes every complete frame; panics on a bad prelude CRC or layout.
fn frames(body: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut at = 0;
    while body.len() >= at + 12 {
        let total = be32(&body[at..]) as usize;
        let hlen = be32(&body[at + 4..]) as usize;
        assert_eq!(
            be32(&body[at + 8..]),
            crc32(&body[at..at + 8]),
            "prelude CRC"
        );
        assert!(total >= 16 + hlen, "frame too short");
        if body.len() < at + total {
            break;
        }
        let frame = &body[at..at + total];
        let crc_ok = be32(&frame[total - 4..]) == crc32(&frame[..total - 4]);
        let mut headers = BTreeMap::new();
        let mut h = &frame[12..12 + hlen];
        while !h.is_empty() {
            let n = h[0] as usize;
            let name = String::from_utf8(h[1..1 + n].to_vec()).unwrap();
            assert_eq!(h[1 + n], 7, "string header type");
            let vlen = u16::from_be_bytes([h[2 + n], h[3 + n]]) as usize;
            let value = String::from_utf8(h[4 + n..4 + n + vlen].to_vec()).unwrap();
            headers.insert(name, value);
            h = &h[4 + n + vlen..];
        }
        let payload = serde_json::from_slice(&frame[12 + hlen..total - 4]).unwrap();
        at += total;
        out.push(Frame {
            end: at,
            headers,
            payload,
            crc_ok,
        });
    }
    out
}

fn event_types(fs: &[Frame]) -> Vec<&str> {
    fs.iter()
        .map(|f| f.headers[":event-type"].as_str())
        .collect()
}

/// When the frame ending at `end` had fully arrived.
fn arrival(r: &Resp, end: usize) -> Duration {
    r.marks
        .iter()
        .find(|m| m.1 >= end)
        .expect("frame arrived")
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converse_content_and_usage() {
    let mock = start(ONE).await;
    let req = json!({
        "system": [{"text": "be  brief"}],
        "messages": [
            {"role": "user", "content": [{"text": "first question"}]},
            {"role": "assistant", "content": [{"text": "ok"}]},
            {"role": "user", "content": [{"text": "hello big"}, {"image": {"format": "png", "source": {"bytes": "AA=="}}}, {"text": "world"}]}
        ],
        "inferenceConfig": {"maxTokens": 100}
    });
    let r = post(&mock, "r1", &path(false), &req.to_string(), AUTH).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.complete);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "Echo: hello big world"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 8, "outputTokens": 4, "totalTokens": 12},
            "metrics": {"latencyMs": 1}
        })
    );
    // maxTokens truncates.
    let req = json!({"messages": [{"role": "user", "content": [{"text": "one two three"}]}],
        "inferenceConfig": {"maxTokens": 2}});
    let v = post(&mock, "r1", &path(false), &req.to_string(), AUTH)
        .await
        .json();
    assert_eq!(v["output"]["message"]["content"][0]["text"], "Echo: one");
    assert_eq!(v["stopReason"], "max_tokens");
    assert_eq!(v["usage"]["outputTokens"], 2);

    // The signature is not verified, only recorded.
    let stats = control(&mock, "GET", "/_mock/stats", None).await.json();
    let last = &stats["regions"]["r1"]["last_request"];
    assert_eq!(last["path"], path(false));
    assert!(last["headers"]["authorization"]
        .as_str()
        .unwrap()
        .ends_with("Signature=deadbeef"));
    assert_eq!(last["headers"]["x-amz-date"], "20240101T000000Z");
    assert_eq!(stats["regions"]["r1"]["requests"], 2);
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converse_stream_frames() {
    let mock = start(ONE).await;
    let r = post(&mock, "r1", &path(true), &body("one two three"), AUTH).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.complete);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.amazon.eventstream")
    );
    let fs = frames(&r.body);
    assert_eq!(fs.last().unwrap().end, r.body.len(), "no trailing bytes");
    assert_eq!(
        event_types(&fs),
        vec![
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    for f in &fs {
        assert!(f.crc_ok, "message CRC of {f:?}");
        assert_eq!(f.headers[":content-type"], "application/json");
        assert_eq!(f.headers[":message-type"], "event");
        assert_eq!(f.headers.len(), 3);
    }
    assert_eq!(fs[0].payload, json!({"role": "assistant"}));
    let text: Vec<&str> = fs[1..5]
        .iter()
        .map(|f| {
            assert_eq!(f.payload["contentBlockIndex"], 0);
            f.payload["delta"]["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(text, vec!["Echo:", " one", " two", " three"]);
    assert_eq!(fs[5].payload, json!({"contentBlockIndex": 0}));
    assert_eq!(fs[6].payload, json!({"stopReason": "end_turn"}));
    assert_eq!(
        fs[7].payload,
        json!({"usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7},
               "metrics": {"latencyMs": 1}})
    );
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converse_stream_pacing() {
    let mock =
        start(r#"{"regions":{"r1":{"header_delay_ms":60,"ttft_ms":80,"token_gap_ms":30}}}"#).await;
    let r = post(&mock, "r1", &path(true), &body("a b c d"), AUTH).await;
    assert!(r.complete);
    assert!(r.head_at >= Duration::from_millis(60), "{:?}", r.head_at);
    let fs = frames(&r.body);
    let deltas: Vec<&Frame> = fs
        .iter()
        .filter(|f| f.headers[":event-type"] == "contentBlockDelta")
        .collect();
    assert_eq!(deltas.len(), 5);
    let first = arrival(&r, deltas[0].end);
    assert!(arrival(&r, fs[0].end) <= first, "messageStart comes first");
    let ttft = first - r.head_at;
    assert!(ttft >= Duration::from_millis(70), "ttft {ttft:?}");
    let spread = arrival(&r, deltas[4].end) - first;
    assert!(spread >= Duration::from_millis(100), "spread {spread:?}");
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_headers_are_required() {
    let mock = start(ONE).await;
    let cases: [&[(&str, &str)]; 4] = [
        &[],
        &[("x-amz-date", "20240101T000000Z")],
        &[
            ("authorization", "Bearer abc"),
            ("x-amz-date", "20240101T000000Z"),
        ],
        &[AUTH[0]],
    ];
    for (i, headers) in cases.into_iter().enumerate() {
        for stream in [false, true] {
            let r = post(&mock, "r1", &path(stream), &body("hi"), headers).await;
            assert_eq!(r.status, 403, "case {i}");
            let v = r.json();
            assert!(v["message"].is_string(), "{v}");
            assert_eq!(v.as_object().unwrap().len(), 1);
        }
    }
    // Bad bodies: 400 ValidationException.
    for bad in ["{", "[]", r#"{"messages":{}}"#] {
        let r = post(&mock, "r1", &path(false), bad, AUTH).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.header("x-amzn-errortype"), Some("ValidationException"));
        assert!(r.json()["message"].is_string());
    }
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_cut_and_corrupt_frames() {
    let mock = start(r#"{"regions":{"r1":{"status":429,"retry_after":2}}}"#).await;
    for (code, ty) in [
        (429, "ThrottlingException"),
        (400, "ValidationException"),
        (403, "AccessDeniedException"),
        (500, "InternalServerException"),
        (503, "ServiceUnavailableException"),
    ] {
        set_knobs(&mock, "r1", json!({"status": code})).await;
        let r = post(&mock, "r1", &path(true), &body("hi"), AUTH).await;
        assert_eq!(r.status, code);
        assert_eq!(r.header("x-amzn-errortype"), Some(ty));
        assert_eq!(r.header("retry-after"), Some("2"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.json(),
            json!({"message": format!("mock fault: status {code}")})
        );
    }
    // error_headers override the default error type.
    set_knobs(
        &mock,
        "r1",
        json!({"error_headers": {"x-amzn-errortype": "ModelNotReadyException"}}),
    )
    .await;
    let r = post(&mock, "r1", &path(false), &body("hi"), AUTH).await;
    assert_eq!(r.header("x-amzn-errortype"), Some("ModelNotReadyException"));

    // cut_after: messageStart and two deltas, then the connection is cut.
    set_knobs(
        &mock,
        "r1",
        json!({"status": null, "error_headers": null, "retry_after": null, "cut_after": 2}),
    )
    .await;
    let r = post(&mock, "r1", &path(true), &body("one two three"), AUTH).await;
    assert_eq!(r.status, 200);
    assert!(!r.complete);
    let fs = frames(&r.body);
    assert_eq!(
        event_types(&fs),
        vec!["messageStart", "contentBlockDelta", "contentBlockDelta"]
    );
    let r = post(&mock, "r1", &path(false), &body("one two three"), AUTH).await;
    assert!(!r.complete);

    // malformed_sse: a frame with a bad message CRC, then the normal stream.
    set_knobs(
        &mock,
        "r1",
        json!({"cut_after": null, "malformed_sse": true}),
    )
    .await;
    let r = post(&mock, "r1", &path(true), &body("x"), AUTH).await;
    assert!(r.complete);
    let fs = frames(&r.body);
    assert!(!fs[0].crc_ok, "first frame must be corrupt");
    assert!(fs[1..].iter().all(|f| f.crc_ok));
    assert_eq!(
        event_types(&fs),
        vec![
            "messageStart",
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_use_replies() {
    let mock = start(ONE).await;
    let req = json!({
        "messages": [{"role": "user", "content": [{"text": "call lookup Paris"}]}],
        "toolConfig": {"tools": [
            {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}},
            {"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}}
        ]}
    })
    .to_string();
    let v = post(&mock, "r1", &path(false), &req, AUTH).await.json();
    assert_eq!(v["stopReason"], "tool_use");
    assert_eq!(
        v["output"]["message"]["content"],
        json!([{"toolUse": {"toolUseId": "tooluse_mock_0", "name": "lookup", "input": {"query": "Paris"}}}])
    );
    assert_eq!(v["usage"]["outputTokens"], 3);

    let r = post(&mock, "r1", &path(true), &req, AUTH).await;
    assert!(r.complete);
    let fs = frames(&r.body);
    assert_eq!(
        event_types(&fs),
        vec![
            "messageStart",
            "contentBlockStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    assert_eq!(
        fs[1].payload,
        json!({"start": {"toolUse": {"toolUseId": "tooluse_mock_0", "name": "lookup"}}, "contentBlockIndex": 0})
    );
    let input: String = fs[2..5]
        .iter()
        .map(|f| {
            assert_eq!(f.payload["contentBlockIndex"], 0);
            f.payload["delta"]["toolUse"]["input"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(input, r#"{"query":"Paris"}"#);
    assert_eq!(fs[6].payload, json!({"stopReason": "tool_use"}));
    mock.shutdown().await;
}
