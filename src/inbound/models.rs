//! `GET /v1/models` and `GET /v1/models/{id}`: the models this gateway serves, in the shape of the SDK that asks.
//! Anthropic's SDKs send `anthropic-version` (their `models.list` / `models.retrieve`); everything else gets
//! OpenAI's shape.

use super::Dialect;
use crate::config::Config;
use crate::error::{ErrorCode, GatewayError};
use serde_json::{json, Value};

/// Meridian's aliases carry no creation date; both shapes want one.
const EPOCH: &str = "1970-01-01T00:00:00Z";

fn object(dialect: Dialect, id: &str) -> Value {
    match dialect {
        Dialect::OpenAi | Dialect::Responses => {
            json!({"id": id, "object": "model", "created": 0, "owned_by": "meridian"})
        }
        Dialect::Anthropic => {
            json!({"type": "model", "id": id, "display_name": id, "created_at": EPOCH})
        }
    }
}

/// Every alias, in order.
pub fn list(config: &Config, dialect: Dialect) -> Vec<u8> {
    // Configured and virtual models, by name.
    let names: std::collections::BTreeSet<&String> = config
        .models
        .keys()
        .chain(config.virtual_models.keys())
        .collect();
    let data: Vec<Value> = names.iter().map(|n| object(dialect, n)).collect();
    let body = match dialect {
        Dialect::OpenAi | Dialect::Responses => json!({"object": "list", "data": data}),
        Dialect::Anthropic => json!({
            "data": data,
            "has_more": false,
            "first_id": names.first(),
            "last_id": names.last(),
        }),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// One model by the name a client would send as `model`: an alias, or `provider/model` for a configured provider.
/// `raw_id` is the path segment as sent (SDKs percent-encode it).
pub fn retrieve(config: &Config, dialect: Dialect, raw_id: &str) -> Result<Vec<u8>, GatewayError> {
    let id = percent_encoding::percent_decode_str(raw_id)
        .decode_utf8()
        .ok()
        .filter(|id| super::check_model_name(id).is_ok())
        .ok_or_else(|| {
            GatewayError::new(
                ErrorCode::InvalidModel,
                "the model id in the path is not a valid model name",
            )
        })?;
    let known = config.model(&id).is_some()
        || config.virtual_models.contains_key(id.as_ref() as &str)
        || id.split_once('/').is_some_and(|(provider, model)| {
            !model.is_empty() && config.provider(provider).is_some()
        });
    if !known {
        return Err(GatewayError::new(
            ErrorCode::ModelNotFound,
            format!("model `{id}` does not exist; GET /v1/models lists the models served here"),
        ));
    }
    Ok(serde_json::to_vec(&object(dialect, &id)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(
            r#"{"keys": [{"name": "k", "sha256": "2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea"}], "providers": {"up": {"kind": "openai", "base_url": "http://up.test/v1"}},
                "models": {"fast": {"deployments": [{"provider": "up", "model": "m", "region": "us-east-1"}]},
                           "smart": {"deployments": [{"provider": "up", "model": "n", "region": "us-east-1"}]}}}"#,
        )
        .unwrap()
    }

    fn json(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn lists_in_either_shape() {
        let c = config();
        let o = json(&list(&c, Dialect::OpenAi));
        assert_eq!(o["object"], "list");
        assert_eq!(
            o["data"][1],
            json!({"id": "smart", "object": "model", "created": 0, "owned_by": "meridian"})
        );
        let a = json(&list(&c, Dialect::Anthropic));
        assert_eq!(a["data"][0]["type"], "model");
        assert_eq!(
            (a["first_id"].as_str(), a["last_id"].as_str()),
            (Some("fast"), Some("smart"))
        );
        assert_eq!(a["has_more"], false);
    }

    #[test]
    fn retrieves_aliases_and_provider_models_and_refuses_the_rest() {
        let c = config();
        assert_eq!(
            json(&retrieve(&c, Dialect::OpenAi, "fast").unwrap())["id"],
            "fast"
        );
        assert_eq!(
            json(&retrieve(&c, Dialect::Anthropic, "up%2Fgpt-4o").unwrap())["id"],
            "up/gpt-4o"
        );
        let e = retrieve(&c, Dialect::OpenAi, "nope").unwrap_err();
        assert_eq!((e.code, e.status), (ErrorCode::ModelNotFound, 404));
        assert_eq!(
            retrieve(&c, Dialect::OpenAi, "other/x").unwrap_err().code,
            ErrorCode::ModelNotFound
        );
        assert_eq!(
            retrieve(&c, Dialect::OpenAi, "a%0Ab").unwrap_err().code,
            ErrorCode::InvalidModel
        );
        assert_eq!(
            retrieve(&c, Dialect::OpenAi, "%FF").unwrap_err().code,
            ErrorCode::InvalidModel
        );
    }
}
