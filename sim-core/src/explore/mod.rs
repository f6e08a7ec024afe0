//! Search: many independent runs over a seed range or a time budget, on every core, sharded
//! across machines, with a summary that always says how much was searched.
//!
//! ```
//! use sim_core::{Explorer, GoMap, StrategySpec, spawn};
//!
//! let racy = || {
//!     let map = GoMap::new("processed");
//!     for worker in 0..2 {
//!         let map = map.clone();
//!         spawn(format!("worker-{worker}"), async move {
//!             map.insert(worker, "synced").await;
//!         });
//!     }
//! };
//! let summary = Explorer::new()
//!     .seeds(0..200)
//!     .strategy(StrategySpec::PORTFOLIO)
//!     .jobs(2)
//!     .run(|sim, seed| sim.run(seed, racy));
//! assert_eq!(summary.schedules, 200);
//! assert!(!summary.failures.is_empty());
//! println!("{summary}"); // searched 200 schedules, … schedules/s, … steps/s
//! ```
//!
//! # Parallelism and determinism
//!
//! Each worker thread owns its own [`Simulation`] (the simulator itself stays single-threaded
//! and thread-local); the threads share only a counter of seed chunks and a ledger. Every run is
//! a pure function of its seed: the strategies are built so that a run does not depend on the
//! runs before it on the same thread (PCT's `k` is pinned, see [`Explorer::pct_max_steps`]).
//! The ledger folds chunks in seed order, so the summary of a seed range (every count, every
//! failure, its lowest seed) does not depend on the number of threads or on their timing: with
//! [`Explorer::stop_at_first`] the search covers exactly the seeds up to the lowest failing one.
//! Only a time budget makes the amount searched depend on the machine.
//!
//! # Sharding
//!
//! [`Explorer::shard`]`(i, n)` keeps the seeds `s` with `s % n == i`, as `SIM_SHARD` does for
//! [`crate::Check`]. [`ExploreSummary::merge`] combines the shards' summaries; the merge of all
//! `n` shards of a range equals the summary of the whole range (except the wall time).
//!
//! The explorer stands outside every simulation: it reads the wall clock (for the budget and the
//! throughput) and starts worker threads; no simulation does either.

mod ledger;
mod plan;
mod summary;

use std::cell::Cell;
use std::fmt;
use std::ops::{ControlFlow, Range};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::failure::Outcome;
use crate::strategy::{Choice, Divergence, Portfolio, Strategy, StrategySpec};
use crate::{Config, Simulation, systematic};

pub use ledger::FoundFailure;
pub use summary::{Calibration, Ended, ExploreSummary, Systematic, Verdict};

use ledger::{ChunkResult, Ledger, Tally, by_seed};
pub(crate) use plan::past;
use plan::{CHUNK, HaltOnPanic, Plan, Shared};

/// A search over many seeds. Build it, then [`Explorer::run`] it.
#[derive(Clone)]
pub struct Explorer {
    progress: Option<ProgressHook>,
    config: Config,
    seeds: Option<Range<u64>>,
    time_budget: Option<Duration>,
    strategy: StrategySpec,
    pct_max_steps: Option<u64>,
    max_schedules: u64,
    /// Worker threads; `None`: every core, asked only when the search runs (the query reads
    /// cgroup files on Linux, tens of microseconds).
    jobs: Option<usize>,
    shard: (u64, u64),
    stop_at_first: bool,
}

/// A progress callback, shared by the worker threads.
type ProgressHook = (Arc<dyn Fn(&Progress) + Send + Sync>, Duration);

/// How far a running search is, for progress displays ([`Explorer::progress`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Schedules run so far (every thread's, folded or not).
    pub schedules: u64,
    /// Runs that failed so far.
    pub failures: u64,
    /// Wall time since the search started.
    pub elapsed: Duration,
}

impl Progress {
    /// Schedules per wall-clock second so far.
    pub fn schedules_per_second(&self) -> f64 {
        self.schedules as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Debug for Explorer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Explorer")
            .field("config", &self.config)
            .field("seeds", &self.seeds)
            .field("time_budget", &self.time_budget)
            .field("strategy", &self.strategy)
            .field("jobs", &self.jobs)
            .field("shard", &self.shard)
            .field("stop_at_first", &self.stop_at_first)
            .field("progress", &self.progress.as_ref().map(|(_, every)| every))
            .finish_non_exhaustive()
    }
}

impl Default for Explorer {
    fn default() -> Self {
        Explorer::new()
    }
}

impl Explorer {
    /// Seeds searched when neither [`Explorer::seeds`] nor [`Explorer::time_budget`] is set.
    pub const DEFAULT_SEEDS: u64 = 1_000;

    /// Seeds a search learns PCT's `k` from, when its strategy has PCT without a pinned `k`
    /// (`portfolio`, `pct:D`): the first of the range.
    pub const CALIBRATION_RUNS: u64 = 4;

    /// Schedules a systematic search runs at most unless [`Explorer::max_schedules`] says
    /// otherwise.
    pub const DEFAULT_MAX_SCHEDULES: u64 = 1_000_000;

    /// A search of seeds `0..1000` with the portfolio, on every core, collecting every distinct
    /// failure.
    pub fn new() -> Self {
        Explorer {
            progress: None,
            config: Config::default(),
            seeds: None,
            time_budget: None,
            strategy: StrategySpec::PORTFOLIO,
            pct_max_steps: None,
            max_schedules: Explorer::DEFAULT_MAX_SCHEDULES,
            jobs: None,
            shard: (0, 1),
            stop_at_first: false,
        }
    }

    /// The simulator's limits and costs for every run.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The seeds to search. Without it, a time budget searches from seed 0 on.
    pub fn seeds(mut self, seeds: Range<u64>) -> Self {
        self.seeds = Some(seeds);
        self
    }

    /// Stops starting runs once `budget` of wall time has passed (checked between runs, so the
    /// search overruns by at most one run per thread). With [`Explorer::seeds`] as well, the
    /// search ends at whichever comes first.
    pub fn time_budget(mut self, budget: Duration) -> Self {
        self.time_budget = Some(budget);
        self
    }

    /// The strategy (default: the portfolio). A seed-driven strategy runs each seed once; a
    /// systematic one (`dfs…`) runs every schedule of seed 0 within its bound, on one thread,
    /// until the search completes, fails (with [`Explorer::stop_at_first`]), reaches
    /// [`Explorer::max_schedules`] or spends the time budget. Runs use the configuration the
    /// strategy needs ([`StrategySpec::config`] of [`Explorer::config`]).
    pub fn strategy(mut self, spec: StrategySpec) -> Self {
        self.strategy = spec;
        self
    }

    /// The strategy searched with.
    pub fn strategy_spec(&self) -> StrategySpec {
        self.strategy
    }

    /// For a systematic strategy: stop after this many schedules (default
    /// [`Explorer::DEFAULT_MAX_SCHEDULES`]); a search stopped there is reported as incomplete.
    ///
    /// # Panics
    /// If `max_schedules` is 0.
    pub fn max_schedules(mut self, max_schedules: u64) -> Self {
        assert!(max_schedules > 0, "kdst: a bounded search needs max_schedules ≥ 1");
        self.max_schedules = max_schedules;
        self
    }

    /// Pins the `k` (steps per run) of the `pct` and `pct:D` strategies. Without it, each seed
    /// draws its `k` as the portfolio's PCT members do ([`Portfolio::max_steps_for`]: from 16 to
    /// 16,384, log-uniformly), which suits programs of any length. Either way a run is a pure
    /// function of its seed, which [`crate::Pct::new`]'s `k`, learnt from the runs before, is not.
    ///
    /// # Panics
    /// If `max_steps` is 0.
    pub fn pct_max_steps(mut self, max_steps: u64) -> Self {
        assert!(max_steps > 0, "kdst: PCT needs max_steps ≥ 1");
        self.pct_max_steps = Some(max_steps);
        self
    }

    /// Worker threads (default: the available parallelism). With 1, runs on the calling thread.
    ///
    /// # Panics
    /// If `jobs` is 0.
    pub fn jobs(mut self, jobs: usize) -> Self {
        assert!(jobs >= 1, "kdst: the explorer needs at least one job");
        self.jobs = Some(jobs);
        self
    }

    /// Searches only the seeds `s` with `s % count == index`: shard `index` of `count`.
    ///
    /// # Panics
    /// If `index >= count`.
    pub fn shard(mut self, index: u64, count: u64) -> Self {
        assert!(index < count, "kdst: shard {index}/{count} does not exist (need 0 ≤ i < n)");
        self.shard = (index, count);
        self
    }

    /// Stops at the first failure (the lowest failing seed, whatever the threads' timing)
    /// instead of collecting every distinct failure. Limits never stop the search.
    pub fn stop_at_first(mut self, stop: bool) -> Self {
        self.stop_at_first = stop;
        self
    }

    /// Calls `report` about every `every` of wall time while the search runs (from whichever
    /// worker thread is due), with the schedules and failures so far: for a progress line.
    /// Reporting does not change what is searched or found.
    pub fn progress(
        mut self,
        every: Duration,
        report: impl Fn(&Progress) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some((Arc::new(report), every));
        self
    }

    /// Runs the search. `run_seed(sim, seed)` must run `seed` once on `sim` and return its
    /// outcome: `|sim, seed| sim.run(seed, setup)`, or `scenarios::run(sim, …, seed)` with
    /// parameters drawn from the seed. `sim` comes with the search's strategy and config; each
    /// worker thread has its own.
    ///
    /// # Panics
    /// If `run_seed` panics (after the other threads stopped), or runs another seed than the
    /// one it is given.
    pub fn run<F>(&self, run_seed: F) -> ExploreSummary
    where
        F: Fn(&mut Simulation, u64) -> Outcome + Sync,
    {
        #[allow(clippy::disallowed_methods)] // the explorer's own wall clock, not a simulation's
        let started = Instant::now();
        if self.strategy.is_systematic() {
            return self.run_systematic(&run_seed, started);
        }
        if self.strategy.calibrates() && self.pct_max_steps.is_none() {
            return self.run_calibrated(&run_seed, started);
        }
        self.run_seeds(&run_seed, started, None)
    }

    /// Seeds learning PCT's `k` ([`Explorer::CALIBRATION_RUNS`]): the first seeds of the range
    /// run with the strategy as given (`k` drawn per seed), on this thread, in order; the
    /// longest run's steps become `k` for the rest, which run with `spec@k`. Every shard runs
    /// the same first seeds and so learns the same `k`; it keeps the runs of its own seeds.
    fn run_calibrated<F>(&self, run_seed: &F, started: Instant) -> ExploreSummary
    where
        F: Fn(&mut Simulation, u64) -> Outcome + Sync,
    {
        let plan = Plan::new(self, started);
        let start = plan.seeds.start;
        let probes = start..start.saturating_add(Self::CALIBRATION_RUNS).min(plan.seeds.end);
        if probes.is_empty() {
            return self.run_seeds(run_seed, started, None);
        }
        let (mut sim, member) = self.simulation();
        let mut prefix =
            ChunkResult { index: 0, stop: 0, end: CHUNK.min(plan.total), tally: Tally::new() };
        let mut longest = 0u64;
        for seed in probes.clone() {
            if plan.expired() {
                // The budget ended before `k` was learned: the search is what ran.
                let mut ledger = Ledger::new(self.stop_at_first);
                ledger.commit(prefix);
                return self.summary(&plan, ledger, started.elapsed());
            }
            let outcome = run_seed(&mut sim, seed);
            assert_eq!(sim.trace().seed(), seed, "kdst: the run closure must run its seed");
            longest = longest.max(sim.trace().len() as u64);
            let Some(position) = plan.position_of(seed) else { continue };
            let failed = outcome.is_failure();
            prefix.tally.record(seed, plan.member_name(&member), &sim, outcome);
            prefix.stop = position + 1;
            if failed && self.stop_at_first {
                // Found before `k` was learned: the search ends here, as it ran.
                let mut ledger = Ledger::new(true);
                ledger.commit(prefix);
                return self.summary(&plan, ledger, started.elapsed());
            }
        }
        let calibration = Calibration { seeds: probes, k: longest.max(1) };
        let calibrated =
            Explorer { strategy: self.strategy.with_pct_k(calibration.k), ..self.clone() };
        let mut summary =
            calibrated.run_seeds(run_seed, started, Some((prefix.tally, &calibration)));
        let pinned = calibrated.strategy.bound_text(None);
        summary.bound = format!(
            "{}, learned from seeds {}..{} (the longest of their runs, which drew k per seed)",
            pinned.trim_end_matches(" (pinned)"),
            calibration.seeds.start,
            calibration.seeds.end
        );
        summary.calibration = Some(calibration);
        summary
    }

    /// The search over seeds, after `prefix`'s runs (the seeds `k` was learned from) if any.
    fn run_seeds<F>(
        &self,
        run_seed: &F,
        started: Instant,
        prefix: Option<(Tally, &Calibration)>,
    ) -> ExploreSummary
    where
        F: Fn(&mut Simulation, u64) -> Outcome + Sync,
    {
        let mut plan = Plan::new(self, started);
        if let Some((_, calibration)) = &prefix {
            plan.skip = calibration.seeds.clone();
        }
        let shared = Shared::new(self.stop_at_first, started);
        let threads = plan.threads(self.jobs);
        if threads == 1 {
            self.work(&plan, &shared, run_seed);
        } else {
            std::thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(|| self.work(&plan, &shared, run_seed));
                }
            });
        }
        let mut ledger = shared.ledger.into_inner().expect("kdst internal: a worker panicked");
        if let Some((tally, _)) = prefix {
            ledger.total.absorb(tally);
        }
        self.summary(&plan, ledger, started.elapsed())
    }

    /// One worker: takes chunks of seeds until none is left, the budget is spent or the search
    /// stopped.
    fn work<F>(&self, plan: &Plan, shared: &Shared, run_seed: &F)
    where
        F: Fn(&mut Simulation, u64) -> Outcome + Sync,
    {
        let _halt = HaltOnPanic(&shared.halt);
        let (mut sim, member) = self.simulation();
        while !shared.halt.load(Ordering::Relaxed) {
            let chunk = shared.next_chunk.fetch_add(1, Ordering::Relaxed);
            let first = chunk.saturating_mul(CHUNK);
            if first >= plan.total || chunk > shared.first_failing.load(Ordering::Relaxed) {
                break;
            }
            let end = first.saturating_add(CHUNK).min(plan.total);
            let mut result = ChunkResult { index: chunk, stop: first, end, tally: Tally::new() };
            let mut expired = false;
            for position in first..end {
                if chunk > shared.first_failing.load(Ordering::Relaxed) {
                    return; // a lower chunk failed: this one is discarded anyway
                }
                let seed = plan.seed_at(position);
                if plan.skip.contains(&seed) {
                    result.stop = position + 1;
                    continue;
                }
                if plan.expired() {
                    expired = true;
                    break;
                }
                let outcome = run_seed(&mut sim, seed);
                assert_eq!(
                    sim.trace().seed(),
                    seed,
                    "kdst: the explorer's run closure must run the seed it is given"
                );
                let failed = outcome.is_failure();
                shared.ran(failed, self.progress.as_ref());
                result.tally.record(seed, plan.member_name(&member), &sim, outcome);
                result.stop = position + 1;
                if failed && self.stop_at_first {
                    shared.first_failing.fetch_min(chunk, Ordering::Relaxed);
                    break;
                }
            }
            shared.commit(result);
            if expired {
                break;
            }
        }
    }

    /// A worker's simulation with the search's strategy, and how to read the member of a run.
    fn simulation(&self) -> (Simulation, Member) {
        let mut sim = Simulation::new(self.strategy.config(self.config.clone()));
        let member = match self.strategy {
            StrategySpec::Random | StrategySpec::Pct { .. } | StrategySpec::Dfs { .. } => {
                sim.set_strategy(self.strategy.build_pinned(self.pct_max_steps));
                Member::Fixed
            }
            StrategySpec::Portfolio { .. } => {
                let current = Rc::new(Cell::new("random"));
                let pinned = self.strategy.pct_k().or(self.pct_max_steps);
                let portfolio = Portfolio::new().with_pinned_k(pinned);
                let portfolio = Tracked { portfolio, current: current.clone() };
                sim.set_strategy(Box::new(portfolio));
                Member::Portfolio(current)
            }
        };
        (sim, member)
    }

    fn summary(&self, plan: &Plan, ledger: Ledger, wall: Duration) -> ExploreSummary {
        let searched = ledger.searched.unwrap_or(ledger.next.saturating_mul(CHUNK)).min(plan.total);
        let ended = if ledger.finished {
            Ended::FirstFailure
        } else if searched < plan.total {
            Ended::TimeBudget
        } else {
            Ended::Exhausted
        };
        let bound = self.strategy.bound_text(self.pct_max_steps);
        let Tally { schedules, steps, virtual_time_ns, strategies, failures, limits } =
            ledger.total;
        ExploreSummary {
            seeds: plan.seeds.clone(),
            shards: vec![self.shard],
            strategy: plan.strategy_name.clone(),
            bound,
            time_budget: self.time_budget,
            schedules,
            steps,
            virtual_time_ns,
            wall,
            strategies,
            failures: by_seed(failures),
            limits: by_seed(limits),
            searched_below: plan.seed_bound(searched),
            ended,
            systematic: None,
            merged: false,
            calibration: None,
        }
    }

    /// The wall-clock instant the time budget of a search started at `started` ends, if any.
    fn deadline(&self, started: Instant) -> Option<Instant> {
        self.time_budget.and_then(|budget| started.checked_add(budget))
    }

    /// A systematic search: every schedule of seed 0 within the strategy's bound, on this
    /// thread, until it completes, fails (with stop-at-first), reaches the schedule limit or
    /// spends the time budget.
    fn run_systematic<F>(&self, run_seed: &F, started: Instant) -> ExploreSummary
    where
        F: Fn(&mut Simulation, u64) -> Outcome + Sync,
    {
        let dfs = self.strategy.dfs(self.max_schedules).expect("a systematic strategy");
        let mut sim = Simulation::new(self.strategy.config(self.config.clone()));
        let shared = Shared::new(self.stop_at_first, started);
        let name = self.strategy.to_string();
        let mut tally = Tally::new();
        let run = |sim: &mut Simulation| {
            let outcome = run_seed(sim, 0);
            assert_eq!(
                sim.trace().seed(),
                0,
                "kdst: a systematic search runs seed 0; the run closure ran another"
            );
            outcome
        };
        let keep = |sim: &Simulation, outcome: Outcome| {
            let failed = outcome.is_failure();
            let stop =
                outcome != Outcome::Completed && (self.stop_at_first || dfs.stopped().is_some());
            shared.ran(failed, self.progress.as_ref());
            tally.record(0, &name, sim, outcome);
            if stop { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        };
        let ended = systematic::search(&mut sim, &dfs, self.deadline(started), run, keep);
        let report = dfs.report();
        let Tally { schedules, steps, virtual_time_ns, strategies, failures, limits } = tally;
        ExploreSummary {
            seeds: 0..1,
            shards: vec![(0, 1)],
            strategy: name,
            bound: self.strategy.bound_text(None),
            time_budget: self.time_budget,
            schedules,
            steps,
            virtual_time_ns,
            wall: started.elapsed(),
            strategies,
            failures: by_seed(failures),
            limits: by_seed(limits),
            searched_below: u64::from(ended == Ended::Complete),
            ended,
            systematic: Some(Systematic {
                complete: report.complete,
                limit_reached: report.limit_reached,
                redundant: report.redundant,
                summary: report.summary,
            }),
            merged: false,
            calibration: None,
        }
    }
}

/// How a worker learns which strategy ran a seed.
enum Member {
    /// One strategy for every seed: the plan's name.
    Fixed,
    /// The portfolio's member, set by [`Tracked::begin`].
    Portfolio(Rc<Cell<&'static str>>),
}

/// The portfolio, reporting its member for each run to the worker that owns it.
struct Tracked {
    portfolio: Portfolio,
    current: Rc<Cell<&'static str>>,
}

impl Strategy for Tracked {
    fn name(&self) -> &'static str {
        self.portfolio.name()
    }
    fn begin(&mut self, seed: u64) {
        self.portfolio.begin(seed);
        self.current.set(self.portfolio.current());
    }
    fn next_task(&mut self, choice: &Choice<'_>) -> Result<usize, Divergence> {
        self.portfolio.next_task(choice)
    }
    fn next_draw(&mut self, step: u64, bound: u64) -> Result<u64, Divergence> {
        self.portfolio.next_draw(step, bound)
    }
    fn end(&mut self, steps: u64) -> Result<(), Divergence> {
        self.portfolio.end(steps)
    }
}
