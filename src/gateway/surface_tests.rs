//! The endpoints beside chat, through `gateway::handle` under the fake platform: embeddings at each provider kind
//! (passed through, translated, skipped), with the cache.

use super::*;

/// OpenAI, Gemini, Bedrock and Anthropic providers; `emb` tries Anthropic (which cannot embed) first, then Gemini;
/// `titan` is Bedrock's Titan, `openai` OpenAI's, `cached` Gemini's with a cache.
fn surface_config() -> Config {
    Config::parse(&format!(
        r#"{{
        "keys": [{{"name": "demo", "sha256": "{KEY_SHA256}"}},
                 {{"name": "other", "sha256": "d9298a10d1b0735837dc4bd85dac641b0f3cef27a47e5d53a54f2f3f5b2fcffa"}}],
        "providers": {{
            "o": {{"kind": "openai", "base_url": "http://o.test/v1", "api_key_secret": "K"}},
            "g": {{"kind": "gemini", "base_url": "http://g.test/v1beta", "api_key_secret": "K"}},
            "an": {{"kind": "anthropic", "base_url": "http://an.test/v1", "api_key_secret": "K"}},
            "br": {{"kind": "bedrock", "base_url": "http://br.test", "region": "us-east-1",
                    "access_key_id_secret": "AWS_ID", "secret_access_key_secret": "AWS_SECRET"}}
        }},
        "models": {{
            "emb": {{"deployments": [
                {{"provider": "an", "model": "claude", "region": "r-a", "weight": 3}},
                {{"provider": "g", "model": "gemini-embedding-001", "region": "r-a", "weight": 1}}
            ]}},
            "titan": {{"deployments": [{{"provider": "br", "model": "amazon.titan-embed-text-v2:0", "region": "us-east-1"}}]}},
            "openai": {{"deployments": [{{"provider": "o", "model": "text-embedding-3-small", "region": "r-a"}}]}},
            "cached": {{"cache": {{"enabled": true}}, "deployments": [{{"provider": "g", "model": "gemini-embedding-001", "region": "r-a"}}]}},
            "chat": {{"deployments": [{{"provider": "o", "model": "gpt-4o-mini", "region": "r-a"}}]}},
            "cached-chat": {{"cache": {{"enabled": true}}, "deployments": [{{"provider": "o", "model": "gpt-4o-mini", "region": "r-a"}}]}}
        }},
        "regions": {{"r-a": {{"lat": 0, "lon": 0}}}},
        "routing": {{"exploration": 0}}
    }}"#
    ))
    .unwrap()
}

fn embed(body: &str) -> Request {
    let mut req = request(D::OpenAi, "x", false, "\"x\"");
    req.path = "/v1/embeddings".into();
    req.body = body.as_bytes().to_vec();
    req
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

#[test]
fn openai_wire_embeddings_pass_through() {
    let cfg = surface_config();
    let answer = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-0.25]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":2,"total_tokens":2}}"#;
    let p = platform([Scripted::json(200, answer)]);
    let (resp, body) = run(
        &cfg,
        &p,
        &State::new(1),
        embed(r#"{"model":"openai","input":"a b","dimensions":2}"#),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(body, answer.as_bytes());
    let reqs = p.requests.borrow();
    assert_eq!(reqs[0].url, "http://o.test/v1/embeddings");
    assert_eq!(
        reqs[0].body,
        br#"{"model":"text-embedding-3-small","input":"a b","dimensions":2}"#
    );
    drop(reqs);
    let rec = only_record(&p);
    assert_eq!(rec["operation"], "embeddings");
    assert_eq!(rec["usage"]["input"], 2);
}

#[test]
fn gemini_embeds_a_batch_in_openais_shape_after_anthropic_is_skipped() {
    let cfg = surface_config();
    let p = platform([Scripted::json(
        200,
        r#"{"embeddings":[{"values":[0.5,-0.25]},{"values":[1.0,0.0]}]}"#,
    )]);
    let (resp, body) = run(
        &cfg,
        &p,
        &State::new(1),
        embed(r#"{"model":"emb","input":["one two three four","five"],"dimensions":2}"#),
    );
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&body));
    let v = json_of(&body);
    assert_eq!(v["data"][1]["embedding"], serde_json::json!([1.0, 0.0]));
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["model"], "gemini-embedding-001");
    // Gemini does not count: about four characters a token (18 and 4 characters).
    assert_eq!(v["usage"]["prompt_tokens"], 5 + 1);
    let reqs = p.requests.borrow();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].url,
        "http://g.test/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    let sent = json_of(&reqs[0].body);
    assert_eq!(sent["requests"][1]["content"]["parts"][0]["text"], "five");
    assert_eq!(sent["requests"][0]["outputDimensionality"], 2);
    drop(reqs);
    let rec = only_record(&p);
    assert_eq!(rec["attempts"][0]["outcome"], "skipped");
    assert_eq!(rec["attempts"][0]["code"], "unsupported_input");
}

#[test]
fn titan_embeds_one_text_signed_and_base64_is_little_endian_f32() {
    let cfg = surface_config();
    let p = platform([Scripted::json(
        200,
        r#"{"embedding":[1.0,-2.0],"inputTextTokenCount":3}"#,
    )]);
    let (resp, body) = run(
        &cfg,
        &p,
        &State::new(1),
        embed(r#"{"model":"titan","input":"a b c","encoding_format":"base64"}"#),
    );
    assert_eq!(resp.status, 200);
    let v = json_of(&body);
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let floats: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(floats, [1.0, -2.0]);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    let reqs = p.requests.borrow();
    assert!(
        reqs[0]
            .url
            .ends_with("/model/amazon.titan-embed-text-v2%3A0/invoke"),
        "{}",
        reqs[0].url
    );
    assert!(reqs[0]
        .headers
        .get("authorization")
        .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256")));
    drop(reqs);
    // Two texts: Titan takes one a call, so the model cannot serve them.
    let p = platform([]);
    let (resp, body) = run(
        &cfg,
        &p,
        &State::new(1),
        embed(r#"{"model":"titan","input":["a","b"]}"#),
    );
    assert_eq!(resp.status, 400);
    assert_eq!(json_of(&body)["error"]["code"], "unsupported_input");
}

#[test]
fn a_cached_model_answers_identical_embeddings_from_kv() {
    let cfg = surface_config();
    let state = State::new(1);
    let answer = || Scripted::json(200, r#"{"embeddings":[{"values":[0.5]}]}"#);
    let p = platform([answer(), answer()]);
    let (first, body) = run(
        &cfg,
        &p,
        &state,
        embed(r#"{"model":"cached","input":"hi"}"#),
    );
    assert_eq!(first.status, 200);
    let (again, cached) = run(
        &cfg,
        &p,
        &state,
        embed(r#"{"user":"u-2","input":"hi","model":"cached"}"#),
    );
    assert_eq!(again.status, 200);
    assert_eq!(again.headers.get("x-meridian-cache"), Some("HIT"));
    assert_eq!(cached, body);
    assert_eq!(p.requests.borrow().len(), 1, "the second came from KV");
    // Another input is another key.
    let (other, _) = run(
        &cfg,
        &p,
        &state,
        embed(r#"{"model":"cached","input":"ho"}"#),
    );
    assert_eq!(other.headers.get("x-meridian-cache"), Some("MISS"));
    assert_eq!(p.requests.borrow().len(), 2);
}

#[test]
fn bad_embeddings_input_is_a_400_in_openais_shape() {
    let cfg = surface_config();
    let p = platform([]);
    for (body, code) in [
        (r#"{"model":"emb"}"#, "invalid_value"),
        (r#"{"input":"x"}"#, "invalid_model"),
        (r#"{"model":"nope","input":"x"}"#, "model_not_found"),
    ] {
        let (resp, out) = run(&cfg, &p, &State::new(1), embed(body));
        assert!(resp.status == 400 || resp.status == 404, "{body}");
        assert_eq!(json_of(&out)["error"]["code"], code, "{body}");
    }
    assert!(p.requests.borrow().is_empty());
}

fn responses_post(body: &str) -> Request {
    let mut req = request(D::OpenAi, "x", false, "\"x\"");
    req.path = "/v1/responses".into();
    req.body = body.as_bytes().to_vec();
    req
}

fn responses_at(method: Method, id: &str) -> Request {
    let mut req = request(D::OpenAi, "x", false, "\"x\"");
    req.method = method;
    req.path = format!("/v1/responses/{id}");
    req.body = Vec::new();
    req
}

#[test]
fn a_response_is_stored_continued_retrieved_and_deleted() {
    let cfg = surface_config();
    let state = State::new(1);
    let p = platform([completion(), completion()]);
    let (resp, body) = run(
        &cfg,
        &p,
        &state,
        responses_post(r#"{"model":"chat","instructions":"be brief","input":"first question"}"#),
    );
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&body));
    let v = json_of(&body);
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["type"], "message");
    assert_eq!(v["output"][0]["content"][0]["text"], "answer text");
    assert_eq!(v["usage"]["input_tokens"], 11);
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("resp_"));
    // The provider got a chat completion request.
    let sent = json_of(&p.requests.borrow()[0].body);
    assert_eq!(
        sent["messages"][0],
        serde_json::json!({"role": "system", "content": "be brief"})
    );

    // Continued: the stored conversation comes first.
    let (resp, body) = run(
        &cfg,
        &p,
        &state,
        responses_post(&format!(
            r#"{{"model":"chat","previous_response_id":"{id}","input":"second question"}}"#
        )),
    );
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&body));
    let sent = json_of(&p.requests.borrow()[1].body);
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"], "{sent}");
    assert_eq!(sent["messages"][1]["content"], "answer text");
    assert_eq!(json_of(&body)["previous_response_id"], id.as_str());

    // Retrieved, deleted, gone.
    let (resp, body) = run(&cfg, &p, &state, responses_at(Method::Get, &id));
    assert_eq!(resp.status, 200);
    assert_eq!(json_of(&body)["id"], id.as_str());
    let (resp, body) = run(&cfg, &p, &state, responses_at(Method::Delete, &id));
    assert_eq!(resp.status, 200);
    assert_eq!(json_of(&body)["deleted"], true);
    let (resp, body) = run(&cfg, &p, &state, responses_at(Method::Get, &id));
    assert_eq!(resp.status, 404);
    assert_eq!(json_of(&body)["error"]["code"], "response_not_found");
    let (resp, _) = run(
        &cfg,
        &p,
        &state,
        responses_post(&format!(
            r#"{{"model":"chat","previous_response_id":"{id}","input":"x"}}"#
        )),
    );
    assert_eq!(resp.status, 404);
}

#[test]
fn store_false_keeps_nothing_and_another_key_sees_nothing() {
    let cfg = surface_config();
    let state = State::new(1);
    let p = platform([completion()]);
    let (_, body) = run(
        &cfg,
        &p,
        &state,
        responses_post(r#"{"model":"chat","input":"hi","store":false}"#),
    );
    let id = json_of(&body)["id"].as_str().unwrap().to_owned();
    assert!(p.kv.borrow().is_empty(), "nothing stored");
    let (resp, _) = run(&cfg, &p, &state, responses_at(Method::Get, &id));
    assert_eq!(resp.status, 404);
}

#[test]
fn a_streamed_response_has_the_semantic_events_in_order_and_is_stored_when_complete() {
    let cfg = surface_config();
    let state = State::new(1);
    let p = platform([stream(0)]);
    let (resp, body) = run(
        &cfg,
        &p,
        &state,
        responses_post(r#"{"model":"chat","input":"hi","stream":true}"#),
    );
    assert_eq!(resp.status, 200);
    let text = String::from_utf8(body).unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let completed: Value = serde_json::from_str(
        text.lines()
            .rev()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        completed["response"]["output"][0]["content"][0]["text"],
        "answer text"
    );
    assert_eq!(completed["response"]["usage"]["output_tokens"], 7);
    let id = completed["response"]["id"].as_str().unwrap().to_owned();
    let (resp, _) = run(&cfg, &p, &state, responses_at(Method::Get, &id));
    assert_eq!(resp.status, 200);
}

#[test]
fn a_cached_model_answers_an_identical_response_from_the_cache_with_its_own_id_and_stores_it() {
    let cfg = surface_config();
    let state = State::new(1);
    let p = platform([completion()]);
    let ask = r#"{"model":"cached-chat","input":"same question","temperature":0}"#;
    let (first, body) = run(&cfg, &p, &state, responses_post(ask));
    assert_eq!(first.status, 200);
    let a = json_of(&body);
    let (again, body) = run(&cfg, &p, &state, responses_post(ask));
    assert_eq!(again.headers.get("x-meridian-cache"), Some("HIT"));
    let b = json_of(&body);
    assert_ne!(a["id"], b["id"], "each response has its own id");
    assert_eq!(a["output"][0]["content"], b["output"][0]["content"]);
    assert_eq!(p.requests.borrow().len(), 1);
    for v in [&a, &b] {
        let (resp, _) = run(
            &cfg,
            &p,
            &state,
            responses_at(Method::Get, v["id"].as_str().unwrap()),
        );
        assert_eq!(resp.status, 200);
    }
}
