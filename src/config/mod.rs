//! Configuration in two phases: [`raw`] parses strictly, [`Config::parse`] validates into types that cannot be
//! invalid, with errors that name the offending path.

mod provider;
mod raw;
pub mod rules;
pub mod shadow;

use crate::cors::CorsPolicy;
use crate::key_hash::KeyHash;
use crate::limits::Limits;
use provider::{region_coords, validate_provider};
use raw::RawConfig;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

const DEFAULT_FIRST_BYTE_MS: u64 = 30_000;
const DEFAULT_TOTAL_MS: u64 = 300_000;
/// KV's minimum expiration TTL, and the longest a cached answer is kept.
pub const MIN_TTL_S: u64 = 60;
pub const MAX_TTL_S: u64 = 30 * 24 * 3600;
/// Reasoning models may go quiet for minutes mid-answer; a stream silent for longer than this is dead.
const DEFAULT_IDLE_MS: u64 = 300_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid MERIDIAN_CONFIG: {}", self.0)
    }
}

/// Wire formats Meridian can send to a provider. Adding one makes the compiler list every place to update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenAI and every host that speaks its Chat Completions API.
    OpenAi,
    /// Azure OpenAI: deployment URLs, an `api-version` and an `api-key` header.
    Azure { api_version: String },
    /// Anthropic's Messages API.
    Anthropic,
    /// AWS Bedrock Converse, signed with SigV4 for `region`.
    Bedrock {
        region: String,
        credentials: AwsSecretNames,
    },
    /// Google Gemini `generateContent`.
    Gemini,
}

/// Names of the worker secrets that hold AWS credentials (never the credentials themselves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSecretNames {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl ProviderKind {
    pub fn name(&self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Azure { .. } => "azure",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Bedrock { .. } => "bedrock",
            ProviderKind::Gemini => "gemini",
        }
    }

    /// Speaks OpenAI's Chat Completions wire format, so OpenAI-dialect requests pass through untranslated.
    pub fn is_openai_wire(&self) -> bool {
        matches!(self, ProviderKind::OpenAi | ProviderKind::Azure { .. })
    }
}

#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    /// Without a trailing slash.
    pub base_url: String,
    pub api_key_secret: Option<String>,
    /// Region used when a client addresses this provider directly as `provider/model`.
    pub region: String,
}

impl Provider {
    /// The deployment a client gets by naming `provider/model` directly.
    pub fn direct(self: &Rc<Self>, model: &str) -> Deployment {
        Deployment {
            provider: self.clone(),
            model: model.to_owned(),
            region: self.region.clone(),
            coords: crate::regions::lookup(&self.region).map(|r| (r.lat, r.lon)),
            tags: Vec::new(),
            weight: 1.0,
            price: crate::pricing::builtin(self.kind.name(), model).map(|r| r.price),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub provider: Rc<Provider>,
    pub model: String,
    pub region: String,
    /// Where `region` is, when known: the routing prior is based on the distance to it.
    pub coords: Option<(f64, f64)>,
    pub tags: Vec<String>,
    /// Positive; 1 unless configured.
    pub weight: f64,
    /// The configured price, or else the built-in table's; `None`: unpriced (never counted as $0).
    pub price: Option<crate::pricing::Price>,
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
    /// Opt-in hedging budget (share of requests), in (0, 1].
    pub hedge_budget: Option<f64>,
    /// At least 1.
    pub max_attempts: usize,
    pub cache: Option<CacheSettings>,
    /// Fields a translated deployment has no equivalent for are dropped (and listed in `x-meridian-dropped-params`)
    /// instead of refused with `unsupported_parameter`.
    pub drop_unsupported: bool,
    pub objective: Objective,
    /// Other models' aliases, tried in order when every deployment of this one fails.
    pub fallbacks: Vec<String>,
    /// Models asked the same question in the background (validated once every model is known).
    pub shadows: Vec<shadow::Shadow>,
    /// An experiment's arms (empty: none).
    pub split: Vec<shadow::Arm>,
}

/// What routing optimises for a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Objective {
    /// The fastest healthy deployment.
    #[default]
    Latency,
    /// The cheapest healthy deployment predicted to produce its first content within `max_ttft_ms`; the fastest
    /// when none is.
    Cost { max_ttft_ms: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Within KV's limits (60 s to 30 days).
    pub ttl_s: u64,
    pub nonzero_temperature: bool,
}

impl Model {
    /// Never empty: validation rejects a model without deployments.
    pub fn deployments(&self) -> &[Deployment] {
        &self.deployments
    }

    pub fn primary(&self) -> &Deployment {
        &self.deployments[0]
    }

    /// This model, then its fallbacks, in the order they are tried (validation keeps every fallback a model).
    pub fn with_fallbacks<'c>(
        &'c self,
        config: &'c Config,
    ) -> impl Iterator<Item = &'c Model> + 'c {
        std::iter::once(self).chain(self.fallbacks.iter().filter_map(|f| config.model(f)))
    }
}

#[derive(Debug)]
pub struct GatewayKey {
    pub name: String,
    pub hash: KeyHash,
    /// Requests with this key only go to deployments carrying one of these tags (empty: no restriction).
    pub residency: Vec<String>,
    /// Where this key's cache entries live: its own name unless a shared namespace is configured.
    pub cache_namespace: String,
    /// `None`: every model.
    pub models: Option<Vec<String>>,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    /// Every request asks the limiter object, instead of admitting from a slice held at the edge.
    pub exact_limits: bool,
    pub cors: CorsPolicy,
    /// Unpriced deployments are not used for this key's requests (always so for a key with a budget).
    pub require_price: bool,
    pub budget: Option<Budget>,
}

/// What a key may spend, USD per UTC day and month: in all (`per_day`, `per_month`), and on single models.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub per_day: Option<f64>,
    pub per_month: Option<f64>,
    /// By model alias: at least one of the two.
    pub models: BTreeMap<String, UsdLimits>,
}

/// USD per UTC day and per UTC month.
pub type UsdLimits = (Option<f64>, Option<f64>);

impl Budget {
    /// The budgets a request for `model` spends from: the key's whole (scope `None`) when it has one, and the
    /// model's own; each with its daily and monthly limits.
    pub fn scopes(&self, model: &str) -> Vec<(Option<&str>, UsdLimits)> {
        let mut out = Vec::with_capacity(2);
        if self.per_day.is_some() || self.per_month.is_some() {
            out.push((None, (self.per_day, self.per_month)));
        }
        if let Some((name, limits)) = self.models.get_key_value(model) {
            out.push((Some(name.as_str()), *limits));
        }
        out
    }
}

/// A key for the admin endpoints.
#[derive(Debug)]
pub struct AdminKey {
    pub name: String,
    pub hash: KeyHash,
}

/// Browser tokens: signed by the backend, verified here, inheriting one key's policy.
#[derive(Debug)]
pub struct TokenSettings {
    /// Index into `Config::keys`.
    pub key: usize,
    /// (key id, name of the worker secret holding the signing secret).
    pub secrets: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Routing {
    pub trust_location_header: bool,
    pub exploration: f64,
}

#[derive(Debug)]
pub struct Timeouts {
    /// Until response headers (and, for streams, the first body chunk) arrive.
    pub first_byte_ms: u64,
    /// Until a non-streaming body is complete.
    pub total_ms: u64,
    /// The longest a stream may go without a chunk once it has begun.
    pub idle_ms: u64,
}

#[derive(Debug)]
pub struct Config {
    pub keys: Vec<GatewayKey>,
    pub admin_keys: Vec<AdminKey>,
    /// Aliases whose model is chosen per request by rules.
    pub virtual_models: BTreeMap<String, rules::VirtualModel>,
    pub providers: BTreeMap<String, Rc<Provider>>,
    pub models: BTreeMap<String, Model>,
    pub timeouts: Timeouts,
    pub routing: Routing,
    /// Origins allowed for every key.
    pub cors: CorsPolicy,
    pub tokens: Option<TokenSettings>,
    pub limits: Limits,
    pub rate_window_ms: u64,
    pub debug_panic_route: bool,
}

impl Config {
    /// Parses and validates JSON configuration.
    pub fn parse(json: &str) -> Result<Config, ConfigError> {
        validate(RawConfig::parse(json)?)
    }

    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.get(name)
    }

    /// A configured provider by name, for `provider/model` addressing.
    pub fn provider(&self, name: &str) -> Option<&Rc<Provider>> {
        self.providers.get(name)
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
        let cache_namespace = match k.cache_namespace {
            Some(ns) if ns.is_empty() => {
                return Err(err(
                    format_args!("keys[{i}].cache_namespace"),
                    "must not be empty",
                ))
            }
            // Each component is percent-encoded, so no name can contain the `:` that joins a namespace to the
            // `x-meridian-cache-namespace` refinement: tenant `a` with refinement `b` is never key `a:b`.
            Some(ns) => format!("shared:{}", crate::url::segment(&ns)),
            None => format!("key:{}", crate::url::segment(&k.name)),
        };
        let cors = CorsPolicy {
            allowed_origins: k.cors_origins,
        };
        cors.validate()
            .map_err(|e| err(format_args!("keys[{i}].cors_origins"), e))?;
        if k.rpm == Some(0) || k.tpm == Some(0) {
            return Err(err(
                format_args!("keys[{i}]"),
                "rpm and tpm must be positive (omit them for no limit)",
            ));
        }
        let budget = match k.budget {
            None => None,
            Some(b) => {
                let ok = |v: Option<f64>| v.is_none_or(|v| v.is_finite() && v > 0.0);
                let whole = b.usd_per_day.is_some() || b.usd_per_month.is_some();
                if !(ok(b.usd_per_day) && ok(b.usd_per_month)) || (!whole && b.models.is_empty()) {
                    return Err(err(
                        format_args!("keys[{i}].budget"),
                        "usd_per_day and usd_per_month must be positive numbers, and at least one given (or models)",
                    ));
                }
                let mut models = BTreeMap::new();
                for (model, m) in b.models {
                    if !(ok(m.usd_per_day) && ok(m.usd_per_month))
                        || (m.usd_per_day.is_none() && m.usd_per_month.is_none())
                    {
                        return Err(err(
                            format_args!("keys[{i}].budget.models.{model}"),
                            "usd_per_day and usd_per_month must be positive numbers, and at least one given",
                        ));
                    }
                    models.insert(model, (m.usd_per_day, m.usd_per_month));
                }
                Some(Budget {
                    per_day: b.usd_per_day,
                    per_month: b.usd_per_month,
                    models,
                })
            }
        };
        keys.push(GatewayKey {
            name: k.name,
            hash,
            residency: k.residency,
            cache_namespace,
            models: k.models,
            exact_limits: k.exact_limits.unwrap_or(k.rpm.is_some_and(|r| r < 60)),
            rpm: k.rpm,
            tpm: k.tpm,
            cors,
            // A budget can only hold what is priced.
            require_price: k.require_price || budget.is_some(),
            budget,
        });
    }

    for (name, r) in &raw.regions {
        if !((-90.0..=90.0).contains(&r.lat) && (-180.0..=180.0).contains(&r.lon)) {
            return Err(err(
                format_args!("regions.{name}"),
                "lat must be in [-90, 90] and lon in [-180, 180]",
            ));
        }
    }
    let mut providers = BTreeMap::new();
    for (name, p) in raw.providers {
        let provider = validate_provider(&format!("providers.{name}"), name.clone(), p)?;
        providers.insert(name, Rc::new(provider));
    }

    if raw.models.is_empty() {
        return Err(err("models", "at least one model is required"));
    }
    let mut models = BTreeMap::new();
    // Shadows and splits name other models: checked once every model is known.
    let mut later = Vec::new();
    for (name, m) in raw.models {
        let path = format!("models.{name}");
        let name_for_later = name.clone();
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
            let coords = region_coords(&raw.regions, &d.region).ok_or_else(|| {
                err(
                    format_args!("{dpath}.region"),
                    format_args!("unknown region {:?} (not a known cloud region; define it under [regions] with lat and lon)", d.region),
                )
            })?;
            let weight = d.weight.unwrap_or(1.0);
            if !(weight.is_finite() && weight > 0.0) {
                return Err(err(
                    format_args!("{dpath}.weight"),
                    "must be a positive number",
                ));
            }
            if let Some(t) = d.tags.iter().find(|t| t.is_empty()) {
                return Err(err(
                    format_args!("{dpath}.tags"),
                    format_args!("empty tag {t:?}"),
                ));
            }
            let price = match d.price {
                Some(p) => {
                    let price = crate::pricing::Price {
                        input: p.input,
                        output: p.output,
                        cached_input: p.cached_input.unwrap_or(p.input),
                        cache_write: p.cache_write.unwrap_or(p.input),
                    };
                    let rates = [
                        price.input,
                        price.output,
                        price.cached_input,
                        price.cache_write,
                    ];
                    if !rates.iter().all(|r| r.is_finite() && *r >= 0.0) {
                        return Err(err(
                            format_args!("{dpath}.price"),
                            "input, output, cached_input and cache_write must be non-negative numbers",
                        ));
                    }
                    Some(price)
                }
                None => crate::pricing::builtin(provider.kind.name(), &d.model).map(|r| r.price),
            };
            if let Some(j) = deployments
                .iter()
                .position(|o: &Deployment| o.provider.name == provider.name && o.model == d.model)
            {
                // Same endpoint twice: it would share its measurements and be tried twice on failover.
                return Err(err(
                    dpath,
                    format_args!("duplicate of deployments[{j}] (same provider and model)"),
                ));
            }
            deployments.push(Deployment {
                provider,
                model: d.model,
                region: d.region,
                coords: Some(coords),
                tags: d.tags,
                weight,
                price,
            });
        }
        if name.contains('/') {
            return Err(err(
                path,
                "model names must not contain '/' (reserved for provider/model)",
            ));
        }
        let hedge_budget = match m.hedge_budget {
            None => None,
            Some(b) if b > 0.0 && b <= 1.0 => Some(b),
            Some(_) => {
                return Err(err(
                    format_args!("{path}.hedge_budget"),
                    "must be in (0, 1]",
                ))
            }
        };
        let max_attempts = match m.max_attempts {
            None => 3,
            Some(0) => {
                return Err(err(
                    format_args!("{path}.max_attempts"),
                    "must be at least 1",
                ))
            }
            Some(n) => n as usize,
        };
        let cache = match m.cache {
            Some(c) if c.enabled => {
                let ttl_s = c.ttl_s.unwrap_or(3600);
                if !(MIN_TTL_S..=MAX_TTL_S).contains(&ttl_s) {
                    return Err(err(
                        format_args!("{path}.cache.ttl_s"),
                        "must be between 60 and 2592000 seconds",
                    ));
                }
                Some(CacheSettings {
                    ttl_s,
                    nonzero_temperature: c.nonzero_temperature,
                })
            }
            _ => None,
        };
        let objective = match (m.objective.as_deref(), m.max_ttft_ms) {
            (None | Some("latency"), None) => Objective::Latency,
            (Some("cost"), Some(ms)) if ms > 0 => Objective::Cost { max_ttft_ms: ms },
            (Some("cost"), _) => {
                return Err(err(
                    format_args!("{path}.max_ttft_ms"),
                    "required with objective = \"cost\": the slowest predicted time to first token a cheaper deployment may have (milliseconds, positive)",
                ))
            }
            (None | Some("latency"), Some(_)) => {
                return Err(err(
                    format_args!("{path}.max_ttft_ms"),
                    "only with objective = \"cost\"",
                ))
            }
            (Some(o), _) => {
                return Err(err(
                    format_args!("{path}.objective"),
                    format_args!("unknown objective {o:?} (\"latency\" or \"cost\")"),
                ))
            }
        };
        if objective != Objective::Latency && deployments.iter().all(|d| d.price.is_none()) {
            return Err(err(
                format_args!("{path}.objective"),
                "\"cost\" needs prices: no deployment of this model has one (configured or built in)",
            ));
        }
        models.insert(
            name.clone(),
            Model {
                name,
                deployments,
                hedge_budget,
                max_attempts,
                cache,
                drop_unsupported: m.drop_unsupported.unwrap_or(false),
                objective,
                fallbacks: m.fallbacks,
                shadows: Vec::new(),
                split: Vec::new(),
            },
        );
        later.push((name_for_later, m.shadow, m.split));
    }
    for (name, raw_shadows, raw_split) in later {
        let priced = |m: &str| {
            models
                .get(m)
                .map(|m: &Model| m.deployments.iter().all(|d| d.price.is_some()))
        };
        let shadows = shadow::shadows(&name, raw_shadows, &priced)?;
        let split = shadow::split(&name, raw_split, &|m: &str| models.contains_key(m))?;
        if let Some(m) = models.get_mut(&name) {
            m.shadows = shadows;
            m.split = split;
        }
    }
    // Once every split is known: an arm is served by its model's own deployments, never by another split.
    for (name, m) in &models {
        for (i, arm) in m.split.iter().enumerate() {
            if arm.model != *name && models.get(&arm.model).is_some_and(|a| !a.split.is_empty()) {
                return Err(err(
                    format_args!("models.{name}.split[{i}].model"),
                    format_args!(
                        "{:?} runs an experiment of its own; arms do not nest",
                        arm.model
                    ),
                ));
            }
        }
    }
    // A fallback is another configured model, named once.
    for (name, m) in &models {
        for (i, f) in m.fallbacks.iter().enumerate() {
            let path = format_args!("models.{name}.fallbacks[{i}]");
            if f == name {
                return Err(err(path, "a model cannot fall back to itself"));
            }
            if !models.contains_key(f) {
                return Err(err(path, format_args!("unknown model {f:?}")));
            }
            if m.fallbacks[..i].contains(f) {
                return Err(err(path, format_args!("{f:?} is listed twice")));
            }
        }
    }

    let timeouts = Timeouts {
        first_byte_ms: positive(
            raw.timeouts.first_byte_ms,
            DEFAULT_FIRST_BYTE_MS,
            "timeouts.first_byte_ms",
        )?,
        total_ms: positive(raw.timeouts.total_ms, DEFAULT_TOTAL_MS, "timeouts.total_ms")?,
        idle_ms: positive(raw.timeouts.idle_ms, DEFAULT_IDLE_MS, "timeouts.idle_ms")?,
    };

    let exploration = raw.routing.exploration.unwrap_or(0.05);
    if !(0.0..=0.5).contains(&exploration) {
        return Err(err("routing.exploration", "must be between 0 and 0.5"));
    }
    let routing = Routing {
        trust_location_header: raw.routing.trust_location_header,
        exploration,
    };

    let cors = CorsPolicy {
        allowed_origins: raw.cors_origins,
    };
    cors.validate().map_err(|e| err("cors_origins", e))?;
    let tokens = match raw.browser_tokens {
        None => None,
        Some(t) => {
            let key = keys.iter().position(|k| k.name == t.key).ok_or_else(|| {
                err(
                    "browser_tokens.key",
                    format_args!("no gateway key named {:?}", t.key),
                )
            })?;
            if t.secrets.is_empty() || t.secrets.values().any(String::is_empty) {
                return Err(err(
                    "browser_tokens.secrets",
                    "name at least one worker secret per key id",
                ));
            }
            Some(TokenSettings {
                key,
                secrets: t.secrets.into_iter().collect(),
            })
        }
    };
    let defaults = Limits::default();
    let limits = Limits {
        max_body_bytes: raw.limits.max_body_bytes.unwrap_or(defaults.max_body_bytes),
        max_messages: raw.limits.max_messages.unwrap_or(defaults.max_messages),
        max_tokens: raw.limits.max_tokens.unwrap_or(defaults.max_tokens),
        ..defaults
    };

    // A model budget names a model this gateway serves.
    for (i, k) in keys.iter().enumerate() {
        for model in k.budget.iter().flat_map(|b| b.models.keys()) {
            if !models.contains_key(model) {
                return Err(err(
                    format_args!("keys[{i}].budget.models.{model}"),
                    "no such model",
                ));
            }
        }
    }
    let mut admin_keys = Vec::with_capacity(raw.admin_keys.len());
    for (i, k) in raw.admin_keys.into_iter().enumerate() {
        if k.name.is_empty() {
            return Err(err(
                format_args!("admin_keys[{i}].name"),
                "must not be empty",
            ));
        }
        let hash = KeyHash::from_hex(&k.sha256).ok_or_else(|| {
            err(
                format_args!("admin_keys[{i}].sha256"),
                "must be 64 hex digits (the SHA-256 of the key)",
            )
        })?;
        if let Some(g) = keys.iter().find(|g| g.hash == hash) {
            return Err(err(
                format_args!("admin_keys[{i}].sha256"),
                format_args!(
                    "is also gateway key {:?}: an admin key must not be a gateway key",
                    g.name
                ),
            ));
        }
        admin_keys.push(AdminKey { name: k.name, hash });
    }
    let mut virtual_models = BTreeMap::new();
    for (name, v) in raw.virtual_models {
        if models.contains_key(&name) {
            return Err(err(
                format_args!("virtual_models.{name}"),
                "is also a model: an alias is one or the other",
            ));
        }
        let is_model = |m: &str| models.contains_key(m);
        let is_key = |k: &str| keys.iter().any(|g| g.name == k);
        virtual_models.insert(name.clone(), rules::validate(&name, v, &is_model, &is_key)?);
    }
    Ok(Config {
        keys,
        admin_keys,
        virtual_models,
        providers,
        models,
        timeouts,
        routing,
        cors,
        tokens,
        limits,
        debug_panic_route: raw.debug_panic_route,
        rate_window_ms: match raw.limits.rate_window_s {
            None => crate::ratelimit::DEFAULT_WINDOW_MS,
            Some(s) if (1..=3600).contains(&s) => s * 1000,
            Some(_) => return Err(err("limits.rate_window_s", "must be between 1 and 3600")),
        },
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
