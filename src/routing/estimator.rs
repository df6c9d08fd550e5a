//! Learned latency of one deployment as seen from this edge location: an exponentially weighted mean, variance
//! and mean deviation of time to first token, per request shape, and how much the mean is still in doubt.

/// Weight of a new sample. The same up and down, so the estimate is of the mean (a larger weight for fast
/// samples tracks a low quantile instead, which makes a deployment with a heavy tail look faster than it is on
/// average); small, so two deployments a few percent apart are not swapped by noise. A slowdown still shows
/// within a few requests, in the spread before the mean.
const ALPHA: f64 = 0.1;
/// Weight of a sample more than [`IMPROVEMENT_SD`] deviations below the estimate. Latency has a floor and spikes
/// only upwards, so such a sample is not noise but a deployment that got faster: it is believed after one or
/// two probes.
const ALPHA_IMPROVED: f64 = 0.6;
const IMPROVEMENT_SD: f64 = 2.0;
/// A sample this many deviations above the estimate moves the mean only as far as this bound (it still
/// widens the variance), so one tail event does not hide a fast deployment behind a spike.
const OUTLIER_SD: f64 = 4.0;
/// How far a deployment's mean latency is assumed to wander unobserved, as a share of it per square root of a
/// minute: a random walk, so an estimate not refreshed for four minutes is twice as uncertain as after one.
const DRIFT_PER_SQRT_MIN: f64 = 0.1;
/// Samples counted towards the precision of the mean: the estimate forgets, so more do not make it surer.
const PRECISION_SAMPLES: u32 = 20;

/// Standard deviations per mean absolute deviation for a normal distribution.
pub const MAD_PER_SD: f64 = 1.2533;

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
    /// Mean absolute deviation of the samples, outliers bounded as for the mean: the spread routing compares,
    /// which one spike moves far less than it moves the variance (that one is for hedging and the bounds).
    pub dev_ms: f64,
    pub samples: u32,
    /// When the last sample arrived (Unix ms).
    pub last_ms: u64,
}

impl Estimate {
    pub fn observe(&mut self, ms: f64, now_ms: u64) {
        if self.samples == 0 {
            self.mean_ms = ms;
            self.var_ms2 = (ms * 0.25).powi(2);
            self.dev_ms = ms * 0.25 / MAD_PER_SD;
        } else {
            let diff = ms - self.mean_ms;
            let sd = self.var_ms2.sqrt().max(self.mean_ms * 0.1);
            // Until there are enough samples for the weight to matter, the plain average of them: one unlucky
            // first sample must not stand for ten.
            let plain = 1.0 / (f64::from(self.samples) + 1.0);
            // Old evidence is worth less: a sample counts as much as the doubt about the mean makes it worth
            // against the sample's own spread (a Kalman gain), so a probe after minutes moves the estimate more.
            let doubt = self.uncertainty_ms(0.0, 0, now_ms).powi(2);
            let gain = doubt / (doubt + self.var_ms2).max(f64::MIN_POSITIVE);
            let alpha = if diff < -IMPROVEMENT_SD * sd {
                ALPHA_IMPROVED
            } else {
                ALPHA
            }
            .max(plain)
            .max(gain);
            let bounded = if self.samples >= 3 {
                ms.min(self.mean_ms + OUTLIER_SD * sd)
            } else {
                ms
            };
            self.dev_ms += alpha * ((bounded - self.mean_ms).abs() - self.dev_ms);
            self.mean_ms += alpha * (bounded - self.mean_ms);
            self.var_ms2 = (1.0 - alpha) * (self.var_ms2 + alpha * diff * diff);
        }
        self.samples = self.samples.saturating_add(1);
        self.last_ms = now_ms;
    }

    /// Expected time to first token: the learned mean, or `prior_ms` before anything was measured. Old evidence
    /// is not blended away but doubted ([`Estimate::uncertainty_ms`]), which sends a probe to look again.
    pub fn expected_ms(&self, prior_ms: f64) -> f64 {
        if self.samples == 0 {
            prior_ms
        } else {
            self.mean_ms
        }
    }

    /// Spread (standard deviation) of time to first token, from the mean deviation. Unmeasured: a quarter of the
    /// prior.
    pub fn spread_ms(&self, prior_ms: f64) -> f64 {
        if self.samples == 0 {
            prior_ms * 0.25
        } else {
            self.dev_ms * MAD_PER_SD
        }
    }

    /// How far the true mean may be from the estimate (one standard deviation): the sampling error of the mean
    /// plus the drift possible since the evidence was gathered, or since `probed_ms` if a probe is on its way.
    /// Unmeasured: the prior's spread, as if it were one sample.
    pub fn uncertainty_ms(&self, prior_ms: f64, probed_ms: u64, now_ms: u64) -> f64 {
        if self.samples == 0 {
            return self.spread_ms(prior_ms);
        }
        let n = f64::from(self.samples.min(PRECISION_SAMPLES));
        let minutes = now_ms.saturating_sub(self.last_ms.max(probed_ms)) as f64 / 60_000.0;
        let drift = DRIFT_PER_SQRT_MIN * self.mean_ms;
        (self.var_ms2 / n + drift * drift * minutes).sqrt()
    }

    /// A 90th-percentile estimate (normal approximation), for deciding when to hedge.
    pub fn p90_ms(&self, prior_ms: f64) -> f64 {
        let mean = self.expected_ms(prior_ms);
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
        let before = e.mean_ms + e.spread_ms(0.0);
        for i in 0..4 {
            e.observe(400.0, 20 + i);
        }
        // Mean plus one deviation: what a comparison with a 250 ms deployment sees after four slow samples.
        assert!(
            e.mean_ms + e.spread_ms(0.0) > 250.0 && before < 110.0,
            "after 4 slow samples: mean {} spread {}",
            e.mean_ms,
            e.spread_ms(0.0)
        );
    }

    #[test]
    fn the_first_samples_are_averaged_not_weighted() {
        let mut e = Estimate::default();
        for (i, ms) in [600.0, 300.0, 300.0].into_iter().enumerate() {
            e.observe(ms, i as u64);
        }
        assert!((e.mean_ms - 400.0).abs() < 1e-3, "{}", e.mean_ms);
    }

    #[test]
    fn the_estimate_is_of_the_mean_not_of_a_low_quantile() {
        // Mostly 100 ms, one in five 600 ms: mean 200 ms, median 100 ms.
        let mut e = Estimate::default();
        for i in 0..2_000u64 {
            e.observe(if i % 5 == 4 { 600.0 } else { 100.0 }, i);
        }
        assert!((150.0..250.0).contains(&e.mean_ms), "{}", e.mean_ms);
    }

    #[test]
    fn doubt_grows_with_age_and_old_evidence_gives_way_to_a_new_sample() {
        let mut e = Estimate::default();
        for i in 0..20 {
            e.observe(if i % 2 == 0 { 900.0 } else { 1_100.0 }, i);
        }
        let fresh = e.uncertainty_ms(0.0, 0, 20);
        let minute = e.uncertainty_ms(0.0, 0, 60_000);
        let four = e.uncertainty_ms(0.0, 0, 240_000);
        assert!(fresh < minute && minute < four, "{fresh} {minute} {four}");
        assert!(four > 150.0, "{four}");
        // A probe on its way counts as fresh evidence, so the next request does not probe again.
        assert!((e.uncertainty_ms(0.0, 240_000, 240_000) - fresh).abs() < 1.0);
        assert_eq!(Estimate::default().uncertainty_ms(400.0, 0, 5), 100.0);
        assert_eq!(Estimate::default().expected_ms(123.0), 123.0);

        let mut soon = e;
        soon.observe(700.0, 20);
        let mut late = e;
        late.observe(700.0, 600_000);
        assert!(
            late.mean_ms < soon.mean_ms - 50.0,
            "a sample after ten minutes moves the estimate more: {} vs {}",
            late.mean_ms,
            soon.mean_ms
        );
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
            e.spread_ms(0.0) < e.var_ms2.sqrt() / 2.0,
            "the spread routing compares moves less than the variance: {} vs {}",
            e.spread_ms(0.0),
            e.var_ms2.sqrt()
        );
        assert!(
            e.p90_ms(0.0) > 300.0,
            "but the tail shows in the p90 hedging uses: {}",
            e.p90_ms(0.0)
        );
        for i in 0..4 {
            e.observe(600.0, 11 + i);
        }
        assert!(
            e.mean_ms + e.spread_ms(0.0) > 350.0,
            "a real shift is followed: {} + {}",
            e.mean_ms,
            e.spread_ms(0.0)
        );
        let slow = e.mean_ms;
        e.observe(40.0, 20);
        e.observe(40.0, 21);
        // A recovery within the spread just seen is believed at the ordinary pace (a fall of more than two
        // deviations would be believed at once); exploration's doubt makes a probe count more once it is old.
        assert!(
            e.mean_ms < slow - 30.0,
            "and so is the recovery: {} from {slow}",
            e.mean_ms
        );
    }

    #[test]
    fn p90_is_above_the_mean_and_grows_with_variance() {
        let mut steady = Estimate::default();
        let mut noisy = Estimate::default();
        for i in 0..30 {
            steady.observe(100.0, i);
            noisy.observe(if i % 2 == 0 { 50.0 } else { 150.0 }, i);
        }
        assert!(steady.p90_ms(0.0) >= 100.0);
        assert!(noisy.p90_ms(0.0) > steady.p90_ms(0.0) + 20.0);
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
