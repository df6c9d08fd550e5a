//! Shared runtime state: per-region knobs, counters and the last request.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method};
use serde_json::{Map, Value};

use crate::knobs::Knobs;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the region does with a request, decided when it arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Hang,
    Fault(u16),
    Normal,
}

pub(crate) struct LastRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl LastRequest {
    fn to_json(&self) -> Value {
        let mut headers = Map::new();
        for name in self.headers.keys() {
            let joined = self
                .headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join(", ");
            headers.insert(name.as_str().to_string(), Value::String(joined));
        }
        let body = if self.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&self.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.body).into_owned()))
        };
        let mut m = Map::new();
        m.insert("method".into(), Value::String(self.method.to_string()));
        m.insert("path".into(), Value::String(self.path.clone()));
        m.insert(
            "query".into(),
            self.query.clone().map(Value::String).unwrap_or(Value::Null),
        );
        m.insert("headers".into(), Value::Object(headers));
        m.insert("body".into(), body);
        Value::Object(m)
    }
}

pub(crate) struct RegionState {
    pub name: String,
    /// `name` as the value of the `x-mock-region` header.
    pub header_value: HeaderValue,
    pub log_requests: bool,
    initial: Arc<Knobs>,
    knobs: Mutex<Arc<Knobs>>,
    requests: AtomicU64,
    last: Mutex<Option<LastRequest>>,
}

impl RegionState {
    pub fn new(name: String, knobs: Knobs, log_requests: bool) -> RegionState {
        let initial = Arc::new(knobs);
        let header_value =
            HeaderValue::from_str(&name).unwrap_or(HeaderValue::from_static("invalid-name"));
        RegionState {
            name,
            header_value,
            log_requests,
            knobs: Mutex::new(initial.clone()),
            initial,
            requests: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }

    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record(&self, last: LastRequest) {
        *lock(&self.last) = Some(last);
    }

    /// Snapshots the knobs and decides the request's fate, consuming one
    /// `fail_next` if applicable.
    ///
    /// Order: `hang` wins; then `fail_next > 0` (fault with `status`, default
    /// 500, and decrement); then `status` (only when `fail_next` is absent:
    /// with `fail_next` present, `status` just names the transient code).
    pub fn decide(&self) -> (Arc<Knobs>, Decision) {
        let mut guard = lock(&self.knobs);
        let k = guard.clone();
        if k.hang == Some(true) {
            return (k, Decision::Hang);
        }
        match k.fail_next {
            Some(n) if n > 0 => {
                let mut next = (*k).clone();
                next.fail_next = Some(n - 1);
                *guard = Arc::new(next);
                let status = k.status.unwrap_or(500);
                (k, Decision::Fault(status))
            }
            Some(_) => (k, Decision::Normal),
            None => match k.status {
                Some(s) => (k, Decision::Fault(s)),
                None => (k, Decision::Normal),
            },
        }
    }

    pub fn knobs(&self) -> Arc<Knobs> {
        lock(&self.knobs).clone()
    }

    pub fn set_knobs(&self, knobs: Knobs) {
        *lock(&self.knobs) = Arc::new(knobs);
    }

    /// Merges under the lock so concurrent merges do not lose updates.
    pub fn merge_knobs(&self, patch: Map<String, Value>) -> Result<Arc<Knobs>, String> {
        let mut guard = lock(&self.knobs);
        let merged = Arc::new(guard.merged(patch)?);
        *guard = merged.clone();
        Ok(merged)
    }

    pub fn reset(&self) {
        *lock(&self.knobs) = self.initial.clone();
        *lock(&self.last) = None;
        self.requests.store(0, Ordering::Relaxed);
    }

    pub fn stats_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "requests".into(),
            Value::from(self.requests.load(Ordering::Relaxed)),
        );
        let last = lock(&self.last).as_ref().map(LastRequest::to_json);
        m.insert("last_request".into(), last.unwrap_or(Value::Null));
        Value::Object(m)
    }
}

pub(crate) struct MockState {
    pub regions: BTreeMap<String, Arc<RegionState>>,
}

impl MockState {
    pub fn stats_json(&self) -> Value {
        let regions: Map<String, Value> = self
            .regions
            .iter()
            .map(|(name, r)| (name.clone(), r.stats_json()))
            .collect();
        let mut m = Map::new();
        m.insert("regions".into(), Value::Object(regions));
        Value::Object(m)
    }

    pub fn reset(&self) {
        for r in self.regions.values() {
            r.reset();
        }
    }
}
