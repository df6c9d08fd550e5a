//! Token counting (`POST /v1/messages/count_tokens`, Anthropic's shape; Claude Code asks before it sends a prompt)
//! as an [`Operation`]: routed, failed over and recorded as chat is. Exact where the provider counts (Anthropic,
//! Bedrock, Gemini); a model whose deployments cannot count (OpenAI-wire hosts have no such endpoint) gets a
//! documented estimate, marked `x-meridian-estimated: true`.

use super::operation::{Operation, Prepared, Whole, Wire};
use super::*;
use crate::providers::count_tokens as count;

pub(super) struct CountTokens {
    pub(super) m: Box<anthropic::MessagesRequest>,
}

impl Operation for CountTokens {
    fn billed(&self) -> bool {
        false
    }

    fn model(&self) -> &str {
        &self.m.model
    }

    fn prepare(
        &self,
        dep: &Deployment,
        creds: &Credentials,
        now_ms: u64,
    ) -> Result<Prepared, GatewayError> {
        let canonical = self.m.canonical.as_deref().map_err(Clone::clone);
        Ok(Prepared {
            upstream: count::request(dep, &self.m, canonical, creds, now_ms)?,
            wire: if dep.provider.kind == ProviderKind::Anthropic {
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
        let n = count::parse(&dep.provider.kind, &body)?;
        let response = match wire {
            // Anthropic's own answer, as it sent it.
            Wire::Passthrough => Response::json(200, body),
            Wire::Translated => Response::json(200, counted(n)),
        };
        Ok(Whole {
            response,
            // Counting generates nothing: no usage to record or to spend.
            usage: Default::default(),
        })
    }
}

fn counted(n: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "input_tokens": n })).unwrap_or_default()
}

/// Counts through the lifecycle; when no deployment of the model can count, estimates.
pub(super) async fn count_tokens<P: Platform>(
    config: &Config,
    platform: &P,
    state: &State,
    req: &Request,
    recorder: &Recorder,
) -> Result<Response, GatewayError> {
    let (admitted, inbound) = admit(
        config,
        platform,
        state,
        req,
        recorder,
        false,
        |req, limits| anthropic_inbound(req, limits, anthropic::Purpose::Count),
    )
    .await?;
    let ClientRequest::Anthropic(m) = inbound else {
        return Err(GatewayError::new(
            ErrorCode::InternalError,
            "a token count is always in Anthropic's shape",
        ));
    };
    let op = CountTokens { m };
    let result = apart(lifecycle::run(config, platform, state, &admitted, &op)).await;
    persist_estimates(platform, state, &admitted.caller.location);
    match result {
        Err(e) if e.code.skips_deployment() => {
            let c = op.m.canonical.as_deref().map_err(|_| e.clone())?;
            let mut resp = Response::json(200, counted(count::estimate(c)));
            resp.headers.insert("x-meridian-estimated", "true");
            Ok(resp)
        }
        other => other,
    }
}
