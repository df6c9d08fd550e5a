//! The endpoints beside chat, through `gateway::handle` under the fake platform: embeddings at each provider kind
//! (passed through, translated, skipped), with the cache.

use super::*;

/// OpenAI, Gemini, Bedrock and Anthropic providers; `emb` tries Anthropic (which cannot embed) first, then Gemini;
/// `titan` is Bedrock's Titan, `openai` OpenAI's, `cached` Gemini's with a cache.
fn surface_config() -> Config {
    Config::parse(&format!(
        r#"{{
        "keys": [{{"name": "demo", "sha256": "{KEY_SHA256}"}}],
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
            "cached": {{"cache": {{"enabled": true}}, "deployments": [{{"provider": "g", "model": "gemini-embedding-001", "region": "r-a"}}]}}
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
