//! Rate limits decided at the edge: an isolate admits a limited key's requests from a slice of the key's window
//! that the key's limiter object handed it (see [`crate::ratelimit::Window::grant`]), without a round trip. It asks
//! for the next slice in the background when half of the current one is spent; only a request that finds no slice
//! left waits for the object. A fresh isolate's first request waits too: admitting anything without a slice would
//! let every new isolate overshoot the limit. Slices are sized to the key's recent rate at this isolate, and never
//! more than a tenth of the limit, so an isolate holds little that others might need.
//!
//! The object never hands out more than a window's budget, so what is admitted stays within it but for two things:
//! a slice used just past the window's end by an isolate whose clock runs behind the object's (at most the slices
//! outstanding at a window boundary), and tokens, which are charged as estimates and corrected once the provider
//! has counted (a long answer counts what it cost, and may take the window past its budget by that much).

use crate::ratelimit::{Grant, Standing};
use std::collections::{HashMap, VecDeque};

/// An isolate that admitted nothing for a key this long gives its slice back.
pub const IDLE_MS: u64 = 5_000;

/// How long an idle watch may keep its request's work alive (`wait_until` lasts some 30 s after the answer).
pub const WATCH_FOR_MS: u64 = 25_000;

/// How long a spent window is refused here before the object is asked again.
const SPENT_RECHECK_MS: u64 = 1_000;

/// How far back this isolate's rate for a key is measured.
const RATE_SPAN_MS: u64 = 10_000;

/// One key's slice at this isolate.
#[derive(Debug, Default)]
struct Lease {
    window_end_ms: u64,
    requests: u32,
    tokens: u64,
    /// The last slice's size: refills are asked for when half of it is spent.
    slice_requests: u32,
    slice_tokens: u64,
    /// A refill is on its way.
    refilling: bool,
    /// The object said the window is spent: refused here without asking again until then (a second at most, as
    /// other isolates may give back what they hold), with the object's `retry-after`.
    spent_until_ms: u64,
    spent_retry_after_s: u64,
    /// When this isolate admitted the key's recent requests.
    recent: VecDeque<u64>,
    /// A watch for idleness is running.
    watching: bool,
    /// What the object had not handed out at its last answer, and the window that was: with the slice held here,
    /// where the key stands as far as this isolate knows.
    object_left: (Option<u32>, Option<u64>),
    object_end_ms: u64,
    /// Counts the slices this isolate has held for the key: a settlement (see [`Leases::settle`]) goes into the
    /// slice its reservation came from, or to the object when that slice is gone.
    generation: u64,
}

/// What to ask the object for: a slice, and the unused rest of the one held (which it takes back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    pub requests: u32,
    pub tokens: u64,
    pub give_back: Option<(u64, u32, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Admitted from the slice; `refill`: ask for the next slice in the background.
    Admit { refill: Option<Want> },
    /// No slice left: ask the object and wait.
    Ask(Want),
    /// The window is spent (the object said so): refused without asking, until it ends.
    Spent { retry_after_s: u64 },
}

/// The slices this isolate holds, by budget key.
#[derive(Debug, Default)]
pub struct Leases {
    by_key: HashMap<String, Lease>,
}

impl Leases {
    /// Admits one request of `estimate` tokens from the key's slice, if it has room.
    pub fn admit(
        &mut self,
        key: &str,
        now_ms: u64,
        (rpm, tpm): (Option<u32>, Option<u64>),
        estimate: u64,
    ) -> Verdict {
        let lease = self.by_key.entry(key.to_owned()).or_default();
        while lease
            .recent
            .front()
            .is_some_and(|t| now_ms.saturating_sub(*t) > RATE_SPAN_MS)
        {
            lease.recent.pop_front();
        }
        let live = now_ms < lease.window_end_ms;
        // Without `rpm` the slice's request count holds nothing back (a budget is tokens alone: micro-dollars).
        let has_room = live
            && (rpm.is_none() || lease.requests > 0)
            && (tpm.is_none() || lease.tokens >= estimate);
        if !has_room && now_ms < lease.spent_until_ms {
            return Verdict::Spent {
                retry_after_s: lease.spent_retry_after_s,
            };
        }
        if !has_room {
            let w = want(lease, now_ms, rpm, tpm, estimate, live);
            if w.give_back.is_some() {
                // Given back with the ask: the grant replaces it (should the ask fail, the slice is lost here,
                // which only errs towards refusing).
                lease.requests = 0;
                lease.tokens = 0;
                lease.generation += 1;
            }
            return Verdict::Ask(w);
        }
        lease.requests = lease.requests.saturating_sub(1);
        if tpm.is_some() {
            lease.tokens -= estimate;
        }
        lease.recent.push_back(now_ms);
        let half_spent = (rpm.is_some() && lease.requests <= lease.slice_requests / 2)
            || (tpm.is_some() && lease.tokens <= lease.slice_tokens / 2);
        let refill = (half_spent && !lease.refilling).then(|| {
            lease.refilling = true;
            want(lease, now_ms, rpm, tpm, estimate, false)
        });
        Verdict::Admit { refill }
    }

    /// A slice arrived (asked for by a waiting request or a refill): it replaces what was held, which the request
    /// that asked gave back.
    pub fn granted(&mut self, key: &str, now_ms: u64, grant: Grant) {
        let lease = self.by_key.entry(key.to_owned()).or_default();
        lease.refilling = false;
        // A late answer about a window already over changes nothing held for the current one.
        if grant.window_end_ms < lease.window_end_ms {
            return;
        }
        lease.object_left = (grant.left_requests, grant.left_tokens);
        lease.object_end_ms = grant.window_end_ms;
        if grant.requests == 0 {
            lease.spent_until_ms = grant.window_end_ms.min(now_ms + SPENT_RECHECK_MS);
            lease.spent_retry_after_s = grant.retry_after_s.max(1);
            return;
        }
        if lease.window_end_ms == grant.window_end_ms && (lease.requests > 0 || lease.tokens > 0) {
            // A refill that arrives while the slice still holds something adds to it (nothing was given back:
            // a slice a request gave back with its ask is empty here).
            lease.requests += grant.requests;
            lease.tokens += grant.tokens;
        } else {
            lease.requests = grant.requests;
            lease.tokens = grant.tokens;
            lease.generation += 1;
        }
        lease.window_end_ms = grant.window_end_ms;
        lease.slice_requests = grant.requests;
        lease.slice_tokens = grant.tokens;
    }

    /// Whether to start watching the key's slice for idleness (none is running and there is a slice to give back).
    pub fn watch(&mut self, key: &str, now_ms: u64) -> bool {
        let Some(l) = self.by_key.get_mut(key) else {
            return false;
        };
        let start = !l.watching && now_ms < l.window_end_ms && (l.requests > 0 || l.tokens > 0);
        l.watching |= start;
        start
    }

    /// A watch's look, `IDLE_MS` after the last: `Some` with what to give back when the key has been idle that long
    /// (the slice is emptied here); `None` to look again later, or (with `false`) to stop watching.
    pub fn idle(&mut self, key: &str, now_ms: u64) -> (Option<Want>, bool) {
        let Some(l) = self.by_key.get_mut(key) else {
            return (None, false);
        };
        let holds = now_ms < l.window_end_ms && (l.requests > 0 || l.tokens > 0);
        if !holds {
            l.watching = false;
            return (None, false);
        }
        let last = l.recent.back().copied().unwrap_or(0);
        if now_ms.saturating_sub(last) < IDLE_MS {
            return (None, true);
        }
        let give = Want {
            requests: 0,
            tokens: 0,
            give_back: Some((l.window_end_ms, l.requests, l.tokens)),
        };
        l.requests = 0;
        l.tokens = 0;
        l.generation += 1;
        l.watching = false;
        (Some(give), false)
    }

    /// The watch ended without giving back.
    pub fn unwatch(&mut self, key: &str) {
        if let Some(l) = self.by_key.get_mut(key) {
            l.watching = false;
        }
    }

    /// A refill failed: the next request that needs one asks again.
    pub fn refill_failed(&mut self, key: &str) {
        if let Some(l) = self.by_key.get_mut(key) {
            l.refilling = false;
        }
    }

    /// Which slice of the key this isolate holds now (for [`Leases::settle`]).
    pub fn generation(&self, key: &str) -> u64 {
        self.by_key.get(key).map_or(0, |l| l.generation)
    }

    /// A request admitted from slice `generation` of `key`, having taken `reserved` tokens from it, cost `cost`:
    /// the difference goes back into the slice (or, for a request that cost more, comes out of it) when that slice
    /// is still held, so the next requests can use it at once; otherwise the object settles it. Returns the part
    /// of `reserved` the object is to count as settled here (the object corrects by `cost` less that).
    pub fn settle(
        &mut self,
        key: &str,
        now_ms: u64,
        generation: u64,
        reserved: u64,
        cost: u64,
    ) -> u64 {
        let Some(l) = self
            .by_key
            .get_mut(key)
            .filter(|l| l.generation == generation && now_ms < l.window_end_ms)
        else {
            return reserved;
        };
        if cost <= reserved {
            l.tokens += reserved - cost;
            return cost;
        }
        let take = (cost - reserved).min(l.tokens);
        l.tokens -= take;
        reserved + take
    }

    /// Where the key stands, for the rate-limit headers: what the object had left at its last answer and what
    /// this isolate's slice still holds. Other isolates' slices count as spent, and what they admitted since that
    /// answer is not seen, so the remaining figures can be off by the slices outstanding elsewhere. A window this
    /// isolate has not had a slice of is whole.
    pub fn standing(
        &self,
        key: &str,
        now_ms: u64,
        window_ms: u64,
        (rpm, tpm): (Option<u32>, Option<u64>),
    ) -> Standing {
        let whole = Standing {
            limit_requests: rpm,
            limit_tokens: tpm,
            remaining_requests: rpm,
            remaining_tokens: tpm,
            reset_ms: window_ms.max(1) - now_ms % window_ms.max(1),
        };
        let Some(l) = self.by_key.get(key).filter(|l| now_ms < l.object_end_ms) else {
            return whole;
        };
        let held = l.window_end_ms == l.object_end_ms;
        let (slice_requests, slice_tokens) = if held { (l.requests, l.tokens) } else { (0, 0) };
        Standing {
            remaining_requests: rpm
                .map(|r| (l.object_left.0.unwrap_or(0).saturating_add(slice_requests)).min(r)),
            remaining_tokens: tpm
                .map(|t| (l.object_left.1.unwrap_or(0).saturating_add(slice_tokens)).min(t)),
            reset_ms: l.object_end_ms - now_ms,
            ..whole
        }
    }
}

/// The next slice: twice this isolate's requests over the last ten seconds, and never less than the last slice (a
/// key that comes back after an idle spell, whose slice went back, asks at once for what it used before, rather
/// than waiting for the object again and again while its rate is measured anew); at least one, at most a tenth of
/// the limit; tokens for that many requests of this size. A waiting request's own unused, still live slice is
/// given back (`live`); a refill keeps the slice it tops up.
fn want(
    lease: &Lease,
    now_ms: u64,
    rpm: Option<u32>,
    tpm: Option<u64>,
    estimate: u64,
    live: bool,
) -> Want {
    let _ = now_ms;
    let recent = lease.recent.len() as u32 + 1;
    let cap = rpm.map_or(u32::MAX, |r| (r / 10).max(1));
    let requests = (2 * recent).max(lease.slice_requests).clamp(1, cap);
    let tokens = match tpm {
        None => 0,
        Some(t) => (estimate.max(1) * u64::from(requests)).min((t / 10).max(estimate)),
    };
    let give_back = (live && (lease.requests > 0 || lease.tokens > 0)).then_some((
        lease.window_end_ms,
        lease.requests,
        lease.tokens,
    ));
    Want {
        requests,
        tokens,
        give_back,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Window;

    const MINUTE: u64 = 60_000;

    /// An isolate and the object, as admission drives them: ask and wait when told to, refill when told to.
    fn admit(
        leases: &mut Leases,
        object: &mut Window,
        now: u64,
        limits: (Option<u32>, Option<u64>),
        estimate: u64,
    ) -> (bool, bool) {
        match leases.admit("k", now, limits, estimate) {
            Verdict::Admit { refill } => {
                if let Some(w) = refill {
                    let g = object.grant(now, MINUTE, limits, (w.requests, w.tokens));
                    leases.granted("k", now, g);
                }
                (true, false)
            }
            Verdict::Spent { .. } => (false, false),
            Verdict::Ask(w) => {
                if let Some((end, r, t)) = w.give_back {
                    object.give_back(now, MINUTE, end, r, t);
                }
                let g = object.grant(now, MINUTE, limits, (w.requests, w.tokens));
                leases.granted("k", now, g);
                match leases.admit("k", now, limits, estimate) {
                    Verdict::Admit { refill } => {
                        if let Some(w) = refill {
                            let g = object.grant(now, MINUTE, limits, (w.requests, w.tokens));
                            leases.granted("k", now, g);
                        }
                        (true, true)
                    }
                    Verdict::Ask(_) | Verdict::Spent { .. } => (false, true),
                }
            }
        }
    }

    #[test]
    fn the_first_request_asks_then_requests_come_from_the_slice_and_refill_in_the_background() {
        let (mut leases, mut object) = (Leases::default(), Window::default());
        let limits = (Some(1000), None);
        let (ok, waited) = admit(&mut leases, &mut object, 0, limits, 0);
        assert!(ok && waited, "a fresh isolate asks");
        let mut waits = 0;
        for i in 1..200 {
            let (ok, waited) = admit(&mut leases, &mut object, i * 50, limits, 0);
            assert!(ok);
            waits += u32::from(waited);
        }
        assert_eq!(waits, 0, "refills arrive before the slice is empty");
    }

    #[test]
    fn what_is_admitted_stays_within_the_limit_across_isolates() {
        let mut object = Window::default();
        let mut isolates: Vec<Leases> = (0..5).map(|_| Leases::default()).collect();
        let limits = (Some(100), None);
        let mut admitted = 0;
        for i in 0..1000u64 {
            let leases = &mut isolates[(i % 5) as usize];
            if admit(leases, &mut object, i * 10, limits, 0).0 {
                admitted += 1;
            }
        }
        assert!(admitted <= 100, "{admitted}");
        assert!(
            admitted >= 90,
            "the budget is used, not stranded in slices: {admitted}"
        );
    }

    #[test]
    fn slices_are_void_after_their_window_and_a_new_window_grants_again() {
        let (mut leases, mut object) = (Leases::default(), Window::default());
        let limits = (Some(20), None);
        let mut admitted = 0;
        for i in 0..40 {
            admitted += u32::from(admit(&mut leases, &mut object, i * 100, limits, 0).0);
        }
        assert_eq!(admitted, 20, "the limit, exactly");
        assert!(
            admit(&mut leases, &mut object, MINUTE + 1, limits, 0).0,
            "a new window"
        );
    }

    #[test]
    fn a_waiting_request_gives_back_the_unused_rest_of_its_slice() {
        let (mut leases, mut object) = (Leases::default(), Window::default());
        // Tokens run out first: the requests left in the slice go back to the object.
        let limits = (Some(1000), Some(10_000));
        for i in 0..3 {
            admit(&mut leases, &mut object, i, limits, 100);
        }
        let big = admit(&mut leases, &mut object, 10, limits, 5_000);
        assert!(
            big.0 && big.1,
            "a request larger than the slice waits and is admitted"
        );
        assert!(object.tokens() <= 10_000);
        // One isolate: what the object has left and the slice together are exactly what the window has left.
        let s = leases.standing("k", 10, MINUTE, limits);
        assert_eq!(
            (s.remaining_requests, s.remaining_tokens, s.reset_ms),
            (Some(996), Some(10_000 - 5_300), MINUTE - 10)
        );
    }

    #[test]
    fn a_settled_request_refunds_its_slice_or_leaves_it_to_the_object() {
        let (mut leases, mut object) = (Leases::default(), Window::default());
        let limits = (None, Some(1_000_000));
        assert!(admit(&mut leases, &mut object, 0, limits, 1_000).0);
        let held = leases
            .standing("k", 0, MINUTE, limits)
            .remaining_tokens
            .unwrap();
        let generation = leases.generation("k");
        // Reserved 1000, cost 300: 700 back into the slice; the object counts the 300 as settled here.
        assert_eq!(leases.settle("k", 1, generation, 1_000, 300), 300);
        assert_eq!(
            leases.standing("k", 1, MINUTE, limits).remaining_tokens,
            Some(held + 700)
        );
        // Cost more than reserved: the excess comes out of the slice.
        assert_eq!(leases.settle("k", 2, generation, 1_000, 1_500), 1_500);
        assert_eq!(
            leases.standing("k", 2, MINUTE, limits).remaining_tokens,
            Some(held + 200)
        );
        // The slice went back (idle): the object settles it all.
        assert!(leases.watch("k", 3));
        let (give, _) = leases.idle("k", IDLE_MS + 10);
        assert!(give.is_some());
        assert_eq!(
            leases.settle("k", IDLE_MS + 11, generation, 1_000, 300),
            1_000
        );
        // And after the window, the same.
        assert_eq!(
            leases.settle("k", MINUTE + 1, leases.generation("k"), 1_000, 300),
            1_000
        );
    }

    #[test]
    fn a_budget_slice_refunded_by_settlements_is_never_lost_to_a_refill() {
        // A budget: tokens alone (micro-dollars), a reservation of 33 for a request that costs 1. The refill a
        // request asks for arrives after its answer was settled into the slice, as on the runtime.
        let (mut leases, mut object) = (Leases::default(), Window::default());
        let limits = (None, Some(100));
        let mut admitted = 0;
        for t in 0..200 {
            let asked = match leases.admit("k", t, limits, 33) {
                Verdict::Admit { refill } => Some(refill),
                Verdict::Ask(w) => {
                    if let Some((end, r, tk)) = w.give_back {
                        object.give_back(t, MINUTE, end, r, tk);
                    }
                    let g = object.grant(t, MINUTE, limits, (w.requests, w.tokens));
                    leases.granted("k", t, g);
                    match leases.admit("k", t, limits, 33) {
                        Verdict::Admit { refill } => Some(refill),
                        Verdict::Ask(_) | Verdict::Spent { .. } => None,
                    }
                }
                Verdict::Spent { .. } => None,
            };
            let Some(refill) = asked else { continue };
            admitted += 1;
            let settled = leases.settle("k", t, leases.generation("k"), 33, 1);
            object.spend(t, MINUTE, 1 - settled as i64);
            if let Some(w) = refill {
                let g = object.grant(t, MINUTE, limits, (w.requests, w.tokens));
                leases.granted("k", t, g);
            }
        }
        assert!(
            admitted >= 60,
            "the budget is spent by what requests cost, not held by refunds: {admitted}"
        );
        assert!(admitted <= 100, "{admitted}");
    }

    #[test]
    fn standing_counts_other_isolates_slices_as_spent() {
        let mut object = Window::default();
        let (mut a, mut b) = (Leases::default(), Leases::default());
        let limits = (Some(100), None);
        assert_eq!(
            a.standing("k", 1_000, MINUTE, limits).remaining_requests,
            Some(100),
            "a window no slice was taken of is whole"
        );
        admit(&mut a, &mut object, 1_000, limits, 0);
        admit(&mut b, &mut object, 1_001, limits, 0);
        let (sa, sb) = (
            a.standing("k", 1_002, MINUTE, limits),
            b.standing("k", 1_002, MINUTE, limits),
        );
        // Two admitted: each isolate is off by what the other's slice holds or took since (a tenth of the limit
        // at most).
        let truly = 100 - 2;
        for s in [sa, sb] {
            let left = s.remaining_requests.unwrap();
            assert!((truly - 10..=truly + 10).contains(&left), "{s:?}");
            assert_eq!((s.limit_requests, s.reset_ms), (Some(100), MINUTE - 1_002));
        }
        // Spent: nothing remains, until the window ends.
        let mut n = 0;
        while admit(&mut a, &mut object, 2_000 + n, limits, 0).0 {
            n += 1;
        }
        let s = a.standing("k", 2_000 + n, MINUTE, limits);
        assert_eq!(s.remaining_requests, Some(0), "{n} admitted");
    }

    #[test]
    fn tokens_over_the_budget_are_refused() {
        let (mut leases, mut object) = (Leases::default(), Window::default());
        let limits = (None, Some(1_000));
        assert!(admit(&mut leases, &mut object, 0, limits, 100).0);
        let mut n = 1;
        while admit(&mut leases, &mut object, n, limits, 100).0 {
            n += 1;
        }
        assert!(n <= 10, "{n}");
        assert!(object.tokens() <= 1_000);
    }

    #[test]
    fn an_idle_isolate_gives_its_slice_back() {
        let (mut leases, mut object) = (Leases::default(), Window::default());
        let limits = (Some(100), None);
        for i in 0..6 {
            admit(&mut leases, &mut object, i * 10, limits, 0);
        }
        assert!(leases.watch("k", 100));
        assert!(!leases.watch("k", 100), "one watch at a time");
        // Still in use: look again later.
        assert_eq!(leases.idle("k", 100 + IDLE_MS / 2), (None, true));
        let (give, more) = leases.idle("k", 50 + IDLE_MS + 1);
        let give = give.expect("idle: the rest goes back");
        assert!(!more);
        let (end, requests, _) = give.give_back.unwrap();
        assert!(requests > 0);
        object.give_back(50 + IDLE_MS + 1, MINUTE, end, requests, 0);
        assert!(
            matches!(
                leases.admit("k", 50 + IDLE_MS + 1, limits, 0),
                Verdict::Ask(_)
            ),
            "the slice went back: the next request asks"
        );
        // The object has the budget back: 100 minus the 6 admitted can still be handed out.
        let g = object.grant(50 + IDLE_MS + 2, MINUTE, limits, (1000, 0));
        assert_eq!(g.requests, 94);
    }
}
