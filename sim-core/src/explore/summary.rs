//! What a search did and found: [`ExploreSummary`] (its counts, its text, the merge of shards),
//! why it ended ([`Ended`]), what a systematic search covered ([`Systematic`]), and the
//! [`Verdict`] it amounts to.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::time::Duration;

use super::ledger::{FoundFailure, Tally, add_found, by_seed};
use crate::failure::Outcome;

/// Why a search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Ended {
    /// Every seed of the range ran.
    Exhausted,
    /// Stopped at the first failure ([`Explorer::stop_at_first`](super::Explorer::stop_at_first)).
    FirstFailure,
    /// The time budget ran out before the range (or the bounded search) did.
    TimeBudget,
    /// A systematic search ran every schedule within its bound.
    Complete,
    /// A systematic search stopped at its schedule limit ([`Explorer::max_schedules`](super::Explorer::max_schedules)) before
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
    /// Whether this merges shard results (`kdst merge`, [`ExploreSummary::merge`]): such a
    /// summary is the whole search only if it holds every shard (see
    /// [`ExploreSummary::missing_shards`]); one shard's own search is what it was asked to be.
    #[serde(default)]
    pub merged: bool,
    /// PCT's `k` as the search learned it from its first runs, if it did
    /// ([`Explorer`](super::Explorer)): those seeds ran with `k` drawn per seed, every other
    /// seed with `k` pinned ([`ExploreSummary::strategy_for`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

/// How a search learned PCT's `k`: the runs of `seeds` (the range's first, whatever the shard,
/// so every shard learns the same `k`), the longest of which took `k` steps.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Calibration {
    /// The seeds whose runs were measured.
    pub seeds: Range<u64>,
    /// The steps of the longest of them: the `k` of every later seed.
    pub k: u64,
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
            merged: true,
            calibration: self.calibration.or(other.calibration),
        }
    }

    /// The spec that reruns `seed` of this search, from the spec it was given: with `k` pinned
    /// to the learned one (`portfolio@K`), except for the seeds it learned `k` from.
    pub fn strategy_for(
        &self,
        spec: crate::strategy::StrategySpec,
        seed: u64,
    ) -> crate::strategy::StrategySpec {
        match &self.calibration {
            Some(calibration) if !calibration.seeds.contains(&seed) => {
                spec.with_pct_k(calibration.k)
            }
            _ => spec,
        }
    }

    /// How many shards of a sharded search (all of one `n`) these merged results do not hold,
    /// and the first of them (up to eight): a merge of some shards, not all, has not searched
    /// every seed. None for a summary that is not [`ExploreSummary::merged`].
    pub fn missing_shards(&self) -> (u64, Vec<(u64, u64)>) {
        let Some(&(_, n)) = self.shards.first().filter(|_| self.merged) else {
            return (0, Vec::new());
        };
        if self.shards.iter().any(|&(_, other)| other != n) {
            return (0, Vec::new());
        }
        let held = self.shards.iter().filter(|&&(i, _)| i < n).count() as u64;
        let first = (0..n).filter(|i| !self.shards.contains(&(*i, n))).take(8);
        (n.saturating_sub(held), first.map(|i| (i, n)).collect())
    }

    /// Whether a seed search covered what it was asked to: at least one seed, every shard, and every seed of
    /// a bounded range unless a failure stopped it. A time budget with no end to the seeds
    /// (`kdst explore --time`) asks for a search of that long, which any seed searched covers;
    /// with a bounded range (an [`crate::Explorer`] given both), the budget running out first
    /// leaves seeds unsearched.
    fn covered_what_was_asked(&self) -> bool {
        let open_ended = self.seeds.end == u64::MAX;
        self.schedules > 0
            && self.missing_shards().0 == 0
            && match self.ended {
                Ended::TimeBudget => open_ended || self.searched_below >= self.seeds.end,
                _ => true,
            }
    }

    /// What the search amounts to: a failure, a limit, a search that did not cover what it was
    /// asked to (a systematic search stopped by its schedule limit or the time budget; a seed
    /// search that searched no seed, or whose time budget ran out inside its seed range), or a
    /// pass.
    pub fn verdict(&self) -> Verdict {
        if !self.failures.is_empty() {
            Verdict::Failure
        } else if !self.limits.is_empty() {
            Verdict::Limit
        } else if match &self.systematic {
            Some(systematic) => !systematic.complete,
            None => !self.covered_what_was_asked(),
        } {
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
        let seeds = if self.seeds.end == u64::MAX && self.time_budget.is_some() {
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
        let (missing, first) = self.missing_shards();
        if missing > 0 {
            let mut names: Vec<String> = first.iter().map(|(i, n)| format!("{i}/{n}")).collect();
            if missing > first.len() as u64 {
                names.push(format!("and {} more", missing - first.len() as u64));
            }
            let s = if missing == 1 { "" } else { "s" };
            writeln!(f, "shard{s} {} missing: not every seed searched", names.join(" "))?;
            return self.fmt_found(f);
        }
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
            0 if self.verdict() == Verdict::Incomplete => {
                write!(f, "no failure found, but the search is incomplete (not a pass)")?
            }
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
