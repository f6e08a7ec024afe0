//! The guided search of [`super::shrink`]: schedules rebuilt from the failing run's order with at
//! most two forced switches, for a failure that names two tasks (see the parent module's docs).

#[allow(clippy::wildcard_imports)]
use super::*;

impl Shrinker<'_> {
    /// The guided search ([`directed`]) with `guide` as the failing run, if its failure names
    /// two tasks, spending replays up to `budget` (its replay of the guide included).
    pub(super) fn guided(&mut self, guide: &Best, budget: u64) -> Option<Best> {
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
pub(super) fn pair(failure: &Failure) -> Option<(TaskId, TaskId)> {
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
        let task = task.ok_or(Divergence::GuidedSwitch)?;
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

    fn next_flag(&mut self, step: u64, _odds: u64) -> Result<bool, Divergence> {
        // A recorded perturbation point is 1 (fired) or 0.
        Ok(self.next_draw(step, 2)? == 1)
    }
}
