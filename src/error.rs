//! Gateway errors, independent of the dialect they will be rendered in. Every error a client can see has one
//! [`ErrorCode`]; its status, its class and whether another deployment is tried live in [`ErrorCode::spec`], the
//! one table (the README's error table is rendered from it by `inbound::error_table`, and a test keeps the two
//! equal).

use core::fmt;

/// What went wrong, in terms every client dialect can express (each dialect names its error types from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    MethodNotAllowed,
    RateLimited,
    /// The provider failed or answered something unusable.
    Upstream,
    /// The provider did not answer in time.
    Timeout,
    /// Meridian itself is misconfigured or broke.
    Internal,
}

/// Declares [`ErrorCode`] and [`ErrorCode::ALL`] from one list, so that no code can be missing from either.
macro_rules! error_codes {
    ($($code:ident),* $(,)?) => {
        /// Every error code a client can receive. Stable: a code is never renamed, only added.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($code),*
        }

        impl ErrorCode {
            /// Every code, in the order of the README's table.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$code),*];
        }
    };
}

error_codes!(
    InvalidRequest,
    InvalidModel,
    InvalidMessages,
    InvalidValue,
    RequestTooLarge,
    JsonTooDeep,
    InvalidUtf8,
    TooManyMessages,
    MaxTokensTooLarge,
    StringTooLong,
    UnsupportedInput,
    UnsupportedParameter,
    MissingApiKey,
    InvalidApiKey,
    InvalidBrowserToken,
    ExpiredBrowserToken,
    BrowserTokenOriginMismatch,
    ModelNotAllowed,
    PriceRequired,
    AdminKeyRequired,
    CorsOriginNotAllowed,
    NotFound,
    ModelNotFound,
    ResponseNotFound,
    MethodNotAllowed,
    RateLimitExceeded,
    BudgetExceeded,
    BudgetUnavailable,
    ResidencyUnsatisfiable,
    DeadlineExceeded,
    UpstreamRejectedRequest,
    ContextLengthExceeded,
    UpstreamRateLimited,
    UpstreamOverloaded,
    UpstreamMisconfigured,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    UpstreamBodyError,
    UpstreamMalformed,
    UpstreamEmptyStream,
    UpstreamStreamError,
    UpstreamStreamTruncated,
    CoalescedLeaderFailed,
    MissingProviderKey,
    RateLimiterUnavailable,
    InvalidConfig,
    InternalError,
);

/// One row of the error table.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub kind: ErrorKind,
    /// The HTTP status (in both dialects, but for `upstream_overloaded`, which is Anthropic's own 529 in its
    /// dialect).
    pub status: u16,
    /// Whether the next deployment in the plan is tried (only before anything was sent to the client).
    pub fails_over: bool,
    pub meaning: &'static str,
}

impl ErrorCode {
    /// The table. A new code does not compile until its row is written here.
    pub const fn spec(self) -> Spec {
        use ErrorKind as K;
        let (name, kind, status, fails_over, meaning) = match self {
            ErrorCode::InvalidRequest => ("invalid_request", K::InvalidRequest, 400, false, "the body is not valid JSON or a field has the wrong type"),
            ErrorCode::InvalidModel => ("invalid_model", K::InvalidRequest, 400, false, "`model` is missing or not a valid model name"),
            ErrorCode::InvalidMessages => ("invalid_messages", K::InvalidRequest, 400, false, "`messages` is missing or malformed"),
            ErrorCode::InvalidValue => ("invalid_value", K::InvalidRequest, 400, false, "another field has a value the API does not accept"),
            ErrorCode::RequestTooLarge => ("request_too_large", K::InvalidRequest, 413, false, "the body is larger than `limits.max_body_bytes`"),
            ErrorCode::JsonTooDeep => ("json_too_deep", K::InvalidRequest, 400, false, "the body nests deeper than `limits.max_json_depth`"),
            ErrorCode::InvalidUtf8 => ("invalid_utf8", K::InvalidRequest, 400, false, "the body is not UTF-8"),
            ErrorCode::TooManyMessages => ("too_many_messages", K::InvalidRequest, 400, false, "more messages than `limits.max_messages`"),
            ErrorCode::MaxTokensTooLarge => ("max_tokens_too_large", K::InvalidRequest, 400, false, "the output token limit asked for is above `limits.max_output_tokens`"),
            ErrorCode::StringTooLong => ("string_too_long", K::InvalidRequest, 400, false, "a string is longer than `limits.max_string_bytes`"),
            ErrorCode::UnsupportedInput => ("unsupported_input", K::InvalidRequest, 400, false, "no deployment of the model can express the request (the message names the field and why); a deployment that cannot is skipped, not failed"),
            ErrorCode::UnsupportedParameter => ("unsupported_parameter", K::InvalidRequest, 400, false, "a field the provider kinds of the model's deployments have no equivalent for was given a value other than its default (the message names it; see \"What reaches the provider\"); a deployment that cannot take it is skipped, not failed; `drop_unsupported = true` on the model drops it instead"),
            ErrorCode::MissingApiKey => ("missing_api_key", K::Authentication, 401, false, "no gateway key or browser token was sent"),
            ErrorCode::InvalidApiKey => ("invalid_api_key", K::Authentication, 401, false, "the gateway key is not known"),
            ErrorCode::InvalidBrowserToken => ("invalid_browser_token", K::Authentication, 401, false, "the browser token is malformed, badly signed, or tokens are off"),
            ErrorCode::ExpiredBrowserToken => ("expired_browser_token", K::Authentication, 401, false, "the browser token is expired or not yet valid"),
            ErrorCode::BrowserTokenOriginMismatch => ("browser_token_origin_mismatch", K::Authentication, 401, false, "the browser token is bound to another origin"),
            ErrorCode::ModelNotAllowed => ("model_not_allowed", K::Permission, 403, false, "the key or token may not use this model"),
            ErrorCode::PriceRequired => ("price_required", K::Permission, 403, false, "the key has `require_price = true` and no deployment of the model it may reach has a price (configured or built in)"),
            ErrorCode::AdminKeyRequired => ("admin_key_required", K::Permission, 403, false, "an admin endpoint was called with a gateway key"),
            ErrorCode::CorsOriginNotAllowed => ("cors_origin_not_allowed", K::Permission, 403, false, "a preflight from an origin no key allows"),
            ErrorCode::NotFound => ("not_found", K::NotFound, 404, false, "no such route"),
            ErrorCode::ModelNotFound => ("model_not_found", K::NotFound, 404, false, "no model alias or `provider/model` by that name"),
            ErrorCode::ResponseNotFound => ("response_not_found", K::NotFound, 404, false, "no stored response by that id for this key (`previous_response_id`, `GET` or `DELETE /v1/responses/{id}`)"),
            ErrorCode::MethodNotAllowed => ("method_not_allowed", K::MethodNotAllowed, 405, false, "the route exists, not with this method"),
            ErrorCode::RateLimitExceeded => ("rate_limit_exceeded", K::RateLimited, 429, false, "the key's requests or tokens per minute are spent (`retry-after` says when)"),
            ErrorCode::BudgetExceeded => ("budget_exceeded", K::RateLimited, 429, false, "the key's `budget` (USD per day or per month) is spent, or this request's reservation does not fit what is left (`retry-after` says when it resets)"),
            ErrorCode::BudgetUnavailable => ("budget_unavailable", K::Internal, 500, false, "a budget is configured but its ledger cannot be reached"),
            ErrorCode::ResidencyUnsatisfiable => ("residency_unsatisfiable", K::Upstream, 503, false, "no deployment satisfies the residency the key or `x-meridian-residency` requires"),
            ErrorCode::DeadlineExceeded => ("deadline_exceeded", K::Timeout, 504, false, "`timeouts.total_ms` passed before any deployment answered"),
            ErrorCode::UpstreamRejectedRequest => ("upstream_rejected_request", K::InvalidRequest, 400, false, "the provider refused the request as invalid (its 400, 413 or 422 is kept)"),
            ErrorCode::ContextLengthExceeded => ("context_length_exceeded", K::InvalidRequest, 400, false, "the provider said the prompt (with the output asked for) does not fit the model's context window"),
            ErrorCode::UpstreamRateLimited => ("upstream_rate_limited", K::RateLimited, 429, true, "the provider answered 429"),
            ErrorCode::UpstreamOverloaded => ("upstream_overloaded", K::Upstream, 503, true, "the provider answered 503 or 529, or reported itself overloaded"),
            ErrorCode::UpstreamMisconfigured => ("upstream_misconfigured", K::Upstream, 502, true, "the provider answered 401, 403 or 404: the gateway's credentials or model mapping are wrong"),
            ErrorCode::UpstreamError => ("upstream_error", K::Upstream, 502, true, "the provider answered another error status, or an error object with a 200"),
            ErrorCode::UpstreamTimeout => ("upstream_timeout", K::Timeout, 504, true, "no headers or first content within `timeouts.first_byte_ms`, or the provider answered 408 or 504"),
            ErrorCode::UpstreamUnreachable => ("upstream_unreachable", K::Upstream, 502, true, "the provider could not be reached (DNS, connect, TLS, reset)"),
            ErrorCode::UpstreamBodyError => ("upstream_body_error", K::Upstream, 502, true, "a non-streamed answer failed while being read"),
            ErrorCode::UpstreamMalformed => ("upstream_malformed", K::Upstream, 502, true, "the provider answered something that is not its API's shape"),
            ErrorCode::UpstreamEmptyStream => ("upstream_empty_stream", K::Upstream, 502, true, "the provider's stream ended before any content"),
            ErrorCode::UpstreamStreamError => ("upstream_stream_error", K::Upstream, 502, true, "the provider's stream failed or reported an error (after the first content: an error event ends the stream)"),
            ErrorCode::UpstreamStreamTruncated => ("upstream_stream_truncated", K::Upstream, 502, true, "the provider's stream ended without its end marker"),
            ErrorCode::CoalescedLeaderFailed => ("coalesced_leader_failed", K::Upstream, 502, false, "the identical request this one followed failed"),
            ErrorCode::MissingProviderKey => ("missing_provider_key", K::Internal, 500, true, "a worker secret the provider needs is not set"),
            ErrorCode::RateLimiterUnavailable => ("rate_limiter_unavailable", K::Internal, 500, false, "rate limits are configured but the limiter cannot be reached"),
            ErrorCode::InvalidConfig => ("invalid_config", K::Internal, 500, false, "`MERIDIAN_CONFIG` does not validate (the message names the path)"),
            ErrorCode::InternalError => ("internal_error", K::Internal, 500, false, "the gateway itself failed"),
        };
        Spec {
            name,
            kind,
            status,
            fails_over,
            meaning,
        }
    }

    pub const fn as_str(self) -> &'static str {
        self.spec().name
    }

    pub const fn kind(self) -> ErrorKind {
        self.spec().kind
    }

    /// Whether the error says a deployment cannot express the request (it is skipped, and another kind may serve
    /// it) rather than that the request is wrong.
    pub const fn skips_deployment(self) -> bool {
        matches!(
            self,
            ErrorCode::UnsupportedInput | ErrorCode::UnsupportedParameter
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub code: ErrorCode,
    /// The code's status, except where the table says a provider's own status is kept.
    pub status: u16,
    pub message: String,
    /// Seconds the client should wait, sent as `retry-after`.
    pub retry_after: Option<String>,
}

/// serde_json's message without its " at line L column C", for errors that name the path where it went wrong.
pub fn json_message_without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) if e.line() > 0 => text[..i].to_owned(),
        _ => text,
    }
}

impl GatewayError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        GatewayError {
            code,
            status: code.spec().status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A request that is not valid for the API it was sent to.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn kind(&self) -> ErrorKind {
        self.code.kind()
    }

    /// Whether another deployment may do better.
    pub fn fails_over(&self) -> bool {
        self.code.spec().fails_over
    }

    /// Keeps a provider's own status (a 413 or 422 it refused the request with).
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn with_retry_after(mut self, seconds: Option<String>) -> Self {
        self.retry_after = seconds;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let n = code.as_str();
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{n}"
            );
            assert!(seen.insert(n), "{n} twice");
        }
    }
}
