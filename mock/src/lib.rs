//! `meridian-mock`: a deterministic mock LLM provider with fault injection.
//!
//! One control listener plus one listener per *region*, all on 127.0.0.1.
//! Each region serves the provider wire dialects (OpenAI Chat Completions,
//! Azure OpenAI, Anthropic Messages, Bedrock Converse and Gemini; one module
//! each, picked by path in `src/dialect.rs`) and misbehaves on demand
//! according to its [`Knobs`]. See `README.md` for the full contract.
//!
//! ```no_run
//! # async fn demo() -> Result<(), meridian_mock::MockError> {
//! let mock = meridian_mock::start(meridian_mock::MockConfig::default()).await?;
//! println!("{}", mock.announcement());
//! mock.shutdown().await;
//! # Ok(()) }
//! ```

mod anthropic;
mod azure;
mod bedrock;
mod body;
mod config;
mod content;
mod control;
mod dialect;
mod embeddings;
mod error;
mod eventstream;
mod gemini;
mod knobs;
mod openai;
mod prompt_cache;
mod region;
mod respond;
mod server;
mod state;
mod stream;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::config::{MockConfig, RegionConfig, BIND_HOST};
pub use crate::content::{fnv1a64, seeded_words, CREATED, WORDS};
pub use crate::error::MockError;
pub use crate::knobs::{Knobs, RetryAfter};

use crate::state::{MockState, RegionState};

/// A running mock. Dropping it also stops it (without waiting).
pub struct RunningMock {
    control: SocketAddr,
    regions: BTreeMap<String, SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

impl RunningMock {
    /// Address of the control API.
    pub fn control_addr(&self) -> SocketAddr {
        self.control
    }

    /// `http://127.0.0.1:PORT` of the control API.
    pub fn control_url(&self) -> String {
        url(self.control)
    }

    /// Bound address of every region.
    pub fn regions(&self) -> &BTreeMap<String, SocketAddr> {
        &self.regions
    }

    /// Bound address of one region.
    pub fn region_addr(&self, name: &str) -> Option<SocketAddr> {
        self.regions.get(name).copied()
    }

    /// `http://127.0.0.1:PORT` of one region.
    pub fn region_url(&self, name: &str) -> Option<String> {
        self.region_addr(name).map(url)
    }

    /// The one-line JSON printed by the binary:
    /// `{"control":"http://127.0.0.1:P","regions":{"name":"http://127.0.0.1:P1",…}}`.
    pub fn announcement(&self) -> String {
        let regions: Map<String, Value> = self
            .regions
            .iter()
            .map(|(name, addr)| (name.clone(), Value::String(url(*addr))))
            .collect();
        let mut top = Map::new();
        top.insert("control".into(), Value::String(self.control_url()));
        top.insert("regions".into(), Value::Object(regions));
        Value::Object(top).to_string()
    }

    /// Stops accepting, drops every open connection (including hung and
    /// streaming ones) and waits for the listeners to close.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for RunningMock {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Binds every listener (control first, then regions in name order) and
/// starts serving. Must be called inside a Tokio runtime.
pub async fn start(config: MockConfig) -> Result<RunningMock, MockError> {
    if config.regions.is_empty() {
        return Err(MockError::new("config: at least one region is required"));
    }
    let (control_listener, control) = server::bind(config.control_port, "control").await?;
    let mut bound = Vec::new();
    let mut region_states = BTreeMap::new();
    let mut regions = BTreeMap::new();
    for (name, rc) in &config.regions {
        let (listener, addr) = server::bind(rc.port, &format!("region {name:?}")).await?;
        let state = Arc::new(RegionState::new(
            name.clone(),
            rc.knobs.clone(),
            config.log_requests,
        ));
        region_states.insert(name.clone(), state.clone());
        regions.insert(name.clone(), addr);
        bound.push((listener, state));
    }
    let state = Arc::new(MockState {
        regions: region_states,
    });

    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for (listener, region) in bound {
        tasks.push(server::serve(listener, stop_rx.clone(), move |req| {
            region::handle(region.clone(), req)
        }));
    }
    tasks.push(server::serve(control_listener, stop_rx, move |req| {
        control::handle(state.clone(), req)
    }));
    Ok(RunningMock {
        control,
        regions,
        stop,
        tasks,
    })
}
