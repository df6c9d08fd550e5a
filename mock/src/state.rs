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
        // The bytes as sent, for what parsing would normalize (number text, member order).
        m.insert(
            "body_text".into(),
            Value::String(String::from_utf8_lossy(&self.body).into_owned()),
        );
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
    /// Normally handled requests seen while `tail_every` was set.
    tail_seq: AtomicU64,
    /// Requests that got the `tail_ms` delay.
    tail_hits: AtomicU64,
    /// Normally handled requests seen while `ttft_jitter_ms` was set; the
    /// seed of the jitter generator.
    jitter_seq: AtomicU64,
    /// Streams whose client went away before the end: lets a test see that a gateway stops reading (and so
    /// stops the provider) when its own client leaves.
    pub abandoned: Arc<AtomicU64>,
    /// Bytes of `raw_chunks` answers handed to the connection (at most one piece ahead of the client).
    pub raw_bytes_sent: Arc<AtomicU64>,
    last: Mutex<Option<LastRequest>>,
    pub prompt_cache: crate::prompt_cache::PromptCache,
}

/// SplitMix64: a small, fast, well-mixed generator step. The jitter of the
/// request numbered `n` (0-based) is `splitmix64(n) % (J + 1)`.
fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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
            tail_seq: AtomicU64::new(0),
            tail_hits: AtomicU64::new(0),
            jitter_seq: AtomicU64::new(0),
            abandoned: Arc::new(AtomicU64::new(0)),
            raw_bytes_sent: Arc::new(AtomicU64::new(0)),
            last: Mutex::new(None),
            prompt_cache: Default::default(),
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

    /// The extra time to first content (`tail_ms` and/or jitter) of a
    /// request that gets a normal response. Advances the tail and jitter
    /// counters (each only while its knob is set), so call it exactly once
    /// per normally handled request.
    pub fn extra_ttft_ms(&self, k: &Knobs) -> u64 {
        let mut extra = 0u64;
        if let (Some(every), Some(ms)) = (k.tail_every, k.tail_ms) {
            let n = self.tail_seq.fetch_add(1, Ordering::Relaxed) + 1;
            if n % every.max(1) == 0 {
                self.tail_hits.fetch_add(1, Ordering::Relaxed);
                extra = extra.saturating_add(ms);
            }
        }
        if let Some(j) = k.ttft_jitter_ms.filter(|&j| j > 0) {
            let n = self.jitter_seq.fetch_add(1, Ordering::Relaxed);
            let r = splitmix64(n);
            let jitter = match j.checked_add(1) {
                Some(m) => r % m,
                None => r,
            };
            extra = extra.saturating_add(jitter);
        }
        extra
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
        self.tail_seq.store(0, Ordering::Relaxed);
        self.tail_hits.store(0, Ordering::Relaxed);
        self.jitter_seq.store(0, Ordering::Relaxed);
        self.abandoned.store(0, Ordering::Relaxed);
        self.raw_bytes_sent.store(0, Ordering::Relaxed);
        self.prompt_cache.clear();
    }

    pub fn stats_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "requests".into(),
            Value::from(self.requests.load(Ordering::Relaxed)),
        );
        m.insert(
            "tail_hits".into(),
            Value::from(self.tail_hits.load(Ordering::Relaxed)),
        );
        m.insert(
            "streams_abandoned".into(),
            Value::from(self.abandoned.load(Ordering::Relaxed)),
        );
        m.insert(
            "raw_bytes_sent".into(),
            Value::from(self.raw_bytes_sent.load(Ordering::Relaxed)),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn knobs(json: serde_json::Value) -> Knobs {
        Knobs::from_json(json).unwrap()
    }

    #[test]
    fn tail_every_nth() {
        let r = RegionState::new("r".into(), Knobs::default(), false);
        let k = knobs(serde_json::json!({"tail_every": 3, "tail_ms": 300}));
        let got: Vec<u64> = (0..7).map(|_| r.extra_ttft_ms(&k)).collect();
        assert_eq!(got, [0, 0, 300, 0, 0, 300, 0]);
        assert_eq!(r.stats_json()["tail_hits"], 2);
        // Requests without the knob do not advance the counter.
        assert_eq!(r.extra_ttft_ms(&Knobs::default()), 0);
        assert_eq!(r.extra_ttft_ms(&k), 0);
        assert_eq!(r.extra_ttft_ms(&k), 300);
        r.reset();
        assert_eq!(r.stats_json()["tail_hits"], 0);
        let got: Vec<u64> = (0..3).map(|_| r.extra_ttft_ms(&k)).collect();
        assert_eq!(got, [0, 0, 300]);
        let every = knobs(serde_json::json!({"tail_every": 1, "tail_ms": 5}));
        assert_eq!(r.extra_ttft_ms(&every), 5);
        assert_eq!(r.extra_ttft_ms(&every), 5);
    }

    #[test]
    fn jitter_bounded_and_reproducible() {
        let r = RegionState::new("r".into(), Knobs::default(), false);
        let k = knobs(serde_json::json!({"ttft_jitter_ms": 20}));
        let first: Vec<u64> = (0..200).map(|_| r.extra_ttft_ms(&k)).collect();
        assert!(first.iter().all(|&j| j <= 20));
        assert!(first.iter().any(|&j| j != first[0]), "jitter varies");
        r.reset();
        let again: Vec<u64> = (0..200).map(|_| r.extra_ttft_ms(&k)).collect();
        assert_eq!(first, again, "reset restarts the same sequence");
        let huge = knobs(serde_json::json!({"ttft_jitter_ms": u64::MAX}));
        let _ = r.extra_ttft_ms(&huge);
    }
}
