//! Committing an attempt: a streamed answer once it has produced content (passed through or translated), a
//! non-streamed one once read whole and checked.

use super::*;

impl<P: Platform> Call<'_, P> {
    /// A streamed answer: committed once the provider has produced content, recorded as it passes if this request
    /// leads a cache flight.
    pub(super) async fn streamed(
        &self,
        dep: &Deployment,
        upstream: UpstreamRequest,
        start_ms: u64,
    ) -> Result<(Response, f64), Failed> {
        let (config, platform) = (self.config, self.platform);
        let until = Deadline {
            start_ms,
            ms: config.timeouts.first_byte_ms,
        };
        let resp = match until.run(platform, platform.fetch(upstream)).await {
            None => return Err(timeout(dep, until.ms).into()),
            Some(Err(e)) => return Err(unreachable(dep, &e).into()),
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
            let creds = credentials(&dep.provider, platform)?;
            return Err(upstream_error(dep, status, &headers, &body, &creds).into());
        }

        // A cache leader records the stream as it passes; the recording only stores if this attempt commits.
        let mut resp = resp;
        let slot = if self.sink.borrow().is_some() {
            let slot = cache::HandoffRef::default();
            let id = response_id(&resp.headers, start_ms);
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
        let r = if self.passthrough(dep) {
            apart(passthrough_stream(
                platform,
                dep,
                until,
                resp,
                self.recorder.clone(),
            ))
            .await?
        } else {
            let c = self.canonical()?;
            let now = platform.now_ms();
            let id = response_id(&resp.headers, now);
            let encoder = self
                .inbound
                .dialect()
                .stream_encoder(&c.model, c.include_usage, now);
            let decoder = Decoder::new(&dep.provider.kind, &id, &dep.model);
            apart(translated_stream(
                platform,
                dep,
                until,
                resp,
                decoder,
                encoder,
                self.recorder.clone(),
            ))
            .await?
        };
        // Committed: the recording may store once the stream completes.
        if let (Some(sink), Some(slot)) = (self.sink.borrow_mut().take(), &slot) {
            cache::attach(slot, sink, dep.id());
        }
        Ok((r, platform.now_ms().saturating_sub(start_ms) as f64))
    }

    /// A non-streamed answer: fetched and read whole (one platform step), checked, translated if the client
    /// speaks another wire format, and stored if this request leads a cache flight. The latency learned is to
    /// the whole answer, which for a non-streamed answer arrives with (or just after) the headers.
    pub(super) async fn whole(
        &self,
        dep: &Deployment,
        upstream: UpstreamRequest,
        start_ms: u64,
    ) -> Result<(Response, f64), Failed> {
        let (config, platform) = (self.config, self.platform);
        let (first_byte, total) = (config.timeouts.first_byte_ms, config.timeouts.total_ms);
        let resp = match platform
            .fetch_whole(upstream, first_byte, total, MAX_RESPONSE_BODY)
            .await
        {
            Err(NoResponse::Timeout) => return Err(timeout(dep, first_byte).into()),
            Err(NoResponse::Failed(e)) => return Err(unreachable(dep, &e).into()),
            Ok(r) => r,
        };
        let latency_ms = platform.now_ms().saturating_sub(start_ms) as f64;
        if !(200..300).contains(&resp.status) {
            let mut body = resp.body.unwrap_or_default();
            body.truncate(MAX_ERROR_BODY);
            let creds = credentials(&dep.provider, platform)?;
            return Err(upstream_error(dep, resp.status, &resp.headers, &body, &creds).into());
        }
        let body = match resp.body {
            Ok(b) => b,
            Err(BodyFailure::Timeout) => return Err(timeout(dep, total).into()),
            Err(BodyFailure::Failed(e)) => {
                return Err(GatewayError::new(
                    ErrorCode::UpstreamBodyError,
                    format!("provider {} response failed: {e}", dep.provider.name),
                )
                .into())
            }
        };
        let commit = |answer: canonical::ChatResponse| -> Option<&'static str> {
            let mut sink = self.sink.borrow_mut().take()?;
            let store = sink.store;
            sink.set_deployment(dep.id());
            let stored = sink.complete(answer, false);
            (store && !stored).then_some("too-large-to-store")
        };
        let (mut r, note) = if self.passthrough(dep) {
            // Passed through as the provider's bytes, but never as garbage: a 200 must carry a chat completion
            // (`{}` or an error object is this provider's failure, and is failed over).
            if !crate::providers::openai_wire::is_chat_completion(&body) {
                return Err(GatewayError::new(
                    ErrorCode::UpstreamMalformed,
                    format!(
                        "provider {} answered a malformed response (not a chat completion)",
                        dep.provider.name
                    ),
                )
                .into());
            }
            self.recorder.usage(openai_wire_usage(&body));
            let note = if self.sink.borrow().is_some() {
                openai_compat::parse_response(&body).ok().and_then(commit)
            } else {
                None
            };
            (Response::json(200, body), note)
        } else {
            let c = self.canonical()?;
            let now = platform.now_ms();
            let id = response_id(&resp.headers, now);
            let answer = providers::parse_response(dep, &body, &id)?;
            self.recorder.usage(answer.usage.into());
            let rendered = self
                .inbound
                .dialect()
                .render_response(&answer, &c.model, now);
            (Response::json(200, rendered), commit(answer))
        };
        if let Some(n) = note {
            r.headers.insert("x-meridian-cache-note", n);
        }
        Ok((r, latency_ms))
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
pub(super) async fn passthrough_stream<P: Platform>(
    platform: &P,
    dep: &Deployment,
    until: Deadline,
    resp: UpstreamResponse,
    recorder: Recorder,
) -> Result<Response, GatewayError> {
    let mut pass = SsePassthrough::new(resp.body).with_recorder(recorder);
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

pub(super) fn empty_stream(dep: &Deployment) -> GatewayError {
    GatewayError::new(
        ErrorCode::UpstreamEmptyStream,
        format!(
            "provider {} closed the stream without data",
            dep.provider.name
        ),
    )
}

/// Decodes until the first canonical events exist (or the provider fails) before committing to a 200.
pub(super) async fn translated_stream<P: Platform>(
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
                    // Committed on the first content, not on the provider's opening message.
                    if events
                        .iter()
                        .any(|e| !matches!(e, StreamEvent::Start { .. }))
                    {
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
        return Err(GatewayError::new(
            ErrorCode::UpstreamEmptyStream,
            format!(
                "provider {} closed the stream without data",
                dep.provider.name
            ),
        ));
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

pub(super) fn stream_failed(dep: &Deployment, e: &StreamError) -> GatewayError {
    GatewayError::new(
        ErrorCode::UpstreamStreamError,
        format!("provider {} stream failed: {e}", dep.provider.name),
    )
}

/// The usage of a passed-through completion, read without building it.
fn openai_wire_usage(body: &[u8]) -> record::TokenUsage {
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(default)]
        usage: Option<crate::providers::openai_wire::WireUsage>,
    }
    match serde_json::from_slice::<Shape>(body)
        .ok()
        .and_then(|s| s.usage)
    {
        Some(u) => record::TokenUsage {
            input: u.prompt_tokens,
            output: u.completion_tokens,
            ..record::TokenUsage::default()
        },
        None => record::TokenUsage::default(),
    }
}
