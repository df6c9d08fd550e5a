//! Same wire format in and out: an Anthropic-dialect request to an Anthropic provider is passed through (the model
//! replaced, nothing dropped, the beta features sent on), and the provider's answer comes back as it sent it,
//! checked on the way. Recorded real traffic where there is some (tests/fixtures/SOURCES.md).

use super::*;

/// Everything the canonical request has no place for: `top_k`, `thinking`, `cache_control` on system and message
/// blocks, `output_config`, `metadata`, a thinking block in the history, a server tool.
const FULL: &str = r#"{"model":"anthro","max_tokens":1024,"top_k":5,"thinking":{"type":"enabled","budget_tokens":512},
 "system":[{"type":"text","text":"You are terse.","cache_control":{"type":"ephemeral"}}],
 "output_config":{"effort":"low"},"metadata":{"user_id":"u-1"},"service_tier":"auto",
 "tools":[{"type":"web_search_20250305","name":"web_search","max_uses":1}],
 "messages":[{"role":"user","content":[{"type":"text","text":"first","cache_control":{"type":"ephemeral","ttl":"1h"}}]},
  {"role":"assistant","content":[{"type":"thinking","thinking":"Let me think.","signature":"EqQBCgIYAhIM"},{"type":"text","text":"ok"}]},
  {"role":"user","content":"second"}]STREAM}"#;

fn full(stream: bool) -> Request {
    let mut req = request(D::Anthropic, "anthro", stream, "\"x\"");
    req.body = FULL
        .replace("STREAM", if stream { r#","stream":true"# } else { "" })
        .into_bytes();
    req.headers
        .insert("anthropic-beta", "interleaved-thinking-2025-05-14");
    req
}

fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The client's body with only `model` replaced, byte for byte.
fn with_model(body: &[u8], model: &str) -> Vec<u8> {
    crate::inbound::raw::RawObject::parse(body)
        .unwrap()
        .with_model(model)
}

#[test]
fn everything_the_client_sends_reaches_an_anthropic_provider() {
    for stream in [false, true] {
        let cfg = config("", "");
        let answer = if stream {
            Scripted::sse(&[&fixture("anthropic/stream_prompt_caching.sse")])
        } else {
            Scripted::json(200, &fixture("anthropic/usage_prompt_caching.json"))
        };
        let p = platform([answer]);
        let req = full(stream);
        let client_body = req.body.clone();
        let (resp, _) = run(&cfg, &p, &State::new(1), req);
        assert_eq!(resp.status, 200);
        let reqs = p.requests.borrow();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].url, "http://an.test/v1/messages");
        assert_eq!(
            String::from_utf8(reqs[0].body.clone()).unwrap(),
            String::from_utf8(with_model(&client_body, "claude-sonnet-4-5")).unwrap()
        );
        assert_eq!(
            reqs[0].headers.get("anthropic-beta"),
            Some("interleaved-thinking-2025-05-14")
        );
        assert_eq!(reqs[0].headers.get("anthropic-version"), Some("2023-06-01"));
        assert_eq!(
            reqs[0].headers.get("x-api-key"),
            Some("sk-provider-key-0000")
        );
    }
}

#[test]
fn the_providers_answer_comes_back_as_it_sent_it() {
    for stream in [false, true] {
        let cfg = config("", "");
        let sent = if stream {
            fixture("anthropic/stream_prompt_caching.sse")
        } else {
            fixture("anthropic/usage_prompt_caching.json")
        };
        // Split mid-event, as a network would.
        let (a, b) = sent.split_at(sent.len() / 3);
        let answer = if stream {
            Scripted::sse(&[a, b])
        } else {
            Scripted::json(200, &sent)
        };
        let p = platform([answer]);
        let (resp, body) = run(&cfg, &p, &State::new(1), full(stream));
        assert_eq!(resp.status, 200);
        // Nothing after the end marker is forwarded (the recording ends with one more blank line), and the final
        // usage says what the answer cost, at claude-sonnet-4-5's built-in price: 2 plain input tokens at 3, 13993
        // read from the cache at 0.30, 22 written to it at 3.75 and 61 output at 15 USD per million.
        let want = if stream {
            format!("{}\n\n", sent.trim_end_matches('\n')).replace(
                r#""usage":{"output_tokens":61}              }"#,
                r#""usage":{"output_tokens":61,"cost":0.0052014}}"#,
            )
        } else {
            sent.clone()
        };
        assert_eq!(String::from_utf8(body).unwrap(), want);
        if !stream {
            // 3 plain, 1111 read, 418 written, 33 out (the fixture's counts).
            let cost = (3.0 * 3.0 + 1111.0 * 0.3 + 418.0 * 3.75 + 33.0 * 15.0) / 1e6;
            assert_eq!(
                resp.headers.get("x-meridian-cost-usd"),
                Some(crate::pricing::usd_text(cost).as_str())
            );
        }
        let rec = only_record(&p);
        assert_eq!(rec["end"], "complete");
        // The whole prompt, with the cache reads and writes apart.
        let (input, read, write) = if stream {
            (2 + 22 + 13993, 13993, 22)
        } else {
            (3 + 418 + 1111, 1111, 418)
        };
        assert_eq!(rec["usage"]["input"], input, "{rec}");
        assert_eq!(rec["usage"]["cached_input"], read);
        assert_eq!(rec["usage"]["cache_write"], write);
    }
}

#[test]
fn a_passed_through_stream_that_fails_ends_with_an_anthropic_error_event_and_nothing_of_the_providers(
) {
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n";
    let text = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n";
    let overloaded = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded sk-provider-key-0000\"}}\n\n";
    for (tail, code, kind) in [
        (Some(overloaded), "upstream_overloaded", "overloaded_error"),
        (None, "upstream_stream_truncated", "api_error"),
    ] {
        let cfg = config("", "");
        let mut chunks = vec![start, text];
        chunks.extend(tail);
        let p = platform([Scripted::sse(&chunks)]);
        let (resp, body) = run(&cfg, &p, &State::new(1), full(true));
        assert_eq!(resp.status, 200);
        let body = String::from_utf8(body).unwrap();
        let (forwarded, ours) = body.split_at(start.len() + text.len());
        assert_eq!(forwarded, format!("{start}{text}"));
        assert!(ours.starts_with("event: error\ndata: "), "{ours}");
        let v: Value =
            serde_json::from_str(ours.trim_end().split_once("data: ").unwrap().1).unwrap();
        assert_eq!(v["error"]["type"], kind, "{v}");
        assert!(!ours.contains("sk-provider"), "{ours}");
        let rec = only_record(&p);
        assert_eq!(rec["end"], "failed");
        assert_eq!(rec["error"], code);
    }
}

#[test]
fn what_only_anthropic_can_take_is_not_sent_to_other_kinds() {
    // `an` fails; `a` speaks OpenAI's wire, which has no thinking blocks or server tools: it is skipped.
    let cfg = config("", "");
    let p = platform([Scripted::json(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    )]);
    let (resp, body) = run(&cfg, &p, &State::new(1), full(false));
    assert_eq!(p.requests.borrow().len(), 1);
    let rec = only_record(&p);
    assert_eq!(rec["attempts"][1]["outcome"], "skipped", "{rec}");
    // `top_k`, `thinking` and `output_config.effort` have no OpenAI equivalent (and the thinking block in the
    // history no canonical form either).
    assert_eq!(rec["attempts"][1]["code"], "unsupported_parameter");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "overloaded_error");
    assert_eq!(resp.status, 529);
}

#[test]
fn an_overloaded_provider_is_overloaded_in_both_dialects_with_each_ones_status() {
    for d in BOTH {
        let cfg = config("", "");
        let overloaded = || {
            Scripted::json(
                529,
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            )
        };
        let p = platform([overloaded(), Scripted::json(503, "")]);
        let (resp, body) = run(&cfg, &p, &State::new(1), chat(d, "anthro", false));
        let v: Value = serde_json::from_slice(&body).unwrap();
        let rec = only_record(&p);
        assert_eq!(rec["error"], "upstream_overloaded");
        match d {
            D::Anthropic => {
                assert_eq!(resp.status, 529);
                assert_eq!(v["error"]["type"], "overloaded_error");
            }
            D::OpenAi => {
                assert_eq!(resp.status, 503);
                assert_eq!(v["error"]["code"], "upstream_overloaded");
            }
        }
        assert_eq!(rec["status"], resp.status);
    }
}

/// Bedrock only, with `drop_unsupported` as given.
fn bedrock_model(drop: bool) -> Config {
    Config::parse(&format!(
        r#"{{
        "keys": [{{"name": "demo", "sha256": "{KEY_SHA256}"}}],
        "providers": {{
            "br": {{"kind": "bedrock", "base_url": "http://br.test", "region": "us-east-1",
                    "access_key_id_secret": "AWS_ID", "secret_access_key_secret": "AWS_SECRET"}}
        }},
        "models": {{"m": {{"drop_unsupported": {drop}, "deployments": [
            {{"provider": "br", "model": "anthropic.claude-3-haiku-20240307-v1:0", "region": "us-east-1"}}
        ]}}}}
    }}"#
    ))
    .unwrap()
}

const CONVERSE: &str = r#"{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},"stopReason":"end_turn","usage":{"inputTokens":3,"outputTokens":1,"totalTokens":4}}"#;

#[test]
fn a_field_without_an_equivalent_is_refused_by_name_or_dropped_when_the_model_says_so() {
    let body = r#"{"model":"m","n":2,"logprobs":true,"temperature":0.5,"messages":[{"role":"user","content":"hi"}]}"#;
    let post = || {
        let mut req = request(D::OpenAi, "m", false, "\"hi\"");
        req.body = body.as_bytes().to_vec();
        req
    };
    let p = platform([Scripted::json(200, CONVERSE)]);
    let (resp, out) = run(&bedrock_model(false), &p, &State::new(1), post());
    assert_eq!(resp.status, 400);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["error"]["code"], "unsupported_parameter");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("`n`, `logprobs` cannot be sent to deployment br/"),
        "{message}"
    );
    assert!(
        p.requests.borrow().is_empty(),
        "nothing reached the provider"
    );

    let p = platform([Scripted::json(200, CONVERSE)]);
    let (resp, out) = run(&bedrock_model(true), &p, &State::new(1), post());
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&out));
    assert_eq!(
        resp.headers.get("x-meridian-dropped-params"),
        Some("n,logprobs")
    );
    let sent: Value = serde_json::from_slice(&p.requests.borrow()[0].body).unwrap();
    assert_eq!(sent["inferenceConfig"]["temperature"], 0.5);
}

fn count_request(model: &str) -> Request {
    let mut req = request(D::Anthropic, model, false, "\"x\"");
    req.path = "/v1/messages/count_tokens".into();
    req.body = format!(
        r#"{{"model":"{model}","system":"be brief","messages":[{{"role":"user","content":"count these words"}}]}}"#
    )
    .into_bytes();
    req
}

#[test]
fn token_counts_are_exact_where_a_provider_counts_and_estimated_elsewhere() {
    // Anthropic counts: its own endpoint, the client's body as sent (no max_tokens needed).
    let cfg = config("", "");
    let p = platform([Scripted::json(200, r#"{"input_tokens":12}"#)]);
    let (resp, body) = run(&cfg, &p, &State::new(1), count_request("anthro"));
    assert_eq!(resp.status, 200);
    assert_eq!(body, br#"{"input_tokens":12}"#);
    assert_eq!(resp.headers.get("x-meridian-estimated"), None);
    let reqs = p.requests.borrow();
    assert_eq!(reqs[0].url, "http://an.test/v1/messages/count_tokens");
    let sent: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    drop(reqs);
    assert_eq!(only_record(&p)["operation"], "count_tokens");

    // Bedrock counts through CountTokens, signed.
    let p = platform([Scripted::json(200, r#"{"inputTokens":7}"#)]);
    let (resp, body) = run(&cfg, &p, &State::new(1), count_request("bedrock-only"));
    assert_eq!(resp.status, 200);
    assert_eq!(body, br#"{"input_tokens":7}"#);
    let reqs = p.requests.borrow();
    assert!(reqs[0].url.ends_with("/count-tokens"), "{}", reqs[0].url);
    assert!(reqs[0]
        .headers
        .get("authorization")
        .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256")));
    let sent: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(sent["input"]["converse"]["system"][0]["text"], "be brief");
    drop(reqs);

    // OpenAI-wire deployments cannot count: an estimate, marked, and no provider called.
    let p = platform([]);
    let (resp, body) = run(&cfg, &p, &State::new(1), count_request("trio"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.headers.get("x-meridian-estimated"), Some("true"));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v["input_tokens"].as_u64().unwrap() > 0);
    assert!(p.requests.borrow().is_empty());
}
