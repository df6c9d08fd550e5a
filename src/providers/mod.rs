//! Provider wire formats. An OpenAI-compatible host is configuration, not a module; only providers with a
//! different wire format get one.

pub mod openai_compat;
