//! Phase one: the configuration exactly as written in `wrangler.toml` (or JSON), rejected on unknown fields.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub keys: Vec<RawKey>,
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub models: BTreeMap<String, RawModel>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub routing: RawRouting,
    /// Regions beyond the built-in cloud table (self-hosted models, other clouds).
    #[serde(default)]
    pub regions: BTreeMap<String, RawRegion>,
    /// Browser origins allowed for every key (preflights are answered before any key is seen).
    #[serde(default)]
    pub cors_origins: Vec<String>,
    pub browser_tokens: Option<RawTokens>,
    /// Tests only: `POST /_meridian/debug/panic` panics, to prove a panic becomes a JSON 500.
    #[serde(default)]
    pub debug_panic_route: bool,
    #[serde(default)]
    pub limits: RawLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    /// Honour `x-meridian-location` from clients (tests and demos only: anyone could send it).
    #[serde(default)]
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
    #[serde(default)]
    pub residency: Vec<String>,
    /// Cache namespace shared with other keys that name the same one; by default each key has its own.
    pub cache_namespace: Option<String>,
    /// Models this key may use (default: all).
    pub models: Option<Vec<String>>,
    /// Requests per minute (a shared counter per key).
    pub rpm: Option<u32>,
    /// Tokens per minute, input and output.
    pub tpm: Option<u64>,
    /// Browser origins allowed to call with this key.
    #[serde(default)]
    pub cors_origins: Vec<String>,
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
    #[serde(default)]
    pub base_url: Option<String>,
    /// Name of the worker secret holding the provider's API key.
    #[serde(default)]
    pub api_key_secret: Option<String>,
    /// Azure OpenAI `api-version`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Where the provider serves from: an AWS region for `bedrock` (required there).
    #[serde(default)]
    pub region: Option<String>,
    /// Bedrock: worker secrets holding the AWS credentials.
    #[serde(default)]
    pub access_key_id_secret: Option<String>,
    #[serde(default)]
    pub secret_access_key_secret: Option<String>,
    #[serde(default)]
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub ttl_s: Option<u64>,
    /// Cache answers to requests sampled at a non-zero (or the provider's default) temperature.
    #[serde(default)]
    pub nonzero_temperature: bool,
}

fn yes() -> bool {
    true
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
    #[serde(default)]
    pub tags: Vec<String>,
    pub price: Option<RawPrice>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    /// USD per million input tokens.
    pub input: f64,
    /// USD per million output tokens.
    pub output: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub first_byte_ms: Option<u64>,
    pub total_ms: Option<u64>,
}
