//! Cache lookup and coalescing: answers served from the cache, and requests that follow an identical one in
//! flight.

use super::*;

/// What the cache did with a request.
pub(super) enum Lookup {
    /// Served from the cache, or by following an identical request in flight.
    Answered(Response),
    /// Not cacheable (or both read and write refused by the caller).
    Bypass,
    /// A miss: this request calls the provider and stores the answer.
    Lead(Sink),
}

/// Replays a cached answer in the caller's dialect and mode.
pub(super) fn replay(
    dialect: Dialect,
    c: &canonical::ChatRequest,
    entry: &cache::answer::Entry,
    now_ms: u64,
) -> Response {
    let mut resp = if c.stream {
        let mut enc = dialect.stream_encoder(&c.model, c.include_usage, now_ms);
        // One chunk per event, as a provider would send them.
        let mut chunks: Vec<Result<Vec<u8>, StreamError>> = entry
            .events()
            .iter()
            .map(|ev| {
                let mut out = Vec::new();
                enc.encode_all(std::slice::from_ref(ev), &mut out);
                Ok(out)
            })
            .filter(|c| c.as_ref().is_ok_and(|b| !b.is_empty()))
            .collect();
        let mut tail = Vec::new();
        enc.finish(&mut tail);
        chunks.push(Ok(tail));
        Response::event_stream(Box::pin(stream::iter(chunks)))
    } else {
        Response::json(
            200,
            dialect.render_response(&entry.answer, &c.model, now_ms),
        )
    };
    let u = entry.answer.usage;
    resp.headers
        .insert("x-meridian-deployment", entry.deployment.clone());
    resp.headers.insert("x-meridian-attempts", "0");
    resp.headers.insert(
        "x-meridian-cache-saved-tokens",
        (u.input_tokens + u.output_tokens).to_string(),
    );
    resp
}

impl<P: Platform> Call<'_, P> {
    pub(super) async fn cache_lookup(
        &self,
        model: &Model,
        settings: CacheSettings,
        caller: &Caller<'_>,
    ) -> Result<Lookup, GatewayError> {
        let c = self.canonical()?;
        let sampled = c.temperature.is_none_or(|t| t != 0.0);
        let ctl = &caller.cache;
        let body = match self.inbound {
            ClientRequest::OpenAi(chat) => Some(chat.body_object()),
            ClientRequest::Canonical(..) => None,
        };
        let openai_body = body.as_ref();
        if (sampled && !settings.nonzero_temperature)
            || (ctl.no_cache && ctl.no_store)
            || openai_body.and_then(cache::key::unreplayable).is_some()
        {
            return Ok(Lookup::Bypass);
        }
        let key = cache::key::cache_key(&ctl.namespace, &model.name, c, openai_body);
        let now = self.platform.now_ms();
        let dialect = self.inbound.dialect();
        let hit = |entry: &cache::answer::Entry| {
            let mut r = replay(dialect, c, entry, now);
            r.headers.insert("x-meridian-cache", "HIT");
            r.headers.insert(
                "age",
                (now.saturating_sub(entry.created_ms) / 1000).to_string(),
            );
            Lookup::Answered(r)
        };
        if !ctl.no_cache {
            if let Some(entry) = self.state.cache.memory.borrow().get(&key, now) {
                return Ok(hit(&entry));
            }
            let flight = self.state.cache.flights.borrow().get(&key).cloned();
            if let Some(flight) = flight {
                let mut r = follow(
                    flight,
                    dialect,
                    c,
                    now,
                    self.platform.timer(),
                    self.recorder.clone(),
                )
                .await?;
                r.headers.insert("x-meridian-cache", "COALESCED");
                return Ok(Lookup::Answered(r));
            }
        }
        let ttl_s = ctl.ttl_s.unwrap_or(settings.ttl_s);
        // Registered before the KV read, so identical requests arriving meanwhile follow this one.
        let sink = Sink::start(
            self.state.cache.clone(),
            self.platform.kv_writer(),
            key.clone(),
            ttl_s,
            String::new(),
            now,
            !ctl.no_store,
        );
        if !ctl.no_cache {
            if let Some(Some(json)) =
                deadline(self.platform, KV_READ_WAIT_MS, self.platform.kv_get(&key)).await
            {
                if let Some(entry) = cache::answer::Entry::from_json(&json) {
                    let expires = entry.created_ms + ttl_s * 1000;
                    let size = json.len();
                    let entry = Rc::new(entry);
                    sink.resolve(&entry);
                    self.state
                        .cache
                        .memory
                        .borrow_mut()
                        .insert(key, entry.clone(), size, expires);
                    return Ok(hit(&entry));
                }
            }
        }
        Ok(Lookup::Lead(sink))
    }

    pub(super) fn fail_flight(&self, err: &GatewayError) {
        if let Some(sink) = self.sink.borrow_mut().take() {
            sink.fail(err.clone());
        }
    }
}

/// How often a follower wakes on its own. The leader wakes it as events arrive, but the runtime cancels a
/// request that waits on nothing of its own (it cannot see another request's stream), so a timer is kept
/// pending.
pub(super) const FOLLOW_TICK_MS: u64 = 10;

/// The next event of a flight, waking on the leader's events or the follower's own ticks.
pub(super) async fn next_followed(
    events: &mut cache::flight::Follow,
    timer: &Timer,
) -> Option<Result<StreamEvent, GatewayError>> {
    loop {
        let tick = timer(FOLLOW_TICK_MS);
        match select(events.next(), tick).await {
            Either::Left((ev, _)) => return ev,
            Either::Right(_) => continue,
        }
    }
}

/// A request identical to one in flight: the same answer, from the start, without another provider call.
pub(super) async fn follow(
    flight: cache::flight::FlightRef,
    dialect: Dialect,
    c: &canonical::ChatRequest,
    now_ms: u64,
    timer: Timer,
    recorder: Recorder,
) -> Result<Response, GatewayError> {
    let mut events = cache::flight::Follow::new(flight);
    if !c.stream {
        let mut rec = cache::answer::Recorder::default();
        while let Some(ev) = next_followed(&mut events, &timer).await {
            rec.observe(&ev?);
        }
        let answer = rec.into_answer().ok_or_else(|| {
            GatewayError::new(
                ErrorCode::CoalescedLeaderFailed,
                "the request being followed did not complete",
            )
        })?;
        return Ok(Response::json(
            200,
            dialect.render_response(&answer, &c.model, now_ms),
        ));
    }
    // The first event decides the status, as for a provider stream.
    let first = match next_followed(&mut events, &timer).await {
        Some(Ok(ev)) => ev,
        Some(Err(e)) => return Err(e),
        None => {
            return Err(GatewayError::new(
                ErrorCode::CoalescedLeaderFailed,
                "the request being followed produced nothing",
            ))
        }
    };
    let mut enc = dialect.stream_encoder(&c.model, c.include_usage, now_ms);
    let mut pending = Vec::new();
    enc.encode_all(std::slice::from_ref(&first), &mut pending);
    let state = (events, enc, Some(pending), false, (timer, recorder));
    let body = stream::unfold(
        state,
        |(mut events, mut enc, pending, done, (timer, recorder))| async move {
            if let Some(p) = pending {
                return Some((Ok(p), (events, enc, None, done, (timer, recorder))));
            }
            if done {
                return None;
            }
            let mut out = Vec::new();
            let finished = match next_followed(&mut events, &timer).await {
                Some(Ok(ev)) => {
                    enc.encode_all(std::slice::from_ref(&ev), &mut out);
                    false
                }
                Some(Err(e)) => {
                    recorder.stream_failed(e.code);
                    enc.fail(&e, &mut out);
                    true
                }
                None => {
                    enc.finish(&mut out);
                    true
                }
            };
            Some((Ok(out), (events, enc, None, finished, (timer, recorder))))
        },
    );
    Ok(Response::event_stream(Box::pin(body)))
}
