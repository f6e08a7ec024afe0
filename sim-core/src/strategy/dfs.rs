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

/// What was possible at one choice point.
#[derive(Clone, Debug)]
enum Point {
    /// A pick among `runnable` (sorted by id); `default` is the position of the task taken first.
    Task { runnable: Vec<TaskId>, current: Option<TaskId>, default: usize },
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
    /// Preemptions used before this choice.
    preemptions: u32,
}

impl Frame {
    /// What taking alternative `rank` costs in preemptions.
    fn cost(&self, rank: u64) -> u32 {
        match &self.point {
            Point::Task { current: Some(_), .. } if rank > 0 => 1,
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
        (next < self.alternatives() && self.preemptions + self.cost(next) <= bound).then_some(next)
    }

    /// The task taken, for a task frame.
    fn task(&self) -> TaskId {
        match &self.point {
            Point::Task { runnable, default, .. } => {
                let rank = self.taken as usize;
                let position = match rank {
                    0 => *default,
                    _ if rank > *default => rank,
                    _ => rank - 1,
                };
                runnable[position]
            }
            Point::Draw { .. } => unreachable!("kdst internal: a draw frame has no task"),
        }
    }
}

#[derive(Debug)]
struct Search {
    bound: u32,
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
    fn new(bound: u32, limit: u64) -> Self {
        Search {
            bound,
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
        let within = format!("within {bound} preemptions");
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
        Dfs { state: Rc::new(RefCell::new(Search::new(preemption_bound, max_schedules))) }
    }

    /// The preemption bound B.
    pub fn preemption_bound(&self) -> u32 {
        self.state.borrow().bound
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
            let (bound, limit) = (state.bound, state.limit);
            *state = Search::new(bound, limit);
        }
        state.first_seed.get_or_insert(seed);
        state.seed = seed;
        state.schedules += 1;
        state.cursor = 0;
        state.preemptions = 0;
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
            let default = choice
                .current
                .and_then(|current| sorted.iter().position(|&task| task == current))
                .unwrap_or(0);
            let frame = Frame {
                step: choice.step,
                point: Point::Task { runnable: sorted, current: choice.current, default },
                taken: 0,
                preemptions: state.preemptions,
            };
            let task = frame.task();
            state.path.push(frame);
            state.take();
            task
        };
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
            let preemptions = state.preemptions;
            state.path.push(Frame { step, point: Point::Draw { bound }, taken: 0, preemptions });
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
    /// The preemption bound B.
    pub bound: u32,
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
    let dfs = Dfs::with_limit(bound, limit);
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
        bound,
        schedules: dfs.schedules(),
        complete: dfs.is_complete(),
        limit_reached: dfs.limit_reached(),
        first_failure,
        summary: dfs.summary(),
    }
}
