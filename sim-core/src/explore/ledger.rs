//! The ledger of a search: each run's counts and failures recorded in a [`Tally`], chunks
//! folded in seed order, and the distinct failures kept, deduplicated by [`Failure::place`]
//! (the lowest seed wins, counts add up).

use std::collections::BTreeMap;
use std::fmt;

use crate::Simulation;
use crate::failure::{Failure, FailureKind, Outcome};

/// The runs of one chunk: positions `index · CHUNK .. stop` of a chunk that ends at `end`.
pub(super) struct ChunkResult {
    pub(super) index: u64,
    pub(super) stop: u64,
    pub(super) end: u64,
    pub(super) tally: Tally,
}

/// Folds chunks in order, whatever order they finish in.
pub(super) struct Ledger {
    stop_at_first: bool,
    /// The next chunk to fold.
    pub(super) next: u64,
    pending: BTreeMap<u64, ChunkResult>,
    pub(super) total: Tally,
    /// The first position not run, once a chunk stopped early.
    pub(super) searched: Option<u64>,
    /// Whether the lowest failing chunk has been folded (stop-at-first): later chunks are
    /// discarded, so the search covers exactly the seeds up to the lowest failing one.
    pub(super) finished: bool,
}

impl Ledger {
    /// An empty ledger; with `stop_at_first`, it finishes at the first chunk with a failure.
    pub(super) fn new(stop_at_first: bool) -> Ledger {
        Ledger {
            stop_at_first,
            next: 0,
            pending: BTreeMap::new(),
            total: Tally::new(),
            searched: None,
            finished: false,
        }
    }

    /// Adds a chunk; returns whether the search is now over.
    pub(super) fn commit(&mut self, result: ChunkResult) -> bool {
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
pub(super) struct Tally {
    pub(super) schedules: u64,
    pub(super) steps: u64,
    pub(super) virtual_time_ns: u128,
    pub(super) strategies: BTreeMap<String, u64>,
    pub(super) failures: BTreeMap<Place, FoundFailure>,
    pub(super) limits: BTreeMap<Place, FoundFailure>,
}

/// Where a failure happened, for deduplication ([`Failure::place`]).
pub(super) type Place = (FailureKind, Option<String>, String);

impl Tally {
    pub(super) fn new() -> Tally {
        Tally::default()
    }

    pub(super) fn record(&mut self, seed: u64, strategy: &str, sim: &Simulation, outcome: Outcome) {
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

    pub(super) fn absorb(&mut self, other: Tally) {
        // Saturating: merged results come from files, whose counts may be anything.
        self.schedules = self.schedules.saturating_add(other.schedules);
        self.steps = self.steps.saturating_add(other.steps);
        self.virtual_time_ns = self.virtual_time_ns.saturating_add(other.virtual_time_ns);
        for (strategy, count) in other.strategies {
            let total = self.strategies.entry(strategy).or_default();
            *total = total.saturating_add(count);
        }
        for found in other.failures.into_values() {
            add_found(&mut self.failures, found);
        }
        for found in other.limits.into_values() {
            add_found(&mut self.limits, found);
        }
    }
}

pub(super) fn add_found(map: &mut BTreeMap<Place, FoundFailure>, found: FoundFailure) {
    let place = found.place();
    match map.get_mut(&place) {
        Some(known) => {
            let count = known.count.saturating_add(found.count);
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

pub(super) fn by_seed(map: BTreeMap<Place, FoundFailure>) -> Vec<FoundFailure> {
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
    pub(super) fn place(&self) -> Place {
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
