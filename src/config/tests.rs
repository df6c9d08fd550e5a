use super::*;

const DEMO_HASH: &str = "2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea";

fn with(models: &str, providers: &str) -> String {
    format!(
        r#"{{"keys":[{{"name":"demo","sha256":"{DEMO_HASH}"}}],"providers":{providers},"models":{models}}}"#
    )
}

const PROVIDERS: &str = r#"{"p":{"kind":"openai","base_url":"http://127.0.0.1:1/v1/"}}"#;

#[test]
fn valid_config() {
    let c = Config::parse(&with(
        r#"{"fast":{"deployments":[{"provider":"p","model":"m","region":"us-east-1"}]}}"#,
        PROVIDERS,
    ))
    .unwrap();
    let m = c.model("fast").unwrap();
    assert_eq!(m.deployments().len(), 1);
    assert_eq!(m.primary().provider.base_url, "http://127.0.0.1:1/v1");
    assert_eq!(m.primary().id(), "p/m");
    assert_eq!(c.timeouts.first_byte_ms, DEFAULT_FIRST_BYTE_MS);
}

#[test]
fn errors_name_the_path() {
    let cases = [
        (
            with(r#"{"fast":{"deployments":[]}}"#, PROVIDERS),
            "models.fast.deployments: must list at least one deployment",
        ),
        (
            with(
                r#"{"fast":{"deployments":[{"provider":"p","model":"m","region":"us-east-1"},{"provider":"q","model":"m","region":"us-east-1"}]}}"#,
                PROVIDERS,
            ),
            "models.fast.deployments[1].provider: unknown provider \"q\"",
        ),
        (
            with(
                r#"{"fast":{"deployments":[{"provider":"p","model":"m","region":"us-east-1","colour":1}]}}"#,
                PROVIDERS,
            ),
            "models.fast.deployments[0].colour: unknown field `colour`, expected one of",
        ),
        (
            with(
                r#"{"f":{"deployments":[{"provider":"p","model":"m","region":"us-east-1"}]}}"#,
                r#"{"p":{"kind":"smoke","base_url":"http://x"}}"#,
            ),
            "providers.p.kind: unknown provider kind \"smoke\"",
        ),
        (
            with(
                r#"{"f":{"deployments":[{"provider":"p","model":"m","region":"us-east-1"}]}}"#,
                r#"{"p":{"kind":"openai","base_url":"ftp://x"}}"#,
            ),
            "providers.p.base_url: must be an http(s) URL",
        ),
        (
            r#"{"keys":[{"name":"k","sha256":"abc"}],"models":{}}"#.to_string(),
            "keys[0].sha256: must be 64 hex digits",
        ),
        (
            r#"{"models":{}}"#.to_string(),
            "keys: at least one gateway key is required",
        ),
        (
            format!(r#"{{"keys":[{{"name":"k","sha256":"{DEMO_HASH}"}}],"models":{{}}}}"#),
            "models: at least one model is required",
        ),
        ("not json".to_string(), "expected ident"),
        (
            with(
                r#"{"f":{"deployments":[{"provider":"p","model":"m","region":"us-east-1"}]}}"#,
                PROVIDERS,
            )
            .replace(r#""models""#, r#""timeouts":{"first_byte_ms":0},"models""#),
            "timeouts.first_byte_ms: must be greater than 0",
        ),
    ];
    for (json, want) in cases {
        let e = Config::parse(&json).unwrap_err();
        assert!(e.0.contains(want), "want {want:?}, got {:?}", e.0);
    }
}

#[test]
fn provider_kinds_check_their_own_settings() {
    let model = r#"{"f":{"deployments":[{"provider":"p","model":"m","region":"us-east-1"}]}}"#;
    let cases = [
        (
            r#"{"p":{"kind":"azure","base_url":"https://x.openai.azure.com"}}"#,
            "providers.p.api_version: is required",
        ),
        (
            r#"{"p":{"kind":"azure","api_version":"2024-10-21"}}"#,
            "providers.p.base_url: is required",
        ),
        (
            r#"{"p":{"kind":"gemini","api_version":"v"}}"#,
            "providers.p.api_version: only applies to kind \"azure\"",
        ),
        (
            r#"{"p":{"kind":"openai","access_key_id_secret":"A"}}"#,
            "providers.p.access_key_id_secret: only applies",
        ),
        (
            r#"{"p":{"kind":"bedrock","access_key_id_secret":"A","secret_access_key_secret":"S"}}"#,
            "providers.p.region: an AWS region",
        ),
        (
            r#"{"p":{"kind":"bedrock","region":"Mars","access_key_id_secret":"A","secret_access_key_secret":"S"}}"#,
            "providers.p.region: an AWS region",
        ),
        (
            r#"{"p":{"kind":"bedrock","region":"us-east-1","access_key_id_secret":"A"}}"#,
            "providers.p.secret_access_key_secret: is required",
        ),
        (r#"{"a/b":{"kind":"openai"}}"#, "must not contain '/'"),
    ];
    for (providers, want) in cases {
        let e = Config::parse(&with(model, providers)).unwrap_err();
        assert!(e.0.contains(want), "want {want:?}, got {:?}", e.0);
    }
    let ok = r#"{"p":{"kind":"bedrock","region":"eu-central-1","access_key_id_secret":"A","secret_access_key_secret":"S"}}"#;
    let c = Config::parse(&with(model, ok)).unwrap();
    let p = c.provider("p").unwrap();
    assert_eq!(
        p.base_url,
        "https://bedrock-runtime.eu-central-1.amazonaws.com"
    );
    assert_eq!(p.region, "eu-central-1");
    let c = Config::parse(&with(
        model,
        r#"{"p":{"kind":"anthropic","api_key_secret":"K"}}"#,
    ))
    .unwrap();
    assert_eq!(
        c.provider("p").unwrap().base_url,
        "https://api.anthropic.com/v1"
    );
}

#[test]
fn reading_names_the_path_of_wrong_types_and_missing_fields() {
    let dep = r#"{"provider":"p","model":"m","region":"us-east-1"}"#;
    let cases = [
        (
            with(
                &format!(r#"{{"f":{{"deployments":[{dep}],"max_attempts":-1}}}}"#),
                PROVIDERS,
            ),
            "models.f.max_attempts: invalid value: integer `-1`, expected u32",
        ),
        (
            with(
                &format!(r#"{{"f":{{"deployments":[{dep}],"max_attempts":4294967296}}}}"#),
                PROVIDERS,
            ),
            "models.f.max_attempts: invalid value: integer `4294967296`, expected u32",
        ),
        (
            with(
                r#"{"f":{"deployments":[{"provider":"p","region":"us-east-1"}]}}"#,
                PROVIDERS,
            ),
            "models.f.deployments[0]: missing field `model`",
        ),
        (
            with(&format!(r#"{{"f":{{"deployments":{dep}}}}}"#), PROVIDERS),
            "models.f.deployments: invalid type: map, expected a sequence",
        ),
        (
            with(
                &format!(r#"{{"f":{{"deployments":[{dep}],"cache":{{"ttl_s":"60"}}}}}}"#),
                PROVIDERS,
            ),
            "models.f.cache.ttl_s: invalid type: string \"60\", expected u64",
        ),
        ("[]".to_string(), "expected an object"),
        (
            r#"{"keys":[{"name":"k","sha256":"x"}],"colour":1}"#.to_string(),
            "colour: unknown field `colour`, expected one of `keys`, `providers`",
        ),
    ];
    for (json, want) in cases {
        let e = Config::parse(&json).unwrap_err();
        assert!(e.0.starts_with(want), "want {want:?}, got {:?}", e.0);
    }
}

#[test]
fn absent_and_null_fields_take_their_defaults() {
    let c = Config::parse(&with(
        r#"{"f":{"deployments":[{"provider":"p","model":"m","region":"us-east-1","tags":null}],"cache":{"ttl_s":null}}}"#,
        PROVIDERS,
    ))
    .unwrap();
    let m = c.model("f").unwrap();
    assert!(
        m.cache.is_some(),
        "a cache section is enabled unless it says otherwise"
    );
    assert!(m.primary().tags.is_empty());
    assert!(c.keys[0].cors.allowed_origins.is_empty());
}

#[test]
fn shadows_and_splits_name_the_path_of_what_is_wrong() {
    let priced = r#""price":{"input":1,"output":2}"#;
    let models = |a_extra: &str, b_price: &str| {
        format!(
            r#"{{"a":{{"deployments":[{{"provider":"p","model":"x","region":"us-east-1",{priced}}}]{a_extra}}},
                "b":{{"deployments":[{{"provider":"p","model":"y","region":"us-east-1"{b_price}}}]}},
                "c":{{"deployments":[{{"provider":"p","model":"z","region":"us-east-1",{priced}}}],"split":[{{"model":"c","weight":1}},{{"model":"b","weight":1}}]}}}}"#
        )
    };
    let b_priced = format!(",{priced}");
    let ok = Config::parse(&with(
        &models(
            r#","shadow":[{"model":"b","share":0.05,"max_usd_per_day":5,"keep_samples":3}],"split":[{"model":"a","weight":9},{"model":"b","weight":1}]"#,
            &b_priced,
        ),
        PROVIDERS,
    ))
    .unwrap();
    let a = ok.model("a").unwrap();
    assert_eq!(a.shadows[0].model, "b");
    assert_eq!(a.shadows[0].keep_samples, 3);
    assert_eq!(
        a.split.iter().map(|s| s.share).collect::<Vec<_>>(),
        vec![0.9, 0.1]
    );
    let cases = [
        (
            r#","shadow":[{"model":"nope","share":0.1,"max_usd_per_day":1}]"#,
            b_priced.as_str(),
            "models.a.shadow[0].model: unknown model \"nope\"",
        ),
        (
            r#","shadow":[{"model":"b","share":0.1,"max_usd_per_day":1}]"#,
            "",
            "models.a.shadow[0].model: every deployment of \"b\" needs a price",
        ),
        (
            r#","shadow":[{"model":"a","share":0.1,"max_usd_per_day":1}]"#,
            "",
            "models.a.shadow[0].model: a model cannot shadow itself",
        ),
        (
            r#","shadow":[{"model":"b","share":0,"max_usd_per_day":1}]"#,
            b_priced.as_str(),
            "models.a.shadow[0].share: must be in (0, 1]",
        ),
        (
            r#","shadow":[{"model":"b","share":0.5}]"#,
            b_priced.as_str(),
            "models.a.shadow[0].max_usd_per_day: required",
        ),
        (
            r#","shadow":[{"model":"b","share":0.5,"max_usd_per_day":1,"keep_samples":1000}]"#,
            b_priced.as_str(),
            "models.a.shadow[0].keep_samples: at most 100",
        ),
        (
            r#","shadow":[{"model":"b","share":0.5,"max_usd_per_day":1,"sample":1}]"#,
            b_priced.as_str(),
            "unknown field `sample`",
        ),
        (
            r#","split":[{"model":"b","weight":1}]"#,
            "",
            "models.a.split: an experiment needs at least two arms",
        ),
        (
            r#","split":[{"model":"a","weight":1},{"model":"zz","weight":1}]"#,
            "",
            "models.a.split[1].model: unknown model \"zz\"",
        ),
        (
            r#","split":[{"model":"a","weight":1},{"model":"b","weight":-1}]"#,
            "",
            "models.a.split[1].weight: must be positive",
        ),
        (
            r#","split":[{"model":"b","weight":1},{"model":"b","weight":1}]"#,
            "",
            "models.a.split[1].model: \"b\" is listed twice",
        ),
        (
            r#","split":[{"model":"a","weight":1},{"model":"c","weight":1}]"#,
            "",
            "models.a.split[1].model: \"c\" runs an experiment of its own",
        ),
    ];
    for (extra, b_price, want) in cases {
        let e = Config::parse(&with(&models(extra, b_price), PROVIDERS)).unwrap_err();
        assert!(e.0.contains(want), "{extra}: {e}");
    }
}
