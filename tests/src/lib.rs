//! Shared helpers for kdst's integration tests (the tests live in `tests/it/`).

use sim_core::{Outcome, Simulation};

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
