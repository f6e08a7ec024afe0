//! What a search says: what it covered and found (the outcomes it was given, its one-line
//! summary, the [`DfsReport`] a driver returns), and the divergence a run that does not fit its
//! path gets.

use super::{BoundKind, Dfs, Frame, Point, Search};
use crate::TaskId;
use crate::failure::Outcome;
use crate::strategy::Divergence;

/// What [`explore`](crate::strategy::explore) found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DfsReport {
    /// The bound B.
    pub bound: u32,
    /// What the bound counts (preemptions or delays).
    pub kind: BoundKind,
    /// Schedules run.
    pub schedules: u64,
    /// Whether every schedule within the bound ran (never true when the limit stopped the search).
    /// Says nothing about failures: a search whose last schedule failed is complete too.
    pub complete: bool,
    /// Whether the schedule limit stopped the search.
    pub limit_reached: bool,
    /// Whether the search used partial-order reduction ([`Dfs::with_reduction`]).
    pub reduced: bool,
    /// With reduction, the runs that were redundant ([`Dfs::redundant`]).
    pub redundant: u64,
    /// The first run that did not complete (a failure, a step or time limit, or nondeterminism)
    /// with its schedule index (0-based, in exploration order); the search stops there.
    pub first_failure: Option<(u64, Outcome)>,
    /// One line: [`Dfs::summary`] at the end of the search, e.g.
    /// `all 14 schedules within 2 preemptions explored, no failure`.
    pub summary: String,
}

impl Dfs {
    /// Whether the search uses partial-order reduction ([`Dfs::with_reduction`]).
    pub fn is_reduced(&self) -> bool {
        self.state.borrow().reduce
    }

    /// Runs that reached a point where every runnable task was asleep (with reduction).
    pub fn redundant(&self) -> u64 {
        self.state.borrow().redundant
    }

    /// The bound B (in preemptions or delays: [`Dfs::bound_kind`]).
    pub fn preemption_bound(&self) -> u32 {
        self.state.borrow().bound
    }

    /// What the bound counts.
    pub fn bound_kind(&self) -> BoundKind {
        self.state.borrow().kind
    }

    /// The limit on schedules (`u64::MAX` for none).
    pub fn max_schedules(&self) -> u64 {
        self.state.borrow().limit
    }

    /// Whether every schedule within the bound has run. A completed search starts over on its
    /// next run (from zero schedules).
    pub fn is_complete(&self) -> bool {
        self.state.borrow().complete
    }

    /// Whether the search reached its schedule limit before completing.
    pub fn limit_reached(&self) -> bool {
        let state = self.state.borrow();
        !state.complete && state.schedules >= state.limit
    }

    /// Whether the search stopped on nondeterminism; the reason.
    pub fn stopped(&self) -> Option<String> {
        self.state.borrow().stopped.clone()
    }

    /// The runs of this search so far (each run is one schedule; every run of a search is a
    /// different schedule).
    pub fn schedules(&self) -> u64 {
        self.state.borrow().schedules
    }

    /// Records the outcome of the run that just ended, so [`Dfs::summary`] can give a verdict.
    /// The first outcome that is not [`Outcome::Completed`] is kept with its schedule index.
    pub fn record_outcome(&self, outcome: &Outcome) {
        let mut state = self.state.borrow_mut();
        state.recorded += 1;
        if *outcome != Outcome::Completed && state.first_failure.is_none() {
            let index = state.schedules.saturating_sub(1);
            state.first_failure = Some((index, outcome.clone()));
        }
    }

    /// The first recorded outcome that was not a completion, with its schedule index (0-based).
    pub fn first_failure(&self) -> Option<(u64, Outcome)> {
        self.state.borrow().first_failure.clone()
    }

    /// The search so far as a [`DfsReport`] (the first failure is the first recorded outcome
    /// that was not a completion).
    pub fn report(&self) -> DfsReport {
        DfsReport {
            bound: self.preemption_bound(),
            kind: self.bound_kind(),
            schedules: self.schedules(),
            complete: self.is_complete(),
            limit_reached: self.limit_reached(),
            reduced: self.is_reduced(),
            redundant: self.redundant(),
            first_failure: self.first_failure(),
            summary: self.summary(),
        }
    }

    /// One line on the search: how much it covered and, from the outcomes given to
    /// [`Dfs::record_outcome`], what it found. "No failure" is said only when every run's outcome
    /// was recorded and all completed:
    ///
    /// - `all N schedules within B preemptions explored, no failure`;
    /// - `explored M of more than M schedules within B preemptions (limit reached), no failure`;
    /// - `explored M schedules within B preemptions so far (the search is not complete), no failure`;
    /// - `failure in schedule I (after M schedules within B preemptions): …` (or `limit in …` for
    ///   a run that hit a step or time limit);
    /// - `the search stopped after M schedules within B preemptions: nondeterminism: …`.
    pub fn summary(&self) -> String {
        self.state.borrow().summary()
    }
}

impl Search {
    fn summary(&self) -> String {
        let (schedules, bound) = (self.schedules, self.bound);
        let within = format!("within {bound} {}", self.kind.unit());
        if let Some(reason) = &self.stopped {
            return format!(
                "the search stopped after {schedules} schedules {within}: nondeterminism: {reason}"
            );
        }
        if let Some((index, outcome)) = &self.first_failure {
            let verdict = if outcome.is_failure() { "failure" } else { "limit" };
            return format!(
                "{verdict} in schedule {index} (after {schedules} schedules {within}): {outcome}"
            );
        }
        let reduced = if self.reduce {
            format!(" up to the order of independent steps ({} of them redundant)", self.redundant)
        } else {
            String::new()
        };
        let coverage = if self.complete {
            format!("all {schedules} schedules {within} explored{reduced}")
        } else if schedules >= self.limit {
            format!(
                "explored {schedules} of more than {schedules} schedules {within}{reduced} \
                 (limit reached)"
            )
        } else {
            format!(
                "explored {schedules} schedules {within}{reduced} so far (the search is not \
                 complete)"
            )
        };
        if self.recorded >= schedules {
            format!("{coverage}, no failure")
        } else {
            let unchecked = schedules.saturating_sub(self.recorded);
            format!(
                "{coverage}; the outcomes of {unchecked} of them were not recorded \
                 (Dfs::record_outcome)"
            )
        }
    }

    /// A divergence: the search stops, and the run reports it.
    pub(super) fn diverge(&mut self, what: String) -> Divergence {
        let divergence = Divergence::DfsPath {
            what,
            schedule: self.schedules.saturating_sub(1),
            first_seed: self.first_seed,
            seed: self.seed,
        };
        self.diverged = true;
        if self.stopped.is_none() {
            self.stopped = Some(divergence.to_string());
        }
        divergence
    }

    /// The divergence of a run of a search that stopped earlier.
    pub(super) fn stopped_divergence(&mut self) -> Divergence {
        self.diverged = true;
        let reason = self.stopped.clone().unwrap_or_default();
        Divergence::DfsStopped { reason }
    }
}

/// A choice point, as a divergence names it.
pub(super) fn describe(frame: &Frame) -> String {
    describe_point(&frame.point, frame.step)
}

/// The choice point `point` at `step`, as a divergence names it.
pub(super) fn describe_point(point: &Point, step: u64) -> String {
    match point {
        Point::Task { runnable, current: now, .. } => {
            format!("a pick among {} (current {}) at step {step}", list(runnable), current(*now))
        }
        Point::Draw { bound } => format!("a draw below {bound} at step {step}"),
        Point::Flag { .. } => format!("a perturbation point at step {step}"),
    }
}

/// A current task, or `none`.
pub(super) fn current(task: Option<TaskId>) -> String {
    task.map_or_else(|| "none".to_string(), |task| task.0.to_string())
}

/// Task ids: `[1, 2]`.
pub(super) fn list(tasks: &[TaskId]) -> String {
    let ids: Vec<String> = tasks.iter().map(|task| task.0.to_string()).collect();
    format!("[{}]", ids.join(", "))
}
