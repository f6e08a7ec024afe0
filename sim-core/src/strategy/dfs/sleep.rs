//! Sleep sets (Godefroid, LNCS 1032, 1996) for the reduced search: the tasks that need not run at
//! a choice point because running them there only reorders independent steps of a schedule
//! explored already, and the runs of steps whose footprints they carry.

use std::rc::Rc;

use super::races::is_wait;
use super::{Frame, Point, Search, is_task};
use crate::TaskId;
use crate::footprint::{self, Access};

/// A task that need not run at a choice point: running it there only reorders independent steps
/// of a schedule explored already (a sleep set, Godefroid 1996).
#[derive(Clone, Debug)]
pub(super) struct Sleeper {
    pub(super) task: TaskId,
    /// The footprint of the task's next run of steps: from the choice point until the task
    /// blocks or finishes, as the search ran it there.
    pub(super) accesses: Rc<[Access]>,
}

/// The steps of the task running now since the first choice point of this run of steps whose
/// run footprint is not known yet: (that choice point's path index if it is one whose footprint
/// is wanted, the step's footprint, whether the step drew a value).
#[derive(Debug, Default)]
pub(super) struct Block {
    task: Option<TaskId>,
    steps: Vec<(Option<usize>, Vec<Access>, bool)>,
}

impl Frame {
    /// Whether `task` is asleep at this choice point.
    ///
    /// Only at a free choice point (the running task blocked or finished, or none ran yet): at a
    /// preemption point every task is awake. A sleeping task stands for a schedule that runs it
    /// earlier, and under a preemption bound the races of that schedule may send the search to
    /// other points than the ones this schedule needs. The generated programs of
    /// `tests/it/dfs_por.rs` found such a case (three tasks: the one to run first sleeps at the
    /// point where a second must preempt a third); with sleepers kept to free points (and
    /// [`Frame::want`]'s rule for inherited sleepers), 21,000 programs within 0, 1 and 2
    /// preemptions find every outcome of the unreduced search.
    pub(super) fn is_asleep(&self, task: TaskId) -> bool {
        if matches!(self.point, Point::Task { current: Some(_), .. }) {
            return false;
        }
        self.sleep.iter().chain(&self.done).any(|sleeper| sleeper.task == task)
    }
}

impl Search {
    /// With reduction, before a step of `task` picked at choice point `index`: the step joins
    /// the task's current run of steps, or starts a new one (closing the last, cut short, if
    /// another task ran it).
    pub(super) fn extend_block(&mut self, task: TaskId, index: usize) {
        if !self.reduce {
            return;
        }
        if self.block.task != Some(task) {
            self.close_block(false);
            self.block.task = Some(task);
        }
        let wanted = self.path[index].ran.is_none();
        if wanted || !self.block.steps.is_empty() {
            self.block.steps.push((wanted.then_some(index), Vec::new(), false));
        }
    }

    /// Ends the current run of steps: each choice point in it whose footprint was wanted gets
    /// the union of the footprints from its step to the end. Only a run that ended with its task
    /// blocked or finished (`complete`) and drew no value stands for its task in a sleep set.
    pub(super) fn close_block(&mut self, complete: bool) {
        let mut union: Vec<Access> = Vec::new();
        let mut drew = false;
        for (index, accesses, step_drew) in self.block.steps.drain(..).rev() {
            union.extend_from_slice(&accesses);
            footprint::normalize(&mut union);
            drew |= step_drew;
            if let Some(index) = index
                && self.path[index].ran.is_none()
            {
                self.path[index].ran = Some((union.as_slice().into(), complete && !drew));
            }
        }
        self.block.task = None;
    }

    /// After a step, with reduction: records the step's footprint in its task's run of steps
    /// (closing the run if the task blocked or finished), and, when the next choice point is
    /// new, its sleep set: the tasks asleep here whose run of steps is independent of this step
    /// stay asleep.
    ///
    /// Why sleeping tasks stand for whole runs of steps. A task explored at a choice point
    /// sleeps in the alternatives after it: a schedule of theirs that runs the sleeping task's
    /// steps before any step they depend on is equivalent to one with those steps moved to the
    /// front, which the sleeping task's own alternative covered. With a preemption bound that
    /// is only true if the moved schedule has no more preemptions (Musuvathi and Qadeer,
    /// "Partial-Order Reduction for Context-Bounded State Exploration", MSR-TR-2007-12, show how
    /// the two interact). Moving one step of a task that then stays runnable can add a
    /// preemption; moving the task's whole contiguous run, up to where it blocks, finishes or is
    /// preempted anyway, cannot: the switch it adds after the run replaces one the run had
    /// before it. So a sleeping task carries the footprint of its run until it blocks, and
    /// wakes as soon as any step conflicts with any step of that run.
    pub(super) fn step_done(&mut self, task: TaskId, accesses: &[Access], runnable: bool) {
        if !self.reduce || self.blocked {
            return;
        }
        if self.block.task == Some(task)
            && let Some(last) = self.block.steps.last_mut()
        {
            last.1.extend_from_slice(accesses);
            last.2 = self.drew;
        }
        if let Some(step) = self.steps.last_mut()
            && step.task == task
            && step.accesses.is_empty()
        {
            step.accesses.extend_from_slice(accesses);
            step.pure = !runnable && accesses.iter().all(|access| is_wait(access, task));
        }
        if !runnable {
            self.close_block(true);
        }
        if self.cursor == self.path.len()
            && let Some(frame) = self.path.iter().rev().find(|frame| is_task(frame))
        {
            self.pending.clear();
            let awake = |sleeper: &&Sleeper| {
                sleeper.task != task && !footprint::conflicts(&sleeper.accesses, accesses)
            };
            self.pending.extend(frame.sleep.iter().chain(&frame.done).filter(awake).cloned());
        }
    }
}
