//! Tests: shrinking. A failing schedule shrinks to the fewest preemptions that still fail the
//! same way, and the result replays strictly.

use std::time::Duration;

use scenarios::{Params, find, run};
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

/// The Go map scenarios (bugs.md B, C, D, and E's unlocked cache): each buggy variant's first
/// failure shrinks to at most 2 preemptions with the same fatal error text. `missing-rlock`
/// needs 2 in principle (preempt the reader between `Get` and `IsReady`, then the writer inside
/// `mapassign`), but greedy shrinking stops at a local minimum: there it only has to shrink.
#[test]
fn go_map_scenarios_shrink_to_at_most_two_preemptions() {
    for (name, variant) in [
        ("cert-manager-scheme-race", "buggy"),
        ("capsule-replication-writes", "buggy"),
        ("submariner-logifchanged", "buggy"),
        ("informer-cache-locking", "no-lock"),
        ("informer-cache-locking", "missing-rlock"),
    ] {
        let bound = if variant == "missing-rlock" { 5 } else { 2 };
        let scenario = find(name).expect("registered");
        let params = Params::defaults(scenario.as_ref());
        let mut sim = Simulation::default();
        let seed = (0..2_000)
            .find(|&seed| run(&mut sim, scenario.as_ref(), variant, &params, seed).is_failure())
            .unwrap_or_else(|| panic!("{name}: no failure"));
        let message =
            sim.trace().outcome().and_then(Outcome::failure).expect("failed").message.clone();
        let schedule = sim.schedule(name, &[]);
        let setup = || scenario.setup(variant, &params);
        let shrunk = shrink(&Config::default(), &schedule, setup, 3_000).expect("shrinks");
        assert_eq!(shrunk.failure.kind, FailureKind::GoFatal, "{name} seed {seed}");
        assert_eq!(shrunk.failure.message, message, "{name} seed {seed}");
        assert!(shrunk.preemptions_after <= bound, "{name} {variant} seed {seed}: {shrunk}");
        assert!(shrunk.preemptions_after < shrunk.preemptions_before, "{name}: {shrunk}");
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
    let setup = || scenario.setup("buggy", &params);
    let shrunk = shrink(&Config::default(), &schedule, setup, 40).expect("shrinks");
    assert_eq!(shrunk.failure.kind, FailureKind::Liveness, "seed {seed}: {shrunk}");
    assert!(shrunk.preemptions_after < shrunk.preemptions_before, "seed {seed}: {shrunk}");
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
