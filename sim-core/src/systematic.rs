//! Systematic search: runs a [`Dfs`] over a [`Simulation`] until the tree of schedules is done
//! (the search completes, a run does not complete, or the schedule limit is reached).
//!
//! [`search`] is the one loop behind every systematic search: [`explore_with`] here,
//! [`crate::Check`]'s `dfs…` strategies and [`crate::Explorer`]'s.

use std::ops::ControlFlow;
use std::time::Instant;

use crate::failure::Outcome;
use crate::strategy::{Dfs, DfsReport};
use crate::{Ended, Simulation};

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
    search(
        sim,
        &dfs,
        None,
        |sim| sim.run(0, &setup),
        |_, outcome| {
            if outcome == Outcome::Completed {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        },
    );
    dfs.report()
}

/// Installs `dfs` as `sim`'s strategy and runs it: before each run, stops if the search is
/// complete ([`Ended::Complete`]), reached its schedule limit ([`Ended::ScheduleLimit`]) or
/// the wall clock passed `deadline` ([`Ended::TimeBudget`]); otherwise `run` runs one schedule
/// of seed 0 on `sim`, the search records its outcome, and `keep` gets the run (still in
/// `sim`: its trace, its schedule) and its outcome. `keep` breaking ends the search
/// ([`Ended::FirstFailure`]).
pub(crate) fn search(
    sim: &mut Simulation,
    dfs: &Dfs,
    deadline: Option<Instant>,
    mut run: impl FnMut(&mut Simulation) -> Outcome,
    mut keep: impl FnMut(&Simulation, Outcome) -> ControlFlow<()>,
) -> Ended {
    sim.set_strategy(Box::new(dfs.clone()));
    while !dfs.is_complete() {
        if dfs.limit_reached() {
            return Ended::ScheduleLimit;
        }
        if crate::explore::past(deadline) {
            return Ended::TimeBudget;
        }
        let outcome = run(sim);
        dfs.record_outcome(&outcome);
        if keep(sim, outcome).is_break() {
            return Ended::FirstFailure;
        }
    }
    Ended::Complete
}
