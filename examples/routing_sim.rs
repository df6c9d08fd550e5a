//! Deterministic host-side simulation that scores Meridian's routing policy against simple baselines.
//!
//! Run: `cargo run --release --example routing_sim [-- --requests N --seed S]` (defaults 3000 and 1). Prints one
//! table per scenario and writes the same figures to `bench/out/routing_sim.json`. `--trace SCENARIO` also prints
//! to stderr, every 10th request, the order the real router chose and what it believed about each deployment.
//!
//! # What is simulated
//!
//! * A client near Frankfurt (lat/lon 50.1, 8.7) sends one streaming request (shape: stream, smallest prompt
//!   bucket) every 200 ms of simulated time to one model with four deployments: `eu-central-1` (Frankfurt),
//!   `eu-west-1` (Dublin), `us-east-1` (Virginia) and `ap-northeast-1` (Tokyo). The deployments are built by
//!   parsing a JSON configuration with `Config::parse`, exactly as the gateway does.
//! * Each deployment has a TRUE time to first token: `network + median * exp(sigma * z)` with `z` standard
//!   normal (a lognormal model time), where `network` is `meridian::routing::network_ms` for that deployment and
//!   location, so the simulated network is the one the router's prior assumes. The medians and availability may
//!   change over time (the scenarios below).
//! * `z` is derived from a hash of (seed, scenario, request index, deployment), so every policy faces exactly
//!   the same latency for a given (request, deployment) pair: differences between policies come from their
//!   choices only.
//! * An unavailable deployment answers 503 (no `retry-after`) after 50 ms. The request then fails over to the
//!   next deployment of its plan, at most 3 attempts (the gateway's default `max_attempts`). The TTFT the
//!   client sees is the time spent on failed attempts plus the successful attempt's TTFT.
//! * Hedging (`meridian+hedge` only) follows `gateway.rs`: if the plan has `hedge_after_ms = Some(h)` and the
//!   first attempt has not answered after `h`, the second deployment of the plan starts at `h` (`hedged`, then
//!   `started`); the first to produce content wins and reports `success`, the loser is dropped and reports
//!   `at_least` (time it had been running); a failed racer makes the other one awaited; if both fail,
//!   failover continues with the third deployment.
//! * Requests overlap in flight: what a request teaches a policy (`started`, `success`, `failure`, `hedged`,
//!   `at_least`) is queued at the simulated time it happens and only delivered once the clock reaches it, so
//!   a plan made at time t only knows outcomes that completed by t.
//!
//! # What is not simulated
//!
//! No network jitter beyond the lognormal (the network part is a constant per deployment); no load: latency
//! does not depend on how many requests a deployment gets (no queueing, no rate limits, no 429s); no request
//! size variety (one shape); one isolate whose state lives for the whole run (no eviction, no KV persistence,
//! no state shared between edge locations); no timeouts (nothing is slow enough to hit `first_byte_ms`).
//!
//! # Scenarios
//!
//! Base medians (model time, network added on top): fra 450 ms, dub 300 ms, iad 350 ms, nrt 400 ms, all with
//! sigma 0.3, so Dublin is truly fastest although Frankfurt is nearer.
//! 1. `steady`: nothing changes.
//! 2. `shift`: at one third of the run Dublin's median triples (Frankfurt becomes best).
//! 3. `outage`: Dublin answers 503 during the middle third, then recovers.
//! 4. `heavy-tail`: Dublin has sigma 1.0 (same median, much heavier tail; its MEAN is then worse than
//!    Frankfurt's although its median is better).
//! 5. `improve` (beyond the four asked for): at one third Frankfurt's median drops to 150 ms, so a deployment
//!    the policies are NOT using becomes best. Only exploration can notice this; it is the case that pays for
//!    the exploration Meridian spends in the other scenarios.
//!
//! "Truly best available" always means the lowest true median incl. network among deployments that are up at
//! that moment.
//!
//! # Policies
//!
//! * `oracle`: knows the true current medians and availability and always picks the best available deployment
//!   first (then the others by true median); it learns nothing. It is the reference for the ratios.
//! * `meridian`: the real `meridian::routing::Router`, `Policy { exploration: 0.05, hedge_budget: None }`.
//! * `meridian+hedge`: the same with `hedge_budget: Some(0.1)`.
//! * `round-robin`: cycles through the deployments; failover to the next one in the cycle.
//! * `litellm-style`: lowest mean of the last 10 observed TTFTs of each deployment, untried deployments first,
//!   failover in the same order. This mirrors LiteLLM's latency-based routing (which averages a bounded list of
//!   recent latencies); LiteLLM's separate cooldown feature (deployments with repeated failures are skipped
//!   for a while) is NOT modelled, so its failed-attempt count in the outage is pessimistic.
//!
//! No policy but `oracle` sees the truth: the others only see what a gateway sees (outcomes and timings).
//!
//! # Metrics (per scenario and policy)
//!
//! * `best%`: share of requests whose FIRST attempt went to the truly best available deployment at arrival;
//!   `best% thirds`: the same per third of the run.
//! * `p50`, `p99`, `mean`: client-seen TTFT (ms) of the requests that succeeded; `p50/or`, `p99/or`: divided by
//!   the oracle's. In `heavy-tail` the oracle (best by MEDIAN) has a poor p99, so a ratio below 1 is possible.
//! * `failed`: failed attempts (errors seen before a success); `errs`: requests that failed altogether.
//! * `hedge/won`: hedges started / hedges whose second deployment answered first.
//! * `lag (requests)`: after the start and after each change of the truth, how many requests pass until, for
//!   the first time, at least 16 of 20 consecutive first attempts go to the best deployment (`never` if that
//!   does not happen). It is a first hit, not a sustained state: read it with `best% thirds`.
//! * `first choice`: how many first attempts went to fra/dub/iad/nrt.

use meridian::config::{Config, Deployment};
use meridian::routing::{network_ms, Location, Policy, Router, Shape};
use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::path::PathBuf;

const INTERVAL_MS: u64 = 200;
/// Simulated Unix time of the first request.
const START_MS: u64 = 1_700_000_000_000;
/// A 503 comes back this fast.
const FAIL_MS: f64 = 50.0;
const MAX_ATTEMPTS: usize = 3;
const STREAM: Shape = Shape {
    stream: true,
    bucket: 0,
};
const CLIENT: (f64, f64) = (50.1, 8.7);
/// sha256 of the demo gateway key.
const KEY_SHA256: &str = "2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea";

/// Short name, region, base median (model time, ms), base sigma.
const DEPLOYMENTS: [(&str, &str, f64, f64); 4] = [
    ("fra", "eu-central-1", 450.0, 0.3),
    ("dub", "eu-west-1", 300.0, 0.3),
    ("iad", "us-east-1", 350.0, 0.3),
    ("nrt", "ap-northeast-1", 400.0, 0.3),
];
/// The deployment every scenario perturbs (the truly fastest at the start).
const DUB: usize = 1;
/// The nearest deployment.
const FRA: usize = 0;

// ---------------------------------------------------------------------------------------------------------------
// Randomness: splitmix64 as a hash, Box-Muller for normals.

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn hash(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x6A09_E667_F3BC_C908, |h, &p| splitmix64(h ^ splitmix64(p)))
}

/// Uniform in (0, 1].
fn unit(h: u64) -> f64 {
    ((h >> 11) + 1) as f64 / (1u64 << 53) as f64
}

/// Standard normal from a hash (Box-Muller, cosine branch).
fn std_normal(h: u64) -> f64 {
    let u1 = unit(splitmix64(h));
    let u2 = unit(splitmix64(h ^ 0xD1B5_4A32_D192_ED03));
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

// ---------------------------------------------------------------------------------------------------------------
// The world: true latencies and availability.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Steady,
    Shift,
    Outage,
    HeavyTail,
    Improve,
}

struct Scenario {
    name: &'static str,
    about: &'static str,
    kind: Kind,
}

const SCENARIOS: [Scenario; 5] = [
    Scenario {
        name: "steady",
        about: "dub truly fastest (300 ms + ~33 ms network) although fra is nearest (450 ms)",
        kind: Kind::Steady,
    },
    Scenario {
        name: "shift",
        about: "at 1/3 of the run dub's median triples (300 -> 900 ms): fra becomes best",
        kind: Kind::Shift,
    },
    Scenario {
        name: "outage",
        about: "dub answers 503 (after 50 ms) during the middle third, then recovers",
        kind: Kind::Outage,
    },
    Scenario {
        name: "heavy-tail",
        about: "dub has sigma 1.0 (same median 300 ms, mean ~495 ms, p99 ~3 s)",
        kind: Kind::HeavyTail,
    },
    Scenario {
        name: "improve",
        about: "(extra) at 1/3 of the run fra's median drops 450 -> 150 ms: fra becomes best",
        kind: Kind::Improve,
    },
];

struct World<'a> {
    scenario: &'a Scenario,
    index: u64,
    seed: u64,
    requests: usize,
    deps: Vec<Deployment>,
    net: Vec<f64>,
}

impl World<'_> {
    /// Third of the run (0, 1, 2) the simulated time `t` falls in.
    fn phase(&self, t: f64) -> usize {
        let span = (self.requests as u64 * INTERVAL_MS) as f64;
        ((3.0 * (t - START_MS as f64) / span).floor().max(0.0) as usize).min(2)
    }

    /// True median model time (without network) of `d` at `t`.
    fn median(&self, d: usize, t: f64) -> f64 {
        let base = DEPLOYMENTS[d].2;
        match self.scenario.kind {
            Kind::Shift if d == DUB && self.phase(t) >= 1 => base * 3.0,
            Kind::Improve if d == FRA && self.phase(t) >= 1 => base / 3.0,
            _ => base,
        }
    }

    fn sigma(&self, d: usize) -> f64 {
        match self.scenario.kind {
            Kind::HeavyTail if d == DUB => 1.0,
            _ => DEPLOYMENTS[d].3,
        }
    }

    fn available(&self, d: usize, t: f64) -> bool {
        !(self.scenario.kind == Kind::Outage && d == DUB && self.phase(t) == 1)
    }

    /// True median time to first token including network.
    fn true_ms(&self, d: usize, t: f64) -> f64 {
        self.net[d] + self.median(d, t)
    }

    /// Available deployments by true median, then the unavailable ones.
    fn truth_order(&self, t: f64) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.deps.len()).collect();
        v.sort_by(|&a, &b| {
            (!self.available(a, t))
                .cmp(&!self.available(b, t))
                .then(self.true_ms(a, t).total_cmp(&self.true_ms(b, t)))
        });
        v
    }

    fn best(&self, t: f64) -> usize {
        self.truth_order(t)[0]
    }

    /// What an attempt of request `req` on `d` started at `t` does: (succeeded, ms until it answers).
    fn attempt(&self, req: usize, d: usize, t: f64) -> (bool, f64) {
        if !self.available(d, t) {
            return (false, FAIL_MS);
        }
        let z = std_normal(hash(&[self.seed, self.index, req as u64, d as u64]));
        (
            true,
            self.net[d] + self.median(d, t) * (self.sigma(d) * z).exp(),
        )
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Policies.

/// What a gateway learns, delivered at the simulated time it happens.
#[derive(Debug, Clone, Copy)]
enum Ev {
    Started(usize),
    Success(usize, f64),
    Failure(usize),
    Hedged(usize),
    AtLeast(usize, f64),
}

trait Routing {
    /// Deployment order for request `req` arriving at `now`, and when to hedge.
    fn plan(&mut self, req: usize, now: u64) -> (Vec<usize>, Option<u64>);
    fn observe(&mut self, ev: Ev, now: u64);
}

struct Oracle<'a, 'w> {
    world: &'a World<'w>,
}

impl Routing for Oracle<'_, '_> {
    fn plan(&mut self, _req: usize, now: u64) -> (Vec<usize>, Option<u64>) {
        (self.world.truth_order(now as f64), None)
    }
    fn observe(&mut self, _ev: Ev, _now: u64) {}
}

struct Meridian<'a> {
    router: Router,
    deps: &'a [Deployment],
    loc: Location,
    policy: Policy,
    /// `--trace`: print what the router believes every 10th request, under this label.
    trace: Option<String>,
}

impl Routing for Meridian<'_> {
    fn plan(&mut self, req: usize, now: u64) -> (Vec<usize>, Option<u64>) {
        let allowed = vec![true; self.deps.len()];
        let p = self
            .router
            .plan(self.deps, &allowed, &self.loc, STREAM, self.policy, now);
        if let Some(label) = self.trace.as_deref().filter(|_| req % 10 == 0) {
            let status = self
                .router
                .status(std::iter::once(("m", self.deps)), &self.loc, now);
            let beliefs: Vec<String> = status.models["m"]
                .iter()
                .zip(DEPLOYMENTS)
                .map(|(d, (short, ..))| {
                    format!(
                        "{short} {}ms/{} n={}",
                        d.expected_ttft_ms, d.health, d.samples
                    )
                })
                .collect();
            eprintln!(
                "{label} req {req:>5} t {:>6.1}s order {:?} hedge {:?} | {}",
                (now - START_MS) as f64 / 1000.0,
                p.order,
                p.hedge_after_ms,
                beliefs.join(", ")
            );
        }
        (p.order, p.hedge_after_ms)
    }

    fn observe(&mut self, ev: Ev, now: u64) {
        let r = &mut self.router;
        match ev {
            Ev::Started(d) => r.started(&self.deps[d], now),
            Ev::Success(d, ms) => r.success(&self.deps[d], STREAM, ms, now),
            Ev::Failure(d) => r.failure(&self.deps[d], "503 Service Unavailable", None, now),
            Ev::Hedged(d) => r.hedged(&self.deps[d]),
            Ev::AtLeast(d, ms) => r.at_least(&self.deps[d], STREAM, ms, now),
        }
    }
}

struct RoundRobin {
    n: usize,
    next: usize,
}

impl Routing for RoundRobin {
    fn plan(&mut self, _req: usize, _now: u64) -> (Vec<usize>, Option<u64>) {
        let start = self.next;
        self.next = (self.next + 1) % self.n;
        ((0..self.n).map(|k| (start + k) % self.n).collect(), None)
    }
    fn observe(&mut self, _ev: Ev, _now: u64) {}
}

/// Lowest mean of the last 10 successful TTFTs; untried deployments first; failures are not recorded.
struct LiteLlmStyle {
    recent: Vec<VecDeque<f64>>,
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

    fn observe(&mut self, ev: Ev, _now: u64) {
        if let Ev::Success(d, ms) = ev {
            let r = &mut self.recent[d];
            if r.len() == 10 {
                r.pop_front();
            }
            r.push_back(ms);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// One request through a plan, as the gateway would run it.

struct Served {
    /// Client-seen TTFT, `None` if every attempt failed.
    ttft: Option<f64>,
    failed: u32,
    hedged: bool,
    /// The hedge (second deployment) answered first.
    hedge_won: bool,
}

/// Runs request `req` arriving at `t_req` through `order`, queueing what the gateway would report.
fn serve(
    world: &World,
    req: usize,
    t_req: f64,
    order: &[usize],
    hedge_after: Option<u64>,
    push: &mut dyn FnMut(f64, Ev),
) -> Served {
    let order = &order[..order.len().min(MAX_ATTEMPTS)];
    let mut out = Served {
        ttft: None,
        failed: 0,
        hedged: false,
        hedge_won: false,
    };
    let mut t = t_req;
    let mut k = 0;
    while k < order.len() {
        let a = order[k];
        k += 1;
        let hedge = hedge_after.filter(|_| k == 1 && k < order.len());
        push(t, Ev::Started(a));
        let (ok_a, dur_a) = world.attempt(req, a, t);
        match hedge {
            Some(h) if dur_a > h as f64 => {
                let b = order[k];
                k += 1;
                out.hedged = true;
                let tb = t + h as f64;
                push(tb, Ev::Hedged(b));
                push(tb, Ev::Started(b));
                let (ok_b, dur_b) = world.attempt(req, b, tb);
                let racers = [(a, ok_a, t, t + dur_a), (b, ok_b, tb, tb + dur_b)];
                // The first to answer; ties go to the first attempt (it is polled first).
                let (first, second) = if racers[0].3 <= racers[1].3 {
                    (racers[0], racers[1])
                } else {
                    (racers[1], racers[0])
                };
                let (d1, ok1, s1, e1) = first;
                let (d2, ok2, s2, e2) = second;
                if ok1 {
                    out.hedge_won = d1 == b;
                    push(e1, Ev::Success(d1, e1 - s1));
                    push(e1, Ev::AtLeast(d2, e1 - s2));
                    out.ttft = Some(e1 - t_req);
                    return out;
                }
                push(e1, Ev::Failure(d1));
                out.failed += 1;
                if ok2 {
                    out.hedge_won = d2 == b;
                    push(e2, Ev::Success(d2, e2 - s2));
                    out.ttft = Some(e2 - t_req);
                    return out;
                }
                push(e2, Ev::Failure(d2));
                out.failed += 1;
                t = e2;
            }
            _ => {
                let end = t + dur_a;
                if ok_a {
                    push(end, Ev::Success(a, dur_a));
                    out.ttft = Some(end - t_req);
                    return out;
                }
                push(end, Ev::Failure(a));
                out.failed += 1;
                t = end;
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Running a policy and scoring it.

struct Score {
    name: &'static str,
    /// Per request: was the first attempt on the truly best available deployment.
    first_best: Vec<bool>,
    first_counts: Vec<usize>,
    ttfts: Vec<f64>,
    failed: u64,
    client_errors: u64,
    hedges: u64,
    hedge_wins: u64,
}

fn run(world: &World, name: &'static str, policy: &mut dyn Routing) -> Score {
    let n = world.requests;
    let mut queue: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut events: Vec<Ev> = Vec::new();
    let mut s = Score {
        name,
        first_best: Vec::with_capacity(n),
        first_counts: vec![0; world.deps.len()],
        ttfts: Vec::with_capacity(n),
        failed: 0,
        client_errors: 0,
        hedges: 0,
        hedge_wins: 0,
    };
    let deliver = |policy: &mut dyn Routing,
                   queue: &mut BinaryHeap<Reverse<(u64, u64)>>,
                   events: &[Ev],
                   until: u64| {
        while let Some(&Reverse((at, seq))) = queue.peek() {
            if at > until {
                break;
            }
            queue.pop();
            policy.observe(events[seq as usize], at);
        }
    };
    for req in 0..n {
        let now = START_MS + req as u64 * INTERVAL_MS;
        deliver(policy, &mut queue, &events, now);
        let (order, hedge_after) = policy.plan(req, now);
        let t = now as f64;
        s.first_best.push(order[0] == world.best(t));
        s.first_counts[order[0]] += 1;
        let mut push = |at: f64, ev: Ev| {
            queue.push(Reverse((at.round() as u64, events.len() as u64)));
            events.push(ev);
        };
        let served = serve(world, req, t, &order, hedge_after, &mut push);
        s.failed += u64::from(served.failed);
        s.hedges += u64::from(served.hedged);
        s.hedge_wins += u64::from(served.hedge_won);
        match served.ttft {
            Some(ms) => s.ttfts.push(ms),
            None => s.client_errors += 1,
        }
    }
    deliver(policy, &mut queue, &events, u64::MAX);
    s
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Figures for one policy in one scenario.
struct Row {
    name: &'static str,
    best: f64,
    best_by_third: [f64; 3],
    p50: f64,
    p99: f64,
    mean: f64,
    failed: u64,
    client_errors: u64,
    hedges: u64,
    hedge_wins: u64,
    first_counts: Vec<usize>,
    /// Requests after each change point until the first choice is the best one in >= 80% of a 20-request window.
    lags: Vec<Option<usize>>,
}

const LAG_WINDOW: usize = 20;

fn lag_after(first_best: &[bool], change: usize) -> Option<usize> {
    (change..first_best.len().saturating_sub(LAG_WINDOW - 1)).find_map(|j| {
        let hits = first_best[j..j + LAG_WINDOW].iter().filter(|&&b| b).count();
        (hits * 5 >= LAG_WINDOW * 4).then(|| j - change)
    })
}

/// Requests at which the truth changes; the start counts (cold start: nothing is known yet).
fn change_points(kind: Kind, n: usize) -> Vec<usize> {
    match kind {
        Kind::Steady | Kind::HeavyTail => vec![0],
        Kind::Shift | Kind::Improve => vec![0, n.div_ceil(3)],
        Kind::Outage => vec![0, n.div_ceil(3), (2 * n).div_ceil(3)],
    }
}

fn row(s: Score, world: &World) -> Row {
    let n = s.first_best.len();
    let share = |v: &[bool]| v.iter().filter(|&&b| b).count() as f64 / v.len().max(1) as f64;
    let third = |k: usize| share(&s.first_best[k * n / 3..(k + 1) * n / 3]);
    let mut sorted = s.ttfts.clone();
    sorted.sort_by(f64::total_cmp);
    let mean = sorted.iter().sum::<f64>() / sorted.len().max(1) as f64;
    let lags = change_points(world.scenario.kind, n)
        .into_iter()
        .map(|c| lag_after(&s.first_best, c))
        .collect();
    Row {
        name: s.name,
        best: share(&s.first_best),
        best_by_third: [third(0), third(1), third(2)],
        p50: percentile(&sorted, 50.0),
        p99: percentile(&sorted, 99.0),
        mean,
        failed: s.failed,
        client_errors: s.client_errors,
        hedges: s.hedges,
        hedge_wins: s.hedge_wins,
        first_counts: s.first_counts,
        lags,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Output.

fn deployments() -> Vec<Deployment> {
    let list: Vec<String> = DEPLOYMENTS
        .iter()
        .map(|(short, region, _, _)| {
            format!(r#"{{"provider":"p","model":"{short}","region":"{region}"}}"#)
        })
        .collect();
    let json = format!(
        r#"{{"keys":[{{"name":"sim","sha256":"{KEY_SHA256}"}}],"providers":{{"p":{{"kind":"openai"}}}},"models":{{"m":{{"deployments":[{}]}}}}}}"#,
        list.join(",")
    );
    let config = Config::parse(&json).expect("simulation config is valid");
    config.model("m").expect("model m").deployments().to_vec()
}

fn fmt_lags(lags: &[Option<usize>]) -> String {
    if lags.is_empty() {
        return "-".to_owned();
    }
    lags.iter()
        .map(|l| l.map_or("never".to_owned(), |l| l.to_string()))
        .collect::<Vec<_>>()
        .join("/")
}

fn print_table(world: &World, rows: &[Row]) {
    let oracle = &rows[0];
    println!(
        "\n== {} == {} ({} requests, seed {})",
        world.scenario.name, world.scenario.about, world.requests, world.seed
    );
    let truth: Vec<String> = (0..world.deps.len())
        .map(|d| {
            format!(
                "{} {:.0}+{:.0}ms s{:.1}",
                DEPLOYMENTS[d].0,
                DEPLOYMENTS[d].2,
                world.net[d],
                world.sigma(d)
            )
        })
        .collect();
    println!("   truth at start: {}", truth.join(", "));
    println!(
        "{:<15} {:>6} {:>14} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>5} {:>9} {:>17}  first choice fra/dub/iad/nrt",
        "policy", "best%", "best% thirds", "p50", "p99", "mean", "p50/or", "p99/or", "failed", "errs", "hedge/won", "lag (requests)"
    );
    for r in rows {
        let thirds = format!(
            "{:.0}/{:.0}/{:.0}",
            100.0 * r.best_by_third[0],
            100.0 * r.best_by_third[1],
            100.0 * r.best_by_third[2]
        );
        let counts: Vec<String> = r.first_counts.iter().map(|c| c.to_string()).collect();
        let hedges = format!("{}/{}", r.hedges, r.hedge_wins);
        println!(
            "{:<15} {:>6.1} {:>14} {:>6.0} {:>6.0} {:>6.0} {:>6.2} {:>6.2} {:>6} {:>5} {:>9} {:>17}  {}",
            r.name,
            100.0 * r.best,
            thirds,
            r.p50,
            r.p99,
            r.mean,
            r.p50 / oracle.p50,
            r.p99 / oracle.p99,
            r.failed,
            r.client_errors,
            hedges,
            fmt_lags(&r.lags),
            counts.join("/")
        );
    }
}

fn row_json(r: &Row, oracle: &Row) -> Value {
    let counts: serde_json::Map<String, Value> = r
        .first_counts
        .iter()
        .enumerate()
        .map(|(d, &c)| (DEPLOYMENTS[d].1.to_owned(), json!(c)))
        .collect();
    json!({
        "policy": r.name,
        "best_share": r.best,
        "best_share_by_third": r.best_by_third,
        "p50_ms": r.p50,
        "p99_ms": r.p99,
        "mean_ms": r.mean,
        "p50_vs_oracle": r.p50 / oracle.p50,
        "p99_vs_oracle": r.p99 / oracle.p99,
        "failed_attempts": r.failed,
        "client_errors": r.client_errors,
        "hedges": r.hedges,
        "hedge_wins": r.hedge_wins,
        "first_choice": counts,
        "adaptation_lag_requests": r.lags,
    })
}

fn verdict(scenario: &Scenario, rows: &[Row]) -> String {
    let get = |name: &str| rows.iter().find(|r| r.name == name).expect("policy row");
    let (oracle, m, mh, ll, rr) = (
        get("oracle"),
        get("meridian"),
        get("meridian+hedge"),
        get("litellm-style"),
        get("round-robin"),
    );
    let cmp = |a: f64, b: f64, higher_is_better: bool| {
        let better = if higher_is_better { a > b } else { a < b };
        if (a - b).abs() <= 0.01 * b.abs().max(1e-9) {
            "tie"
        } else if better {
            "better"
        } else {
            "WORSE"
        }
    };
    format!(
        "{:<10} meridian best {:.1}% vs litellm {:.1}% ({}) / rr {:.1}% ({}); p50/oracle {:.2} vs {:.2} ({}) / {:.2} ({}); p99/oracle {:.2} (+hedge {:.2}) vs {:.2} / {:.2}; failed {} vs {} / {}",
        scenario.name,
        100.0 * m.best,
        100.0 * ll.best,
        cmp(m.best, ll.best, true),
        100.0 * rr.best,
        cmp(m.best, rr.best, true),
        m.p50 / oracle.p50,
        ll.p50 / oracle.p50,
        cmp(m.p50, ll.p50, false),
        rr.p50 / oracle.p50,
        cmp(m.p50, rr.p50, false),
        m.p99 / oracle.p99,
        mh.p99 / oracle.p99,
        ll.p99 / oracle.p99,
        rr.p99 / oracle.p99,
        m.failed,
        ll.failed,
        rr.failed,
    )
}

struct Args {
    requests: usize,
    seed: u64,
    /// Scenario whose Meridian runs are traced to stderr.
    trace: Option<String>,
}

const USAGE: &str = "usage: routing_sim [--requests N] [--seed S] [--trace SCENARIO]";

fn args() -> Result<Args, String> {
    let (mut requests, mut seed, mut trace) = (3000usize, 1u64, None);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--requests" => {
                requests = value("--requests")?
                    .parse()
                    .map_err(|e| format!("--requests: {e}"))?
            }
            "--seed" => {
                seed = value("--seed")?
                    .parse()
                    .map_err(|e| format!("--seed: {e}"))?
            }
            "--trace" => {
                let name = value("--trace")?;
                if !SCENARIOS.iter().any(|s| s.name == name) {
                    return Err(format!("--trace: no scenario {name:?}"));
                }
                trace = Some(name);
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if requests < 3 {
        return Err("--requests must be at least 3".to_owned());
    }
    Ok(Args {
        requests,
        seed,
        trace,
    })
}

fn main() {
    let Args {
        requests,
        seed,
        trace,
    } = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let deps = deployments();
    let loc = Location {
        colo: Some("FRA".to_owned()),
        lat_lon: Some(CLIENT),
    };
    let net: Vec<f64> = deps.iter().map(|d| network_ms(d, &loc)).collect();
    let mut out = Vec::new();
    let mut verdicts = Vec::new();
    for (index, scenario) in SCENARIOS.iter().enumerate() {
        let world = World {
            scenario,
            index: index as u64,
            seed,
            requests,
            deps: deps.clone(),
            net: net.clone(),
        };
        let router_seed = hash(&[seed, index as u64, 0x5EED]);
        let meridian = |name: &str, hedge_budget| Meridian {
            router: Router::new(router_seed),
            deps: &deps,
            loc: loc.clone(),
            policy: Policy {
                exploration: 0.05,
                hedge_budget,
                objective: meridian::config::Objective::Latency,
            },
            trace: (trace.as_deref() == Some(scenario.name))
                .then(|| format!("{}/{name}", scenario.name)),
        };
        let scores = vec![
            run(&world, "oracle", &mut Oracle { world: &world }),
            run(&world, "meridian", &mut meridian("meridian", None)),
            run(
                &world,
                "meridian+hedge",
                &mut meridian("meridian+hedge", Some(0.1)),
            ),
            run(
                &world,
                "round-robin",
                &mut RoundRobin {
                    n: deps.len(),
                    next: 0,
                },
            ),
            run(
                &world,
                "litellm-style",
                &mut LiteLlmStyle {
                    recent: vec![VecDeque::new(); deps.len()],
                },
            ),
        ];
        let rows: Vec<Row> = scores.into_iter().map(|s| row(s, &world)).collect();
        print_table(&world, &rows);
        verdicts.push(verdict(scenario, &rows));
        let truth: Vec<Value> = (0..deps.len())
            .map(|d| {
                json!({
                    "deployment": deps[d].id(),
                    "region": DEPLOYMENTS[d].1,
                    "median_ms": DEPLOYMENTS[d].2,
                    "sigma": world.sigma(d),
                    "network_ms": net[d],
                })
            })
            .collect();
        out.push(json!({
            "scenario": scenario.name,
            "about": scenario.about,
            "change_points": change_points(scenario.kind, requests),
            "deployments": truth,
            "policies": rows.iter().map(|r| row_json(r, &rows[0])).collect::<Vec<_>>(),
        }));
    }
    println!("\nverdicts (meridian vs litellm-style / round-robin):");
    for v in &verdicts {
        println!("  {v}");
    }

    let doc = json!({
        "requests": requests,
        "seed": seed,
        "interval_ms": INTERVAL_MS,
        "client_lat_lon": [CLIENT.0, CLIENT.1],
        "fail_ms": FAIL_MS,
        "max_attempts": MAX_ATTEMPTS,
        "lag_window": LAG_WINDOW,
        "scenarios": out,
        "verdicts": verdicts,
    });
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/out");
    let path = dir.join("routing_sim.json");
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&doc).expect("JSON") + "\n",
        )
    });
    match written {
        Ok(()) => println!("\nwrote {}", path.display()),
        Err(e) => {
            eprintln!("could not write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}
