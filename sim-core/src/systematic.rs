//! Systematic search: runs a [`Dfs`] over a [`Simulation`] until the tree of schedules is done
//! (the search completes, a run does not complete, or the schedule limit is reached).

use crate::Simulation;
use crate::failure::Outcome;
use crate::strategy::{Dfs, DfsReport};

/// Runs a bounded DFS of `setup`'s program on `sim`: every schedule with at most `bound`
/// preemptions, until the search completes, a run does not complete, or `limit` schedules ran.
///
/// Installs a new [`Dfs`] as `sim`'s strategy (it stays installed: after a failure,
/// [`Simulation::schedule`] writes the failing run, which [`crate::Replay`] reproduces). Every
/// run uses seed 0.
pub fn explore(sim: &mut Simulation, bound: u32, limit: u64, setup: impl Fn()) -> DfsReport {
    explore_with(sim, Dfs::with_limit(bound, limit), setup)
}

/// [`explore`] with a search built by the caller, e.g. a delay-bounded one
/// ([`Dfs::bounded`] with [`BoundKind::Delays`](crate::strategy::BoundKind::Delays)).
pub fn explore_with(sim: &mut Simulation, dfs: Dfs, setup: impl Fn()) -> DfsReport {
    sim.set_strategy(Box::new(dfs.clone()));
    while !dfs.is_complete() && !dfs.limit_reached() {
        let outcome = sim.run(0, &setup);
        dfs.record_outcome(&outcome);
        if outcome != Outcome::Completed {
            break;
        }
    }
    dfs.report()
}
