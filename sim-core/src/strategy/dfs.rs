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
use std::fmt::Write as _;
use std::rc::Rc;

use super::{Choice, Divergence, Strategy};
use crate::failure::Outcome;
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

    /// The next untried alternative that stays within `bound` preemptions.
    fn next_alternative(&self, bound: u32) -> Option<u64> {
        let next = self.taken + 1;
        let cost = self.preemptions.saturating_add(self.cost(next));
        (next < self.alternatives() && cost <= bound).then_some(next)
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
            if let Some(next) = frame.next_alternative(self.bound) {
                frame.taken = next;
                return;
            }
            self.path.pop();
        }
        self.complete = true;
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
        let coverage = if self.complete {
            format!("all {schedules} schedules {within} explored")
        } else if schedules >= self.limit {
            format!(
                "explored {schedules} of more than {schedules} schedules {within} (limit reached)"
            )
        } else {
            format!("explored {schedules} schedules {within} so far (the search is not complete)")
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
            let (bound, kind, limit) = (state.bound, state.kind, state.limit);
            *state = Search::new(bound, kind, limit);
        }
        state.first_seed.get_or_insert(seed);
        state.seed = seed;
        state.schedules += 1;
        state.cursor = 0;
        state.preemptions = 0;
        state.last = None;
        state.diverged = false;
    }

    fn next_task(&mut self, choice: &Choice<'_>) -> Result<usize, Divergence> {
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        if state.stopped.is_some() {
            return Err(state.stopped_divergence());
        }
        let mut sorted = std::mem::take(&mut state.scratch);
        sorted.clear();
        sorted.extend_from_slice(choice.runnable);
        sorted.sort_unstable();
        let task = if let Some(frame) = state.path.get(state.cursor) {
            let fits = match &frame.point {
                Point::Task { runnable, current, .. } => {
                    frame.step == choice.step && *runnable == sorted && *current == choice.current
                }
                Point::Draw { .. } => false,
            };
            if !fits {
                let expected = describe(frame);
                let found = format!(
                    "a pick among {} (current {}) at step {}",
                    list(&sorted),
                    current(choice.current),
                    choice.step
                );
                state.scratch = sorted;
                return Err(state.diverge(format!(
                    "the search's path has {expected} here, but this run has {found}"
                )));
            }
            let task = frame.task();
            state.take();
            state.scratch = sorted;
            task
        } else {
            let order = exploration_order(state.kind, &sorted, choice.current, state.last);
            let frame = Frame {
                step: choice.step,
                point: Point::Task { runnable: sorted, current: choice.current, order },
                taken: 0,
                preemptions: state.preemptions,
                kind: state.kind,
            };
            let task = frame.task();
            state.path.push(frame);
            state.take();
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
            state.path.push(Frame { step, point, taken: 0, preemptions, kind });
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
    let mut first_failure = None;
    while !dfs.is_complete() && !dfs.limit_reached() {
        let index = dfs.schedules();
        let outcome = sim.run(0, &setup);
        dfs.record_outcome(&outcome);
        if outcome != Outcome::Completed {
            first_failure = Some((index, outcome));
            break;
        }
    }
    DfsReport {
        bound: dfs.preemption_bound(),
        kind: dfs.bound_kind(),
        schedules: dfs.schedules(),
        complete: dfs.is_complete(),
        limit_reached: dfs.limit_reached(),
        first_failure,
        summary: dfs.summary(),
    }
}
