//! How a run ends: the last oracle check of a completed run, the deadlock report (every
//! unfinished task and what it waits on), the virtual-time and step limits with their likely
//! causes, and the outcome for a recorded failure.

use std::fmt::Write as _;

use super::Simulation;
use crate::context::{self, Context};
use crate::failure::{Failure, FailureKind, Outcome};
use crate::oracle;
use crate::trace::StepRecord;
use crate::{SimTime, TaskId};

impl Simulation {
    /// Every task that keeps the run alive has finished: last oracle check, then completed.
    pub(super) fn complete(&mut self, ctx: &Context) -> Outcome {
        if ctx.has_oracles.get()
            && let Some(failure) = oracle::check(ctx, true)
        {
            context::record_failure(ctx, failure);
            return recorded_outcome(ctx);
        }
        Outcome::Completed
    }

    /// Nothing is runnable and no timer is pending: the deadlock failure, naming every
    /// unfinished task as involved.
    pub(super) fn deadlock(&mut self, ctx: &Context) -> Outcome {
        let blocked = self.describe_tasks(ctx, "blocked");
        let count = blocked.lines().count();
        let message = format!(
            "deadlock: {count} unfinished task{} blocked and nothing can wake {}",
            if count == 1 { " is" } else { "s are" },
            if count == 1 { "it" } else { "them" }
        );
        let mut failure = self.limit_failure(ctx, FailureKind::Deadlock, message, blocked);
        let state = ctx.state.borrow();
        let unfinished = state.tasks.iter().enumerate().filter(|(_, meta)| !meta.finished);
        failure.involved = unfinished.map(|(index, _)| TaskId(index as u32)).collect();
        drop(state);
        context::record_failure(ctx, failure);
        recorded_outcome(ctx)
    }

    /// The next timer is past [`crate::Config::time_max`]: the time-limit failure.
    pub(super) fn time_limit(&mut self, ctx: &Context) -> Outcome {
        let mut details = self.describe_tasks(ctx, "unfinished");
        details.push_str(
            "likely cause: a task that never finishes (a periodic loop that should be a daemon, \
             see spawn_daemon), a livelock, or a limit set too low (Config::time_max)",
        );
        let message = format!("virtual time limit of {:?} reached", self.config.time_max);
        let failure = self.limit_failure(ctx, FailureKind::TimeLimit, message, details);
        context::record_failure(ctx, failure);
        recorded_outcome(ctx)
    }

    /// The run took [`crate::Config::steps_max`] steps: the step-limit failure, naming the task
    /// that ran most of the last steps.
    pub(super) fn step_limit(&mut self, ctx: &Context) -> Outcome {
        let window = self.trace.steps.len().min(1000);
        let mut counts: Vec<(u32, usize)> = Vec::new();
        for record in &self.trace.steps[self.trace.steps.len() - window..] {
            let task = StepRecord::unpack(*record).task.0;
            match counts.iter_mut().find(|(id, _)| *id == task) {
                Some((_, count)) => *count += 1,
                None => counts.push((task, 1)),
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut details = String::new();
        if let Some(&(task, count)) = counts.first() {
            let name = ctx.state.borrow().task_name(task).to_string();
            let _ = write!(
                details,
                "likely cause: task {task} ({name}) ran {count} of the last {window} steps: a spin \
                 loop or a livelock? Otherwise raise Config::steps_max"
            );
        }
        let message = format!("step limit of {} steps reached", self.config.steps_max);
        let failure = self.limit_failure(ctx, FailureKind::StepLimit, message, details);
        context::record_failure(ctx, failure);
        recorded_outcome(ctx)
    }

    /// A failure of no task, at the current step and time.
    pub(super) fn limit_failure(
        &self,
        ctx: &Context,
        kind: FailureKind,
        message: String,
        details: String,
    ) -> Failure {
        Failure {
            kind,
            message,
            details,
            task: None,
            task_name: None,
            involved: Vec::new(),
            step: ctx.step.get(),
            time: SimTime::from_nanos(ctx.now.get()),
        }
    }

    /// One line per unfinished task: what it is doing, from its last poll.
    fn describe_tasks(&self, ctx: &Context, heading: &str) -> String {
        let state = ctx.state.borrow();
        let runq = ctx.runq.borrow();
        let mut out = String::new();
        for (index, meta) in state.tasks.iter().enumerate() {
            if meta.finished {
                continue;
            }
            let _ = write!(out, "  {heading} task {index} ({})", meta.name);
            if meta.daemon {
                out.push_str(" [daemon]");
            }
            let last_polled = self.slots.get(index).map_or(0, |slot| slot.last_polled);
            if runq.is_queued(index as u32) {
                out.push_str(": runnable");
            } else {
                match &meta.wait {
                    Some(wait) if wait.step >= last_polled => {
                        let _ = write!(out, ": waiting to {} {}", wait.what, wait.resource);
                    }
                    _ => out.push_str(": waiting on a future that is not a sim-core primitive"),
                }
            }
            if !meta.frames.is_empty() {
                let frames: Vec<&str> = meta.frames.iter().map(|frame| frame.as_ref()).collect();
                let _ = write!(out, " in {}", frames.join(" > "));
            }
            out.push('\n');
        }
        out
    }
}

/// The outcome for the failure recorded in the context.
pub(super) fn recorded_outcome(ctx: &Context) -> Outcome {
    let failure =
        ctx.state.borrow().failure.clone().expect("kdst internal: failed without failure");
    if failure.kind.is_limit() { Outcome::LimitReached(failure) } else { Outcome::Failed(failure) }
}
