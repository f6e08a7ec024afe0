//! Running a workload under each tool: kdst's [`Simulation`], shuttle's [`Runner`] and loom's
//! [`Builder`], with what the benchmark needs to count.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use loom::model::Builder;
use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};
use shuttle::{Config, FailurePersistence, Runner};

/// shuttle's configuration for every run: the defaults (no vector clocks: the `vector-clocks`
/// feature is off, as it is by default), except that a failing schedule is not printed.
pub fn shuttle_config() -> Config {
    let mut config = Config::new();
    config.failure_persistence = FailurePersistence::None;
    config.silence_warnings = true;
    config
}

/// A shuttle scheduler that counts the executions it starts and the scheduling decisions it makes.
pub struct Counting<S> {
    inner: S,
    executions: Rc<Cell<u64>>,
    decisions: Rc<Cell<u64>>,
}

/// The counters of a [`Counting`] scheduler, readable after its runner has consumed it.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Executions started.
    pub executions: Rc<Cell<u64>>,
    /// Scheduling decisions (`next_task` calls), the main thread's included.
    pub decisions: Rc<Cell<u64>>,
}

impl<S: Scheduler> Counting<S> {
    /// Wraps `inner`; returns the scheduler and its counters.
    pub fn new(inner: S) -> (Counting<S>, Counters) {
        let counters = Counters::default();
        let scheduler = Counting {
            inner,
            executions: counters.executions.clone(),
            decisions: counters.decisions.clone(),
        };
        (scheduler, counters)
    }
}

impl<S: Scheduler> Scheduler for Counting<S> {
    fn new_execution(&mut self) -> Option<Schedule> {
        let schedule = self.inner.new_execution();
        if schedule.is_some() {
            self.executions.set(self.executions.get() + 1);
        }
        schedule
    }

    fn next_task(
        &mut self,
        runnable_tasks: &[&Task],
        current_task: Option<TaskId>,
        is_yielding: bool,
    ) -> Option<TaskId> {
        self.decisions.set(self.decisions.get() + 1);
        self.inner.next_task(runnable_tasks, current_task, is_yielding)
    }

    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
}

/// Runs `test` under shuttle with `scheduler` until the scheduler stops; returns the executions.
pub fn shuttle_run<S: Scheduler + 'static>(
    scheduler: S,
    test: impl Fn() + Send + Sync + 'static,
) -> u64 {
    Runner::new(scheduler, shuttle_config()).run(test) as u64
}

/// Executions started by the current loom check.
static LOOM_EXECUTIONS: AtomicU64 = AtomicU64::new(0);

/// How loom explores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoomBounds {
    /// The preemption bound (`None`: unbounded, loom's default).
    pub preemptions: Option<usize>,
    /// Stop after this many executions (`None`: run to exhaustion).
    pub executions: Option<u64>,
    /// Branches (scheduling points) per execution at most: loom's default is 1,000, too few for
    /// W1's 4,000 yields. loom preallocates this many, so it is kept as low as the workload
    /// allows.
    pub branches: usize,
}

impl LoomBounds {
    /// loom's default branch limit.
    pub const DEFAULT_BRANCHES: usize = 1_000;

    /// Exhaustive, with `preemptions`, room for `steps` steps per execution.
    pub fn exhaustive(preemptions: Option<usize>, steps: u64) -> LoomBounds {
        let needed = usize::try_from(steps.saturating_mul(2)).unwrap_or(usize::MAX);
        LoomBounds {
            preemptions,
            executions: None,
            branches: needed.max(LoomBounds::DEFAULT_BRANCHES),
        }
    }
}

/// A loom builder: DPOR with the bounds, the cap on executions checked at every execution.
fn loom_builder(bounds: LoomBounds) -> Builder {
    let mut builder = Builder::new();
    builder.max_branches = bounds.branches;
    builder.preemption_bound = bounds.preemptions;
    builder.max_duration = None;
    builder.checkpoint_file = None;
    builder.log = false;
    builder.location = false;
    if let Some(executions) = bounds.executions {
        // loom checks `max_permutations` only every `checkpoint_interval` executions, before
        // running execution `i` (1-based), stopping when `i >= max_permutations`.
        builder.checkpoint_interval = 1;
        builder.max_permutations = Some(usize::try_from(executions + 1).unwrap_or(usize::MAX));
    } else {
        builder.max_permutations = None;
    }
    builder
}

/// Runs one loom check of `test`; returns the executions it ran. A failure panics out of here,
/// as it does out of `loom::model`.
pub fn loom_check(bounds: LoomBounds, test: impl Fn() + Send + Sync + 'static) -> u64 {
    LOOM_EXECUTIONS.store(0, Ordering::Relaxed);
    loom_builder(bounds).check(move || {
        LOOM_EXECUTIONS.fetch_add(1, Ordering::Relaxed);
        test();
    });
    LOOM_EXECUTIONS.load(Ordering::Relaxed)
}

/// Executions the last (possibly failed) loom check started.
pub fn loom_executions() -> u64 {
    LOOM_EXECUTIONS.load(Ordering::Relaxed)
}
