//! The scheduling seam: which runnable task runs next, and the value of each [`crate::choose`].
//!
//! A strategy sees the runnable set and answers with an index into it. That is the whole seam:
//! search strategies (PCT, bounded DFS, portfolios) plug in here without the executor knowing.

use std::fmt;

use crate::TaskId;
use crate::footprint::Access;

mod dfs;
mod pct;
mod portfolio;
mod random;
mod replay;
mod spec;

pub use crate::systematic::{explore, explore_with};
pub use dfs::{BoundKind, Dfs, DfsReport};
pub use pct::Pct;
pub use portfolio::Portfolio;
pub use random::Random;
pub use replay::{Replay, ReplayMode};
pub use spec::{KNOWN, StrategyError, StrategySpec};

/// What a strategy sees when it picks the next task.
#[derive(Clone, Copy, Debug)]
pub struct Choice<'a> {
    /// The index of the step about to run.
    pub step: u64,
    /// The runnable tasks; never empty. The order is deterministic but otherwise meaningless.
    pub runnable: &'a [TaskId],
    /// The task that ran the previous step, if it is still runnable: picking another task is
    /// then a preemption.
    pub current: Option<TaskId>,
    /// Nothing could run since the previous step: every task waited, and the clock jumped to the
    /// next timer (which woke the tasks now runnable).
    pub idle: bool,
}

/// A schedule that does not fit the program: the program under test or the simulator is
/// nondeterministic, or the schedule belongs to another program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence(pub String);

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Picks the next task at each step and the value of each strategy-controlled draw.
///
/// One strategy object serves many runs: [`Strategy::begin`] is called before each.
pub trait Strategy {
    /// A short, stable name (`random`, `replay`, `pct`) for reports and schedule files.
    fn name(&self) -> &'static str;

    /// Prepares for a run with `seed`.
    fn begin(&mut self, seed: u64);

    /// Returns an index into `choice.runnable`.
    fn next_task(&mut self, choice: &Choice<'_>) -> Result<usize, Divergence>;

    /// Returns a value in `0..bound` for [`crate::choose`] at `step`.
    fn next_draw(&mut self, step: u64, bound: u64) -> Result<u64, Divergence>;

    /// Called when the run ended after `steps` steps; a replay that did not use its whole
    /// schedule reports it here.
    fn end(&mut self, steps: u64) -> Result<(), Divergence> {
        let _ = steps;
        Ok(())
    }

    /// Whether this strategy wants to know what each step touched ([`Strategy::step_done`]).
    /// Asked once per run, after [`Strategy::begin`]; recording footprints costs a little per
    /// step, so strategies that do not reduce anything say no (the default).
    fn wants_footprints(&self) -> bool {
        false
    }

    /// After each step of a run whose strategy [`Strategy::wants_footprints`]: the task that ran,
    /// what the step touched (sorted by resource, one entry per resource; see
    /// [`crate::footprint`]), and whether the task is still runnable.
    fn step_done(&mut self, task: TaskId, accesses: &[Access], runnable: bool) {
        let _ = (task, accesses, runnable);
    }
}

impl<S: Strategy + ?Sized> Strategy for Box<S> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn begin(&mut self, seed: u64) {
        (**self).begin(seed);
    }
    fn next_task(&mut self, choice: &Choice<'_>) -> Result<usize, Divergence> {
        (**self).next_task(choice)
    }
    fn next_draw(&mut self, step: u64, bound: u64) -> Result<u64, Divergence> {
        (**self).next_draw(step, bound)
    }
    fn end(&mut self, steps: u64) -> Result<(), Divergence> {
        (**self).end(steps)
    }
    fn wants_footprints(&self) -> bool {
        (**self).wants_footprints()
    }
    fn step_done(&mut self, task: TaskId, accesses: &[Access], runnable: bool) {
        (**self).step_done(task, accesses, runnable);
    }
}
