//! The policies compared: the oracle, the real router, round-robin, LiteLLM-style greedy, and any of them as
//! several isolates.

use crate::world::{hash, World, DEPLOYMENTS, ISOLATES, ISOLATE_LIFE_MS, KV_DELAY_MS, START_MS};
use meridian::config::Deployment;
use meridian::routing::{Location, Policy, Router, Shape};
use std::collections::{HashMap, VecDeque};

/// What a gateway learns, delivered at the simulated time it happens.
#[derive(Debug, Clone, Copy)]
pub enum Ev {
    Started(usize),
    Success(usize, f64),
    Failure(usize),
    Hedged(usize),
    AtLeast(usize, f64),
}

pub trait Routing {
    /// Deployment order for request `req` arriving at `now`, and when to hedge.
    fn plan(&mut self, req: usize, now: u64) -> (Vec<usize>, Option<u64>);
    /// `ev` happened to request `req` at `now`.
    fn observe(&mut self, ev: Ev, req: usize, now: u64);
}

pub struct Oracle<'a, 'w> {
    pub world: &'a World<'w>,
}

impl Routing for Oracle<'_, '_> {
    fn plan(&mut self, req: usize, now: u64) -> (Vec<usize>, Option<u64>) {
        (
            self.world.truth_order(now as f64, self.world.buckets[req]),
            None,
        )
    }
    fn observe(&mut self, _ev: Ev, _req: usize, _now: u64) {}
}

const TRACE_EVERY: usize = 10;

pub struct Meridian<'a> {
    pub router: Router,
    pub deps: &'a [Deployment],
    pub buckets: &'a [usize],
    pub loc: Location,
    pub policy: Policy,
    /// `--trace`: print what the router believes every 10th request, under this label.
    pub trace: Option<String>,
}

impl Meridian<'_> {
    fn shape(&self, req: usize) -> Shape {
        Shape {
            stream: true,
            bucket: self.buckets[req],
        }
    }
}

impl Routing for Meridian<'_> {
    fn plan(&mut self, req: usize, now: u64) -> (Vec<usize>, Option<u64>) {
        let allowed = vec![true; self.deps.len()];
        let shape = self.shape(req);
        let p = self
            .router
            .plan(self.deps, &allowed, &self.loc, shape, self.policy, now);
        if let Some(label) = self.trace.as_deref().filter(|_| req % TRACE_EVERY == 0) {
            let status = self
                .router
                .status(std::iter::once(("m", self.deps)), &self.loc, now);
            let beliefs: Vec<String> = status.models["m"]
                .iter()
                .zip(DEPLOYMENTS)
                .map(|(d, (short, ..))| {
                    format!(
                        "{short} {}±{}ms/{} n={}",
                        d.expected_ttft_ms, d.doubt_ttft_ms, d.health, d.samples
                    )
                })
                .collect();
            eprintln!(
                "{label} req {req:>5} t {:>6.1}s order {:?} {} hedge {:?} | {}",
                (now - START_MS) as f64 / 1000.0,
                p.order,
                p.reason.as_str(),
                p.hedge_after_ms,
                beliefs.join(", ")
            );
        }
        (p.order, p.hedge_after_ms)
    }

    fn observe(&mut self, ev: Ev, req: usize, now: u64) {
        let shape = self.shape(req);
        let r = &mut self.router;
        match ev {
            Ev::Started(d) => r.started(&self.deps[d], now),
            Ev::Success(d, ms) => r.success(&self.deps[d], shape, ms, now),
            Ev::Failure(d) => r.failure(&self.deps[d], "503 Service Unavailable", None, now),
            Ev::Hedged(d) => r.hedged(&self.deps[d]),
            Ev::AtLeast(d, ms) => r.at_least(&self.deps[d], shape, ms, now),
        }
    }
}

pub struct RoundRobin {
    pub n: usize,
    pub next: usize,
}

impl Routing for RoundRobin {
    fn plan(&mut self, _req: usize, _now: u64) -> (Vec<usize>, Option<u64>) {
        let start = self.next;
        self.next = (self.next + 1) % self.n;
        ((0..self.n).map(|k| (start + k) % self.n).collect(), None)
    }
    fn observe(&mut self, _ev: Ev, _req: usize, _now: u64) {}
}

/// Lowest mean of the last 10 successful TTFTs; untried deployments first; failures are not recorded.
pub struct LiteLlmStyle {
    pub recent: Vec<VecDeque<f64>>,
}

impl LiteLlmStyle {
    pub fn new(n: usize) -> Self {
        LiteLlmStyle {
            recent: vec![VecDeque::new(); n],
        }
    }
}

impl Routing for LiteLlmStyle {
    fn plan(&mut self, _req: usize, _now: u64) -> (Vec<usize>, Option<u64>) {
        let score = |d: usize| {
            let r = &self.recent[d];
            if r.is_empty() {
                f64::NEG_INFINITY
            } else {
                r.iter().sum::<f64>() / r.len() as f64
            }
        };
        let mut v: Vec<usize> = (0..self.recent.len()).collect();
        v.sort_by(|&a, &b| score(a).total_cmp(&score(b)).then(a.cmp(&b)));
        (v, None)
    }

    fn observe(&mut self, ev: Ev, _req: usize, _now: u64) {
        if let Ev::Success(d, ms) = ev {
            let r = &mut self.recent[d];
            if r.len() == 10 {
                r.pop_front();
            }
            r.push_back(ms);
        }
    }
}

/// A policy that can start over as a fresh isolate and, if it has any, share what it learned.
pub trait Isolate: Routing {
    /// What a fresh isolate would load; `None` if this policy keeps nothing across isolates.
    fn persist(&mut self, _now: u64) -> Option<String> {
        None
    }
    fn load(&mut self, _blob: &str, _now: u64) {}
}

impl Isolate for LiteLlmStyle {}

impl Isolate for Meridian<'_> {
    /// As `gateway/estimates.rs`: written when something was learned and the last write is 10 s old.
    fn persist(&mut self, now: u64) -> Option<String> {
        let r = &mut self.router;
        (r.dirty && now.saturating_sub(r.last_persist_ms) >= 10_000).then(|| {
            r.dirty = false;
            r.last_persist_ms = now;
            r.export()
        })
    }
    fn load(&mut self, blob: &str, now: u64) {
        self.router.import(blob);
        self.router.last_persist_ms = now;
    }
}

/// Requests spread over `ISOLATES` isolates (by a hash of the request), each replaced by a fresh one every
/// `ISOLATE_LIFE_MS` (staggered); a fresh isolate loads the newest write to one KV key that is at least
/// `KV_DELAY_MS` old, as the gateway does on its first request.
pub type Fresh<'a> = dyn FnMut(u64) -> Box<dyn Isolate + 'a> + 'a;

pub struct Isolates<'a, 'f> {
    fresh: &'f mut Fresh<'a>,
    /// Each isolate and when it was born.
    isolates: Vec<(Box<dyn Isolate + 'a>, u64)>,
    /// Which isolate (by birth order) planned each request.
    planned_by: HashMap<usize, u64>,
    /// Birth order of each current isolate.
    ids: Vec<u64>,
    /// (visible from, blob), in write order.
    kv: Vec<(u64, String)>,
    seed: u64,
    generation: u64,
}

impl<'a, 'f> Isolates<'a, 'f> {
    pub fn new(fresh: &'f mut Fresh<'a>, seed: u64) -> Self {
        let isolates = (0..ISOLATES as u64)
            .map(|k| {
                // Staggered: isolate k was born k/ISOLATES of a life before the start.
                let born = START_MS - k * ISOLATE_LIFE_MS / ISOLATES as u64;
                (fresh(hash(&[seed, k])), born)
            })
            .collect();
        Isolates {
            fresh,
            isolates,
            planned_by: HashMap::new(),
            ids: (0..ISOLATES as u64).collect(),
            kv: Vec::new(),
            seed,
            generation: ISOLATES as u64,
        }
    }

    fn which(&self, req: usize) -> usize {
        (hash(&[self.seed, req as u64, 0x150]) % ISOLATES as u64) as usize
    }
}

impl Routing for Isolates<'_, '_> {
    fn plan(&mut self, req: usize, now: u64) -> (Vec<usize>, Option<u64>) {
        let k = self.which(req);
        if now >= self.isolates[k].1 + ISOLATE_LIFE_MS {
            self.generation += 1;
            let mut p = (self.fresh)(hash(&[self.seed, self.generation]));
            if let Some((_, blob)) = self.kv.iter().rev().find(|(at, _)| *at <= now) {
                p.load(blob, now);
            }
            self.isolates[k] = (p, now);
            self.ids[k] = self.generation;
        }
        self.planned_by.insert(req, self.ids[k]);
        self.isolates[k].0.plan(req, now)
    }

    fn observe(&mut self, ev: Ev, req: usize, now: u64) {
        let k = self.which(req);
        // An outcome that arrives after its isolate was replaced is lost with it.
        if self.planned_by.get(&req) != Some(&self.ids[k]) {
            return;
        }
        let p = &mut self.isolates[k].0;
        p.observe(ev, req, now);
        if let Some(blob) = p.persist(now) {
            self.kv.push((now + KV_DELAY_MS, blob));
        }
    }
}
