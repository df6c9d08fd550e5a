//! Gateway keys: clients present a key, configuration holds only its SHA-256.

use crate::browser_token::{self, Claims};
use crate::config::{AdminKey, Config, GatewayKey};
use crate::error::{ErrorCode, GatewayError};
use crate::http::Headers;
use crate::platform::Platform;

pub use crate::key_hash::KeyHash;

/// The key a client presented: `Authorization: Bearer …` (OpenAI SDKs) or `x-api-key` (Anthropic SDKs).
fn presented_key(headers: &Headers) -> Option<&str> {
    if let Some(v) = headers.get("authorization") {
        let v = v.trim();
        let (scheme, rest) = v.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(rest.trim());
        }
        return None;
    }
    headers.get("x-api-key").map(str::trim)
}

pub fn authenticate<'c>(
    config: &'c Config,
    headers: &Headers,
) -> Result<&'c GatewayKey, GatewayError> {
    let key = presented_key(headers)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            GatewayError::new(
                ErrorCode::MissingApiKey,
                "missing gateway key: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
            )
        })?;
    let hash = KeyHash::of(key);
    // Every configured key is compared, so the time taken does not say which one matched.
    let mut found = None;
    for k in &config.keys {
        if hash.ct_eq(&k.hash) && found.is_none() {
            found = Some(k);
        }
    }
    found.ok_or_else(|| GatewayError::new(ErrorCode::InvalidApiKey, "invalid gateway key"))
}

/// Authenticates an admin key (`Authorization: Bearer …` or `x-api-key`) for the admin endpoints. A gateway key
/// is refused: it may call models, never read what others spent.
pub fn authenticate_admin<'c>(
    config: &'c Config,
    headers: &Headers,
) -> Result<&'c AdminKey, GatewayError> {
    let key = presented_key(headers)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            GatewayError::new(
                ErrorCode::MissingApiKey,
                "missing admin key: send `Authorization: Bearer <admin key>`",
            )
        })?;
    let hash = KeyHash::of(key);
    let mut found = None;
    for k in &config.admin_keys {
        if hash.ct_eq(&k.hash) && found.is_none() {
            found = Some(k);
        }
    }
    if let Some(k) = found {
        return Ok(k);
    }
    if authenticate(config, headers).is_ok() {
        return Err(GatewayError::new(
            ErrorCode::AdminKeyRequired,
            "this endpoint takes an admin key (`admin_keys`), not a gateway key",
        ));
    }
    Err(GatewayError::new(
        ErrorCode::InvalidApiKey,
        "invalid admin key",
    ))
}

/// Who is calling: a gateway key, or a browser token that inherits a key's policy and narrows it.
pub struct Principal<'c> {
    pub key: &'c GatewayKey,
    pub token: Option<Claims>,
}

impl Principal<'_> {
    pub fn allows_model(&self, model: &str) -> bool {
        let by_key = self
            .key
            .models
            .as_ref()
            .is_none_or(|m| m.iter().any(|x| x == model));
        by_key && self.token.as_ref().is_none_or(|t| t.allows_model(model))
    }

    /// The tighter of the key's and the token's budgets.
    pub fn rpm(&self) -> Option<u32> {
        match (self.key.rpm, self.token.as_ref().and_then(|t| t.rpm)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The shared counter this caller's budgets are kept in: per token subject (or token) for browsers, so one
    /// leaked token cannot spend the whole key's budget.
    pub fn rate_key(&self) -> String {
        match &self.token {
            Some(t) => format!(
                "token:{}:{}",
                self.key.name,
                t.sub
                    .clone()
                    .unwrap_or_else(|| format!("exp{}-{}", t.exp, t.origin))
            ),
            None => format!("key:{}", self.key.name),
        }
    }

    /// Whether a browser at `origin` may read the answer.
    pub fn cors_allows(&self, config: &Config, origin: &str) -> bool {
        match &self.token {
            // The token was only accepted because the request came from its origin.
            Some(t) => t.origin == origin,
            None => self.key.cors.allows(origin) || config.cors.allows(origin),
        }
    }
}

/// Authenticates a gateway key or a browser token (`Bearer mrd1.…`, verified against the signing secrets).
pub fn authorize<'c, P: Platform>(
    config: &'c Config,
    platform: &P,
    headers: &Headers,
) -> Result<Principal<'c>, GatewayError> {
    let presented = presented_key(headers).unwrap_or_default();
    if !browser_token::is_browser_token(presented) {
        return authenticate(config, headers).map(|key| Principal { key, token: None });
    }
    let unauthorized = |msg: String, code: ErrorCode| GatewayError::new(code, msg);
    let Some(settings) = &config.tokens else {
        return Err(unauthorized(
            "browser tokens are not enabled on this gateway".into(),
            ErrorCode::InvalidBrowserToken,
        ));
    };
    let secrets: Vec<(String, String)> = settings
        .secrets
        .iter()
        .filter_map(|(kid, name)| platform.secret(name).map(|s| (kid.clone(), s)))
        .collect();
    let refs: Vec<(&str, &[u8])> = secrets
        .iter()
        .map(|(k, s)| (k.as_str(), s.as_bytes()))
        .collect();
    let now_s = platform.now_ms() / 1000;
    let claims = browser_token::verify(presented, &refs, now_s, headers.get("origin"))
        .map_err(|e| unauthorized(format!("browser token rejected: {e}"), e.code()))?;
    Ok(Principal {
        key: &config.keys[settings.key],
        token: Some(claims),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_known_digest() {
        // SHA-256("demo"), as printed by `printf demo | sha256sum`.
        let h = KeyHash::of("demo");
        assert_eq!(
            h.to_hex(),
            "2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea"
        );
        assert_eq!(KeyHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(KeyHash::from_hex("zz"), None);
        assert_eq!(KeyHash::from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn presented_key_forms() {
        let h: Headers = [("Authorization", "Bearer abc")].into_iter().collect();
        assert_eq!(presented_key(&h), Some("abc"));
        let h: Headers = [("authorization", "bearer  abc ")].into_iter().collect();
        assert_eq!(presented_key(&h), Some("abc"));
        let h: Headers = [("x-api-key", "k")].into_iter().collect();
        assert_eq!(presented_key(&h), Some("k"));
        let h: Headers = [("authorization", "Basic abc")].into_iter().collect();
        assert_eq!(presented_key(&h), None);
        assert_eq!(presented_key(&Headers::new()), None);
    }
}
