//! Probabilistic Concurrency Testing: random priorities plus `d − 1` random priority change points.
//!
//! PCT is from Burckhardt, Kothari, Musuvathi and Nagarakatte, "A Randomized Scheduler with
//! Probabilistic Guarantees of Finding Bugs", ASPLOS 2010. Where the uniform random walk spreads
//! its preemptions over every step (and so almost never produces a schedule that needs a task to
//! run uninterrupted for a long stretch), PCT runs tasks in a random priority order and preempts
//! only at `d − 1` random steps, which is exactly what a bug of depth `d` needs.

use std::fmt;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use super::{Choice, Divergence, Strategy};
use crate::rng::{below, fork};

/// The PCT strategy (Burckhardt, Kothari, Musuvathi, Nagarakatte, ASPLOS 2010).
///
/// # Algorithm
///
/// For a run with `seed`, with depth `d` and an estimate `k` of the number of steps in a run:
/// 1. every task gets a distinct random initial priority when the strategy first sees it
///    runnable (tasks are spawned as the run goes, so priorities are assigned on first sight,
///    which gives the same uniformly random order as the paper's up-front permutation); every
///    initial priority is above `d`;
/// 2. `d − 1` distinct change points `c_1 … c_{d−1}` are drawn uniformly from `1..=k`;
/// 3. at every step the runnable task with the highest priority runs;
/// 4. when the run reaches its `c_i`-th step (1-based: the step at index `c_i − 1`), the task
///    that would run has its priority lowered to `d − i`, below every initial priority, and the
///    step runs the new highest-priority task: that is the (at most one) preemption of the point.
///
/// Only change points preempt a task that can still run, except where a higher-priority task is
/// woken up and takes over: tasks that never block see at most `d − 1` preemptions, and with
/// `d = 1` each task runs until it finishes or blocks.
///
/// # Guarantee
///
/// A bug has depth `d` if some `d` ordering constraints between steps suffice to trigger it (the
/// paper's examples: an ordering violation of depth 1, an atomicity violation and a deadlock of
/// depth 2). For a program with at most `n` tasks and `k` steps, one PCT run of depth `d` finds a
/// given bug of depth `d` with probability at least `1 / (n · k^(d−1))`: the first constraint needs
/// the right task to have the highest priority (`1/n`), and each of the other `d − 1` needs a
/// change point at one particular step (`1/k` each). The bound is per run and holds whatever else
/// the program does; the random walk's chance of the same bug can be exponentially small in `k` (a
/// task that must run `k` steps without being interrupted).
///
/// # Seeds, `k` and replay
///
/// Everything random comes from the run's stream `fork(seed, "pct")`, so the seed drives the
/// very first schedule too (shuttle's PCT, by contrast, does not know `k` before its first run,
/// and its first schedule does not follow the seed). [`crate::choose`] draws come from a second stream
/// seeded from the first, so adding a draw does not reshuffle the priorities.
///
/// [`Pct::new`] starts from [`Pct::DEFAULT_MAX_STEPS`] and then refines `k` to the longest run seen
/// so far (from [`Strategy::end`]). This is deterministic (the same sequence of seeds on a fresh
/// `Pct` gives the same schedules) but a reused `Pct`'s schedule for a seed depends on the runs
/// before it. [`Pct::with_max_steps`] pins `k`: a run is then a pure function of (seed, depth, k),
/// which is what a report should quote ([`Pct::max_steps`] gives the `k` of the last run). Whatever
/// the strategy, a run's recorded schedule replays exactly with [`super::Replay`].
///
/// # Cost
///
/// One scan of the runnable tasks per step, and one draw per newly seen task.
#[derive(Clone, Debug)]
pub struct Pct {
    depth: usize,
    /// The `k` pinned by [`Pct::with_max_steps`], if any.
    pinned: Option<u64>,
    /// The longest run seen so far (0 before the first `end`).
    longest: u64,
    /// The `k` of the current (or last) run.
    max_steps: u64,
    rng: ChaCha8Rng,
    /// The seed of the draw stream, and the stream once the run draws.
    draw_seed: u64,
    draws: Option<ChaCha8Rng>,
    /// Priority by task id; 0 means not seen yet. Initial priorities are
    /// `(random 64 bits + 1) << 32 | first-sight index`: distinct, uniformly ordered (a tie in the
    /// random part, probability 2^-64 per pair, falls to first-sight order), and above 2^32 > d.
    priorities: Vec<u128>,
    seen: u32,
    /// The change points of the run as (1-based step, lowered priority), by step.
    change_points: Vec<(u64, u128)>,
    /// The next change point to reach.
    next_change: usize,
}

impl Pct {
    /// The estimate of `k` (steps per run) used until a run has been seen, when none is pinned.
    ///
    /// Generous on purpose: a change point beyond the end of a run is merely wasted, but a `k`
    /// below the run's length puts the run's tail out of reach of every change point. The
    /// scenarios' runs are tens of steps (`syncmap-load-or-store`) to thousands
    /// (`cert-manager-*` fixed variants), occasionally tens of thousands; 10,000 covers nearly
    /// all of them without wasting every change point on the short ones, and from the second run
    /// on the estimate is the measured length anyway.
    pub const DEFAULT_MAX_STEPS: u64 = 10_000;

    /// PCT of depth `depth` (`d ≥ 1`: `d − 1` change points per run), with `k` estimated: the
    /// first run uses [`Pct::DEFAULT_MAX_STEPS`], later runs the longest run seen so far.
    ///
    /// # Panics
    /// If `depth` is 0 or above 2^32 − 1.
    pub fn new(depth: usize) -> Self {
        Pct::build(depth, None)
    }

    /// PCT of depth `depth` with `k` pinned to `max_steps`: each run is a pure function of
    /// (seed, depth, max_steps).
    ///
    /// # Panics
    /// If `depth` is 0 or above 2^32 − 1, or `max_steps` is 0.
    pub fn with_max_steps(depth: usize, max_steps: u64) -> Self {
        assert!(max_steps > 0, "kdst: PCT needs max_steps ≥ 1");
        Pct::build(depth, Some(max_steps))
    }

    fn build(depth: usize, pinned: Option<u64>) -> Self {
        assert!(depth >= 1, "kdst: PCT needs depth ≥ 1 (depth 1 means no change point)");
        assert!(u32::try_from(depth).is_ok(), "kdst: PCT depth {depth} is absurdly large");
        Pct {
            depth,
            pinned,
            longest: 0,
            max_steps: pinned.unwrap_or(Pct::DEFAULT_MAX_STEPS),
            rng: ChaCha8Rng::seed_from_u64(0),
            draw_seed: 0,
            draws: None,
            priorities: Vec::new(),
            seen: 0,
            change_points: Vec::new(),
            next_change: 0,
        }
    }

    /// The depth `d`.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The `k` (estimated steps per run) of the last run begun; before any run, the `k` the first
    /// run will use. Together with the seed and the depth it determines a run.
    pub fn max_steps(&self) -> u64 {
        self.max_steps
    }

    /// Whether `k` was pinned by [`Pct::with_max_steps`].
    pub fn is_pinned(&self) -> bool {
        self.pinned.is_some()
    }

    /// The change points of the current (or last) run as 1-based steps, ascending.
    pub fn change_points(&self) -> Vec<u64> {
        self.change_points.iter().map(|&(step, _)| step).collect()
    }

    /// The `k` for the next run.
    fn next_max_steps(&self) -> u64 {
        match self.pinned {
            Some(k) => k,
            None if self.longest > 0 => self.longest,
            None => Pct::DEFAULT_MAX_STEPS,
        }
    }

    /// The priority of `task`, drawing an initial one on first sight.
    #[inline]
    fn priority(&mut self, task: u32) -> u128 {
        let index = task as usize;
        if index >= self.priorities.len() {
            self.priorities.resize(index + 1, 0);
        }
        if self.priorities[index] == 0 {
            let random = u128::from(self.rng.next_u64()) + 1;
            self.priorities[index] = (random << 32) | u128::from(self.seen);
            self.seen += 1;
        }
        self.priorities[index]
    }

    /// The index of the highest-priority runnable task.
    #[inline]
    fn highest(&mut self, choice: &Choice<'_>) -> usize {
        let mut best = 0;
        let mut best_priority = 0;
        for (index, task) in choice.runnable.iter().enumerate() {
            let priority = self.priority(task.0);
            if priority > best_priority {
                best = index;
                best_priority = priority;
            }
        }
        best
    }
}

/// `pct depth 3, k 1000 (pinned)` or `(estimated)`: what a report needs to rerun a seed with
/// [`Pct::with_max_steps`].
impl fmt::Display for Pct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.is_pinned() { "pinned" } else { "estimated" };
        write!(f, "pct depth {}, k {} ({how})", self.depth, self.max_steps)
    }
}

impl Strategy for Pct {
    fn name(&self) -> &'static str {
        "pct"
    }

    fn begin(&mut self, seed: u64) {
        self.max_steps = self.next_max_steps();
        self.rng = fork(seed, "pct");
        self.draw_seed = self.rng.next_u64();
        self.draws = None;
        self.priorities.clear();
        self.seen = 0;
        self.change_points.clear();
        self.next_change = 0;
        // d − 1 distinct points in 1..=k (fewer if k < d − 1); point i lowers to d − i.
        let points = (self.depth as u64 - 1).min(self.max_steps);
        for i in 1..=points {
            let step = loop {
                let step = 1 + below(&mut self.rng, self.max_steps);
                if self.change_points.iter().all(|&(at, _)| at != step) {
                    break step;
                }
            };
            self.change_points.push((step, u128::from(self.depth as u64 - i)));
        }
        self.change_points.sort_unstable();
    }

    fn next_task(&mut self, choice: &Choice<'_>) -> Result<usize, Divergence> {
        let mut index = self.highest(choice);
        if let Some(&(at, lowered)) = self.change_points.get(self.next_change)
            && at <= choice.step + 1
        {
            self.next_change += 1;
            let task = choice.runnable[index].0 as usize;
            self.priorities[task] = lowered;
            index = self.highest(choice);
        }
        Ok(index)
    }

    fn next_draw(&mut self, _step: u64, bound: u64) -> Result<u64, Divergence> {
        let seed = self.draw_seed;
        let draws = self.draws.get_or_insert_with(|| ChaCha8Rng::seed_from_u64(seed));
        Ok(below(draws, bound))
    }

    fn end(&mut self, steps: u64) -> Result<(), Divergence> {
        self.longest = self.longest.max(steps);
        Ok(())
    }
}
