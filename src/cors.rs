//! Cross-origin resource sharing for browser clients.
//!
//! Origins are compared exactly, byte for byte, against the configured list (`"*"` allows any origin). Browsers
//! authenticate with a bearer token in `Authorization`, never with cookies, so credentials are never allowed and
//! `Access-Control-Allow-Credentials` is never sent; with `"*"` the answer is the literal `*`, not the reflected
//! origin. Header names in the returned lists are lower-case, like [`crate::http::Headers`].

/// Which browser origins may call the gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Exact origins such as `https://app.example.com`, or `"*"` for any origin.
    pub allowed_origins: Vec<String>,
}

/// Methods browsers may use.
pub const ALLOWED_METHODS: &str = "POST, GET, OPTIONS";
/// Request headers browsers may send (lower-case), as far as a preflight asks for them: the gateway's own, and
/// what the official OpenAI and Anthropic JavaScript SDKs send in browser mode.
pub const ALLOWED_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "accept",
    "x-api-key",
    "anthropic-version",
    "anthropic-beta",
    "anthropic-dangerous-direct-browser-access",
    "openai-organization",
    "openai-project",
    "openai-beta",
    "x-meridian-residency",
    "cache-control",
    "x-meridian-cache-ttl",
    "x-meridian-cache-namespace",
];
/// Response headers scripts may read.
pub const EXPOSED_HEADERS: &str = "x-meridian-deployment, x-meridian-region, x-meridian-attempts, \
                                   x-meridian-colo, x-meridian-cache, age, retry-after, \
                                   x-meridian-route-reason, x-meridian-cost-usd, x-meridian-cost-saved-usd, \
                                   x-ratelimit-limit-requests, x-ratelimit-remaining-requests, \
                                   x-ratelimit-reset-requests, x-ratelimit-limit-tokens, \
                                   x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens, \
                                   x-meridian-model, x-meridian-variant";
/// Seconds a browser may cache a preflight answer.
pub const MAX_AGE_S: &str = "600";

impl CorsPolicy {
    /// Whether `origin` may call the gateway: a well-formed header value listed exactly (or `"*"` is listed).
    pub fn allows(&self, origin: &str) -> bool {
        is_header_safe(origin) && self.allowed_origins.iter().any(|o| o == "*" || o == origin)
    }

    fn allow_origin_value(&self, origin: &str) -> String {
        if self.allowed_origins.iter().any(|o| o == "*") {
            "*".to_owned()
        } else {
            origin.to_owned()
        }
    }

    /// Checks the configured entries, so that a typo does not silently never match: each must be `"*"` or an
    /// origin as browsers send it, `scheme://host[:port]` without path or trailing slash. The error names the
    /// entry by index.
    pub fn validate(&self) -> Result<(), String> {
        for (i, o) in self.allowed_origins.iter().enumerate() {
            if o != "*" && !is_origin(o) {
                return Err(format!(
                    "allowed_origins[{i}]: {o:?} is not an origin: expected \"*\" or scheme://host[:port] \
                     as browsers send it (lower-case, no path or trailing slash)"
                ));
            }
        }
        Ok(())
    }
}

/// The answer to a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`): the headers of a 204,
/// or `None` when the origin is not allowed (answer 403).
///
/// Requested headers are reflected only as far as they are allowed; a browser asking for another one gets an
/// answer without it and blocks the request itself. Likewise a method outside [`ALLOWED_METHODS`] is not listed.
pub fn preflight(
    policy: &CorsPolicy,
    origin: &str,
    request_method: Option<&str>,
    request_headers: Option<&str>,
) -> Option<Vec<(String, String)>> {
    // The method itself needs no check: the browser compares it against the list below.
    let _ = request_method;
    if !policy.allows(origin) {
        return None;
    }
    let mut out = vec![
        (
            "access-control-allow-origin".to_owned(),
            policy.allow_origin_value(origin),
        ),
        (
            "access-control-allow-methods".to_owned(),
            ALLOWED_METHODS.to_owned(),
        ),
    ];
    let allowed = allowed_request_headers(request_headers.unwrap_or(""));
    if !allowed.is_empty() {
        out.push(("access-control-allow-headers".to_owned(), allowed));
    }
    out.push(("access-control-max-age".to_owned(), MAX_AGE_S.to_owned()));
    // The answer depends on the requested headers too, not only on the origin.
    out.push((
        "vary".to_owned(),
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers".to_owned(),
    ));
    Some(out)
}

/// Headers to add to an actual response for an allowed origin; empty when there is no `Origin` or it is not
/// allowed.
pub fn response_headers(policy: &CorsPolicy, origin: Option<&str>) -> Vec<(String, String)> {
    match origin {
        Some(origin) if policy.allows(origin) => vec![
            (
                "access-control-allow-origin".to_owned(),
                policy.allow_origin_value(origin),
            ),
            (
                "access-control-expose-headers".to_owned(),
                EXPOSED_HEADERS.to_owned(),
            ),
            ("vary".to_owned(), "Origin".to_owned()),
        ],
        _ => Vec::new(),
    }
}

/// The SDKs' telemetry headers (`x-stainless-lang`, `-os`, `-retry-count`, `-timeout`, ...): a family that grows
/// with each SDK release, allowed by prefix. They carry nothing the gateway acts on.
pub const ALLOWED_HEADER_PREFIX: &str = "x-stainless-";

/// The requested header names (comma-separated, any case) that are allowed, lower-cased, deduplicated, in
/// request order.
fn allowed_request_headers(requested: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for name in requested.split(',') {
        let name = name.trim().to_ascii_lowercase();
        let listed = ALLOWED_HEADERS.contains(&name.as_str());
        // Reflected only as a plain header name of modest length.
        let family = name.len() > ALLOWED_HEADER_PREFIX.len()
            && name.len() <= 64
            && name.starts_with(ALLOWED_HEADER_PREFIX)
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if (listed || family) && !out.contains(&name) {
            out.push(name);
        }
    }
    out.join(", ")
}

/// Non-empty and only visible ASCII: nothing that could split or extend a header when reflected.
fn is_header_safe(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// `scheme://host[:port]` as browsers serialize it: lower-case visible ASCII, no path, query, fragment or
/// userinfo, and not the opaque origin `null`. Shared with [`crate::browser_token`].
pub(crate) fn is_origin(s: &str) -> bool {
    let Some((scheme, authority)) = s.split_once("://") else {
        return false;
    };
    let lower_graphic = |b: u8| b.is_ascii_graphic() && !b.is_ascii_uppercase();
    !scheme.is_empty()
        && scheme.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        })
        && !authority.is_empty()
        && authority
            .bytes()
            .all(|b| lower_graphic(b) && !matches!(b, b'/' | b'?' | b'#' | b'@' | b'\\' | b','))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str]) -> CorsPolicy {
        CorsPolicy {
            allowed_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn get<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    const APP: &str = "https://app.example.com";

    #[test]
    fn preflight_for_an_allowed_origin() {
        let p = policy(&[APP, "http://localhost:5173"]);
        let h = preflight(&p, APP, Some("POST"), Some("authorization, content-type")).unwrap();
        assert_eq!(get(&h, "access-control-allow-origin"), Some(APP));
        assert_eq!(
            get(&h, "access-control-allow-methods"),
            Some("POST, GET, OPTIONS")
        );
        assert_eq!(
            get(&h, "access-control-allow-headers"),
            Some("authorization, content-type")
        );
        assert_eq!(get(&h, "access-control-max-age"), Some("600"));
        assert!(get(&h, "vary").unwrap().starts_with("Origin"));
        assert_eq!(get(&h, "access-control-allow-credentials"), None);
        // Header names and values are safe to insert as they are.
        assert!(h.iter().all(
            |(n, v)| is_header_safe(n) && v.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        ));
        assert!(preflight(&p, "http://localhost:5173", Some("POST"), None).is_some());
    }

    #[test]
    fn preflight_reflects_only_allowed_headers() {
        let p = policy(&[APP]);
        let h = preflight(
            &p,
            APP,
            Some("POST"),
            Some(
                "Content-Type,x-evil , AUTHORIZATION, x-meridian-cache-ttl,content-type, ,\
                 X-Stainless-OS, x-stainless-, x-stainless-a\u{1}b, x-stainless-retry-count",
            ),
        )
        .unwrap();
        assert_eq!(
            get(&h, "access-control-allow-headers"),
            Some("content-type, authorization, x-meridian-cache-ttl, x-stainless-os, x-stainless-retry-count")
        );
        let long = format!("x-stainless-{}", "a".repeat(60));
        let h = preflight(&p, APP, Some("POST"), Some(&long)).unwrap();
        assert_eq!(
            get(&h, "access-control-allow-headers"),
            None,
            "too long to reflect"
        );
        let all = ALLOWED_HEADERS.join(",");
        let h = preflight(&p, APP, Some("POST"), Some(&all)).unwrap();
        assert_eq!(
            get(&h, "access-control-allow-headers"),
            Some(ALLOWED_HEADERS.join(", ").as_str())
        );
        // Nothing allowed was asked for: no allow-headers at all.
        for req in [None, Some(""), Some("x-other"), Some("cookie")] {
            let h = preflight(&p, APP, Some("POST"), req).unwrap();
            assert_eq!(get(&h, "access-control-allow-headers"), None, "{req:?}");
        }
        // A method outside the list is answered with the list; the browser blocks.
        let h = preflight(&p, APP, Some("DELETE"), None).unwrap();
        assert_eq!(
            get(&h, "access-control-allow-methods"),
            Some(ALLOWED_METHODS)
        );
    }

    #[test]
    fn origins_are_compared_exactly() {
        let p = policy(&[APP]);
        for bad in [
            "https://app.example.com.evil.com",
            "https://evil.com?https://app.example.com",
            "https://evil.com/https://app.example.com",
            "https://evilapp.example.com",
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://app.example.com/",
            "https://APP.example.com",
            "https://app.example.co",
            " https://app.example.com",
            "https://app.example.com ",
            "null",
            "",
            "*",
        ] {
            assert!(preflight(&p, bad, Some("POST"), None).is_none(), "{bad:?}");
            assert!(response_headers(&p, Some(bad)).is_empty(), "{bad:?}");
        }
        assert!(preflight(&policy(&[]), APP, Some("POST"), None).is_none());
    }

    #[test]
    fn header_injection_is_rejected() {
        for p in [policy(&[APP]), policy(&["*"])] {
            for bad in [
                "https://app.example.com\r\nSet-Cookie: a=b",
                "https://app.example.com\n",
                "https://app.example.com\r",
                "https://app.example.com\0",
                "https://app.example.com\t",
                "https://app.exämple.com",
                "https://app.example.com\u{7f}",
            ] {
                assert!(preflight(&p, bad, Some("POST"), None).is_none(), "{bad:?}");
                assert!(response_headers(&p, Some(bad)).is_empty(), "{bad:?}");
            }
        }
        // Even a configured entry with a line break never matches.
        let p = policy(&["https://a.com\r\nx: y"]);
        assert!(!p.allows("https://a.com\r\nx: y"));
    }

    #[test]
    fn wildcard_answers_star_without_credentials() {
        let p = policy(&["*"]);
        for origin in ["https://anything.example", "http://localhost:3000", "null"] {
            let h = preflight(&p, origin, Some("POST"), Some("authorization")).unwrap();
            assert_eq!(get(&h, "access-control-allow-origin"), Some("*"));
            assert_eq!(get(&h, "access-control-allow-credentials"), None);
            let h = response_headers(&p, Some(origin));
            assert_eq!(get(&h, "access-control-allow-origin"), Some("*"));
            assert_eq!(get(&h, "access-control-allow-credentials"), None);
        }
        // With "*" among exact entries, still the literal star.
        let p = policy(&[APP, "*"]);
        let h = response_headers(&p, Some(APP));
        assert_eq!(get(&h, "access-control-allow-origin"), Some("*"));
    }

    #[test]
    fn response_headers_for_actual_requests() {
        let p = policy(&[APP]);
        let h = response_headers(&p, Some(APP));
        assert_eq!(
            h,
            vec![
                ("access-control-allow-origin".to_owned(), APP.to_owned()),
                (
                    "access-control-expose-headers".to_owned(),
                    "x-meridian-deployment, x-meridian-region, x-meridian-attempts, \
                     x-meridian-colo, x-meridian-cache, age, retry-after, \
                     x-meridian-route-reason, x-meridian-cost-usd, x-meridian-cost-saved-usd, \
                     x-ratelimit-limit-requests, x-ratelimit-remaining-requests, \
                     x-ratelimit-reset-requests, x-ratelimit-limit-tokens, \
                     x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens, \
                     x-meridian-model, x-meridian-variant"
                        .to_owned()
                ),
                ("vary".to_owned(), "Origin".to_owned()),
            ]
        );
        assert!(response_headers(&p, None).is_empty());
        assert!(response_headers(&p, Some("https://other.example")).is_empty());
    }

    #[test]
    fn validate_flags_entries_that_never_match() {
        assert!(
            policy(&[APP, "*", "http://localhost:5173", "http://[::1]:8080"])
                .validate()
                .is_ok()
        );
        for bad in [
            "https://app.example.com/",
            "https://App.example.com",
            "app.example.com",
            "https://app.example.com/path",
            "https://",
            "https://u@app.example.com",
            "https://a.com, https://b.com",
            "",
            "null",
            "*.example.com",
        ] {
            let e = policy(&[APP, bad]).validate().unwrap_err();
            assert!(e.starts_with("allowed_origins[1]:"), "{bad:?}: {e}");
        }
    }
}
