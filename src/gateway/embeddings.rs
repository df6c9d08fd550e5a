//! Embeddings (`POST /v1/embeddings`, OpenAI's shape) as an [`Operation`]: routed, failed over, limited and
//! recorded as chat is. OpenAI-wire deployments get the client's body as sent; Gemini and Bedrock get it
//! translated, and their answers are written back in OpenAI's shape. Embeddings are deterministic, so a model
//! with a cache answers identical requests from KV.

use super::operation::{Lookup, Operation, Prepared, Whole, Wire};
use super::*;
use crate::inbound::embeddings::{self as inbound, EmbeddingsRequest, Input};
use crate::platform::KvWriter;
use crate::providers::embeddings as provider;
use crate::record::TokenUsage;

pub(super) struct Embeddings {
    req: EmbeddingsRequest,
    /// Where a miss stores its answer: set by the lookup when the model has a cache and the caller allows it.
    store: RefCell<Option<(KvWriter, String, u64)>>,
}

impl admission::Inbound for EmbeddingsRequest {
    fn model(&self) -> &str {
        &self.model
    }

    fn stream(&self) -> bool {
        false
    }

    fn max_output_tokens(&self) -> Option<u64> {
        Some(0)
    }
}

impl Operation for Embeddings {
    fn model(&self) -> &str {
        &self.req.model
    }

    fn prepare(
        &self,
        dep: &Deployment,
        creds: &Credentials,
        now_ms: u64,
    ) -> Result<Prepared, GatewayError> {
        Ok(Prepared {
            upstream: provider::request(dep, &self.req, creds, now_ms)?,
            wire: if dep.provider.kind.is_openai_wire() {
                Wire::Passthrough
            } else {
                Wire::Translated
            },
        })
    }

    fn whole(
        &self,
        dep: &Deployment,
        wire: Wire,
        body: Vec<u8>,
        _headers: &Headers,
        _now_ms: u64,
    ) -> Result<Whole, GatewayError> {
        let (body, input) = match wire {
            Wire::Passthrough => {
                let Some(input) = provider::passthrough_usage(&body) else {
                    return Err(GatewayError::new(
                        ErrorCode::UpstreamMalformed,
                        format!(
                            "provider {} answered a malformed response (not an embeddings list)",
                            dep.provider.name
                        ),
                    ));
                };
                (body, input)
            }
            Wire::Translated => {
                let expected = match &self.req.input {
                    Input::Texts(t) => t.len(),
                    Input::Tokens => 0,
                };
                let v = provider::parse(dep, &body, expected)?;
                let counted = v.input_tokens;
                let tokens = counted.unwrap_or_else(|| provider::estimate(&self.req));
                (
                    provider::render(&v, &dep.model, self.req.encoding, tokens),
                    counted,
                )
            }
        };
        if let Some((kv, key, ttl_s)) = self.store.borrow_mut().take() {
            kv(
                key,
                String::from_utf8_lossy(&body).into_owned(),
                ttl_s,
                String::from("{}"),
            );
        }
        Ok(Whole {
            response: Response::json(200, body),
            usage: TokenUsage {
                input,
                ..Default::default()
            },
        })
    }

    async fn lookup<P: Platform>(
        &self,
        platform: &P,
        _state: &State,
        model: &Model,
        settings: CacheSettings,
        ctl: &CacheControl,
        _recorder: &Recorder,
    ) -> Result<Lookup, GatewayError> {
        if ctl.no_cache && ctl.no_store {
            return Ok(Lookup::Bypass);
        }
        let key = cache::key::embeddings_key(&ctl.namespace, &model.name, &self.req.body.object());
        if !ctl.no_cache {
            if let Some(Some(stored)) =
                deadline(platform, KV_READ_WAIT_MS, platform.kv_get(&key)).await
            {
                // Only a stored embeddings list is an answer; anything else is a miss.
                if provider::passthrough_usage(stored.as_bytes()).is_some() {
                    let mut r = Response::json(200, stored.into_bytes());
                    r.headers.insert("x-meridian-cache", "HIT");
                    r.headers.insert("x-meridian-attempts", "0");
                    return Ok(Lookup::Answered(r, "HIT"));
                }
            }
        }
        if !ctl.no_store {
            let ttl_s = ctl.ttl_s.unwrap_or(settings.ttl_s);
            *self.store.borrow_mut() = Some((platform.kv_writer(), key, ttl_s));
        }
        Ok(Lookup::Miss)
    }
}

/// `POST /v1/embeddings`.
pub(super) async fn embeddings<P: Platform>(
    config: &Config,
    platform: &P,
    state: &State,
    req: &Request,
    recorder: &Recorder,
) -> Result<Response, GatewayError> {
    let (admitted, parsed) = admit(
        config,
        platform,
        state,
        req,
        recorder,
        true,
        |req, limits| {
            limits::check_strings_in(&req.body, limits)?;
            inbound::parse(&req.body)
        },
    )
    .await?;
    let op = Embeddings {
        req: parsed,
        store: RefCell::new(None),
    };
    let result = apart(lifecycle::run(config, platform, state, &admitted, &op)).await;
    persist_estimates(platform, state, &admitted.caller.location);
    result
}
