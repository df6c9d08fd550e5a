//! The call: the plan of deployments, failover across them, hedging, and one attempt up to its commit.

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
        _ => match &provider.api_key_secret {
            Some(name) => Credentials::ApiKey(secret(name)?),
            None => Credentials::None,
        },
    })
}

/// One chat request, tried on deployments in the order routing chose, until one commits.
pub(super) struct Call<'a, P> {
    pub(super) config: &'a Config,
    pub(super) platform: &'a P,
    pub(super) state: &'a State,
    pub(super) inbound: &'a ClientRequest,
    /// Built on first need: only deployments that do not speak the client's wire format need it.
    pub(super) canonical: OnceCell<canonical::ChatRequest>,
    pub(super) shape: Shape,
    /// Set when this request leads a cache flight: taken by the attempt that commits.
    pub(super) sink: RefCell<Option<Sink>>,
    /// The plan hedges: an attempt may lose and be dropped, and must then be cancelled at the provider.
    pub(super) hedging: Cell<bool>,
    pub(super) recorder: Recorder,
}

/// An attempt that did not produce a response: whether another deployment may do better.
pub(super) struct Failed {
    pub(super) error: GatewayError,
    pub(super) retryable: bool,
}

impl From<GatewayError> for Failed {
    fn from(error: GatewayError) -> Self {
        // A request the provider rejects as invalid will be rejected everywhere; anything else may be this
        // deployment's problem alone.
        let retryable = error.fails_over();
        Failed { error, retryable }
    }
}

pub(super) async fn complete<P: Platform>(
    config: &Config,
    platform: &P,
    state: &State,
    caller: &Caller<'_>,
    inbound: ClientRequest,
) -> Result<Response, GatewayError> {
    let target = resolve(config, inbound.model())?;
    let deps = target.deployments();
    // A model with one deployment has nothing to choose: its first request in a fresh isolate does not wait for
    // what KV knows (a cold KV read is a large share of a cold start).
    if deps.len() > 1 {
        load_estimates(platform, state, &caller.location).await;
    }
    let allowed: Vec<bool> = deps
        .iter()
        .map(|d| {
            residency_ok(d, caller.key_residency) && residency_ok(d, &caller.requested_residency)
        })
        .collect();
    if !allowed.contains(&true) {
        let mut wanted: Vec<&str> = caller.key_residency.iter().map(String::as_str).collect();
        wanted.extend(caller.requested_residency.iter().map(String::as_str));
        return Err(GatewayError::new(
            ErrorCode::ResidencyUnsatisfiable,
            format!(
                "no deployment of `{}` satisfies the residency policy ({}); refusing to send it elsewhere",
                inbound.model(),
                wanted.join(", ")
            ),
        ));
    }
    let (hedge_budget, max_attempts) = match &target {
        Target::Alias(m) => (m.hedge_budget, m.max_attempts),
        Target::Direct(_) => (None, 1),
    };
    let shape = Shape {
        stream: inbound.stream(),
        bucket: estimator::bucket(caller.body_len),
    };
    let policy = Policy {
        exploration: config.routing.exploration,
        hedge_budget,
    };
    let plan = state.router.borrow_mut().plan(
        deps,
        &allowed,
        &caller.location,
        shape,
        policy,
        platform.now_ms(),
    );
    let recorder = caller.recorder;
    recorder.update(|r| r.colo = caller.location.colo.clone());
    let call = Call {
        config,
        platform,
        state,
        inbound: &inbound,
        canonical: OnceCell::new(),
        shape,
        sink: RefCell::new(None),
        hedging: Cell::new(plan.hedge_after_ms.is_some()),
        recorder: recorder.clone(),
    };
    let mut cache_status = None;
    if let Target::Alias(model) = &target {
        if let Some(settings) = model.cache {
            match apart(call.cache_lookup(model, settings, caller)).await? {
                Lookup::Answered(mut resp) => {
                    let ttfc = recorder.elapsed_ms();
                    let how = match resp.headers.get("x-meridian-cache") {
                        Some("COALESCED") => "COALESCED",
                        _ => "HIT",
                    };
                    recorder.update(|r| {
                        r.cache = Some(how);
                        r.ttfc_ms = Some(ttfc);
                    });
                    resp.headers.insert(
                        "x-meridian-colo",
                        caller
                            .location
                            .colo
                            .clone()
                            .unwrap_or_else(|| "unknown".into()),
                    );
                    return Ok(resp);
                }
                Lookup::Bypass => cache_status = Some("BYPASS"),
                Lookup::Lead(sink) => {
                    *call.sink.borrow_mut() = Some(sink);
                    cache_status = Some("MISS");
                }
            }
        }
    }
    recorder.update(|r| r.cache = cache_status);
    let started_ms = platform.now_ms();
    let order: Vec<&Deployment> = plan.order.iter().map(|&i| &deps[i]).collect();
    let mut at = 0;
    let mut attempts = 0;
    let mut last = None;
    let mut unsupported = None;
    while attempts < max_attempts {
        // Failover never outlives the overall deadline.
        if attempts > 0 && platform.now_ms().saturating_sub(started_ms) >= config.timeouts.total_ms
        {
            break;
        }
        let Some((i, upstream)) = call.next_ready(&order, at, &mut unsupported, &mut last)? else {
            break;
        };
        let dep = order[i];
        at = i + 1;
        attempts += 1;
        let hedge = match plan.hedge_after_ms {
            Some(ms) if attempts == 1 && max_attempts > 1 => call
                .next_ready(&order, at, &mut unsupported, &mut last)?
                .map(|(j, up)| (ms, j, up)),
            _ => None,
        };
        let result = match hedge {
            Some((after_ms, j, second_up)) => {
                let second = order[j];
                match apart(call.hedged((dep, upstream), (second, second_up), after_ms)).await {
                    (r, true) => {
                        // The second deployment was used up by the hedge: failover continues after it.
                        at = j + 1;
                        attempts += 1;
                        r
                    }
                    (r, false) => {
                        at = j;
                        r
                    }
                }
            }
            None => call.attempt(dep, upstream).await.map(|r| (r, dep)),
        };
        match result {
            Ok((mut resp, used)) => {
                annotate(&mut resp, used, attempts, &caller.location);
                if let Some(status) = cache_status {
                    resp.headers.insert("x-meridian-cache", status);
                }
                let ttfc = recorder.elapsed_ms();
                recorder.update(|r| {
                    r.served_by = Some(used.id());
                    r.region = Some(used.region.clone());
                    r.ttfc_ms = Some(ttfc);
                });
                return Ok(resp);
            }
            Err(f) if !f.retryable => {
                call.fail_flight(&f.error);
                return Err(f.error);
            }
            Err(f) => last = Some(f.error),
        }
    }
    // Only when no deployment could even express the request is that the client's problem.
    let err = match (last, unsupported) {
        (Some(e), _) => e,
        (None, Some(e)) => e,
        (None, None) => GatewayError::new(ErrorCode::DeadlineExceeded, "overall deadline exceeded"),
    };
    call.fail_flight(&err);
    Err(err)
}

impl<P: Platform> Call<'_, P> {
    /// Whether the client's OpenAI body can go to `dep` untranslated. Not when a cached stream needs usage the
    /// client did not ask for: then the provider is asked for it and the client's view is re-encoded.
    pub(super) fn passthrough(&self, dep: &Deployment) -> bool {
        let ClientRequest::OpenAi(chat) = self.inbound else {
            return false;
        };
        let wants_usage = chat.include_usage();
        dep.provider.kind.is_openai_wire()
            && !(chat.stream && !wants_usage && self.sink.borrow().is_some())
    }

    pub(super) fn canonical(&self) -> Result<&canonical::ChatRequest, GatewayError> {
        match self.inbound {
            ClientRequest::Canonical(_, c) => Ok(c),
            ClientRequest::OpenAi(chat) => {
                if let Some(c) = self.canonical.get() {
                    return Ok(c);
                }
                let c = chat.to_canonical()?;
                Ok(self.canonical.get_or_init(|| c))
            }
        }
    }

    /// The first deployment from `order[from..]` that can express the request, with its provider request. The
    /// ones that cannot are skipped and recorded (the last reason kept for the client, should none remain); one
    /// whose credentials are missing is a failed attempt. `Err` only for a request that is invalid everywhere.
    pub(super) fn next_ready(
        &self,
        order: &[&Deployment],
        from: usize,
        unsupported: &mut Option<GatewayError>,
        last: &mut Option<GatewayError>,
    ) -> Result<Option<(usize, UpstreamRequest)>, GatewayError> {
        for (i, dep) in order.iter().enumerate().skip(from) {
            match self.upstream_for(dep) {
                Ok(up) => return Ok(Some((i, up))),
                Err(e) => {
                    let skipped = e.code == ErrorCode::UnsupportedInput;
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

    /// The provider request for `dep`: the client's own bytes where the wire format is the same, else the
    /// canonical request in the provider's format (which fails with `unsupported_input` where it cannot say it).
    fn upstream_for(&self, dep: &Deployment) -> Result<UpstreamRequest, GatewayError> {
        let creds = credentials(&dep.provider, self.platform)?;
        let mut upstream = match self.inbound {
            // Same wire format both sides: forward the client's bytes, no translation.
            ClientRequest::OpenAi(chat) if self.passthrough(dep) => {
                openai_compat::passthrough_request(dep, chat, &creds)
            }
            _ => providers::build_request(dep, self.canonical()?, &creds, self.platform.now_ms())?,
        };
        upstream.cancel_on_drop |= self.hedging.get();
        Ok(upstream)
    }

    /// Runs `first`; if it has produced nothing after `after_ms`, runs `second` alongside, and the first to
    /// produce content wins (the other is dropped, which cancels its fetch). The flag says whether `second` ran.
    pub(super) async fn hedged<'d>(
        &self,
        (first, first_up): (&'d Deployment, UpstreamRequest),
        (second, second_up): (&'d Deployment, UpstreamRequest),
        after_ms: u64,
    ) -> (Result<(Response, &'d Deployment), Failed>, bool) {
        let a = pin!(self.attempt(first, first_up));
        let timer = pin!(self.platform.sleep(after_ms));
        let a = match select(a, timer).await {
            Either::Left((r, _)) => return (r.map(|r| (r, first)), false),
            Either::Right((_, a)) => a,
        };
        let hedge_start = self.platform.now_ms();
        self.state.router.borrow_mut().hedged(second);
        let b = pin!(self.attempt(second, second_up));
        let lost = |dep: &Deployment, started_ms: u64| {
            let ms = self.platform.now_ms().saturating_sub(started_ms);
            self.recorder.update(|r| {
                r.attempts.push(record::Attempt {
                    deployment: dep.id(),
                    region: dep.region.clone(),
                    outcome: record::AttemptOutcome::Lost,
                    code: None,
                    ms,
                })
            });
        };
        match select(a, b).await {
            Either::Left((Ok(r), _loser)) => {
                lost(second, hedge_start);
                let waited = self.platform.now_ms().saturating_sub(hedge_start) as f64;
                self.state.router.borrow_mut().at_least(
                    second,
                    self.shape,
                    waited,
                    self.platform.now_ms(),
                );
                (Ok((r, first)), true)
            }
            Either::Right((Ok(r), _loser)) => {
                lost(first, hedge_start.saturating_sub(after_ms));
                let waited = (self.platform.now_ms().saturating_sub(hedge_start) + after_ms) as f64;
                self.state.router.borrow_mut().at_least(
                    first,
                    self.shape,
                    waited,
                    self.platform.now_ms(),
                );
                (Ok((r, second)), true)
            }
            Either::Left((Err(_), b)) => (b.await.map(|r| (r, second)), true),
            Either::Right((Err(_), a)) => (a.await.map(|r| (r, first)), true),
        }
    }

    /// One deployment, up to the point where the response is committed (headers and, for streams, the first
    /// content), recording what was learned.
    pub(super) async fn attempt(
        &self,
        dep: &Deployment,
        upstream: UpstreamRequest,
    ) -> Result<Response, Failed> {
        let now = self.platform.now_ms();
        self.state.router.borrow_mut().started(dep, now);
        let result = apart(self.try_deployment(dep, upstream, now)).await;
        let end = self.platform.now_ms();
        self.recorder.update(|r| {
            r.attempts.push(record::Attempt {
                deployment: dep.id(),
                region: dep.region.clone(),
                outcome: match &result {
                    Ok(_) => record::AttemptOutcome::Committed,
                    Err(_) => record::AttemptOutcome::Failed,
                },
                code: result.as_ref().err().map(|f| f.error.code),
                ms: end.saturating_sub(now),
            })
        });
        let mut router = self.state.router.borrow_mut();
        match &result {
            Ok((_, latency_ms)) => router.success(dep, self.shape, *latency_ms, end),
            Err(f) if f.retryable => {
                let retry_after_ms = f
                    .error
                    .retry_after
                    .as_deref()
                    .and_then(|s| s.parse::<u64>().ok())
                    .map(|s| s.saturating_mul(1000));
                router.failure(dep, &f.error.message, retry_after_ms, end);
            }
            // The request was at fault, not the deployment.
            Err(_) => {}
        }
        result.map(|(r, _)| r)
    }

    /// Returns the committed response and the latency to learn from: to the first content for streams, to the
    /// whole answer otherwise.
    pub(super) async fn try_deployment(
        &self,
        dep: &Deployment,
        upstream: UpstreamRequest,
        start_ms: u64,
    ) -> Result<(Response, f64), Failed> {
        if self.inbound.stream() {
            apart(self.streamed(dep, upstream, start_ms)).await
        } else {
            apart(self.whole(dep, upstream, start_ms)).await
        }
    }
}

pub(super) fn unreachable(dep: &Deployment, e: &crate::platform::FetchError) -> GatewayError {
    GatewayError::new(
        ErrorCode::UpstreamUnreachable,
        format!("could not reach provider {}: {e}", dep.provider.name),
    )
}

pub(super) fn annotate(resp: &mut Response, dep: &Deployment, attempts: usize, loc: &Location) {
    resp.headers.insert("x-meridian-deployment", dep.id());
    resp.headers.insert("x-meridian-region", dep.region.clone());
    resp.headers
        .insert("x-meridian-attempts", attempts.to_string());
    resp.headers.insert(
        "x-meridian-colo",
        loc.colo.clone().unwrap_or_else(|| "unknown".into()),
    );
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
