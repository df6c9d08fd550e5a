//! Configuration in two phases: [`raw`] parses strictly, [`Config::parse`] validates into types that cannot be
//! invalid, with errors that name the offending path.

mod raw;

use crate::auth::KeyHash;
use raw::RawConfig;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

const DEFAULT_FIRST_BYTE_MS: u64 = 30_000;
const DEFAULT_TOTAL_MS: u64 = 300_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid MERIDIAN_CONFIG: {}", self.0)
    }
}

/// Wire formats Meridian can send to a provider. Adding one makes the compiler list every place to update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenAI and every host that speaks its Chat Completions API.
    OpenAi,
}

impl ProviderKind {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "openai" => Some(ProviderKind::OpenAi),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    /// Without a trailing slash.
    pub base_url: String,
    pub api_key_secret: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub provider: Rc<Provider>,
    pub model: String,
    pub region: String,
}

impl Deployment {
    /// Stable name used in response headers and status output.
    pub fn id(&self) -> String {
        format!("{}/{}", self.provider.name, self.model)
    }
}

#[derive(Debug)]
pub struct Model {
    pub name: String,
    deployments: Vec<Deployment>,
}

impl Model {
    /// Never empty: validation rejects a model without deployments.
    pub fn deployments(&self) -> &[Deployment] {
        &self.deployments
    }

    pub fn primary(&self) -> &Deployment {
        &self.deployments[0]
    }
}

#[derive(Debug)]
pub struct GatewayKey {
    pub name: String,
    pub hash: KeyHash,
}

#[derive(Debug)]
pub struct Timeouts {
    /// Until response headers (and, for streams, the first body chunk) arrive.
    pub first_byte_ms: u64,
    /// Until a non-streaming body is complete.
    pub total_ms: u64,
}

#[derive(Debug)]
pub struct Config {
    pub keys: Vec<GatewayKey>,
    pub models: BTreeMap<String, Model>,
    pub timeouts: Timeouts,
}

impl Config {
    /// Parses and validates JSON configuration.
    pub fn parse(json: &str) -> Result<Config, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(json);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // The path already says where; line and column of generated JSON would only mislead.
            let inner = match inner.rfind(" at line ") {
                Some(i) if path != "." => &inner[..i],
                _ => &inner[..],
            };
            if path == "." {
                ConfigError(inner.to_owned())
            } else {
                ConfigError(format!("{path}: {inner}"))
            }
        })?;
        validate(raw)
    }

    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.get(name)
    }
}

fn err(path: impl fmt::Display, msg: impl fmt::Display) -> ConfigError {
    ConfigError(format!("{path}: {msg}"))
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    if raw.keys.is_empty() {
        return Err(err("keys", "at least one gateway key is required"));
    }
    let mut keys = Vec::with_capacity(raw.keys.len());
    for (i, k) in raw.keys.into_iter().enumerate() {
        if k.name.is_empty() {
            return Err(err(format_args!("keys[{i}].name"), "must not be empty"));
        }
        let hash = KeyHash::from_hex(&k.sha256).ok_or_else(|| {
            err(
                format_args!("keys[{i}].sha256"),
                "must be 64 hex digits (the SHA-256 of the key)",
            )
        })?;
        keys.push(GatewayKey { name: k.name, hash });
    }

    let mut providers = BTreeMap::new();
    for (name, p) in raw.providers {
        let path = format!("providers.{name}");
        let kind = ProviderKind::parse(&p.kind).ok_or_else(|| {
            err(
                format_args!("{path}.kind"),
                format_args!("unknown provider kind {:?} (known: openai)", p.kind),
            )
        })?;
        let base_url = p.base_url.trim_end_matches('/').to_string();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://"))
            || base_url.len() <= "https://".len()
        {
            return Err(err(
                format_args!("{path}.base_url"),
                "must be an http(s) URL",
            ));
        }
        if let Some(s) = &p.api_key_secret {
            if s.is_empty() {
                return Err(err(
                    format_args!("{path}.api_key_secret"),
                    "must not be empty",
                ));
            }
        }
        providers.insert(
            name.clone(),
            Rc::new(Provider {
                name,
                kind,
                base_url,
                api_key_secret: p.api_key_secret,
            }),
        );
    }

    if raw.models.is_empty() {
        return Err(err("models", "at least one model is required"));
    }
    let mut models = BTreeMap::new();
    for (name, m) in raw.models {
        let path = format!("models.{name}");
        if m.deployments.is_empty() {
            return Err(err(
                format_args!("{path}.deployments"),
                "must list at least one deployment",
            ));
        }
        let mut deployments = Vec::with_capacity(m.deployments.len());
        for (i, d) in m.deployments.into_iter().enumerate() {
            let dpath = format!("{path}.deployments[{i}]");
            let provider = providers
                .get(&d.provider)
                .ok_or_else(|| {
                    err(
                        format_args!("{dpath}.provider"),
                        format_args!("unknown provider {:?}", d.provider),
                    )
                })?
                .clone();
            if d.model.is_empty() {
                return Err(err(format_args!("{dpath}.model"), "must not be empty"));
            }
            if d.region.is_empty() {
                return Err(err(format_args!("{dpath}.region"), "must not be empty"));
            }
            deployments.push(Deployment {
                provider,
                model: d.model,
                region: d.region,
            });
        }
        models.insert(name.clone(), Model { name, deployments });
    }

    let timeouts = Timeouts {
        first_byte_ms: positive(
            raw.timeouts.first_byte_ms,
            DEFAULT_FIRST_BYTE_MS,
            "timeouts.first_byte_ms",
        )?,
        total_ms: positive(raw.timeouts.total_ms, DEFAULT_TOTAL_MS, "timeouts.total_ms")?,
    };

    Ok(Config {
        keys,
        models,
        timeouts,
    })
}

fn positive(v: Option<u64>, default: u64, path: &str) -> Result<u64, ConfigError> {
    match v {
        None => Ok(default),
        Some(0) => Err(err(path, "must be greater than 0")),
        Some(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests;
