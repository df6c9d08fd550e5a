//! Shadows and experiments through the whole gateway (`super::super::handle`, with owned handles).

use super::*;
use crate::shadow::{Outcome, Skip};

/// Model `main` (provider `a`, tagged `eu`) shadowed by `twin` (provider `b`) and `other` (provider `c`, tagged
/// `us`); `exp` splits between `main` and `twin`. `shadow_extra` goes into each shadow entry.
fn shadowed(share: f64, shadow_extra: &str, key_extra: &str) -> Rc<Config> {
    let admin = crate::key_hash::KeyHash::of(ADMIN).to_hex();
    Rc::new(
        Config::parse(&format!(
            r#"{{
        "keys": [{{"name": "demo", "sha256": "{KEY_SHA256}"{key_extra}}}],
        "admin_keys": [{{"name": "ops", "sha256": "{admin}"}}],
        "providers": {{
            "a": {{"kind": "openai", "base_url": "http://a.test/v1", "api_key_secret": "K"}},
            "b": {{"kind": "openai", "base_url": "http://b.test/v1", "api_key_secret": "K"}},
            "c": {{"kind": "openai", "base_url": "http://c.test/v1", "api_key_secret": "K"}}
        }},
        "models": {{
            "main": {{"deployments": [{{"provider": "a", "model": "m-a", "region": "r-a", "tags": ["eu"],
                    "price": {{"input": 1, "output": 1}}}}],
                "shadow": [{{"model": "twin", "share": {share}{shadow_extra}}}]}},
            "twin": {{"deployments": [{{"provider": "b", "model": "m-b", "region": "r-b", "tags": ["eu"],
                    "price": {{"input": 1, "output": 1}}}}]}},
            "other": {{"deployments": [{{"provider": "c", "model": "m-c", "region": "r-c", "tags": ["us"],
                    "price": {{"input": 1, "output": 1}}}}]}},
            "exp": {{"deployments": [{{"provider": "a", "model": "m-a", "region": "r-a"}}],
                "split": [{{"model": "exp", "weight": 9}}, {{"model": "twin", "weight": 1}}]}}
        }},
        "regions": {{"r-a": {{"lat": 0, "lon": 0}}, "r-b": {{"lat": 0, "lon": 0}}, "r-c": {{"lat": 0, "lon": 0}}}},
        "routing": {{"exploration": 0}}
    }}"#
        ))
        .unwrap(),
    )
}

const CAPPED: &str = r#", "max_usd_per_day": 5, "keep_samples": 2"#;

/// Runs a request through the gateway's owned entry, reads the body, then runs the background work (shadows and
/// the ledger's writes).
fn run_owned(cfg: &Rc<Config>, p: &Rc<FakePlatform>, req: Request) -> (Response, Vec<u8>) {
    let state = Rc::new(State::new(1));
    let out = p.run_collected(super::super::handle(Ok(cfg), p, &state, req));
    assert!(p.run_background());
    out
}

fn answer(text: &str, stream: bool) -> Scripted {
    if !stream {
        return Scripted::json(200, &COMPLETION.replace("answer text", text));
    }
    let Scripted::Respond {
        status,
        headers,
        body,
    } = super::stream(0)
    else {
        unreachable!()
    };
    let body = body
        .into_iter()
        .map(|p| match p {
            Piece::Data(d) => Piece::Data(
                String::from_utf8(d)
                    .unwrap()
                    .replace("\"answer\"", &format!("{:?}", text))
                    .replace("\" text\"", "\"\"")
                    .into_bytes(),
            ),
            other => other,
        })
        .collect();
    Scripted::Respond {
        status,
        headers,
        body,
    }
}

fn sent_to(p: &FakePlatform, host: &str) -> usize {
    p.requests
        .borrow()
        .iter()
        .filter(|r| r.url.starts_with(host))
        .count()
}

fn outcomes(p: &FakePlatform) -> Vec<Outcome> {
    p.outcomes
        .borrow()
        .iter()
        .map(|(_, o)| o.outcome.clone())
        .collect()
}

#[test]
fn a_shadow_leaves_the_client_bytes_alone_and_compares_the_answers() {
    for d in BOTH {
        for stream in [false, true] {
            let req = || chat(d, "main", stream);
            // The same request with the shadow off: what the client must get, byte for byte.
            let off = Rc::new(platform([]));
            off.answer("http://a.test", [answer("answer text", stream)]);
            let (plain, plain_body) = run_owned(&shadowed(0.000001, CAPPED, ""), &off, req());
            assert_eq!(sent_to(&off, "http://b.test"), 0);

            let on = Rc::new(platform([]));
            on.answer("http://a.test", [answer("answer text", stream)]);
            on.answer("http://b.test", [answer("Answer   TEXT", stream)]);
            let (resp, body) = run_owned(&shadowed(1.0, CAPPED, ""), &on, req());
            assert_eq!(resp.status, plain.status);
            assert_eq!(
                body, plain_body,
                "{d:?} stream={stream}: the client's bytes changed"
            );
            assert_eq!(
                sent_to(&on, "http://b.test"),
                1,
                "the shadow's provider was asked"
            );
            let o = outcomes(&on);
            let [Outcome::Pair {
                agreement: Some(a),
                shadow_side,
                primary_side,
                sample,
                ..
            }] = o.as_slice()
            else {
                panic!("{d:?} {stream}: {o:?}")
            };
            assert!(a.exact, "whitespace and case do not count");
            assert_eq!(a.similarity, 1.0);
            assert!(a.finish);
            assert_eq!(a.tools, None);
            assert_eq!(shadow_side.error, None);
            assert_eq!(
                (shadow_side.input_tokens, shadow_side.output_tokens),
                (11, 7)
            );
            assert_eq!(shadow_side.cost_usd, Some(18e-6));
            assert!(primary_side.ttft_ms.is_some() && primary_side.total_ms.is_some());
            assert_eq!(sample.as_ref().unwrap().shadow, "Answer   TEXT");
            // The shadow's record is logged as one, and never counted as the client's request.
            let records = on.records();
            assert_eq!(records.len(), 2);
            assert_eq!(
                records.iter().filter(|r| r["shadow_of"] == "main").count(),
                1
            );
        }
    }
}

#[test]
fn a_different_answer_and_different_tool_calls_disagree() {
    let tool_call = |args: &str| {
        Scripted::json(
            200,
            &format!(
                r#"{{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{{"index":0,"message":{{"role":"assistant","content":null,"tool_calls":[{{"id":"t1","type":"function","function":{{"name":"get_weather","arguments":{}}}}}]}},"finish_reason":"tool_calls"}}],"usage":{{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}}}"#,
                serde_json::to_string(args).unwrap()
            ),
        )
    };
    let cases = [
        (
            answer("answer text", false),
            answer("something else", false),
            false,
            None,
        ),
        (
            tool_call(r#"{"city":"Paris","unit":"c"}"#),
            tool_call(r#"{"unit": "c", "city": "Paris"}"#),
            true,
            Some(true),
        ),
        (
            tool_call(r#"{"city":"Paris"}"#),
            tool_call(r#"{"city":"Lyon"}"#),
            true,
            Some(false),
        ),
    ];
    for (primary, shadow, exact, tools) in cases {
        let p = Rc::new(platform([]));
        p.answer("http://a.test", [primary]);
        p.answer("http://b.test", [shadow]);
        run_owned(
            &shadowed(1.0, CAPPED, ""),
            &p,
            chat(D::OpenAi, "main", false),
        );
        let o = outcomes(&p);
        let [Outcome::Pair {
            agreement: Some(a), ..
        }] = o.as_slice()
        else {
            panic!("{o:?}")
        };
        assert_eq!((a.exact, a.tools), (exact, tools), "{a:?}");
    }
}

#[test]
fn the_daily_cap_stops_shadow_calls() {
    // Each call reserves its worst case (the prompt and max_tokens 50 at $1 per million tokens: about 100
    // micro-dollars) and settles to its cost (18): a cap of 150 micro-dollars holds a few calls, then none.
    let cfg = shadowed(1.0, r#", "max_usd_per_day": 0.00015"#, "");
    let p = Rc::new(platform([]));
    p.answer("http://a.test", (0..10).map(|_| completion()));
    p.answer("http://b.test", (0..10).map(|_| completion()));
    for i in 0..10 {
        let req = request(D::OpenAi, "main", false, &format!("\"q{i}\""));
        let (resp, _) = run_owned(&cfg, &p, with_members(req, r#""max_tokens":50"#));
        assert_eq!(resp.status, 200);
    }
    let sent = sent_to(&p, "http://b.test");
    let skipped = outcomes(&p)
        .iter()
        .filter(|o| {
            matches!(
                o,
                Outcome::Skipped {
                    reason: Skip::Budget,
                    ..
                }
            )
        })
        .count();
    assert!((1..10).contains(&sent), "{sent} shadow calls");
    assert_eq!(sent + skipped, 10);
    let spent: f64 = p.shadow_spend.borrow().values().sum();
    assert!(spent <= 0.00015 + 1e-12, "{spent}");
    assert!(
        (spent - sent as f64 * 18e-6).abs() < 1e-12,
        "settled to the cost: {spent}"
    );
}

#[test]
fn residency_and_no_store_keep_a_request_from_being_shadowed() {
    // `other` lives in `us`; a key held to `eu` may not send its requests there.
    let cfg = Rc::new(
        Config::parse(
            &serde_json::to_string(&{
                let mut v: Value =
                    serde_json::from_slice(config_json_with_other_shadow().as_bytes()).unwrap();
                v["keys"][0]["residency"] = serde_json::json!(["eu"]);
                v
            })
            .unwrap(),
        )
        .unwrap(),
    );
    let p = Rc::new(platform([]));
    p.answer("http://a.test", [completion(), completion()]);
    run_owned(&cfg, &p, chat(D::OpenAi, "main", false));
    assert_eq!(sent_to(&p, "http://c.test"), 0);
    let mut req = chat(D::OpenAi, "main", false);
    req.headers.insert("cache-control", "no-store");
    run_owned(&shadowed(1.0, CAPPED, ""), &p, req);
    assert_eq!(sent_to(&p, "http://b.test"), 0);
    let reasons: Vec<Skip> = outcomes(&p)
        .iter()
        .filter_map(|o| match o {
            Outcome::Skipped { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, vec![Skip::Residency, Skip::NoStore]);
}

/// `shadowed` with `main` shadowed by `other` instead of `twin`, as JSON text.
fn config_json_with_other_shadow() -> String {
    let admin = crate::key_hash::KeyHash::of(ADMIN).to_hex();
    format!(
        r#"{{
        "keys": [{{"name": "demo", "sha256": "{KEY_SHA256}"}}],
        "admin_keys": [{{"name": "ops", "sha256": "{admin}"}}],
        "providers": {{
            "a": {{"kind": "openai", "base_url": "http://a.test/v1", "api_key_secret": "K"}},
            "c": {{"kind": "openai", "base_url": "http://c.test/v1", "api_key_secret": "K"}}
        }},
        "models": {{
            "main": {{"deployments": [{{"provider": "a", "model": "m-a", "region": "r-a", "tags": ["eu"],
                    "price": {{"input": 1, "output": 1}}}}],
                "shadow": [{{"model": "other", "share": 1, "max_usd_per_day": 5}}]}},
            "other": {{"deployments": [{{"provider": "c", "model": "m-c", "region": "r-c", "tags": ["us"],
                    "price": {{"input": 1, "output": 1}}}}]}}
        }},
        "regions": {{"r-a": {{"lat": 0, "lon": 0}}, "r-c": {{"lat": 0, "lon": 0}}}}
    }}"#
    )
}

fn admin_get(cfg: &Rc<Config>, p: &Rc<FakePlatform>, path: &str, query: &str) -> (u16, Value) {
    let mut headers = Headers::new();
    headers.insert("authorization", format!("Bearer {ADMIN}"));
    let req = Request {
        method: Method::Get,
        path: path.into(),
        query: query.into(),
        headers,
        body: Vec::new(),
        location: Location::default(),
    };
    let (resp, body) = run_owned(cfg, p, req);
    (resp.status, serde_json::from_slice(&body).unwrap())
}

#[test]
fn the_shadow_report_shows_exact_agreement_and_samples_for_one_key() {
    let cfg = shadowed(1.0, CAPPED, "");
    let p = Rc::new(platform([]));
    p.answer("http://a.test", (0..3).map(|_| completion()));
    p.answer(
        "http://b.test",
        [completion(), answer("no", false), completion()],
    );
    for i in 0..3 {
        run_owned(
            &cfg,
            &p,
            request(D::OpenAi, "main", false, &format!("\"q{i}\"")),
        );
    }
    let (status, all) = admin_get(&cfg, &p, "/_meridian/shadow", "");
    assert_eq!(status, 200, "{all}");
    let pair = &all["pairs"][0];
    assert_eq!(pair["primary"], "main");
    assert_eq!(pair["shadow"], "twin");
    assert_eq!(pair["requests"], 3);
    assert_eq!(pair["agreement"]["exact"]["of"], 3);
    assert_eq!(pair["agreement"]["exact"]["rate"].as_f64(), Some(2.0 / 3.0));
    assert_eq!(pair["shadow_side"]["output_tokens"], 21);
    assert_eq!(
        pair["samples"].as_array().map(Vec::len),
        Some(0),
        "samples only per key"
    );
    let (_, one) = admin_get(&cfg, &p, "/_meridian/shadow", "key=demo");
    assert_eq!(one["pairs"][0]["samples"].as_array().map(Vec::len), Some(3));
    // A gateway key may not read it.
    let mut headers = Headers::new();
    headers.insert("authorization", format!("Bearer {KEY}"));
    let req = Request {
        method: Method::Get,
        path: "/_meridian/shadow".into(),
        query: String::new(),
        headers,
        body: Vec::new(),
        location: Location::default(),
    };
    assert_eq!(run_owned(&cfg, &p, req).0.status, 403);
}

#[test]
fn an_experiment_splits_users_by_weight_and_keeps_each_on_one_arm() {
    let cfg = shadowed(0.000001, CAPPED, "");
    let p = Rc::new(platform([]));
    p.answer("http://a.test", (0..1000).map(|_| completion()));
    p.answer("http://b.test", (0..1000).map(|_| completion()));
    let mut arm_of_user: std::collections::HashMap<String, String> = Default::default();
    let mut on_twin = 0;
    for i in 0..1000 {
        let user = format!("user-{}", i % 100);
        let req = with_members(
            chat(D::OpenAi, "exp", false),
            &format!(r#""user":"{user}""#),
        );
        let (resp, _) = run_owned(&cfg, &p, req);
        let arm = resp.headers.get("x-meridian-variant").unwrap().to_owned();
        on_twin += usize::from(arm == "twin");
        let first = arm_of_user
            .entry(user.clone())
            .or_insert_with(|| arm.clone());
        assert_eq!(*first, arm, "{user} changed arms");
    }
    // 100 users at 10%: the arm's share of users is binomial (sd 3 points); within 5 points of 10%.
    assert!(
        (50..=150).contains(&on_twin),
        "{on_twin} of 1000 on the 10% arm"
    );
    let (_, report) = admin_get(&cfg, &p, "/_meridian/experiments", "");
    let arms = report["arms"].as_array().unwrap();
    let total: u64 = arms.iter().map(|a| a["requests"].as_u64().unwrap()).sum();
    assert_eq!(total, 1000);
    let twin = arms.iter().find(|a| a["arm"] == "twin").unwrap();
    assert_eq!(twin["requests"], on_twin);
    assert_eq!(twin["experiment"], "exp");
    assert!(twin["ttft_ms"]["p50"].is_u64());
}
