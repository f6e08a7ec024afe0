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
/// nondeterministic, or the schedule belongs to another program. Its text ([`fmt::Display`])
/// follows "nondeterminism at step N: " in the run's failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Divergence {
    /// A strict replay's schedule ran out of steps while the program still runs.
    ScheduleEnded {
        /// The steps the schedule has.
        steps: u64,
        /// The tasks runnable at the step past the schedule's end.
        runnable: Vec<TaskId>,
    },
    /// A strict replay's schedule runs a task that is not runnable at this step.
    NotRunnable {
        /// The task the schedule runs.
        task: TaskId,
        /// The tasks runnable instead.
        runnable: Vec<TaskId>,
    },
    /// A strict replay's schedule has another draw here: at another step, or out of the
    /// program's bound.
    DrawMismatch {
        /// The program's draw: a value below `bound`…
        bound: u64,
        /// … at this step.
        step: u64,
        /// The index of the schedule's draw.
        index: u64,
        /// The schedule's value.
        value: u64,
        /// The step of the schedule's draw.
        at: u64,
    },
    /// The program draws more values than a strict replay's schedule has.
    DrawsExhausted {
        /// The program's draw: a value below `bound`…
        bound: u64,
        /// … at this step.
        step: u64,
        /// The draws the schedule has.
        draws: u64,
    },
    /// The program finished before a strict replay's schedule was used up.
    ScheduleNotUsedUp {
        /// The steps the program ran.
        steps: u64,
        /// The steps the schedule has.
        scheduled: u64,
    },
    /// A run of a [`Dfs`] search does not fit the path that led to it; the search stops.
    DfsPath {
        /// What the path has here and what the run has instead, in words.
        what: String,
        /// The index of the run in the search (0-based).
        schedule: u64,
        /// The seed of the search's first run, if it had one.
        first_seed: Option<u64>,
        /// The seed of this run.
        seed: u64,
    },
    /// A run of a [`Dfs`] search that stopped after nondeterminism earlier.
    DfsStopped {
        /// Why the search stopped: the text of the divergence that stopped it.
        reason: String,
    },
    /// A guided shrink's planned switch does not fit the run (the program is not deterministic).
    GuidedSwitch,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Divergence::ScheduleEnded { steps, runnable } => write!(
                f,
                "the schedule ends after {steps} steps but the program is still running \
                 (runnable tasks: {})",
                task_list(runnable)
            ),
            Divergence::NotRunnable { task, runnable } => write!(
                f,
                "the schedule runs task {} but the runnable tasks are {}",
                task.0,
                task_list(runnable)
            ),
            Divergence::DrawMismatch { bound, step, index, value, at } => write!(
                f,
                "the program draws a value below {bound} at step {step}, but the schedule's \
                 draw {index} is {value} at step {at}"
            ),
            Divergence::DrawsExhausted { bound, step, draws } => write!(
                f,
                "the program draws a value below {bound} at step {step}, but the schedule has \
                 only {draws} draws"
            ),
            Divergence::ScheduleNotUsedUp { steps, scheduled } => {
                write!(
                    f,
                    "the program finished after {steps} steps but the schedule has {scheduled}"
                )
            }
            Divergence::DfsPath { what, schedule, first_seed, seed } => {
                write!(
                    f,
                    "{what}, in schedule {schedule} of a dfs search (the program under test is \
                     not a function of its schedule, or another program runs under the same Dfs)"
                )?;
                if let Some(first) = first_seed
                    && first != seed
                {
                    write!(
                        f,
                        "; note: the search began with seed {first} but this run has seed \
                         {seed}: every run of a search must use the same seed"
                    )?;
                }
                Ok(())
            }
            Divergence::DfsStopped { reason } => write!(
                f,
                "this dfs search stopped after nondeterminism ({reason}); start a new Dfs"
            ),
            Divergence::GuidedSwitch => f.write_str("a guided switch does not fit"),
        }
    }
}

impl std::error::Error for Divergence {}

/// Task ids sorted, as `[0, 2, 3]`.
fn task_list(tasks: &[TaskId]) -> String {
    let mut ids: Vec<u32> = tasks.iter().map(|task| task.0).collect();
    ids.sort_unstable();
    let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
    format!("[{}]", ids.join(", "))
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

    /// Whether a perturbation point ([`crate::perturb`]) at `step` fires, with odds of one in
    /// `odds` for a random strategy: the default asks [`Strategy::next_draw`] for a value below
    /// `odds` and fires on the highest. The run records the answer as a draw of 1 (fired) or 0,
    /// whatever the odds, so a strategy that follows a recorded schedule answers with the
    /// recorded draw ([`Replay`] does).
    fn next_flag(&mut self, step: u64, odds: u64) -> Result<bool, Divergence> {
        Ok(self.next_draw(step, odds)? == odds - 1)
    }

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
    fn next_flag(&mut self, step: u64, odds: u64) -> Result<bool, Divergence> {
        (**self).next_flag(step, odds)
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
