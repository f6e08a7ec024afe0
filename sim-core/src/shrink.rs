//! Shrinking: from a failing schedule to one with the fewest preemptions that still fails the
//! same way.
//!
//! A preemption is a step where the strategy switched away from a task that could have kept
//! running; a failure's story is easiest to read with as few of them as possible. The shrinker
//! replays the schedule with preemptions taken out — each candidate replaces the switch with
//! "keep running the current task" and follows the rest of the schedule with a cursor (where
//! it no longer fits, the current task keeps running, else the next task of the schedule that
//! can run) — and
//! keeps a candidate only if it fails with the same kind (and, for a Go fatal error, the same
//! text) and has fewer preemptions, or as many in fewer steps. Candidates remove chunks of
//! preemptions, halving the chunk size down to one (delta debugging, Zeller and Hildebrandt,
//! TSE 2002); then chunks of segments (maximal runs of one task's steps), deleted outright;
//! rounds repeat until no candidate is kept. Every accepted run is recorded again from its trace, so the result is an exact
//! schedule that replays strictly.

use std::fmt;

use crate::schedule::Schedule;
use crate::strategy::{Choice, Divergence, Replay, ReplayMode, Strategy};
use crate::{Config, Failure, FailureKind, Outcome, Simulation, TaskId};

/// The result of [`shrink`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shrunk {
    /// The smallest failing schedule found; replays strictly.
    pub schedule: Schedule,
    /// Its failure.
    pub failure: Failure,
    /// Preemptions of the input schedule's run.
    pub preemptions_before: usize,
    /// Preemptions of the shrunk schedule's run.
    pub preemptions_after: usize,
    /// Steps before and after.
    pub steps_before: usize,
    /// Steps of the shrunk run.
    pub steps_after: usize,
    /// Replays spent (the confirmation included).
    pub replays: u64,
    /// Whether the replay budget ran out before no preemption could be removed.
    pub budget_exhausted: bool,
}

impl fmt::Display for Shrunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shrunk from {} to {} preemptions ({} to {} steps) in {} replays{}",
            self.preemptions_before,
            self.preemptions_after,
            self.steps_before,
            self.steps_after,
            self.replays,
            if self.budget_exhausted { " (replay budget exhausted: not minimal)" } else { "" }
        )
    }
}

/// Why a schedule could not be shrunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShrinkError {
    /// Replayed strictly, the schedule does not fail (it completes, hits a limit or diverges).
    DoesNotFail(Box<Outcome>),
}

impl fmt::Display for ShrinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShrinkError::DoesNotFail(outcome) => {
                write!(f, "the schedule does not fail when replayed: {outcome}")
            }
        }
    }
}

impl std::error::Error for ShrinkError {}

/// Shrinks `schedule` (which must fail when replayed with `setup` under `config`), spending at
/// most `budget` replays.
pub fn shrink(
    config: &Config,
    schedule: &Schedule,
    setup: impl Fn(),
    budget: u64,
) -> Result<Shrunk, ShrinkError> {
    let mut sim = Simulation::new(config.clone()).with_strategy(Replay::new(schedule));
    let outcome = sim.run(schedule.seed, &setup);
    let Outcome::Failed(failure) = outcome else {
        return Err(ShrinkError::DoesNotFail(Box::new(outcome)));
    };
    let steps_before = sim.trace().len();
    let best = Best::record(&sim, schedule, failure.clone());
    let preemptions_before = best.preemption_steps.len();
    let mut replays = 1;
    let same = |candidate: &Failure| {
        candidate.kind == failure.kind
            && (failure.kind != FailureKind::GoFatal || candidate.message == failure.message)
    };
    let original = best;
    let mut best: Option<Best> = None;
    let mut budget_exhausted = false;
    // Greedy shrinking finds local minima that depend on how candidates are replayed, so it
    // runs from the original three times — following by step index, by cursor, and trying
    // both — and keeps the smallest result.
    for modes in [&[false][..], &[true][..], &[false, true][..]] {
        let (found, exhausted) = minimize(
            &mut sim,
            schedule,
            &setup,
            &same,
            original.clone(),
            modes,
            budget,
            &mut replays,
        );
        budget_exhausted |= exhausted;
        let better = best.as_ref().is_none_or(|b| found.size() < b.size());
        if better {
            best = Some(found);
        }
    }
    let best = best.expect("at least one pass ran");
    Ok(Shrunk {
        preemptions_before,
        preemptions_after: best.preemption_steps.len(),
        steps_before,
        steps_after: best.schedule.steps.len(),
        replays,
        budget_exhausted,
        failure: best.failure,
        schedule: best.schedule,
    })
}

/// One greedy pass from `best`, replaying candidates in `modes` (`false`: by step index,
/// `true`: by cursor). Returns the smallest failing run found and whether the budget ran out.
#[allow(clippy::too_many_arguments)]
fn minimize(
    sim: &mut Simulation,
    schedule: &Schedule,
    setup: &dyn Fn(),
    same: &dyn Fn(&Failure) -> bool,
    mut best: Best,
    modes: &[bool],
    budget: u64,
    replays: &mut u64,
) -> (Best, bool) {
    let mut budget_exhausted = false;
    // Each round tries candidates from the cheapest kind of change up: preemptions replaced by
    // "keep running", then whole runs of one task's steps deleted (the rest of the schedule
    // follows leniently). A candidate is kept if it fails the same way with fewer preemptions,
    // or as many in fewer steps. Rounds repeat until nothing improves.
    'improve: loop {
        for kind in [Candidates::Preemptions, Candidates::Segments] {
            let units = best.units(kind);
            let mut chunk = units.len().div_ceil(2).max(1);
            while !units.is_empty() {
                let chunks: Vec<Vec<(usize, usize)>> =
                    units.chunks(chunk).map(<[(usize, usize)]>::to_vec).rev().collect();
                for removed in chunks {
                    if *replays >= budget {
                        budget_exhausted = true;
                        break 'improve;
                    }
                    let candidate = best.candidate(kind, &removed);
                    // Two ways to follow the rest of the schedule: by step index (where a step
                    // no longer fits, the current task keeps running) and by cursor (deleted
                    // steps shift the rest). Each finds minima the other misses.
                    for &follow in modes {
                        if *replays >= budget {
                            budget_exhausted = true;
                            break 'improve;
                        }
                        let strategy: Box<dyn Strategy> = if follow {
                            Box::new(Follow::new(&candidate))
                        } else {
                            Box::new(Replay::with_mode(&candidate, ReplayMode::Lenient))
                        };
                        sim.set_strategy(strategy);
                        let outcome = sim.run(schedule.seed, setup);
                        *replays += 1;
                        let (preemptions, steps) = (sim.trace().preemptions(), sim.trace().len());
                        let current = (best.preemption_steps.len(), best.schedule.steps.len());
                        if let Outcome::Failed(found) = outcome
                            && same(&found)
                            && (preemptions, steps) < current
                        {
                            best = Best::record(sim, schedule, found);
                            continue 'improve;
                        }
                    }
                }
                if chunk == 1 {
                    break;
                }
                chunk = chunk.div_ceil(2);
            }
        }
        break;
    }
    (best, budget_exhausted)
}

/// The current best failing run.
#[derive(Clone)]
struct Best {
    schedule: Schedule,
    failure: Failure,
    /// The steps that were preemptions.
    preemption_steps: Vec<usize>,
}

impl Best {
    /// What shrinking minimises: preemptions, then steps.
    fn size(&self) -> (usize, usize) {
        (self.preemption_steps.len(), self.schedule.steps.len())
    }

    fn record(sim: &Simulation, original: &Schedule, failure: Failure) -> Self {
        let mut schedule = sim.schedule(&original.test, &original.params);
        schedule.strategy.clone_from(&original.strategy);
        let preemption_steps = sim
            .trace()
            .steps()
            .enumerate()
            .filter(|(_, record)| record.preemption)
            .map(|(index, _)| index)
            .collect();
        Best { schedule, failure, preemption_steps }
    }

    /// The units a kind of candidate removes, as (start step, length).
    fn units(&self, kind: Candidates) -> Vec<(usize, usize)> {
        match kind {
            Candidates::Preemptions => {
                self.preemption_steps.iter().map(|&step| (step, 1)).collect()
            }
            Candidates::Segments => {
                let mut segments: Vec<(usize, usize)> = Vec::new();
                for (index, task) in self.schedule.steps.iter().enumerate() {
                    match segments.last_mut() {
                        Some((start, length)) if self.schedule.steps[*start] == *task => {
                            *length += 1
                        }
                        _ => segments.push((index, 1)),
                    }
                }
                segments
            }
        }
    }

    /// The schedule with `removed` units taken out: a preemption becomes "keep running the
    /// task before"; a segment's steps are deleted.
    fn candidate(&self, kind: Candidates, removed: &[(usize, usize)]) -> Schedule {
        let mut candidate = self.schedule.clone();
        match kind {
            Candidates::Preemptions => {
                for &(step, _) in removed {
                    if step > 0 {
                        let previous: TaskId = candidate.steps[step - 1];
                        candidate.steps[step] = previous;
                    }
                }
            }
            Candidates::Segments => {
                // `removed` is in ascending order within a chunk; delete from the back.
                for &(start, length) in removed.iter().rev() {
                    candidate.steps.drain(start..start + length);
                }
            }
        }
        candidate
    }
}

/// What a candidate removes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Candidates {
    /// Preemptions, each replaced by "keep running the current task".
    Preemptions,
    /// Maximal runs of one task's steps, deleted.
    Segments,
}

/// The replay a candidate runs under: a cursor through the candidate's steps. The expected task
/// runs if it can; if it cannot, the current task keeps running; if that cannot either, the
/// cursor skips ahead to the next task in the schedule that can run, else the lowest runnable
/// id. Deleted steps therefore shift the rest of the schedule instead of misaligning it.
struct Follow {
    steps: Vec<TaskId>,
    cursor: usize,
    draws: Vec<u64>,
    next_draw: usize,
}

impl Follow {
    fn new(schedule: &Schedule) -> Self {
        let draws = schedule.draws.iter().map(|&(_, value)| value).collect();
        Follow { steps: schedule.steps.clone(), cursor: 0, draws, next_draw: 0 }
    }
}

impl Strategy for Follow {
    fn name(&self) -> &'static str {
        "replay"
    }

    fn begin(&mut self, _seed: u64) {
        self.cursor = 0;
        self.next_draw = 0;
    }

    fn next_task(&mut self, choice: &Choice<'_>) -> Result<usize, Divergence> {
        let position = |task: TaskId| choice.runnable.iter().position(|&t| t == task);
        if let Some(index) = self.steps.get(self.cursor).and_then(|&task| position(task)) {
            self.cursor += 1;
            return Ok(index);
        }
        if let Some(index) = choice.current.and_then(position) {
            return Ok(index);
        }
        for ahead in self.cursor..self.steps.len() {
            if let Some(index) = position(self.steps[ahead]) {
                self.cursor = ahead + 1;
                return Ok(index);
            }
        }
        let lowest = choice.runnable.iter().enumerate().min_by_key(|(_, task)| **task);
        Ok(lowest.map_or(0, |(index, _)| index))
    }

    fn next_draw(&mut self, _step: u64, bound: u64) -> Result<u64, Divergence> {
        let value = self.draws.get(self.next_draw).copied().unwrap_or(0);
        self.next_draw += 1;
        Ok(if value < bound { value } else { 0 })
    }
}
