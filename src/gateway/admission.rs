//! Admission, one step before the lifecycle: hostile input refused before anything is parsed, who sends the
//! request (key or browser token), what it is (dialect, parsed body, model), whether that caller may use that
//! model, the model resolved (an unknown model costs no budget), then the caller's rate budget, and what routing
//! needs to know of the caller (location, residency, cache controls).

use super::*;

/// A request that may go to the lifecycle.
pub(super) struct Admitted<'c> {
    pub(super) principal: Principal<'c>,
    pub(super) target: Target<'c>,
    pub(super) caller: Caller<'c>,
    /// The rule of a virtual model that chose the target.
    pub(super) rule: Option<&'c str>,
    /// A shadow call: its model alone (no fallbacks), never hedged.
    pub(super) shadow: bool,
}

/// The ledger objects' writer, owned (a record's sink outlives the request's borrows): entries wait in this
/// isolate's batch, written once a second per object.
pub(super) struct Books {
    batch: Rc<RefCell<crate::ledger::Batch>>,
    write: crate::platform::LedgerWriter,
    background: crate::platform::Background,
    timer: Timer,
}

impl Books {
    pub(super) fn new<P: Platform + ?Sized>(platform: &P, state: &State) -> Self {
        Books {
            batch: state.ledger.clone(),
            write: platform.ledger_writer(),
            background: platform.background(),
            timer: platform.timer(),
        }
    }

    /// Adds an entry to the batch waiting for `ledger`, and schedules the batch's write when it is the first.
    pub(super) fn add(
        &self,
        ledger: &str,
        entry: crate::ledger::Entry,
        reserved: crate::ledger::Reserved,
    ) {
        if self.batch.borrow_mut().add(ledger, entry, reserved) {
            let (batch, write, ledger, timer) = (
                self.batch.clone(),
                self.write.clone(),
                ledger.to_owned(),
                self.timer.clone(),
            );
            (self.background)(Box::pin(async move {
                timer(crate::ledger::FLUSH_MS).await;
                let entries = batch.borrow_mut().take(&ledger);
                write(ledger, entries).await;
            }));
        }
    }
}

/// The most a request may cost on any of `deps`, micro-dollars: its input estimate (about 4 bytes of body per
/// token) and its output allowance, each at the highest price among them.
pub(super) fn worst_cost_micro<'d>(
    deps: impl Iterator<Item = &'d Deployment>,
    body_len: usize,
    max_output: Option<u64>,
) -> u64 {
    let (p_in, p_out) = deps
        .filter_map(|d| d.price)
        .fold((0.0f64, 0.0f64), |(i, o), p| {
            (i.max(p.input), o.max(p.output))
        });
    let output = max_output.unwrap_or(DEFAULT_OUTPUT_RESERVE);
    ((body_len / 4) as f64 * p_in + output as f64 * p_out).ceil() as u64
}

/// Once the provider has counted, spends (or gives back) the difference between its count and the estimate
/// charged up front. A request the provider never counted keeps the estimate.
fn budget_correction<P: Platform>(
    platform: &P,
    key: String,
    window_ms: u64,
    estimate: u64,
) -> record::Sink {
    let (spend, background) = (platform.rate_spender(), platform.background());
    Rc::new(move |r: &Record| {
        if let Some(total) = r.usage.total() {
            let delta = total as i64 - estimate as i64;
            if delta != 0 {
                background(spend(key.clone(), window_ms, delta));
            }
        }
    })
}

/// Admits from this isolate's slice of the key's window; asks the limiter object (and waits) only when the slice is
/// empty, and asks for the next slice in the background when half of it is spent.
/// The same for a budget: slices of micro-dollars from the key's ledger object (`per_month` beside the daily
/// limit in `limits.1`).
#[allow(clippy::too_many_arguments)]
async fn leased<P: Platform>(
    platform: &P,
    leases: &Rc<RefCell<crate::lease::Leases>>,
    leaser: crate::platform::RateLeaser,
    (key, scope): (&str, Option<&str>),
    window_ms: u64,
    (limits, per_month): ((Option<u32>, Option<u64>), Option<u64>),
    estimate: u64,
) -> Result<Decision, String> {
    use crate::lease::Verdict;
    let ask = |want| crate::platform::LeaseAsk {
        key: key.to_owned(),
        window_ms,
        rpm: limits.0,
        tpm: limits.1,
        want,
        per_month,
        scope: scope.map(str::to_owned),
    };
    let slice_key = slice_key(key, scope);
    let key = slice_key.as_str();
    let refill = |want| {
        let (leases, clock, key) = (leases.clone(), platform.clock(), key.to_owned());
        let asked = leaser(ask(want));
        platform.background()(Box::pin(async move {
            match asked.await {
                Ok(grant) => leases.borrow_mut().granted(&key, clock(), grant),
                Err(_) => leases.borrow_mut().refill_failed(&key),
            }
        }));
    };
    // An isolate that stops admitting for the key gives its slice back (a watch in the background).
    let watch = || {
        let now = platform.now_ms();
        if !leases.borrow_mut().watch(key, now) {
            return;
        }
        let (leases, clock, timer, key) = (
            leases.clone(),
            platform.clock(),
            platform.timer(),
            key.to_owned(),
        );
        let started = clock();
        let leaser = leaser.clone();
        let ask = ask(crate::lease::Want {
            requests: 0,
            tokens: 0,
            give_back: None,
        });
        platform.background()(Box::pin(async move {
            loop {
                timer(crate::lease::IDLE_MS).await;
                let (give, more) = leases.borrow_mut().idle(&key, clock());
                if let Some(want) = give {
                    let _ = leaser(crate::platform::LeaseAsk { want, ..ask }).await;
                    return;
                }
                if !more {
                    return;
                }
                if clock().saturating_sub(started) >= crate::lease::WATCH_FOR_MS {
                    leases.borrow_mut().unwatch(&key);
                    return;
                }
            }
        }));
    };
    let now = platform.now_ms();
    let verdict = leases.borrow_mut().admit(key, now, limits, estimate);
    let want = match verdict {
        Verdict::Admit { refill: next } => {
            next.map(refill);
            watch();
            return Ok(Decision::Allowed);
        }
        Verdict::Ask(want) => want,
        Verdict::Spent { retry_after_s } => return Ok(Decision::Limited { retry_after_s }),
    };
    // What goes back without waiting for an answer: a slice this request emptied but could not use.
    let give_back = |give: Option<(u64, u32, u64)>| {
        if let Some(g) = give {
            let back = leaser(ask(crate::lease::Want {
                requests: 0,
                tokens: 0,
                give_back: Some(g),
            }));
            platform.background()(Box::pin(async move {
                let _ = back.await;
            }));
        }
    };
    let given = want.give_back;
    let grant = match leaser(ask(want)).await {
        Ok(g) => g,
        Err(e) => {
            // The ask failed: what it was to give back goes back on its own.
            give_back(given);
            return Err(e);
        }
    };
    let now = platform.now_ms();
    leases.borrow_mut().granted(key, now, grant);
    // Admitted from the slice, whichever grant filled it: concurrent requests of this isolate ask at once, and
    // the budget one of them was refused may have gone to another's slice here.
    let verdict = leases.borrow_mut().admit(key, now, limits, estimate);
    match verdict {
        Verdict::Admit { refill: next } => {
            next.map(refill);
            watch();
            Ok(Decision::Allowed)
        }
        Verdict::Spent { retry_after_s } => Ok(Decision::Limited { retry_after_s }),
        // The window has fewer tokens left than this request is estimated to need: the part of it just granted
        // goes back, or it would be held here, unused, until the window ends.
        Verdict::Ask(w) => {
            give_back(w.give_back);
            Ok(Decision::Limited {
                retry_after_s: grant
                    .window_end_ms
                    .saturating_sub(now)
                    .div_ceil(1000)
                    .max(1),
            })
        }
    }
}

/// What admission needs of a parsed request body, whatever the endpoint.
pub(super) trait Inbound {
    /// The model the client asked for (an alias or `provider/model`).
    fn model(&self) -> &str;
    fn stream(&self) -> bool;
    /// The most output the client allows (`max_tokens` and its kin), `None` when it sets none; what a budget
    /// reserves for the answer. An endpoint that generates no output says `Some(0)`.
    fn max_output_tokens(&self) -> Option<u64>;

    /// For a virtual model's rules: the dialect, and whether tools are offered, whether reasoning is asked for,
    /// and the `metadata` members (strings as they are, other values as JSON).
    fn rule_dialect(&self) -> Option<crate::config::rules::RuleDialect> {
        None
    }

    fn rule_features(&self) -> (bool, bool, std::collections::BTreeMap<String, String>) {
        (false, false, Default::default())
    }

    /// Who the request is for, as the client says (OpenAI's `user`, Anthropic's `metadata.user_id`).
    fn user(&self) -> Option<String> {
        None
    }
}

impl Inbound for ClientRequest {
    fn model(&self) -> &str {
        ClientRequest::model(self)
    }

    fn stream(&self) -> bool {
        ClientRequest::stream(self)
    }

    fn rule_dialect(&self) -> Option<crate::config::rules::RuleDialect> {
        use crate::config::rules::RuleDialect;
        Some(match self.dialect() {
            Dialect::OpenAi => RuleDialect::OpenAi,
            Dialect::Anthropic => RuleDialect::Anthropic,
            Dialect::Responses => RuleDialect::Responses,
        })
    }

    fn rule_features(&self) -> (bool, bool, std::collections::BTreeMap<String, String>) {
        let body = self.body();
        let json = |name: &str| {
            body.member(name)
                .and_then(|v| serde_json::from_slice::<serde_json::Value>(v.as_bytes()).ok())
        };
        let tools = json("tools").is_some_and(|t| t.as_array().is_some_and(|a| !a.is_empty()));
        let effort_on = |e: Option<&str>| e.is_some_and(|e| !matches!(e, "none" | "minimal"));
        let reasoning = effort_on(json("reasoning_effort").as_ref().and_then(|e| e.as_str()))
            || effort_on(
                json("reasoning")
                    .as_ref()
                    .and_then(|r| r.get("effort"))
                    .and_then(|e| e.as_str()),
            )
            || json("thinking")
                .as_ref()
                .and_then(|t| t.get("type"))
                .and_then(|t| t.as_str())
                .is_some_and(|t| t == "enabled" || t == "adaptive");
        let metadata = json("metadata")
            .and_then(|m| m.as_object().cloned())
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect();
        (tools, reasoning, metadata)
    }

    fn user(&self) -> Option<String> {
        let body = self.body();
        let string = |v: &str| serde_json::from_slice::<String>(v.as_bytes()).ok();
        body.member("user").and_then(string).or_else(|| {
            body.member("metadata")
                .and_then(|m| serde_json::from_slice::<serde_json::Value>(m.as_bytes()).ok())
                .and_then(|m| m.get("user_id")?.as_str().map(str::to_owned))
        })
    }

    fn max_output_tokens(&self) -> Option<u64> {
        let body = self.body();
        ["max_completion_tokens", "max_tokens", "max_output_tokens"]
            .iter()
            .find_map(|m| body.member(m).and_then(|v| v.trim().parse::<u64>().ok()))
    }
}

/// Output a budget reserves for a request that sets no `max_tokens`: a long answer, not the model's limit (a key
/// with a small budget could otherwise send nothing). Longer answers are reconciled after, up to the bound the
/// README states.
pub(super) const DEFAULT_OUTPUT_RESERVE: u64 = 4096;

/// This isolate's slices, by object and scope (a model's own budget).
fn slice_key(key: &str, scope: Option<&str>) -> String {
    match scope {
        None => key.to_owned(),
        Some(s) => format!("{key}#{s}"),
    }
}

/// Where a request's reservations came from: each budget's slice and which of its slices (see `Leases::settle`).
#[derive(Debug, Clone, Default)]
pub(super) struct Settlement {
    key: Option<(String, u64)>,
    model: Option<(String, u64)>,
}

/// The name of a key's ledger object (its spend and budget).
pub(super) fn ledger_name(key: &str) -> String {
    format!("ledger:{key}")
}

/// Reserves the request's estimated cost from the key's budgets (its whole and its model's own), from this
/// isolate's slices of them when it has some (see `lease`): the input estimated from the body (about 4 bytes a
/// token) and the output allowed, each at the highest price among the deployments the request may reach. What was
/// reserved goes into `reserved` as it is, in micro-dollars (a price per million tokens is micro-dollars per
/// token), so the ledger can reconcile it with what the request cost (or give it back) even if a later scope
/// refuses.
#[allow(clippy::too_many_arguments)]
async fn budget_check<P: Platform, T: Inbound>(
    config: &Config,
    platform: &P,
    leases: &Rc<RefCell<crate::lease::Leases>>,
    key: &crate::config::GatewayKey,
    budget: &crate::config::Budget,
    (target, model): (&Target<'_>, &str),
    req: &Request,
    inbound: &T,
    (reserved, settlement): (&Cell<crate::ledger::Reserved>, &RefCell<Settlement>),
) -> Result<(), GatewayError> {
    let scopes = budget.scopes(model);
    if scopes.is_empty() {
        return Ok(());
    }
    // The deployments the request may reach: the model's, and its fallbacks'.
    let deps: Vec<&Deployment> = match target {
        Target::Alias(m) => m
            .with_fallbacks(config)
            .flat_map(|m| m.deployments())
            .collect(),
        Target::Direct(d) => d.iter().collect(),
    };
    if deps.iter().all(|d| d.price.is_none()) {
        // Nothing to reserve against: a budget holds only what is priced (the lifecycle would refuse it too).
        return Err(GatewayError::new(
            ErrorCode::PriceRequired,
            format!(
                "this key has a budget and no deployment of `{}` has a price (configure `price` on the deployment)",
                inbound.model()
            ),
        ));
    }
    let estimate = worst_cost_micro(
        deps.iter().copied(),
        req.body.len(),
        inbound.max_output_tokens(),
    );
    let name = ledger_name(&key.name);
    for (scope, (per_day, per_month)) in scopes {
        let day = per_day.map(crate::ledger::micro);
        let month = per_month.map(crate::ledger::micro);
        let decision = leased(
            platform,
            leases,
            platform.budget_leaser(),
            (&name, scope),
            86_400_000,
            ((None, day.or(month)), month),
            estimate,
        )
        .await;
        let whose = match scope {
            None => "the key's budget".to_owned(),
            Some(m) => format!("the key's budget for `{m}`"),
        };
        match decision {
            Ok(Decision::Allowed) => {
                let slice = slice_key(&name, scope);
                let generation = leases.borrow().generation(&slice);
                let mut r = reserved.get();
                let mut s = settlement.borrow_mut();
                match scope {
                    None => {
                        r.key = estimate;
                        s.key = Some((slice, generation));
                    }
                    Some(_) => {
                        r.model = estimate;
                        s.model = Some((slice, generation));
                    }
                }
                reserved.set(r);
            }
            Ok(Decision::Limited { retry_after_s }) => {
                return Err(GatewayError::new(
                    ErrorCode::BudgetExceeded,
                    format!(
                        "{whose} is spent, or does not have the ${} this request may cost left; it resets in {retry_after_s} s",
                        crate::pricing::usd_text(estimate as f64 / 1e6)
                    ),
                )
                .with_retry_after(Some(retry_after_s.to_string())))
            }
            Err(e) => {
                return Err(GatewayError::new(
                    ErrorCode::BudgetUnavailable,
                    format!("{whose} is configured but cannot be enforced: {e}"),
                ))
            }
        }
    }
    Ok(())
}

/// A request whose body passed the size limits and whose caller is known (and recorded): the first half of
/// admission. An endpoint that must look something up for the caller before its body can be parsed (a stored
/// Responses conversation) takes the two halves apart; every other endpoint calls [`admit`].
pub(super) struct Identified<'r, 'c> {
    pub(super) req: &'r Request,
    pub(super) principal: Principal<'c>,
}

pub(super) fn identify<'r, 'c, P: Platform>(
    config: &'c Config,
    platform: &P,
    req: &'r Request,
    recorder: &Recorder,
) -> Result<Identified<'r, 'c>, GatewayError> {
    // Hostile input is refused before it is parsed or any budget is spent.
    limits::check_body(&req.body, &config.limits)?;
    let principal = authorize(config, platform, &req.headers)?;
    recorder.update(|r| {
        r.principal = Some(
            match principal.token.as_ref().and_then(|t| t.sub.as_deref()) {
                Some(sub) => format!("token:{sub}"),
                None => principal.key.name.clone(),
            },
        );
        r.key = Some(principal.key.name.clone());
    });
    Ok(Identified { req, principal })
}

/// Admits a request whose body `parse` reads (and checks against the input limits): `Ok` with what the lifecycle
/// needs, or the error the client gets. `spends_tokens`: whether the request spends a `tpm` budget (counting
/// tokens does not).
pub(super) async fn admit<'c, P: Platform, T: Inbound>(
    config: &'c Config,
    platform: &P,
    state: &State,
    req: &Request,
    recorder: &'c Recorder,
    spends_tokens: bool,
    parse: impl FnOnce(&Request, &limits::Limits) -> Result<T, GatewayError>,
) -> Result<(Admitted<'c>, T), GatewayError> {
    let who = identify(config, platform, req, recorder)?;
    admit_identified(config, platform, state, who, recorder, spends_tokens, parse).await
}

/// The second half of [`admit`], for a caller [`identify`] already knows.
pub(super) async fn admit_identified<'c, P: Platform, T: Inbound>(
    config: &'c Config,
    platform: &P,
    state: &State,
    who: Identified<'_, 'c>,
    recorder: &'c Recorder,
    spends_tokens: bool,
    parse: impl FnOnce(&Request, &limits::Limits) -> Result<T, GatewayError>,
) -> Result<(Admitted<'c>, T), GatewayError> {
    let Identified { req, principal } = who;
    let leases = &state.leases;
    let key = principal.key;
    let inbound = parse(req, &config.limits)?;
    recorder.update(|r| {
        r.model = Some(inbound.model().to_owned());
        r.stream = inbound.stream();
    });
    if !principal.allows_model(inbound.model()) {
        return Err(GatewayError::new(
            ErrorCode::ModelNotAllowed,
            format!("this key may not use model `{}`", inbound.model()),
        ));
    }
    // A virtual model's rules choose the model that serves.
    let (target, rule) = match config.virtual_models.get(inbound.model()) {
        Some(v) => {
            let (tools, reasoning, metadata) = inbound.rule_features();
            let features = crate::config::rules::Features {
                dialect: inbound.rule_dialect(),
                key: &key.name,
                headers: Some(&req.headers),
                metadata,
                tools,
                prompt_tokens: (req.body.len() / 4) as u64,
                reasoning,
            };
            let rule = v.choose(&features);
            (resolve(config, &rule.model)?, Some(rule.name.as_str()))
        }
        None => (resolve(config, inbound.model())?, None),
    };
    // An experiment's arm, sticky per user: the browser token's subject, else the body's user id, else the body
    // itself (a request repeated byte for byte is on the same arm).
    let (target, experiment) = match target {
        Target::Alias(m) if !m.split.is_empty() => {
            let sticky = principal
                .token
                .as_ref()
                .and_then(|t| t.sub.clone())
                .or_else(|| inbound.user());
            let shares: Vec<f64> = m.split.iter().map(|a| a.share).collect();
            let i = match &sticky {
                Some(id) => crate::shadow::arm_of(&m.name, id, &shares),
                None => {
                    crate::shadow::arm_of(&m.name, &String::from_utf8_lossy(&req.body), &shares)
                }
            };
            let arm = &m.split[i].model;
            let served = match config.model(arm) {
                Some(a) => Target::Alias(a),
                None => Target::Alias(m),
            };
            recorder.update(|r| r.variant = Some(arm.clone()));
            (served, Some((m.name.clone(), arm.clone())))
        }
        other => (other, None),
    };
    let (rpm, tpm) = (principal.rpm(), key.tpm);
    if rpm.is_some() || tpm.is_some() {
        // Input tokens are estimated from the body (about 4 bytes each) and spent up front; the record corrects
        // the budget to what the provider counted. Counting tokens spends none (a request, for `rpm`).
        let estimate = if spends_tokens {
            (req.body.len() / 4) as u64
        } else {
            0
        };
        let rate_key = principal.rate_key();
        let decision = if key.exact_limits {
            platform
                .rate_check(&rate_key, config.rate_window_ms, rpm, tpm, estimate)
                .await
        } else {
            leased(
                platform,
                leases,
                platform.rate_leaser(),
                (&rate_key, None),
                config.rate_window_ms,
                ((rpm, tpm), None),
                estimate,
            )
            .await
            .map(|d| {
                let now = platform.now_ms();
                let standing =
                    leases
                        .borrow()
                        .standing(&rate_key, now, config.rate_window_ms, (rpm, tpm));
                (d, standing)
            })
        };
        if let Ok((_, standing)) = &decision {
            recorder.update(|r| r.rate = Some(*standing));
        }
        match decision.map(|(d, _)| d) {
            Ok(Decision::Allowed) => {
                if tpm.is_some() && spends_tokens {
                    recorder.add_sink(budget_correction(
                        platform,
                        rate_key,
                        config.rate_window_ms,
                        estimate,
                    ));
                }
            }
            Ok(Decision::Limited { retry_after_s }) => {
                return Err(GatewayError::new(
                    ErrorCode::RateLimitExceeded,
                    format!("rate limit reached; retry in {retry_after_s} s"),
                )
                .with_retry_after(Some(retry_after_s.to_string())));
            }
            Err(e) => {
                return Err(GatewayError::new(
                    ErrorCode::RateLimiterUnavailable,
                    format!("rate limits are configured but cannot be enforced: {e}"),
                ))
            }
        }
    }
    // What the request spent goes to the key's ledger once it is finished (after the response, batched), with
    // what it reserved of the key's budgets: a request refused or failed after reserving gives that back.
    let reserved = Rc::new(Cell::new(crate::ledger::Reserved::default()));
    let settlement = Rc::new(RefCell::new(Settlement::default()));
    // The model that serves (a virtual alias's rules chose it): a model's own budget and the ledger's rows are
    // its.
    let served_model = match &target {
        Target::Alias(m) => m.name.clone(),
        Target::Direct(_) => inbound.model().to_owned(),
    };
    recorder.add_sink({
        let (books, clock) = (Books::new(platform, state), platform.clock());
        let experiment = experiment.clone();
        let ledger = ledger_name(&key.name);
        let (reserved, settlement, leases) = (reserved.clone(), settlement.clone(), leases.clone());
        let served_model = served_model.clone();
        Rc::new(move |r: &Record| {
            // What the request cost goes back into (or out of) the slices it reserved from, at once; the object
            // settles only what those slices could not.
            let mut reserved = reserved.get();
            // A priced answer the provider never counted (a stream cut or left before its usage) keeps its
            // reservation: what it cost is unknown, and counting it free would let it be spent again.
            let uncounted = matches!(r.pricing, Pricing::At(_)) && r.cost_usd().is_none();
            if !uncounted {
                let cost = crate::ledger::micro(r.cost_usd().unwrap_or(0.0));
                let now = clock();
                let s = settlement.borrow();
                let mut leases = leases.borrow_mut();
                if let Some((slice, generation)) = &s.key {
                    reserved.key = leases.settle(slice, now, *generation, reserved.key, cost);
                }
                if let Some((slice, generation)) = &s.model {
                    reserved.model = leases.settle(slice, now, *generation, reserved.model, cost);
                }
            } else {
                // The object settles nothing either: the reservation stands as the cost.
                reserved = crate::ledger::Reserved::default();
            }
            let mut entry = crate::ledger::entry_reserving(r, reserved);
            // An experiment's arm keeps every request it served, answered or failed.
            if let (Some((experiment, arm)), true) = (
                &experiment,
                matches!(r.operation, Operation::Chat | Operation::Responses),
            ) {
                let e = entry.get_or_insert_with(|| crate::ledger::Entry {
                    day: crate::ledger::day_of(r.ts),
                    model: String::new(),
                    principal: String::new(),
                    spend: crate::ledger::Spend::default(),
                    outcomes: Vec::new(),
                });
                e.outcomes.push(crate::shadow::Outcome::Arm {
                    experiment: experiment.clone(),
                    arm: arm.clone(),
                    side: shadow::side_of(r),
                });
            }
            if let Some(mut entry) = entry {
                // Filed under the model that served (the rule's or the experiment's choice), as its budget is.
                entry.model.clone_from(&served_model);
                books.add(&ledger, entry, reserved);
            }
        })
    });
    // Counting tokens costs nothing and reserves nothing.
    if let (Some(budget), true) = (&key.budget, spends_tokens) {
        budget_check(
            config,
            platform,
            leases,
            key,
            budget,
            (&target, &served_model),
            req,
            &inbound,
            (&reserved, &settlement),
        )
        .await?;
    }
    let caller = Caller {
        location: location(config, req),
        key_residency: &key.residency,
        require_price: key.require_price,
        requested_residency: req
            .headers
            .get("x-meridian-residency")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        body_len: req.body.len(),
        cache: cache_control(req, &key.cache_namespace),
        recorder,
    };
    Ok((
        Admitted {
            principal,
            target,
            caller,
            rule,
            shadow: false,
        },
        inbound,
    ))
}

/// Each dialect's parsing and input limits in a function of its own (a cold isolate compiles only the one it
/// is asked for).
#[inline(never)]
pub(super) fn anthropic_inbound(
    req: &Request,
    limits: &limits::Limits,
    purpose: anthropic::Purpose,
) -> Result<ClientRequest, GatewayError> {
    limits::check_strings_in(&req.body, limits)?;
    let msgs =
        anthropic::parse_messages_for(&req.body, req.headers.get("anthropic-beta"), purpose)?;
    limits::check_message_count(msgs.message_count, limits)?;
    limits::check_max_tokens(msgs.max_tokens.into(), limits)?;
    Ok(ClientRequest::Anthropic(Box::new(msgs)))
}

#[inline(never)]
pub(super) fn openai_inbound(
    body: &[u8],
    limits: &limits::Limits,
) -> Result<ClientRequest, GatewayError> {
    let chat = openai::parse_chat(body)?;
    limits::check_message_count(chat.message_count, limits)?;
    for key in ["max_tokens", "max_completion_tokens"] {
        if let Some(v) = chat.member(key) {
            limits::check_max_tokens_text(v, limits)?;
        }
    }
    limits::check_strings_in(chat.body.bytes(), limits)?;
    Ok(ClientRequest::OpenAi(chat))
}

/// Origins any key (or a browser token, whose origins are listed globally) may call from.
pub(super) fn origin_known(config: &Config, origin: &str) -> bool {
    config.cors.allows(origin) || config.keys.iter().any(|k| k.cors.allows(origin))
}

/// `OPTIONS`: browsers ask before sending credentials, so the answer cannot depend on the key.
pub(super) fn preflight(config: &Config, req: &Request) -> Response {
    let origin = req.headers.get("origin").unwrap_or_default();
    let allowed = !origin.is_empty() && origin_known(config, origin);
    let answer = allowed.then(|| {
        let policy = CorsPolicy {
            allowed_origins: vec![origin.to_owned()],
        };
        cors::preflight(
            &policy,
            origin,
            req.headers.get("access-control-request-method"),
            req.headers.get("access-control-request-headers"),
        )
    });
    match answer.flatten() {
        Some(headers) => Response {
            status: 204,
            headers: headers.into_iter().collect(),
            body: Body::Empty,
        },
        None => Response::json(
            403,
            openai::error_body(&GatewayError::new(
                ErrorCode::CorsOriginNotAllowed,
                "origin not allowed",
            )),
        ),
    }
}

/// A chat request as it arrived: OpenAI-dialect bodies stay raw so they can pass through untouched.
pub(super) enum ClientRequest {
    OpenAi(openai::ChatRequest),
    Anthropic(Box<anthropic::MessagesRequest>),
    Responses(Box<crate::inbound::responses::ResponsesRequest>),
}

impl ClientRequest {
    pub(super) fn model(&self) -> &str {
        match self {
            ClientRequest::OpenAi(c) => &c.model,
            ClientRequest::Anthropic(m) => &m.model,
            ClientRequest::Responses(r) => &r.model,
        }
    }

    pub(super) fn stream(&self) -> bool {
        match self {
            ClientRequest::OpenAi(c) => c.stream,
            ClientRequest::Anthropic(m) => m.stream,
            ClientRequest::Responses(r) => r.stream,
        }
    }

    /// The body as the client sent it.
    pub(super) fn body(&self) -> &crate::inbound::raw::RawObject {
        match self {
            ClientRequest::OpenAi(c) => &c.body,
            ClientRequest::Anthropic(m) => &m.body,
            ClientRequest::Responses(r) => &r.body,
        }
    }

    pub(super) fn dialect(&self) -> Dialect {
        match self {
            ClientRequest::OpenAi(_) => Dialect::OpenAi,
            ClientRequest::Anthropic(_) => Dialect::Anthropic,
            ClientRequest::Responses(_) => Dialect::Responses,
        }
    }
}

/// The deployments a model name stands for: a configured alias, or `provider/model` to address a configured
/// provider directly.
pub(super) fn resolve<'c>(config: &'c Config, name: &str) -> Result<Target<'c>, GatewayError> {
    if let Some(model) = config.model(name) {
        return Ok(Target::Alias(model));
    }
    if let Some((provider, model)) = name.split_once('/') {
        if let (Some(p), false) = (config.provider(provider), model.is_empty()) {
            return Ok(Target::Direct([p.direct(model)]));
        }
    }
    Err(GatewayError::new(
        ErrorCode::ModelNotFound,
        format!("model `{name}` does not exist; GET /v1/models lists the models served here"),
    ))
}

pub(super) enum Target<'c> {
    Alias(&'c Model),
    Direct([Deployment; 1]),
}

impl Target<'_> {
    /// Whether parameters a deployment cannot honour are dropped rather than refused: a model's own setting; a
    /// `provider/model` asked for directly has no model to say so, and refuses.
    pub(super) fn drop_unsupported(&self) -> bool {
        match self {
            Target::Alias(m) => m.drop_unsupported,
            Target::Direct(_) => false,
        }
    }
}

/// Who is asking and from where: what routing needs beyond the request body.
pub struct Caller<'a> {
    pub location: Location,
    /// Residency tags required by the key's policy (empty: none).
    pub key_residency: &'a [String],
    /// Unpriced deployments are not used (the key's `require_price`).
    pub require_price: bool,
    /// Residency tags requested with `x-meridian-residency` (empty: none).
    pub requested_residency: Vec<String>,
    pub body_len: usize,
    pub cache: CacheControl,
    pub recorder: &'a Recorder,
}

/// The caller's say over the cache.
#[derive(Debug, Default, Clone)]
pub struct CacheControl {
    /// `Cache-Control: no-cache`: do not answer from the cache.
    pub no_cache: bool,
    /// `Cache-Control: no-store`: do not store the answer.
    pub no_store: bool,
    /// `x-meridian-cache-ttl` (seconds).
    pub ttl_s: Option<u64>,
    /// The key's namespace, refined by `x-meridian-cache-namespace`.
    pub namespace: String,
}

pub(super) fn cache_control(req: &Request, key_namespace: &str) -> CacheControl {
    let directives = req
        .headers
        .get("cache-control")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let has = |d: &str| directives.split(',').any(|x| x.trim() == d);
    let sub = req
        .headers
        .get("x-meridian-cache-namespace")
        .map(str::trim)
        .filter(|n| {
            !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
    CacheControl {
        no_cache: has("no-cache"),
        no_store: has("no-store"),
        ttl_s: req
            .headers
            .get("x-meridian-cache-ttl")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|t| t.clamp(cache::MIN_TTL_S, cache::MAX_TTL_S)),
        // Still inside the key's own namespace: a header can narrow the scope, never cross tenants.
        namespace: match sub {
            Some(sub) => format!("{key_namespace}:{sub}"),
            None => key_namespace.to_owned(),
        },
    }
}

pub(super) fn residency_ok(dep: &Deployment, required: &[String]) -> bool {
    required.is_empty() || dep.tags.iter().any(|t| required.contains(t))
}
