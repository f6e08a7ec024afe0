//! The race analysis of dynamic partial-order reduction: after each run, the happens-before
//! order of its steps (vector clocks over their footprints), the races between steps of
//! different tasks that nothing orders, and the choice points where each race asks for another
//! task to be tried (the backtrack sets).

use std::collections::BTreeMap;

use super::{Frame, Point, Search};
use crate::TaskId;
use crate::footprint::{Access, Resource};

/// One step of the current run that a task choice point picked, for the race analysis.
#[derive(Debug)]
pub(super) struct StepInfo {
    /// The path index of its choice point.
    pub(super) frame: usize,
    pub(super) task: TaskId,
    pub(super) accesses: Vec<Access>,
    /// Virtual time advanced before this step: every task waited, so every step before it
    /// happens before it (with zero poll cost, time moves only then).
    pub(super) barrier: bool,
    /// A pure wait: the task waited after this step, having only checked what it waits on
    /// ([`crate::footprint::Resource::check`]).
    pub(super) pure: bool,
}

impl Frame {
    /// Asks for `task` to be tried here, or for every runnable task if it cannot run here or
    /// sleeps since an earlier choice point (dynamic partial-order reduction's backtrack set).
    /// Whether it is tried depends on the bound and the sleep set.
    pub(super) fn want(&mut self, task: TaskId) {
        // A task asleep since an earlier choice point stands for a schedule that runs it there;
        // under a bound that schedule may need a preemption where this one needs none (another
        // task must go first here), so every task is tried instead.
        let inherited = matches!(self.point, Point::Task { current: None, .. })
            && self.sleep.iter().any(|sleeper| sleeper.task == task);
        let (Point::Task { runnable, .. }, Some(wanted)) = (&self.point, &mut self.wanted) else {
            return;
        };
        let alone = runnable.contains(&task) && !inherited;
        let tasks = if alone { std::slice::from_ref(&task) } else { runnable };
        for &task in tasks {
            if !wanted.contains(&task) {
                wanted.push(task);
            }
        }
    }
}

impl Search {
    /// With reduction, before a step of `task` picked at task choice point `index`: keeps it for
    /// the race analysis.
    pub(super) fn record_step(&mut self, task: TaskId, index: usize) {
        if self.reduce {
            let barrier = std::mem::take(&mut self.barrier);
            let step = StepInfo { frame: index, task, accesses: Vec::new(), barrier, pure: false };
            self.steps.push(step);
        }
    }

    /// Dynamic partial-order reduction (Flanagan and Godefroid, "Dynamic Partial-Order Reduction
    /// for Model Checking Software", POPL 2005) over the run that just ended. Each step races
    /// with the earlier steps of other tasks that touch what it touches (one of the two
    /// writing) and are not already ordered before it through other steps (same task, a
    /// dependency, the spawn of its task, or a moment when every task waited and time moved).
    /// For every race, the step's task is added to the tasks to try at the racing step's choice
    /// point (every runnable task, if it cannot run there), and at the last point before it
    /// where a switch was possible for free (Coons, Musuvathi and McKinley, "Bounded
    /// Partial-Order Reduction", OOPSLA 2013, take the last change of task; a point where the
    /// running task had blocked, or every task waited, is one too). Flanagan and Godefroid need
    /// only the latest race; under a preemption bound the latest may be one whose reversal costs
    /// too much, and it hides the earlier ones (found by the generated programs of
    /// `tests/it/dfs_por.rs`). So every race counts whose earlier step is not ordered before
    /// another step the later one depends on: that one is the race to reverse first (every
    /// step of a task finishing before the last exit would otherwise race with it).
    ///
    /// Waits and wakes follow [`relation`]: a pure wait races with nothing after it, and a wake
    /// orders the woken task's next step without racing with it. Tasks still runnable when the
    /// run ended never ran their next step, whose footprint is unknown, so it is taken to race
    /// with every step since the task last ran.
    pub(super) fn analyse_races(&mut self) {
        let mut analysis = Analysis::new(&self.steps, &self.path);
        for k in 0..self.steps.len() {
            analysis.step(k);
        }
        if !self.blocked {
            analysis.unfinished();
        }
        let wants = analysis.wants;
        for (frame, task) in wants {
            self.path[frame].want(task);
        }
    }
}

/// The race analysis of one run, step by step: happens-before as vector clocks, where
/// `clock[t]` is 1 + the index of task t's latest step that happens before.
struct Analysis<'a> {
    steps: &'a [StepInfo],
    path: &'a [Frame],
    /// Per step analysed so far, its clock.
    clocks: Vec<Vec<u32>>,
    /// Per task, the clock of its latest step.
    task_clock: Vec<Vec<u32>>,
    /// What every step after the latest barrier (time moved) happens after.
    barrier: Vec<u32>,
    last_write: BTreeMap<Resource, usize>,
    /// The reads of each resource since its last write.
    reads: BTreeMap<Resource, Vec<usize>>,
    /// The index of each task's latest step so far.
    last_of: Vec<Option<usize>>,
    /// The step that spawned each task ([`spawners`]).
    born: Vec<Option<usize>>,
    /// The step being analysed: the earlier steps it races with, and those it is ordered after
    /// through what it touches (among those not ordered before it already).
    races: Vec<usize>,
    deps: Vec<usize>,
    /// Where the races ask for a task to be tried: (path index, task).
    wants: Vec<(usize, TaskId)>,
}

impl<'a> Analysis<'a> {
    fn new(steps: &'a [StepInfo], path: &'a [Frame]) -> Self {
        let tasks = task_count(path);
        Analysis {
            steps,
            path,
            clocks: Vec::with_capacity(steps.len()),
            task_clock: vec![vec![0; tasks]; tasks],
            barrier: vec![0u32; tasks],
            last_write: BTreeMap::new(),
            reads: BTreeMap::new(),
            last_of: vec![None; tasks],
            born: spawners(steps, path, tasks),
            races: Vec::new(),
            deps: Vec::new(),
            wants: Vec::new(),
        }
    }

    /// Step `k`: its clock, its races (each asking for its task to be tried before the earlier
    /// step), and what it leaves for the steps after it.
    fn step(&mut self, k: usize) {
        let (steps, path) = (self.steps, self.path);
        let step = &steps[k];
        let mut clock = self.clock_before(step);
        self.dependencies(step, &mut clock);
        self.keep_first_races();
        for &i in &self.races {
            self.wants.extend(backtrack_points(steps, path, i, step.task));
        }
        self.record(k, step, clock);
    }

    /// What happens before `step` whatever it touches: its task's earlier steps, the spawn of
    /// its task (before the task's first step), and every step before the latest barrier.
    fn clock_before(&mut self, step: &StepInfo) -> Vec<u32> {
        let q = step.task.0 as usize;
        if self.last_of[q].is_none()
            && let Some(parent) = self.born[q]
        {
            join(&mut self.task_clock[q], &self.clocks[parent]);
        }
        if step.barrier {
            for clock in &self.task_clock {
                join(&mut self.barrier, clock);
            }
        }
        let mut clock = self.task_clock[q].clone();
        join(&mut clock, &self.barrier);
        clock
    }

    /// The earlier steps that touched what `step` touches ([`relation`]): those that `clock`
    /// does not order before it yet go to `races` and `deps`, and `clock` joins the clock of
    /// every one it depends on.
    fn dependencies(&mut self, step: &StepInfo, clock: &mut [u32]) {
        let q = step.task.0 as usize;
        let before = clock.to_vec();
        self.races.clear();
        self.deps.clear();
        // Step `i` touched the resource of `access` before (writing it if `wrote`).
        let mut depends = |i: usize, wrote: bool, access: &Access| {
            let earlier = &self.steps[i];
            let t = earlier.task.0 as usize;
            if t == q {
                join(clock, &self.clocks[i]);
                return;
            }
            let (race, order) = match relation(earlier, wrote, access, step.task) {
                Relation::Independent => return,
                Relation::Dependent => (true, true),
                Relation::Enables => (false, true),
                Relation::Races => (true, false),
            };
            if before[t] <= i as u32 {
                if race {
                    self.races.push(i);
                }
                if order {
                    self.deps.push(i);
                }
            }
            if order {
                join(clock, &self.clocks[i]);
            }
        };
        for access in &step.accesses {
            if let Some(&i) = self.last_write.get(&access.resource) {
                depends(i, true, access);
            }
            if access.write
                && let Some(list) = self.reads.get(&access.resource)
            {
                for &i in list {
                    depends(i, false, access);
                }
            }
        }
    }

    /// Every race, not only the latest: under a preemption bound the latest race may be one
    /// whose reversal costs too much (or one with a step that could not have run earlier), and
    /// it would hide an earlier one that can be reversed. But not a race with a step ordered
    /// before another dependency of this one: reversing that other race comes first, and this
    /// one shows again in the run that does it.
    fn keep_first_races(&mut self) {
        self.races.sort_unstable();
        self.races.dedup();
        let (steps, clocks, deps) = (self.steps, &self.clocks, &self.deps);
        self.races.retain(|&i| {
            let t = steps[i].task.0 as usize;
            !deps.iter().any(|&j| j != i && clocks[j][t] > i as u32)
        });
    }

    /// Makes step `k`, with its final `clock`, the latest of its task and of what it touched.
    fn record(&mut self, k: usize, step: &StepInfo, mut clock: Vec<u32>) {
        let q = step.task.0 as usize;
        self.last_of[q] = Some(k);
        clock[q] = k as u32 + 1;
        for access in &step.accesses {
            if access.write {
                self.last_write.insert(access.resource, k);
                self.reads.remove(&access.resource);
            } else {
                self.reads.entry(access.resource).or_default().push(k);
            }
        }
        self.task_clock[q].clone_from(&clock);
        self.clocks.push(clock);
    }

    /// Tasks still runnable when the run ended never ran their next step, so its footprint is
    /// unknown: it may race with every step since the task last ran.
    fn unfinished(&mut self) {
        let (steps, path) = (self.steps, self.path);
        let Some(last) = steps.last() else { return };
        let Point::Task { runnable, .. } = &path[last.frame].point else { return };
        for &pending in runnable.iter().filter(|&&task| task != last.task) {
            let window = self.last_of[pending.0 as usize].map_or(0, |last| last + 1);
            for i in window..steps.len() {
                if steps[i].task != pending {
                    self.wants.extend(backtrack_points(steps, path, i, pending));
                }
            }
        }
    }
}

/// The number of task ids of a run: every step's task is runnable at its choice point, so the
/// choice points name them all.
fn task_count(path: &[Frame]) -> usize {
    path.iter().fold(0, |most, frame| match &frame.point {
        Point::Task { runnable, .. } => {
            runnable.iter().map(|task| task.0 as usize + 1).max().unwrap_or(0).max(most)
        }
        Point::Draw { .. } | Point::Flag { .. } => most,
    })
}

/// The step that spawned each task: a task id first runnable after step k was spawned by it.
/// The spawn happens before every step of the child (they are never both enabled), which is
/// what keeps a spawn from looking like a race with its child's steps and hiding the child's
/// real races behind it.
fn spawners(steps: &[StepInfo], path: &[Frame], tasks: usize) -> Vec<Option<usize>> {
    let mut born: Vec<Option<usize>> = vec![None; tasks];
    let mut seen = vec![false; tasks];
    for (k, step) in steps.iter().enumerate() {
        if let Point::Task { runnable, .. } = &path[step.frame].point {
            for task in runnable {
                let t = task.0 as usize;
                if !seen[t] {
                    seen[t] = true;
                    born[t] = k.checked_sub(1);
                }
            }
        }
    }
    born
}

/// Where `task` must be tried so that it may run before step `i`: at step `i`'s choice point,
/// and at the last point before it where a switch was free (Coons et al.).
fn backtrack_points(
    steps: &[StepInfo],
    path: &[Frame],
    i: usize,
    task: TaskId,
) -> [(usize, TaskId); 2] {
    let free = switch_before(steps, path, i);
    [(steps[i].frame, task), (steps[free].frame, task)]
}

/// `into = max(into, other)`, entry by entry.
fn join(into: &mut [u32], other: &[u32]) {
    for (a, &b) in into.iter_mut().zip(other) {
        *a = (*a).max(b);
    }
}

/// The latest step before step `i` where a context switch happened or could have happened for
/// free: the running task changed, or the previous one could not go on (it blocked, or every
/// task waited); the first step if none.
fn switch_before(steps: &[StepInfo], path: &[Frame], i: usize) -> usize {
    let free = |j: usize| matches!(&path[steps[j].frame].point, Point::Task { current: None, .. });
    (1..i).rev().find(|&j| steps[j - 1].task != steps[j].task || free(j)).unwrap_or(0)
}

/// How a later step's access relates to an earlier step of another task that touched the same
/// resource (writing it if `wrote`; one of the two writes).
enum Relation {
    /// They commute: no race, no order.
    Independent,
    /// They race, and the later one depends on the earlier.
    Dependent,
    /// The earlier step woke the later one's task: the later one depends on it, but it could
    /// not have run first, so they do not race.
    Enables,
    /// They race, but nothing flows from the earlier to the later (so later steps are not
    /// ordered after the earlier step through this pair).
    Races,
}

/// Whether `access` of a step is what every pure wait may do: a check, a write of its own task,
/// or the read of [`Resource::RUN`] every step makes.
pub(super) fn is_wait(access: &Access, task: TaskId) -> bool {
    access.check
        || (access.write && access.resource.task_of() == Some(task.0))
        || (!access.write && access.resource == Resource::RUN)
}

/// The rules of [`Search::analyse_races`] for one pair of accesses.
///
/// - A pure wait ([`StepInfo::pure`]) changed nothing but its own task's waiting, so nothing
///   that comes after it depends on it: moving it later (past the step that would have woken
///   it) only turns the wait into a step that does not wait, which does in one step what the
///   task does anyway after its wake.
/// - A task's resource `T(x)` is written by x's steps and by wakes that make x runnable, and
///   read by joins of x. A wake enables x's next step (it cannot run before, so they do not
///   race); x's step before the wake that woke it, and wakes by different tasks, commute (a
///   data dependency between them, if any, is on other resources); a join races with x's
///   steps (the last one finishes x), and x's step after a join that saw it alive races with it
///   without depending on it.
fn relation(earlier: &StepInfo, wrote: bool, access: &Access, task: TaskId) -> Relation {
    if earlier.pure {
        return Relation::Independent;
    }
    let Some(x) = access.resource.task_of() else { return Relation::Dependent };
    match (earlier.task.0 == x, task.0 == x) {
        // x's step, then a wake of x.
        (true, _) if access.write => Relation::Independent,
        // x's step, then a join of x.
        (true, _) => Relation::Dependent,
        // A wake of x, then x's step.
        (false, true) if wrote => Relation::Enables,
        // A join of x, then x's step.
        (false, true) => Relation::Races,
        // Wakes and joins of x by other tasks.
        (false, false) => Relation::Independent,
    }
}
