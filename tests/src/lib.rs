//! Shared helpers for kdst's integration tests (the tests live in `tests/it/`).

use std::time::Duration;

use sim_core::{Failure, FailureKind, Outcome, SimTime, Simulation};

/// Runs `setup` under seeds `0..seeds` and returns the first failing seed with its outcome.
pub fn first_failure(sim: &mut Simulation, seeds: u64, setup: impl Fn()) -> Option<(u64, Outcome)> {
    (0..seeds).find_map(|seed| {
        let outcome = sim.run(seed, &setup);
        (outcome != Outcome::Completed).then_some((seed, outcome))
    })
}

/// Runs `setup` under seeds `0..seeds`; panics with the seed and outcome of any run that did not
/// complete.
pub fn assert_all_complete(sim: &mut Simulation, seeds: u64, setup: impl Fn()) {
    if let Some((seed, outcome)) = first_failure(sim, seeds, setup) {
        panic!("seed {seed} did not complete: {outcome}");
    }
}

/// The failure of `outcome`, which must be `Failed` with `kind`.
pub fn failed(outcome: Outcome, kind: FailureKind) -> Failure {
    match outcome {
        Outcome::Failed(failure) if failure.kind == kind => failure,
        other => panic!("expected a {kind} failure, got: {other}"),
    }
}

/// The time `since_start` after the start of the run.
pub fn at(since_start: Duration) -> SimTime {
    SimTime::ZERO + since_start
}

/// The failing seeds among `0..seeds` of a registered scenario's `variant`, with their
/// failures; a tripped limit panics (a limit is never a verdict).
pub fn scenario_failures(
    name: &str,
    variant: &str,
    params: &scenarios::Params,
    seeds: u64,
) -> Vec<(u64, Failure)> {
    let scenario = scenarios::find(name).unwrap_or_else(|| panic!("{name} is registered"));
    let mut sim = Simulation::default();
    let mut found = Vec::new();
    for seed in 0..seeds {
        match scenarios::run(&mut sim, scenario.as_ref(), variant, params, seed) {
            Outcome::Completed => {}
            Outcome::Failed(failure) => found.push((seed, failure)),
            Outcome::LimitReached(limit) => panic!("{name} {variant} seed {seed}: {limit}"),
        }
    }
    found
}
