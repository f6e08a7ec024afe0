//! Benchmark bug B4 (rabbitmq/cluster-operator #782, `rabbitmq-crash-mid-resize`) with the
//! generic oracles only: the buggy variant fails with the end-state difference, and only when a
//! perturbation fires; the fix (#838) holds under the random walk and the portfolio with the
//! default perturbations; a failure names its `crash-after-write` and replays from its
//! schedule. (Determinism is `scenarios.rs`'s, for every scenario.)

use scenarios::rabbitmq_resize::CrashMidResize;
use scenarios::{Params, run};
use sim_core::{
    Config, Failure, FailureKind, Outcome, Perturbations, Replay, Simulation, StrategySpec,
};

const TEXT: &str = "the end state differs from the reference run";

fn params() -> Params {
    Params::defaults(&CrashMidResize)
}

/// The first seed of `seeds` on which `variant` does not complete, and its outcome.
fn first_failure(
    sim: &mut Simulation,
    variant: &str,
    seeds: std::ops::Range<u64>,
) -> Option<(u64, Outcome)> {
    let params = params();
    seeds.into_iter().find_map(|seed| {
        let outcome = run(sim, &CrashMidResize, variant, &params, seed);
        (outcome != Outcome::Completed).then_some((seed, outcome))
    })
}

/// The first failing seed of the buggy variant under the default config (budget 2), with its
/// failure, checked to be the end-state difference.
fn buggy_failure(sim: &mut Simulation) -> (u64, Failure) {
    let (seed, outcome) =
        first_failure(sim, "buggy", 0..500).expect("the buggy variant fails within 500 seeds");
    let Outcome::Failed(failure) = outcome else {
        panic!("seed {seed} ended with a limit, not a failure: {outcome}");
    };
    (seed, failure)
}

#[test]
fn the_buggy_variant_fails_with_the_end_state_difference_and_only_under_perturbations() {
    let mut sim = Simulation::default();
    let (seed, failure) = buggy_failure(&mut sim);
    assert_eq!(failure.kind, FailureKind::Invariant, "seed {seed}: {failure}");
    assert!(failure.message.contains(TEXT), "seed {seed}: {failure}");
    // The difference is the claim's size: 10Gi here, 15Gi in the reference run.
    let details = failure.details.clone();
    assert!(details.contains("persistence-rabbitmq-cluster-server-0"), "{details}");
    assert!(details.contains("10Gi") && details.contains("15Gi"), "{details}");

    let mut calm = Simulation::new(Config::default().with_perturbations(Perturbations::NONE));
    let found = first_failure(&mut calm, "buggy", 0..300);
    assert_eq!(found, None, "the bug needs a perturbation");
}

#[test]
fn the_fixed_variant_holds_under_the_random_walk_and_the_portfolio() {
    let mut sim = Simulation::default();
    if let Some((seed, outcome)) = first_failure(&mut sim, "fixed", 0..2000) {
        panic!("fixed, random walk: seed {seed}: {outcome}");
    }
    let mut portfolio = Simulation::default();
    portfolio.set_strategy(StrategySpec::PORTFOLIO.build());
    if let Some((seed, outcome)) = first_failure(&mut portfolio, "fixed", 0..2000) {
        panic!("fixed, portfolio: seed {seed}: {outcome}");
    }
}

#[test]
fn a_failure_names_its_crash_and_replays_from_its_schedule() {
    let mut sim = Simulation::default();
    let params = params();
    let crashed_after_delete = |sim: &Simulation| {
        let trace = sim.trace().render();
        trace.lines().any(|line| {
            line.contains("perturbation crash-after-write: operator crashes after DELETE")
        })
    };
    let (seed, failure) = (0..500)
        .find_map(|seed| match run(&mut sim, &CrashMidResize, "buggy", &params, seed) {
            Outcome::Failed(failure) if crashed_after_delete(&sim) => Some((seed, failure)),
            _ => None,
        })
        .expect("a failure after a crash-after-write of the orphan delete within 500 seeds");
    assert!(failure.message.contains(TEXT), "seed {seed}: {failure}");
    let schedule = sim.schedule("rabbitmq-crash-mid-resize", &[]);
    let mut again = Simulation::default().with_strategy(Replay::new(&schedule));
    let replayed = run(&mut again, &CrashMidResize, "buggy", &params, seed);
    assert_eq!(replayed, Outcome::Failed(failure));
    assert_eq!(again.trace().hash(), sim.trace().hash());
}
