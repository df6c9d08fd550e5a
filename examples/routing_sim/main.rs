//! Deterministic host-side simulation that scores Meridian's routing policy against simple baselines.
//!
//! Run: `cargo run --release --example routing_sim [-- --requests N --seeds 1..5 --all-tables]` (defaults 3000
//! requests, seeds 1 to 5). Prints every scenario's full table for the first seed (`--all-tables`: for every
//! seed), then a summary over the seeds, and writes the figures to `bench/out/routing_sim.json`.
//! `--trace SCENARIO` also prints to stderr, every 10th request of the first seed, the order the real router
//! chose, why, and what it believed about each deployment.
//!
//! # What is simulated
//!
//! * A client near Frankfurt (lat/lon 50.1, 8.7) sends one streaming request every 200 ms of simulated time to
//!   one model with four deployments: `eu-central-1` (Frankfurt), `eu-west-1` (Dublin), `us-east-1` (Virginia)
//!   and `ap-northeast-1` (Tokyo). The deployments are built by parsing a JSON configuration with
//!   `Config::parse`, exactly as the gateway does.
//! * Each deployment has a TRUE time to first token: `network + median * exp(sigma * z)` with `z` standard
//!   normal (a lognormal model time), where `network` is `meridian::routing::network_ms` for that deployment and
//!   location, so the simulated network is the one the router's prior assumes. The medians and availability may
//!   change over time, and with the prompt size (the scenarios below).
//! * `z` is derived from a hash of (seed, scenario, request index, deployment), so every policy faces exactly
//!   the same latency for a given (request, deployment) pair: differences between policies come from their
//!   choices only. Each seed draws different latencies (and prompt sizes, and the router's own seed).
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
//! * Isolates (scenario `isolates` only): requests are spread over 8 isolates by a hash; each is replaced by a
//!   fresh one every 2 minutes (staggered), which loses its in-memory state. Meridian isolates write
//!   `Router::export` at most every 10 s after learning something (as `gateway/estimates.rs`), to one KV key
//!   whose writes become visible 60 s later; a fresh isolate loads the newest visible write with
//!   `Router::import`. LiteLLM-style isolates keep nothing (no shared store).
//!
//! # What is not simulated
//!
//! No network jitter beyond the lognormal (the network part is a constant per deployment); no load: latency
//! does not depend on how many requests a deployment gets (no queueing, no rate limits, no 429s); no state
//! shared between edge locations; no timeouts (nothing is slow enough to hit `first_byte_ms`).
//!
//! # Scenarios
//!
//! Base medians (model time, network added on top): fra 450 ms, dub 300 ms, iad 350 ms, nrt 400 ms, all with
//! sigma 0.3, so Dublin is truly fastest although Frankfurt is nearer.
//! 1. `steady`: nothing changes.
//! 2. `shift`: at one third of the run Dublin's median triples (Frankfurt becomes best).
//! 3. `outage`: Dublin answers 503 during the middle third, then recovers.
//! 4. `heavy-tail`: Dublin has sigma 1.0: same median, but a mean above Frankfurt's and a p99 near 3 s.
//! 5. `improve`: at one third Frankfurt's median drops to 150 ms, so a deployment the policies are NOT using
//!    becomes best. Only exploration can notice this.
//! 6. `drift`: Dublin slows steadily from 300 to 600 ms over the run while the unused Frankfurt speeds up from
//!    450 to 300 ms; they cross at about a quarter of the run.
//! 7. `flap`: Dublin answers 503 for 10 s out of every 40 s (from 20 s on).
//! 8. `prompt-size`: prompts are small (half), medium (30%) or large (20%), one bucket each of the router's
//!    prompt-size buckets 0 to 2; Dublin's model time grows by 200% per bucket, the others' by 50%, so Dublin
//!    is best only for small prompts.
//! 9. `isolates`: the `shift` truth served by 8 isolates sharing estimates through KV (above).
//!
//! "Truly best available" means the lowest true `mean + SPREAD_WEIGHT * sd` of time to first token (the
//! router's latency objective, `meridian::routing::SPREAD_WEIGHT`, computed from the lognormal) among the
//! deployments that are up at that moment. With equal sigmas that is the lowest median; in `heavy-tail` it is
//! Frankfurt (Dublin's mean is higher and its tail far heavier), where a median-based oracle would pick Dublin.
//!
//! # Policies
//!
//! * `oracle`: knows the truth and always picks the best available deployment first (then the others by true
//!   score); it learns nothing. It is the reference for the ratios.
//! * `meridian`: the real `meridian::routing::Router`, `Policy { exploration: 0.05, hedge_budget: None }`.
//! * `meridian+hedge`: the same with `hedge_budget: Some(0.1)`.
//! * `round-robin`: cycles through the deployments; failover to the next one in the cycle.
//! * `litellm-style` ("greedy"): lowest mean of the last 10 observed TTFTs of each deployment, untried
//!   deployments first, failover in the same order, no exploration, prompt size ignored. This mirrors
//!   LiteLLM's latency-based routing (which averages a bounded list of recent latencies); LiteLLM's separate
//!   cooldown feature (deployments with repeated failures are skipped for a while) is NOT modelled, so its
//!   failed-attempt count in the outage and flap scenarios is pessimistic.
//!
//! No policy but `oracle` sees the truth: the others only see what a gateway sees (outcomes and timings).
//!
//! # Metrics (per scenario and policy)
//!
//! * `best%`: share of requests whose FIRST attempt went to the truly best available deployment at arrival
//!   (for that request's prompt size); `best% thirds`: the same per third of the run.
//! * `p50`, `p99`, `mean`: client-seen TTFT (ms) of the requests that succeeded; `p50/or`, `p99/or`: divided by
//!   the oracle's.
//! * `failed`: failed attempts (errors seen before a success); `errs`: requests that failed altogether.
//! * `hedge/won`: hedges started / hedges whose second deployment answered first.
//! * `lag (requests)`: after the start and after each change of the truth, how many requests pass until, for
//!   the first time, at least 16 of 20 consecutive first attempts go to the best deployment (`never` if that
//!   does not happen). It is a first hit, not a sustained state: read it with `best% thirds`.
//! * `first choice`: how many first attempts went to fra/dub/iad/nrt.
//! * Summary: per scenario, the median and range over the seeds of meridian's best% and p99/oracle, how many
//!   seeds it is at least level with greedy on each (best% within half a point, p99 within 1%), and whether
//!   the targets hold on every seed: level with greedy on both, p99 <= 1.15x the oracle, and in `steady`
//!   best% >= 97 and p99 <= 1.05x.

mod policies;
mod world;

use meridian::config::{Config, Deployment};
use meridian::routing::{network_ms, Location, Policy, Router};
use policies::{Ev, Fresh, Isolates, LiteLlmStyle, Meridian, Oracle, RoundRobin, Routing};
use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use world::{hash, Kind, Scenario, World, DEPLOYMENTS, FAIL_MS, INTERVAL_MS, SCENARIOS, START_MS};

const MAX_ATTEMPTS: usize = 3;
const CLIENT: (f64, f64) = (50.1, 8.7);
/// sha256 of the demo gateway key.
const KEY_SHA256: &str = "2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea";

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
    let mut events: Vec<(Ev, usize)> = Vec::new();
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
                   events: &[(Ev, usize)],
                   until: u64| {
        while let Some(&Reverse((at, seq))) = queue.peek() {
            if at > until {
                break;
            }
            queue.pop();
            let (ev, req) = events[seq as usize];
            policy.observe(ev, req, at);
        }
    };
    for req in 0..n {
        let now = START_MS + req as u64 * INTERVAL_MS;
        deliver(policy, &mut queue, &events, now);
        let (order, hedge_after) = policy.plan(req, now);
        let t = now as f64;
        s.first_best.push(order[0] == world.best(req, t));
        s.first_counts[order[0]] += 1;
        let mut push = |at: f64, ev: Ev| {
            queue.push(Reverse((at.round() as u64, events.len() as u64)));
            events.push((ev, req));
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

fn row(s: Score, world: &World) -> Row {
    let n = s.first_best.len();
    let share = |v: &[bool]| v.iter().filter(|&&b| b).count() as f64 / v.len().max(1) as f64;
    let third = |k: usize| share(&s.first_best[k * n / 3..(k + 1) * n / 3]);
    let mut sorted = s.ttfts.clone();
    sorted.sort_by(f64::total_cmp);
    let mean = sorted.iter().sum::<f64>() / sorted.len().max(1) as f64;
    let lags = world
        .change_points()
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

/// One scenario over all seeds: per seed, the rows of every policy.
struct Runs<'a> {
    scenario: &'a Scenario,
    seeds: Vec<(u64, Vec<Row>)>,
}

/// Tolerances within which meridian counts as level with greedy: half a point of best-share, 1% of p99.
const TIE_BEST: f64 = 0.005;
const TIE_P99: f64 = 0.01;

fn get<'r>(rows: &'r [Row], name: &str) -> &'r Row {
    rows.iter().find(|r| r.name == name).expect("policy row")
}

/// Median (min-max) of per-seed figures.
fn spread(mut v: Vec<f64>, fmt: impl Fn(f64) -> String) -> String {
    v.sort_by(f64::total_cmp);
    let mid = v[v.len() / 2];
    if v.len() == 1 {
        fmt(mid)
    } else {
        format!("{} ({}–{})", fmt(mid), fmt(v[0]), fmt(v[v.len() - 1]))
    }
}

/// The summary line of one scenario: meridian against greedy (LiteLLM-style) and the oracle, over the seeds.
fn summary(runs: &Runs) -> (String, bool) {
    let per = |f: &dyn Fn(&[Row]) -> f64| -> Vec<f64> {
        runs.seeds.iter().map(|(_, rows)| f(rows)).collect()
    };
    let best = |name: &'static str| move |rows: &[Row]| 100.0 * get(rows, name).best;
    let p99 =
        |name: &'static str| move |rows: &[Row]| get(rows, name).p99 / get(rows, "oracle").p99;
    let failed = |name: &'static str| move |rows: &[Row]| get(rows, name).failed as f64;
    let n = runs.seeds.len();
    let level_best = runs
        .seeds
        .iter()
        .filter(|(_, r)| get(r, "meridian").best >= get(r, "litellm-style").best - TIE_BEST)
        .count();
    let level_p99 = runs
        .seeds
        .iter()
        .filter(|(_, r)| get(r, "meridian").p99 <= get(r, "litellm-style").p99 * (1.0 + TIE_P99))
        .count();
    let m_best = per(&best("meridian"));
    let m_p99 = per(&p99("meridian"));
    let worst_p99 = m_p99.iter().copied().fold(0.0, f64::max);
    let worst_best = m_best.iter().copied().fold(100.0, f64::min);
    let steady = runs.scenario.kind == Kind::Steady;
    let met = worst_p99 <= 1.15
        && level_best == n
        && level_p99 == n
        && (!steady || (worst_best >= 97.0 && worst_p99 <= 1.05));
    let pct = |x: f64| format!("{x:.1}");
    let ratio = |x: f64| format!("{x:.2}");
    let count = |x: f64| format!("{x:.0}");
    let line = format!(
        "| {} | {} | {}/{} | {} | {}/{} | {} / {} | {} | {} | {} / {} | {} |",
        runs.scenario.name,
        spread(m_best, pct),
        level_best,
        n,
        spread(m_p99, ratio),
        level_p99,
        n,
        spread(per(&best("meridian+hedge")), pct),
        spread(per(&p99("meridian+hedge")), ratio),
        spread(per(&best("litellm-style")), pct),
        spread(per(&p99("litellm-style")), ratio),
        spread(per(&failed("meridian")), count),
        spread(per(&failed("litellm-style")), count),
        if met { "met" } else { "NOT met" },
    );
    (line, met)
}

fn print_summary(all: &[Runs], seeds: &[u64]) {
    println!(
        "\nsummary over seeds {:?}: median (min–max); \"≥ greedy\" counts the seeds where meridian is at least level with LiteLLM-style (best% within {} points, p99 within {}%)\n",
        seeds,
        100.0 * TIE_BEST,
        100.0 * TIE_P99
    );
    println!("| scenario | meridian best% | ≥ greedy | meridian p99 / oracle | ≥ greedy | +hedge best% / p99 | greedy best% | greedy p99 / oracle | failed attempts meridian / greedy | targets |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut all_met = true;
    for runs in all {
        let (line, met) = summary(runs);
        all_met &= met;
        println!("{line}");
    }
    println!(
        "\ntargets (every seed: best% and p99 at least level with greedy, p99 <= 1.15x oracle; steady best% >= 97 and p99 <= 1.05x): {}",
        if all_met { "all met" } else { "NOT all met" }
    );
}

struct Args {
    requests: usize,
    seeds: Vec<u64>,
    /// Scenario whose Meridian runs are traced to stderr (first seed only).
    trace: Option<String>,
    /// Print every scenario's full table for every seed, not only the first.
    all_tables: bool,
}

const USAGE: &str =
    "usage: routing_sim [--requests N] [--seeds A..B | --seed S] [--trace SCENARIO] [--all-tables]";

fn parse_seeds(v: &str) -> Result<Vec<u64>, String> {
    let num = |x: &str| x.parse::<u64>().map_err(|e| format!("--seeds: {e}"));
    let seeds: Vec<u64> = match v.split_once("..") {
        Some((a, b)) => (num(a)?..=num(b)?).collect(),
        None => v.split(',').map(num).collect::<Result<_, _>>()?,
    };
    if seeds.is_empty() {
        return Err("--seeds: none".to_owned());
    }
    Ok(seeds)
}

fn args() -> Result<Args, String> {
    let (mut requests, mut seeds, mut trace, mut all_tables) =
        (3000usize, vec![1, 2, 3, 4, 5], None, false);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--requests" => {
                requests = value("--requests")?
                    .parse()
                    .map_err(|e| format!("--requests: {e}"))?
            }
            "--seed" | "--seeds" => seeds = parse_seeds(&value("--seeds")?)?,
            "--trace" => {
                let name = value("--trace")?;
                if !SCENARIOS.iter().any(|s| s.name == name) {
                    return Err(format!("--trace: no scenario {name:?}"));
                }
                trace = Some(name);
            }
            "--all-tables" => all_tables = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if requests < 3 {
        return Err("--requests must be at least 3".to_owned());
    }
    Ok(Args {
        requests,
        seeds,
        trace,
        all_tables,
    })
}

/// Every policy through one scenario with one seed.
fn run_all(world: &World, loc: &Location, trace: Option<&str>) -> Vec<Row> {
    let scenario = world.scenario;
    let deps = &world.deps;
    let router_seed = hash(&[world.seed, world.index, 0x5EED]);
    let meridian = |name: &str, hedge_budget, seed: u64| Meridian {
        router: Router::new(seed),
        deps,
        buckets: &world.buckets,
        loc: loc.clone(),
        policy: Policy {
            exploration: 0.05,
            hedge_budget,
            objective: meridian::config::Objective::Latency,
        },
        trace: (trace == Some(scenario.name)).then(|| format!("{}/{name}", scenario.name)),
    };
    let isolated = scenario.kind == Kind::Isolates;
    let run_as = |name: &'static str, p: &mut dyn Routing| row(run(world, name, p), world);
    let as_isolates = |name: &'static str, fresh: &mut Fresh| {
        if isolated {
            let mut p = Isolates::new(fresh, router_seed);
            run_as(name, &mut p)
        } else {
            let mut p = fresh(router_seed);
            run_as(name, p.as_mut())
        }
    };
    vec![
        row(run(world, "oracle", &mut Oracle { world }), world),
        as_isolates("meridian", &mut |seed| {
            Box::new(meridian("meridian", None, seed))
        }),
        as_isolates("meridian+hedge", &mut |seed| {
            Box::new(meridian("meridian+hedge", Some(0.1), seed))
        }),
        row(
            run(
                world,
                "round-robin",
                &mut RoundRobin {
                    n: deps.len(),
                    next: 0,
                },
            ),
            world,
        ),
        as_isolates("litellm-style", &mut |_| {
            Box::new(LiteLlmStyle::new(deps.len()))
        }),
    ]
}

fn main() {
    let Args {
        requests,
        seeds,
        trace,
        all_tables,
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
    let mut all = Vec::new();
    let mut out = Vec::new();
    for (index, scenario) in SCENARIOS.iter().enumerate() {
        let mut runs = Runs {
            scenario,
            seeds: Vec::new(),
        };
        for (k, &seed) in seeds.iter().enumerate() {
            let world = World::new(
                scenario,
                index as u64,
                seed,
                requests,
                deps.clone(),
                net.clone(),
            );
            let rows = run_all(&world, &loc, trace.as_deref().filter(|_| k == 0));
            if k == 0 || all_tables {
                print_table(&world, &rows);
            }
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
                "seed": seed,
                "change_points": world.change_points(),
                "deployments": truth,
                "policies": rows.iter().map(|r| row_json(r, &rows[0])).collect::<Vec<_>>(),
            }));
            runs.seeds.push((seed, rows));
        }
        all.push(runs);
    }
    print_summary(&all, &seeds);

    let doc = json!({
        "requests": requests,
        "seeds": seeds,
        "interval_ms": INTERVAL_MS,
        "client_lat_lon": [CLIENT.0, CLIENT.1],
        "fail_ms": FAIL_MS,
        "max_attempts": MAX_ATTEMPTS,
        "lag_window": LAG_WINDOW,
        "runs": out,
        "summary": all.iter().map(|r| summary(r).0).collect::<Vec<_>>(),
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
