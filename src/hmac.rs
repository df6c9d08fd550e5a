//! HMAC-SHA256 and a constant-time digest comparison (the `hmac` and `subtle` crates): SigV4 signing, browser
//! tokens and gateway keys use them.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // Any key length is valid for HMAC.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Compares two digests without an early exit, so timing does not reveal how much of one matched.
pub fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}
