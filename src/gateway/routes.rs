//! Every route the gateway answers, in one table: a path and the methods it takes, to what handles it. A path in
//! the table with another method is a 405, any other path a 404. `OPTIONS` (CORS preflight) is answered before
//! routing, for any path.

use crate::http::Method;
use crate::inbound::Dialect;
use crate::record::Operation;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// A chat request in the client's dialect, run through the lifecycle.
    Chat(Dialect),
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/responses`: a chat in the Responses API's shape.
    Responses,
    /// `GET` / `DELETE /v1/responses/{id}`.
    StoredResponse,
    Models,
    /// `GET /v1/models/{id}`.
    Model,
    Status,
    /// `GET /_meridian/spend`: the ledger, for an admin key.
    Spend,
    /// `GET /_meridian/shadow`: shadow comparisons, for an admin key.
    Shadow,
    /// `GET /_meridian/experiments`: experiments' arms, for an admin key.
    Experiments,
    /// `GET /_meridian/` and its assets: the dashboard (the page holds no data; it asks with an admin key).
    Dashboard,
    Health,
    /// Test-only routes, present when `debug_panic_route` is configured.
    DebugPanic,
    DebugPanicAfterAwait,
}

const ROUTES: &[(&str, &[Method], Route)] = &[
    (
        "/v1/chat/completions",
        &[Method::Post],
        Route::Chat(Dialect::OpenAi),
    ),
    (
        "/v1/messages",
        &[Method::Post],
        Route::Chat(Dialect::Anthropic),
    ),
    (
        "/v1/messages/count_tokens",
        &[Method::Post],
        Route::CountTokens,
    ),
    ("/v1/embeddings", &[Method::Post], Route::Embeddings),
    ("/v1/responses", &[Method::Post], Route::Responses),
    (
        "/v1/responses/*",
        &[Method::Get, Method::Delete],
        Route::StoredResponse,
    ),
    ("/v1/models", &[Method::Get], Route::Models),
    ("/v1/models/*", &[Method::Get], Route::Model),
    ("/_meridian/status", &[Method::Get], Route::Status),
    ("/_meridian/spend", &[Method::Get], Route::Spend),
    ("/_meridian/shadow", &[Method::Get], Route::Shadow),
    ("/_meridian/experiments", &[Method::Get], Route::Experiments),
    (
        "/_meridian/",
        &[Method::Get, Method::Head],
        Route::Dashboard,
    ),
    (
        "/_meridian/assets/*",
        &[Method::Get, Method::Head],
        Route::Dashboard,
    ),
    ("/healthz", &[Method::Get, Method::Head], Route::Health),
    ("/_meridian/debug/panic", &[Method::Post], Route::DebugPanic),
    (
        "/_meridian/debug/panic-after-await",
        &[Method::Get, Method::Post],
        Route::DebugPanicAfterAwait,
    ),
];

/// The dialect errors are answered in, even before the body is read: the route's, Anthropic's for any path
/// under its endpoint (SDKs call sub-paths such as `/v1/messages/count_tokens`), and for the model catalogue the
/// dialect of the SDK asking (`anthropic`: it sent `anthropic-version`).
pub(super) fn dialect_for(path: &str, anthropic: bool) -> Dialect {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
    };
    if anthropic && (path == "/v1/models" || under("/v1/models")) {
        return Dialect::Anthropic;
    }
    if path == "/v1/responses" || under("/v1/responses") {
        return Dialect::Responses;
    }
    ROUTES
        .iter()
        .find_map(|(p, _, r)| match r {
            Route::Chat(d) if *p == path || under(p) => Some(*d),
            _ => None,
        })
        .unwrap_or(Dialect::OpenAi)
}

/// Why no route matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoRoute {
    NotFound,
    MethodNotAllowed,
}

/// The route for `method` on `path`.
pub(super) fn find(method: Method, path: &str, debug_routes: bool) -> Result<Route, NoRoute> {
    // `prefix/*` takes one or more further characters (a model id may hold `/`).
    let matches = |p: &str| match p.strip_suffix('*') {
        Some(prefix) => path
            .strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty()),
        None => p == path,
    };
    let Some((_, methods, route)) = ROUTES
        .iter()
        .find(|(p, _, r)| matches(p) && (debug_routes || !r.is_debug()))
    else {
        return Err(NoRoute::NotFound);
    };
    if methods.contains(&method) {
        Ok(*route)
    } else {
        Err(NoRoute::MethodNotAllowed)
    }
}

impl Route {
    fn is_debug(self) -> bool {
        match self {
            Route::DebugPanic | Route::DebugPanicAfterAwait => true,
            Route::Chat(_)
            | Route::CountTokens
            | Route::Embeddings
            | Route::Responses
            | Route::StoredResponse
            | Route::Models
            | Route::Model
            | Route::Status
            | Route::Spend
            | Route::Shadow
            | Route::Experiments
            | Route::Dashboard
            | Route::Health => false,
        }
    }

    /// What the request's record calls it.
    pub(super) fn operation(self) -> Operation {
        match self {
            Route::Chat(_) => Operation::Chat,
            Route::CountTokens => Operation::CountTokens,
            Route::Embeddings => Operation::Embeddings,
            Route::Responses | Route::StoredResponse => Operation::Responses,
            Route::Models | Route::Model => Operation::Models,
            Route::Status => Operation::Status,
            Route::Spend => Operation::Spend,
            Route::Shadow => Operation::Shadow,
            Route::Experiments => Operation::Experiments,
            Route::Dashboard => Operation::Dashboard,
            Route::Health => Operation::Health,
            Route::DebugPanic | Route::DebugPanicAfterAwait => Operation::Unrouted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_speak_the_dialect_of_the_path() {
        assert_eq!(dialect_for("/v1/messages", false), Dialect::Anthropic);
        assert_eq!(
            dialect_for("/v1/messages/count_tokens", false),
            Dialect::Anthropic
        );
        assert_eq!(dialect_for("/v1/messagesx", false), Dialect::OpenAi);
        assert_eq!(dialect_for("/v1/chat/completions", true), Dialect::OpenAi);
        assert_eq!(dialect_for("/anything", false), Dialect::OpenAi);
        // The catalogue answers in the asking SDK's shape.
        assert_eq!(dialect_for("/v1/models", true), Dialect::Anthropic);
        assert_eq!(dialect_for("/v1/models/claude", true), Dialect::Anthropic);
        assert_eq!(dialect_for("/v1/models/claude", false), Dialect::OpenAi);
    }

    #[test]
    fn one_table_answers_found_not_found_and_wrong_method() {
        assert_eq!(
            find(Method::Post, "/v1/messages", false),
            Ok(Route::Chat(Dialect::Anthropic))
        );
        assert_eq!(find(Method::Head, "/healthz", false), Ok(Route::Health));
        assert_eq!(find(Method::Get, "/v1/models", false), Ok(Route::Models));
        assert_eq!(
            find(Method::Get, "/v1/models/up/gpt-4o", false),
            Ok(Route::Model)
        );
        assert_eq!(
            find(Method::Post, "/v1/models/x", false),
            Err(NoRoute::MethodNotAllowed)
        );
        assert_eq!(
            find(Method::Get, "/v1/models/", false),
            Err(NoRoute::NotFound)
        );
        assert_eq!(
            find(Method::Get, "/v1/chat/completions", false),
            Err(NoRoute::MethodNotAllowed)
        );
        assert_eq!(
            find(Method::Post, "/v1/nothing", false),
            Err(NoRoute::NotFound)
        );
        assert_eq!(
            find(Method::Post, "/_meridian/debug/panic", false),
            Err(NoRoute::NotFound)
        );
        assert_eq!(
            find(Method::Post, "/_meridian/debug/panic", true),
            Ok(Route::DebugPanic)
        );
    }
}
