//! Shadows: after a chat request's answer is committed, the shadows its model samples for it are asked the same
//! question in the background (`wait_until`). The client's answer is not touched: the bytes it gets are copied as
//! they pass (a sampled request's only, up to [`MAX_CAPTURE`]), its cache entry, rate limits and budget are its
//! own. A shadow call goes through the same lifecycle (its model alone: no fallbacks, no hedges, no cache), is
//! capped per key and UTC day by the key's ledger object (a worst-case reservation first, settled to the cost),
//! and its outcome (both sides' timings, tokens and cost, and how the answers agree) is booked there.

use super::*;
use crate::shadow::{self as pure, Outcome, Sample, Side, Skip};
use futures_channel::oneshot;

/// The most of a primary answer kept for comparison; a longer answer is compared as unread.
const MAX_CAPTURE: usize = 4 * 1024 * 1024;
/// The most of each answer a kept sample holds, in characters.
const SAMPLE_CHARS: usize = 2000;

/// What work after the answer needs to own: it outlives the request's borrows.
pub(super) struct Owned<P> {
    pub(super) config: Rc<Config>,
    pub(super) platform: Rc<P>,
    pub(super) state: Rc<State>,
}

impl<P> Clone for Owned<P> {
    fn clone(&self) -> Self {
        Owned {
            config: Rc::clone(&self.config),
            platform: Rc::clone(&self.platform),
            state: Rc::clone(&self.state),
        }
    }
}

/// The primary's answer as its client got it, once its record is finished.
struct Primary {
    bytes: Option<Vec<u8>>,
    side: Side,
}

/// Shadows the answer `resp` to an admitted chat request, when its model samples it: returns at once, the calls
/// run in the background.
pub(super) fn after<P: Platform + 'static>(
    owned: &Owned<P>,
    admitted: &Admitted<'_>,
    req: &Request,
    inbound: &ClientRequest,
    resp: &mut Response,
) {
    let Target::Alias(model) = admitted.target else {
        return;
    };
    if model.shadows.is_empty() {
        return;
    }
    let recorder = admitted.caller.recorder;
    // Only an answer the model's own deployments gave (not the cache's, not a fallback's) is compared.
    if recorder.read(|r| r.fallback.is_some() || matches!(r.cache, Some("HIT" | "COALESCED"))) {
        return;
    }
    let wire = match inbound.dialect() {
        Dialect::OpenAi => pure::Wire::OpenAi,
        Dialect::Anthropic => pure::Wire::Anthropic,
        Dialect::Responses => return,
    };
    let sampled: Vec<&crate::config::shadow::Shadow> = model
        .shadows
        .iter()
        .filter(|s| pure::sampled(&s.model, &req.body, s.share))
        .collect();
    if sampled.is_empty() {
        return;
    }
    let key = admitted.principal.key.name.clone();
    let day = crate::ledger::day_of(owned.platform.now_ms());
    let skipped = |s: &crate::config::shadow::Shadow, reason| Outcome::Skipped {
        primary: model.name.clone(),
        shadow: s.model.clone(),
        reason,
    };
    let caller = &admitted.caller;
    if caller.cache.no_store {
        let outcomes = sampled.iter().map(|s| skipped(s, Skip::NoStore)).collect();
        book(owned, &key, &day, outcomes);
        return;
    }
    let mut outcomes = Vec::new();
    let mut calls = Vec::new();
    for s in sampled {
        let reachable = owned.config.model(&s.model).is_some_and(|m| {
            m.deployments().iter().any(|d| {
                residency_ok(d, caller.key_residency)
                    && residency_ok(d, &caller.requested_residency)
            })
        });
        if reachable {
            calls.push(s.clone());
        } else {
            outcomes.push(skipped(s, Skip::Residency));
        }
    }
    if !outcomes.is_empty() {
        book(owned, &key, &day, std::mem::take(&mut outcomes));
    }
    if calls.is_empty() {
        return;
    }
    // The client's bytes, copied as they pass; handed over with the record once it is finished.
    let captured = Rc::new(RefCell::new(Some(Vec::new())));
    resp.body = match std::mem::replace(&mut resp.body, Body::Empty) {
        Body::Stream(s) => Body::Stream(Box::pin(Capture {
            inner: s,
            into: captured.clone(),
        })),
        Body::Bytes(b) => {
            *captured.borrow_mut() = (b.len() <= MAX_CAPTURE).then(|| b.clone());
            Body::Bytes(b)
        }
        Body::Empty => Body::Empty,
    };
    let (tx, rx) = oneshot::channel::<Primary>();
    let tx = RefCell::new(Some(tx));
    recorder.add_sink(Rc::new(move |r: &Record| {
        if let Some(tx) = tx.borrow_mut().take() {
            let complete = r.end == End::Complete && r.error.is_none();
            let _ = tx.send(Primary {
                bytes: captured.borrow_mut().take().filter(|_| complete),
                side: side_of(r),
            });
        }
    }));
    let job = Job {
        key,
        day,
        primary: model.name.clone(),
        wire,
        stream: inbound.stream(),
        structured: structured(inbound),
        max_output: inbound.max_output_tokens(),
        req: Request {
            method: req.method,
            path: req.path.clone(),
            query: req.query.clone(),
            headers: req.headers.clone(),
            body: req.body.clone(),
            location: caller.location.clone(),
        },
        requested_residency: caller.requested_residency.clone(),
        token: admitted.principal.token.clone(),
    };
    let owned = owned.clone();
    (owned.platform.background())(Box::pin(async move {
        let results =
            futures_util::future::join_all(calls.iter().map(|s| apart(call(&owned, &job, s))))
                .await;
        let primary = rx.await.ok();
        let outcomes = calls
            .iter()
            .zip(results)
            .map(|(s, shadow)| match shadow {
                Err(reason) => Outcome::Skipped {
                    primary: job.primary.clone(),
                    shadow: s.model.clone(),
                    reason,
                },
                Ok((side, bytes, reserved_usd)) => pair(
                    &job,
                    s,
                    primary.as_ref(),
                    side,
                    bytes,
                    reserved_usd,
                    owned.platform.now_ms(),
                ),
            })
            .collect();
        book(&owned, &job.key, &job.day, outcomes);
    }));
}

/// What a shadow call needs of its request, owned.
struct Job {
    key: String,
    day: String,
    primary: String,
    wire: pure::Wire,
    stream: bool,
    structured: bool,
    /// The client's `max_tokens` (or kin): what a shadow call reserves for its answer.
    max_output: Option<u64>,
    req: Request,
    requested_residency: Vec<String>,
    token: Option<crate::browser_token::Claims>,
}

/// Whether the request asks for JSON output (`response_format` of type `json_object` or `json_schema`).
fn structured(inbound: &ClientRequest) -> bool {
    #[derive(serde::Deserialize)]
    struct Format {
        #[serde(rename = "type")]
        kind: String,
    }
    inbound
        .body()
        .member("response_format")
        .and_then(|f| serde_json::from_slice::<Format>(f.as_bytes()).ok())
        .is_some_and(|f| f.kind == "json_object" || f.kind == "json_schema")
}

pub(super) fn side_of(r: &Record) -> Side {
    Side {
        ttft_ms: r.ttfc_ms,
        total_ms: (r.end == End::Complete).then_some(r.total_ms),
        input_tokens: r.usage.input.unwrap_or(0),
        output_tokens: r.usage.output.unwrap_or(0),
        cost_usd: r.cost_usd(),
        error: match (r.error, r.end) {
            (Some(e), _) => Some(e.as_str().to_owned()),
            (None, End::ClientGone) => Some("client_gone".to_owned()),
            (None, End::Failed) => Some("stream_failed".to_owned()),
            (None, End::Complete) => None,
        },
    }
}

/// One shadow call: reserved against the shadow's daily cap, then run through the lifecycle and read to its end.
/// `Err`: skipped (the cap is spent, or the ledger could not say).
async fn call<P: Platform>(
    owned: &Owned<P>,
    job: &Job,
    shadow: &crate::config::shadow::Shadow,
) -> Result<(Side, Option<Vec<u8>>, f64), Skip> {
    let (config, platform) = (&*owned.config, &*owned.platform);
    let model = config.model(&shadow.model).ok_or(Skip::Residency)?;
    let Some(gkey) = config.keys.iter().find(|k| k.name == job.key) else {
        return Err(Skip::Budget);
    };
    let reserve_usd = worst_cost_micro(
        model.deployments().iter(),
        job.req.body.len(),
        job.max_output,
    ) as f64
        / 1e6;
    let ask = crate::platform::ShadowAsk {
        day: job.day.clone(),
        primary: job.primary.clone(),
        shadow: shadow.model.clone(),
        usd: reserve_usd,
        max_usd: shadow.max_usd_per_day,
    };
    match platform
        .shadow_reserve(&admission::ledger_name(&job.key), ask)
        .await
    {
        Ok(true) => {}
        Ok(false) => return Err(Skip::Budget),
        Err(e) => {
            (platform.logger())(&format!(
                "meridian: shadow not sent, the ledger cannot reserve: {e}"
            ));
            return Err(Skip::Budget);
        }
    }
    let dialect = match job.wire {
        pure::Wire::OpenAi => Dialect::OpenAi,
        pure::Wire::Anthropic => Dialect::Anthropic,
    };
    let mut record = Record::new(platform.now_ms(), dialect.name(), Operation::Chat);
    record.shadow_of = Some(job.primary.clone());
    record.key = Some(job.key.clone());
    let log = platform.logger();
    let recorder = Recorder::new(
        record,
        platform.clock(),
        vec![Rc::new(move |r: &Record| log(&r.log_line())) as record::Sink],
    );
    let inbound = match dialect {
        Dialect::Anthropic => {
            anthropic_inbound(&job.req, &config.limits, anthropic::Purpose::Create)
        }
        _ => openai_inbound(&job.req.body, &config.limits),
    };
    let result = match inbound {
        Ok(inbound) => {
            let admitted = Admitted {
                principal: crate::auth::Principal {
                    key: gkey,
                    token: job.token.clone(),
                },
                target: Target::Alias(model),
                caller: Caller {
                    location: job.req.location.clone(),
                    key_residency: &gkey.residency,
                    require_price: true,
                    requested_residency: job.requested_residency.clone(),
                    body_len: job.req.body.len(),
                    cache: CacheControl {
                        no_cache: true,
                        no_store: true,
                        ..CacheControl::default()
                    },
                    recorder: &recorder,
                },
                rule: None,
                shadow: true,
            };
            let op = chat::Chat::new(inbound, model.drop_unsupported);
            lifecycle::run(config, platform, &owned.state, &admitted, &op).await
        }
        Err(e) => Err(e),
    };
    let bytes = match result {
        Ok(resp) => {
            recorder.update(|r| r.status = resp.status);
            match resp.body.collect_limited(MAX_CAPTURE).await {
                Ok(b) => Some(b),
                Err(_) => {
                    recorder.stream_failed(ErrorCode::UpstreamError);
                    None
                }
            }
        }
        Err(e) => {
            recorder.update(|r| r.error = Some(e.code));
            None
        }
    };
    recorder.finish(if bytes.is_some() {
        End::Complete
    } else {
        End::Failed
    });
    Ok((recorder.read(side_of), bytes, reserve_usd))
}

/// The outcome of one shadow call against the primary's answer.
fn pair(
    job: &Job,
    s: &crate::config::shadow::Shadow,
    primary: Option<&Primary>,
    shadow_side: Side,
    shadow_bytes: Option<Vec<u8>>,
    reserved_usd: f64,
    now: u64,
) -> Outcome {
    let read =
        |bytes: Option<&Vec<u8>>| bytes.and_then(|b| pure::read_answer(job.wire, job.stream, b));
    let p = read(primary.and_then(|p| p.bytes.as_ref()));
    let sh = read(shadow_bytes.as_ref());
    let agreement = match (&p, &sh) {
        (Some(p), Some(sh)) => Some(pure::agreement(p, sh, job.structured)),
        _ => None,
    };
    let cut = |t: &str| t.chars().take(SAMPLE_CHARS).collect::<String>();
    let sample = (s.keep_samples > 0).then(|| Sample {
        at: now,
        primary: p.as_ref().map_or_else(String::new, |a| cut(&a.text)),
        shadow: sh.as_ref().map_or_else(String::new, |a| cut(&a.text)),
    });
    Outcome::Pair {
        primary: job.primary.clone(),
        shadow: s.model.clone(),
        primary_side: primary.map_or_else(
            || Side {
                error: Some("unrecorded".to_owned()),
                ..Side::default()
            },
            |p| p.side.clone(),
        ),
        shadow_side,
        agreement,
        reserved_usd,
        sample,
        keep_samples: s.keep_samples,
    }
}

/// Books outcomes to the key's ledger object, with the next batch of its entries.
pub(super) fn book<P: Platform>(owned: &Owned<P>, key: &str, day: &str, outcomes: Vec<Outcome>) {
    if outcomes.is_empty() {
        return;
    }
    let entry = crate::ledger::Entry {
        day: day.to_owned(),
        model: String::new(),
        principal: String::new(),
        spend: crate::ledger::Spend::default(),
        outcomes,
    };
    admission::Books::new(&*owned.platform, &owned.state).add(
        &admission::ledger_name(key),
        entry,
        crate::ledger::Reserved::default(),
    );
}

/// A streamed answer's bytes copied as they pass to the client, up to [`MAX_CAPTURE`] (beyond it, nothing is
/// kept: the answer is compared as unread).
struct Capture {
    inner: crate::http::ByteStream,
    into: Rc<RefCell<Option<Vec<u8>>>>,
}

impl futures_util::Stream for Capture {
    type Item = Result<Vec<u8>, StreamError>;

    fn poll_next(
        mut self: core::pin::Pin<&mut Self>,
        cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        if let core::task::Poll::Ready(Some(Ok(chunk))) = &next {
            let mut into = self.into.borrow_mut();
            if let Some(buf) = into.as_mut() {
                if buf.len() + chunk.len() <= MAX_CAPTURE {
                    buf.extend_from_slice(chunk);
                } else {
                    *into = None;
                }
            }
        }
        next
    }
}
