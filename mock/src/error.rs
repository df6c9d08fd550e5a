//! The crate's single error type: a human-readable message.

use std::fmt;

/// Error returned by configuration parsing and [`crate::start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockError(pub String);

impl MockError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        MockError(msg.into())
    }
}

impl fmt::Display for MockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MockError {}
