//! The SHA-256 of a gateway key: what configuration holds instead of the key, compared in constant time.

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

    /// 64 hex digits, either case.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex, &mut out).ok()?;
        Some(KeyHash(out))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        crate::hmac::ct_eq(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_the_wrong_length_or_digits() {
        // The SHA-256 of "demo", as the README's example configuration has it.
        let h = "2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea";
        assert_eq!(KeyHash::from_hex(h).unwrap(), KeyHash::of("demo"));
        assert_eq!(KeyHash::from_hex(&h.to_uppercase()).unwrap().to_hex(), h);
        for bad in ["", &h[..62], &format!("{h}00"), &h.replacen('a', "g", 1)] {
            assert!(KeyHash::from_hex(bad).is_none(), "{bad}");
        }
    }
}
