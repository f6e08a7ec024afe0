//! Tests: shrinking. A failing schedule shrinks to the fewest preemptions that still fail the
//! same way, and the result replays strictly.

use std::time::Duration;

use scenarios::{Expect, Params, Target, all, find, run};
use sim_core::strategy::StrategySpec;
use sim_core::{
    Config, FailureKind, GoMap, Outcome, Replay, Schedule, ShrinkError, Simulation, shrink, sleep,
    spawn, yield_now,
};

/// Finds the first failing seed of `setup` under the random strategy; its schedule.
fn first_failing_schedule(setup: &dyn Fn(), seeds: u64) -> (Schedule, Outcome) {
    let mut sim = Simulation::default();
    for seed in 0..seeds {
        let outcome = sim.run(seed, setup);
        if outcome.is_failure() {
            return (sim.schedule("test", &[]), outcome);
        }
    }
    panic!("no failure in {seeds} seeds");
}

/// Busy tasks around a two-writer Go map race: random search finds the crash after many
/// context switches; the shrunk schedule needs at most 2.
fn noisy_race() {
    let map: GoMap<u32, u32> = GoMap::new("shared");
    for worker in 0..2u32 {
        let map = map.clone();
        spawn(format!("writer-{worker}"), async move {
            for round in 0..5u32 {
                yield_now().await;
                map.insert(worker * 100 + round, round).await;
            }
        });
    }
    for noise in 0..3 {
        spawn(format!("noise-{noise}"), async {
            for _ in 0..20 {
                yield_now().await;
            }
        });
    }
}

/// Shrinking a Go map crash keeps the exact text and ends with at most 2 preemptions, and the
/// shrunk schedule replays strictly to the same failure.
#[test]
fn a_go_map_crash_shrinks_to_at_most_two_preemptions() {
    let (schedule, outcome) = first_failing_schedule(&noisy_race, 1_000);
    let original = outcome.failure().expect("failed").clone();
    let shrunk = shrink(&Config::default(), &schedule, noisy_race, 2_000).expect("shrinks");
    assert!(shrunk.preemptions_after <= 2, "{shrunk}");
    assert!(shrunk.preemptions_after <= shrunk.preemptions_before, "{shrunk}");
    assert_eq!(shrunk.failure.message, original.message);
    let mut replay = Simulation::default().with_strategy(Replay::new(&shrunk.schedule));
    let again = replay.run(shrunk.schedule.seed, noisy_race);
    assert_eq!(again, Outcome::Failed(shrunk.failure.clone()), "{shrunk}");
    assert_eq!(replay.trace().preemptions(), shrunk.preemptions_after);
}

/// The Go map scenarios (bugs.md B, C, D, and E's unlocked cache) under the default random
/// strategy: each buggy variant's first failure shrinks to at most 2 preemptions with the same
/// fatal error text.
#[test]
fn go_map_scenarios_shrink_to_at_most_two_preemptions() {
    for (name, variant) in go_map_variants() {
        let scenario = find(name).expect("registered");
        let params = Params::defaults(scenario.as_ref());
        let mut sim = Simulation::default();
        let seed = (0..2_000)
            .find(|&seed| run(&mut sim, scenario.as_ref(), variant, &params, seed).is_failure())
            .unwrap_or_else(|| panic!("{name}: no failure"));
        let message =
            sim.trace().outcome().and_then(Outcome::failure).expect("failed").message.clone();
        let schedule = sim.schedule(name, &[]);
        let variant_spec = scenario.variant(variant).expect("a variant");
        let setup = || scenario.setup(variant_spec, &params);
        let shrunk = shrink(&Config::default(), &schedule, setup, 3_000).expect("shrinks");
        assert_eq!(shrunk.failure.kind, FailureKind::GoFatal, "{name} seed {seed}");
        assert_eq!(shrunk.failure.message, message, "{name} seed {seed}");
        assert!(shrunk.preemptions_after <= 2, "{name} {variant} seed {seed}: {shrunk}");
        assert!(shrunk.preemptions_after < shrunk.preemptions_before, "{name}: {shrunk}");
    }
}

/// The buggy variants whose expected failure is a Go fatal error: the Go map crashes.
/// (`syncmap-load-or-store`'s lost update is an invariant, not a crash.)
fn go_map_variants() -> Vec<(&'static str, &'static str)> {
    let mut variants = Vec::new();
    for scenario in all() {
        for variant in scenario.variants() {
            if matches!(variant.expect, Expect::Fails(FailureKind::GoFatal, _)) {
                variants.push((scenario.name(), variant.name));
            }
        }
    }
    variants
}

/// The replay budget `kdst explore` gives a schedule: at most 2,000 replays and about 5 million
/// steps in all.
fn cli_budget(schedule: &Schedule) -> u64 {
    (5_000_000 / schedule.steps.len().max(1) as u64).clamp(20, 2_000)
}

/// Finds the first `count` failing seeds of `target` under the portfolio (as `kdst explore`
/// searches), shrinks each with the CLI's budget, and checks the result: the same failure kind
/// and text, at most `preemptions_max` preemptions, the budget kept, and a schedule that replays
/// strictly to the same failure. Returns (seed, preemptions before, after, replays) per seed.
fn check_portfolio_failures(
    target: &Target,
    count: usize,
    budget: impl Fn(&Schedule) -> u64,
    preemptions_max: usize,
) -> Vec<(u64, usize, usize, u64)> {
    let label = format!("{} {}", target.scenario().name(), target.variant().name);
    let mut sim = Simulation::default();
    sim.set_strategy(StrategySpec::PORTFOLIO.build());
    let mut checked = Vec::new();
    for seed in 0..2_000 {
        if checked.len() == count {
            break;
        }
        let Outcome::Failed(failure) = target.run(&mut sim, seed) else { continue };
        let schedule = target.schedule(&sim, StrategySpec::PORTFOLIO);
        let budget = budget(&schedule);
        let shrunk = shrink(&Config::default(), &schedule, || target.setup(), budget)
            .unwrap_or_else(|error| panic!("{label} seed {seed}: {error}"));
        let context = format!("{label} seed {seed}: {shrunk}");
        assert_eq!(shrunk.failure.kind, failure.kind, "{context}");
        if failure.kind == FailureKind::GoFatal {
            assert_eq!(shrunk.failure.message, failure.message, "{context}");
        }
        assert!(shrunk.preemptions_after <= preemptions_max, "{context}");
        assert!(shrunk.preemptions_after <= shrunk.preemptions_before, "{context}");
        assert!(shrunk.replays <= budget, "{context}: budget {budget}");
        let mut replay = Simulation::default().with_strategy(Replay::new(&shrunk.schedule));
        let again = target.run(&mut replay, shrunk.schedule.seed);
        assert_eq!(again, Outcome::Failed(shrunk.failure.clone()), "{context}");
        assert_eq!(replay.trace().preemptions(), shrunk.preemptions_after, "{context}");
        assert_eq!(replay.trace().len(), shrunk.steps_after, "{context}");
        checked.push((seed, shrunk.preemptions_before, shrunk.preemptions_after, shrunk.replays));
    }
    assert_eq!(checked.len(), count, "{label}: {count} failing seeds in 0..2000");
    checked
}

/// Issue 5: the failures `kdst explore` finds (portfolio with the swarm) in every Go map
/// scenario shrink to at most 2 preemptions — a crash needs the writer switched away from while
/// it holds the map's writing flag, and perhaps the reader held just before its access — with
/// the same fatal error text, for the first 5 failing seeds of each variant. Greedy removal
/// alone left 4 to 7 on submariner-logifchanged and 3 to 21 on `missing-rlock`.
#[test]
fn portfolio_go_map_failures_shrink_to_at_most_two_preemptions() {
    let variants = go_map_variants();
    assert!(variants.len() >= 5, "the Go map scenarios: {variants:?}");
    for (name, variant) in variants {
        let target = Target::new(name, Some(variant)).expect("registered").with_swarm(true);
        check_portfolio_failures(&target, 5, cli_budget, 2);
    }
}

/// Shrinking the cert-manager livelock keeps the liveness failure.
#[test]
fn the_livelock_shrinks_and_stays_a_livelock() {
    let scenario = find("cert-manager-foreground-deletion").expect("registered");
    let params = Params::defaults(scenario.as_ref()).with("deletion-bound-s", 30).expect("ok");
    let mut sim = Simulation::default();
    let seed = (0..100)
        .find(|&seed| run(&mut sim, scenario.as_ref(), "buggy", &params, seed).is_failure())
        .expect("a livelock");
    let schedule = sim.schedule("cert-manager-foreground-deletion", &[]);
    let buggy = scenario.variant("buggy").expect("a variant");
    let setup = || scenario.setup(buggy, &params);
    let shrunk = shrink(&Config::default(), &schedule, setup, 40).expect("shrinks");
    assert_eq!(shrunk.failure.kind, FailureKind::Liveness, "seed {seed}: {shrunk}");
    assert!(shrunk.preemptions_after < shrunk.preemptions_before, "seed {seed}: {shrunk}");
}

/// The livelock as `kdst explore` finds it (portfolio with the swarm, default parameters: runs
/// of tens of thousands of steps): shrinking on a small budget keeps the liveness failure, and
/// the result replays strictly to it.
#[test]
fn the_portfolio_livelock_stays_a_livelock_on_a_small_budget() {
    let target = Target::new("cert-manager-foreground-deletion", Some("buggy"))
        .expect("registered")
        .with_swarm(true);
    let checked = check_portfolio_failures(&target, 1, |_| 12, usize::MAX);
    assert!(checked[0].3 <= 12, "{checked:?}");
}

/// A schedule that completes cannot be shrunk: the error says so.
#[test]
fn a_passing_schedule_is_refused() {
    let setup = || {
        spawn("sleeper", async {
            sleep(Duration::from_millis(1)).await;
        });
    };
    let mut sim = Simulation::default();
    assert_eq!(sim.run(1, setup), Outcome::Completed);
    let schedule = sim.schedule("test", &[]);
    let error = shrink(&Config::default(), &schedule, setup, 10).expect_err("refused");
    assert!(matches!(&error, ShrinkError::DoesNotFail(o) if **o == Outcome::Completed), "{error}");
    assert_eq!(error.to_string(), "the schedule does not fail when replayed: completed");
}

/// A schedule that another program recorded (here: one task fewer than it names) diverges on
/// replay: there is no failure to keep, and the shrinker says so instead of shrinking the
/// divergence.
#[test]
fn a_schedule_that_diverges_is_refused() {
    let two = || {
        for name in ["a", "b"] {
            spawn(name, async {
                sleep(Duration::from_millis(1)).await;
                yield_now().await;
            });
        }
    };
    let one = || {
        spawn("a", async {
            sleep(Duration::from_millis(1)).await;
        });
    };
    let mut sim = Simulation::default();
    assert_eq!(sim.run(1, two), Outcome::Completed);
    let schedule = sim.schedule("test", &[]);
    let error = shrink(&Config::default(), &schedule, one, 10).expect_err("refused");
    assert!(matches!(&error, ShrinkError::Diverges(f) if f.kind == FailureKind::Nondeterminism));
    assert!(
        error.to_string().starts_with("the schedule does not replay on this program: "),
        "{error}"
    );
}
