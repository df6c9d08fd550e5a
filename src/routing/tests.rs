use super::*;
use crate::config::Config;

const NEAR_FRANKFURT: Location = Location {
    colo: None,
    lat_lon: Some((50.0, 8.6)),
};
const STREAM: Shape = Shape {
    stream: true,
    bucket: 0,
};
const NO_HEDGE: Policy = Policy {
    exploration: 0.0,
    hedge_budget: None,
    objective: crate::config::Objective::Latency,
};

/// One model with deployments in Frankfurt, Virginia and Tokyo, the middle one tagged "us".
fn deployments() -> Vec<Deployment> {
    let c = Config::parse(
        r#"{
        "keys": [{"name": "k", "sha256": "2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea"}],
        "providers": {"p": {"kind": "openai"}},
        "models": {"m": {"deployments": [
            {"provider": "p", "model": "fra", "region": "eu-central-1", "tags": ["eu"]},
            {"provider": "p", "model": "iad", "region": "us-east-1", "tags": ["us"]},
            {"provider": "p", "model": "nrt", "region": "ap-northeast-1"}
        ]}}
    }"#,
    )
    .unwrap();
    c.model("m").unwrap().deployments().to_vec()
}

const ALL: [bool; 3] = [true, true, true];

#[test]
fn prior_prefers_the_nearest_region() {
    let deps = deployments();
    let mut r = Router::new(7);
    let plan = r.plan(&deps, &ALL, &NEAR_FRANKFURT, STREAM, NO_HEDGE, 0);
    assert_eq!(plan.order, vec![0, 1, 2]);
    let from_tokyo = Location {
        colo: None,
        lat_lon: Some((35.6, 139.7)),
    };
    assert_eq!(
        r.plan(&deps, &ALL, &from_tokyo, STREAM, NO_HEDGE, 0).order[0],
        2
    );
}

#[test]
fn measurements_override_the_prior_and_track_a_shift() {
    let deps = deployments();
    let mut r = Router::new(7);
    let mut now = 0;
    // Frankfurt is near but slow; Virginia is fast.
    for _ in 0..5 {
        r.success(&deps[0], STREAM, 900.0, now);
        r.success(&deps[1], STREAM, 200.0, now);
        now += 100;
    }
    assert_eq!(
        r.plan(&deps, &ALL, &NEAR_FRANKFURT, STREAM, NO_HEDGE, now)
            .order[0],
        1
    );
    // Virginia degrades: within a few requests traffic moves.
    let moved_after = (1..=10).find(|_| {
        r.success(&deps[1], STREAM, 2_000.0, now);
        now += 100;
        r.plan(&deps, &ALL, &NEAR_FRANKFURT, STREAM, NO_HEDGE, now)
            .order[0]
            == 0
    });
    assert!(moved_after.is_some_and(|n| n <= 5), "{moved_after:?}");
}

#[test]
fn failing_deployment_is_skipped_then_tried_again_after_cooldown() {
    let deps = deployments();
    let mut r = Router::new(7);
    for t in 0..3 {
        r.failure(&deps[0], "HTTP 503", None, t);
    }
    let plan = r.plan(&deps, &ALL, &NEAR_FRANKFURT, STREAM, NO_HEDGE, 10);
    assert_eq!(plan.order, vec![1, 2, 0], "open circuit last");
    // After the cooldown the recovered region gets a trial request first.
    let later = 10 + 2_000;
    let plan = r.plan(&deps, &ALL, &NEAR_FRANKFURT, STREAM, NO_HEDGE, later);
    assert_eq!(plan.order[0], 0);
    r.started(&deps[0], later);
    // While the trial is in flight nobody else is sent there.
    assert_eq!(
        r.plan(&deps, &ALL, &NEAR_FRANKFURT, STREAM, NO_HEDGE, later + 1)
            .order[0],
        1
    );
    r.success(&deps[0], STREAM, 150.0, later + 150);
    assert_eq!(
        r.plan(&deps, &ALL, &NEAR_FRANKFURT, STREAM, NO_HEDGE, later + 200)
            .order[0],
        0
    );
}

#[test]
fn residency_filter_is_never_violated() {
    let deps = deployments();
    let mut r = Router::new(7);
    for t in 0..3 {
        r.failure(&deps[1], "down", None, t);
    }
    let only_us = [false, true, false];
    for seed in 0..50 {
        let mut r2 = Router::new(seed);
        let p = r2.plan(
            &deps,
            &only_us,
            &NEAR_FRANKFURT,
            STREAM,
            Policy {
                exploration: 0.5,
                hedge_budget: Some(1.0),
                objective: crate::config::Objective::Latency,
            },
            0,
        );
        assert_eq!(p.order, vec![1]);
        assert_eq!(p.hedge_after_ms, None, "nothing to hedge with");
    }
    assert_eq!(
        r.plan(&deps, &only_us, &NEAR_FRANKFURT, STREAM, NO_HEDGE, 10)
            .order,
        vec![1]
    );
}

#[test]
fn exploration_sends_a_small_share_elsewhere() {
    let deps = deployments();
    let mut r = Router::new(42);
    for d in &deps {
        r.success(d, STREAM, 500.0, 0);
    }
    r.success(&deps[0], STREAM, 100.0, 0);
    let policy = Policy {
        exploration: 0.1,
        hedge_budget: None,
        objective: crate::config::Objective::Latency,
    };
    let firsts: Vec<usize> = (0..2_000)
        .map(|_| {
            r.plan(&deps, &ALL, &NEAR_FRANKFURT, STREAM, policy, 0)
                .order[0]
        })
        .collect();
    let elsewhere = firsts.iter().filter(|&&i| i != 0).count();
    assert!(
        (120..=280).contains(&elsewhere),
        "explored {elsewhere} of 2000"
    );
}

#[test]
fn hedging_respects_its_budget() {
    let deps = deployments();
    let mut r = Router::new(7);
    heavy_tail(&mut r, &deps[0]);
    let policy = Policy {
        exploration: 0.0,
        hedge_budget: Some(0.1),
        objective: crate::config::Objective::Latency,
    };
    let mut hedges = 0;
    for _ in 0..1_000 {
        let p = r.plan(&deps, &ALL, &NEAR_FRANKFURT, STREAM, policy, 20);
        if p.hedge_after_ms.is_some() {
            hedges += 1;
            r.hedged(&deps[p.order[1]]);
        }
    }
    assert!(
        (95..=106).contains(&hedges),
        "{hedges} hedges for a 10% budget"
    );
}

/// Mostly 60 ms with a 1.5 s spike every fourth request.
fn heavy_tail(r: &mut Router, dep: &Deployment) {
    for i in 0..20 {
        r.success(dep, STREAM, if i % 4 == 3 { 1_560.0 } else { 60.0 }, i);
    }
}

const ALWAYS_HEDGE: Policy = Policy {
    exploration: 0.0,
    hedge_budget: Some(1.0),
    objective: crate::config::Objective::Latency,
};

#[test]
fn hedge_delay_follows_the_p90() {
    let deps = deployments();
    let mut r = Router::new(7);
    heavy_tail(&mut r, &deps[0]);
    for d in &deps[1..] {
        r.success(d, STREAM, 3_000.0, 0);
    }
    let p = r.plan(&deps, &ALL, &NEAR_FRANKFURT, STREAM, ALWAYS_HEDGE, 20);
    assert_eq!(p.order[0], 0);
    let after = p.hedge_after_ms.expect("budget allows");
    assert!((300..=1_500).contains(&after), "{after}");

    let mut calm = Router::new(7);
    for i in 0..20 {
        calm.success(&deps[0], STREAM, if i % 2 == 0 { 100.0 } else { 130.0 }, i);
    }
    let p = calm.plan(&deps, &ALL, &NEAR_FRANKFURT, STREAM, ALWAYS_HEDGE, 20);
    let calm_after = p.hedge_after_ms.expect("budget allows");
    assert!(
        calm_after < after,
        "a calm deployment is hedged sooner: {calm_after} vs {after}"
    );
}

#[test]
fn estimates_survive_export_and_import() {
    let deps = deployments();
    let mut r = Router::new(7);
    r.success(&deps[1], STREAM, 123.0, 5);
    let json = r.export();
    let mut fresh = Router::new(8);
    fresh.import(&json);
    assert_eq!(
        fresh.expected_ms(&deps[1], &NEAR_FRANKFURT, STREAM, 300.0),
        123.0
    );
    fresh.import("not json");
    fresh.import(r#"{"p/fra":[[1e309,0,1,0]]}"#);
    assert!(fresh
        .expected_ms(&deps[0], &NEAR_FRANKFURT, STREAM, 300.0)
        .is_finite());
}

#[test]
fn exploration_stops_while_alternatives_are_known_to_be_worse_and_resumes_as_doubt_grows() {
    let deps = deployments();
    let mut r = Router::new(9);
    for i in 0..20 {
        for d in &deps[1..] {
            r.success(d, STREAM, 500.0, i);
        }
    }
    let policy = Policy {
        exploration: 0.1,
        ..NO_HEDGE
    };
    let probes_from = |r: &mut Router, start: u64, n: u64| {
        (start..start + n)
            .filter(|&k| {
                let now = k * 100;
                let p = r.plan(&deps, &ALL, &NEAR_FRANKFURT, STREAM, policy, now);
                let first = p.order[0];
                r.success(
                    &deps[first],
                    STREAM,
                    if first == 0 { 100.0 } else { 500.0 },
                    now,
                );
                p.reason == Reason::Explore
            })
            .count()
    };
    assert_eq!(
        probes_from(&mut r, 1, 300),
        0,
        "a clear picture costs nothing"
    );
    // Half an hour without news of the alternatives: they may have become faster.
    let later = probes_from(&mut r, 18_000, 40);
    assert!((1..=4).contains(&later), "{later} probes");
}

#[test]
fn the_leader_keeps_the_lead_against_noise_but_not_against_evidence() {
    let deps = deployments();
    let mut r = Router::new(5);
    let mut now = 0;
    let plan = |r: &mut Router, now: u64| {
        r.plan(&deps, &ALL, &NEAR_FRANKFURT, STREAM, NO_HEDGE, now)
            .order[0]
    };
    for i in 0..40 {
        r.success(
            &deps[0],
            STREAM,
            if i % 2 == 0 { 250.0 } else { 350.0 },
            now,
        );
        r.success(&deps[2], STREAM, 2_000.0, now);
        now += 100;
    }
    assert_eq!(plan(&mut r, now), 0);
    // Two samples of Virginia a little faster: not enough to hand it the traffic.
    r.success(&deps[1], STREAM, 300.0, now);
    r.success(&deps[1], STREAM, 290.0, now);
    assert_eq!(plan(&mut r, now + 1), 0, "a near tie on little evidence");
    // Clear evidence: it takes over.
    for _ in 0..10 {
        now += 100;
        r.success(&deps[1], STREAM, 150.0, now);
    }
    assert_eq!(plan(&mut r, now + 1), 1);
}

#[test]
fn out_of_budget_the_probe_waits_second_in_line_for_a_hedge_or_failover() {
    let deps = deployments();
    let mut r = Router::new(11);
    for i in 0..20 {
        r.success(&deps[0], STREAM, 100.0, i);
    }
    let policy = Policy {
        exploration: 0.05,
        ..NO_HEDGE
    };
    // Frankfurt measured, the others never: the first probe goes to the nearer, Virginia.
    let mut now = 100;
    while r
        .plan(&deps, &ALL, &NEAR_FRANKFURT, STREAM, policy, now)
        .reason
        != Reason::Explore
    {
        now += 1;
    }
    // Its answer is pending and the budget is spent: Tokyo, still unmeasured, waits behind the leader, where a
    // hedge or a failover would measure it, ahead of Virginia though Virginia is nearer.
    let p = r.plan(&deps, &ALL, &NEAR_FRANKFURT, STREAM, policy, now + 1);
    assert_eq!((p.order, p.reason), (vec![0, 2, 1], Reason::Fastest));
}

#[test]
fn never_measured_alternatives_are_probed_early() {
    let deps = deployments();
    let mut r = Router::new(3);
    let policy = Policy {
        exploration: 0.05,
        hedge_budget: None,
        objective: crate::config::Objective::Latency,
    };
    let mut first_probe = None;
    for n in 0..40 {
        let first = r
            .plan(&deps, &ALL, &NEAR_FRANKFURT, STREAM, policy, n)
            .order[0];
        r.success(&deps[first], STREAM, 300.0, n);
        if first != 0 && first_probe.is_none() {
            first_probe = Some(n);
        }
    }
    assert!(first_probe.is_some_and(|n| n < 20), "{first_probe:?}");
}

/// Frankfurt cheap, Virginia mid-priced, Tokyo dear (USD per million tokens, input and output).
fn priced_deployments() -> Vec<Deployment> {
    let mut deps = deployments();
    for (d, (input, output)) in deps.iter_mut().zip([(0.1, 0.4), (1.0, 4.0), (5.0, 20.0)]) {
        d.price = Some(crate::pricing::Price {
            input,
            output,
            cached_input: input,
            cache_write: input,
        });
    }
    deps
}

#[test]
fn cost_routing_takes_the_cheapest_within_the_ttft_limit_and_the_fastest_when_none_is() {
    let deps = priced_deployments();
    let cost = Policy {
        objective: crate::config::Objective::Cost { max_ttft_ms: 300 },
        ..NO_HEDGE
    };
    let mut r = Router::new(7);
    let from_virginia = Location {
        colo: None,
        lat_lon: Some((38.9, -77.0)),
    };
    let mut now = 0;
    let measure = |r: &mut Router, ms: [f64; 3], now: &mut u64| {
        for _ in 0..10 {
            for (d, m) in deps.iter().zip(ms) {
                r.success(d, STREAM, m, *now);
            }
            *now += 1000;
        }
    };
    // Frankfurt is cheapest and within 300 ms: first, though Virginia is faster.
    measure(&mut r, [250.0, 40.0, 400.0], &mut now);
    let plan = r.plan(&deps, &ALL, &from_virginia, STREAM, cost, now);
    assert_eq!(
        (plan.order[0], plan.reason),
        (0, Reason::CheapestWithinTtft)
    );
    assert_eq!(
        plan.order[1], 1,
        "the next cheapest within the limit backs it up"
    );
    // The same measurements under the latency objective: Virginia.
    let plan = r.plan(&deps, &ALL, &from_virginia, STREAM, NO_HEDGE, now);
    assert_eq!((plan.order[0], plan.reason), (1, Reason::Fastest));
    // Frankfurt slows past the limit: Virginia, the cheapest still within it.
    measure(&mut r, [900.0, 40.0, 400.0], &mut now);
    let plan = r.plan(&deps, &ALL, &from_virginia, STREAM, cost, now);
    assert_eq!(
        (plan.order[0], plan.reason),
        (1, Reason::CheapestWithinTtft)
    );
    // Nothing within the limit: the fastest, said as such.
    measure(&mut r, [900.0, 700.0, 400.0], &mut now);
    let plan = r.plan(&deps, &ALL, &from_virginia, STREAM, cost, now);
    assert_eq!(
        (plan.order[0], plan.reason),
        (2, Reason::FastestNoneWithinTtft)
    );
    // Residency still holds: an excluded deployment is never planned, however cheap.
    measure(&mut r, [100.0, 100.0, 100.0], &mut now);
    let plan = r.plan(
        &deps,
        &[false, true, true],
        &from_virginia,
        STREAM,
        cost,
        now,
    );
    assert_eq!(plan.order, vec![1, 2]);
}
