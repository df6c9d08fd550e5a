//! Wire dialects. Each dialect is a module; the request path selects one.
//!
//! Only the OpenAI Chat Completions dialect exists today. New dialects
//! (Azure OpenAI, Anthropic Messages, Bedrock Converse, Gemini) get a module
//! of their own plus a variant here and a rule in [`Dialect::for_path`].

use bytes::Bytes;
use hyper::{HeaderMap, Method, Response};

use crate::body::MockBody;
use crate::knobs::Knobs;
use crate::openai;

/// What a dialect handler gets to see of a request.
pub(crate) struct RequestCtx<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    #[allow(dead_code)] // for dialects that authenticate or version by header
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
    pub knobs: &'a Knobs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    OpenAi,
}

impl Dialect {
    /// Picks the dialect for a request path. OpenAI is the fallback, so
    /// unknown paths get OpenAI-style 404s.
    pub fn for_path(_path: &str) -> Dialect {
        Dialect::OpenAi
    }

    /// Serves a request that is not subject to a fault.
    pub async fn handle(self, ctx: &RequestCtx<'_>) -> Response<MockBody> {
        match self {
            Dialect::OpenAi => openai::handle(ctx).await,
        }
    }

    /// The response for a `status` / `fail_next` fault. `error_body`, when
    /// given, replaces the dialect's error body verbatim.
    pub fn fault_response(self, status: u16, error_body: Option<&str>) -> Response<MockBody> {
        match self {
            Dialect::OpenAi => {
                openai::fault_response(status, error_body.map(|s| Bytes::from(s.to_owned())))
            }
        }
    }
}
