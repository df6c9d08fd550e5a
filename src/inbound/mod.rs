//! Client dialects: how requests are read and how answers and errors are written back.

pub mod anthropic;
mod anthropic_request;
pub mod openai;
mod openai_request;

use crate::canonical::{ChatResponse, StreamEvent};
use crate::error::GatewayError;

/// The API a client speaks, decided by the path it called. Errors are always answered in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Anthropic,
}

/// Longest model name a client may send.
pub const MAX_MODEL_NAME: usize = 256;

/// A client-supplied model name: 1 to 256 bytes of ASCII letters, digits and `. _ - : / @ +`, with no empty,
/// `.` or `..` segment between slashes. That covers aliases and every provider's model ids (Bedrock ARNs and
/// inference profiles, `org/model` hosts, `llama3.1:8b`), and keeps names out of headers and URLs unharmed.
pub fn check_model_name(model: &str) -> Result<(), &'static str> {
    if model.is_empty() || model.len() > MAX_MODEL_NAME {
        return Err("must be 1 to 256 characters long");
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b".-_:/@+".contains(&b);
    if !model.bytes().all(allowed) {
        return Err("may only contain ASCII letters, digits and . _ - : / @ +");
    }
    if model
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err("may not contain empty, `.` or `..` path segments");
    }
    Ok(())
}

impl Dialect {
    pub fn error_body(self, e: &GatewayError) -> Vec<u8> {
        match self {
            Dialect::OpenAi => openai::error_body(e),
            Dialect::Anthropic => anthropic::error_body(e),
        }
    }

    /// A complete answer. `model` is the name the client asked for; `now_ms` dates OpenAI's `created`.
    pub fn render_response(self, resp: &ChatResponse, model: &str, now_ms: u64) -> Vec<u8> {
        match self {
            Dialect::OpenAi => openai::render_response(resp, now_ms / 1000),
            Dialect::Anthropic => anthropic::render_response(resp, model),
        }
    }

    pub fn stream_encoder(self, model: &str, include_usage: bool, now_ms: u64) -> Encoder {
        match self {
            Dialect::OpenAi => {
                Encoder::OpenAi(openai::StreamEncoder::new(now_ms / 1000, include_usage))
            }
            Dialect::Anthropic => Encoder::Anthropic(anthropic::StreamEncoder::new(model)),
        }
    }
}

/// Writes canonical stream events in a client dialect.
pub enum Encoder {
    OpenAi(openai::StreamEncoder),
    Anthropic(anthropic::StreamEncoder),
}

impl Encoder {
    pub fn encode_all(&mut self, events: &[StreamEvent], out: &mut Vec<u8>) {
        for ev in events {
            match self {
                Encoder::OpenAi(e) => e.encode(ev, out),
                Encoder::Anthropic(e) => e.encode(ev, out),
            }
        }
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi(e) => e.finish(out),
            Encoder::Anthropic(e) => e.finish(out),
        }
    }

    /// Ends the stream with an error event in the dialect's own shape.
    pub fn fail(&mut self, err: &GatewayError, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi(e) => e.fail(err, out),
            Encoder::Anthropic(e) => e.fail(err, out),
        }
    }
}
