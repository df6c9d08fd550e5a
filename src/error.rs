//! Gateway errors, independent of the dialect they will be rendered in.

/// What went wrong, in terms every client dialect can express.
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub kind: ErrorKind,
    pub status: u16,
    pub message: String,
    /// Machine-readable code, e.g. `model_not_found`.
    pub code: Option<&'static str>,
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
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let status = match kind {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::Permission => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::RateLimited => 429,
            ErrorKind::Upstream => 502,
            ErrorKind::Timeout => 504,
            ErrorKind::Internal => 500,
        };
        GatewayError {
            kind,
            status,
            message: message.into(),
            code: None,
            retry_after: None,
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }
}
