//! Chat (`POST /v1/chat/completions`, `POST /v1/messages`) as an [`Operation`]: the request is built for each
//! provider kind (OpenAI-dialect bodies pass through untouched to OpenAI-wire providers), whole answers are checked
//! and rendered in the client's dialect, streams are committed on their first content, and answers are cached and
//! shared with identical requests in flight.

use super::lifecycle::timeout;
use super::operation::{Lookup, Operation, Prepared, Whole, Wire};
use super::*;
use crate::pricing::Quote;
use crate::providers::openai_wire;

/// One chat request as admitted.
pub(super) struct Chat {
    pub(super) inbound: ClientRequest,
    /// Built on first need: only deployments that do not speak the client's wire format need it.
    canonical: OnceCell<canonical::ChatRequest>,
    /// Set when this request leads a cache flight: taken by the attempt that commits.
    sink: RefCell<Option<Sink>>,
    /// The model drops fields a translated deployment has no equivalent for, instead of refusing them.
    drop_unsupported: bool,
}

impl Chat {
    pub(super) fn new(inbound: ClientRequest, drop_unsupported: bool) -> Self {
        Chat {
            inbound,
            canonical: OnceCell::new(),
            sink: RefCell::new(None),
            drop_unsupported,
        }
    }

    /// The client's fields `dep` has no equivalent for (with values other than their defaults): refused, or
    /// dropped when the model says so (then returned, for `x-meridian-dropped-params`).
    fn unsupported(&self, dep: &Deployment) -> Result<Vec<String>, GatewayError> {
        let fields = providers::params::unsupported(
            self.inbound.dialect(),
            self.inbound.body(),
            &dep.provider.kind,
        );
        if fields.is_empty() || self.drop_unsupported {
            return Ok(fields);
        }
        Err(GatewayError::new(
            ErrorCode::UnsupportedParameter,
            format!(
                "{} cannot be sent to deployment {} ({} has no equivalent for the value given); set \
                 `drop_unsupported = true` on the model to drop such fields instead",
                fields
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                dep.id(),
                dep.provider.kind.name(),
            ),
        ))
    }

    /// Names the fields dropped for a translated deployment, if any.
    fn note_dropped(&self, dep: &Deployment, wire: Wire, resp: &mut Response) {
        if wire == Wire::Passthrough || !self.drop_unsupported {
            return;
        }
        if let Ok(fields) = self.unsupported(dep) {
            if !fields.is_empty() {
                resp.headers
                    .insert("x-meridian-dropped-params", fields.join(","));
            }
        }
    }

    fn canonical(&self) -> Result<&canonical::ChatRequest, GatewayError> {
        match &self.inbound {
            ClientRequest::Anthropic(m) => m.canonical.as_deref().map_err(Clone::clone),
            ClientRequest::Responses(r) => Ok(&r.canonical),
            ClientRequest::OpenAi(chat) => {
                if let Some(c) = self.canonical.get() {
                    return Ok(c);
                }
                let c = chat.to_canonical()?;
                Ok(self.canonical.get_or_init(|| c))
            }
        }
    }

    /// Whether the client's body can go to `dep` untranslated: when `dep` speaks the client's wire format. Not an
    /// OpenAI stream whose cached copy needs usage the client did not ask for: then the provider is asked for it
    /// and the client's view is re-encoded.
    fn wire(&self, dep: &Deployment) -> Wire {
        let same = match &self.inbound {
            ClientRequest::OpenAi(chat) => {
                let leads_cache = self.sink.borrow().is_some();
                dep.provider.kind.is_openai_wire()
                    && !(chat.stream && !chat.include_usage() && leads_cache)
            }
            ClientRequest::Anthropic(_) => dep.provider.kind == ProviderKind::Anthropic,
            // Conversations are Meridian's (stored, continued by `previous_response_id`): always translated.
            ClientRequest::Responses(_) => false,
        };
        if same {
            Wire::Passthrough
        } else {
            Wire::Translated
        }
    }

    /// An answer in the client's shape (a Responses answer with its id and what it echoes of the request).
    fn render(&self, answer: &canonical::ChatResponse, model: &str, now_ms: u64) -> Vec<u8> {
        match &self.inbound {
            ClientRequest::Responses(r) => {
                serde_json::to_vec(&crate::inbound::responses::render_response(
                    answer,
                    &r.id,
                    model,
                    now_ms / 1000,
                    &r.echo,
                ))
                .unwrap_or_default()
            }
            _ => self
                .inbound
                .dialect()
                .render_response(answer, model, now_ms),
        }
    }

    /// The writer of a stream in the client's shape, its final usage saying what the answer cost.
    fn encoder(
        &self,
        model: &str,
        include_usage: bool,
        now_ms: u64,
        quote: crate::pricing::Quote,
    ) -> crate::inbound::Encoder {
        let mut encoder = match &self.inbound {
            ClientRequest::Responses(r) => crate::inbound::Encoder::Responses(Box::new(
                crate::inbound::responses::StreamEncoder::new(
                    &r.id,
                    model,
                    now_ms / 1000,
                    r.echo.clone(),
                ),
            )),
            _ => self
                .inbound
                .dialect()
                .stream_encoder(model, include_usage, now_ms),
        };
        encoder.quote(quote);
        encoder
    }

    /// Stores a committed whole answer if this request leads a cache flight; a note for the client when it was
    /// too large to store.
    fn store(&self, dep: &Deployment, answer: canonical::ChatResponse) -> Option<&'static str> {
        let mut sink = self.sink.borrow_mut().take()?;
        let store = sink.store;
        sink.set_deployment(dep.id());
        let stored = sink.complete(answer, false);
        (store && !stored).then_some("too-large-to-store")
    }
}

impl Operation for Chat {
    fn model(&self) -> &str {
        self.inbound.model()
    }

    fn stream(&self) -> bool {
        self.inbound.stream()
    }

    fn prepare(
        &self,
        dep: &Deployment,
        creds: &Credentials,
        now_ms: u64,
    ) -> Result<Prepared, GatewayError> {
        let wire = self.wire(dep);
        let upstream = match (&self.inbound, wire) {
            // Same wire format both sides: forward the client's bytes, no translation.
            (ClientRequest::OpenAi(chat), Wire::Passthrough) => {
                openai_compat::passthrough_request(dep, chat, creds)
            }
            (ClientRequest::Anthropic(m), Wire::Passthrough) => {
                providers::anthropic::passthrough_request(dep, m, creds)
            }
            (ClientRequest::OpenAi(_), Wire::Translated) => {
                self.unsupported(dep)?;
                // What the canonical request cannot hold, only a passthrough deployment can serve.
                let c = self
                    .canonical()
                    .map_err(|e| GatewayError::new(ErrorCode::UnsupportedInput, e.message))?;
                providers::build_request(dep, c, creds, now_ms)?
            }
            (ClientRequest::Anthropic(_) | ClientRequest::Responses(_), Wire::Translated) => {
                self.unsupported(dep)?;
                providers::build_request(dep, self.canonical()?, creds, now_ms)?
            }
            (ClientRequest::Responses(_), Wire::Passthrough) => {
                return Err(GatewayError::new(
                    ErrorCode::InternalError,
                    "a Responses request is never passed through",
                ))
            }
        };
        Ok(Prepared { upstream, wire })
    }

    fn whole(
        &self,
        dep: &Deployment,
        wire: Wire,
        body: Vec<u8>,
        headers: &Headers,
        now_ms: u64,
    ) -> Result<Whole, GatewayError> {
        let (mut response, usage, note) = match wire {
            Wire::Passthrough => {
                // Passed through as the provider's bytes, but never as garbage: a 200 must carry an answer of the
                // format (`{}` or an error object is this provider's failure, and is failed over).
                let (usage, answer) = match &self.inbound {
                    ClientRequest::OpenAi(_) => {
                        let Some(usage) = openai_wire::chat_completion_usage(&body) else {
                            return Err(GatewayError::new(
                                ErrorCode::UpstreamMalformed,
                                format!(
                                    "provider {} answered a malformed response (not a chat completion)",
                                    dep.provider.name
                                ),
                            ));
                        };
                        let answer = self
                            .sink
                            .borrow()
                            .is_some()
                            .then(|| openai_compat::parse_response(&body).ok())
                            .flatten();
                        (usage, answer)
                    }
                    ClientRequest::Anthropic(_) => {
                        let answer = providers::anthropic::parse_response(&body)?;
                        (
                            answer.usage.map(Into::into).unwrap_or_default(),
                            Some(answer),
                        )
                    }
                    ClientRequest::Responses(_) => {
                        return Err(GatewayError::new(
                            ErrorCode::InternalError,
                            "a Responses request is never passed through",
                        ))
                    }
                };
                let note = answer.and_then(|a| self.store(dep, a));
                (Response::json(200, body), usage, note)
            }
            Wire::Translated => {
                let id = response_id(headers, now_ms);
                let answer = providers::parse_response(dep, &body, &id)?;
                let usage = answer.usage.map(Into::into).unwrap_or_default();
                let rendered = self.render(&answer, &dep.model, now_ms);
                (
                    Response::json(200, rendered),
                    usage,
                    self.store(dep, answer),
                )
            }
        };
        if let Some(n) = note {
            response.headers.insert("x-meridian-cache-note", n);
        }
        self.note_dropped(dep, wire, &mut response);
        Ok(Whole { response, usage })
    }

    async fn stream_from<P: Platform>(
        &self,
        platform: &P,
        dep: &Deployment,
        wire: Wire,
        until: Deadline,
        mut resp: UpstreamResponse,
        recorder: &Recorder,
    ) -> Result<Response, GatewayError> {
        // A cache leader records the stream as it passes; the recording only stores if this attempt commits.
        let slot = if self.sink.borrow().is_some() {
            let slot = cache::HandoffRef::default();
            let id = response_id(&resp.headers, until.start_ms);
            let decoder = Decoder::new(&dep.provider.kind, &id, &dep.model);
            let body = std::mem::replace(&mut resp.body, Box::pin(stream::empty()));
            resp.body = Box::pin(Recording::new(
                body,
                decoder,
                slot.clone(),
                platform.background(),
            ));
            Some(slot)
        } else {
            None
        };
        let r = match wire {
            Wire::Passthrough => match &self.inbound {
                ClientRequest::OpenAi(chat) => {
                    // The usage Meridian asked for is not the client's unless it asked too.
                    let check = OpenAiCheck::new(Quote::of(dep.price), !chat.include_usage());
                    let pass =
                        SsePassthrough::checked(resp.body, check).with_recorder(recorder.clone());
                    apart(passthrough_stream(platform, dep, until, pass)).await?
                }
                ClientRequest::Anthropic(_) => {
                    let pass = SsePassthrough::checked(
                        resp.body,
                        AnthropicCheck::new(Quote::of(dep.price)),
                    )
                    .with_recorder(recorder.clone());
                    apart(passthrough_stream(platform, dep, until, pass)).await?
                }
                ClientRequest::Responses(_) => {
                    return Err(GatewayError::new(
                        ErrorCode::InternalError,
                        "a Responses request is never passed through",
                    ))
                }
            },
            Wire::Translated => {
                let c = self.canonical()?;
                let now = platform.now_ms();
                let id = response_id(&resp.headers, now);
                let quote = Quote::of(dep.price);
                let encoder = self.encoder(&dep.model, c.include_usage, now, quote);
                let decoder = Decoder::new(&dep.provider.kind, &id, &dep.model);
                apart(translated_stream(
                    platform,
                    dep,
                    until,
                    resp,
                    decoder,
                    encoder,
                    recorder.clone(),
                ))
                .await?
            }
        };
        // Committed: the recording may store once the stream completes.
        if let (Some(sink), Some(slot)) = (self.sink.borrow_mut().take(), &slot) {
            cache::attach(slot, sink, dep.id());
        }
        let mut r = r;
        self.note_dropped(dep, wire, &mut r);
        Ok(r)
    }

    async fn lookup<P: Platform>(
        &self,
        platform: &P,
        state: &State,
        model: &Model,
        settings: CacheSettings,
        ctl: &CacheControl,
        recorder: &Recorder,
    ) -> Result<Lookup, GatewayError> {
        // A request the canonical form cannot hold has no cache key; a passthrough deployment may still serve it.
        let Ok(c) = self.canonical() else {
            return Ok(Lookup::Bypass);
        };
        let sampled = c.temperature.is_none_or(|t| t != 0.0);
        let body = match &self.inbound {
            ClientRequest::OpenAi(chat) => Some(cache::key::Body::OpenAi(chat.body.object())),
            ClientRequest::Anthropic(m) => Some(cache::key::Body::Anthropic(
                m.body.object(),
                m.beta.as_deref(),
            )),
            // Everything of a Responses request that changes the answer is in the canonical request (the stored
            // conversation included); each answer gets its own id when it is replayed.
            ClientRequest::Responses(_) => None,
        };
        if (sampled && !settings.nonzero_temperature)
            || (ctl.no_cache && ctl.no_store)
            || body.as_ref().and_then(cache::key::unreplayable).is_some()
        {
            return Ok(Lookup::Bypass);
        }
        let key = cache::key::cache_key(&ctl.namespace, &model.name, c, body.as_ref());
        let now = platform.now_ms();
        // A cached answer costs nothing; what it saved is what it cost when it was made.
        let cached = |entry: &cache::answer::Entry| {
            let price = model
                .deployments()
                .iter()
                .find(|d| d.id() == entry.deployment)
                .and_then(|d| d.price);
            let usage = entry.answer.usage.map(crate::record::TokenUsage::from);
            let saved_usd = price
                .zip(usage)
                .and_then(|(p, u)| crate::pricing::cost(&u, &p));
            recorder.update(|r| r.pricing = Pricing::Cached { saved_usd });
        };
        let hit = |entry: &cache::answer::Entry| {
            cached(entry);
            let mut r = replay(self, c, entry, now);
            r.headers.insert("x-meridian-cache", "HIT");
            r.headers.insert(
                "age",
                (now.saturating_sub(entry.created_ms) / 1000).to_string(),
            );
            Lookup::Answered(r, "HIT")
        };
        if !ctl.no_cache {
            if let Some(entry) = state.cache.memory.borrow().get(&key, now) {
                return Ok(hit(&entry));
            }
            let flight = state.cache.flights.borrow().get(&key).cloned();
            if let Some(flight) = flight {
                // Said before following, so that a follower whose leader fails is recorded as one too.
                recorder.update(|r| {
                    r.cache = Some("COALESCED");
                    // The request it follows pays (and records what it cost).
                    r.pricing = Pricing::Cached { saved_usd: None };
                });
                let mut r =
                    follow(flight, self, c, now, platform.timer(), recorder.clone()).await?;
                r.headers.insert("x-meridian-cache", "COALESCED");
                return Ok(Lookup::Answered(r, "COALESCED"));
            }
        }
        let ttl_s = ctl.ttl_s.unwrap_or(settings.ttl_s);
        // Registered before the KV read, so identical requests arriving meanwhile follow this one.
        let sink = Sink::start(
            state.cache.clone(),
            platform.kv_writer(),
            key.clone(),
            ttl_s,
            String::new(),
            now,
            !ctl.no_store,
        );
        if !ctl.no_cache {
            if let Some(Some(json)) =
                deadline(platform, KV_READ_WAIT_MS, platform.kv_get(&key)).await
            {
                if let Some(entry) = cache::answer::Entry::from_json(&json) {
                    let expires = entry.created_ms + ttl_s * 1000;
                    let size = json.len();
                    let entry = Rc::new(entry);
                    sink.resolve(&entry);
                    state
                        .cache
                        .memory
                        .borrow_mut()
                        .insert(key, entry.clone(), size, expires);
                    return Ok(hit(&entry));
                }
            }
        }
        *self.sink.borrow_mut() = Some(sink);
        Ok(Lookup::Miss)
    }

    fn failed(&self, err: &GatewayError) {
        if let Some(sink) = self.sink.borrow_mut().take() {
            sink.fail(err.clone());
        }
    }
}

/// The provider's request id where it sends one in a header, else one derived from the clock.
pub(super) fn response_id(headers: &Headers, now_ms: u64) -> String {
    ["x-amzn-requestid", "request-id", "x-request-id"]
        .iter()
        .find_map(|h| headers.get(h))
        .filter(|v| {
            v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(|v| format!("msg_{v}"))
        .unwrap_or_else(|| format!("msg_meridian_{now_ms:x}"))
}

/// Holds the response until the provider has produced content (not just the role chunk), so that a provider
/// failing before its first token is still reported as an error status (and can be failed over), and so that
/// routing learns the real time to first token.
async fn passthrough_stream<P: Platform, C: WireCheck + Unpin + 'static>(
    platform: &P,
    dep: &Deployment,
    until: Deadline,
    mut pass: SsePassthrough<C>,
) -> Result<Response, GatewayError> {
    let first = async {
        loop {
            match pass.next_raw().await {
                // Ended before any content (a JSON body, or only the role chunk): nothing usable was produced,
                // which is this provider's failure (failover), not an empty answer.
                None => return Err(empty_stream(dep)),
                Some(Err(e)) => return Err(stream_failed(dep, &e)),
                Some(Ok(chunk)) => {
                    if pass.accept(&chunk)? {
                        return Ok(());
                    }
                }
            }
        }
    };
    match until.run(platform, first).await {
        None => return Err(timeout(dep, until.ms)),
        Some(Ok(())) => {}
        // The provider ended (or failed) before any content: an error status, nothing was sent yet.
        Some(Err(e)) => return Err(e),
    }
    // What was checked so far is held by `pass`, and forwarded first.
    Ok(Response::event_stream(Box::pin(pass)))
}

fn empty_stream(dep: &Deployment) -> GatewayError {
    GatewayError::new(
        ErrorCode::UpstreamEmptyStream,
        format!(
            "provider {} closed the stream without data",
            dep.provider.name
        ),
    )
}

/// Decodes until the first canonical events exist (or the provider fails) before committing to a 200.
async fn translated_stream<P: Platform>(
    platform: &P,
    dep: &Deployment,
    until: Deadline,
    resp: UpstreamResponse,
    mut decoder: Decoder,
    mut encoder: crate::inbound::Encoder,
    recorder: Recorder,
) -> Result<Response, GatewayError> {
    let mut body = resp.body;
    let mut events = Vec::new();
    let first = async {
        loop {
            match body.next().await {
                None => {
                    events.extend(decoder.end()?);
                    return Ok(true);
                }
                Some(Err(e)) => return Err(stream_failed(dep, &e)),
                Some(Ok(chunk)) => {
                    events.extend(decoder.push(&chunk)?);
                    // Committed on the first content, not on the provider's opening message (nor the count
                    // of the prompt some providers send with it).
                    let content = |e: &StreamEvent| match e {
                        StreamEvent::Start { .. } | StreamEvent::Usage(_) => false,
                        // Reasoning is content: a client of either dialect sees it, and a model may reason for
                        // long before it answers.
                        StreamEvent::Text(_)
                        | StreamEvent::Reasoning(_)
                        | StreamEvent::ReasoningSignature(_)
                        | StreamEvent::ToolCallStart { .. }
                        | StreamEvent::ToolCallArgs { .. }
                        | StreamEvent::Finish(_) => true,
                    };
                    if events.iter().any(content) {
                        return Ok(false);
                    }
                }
            }
        }
    };
    let ended = match until.run(platform, first).await {
        None => return Err(timeout(dep, until.ms)),
        Some(r) => r?,
    };
    if events.is_empty() {
        return Err(empty_stream(dep));
    }
    let mut pending = Vec::new();
    crate::translate::observe(&events, &recorder);
    encoder.encode_all(&events, &mut pending);
    if ended {
        encoder.finish(&mut pending);
        let mut r = Response::event_stream(Box::pin(stream::empty()));
        r.body = Body::Bytes(pending);
        return Ok(r);
    }
    Ok(Response::event_stream(Box::pin(Translate::new(
        body, decoder, encoder, pending, recorder,
    ))))
}

fn stream_failed(dep: &Deployment, e: &StreamError) -> GatewayError {
    GatewayError::new(
        ErrorCode::UpstreamStreamError,
        format!("provider {} stream failed: {e}", dep.provider.name),
    )
}

/// Replays a cached answer in the caller's dialect and mode.
fn replay(
    chat: &Chat,
    c: &canonical::ChatRequest,
    entry: &cache::answer::Entry,
    now_ms: u64,
) -> Response {
    let mut resp = if c.stream {
        let mut enc = chat.encoder(&c.model, c.include_usage, now_ms, Quote::Free);
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
        Response::json(200, chat.render(&entry.answer, &c.model, now_ms))
    };
    let u = entry.answer.usage.unwrap_or_default();
    resp.headers
        .insert("x-meridian-deployment", entry.deployment.clone());
    resp.headers.insert("x-meridian-attempts", "0");
    resp.headers.insert(
        "x-meridian-cache-saved-tokens",
        (u.input_tokens + u.output_tokens).to_string(),
    );
    resp
}

/// How often a follower wakes on its own. The leader wakes it as events arrive, but the runtime cancels a
/// request that waits on nothing of its own (it cannot see another request's stream), so a timer is kept
/// pending.
const FOLLOW_TICK_MS: u64 = 10;

/// The next event of a flight, waking on the leader's events or the follower's own ticks.
async fn next_followed(
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
async fn follow(
    flight: cache::flight::FlightRef,
    chat: &Chat,
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
        return Ok(Response::json(200, chat.render(&answer, &c.model, now_ms)));
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
    let mut enc = chat.encoder(&c.model, c.include_usage, now_ms, Quote::Free);
    let mut pending = Vec::new();
    enc.encode_all(std::slice::from_ref(&first), &mut pending);
    let state = (events, enc, Some(pending), false, (timer, recorder));
    let body = stream::unfold(
        state,
        |(mut events, mut enc, pending, mut done, (timer, recorder))| async move {
            // Events that write nothing yet (a start, a count) are read on: a body never carries an empty chunk.
            let mut out = pending.unwrap_or_default();
            while out.is_empty() && !done {
                done = match next_followed(&mut events, &timer).await {
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
            }
            (!out.is_empty()).then_some((Ok(out), (events, enc, None, done, (timer, recorder))))
        },
    );
    Ok(Response::event_stream(Box::pin(body)))
}
