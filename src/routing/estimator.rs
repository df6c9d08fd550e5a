//! Learned latency of one deployment as seen from this edge location: an exponentially weighted mean and variance
//! of time to first token, per request shape, that forgets old evidence.

/// Weight of a sample above the estimate: a doubled latency shows after two or three requests.
const ALPHA_UP: f64 = 0.3;
/// Weight of a sample below the estimate. Latency has a hard floor and spikes only upwards, so a fast sample is
/// strong evidence: a recovered deployment is believed after one or two probes.
const ALPHA_DOWN: f64 = 0.6;
/// A sample this many deviations above the estimate moves the mean only as far as this bound (it still
/// widens the variance), so one tail event does not hide a fast deployment behind a spike.
const OUTLIER_SD: f64 = 4.0;
/// Evidence this old (ms) counts half as much; the prior takes over again as it ages, so a deployment that
/// was slow a while ago is tried again.
const HALF_LIFE_MS: f64 = 20_000.0;

/// Prompt sizes in request bytes: latency to first token grows with the prompt.
pub const BUCKETS: usize = 4;

pub fn bucket(request_bytes: usize) -> usize {
    match request_bytes {
        0..=2_047 => 0,
        2_048..=16_383 => 1,
        16_384..=131_071 => 2,
        _ => 3,
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Estimate {
    pub mean_ms: f64,
    pub var_ms2: f64,
    pub samples: u32,
    /// When the last sample arrived (Unix ms).
    pub last_ms: u64,
}

impl Estimate {
    pub fn observe(&mut self, ms: f64, now_ms: u64) {
        if self.samples == 0 {
            self.mean_ms = ms;
            self.var_ms2 = (ms * 0.25).powi(2);
        } else {
            let diff = ms - self.mean_ms;
            let alpha = if diff < 0.0 { ALPHA_DOWN } else { ALPHA_UP };
            let sd = self.var_ms2.sqrt().max(self.mean_ms * 0.1);
            let bounded = if self.samples >= 3 {
                ms.min(self.mean_ms + OUTLIER_SD * sd)
            } else {
                ms
            };
            self.mean_ms += alpha * (bounded - self.mean_ms);
            self.var_ms2 = (1.0 - alpha) * (self.var_ms2 + alpha * diff * diff);
        }
        self.samples = self.samples.saturating_add(1);
        self.last_ms = now_ms;
    }

    /// How much the learned mean is still trusted, 1 for fresh evidence falling towards 0 with age.
    fn confidence(&self, now_ms: u64) -> f64 {
        if self.samples == 0 {
            return 0.0;
        }
        let age = now_ms.saturating_sub(self.last_ms) as f64;
        (-age * core::f64::consts::LN_2 / HALF_LIFE_MS).exp()
    }

    /// Expected time to first token, blending the learned mean with `prior_ms` as evidence ages.
    pub fn expected_ms(&self, prior_ms: f64, now_ms: u64) -> f64 {
        let w = self.confidence(now_ms);
        w * self.mean_ms + (1.0 - w) * prior_ms
    }

    /// A 90th-percentile estimate (normal approximation), for deciding when to hedge.
    pub fn p90_ms(&self, prior_ms: f64, now_ms: u64) -> f64 {
        let mean = self.expected_ms(prior_ms, now_ms);
        let sd = if self.samples == 0 {
            prior_ms * 0.25
        } else {
            self.var_ms2.sqrt()
        };
        mean + 1.2816 * sd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converges_and_tracks_a_shift_within_a_few_samples() {
        let mut e = Estimate::default();
        for i in 0..20 {
            e.observe(100.0, i);
        }
        assert!((e.mean_ms - 100.0).abs() < 1e-6);
        for i in 0..3 {
            e.observe(400.0, 20 + i);
        }
        assert!(
            e.mean_ms > 250.0,
            "after 3 slow samples the estimate moved: {}",
            e.mean_ms
        );
    }

    #[test]
    fn old_evidence_fades_towards_the_prior() {
        let mut e = Estimate::default();
        e.observe(1000.0, 0);
        assert!((e.expected_ms(100.0, 0) - 1000.0).abs() < 1e-6);
        let one_half_life = e.expected_ms(100.0, HALF_LIFE_MS as u64);
        assert!(one_half_life < 1000.0);
        assert!((one_half_life - 550.0).abs() < 1.0, "{one_half_life}");
        assert!(e.expected_ms(100.0, 10 * HALF_LIFE_MS as u64) < 110.0);
        assert_eq!(Estimate::default().expected_ms(123.0, 5), 123.0);
    }

    #[test]
    fn a_single_spike_does_not_bury_a_fast_deployment_but_a_shift_is_followed() {
        let mut e = Estimate::default();
        for i in 0..10 {
            e.observe(40.0, i);
        }
        e.observe(1_500.0, 10);
        assert!(e.mean_ms < 150.0, "one spike: {}", e.mean_ms);
        assert!(
            e.p90_ms(0.0, 10) > 300.0,
            "but the tail shows in the p90: {}",
            e.p90_ms(0.0, 10)
        );
        for i in 0..4 {
            e.observe(600.0, 11 + i);
        }
        assert!(e.mean_ms > 350.0, "a real shift is followed: {}", e.mean_ms);
        e.observe(40.0, 20);
        e.observe(40.0, 21);
        assert!(e.mean_ms < 150.0, "and so is the recovery: {}", e.mean_ms);
    }

    #[test]
    fn p90_is_above_the_mean_and_grows_with_variance() {
        let mut steady = Estimate::default();
        let mut noisy = Estimate::default();
        for i in 0..30 {
            steady.observe(100.0, i);
            noisy.observe(if i % 2 == 0 { 50.0 } else { 150.0 }, i);
        }
        assert!(steady.p90_ms(0.0, 30) >= 100.0);
        assert!(noisy.p90_ms(0.0, 30) > steady.p90_ms(0.0, 30) + 20.0);
    }

    #[test]
    fn buckets() {
        assert_eq!(
            (
                bucket(0),
                bucket(2_047),
                bucket(2_048),
                bucket(20_000),
                bucket(1 << 20)
            ),
            (0, 0, 1, 2, 3)
        );
    }
}
