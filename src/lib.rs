//! Meridian: a latency-aware LLM router for the CDN edge.
//!
//! Everything except [`edge`] is plain Rust that builds and is tested on the host; the edge glue adapts the
//! Workers runtime to the [`platform::Platform`] trait and hands each request to [`gateway::handle`].
#![cfg_attr(test, allow(clippy::disallowed_methods))] // the one-reader rule is for what ships

pub mod analytics;
pub mod auth;
pub mod browser_token;
pub mod cache;
pub mod canonical;
pub mod config;
pub mod cors;
pub mod error;
pub mod gateway;
pub mod hmac;
pub mod http;
pub mod idle;
pub mod inbound;
pub mod json;
pub mod key_hash;
pub mod lease;
pub mod ledger;
pub mod limits;
pub mod passthrough;
pub mod platform;
pub mod pricing;
pub mod providers;
pub mod ratelimit;
pub mod record;
pub mod regions;
pub mod routing;
pub mod scrub;
pub mod shadow;
pub mod sse;
pub mod translate;
pub mod url;

#[cfg(target_arch = "wasm32")]
mod edge;
