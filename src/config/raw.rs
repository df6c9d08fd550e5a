//! Phase one: the configuration exactly as written in `wrangler.toml` (or JSON), rejected on unknown fields.

use super::ConfigError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug)]
pub struct RawConfig {
    pub keys: Vec<RawKey>,
    pub providers: BTreeMap<String, RawProvider>,
    pub models: BTreeMap<String, RawModel>,
    pub timeouts: RawTimeouts,
    pub routing: RawRouting,
    /// Regions beyond the built-in cloud table (self-hosted models, other clouds).
    pub regions: BTreeMap<String, RawRegion>,
    /// Browser origins allowed for every key (preflights are answered before any key is seen).
    pub cors_origins: Vec<String>,
    pub browser_tokens: Option<RawTokens>,
    /// Tests only: `POST /_meridian/debug/panic` panics, to prove a panic becomes a JSON 500.
    pub debug_panic_route: bool,
    pub limits: RawLimits,
}

#[derive(Debug, Default)]
pub struct RawRouting {
    /// Honour `x-meridian-location` from clients (tests and demos only: anyone could send it).
    pub trust_location_header: bool,
    pub exploration: Option<f64>,
}

#[derive(Debug)]
pub struct RawRegion {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug)]
pub struct RawKey {
    pub name: String,
    /// Hex SHA-256 of the key: the key itself never appears in configuration.
    pub sha256: String,
    /// Residency tags this key's requests are restricted to (any of them), e.g. ["eu"].
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
    pub cors_origins: Vec<String>,
}

#[derive(Debug)]
pub struct RawTokens {
    /// The gateway key whose policy browser tokens inherit (models, residency, cache, budgets).
    pub key: String,
    /// Signing secrets by key id: the names of worker secrets holding them.
    pub secrets: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
pub struct RawLimits {
    pub max_body_bytes: Option<usize>,
    pub max_messages: Option<usize>,
    pub max_tokens: Option<u32>,
    /// Length of the rpm/tpm window (default 60 s; shorter only for tests).
    pub rate_window_s: Option<u64>,
}

#[derive(Debug)]
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

#[derive(Debug)]
pub struct RawModel {
    pub deployments: Vec<RawDeployment>,
    /// Opt-in hedging: the largest share of requests that may start a second, parallel attempt.
    pub hedge_budget: Option<f64>,
    /// Deployments tried per request (failover), including the first.
    pub max_attempts: Option<u32>,
    /// Edge cache for identical prompts (off unless configured).
    pub cache: Option<RawCache>,
}

#[derive(Debug)]
pub struct RawCache {
    pub enabled: bool,
    pub ttl_s: Option<u64>,
    /// Cache answers to requests sampled at a non-zero (or the provider's default) temperature.
    pub nonzero_temperature: bool,
}

#[derive(Debug)]
pub struct RawDeployment {
    pub provider: String,
    /// The provider's own model name.
    pub model: String,
    pub region: String,
    /// Preference multiplier: a deployment with weight 2 is chosen as if it were twice as fast.
    pub weight: Option<f64>,
    /// Residency tags, e.g. ["eu", "gdpr"].
    pub tags: Vec<String>,
    pub price: Option<RawPrice>,
}

#[derive(Debug)]
pub struct RawPrice {
    /// USD per million input tokens.
    pub input: f64,
    /// USD per million output tokens.
    pub output: f64,
}

#[derive(Debug, Default)]
pub struct RawTimeouts {
    pub first_byte_ms: Option<u64>,
    pub total_ms: Option<u64>,
    pub idle_ms: Option<u64>,
}

// Reading is written out by hand over a parsed `Value` rather than derived: the derived code (and a crate to track
// paths through it) was a tenth of the worker's wasm, paid in every cold start, for a document read once per
// isolate. The rules stay serde's: unknown fields are errors, absent optional fields take their defaults, and
// every error names the path of the value it is about.

impl RawConfig {
    /// Phase one: `json` as written, or an error naming the path of the first offending value.
    pub fn parse(json: &str) -> Result<RawConfig, ConfigError> {
        let v: Value =
            serde_json::from_str::<Value>(json).map_err(|e| ConfigError(e.to_string()))?;
        RawConfig::read(&v, "")
    }
}

/// A value of the configuration that can be read from JSON at `path` (empty at the top).
trait Read: Sized {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError>;
}

fn invalid(path: &str, expected: &str, found: &Value) -> ConfigError {
    let found = match found {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    at(path, format_args!("expected {expected}, found {found}"))
}

fn at(path: &str, msg: impl std::fmt::Display) -> ConfigError {
    if path.is_empty() {
        ConfigError(msg.to_string())
    } else {
        super::err(path, msg)
    }
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// An object's fields, checked against the names it may have.
struct Fields<'v> {
    map: &'v Map<String, Value>,
    path: &'v str,
}

impl<'v> Fields<'v> {
    fn new(v: &'v Value, path: &'v str, known: &[&str]) -> Result<Self, ConfigError> {
        let Value::Object(map) = v else {
            return Err(invalid(path, "an object", v));
        };
        if let Some(name) = map.keys().find(|k| !known.contains(&k.as_str())) {
            let expected = known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(at(
                &child(path, name),
                format_args!("unknown field `{name}`, expected one of {expected}"),
            ));
        }
        Ok(Fields { map, path })
    }

    /// Absent (or null) is `None`.
    fn opt<T: Read>(&self, name: &str) -> Result<Option<T>, ConfigError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => T::read(v, &child(self.path, name)).map(Some),
        }
    }

    fn or_default<T: Read + Default>(&self, name: &str) -> Result<T, ConfigError> {
        Ok(self.opt(name)?.unwrap_or_default())
    }

    fn required<T: Read>(&self, name: &str) -> Result<T, ConfigError> {
        self.opt(name)?
            .ok_or_else(|| at(self.path, format_args!("missing field `{name}`")))
    }
}

impl Read for String {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| invalid(path, "a string", v))
    }
}

impl Read for bool {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        v.as_bool().ok_or_else(|| invalid(path, "a boolean", v))
    }
}

impl Read for f64 {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        v.as_f64().ok_or_else(|| invalid(path, "a number", v))
    }
}

impl Read for u64 {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        v.as_u64()
            .ok_or_else(|| invalid(path, "a non-negative integer", v))
    }
}

impl Read for u32 {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        u32::try_from(u64::read(v, path)?)
            .map_err(|_| at(path, format_args!("must be at most {}", u32::MAX)))
    }
}

impl Read for usize {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        usize::try_from(u64::read(v, path)?)
            .map_err(|_| at(path, format_args!("must be at most {}", usize::MAX)))
    }
}

impl<T: Read> Read for Vec<T> {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        let Value::Array(items) = v else {
            return Err(invalid(path, "an array", v));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| T::read(item, &format!("{path}[{i}]")))
            .collect()
    }
}

impl<T: Read> Read for BTreeMap<String, T> {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        let Value::Object(map) = v else {
            return Err(invalid(path, "an object", v));
        };
        let mut out = BTreeMap::new();
        for (k, item) in map {
            out.insert(k.clone(), T::read(item, &child(path, k))?);
        }
        Ok(out)
    }
}

impl Read for RawConfig {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        let f = Fields::new(
            v,
            path,
            &[
                "keys",
                "providers",
                "models",
                "timeouts",
                "routing",
                "regions",
                "cors_origins",
                "browser_tokens",
                "debug_panic_route",
                "limits",
            ],
        )?;
        Ok(RawConfig {
            keys: f.or_default("keys")?,
            providers: f.or_default("providers")?,
            models: f.or_default("models")?,
            timeouts: f.or_default("timeouts")?,
            routing: f.or_default("routing")?,
            regions: f.or_default("regions")?,
            cors_origins: f.or_default("cors_origins")?,
            browser_tokens: f.opt("browser_tokens")?,
            debug_panic_route: f.or_default("debug_panic_route")?,
            limits: f.or_default("limits")?,
        })
    }
}

impl Read for RawRouting {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        let f = Fields::new(v, path, &["trust_location_header", "exploration"])?;
        Ok(RawRouting {
            trust_location_header: f.or_default("trust_location_header")?,
            exploration: f.opt("exploration")?,
        })
    }
}

impl Read for RawRegion {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        let f = Fields::new(v, path, &["lat", "lon"])?;
        Ok(RawRegion {
            lat: f.required("lat")?,
            lon: f.required("lon")?,
        })
    }
}

impl Read for RawKey {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        let f = Fields::new(
            v,
            path,
            &[
                "name",
                "sha256",
                "residency",
                "cache_namespace",
                "models",
                "rpm",
                "tpm",
                "cors_origins",
            ],
        )?;
        Ok(RawKey {
            name: f.required("name")?,
            sha256: f.required("sha256")?,
            residency: f.or_default("residency")?,
            cache_namespace: f.opt("cache_namespace")?,
            models: f.opt("models")?,
            rpm: f.opt("rpm")?,
            tpm: f.opt("tpm")?,
            cors_origins: f.or_default("cors_origins")?,
        })
    }
}

impl Read for RawTokens {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        let f = Fields::new(v, path, &["key", "secrets"])?;
        Ok(RawTokens {
            key: f.required("key")?,
            secrets: f.required("secrets")?,
        })
    }
}

impl Read for RawLimits {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        let f = Fields::new(
            v,
            path,
            &[
                "max_body_bytes",
                "max_messages",
                "max_tokens",
                "rate_window_s",
            ],
        )?;
        Ok(RawLimits {
            max_body_bytes: f.opt("max_body_bytes")?,
            max_messages: f.opt("max_messages")?,
            max_tokens: f.opt("max_tokens")?,
            rate_window_s: f.opt("rate_window_s")?,
        })
    }
}

impl Read for RawProvider {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        let f = Fields::new(
            v,
            path,
            &[
                "kind",
                "base_url",
                "api_key_secret",
                "api_version",
                "region",
                "access_key_id_secret",
                "secret_access_key_secret",
                "session_token_secret",
            ],
        )?;
        Ok(RawProvider {
            kind: f.required("kind")?,
            base_url: f.opt("base_url")?,
            api_key_secret: f.opt("api_key_secret")?,
            api_version: f.opt("api_version")?,
            region: f.opt("region")?,
            access_key_id_secret: f.opt("access_key_id_secret")?,
            secret_access_key_secret: f.opt("secret_access_key_secret")?,
            session_token_secret: f.opt("session_token_secret")?,
        })
    }
}

impl Read for RawModel {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        let f = Fields::new(
            v,
            path,
            &["deployments", "hedge_budget", "max_attempts", "cache"],
        )?;
        Ok(RawModel {
            deployments: f.required("deployments")?,
            hedge_budget: f.opt("hedge_budget")?,
            max_attempts: f.opt("max_attempts")?,
            cache: f.opt("cache")?,
        })
    }
}

impl Read for RawCache {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        let f = Fields::new(v, path, &["enabled", "ttl_s", "nonzero_temperature"])?;
        Ok(RawCache {
            enabled: f.opt("enabled")?.unwrap_or(true),
            ttl_s: f.opt("ttl_s")?,
            nonzero_temperature: f.or_default("nonzero_temperature")?,
        })
    }
}

impl Read for RawDeployment {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        let f = Fields::new(
            v,
            path,
            &["provider", "model", "region", "weight", "tags", "price"],
        )?;
        Ok(RawDeployment {
            provider: f.required("provider")?,
            model: f.required("model")?,
            region: f.required("region")?,
            weight: f.opt("weight")?,
            tags: f.or_default("tags")?,
            price: f.opt("price")?,
        })
    }
}

impl Read for RawPrice {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        let f = Fields::new(v, path, &["input", "output"])?;
        Ok(RawPrice {
            input: f.required("input")?,
            output: f.required("output")?,
        })
    }
}

impl Read for RawTimeouts {
    fn read(v: &Value, path: &str) -> Result<Self, ConfigError> {
        let f = Fields::new(v, path, &["first_byte_ms", "total_ms", "idle_ms"])?;
        Ok(RawTimeouts {
            first_byte_ms: f.opt("first_byte_ms")?,
            total_ms: f.opt("total_ms")?,
            idle_ms: f.opt("idle_ms")?,
        })
    }
}
