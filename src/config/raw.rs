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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub name: String,
    /// Hex SHA-256 of the key: the key itself never appears in configuration.
    pub sha256: String,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeployment {
    pub provider: String,
    /// The provider's own model name.
    pub model: String,
    pub region: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub first_byte_ms: Option<u64>,
    pub total_ms: Option<u64>,
}
