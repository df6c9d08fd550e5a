//! The endpoints beside chat against recorded real traffic (tests/fixtures/SOURCES.md names each recording):
//! embeddings in each provider's wire format, and token counts.
#![allow(clippy::disallowed_methods)] // one JSON reader is the worker's rule; this is a test

mod common;

use base64::Engine;
use common::fixture;
use meridian::config::{AwsSecretNames, Deployment, Provider, ProviderKind};
use meridian::inbound::embeddings::{self as inbound, Encoding};
use meridian::providers::{count_tokens, embeddings, Credentials};
use serde_json::Value;
use std::rc::Rc;

fn dep(kind: ProviderKind, model: &str) -> Deployment {
    Deployment {
        provider: Rc::new(Provider {
            name: "p".into(),
            kind,
            base_url: "http://p.test".into(),
            api_key_secret: None,
            region: "r".into(),
        }),
        model: model.into(),
        region: "r".into(),
        coords: None,
        tags: Vec::new(),
        weight: 1.0,
        price: None,
    }
}

fn bedrock() -> ProviderKind {
    ProviderKind::Bedrock {
        region: "us-east-1".into(),
        credentials: AwsSecretNames {
            access_key_id: "A".into(),
            secret_access_key: "S".into(),
            session_token: None,
        },
    }
}

fn floats(v: &Value) -> Vec<f32> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn openai_embeddings_pass_through_with_their_count_and_base64_is_written_as_openai_writes_it() {
    let body = fixture("openai/embeddings_response.json");
    assert_eq!(
        embeddings::passthrough_usage(body.as_bytes()),
        Some(Some(7))
    );
    // The recorded base64 vector, decoded and written again by Meridian, is the same text.
    let b64: Value =
        serde_json::from_str(&fixture("openai/embeddings_base64_response.json")).unwrap();
    let text = b64["data"][0]["embedding"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap();
    let vector: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(vector.len(), 256);
    let v = embeddings::Vectors {
        vectors: vec![vector],
        input_tokens: Some(5),
    };
    let ours: Value = serde_json::from_slice(&embeddings::render(
        &v,
        "text-embedding-3-small",
        Encoding::Base64,
        5,
    ))
    .unwrap();
    assert_eq!(ours["data"][0]["embedding"], text);
    assert_eq!(ours["usage"], b64["usage"]);
}

#[test]
fn gemini_batch_embeddings_in_input_order() {
    let d = dep(ProviderKind::Gemini, "gemini-embedding-2");
    let body = fixture("gemini/batch_embed_contents_response.json");
    let v = embeddings::parse(&d, body.as_bytes(), 2).unwrap();
    let recorded: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v.vectors.len(), 2);
    assert_eq!(v.vectors[1], floats(&recorded["embeddings"][1]["values"]));
    assert_eq!(v.vectors[0].len(), 768);
    // Fewer vectors than inputs is the provider's failure.
    assert!(embeddings::parse(&d, body.as_bytes(), 3).is_err());
}

#[test]
fn titan_request_and_answer() {
    let d = dep(bedrock(), "amazon.titan-embed-text-v2:0");
    let req =
        inbound::parse(br#"{"model":"m","input":"Test embedding dimensions","dimensions":256}"#)
            .unwrap();
    let up = embeddings::request(&d, &req, &Credentials::None, 0).unwrap();
    let sent: Value = serde_json::from_slice(&up.body).unwrap();
    let recorded: Value =
        serde_json::from_str(&fixture("bedrock/titan_embed_v2_request.json")).unwrap();
    assert_eq!(sent["inputText"], recorded["inputText"]);
    assert_eq!(sent["dimensions"], recorded["dimensions"]);
    assert!(
        up.url
            .ends_with("/model/amazon.titan-embed-text-v2%3A0/invoke"),
        "{}",
        up.url
    );
    let body = fixture("bedrock/titan_embed_v2_response.json");
    let v = embeddings::parse(&d, body.as_bytes(), 1).unwrap();
    assert_eq!((v.vectors[0].len(), v.input_tokens), (256, Some(4)));
}

#[test]
fn cohere_on_bedrock_answer() {
    let d = dep(bedrock(), "cohere.embed-english-v3");
    let v = embeddings::parse(
        &d,
        fixture("bedrock/cohere_embed_response.json").as_bytes(),
        1,
    )
    .unwrap();
    assert_eq!((v.vectors[0].len(), v.input_tokens), (1024, None));
}

#[test]
fn token_counts_from_each_kind() {
    for (kind, path, want) in [
        (
            ProviderKind::Anthropic,
            "anthropic/count_tokens_response.json",
            16,
        ),
        (bedrock(), "bedrock/count_tokens_response.json", 11),
        (ProviderKind::Gemini, "gemini/count_tokens_response.json", 5),
    ] {
        assert_eq!(
            count_tokens::parse(&kind, fixture(path).as_bytes()).unwrap(),
            want,
            "{path}"
        );
    }
    assert!(count_tokens::parse(&ProviderKind::Gemini, b"{}").is_err());
}
