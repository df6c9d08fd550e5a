//! Wire dialects. Each dialect is a module; the request path selects one.

use bytes::Bytes;
use hyper::{HeaderMap, Method, Response};

use crate::body::MockBody;
use crate::knobs::Knobs;
use crate::{anthropic, azure, bedrock, gemini, openai};

/// What a dialect handler gets to see of a request.
pub(crate) struct RequestCtx<'a> {
    pub method: &'a Method,
    /// The raw (not percent-decoded) path.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
    pub knobs: &'a Knobs,
    /// The region's count of streams abandoned by their client.
    pub abandoned: &'a std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The region's prompt cache (Anthropic `cache_control`, Bedrock `cachePoint`).
    pub prompt_cache: &'a crate::prompt_cache::PromptCache,
}

impl RequestCtx<'_> {
    /// A header's value as text, when present, valid and non-empty.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    OpenAi,
    Azure,
    Anthropic,
    Bedrock,
    Gemini,
}

impl Dialect {
    /// Picks the dialect for a request path (the query string is not
    /// looked at). OpenAI is the fallback, so unknown paths get OpenAI-style
    /// 404s.
    pub fn for_path(path: &str) -> Dialect {
        if azure::deployment_of(path).is_some() {
            Dialect::Azure
        } else if bedrock::route_of(path).is_some()
            || bedrock::count_route_of(path).is_some()
            || bedrock::invoke_route_of(path).is_some()
        {
            Dialect::Bedrock
        } else if gemini::route_of(path).is_some()
            || gemini::count_route_of(path).is_some()
            || gemini::embed_route_of(path).is_some()
        {
            Dialect::Gemini
        } else if path.ends_with("/messages") || path.ends_with("/messages/count_tokens") {
            Dialect::Anthropic
        } else {
            Dialect::OpenAi
        }
    }

    /// Serves a request that is not subject to a fault.
    pub async fn handle(self, ctx: &RequestCtx<'_>) -> Response<MockBody> {
        match self {
            Dialect::OpenAi => openai::handle(ctx).await,
            Dialect::Azure => azure::handle(ctx).await,
            Dialect::Anthropic => anthropic::handle(ctx).await,
            Dialect::Bedrock => bedrock::handle(ctx).await,
            Dialect::Gemini => gemini::handle(ctx).await,
        }
    }

    /// The response for a `status` / `fail_next` fault. `error_body`, when
    /// given, replaces the dialect's error body verbatim.
    pub fn fault_response(self, status: u16, error_body: Option<&str>) -> Response<MockBody> {
        let body = error_body.map(|s| Bytes::from(s.to_owned()));
        match self {
            Dialect::OpenAi => openai::fault_response(status, body),
            Dialect::Azure => azure::fault_response(status, body),
            Dialect::Anthropic => anthropic::fault_response(status, body),
            Dialect::Bedrock => bedrock::fault_response(status, body),
            Dialect::Gemini => gemini::fault_response(status, body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing() {
        for (path, d) in [
            ("/v1/chat/completions", Dialect::OpenAi),
            ("/openai/v1/chat/completions", Dialect::OpenAi),
            ("/v1/models", Dialect::OpenAi),
            ("/nope", Dialect::OpenAi),
            ("/openai/deployments/gpt4o/chat/completions", Dialect::Azure),
            ("/x/openai/deployments/d/chat/completions", Dialect::Azure),
            ("/openai/deployments//chat/completions", Dialect::OpenAi),
            ("/openai/deployments/d/embeddings", Dialect::Azure),
            ("/v1/messages", Dialect::Anthropic),
            ("/anthropic/v1/messages", Dialect::Anthropic),
            ("/model/a.b-v1%3A0/converse", Dialect::Bedrock),
            ("/model/a.b-v1%3A0/converse-stream", Dialect::Bedrock),
            ("/model/arn:aws:x/y/converse", Dialect::Bedrock),
            ("/model/x/invoke", Dialect::Bedrock),
            (
                "/v1beta/models/gemini-2.0-flash:generateContent",
                Dialect::Gemini,
            ),
            ("/v1/models/g:streamGenerateContent", Dialect::Gemini),
            ("/v1beta/models/g:countTokens", Dialect::Gemini),
            ("/v1beta/g:countTokens", Dialect::OpenAi),
            ("/model/m/count-tokens", Dialect::Bedrock),
            (
                "/model/amazon.titan-embed-text-v2%3A0/invoke",
                Dialect::Bedrock,
            ),
            ("/v1beta/models/e:batchEmbedContents", Dialect::Gemini),
            ("/v1/embeddings", Dialect::OpenAi),
            ("/v1/messages/count_tokens", Dialect::Anthropic),
        ] {
            assert_eq!(Dialect::for_path(path), d, "{path}");
        }
    }
}
