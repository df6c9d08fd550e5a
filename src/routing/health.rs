//! Passive circuit breaker per deployment: failures, timeouts and 429s open it; after a cooldown one trial
//! request is let through (half-open), and its outcome closes or re-opens the circuit.

/// Consecutive failures that open the circuit.
const FAILURES_TO_OPEN: u32 = 3;
const MIN_COOLDOWN_MS: u64 = 2_000;
/// Trials are cheap (one request, protected by failover), so a recovered deployment is found within seconds.
const MAX_COOLDOWN_MS: u64 = 15_000;
/// A trial that never reports back (isolate evicted mid-request) must not block the deployment forever.
const TRIAL_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed {
        failures: u32,
    },
    Open {
        until_ms: u64,
        cooldown_ms: u64,
    },
    HalfOpen {
        trial_since_ms: u64,
        cooldown_ms: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Healthy: route normally.
    Yes,
    /// Cooldown over: one trial request may go.
    Trial,
    /// Open (or a trial is already in flight).
    No,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breaker {
    pub circuit: Circuit,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            circuit: Circuit::Closed { failures: 0 },
        }
    }
}

impl Breaker {
    pub fn admission(&self, now_ms: u64) -> Admission {
        match self.circuit {
            Circuit::Closed { .. } => Admission::Yes,
            Circuit::Open { until_ms, .. } if now_ms >= until_ms => Admission::Trial,
            Circuit::Open { .. } => Admission::No,
            Circuit::HalfOpen { trial_since_ms, .. }
                if now_ms >= trial_since_ms + TRIAL_TIMEOUT_MS =>
            {
                Admission::Trial
            }
            Circuit::HalfOpen { .. } => Admission::No,
        }
    }

    /// The trial request was sent.
    pub fn start_trial(&mut self, now_ms: u64) {
        let cooldown_ms = match self.circuit {
            Circuit::Open { cooldown_ms, .. } | Circuit::HalfOpen { cooldown_ms, .. } => {
                cooldown_ms
            }
            Circuit::Closed { .. } => return,
        };
        self.circuit = Circuit::HalfOpen {
            trial_since_ms: now_ms,
            cooldown_ms,
        };
    }

    pub fn on_success(&mut self) {
        self.circuit = Circuit::Closed { failures: 0 };
    }

    /// `retry_after_ms`: the provider said when to come back (429 / 503 with a retry-after header).
    pub fn on_failure(&mut self, now_ms: u64, retry_after_ms: Option<u64>) {
        let next_cooldown = |c: u64| (c * 2).clamp(MIN_COOLDOWN_MS, MAX_COOLDOWN_MS);
        self.circuit = match (self.circuit, retry_after_ms) {
            (_, Some(ms)) => Circuit::Open {
                until_ms: now_ms + ms.min(MAX_COOLDOWN_MS),
                cooldown_ms: MIN_COOLDOWN_MS,
            },
            (Circuit::Closed { failures }, None) if failures + 1 < FAILURES_TO_OPEN => {
                Circuit::Closed {
                    failures: failures + 1,
                }
            }
            (Circuit::Closed { .. }, None) => Circuit::Open {
                until_ms: now_ms + MIN_COOLDOWN_MS,
                cooldown_ms: MIN_COOLDOWN_MS,
            },
            (Circuit::Open { cooldown_ms, .. } | Circuit::HalfOpen { cooldown_ms, .. }, None) => {
                let c = next_cooldown(cooldown_ms);
                Circuit::Open {
                    until_ms: now_ms + c,
                    cooldown_ms: c,
                }
            }
        };
    }

    pub fn label(&self) -> &'static str {
        match self.circuit {
            Circuit::Closed { .. } => "closed",
            Circuit::Open { .. } => "open",
            Circuit::HalfOpen { .. } => "half-open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_recovers_through_a_trial() {
        let mut b = Breaker::default();
        b.on_failure(0, None);
        b.on_failure(1, None);
        assert_eq!(b.admission(2), Admission::Yes);
        b.on_failure(2, None);
        assert_eq!(b.admission(3), Admission::No);
        assert_eq!(b.admission(2 + MIN_COOLDOWN_MS), Admission::Trial);
        b.start_trial(2 + MIN_COOLDOWN_MS);
        assert_eq!(
            b.admission(3 + MIN_COOLDOWN_MS),
            Admission::No,
            "one trial at a time"
        );
        b.on_success();
        assert_eq!(b.admission(4 + MIN_COOLDOWN_MS), Admission::Yes);
    }

    #[test]
    fn failed_trials_back_off_exponentially_up_to_a_cap() {
        let mut b = Breaker::default();
        for t in 0..3 {
            b.on_failure(t, None);
        }
        let mut now = 2 + MIN_COOLDOWN_MS;
        let mut last = MIN_COOLDOWN_MS;
        for _ in 0..10 {
            assert_eq!(b.admission(now), Admission::Trial);
            b.start_trial(now);
            b.on_failure(now, None);
            let Circuit::Open {
                until_ms,
                cooldown_ms,
            } = b.circuit
            else {
                panic!()
            };
            assert!(cooldown_ms >= last && cooldown_ms <= MAX_COOLDOWN_MS);
            last = cooldown_ms;
            now = until_ms;
        }
        assert_eq!(last, MAX_COOLDOWN_MS);
    }

    #[test]
    fn retry_after_opens_at_once_for_that_long() {
        let mut b = Breaker::default();
        b.on_failure(1_000, Some(5_000));
        assert_eq!(b.admission(5_999), Admission::No);
        assert_eq!(b.admission(6_000), Admission::Trial);
    }

    #[test]
    fn a_lost_trial_does_not_block_forever() {
        let mut b = Breaker::default();
        b.on_failure(0, Some(1));
        b.start_trial(10);
        assert_eq!(b.admission(10 + TRIAL_TIMEOUT_MS), Admission::Trial);
    }
}
