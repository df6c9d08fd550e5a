//! The simulated world: scenarios, true latencies and availability, and what "best" means.

use meridian::config::Deployment;
use meridian::routing::SPREAD_WEIGHT;

pub const INTERVAL_MS: u64 = 200;
/// Simulated Unix time of the first request.
pub const START_MS: u64 = 1_700_000_000_000;
/// A 503 comes back this fast.
pub const FAIL_MS: f64 = 50.0;

/// Short name, region, base median (model time, ms), base sigma.
pub const DEPLOYMENTS: [(&str, &str, f64, f64); 4] = [
    ("fra", "eu-central-1", 450.0, 0.3),
    ("dub", "eu-west-1", 300.0, 0.3),
    ("iad", "us-east-1", 350.0, 0.3),
    ("nrt", "ap-northeast-1", 400.0, 0.3),
];
/// The deployment most scenarios perturb (the truly fastest at the start).
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

pub fn hash(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x6A09_E667_F3BC_C908, |h, &p| splitmix64(h ^ splitmix64(p)))
}

/// Uniform in (0, 1].
pub fn unit(h: u64) -> f64 {
    ((h >> 11) + 1) as f64 / (1u64 << 53) as f64
}

/// Standard normal from a hash (Box-Muller, cosine branch).
fn std_normal(h: u64) -> f64 {
    let u1 = unit(splitmix64(h));
    let u2 = unit(splitmix64(h ^ 0xD1B5_4A32_D192_ED03));
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Steady,
    Shift,
    Outage,
    HeavyTail,
    Improve,
    Drift,
    Flap,
    PromptSize,
    Isolates,
}

pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub kind: Kind,
}

pub const SCENARIOS: [Scenario; 9] = [
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
        about: "dub has sigma 1.0 (same median 300 ms, but mean ~528 ms and p99 ~3 s): fra is best",
        kind: Kind::HeavyTail,
    },
    Scenario {
        name: "improve",
        about: "at 1/3 of the run fra's median drops 450 -> 150 ms: an unused region becomes best",
        kind: Kind::Improve,
    },
    Scenario {
        name: "drift",
        about: "dub slows steadily 300 -> 600 ms over the run while the unused fra speeds up 450 -> 300 ms",
        kind: Kind::Drift,
    },
    Scenario {
        name: "flap",
        about: "dub answers 503 for 10 s out of every 40 s",
        kind: Kind::Flap,
    },
    Scenario {
        name: "prompt-size",
        about: "dub's time grows 3x per prompt-size bucket, the others' by half: dub is best only for small prompts",
        kind: Kind::PromptSize,
    },
    Scenario {
        name: "isolates",
        about: "8 isolates, each replaced every 2 min, share estimates through KV (visible 60 s after a write); at 1/3 dub triples",
        kind: Kind::Isolates,
    },
];

/// Isolates in the `isolates` scenario, and how long each lives.
pub const ISOLATES: usize = 8;
pub const ISOLATE_LIFE_MS: u64 = 120_000;
/// A KV write is visible to other isolates after this long.
pub const KV_DELAY_MS: u64 = 60_000;
/// Flapping: down for `FLAP_DOWN_MS` at the start of every `FLAP_PERIOD_MS`, from the first period's middle on.
const FLAP_PERIOD_MS: u64 = 40_000;
const FLAP_DOWN_MS: u64 = 10_000;

pub struct World<'a> {
    pub scenario: &'a Scenario,
    pub index: u64,
    pub seed: u64,
    pub requests: usize,
    pub deps: Vec<Deployment>,
    pub net: Vec<f64>,
    /// Prompt-size bucket of each request.
    pub buckets: Vec<usize>,
}

impl<'a> World<'a> {
    pub fn new(
        scenario: &'a Scenario,
        index: u64,
        seed: u64,
        requests: usize,
        deps: Vec<Deployment>,
        net: Vec<f64>,
    ) -> Self {
        let buckets = (0..requests)
            .map(|req| match scenario.kind {
                // Half small prompts, 30% medium, 20% large.
                Kind::PromptSize => match unit(hash(&[seed, index, req as u64, 0xB0C])) {
                    u if u <= 0.5 => 0,
                    u if u <= 0.8 => 1,
                    _ => 2,
                },
                _ => 0,
            })
            .collect();
        World {
            scenario,
            index,
            seed,
            requests,
            deps,
            net,
            buckets,
        }
    }

    /// Share of the run elapsed at `t`, 0 to 1.
    fn progress(&self, t: f64) -> f64 {
        let span = (self.requests as u64 * INTERVAL_MS) as f64;
        ((t - START_MS as f64) / span).clamp(0.0, 1.0)
    }

    /// Third of the run (0, 1, 2) the simulated time `t` falls in.
    fn phase(&self, t: f64) -> usize {
        ((3.0 * self.progress(t)).floor() as usize).min(2)
    }

    /// True median model time (without network) of `d` at `t` for a prompt of `bucket`.
    fn median(&self, d: usize, t: f64, bucket: usize) -> f64 {
        let base = DEPLOYMENTS[d].2;
        let x = self.progress(t);
        match self.scenario.kind {
            Kind::Shift | Kind::Isolates if d == DUB && self.phase(t) >= 1 => base * 3.0,
            Kind::Improve if d == FRA && self.phase(t) >= 1 => base / 3.0,
            Kind::Drift if d == DUB => base * (1.0 + x),
            Kind::Drift if d == FRA => base * (1.0 - x / 3.0),
            Kind::PromptSize => base * (1.0 + if d == DUB { 2.0 } else { 0.5 } * bucket as f64),
            _ => base,
        }
    }

    pub fn sigma(&self, d: usize) -> f64 {
        match self.scenario.kind {
            Kind::HeavyTail if d == DUB => 1.0,
            _ => DEPLOYMENTS[d].3,
        }
    }

    fn available(&self, d: usize, t: f64) -> bool {
        if d != DUB {
            return true;
        }
        match self.scenario.kind {
            Kind::Outage => self.phase(t) != 1,
            Kind::Flap => {
                let since = (t as u64).saturating_sub(START_MS + FLAP_PERIOD_MS / 2);
                t < (START_MS + FLAP_PERIOD_MS / 2) as f64 || since % FLAP_PERIOD_MS >= FLAP_DOWN_MS
            }
            _ => true,
        }
    }

    /// What routing minimises, from the true distribution: the mean time to first token plus `SPREAD_WEIGHT`
    /// standard deviations (lognormal model time on top of a constant network time). With equal sigmas the
    /// order is the medians' order; with a heavy tail it is not.
    pub fn true_score(&self, d: usize, t: f64, bucket: usize) -> f64 {
        let s2 = self.sigma(d).powi(2);
        let mean_model = self.median(d, t, bucket) * (s2 / 2.0).exp();
        let sd = mean_model * (s2.exp() - 1.0).sqrt();
        self.net[d] + mean_model + SPREAD_WEIGHT * sd
    }

    /// Available deployments by true score, then the unavailable ones.
    pub fn truth_order(&self, t: f64, bucket: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.deps.len()).collect();
        v.sort_by(|&a, &b| {
            (!self.available(a, t)).cmp(&!self.available(b, t)).then(
                self.true_score(a, t, bucket)
                    .total_cmp(&self.true_score(b, t, bucket)),
            )
        });
        v
    }

    pub fn best(&self, req: usize, t: f64) -> usize {
        self.truth_order(t, self.buckets[req])[0]
    }

    /// What an attempt of request `req` on `d` started at `t` does: (succeeded, ms until it answers).
    pub fn attempt(&self, req: usize, d: usize, t: f64) -> (bool, f64) {
        if !self.available(d, t) {
            return (false, FAIL_MS);
        }
        let z = std_normal(hash(&[self.seed, self.index, req as u64, d as u64]));
        let median = self.median(d, t, self.buckets[req]);
        (true, self.net[d] + median * (self.sigma(d) * z).exp())
    }

    /// Requests at which the truth changes; the start counts (cold start: nothing is known yet).
    pub fn change_points(&self) -> Vec<usize> {
        let n = self.requests;
        match self.scenario.kind {
            Kind::Shift | Kind::Improve | Kind::Isolates => vec![0, n.div_ceil(3)],
            Kind::Outage => vec![0, n.div_ceil(3), (2 * n).div_ceil(3)],
            // Where the drifting deployments cross.
            Kind::Drift => {
                let at = |req: usize| START_MS as f64 + (req as u64 * INTERVAL_MS) as f64;
                let cross = (1..n).find(|&r| self.best(r, at(r)) != self.best(0, at(0)));
                std::iter::once(0).chain(cross).collect()
            }
            Kind::Steady | Kind::HeavyTail | Kind::Flap | Kind::PromptSize => vec![0],
        }
    }
}
