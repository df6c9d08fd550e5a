//! The Responses API's routes. `POST /v1/responses` is a chat in the Responses shape, run by the chat operation
//! through the one lifecycle; what it adds is the conversation store. A stored response (`store: true`, the API's
//! default) keeps its input and output items in Workers KV under the caller's key for 30 days, so that
//! `previous_response_id` continues it from any isolate and `GET` / `DELETE /v1/responses/{id}` find it.
//!
//! Why KV rather than a Durable Object: a continuation reads the store on its critical path, and KV is read at the
//! edge location the client is talking to, with no round trip to the one place a Durable Object lives; a
//! conversation's next turn comes from the same location, where a write is visible at once. The cost is KV's
//! eventual consistency elsewhere: a continuation sent through another location within about a minute of the
//! response may not find it yet (a 404 `response_not_found`, which a client may retry).

use super::*;
use crate::inbound::responses;
use crate::platform::KvWriter;
use crate::sse::SseParser;
use core::pin::Pin;
use core::task::{Context, Poll};
use futures_util::Stream;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How long a stored response is kept.
const STORE_TTL_S: u64 = 30 * 24 * 3600;

/// The caller's part of the store: a hash of its key's name (and browser token subject), never the name itself.
fn tenant(principal: &Principal) -> String {
    let d = Sha256::digest(principal.rate_key().as_bytes());
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn store_key(tenant: &str, id: &str) -> Option<String> {
    // Ids are the gateway's own: `resp_` and hex. Anything else is not one, and not looked up.
    let valid =
        id.len() <= 64 && id.starts_with("resp_") && id[5..].bytes().all(|b| b.is_ascii_hexdigit());
    valid.then(|| format!("responses/v1/{tenant}/{id}"))
}

fn not_found(id: &str) -> GatewayError {
    GatewayError::new(
        ErrorCode::ResponseNotFound,
        format!("Response with id '{id}' not found."),
    )
}

/// What the store keeps of a response: the `response` object, and the conversation up to and including it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    response: Value,
    conversation: Vec<Value>,
}

async fn load<P: Platform>(platform: &P, tenant: &str, id: &str) -> Result<Stored, GatewayError> {
    let key = store_key(tenant, id).ok_or_else(|| not_found(id))?;
    platform
        .kv_get(&key)
        .await
        .and_then(|s| serde_json::from_slice(s.as_bytes()).ok())
        .ok_or_else(|| not_found(id))
}

/// Stores a finished response: the conversation so far with its output items appended.
fn save(kv: &KvWriter, tenant: &str, response: Value, mut conversation: Vec<Value>) {
    let Some(id) = response["id"].as_str() else {
        return;
    };
    let Some(key) = store_key(tenant, id) else {
        return;
    };
    conversation.extend(response["output"].as_array().cloned().unwrap_or_default());
    let stored = Stored {
        response,
        conversation,
    };
    if let Ok(json) = serde_json::to_string(&stored) {
        kv(key, json, STORE_TTL_S, String::from("{}"));
    }
}

/// A fresh id: the time, this isolate's count, and the request, hashed.
fn new_id<P: Platform>(platform: &P, state: &State, body: &[u8]) -> String {
    let n = state.responses.get();
    state.responses.set(n + 1);
    let mut h = Sha256::new();
    h.update(platform.now_ms().to_le_bytes());
    h.update(n.to_le_bytes());
    h.update(body);
    let d = h.finalize();
    let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("resp_{hex}")
}

/// `POST /v1/responses`.
pub(super) async fn create<P: Platform>(
    config: &Config,
    platform: &P,
    state: &State,
    req: &Request,
    recorder: &Recorder,
) -> Result<Response, GatewayError> {
    let who = admission::identify(config, platform, req, recorder)?;
    let tenant = tenant(&who.principal);
    #[derive(serde::Deserialize)]
    struct Head {
        previous_response_id: Option<String>,
    }
    let previous_id = serde_json::from_slice::<Head>(&req.body)
        .ok()
        .and_then(|h| h.previous_response_id);
    let previous = match &previous_id {
        Some(id) => Some(load(platform, &tenant, id).await?),
        None => None,
    };
    let id = new_id(platform, state, &req.body);
    let (admitted, inbound) = admission::admit_identified(
        config,
        platform,
        state,
        who,
        recorder,
        true,
        |req, limits| {
            limits::check_strings_in(&req.body, limits)?;
            let conversation = previous.as_ref().map(|p| p.conversation.as_slice());
            let r = responses::parse(&req.body, conversation, id)?;
            Ok(ClientRequest::Responses(Box::new(r)))
        },
    )
    .await?;
    let stored_conversation = match &inbound {
        ClientRequest::Responses(r) if r.store => {
            let mut c = previous.map(|p| p.conversation).unwrap_or_default();
            c.extend(r.input_items.iter().cloned());
            Some(c)
        }
        _ => None,
    };
    let op = chat::Chat::new(inbound, admitted.target.drop_unsupported());
    let result = apart(lifecycle::run(config, platform, state, &admitted, &op)).await;
    persist_estimates(platform, state, &admitted.caller.location);
    let mut resp = result?;
    if let Some(conversation) = stored_conversation {
        let kv = platform.kv_writer();
        resp.body = match std::mem::replace(&mut resp.body, Body::Empty) {
            Body::Bytes(b) => {
                if let Ok(response) = serde_json::from_slice::<Value>(&b) {
                    save(&kv, &tenant, response, conversation);
                }
                Body::Bytes(b)
            }
            Body::Stream(s) => Body::Stream(Box::pin(StoreOnCompletion {
                inner: s,
                sse: SseParser::new(),
                save: Some((kv, tenant, conversation)),
            })),
            Body::Empty => Body::Empty,
        };
    }
    Ok(resp)
}

/// Passes a Responses stream through, and stores the response its `response.completed` (or `.incomplete`) event
/// carries. A failed or cut stream stores nothing.
struct StoreOnCompletion {
    inner: crate::http::ByteStream,
    sse: SseParser,
    save: Option<(KvWriter, String, Vec<Value>)>,
}

impl Stream for StoreOnCompletion {
    type Item = Result<Vec<u8>, StreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &next {
            if self.save.is_some() {
                let events = self.sse.push(chunk).unwrap_or_default();
                for ev in events {
                    let done = matches!(
                        ev.event.as_deref(),
                        Some("response.completed" | "response.incomplete")
                    );
                    if !done {
                        continue;
                    }
                    if let (Ok(v), Some((kv, tenant, conversation))) = (
                        serde_json::from_slice::<Value>(ev.data.as_bytes()),
                        self.save.take(),
                    ) {
                        save(&kv, &tenant, v["response"].clone(), conversation);
                    }
                }
            }
        }
        next
    }
}

/// `GET` / `DELETE /v1/responses/{id}`.
pub(super) async fn stored<P: Platform>(
    config: &Config,
    platform: &P,
    req: &Request,
) -> Result<Response, GatewayError> {
    let principal = authorize(config, platform, &req.headers)?;
    let tenant = tenant(&principal);
    let id = req.path.strip_prefix("/v1/responses/").unwrap_or_default();
    let found = load(platform, &tenant, id).await?;
    match req.method {
        Method::Delete => {
            let key = store_key(&tenant, id).ok_or_else(|| not_found(id))?;
            platform.kv_delete(&key).await;
            let body = serde_json::json!({"id": id, "object": "response.deleted", "deleted": true});
            Ok(Response::json(
                200,
                serde_json::to_vec(&body).unwrap_or_default(),
            ))
        }
        _ => Ok(Response::json(
            200,
            serde_json::to_vec(&found.response).unwrap_or_default(),
        )),
    }
}
