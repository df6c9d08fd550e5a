//! The one request lifecycle, for every operation: resolve the model, plan the deployments for this location
//! (routing, health, residency), look up the cache and coalesce, then try deployments with one first-content
//! deadline, failover and hedging, skipping those that cannot express the request, until one commits. Every step
//! is written to the request's record. What differs per endpoint comes from its [`Operation`].

use super::operation::{Lookup, Operation, Prepared};
use super::*;

pub(super) fn credentials<P: Platform>(
    provider: &Provider,
    platform: &P,
) -> Result<Credentials, GatewayError> {
    let secret = |name: &str| {
        platform.secret(name).ok_or_else(|| {
            GatewayError::new(
                ErrorCode::MissingProviderKey,
                format!(
                    "provider {}: worker secret {name} is not set",
                    provider.name
                ),
            )
        })
    };
    Ok(match &provider.kind {
        ProviderKind::Bedrock {
            credentials: names, ..
        } => Credentials::Aws(sigv4::Credentials {
            access_key_id: secret(&names.access_key_id)?,
            secret_access_key: secret(&names.secret_access_key)?,
            session_token: names.session_token.as_deref().map(secret).transpose()?,
        }),
        ProviderKind::OpenAi
        | ProviderKind::Azure { .. }
        | ProviderKind::Anthropic
        | ProviderKind::Gemini => match &provider.api_key_secret {
            Some(name) => Credentials::ApiKey(secret(name)?),
            None => Credentials::None,
        },
    })
}

/// One request, tried on deployments in the order routing chose, until one commits.
struct Call<'a, P, O> {
    config: &'a Config,
    platform: &'a P,
    state: &'a State,
    op: &'a O,
    shape: Shape,
    /// The plan hedges: an attempt may lose and be dropped, and must then be cancelled at the provider.
    hedging: bool,
    recorder: &'a Recorder,
}

/// What became of a hedge's second deployment.
enum Second {
    /// The first answered (or failed) before the hedge was due.
    NotNeeded,
    /// `order[j]` ran alongside the first.
    Ran(usize),
    /// None of the deployments left could serve the request.
    NoneLeft,
}

/// One model a request may be served by: the one asked for, or one of its fallbacks.
struct Link<'a> {
    name: &'a str,
    deps: &'a [Deployment],
    hedge_budget: Option<f64>,
    max_attempts: usize,
    objective: crate::config::Objective,
    /// Which of `deps` the caller may reach (residency, and a price when the key requires one).
    allowed: Vec<bool>,
}

/// How trying one model ended without an answer.
enum Exhausted {
    /// Every deployment failed in a way another model may not meet: try the next.
    Next,
    /// A failure any model would meet (the request itself), or the overall deadline: the request ends.
    Stop(GatewayError),
}

/// Runs an admitted request of any operation to its committed response (or its error).
pub(super) async fn run<P: Platform, O: Operation>(
    config: &Config,
    platform: &P,
    state: &State,
    admitted: &Admitted<'_>,
    op: &O,
) -> Result<Response, GatewayError> {
    let caller = &admitted.caller;
    let recorder = caller.recorder;
    recorder.update(|r| r.colo = caller.location.colo.clone());
    let target = &admitted.target;
    let allowed_of = |deps: &[Deployment]| -> (Vec<bool>, bool) {
        let resident: Vec<bool> = deps
            .iter()
            .map(|d| {
                residency_ok(d, caller.key_residency)
                    && residency_ok(d, &caller.requested_residency)
            })
            .collect();
        let allowed = deps
            .iter()
            .zip(&resident)
            .map(|(d, ok)| *ok && (!caller.require_price || d.price.is_some()))
            .collect();
        (allowed, resident.contains(&true))
    };
    // The model asked for, then its fallbacks (a `provider/model` asked for directly has none).
    // A shadow call asks its model alone, unhedged: what that model answers, at one call's cost.
    let mut chain: Vec<Link> = match target {
        Target::Alias(m) => m
            .with_fallbacks(config)
            .take(if admitted.shadow { 1 } else { usize::MAX })
            .map(|m| Link {
                name: &m.name,
                deps: m.deployments(),
                hedge_budget: m.hedge_budget.filter(|_| !admitted.shadow),
                max_attempts: m.max_attempts,
                objective: m.objective,
                allowed: Vec::new(),
            })
            .collect(),
        Target::Direct(d) => vec![Link {
            name: op.model(),
            deps: d,
            hedge_budget: None,
            max_attempts: 1,
            objective: crate::config::Objective::Latency,
            allowed: Vec::new(),
        }],
    };
    let mut priced_out = false;
    for link in &mut chain {
        let (allowed, resident) = allowed_of(link.deps);
        priced_out |= resident && !allowed.contains(&true);
        link.allowed = allowed;
    }
    if !chain.iter().any(|l| l.allowed.contains(&true)) {
        if priced_out {
            return Err(GatewayError::new(
                ErrorCode::PriceRequired,
                format!(
                    "this key requires a price and no deployment of `{}` it may use has one (configure `price` on the deployment)",
                    op.model()
                ),
            ));
        }
        let mut wanted: Vec<&str> = caller.key_residency.iter().map(String::as_str).collect();
        wanted.extend(caller.requested_residency.iter().map(String::as_str));
        return Err(GatewayError::new(
            ErrorCode::ResidencyUnsatisfiable,
            format!(
                "no deployment of `{}` satisfies the residency policy ({}); refusing to send it elsewhere",
                op.model(),
                wanted.join(", ")
            ),
        ));
    }
    // A model with one deployment has nothing to choose: its first request in a fresh isolate does not wait for
    // what KV knows (a cold KV read is a large share of a cold start).
    if chain.iter().map(|l| l.deps.len()).sum::<usize>() > 1 {
        load_estimates(platform, state, &caller.location).await;
    }
    let shape = Shape {
        stream: op.stream(),
        bucket: estimator::bucket(caller.body_len),
    };
    let mut cache_status = None;
    if let Target::Alias(model) = target {
        if let Some(settings) = model.cache {
            let lookup = op.lookup(platform, state, model, settings, &caller.cache, recorder);
            match apart(lookup).await? {
                Lookup::Answered(mut resp, how) => {
                    let ttfc = recorder.elapsed_ms();
                    recorder.update(|r| {
                        r.cache = Some(how);
                        r.ttfc_ms = Some(ttfc);
                    });
                    resp.headers
                        .insert("x-meridian-colo", colo(&caller.location));
                    return Ok(resp);
                }
                Lookup::Bypass => cache_status = Some("BYPASS"),
                Lookup::Miss => cache_status = Some("MISS"),
            }
        }
    }
    recorder.update(|r| r.cache = cache_status);
    let started_ms = platform.now_ms();
    let mut tried = Tried::default();
    for (k, link) in chain.iter().enumerate() {
        if !link.allowed.contains(&true) {
            continue;
        }
        let policy = Policy {
            exploration: config.routing.exploration,
            hedge_budget: link.hedge_budget,
            objective: link.objective,
        };
        let plan = state.router.borrow_mut().plan(
            link.deps,
            &link.allowed,
            &caller.location,
            shape,
            policy,
            platform.now_ms(),
        );
        let call = Call {
            config,
            platform,
            state,
            op,
            shape,
            hedging: plan.hedge_after_ms.is_some(),
            recorder,
        };
        match try_model(&call, link, &plan, started_ms, &mut tried).await {
            Ok((mut resp, used)) => {
                annotate(&mut resp, used, tried.attempts, &caller.location);
                // Why this deployment: the plan's reason for its model's first, else how the request got there.
                let first = &link.deps[plan.order[0]];
                let by_rule = admitted.rule.map(|r| format!("rule:{r}"));
                let reason = if k > 0 {
                    "fallback"
                } else if std::ptr::eq(used, first) {
                    by_rule.as_deref().unwrap_or(plan.reason.as_str())
                } else if recorder.read(|r| {
                    r.attempts
                        .iter()
                        .any(|a| a.outcome == crate::record::AttemptOutcome::Lost)
                }) {
                    "hedge"
                } else {
                    "failover"
                };
                resp.headers.insert("x-meridian-route-reason", reason);
                resp.headers.insert("x-meridian-model", link.name);
                if let Some(status) = cache_status {
                    resp.headers.insert("x-meridian-cache", status);
                }
                let ttfc = recorder.elapsed_ms();
                recorder.update(|r| {
                    r.served_by = Some(used.id());
                    if op.billed() {
                        r.pricing = used.price.map_or(Pricing::Unpriced, Pricing::At);
                    }
                    r.region = Some(used.region.clone());
                    r.ttfc_ms = Some(ttfc);
                    if k > 0 {
                        r.fallback = Some(link.name.to_owned());
                    }
                });
                return Ok(resp);
            }
            Err(Exhausted::Stop(e)) => {
                op.failed(&e);
                return Err(e);
            }
            Err(Exhausted::Next) => {}
        }
    }
    // Only when no deployment could even express the request is that the client's problem.
    let err = match (tried.last, tried.unsupported) {
        (Some(e), _) | (None, Some(e)) => e,
        (None, None) => GatewayError::new(ErrorCode::DeadlineExceeded, "overall deadline exceeded"),
    };
    op.failed(&err);
    Err(err)
}

/// What the attempts so far left: how many, the last failure and the last reason a deployment was skipped.
#[derive(Default)]
struct Tried {
    attempts: usize,
    last: Option<GatewayError>,
    unsupported: Option<GatewayError>,
}

/// Tries one model's deployments in the plan's order, with failover and hedging, until one commits.
async fn try_model<'d, P: Platform, O: Operation>(
    call: &Call<'_, P, O>,
    link: &'d Link<'d>,
    plan: &crate::routing::Plan,
    started_ms: u64,
    tried: &mut Tried,
) -> Result<(Response, &'d Deployment), Exhausted> {
    let (platform, config) = (call.platform, call.config);
    let order: Vec<&Deployment> = plan.order.iter().map(|&i| &link.deps[i]).collect();
    let mut at = 0;
    let mut attempts = 0;
    while attempts < link.max_attempts {
        // Failover never outlives the overall deadline.
        if tried.attempts > 0
            && platform.now_ms().saturating_sub(started_ms) >= config.timeouts.total_ms
        {
            return Err(Exhausted::Stop(tried.last.take().unwrap_or_else(|| {
                GatewayError::new(ErrorCode::DeadlineExceeded, "overall deadline exceeded")
            })));
        }
        let ready = call
            .next_ready(&order, at, &mut tried.unsupported, &mut tried.last)
            .map_err(Exhausted::Stop)?;
        let Some((i, first)) = ready else {
            break;
        };
        let dep = order[i];
        at = i + 1;
        attempts += 1;
        tried.attempts += 1;
        let result = match plan.hedge_after_ms {
            Some(after_ms) if attempts == 1 && link.max_attempts > 1 => {
                let hedged = call.hedged(
                    (dep, first),
                    (&order, at),
                    after_ms,
                    (&mut tried.unsupported, &mut tried.last),
                );
                let (r, second) = apart(hedged).await;
                match second {
                    // The second deployment was used up by the hedge: failover continues after it.
                    Second::Ran(j) => {
                        at = j + 1;
                        attempts += 1;
                        tried.attempts += 1;
                    }
                    // The hedge looked through every deployment left and none could serve.
                    Second::NoneLeft => at = order.len(),
                    Second::NotNeeded => {}
                }
                r
            }
            _ => call.attempt(dep, first).await.map(|r| (r, dep)),
        };
        match result {
            Ok(answered) => return Ok(answered),
            // A failure another deployment would meet too ends the request; any other is this deployment's.
            Err(e) if !e.fails_over() => return Err(Exhausted::Stop(e)),
            Err(e) => tried.last = Some(e),
        }
    }
    Err(Exhausted::Next)
}

impl<P: Platform, O: Operation> Call<'_, P, O> {
    /// The first deployment from `order[from..]` that can express the request, with its request. The ones that
    /// cannot are skipped and recorded (the last reason kept for the client, should none remain); one whose
    /// credentials are missing is a failed attempt. `Err` only for a request that is invalid everywhere.
    fn next_ready(
        &self,
        order: &[&Deployment],
        from: usize,
        unsupported: &mut Option<GatewayError>,
        last: &mut Option<GatewayError>,
    ) -> Result<Option<(usize, Prepared)>, GatewayError> {
        for (i, dep) in order.iter().enumerate().skip(from) {
            let prepared = credentials(&dep.provider, self.platform)
                .and_then(|creds| self.op.prepare(dep, &creds, self.platform.now_ms()));
            match prepared {
                Ok(mut p) => {
                    p.upstream.cancel_on_drop |= self.hedging;
                    return Ok(Some((i, p)));
                }
                Err(e) => {
                    let skipped = e.code.skips_deployment();
                    if !skipped && !e.fails_over() {
                        return Err(e);
                    }
                    self.recorder.update(|r| {
                        r.attempts.push(record::Attempt {
                            deployment: dep.id(),
                            region: dep.region.clone(),
                            outcome: if skipped {
                                record::AttemptOutcome::Skipped
                            } else {
                                record::AttemptOutcome::Failed
                            },
                            code: Some(e.code),
                            ms: 0,
                        })
                    });
                    if skipped {
                        *unsupported = Some(e);
                    } else {
                        *last = Some(e);
                    }
                }
            }
        }
        Ok(None)
    }

    /// Runs `first`; if it has produced nothing after `after_ms`, runs the next deployment of `order[from..]` that
    /// can serve alongside (looked for only then, so a request that the first answers in time never records the
    /// others), and the first to produce content wins (the other is dropped, which cancels its fetch).
    async fn hedged<'d>(
        &self,
        (first, first_req): (&'d Deployment, Prepared),
        (order, from): (&[&'d Deployment], usize),
        after_ms: u64,
        (unsupported, last): (&mut Option<GatewayError>, &mut Option<GatewayError>),
    ) -> (Result<(Response, &'d Deployment), GatewayError>, Second) {
        let a = pin!(self.attempt(first, first_req));
        let timer = pin!(self.platform.sleep(after_ms));
        let a = match select(a, timer).await {
            Either::Left((r, _)) => return (r.map(|r| (r, first)), Second::NotNeeded),
            Either::Right((_, a)) => a,
        };
        // A request no other deployment can take is not hedged; failover meets the same answer later.
        let (j, second_req) = match self.next_ready(order, from, unsupported, last) {
            Ok(Some(next)) => next,
            Ok(None) => return (a.await.map(|r| (r, first)), Second::NoneLeft),
            Err(_) => return (a.await.map(|r| (r, first)), Second::NotNeeded),
        };
        let second = order[j];
        let hedge_start = self.platform.now_ms();
        self.state.router.borrow_mut().hedged(second);
        let b = pin!(self.attempt(second, second_req));
        // The loser took at least as long as it ran, which routing learns if that is slower than it expected.
        let lost = |dep: &Deployment, started_ms: u64| {
            let now = self.platform.now_ms();
            let ms = now.saturating_sub(started_ms);
            self.recorder.update(|r| {
                r.attempts.push(record::Attempt {
                    deployment: dep.id(),
                    region: dep.region.clone(),
                    outcome: record::AttemptOutcome::Lost,
                    code: None,
                    ms,
                })
            });
            self.state
                .router
                .borrow_mut()
                .at_least(dep, self.shape, ms as f64, now);
        };
        match select(a, b).await {
            Either::Left((Ok(r), _loser)) => {
                lost(second, hedge_start);
                (Ok((r, first)), Second::Ran(j))
            }
            Either::Right((Ok(r), _loser)) => {
                lost(first, hedge_start.saturating_sub(after_ms));
                (Ok((r, second)), Second::Ran(j))
            }
            Either::Left((Err(_), b)) => (b.await.map(|r| (r, second)), Second::Ran(j)),
            Either::Right((Err(_), a)) => (a.await.map(|r| (r, first)), Second::Ran(j)),
        }
    }

    /// One deployment, up to the point where the response is committed (headers and, for streams, the first
    /// content), recording what was learned.
    async fn attempt(&self, dep: &Deployment, req: Prepared) -> Result<Response, GatewayError> {
        let now = self.platform.now_ms();
        self.state.router.borrow_mut().started(dep, now);
        let result = if self.op.stream() {
            apart(self.streamed(dep, req, now)).await
        } else {
            apart(self.whole(dep, req, now)).await
        };
        let end = self.platform.now_ms();
        self.recorder.update(|r| {
            r.attempts.push(record::Attempt {
                deployment: dep.id(),
                region: dep.region.clone(),
                outcome: match &result {
                    Ok(_) => record::AttemptOutcome::Committed,
                    Err(_) => record::AttemptOutcome::Failed,
                },
                code: result.as_ref().err().map(|e| e.code),
                ms: end.saturating_sub(now),
            })
        });
        let mut router = self.state.router.borrow_mut();
        match &result {
            Ok((_, latency_ms)) => router.success(dep, self.shape, *latency_ms, end),
            Err(e) if e.fails_over() => {
                let retry_after_ms = e
                    .retry_after
                    .as_deref()
                    .and_then(|s| s.parse::<u64>().ok())
                    .map(|s| s.saturating_mul(1000));
                router.failure(dep, &e.message, retry_after_ms, end);
            }
            // The request was at fault, not the deployment.
            Err(_) => {}
        }
        result.map(|(r, _)| r)
    }

    /// A streamed exchange: headers and the first content within the first-content deadline, then the
    /// operation's stream, bounded by its silence. The latency learned is to the first content.
    async fn streamed(
        &self,
        dep: &Deployment,
        req: Prepared,
        start_ms: u64,
    ) -> Result<(Response, f64), GatewayError> {
        let (config, platform) = (self.config, self.platform);
        let until = Deadline {
            start_ms,
            ms: config.timeouts.first_byte_ms,
        };
        let resp = match until.run(platform, platform.fetch(req.upstream)).await {
            None => return Err(timeout(dep, until.ms)),
            Some(Err(e)) => return Err(unreachable(dep, &e)),
            // Once begun, a stream is bounded by its silence. Every layer above may poll once more after the
            // end; fused, the provider's body stays ended.
            Some(Ok(r)) => UpstreamResponse {
                body: Box::pin(IdleLimit::new(
                    Box::pin(r.body.fuse()),
                    config.timeouts.idle_ms,
                    platform.timer(),
                )),
                ..r
            },
        };
        if !(200..300).contains(&resp.status) {
            let UpstreamResponse {
                status,
                headers,
                body,
            } = resp;
            let body = until
                .run(platform, read_all(body, MAX_ERROR_BODY))
                .await
                .and_then(Result::ok)
                .unwrap_or_default();
            return Err(provider_error(dep, platform, status, &headers, &body));
        }
        let stream = self
            .op
            .stream_from(platform, dep, req.wire, until, resp, self.recorder);
        let r = apart(stream).await?;
        Ok((r, platform.now_ms().saturating_sub(start_ms) as f64))
    }

    /// A non-streamed exchange: fetched and read whole (one platform step), then the operation's check and
    /// rendering. The latency learned is to the whole answer, which for a non-streamed answer arrives with (or
    /// just after) the headers.
    async fn whole(
        &self,
        dep: &Deployment,
        req: Prepared,
        start_ms: u64,
    ) -> Result<(Response, f64), GatewayError> {
        let (config, platform) = (self.config, self.platform);
        let (first_byte, total) = (config.timeouts.first_byte_ms, config.timeouts.total_ms);
        let resp = match platform
            .fetch_whole(req.upstream, first_byte, total, MAX_RESPONSE_BODY)
            .await
        {
            Err(NoResponse::Timeout) => return Err(timeout(dep, first_byte)),
            Err(NoResponse::Failed(e)) => return Err(unreachable(dep, &e)),
            Ok(r) => r,
        };
        let latency_ms = platform.now_ms().saturating_sub(start_ms) as f64;
        if !(200..300).contains(&resp.status) {
            let mut body = resp.body.unwrap_or_default();
            body.truncate(MAX_ERROR_BODY);
            return Err(provider_error(
                dep,
                platform,
                resp.status,
                &resp.headers,
                &body,
            ));
        }
        let body = match resp.body {
            Ok(b) => b,
            Err(BodyFailure::Timeout) => return Err(timeout(dep, total)),
            Err(BodyFailure::Failed(e)) => {
                return Err(GatewayError::new(
                    ErrorCode::UpstreamBodyError,
                    format!("provider {} response failed: {e}", dep.provider.name),
                ))
            }
        };
        let whole = self
            .op
            .whole(dep, req.wire, body, &resp.headers, platform.now_ms())?;
        self.recorder.usage(whole.usage);
        Ok((whole.response, latency_ms))
    }
}

/// A provider's non-2xx answer as the client's error, with the deployment's credentials scrubbed from it.
fn provider_error<P: Platform>(
    dep: &Deployment,
    platform: &P,
    status: u16,
    headers: &Headers,
    body: &[u8],
) -> GatewayError {
    let creds = credentials(&dep.provider, platform).unwrap_or(Credentials::None);
    upstream_error(dep, status, headers, body, &creds)
}

fn unreachable(dep: &Deployment, e: &crate::platform::FetchError) -> GatewayError {
    GatewayError::new(
        ErrorCode::UpstreamUnreachable,
        format!("could not reach provider {}: {e}", dep.provider.name),
    )
}

fn colo(loc: &Location) -> String {
    loc.colo.clone().unwrap_or_else(|| "unknown".into())
}

fn annotate(resp: &mut Response, dep: &Deployment, attempts: usize, loc: &Location) {
    resp.headers.insert("x-meridian-deployment", dep.id());
    resp.headers.insert("x-meridian-region", dep.region.clone());
    resp.headers
        .insert("x-meridian-attempts", attempts.to_string());
    resp.headers.insert("x-meridian-colo", colo(loc));
}

pub(super) fn timeout(dep: &Deployment, ms: u64) -> GatewayError {
    GatewayError::new(
        ErrorCode::UpstreamTimeout,
        format!(
            "provider {} did not answer within {ms} ms",
            dep.provider.name
        ),
    )
}
