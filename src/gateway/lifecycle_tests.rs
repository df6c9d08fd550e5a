//! The orchestration through `gateway::handle`, in both dialects, under the fake platform's virtual clock:
//! failover, hedging, deadlines, breakers, the cache and coalescing, capability skips, and the one record each
//! request leaves. Deterministic: no test waits for real time.

use super::*;
use crate::http::Headers;
use crate::platform::fake::{FakePlatform, Piece, Scripted, FAKE_NOW_MS};
use serde_json::Value;

use super::borrowed::handle;

const KEY: &str = "demo";
const KEY_SHA256: &str = "2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea";

/// Three OpenAI-wire providers `a`, `b`, `c` and a Bedrock one; model `trio` tries a, b, c in that order (their
/// weights decide, with exploration off), `skip` puts Bedrock first and `a` second. `extra` is merged into the
/// model `trio` (hedging, cache).
fn config(trio_extra: &str, timeouts: &str) -> Config {
    Config::parse(&format!(
        r#"{{
        "keys": [{{"name": "demo", "sha256": "{KEY_SHA256}"}}],
        "providers": {{
            "a": {{"kind": "openai", "base_url": "http://a.test/v1", "api_key_secret": "K"}},
            "b": {{"kind": "openai", "base_url": "http://b.test/v1", "api_key_secret": "K"}},
            "an": {{"kind": "anthropic", "base_url": "http://an.test/v1", "api_key_secret": "K"}},
            "c": {{"kind": "openai", "base_url": "http://c.test/v1", "api_key_secret": "K"}},
            "br": {{"kind": "bedrock", "base_url": "http://br.test", "region": "us-east-1",
                    "access_key_id_secret": "AWS_ID", "secret_access_key_secret": "AWS_SECRET"}}
        }},
        "models": {{
            "trio": {{"deployments": [
                {{"provider": "a", "model": "m-a", "region": "r-a", "weight": 3}},
                {{"provider": "b", "model": "m-b", "region": "r-b", "weight": 2}},
                {{"provider": "c", "model": "m-c", "region": "r-c", "weight": 1}}
            ]{trio_extra}}},
            "skip": {{"deployments": [
                {{"provider": "br", "model": "anthropic.claude-3-haiku-20240307-v1:0", "region": "us-east-1", "weight": 3}},
                {{"provider": "a", "model": "m-a", "region": "r-a", "weight": 1}}
            ]}},
            "hskip": {{"hedge_budget": 1, "deployments": [
                {{"provider": "a", "model": "m-a", "region": "r-a", "weight": 3}},
                {{"provider": "br", "model": "anthropic.claude-3-haiku-20240307-v1:0", "region": "us-east-1", "weight": 2}},
                {{"provider": "b", "model": "m-b", "region": "r-b", "weight": 1}}
            ]}},
            "anthro": {{"deployments": [
                {{"provider": "an", "model": "claude-sonnet-4-5", "region": "r-a", "weight": 3}},
                {{"provider": "a", "model": "m-a", "region": "r-a", "weight": 1}}
            ]}},
            "bedrock-only": {{"deployments": [
                {{"provider": "br", "model": "anthropic.claude-3-haiku-20240307-v1:0", "region": "us-east-1"}}
            ]}}
        }},
        "regions": {{"r-a": {{"lat": 0, "lon": 0}}, "r-b": {{"lat": 0, "lon": 0}}, "r-c": {{"lat": 0, "lon": 0}}}},
        "routing": {{"exploration": 0}},
        "timeouts": {{{timeouts}}}
    }}"#
    ))
    .unwrap()
}

fn platform(script: impl IntoIterator<Item = Scripted>) -> FakePlatform {
    FakePlatform::new(script)
        .with_secret("K", "sk-provider-key-0000")
        .with_secret("AWS_ID", "AKIDEXAMPLE")
        .with_secret("AWS_SECRET", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum D {
    OpenAi,
    Anthropic,
}

const BOTH: [D; 2] = [D::OpenAi, D::Anthropic];

fn request(d: D, model: &str, stream: bool, content: &str) -> Request {
    let mut headers = Headers::new();
    let (path, body) = match d {
        D::OpenAi => {
            headers.insert("authorization", format!("Bearer {KEY}"));
            (
                "/v1/chat/completions",
                format!(
                    r#"{{"model":"{model}","stream":{stream},"stream_options":{so},"messages":[{{"role":"user","content":{content}}}]}}"#,
                    so = if stream {
                        r#"{"include_usage":true}"#
                    } else {
                        "null"
                    },
                ),
            )
        }
        D::Anthropic => {
            headers.insert("x-api-key", KEY);
            (
                "/v1/messages",
                format!(
                    r#"{{"model":"{model}","max_tokens":50,"stream":{stream},"messages":[{{"role":"user","content":{content}}}]}}"#
                ),
            )
        }
    };
    Request {
        method: Method::Post,
        path: path.into(),
        query: String::new(),
        headers,
        body: body.into_bytes(),
        location: Location::default(),
    }
}

/// `req` with `members` (JSON text, e.g. `"max_tokens":5`) added at the start of its body's object.
fn with_members(mut req: Request, members: &str) -> Request {
    let body = String::from_utf8(req.body).unwrap();
    req.body = body.replacen('{', &format!("{{{members},"), 1).into_bytes();
    req
}

fn chat(d: D, model: &str, stream: bool) -> Request {
    request(d, model, stream, r#""secret prompt text""#)
}

const COMPLETION: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"answer text"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}"#;

fn completion() -> Scripted {
    Scripted::json(200, COMPLETION)
}

/// An OpenAI-wire stream: the role chunk, two content chunks `gap_ms` apart, the usage chunk, `[DONE]`.
fn stream(gap_ms: u64) -> Scripted {
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
        )
    };
    Scripted::Respond {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        body: vec![
            Piece::Data(chunk(r#"{"role":"assistant","content":""}"#, "null").into_bytes()),
            Piece::Data(chunk(r#"{"content":"answer"}"#, "null").into_bytes()),
            Piece::Wait(gap_ms),
            Piece::Data(chunk(r#"{"content":" text"}"#, r#""stop""#).into_bytes()),
            Piece::Data(
                b"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7,\"total_tokens\":18}}\n\n".to_vec(),
            ),
            Piece::Data(b"data: [DONE]\n\n".to_vec()),
        ],
    }
}

/// Runs a request through the gateway and reads the whole body, then lets the background work (the sinks) run.
fn run(cfg: &Config, p: &FakePlatform, state: &State, req: Request) -> (Response, Vec<u8>) {
    let out = p.run_collected(handle(Ok(cfg), p, state, req));
    assert!(p.run_background());
    out
}

fn text_of(d: D, stream: bool, body: &[u8]) -> String {
    let body = String::from_utf8_lossy(body);
    if !stream {
        let v: Value = serde_json::from_slice(body.as_bytes()).unwrap();
        return match d {
            D::OpenAi => v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .into(),
            D::Anthropic => v["content"][0]["text"].as_str().unwrap().into(),
        };
    }
    let mut text = String::new();
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<Value>(data.as_bytes()) else {
            continue;
        };
        let piece = match d {
            D::OpenAi => v["choices"][0]["delta"]["content"].as_str(),
            D::Anthropic => v["delta"]["text"].as_str(),
        };
        text.push_str(piece.unwrap_or_default());
    }
    text
}

fn attempts(record: &Value) -> Vec<(String, String, Option<String>)> {
    record["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["deployment"].as_str().unwrap().to_owned(),
                a["outcome"].as_str().unwrap().to_owned(),
                a["code"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn only_record(p: &FakePlatform) -> Value {
    let records = p.records();
    assert_eq!(records.len(), 1, "{records:?}");
    records.into_iter().next().unwrap()
}

fn own(d: &str, outcome: &str, code: Option<&str>) -> (String, String, Option<String>) {
    (d.into(), outcome.into(), code.map(str::to_owned))
}

#[test]
fn failover_across_three_deployments() {
    for d in BOTH {
        for streamed in [false, true] {
            let cfg = config("", "");
            let p = platform([
                Scripted::json(500, r#"{"error":{"message":"boom"}}"#),
                Scripted::ConnectError("connection refused".into()),
                if streamed { stream(0) } else { completion() },
            ]);
            let (resp, body) = run(&cfg, &p, &State::new(1), chat(d, "trio", streamed));
            assert_eq!(resp.status, 200, "{d:?} {}", String::from_utf8_lossy(&body));
            assert_eq!(text_of(d, streamed, &body), "answer text");
            assert_eq!(resp.headers.get("x-meridian-deployment"), Some("c/m-c"));
            assert_eq!(resp.headers.get("x-meridian-attempts"), Some("3"));
            let urls: Vec<String> = p.requests.borrow().iter().map(|r| r.url.clone()).collect();
            assert_eq!(
                urls,
                [
                    "http://a.test/v1/chat/completions",
                    "http://b.test/v1/chat/completions",
                    "http://c.test/v1/chat/completions"
                ]
            );
            let rec = only_record(&p);
            assert_eq!(
                attempts(&rec),
                [
                    own("a/m-a", "failed", Some("upstream_error")),
                    own("b/m-b", "failed", Some("upstream_unreachable")),
                    own("c/m-c", "committed", None),
                ]
            );
            assert_eq!(rec["served_by"], "c/m-c");
            assert_eq!(rec["region"], "r-c");
            assert_eq!(rec["usage"]["input"], 11);
            assert_eq!(rec["usage"]["output"], 7);
            assert_eq!(rec["status"], 200);
            assert_eq!(rec["end"], "complete");
            assert_eq!(
                rec["dialect"],
                if d == D::OpenAi {
                    "openai"
                } else {
                    "anthropic"
                }
            );
        }
    }
}

#[test]
fn a_request_invalid_everywhere_does_not_fail_over() {
    for d in BOTH {
        let cfg = config("", "");
        let p = platform([Scripted::json(
            400,
            r#"{"error":{"message":"bad request"}}"#,
        )]);
        let (resp, _) = run(&cfg, &p, &State::new(1), chat(d, "trio", false));
        assert_eq!(resp.status, 400);
        assert_eq!(p.requests.borrow().len(), 1);
        let rec = only_record(&p);
        assert_eq!(rec["error"], "upstream_rejected_request");
        assert_eq!(
            attempts(&rec),
            [own("a/m-a", "failed", Some("upstream_rejected_request"))]
        );
    }
}

#[test]
fn hedging_starts_the_second_at_its_delay_and_cancels_the_loser() {
    for d in BOTH {
        for streamed in [false, true] {
            let cfg = config(r#", "hedge_budget": 1"#, "");
            let first = if streamed { stream(0) } else { completion() };
            let p = platform([
                first.after(60_000),
                if streamed { stream(0) } else { completion() },
            ]);
            let (resp, body) = run(&cfg, &p, &State::new(1), chat(d, "trio", streamed));
            assert_eq!(resp.status, 200);
            assert_eq!(text_of(d, streamed, &body), "answer text");
            assert_eq!(resp.headers.get("x-meridian-deployment"), Some("b/m-b"));
            let sent = p.sent_at.borrow().clone();
            assert_eq!(sent.len(), 2);
            // The hedge starts exactly at the delay the plan gives (the first deployment's expected p90).
            assert_eq!(
                sent,
                [0, hedge_delay(&cfg, streamed, &chat(d, "trio", streamed))]
            );
            assert!(
                p.cancelled.borrow().contains(&0),
                "the loser's fetch is cancelled"
            );
            let rec = only_record(&p);
            assert_eq!(
                attempts(&rec),
                [own("b/m-b", "committed", None), own("a/m-a", "lost", None)]
            );
            assert_eq!(rec["ttfc_ms"], sent[1]);
        }
    }
}

#[test]
fn no_hedge_when_the_first_answers_in_time() {
    let cfg = config(r#", "hedge_budget": 1"#, "");
    let p = platform([completion().after(5)]);
    let (resp, _) = run(&cfg, &p, &State::new(1), chat(D::OpenAi, "trio", false));
    assert_eq!(resp.status, 200);
    assert_eq!(p.requests.borrow().len(), 1);
    assert!(p.cancelled.borrow().is_empty());
}

#[test]
fn first_content_deadline_fails_over_at_the_deadline() {
    for d in BOTH {
        for streamed in [false, true] {
            let cfg = config("", r#""first_byte_ms": 1000"#);
            // Headers at 400 ms, then nothing: the first content is owed by 1000 ms after the attempt began.
            let slow = if streamed {
                Scripted::Respond {
                    status: 200,
                    headers: vec![("content-type".into(), "text/event-stream".into())],
                    body: vec![
                        Piece::Data(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n".to_vec()),
                        Piece::Stall,
                    ],
                }
                .after(400)
            } else {
                Scripted::Hang
            };
            let p = platform([slow, if streamed { stream(0) } else { completion() }]);
            let (resp, body) = run(&cfg, &p, &State::new(1), chat(d, "trio", streamed));
            assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&body));
            assert_eq!(*p.sent_at.borrow(), [0, 1000]);
            let rec = only_record(&p);
            let a = &rec["attempts"][0];
            assert_eq!(
                (a["code"].as_str(), a["ms"].as_u64()),
                (Some("upstream_timeout"), Some(1000))
            );
        }
    }
}

#[test]
fn idle_deadline_ends_a_silent_stream_with_an_error_event() {
    for d in BOTH {
        let cfg = config("", r#""idle_ms": 2000"#);
        let p = platform([stream(5000)]);
        let (resp, body) = run(&cfg, &p, &State::new(1), chat(d, "trio", true));
        assert_eq!(resp.status, 200);
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("error"), "{body}");
        assert!(
            !body.contains("[DONE]") && !body.contains("message_stop"),
            "{body}"
        );
        // The record's time (the clock moves on afterwards, for the ledger's batched write).
        let rec = only_record(&p);
        assert_eq!(
            rec["total_ms"], 2000,
            "ended by the idle limit, not the provider"
        );
        assert_eq!(rec["end"], "failed");
        assert_eq!(rec["error"], "upstream_stream_error");
        assert_eq!(rec["status"], 200);
    }
}

#[test]
fn a_breaker_opens_after_failures_and_closes_after_a_good_trial() {
    let cfg = config("", "");
    let state = State::new(1);
    let fail = || Scripted::json(500, r#"{"error":{"message":"down"}}"#);
    let p = platform([]);
    p.answer(
        "http://a.test/",
        [fail(), fail(), fail(), completion(), completion()],
    );
    // `b` takes 200 ms, so that `a` (weight 3 against 2) stays first until its breaker opens.
    p.answer("http://b.test/", (0..8).map(|_| completion().after(200)));
    let tried = |p: &FakePlatform| -> Vec<char> {
        p.requests
            .borrow()
            .iter()
            .map(|r| r.url.chars().nth(7).unwrap())
            .collect()
    };
    // `a` fails three times in a row; each request fails over to `b`.
    let mut requests = 0;
    while tried(&p).iter().filter(|&&c| c == 'a').count() < 3 {
        let d = if requests % 2 == 0 {
            D::OpenAi
        } else {
            D::Anthropic
        };
        let mut req = chat(d, "trio", false);
        req.location.lat_lon = Some((0.0, 0.0));
        let (resp, _) = run(&cfg, &p, &state, req);
        assert_eq!(resp.headers.get("x-meridian-deployment"), Some("b/m-b"));
        requests += 1;
        assert!(requests < 10, "{:?}", tried(&p));
    }
    assert_eq!(tried(&p), ['a', 'b', 'a', 'b', 'a', 'b']);
    // Open: `a` is not tried at all while `b` answers.
    let before = tried(&p).len();
    let (resp, _) = run(&cfg, &p, &state, chat(D::OpenAi, "trio", false));
    assert_eq!(resp.headers.get("x-meridian-deployment"), Some("b/m-b"));
    assert_eq!(tried(&p)[before..], ['b']);
    // After the cooldown, the next request is `a`'s trial; it succeeds, and `a` is first again.
    p.clock.advance(16_000);
    let (resp, _) = run(&cfg, &p, &state, chat(D::Anthropic, "trio", false));
    assert_eq!(resp.headers.get("x-meridian-deployment"), Some("a/m-a"));
    let (resp, _) = run(&cfg, &p, &state, chat(D::OpenAi, "trio", false));
    assert_eq!(resp.headers.get("x-meridian-deployment"), Some("a/m-a"));
    assert_eq!(p.records().len(), requests + 3);
}

#[test]
fn a_cache_hit_calls_no_provider_and_is_recorded_once() {
    for d in BOTH {
        for streamed in [false, true] {
            let cfg = config(
                r#", "cache": {"ttl_s": 300, "nonzero_temperature": true}"#,
                "",
            );
            let state = State::new(1);
            let p = platform([if streamed { stream(0) } else { completion() }]);
            let (first, _) = run(&cfg, &p, &state, chat(d, "trio", streamed));
            assert_eq!(first.headers.get("x-meridian-cache"), Some("MISS"));
            let (hit, body) = run(&cfg, &p, &state, chat(d, "trio", streamed));
            assert_eq!(hit.headers.get("x-meridian-cache"), Some("HIT"));
            assert_eq!(text_of(d, streamed, &body), "answer text");
            assert_eq!(p.requests.borrow().len(), 1);
            let records = p.records();
            assert_eq!(records.len(), 2);
            assert_eq!(records[0]["cache"], "MISS");
            assert_eq!(records[0]["usage"]["input"], 11);
            assert_eq!(records[1]["cache"], "HIT");
            assert_eq!(
                records[1]["usage"],
                serde_json::json!({}),
                "no provider call, no usage"
            );
            assert_eq!(records[1]["attempts"], serde_json::json!([]));
        }
    }
}

#[test]
fn coalesced_followers_get_the_whole_answer_when_the_leader_leaves() {
    for d in BOTH {
        let cfg = config(
            r#", "cache": {"ttl_s": 300, "nonzero_temperature": true}"#,
            "",
        );
        let state = State::new(1);
        let p = platform([stream(100)]);
        let follower_body = p.run(async {
            let mut leader = handle(Ok(&cfg), &p, &state, chat(d, "trio", true)).await;
            let Body::Stream(mut lead) = std::mem::replace(&mut leader.body, Body::Empty) else {
                panic!("a stream")
            };
            // The leader reads its first chunk, then a follower arrives, then the leader goes away.
            lead.next().await.unwrap().unwrap();
            let mut follower = handle(Ok(&cfg), &p, &state, chat(d, "trio", true)).await;
            assert_eq!(follower.headers.get("x-meridian-cache"), Some("COALESCED"));
            drop(lead);
            drop(leader);
            std::mem::replace(&mut follower.body, Body::Empty)
                .collect()
                .await
                .unwrap()
        });
        assert!(p.run_background());
        assert_eq!(text_of(d, true, &follower_body), "answer text");
        assert_eq!(p.requests.borrow().len(), 1, "one provider call");
        let records = p.records();
        assert_eq!(records.len(), 2, "{records:?}");
        let leader = records.iter().find(|r| r["cache"] == "MISS").unwrap();
        let follower = records.iter().find(|r| r["cache"] == "COALESCED").unwrap();
        assert_eq!(leader["end"], "client_gone");
        assert_eq!(follower["end"], "complete");
        // Afterwards the answer is cached whole.
        let (hit, _) = run(&cfg, &p, &state, chat(d, "trio", true));
        assert_eq!(hit.headers.get("x-meridian-cache"), Some("HIT"));
    }
}

const IMAGE_URL: &str = r#"[{"type":"text","text":"what is this"},{"type":"image_url","image_url":{"url":"https://example.test/cat.png"}}]"#;

#[test]
fn a_deployment_that_cannot_express_the_request_is_skipped() {
    let cfg = config("", "");
    let p = platform([completion()]);
    let (resp, _) = run(
        &cfg,
        &p,
        &State::new(1),
        request(D::OpenAi, "skip", false, IMAGE_URL),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.headers.get("x-meridian-deployment"), Some("a/m-a"));
    assert_eq!(p.requests.borrow().len(), 1);
    let rec = only_record(&p);
    assert_eq!(
        attempts(&rec),
        [bedrock_skipped(), own("a/m-a", "committed", None),]
    );
    // The same request where nothing can serve it: a 400 naming the field and why, in the caller's dialect.
    for d in BOTH {
        let p = platform([]);
        let content = match d {
            D::OpenAi => IMAGE_URL.to_owned(),
            D::Anthropic => {
                r#"[{"type":"image","source":{"type":"url","url":"https://example.test/cat.png"}}]"#
                    .to_owned()
            }
        };
        let (resp, body) = run(
            &cfg,
            &p,
            &State::new(1),
            request(d, "bedrock-only", false, &content),
        );
        assert_eq!(resp.status, 400);
        let v: Value = serde_json::from_slice(&body).unwrap();
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("messages[0]") && message.contains("image URL"),
            "{message}"
        );
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(p.requests.borrow().is_empty());
        assert_eq!(only_record(&p)["error"], "unsupported_input");
    }
}

#[test]
fn every_request_leaves_exactly_one_record_without_content() {
    for d in BOTH {
        let cfg = config("", "");
        // A 4xx before any provider call.
        let p = platform([]);
        let mut req = chat(d, "trio", false);
        req.headers = Headers::new();
        let (resp, _) = run(&cfg, &p, &State::new(1), req);
        assert_eq!(resp.status, 401);
        let rec = only_record(&p);
        assert_eq!(rec["error"], "missing_api_key");
        assert_eq!(rec["status"], 401);

        // A client that leaves mid-stream.
        let p = platform([stream(100)]);
        let state = State::new(1);
        p.run(async {
            let mut resp = handle(Ok(&cfg), &p, &state, chat(d, "trio", true)).await;
            let Body::Stream(mut s) = std::mem::replace(&mut resp.body, Body::Empty) else {
                panic!("a stream")
            };
            s.next().await.unwrap().unwrap();
            assert!(
                p.records().is_empty(),
                "a stream's record waits for its end"
            );
        });
        assert!(p.run_background());
        let rec = only_record(&p);
        assert_eq!(rec["end"], "client_gone");
        assert_eq!(rec["status"], 200);
        assert_eq!(
            *p.cancelled.borrow(),
            [0],
            "the provider's stream is cancelled"
        );

        // A success: the record has the provider's counts, and never the prompt or the answer.
        let p = platform([completion()]);
        run(&cfg, &p, &State::new(1), chat(d, "trio", false));
        let line = p.logs.borrow().join("\n");
        assert!(
            !line.contains("secret prompt text") && !line.contains("answer text"),
            "{line}"
        );
        let rec = only_record(&p);
        assert_eq!(rec["principal"], "demo");
        assert_eq!(rec["operation"], "chat");
        assert_eq!(rec["model"], "trio");
        assert!(rec["ttfc_ms"].is_u64() && rec["total_ms"].is_u64());
    }
}

#[test]
fn token_budgets_are_corrected_to_what_the_provider_counted() {
    // Exact: the object counts each request's estimate, then its correction.
    let cfg = one_deployment(r#""tpm": 100000, "exact_limits": true"#);
    let p = platform([completion()]);
    let req = chat(D::OpenAi, "trio", false);
    let estimate = (req.body.len() / 4) as u64;
    run(&cfg, &p, &State::new(1), req);
    let w = p.windows.borrow().get("key:demo").copied().unwrap();
    assert_eq!(w.tokens(), 18, "estimated {estimate}, corrected to 11 + 7");
    // Leased: the object counts the slices it handed out and the same correction; once the isolate has been idle
    // it gives back what it did not use, and the object counts exactly what the request cost.
    let cfg = one_deployment(r#""tpm": 100000"#);
    let p = platform([completion()]);
    let state = State::new(1);
    run(&cfg, &p, &state, chat(D::OpenAi, "trio", false));
    let w = p.windows.borrow().get("key:demo").copied().unwrap();
    assert_eq!(
        w.tokens(),
        18,
        "estimated {estimate}, corrected to 11 + 7, the rest given back"
    );
    assert_eq!(
        p.lease_asks.get(),
        3,
        "the first request waited for a slice, a refill followed, the idle isolate gave the rest back"
    );
}

#[test]
fn an_unknown_model_costs_no_budget() {
    let cfg = one_deployment(r#""rpm": 1"#);
    let p = platform([completion()]);
    let state = State::new(1);
    for d in BOTH {
        let (resp, _) = run(&cfg, &p, &state, chat(d, "no-such-model", false));
        assert_eq!(resp.status, 404);
    }
    let (resp, _) = run(&cfg, &p, &state, chat(D::OpenAi, "trio", false));
    assert_eq!(resp.status, 200, "the one request a minute is still there");
    let (resp, _) = run(&cfg, &p, &state, chat(D::Anthropic, "trio", false));
    assert_eq!(resp.status, 429);
    assert_eq!(p.records()[3]["error"], "rate_limit_exceeded");
}

#[test]
fn the_status_endpoint_counts_what_the_records_say() {
    let cfg = config("", "");
    let state = State::new(1);
    let p = platform([
        completion(),
        Scripted::json(400, r#"{"error":{"message":"no"}}"#),
    ]);
    run(&cfg, &p, &state, chat(D::OpenAi, "trio", false));
    run(&cfg, &p, &state, chat(D::Anthropic, "trio", false));
    let mut req = chat(D::OpenAi, "trio", false);
    req.method = Method::Get;
    req.path = "/_meridian/status".into();
    let (resp, body) = run(&cfg, &p, &state, req);
    assert_eq!(resp.status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let counters = &v["requests"];
    assert_eq!(counters["total"], 2, "{v}");
    assert_eq!(counters["by_status"]["200"], 1);
    assert_eq!(counters["by_status"]["400"], 1);
    assert_eq!(counters["by_error"]["upstream_rejected_request"], 1);
    assert_eq!(counters["input_tokens"], 11);
    assert!(
        v["models"]["trio"].is_array(),
        "the routing status is still there: {v}"
    );
}

#[test]
fn cached_and_reasoning_counts_reach_the_record_and_both_dialects() {
    // Recorded OpenAI traffic (tests/fixtures/SOURCES.md): 4012 of 4020 prompt tokens read from the cache.
    let answer = include_str!("../../tests/fixtures/openai/usage_cached_reasoning.json");
    let cfg = config("", "");
    for d in BOTH {
        let p = platform([Scripted::json(200, answer)]);
        let (resp, body) = run(&cfg, &p, &State::new(1), chat(d, "trio", false));
        assert_eq!(resp.status, 200);
        let v: Value = serde_json::from_slice(&body).unwrap();
        match d {
            // Passed through: the provider's own bytes.
            D::OpenAi => assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 4012),
            D::Anthropic => {
                assert_eq!(v["usage"]["input_tokens"], 8, "{v}");
                assert_eq!(v["usage"]["cache_read_input_tokens"], 4012);
                assert_eq!(v["usage"]["cache_creation_input_tokens"], 0);
                assert_eq!(v["usage"]["output_tokens"], 4);
            }
        }
        let rec = only_record(&p);
        assert_eq!(
            rec["usage"],
            serde_json::json!({"input": 4020, "output": 4, "cached_input": 4012, "cache_write": 0, "reasoning": 0})
        );
    }
}

/// The hedge delay a fresh router plans for `trio`, as the gateway will.
fn hedge_delay(cfg: &Config, stream: bool, req: &Request) -> u64 {
    let deps = cfg.model("trio").unwrap().deployments();
    let plan = Router::new(1).plan(
        deps,
        &vec![true; deps.len()],
        &req.location,
        Shape {
            stream,
            bucket: estimator::bucket(req.body.len()),
        },
        Policy {
            exploration: 0.0,
            hedge_budget: Some(1.0),
            objective: crate::config::Objective::Latency,
        },
        FAKE_NOW_MS,
    );
    let ms = plan.hedge_after_ms.unwrap();
    assert!(ms >= 20);
    ms
}

#[test]
fn a_hedge_looks_for_its_second_deployment_only_when_it_is_due() {
    let image = || request(D::OpenAi, "hskip", false, IMAGE_URL);
    let cfg = config("", "");
    // The first answers in time: nothing else was tried, nothing else is recorded.
    let p = platform([completion()]);
    run(&cfg, &p, &State::new(1), image());
    assert_eq!(
        attempts(&only_record(&p)),
        [own("a/m-a", "committed", None)]
    );

    // The first is slow: the hedge skips Bedrock (an image URL) and runs `b`, which wins.
    let p = platform([completion().after(60_000), completion()]);
    let (resp, _) = run(&cfg, &p, &State::new(1), image());
    assert_eq!(resp.headers.get("x-meridian-deployment"), Some("b/m-b"));
    assert_eq!(
        attempts(&only_record(&p)),
        [
            bedrock_skipped(),
            own("b/m-b", "committed", None),
            own("a/m-a", "lost", None),
        ]
    );

    // The first fails before the hedge is due: failover skips Bedrock once and `b` answers.
    let p = platform([
        Scripted::json(503, r#"{"error":{"message":"busy"}}"#),
        completion(),
    ]);
    run(&cfg, &p, &State::new(1), image());
    assert_eq!(
        attempts(&only_record(&p)),
        [
            own("a/m-a", "failed", Some("upstream_overloaded")),
            bedrock_skipped(),
            own("b/m-b", "committed", None),
        ]
    );
}

#[test]
fn an_anthropic_dialect_request_skips_what_cannot_express_it() {
    let cfg = config("", "");
    let p = platform([completion()]);
    let content = r#"[{"type":"text","text":"what is this"},{"type":"image","source":{"type":"url","url":"https://example.test/cat.png"}}]"#;
    let (resp, body) = run(
        &cfg,
        &p,
        &State::new(1),
        request(D::Anthropic, "skip", false, content),
    );
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(resp.headers.get("x-meridian-deployment"), Some("a/m-a"));
    let sent: Value = serde_json::from_slice(&p.requests.borrow()[0].body).unwrap();
    assert_eq!(
        sent["messages"][0]["content"][1]["image_url"]["url"],
        "https://example.test/cat.png"
    );
    assert_eq!(
        attempts(&only_record(&p)),
        [bedrock_skipped(), own("a/m-a", "committed", None),]
    );
}

#[test]
fn a_request_abandoned_before_its_response_is_recorded_once() {
    let cfg = config("", "");
    for d in BOTH {
        let p = platform([Scripted::Hang]);
        let state = State::new(1);
        {
            let mut fut = std::pin::pin!(handle(Ok(&cfg), &p, &state, chat(d, "trio", false)));
            // Polled until it waits on the provider, then dropped, as the runtime does when the client leaves.
            assert!(futures_util::FutureExt::now_or_never(fut.as_mut()).is_none());
            assert!(p.records().is_empty());
        }
        let rec = only_record(&p);
        assert_eq!(rec["end"], "client_gone");
        assert_eq!(rec["status"], 499);
        // A non-streamed, unhedged provider call is not cancelled by the gateway: the runtime ends it with the
        // request (`cancel_on_drop` is off for it).
        assert!(p.cancelled.borrow().is_empty());
    }
}

#[test]
fn an_answer_without_counts_records_none_and_keeps_the_estimate() {
    let cfg = one_deployment(r#""tpm": 100000, "exact_limits": true"#);
    let no_usage = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"answer text"},"finish_reason":"stop"}]}"#;
    for d in BOTH {
        let p = platform([Scripted::json(200, no_usage)]);
        let req = chat(d, "trio", false);
        let estimate = (req.body.len() / 4) as u64;
        run(&cfg, &p, &State::new(1), req);
        assert_eq!(only_record(&p)["usage"], serde_json::json!({}), "{d:?}");
        let w = p.windows.borrow().get("key:demo").copied().unwrap();
        assert_eq!(w.tokens(), estimate, "nothing counted, nothing corrected");
    }
}

/// Model `trio` with one deployment, and key `demo` with `policy` (e.g. `"tpm": 100`).
fn one_deployment(policy: &str) -> Config {
    Config::parse(&format!(
        r#"{{
        "keys": [{{"name": "demo", "sha256": "{KEY_SHA256}", {policy}}}],
        "providers": {{"a": {{"kind": "openai", "base_url": "http://a.test/v1", "api_key_secret": "K"}}}},
        "models": {{"trio": {{"deployments": [{{"provider": "a", "model": "m-a", "region": "us-east-1"}}]}}}}
    }}"#
    ))
    .unwrap()
}

/// The Bedrock deployment's entry when it cannot express a request.
fn bedrock_skipped() -> (String, String, Option<String>) {
    own(
        "br/anthropic.claude-3-haiku-20240307-v1:0",
        "skipped",
        Some("unsupported_input"),
    )
}

#[test]
fn the_count_of_the_prompt_is_not_content_a_provider_failing_after_it_is_failed_over() {
    let cfg = config("", "");
    for d in BOTH {
        // Anthropic's opening message (with its count of the prompt), then an overload: nothing was said yet.
        let overloaded = Scripted::sse(&[
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n",
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        ]);
        let p = platform([overloaded, stream(0)]);
        let (resp, body) = run(&cfg, &p, &State::new(1), chat(d, "anthro", true));
        assert_eq!(resp.status, 200);
        assert_eq!(text_of(d, true, &body), "answer text");
        assert_eq!(
            attempts(&only_record(&p)),
            [
                own(
                    "an/claude-sonnet-4-5",
                    "failed",
                    Some("upstream_overloaded")
                ),
                own("a/m-a", "committed", None),
            ]
        );
    }
}

#[path = "same_wire_tests.rs"]
mod same_wire;

#[path = "surface_tests.rs"]
mod surface;

#[test]
fn leased_limits_admit_from_the_edge_and_stay_within_the_limit_across_isolates() {
    let cfg = one_deployment(r#""rpm": 60"#);
    let answers: Vec<Scripted> = (0..200).map(|_| completion()).collect();
    let p = platform(answers);
    let isolates = [State::new(1), State::new(1)];
    let mut admitted = 0;
    for i in 0..200 {
        // Back to back, in one window: the background work (refills, idle watches) runs as the clock allows.
        let (resp, _) = p.run(async {
            let mut resp = handle(
                Ok(&cfg),
                &p,
                &isolates[i % 2],
                chat(D::OpenAi, "trio", false),
            )
            .await;
            let body = std::mem::replace(&mut resp.body, Body::Empty)
                .collect()
                .await
                .unwrap();
            (resp, body)
        });
        match resp.status {
            200 => admitted += 1,
            429 => assert!(resp.headers.get("retry-after").is_some()),
            s => panic!("status {s}"),
        }
    }
    assert!(admitted <= 60, "{admitted}");
    assert!(
        admitted >= 50,
        "the budget is used, not stranded in slices: {admitted}"
    );
    assert!(
        p.lease_asks.get() < 40,
        "most requests are admitted without asking: {} asks",
        p.lease_asks.get()
    );
}

/// The rate-limit headers of a limited key's answers, read as a client would.
fn rate_headers(resp: &Response) -> Vec<(String, String)> {
    resp.headers
        .iter()
        .filter(|(n, _)| n.starts_with("x-ratelimit-"))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

fn answer(cfg: &Config, p: &FakePlatform, state: &State, d: D) -> Response {
    p.run(async {
        let mut resp = handle(Ok(cfg), p, state, chat(d, "trio", false)).await;
        let _ = std::mem::replace(&mut resp.body, Body::Empty)
            .collect()
            .await;
        resp
    })
}

#[test]
fn every_answer_of_a_limited_key_says_where_it_stands_in_both_dialects() {
    // Exact (rpm under 60): the object counts each request; the 429 says nothing is left, and when it will be.
    let cfg = one_deployment(r#""rpm": 3"#);
    let p = platform((0..3).map(|_| completion()).collect::<Vec<_>>());
    let state = State::new(1);
    for (i, (d, left)) in [
        (D::OpenAi, 2),
        (D::Anthropic, 1),
        (D::OpenAi, 0),
        (D::Anthropic, 0),
    ]
    .into_iter()
    .enumerate()
    {
        let resp = answer(&cfg, &p, &state, d);
        let h = rate_headers(&resp);
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(h.len(), 3, "requests only: the key has no tpm: {h:?}");
        assert_eq!(get("x-ratelimit-limit-requests"), Some("3"));
        assert_eq!(
            get("x-ratelimit-remaining-requests"),
            Some(left.to_string().as_str()),
            "request {i}"
        );
        let reset = get("x-ratelimit-reset-requests").unwrap();
        assert!(reset.ends_with('s') && reset != "0ms", "{reset}");
        assert_eq!(resp.status, if i < 3 { 200 } else { 429 });
    }

    // Leased: the object's remainder at its last answer plus this isolate's slice; tokens counted as estimated.
    let cfg = one_deployment(r#""rpm": 600, "tpm": 100000"#);
    let p = platform((0..3).map(|_| completion()).collect::<Vec<_>>());
    let state = State::new(1);
    for (i, d) in [D::OpenAi, D::Anthropic].into_iter().enumerate() {
        let resp = answer(&cfg, &p, &state, d);
        assert_eq!(resp.status, 200);
        let h = rate_headers(&resp);
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(h.len(), 6, "{h:?}");
        assert_eq!(
            get("x-ratelimit-remaining-requests"),
            Some((599 - i).to_string())
        );
        let tokens: u64 = get("x-ratelimit-remaining-tokens")
            .unwrap()
            .parse()
            .unwrap();
        assert!((99_800..100_000).contains(&tokens), "{tokens}");
        assert_eq!(get("x-ratelimit-limit-tokens").as_deref(), Some("100000"));
    }

    // A key without limits: none.
    let cfg = one_deployment(r#""exact_limits": true"#);
    let p = platform(vec![completion()]);
    assert!(rate_headers(&answer(&cfg, &p, &State::new(1), D::OpenAi)).is_empty());
}

/// Model `p` on a deployment priced at 2 / 8 USD per million tokens, `u` on one with no price (not in the table).
fn priced(key_extra: &str, model_extra: &str) -> Config {
    Config::parse(&format!(
        r#"{{
        "keys": [{{"name": "demo", "sha256": "{KEY_SHA256}"{key_extra}}}],
        "providers": {{"a": {{"kind": "openai", "base_url": "http://a.test/v1", "api_key_secret": "K"}}}},
        "models": {{
            "p": {{"deployments": [{{"provider": "a", "model": "m-a", "region": "us-east-1",
                    "price": {{"input": 2, "output": 8}}}}]{model_extra}}},
            "u": {{"deployments": [{{"provider": "a", "model": "m-u", "region": "us-east-1"}}]}}
        }}
    }}"#
    ))
    .unwrap()
}

/// The fixtures' usage (11 in, 7 out) at 2 / 8.
const FIXTURE_COST: f64 = (11.0 * 2.0 + 7.0 * 8.0) / 1e6;

fn final_usage_cost(d: D, body: &[u8]) -> Value {
    let body = String::from_utf8_lossy(body);
    let usage = body
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_slice::<Value>(data.as_bytes()).ok())
        .find_map(|v| match d {
            D::OpenAi => v.get("usage").filter(|u| u.is_object()).cloned(),
            D::Anthropic => (v["type"] == "message_delta").then(|| v["usage"].clone()),
        })
        .unwrap_or_else(|| panic!("no final usage in {body}"));
    usage["cost"].clone()
}

#[test]
fn what_each_answer_cost_is_in_its_header_its_stream_and_its_record() {
    let cfg = priced("", "");
    for d in BOTH {
        let p = platform([completion()]);
        let (resp, _) = run(&cfg, &p, &State::new(1), chat(d, "p", false));
        assert_eq!(
            resp.headers.get("x-meridian-cost-usd"),
            Some(crate::pricing::usd_text(FIXTURE_COST).as_str()),
            "{d:?}"
        );
        let rec = only_record(&p);
        assert!((rec["cost_usd"].as_f64().unwrap() - FIXTURE_COST).abs() < 1e-12);

        let p = platform([stream(0)]);
        let (resp, body) = run(&cfg, &p, &State::new(1), chat(d, "p", true));
        assert_eq!(
            resp.headers.get("x-meridian-cost-usd"),
            None,
            "a stream says it in its usage"
        );
        let cost = final_usage_cost(d, &body);
        assert!(
            (cost.as_f64().unwrap() - FIXTURE_COST).abs() < 1e-9,
            "{d:?}: {cost}"
        );
        assert!((only_record(&p)["cost_usd"].as_f64().unwrap() - FIXTURE_COST).abs() < 1e-12);
    }
}

#[test]
fn an_unpriced_deployment_is_reported_as_such_never_as_zero() {
    let cfg = priced("", "");
    for d in BOTH {
        let p = platform([completion()]);
        let (resp, _) = run(&cfg, &p, &State::new(1), chat(d, "u", false));
        assert_eq!(resp.headers.get("x-meridian-cost-usd"), Some("unpriced"));
        let rec = only_record(&p);
        assert_eq!(
            (rec["unpriced"].clone(), rec.get("cost_usd")),
            (Value::Bool(true), None)
        );
        let p = platform([stream(0)]);
        let (_, body) = run(&cfg, &p, &State::new(1), chat(d, "u", true));
        assert_eq!(final_usage_cost(d, &body), Value::Null);
    }
    // A key that requires a price is refused the unpriced model in its dialect, and served the priced one.
    let cfg = priced(r#", "require_price": true"#, "");
    for d in BOTH {
        let p = platform([completion()]);
        let (resp, body) = run(&cfg, &p, &State::new(1), chat(d, "u", false));
        assert_eq!(resp.status, 403);
        let v: Value = serde_json::from_slice(&body).unwrap();
        match d {
            D::OpenAi => assert_eq!(v["error"]["code"], "price_required"),
            D::Anthropic => assert_eq!(v["error"]["type"], "permission_error"),
        }
        let (resp, _) = run(&cfg, &p, &State::new(1), chat(d, "p", false));
        assert_eq!(resp.status, 200);
    }
}

#[test]
fn a_cache_hit_costs_nothing_and_says_what_it_saved() {
    let cfg = priced("", r#", "cache": {"ttl_s": 600}"#);
    let state = State::new(1);
    let p = platform([completion()]);
    let req = || request(D::OpenAi, "p", false, r#""same prompt""#);
    let req0 = with_members(req(), r#""temperature":0"#);
    let again = req0.clone();
    let (first, _) = run(&cfg, &p, &state, req0);
    assert_eq!(first.headers.get("x-meridian-cache"), Some("MISS"));
    let (hit, _) = run(&cfg, &p, &state, again);
    assert_eq!(hit.headers.get("x-meridian-cache"), Some("HIT"));
    assert_eq!(hit.headers.get("x-meridian-cost-usd"), Some("0"));
    assert_eq!(
        hit.headers.get("x-meridian-cost-saved-usd"),
        Some(crate::pricing::usd_text(FIXTURE_COST).as_str())
    );
}

const ADMIN: &str = "admin-secret";

/// `priced` with a second key `team` (its key is "team-key"), an admin key, and `team_extra` in that key.
fn governed(team_extra: &str) -> Config {
    let team = crate::key_hash::KeyHash::of("team-key").to_hex();
    let admin = crate::key_hash::KeyHash::of(ADMIN).to_hex();
    Config::parse(&format!(
        r#"{{
        "keys": [{{"name": "demo", "sha256": "{KEY_SHA256}"}}, {{"name": "team", "sha256": "{team}"{team_extra}}}],
        "admin_keys": [{{"name": "ops", "sha256": "{admin}"}}],
        "providers": {{"a": {{"kind": "openai", "base_url": "http://a.test/v1", "api_key_secret": "K"}}}},
        "models": {{
            "p": {{"deployments": [{{"provider": "a", "model": "m-a", "region": "us-east-1",
                    "price": {{"input": 2, "output": 8}}}}]}},
            "u": {{"deployments": [{{"provider": "a", "model": "m-u", "region": "us-east-1"}}]}}
        }}
    }}"#
    ))
    .unwrap()
}

fn as_key(mut req: Request, d: D, key: &str) -> Request {
    let mut headers = Headers::new();
    for (n, v) in req.headers.iter() {
        if n != "authorization" && n != "x-api-key" {
            headers.insert(n, v);
        }
    }
    match d {
        D::OpenAi => headers.insert("authorization", format!("Bearer {key}")),
        D::Anthropic => headers.insert("x-api-key", key),
    }
    req.headers = headers;
    req
}

fn spend_report(cfg: &Config, p: &FakePlatform, key: Option<&str>, query: &str) -> (u16, Value) {
    let mut headers = Headers::new();
    if let Some(k) = key {
        headers.insert("authorization", format!("Bearer {k}"));
    }
    let req = Request {
        method: Method::Get,
        path: "/_meridian/spend".into(),
        query: query.into(),
        headers,
        body: Vec::new(),
        location: Location::default(),
    };
    let (resp, body) = run(cfg, p, &State::new(1), req);
    (resp.status, serde_json::from_slice(&body).unwrap())
}

#[test]
fn the_ledger_adds_up_what_each_key_spent_per_model_and_day() {
    let cfg = governed("");
    let p = platform((0..6).map(|_| completion()).collect::<Vec<_>>());
    let state = State::new(1);
    for (d, key, model) in [
        (D::OpenAi, KEY, "p"),
        (D::Anthropic, KEY, "p"),
        (D::OpenAi, "team-key", "p"),
        (D::OpenAi, "team-key", "u"),
        (D::Anthropic, "team-key", "p"),
    ] {
        let (resp, _) = run(&cfg, &p, &state, as_key(chat(d, model, false), d, key));
        assert_eq!(resp.status, 200);
    }
    // A refused request spends nothing.
    let (resp, _) = run(
        &cfg,
        &p,
        &state,
        as_key(chat(D::OpenAi, "nope", false), D::OpenAi, KEY),
    );
    assert_eq!(resp.status, 404);
    // Each key's entries go to its own ledger object.
    let objects: Vec<String> = p
        .ledger
        .borrow()
        .iter()
        .map(|(k, _, _)| k.clone())
        .collect();
    assert_eq!(objects.iter().filter(|k| *k == "ledger:demo").count(), 2);
    assert_eq!(objects.iter().filter(|k| *k == "ledger:team").count(), 3);

    let day = crate::ledger::day_of(FAKE_NOW_MS);
    let (status, report) = spend_report(&cfg, &p, Some(ADMIN), &format!("from={day}&to={day}"));
    assert_eq!(status, 200, "{report}");
    let keys = report["keys"].as_array().unwrap();
    let total = |k: &str| keys.iter().find(|r| r["key"] == k).unwrap()["total"].clone();
    assert_eq!(total("demo")["requests"], 2);
    assert!((total("demo")["cost_usd"].as_f64().unwrap() - 2.0 * FIXTURE_COST).abs() < 1e-12);
    assert_eq!(total("team")["requests"], 3);
    assert_eq!(total("team")["unpriced_requests"], 1);
    assert!((total("team")["cost_usd"].as_f64().unwrap() - 2.0 * FIXTURE_COST).abs() < 1e-12);
    assert!((report["total"]["cost_usd"].as_f64().unwrap() - 4.0 * FIXTURE_COST).abs() < 1e-12);
    let team_rows = &keys.iter().find(|r| r["key"] == "team").unwrap()["rows"];
    assert_eq!(
        team_rows.as_array().unwrap().len(),
        2,
        "per model: {team_rows}"
    );
    assert_eq!(team_rows[0]["day"], day.as_str());

    // Only an admin key reads it; a gateway key is refused as one.
    let (status, v) = spend_report(&cfg, &p, Some(KEY), "");
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (403, "admin_key_required".into())
    );
    assert_eq!(spend_report(&cfg, &p, None, "").0, 401);
    assert_eq!(spend_report(&cfg, &p, Some("wrong"), "").0, 401);
    let (status, v) = spend_report(&cfg, &p, Some(ADMIN), "from=yesterday");
    assert_eq!(status, 400, "{v}");
    // Another day's range has nothing.
    let (_, empty) = spend_report(
        &cfg,
        &p,
        Some(ADMIN),
        "from=2001-01-01&to=2001-01-31&key=team",
    );
    assert_eq!(empty["keys"][0]["rows"], serde_json::json!([]));
}

#[test]
fn a_budget_trips_with_budget_exceeded_in_both_dialects_and_holds() {
    // Each answer costs FIXTURE_COST; each request reserves its input estimate and 50 output tokens at 8.
    let budget = 20.0 * FIXTURE_COST;
    let cfg = governed(&format!(r#", "budget": {{"usd_per_day": {budget}}}"#));
    let p = platform((0..60).map(|_| completion()).collect::<Vec<_>>());
    let state = State::new(1);
    let mut admitted = 0;
    let mut refused = Vec::new();
    for i in 0..60 {
        let d = if i % 2 == 0 { D::OpenAi } else { D::Anthropic };
        let mut req = as_key(chat(d, "p", false), d, "team-key");
        if d == D::OpenAi {
            // Both dialects reserve for the output they allow.
            req = with_members(req, r#""max_tokens":50"#);
        }
        let (resp, body) = run(&cfg, &p, &state, req);
        match resp.status {
            200 => admitted += 1,
            429 => refused.push((d, resp, body)),
            s => panic!("status {s}: {}", String::from_utf8_lossy(&body)),
        }
    }
    assert!(p.run_background());
    let spent = p.ledger_cost_usd();
    eprintln!("budget ${budget:.6}: {admitted} of 60 admitted, ${spent:.6} spent");
    assert!(spent <= budget + 1e-9, "spent {spent} of {budget}");
    assert!(admitted >= 5, "the budget is used: {admitted}");
    for d in BOTH {
        let (_, resp, body) = refused.iter().find(|(rd, _, _)| *rd == d).unwrap();
        let v: Value = serde_json::from_slice(body).unwrap();
        match d {
            D::OpenAi => assert_eq!(v["error"]["code"], "budget_exceeded"),
            D::Anthropic => assert_eq!(v["error"]["type"], "rate_limit_error"),
        }
        let retry: u64 = resp.headers.get("retry-after").unwrap().parse().unwrap();
        assert!((1..=86_400).contains(&retry), "{retry}");
        assert!(v.to_string().contains("resets in"), "{v}");
    }
    // A key with a budget is refused unpriced models: a budget can only hold what is priced.
    let (resp, _) = run(
        &cfg,
        &p,
        &state,
        as_key(chat(D::OpenAi, "u", false), D::OpenAi, "team-key"),
    );
    assert_eq!(resp.status, 403);
    // The other key is not limited by it.
    let p2 = platform([completion()]);
    let (resp, _) = run(&cfg, &p2, &state, chat(D::OpenAi, "p", false));
    assert_eq!(resp.status, 200);
}

#[test]
fn every_request_writes_one_analytics_data_point_when_a_dataset_is_bound() {
    let cfg = priced("", "");
    let p = platform([completion(), completion()]).with_analytics();
    let state = State::new(1);
    run(&cfg, &p, &state, chat(D::Anthropic, "p", false));
    let mut unauthenticated = chat(D::OpenAi, "p", false);
    unauthenticated.headers = Headers::new();
    let (resp, _) = run(&cfg, &p, &state, unauthenticated);
    assert_eq!(resp.status, 401);
    let points = p.analytics.as_ref().unwrap().borrow().clone();
    assert_eq!(points.len(), 2, "{points:?}");
    let served = &points[0];
    assert_eq!(
        (served.index.as_str(), served.blobs[3].as_str()),
        ("demo", "a/m-a")
    );
    assert!((served.doubles[5] - FIXTURE_COST).abs() < 1e-12);
    assert_eq!(served.doubles[8], 200.0);
    assert_eq!(points[1].blobs[7], "missing_api_key");
    assert_eq!(
        (points[1].index.as_str(), points[1].doubles[8]),
        ("", 401.0)
    );
    // Unbound: nothing is written, nothing fails.
    let p = platform([completion()]);
    assert_eq!(
        run(&cfg, &p, &state, chat(D::OpenAi, "p", false)).0.status,
        200
    );
}

#[test]
fn a_model_budget_holds_beside_the_keys_and_a_refused_or_failed_request_gives_its_reservation_back()
{
    // The key may spend plenty in all, but only about 3 answers' worth on `p` a day.
    let cfg = governed(&format!(
        r#", "budget": {{"usd_per_day": 1, "models": {{"p": {{"usd_per_day": {}}}}}}}"#,
        3.0 * FIXTURE_COST
    ));
    let p = platform((0..40).map(|_| completion()).collect::<Vec<_>>());
    let state = State::new(1);
    let mut admitted = 0;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        // A reservation of its input and 5 output tokens: a few fit the model's budget at once.
        let req = with_members(
            as_key(chat(D::OpenAi, "p", false), D::OpenAi, "team-key"),
            r#""max_tokens":5"#,
        );
        let (resp, _) = run(&cfg, &p, &state, req);
        statuses.push(resp.status);
        admitted += u32::from(resp.status == 200);
    }
    let spent = p.ledger_cost_usd();
    eprintln!(
        "model budget ${:.6}: {admitted} of 12 admitted, ${spent:.6} spent: {statuses:?}",
        3.0 * FIXTURE_COST
    );
    assert!(spent <= 3.0 * FIXTURE_COST + 1e-12, "{spent}");
    assert!((1..=3).contains(&admitted), "{admitted}");
    assert!(statuses.contains(&429));
    // Refusals by the model's budget reserved from the key's whole first: that is given back, so the key's book
    // counts only what was spent.
    let book = p.budgets.borrow().get("ledger:team").cloned().unwrap();
    let mut book = book;
    let g = book.grant(
        FAKE_NOW_MS,
        (1, u64::MAX / 2),
        None,
        (Some(1_000_000), None),
    );
    let spent_micro = crate::ledger::micro(spent);
    assert!(
        g.tokens + spent_micro + 500 >= 1_000_000,
        "the key's whole has all but what was spent (and slices out): {} of 1000000",
        g.tokens
    );
    // A failed request gives back what it reserved too.
    let failing = platform([Scripted::json(500, "{}")]);
    let state = State::new(1);
    let req = with_members(
        as_key(chat(D::OpenAi, "p", false), D::OpenAi, "team-key"),
        r#""max_tokens":5"#,
    );
    let (resp, _) = run(&cfg, &failing, &state, req);
    assert_eq!(resp.status, 502);
    assert!(failing.ledger.borrow().is_empty(), "nothing spent, no row");
    let mut book = failing
        .budgets
        .borrow()
        .get("ledger:team")
        .cloned()
        .unwrap();
    let g = book.grant(
        FAKE_NOW_MS,
        (1, u64::MAX / 2),
        None,
        (Some(1_000_000), None),
    );
    assert!(g.tokens + 10 >= 1_000_000, "{}", g.tokens);
}

/// An Anthropic Messages answer, whole or streamed (shapes from Anthropic's API reference).
fn anthropic_answer(stream: bool) -> Scripted {
    if !stream {
        return Scripted::json(
            200,
            r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"answer text"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":11,"output_tokens":7}}"#,
        );
    }
    Scripted::sse(&[
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":11,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"answer text\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":7}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ])
}

#[test]
fn when_every_deployment_of_a_model_fails_its_fallback_model_serves_in_its_own_wire_format() {
    // `trio` (three OpenAI-wire deployments) falls back to `anthro` (Anthropic first).
    let cfg = config(r#", "fallbacks": ["anthro"]"#, "");
    for d in BOTH {
        for stream in [false, true] {
            let p = platform([]);
            for host in ["http://a.test", "http://b.test", "http://c.test"] {
                p.answer(host, [Scripted::json(503, "{}")]);
            }
            p.answer("http://an.test", [anthropic_answer(stream)]);
            let (resp, body) = run(&cfg, &p, &State::new(1), chat(d, "trio", stream));
            assert_eq!(
                resp.status,
                200,
                "{d:?} {stream}: {}",
                String::from_utf8_lossy(&body)
            );
            assert_eq!(text_of(d, stream, &body), "answer text");
            assert_eq!(resp.headers.get("x-meridian-model"), Some("anthro"));
            assert_eq!(
                resp.headers.get("x-meridian-route-reason"),
                Some("fallback")
            );
            let rec = only_record(&p);
            assert_eq!(rec["fallback"], "anthro");
            assert_eq!(rec["model"], "trio", "the model asked for");
            assert_eq!(
                attempts(&rec),
                [
                    own("a/m-a", "failed", Some("upstream_overloaded")),
                    own("b/m-b", "failed", Some("upstream_overloaded")),
                    own("c/m-c", "failed", Some("upstream_overloaded")),
                    own("an/claude-sonnet-4-5", "committed", None),
                ]
            );
        }
    }
    // A request invalid everywhere is not retried on the fallback.
    let p = platform([]);
    p.answer(
        "http://a.test",
        [Scripted::json(400, r#"{"error":{"message":"bad"}}"#)],
    );
    let (resp, _) = run(&cfg, &p, &State::new(1), chat(D::OpenAi, "trio", false));
    assert_eq!(resp.status, 400);
    assert_eq!(p.requests.borrow().len(), 1);
    // Served by its own model: no fallback said.
    let p = platform([completion()]);
    let (resp, _) = run(&cfg, &p, &State::new(1), chat(D::OpenAi, "trio", false));
    assert_eq!(resp.headers.get("x-meridian-model"), Some("trio"));
    assert_eq!(resp.headers.get("x-meridian-route-reason"), Some("fastest"));
}

#[test]
fn a_fallback_must_be_another_configured_model() {
    let parse = |fallbacks: &str| {
        Config::parse(&format!(
            r#"{{"keys": [{{"name": "demo", "sha256": "{KEY_SHA256}"}}],
            "providers": {{"a": {{"kind": "openai", "base_url": "http://a.test/v1"}}}},
            "models": {{
                "m": {{"fallbacks": {fallbacks}, "deployments": [{{"provider": "a", "model": "x", "region": "us-east-1"}}]}},
                "n": {{"deployments": [{{"provider": "a", "model": "y", "region": "us-east-1"}}]}}
            }}}}"#
        ))
        .err()
        .map(|e| e.to_string())
    };
    assert_eq!(parse(r#"["n"]"#), None);
    assert_eq!(
        parse(r#"["nope"]"#).as_deref(),
        Some(r#"invalid MERIDIAN_CONFIG: models.m.fallbacks[0]: unknown model "nope""#)
    );
    assert_eq!(
        parse(r#"["m"]"#).as_deref(),
        Some("invalid MERIDIAN_CONFIG: models.m.fallbacks[0]: a model cannot fall back to itself")
    );
    assert_eq!(
        parse(r#"["n", "n"]"#).as_deref(),
        Some(r#"invalid MERIDIAN_CONFIG: models.m.fallbacks[1]: "n" is listed twice"#)
    );
}

#[test]
fn a_virtual_models_rules_route_by_header_tools_and_else_its_default() {
    let cfg = Config::parse(&format!(
        r#"{{"keys": [{{"name": "demo", "sha256": "{KEY_SHA256}"}}],
        "providers": {{
            "a": {{"kind": "openai", "base_url": "http://a.test/v1", "api_key_secret": "K"}},
            "an": {{"kind": "anthropic", "base_url": "http://an.test/v1", "api_key_secret": "K"}}
        }},
        "models": {{
            "general": {{"deployments": [{{"provider": "a", "model": "m-general", "region": "us-east-1"}}]}},
            "coder": {{"deployments": [{{"provider": "an", "model": "claude-sonnet-4-5", "region": "us-east-1"}}]}},
            "tooler": {{"deployments": [{{"provider": "a", "model": "m-tools", "region": "us-east-1"}}]}}
        }},
        "virtual_models": {{"smart": {{"rules": [
            {{"name": "code", "when": {{"header": {{"x-meridian-task": "code"}}}}, "model": "coder"}},
            {{"name": "tools", "when": {{"tools": true, "dialect": "openai"}}, "model": "tooler"}},
            {{"model": "general"}}
        ]}}}}}}"#
    ))
    .unwrap();
    // A `code` task, in either dialect: the Anthropic model.
    for d in BOTH {
        let p = platform([anthropic_answer(false)]);
        let mut req = chat(d, "smart", false);
        req.headers.insert("x-meridian-task", "code");
        let (resp, body) = run(&cfg, &p, &State::new(1), req);
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(resp.headers.get("x-meridian-model"), Some("coder"));
        assert_eq!(
            resp.headers.get("x-meridian-route-reason"),
            Some("rule:code")
        );
        assert_eq!(only_record(&p)["model"], "smart", "the model asked for");
    }
    // Tools in the OpenAI dialect: the tools model.
    let p = platform([completion()]);
    let req = with_members(
        chat(D::OpenAi, "smart", false),
        r#""tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]"#,
    );
    let (resp, _) = run(&cfg, &p, &State::new(1), req);
    assert_eq!(resp.headers.get("x-meridian-model"), Some("tooler"));
    assert_eq!(
        resp.headers.get("x-meridian-route-reason"),
        Some("rule:tools")
    );
    assert!(p.requests.borrow()[0]
        .body
        .windows(7)
        .any(|w| w == b"m-tools"));
    // Anything else: the default rule.
    let p = platform([completion()]);
    let (resp, _) = run(&cfg, &p, &State::new(1), chat(D::OpenAi, "smart", false));
    assert_eq!(resp.headers.get("x-meridian-model"), Some("general"));
    assert_eq!(
        resp.headers.get("x-meridian-route-reason"),
        Some("rule:rules[2]")
    );
}

#[test]
fn a_request_too_large_for_what_is_left_gives_back_the_part_it_was_granted() {
    // $0.001 a day: ten answers at FIXTURE_COST leave $0.00022; a request reserving 1000 output tokens at 8 does
    // not fit, and the part of the budget granted for it must not stay stranded in this isolate's slice.
    let cfg = governed(r#", "budget": {"usd_per_day": 0.001}"#);
    let p = platform((0..20).map(|_| completion()).collect::<Vec<_>>());
    let state = State::new(1);
    let with_max = |max: u32| {
        with_members(
            as_key(chat(D::OpenAi, "p", false), D::OpenAi, "team-key"),
            &format!(r#""max_tokens":{max}"#),
        )
    };
    for _ in 0..10 {
        assert_eq!(run(&cfg, &p, &state, with_max(5)).0.status, 200);
    }
    assert_eq!(run(&cfg, &p, &state, with_max(1000)).0.status, 429);
    assert_eq!(
        run(&cfg, &p, &state, with_max(5)).0.status,
        200,
        "what is left still serves a request that fits"
    );
}

#[path = "shadow_tests.rs"]
mod shadow_tests;

#[test]
fn the_dashboard_page_holds_no_data_and_only_an_admin_key_reads_the_recent_errors() {
    let cfg = governed(r#", "budget": {"usd_per_day": 2}"#);
    let p = platform([
        Scripted::json(503, "{}"),
        Scripted::json(503, "{}"),
        Scripted::json(503, "{}"),
    ]);
    let state = State::new(1);
    let get = |path: &str, key: Option<&str>| {
        let mut headers = Headers::new();
        if let Some(k) = key {
            headers.insert("authorization", format!("Bearer {k}"));
        }
        let req = Request {
            method: Method::Get,
            path: path.into(),
            query: String::new(),
            headers,
            body: Vec::new(),
            location: Location::default(),
        };
        run(&cfg, &p, &state, req)
    };
    let (page, html) = get("/_meridian/", None);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.headers.get("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.headers.get("content-security-policy").unwrap();
    assert!(
        csp.contains("connect-src 'self'") && csp.contains("script-src 'self';"),
        "{csp}"
    );
    assert!(String::from_utf8(html)
        .unwrap()
        .contains("/_meridian/assets/app.js"));
    for asset in ["app.js", "app.css", "uplot.js", "uplot.css"] {
        let (r, body) = get(&format!("/_meridian/assets/{asset}"), None);
        assert_eq!(r.status, 200, "{asset}");
        assert!(body.len() > 500, "{asset}");
    }
    assert_eq!(get("/_meridian/assets/nope.js", None).0.status, 404);
    // An error for the dashboard's list.
    let failed = run(&cfg, &p, &state, chat(D::OpenAi, "p", false)).0;
    assert_eq!(failed.status, 503);
    let (_, body) = get("/_meridian/status", Some(ADMIN));
    let status: Value = serde_json::from_slice(&body).unwrap();
    let recent = status["recent_errors"].as_array().unwrap();
    // Newest first: the provider's 503, then the missing asset's 404.
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[1]["status"], 404);
    assert_eq!(recent[0]["status"], 503);
    assert_eq!(recent[0]["model"], "p");
    assert_eq!(recent[0]["key"], "demo");
    let (_, body) = get("/_meridian/status", Some(KEY));
    let status: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        status.get("recent_errors").is_none(),
        "a gateway key sees no other tenant's errors"
    );
    assert!(status["models"]["p"].is_array());
    // The spend report carries each budgeted key's limits, for the page's budget bars.
    let (_, spend) = spend_report(&cfg, &p, Some(ADMIN), "");
    let team = spend["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "team")
        .unwrap();
    assert_eq!(team["budget"]["usd_per_day"].as_f64(), Some(2.0));
    assert!(spend["keys"][0].get("budget").is_none());
}
