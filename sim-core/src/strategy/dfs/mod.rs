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
//! feet and the path no longer fits. [`explore`](crate::strategy::explore) runs every schedule with seed 0.
//!
//! ## Nondeterminism
//! The search needs the program to be a function of its schedule. A run that does not fit its
//! path (another runnable set, another draw, an earlier end) is reported as a [`Divergence`],
//! which the executor turns into a failure `nondeterminism at step N: …`; the search stops there,
//! since its remaining path means nothing any more.
//!
//! ## Using it
//! [`explore`](crate::strategy::explore) drives a whole search and returns a [`DfsReport`]. To drive runs yourself, keep a
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
use std::rc::Rc;

use super::{Choice, Divergence, Strategy};
use crate::TaskId;
use crate::failure::Outcome;
use crate::footprint::Access;

mod races;
mod report;
mod sleep;
mod values;

use races::StepInfo;
pub use report::DfsReport;
use report::{current, describe, list};
use sleep::{Block, Sleeper};

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
    /// A perturbation point ([`crate::perturb`]): no (0) first, then yes (1) within the
    /// perturbation bound. `odds` is what the run asked with, to check a replayed path.
    Flag { odds: u64 },
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
    /// Perturbations fired before this choice.
    perturbs: u32,
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
            Point::Flag { .. } => 2,
        }
    }

    /// The next untried alternative that stays within `bound` preemptions and whose task is not
    /// asleep here.
    fn next_alternative(&self, bound: u32, perturb_bound: u32) -> Option<u64> {
        let within = |rank: u64| self.preemptions.saturating_add(self.cost(rank)) <= bound;
        match &self.point {
            Point::Flag { .. } => (self.taken == 0 && self.perturbs < perturb_bound).then_some(1),
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

    /// The task taken, for a task frame.
    fn task(&self) -> TaskId {
        match &self.point {
            Point::Task { order, .. } => order[self.taken as usize],
            Point::Draw { .. } | Point::Flag { .. } => {
                unreachable!("kdst internal: a draw frame has no task")
            }
        }
    }
}

#[derive(Debug)]
struct Search {
    bound: u32,
    /// Perturbations a schedule may fire ([`Dfs::with_perturbation_bound`]).
    perturb_bound: u32,
    /// Perturbations fired so far in this run.
    perturbs: u32,
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
            perturb_bound: 0,
            perturbs: 0,
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
    /// Takes the frame at the cursor (checked by the caller) and advances.
    fn take(&mut self) -> u64 {
        let frame = &self.path[self.cursor];
        let taken = frame.taken;
        self.preemptions += frame.cost(taken);
        if matches!(frame.point, Point::Flag { .. }) && taken == 1 {
            self.perturbs += 1;
        }
        self.cursor += 1;
        taken
    }

    fn backtrack(&mut self) {
        while let Some(frame) = self.path.last_mut() {
            if let Some((accesses, true)) = frame.ran.take() {
                let task = frame.task();
                frame.done.push(Sleeper { task, accesses });
            }
            if let Some(next) = frame.next_alternative(self.bound, self.perturb_bound) {
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
}

impl Dfs {
    /// A search of every schedule with at most `preemption_bound` preemptions, without a limit on
    /// the number of schedules.
    pub fn new(preemption_bound: u32) -> Self {
        Dfs::with_limit(preemption_bound, u64::MAX)
    }

    /// A search of every schedule with at most `preemption_bound` preemptions that calls itself
    /// done after `max_schedules` runs ([`Dfs::limit_reached`]). The limit is advisory: the
    /// strategy cannot refuse a run, so the driver checks it ([`explore`](crate::strategy::explore) does). A search that
    /// stops at its limit is never reported as complete.
    pub fn with_limit(preemption_bound: u32, max_schedules: u64) -> Self {
        Dfs::bounded(BoundKind::Preemptions, preemption_bound, max_schedules)
    }

    /// A search of every schedule within `bound` of `kind` (preemptions or delays), that calls
    /// itself done after `max_schedules` runs (`u64::MAX` for no limit).
    pub fn bounded(kind: BoundKind, bound: u32, max_schedules: u64) -> Self {
        Dfs { state: Rc::new(RefCell::new(Search::new(bound, kind, max_schedules))) }
    }

    /// The same search, also trying "yes" at perturbation points ([`crate::perturb`]), at most
    /// `bound` times per schedule (0, the default: every point says no). Perturbation points
    /// are choice points of their own: firing one costs no preemption.
    #[must_use]
    pub fn with_perturbation_bound(self, bound: u32) -> Self {
        self.state.borrow_mut().perturb_bound = bound;
        self
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
            let perturb_bound = state.perturb_bound;
            *state = Search::new(bound, kind, limit);
            state.reduce = reduce;
            state.perturb_bound = perturb_bound;
        }
        state.first_seed.get_or_insert(seed);
        state.seed = seed;
        state.schedules += 1;
        state.cursor = 0;
        state.preemptions = 0;
        state.perturbs = 0;
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
                Point::Draw { .. } | Point::Flag { .. } => false,
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
                perturbs: state.perturbs,
                kind: state.kind,
                sleep: std::mem::take(&mut state.pending),
                done: Vec::new(),
                ran: None,
                tried: Vec::new(),
                wanted: None,
            };
            if frame.is_asleep(frame.task()) {
                match frame.next_alternative(state.bound, state.perturb_bound) {
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
        self.state.borrow_mut().draw(step, bound)
    }

    fn next_flag(&mut self, step: u64, odds: u64) -> Result<bool, Divergence> {
        self.state.borrow_mut().flag(step, odds)
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

/// Whether `frame` is a task choice point (not a draw).
fn is_task(frame: &Frame) -> bool {
    matches!(frame.point, Point::Task { .. })
}
