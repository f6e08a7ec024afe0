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
    let original = Best::record(&sim, schedule, failure.clone());
    let preemptions_before = original.preemption_steps.len();
    let same = |candidate: &Failure| {
        candidate.kind == failure.kind
            && (failure.kind != FailureKind::GoFatal || candidate.message == failure.message)
    };
    let mut shrinker = Shrinker { sim: &mut sim, schedule, setup: &setup, same: &same, replays: 1 };
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

    /// The guided search ([`directed`]) with `guide` as the failing run, if its failure names
    /// two tasks, spending replays up to `budget` (its replay of the guide included).
    fn guided(&mut self, guide: &Best, budget: u64) -> Option<Best> {
        if self.replays >= budget {
            return None;
        }
        self.sim.set_strategy(Box::new(Replay::new(&guide.schedule)));
        self.sim.run(self.schedule.seed, self.setup);
        self.replays += 1;
        let aims = Aims::of(self.sim.trace(), &guide.failure)?;
        let mut search = Search {
            shrinker: self,
            size: guide.size(),
            order: guide.schedule.steps.clone().into(),
            draws: guide.schedule.draws.iter().map(|&(_, value)| value).collect(),
            aims,
            lazy: None,
            budget,
        };
        directed(&mut search)
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
}

/// Most first switches the guided search tries from each base.
const FIRST_SWITCHES_MAX: usize = 64;

/// Most second switches it tries after each first one.
const SECOND_SWITCHES_MAX: usize = 4;

/// The guided search: schedules built from scratch with at most two preemptions, for a failure
/// that names two tasks, `F` (failed) and `W` (it collided with `W`, for a Go fatal error the
/// writer holding the map's writing flag). Every candidate runs non-preemptively
/// ([`Directed`]) except at its switches, from one of four bases — the free choices (the
/// current task cannot continue) in the order of the guide's steps, or with `W` last, or `F`
/// last, or `W` last until `F` can run ([`Lazy`]). From each base:
///
/// 1. no switch (a failure that needs no preemption);
/// 2. one switch away from `W` or `F` where it could have continued: to the other of the two
///    if it can run, else to whichever task the order picks, a hold or a delay ([`Switch`]) —
///    the points nearest first to where the guide had `W` holding the flag and `F` just before
///    its failing access ([`Aims`]), alternately;
/// 3. after a switch away from `F`, or a delay, a second switch at the nearest points of the
///    run it made.
///
/// The bases take turns, one candidate each, so that the base that fits is found early; a base
/// that runs like an earlier one is dropped. Returns the first candidate that fails the same
/// way, smaller than the guide; `None` if none does or the budget runs out.
fn directed(search: &mut Search<'_, '_>) -> Option<Best> {
    let aims = search.aims;
    let (failing, writer) = (aims.failing, aims.writer);
    let lazies = [
        None,
        Some(Lazy { task: writer, until: None }),
        Some(Lazy { task: failing, until: None }),
        Some(Lazy { task: writer, until: Some(failing) }),
    ];
    let mut lanes: Vec<Lane> = Vec::new();
    let mut bases: Vec<Vec<TaskId>> = Vec::new();
    for lazy in lazies {
        search.lazy = lazy;
        let (found, points) = search.run(&[])?;
        if found.is_some() {
            return found;
        }
        let steps = search.shrinker.sim.trace().step_tasks();
        if !bases.contains(&steps) {
            bases.push(steps);
            let queue = first_switches(&aims, points).map(|first| vec![first]).collect();
            lanes.push(Lane { lazy, queue });
        }
    }
    while lanes.iter().any(|lane| !lane.queue.is_empty()) {
        for lane in &mut lanes {
            let Some(switches) = lane.queue.pop_front() else { continue };
            search.lazy = lane.lazy;
            let (found, points) = search.run(&switches)?;
            if found.is_some() {
                return found;
            }
            if let [first] = switches[..] {
                for second in second_switches(&aims, first, points).into_iter().rev() {
                    lane.queue.push_front(vec![first, second]);
                }
            }
        }
    }
    None
}

/// One base of the guided search and the candidates it has yet to try.
struct Lane {
    lazy: Option<Lazy>,
    queue: VecDeque<Vec<Switch>>,
}

/// The first switches to try from a base run's points: the nearest points of `W` and of `F`,
/// alternately; where the other of the two cannot run, a hold and a delay.
fn first_switches(aims: &Aims, points: Vec<Point>) -> impl Iterator<Item = Switch> {
    let (mut writer, mut failing): (Vec<Point>, Vec<Point>) =
        points.into_iter().partition(|point| point.from == aims.writer);
    writer.sort_by_key(|point| (aims.distance(point), point.step));
    failing.sort_by_key(|point| (aims.distance(point), point.step));
    let (mut writer, mut failing) = (writer.into_iter(), failing.into_iter());
    let alternate = std::iter::from_fn(move || {
        let next = [writer.next(), failing.next()];
        (next != [None, None]).then_some(next)
    });
    let switches = alternate.flatten().flatten().flat_map(|point| {
        let delay = point.to.is_none().then(|| Switch { delay: true, ..point.switch() });
        [Some(point.switch()), delay]
    });
    switches.flatten().take(FIRST_SWITCHES_MAX)
}

/// The second switches to try after `first`, from the points its run offered: after a switch
/// away from `F`, `W` goes on to its write; after a delay, either may.
fn second_switches(aims: &Aims, first: Switch, mut points: Vec<Point>) -> Vec<Switch> {
    if first.from != aims.failing && !first.delay {
        return Vec::new();
    }
    points.retain(|point| first.delay || point.from == aims.writer);
    points.sort_by_key(|point| (aims.distance(point), point.step));
    points.iter().take(SECOND_SWITCHES_MAX).map(Point::switch).collect()
}

/// One guided search: its guide's size (what a candidate must beat), order and draws, its aims,
/// the base being searched, and its replay budget.
struct Search<'s, 'a> {
    shrinker: &'s mut Shrinker<'a>,
    size: (usize, usize),
    order: Rc<[TaskId]>,
    draws: Rc<[u64]>,
    aims: Aims,
    lazy: Option<Lazy>,
    budget: u64,
}

impl Search<'_, '_> {
    /// Runs one candidate: `None` when the budget is spent, else the run if it failed the same
    /// way and smaller than the guide, and the points it offered after its last switch.
    fn run(&mut self, switches: &[Switch]) -> Option<(Option<Best>, Vec<Point>)> {
        if self.shrinker.replays >= self.budget {
            return None;
        }
        let offered = Rc::new(RefCell::new(Vec::new()));
        let strategy = Directed {
            order: self.order.clone(),
            cursor: 0,
            switches: switches.to_vec(),
            next_switch: 0,
            pair: (self.aims.failing, self.aims.writer),
            lazy: self.lazy,
            demoted: Vec::new(),
            draws: self.draws.clone(),
            next_draw: 0,
            points: offered.clone(),
        };
        let found = self.shrinker.try_run(Box::new(strategy), self.size);
        let trace = self.shrinker.sim.trace();
        let mut points: Vec<Point> = offered.take();
        for task in [self.aims.failing, self.aims.writer] {
            let steps: Vec<u64> =
                points.iter().filter(|point| point.from == task).map(|point| point.step).collect();
            let mut at = positions(trace, task, &steps).into_iter();
            for point in points.iter_mut().filter(|point| point.from == task) {
                point.at = at.next().expect("one position per point");
            }
        }
        Some((found, points))
    }
}

/// Where a task is in its own code: how many events it had emitted, and how often it had run
/// since the last one. Poll counts alone drift between runs (a task woken once more to retry a
/// lock); between two events of one task its path is usually the same.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Position {
    events: usize,
    polls: usize,
}

/// The positions of `task` in `trace` before each of `steps` (ascending) ran.
fn positions(trace: &Trace, task: TaskId, steps: &[u64]) -> Vec<Position> {
    let events: Vec<u64> = trace
        .events()
        .iter()
        .filter(|event| event.task == task && !event.kind.is_call())
        .map(|event| event.step)
        .collect();
    let polls: Vec<u64> = trace
        .steps()
        .enumerate()
        .filter(|(_, record)| record.task == task)
        .map(|(step, _)| step as u64)
        .collect();
    let position = |step: u64| {
        let emitted = events.partition_point(|&at| at < step);
        let since = match emitted {
            0 => 0,
            _ => polls.partition_point(|&at| at <= events[emitted - 1]),
        };
        Position { events: emitted, polls: polls.partition_point(|&at| at < step) - since }
    };
    steps.iter().map(|&step| position(step)).collect()
}

/// The two tasks of a failure and where each was in the failing run: `W` just after its last
/// poll before the failure (where a Go map write holds the flag), `F` just before its failing
/// poll.
#[derive(Clone, Copy, Debug)]
struct Aims {
    failing: TaskId,
    writer: TaskId,
    failing_at: Position,
    writer_at: Position,
}

impl Aims {
    /// The aims of `failure`, the end of the run `trace` records, if it names two tasks.
    fn of(trace: &Trace, failure: &Failure) -> Option<Aims> {
        let (failing, writer) = pair(failure)?;
        let mut before = trace.steps().take(failure.step as usize).enumerate();
        let last = before.rfind(|(_, record)| record.task == writer)?.0 as u64;
        Some(Aims {
            failing,
            writer,
            failing_at: positions(trace, failing, &[failure.step])[0],
            writer_at: positions(trace, writer, &[last + 1])[0],
        })
    }

    /// How far `point` is from its task's aim: events apart, then polls apart.
    fn distance(&self, point: &Point) -> (usize, usize) {
        let aim = if point.from == self.writer { self.writer_at } else { self.failing_at };
        (point.at.events.abs_diff(aim.events), point.at.polls.abs_diff(aim.polls))
    }
}

/// The two tasks a failure names, (`F`, `W`): the task that failed and the first other task
/// involved (for a Go fatal error, the writer holding the map's writing flag).
fn pair(failure: &Failure) -> Option<(TaskId, TaskId)> {
    let failing = failure.task?;
    let writer = failure.involved.first().copied().filter(|&task| task != failing)?;
    Some((failing, writer))
}

/// A base of the guided search: `task` runs last at free choices — until `until` can run, if
/// given — so that the others get ahead of it without a preemption.
#[derive(Clone, Copy, Debug)]
struct Lazy {
    task: TaskId,
    until: Option<TaskId>,
}

/// A switch of a guided candidate: at `step`, run `to` instead of `from`, the current task
/// (`None`: the task the order picks among the others). `from` is demoted until a switch picks
/// it again — a hold: `W` keeps the flag, `F` waits before its access — or, for a delay, until
/// the other of `F` and `W` can run: it lets the other catch up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Switch {
    step: u64,
    from: TaskId,
    to: Option<TaskId>,
    delay: bool,
}

/// A step at which a guided run could switch away from `from` (`F` or `W`, the current task,
/// still runnable) to `to`, the other of the two if it could run. `at` is where `from` was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Point {
    step: u64,
    from: TaskId,
    to: Option<TaskId>,
    at: Position,
}

impl Point {
    fn switch(&self) -> Switch {
        Switch { step: self.step, from: self.from, to: self.to, delay: false }
    }
}

/// The strategy of a guided candidate. The current task keeps running while it can; at a free
/// choice the next task of the guide's order that can run and is not demoted (a cursor, as in
/// [`Follow`]), else the lowest such id, else the task demoted first. Switches and the base's
/// lazy task demote (see [`Switch`], [`Lazy`]). Offers the points of `F` and `W` after the last
/// switch, for the next candidates.
struct Directed {
    order: Rc<[TaskId]>,
    cursor: usize,
    switches: Vec<Switch>,
    next_switch: usize,
    /// (`F`, `W`).
    pair: (TaskId, TaskId),
    lazy: Option<Lazy>,
    /// Tasks that run only when nothing else can, each until a task can run, if given.
    demoted: Vec<(TaskId, Option<TaskId>)>,
    draws: Rc<[u64]>,
    next_draw: usize,
    points: Rc<RefCell<Vec<Point>>>,
}

impl Directed {
    fn partner(&self, task: TaskId) -> Option<TaskId> {
        let (failing, writer) = self.pair;
        match task {
            task if task == writer => Some(failing),
            task if task == failing => Some(writer),
            _ => None,
        }
    }

    fn demoted(&self, task: TaskId) -> bool {
        self.demoted.iter().any(|&(demoted, _)| demoted == task)
    }

    fn offer_point(&self, choice: &Choice<'_>, current: TaskId) {
        if let Some(partner) = self.partner(current)
            && choice.runnable.len() > 1
        {
            let to = choice.runnable.contains(&partner).then_some(partner);
            let point = Point { step: choice.step, from: current, to, at: Position::default() };
            self.points.borrow_mut().push(point);
        }
    }

    /// The task the order picks, other than `except`.
    fn pick(&mut self, choice: &Choice<'_>, except: Option<TaskId>) -> Option<TaskId> {
        let eligible = |task: &TaskId| {
            Some(*task) != except && choice.runnable.contains(task) && !self.demoted(*task)
        };
        let rest = &self.order[self.cursor.min(self.order.len())..];
        if let Some(ahead) = rest.iter().position(eligible) {
            self.cursor += ahead + 1;
            return Some(self.order[self.cursor - 1]);
        }
        if let Some(&lowest) = choice.runnable.iter().filter(|task| eligible(task)).min() {
            return Some(lowest);
        }
        let mut demoted = self.demoted.iter().map(|&(task, _)| task);
        demoted.find(|&task| Some(task) != except && choice.runnable.contains(&task))
    }

    /// The task a due switch runs; demotes the current one.
    fn switch(&mut self, choice: &Choice<'_>, switch: Switch) -> Result<TaskId, Divergence> {
        self.next_switch += 1;
        let task = match switch.to {
            Some(task) => choice.runnable.contains(&task).then_some(task),
            None => self.pick(choice, choice.current),
        };
        // The run up to here is the one the switch was planned in, so it fits; if it does not,
        // the program is not deterministic: end the candidate.
        let task = task.ok_or_else(|| Divergence("a guided switch does not fit".to_string()))?;
        self.demoted.retain(|&(demoted, _)| demoted != task && Some(demoted) != choice.current);
        if let Some(current) = choice.current.filter(|&current| current != task) {
            let until = if switch.delay { self.partner(current) } else { None };
            self.demoted.push((current, until));
        }
        Ok(task)
    }
}

impl Strategy for Directed {
    fn name(&self) -> &'static str {
        "replay"
    }

    fn begin(&mut self, _seed: u64) {
        self.cursor = 0;
        self.next_switch = 0;
        self.demoted.clear();
        self.demoted.extend(self.lazy.map(|lazy| (lazy.task, lazy.until)));
        self.next_draw = 0;
        self.points.borrow_mut().clear();
    }

    fn next_task(&mut self, choice: &Choice<'_>) -> Result<usize, Divergence> {
        self.demoted
            .retain(|&(_, until)| until.is_none_or(|until| !choice.runnable.contains(&until)));
        let due = self.switches.get(self.next_switch).filter(|switch| switch.step == choice.step);
        let task = match (due.copied(), choice.current) {
            (Some(switch), _) => self.switch(choice, switch)?,
            (None, Some(current)) => {
                if self.next_switch == self.switches.len() {
                    self.offer_point(choice, current);
                }
                current
            }
            (None, None) => self.pick(choice, None).expect("the runnable set is never empty"),
        };
        Ok(choice.runnable.iter().position(|&t| t == task).expect("picked a runnable task"))
    }

    fn next_draw(&mut self, _step: u64, bound: u64) -> Result<u64, Divergence> {
        let value = self.draws.get(self.next_draw).copied().unwrap_or(0);
        self.next_draw += 1;
        Ok(if value < bound { value } else { 0 })
    }
}
