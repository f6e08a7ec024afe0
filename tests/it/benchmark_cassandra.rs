//! Benchmark bug B6 (instaclustr/cassandra-operator #398, `cassandra-unobserved-pod-deletion`)
//! with the generic oracles only: the buggy variant fails with the end-state difference (the
//! decommissioned node's claim is left behind), and only when a perturbation fires; the fix
//! (#399) holds under the random walk and the portfolio; an `unobserved-state` perturbation
//! alone is enough, and its failure replays exactly from its schedule. (Determinism is
//! `scenarios.rs`'s, for every scenario.)

use scenarios::cassandra_pvc::UnobservedPodDeletion;
use scenarios::{Params, run};
use sim_core::{
    Config, Failure, FailureKind, Outcome, Perturbations, Replay, Simulation, StrategySpec,
};

const TEXT: &str = "the end state differs from the reference run";
const LEAKED: &str =
    "PersistentVolumeClaim cassandra/data-volume-cassandra-dc-rack1-1: only in this run";
/// The event whose absence from the operator's cache is the bug.
const WITHHELD: &str = "perturbation unobserved-state: operator/pods withholds MODIFIED Pod cassandra/cassandra-dc-rack1-1";

fn params() -> Params {
    Params::defaults(&UnobservedPodDeletion)
}

/// Runs `variant` on each seed of `seeds`; the seeds that did not complete, with their outcome
/// and the trace's `perturbation …` lines.
fn failing(
    sim: &mut Simulation,
    variant: &str,
    seeds: std::ops::Range<u64>,
    first_only: bool,
) -> Vec<(u64, Outcome, Vec<String>)> {
    let params = params();
    let mut found = Vec::new();
    for seed in seeds {
        let outcome = run(sim, &UnobservedPodDeletion, variant, &params, seed);
        if outcome != Outcome::Completed {
            found.push((seed, outcome, perturbations(sim)));
            if first_only {
                break;
            }
        }
    }
    found
}

/// The perturbations the last run made, as the trace names them.
fn perturbations(sim: &Simulation) -> Vec<String> {
    let trace = sim.trace().render();
    let lines = trace.lines().filter_map(|line| line.find("perturbation ").map(|at| &line[at..]));
    lines.map(str::to_string).collect()
}

/// The failure of an outcome, checked to be the leaked claim.
fn leaked(seed: u64, outcome: &Outcome) -> Failure {
    let Outcome::Failed(failure) = outcome else {
        panic!("seed {seed} ended with a limit, not a failure: {outcome}");
    };
    assert_eq!(failure.kind, FailureKind::Invariant, "seed {seed}: {failure}");
    assert!(failure.message.contains(TEXT), "seed {seed}: {failure}");
    assert!(failure.details.contains(LEAKED), "seed {seed}: {}", failure.details);
    failure.clone()
}

/// Whether a failure is a count difference after a `stale-reconnect` (another stale-state
/// shape than this bug's).
fn is_stale_scale_up(outcome: &Outcome, lines: &[String]) -> bool {
    let stale = lines.iter().any(|line| line.starts_with("perturbation stale-reconnect"));
    stale && outcome.failure().is_some_and(|f| f.message.contains("ADDED/DELETED counts"))
}

#[test]
fn the_buggy_variant_leaks_the_claim_and_only_under_perturbations() {
    let mut sim = Simulation::default();
    let found = failing(&mut sim, "buggy", 0..500, false);
    let (leaks, others): (Vec<_>, Vec<_>) =
        found.iter().partition(|(_, outcome, lines)| !is_stale_scale_up(outcome, lines));
    assert!(!leaks.is_empty(), "the buggy variant leaks the claim within 500 seeds");
    for (seed, outcome, _) in &leaks {
        leaked(*seed, outcome);
    }
    for (seed, outcome, lines) in &others {
        assert!(
            outcome.failure().is_some_and(|f| f.details.contains("cassandra-dc-rack1-1")),
            "{seed}: {lines:?}"
        );
    }

    let mut calm = Simulation::new(Config::default().with_perturbations(Perturbations::NONE));
    let found = failing(&mut calm, "buggy", 0..300, true);
    assert!(found.is_empty(), "the bug needs a perturbation: {:?}", found.first());
}

#[test]
fn the_fixed_variant_holds_under_the_random_walk_and_the_portfolio() {
    let mut sim = Simulation::default();
    if let Some((seed, outcome, lines)) = failing(&mut sim, "fixed", 0..2000, true).first() {
        panic!("fixed, random walk: seed {seed}: {outcome}\n{lines:#?}");
    }
    let mut portfolio = Simulation::default();
    portfolio.set_strategy(StrategySpec::PORTFOLIO.build());
    if let Some((seed, outcome, lines)) = failing(&mut portfolio, "fixed", 0..2000, true).first() {
        panic!("fixed, portfolio: seed {seed}: {outcome}\n{lines:#?}");
    }
}

/// The first leak under the default config names the withheld event, and some leak needs
/// nothing else: the operator's cache goes from a running pod to no pod, and the claim stays.
#[test]
fn one_withheld_event_is_enough_and_its_failure_replays_from_its_schedule() {
    let mut sim = Simulation::default();
    let found = failing(&mut sim, "buggy", 0..500, false);
    let mut leaks = found.iter().filter(|(_, outcome, lines)| !is_stale_scale_up(outcome, lines));
    let (first, _, lines) = leaks.next().expect("the buggy variant leaks within 500 seeds");
    assert!(
        lines.iter().any(|line| line.starts_with("perturbation unobserved-state")),
        "seed {first}: {lines:#?}"
    );
    let alone = found.iter().find(|(_, _, lines)| lines.len() == 1 && lines[0] == WITHHELD);
    let (seed, outcome, _) = alone.expect("a failure with the withheld pod event alone");
    let failure = leaked(*seed, outcome);

    run(&mut sim, &UnobservedPodDeletion, "buggy", &params(), *seed);
    let schedule = sim.schedule("cassandra-unobserved-pod-deletion", &[]);
    let mut again = Simulation::default().with_strategy(Replay::new(&schedule));
    let replayed = run(&mut again, &UnobservedPodDeletion, "buggy", &params(), *seed);
    assert_eq!(replayed, Outcome::Failed(failure));
    assert_eq!(again.trace().hash(), sim.trace().hash());
}
