//! A provider stream translated into the client's dialect as it arrives: each upstream chunk is decoded into
//! canonical events and re-encoded at once, never buffered to the end.

use crate::canonical::StreamEvent;
use crate::error::{ErrorCode, GatewayError};
use crate::http::{ByteStream, StreamError};
use crate::inbound::Encoder;
use crate::providers::Decoder;
use crate::record::Recorder;
use core::pin::Pin;
use core::task::{Context, Poll};
use futures_util::Stream;

pub struct Translate {
    inner: ByteStream,
    decoder: Decoder,
    encoder: Encoder,
    /// Output already produced (the events read before the response was committed).
    pending: Vec<u8>,
    finished: bool,
    recorder: Recorder,
}

/// Notes what the record needs from events on their way to the client: the provider's usage.
pub fn observe(events: &[StreamEvent], recorder: &Recorder) {
    for ev in events {
        if let StreamEvent::Usage(u) = ev {
            recorder.usage((*u).into());
        }
    }
}

impl Translate {
    pub fn new(
        inner: ByteStream,
        decoder: Decoder,
        encoder: Encoder,
        pending: Vec<u8>,
        recorder: Recorder,
    ) -> Self {
        Translate {
            inner,
            decoder,
            encoder,
            pending,
            finished: false,
            recorder,
        }
    }
}

impl Stream for Translate {
    type Item = Result<Vec<u8>, StreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if !this.pending.is_empty() {
            return Poll::Ready(Some(Ok(std::mem::take(&mut this.pending))));
        }
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            let mut out = Vec::new();
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => match this.decoder.push(&chunk) {
                    Ok(events) => {
                        observe(&events, &this.recorder);
                        this.encoder.encode_all(&events, &mut out)
                    }
                    Err(e) => {
                        this.finished = true;
                        this.recorder.stream_failed(e.code);
                        this.encoder.fail(&e, &mut out);
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    this.finished = true;
                    let e = GatewayError::new(
                        ErrorCode::UpstreamStreamError,
                        format!("provider stream failed: {e}"),
                    );
                    this.recorder.stream_failed(e.code);
                    this.encoder.fail(&e, &mut out);
                }
                Poll::Ready(None) => {
                    this.finished = true;
                    match this.decoder.end() {
                        Ok(events) => {
                            observe(&events, &this.recorder);
                            this.encoder.encode_all(&events, &mut out);
                            this.encoder.finish(&mut out);
                        }
                        Err(e) => {
                            this.recorder.stream_failed(e.code);
                            this.encoder.fail(&e, &mut out)
                        }
                    }
                }
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(out)));
            }
        }
    }
}
