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
//!     .strategy(StrategySpec::Portfolio)
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

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::rc::Rc;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::failure::{Failure, FailureKind, Outcome};
use crate::strategy::{Choice, Divergence, Portfolio, Strategy, StrategySpec};
use crate::{Config, Simulation};

/// Seeds a worker takes at a time. Small enough that a stop or a budget is noticed quickly,
/// large enough that the shared counter and the ledger's lock cost nothing next to the runs.
const CHUNK: u64 = 16;

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
            strategy: StrategySpec::Portfolio,
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
        let plan = Plan::new(self, started);
        let shared = Shared::new(self.stop_at_first, started);
        let jobs = self
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        let threads = jobs.min(usize::try_from(plan.chunks()).unwrap_or(usize::MAX)).max(1);
        if threads == 1 {
            self.work(&plan, &shared, &run_seed);
        } else {
            std::thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(|| self.work(&plan, &shared, &run_seed));
                }
            });
        }
        let ledger = shared.ledger.into_inner().expect("kdst internal: a worker panicked");
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
                if plan.expired() {
                    expired = true;
                    break;
                }
                let seed = plan.seed_at(position);
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
            StrategySpec::Portfolio => {
                let current = Rc::new(Cell::new("random"));
                let portfolio = Tracked { portfolio: Portfolio::new(), current: current.clone() };
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
        sim.set_strategy(Box::new(dfs.clone()));
        let shared = Shared::new(self.stop_at_first, started);
        let deadline = self.deadline(started);
        let name = self.strategy.to_string();
        let mut tally = Tally::new();
        let mut ended = Ended::Complete;
        while !dfs.is_complete() {
            if dfs.limit_reached() {
                ended = Ended::ScheduleLimit;
                break;
            }
            if past(deadline) {
                ended = Ended::TimeBudget;
                break;
            }
            let outcome = run_seed(&mut sim, 0);
            assert_eq!(
                sim.trace().seed(),
                0,
                "kdst: a systematic search runs seed 0; the run closure ran another"
            );
            dfs.record_outcome(&outcome);
            let failed = outcome.is_failure();
            let stop =
                outcome != Outcome::Completed && (self.stop_at_first || dfs.stopped().is_some());
            shared.ran(failed, self.progress.as_ref());
            tally.record(0, &name, &sim, outcome);
            if stop {
                ended = Ended::FirstFailure;
                break;
            }
        }
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

/// The seeds of a search as positions `0..total` in the shard's sequence.
struct Plan {
    seeds: Range<u64>,
    /// The first seed of the shard in `seeds`, and the shard count (the stride).
    first: u64,
    stride: u64,
    total: u64,
    deadline: Option<Instant>,
    strategy_name: String,
}

impl Plan {
    fn new(explorer: &Explorer, started: Instant) -> Plan {
        let seeds = match (&explorer.seeds, explorer.time_budget) {
            (Some(seeds), _) => seeds.clone(),
            (None, Some(_)) => 0..u64::MAX,
            (None, None) => 0..Explorer::DEFAULT_SEEDS,
        };
        let (index, stride) = explorer.shard;
        let start_index = seeds.start % stride;
        let offset =
            if index >= start_index { index - start_index } else { stride - (start_index - index) };
        let first = seeds.start.saturating_add(offset);
        let total = if first >= seeds.end { 0 } else { (seeds.end - 1 - first) / stride + 1 };
        let strategy_name = explorer.strategy.to_string();
        let deadline = explorer.deadline(started);
        Plan { seeds, first, stride, total, deadline, strategy_name }
    }

    fn chunks(&self) -> u64 {
        self.total.div_ceil(CHUNK)
    }

    fn seed_at(&self, position: u64) -> u64 {
        self.first + position * self.stride
    }

    /// The seed at `position`, or the end of the range for the position past the last seed:
    /// every seed of the shard below it is at a position below `position`.
    fn seed_bound(&self, position: u64) -> u64 {
        if position >= self.total { self.seeds.end } else { self.seed_at(position) }
    }

    fn expired(&self) -> bool {
        past(self.deadline)
    }

    fn member_name<'a>(&'a self, member: &Member) -> &'a str {
        match member {
            Member::Fixed => &self.strategy_name,
            Member::Portfolio(current) => current.get(),
        }
    }
}

/// What the workers share.
struct Shared {
    next_chunk: AtomicU64,
    /// The lowest chunk known to hold a failure (with stop-at-first); `u64::MAX` before.
    first_failing: AtomicU64,
    /// Set when the search is over early (stop-at-first, or a worker panicked).
    halt: AtomicBool,
    ledger: Mutex<Ledger>,
    /// Runs and failed runs so far, for progress reports.
    ran: AtomicU64,
    failed: AtomicU64,
    started: Instant,
    /// When progress was last reported, in milliseconds since `started`.
    reported_ms: AtomicU64,
}

impl Shared {
    /// Counts one run and reports progress if a report is due.
    /// Without a progress hook it does nothing: the counters are shared by every worker, so
    /// they are touched only when someone reads them.
    fn ran(&self, failed: bool, progress: Option<&ProgressHook>) {
        let Some((report, every)) = progress else { return };
        let schedules = self.ran.fetch_add(1, Ordering::Relaxed) + 1;
        let failures =
            self.failed.fetch_add(u64::from(failed), Ordering::Relaxed) + u64::from(failed);
        let elapsed = self.started.elapsed();
        let now_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let last = self.reported_ms.load(Ordering::Relaxed);
        let due = now_ms.saturating_sub(last) >= u64::try_from(every.as_millis()).unwrap_or(0);
        if due
            && self
                .reported_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            report(&Progress { schedules, failures, elapsed });
        }
    }

    fn new(stop_at_first: bool, started: Instant) -> Shared {
        Shared {
            ran: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            started,
            reported_ms: AtomicU64::new(0),
            next_chunk: AtomicU64::new(0),
            first_failing: AtomicU64::new(u64::MAX),
            halt: AtomicBool::new(false),
            ledger: Mutex::new(Ledger {
                stop_at_first,
                next: 0,
                pending: BTreeMap::new(),
                total: Tally::new(),
                searched: None,
                finished: false,
            }),
        }
    }

    fn commit(&self, result: ChunkResult) {
        let mut ledger = self.ledger.lock().expect("kdst internal: a worker panicked");
        if ledger.commit(result) {
            self.halt.store(true, Ordering::Relaxed);
        }
    }
}

/// Sets the halt flag if the worker's thread unwinds, so the others stop too.
struct HaltOnPanic<'a>(&'a AtomicBool);

impl Drop for HaltOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// The runs of one chunk: positions `index · CHUNK .. stop` of a chunk that ends at `end`.
struct ChunkResult {
    index: u64,
    stop: u64,
    end: u64,
    tally: Tally,
}

/// Folds chunks in order, whatever order they finish in.
struct Ledger {
    stop_at_first: bool,
    /// The next chunk to fold.
    next: u64,
    pending: BTreeMap<u64, ChunkResult>,
    total: Tally,
    /// The first position not run, once a chunk stopped early.
    searched: Option<u64>,
    /// Whether the lowest failing chunk has been folded (stop-at-first): later chunks are
    /// discarded, so the search covers exactly the seeds up to the lowest failing one.
    finished: bool,
}

impl Ledger {
    /// Adds a chunk; returns whether the search is now over.
    fn commit(&mut self, result: ChunkResult) -> bool {
        self.pending.insert(result.index, result);
        while let Some(result) = self.pending.remove(&self.next) {
            self.next += 1;
            if self.finished {
                continue;
            }
            self.finished = self.stop_at_first && !result.tally.failures.is_empty();
            if (result.stop < result.end || self.finished) && self.searched.is_none() {
                self.searched = Some(result.stop);
            }
            self.total.absorb(result.tally);
        }
        self.finished
    }
}

/// Counts and distinct failures of some runs. Folding tallies is commutative: the lowest seed
/// of each distinct failure wins and counts add up.
#[derive(Debug, Default)]
struct Tally {
    schedules: u64,
    steps: u64,
    virtual_time_ns: u128,
    strategies: BTreeMap<String, u64>,
    failures: BTreeMap<Place, FoundFailure>,
    limits: BTreeMap<Place, FoundFailure>,
}

/// Where a failure happened, for deduplication ([`Failure::place`]).
type Place = (FailureKind, Option<String>, String);

/// Whether the wall-clock `deadline` (a time budget's end) has passed; never without one.
#[allow(clippy::disallowed_methods)] // the budget is wall time, outside any simulation
fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|deadline| Instant::now() >= deadline)
}

impl Tally {
    fn new() -> Tally {
        Tally::default()
    }

    fn record(&mut self, seed: u64, strategy: &str, sim: &Simulation, outcome: Outcome) {
        self.schedules += 1;
        self.steps += sim.trace().len() as u64;
        self.virtual_time_ns += sim.trace().end_time().elapsed_since_start().as_nanos();
        match self.strategies.get_mut(strategy) {
            Some(count) => *count += 1,
            None => {
                self.strategies.insert(strategy.to_string(), 1);
            }
        }
        let (map, failure) = match outcome {
            Outcome::Completed => return,
            Outcome::Failed(failure) => (&mut self.failures, failure),
            Outcome::LimitReached(failure) => (&mut self.limits, failure),
        };
        let found = FoundFailure { seed, strategy: strategy.to_string(), failure, count: 1 };
        add_found(map, found);
    }

    fn absorb(&mut self, other: Tally) {
        self.schedules += other.schedules;
        self.steps += other.steps;
        self.virtual_time_ns += other.virtual_time_ns;
        for (strategy, count) in other.strategies {
            *self.strategies.entry(strategy).or_default() += count;
        }
        for found in other.failures.into_values() {
            add_found(&mut self.failures, found);
        }
        for found in other.limits.into_values() {
            add_found(&mut self.limits, found);
        }
    }
}

fn add_found(map: &mut BTreeMap<Place, FoundFailure>, found: FoundFailure) {
    let place = found.place();
    match map.get_mut(&place) {
        Some(known) => {
            let count = known.count + found.count;
            if found.seed < known.seed {
                *known = found;
            }
            known.count = count;
        }
        None => {
            map.insert(place, found);
        }
    }
}

fn by_seed(map: BTreeMap<Place, FoundFailure>) -> Vec<FoundFailure> {
    let mut found: Vec<FoundFailure> = map.into_values().collect();
    found.sort_by_key(|found| (found.seed, found.place()));
    found
}

/// One distinct failure (or limit) of a search: the lowest seed that hit it and how many did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FoundFailure {
    /// The lowest seed that failed this way: rerun it with the search's strategy.
    pub seed: u64,
    /// The strategy that ran that seed (for the portfolio, its member: `random`, `pct:2`, …).
    pub strategy: String,
    /// The failure of that seed.
    pub failure: Failure,
    /// How many seeds failed this way (same kind, same task name, same message).
    pub count: u64,
}

impl FoundFailure {
    fn place(&self) -> Place {
        self.failure.place()
    }
}

impl fmt::Display for FoundFailure {
    /// `seed 3 (random), 57 seeds: failure (go-fatal) at step 9 …` — the failure's first line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.failure.to_string();
        let line = text.lines().next().unwrap_or_default();
        let seeds = if self.count == 1 { "seed" } else { "seeds" };
        write!(f, "seed {} ({}), {} {seeds}: {line}", self.seed, self.strategy, self.count)
    }
}

/// Why a search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Ended {
    /// Every seed of the range ran.
    Exhausted,
    /// Stopped at the first failure ([`Explorer::stop_at_first`]).
    FirstFailure,
    /// The time budget ran out before the range (or the bounded search) did.
    TimeBudget,
    /// A systematic search ran every schedule within its bound.
    Complete,
    /// A systematic search stopped at its schedule limit ([`Explorer::max_schedules`]) before
    /// it completed.
    ScheduleLimit,
}

/// What a systematic search (`dfs…`) covered, beside the counts of [`ExploreSummary`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Systematic {
    /// Whether every schedule within the bound ran. Says nothing about failures.
    pub complete: bool,
    /// Whether the schedule limit stopped the search.
    pub limit_reached: bool,
    /// With partial-order reduction, the runs that were redundant ([`crate::Dfs::redundant`]).
    pub redundant: u64,
    /// The search in one line ([`crate::Dfs::summary`]), e.g.
    /// `all 14 schedules within 2 preemptions explored, no failure`.
    pub summary: String,
}

/// What a search did and found. Its text ([`fmt::Display`]) always says how much was searched
/// and how fast, failure or not.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExploreSummary {
    /// The seed range asked for (`start..u64::MAX` for a time budget without a range).
    pub seeds: Range<u64>,
    /// The shards searched, as (index, count); `[(0, 1)]` for an unsharded search.
    pub shards: Vec<(u64, u64)>,
    /// The strategy asked for: `random`, `pct:D`, `portfolio`.
    pub strategy: String,
    /// What bounds the strategy's schedules, in words (PCT's depth and `k`).
    pub bound: String,
    /// The time budget, if any.
    pub time_budget: Option<Duration>,
    /// Runs (one schedule each).
    pub schedules: u64,
    /// Steps over all runs.
    pub steps: u64,
    /// Virtual time over all runs, in nanoseconds.
    pub virtual_time_ns: u128,
    /// Wall time (for merged shards, the longest: as if they ran side by side).
    pub wall: Duration,
    /// Runs per strategy (the portfolio's members by name).
    pub strategies: BTreeMap<String, u64>,
    /// The distinct failures (by kind, task name and message), by lowest seed.
    pub failures: Vec<FoundFailure>,
    /// The distinct limits reached, by lowest seed: not passes, nothing is known of those runs.
    pub limits: Vec<FoundFailure>,
    /// Every seed of the searched shards below this one (and in `seeds`) ran; `seeds.end` when
    /// the whole range did. Some seeds above it may have run too (a time budget stops each
    /// thread between runs).
    pub searched_below: u64,
    /// Why the search ended.
    pub ended: Ended,
    /// For a systematic search, what it covered; `None` for a search over seeds.
    #[serde(default)]
    pub systematic: Option<Systematic>,
}

impl ExploreSummary {
    /// Runs per second of wall time (0 when no time passed).
    pub fn schedules_per_second(&self) -> f64 {
        per_second(self.schedules, self.wall)
    }

    /// Steps per second of wall time (0 when no time passed).
    pub fn steps_per_second(&self) -> f64 {
        per_second(self.steps, self.wall)
    }

    /// How many runs reached a limit.
    pub fn limits_reached(&self) -> u64 {
        self.limits.iter().map(|found| found.count).sum()
    }

    /// How many runs failed.
    pub fn failed_runs(&self) -> u64 {
        self.failures.iter().map(|found| found.count).sum()
    }

    /// Combines the summaries of two searches, typically two shards of one seed range: counts
    /// add up, distinct failures are deduplicated (the lowest seed wins, counts add up), the
    /// wall time is the longer one, and every seed below the lower `searched_below` ran.
    pub fn merge(self, other: ExploreSummary) -> ExploreSummary {
        let mut total = Tally {
            schedules: self.schedules,
            steps: self.steps,
            virtual_time_ns: self.virtual_time_ns,
            strategies: self.strategies,
            failures: BTreeMap::new(),
            limits: BTreeMap::new(),
        };
        for found in self.failures {
            add_found(&mut total.failures, found);
        }
        for found in self.limits {
            add_found(&mut total.limits, found);
        }
        total.absorb(Tally {
            schedules: other.schedules,
            steps: other.steps,
            virtual_time_ns: other.virtual_time_ns,
            strategies: other.strategies,
            failures: other.failures.into_iter().map(|found| (found.place(), found)).collect(),
            limits: other.limits.into_iter().map(|found| (found.place(), found)).collect(),
        });
        let mut shards = self.shards;
        shards.extend(other.shards);
        shards.sort_unstable();
        shards.dedup();
        let join = |a: String, b: String| if a == b { a } else { format!("{a} + {b}") };
        let Tally { schedules, steps, virtual_time_ns, strategies, failures, limits } = total;
        ExploreSummary {
            seeds: self.seeds.start.min(other.seeds.start)..self.seeds.end.max(other.seeds.end),
            shards,
            strategy: join(self.strategy, other.strategy),
            bound: join(self.bound, other.bound),
            time_budget: self.time_budget.max(other.time_budget),
            schedules,
            steps,
            virtual_time_ns,
            wall: self.wall.max(other.wall),
            strategies,
            failures: by_seed(failures),
            limits: by_seed(limits),
            searched_below: self.searched_below.min(other.searched_below),
            ended: match (self.ended, other.ended) {
                (Ended::Exhausted, ended) | (ended, _) => ended,
            },
            systematic: self.systematic.or(other.systematic),
        }
    }

    /// What the search amounts to: a failure, a limit, a search that did not cover what it was
    /// asked to (a systematic search stopped by its schedule limit or the time budget), or a
    /// pass.
    pub fn verdict(&self) -> Verdict {
        if !self.failures.is_empty() {
            Verdict::Failure
        } else if !self.limits.is_empty() {
            Verdict::Limit
        } else if self.systematic.as_ref().is_some_and(|systematic| !systematic.complete) {
            Verdict::Incomplete
        } else {
            Verdict::Completed
        }
    }
}

/// The verdict of a search or a run, as the CLI's exit code and JSON `verdict` give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// Everything asked for ran, and nothing failed: the only pass.
    Completed,
    /// A run failed.
    Failure,
    /// A run reached a step or time limit: nothing is known of its remainder.
    Limit,
    /// The search stopped before it covered what it was asked to (a bounded search's schedule
    /// limit or time budget): not a pass.
    Incomplete,
}

impl Verdict {
    /// `completed`, `failure`, `limit` or `incomplete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Completed => "completed",
            Verdict::Failure => "failure",
            Verdict::Limit => "limit",
            Verdict::Incomplete => "incomplete",
        }
    }

    /// The verdict of one run's outcome.
    pub fn of(outcome: &Outcome) -> Verdict {
        match outcome {
            Outcome::Completed => Verdict::Completed,
            Outcome::Failed(_) => Verdict::Failure,
            Outcome::LimitReached(_) => Verdict::Limit,
        }
    }

    /// Whether this is a pass.
    pub fn passed(self) -> bool {
        self == Verdict::Completed
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verdict {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        [Verdict::Completed, Verdict::Failure, Verdict::Limit, Verdict::Incomplete]
            .into_iter()
            .find(|verdict| verdict.as_str() == text)
            .ok_or_else(|| format!("unknown verdict {text:?}"))
    }
}

fn per_second(count: u64, wall: Duration) -> f64 {
    let seconds = wall.as_secs_f64();
    if seconds > 0.0 { count as f64 / seconds } else { 0.0 }
}

impl fmt::Display for ExploreSummary {
    /// Three lines on what was searched, then the failures and limits:
    ///
    /// ```text
    /// searched 1000 schedules, 9863 steps, 0.019795311 s virtual time in 0.004 s wall: 250000 schedules/s, 2465750 steps/s
    /// seeds 0..1000, shard 0/1, strategy portfolio (pct:2 243, pct:3 262, random 495), bound: PCT k drawn per seed from 16..=16384
    /// every seed searched
    /// 2 distinct failures on 412 seeds:
    ///   seed 1 (random), 210 seeds: failure (go-fatal) at step 5, … in task 0 (worker-0): fatal error: concurrent map writes
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "searched {} schedules, {} steps, {}.{:09} s virtual time in {:.3} s wall: {:.0} \
             schedules/s, {:.0} steps/s",
            self.schedules,
            self.steps,
            self.virtual_time_ns / 1_000_000_000,
            self.virtual_time_ns % 1_000_000_000,
            self.wall.as_secs_f64(),
            self.schedules_per_second(),
            self.steps_per_second()
        )?;
        let seeds = if self.seeds.end == u64::MAX {
            format!("{}..", self.seeds.start)
        } else {
            format!("{}..{}", self.seeds.start, self.seeds.end)
        };
        if let Some(systematic) = &self.systematic {
            writeln!(f, "seed 0, strategy {}, bound: {}", self.strategy, self.bound)?;
            let end = match self.ended {
                Ended::FirstFailure => " (stopped at the first failure)",
                Ended::TimeBudget => " (time budget spent)",
                _ => "",
            };
            writeln!(f, "{}{end}", systematic.summary)?;
            return self.fmt_found(f);
        }
        let shards: Vec<String> = self.shards.iter().map(|(i, n)| format!("{i}/{n}")).collect();
        let label = if self.shards.len() == 1 { "shard" } else { "shards" };
        let strategies: Vec<String> =
            self.strategies.iter().map(|(name, count)| format!("{name} {count}")).collect();
        writeln!(
            f,
            "seeds {seeds}, {label} {}, strategy {} ({}), bound: {}",
            shards.join(" "),
            self.strategy,
            strategies.join(", "),
            self.bound
        )?;
        let covered = format!("every seed below {} searched", self.searched_below);
        match self.ended {
            Ended::Exhausted => writeln!(f, "every seed searched")?,
            Ended::FirstFailure => writeln!(f, "stopped at the first failure: {covered}")?,
            Ended::TimeBudget => {
                let budget = self.time_budget.unwrap_or_default().as_secs_f64();
                writeln!(f, "time budget {budget:.3} s spent: {covered}")?;
            }
            Ended::Complete | Ended::ScheduleLimit => writeln!(f, "{covered}")?,
        }
        self.fmt_found(f)
    }
}

impl ExploreSummary {
    /// The failures and limits found, as [`fmt::Display`] ends with them.
    fn fmt_found(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.failures.len() {
            0 => write!(f, "no failure found")?,
            n => {
                let s = if n == 1 { "" } else { "s" };
                write!(f, "{n} distinct failure{s} on {} seeds:", self.failed_runs())?;
                for found in &self.failures {
                    write!(f, "\n  {found}")?;
                }
            }
        }
        if !self.limits.is_empty() {
            write!(
                f,
                "\n{} runs reached a limit (not passes: nothing is known of their remainder):",
                self.limits_reached()
            )?;
            for found in &self.limits {
                write!(f, "\n  {found}")?;
            }
        }
        Ok(())
    }
}
