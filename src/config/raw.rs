//! Phase one: the configuration exactly as written in `wrangler.toml` (or JSON), rejected on unknown fields.

use super::ConfigError;
use crate::json::ParseError;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default, deserialize_with = "null_is_default")]
    pub keys: Vec<RawKey>,
    #[serde(default, deserialize_with = "null_is_default")]
    pub providers: BTreeMap<String, RawProvider>,
    #[serde(default, deserialize_with = "null_is_default")]
    pub models: BTreeMap<String, RawModel>,
    #[serde(default, deserialize_with = "null_is_default")]
    pub timeouts: RawTimeouts,
    #[serde(default, deserialize_with = "null_is_default")]
    pub routing: RawRouting,
    /// Regions beyond the built-in cloud table (self-hosted models, other clouds).
    #[serde(default, deserialize_with = "null_is_default")]
    pub regions: BTreeMap<String, RawRegion>,
    /// Browser origins allowed for every key (preflights are answered before any key is seen).
    #[serde(default, deserialize_with = "null_is_default")]
    pub cors_origins: Vec<String>,
    pub browser_tokens: Option<RawTokens>,
    /// Tests only: `POST /_meridian/debug/panic` panics, to prove a panic becomes a JSON 500.
    #[serde(default, deserialize_with = "null_is_default")]
    pub debug_panic_route: bool,
    #[serde(default, deserialize_with = "null_is_default")]
    pub limits: RawLimits,
    /// Keys for the admin endpoints (`/_meridian/spend`): never gateway keys.
    #[serde(default, deserialize_with = "null_is_default")]
    pub admin_keys: Vec<RawAdminKey>,
    /// Model aliases whose model is chosen per request by rules (`config::rules`).
    #[serde(default, deserialize_with = "null_is_default")]
    pub virtual_models: BTreeMap<String, RawVirtualModel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVirtualModel {
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Option<String>,
    pub model: String,
    pub when: Option<RawWhen>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWhen {
    pub header: Option<BTreeMap<String, String>>,
    pub dialect: Option<String>,
    pub key: Option<Vec<String>>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub tools: Option<bool>,
    pub prompt_tokens_over: Option<u64>,
    pub reasoning: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    /// Honour `x-meridian-location` from clients (tests and demos only: anyone could send it).
    #[serde(default, deserialize_with = "null_is_default")]
    pub trust_location_header: bool,
    pub exploration: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegion {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub name: String,
    /// Hex SHA-256 of the key: the key itself never appears in configuration.
    pub sha256: String,
    /// Residency tags this key's requests are restricted to (any of them), e.g. ["eu"].
    #[serde(default, deserialize_with = "null_is_default")]
    pub residency: Vec<String>,
    /// Cache namespace shared with other keys that name the same one; by default each key has its own.
    pub cache_namespace: Option<String>,
    /// Models this key may use (default: all).
    pub models: Option<Vec<String>>,
    /// Requests per minute (a shared counter per key).
    pub rpm: Option<u32>,
    /// Tokens per minute, input and output.
    pub tpm: Option<u64>,
    /// Every request asks the key's limiter object (exact, one round trip each) instead of admitting from a slice
    /// of the window held at the edge. Default: exact when `rpm` is under 60, too small to slice.
    pub exact_limits: Option<bool>,
    /// Browser origins allowed to call with this key.
    #[serde(default, deserialize_with = "null_is_default")]
    pub cors_origins: Vec<String>,
    /// Refuse models whose serving deployment has no price (configured or built in).
    #[serde(default, deserialize_with = "null_is_default")]
    pub require_price: bool,
    /// What the key may spend, in USD per UTC day and per UTC month.
    pub budget: Option<RawBudget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdminKey {
    pub name: String,
    /// Hex SHA-256 of the admin key.
    pub sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    pub usd_per_day: Option<f64>,
    pub usd_per_month: Option<f64>,
    /// Budgets of the key's spend on one model (by alias), beside or instead of the key's whole.
    #[serde(default, deserialize_with = "null_is_default")]
    pub models: BTreeMap<String, RawModelBudget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModelBudget {
    pub usd_per_day: Option<f64>,
    pub usd_per_month: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokens {
    /// The gateway key whose policy browser tokens inherit (models, residency, cache, budgets).
    pub key: String,
    /// Signing secrets by key id: the names of worker secrets holding them.
    pub secrets: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_body_bytes: Option<usize>,
    pub max_messages: Option<usize>,
    pub max_tokens: Option<u32>,
    /// Length of the rpm/tpm window (default 60 s; shorter only for tests).
    pub rate_window_s: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub kind: String,
    /// Defaults per kind; required for `azure` and for OpenAI-compatible hosts other than OpenAI itself.
    pub base_url: Option<String>,
    /// Name of the worker secret holding the provider's API key.
    pub api_key_secret: Option<String>,
    /// Azure OpenAI `api-version`.
    pub api_version: Option<String>,
    /// Where the provider serves from: an AWS region for `bedrock` (required there).
    pub region: Option<String>,
    /// Bedrock: worker secrets holding the AWS credentials.
    pub access_key_id_secret: Option<String>,
    pub secret_access_key_secret: Option<String>,
    pub session_token_secret: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub deployments: Vec<RawDeployment>,
    /// Opt-in hedging: the largest share of requests that may start a second, parallel attempt.
    pub hedge_budget: Option<f64>,
    /// Deployments tried per request (failover), including the first.
    pub max_attempts: Option<u32>,
    /// Edge cache for identical prompts (off unless configured).
    pub cache: Option<RawCache>,
    /// Drop request fields a deployment's provider kind has no equivalent for, instead of refusing the request.
    pub drop_unsupported: Option<bool>,
    /// `"latency"` (the default: the fastest healthy deployment) or `"cost"`: the cheapest healthy deployment
    /// predicted to answer within `max_ttft_ms`.
    pub objective: Option<String>,
    pub max_ttft_ms: Option<u64>,
    /// Models tried in order, in their own wire formats, when every deployment of this one fails (or is refused
    /// by residency) before the client has seen a byte.
    #[serde(default, deserialize_with = "null_is_default")]
    pub fallbacks: Vec<String>,
    /// Other models asked the same question in the background, their answers compared and never served.
    #[serde(default, deserialize_with = "null_is_default")]
    pub shadow: Vec<RawShadow>,
    /// An experiment: the model's traffic split between models by weight, sticky per user.
    #[serde(default, deserialize_with = "null_is_default")]
    pub split: Vec<RawArm>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShadow {
    pub model: String,
    pub share: f64,
    pub max_usd_per_day: Option<f64>,
    pub keep_samples: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArm {
    pub model: String,
    pub weight: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    #[serde(default = "enabled", deserialize_with = "null_is_enabled")]
    pub enabled: bool,
    pub ttl_s: Option<u64>,
    /// Cache answers to requests sampled at a non-zero (or the provider's default) temperature.
    #[serde(default, deserialize_with = "null_is_default")]
    pub nonzero_temperature: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    pub provider: String,
    /// The provider's own model name.
    pub model: String,
    pub region: String,
    /// Preference multiplier: a deployment with weight 2 is chosen as if it were twice as fast.
    pub weight: Option<f64>,
    /// Residency tags, e.g. ["eu", "gdpr"].
    #[serde(default, deserialize_with = "null_is_default")]
    pub tags: Vec<String>,
    pub price: Option<RawPrice>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    /// USD per million input tokens.
    pub input: f64,
    /// USD per million output tokens (reasoning included).
    pub output: f64,
    /// USD per million input tokens read from the provider's prompt cache (default: `input`).
    pub cached_input: Option<f64>,
    /// USD per million input tokens written to the provider's prompt cache (default: `input`).
    pub cache_write: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub first_byte_ms: Option<u64>,
    pub total_ms: Option<u64>,
    pub idle_ms: Option<u64>,
}

fn enabled() -> bool {
    true
}

/// `null` means "not set" throughout the configuration, as an absent field does.
fn null_is_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn null_is_enabled<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(true))
}

impl RawConfig {
    /// Phase one: `json` as written, or an error naming the path of the first offending value
    /// (`models.fast.deployments[2].weight: invalid type: ...`).
    pub fn parse(json: &str) -> Result<RawConfig, ConfigError> {
        // serde would also read a struct from an array of its fields in order, which no one writes on purpose.
        if json.trim_start().starts_with('[') {
            return Err(ConfigError("expected an object".into()));
        }
        crate::json::parse_named(json.as_bytes()).map_err(|e| match e {
            ParseError::At { path, error } if path == "." || path.is_empty() => {
                ConfigError(crate::error::json_message_without_position(&error))
            }
            ParseError::At { path, error } => {
                super::err(path, crate::error::json_message_without_position(&error))
            }
            ParseError::Trailing(e) => ConfigError(e.to_string()),
        })
    }
}
