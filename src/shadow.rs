//! Shadows and experiments, the pure part: which requests are sampled, which arm a user is on, what an answer
//! said (read back from the bytes a client got), how two answers agree, and the statistics over the outcomes the
//! ledger objects keep. The gateway runs the calls (`gateway::shadow`); the ledger objects store the outcomes.

mod compare;
mod stats;

pub use compare::{agreement, read_answer, Agreement, Answer, Wire};
pub use stats::{
    arm_stats, pair_stats, ArmDay, Outcome, PairDay, Sample, Side, Skip, StoredOutcome,
};

use sha2::{Digest, Sha256};

/// A number in [0, 1) from the SHA-256 of `salt` and `bytes`: the same bytes always give the same number, and
/// different salts give independent ones.
pub fn unit(salt: &str, bytes: &[u8]) -> f64 {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0]);
    h.update(bytes);
    let d = h.finalize();
    let n = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    // The top 53 bits: exactly representable, uniform in [0, 1).
    (n >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether a request body is shadowed by `shadow` at `share`: a request repeated byte for byte is sampled the
/// same way, each shadow of a model independently.
pub fn sampled(shadow: &str, body: &[u8], share: f64) -> bool {
    share >= 1.0 || unit(shadow, body) < share
}

/// The arm of an experiment (`shares` add up to 1) a sticky id is on: the same id, the same arm, as long as the
/// arms and their shares stay as they are.
pub fn arm_of(experiment: &str, sticky: &str, shares: &[f64]) -> usize {
    let u = unit(experiment, sticky.as_bytes());
    let mut acc = 0.0;
    for (i, s) in shares.iter().enumerate() {
        acc += s;
        if u < acc {
            return i;
        }
    }
    shares.len().saturating_sub(1)
}

#[cfg(test)]
mod tests;
