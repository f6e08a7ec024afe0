//! The per-thread simulation context: what tasks, primitives and the executor share.
//!
//! One simulation runs on a thread at a time. Everything a task can observe or change about the
//! simulation (the clock, the run queue, timers, events, failures, random streams) lives here, in a
//! `thread_local!`, so that free functions like [`crate::now`] and [`crate::spawn`] work from any
//! task without threading a handle through user code. The executor's own hot state (task futures,
//! the step trace) lives in [`crate::Simulation`] instead, so polling a task never borrows it.
//!
//! Borrow discipline: `runq` is only borrowed by wakers and by the executor's pick; `state` is
//! borrowed for short, non-reentrant sections and never while calling user code or a waker.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;

use crate::failure::{Failure, FailureKind};
use crate::footprint::Access;
use crate::oracle::Oracles;
use crate::rng::Streams;
use crate::strategy::Strategy;
use crate::time::Timers;
use crate::trace::{Event, EventKind};
use crate::{Config, TaskId};

/// A task's future as the executor stores it.
pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = ()>>>;

/// Marker for "no task" in `Context::current`.
pub(crate) const NO_TASK: u32 = u32::MAX;

/// Marker for "in no process" in `TaskMeta::process`.
pub(crate) const NO_PROCESS: u32 = u32::MAX;

/// Scheduling state of one task slot in the run queue.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Not runnable: waiting for a wake.
    Idle,
    /// In `RunQueue::runnable`.
    Queued,
    /// Finished (or never existed in this run): wakes are ignored.
    Done,
}

/// The runnable set, with O(1) wake and O(1) removal by index.
pub(crate) struct RunQueue {
    /// Runnable task ids. Order is a deterministic function of the run's history.
    pub runnable: Vec<TaskId>,
    /// Per task id.
    pub slots: Vec<Slot>,
}

impl RunQueue {
    const fn new() -> Self {
        RunQueue { runnable: Vec::new(), slots: Vec::new() }
    }

    #[inline]
    pub fn wake(&mut self, id: u32) {
        if let Some(slot) = self.slots.get_mut(id as usize)
            && *slot == Slot::Idle
        {
            *slot = Slot::Queued;
            self.runnable.push(TaskId(id));
        }
    }

    #[inline]
    pub fn take(&mut self, index: usize) -> u32 {
        let id = self.runnable.swap_remove(index).0;
        self.slots[id as usize] = Slot::Idle;
        id
    }

    /// Marks a task done: a queued self-wake is withdrawn, and later wakes are ignored.
    pub fn retire(&mut self, id: u32) {
        if self.slots[id as usize] == Slot::Queued
            && let Some(index) = self.runnable.iter().position(|task| task.0 == id)
        {
            self.runnable.swap_remove(index);
        }
        self.slots[id as usize] = Slot::Done;
    }

    pub fn clear(&mut self) {
        self.runnable.clear();
        self.slots.clear();
    }

    #[inline]
    pub fn is_queued(&self, id: u32) -> bool {
        matches!(self.slots.get(id as usize), Some(Slot::Queued))
    }
}

/// What a blocked task waits on, for deadlock reports.
#[derive(Clone, Debug)]
pub(crate) struct Wait {
    /// The operation, e.g. `"lock"`, `"recv"`.
    pub what: &'static str,
    /// The resource, e.g. `Mutex "a"`.
    pub resource: Cow<'static, str>,
    /// The step at which the task blocked; stale if the task has been polled since.
    pub step: u64,
}

/// Everything the simulation knows about a task besides its future.
pub(crate) struct TaskMeta {
    pub name: Cow<'static, str>,
    pub daemon: bool,
    pub finished: bool,
    pub parent: u32,
    /// Labels pushed with [`crate::enter`]: the task's "stack", innermost last.
    pub frames: Vec<Cow<'static, str>>,
    pub wait: Option<Wait>,
    /// Resources this task created ([`crate::footprint::Resource::new`]).
    pub resources: u64,
    /// The process the task belongs to ([`crate::Process`]), or [`NO_PROCESS`].
    pub process: u32,
    /// The task was aborted (its process crashed) rather than finishing.
    pub aborted: bool,
}

/// Shared, non-hot simulation state.
pub(crate) struct State {
    pub config: Config,
    pub seed: u64,
    pub tasks: Vec<TaskMeta>,
    /// Futures spawned since the executor last looked; it moves them into its slots.
    pub spawned: Vec<(u32, BoxFuture)>,
    pub timers: Timers,
    pub events: Vec<Event>,
    /// Values drawn through the strategy: (step, value).
    pub draws: Vec<(u64, u64)>,
    pub failure: Option<Failure>,
    pub streams: Streams,
    pub oracles: Oracles,
    /// Resources the setup created ([`crate::footprint::Resource::new`]).
    pub setup_resources: u64,
    /// The processes of the run ([`crate::Process`]), by id.
    pub processes: Vec<crate::process::ProcessMeta>,
    /// The process new tasks join while a process boots (or [`NO_PROCESS`] while an abort drops
    /// futures); `None`: a task joins its parent's process.
    pub spawn_in: Option<u32>,
    /// Tasks to abort before the next pick.
    pub aborts: Vec<u32>,
    /// Perturbations fired in this run ([`crate::perturb`]).
    pub perturbations: u32,
    /// Per perturbation class seen in this run: its name, its span and the points since it
    /// last fired ([`crate::perturb`]).
    pub classes: Vec<(&'static str, u64, u64)>,
    /// Clocks outside kdst's, asked when nothing is runnable ([`crate::time::on_idle`]).
    pub idle_hooks: Vec<crate::time::IdleHook>,
}

impl State {
    const fn new() -> Self {
        State {
            config: Config::DEFAULT,
            seed: 0,
            tasks: Vec::new(),
            spawned: Vec::new(),
            timers: Timers::new(),
            events: Vec::new(),
            draws: Vec::new(),
            failure: None,
            streams: Streams::new(),
            oracles: Oracles::new(),
            setup_resources: 0,
            processes: Vec::new(),
            spawn_in: None,
            aborts: Vec::new(),
            perturbations: 0,
            classes: Vec::new(),
            idle_hooks: Vec::new(),
        }
    }

    /// The name of a task, or `"setup"` for [`NO_TASK`].
    pub fn task_name(&self, id: u32) -> &str {
        match self.tasks.get(id as usize) {
            Some(meta) => &meta.name,
            None => "setup",
        }
    }
}

/// The per-thread simulation context.
pub(crate) struct Context {
    /// A simulation is running on this thread.
    pub active: Cell<bool>,
    /// Virtual time in nanoseconds since the simulation epoch.
    pub now: Cell<u64>,
    /// Index of the step being executed (the number of steps taken before it).
    pub step: Cell<u64>,
    /// The task being polled, or [`NO_TASK`].
    pub current: Cell<u32>,
    /// A failure was recorded; the executor stops after this step.
    pub failed: Cell<bool>,
    /// `state.spawned` is non-empty.
    pub has_spawned: Cell<bool>,
    /// `state.oracles` is non-empty.
    pub has_oracles: Cell<bool>,
    /// Non-daemon tasks that have not finished; the run completes when this reaches zero.
    pub alive: Cell<u32>,
    /// A task called [`crate::stop`].
    pub stop: Cell<bool>,
    /// Something rare happened (a spawn, a failure, `stop`, the last live task finished): the
    /// executor looks at the flags above before the next pick. One test per step instead of four.
    pub attention: Cell<bool>,
    /// When the executor's after-step slow path must run next: no later than the earliest timer,
    /// the time limit, and 0 (every step) while oracles are registered.
    pub next_event: Cell<u64>,
    /// The running task yielded with its own waker; the executor requeues it (see `YieldNow`).
    pub yielded: Cell<bool>,
    /// `state.aborts` is non-empty.
    pub has_aborts: Cell<bool>,
    /// The executor is dropping the futures of aborted tasks.
    pub crashing: Cell<bool>,
    /// The data pointer of the running task's own waker, to recognise it in `YieldNow`.
    pub waker_data: Cell<*const ()>,
    pub runq: RefCell<RunQueue>,
    /// The strategy asked for footprints: primitives record what each step touches.
    pub tracking: Cell<bool>,
    /// What the running step touched so far (only while `tracking`).
    pub footprint: RefCell<Vec<Access>>,
    /// The race detector is on for this run ([`crate::race`]).
    pub races: Cell<bool>,
    /// The race detector's clocks (only while `races`).
    pub race: RefCell<crate::race::Clocks>,
    pub state: RefCell<State>,
    pub strategy: RefCell<Option<Box<dyn Strategy>>>,
}

thread_local! {
    pub(crate) static CTX: Context = const {
        Context {
            active: Cell::new(false),
            now: Cell::new(0),
            step: Cell::new(0),
            current: Cell::new(NO_TASK),
            failed: Cell::new(false),
            has_spawned: Cell::new(false),
            has_oracles: Cell::new(false),
            alive: Cell::new(0),
            stop: Cell::new(false),
            attention: Cell::new(false),
            next_event: Cell::new(u64::MAX),
            yielded: Cell::new(false),
            has_aborts: Cell::new(false),
            crashing: Cell::new(false),
            waker_data: Cell::new(std::ptr::null()),
            runq: RefCell::new(RunQueue::new()),
            tracking: Cell::new(false),
            footprint: RefCell::new(Vec::new()),
            races: Cell::new(false),
            race: RefCell::new(crate::race::Clocks::new()),
            state: RefCell::new(State::new()),
            strategy: RefCell::new(None),
        }
    };
}

/// Runs `f` with the context of the simulation running on this thread.
///
/// Panics with a message naming `what` when called outside a simulation: sim primitives only work
/// inside tasks (or the setup closure) of a [`crate::Simulation`].
#[inline]
pub(crate) fn with<R>(what: &str, f: impl FnOnce(&Context) -> R) -> R {
    CTX.with(|ctx| {
        assert!(
            ctx.active.get(),
            "kdst: `{what}` was called outside a simulation; sim-core primitives work only inside \
             tasks run by sim_core::Simulation"
        );
        f(ctx)
    })
}

/// Runs `f` with the shared state, borrowed mutably.
#[inline]
pub(crate) fn with_state<R>(what: &str, f: impl FnOnce(&mut State) -> R) -> R {
    with(what, |ctx| f(&mut ctx.state.borrow_mut()))
}

/// Whether a simulation is running on this thread (false during thread teardown).
pub(crate) fn is_active() -> bool {
    CTX.try_with(|ctx| ctx.active.get()).unwrap_or(false)
}

/// The task being polled.
#[inline]
pub(crate) fn current_task(what: &str) -> u32 {
    with(what, |ctx| ctx.current.get())
}

/// Records a task-emitted event; past `Config::events_max` the run stops with an event limit.
pub(crate) fn push_event(ctx: &Context, kind: EventKind) {
    let event = Event {
        step: ctx.step.get(),
        time_ns: ctx.now.get(),
        task: TaskId(ctx.current.get()),
        kind,
    };
    let mut state = ctx.state.borrow_mut();
    if state.events.len() < state.config.events_max {
        state.events.push(event);
        return;
    }
    let limit = state.config.events_max;
    drop(state);
    if !ctx.failed.get() {
        let failure = failure_here(
            ctx,
            FailureKind::EventLimit,
            format!("event limit of {limit} trace events reached"),
            "likely cause: a task emitting events in a tight loop, or a limit set too low for \
             the program (Config::events_max)"
                .to_string(),
        );
        record_failure(ctx, failure);
    }
}

/// Records `failure` as the run's failure, unless one was recorded already (the first wins), and
/// tells the executor to stop after this step.
pub(crate) fn record_failure(ctx: &Context, failure: Failure) {
    let mut state = ctx.state.borrow_mut();
    if state.failure.is_none() {
        state.failure = Some(failure);
    }
    ctx.failed.set(true);
    ctx.attention.set(true);
}

/// The unwind payload sim-core uses to stop a task after recording a failure itself (a Go fatal
/// error, a replay divergence, [`crate::fail`]): no panic message, no panic hook. The executor
/// catches it around every poll.
pub(crate) struct Abort;

/// Records `failure` ([`record_failure`]: the first wins) and unwinds the calling task with
/// [`Abort`].
pub(crate) fn abort_with(ctx: &Context, failure: Failure) -> ! {
    record_failure(ctx, failure);
    std::panic::resume_unwind(Box::new(Abort))
}

/// Builds a failure stamped with the current step, time and task.
pub(crate) fn failure_here(
    ctx: &Context,
    kind: FailureKind,
    message: String,
    details: String,
) -> Failure {
    let task = ctx.current.get();
    let task_name = {
        let state = ctx.state.borrow();
        (task != NO_TASK).then(|| state.task_name(task).to_string())
    };
    Failure {
        kind,
        message,
        details,
        task: (task != NO_TASK).then_some(TaskId(task)),
        task_name,
        involved: Vec::new(),
        step: ctx.step.get(),
        time: crate::SimTime::from_nanos(ctx.now.get()),
    }
}

/// Wakes a task of the running simulation by id; ignored when no simulation runs on this thread.
#[inline]
pub(crate) fn wake_task(id: u32) {
    let _ = CTX.try_with(|ctx| {
        if ctx.active.get() {
            crate::footprint::record_wake(ctx, id);
            ctx.runq.borrow_mut().wake(id);
        }
    });
}
