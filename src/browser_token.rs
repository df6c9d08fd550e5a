//! Short-lived signed browser tokens: a backend that holds a signing secret mints a token for one origin, a few
//! models and a short time; the browser sends it as `Authorization: Bearer mrd1.…` and the worker verifies it
//! without any lookup.
//!
//! # Format (version 1, public)
//!
//! ```text
//! mrd1.<payload>.<signature>
//!
//! payload   = base64url(claims JSON)
//! signature = base64url(HMAC-SHA256(secret, "mrd1." + payload))
//! ```
//!
//! * base64url is RFC 4648 §5 (alphabet `A-Z a-z 0-9 - _`) **without** `=` padding; padded or non-canonical
//!   encodings are rejected. The signature always decodes to exactly 32 bytes.
//! * The MAC covers the ASCII bytes of `mrd1.` followed by the payload segment exactly as it appears in the token
//!   (not the decoded JSON), so verifiers never re-serialize anything.
//! * The claims are one JSON object (UTF-8). Unknown members and duplicate members are rejected, so a restriction
//!   added in a later version is never silently ignored by an older verifier:
//!
//! | claim    | type             | required | meaning                                                                 |
//! |----------|------------------|----------|-------------------------------------------------------------------------|
//! | `exp`    | integer          | yes      | expiry, Unix seconds                                                    |
//! | `iat`    | integer          | no       | issued at, Unix seconds; a token issued in the future is rejected      |
//! | `models` | array of strings | yes      | model names the token may call, non-empty; `"*"` allows every model     |
//! | `origin` | string           | yes      | the exact browser origin, e.g. `https://app.example.com` (no path)     |
//! | `rpm`    | integer          | no       | requests per minute allowed for this token                              |
//! | `sub`    | string           | no       | subject: the backend's user id, for logs and per-user limits            |
//! | `kid`    | string           | no       | id of the signing secret; without it every configured secret is tried |
//!
//! * A token is at most [`MAX_TOKEN_LEN`] bytes; longer ones are rejected before any decoding.
//! * Verification checks, in order: length, structure and encoding, the claims' shape, the signature (constant
//!   time), expiry (with [`CLOCK_SKEW_S`] seconds of tolerance, also for `iat`), then that `origin` equals the
//!   request's `Origin` header byte for byte.
//! * Secrets should be random and at least 32 bytes; secrets shorter than [`MIN_SECRET_LEN`] bytes are never
//!   accepted by [`verify`], so an unset or empty secret cannot make tokens forgeable.
//!
//! Example claims: `{"exp":1767225600,"iat":1767225000,"models":["fast"],"origin":"https://app.example.com"}`.

use core::fmt;
use serde::{Deserialize, Serialize};

/// The token prefix, which is also the version tag covered by the signature.
pub const PREFIX: &str = "mrd1.";
/// Tokens longer than this are rejected before any work.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Tolerated difference between the minting backend's clock and the worker's, in seconds.
pub const CLOCK_SKEW_S: u64 = 30;
/// Secrets shorter than this are ignored by [`verify`].
pub const MIN_SECRET_LEN: usize = 16;
/// A token without `kid` is tried against at most this many secrets (the first ones given); name the key with
/// `kid` when more are configured.
pub const MAX_SECRETS_WITHOUT_KID: usize = 8;

/// The claims a token carries. See the module documentation for their meaning.
/// In JSON the optional claims are left out when absent (and read as absent when null); any other member is
/// an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    pub models: Vec<String>,
    pub origin: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

impl Claims {
    /// Whether the token allows `model` (exact name, or `"*"` among its models).
    pub fn allows_model(&self, model: &str) -> bool {
        self.models.iter().any(|m| m == "*" || m == model)
    }

    /// Checks the claims' shape (not time or origin): non-empty models, an origin that looks like one.
    /// [`verify`] applies it to every token; minting tools can use it to catch mistakes early.
    pub fn validate(&self) -> Result<(), TokenError> {
        if self.models.is_empty() {
            return Err(TokenError::InvalidClaims("`models` must not be empty"));
        }
        if self.models.iter().any(String::is_empty) {
            return Err(TokenError::InvalidClaims(
                "`models` must not contain empty names",
            ));
        }
        if !crate::cors::is_origin(&self.origin) {
            return Err(TokenError::InvalidClaims(
                "`origin` must be an origin as browsers send it: lower-case scheme://host[:port]",
            ));
        }
        if self.kid.as_deref() == Some("") {
            return Err(TokenError::InvalidClaims("`kid` must not be empty"));
        }
        Ok(())
    }
}

/// Why a token was refused. Messages never contain the token, its claims or any secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_LEN`].
    TooLong,
    /// Not `mrd1.<payload>.<signature>` with valid base64url segments and a JSON object payload.
    Malformed,
    /// Well-formed JSON whose claims are missing, mistyped, unknown or invalid.
    InvalidClaims(&'static str),
    /// The token names a `kid` that is not configured.
    UnknownKey,
    /// No configured secret produced this signature.
    BadSignature,
    /// `exp` is in the past (beyond the tolerated clock skew).
    Expired,
    /// `iat` is in the future (beyond the tolerated clock skew).
    NotYetValid,
    /// The request carried no `Origin` header.
    MissingOrigin,
    /// The request's `Origin` is not the one the token was minted for.
    WrongOrigin,
}

impl TokenError {
    /// A machine-readable code for error bodies.
    pub fn code(&self) -> crate::error::ErrorCode {
        use crate::error::ErrorCode;
        match self {
            TokenError::Expired | TokenError::NotYetValid => ErrorCode::ExpiredBrowserToken,
            TokenError::MissingOrigin | TokenError::WrongOrigin => {
                ErrorCode::BrowserTokenOriginMismatch
            }
            TokenError::TooLong
            | TokenError::Malformed
            | TokenError::InvalidClaims(_)
            | TokenError::UnknownKey
            | TokenError::BadSignature => ErrorCode::InvalidBrowserToken,
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::TooLong => write!(
                f,
                "browser token is longer than the maximum of {MAX_TOKEN_LEN} bytes"
            ),
            TokenError::Malformed => f.write_str(
                "browser token is malformed: expected mrd1.<payload>.<signature> in base64url",
            ),
            TokenError::InvalidClaims(why) => write!(f, "browser token has invalid claims: {why}"),
            TokenError::UnknownKey => {
                f.write_str("browser token names a signing key (kid) that is not configured")
            }
            TokenError::BadSignature => f.write_str("browser token signature is invalid"),
            TokenError::Expired => f.write_str("browser token has expired"),
            TokenError::NotYetValid => {
                f.write_str("browser token is not valid yet (issued in the future)")
            }
            TokenError::MissingOrigin => f.write_str(
                "browser tokens are only accepted from browsers: the request has no Origin header",
            ),
            TokenError::WrongOrigin => {
                f.write_str("browser token was not issued for this request's origin")
            }
        }
    }
}

impl std::error::Error for TokenError {}

/// Whether a bearer credential is a browser token (rather than a gateway key).
pub fn is_browser_token(bearer: &str) -> bool {
    bearer.starts_with(PREFIX)
}

/// Signs `claims` with `secret`. The claims are not validated; see [`Claims::validate`].
pub fn mint(secret: &[u8], claims: &Claims) -> String {
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let mut token = String::with_capacity(PREFIX.len() + json.len() * 4 / 3 + 48);
    token.push_str(PREFIX);
    b64url_encode_into(&json, &mut token);
    let mac = hmac_sha256(secret, token.as_bytes());
    token.push('.');
    b64url_encode_into(&mac, &mut token);
    token
}

/// Verifies `token` and returns its claims.
///
/// `secrets` are the configured signing secrets as `(kid, secret)`. A token with a `kid` is checked against that
/// secret only; one without is checked against each of the first [`MAX_SECRETS_WITHOUT_KID`]. Secrets shorter than
/// [`MIN_SECRET_LEN`] are ignored. `now_s` is the current Unix time; `request_origin` the request's `Origin` header.
pub fn verify(
    token: &str,
    secrets: &[(&str, &[u8])],
    now_s: u64,
    request_origin: Option<&str>,
) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong);
    }
    let rest = token.strip_prefix(PREFIX).ok_or(TokenError::Malformed)?;
    let (payload_b64, sig_b64) = rest.split_once('.').ok_or(TokenError::Malformed)?;
    if payload_b64.is_empty() || sig_b64.contains('.') {
        return Err(TokenError::Malformed);
    }
    let mut sig = [0u8; 32];
    let sig_bytes = b64url_decode(sig_b64).ok_or(TokenError::Malformed)?;
    if sig_bytes.len() != sig.len() {
        return Err(TokenError::Malformed);
    }
    sig.copy_from_slice(&sig_bytes);
    let payload = b64url_decode(payload_b64).ok_or(TokenError::Malformed)?;
    // The payload is parsed before the signature is checked because it names the key; it is small (the token
    // length is bounded) and the parser is strict.
    let claims = parse_claims(&payload)?;
    claims.validate()?;

    let signed = &token[..PREFIX.len() + payload_b64.len()];
    let usable = |s: &&(&str, &[u8])| s.1.len() >= MIN_SECRET_LEN;
    let mut matched = false;
    match claims.kid.as_deref() {
        Some(kid) => {
            let mut known = false;
            for (_, secret) in secrets.iter().filter(usable).filter(|s| s.0 == kid) {
                known = true;
                matched |= ct_eq(&hmac_sha256(secret, signed.as_bytes()), &sig);
            }
            if !known {
                return Err(TokenError::UnknownKey);
            }
        }
        None => {
            // Every candidate is computed, so timing does not say which secret matched.
            for (_, secret) in secrets.iter().filter(usable).take(MAX_SECRETS_WITHOUT_KID) {
                matched |= ct_eq(&hmac_sha256(secret, signed.as_bytes()), &sig);
            }
        }
    }
    if !matched {
        return Err(TokenError::BadSignature);
    }

    if now_s > claims.exp.saturating_add(CLOCK_SKEW_S) {
        return Err(TokenError::Expired);
    }
    if let Some(iat) = claims.iat {
        if iat > now_s.saturating_add(CLOCK_SKEW_S) {
            return Err(TokenError::NotYetValid);
        }
    }
    match request_origin {
        None => Err(TokenError::MissingOrigin),
        Some(o) if o == claims.origin => Ok(claims),
        Some(_) => Err(TokenError::WrongOrigin),
    }
}

fn parse_claims(payload: &[u8]) -> Result<Claims, TokenError> {
    use serde_json::error::Category;
    serde_json::from_slice::<Claims>(payload).map_err(|e| {
        if e.classify() != Category::Data {
            return TokenError::Malformed;
        }
        // The derived reader names what was wrong; the kinds, not serde's wording, are the error.
        let what = e.to_string();
        TokenError::InvalidClaims(if what.contains("duplicate field") {
            "duplicate claim"
        } else if what.contains("unknown field") {
            "unknown claim"
        } else if what.contains("missing field") {
            "a required claim (exp, models, origin) is missing"
        } else if what.contains("expected struct Claims") {
            return TokenError::Malformed;
        } else {
            "a claim has the wrong type or is out of range"
        })
    })
}

use crate::hmac::ct_eq;
pub use crate::hmac::hmac_sha256;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Appends the unpadded base64url encoding of `bytes` to `out`.
fn b64url_encode_into(bytes: &[u8], out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// Decodes unpadded base64url; `None` for any other character, padding, an impossible length or non-zero
/// trailing bits (so every byte string has exactly one accepted encoding).
fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const OTHER: &[u8] = b"fedcba9876543210fedcba9876543210";
    const ORIGIN: &str = "https://app.example.com";
    const NOW: u64 = 1_700_000_000;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn claims() -> Claims {
        Claims {
            exp: NOW + 600,
            iat: Some(NOW),
            models: vec!["fast".into(), "claude".into()],
            origin: ORIGIN.into(),
            rpm: Some(30),
            sub: Some("user-1".into()),
            kid: None,
        }
    }

    fn keys<'a>(list: &'a [(&'a str, &'a [u8])]) -> &'a [(&'a str, &'a [u8])] {
        list
    }

    /// Builds a token around an arbitrary payload, correctly signed.
    fn sign_raw(secret: &[u8], payload: &[u8]) -> String {
        let mut t = PREFIX.to_owned();
        b64url_encode_into(payload, &mut t);
        let mac = hmac_sha256(secret, t.as_bytes());
        t.push('.');
        b64url_encode_into(&mac, &mut t);
        t
    }

    #[test]
    fn rfc4231_vectors() {
        // Test case 1.
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 3.
        assert_eq!(
            hex(&hmac_sha256(&[0xaa; 20], &[0xdd; 50])),
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"
        );
        // Test case 4.
        let key4 = unhex("0102030405060708090a0b0c0d0e0f10111213141516171819");
        assert_eq!(
            hex(&hmac_sha256(&key4, &[0xcd; 50])),
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"
        );
        // Test case 5 (truncated to 128 bits).
        assert_eq!(
            hex(&hmac_sha256(&[0x0c; 20], b"Test With Truncation")[..16]),
            "a3b6167473100ee06e0c796c2955552b"
        );
        // Test case 6: a key longer than the block size is hashed first.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // Test case 7.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                concat!(
                    "This is a test using a larger than block-size key and a larger than ",
                    "block-size data. The key needs to be hashed before being used by the HMAC ",
                    "algorithm."
                )
                .as_bytes()
            )),
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"
        );
        // A key of exactly the block size is used as is.
        assert_ne!(hmac_sha256(&[1; 64], b"x"), hmac_sha256(&[1; 65], b"x"));
    }

    #[test]
    fn base64url_round_trips_and_is_strict() {
        for len in 0..70usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let mut s = String::new();
            b64url_encode_into(&data, &mut s);
            assert!(!s.contains('=') && !s.contains('+') && !s.contains('/'));
            assert_eq!(b64url_decode(&s), Some(data), "len {len}");
        }
        let mut s = String::new();
        b64url_encode_into(b"\xfb\xff", &mut s);
        assert_eq!(s, "-_8");
        assert_eq!(b64url_decode("Zg"), Some(b"f".to_vec()));
        assert_eq!(b64url_decode("Zm8"), Some(b"fo".to_vec()));
        assert_eq!(b64url_decode("Zm9v"), Some(b"foo".to_vec()));
        // Padding, the standard alphabet, impossible lengths and non-canonical trailing bits.
        for bad in [
            "Zg==", "Zm8=", "a+b/", "Z", "Zh", "Zm9", "Zm9vZ", "Zm 9", "Zm9v\n",
        ] {
            assert_eq!(b64url_decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn mint_verify_round_trip() {
        let c = claims();
        let t = mint(SECRET, &c);
        assert!(is_browser_token(&t));
        assert!(t.starts_with("mrd1.") && t.matches('.').count() == 2);
        assert_eq!(
            verify(&t, keys(&[("", SECRET)]), NOW, Some(ORIGIN)),
            Ok(c.clone())
        );
        // Minimal claims serialize without the optional members.
        let min = Claims {
            exp: NOW + 1,
            iat: None,
            models: vec!["*".into()],
            origin: "http://localhost:5173".into(),
            rpm: None,
            sub: None,
            kid: None,
        };
        let t = mint(SECRET, &min);
        let payload = b64url_decode(t.split('.').nth(1).unwrap()).unwrap();
        assert_eq!(
            payload,
            br#"{"exp":1700000001,"models":["*"],"origin":"http://localhost:5173"}"#
        );
        let got = verify(
            &t,
            keys(&[("k", SECRET)]),
            NOW,
            Some("http://localhost:5173"),
        )
        .unwrap();
        assert!(got.allows_model("anything"));
        assert!(c.allows_model("fast") && !c.allows_model("fast2") && !c.allows_model("*"));
    }

    #[test]
    fn tampering_is_detected() {
        let t = mint(SECRET, &claims());
        let (head, sig) = t.rsplit_once('.').unwrap();
        // A different, validly encoded payload under the old signature.
        let mut forged = claims();
        forged.models = vec!["*".into()];
        let forged_payload = mint(SECRET, &forged);
        let forged_head = forged_payload.rsplit_once('.').unwrap().0;
        let k = keys(&[("", SECRET)]);
        assert_eq!(
            verify(&format!("{forged_head}.{sig}"), k, NOW, Some(ORIGIN)),
            Err(TokenError::BadSignature)
        );
        // A flipped signature bit (first character, so the encoding stays canonical).
        let mut sig2 = sig.to_owned().into_bytes();
        sig2[0] = if sig2[0] == b'A' { b'B' } else { b'A' };
        let t2 = format!("{head}.{}", String::from_utf8(sig2).unwrap());
        assert_eq!(
            verify(&t2, k, NOW, Some(ORIGIN)),
            Err(TokenError::BadSignature)
        );
        // A flipped payload character that keeps the JSON parseable is still caught by the signature:
        // change the expiry digits.
        let mut longer = claims();
        longer.exp += 1_000_000;
        let other = mint(OTHER, &longer);
        let other_head = other.rsplit_once('.').unwrap().0;
        assert_eq!(
            verify(&format!("{other_head}.{sig}"), k, NOW, Some(ORIGIN)),
            Err(TokenError::BadSignature)
        );
        // A truncated signature is malformed.
        assert_eq!(
            verify(&t[..t.len() - 4], k, NOW, Some(ORIGIN)),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn wrong_secret_and_weak_secrets() {
        let t = mint(SECRET, &claims());
        assert_eq!(
            verify(&t, keys(&[("", OTHER)]), NOW, Some(ORIGIN)),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&t, keys(&[]), NOW, Some(ORIGIN)),
            Err(TokenError::BadSignature)
        );
        // The right secret among others is found.
        assert!(verify(&t, keys(&[("a", OTHER), ("b", SECRET)]), NOW, Some(ORIGIN)).is_ok());
        // An empty or short secret never verifies, even the token minted with it.
        for weak in [&b""[..], b"short"] {
            let t = mint(weak, &claims());
            assert_eq!(
                verify(&t, keys(&[("", weak)]), NOW, Some(ORIGIN)),
                Err(TokenError::BadSignature)
            );
        }
        // Only the first few secrets are tried for a token without kid.
        let mut many: Vec<(&str, &[u8])> = vec![("x", OTHER); MAX_SECRETS_WITHOUT_KID];
        many.push(("y", SECRET));
        assert_eq!(
            verify(&t, &many, NOW, Some(ORIGIN)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn expiry_with_skew() {
        let c = claims();
        let t = mint(SECRET, &c);
        let k = keys(&[("", SECRET)]);
        assert!(verify(&t, k, c.exp, Some(ORIGIN)).is_ok());
        assert!(verify(&t, k, c.exp + CLOCK_SKEW_S, Some(ORIGIN)).is_ok());
        assert_eq!(
            verify(&t, k, c.exp + CLOCK_SKEW_S + 1, Some(ORIGIN)),
            Err(TokenError::Expired)
        );
        // Issued in the future: tolerated within the skew only.
        assert!(verify(&t, k, NOW - CLOCK_SKEW_S, Some(ORIGIN)).is_ok());
        assert_eq!(
            verify(&t, k, NOW - CLOCK_SKEW_S - 1, Some(ORIGIN)),
            Err(TokenError::NotYetValid)
        );
        // exp near u64::MAX does not overflow.
        let mut far = claims();
        far.exp = u64::MAX;
        far.iat = None;
        assert!(verify(&mint(SECRET, &far), k, u64::MAX, Some(ORIGIN)).is_ok());
    }

    #[test]
    fn origin_must_match_exactly() {
        let t = mint(SECRET, &claims());
        let k = keys(&[("", SECRET)]);
        assert_eq!(verify(&t, k, NOW, None), Err(TokenError::MissingOrigin));
        for o in [
            "https://evil.com",
            "https://app.example.com.evil.com",
            "http://app.example.com",
            "https://app.example.com:443",
            "https://app.example.com/",
            "https://APP.example.com",
            "null",
            "",
        ] {
            assert_eq!(
                verify(&t, k, NOW, Some(o)),
                Err(TokenError::WrongOrigin),
                "{o}"
            );
        }
    }

    #[test]
    fn malformed_tokens() {
        let k = keys(&[("", SECRET)]);
        let good = mint(SECRET, &claims());
        let (head, sig) = good.rsplit_once('.').unwrap();
        let payload = head.strip_prefix(PREFIX).unwrap();
        for bad in [
            String::new(),
            "mrd1.".into(),
            "mrd1..".into(),
            "mrd2.".to_owned() + payload + "." + sig,
            format!("mrd1.{payload}"),
            format!("mrd1.{payload}.{sig}.x"),
            format!("mrd1..{sig}"),
            format!("mrd1.{payload}."),
            format!("mrd1.{payload}={sig}"),
            format!("mrd1.{payload}.{sig}="),
            format!("mrd1.{payload}!.{sig}"),
            format!("MRD1.{payload}.{sig}"),
            format!(" {good}"),
        ] {
            assert_eq!(
                verify(&bad, k, NOW, Some(ORIGIN)),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
        // Correctly signed but not JSON, or JSON but not an object.
        for payload in [&b"not json"[..], b"[1,2]", b"\"s\"", b"{", b"\xff\xfe"] {
            assert_eq!(
                verify(&sign_raw(SECRET, payload), k, NOW, Some(ORIGIN)),
                Err(TokenError::Malformed)
            );
        }
        // Correctly signed objects with bad claims.
        for payload in [
            r#"{"models":["a"],"origin":"https://app.example.com"}"#,
            r#"{"exp":1,"origin":"https://app.example.com"}"#,
            r#"{"exp":1,"models":["a"]}"#,
            r#"{"exp":-1,"models":["a"],"origin":"https://app.example.com"}"#,
            r#"{"exp":"1","models":["a"],"origin":"https://app.example.com"}"#,
            r#"{"exp":1,"models":[],"origin":"https://app.example.com"}"#,
            r#"{"exp":1,"models":[""],"origin":"https://app.example.com"}"#,
            r#"{"exp":1,"models":"a","origin":"https://app.example.com"}"#,
            r#"{"exp":1,"models":["a"],"origin":"null"}"#,
            r#"{"exp":1,"models":["a"],"origin":"https://app.example.com/path"}"#,
            r#"{"exp":1,"models":["a"],"origin":"app.example.com"}"#,
            r#"{"exp":1,"models":["a"],"origin":"https://App.example.com"}"#,
            r#"{"exp":1,"models":["a"],"origin":"https://app.example.com","rpm":5000000000}"#,
            r#"{"exp":1,"models":["a"],"origin":"https://app.example.com","admin":true}"#,
            r#"{"exp":1,"exp":2,"models":["a"],"origin":"https://app.example.com"}"#,
            r#"{"exp":1,"models":["a"],"origin":"https://app.example.com","kid":""}"#,
        ] {
            let got = verify(&sign_raw(SECRET, payload.as_bytes()), k, 0, Some(ORIGIN));
            assert!(
                matches!(got, Err(TokenError::InvalidClaims(_))),
                "{payload}: {got:?}"
            );
        }
    }

    #[test]
    fn too_long_is_rejected_first() {
        let t = format!("mrd1.{}", "A".repeat(MAX_TOKEN_LEN));
        assert_eq!(
            verify(&t, keys(&[("", SECRET)]), NOW, Some(ORIGIN)),
            Err(TokenError::TooLong)
        );
        // A valid token of exactly the limit is fine.
        let mut c = claims();
        c.sub = Some(String::new());
        let base = mint(SECRET, &c).len();
        // Each 3 bytes of `sub` add 4 characters; pick a length that lands on the limit.
        let extra = (MAX_TOKEN_LEN - base) / 4 * 3;
        c.sub = Some("u".repeat(extra));
        let t = mint(SECRET, &c);
        assert!(
            t.len() <= MAX_TOKEN_LEN && t.len() > MAX_TOKEN_LEN - 8,
            "{}",
            t.len()
        );
        assert!(verify(&t, keys(&[("", SECRET)]), NOW, Some(ORIGIN)).is_ok());
    }

    #[test]
    fn kid_selects_the_secret() {
        let mut c = claims();
        c.kid = Some("k2".into());
        let t = mint(OTHER, &c);
        let both = keys(&[("k1", SECRET), ("k2", OTHER)]);
        assert_eq!(verify(&t, both, NOW, Some(ORIGIN)), Ok(c.clone()));
        // Minted with k2's secret but claiming k1: only k1's secret is tried.
        let mut lie = c.clone();
        lie.kid = Some("k1".into());
        assert_eq!(
            verify(&mint(OTHER, &lie), both, NOW, Some(ORIGIN)),
            Err(TokenError::BadSignature)
        );
        // A kid that is not configured.
        assert_eq!(
            verify(&t, keys(&[("k1", SECRET)]), NOW, Some(ORIGIN)),
            Err(TokenError::UnknownKey)
        );
        // The secret under another kid does not verify a token naming k2.
        assert_eq!(
            verify(&t, keys(&[("k1", OTHER)]), NOW, Some(ORIGIN)),
            Err(TokenError::UnknownKey)
        );
        // A kid-less token is tried against every secret.
        assert!(verify(&mint(OTHER, &claims()), both, NOW, Some(ORIGIN)).is_ok());
    }

    #[test]
    fn errors_do_not_echo_secrets_or_tokens() {
        let t = mint(SECRET, &claims());
        let errs = [
            verify(&t, keys(&[("", OTHER)]), NOW, Some(ORIGIN)).unwrap_err(),
            verify(&t, keys(&[("", SECRET)]), NOW, Some("https://x.y")).unwrap_err(),
            verify("mrd1.zz.zz", keys(&[("", SECRET)]), NOW, None).unwrap_err(),
            verify(
                &sign_raw(SECRET, br#"{"exp":1,"x":"user-1"}"#),
                keys(&[("", SECRET)]),
                0,
                None,
            )
            .unwrap_err(),
        ];
        for e in errs {
            let msg = e.to_string();
            assert!(
                !msg.contains(&t[5..20]) && !msg.contains("0123456789abcdef"),
                "{msg}"
            );
            assert!(
                !msg.contains("user-1") && !msg.contains("app.example.com"),
                "{msg}"
            );
            assert!(!e.code().as_str().is_empty());
        }
    }

    proptest! {
        #[test]
        fn verify_never_panics(
            s in ".{0,300}",
            now in any::<u64>(),
            origin in proptest::option::of(".{0,40}"),
        ) {
            let _ = verify(&s, keys(&[("", SECRET), ("k", OTHER)]), now, origin.as_deref());
            let t = format!("mrd1.{s}");
            let _ = verify(&t, keys(&[("", SECRET)]), now, origin.as_deref());
        }

        #[test]
        fn base64url_round_trips(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut s = String::new();
            b64url_encode_into(&data, &mut s);
            prop_assert_eq!(b64url_decode(&s), Some(data));
        }
    }
}
