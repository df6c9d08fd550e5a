//! Gateway keys: clients present a key, configuration holds only its SHA-256.

use crate::config::{Config, GatewayKey};
use crate::error::{ErrorKind, GatewayError};
use crate::http::Headers;
use sha2::{Digest, Sha256};

#[derive(Clone, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl core::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("KeyHash(..)")
    }
}

impl KeyHash {
    pub fn of(key: &str) -> Self {
        KeyHash(Sha256::digest(key.as_bytes()).into())
    }

    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(KeyHash(out))
    }

    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }

    /// Compares without an early exit, so timing does not reveal how much of a hash matched.
    fn ct_eq(&self, other: &KeyHash) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

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
                ErrorKind::Authentication,
                "missing gateway key: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
            )
            .with_code("missing_api_key")
        })?;
    let hash = KeyHash::of(key);
    // Every configured key is compared, so the time taken does not say which one matched.
    let mut found = None;
    for k in &config.keys {
        if hash.ct_eq(&k.hash) && found.is_none() {
            found = Some(k);
        }
    }
    found.ok_or_else(|| {
        GatewayError::new(ErrorKind::Authentication, "invalid gateway key")
            .with_code("invalid_api_key")
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
