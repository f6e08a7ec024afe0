//! Bounded exhaustive search: every schedule with at most B preemptions, depth first.
//!
//! This is the search of CHESS (Musuvathi, Qadeer, Ball, Basler, Nainar and Neamtiu, "Finding and
//! Reproducing Heisenbugs in Concurrent Programs", OSDI 2008) with the preemption bound of
//! iterative context bounding (Musuvathi and Qadeer, "Iterative Context Bounding for Systematic
//! Testing of Multithreaded Programs", PLDI 2007). Most concurrency bugs need very few
//! preemptions, and the number of schedules with at most B preemptions grows polynomially in the
//! program's length (for a fixed B) where the number of all schedules grows exponentially. So "all
//! schedules within 2 preemptions" is a statement that can be finished, and it is a guarantee a
//! random search never gives.
//!
//! ## How it searches
//! One [`Dfs`] serves every run of a search. It keeps the current path: one frame per choice point
//! of the last run, holding what was possible there (the runnable set and the current task, or a
//! draw's bound), which alternative was taken, and the preemptions used before it. A run follows
//! the path, then at every new choice point takes the default (keep running the current task if it
//! is still runnable, otherwise the lowest task id; a draw takes 0) and records a frame. When the
//! run ends, [`Strategy::end`] backtracks to the deepest frame with an untried alternative that
//! keeps the run within the bound, and the next run follows the path up to it and takes that
//! alternative. When no frame has an alternative left, the search is complete: every schedule
//! with at most B preemptions ran exactly once.
//!
//! A preemption is picking another task while the task that ran the previous step is still
//! runnable ([`Choice::current`]); it costs 1. Picking a task when the previous one blocked or
//! finished is free, and so is every draw ([`crate::choose`] values are enumerated, `0..bound`,
//! without a cost).
//!
//! ## Partial-order reduction
//! Most schedules of a real program differ only in the order of steps that do not touch the same
//! state: a reflector filling its cache and a worker logging, two goroutines writing different
//! maps. [`Dfs::with_reduction`] runs one schedule of each such family: every step's footprint
//! ([`crate::footprint`]: what it read and wrote) is recorded, and after each run the search
//! adds alternatives only where two steps of different tasks race (they touch the same state,
//! one writes, and nothing else orders them), in the manner of dynamic partial-order reduction
//! (Flanagan and Godefroid, POPL 2005). These refinements keep it complete:
//!
//! - with a preemption bound, an alternative at a race also goes to the last context switch
//!   before it, where it may cost no preemption (Coons, Musuvathi and McKinley, "Bounded
//!   Partial-Order Reduction", OOPSLA 2013);
//! - every race gets its backtrack points, not only the latest one of each step (under a bound
//!   the latest may be impossible to reverse and would hide the others), and a spawn happens
//!   before its child's steps;
//! - a pick after time moved (every task waited, a timer woke some) is free, as CHESS counts
//!   preemptions only against a task that could have gone on;
//! - a step that only checked what its task waits on and then waited (a *pure wait*: an empty
//!   queue, a held lock, see [`crate::footprint::Resource::check`]) changes nothing, so it races
//!   with nothing after it: running the step that wakes its task first only makes the task do
//!   in one step what it does anyway after the wake. A wake orders the woken task's next step
//!   after it without racing with it (the task could not run before);
//! - sleep sets (Godefroid, LNCS 1032, 1996) skip alternatives already covered; a sleeping task
//!   stands for its whole run of steps until it blocks (the argument is at `Search::step_done`
//!   in the source), and it sleeps only at free choice points: at a preemption point every task
//!   is tried that the race analysis asks for (`Frame::is_asleep` tells why).
//!
//! The guarantee it aims at reads "every schedule within B preemptions is equivalent to one the
//! search ran": the same steps, each pair of dependent steps in the same order, so the same
//! states and the same outcome. It needs every piece of state tasks share to be a sim-core
//! primitive or to declare its accesses ([`crate::footprint::Resource`]). `tests/it/dfs_por.rs`
//! checks it against the unreduced search on generated programs (it is tested, not proved).
//!
//! ## Seeds
//! The seed passed to [`Strategy::begin`] is ignored: the search is systematic, not random. But
//! the seed still drives everything else in a run (named streams, task streams, the time jitter),
//! so every run of one search must use the same seed, or the program changes under the search's
//! feet and the path no longer fits. [`explore`] runs every schedule with seed 0.
//!
//! ## Nondeterminism
//! The search needs the program to be a function of its schedule. A run that does not fit its
//! path (another runnable set, another draw, an earlier end) is reported as a [`Divergence`],
//! which the executor turns into a failure `nondeterminism at step N: …`; the search stops there,
//! since its remaining path means nothing any more.
//!
//! ## Using it
//! [`explore`] drives a whole search and returns a [`DfsReport`]. To drive runs yourself, keep a
//! clone of the `Dfs` (clones share one search) and give the other to the simulation:
//!
//! ```
//! use sim_core::strategy::Dfs;
//! use sim_core::{Simulation, spawn, yield_now};
//!
//! let dfs = Dfs::new(1);
//! let mut sim = Simulation::default().with_strategy(dfs.clone());
//! while !dfs.is_complete() {
//!     let outcome = sim.run(0, || {
//!         for worker in 0..2 {
//!             spawn(format!("worker-{worker}"), async {
//!                 yield_now().await;
//!             });
//!         }
//!     });
//!     dfs.record_outcome(&outcome);
//! }
//! assert_eq!(dfs.summary(), "all 4 schedules within 1 preemptions explored, no failure");
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;

use super::{Choice, Divergence, Strategy};
use crate::failure::Outcome;
use crate::footprint::{self, Access};
use crate::{Simulation, TaskId};

/// The bounded depth-first strategy. Clones are handles on one search.
#[derive(Clone, Debug)]
pub struct Dfs {
    state: Rc<RefCell<Search>>,
}

/// What a search's bound counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundKind {
    /// Preemptions (CHESS): picking another task while the current one is still runnable costs 1;
    /// a switch where the current task blocked or finished is free, so every order of the
    /// runnable tasks there is tried.
    Preemptions,
    /// Delays (Emmi, Qadeer and Rakamarić, "Delay-Bounded Scheduling", POPL 2011): the
    /// deterministic scheduler keeps running the current task and, when it blocks, moves on
    /// round-robin by task id; skipping `d` tasks of that order costs `d`, wherever it happens.
    /// Every schedule within `B` delays is also within `B` preemptions, but not the other way
    /// round: the search is smaller (polynomial in the program's length for a fixed `B`, where
    /// free switches make preemption bounding exponential in the number of tasks that start
    /// together) and its guarantee weaker.
    Delays,
}

impl BoundKind {
    /// `preemptions` or `delays`, as summaries say it.
    pub fn unit(self) -> &'static str {
        match self {
            BoundKind::Preemptions => "preemptions",
            BoundKind::Delays => "delays",
        }
    }
}

/// What was possible at one choice point.
#[derive(Clone, Debug)]
enum Point {
    /// A pick among `runnable` (sorted by id), tried in `order` (the default first).
    Task { runnable: Vec<TaskId>, current: Option<TaskId>, order: Vec<TaskId> },
    /// A [`crate::choose`] of a value below `bound`.
    Draw { bound: u64 },
}

/// A task that need not run at a choice point: running it there only reorders independent steps
/// of a schedule explored already (a sleep set, Godefroid 1996).
#[derive(Clone, Debug)]
struct Sleeper {
    task: TaskId,
    /// The footprint of the task's next run of steps: from the choice point until the task
    /// blocks or finishes, as the search ran it there.
    accesses: Rc<[Access]>,
}

/// The steps of the task running now since the first choice point of this run of steps whose
/// run footprint is not known yet: (that choice point's path index if it is one whose footprint
/// is wanted, the step's footprint, whether the step drew a value).
#[derive(Debug, Default)]
struct Block {
    task: Option<TaskId>,
    steps: Vec<(Option<usize>, Vec<Access>, bool)>,
}

/// One choice point of the current path.
#[derive(Clone, Debug)]
struct Frame {
    step: u64,
    point: Point,
    /// The alternative taken: for a task, its rank in exploration order (0 is the default, then
    /// the other tasks by increasing id); for a draw, the value.
    taken: u64,
    /// Preemptions (or delays) used before this choice.
    preemptions: u32,
    /// What the bound counts.
    kind: BoundKind,
    /// With reduction, at a task choice: the sleep set this choice point was reached with.
    sleep: Vec<Sleeper>,
    /// With reduction: alternatives explored here already that put their task to sleep for the
    /// alternatives after them.
    done: Vec<Sleeper>,
    /// With reduction: the footprint of the run of steps the taken alternative started (until
    /// its task blocked or finished), and whether it may join `done` when the search moves on
    /// (see [`Search::step_done`]).
    ran: Option<(Rc<[Access]>, bool)>,
    /// The tasks tried here so far (task choices).
    tried: Vec<TaskId>,
    /// With reduction, the tasks the search must try here (the backtrack set of dynamic
    /// partial-order reduction, grown by [`Search::analyse_races`]); `None`: every task.
    wanted: Option<Vec<TaskId>>,
}

/// One step of the current run that a task choice point picked, for the race analysis.
#[derive(Debug)]
struct StepInfo {
    /// The path index of its choice point.
    frame: usize,
    task: TaskId,
    accesses: Vec<Access>,
    /// Virtual time advanced before this step: every task waited, so every step before it
    /// happens before it (with zero poll cost, time moves only then).
    barrier: bool,
    /// A pure wait: the task waited after this step, having only checked what it waits on
    /// ([`crate::footprint::Resource::check`]).
    pure: bool,
}

impl Frame {
    /// What taking alternative `rank` costs in preemptions (or delays).
    fn cost(&self, rank: u64) -> u32 {
        match (&self.point, self.kind) {
            (Point::Task { current: Some(_), .. }, BoundKind::Preemptions) if rank > 0 => 1,
            (Point::Task { .. }, BoundKind::Delays) => u32::try_from(rank).unwrap_or(u32::MAX),
            _ => 0,
        }
    }

    fn alternatives(&self) -> u64 {
        match &self.point {
            Point::Task { runnable, .. } => runnable.len() as u64,
            Point::Draw { bound } => *bound,
        }
    }

    /// The next untried alternative that stays within `bound` preemptions and whose task is not
    /// asleep here.
    fn next_alternative(&self, bound: u32) -> Option<u64> {
        let within = |rank: u64| self.preemptions.saturating_add(self.cost(rank)) <= bound;
        match &self.point {
            Point::Draw { .. } => {
                let next = self.taken + 1;
                (next < self.alternatives() && within(next)).then_some(next)
            }
            Point::Task { order, .. } => (0..self.alternatives()).find(|&rank| {
                let task = order[rank as usize];
                within(rank)
                    && !self.tried.contains(&task)
                    && !self.is_asleep(task)
                    && self.wanted.as_ref().is_none_or(|wanted| wanted.contains(&task))
            }),
        }
    }

    /// Asks for `task` to be tried here, or for every runnable task if it cannot run here or
    /// sleeps since an earlier choice point (dynamic partial-order reduction's backtrack set).
    /// Whether it is tried depends on the bound and the sleep set.
    fn want(&mut self, task: TaskId) {
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
    fn is_asleep(&self, task: TaskId) -> bool {
        if matches!(self.point, Point::Task { current: Some(_), .. }) {
            return false;
        }
        self.sleep.iter().chain(&self.done).any(|sleeper| sleeper.task == task)
    }

    /// The task taken, for a task frame.
    fn task(&self) -> TaskId {
        match &self.point {
            Point::Task { order, .. } => order[self.taken as usize],
            Point::Draw { .. } => unreachable!("kdst internal: a draw frame has no task"),
        }
    }
}

#[derive(Debug)]
struct Search {
    bound: u32,
    kind: BoundKind,
    /// The task picked last in this run (for the round-robin order of delay bounding).
    last: Option<TaskId>,
    limit: u64,
    path: Vec<Frame>,
    /// The next frame of the path this run reaches.
    cursor: usize,
    /// Preemptions used so far in this run.
    preemptions: u32,
    /// Runs started in this search.
    schedules: u64,
    complete: bool,
    /// Why the search stopped (nondeterminism), if it did.
    stopped: Option<String>,
    /// This run diverged (already reported).
    diverged: bool,
    /// The seed of the search's first run, and the seed of the current run: diagnostics only.
    first_seed: Option<u64>,
    seed: u64,
    /// Outcomes handed to [`Dfs::record_outcome`].
    recorded: u64,
    first_failure: Option<(u64, Outcome)>,
    scratch: Vec<TaskId>,
    /// Partial-order reduction with sleep sets is on.
    reduce: bool,
    /// The sleep set the next new task choice point is reached with.
    pending: Vec<Sleeper>,
    /// The run of steps of the task running now, with reduction.
    block: Block,
    /// The step running now drew a value ([`crate::choose`]).
    drew: bool,
    /// Every runnable task was asleep at a choice point of this run: the run goes on without
    /// choice points, since every way on from there reorders a schedule explored already.
    blocked: bool,
    /// Runs that reached such a point.
    redundant: u64,
    /// With reduction, the steps of this run picked at task choice points (up to a blocked
    /// point), for the race analysis.
    steps: Vec<StepInfo>,
    /// Time advanced since the last step.
    barrier: bool,
}

impl Search {
    fn new(bound: u32, kind: BoundKind, limit: u64) -> Self {
        Search {
            bound,
            kind,
            last: None,
            limit,
            path: Vec::new(),
            cursor: 0,
            preemptions: 0,
            schedules: 0,
            complete: false,
            stopped: None,
            diverged: false,
            first_seed: None,
            seed: 0,
            recorded: 0,
            first_failure: None,
            scratch: Vec::new(),
            reduce: false,
            pending: Vec::new(),
            block: Block::default(),
            drew: false,
            blocked: false,
            redundant: 0,
            steps: Vec::new(),
            barrier: false,
        }
    }

    /// A divergence: the search stops, and the run reports it.
    fn diverge(&mut self, what: String) -> Divergence {
        let mut message = format!(
            "{what}, in schedule {} of a dfs search (the program under test is not a function \
             of its schedule, or another program runs under the same Dfs)",
            self.schedules.saturating_sub(1)
        );
        if let Some(first) = self.first_seed
            && first != self.seed
        {
            let _ = write!(
                message,
                "; note: the search began with seed {first} but this run has seed {}: \
                 every run of a search must use the same seed",
                self.seed
            );
        }
        self.diverged = true;
        if self.stopped.is_none() {
            self.stopped = Some(message.clone());
        }
        Divergence(message)
    }

    fn stopped_divergence(&mut self) -> Divergence {
        self.diverged = true;
        let reason = self.stopped.as_deref().unwrap_or_default();
        Divergence(format!(
            "this dfs search stopped after nondeterminism ({reason}); start a new Dfs"
        ))
    }

    /// Takes the frame at the cursor (checked by the caller) and advances.
    fn take(&mut self) -> u64 {
        let frame = &self.path[self.cursor];
        let taken = frame.taken;
        self.preemptions += frame.cost(taken);
        self.cursor += 1;
        taken
    }

    fn backtrack(&mut self) {
        while let Some(frame) = self.path.last_mut() {
            if let Some((accesses, true)) = frame.ran.take() {
                let task = frame.task();
                frame.done.push(Sleeper { task, accesses });
            }
            if let Some(next) = frame.next_alternative(self.bound) {
                frame.taken = next;
                if let Point::Task { order, .. } = &frame.point {
                    frame.tried.push(order[next as usize]);
                }
                return;
            }
            self.path.pop();
        }
        self.complete = true;
    }

    /// With reduction, before a step of `task` picked at task choice point `index`: keeps it for
    /// the race analysis.
    fn record_step(&mut self, task: TaskId, index: usize) {
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
    fn analyse_races(&mut self) {
        // Every step's task is runnable at its choice point, so the choice points name them all.
        let tasks = self.path.iter().fold(0, |most, frame| match &frame.point {
            Point::Task { runnable, .. } => {
                runnable.iter().map(|task| task.0 as usize + 1).max().unwrap_or(0).max(most)
            }
            Point::Draw { .. } => most,
        });
        // Happens-before as vector clocks: clock[t] = 1 + the index of task t's latest step
        // that happens before.
        let mut clocks: Vec<Vec<u32>> = Vec::with_capacity(self.steps.len());
        let mut task_clock: Vec<Vec<u32>> = vec![vec![0; tasks]; tasks];
        let mut barrier = vec![0u32; tasks];
        let mut last_write: BTreeMap<footprint::Resource, usize> = BTreeMap::new();
        let mut reads: BTreeMap<footprint::Resource, Vec<usize>> = BTreeMap::new();
        let mut wants: Vec<(usize, TaskId)> = Vec::new();
        // The index of each task's latest step so far.
        let mut last_of: Vec<Option<usize>> = vec![None; tasks];
        let mut races: Vec<usize> = Vec::new();
        let mut deps: Vec<usize> = Vec::new();
        // The step that spawned each task: a task id first runnable after step k was spawned by
        // it. The spawn happens before every step of the child (they are never both enabled),
        // which is what keeps a spawn from looking like a race with its child's steps and
        // hiding the child's real races behind it.
        let mut born: Vec<Option<usize>> = vec![None; tasks];
        let mut seen = vec![false; tasks];
        for (k, step) in self.steps.iter().enumerate() {
            if let Point::Task { runnable, .. } = &self.path[step.frame].point {
                for task in runnable {
                    let t = task.0 as usize;
                    if !seen[t] {
                        seen[t] = true;
                        born[t] = k.checked_sub(1);
                    }
                }
            }
        }
        for (k, step) in self.steps.iter().enumerate() {
            let q = step.task.0 as usize;
            if last_of[q].is_none()
                && let Some(parent) = born[q]
            {
                join(&mut task_clock[q], &clocks[parent]);
            }
            if step.barrier {
                for clock in &task_clock {
                    join(&mut barrier, clock);
                }
            }
            let mut clock = task_clock[q].clone();
            join(&mut clock, &barrier);
            let before = clock.clone();
            races.clear();
            deps.clear();
            // Step `i` touched the resource of `access` before (writing it if `wrote`).
            let mut depends = |i: usize, wrote: bool, access: &Access| {
                let earlier = &self.steps[i];
                let t = earlier.task.0 as usize;
                if t == q {
                    join(&mut clock, &clocks[i]);
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
                        races.push(i);
                    }
                    if order {
                        deps.push(i);
                    }
                }
                if order {
                    join(&mut clock, &clocks[i]);
                }
            };
            for access in &step.accesses {
                if let Some(&i) = last_write.get(&access.resource) {
                    depends(i, true, access);
                }
                if access.write
                    && let Some(list) = reads.get(&access.resource)
                {
                    for &i in list {
                        depends(i, false, access);
                    }
                }
            }
            // Every race, not only the latest: under a preemption bound the latest race may be
            // one whose reversal costs too much (or one with a step that could not have run
            // earlier), and it would hide an earlier one that can be reversed. But not a race
            // with a step ordered before another dependency of this one: reversing that other
            // race comes first, and this one shows again in the run that does it.
            races.sort_unstable();
            races.dedup();
            races.retain(|&i| {
                let t = self.steps[i].task.0 as usize;
                !deps.iter().any(|&j| j != i && clocks[j][t] > i as u32)
            });
            for &i in &races {
                wants.extend(self.backtrack_points(i, step.task));
            }
            last_of[q] = Some(k);
            clock[q] = k as u32 + 1;
            for access in &step.accesses {
                if access.write {
                    last_write.insert(access.resource, k);
                    reads.remove(&access.resource);
                } else {
                    reads.entry(access.resource).or_default().push(k);
                }
            }
            task_clock[q].clone_from(&clock);
            clocks.push(clock);
        }
        // Tasks still runnable when the run ended never ran their next step, so its footprint
        // is unknown: it may race with every step since the task last ran.
        if !self.blocked
            && let Some(last) = self.steps.last()
            && let Point::Task { runnable, .. } = &self.path[last.frame].point
        {
            for &pending in runnable.iter().filter(|&&task| task != last.task) {
                let window = last_of[pending.0 as usize].map_or(0, |last| last + 1);
                for i in window..self.steps.len() {
                    if self.steps[i].task != pending {
                        wants.extend(self.backtrack_points(i, pending));
                    }
                }
            }
        }
        for (frame, task) in wants {
            self.path[frame].want(task);
        }
    }

    /// Where `task` must be tried so that it may run before step `i`: at step `i`'s choice
    /// point, and at the last point before it where a switch was free (Coons et al.).
    fn backtrack_points(&self, i: usize, task: TaskId) -> [(usize, TaskId); 2] {
        let free = switch_before(&self.steps, &self.path, i);
        [(self.steps[i].frame, task), (self.steps[free].frame, task)]
    }

    /// With reduction, before a step of `task` picked at choice point `index`: the step joins
    /// the task's current run of steps, or starts a new one (closing the last, cut short, if
    /// another task ran it).
    fn extend_block(&mut self, task: TaskId, index: usize) {
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
    fn close_block(&mut self, complete: bool) {
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
    fn step_done(&mut self, task: TaskId, accesses: &[Access], runnable: bool) {
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
}

impl Dfs {
    /// A search of every schedule with at most `preemption_bound` preemptions, without a limit on
    /// the number of schedules.
    pub fn new(preemption_bound: u32) -> Self {
        Dfs::with_limit(preemption_bound, u64::MAX)
    }

    /// A search of every schedule with at most `preemption_bound` preemptions that calls itself
    /// done after `max_schedules` runs ([`Dfs::limit_reached`]). The limit is advisory: the
    /// strategy cannot refuse a run, so the driver checks it ([`explore`] does). A search that
    /// stops at its limit is never reported as complete.
    pub fn with_limit(preemption_bound: u32, max_schedules: u64) -> Self {
        Dfs::bounded(BoundKind::Preemptions, preemption_bound, max_schedules)
    }

    /// A search of every schedule within `bound` of `kind` (preemptions or delays), that calls
    /// itself done after `max_schedules` runs (`u64::MAX` for no limit).
    pub fn bounded(kind: BoundKind, bound: u32, max_schedules: u64) -> Self {
        Dfs { state: Rc::new(RefCell::new(Search::new(bound, kind, max_schedules))) }
    }

    /// The same search with partial-order reduction (see the module docs): dynamic partial-order
    /// reduction and sleep sets over the footprints of [`crate::footprint`]. A schedule that
    /// differs from one explored already only in the order of independent steps is not run, and
    /// the summary says "up to the order of independent steps".
    ///
    /// What it aims to guarantee: every schedule within the bound is equivalent (the same steps,
    /// with every pair of dependent steps in the same order, so the same states along the way and
    /// the same outcome) to a schedule within the bound that the search ran (tested against the
    /// unreduced search, not proved). It needs every piece of state tasks share
    /// to be a sim-core primitive or to be declared with
    /// [`crate::footprint::Resource`]; a write nobody recorded makes dependent steps look
    /// independent. The search also needs polls that cost no virtual time
    /// (`Config::with_poll_cost(Duration::ZERO, Duration::ZERO)`) to reduce anything: otherwise
    /// each step moves the clock and fires timers, and every step depends on every other.
    ///
    /// A run that reaches a choice point where every runnable task is asleep is *redundant*: it
    /// continues without choice points (every continuation reorders a schedule explored
    /// already) and counts as a schedule; [`Dfs::redundant`] counts them.
    ///
    /// # Panics
    /// For a delay-bounded search: the argument above is for preemptions.
    #[must_use]
    pub fn with_reduction(self) -> Self {
        {
            let mut state = self.state.borrow_mut();
            assert!(
                state.kind == BoundKind::Preemptions,
                "kdst: partial-order reduction is for preemption-bounded searches"
            );
            state.reduce = true;
        }
        self
    }

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

impl Strategy for Dfs {
    fn name(&self) -> &'static str {
        "dfs"
    }

    /// Starts the next schedule. `seed` does not influence the search (see the module docs).
    fn begin(&mut self, seed: u64) {
        let mut state = self.state.borrow_mut();
        if state.complete {
            let (bound, kind, limit, reduce) = (state.bound, state.kind, state.limit, state.reduce);
            *state = Search::new(bound, kind, limit);
            state.reduce = reduce;
        }
        state.first_seed.get_or_insert(seed);
        state.seed = seed;
        state.schedules += 1;
        state.cursor = 0;
        state.preemptions = 0;
        state.last = None;
        state.diverged = false;
        state.pending.clear();
        state.block = Block::default();
        state.steps.clear();
        state.barrier = false;
        state.drew = false;
        state.blocked = false;
    }

    fn wants_footprints(&self) -> bool {
        self.state.borrow().reduce
    }

    fn step_done(&mut self, task: TaskId, accesses: &[Access], runnable: bool) {
        self.state.borrow_mut().step_done(task, accesses, runnable);
    }

    fn next_task(&mut self, choice: &Choice<'_>) -> Result<usize, Divergence> {
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        if state.stopped.is_some() {
            return Err(state.stopped_divergence());
        }
        state.drew = false;
        // Time moved because every task waited: whoever a timer woke, none was interrupted, so
        // this pick is free (CHESS counts a preemption only against a task that could go on).
        let idle = choice.idle;
        state.barrier |= idle;
        let current_task = if idle { None } else { choice.current };
        if state.blocked {
            // Redundant from here on: keep running without choice points.
            let task = choice.current.unwrap_or_else(|| {
                *choice.runnable.iter().min().expect("kdst internal: a pick among no tasks")
            });
            let index = choice.runnable.iter().position(|&runnable| runnable == task);
            return Ok(index.expect("kdst internal: the current task is runnable"));
        }
        let mut sorted = std::mem::take(&mut state.scratch);
        sorted.clear();
        sorted.extend_from_slice(choice.runnable);
        sorted.sort_unstable();
        let task = if let Some(frame) = state.path.get(state.cursor) {
            let fits = match &frame.point {
                Point::Task { runnable, current, .. } => {
                    frame.step == choice.step && *runnable == sorted && *current == current_task
                }
                Point::Draw { .. } => false,
            };
            if !fits {
                let expected = describe(frame);
                let found = format!(
                    "a pick among {} (current {}) at step {}",
                    list(&sorted),
                    current(current_task),
                    choice.step
                );
                state.scratch = sorted;
                return Err(state.diverge(format!(
                    "the search's path has {expected} here, but this run has {found}"
                )));
            }
            let task = frame.task();
            let index = state.cursor;
            state.take();
            state.extend_block(task, index);
            state.record_step(task, index);
            state.scratch = sorted;
            task
        } else {
            let order = exploration_order(state.kind, &sorted, current_task, state.last);
            let mut frame = Frame {
                step: choice.step,
                point: Point::Task { runnable: sorted, current: current_task, order },
                taken: 0,
                preemptions: state.preemptions,
                kind: state.kind,
                sleep: std::mem::take(&mut state.pending),
                done: Vec::new(),
                ran: None,
                tried: Vec::new(),
                wanted: None,
            };
            if frame.is_asleep(frame.task()) {
                match frame.next_alternative(state.bound) {
                    Some(awake) => frame.taken = awake,
                    None => {
                        // Every task that may run here within the bound is asleep.
                        state.blocked = true;
                        state.redundant += 1;
                        let task = frame.task();
                        let index = choice.runnable.iter().position(|&runnable| runnable == task);
                        return Ok(
                            index.expect("kdst internal: dfs picked a task that is not runnable")
                        );
                    }
                }
            }
            let task = frame.task();
            frame.tried.push(task);
            if state.reduce {
                frame.wanted = Some(vec![task]);
            }
            state.path.push(frame);
            state.take();
            let index = state.path.len() - 1;
            state.extend_block(task, index);
            state.record_step(task, index);
            task
        };
        state.last = Some(task);
        let index = choice.runnable.iter().position(|&runnable| runnable == task);
        Ok(index.expect("kdst internal: dfs picked a task that is not runnable"))
    }

    fn next_draw(&mut self, step: u64, bound: u64) -> Result<u64, Divergence> {
        let mut state = self.state.borrow_mut();
        if state.stopped.is_some() {
            return Err(state.stopped_divergence());
        }
        if state.blocked {
            return Ok(0);
        }
        state.drew = true;
        if let Some(frame) = state.path.get(state.cursor) {
            let fits =
                frame.step == step && matches!(frame.point, Point::Draw { bound: b } if b == bound);
            if !fits {
                let expected = describe(frame);
                return Err(state.diverge(format!(
                    "the search's path has {expected} here, but this run has a draw below \
                     {bound} at step {step}"
                )));
            }
        } else {
            let (preemptions, kind) = (state.preemptions, state.kind);
            let point = Point::Draw { bound };
            let (sleep, done, ran, tried, wanted) =
                (Vec::new(), Vec::new(), None, Vec::new(), None);
            let frame =
                Frame { step, point, taken: 0, preemptions, kind, sleep, done, ran, tried, wanted };
            state.path.push(frame);
        }
        Ok(state.take())
    }

    fn end(&mut self, steps: u64) -> Result<(), Divergence> {
        let mut state = self.state.borrow_mut();
        if state.diverged {
            return Ok(());
        }
        if state.cursor < state.path.len() {
            let expected = describe(&state.path[state.cursor]);
            return Err(state.diverge(format!(
                "the program finished after {steps} steps, but the search's path goes on with \
                 {expected}"
            )));
        }
        if state.reduce {
            if !state.blocked {
                // The run ended while its last task could still run: that run of steps is cut.
                state.close_block(false);
            }
            state.analyse_races();
        }
        state.backtrack();
        Ok(())
    }
}

/// The order in which a choice point's alternatives are tried; the first is the default.
///
/// Preemption bounding: the current task, then the others by increasing id. Delay bounding: the
/// round-robin order of a scheduler that keeps running the current task and otherwise moves on
/// to the next id after the task that ran last, wrapping around.
fn exploration_order(
    kind: BoundKind,
    sorted: &[TaskId],
    current: Option<TaskId>,
    last: Option<TaskId>,
) -> Vec<TaskId> {
    let mut order = Vec::with_capacity(sorted.len());
    order.extend(current);
    match kind {
        BoundKind::Preemptions => {
            order.extend(sorted.iter().filter(|&&task| Some(task) != current));
        }
        BoundKind::Delays => {
            // Tasks after the last one by id, then from the lowest id around to it.
            let split = last.map_or(0, |last| sorted.partition_point(|&task| task <= last));
            let (before, after) = sorted.split_at(split);
            order.extend(after.iter().chain(before).filter(|&&task| Some(task) != current));
        }
    }
    order
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
/// or the read of [`footprint::Resource::RUN`] every step makes.
fn is_wait(access: &Access, task: TaskId) -> bool {
    access.check
        || (access.write && access.resource.task_of() == Some(task.0))
        || (!access.write && access.resource == footprint::Resource::RUN)
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

/// Whether `frame` is a task choice point (not a draw).
fn is_task(frame: &Frame) -> bool {
    matches!(frame.point, Point::Task { .. })
}

fn describe(frame: &Frame) -> String {
    match &frame.point {
        Point::Task { runnable, current: now, .. } => format!(
            "a pick among {} (current {}) at step {}",
            list(runnable),
            current(*now),
            frame.step
        ),
        Point::Draw { bound } => format!("a draw below {bound} at step {}", frame.step),
    }
}

fn current(task: Option<TaskId>) -> String {
    task.map_or_else(|| "none".to_string(), |task| task.0.to_string())
}

fn list(tasks: &[TaskId]) -> String {
    let ids: Vec<String> = tasks.iter().map(|task| task.0.to_string()).collect();
    format!("[{}]", ids.join(", "))
}

/// What [`explore`] found.
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

/// Runs a bounded DFS of `setup`'s program on `sim`: every schedule with at most `bound`
/// preemptions, until the search completes, a run does not complete, or `limit` schedules ran.
///
/// Installs a new [`Dfs`] as `sim`'s strategy (it stays installed: after a failure,
/// [`Simulation::schedule`] writes the failing run, which [`super::Replay`] reproduces). Every
/// run uses seed 0.
pub fn explore(sim: &mut Simulation, bound: u32, limit: u64, setup: impl Fn()) -> DfsReport {
    explore_with(sim, Dfs::with_limit(bound, limit), setup)
}

/// [`explore`] with a search built by the caller, e.g. a delay-bounded one
/// ([`Dfs::bounded`] with [`BoundKind::Delays`]).
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
