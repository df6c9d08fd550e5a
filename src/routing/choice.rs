//! Which deployment leads and which one a probe goes to: the decisions made on what the estimates say and how
//! much they are in doubt.

use super::{blended, prior_ms, Location, Policy, Router, Scored, Shape};
use crate::config::{Deployment, Objective};
use crate::routing::estimator::Estimate;

/// What the router knows about one deployment for one request.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct View {
    /// Expected time to first token.
    pub mean: f64,
    /// What latency routing minimises: the mean plus [`SPREAD_WEIGHT`] standard deviations.
    pub score: f64,
    /// One standard deviation of doubt about the mean.
    pub uncertainty: f64,
    measured: bool,
    /// A probe was sent and has not reported yet: another would learn nothing new.
    probe_pending: bool,
}

/// Latency routing minimises the expected time to first token plus this many standard deviations of it: of two
/// deployments equally fast on average, the steadier one, and a deployment whose tail is heavy enough to raise
/// its mean a lot is not chosen for a median that looks fast.
pub const SPREAD_WEIGHT: f64 = 0.5;
/// The deployment that leads keeps the lead until another is better by this many deviations of the doubt about
/// both: noise in two close estimates must not hand the traffic back and forth, nor one lucky sample of an
/// alternative take it.
const SWITCH_Z: f64 = 1.0;
/// How optimistic exploration is: an alternative is probed while its score, this many deviations of doubt
/// better, would beat the current first.
const PROBE_Z: f64 = 2.0;
/// A probe that has not reported after this long (isolate evicted, request cancelled) no longer blocks another.
const PROBE_PENDING_MS: u64 = 10_000;

/// Probe rate while some alternative has never been measured from here (a new isolate, a new deployment).
const UNMEASURED_EXPLORATION: f64 = 0.25;

fn leader_key(deps: &[Deployment], shape: Shape) -> (String, usize) {
    let ids: Vec<String> = deps.iter().map(Deployment::id).collect();
    (ids.join(" "), shape.slot())
}

impl Router {
    /// What the router compares for `dep`: the expected time to first token, its spread, and how uncertain the
    /// mean is, with the age of the evidence.
    pub(super) fn view(
        &self,
        dep: &Deployment,
        loc: &Location,
        shape: Shape,
        model_ms: f64,
        now_ms: u64,
    ) -> View {
        let prior = prior_ms(dep, loc, model_ms);
        let slot = shape.slot();
        let (est, probed_ms) = self
            .stats
            .get(&dep.id())
            .map_or((Estimate::default(), 0), |s| {
                (s.estimates[slot], s.probed_ms[slot])
            });
        let mean = est.expected_ms(prior) / dep.weight;
        View {
            mean,
            score: mean + SPREAD_WEIGHT * est.spread_ms(prior) / dep.weight,
            uncertainty: est.uncertainty_ms(prior, probed_ms, now_ms) / dep.weight,
            measured: est.samples > 0,
            probe_pending: probed_ms > est.last_ms && now_ms < probed_ms + PROBE_PENDING_MS,
        }
    }

    /// Puts the deployment that led the last request for this model and shape first again (latency objective),
    /// unless the best by score beats it by more than the doubt about the two; then the best leads.
    pub(super) fn keep_leader(
        &mut self,
        deps: &[Deployment],
        shape: Shape,
        policy: Policy,
        healthy: &mut Vec<Scored>,
        views: &[View],
    ) {
        let key = leader_key(deps, shape);
        if let (Objective::Latency, Some(leader)) = (policy.objective, self.leaders.get(&key)) {
            if let Some(k) = healthy.iter().position(|&(_, i)| deps[i].id() == *leader) {
                let (l, top) = (&views[healthy[k].1], &views[healthy[0].1]);
                let doubt = l.uncertainty.hypot(top.uncertainty);
                if top.score > l.score - SWITCH_Z * doubt {
                    let kept = healthy.remove(k);
                    healthy.insert(0, kept);
                }
            }
        }
        if let Some(&(_, first)) = healthy.first() {
            self.leaders.insert(key, deps[first].id());
        }
    }

    /// Exploration: moves the alternative most worth a probe first if the budget allows (true), or second.
    pub(super) fn explore(
        &mut self,
        deps: &[Deployment],
        shape: Shape,
        policy: Policy,
        healthy: &mut Vec<Scored>,
        views: &[View],
        now_ms: u64,
    ) -> bool {
        if healthy.len() < 2 || policy.exploration <= 0.0 {
            return false;
        }
        let Some(k) = self.probe_candidate(deps, healthy, views, policy) else {
            // Budget saved while nothing is worth a probe is spent at once when something becomes so.
            self.explore_credit = (self.explore_credit + policy.exploration).min(1.0);
            return false;
        };
        let rate = if views[healthy[k].1].measured {
            policy.exploration
        } else {
            policy.exploration.max(UNMEASURED_EXPLORATION)
        };
        self.explore_credit = (self.explore_credit + rate).min(1.0);
        let candidate = healthy.remove(k);
        if self.explore_credit < 1.0 {
            // Out of budget: second in line, so a hedge or a failover that happens anyway measures it.
            healthy.insert(1, candidate);
            return false;
        }
        // The probe goes first; the rest keep their order, so the best stays next in line for failover.
        self.explore_credit -= 1.0;
        healthy.insert(0, candidate);
        self.stats(&deps[candidate.1]).probed_ms[shape.slot()] = now_ms;
        true
    }

    /// The alternative most worth a probe: one that, at the optimistic end of what is known about it, would be
    /// ordered before the current first. Index into `healthy`; `None` if every alternative is known well enough
    /// to be worse, so exploration costs nothing while the picture is clear.
    fn probe_candidate(
        &self,
        deps: &[Deployment],
        healthy: &[Scored],
        views: &[View],
        policy: Policy,
    ) -> Option<usize> {
        let first = &views[healthy[0].1];
        let would_lead = |i: usize| {
            let v = &views[i];
            let optimism = PROBE_Z * v.uncertainty;
            match policy.objective {
                _ if !v.measured => true,
                Objective::Latency => v.score - optimism < first.score,
                Objective::Cost { max_ttft_ms } => {
                    let limit = max_ttft_ms as f64;
                    v.mean - optimism <= limit
                        && (first.mean > limit || blended(&deps[i]) < blended(&deps[healthy[0].1]))
                }
            }
        };
        (1..healthy.len())
            .filter(|&k| !views[healthy[k].1].probe_pending && would_lead(healthy[k].1))
            .min_by(|&a, &b| {
                let lower = |k: usize| {
                    let v = &views[healthy[k].1];
                    if v.measured {
                        v.score - PROBE_Z * v.uncertainty
                    } else {
                        f64::NEG_INFINITY
                    }
                };
                lower(a).total_cmp(&lower(b)).then(a.cmp(&b))
            })
    }
}
