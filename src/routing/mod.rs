//! Latency-aware routing: which deployment of a model should get this request, learned from what this edge
//! location has measured. Pure and deterministic given the clock and the seed, so it is simulated on the host
//! (`examples/routing_sim.rs`) and tested without a network.

mod choice;
pub mod estimator;
pub mod health;
pub use crate::regions;

use crate::config::Deployment;
use choice::View;
pub use choice::SPREAD_WEIGHT;
use estimator::{Estimate, BUCKETS};
use health::{Admission, Breaker};
use indexmap::IndexMap;
use serde::Serialize;
use std::collections::HashMap;

pub use crate::http::Location;

/// What kind of latency a request will show: time to first token for streams, time to the whole answer's
/// headers otherwise, each growing with the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub stream: bool,
    pub bucket: usize,
}

impl Shape {
    fn slot(self) -> usize {
        usize::from(self.stream) * BUCKETS + self.bucket.min(BUCKETS - 1)
    }
}

/// Routing knobs from configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Most share of requests that may probe another healthy deployment, so that improvements are noticed.
    /// Probes go only where the doubt about an alternative (few samples, old ones) is wide enough that it might
    /// beat the first; when nothing is in doubt, none are sent.
    pub exploration: f64,
    /// Hedging: `Some(budget)` lets at most `budget` (a fraction) of requests start a second attempt.
    pub hedge_budget: Option<f64>,
    pub objective: crate::config::Objective,
}

/// Why the first deployment of a plan is first (`x-meridian-route-reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The fastest healthy deployment (predicted time to first content).
    Fastest,
    /// The cheapest healthy deployment predicted within the model's `max_ttft_ms`.
    CheapestWithinTtft,
    /// Cost routing found none within `max_ttft_ms`: the fastest.
    FastestNoneWithinTtft,
    /// An exploration probe: another healthy deployment that, for all routing knows, might be better.
    Explore,
    /// A deployment whose circuit cooldown is over gets this request as its trial.
    Trial,
    /// Only deployments with an open circuit were left.
    Unhealthy,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Fastest => "fastest",
            Reason::CheapestWithinTtft => "cheapest-within-ttft",
            Reason::FastestNoneWithinTtft => "fastest-none-within-ttft",
            Reason::Explore => "explore",
            Reason::Trial => "trial",
            Reason::Unhealthy => "unhealthy",
        }
    }
}

/// A deployment's score (lower is better) and its index.
type Scored = (f64, usize);

/// The price a cost objective compares: three input tokens to one output (a typical chat request's mix), USD per
/// million; unpriced deployments after every priced one.
fn blended(dep: &Deployment) -> f64 {
    dep.price
        .map_or(f64::INFINITY, |p| (3.0 * p.input + p.output) / 4.0)
}

/// The order in which to try deployments, and when to hedge.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Indexes into the model's deployments, best first. Never contains a deployment the caller excluded.
    pub order: Vec<usize>,
    /// Start the second deployment in parallel if the first has produced nothing after this long.
    pub hedge_after_ms: Option<u64>,
    /// Why `order[0]` is first.
    pub reason: Reason,
}

#[derive(Debug, Clone, Default)]
struct Stats {
    estimates: [Estimate; 2 * BUCKETS],
    breaker: Breaker,
    /// When each slot's last probe was sent.
    probed_ms: [u64; 2 * BUCKETS],
    requests: u64,
    failures: u64,
    hedged: u64,
    last_error: Option<String>,
}

pub struct Router {
    stats: HashMap<String, Stats>,
    /// Per model (its deployments) and request shape, the deployment that leads.
    leaders: HashMap<(String, usize), String>,
    rng: u64,
    /// Exploration is paced, not drawn: each request adds the probe rate (up to 1), and a probe may go at 1. A
    /// share p then means at most one probe in every 1/p requests, never a run of them (independent draws at 10%
    /// put four of ten consecutive requests on alternatives about once in eighty windows).
    explore_credit: f64,
    hedge_tokens: f64,
    /// Learned something since the last persist.
    pub dirty: bool,
    pub last_persist_ms: u64,
}

/// About three network round trips (connect, TLS, request) over the great-circle distance, at ~100 km per ms
/// of fibre round trip.
pub fn network_ms(dep: &Deployment, loc: &Location) -> f64 {
    match (loc.lat_lon, dep.coords) {
        (Some((a, b)), Some((c, d))) => 3.0 * regions::distance_km(a, b, c, d) / 100.0,
        // Unknown on either side: a middling distance, so known-near regions are preferred.
        _ => 150.0,
    }
}

/// Model time (latency minus network) assumed before anything is measured.
fn default_model_ms(shape: Shape) -> f64 {
    (if shape.stream { 300.0 } else { 1_000.0 }) + 100.0 * shape.bucket as f64
}

/// Expected latency of an unmeasured deployment: the model time seen on the model's other deployments (or a
/// default) plus its own network distance. Learning the model time from siblings keeps an unmeasured far
/// region from looking better than a measured near one merely because the default was optimistic.
pub fn prior_ms(dep: &Deployment, loc: &Location, model_ms: f64) -> f64 {
    model_ms + network_ms(dep, loc)
}

impl Router {
    pub fn new(seed: u64) -> Self {
        let mut router = Router {
            stats: HashMap::new(),
            leaders: HashMap::new(),
            rng: seed | 1,
            explore_credit: 0.0,
            hedge_tokens: 1.0,
            dirty: false,
            last_persist_ms: 0,
        };
        // Isolates started together do not all probe on the same request.
        router.explore_credit = router.random();
        router
    }

    fn random(&mut self) -> f64 {
        // xorshift64*: tiny, fast, and reproducible from the seed.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn stats(&mut self, dep: &Deployment) -> &mut Stats {
        self.stats.entry(dep.id()).or_default()
    }

    /// Model time (latency minus network distance) averaged over the measured deployments in `deps`.
    pub fn model_ms(&self, deps: &[Deployment], loc: &Location, shape: Shape) -> f64 {
        let (sum, n) = deps
            .iter()
            .filter_map(|d| {
                let e = self.stats.get(&d.id())?.estimates[shape.slot()];
                (e.samples > 0).then(|| (e.mean_ms - network_ms(d, loc)).max(0.0))
            })
            .fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
        if n == 0 {
            default_model_ms(shape)
        } else {
            sum / f64::from(n)
        }
    }

    /// Expected time to first token of `dep` for this request; `model_ms` from [`Router::model_ms`].
    pub fn expected_ms(
        &self,
        dep: &Deployment,
        loc: &Location,
        shape: Shape,
        model_ms: f64,
    ) -> f64 {
        let prior = prior_ms(dep, loc, model_ms);
        match self.stats.get(&dep.id()) {
            Some(s) => s.estimates[shape.slot()].expected_ms(prior) / dep.weight,
            None => prior / dep.weight,
        }
    }

    /// Orders `deps` (those with `allowed[i]`) for one request.
    pub fn plan(
        &mut self,
        deps: &[Deployment],
        allowed: &[bool],
        loc: &Location,
        shape: Shape,
        policy: Policy,
        now_ms: u64,
    ) -> Plan {
        let mut healthy = Vec::new();
        let mut trials = Vec::new();
        let mut open = Vec::new();
        let model_ms = self.model_ms(deps, loc, shape);
        let mut views = vec![View::default(); deps.len()];
        for (i, dep) in deps
            .iter()
            .enumerate()
            .filter(|(i, _)| allowed.get(*i) == Some(&true))
        {
            views[i] = self.view(dep, loc, shape, model_ms, now_ms);
            let score = views[i].score;
            let admission = self
                .stats
                .get(&dep.id())
                .map_or(Admission::Yes, |s| s.breaker.admission(now_ms));
            match admission {
                Admission::Yes => healthy.push((score, i)),
                Admission::Trial => trials.push((score, i)),
                Admission::No => open.push((score, i)),
            }
        }
        let by_score =
            |v: &mut Vec<(f64, usize)>| v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        by_score(&mut healthy);
        by_score(&mut trials);
        by_score(&mut open);
        let mut reason = Reason::Fastest;
        self.keep_leader(deps, shape, policy, &mut healthy, &views);
        if let crate::config::Objective::Cost { max_ttft_ms } = policy.objective {
            // The cheapest of those predicted within the limit go first, cheapest first (the faster of two equally
            // priced); the rest stay by speed behind them, for failover.
            let (mut within, beyond): (Vec<Scored>, Vec<Scored>) = healthy
                .iter()
                .partition(|(_, i)| views[*i].mean <= max_ttft_ms as f64);
            within.sort_by(|a, b| {
                blended(&deps[a.1])
                    .total_cmp(&blended(&deps[b.1]))
                    .then(a.0.total_cmp(&b.0))
            });
            reason = if within.is_empty() {
                Reason::FastestNoneWithinTtft
            } else {
                Reason::CheapestWithinTtft
            };
            healthy = within.into_iter().chain(beyond).collect();
        }

        if self.explore(deps, shape, policy, &mut healthy, &views, now_ms) {
            reason = Reason::Explore;
        }

        // A deployment whose cooldown is over gets this request as its trial: that is how a recovered region is
        // found again. Failover still protects the request if the trial fails.
        let mut order: Vec<usize> = Vec::with_capacity(deps.len());
        order.extend(trials.iter().take(1).map(|t| t.1));
        order.extend(healthy.iter().map(|t| t.1));
        order.extend(trials.iter().skip(1).map(|t| t.1));
        // Open circuits last: better a likely failure than a certain one when nothing else is left.
        order.extend(open.iter().map(|t| t.1));
        if !trials.is_empty() {
            reason = Reason::Trial;
        } else if healthy.is_empty() {
            reason = Reason::Unhealthy;
        }

        let hedge_after_ms = match policy.hedge_budget {
            Some(budget) if order.len() > 1 => {
                self.hedge_tokens = (self.hedge_tokens + budget).min(5.0);
                (self.hedge_tokens >= 1.0).then(|| {
                    let first = &deps[order[0]];
                    let prior = prior_ms(first, loc, model_ms);
                    let est = self
                        .stats
                        .get(&first.id())
                        .map(|s| s.estimates[shape.slot()])
                        .unwrap_or_default();
                    est.p90_ms(prior).max(20.0) as u64
                })
            }
            _ => None,
        };
        Plan {
            order,
            hedge_after_ms,
            reason,
        }
    }

    /// The request is going to `dep` now.
    pub fn started(&mut self, dep: &Deployment, now_ms: u64) {
        let s = self.stats(dep);
        s.requests += 1;
        if s.breaker.admission(now_ms) == Admission::Trial {
            s.breaker.start_trial(now_ms);
        }
    }

    /// A hedge was started; spends from the hedging budget.
    pub fn hedged(&mut self, dep: &Deployment) {
        self.hedge_tokens -= 1.0;
        self.stats(dep).hedged += 1;
    }

    pub fn success(&mut self, dep: &Deployment, shape: Shape, latency_ms: f64, now_ms: u64) {
        let s = self.stats(dep);
        s.estimates[shape.slot()].observe(latency_ms, now_ms);
        s.breaker.on_success();
        self.dirty = true;
    }

    /// A hedged attempt that lost: it took at least `elapsed_ms`, which is news only if that is slower than
    /// expected.
    pub fn at_least(&mut self, dep: &Deployment, shape: Shape, elapsed_ms: f64, now_ms: u64) {
        let e = &mut self.stats(dep).estimates[shape.slot()];
        if e.samples == 0 || elapsed_ms > e.mean_ms {
            e.observe(elapsed_ms, now_ms);
            self.dirty = true;
        }
    }

    pub fn failure(
        &mut self,
        dep: &Deployment,
        reason: &str,
        retry_after_ms: Option<u64>,
        now_ms: u64,
    ) {
        let s = self.stats(dep);
        s.failures += 1;
        s.breaker.on_failure(now_ms, retry_after_ms);
        s.last_error = Some(reason.chars().take(200).collect());
        self.dirty = true;
    }

    /// `GET /_meridian/status`: what this location believes about each deployment.
    pub fn status<'a>(
        &'a self,
        models: impl Iterator<Item = (&'a str, &'a [Deployment])>,
        loc: &'a Location,
        now_ms: u64,
    ) -> Status<'a> {
        let mut out = IndexMap::new();
        for (name, deps) in models {
            let shape = Shape {
                stream: true,
                bucket: 0,
            };
            let whole = Shape {
                stream: false,
                bucket: 0,
            };
            let model_ms = self.model_ms(deps, loc, shape);
            let whole_model_ms = self.model_ms(deps, loc, whole);
            let list = deps
                .iter()
                .map(|d| {
                    let s = self.stats.get(&d.id());
                    DeploymentStatus {
                        deployment: d.id(),
                        region: &d.region,
                        tags: &d.tags,
                        prior_ttft_ms: prior_ms(d, loc, model_ms).round(),
                        expected_ttft_ms: self.expected_ms(d, loc, shape, model_ms).round(),
                        doubt_ttft_ms: self
                            .view(d, loc, shape, model_ms, now_ms)
                            .uncertainty
                            .round(),
                        expected_response_ms: self
                            .expected_ms(d, loc, whole, whole_model_ms)
                            .round(),
                        samples: s.map_or(0, |s| s.estimates.iter().map(|e| e.samples).sum()),
                        health: s.map_or("closed", |s| s.breaker.label()),
                        requests: s.map_or(0, |s| s.requests),
                        failures: s.map_or(0, |s| s.failures),
                        hedged: s.map_or(0, |s| s.hedged),
                        last_error: s.and_then(|s| s.last_error.as_deref()),
                    }
                })
                .collect();
            out.insert(name, list);
        }
        Status {
            colo: loc.colo.as_deref(),
            models: out,
        }
    }

    /// Learned estimates, for persisting per location (health is not persisted: it is too short-lived).
    pub fn export(&self) -> String {
        let all: IndexMap<&str, Vec<Persisted>> = self
            .stats
            .iter()
            .map(|(id, s)| {
                let e = s
                    .estimates
                    .iter()
                    .map(|e| (e.mean_ms, e.var_ms2, e.samples, e.last_ms))
                    .collect();
                (id.as_str(), e)
            })
            .collect();
        serde_json::to_string(&all).unwrap_or_default()
    }

    /// Merges persisted estimates into deployments this isolate has not measured itself yet. A blob that does not
    /// read as estimates is ignored: routing starts from priors, as without one.
    pub fn import(&mut self, json: &str) {
        let Ok(all) = serde_json::from_slice::<IndexMap<String, Vec<Persisted>>>(json.as_bytes())
        else {
            return;
        };
        for (id, estimates) in all {
            let s = self.stats.entry(id).or_default();
            for (slot, (mean, var, n, last)) in estimates.into_iter().enumerate().take(2 * BUCKETS)
            {
                if s.estimates[slot].samples > 0 {
                    continue;
                }
                if mean.is_finite() && var.is_finite() && mean >= 0.0 && var >= 0.0 {
                    s.estimates[slot] = Estimate {
                        mean_ms: mean,
                        var_ms2: var,
                        dev_ms: var.sqrt() / estimator::MAD_PER_SD,
                        samples: n,
                        last_ms: last,
                    };
                }
            }
        }
    }
}

/// One estimate as persisted: `[mean_ms, var_ms2, samples, last_ms]`.
type Persisted = (f64, f64, u32, u64);

/// `GET /_meridian/status`: per model, each deployment's routing view from this location.
#[derive(Serialize)]
pub struct Status<'a> {
    pub colo: Option<&'a str>,
    pub models: IndexMap<&'a str, Vec<DeploymentStatus<'a>>>,
}

#[derive(Serialize)]
pub struct DeploymentStatus<'a> {
    pub deployment: String,
    pub region: &'a str,
    pub tags: &'a [String],
    pub prior_ttft_ms: f64,
    /// Small prompts; time to first token for streams, to the whole answer otherwise.
    pub expected_ttft_ms: f64,
    /// One standard deviation of doubt about `expected_ttft_ms`: few samples or old ones. Exploration probes a
    /// deployment while this leaves room for it to be better than the first.
    pub doubt_ttft_ms: f64,
    pub expected_response_ms: f64,
    pub samples: u32,
    pub health: &'static str,
    pub requests: u64,
    pub failures: u64,
    pub hedged: u64,
    pub last_error: Option<&'a str>,
}

#[cfg(test)]
mod tests;
