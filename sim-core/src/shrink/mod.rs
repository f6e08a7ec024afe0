//! Shrinking: from a failing schedule to one with the fewest preemptions that still fails the
//! same way.
//!
//! A preemption is a step where the strategy switched away from a task that could have kept
//! running; a failure's story is easiest to read with as few of them as possible. The shrinker
//! runs candidate schedules and keeps one only if it fails with the same kind (and, for a Go
//! fatal error, the same text) and has fewer preemptions, or as many in fewer steps. Every kept
//! run is recorded again from its trace, so the result is an exact schedule that replays
//! strictly. Candidates come from two searches:
//!
//! - **Greedy** ([`Shrinker::greedy`]): the schedule replayed with preemptions taken out — each
//!   replaced by "keep running the current task", the rest of the schedule followed by step
//!   index or by a cursor ([`Follow`]) — in chunks halved down to one (delta debugging, Zeller
//!   and Hildebrandt, "Simplifying and isolating failure-inducing input", TSE 2002); then
//!   chunks of segments (maximal runs of one task's steps) deleted outright; rounds repeat
//!   until no candidate is kept.
//! - **Guided** ([`directed`]), for a failure that names two tasks: a Go fatal error's failing
//!   task `F` and the writer `W` that held the map's writing flag. Greedy removal stops at local
//!   minima there (portfolio failures of submariner-logifchanged kept 4 to 7 preemptions,
//!   informer-cache-locking `missing-rlock` 3 to 21), because removing one preemption moves
//!   every later step of the story. Yet the crash needs only `W` switched away from while it
//!   holds the flag and `F` run to its access — and perhaps `F` first held just before it. So
//!   the guided search builds schedules from scratch: non-preemptive runs with one or two
//!   switches at the points of `F` and `W` nearest to where the failing run had them. This is
//!   preemption bounding (Musuvathi and Qadeer, "Iterative context bounding for systematic
//!   testing of multithreaded programs", PLDI 2007, whose CHESS found most bugs within two
//!   preemptions), with the free choices between the switches steered as delay bounding
//!   steers them (Emmi, Qadeer and Rakamarić, "Delay-bounded scheduling", POPL 2011).
//!
//! The guided search runs first, on at most a quarter of the budget (usually under twenty
//! replays when it fits); greedy shrinking continues from its result. When it found nothing,
//! greedy shrinking runs from the failing run on two thirds of what is left and, if more than
//! two preemptions remain, the guided search runs again from greedy shrinking's result (a
//! closer guide) before greedy shrinking finishes. A failure that names no second task — a
//! liveness failure, whose runs are long, an invariant, a panic — shrinks greedily alone,
//! exactly as before.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use crate::schedule::Schedule;
use crate::strategy::{Choice, Divergence, Replay, ReplayMode, Strategy};
use crate::{Config, Failure, FailureKind, Outcome, Simulation, TaskId, Trace};

mod guided;

use guided::pair;

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
    /// Replayed strictly, the schedule does not fail (it completes or hits a limit).
    DoesNotFail(Box<Outcome>),
    /// Replayed strictly, the program does not follow the schedule (another program, variant or
    /// parameters than the ones that recorded it): there is no failure to keep while shrinking.
    Diverges(Box<Failure>),
}

impl fmt::Display for ShrinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShrinkError::DoesNotFail(outcome) => {
                write!(f, "the schedule does not fail when replayed: {outcome}")
            }
            ShrinkError::Diverges(failure) => {
                write!(f, "the schedule does not replay on this program: {}", failure.message)
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
    if failure.kind == FailureKind::Nondeterminism {
        return Err(ShrinkError::Diverges(Box::new(failure)));
    }
    let steps_before = sim.trace().len();
    let original = Best::record(&sim, schedule, failure.clone());
    let preemptions_before = original.preemption_steps.len();
    let same = |candidate: &Failure| {
        candidate.kind == failure.kind
            && (failure.kind != FailureKind::GoFatal || candidate.message == failure.message)
    };
    let mut shrinker = Shrinker { sim: &mut sim, schedule, setup: &setup, same: &same, replays: 1 };
    // Perturbations and other draws the failure does not need go first: each one less is a
    // step of the story less, and the rest of the search works on the smaller run.
    let original = shrinker.zero_draws(original, budget / 4);
    // Only a failure that names two tasks can be guided; others shrink greedily as they did.
    let guidable = pair(&original.failure).is_some();
    let guided = if guidable { shrinker.guided(&original, 1 + budget / 4) } else { None };
    // Without a guided result, greedy shrinking leaves a third of the rest for a second guided
    // search.
    let again = guidable && guided.is_none();
    let greedy_budget = match again {
        true => shrinker.replays + budget.saturating_sub(shrinker.replays) * 2 / 3,
        false => budget,
    };
    let (mut best, mut budget_exhausted) =
        shrinker.greedy(guided.unwrap_or(original), greedy_budget);
    if again {
        let mut resume = budget_exhausted;
        if best.preemption_steps.len() > 2 {
            let share = shrinker.replays + budget.saturating_sub(shrinker.replays) / 2;
            if let Some(found) = shrinker.guided(&best, share) {
                best = found;
                resume = true;
            }
        }
        if resume && shrinker.replays < budget {
            (best, budget_exhausted) = shrinker.greedy(best, budget);
        }
    }
    Ok(Shrunk {
        preemptions_before,
        preemptions_after: best.preemption_steps.len(),
        steps_before,
        steps_after: best.schedule.steps.len(),
        replays: shrinker.replays,
        budget_exhausted,
        failure: best.failure,
        schedule: best.schedule,
    })
}

/// What the searches of one shrink share: the simulation, the failing schedule (for its seed
/// and header) and setup, the test for the same failure, and the replays spent.
struct Shrinker<'a> {
    sim: &'a mut Simulation,
    schedule: &'a Schedule,
    setup: &'a dyn Fn(),
    same: &'a dyn Fn(&Failure) -> bool,
    replays: u64,
}

impl Shrinker<'_> {
    /// Sets draws to 0 one at a time, last first — a fired perturbation ([`crate::perturb`])
    /// becomes "no" — keeping each change under which the run still fails the same way. The
    /// rest of the schedule follows by cursor ([`Follow`]), since a perturbation taken out
    /// changes what runs after it. Spends at most `budget` replays.
    fn zero_draws(&mut self, mut best: Best, budget: u64) -> Best {
        let mut index = best.schedule.draws.len();
        while index > 0 {
            index -= 1;
            if self.replays >= budget {
                break;
            }
            let Some(&(_, value)) = best.schedule.draws.get(index) else { continue };
            if value == 0 {
                continue;
            }
            let mut candidate = best.schedule.clone();
            candidate.draws[index].1 = 0;
            self.sim.set_strategy(Box::new(Follow::new(&candidate)));
            let outcome = self.sim.run(self.schedule.seed, self.setup);
            self.replays += 1;
            let nonzero = |schedule: &Schedule| schedule.draws.iter().filter(|d| d.1 != 0).count();
            if let Outcome::Failed(found) = outcome
                && (self.same)(&found)
            {
                let found = Best::record(self.sim, self.schedule, found);
                if nonzero(&found.schedule) < nonzero(&best.schedule) {
                    index = index.min(found.schedule.draws.len());
                    best = found;
                }
            }
        }
        best
    }

    /// Runs `strategy` once; the outcome if it failed the same way, smaller than `than`.
    fn try_run(&mut self, strategy: Box<dyn Strategy>, than: (usize, usize)) -> Option<Best> {
        self.sim.set_strategy(strategy);
        let outcome = self.sim.run(self.schedule.seed, self.setup);
        self.replays += 1;
        let size = (self.sim.trace().preemptions(), self.sim.trace().len());
        match outcome {
            Outcome::Failed(found) if (self.same)(&found) && size < than => {
                Some(Best::record(self.sim, self.schedule, found))
            }
            _ => None,
        }
    }

    /// Greedy shrinking from `start`. It finds local minima that depend on how candidates are
    /// replayed, so it runs three times — following by step index, by cursor, and trying both —
    /// and keeps the smallest result. Returns it and whether the budget ran out.
    fn greedy(&mut self, start: Best, budget: u64) -> (Best, bool) {
        let mut best: Option<Best> = None;
        let mut budget_exhausted = false;
        for modes in [&[false][..], &[true][..], &[false, true][..]] {
            let (found, exhausted) = self.minimize(start.clone(), modes, budget);
            budget_exhausted |= exhausted;
            if best.as_ref().is_none_or(|b| found.size() < b.size()) {
                best = Some(found);
            }
        }
        (best.expect("at least one pass ran"), budget_exhausted)
    }

    /// One greedy pass from `best`, replaying candidates in `modes` (`false`: by step index,
    /// `true`: by cursor). Returns the smallest failing run found and whether the budget ran
    /// out.
    fn minimize(&mut self, mut best: Best, modes: &[bool], budget: u64) -> (Best, bool) {
        // Each round tries candidates from the cheapest kind of change up: preemptions replaced
        // by "keep running", then whole runs of one task's steps deleted (the rest of the
        // schedule follows leniently). Rounds repeat until nothing improves.
        'improve: loop {
            for kind in [Candidates::Preemptions, Candidates::Segments] {
                let units = best.units(kind);
                let mut chunk = units.len().div_ceil(2).max(1);
                while !units.is_empty() {
                    let chunks: Vec<Vec<(usize, usize)>> =
                        units.chunks(chunk).map(<[(usize, usize)]>::to_vec).rev().collect();
                    for removed in chunks {
                        let candidate = best.candidate(kind, &removed);
                        // Two ways to follow the rest of the schedule: by step index (where a
                        // step no longer fits, the current task keeps running) and by cursor
                        // (deleted steps shift the rest). Each finds minima the other misses.
                        for &follow in modes {
                            if self.replays >= budget {
                                return (best, true);
                            }
                            let strategy: Box<dyn Strategy> = if follow {
                                Box::new(Follow::new(&candidate))
                            } else {
                                Box::new(Replay::with_mode(&candidate, ReplayMode::Lenient))
                            };
                            if let Some(found) = self.try_run(strategy, best.size()) {
                                best = found;
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
            return (best, false);
        }
    }
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

    fn next_flag(&mut self, step: u64, _odds: u64) -> Result<bool, Divergence> {
        // A recorded perturbation point is 1 (fired) or 0.
        Ok(self.next_draw(step, 2)? == 1)
    }
}
