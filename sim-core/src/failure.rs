//! How a run ends: completed, failed (a bug was found), or stopped by a limit.

use std::fmt;

use crate::{SimTime, TaskId};

/// The kind of a [`Failure`]; each oracle has its own.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// A task panicked (a crashed Go process, an `assert!` in a test).
    Panic,
    /// The Go runtime's fatal error, e.g. `fatal error: concurrent map writes`.
    GoFatal,
    /// Two accesses from different tasks, one a write, that nothing orders ([`crate::race`]):
    /// Go's `WARNING: DATA RACE`.
    DataRace,
    /// Nothing can run, no timer is pending, and a task that keeps the run alive still waits.
    Deadlock,
    /// An [`crate::always`] invariant was false after a step.
    Invariant,
    /// An [`crate::eventually`] property did not hold by its deadline in virtual time.
    Liveness,
    /// A replayed schedule did not fit the program.
    Nondeterminism,
    /// The run took `Config::steps_max` steps: a limit, not a verdict.
    StepLimit,
    /// Virtual time passed `Config::time_max`: a limit, not a verdict.
    TimeLimit,
    /// More than `Config::tasks_max` tasks were spawned: a limit, not a verdict.
    TaskLimit,
    /// More than `Config::events_max` trace events were emitted: a limit, not a verdict.
    EventLimit,
    /// A model's own resource limit (objects stored, watch history, queue length) was exceeded:
    /// a limit, not a verdict. Raised with [`crate::fail`].
    ResourceLimit,
}

impl FailureKind {
    /// Whether this is a tripped limit rather than a detected bug.
    pub fn is_limit(self) -> bool {
        matches!(
            self,
            FailureKind::StepLimit
                | FailureKind::TimeLimit
                | FailureKind::TaskLimit
                | FailureKind::EventLimit
                | FailureKind::ResourceLimit
        )
    }

    /// A stable, lower-case name for reports and schedule files.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Panic => "panic",
            FailureKind::GoFatal => "go-fatal",
            FailureKind::DataRace => "data-race",
            FailureKind::Deadlock => "deadlock",
            FailureKind::Invariant => "invariant",
            FailureKind::Liveness => "liveness",
            FailureKind::Nondeterminism => "nondeterminism",
            FailureKind::StepLimit => "step-limit",
            FailureKind::TimeLimit => "time-limit",
            FailureKind::TaskLimit => "task-limit",
            FailureKind::EventLimit => "event-limit",
            FailureKind::ResourceLimit => "resource-limit",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failure found by an oracle, or a tripped limit, stamped with where it happened.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    /// Which oracle or limit.
    pub kind: FailureKind,
    /// One line: the panic message, the Go fatal error text, the invariant and what broke it.
    pub message: String,
    /// More lines: a goroutine dump, the blocked tasks and what each waits on, the likely cause
    /// of a limit. May be empty.
    pub details: String,
    /// The task that failed, when one did (a deadlock or a limit has none).
    pub task: Option<TaskId>,
    /// That task's name.
    pub task_name: Option<String>,
    /// Other tasks involved: the writer a Go fatal error collided with, the tasks a deadlock
    /// blocked. In task order.
    pub involved: Vec<TaskId>,
    /// The step at which it happened.
    pub step: u64,
    /// The virtual time at which it happened.
    pub time: SimTime,
}

impl Failure {
    /// Where it happened, for deduplication: its kind, the name of the task that failed (a
    /// deadlock or a limit has none) and its one-line message. Two runs that fail the same way
    /// in the same task are one distinct failure, whatever their schedules.
    pub fn place(&self) -> (FailureKind, Option<String>, String) {
        (self.kind, self.task_name.clone(), self.message.clone())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.kind.is_limit() { "limit reached" } else { "failure" };
        write!(f, "{what} ({}) at step {}, t={}", self.kind, self.step, self.time)?;
        if let (Some(task), Some(name)) = (self.task, &self.task_name) {
            write!(f, " in task {} ({name})", task.0)?;
        }
        // A divergence's message repeats where it happened ("nondeterminism at step N: …"),
        // which the line above already says.
        let message = match self.kind {
            FailureKind::Nondeterminism => {
                self.message.strip_prefix(&format!("nondeterminism at step {}: ", self.step))
            }
            _ => None,
        };
        write!(f, ": {}", message.unwrap_or(&self.message))?;
        if !self.details.is_empty() {
            write!(f, "\n{}", self.details.trim_end())?;
        }
        Ok(())
    }
}

/// How one run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every task that keeps the run alive finished (or a task called [`crate::stop`]) and no
    /// oracle fired.
    Completed,
    /// An oracle fired: a bug was found.
    Failed(Failure),
    /// A limit tripped before the run could complete or fail. Not a pass: nothing is known about
    /// the schedule's remainder.
    LimitReached(Failure),
}

impl Outcome {
    /// The failure or limit, if any.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Outcome::Completed => None,
            Outcome::Failed(failure) | Outcome::LimitReached(failure) => Some(failure),
        }
    }

    /// Whether an oracle fired.
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed(_))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Completed => f.write_str("completed"),
            Outcome::Failed(failure) | Outcome::LimitReached(failure) => failure.fmt(f),
        }
    }
}

/// Ends the run from inside a task with a failure of `kind`: the oracle of a model built on
/// sim-core (an invariant of a fake API server, a resource limit it enforces). The failure is
/// stamped with the current step, time and task; a limit kind ends the run as
/// [`Outcome::LimitReached`], any other as [`Outcome::Failed`]. The calling task stops here.
///
/// # Panics
/// Outside a simulation.
pub fn fail(kind: FailureKind, message: impl Into<String>, details: impl Into<String>) -> ! {
    crate::context::with("fail", |ctx| {
        let failure = crate::context::failure_here(ctx, kind, message.into(), details.into());
        crate::context::abort_with(ctx, failure)
    })
}
