//! The work plan of a search: which seeds of the range the shard holds, in which chunks the
//! worker threads take them, how many threads, until when; and what the workers share while
//! they run it.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use super::ledger::{ChunkResult, Ledger};
use super::{Explorer, Member, Progress, ProgressHook};

/// Seeds a worker takes at a time. Small enough that a stop or a budget is noticed quickly,
/// large enough that the shared counter and the ledger's lock cost nothing next to the runs.
pub(super) const CHUNK: u64 = 16;

/// The seeds of a search as positions `0..total` in the shard's sequence.
pub(super) struct Plan {
    pub(super) seeds: Range<u64>,
    /// The first seed of the shard in `seeds`, and the shard count (the stride).
    first: u64,
    stride: u64,
    pub(super) total: u64,
    deadline: Option<Instant>,
    pub(super) strategy_name: String,
    /// Seeds already run (the runs a search learned PCT's `k` from): the workers skip them.
    pub(super) skip: Range<u64>,
}

impl Plan {
    pub(super) fn new(explorer: &Explorer, started: Instant) -> Plan {
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
        Plan { seeds, first, stride, total, deadline, strategy_name, skip: 0..0 }
    }

    fn chunks(&self) -> u64 {
        self.total.div_ceil(CHUNK)
    }

    /// The worker threads to start: `jobs` (default: the available parallelism), but no more
    /// than there are chunks, and at least one.
    pub(super) fn threads(&self, jobs: Option<usize>) -> usize {
        let jobs =
            jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        jobs.min(usize::try_from(self.chunks()).unwrap_or(usize::MAX)).max(1)
    }

    pub(super) fn seed_at(&self, position: u64) -> u64 {
        self.first + position * self.stride
    }

    /// The position of `seed` in the shard's sequence, if the shard holds it.
    pub(super) fn position_of(&self, seed: u64) -> Option<u64> {
        let held = seed >= self.first && (seed - self.first).is_multiple_of(self.stride);
        let position = if held { (seed - self.first) / self.stride } else { return None };
        (position < self.total).then_some(position)
    }

    /// The seed at `position`, or the end of the range for the position past the last seed:
    /// every seed of the shard below it is at a position below `position`.
    pub(super) fn seed_bound(&self, position: u64) -> u64 {
        if position >= self.total { self.seeds.end } else { self.seed_at(position) }
    }

    pub(super) fn expired(&self) -> bool {
        past(self.deadline)
    }

    pub(super) fn member_name<'a>(&'a self, member: &Member) -> &'a str {
        match member {
            Member::Fixed => &self.strategy_name,
            Member::Portfolio(current) => current.get(),
        }
    }
}

/// What the workers share.
pub(super) struct Shared {
    pub(super) next_chunk: AtomicU64,
    /// The lowest chunk known to hold a failure (with stop-at-first); `u64::MAX` before.
    pub(super) first_failing: AtomicU64,
    /// Set when the search is over early (stop-at-first, or a worker panicked).
    pub(super) halt: AtomicBool,
    pub(super) ledger: Mutex<Ledger>,
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
    pub(super) fn ran(&self, failed: bool, progress: Option<&ProgressHook>) {
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

    pub(super) fn new(stop_at_first: bool, started: Instant) -> Shared {
        Shared {
            ran: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            started,
            reported_ms: AtomicU64::new(0),
            next_chunk: AtomicU64::new(0),
            first_failing: AtomicU64::new(u64::MAX),
            halt: AtomicBool::new(false),
            ledger: Mutex::new(Ledger::new(stop_at_first)),
        }
    }

    pub(super) fn commit(&self, result: ChunkResult) {
        let mut ledger = self.ledger.lock().expect("kdst internal: a worker panicked");
        if ledger.commit(result) {
            self.halt.store(true, Ordering::Relaxed);
        }
    }
}

/// Sets the halt flag if the worker's thread unwinds, so the others stop too.
pub(super) struct HaltOnPanic<'a>(pub(super) &'a AtomicBool);

impl Drop for HaltOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Whether the wall-clock `deadline` (a time budget's end) has passed; never without one.
#[allow(clippy::disallowed_methods)] // the budget is wall time, outside any simulation
pub(crate) fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|deadline| Instant::now() >= deadline)
}
