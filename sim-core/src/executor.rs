//! The seeded, single-threaded executor.
//!
//! A step: the strategy picks one runnable task, the executor polls it once, virtual time advances
//! by the poll's cost, due timers fire, oracles run. The loop ends when every non-daemon task has
//! finished, an oracle fires, nothing can ever run again (deadlock), or a limit trips.
//!
//! Speed comes from doing little per step: picking is O(1) (an array of runnable ids with
//! swap-remove and a queued flag per task, so double wakes are free), each task slot's waker is
//! built once and reused across runs, the step trace is one `u32` per step in a reused buffer, the
//! time jitter is a hash rather than a stream draw, and timers and oracles cost one comparison
//! per step when idle.

mod ends;

use std::any::Any;
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Once};
use std::task::{Context as TaskContext, Wake, Waker};

use crate::context::{self, Abort, BoxFuture, CTX, Context, NO_TASK};
use crate::failure::{FailureKind, Outcome};
use crate::footprint::{self, Access, Resource};
use crate::oracle;
use crate::rng::{fnv1a, mix64};
use crate::schedule::Schedule;
use crate::strategy::{Choice, Random, Strategy};
use crate::time::duration_nanos;
use crate::trace::{EventKind, StepRecord, Trace};
use crate::{Config, TaskId};
use ends::recorded_outcome;

/// Wakes one task slot. Built once per slot and reused for every run.
struct TaskWaker(u32);

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        context::wake_task(self.0);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        context::wake_task(self.0);
    }
}

/// What the strategy's pick led to.
enum Pick {
    /// Poll this task.
    Task(u32),
    /// Nothing is runnable.
    Idle,
    /// The strategy could not follow the program; the failure is recorded.
    Diverged,
}

struct TaskSlot {
    future: Option<BoxFuture>,
    waker: Waker,
    /// The last step at which this task was polled.
    last_polled: u64,
}

/// A reusable simulator: run many seeds through one `Simulation` to reuse its allocations.
///
/// ```
/// use std::time::Duration;
/// use sim_core::{Outcome, Simulation, sleep, spawn, now};
///
/// let mut sim = Simulation::default();
/// let outcome = sim.run(42, || {
///     spawn("sleeper", async {
///         sleep(Duration::from_secs(3600)).await;
///         assert!(now().as_nanos() >= 3_600_000_000_000);
///     });
/// });
/// assert_eq!(outcome, Outcome::Completed);
/// ```
pub struct Simulation {
    config: Config,
    strategy: Option<Box<dyn Strategy>>,
    slots: Vec<TaskSlot>,
    trace: Trace,
    spawned: Vec<(u32, BoxFuture)>,
    due: Vec<Waker>,
}

impl Default for Simulation {
    fn default() -> Self {
        Simulation::new(Config::default())
    }
}

impl Simulation {
    /// A simulator with `config` and the random strategy.
    pub fn new(config: Config) -> Self {
        Simulation {
            config,
            strategy: Some(Box::new(Random::new())),
            slots: Vec::new(),
            trace: Trace::default(),
            spawned: Vec::new(),
            due: Vec::new(),
        }
    }

    /// Replaces the strategy.
    pub fn with_strategy(mut self, strategy: impl Strategy + 'static) -> Self {
        self.set_strategy(Box::new(strategy));
        self
    }

    /// Replaces the strategy.
    pub fn set_strategy(&mut self, strategy: Box<dyn Strategy>) {
        self.strategy = Some(strategy);
    }

    /// The strategy's name.
    pub fn strategy_name(&self) -> &'static str {
        self.strategy.as_ref().map_or("none", |strategy| strategy.name())
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The trace of the last run.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The last run as a schedule file, labelled with the test's name and parameters.
    pub fn schedule(&self, test: &str, params: &[(String, String)]) -> Schedule {
        let expect = self.trace.outcome().and_then(Outcome::failure).map(|failure| {
            format!("{} at step {}: {}", failure.kind, failure.step, failure.message)
        });
        Schedule {
            kdst_version: env!("CARGO_PKG_VERSION").to_string(),
            test: test.to_string(),
            seed: self.trace.seed(),
            strategy: self.trace.strategy().to_string(),
            params: params.to_vec(),
            expect,
            steps: self.trace.step_tasks(),
            draws: self.trace.draws().to_vec(),
        }
    }

    /// Runs one simulation with `seed`: `setup` spawns the tasks, then the executor runs them.
    ///
    /// # Panics
    /// If a simulation is already running on this thread (runs do not nest).
    pub fn run(&mut self, seed: u64, setup: impl FnOnce()) -> Outcome {
        install_panic_hook();
        CTX.with(|ctx| {
            assert!(
                !ctx.active.get(),
                "kdst: a simulation is already running on this thread; runs do not nest"
            );
            self.begin(ctx, seed);
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(setup)) {
                self.record_panic(ctx, payload, "setup panicked: ");
            }
            // One landing pad around the whole loop, not one per poll: a panic ends the run, and
            // `ctx.current` still names the task that was being polled.
            let outcome = match panic::catch_unwind(AssertUnwindSafe(|| self.run_loop(ctx))) {
                Ok(outcome) => outcome,
                Err(payload) => {
                    self.record_panic(
                        ctx,
                        payload,
                        "panicked outside any task (an oracle check?): ",
                    );
                    ctx.current.set(NO_TASK);
                    recorded_outcome(ctx)
                }
            };
            self.finish(ctx, outcome)
        })
    }

    fn begin(&mut self, ctx: &Context, seed: u64) {
        let mut strategy = self.strategy.take().expect("kdst internal: strategy missing");
        strategy.begin(seed);
        ctx.tracking.set(strategy.wants_footprints());
        ctx.footprint.borrow_mut().clear();
        ctx.races.set(self.config.races == crate::Races::On);
        ctx.race.borrow_mut().clear();
        *ctx.strategy.borrow_mut() = Some(strategy);
        ctx.active.set(true);
        ctx.now.set(0);
        ctx.step.set(0);
        ctx.current.set(NO_TASK);
        ctx.failed.set(false);
        ctx.has_spawned.set(false);
        ctx.has_oracles.set(false);
        ctx.alive.set(0);
        ctx.stop.set(false);
        ctx.attention.set(true);
        ctx.next_event.set(duration_nanos(self.config.time_max).saturating_add(1));
        ctx.yielded.set(false);
        ctx.has_aborts.set(false);
        ctx.crashing.set(false);
        ctx.runq.borrow_mut().clear();
        let mut state = ctx.state.borrow_mut();
        state.config = self.config.clone();
        state.seed = seed;
        state.tasks.clear();
        state.spawned.clear();
        state.timers.clear();
        std::mem::swap(&mut state.events, &mut self.trace.events);
        state.events.clear();
        std::mem::swap(&mut state.draws, &mut self.trace.draws);
        state.draws.clear();
        state.failure = None;
        state.streams.reset(seed);
        state.oracles.clear();
        state.setup_resources = 0;
        state.processes.clear();
        state.spawn_in = None;
        state.aborts.clear();
        state.perturbations = 0;
        state.classes.clear();
        state.idle_hooks.clear();
        self.trace.seed = seed;
        self.trace.steps.clear();
        self.trace.outcome = None;
    }

    fn run_loop(&mut self, ctx: &Context) -> Outcome {
        let steps_max = self.config.steps_max;
        let time_max = duration_nanos(self.config.time_max);
        let poll_cost = duration_nanos(self.config.poll_cost);
        let jitter_span = duration_nanos(self.config.poll_jitter).saturating_add(1).min(1 << 32);
        let time_key = mix64(ctx.state.borrow().seed ^ fnv1a(b"time"));
        let mut previous = NO_TASK;
        let mut idled = false;
        let mut step: u64 = 0;
        loop {
            if ctx.attention.get() {
                ctx.attention.set(false);
                if ctx.has_spawned.get() {
                    self.adopt_spawned(ctx);
                }
                if ctx.has_aborts.get() {
                    let slots = &mut self.slots;
                    crate::process::abort_pending(ctx, |task| {
                        slots.get_mut(task as usize).and_then(|slot| slot.future.take())
                    });
                    if ctx.has_spawned.get() {
                        self.adopt_spawned(ctx);
                    }
                }
                if ctx.failed.get() {
                    return recorded_outcome(ctx);
                }
                if ctx.alive.get() == 0 || ctx.stop.get() {
                    return self.complete(ctx);
                }
            }
            if step >= steps_max {
                return self.step_limit(ctx);
            }
            ctx.step.set(step);
            let task = match self.pick(ctx, step, previous, idled) {
                Pick::Task(task) => task,
                Pick::Idle => match self.advance_idle(ctx, time_max) {
                    Some(outcome) => return outcome,
                    None => {
                        idled = true;
                        continue;
                    }
                },
                Pick::Diverged => return recorded_outcome(ctx),
            };
            idled = false;
            self.poll(ctx, task, step);
            previous = task;
            step += 1;
            let jitter = ((mix64(time_key ^ step) >> 32) * jitter_span) >> 32;
            let now = ctx.now.get() + poll_cost + jitter;
            ctx.now.set(now);
            if now >= ctx.next_event.get()
                && let Some(outcome) = self.after_step(ctx, now, time_max)
            {
                return outcome;
            }
        }
    }

    /// The slow path after a step, run when `ctx.next_event` is due: fire timers, check oracles,
    /// enforce the time limit, and compute when to come back.
    fn after_step(&mut self, ctx: &Context, now: u64, time_max: u64) -> Option<Outcome> {
        self.fire_timers(ctx, now);
        if ctx.has_oracles.get()
            && !ctx.failed.get()
            && let Some(failure) = oracle::check(ctx, false)
        {
            context::record_failure(ctx, failure);
        }
        if now > time_max && !ctx.failed.get() {
            return Some(self.time_limit(ctx));
        }
        self.schedule_next_event(ctx, time_max);
        None
    }

    fn schedule_next_event(&self, ctx: &Context, time_max: u64) {
        let next = if ctx.has_oracles.get() {
            0
        } else {
            let timer = ctx.state.borrow().timers.peek_deadline();
            timer.min(time_max.saturating_add(1))
        };
        ctx.next_event.set(next);
    }

    /// Asks the strategy for the next task.
    #[inline]
    fn pick(&mut self, ctx: &Context, step: u64, previous: u32, idle: bool) -> Pick {
        let mut runq = ctx.runq.borrow_mut();
        let count = runq.runnable.len();
        if count == 0 {
            return Pick::Idle;
        }
        let current = (previous != NO_TASK && runq.is_queued(previous)).then_some(TaskId(previous));
        let choice = Choice { step, runnable: &runq.runnable, current, idle };
        let picked = {
            let mut strategy = ctx.strategy.borrow_mut();
            strategy.as_mut().expect("kdst internal: no strategy during a run").next_task(&choice)
        };
        let index = match picked {
            Ok(index) => index,
            Err(divergence) => {
                drop(runq);
                let message = format!("nondeterminism at step {step}: {divergence}");
                let failure =
                    context::failure_here(ctx, FailureKind::Nondeterminism, message, String::new());
                context::record_failure(ctx, failure);
                return Pick::Diverged;
            }
        };
        assert!(index < count, "kdst: strategy picked index {index} of {count} runnable tasks");
        let task = runq.take(index);
        let preemption = current.is_some_and(|current| current.0 != task);
        self.trace.steps.push(StepRecord::pack(task, count > 1, preemption));
        Pick::Task(task)
    }

    #[inline]
    fn poll(&mut self, ctx: &Context, task: u32, step: u64) {
        ctx.current.set(task);
        let slot = &mut self.slots[task as usize];
        slot.last_polled = step;
        ctx.waker_data.set(slot.waker.data());
        let future = slot.future.as_mut().expect("kdst internal: runnable task has no future");
        let mut cx = TaskContext::from_waker(&slot.waker);
        if future.as_mut().poll(&mut cx).is_ready() {
            self.exit(ctx, task);
        } else if ctx.yielded.get() {
            ctx.yielded.set(false);
            ctx.runq.borrow_mut().wake(task);
        }
        if ctx.tracking.get() {
            self.step_done(ctx, task);
        }
        ctx.current.set(NO_TASK);
    }

    /// Hands the step's footprint to the strategy, with what every step touches: its own task
    /// (which a wake writes), whether the run goes on (which `stop` and the last live task's exit
    /// write), and the clock when polls cost virtual time (each step then moves it).
    #[cold]
    fn step_done(&mut self, ctx: &Context, task: u32) {
        let mut accesses = ctx.footprint.borrow_mut();
        accesses.push(Access { resource: Resource::task(task), write: true, check: false });
        accesses.push(Access { resource: Resource::RUN, write: false, check: false });
        if !self.config.poll_cost.is_zero() || !self.config.poll_jitter.is_zero() {
            accesses.push(Access { resource: Resource::CLOCK, write: true, check: false });
        }
        footprint::normalize(&mut accesses);
        let runnable = ctx.runq.borrow().is_queued(task);
        let mut strategy = ctx.strategy.borrow_mut();
        let strategy = strategy.as_mut().expect("kdst internal: no strategy during a run");
        strategy.step_done(TaskId(task), &accesses, runnable);
        accesses.clear();
    }

    /// A task finished: mark it done (so wakes from its last poll or its destructors are ignored,
    /// and a self-wake already queued is withdrawn), then drop its future inside its own context.
    fn exit(&mut self, ctx: &Context, task: u32) {
        ctx.runq.borrow_mut().retire(task);
        let future = self.slots[task as usize].future.take();
        drop(future);
        let daemon = {
            let mut state = ctx.state.borrow_mut();
            let meta = &mut state.tasks[task as usize];
            meta.finished = true;
            meta.daemon
        };
        Resource::EXIT.read();
        if !daemon {
            ctx.alive.set(ctx.alive.get() - 1);
            // Exits that leave two or more live tasks commute (a read of the count), in either
            // order; an exit that leaves one or none may be, or decide, the last (a write), and
            // the last ends the run.
            if ctx.alive.get() >= 2 {
                Resource::ALIVE.read();
            } else {
                Resource::ALIVE.write();
            }
            if ctx.alive.get() == 0 {
                Resource::RUN.write();
                ctx.attention.set(true);
            }
        }
        context::push_event(ctx, EventKind::Exit);
    }

    /// Records a panic of the task being polled; `outside` prefixes the message when no task was.
    fn record_panic(&mut self, ctx: &Context, payload: Box<dyn Any + Send>, outside: &str) {
        if payload.is::<Abort>() {
            debug_assert!(ctx.failed.get(), "an Abort unwind follows a recorded failure");
            return;
        }
        let note = PANIC_NOTE.with(|note| note.borrow_mut().take());
        let (message, location) = match note {
            Some(note) => note,
            None => (payload_message(payload.as_ref()), String::new()),
        };
        let task = ctx.current.get();
        let message = if task == NO_TASK { format!("{outside}{message}") } else { message };
        let details =
            if location.is_empty() { String::new() } else { format!("panicked at {location}") };
        let failure = context::failure_here(ctx, FailureKind::Panic, message, details);
        context::record_failure(ctx, failure);
    }

    fn adopt_spawned(&mut self, ctx: &Context) {
        std::mem::swap(&mut self.spawned, &mut ctx.state.borrow_mut().spawned);
        ctx.has_spawned.set(false);
        for (task, future) in self.spawned.drain(..) {
            let index = task as usize;
            while self.slots.len() <= index {
                let waker = Waker::from(Arc::new(TaskWaker(self.slots.len() as u32)));
                self.slots.push(TaskSlot { future: None, waker, last_polled: 0 });
            }
            self.slots[index].future = Some(future);
        }
    }

    fn fire_timers(&mut self, ctx: &Context, now: u64) {
        {
            let mut state = ctx.state.borrow_mut();
            state.timers.take_due(now, &mut self.due);
        }
        for waker in self.due.drain(..) {
            waker.wake();
        }
    }

    /// Nothing is runnable: jump the clock to the next timer or liveness deadline, or report a
    /// deadlock. Returns an outcome when the run ends.
    fn advance_idle(&mut self, ctx: &Context, time_max: u64) -> Option<Outcome> {
        let (mut next_timer, mut next_deadline, hooks) = {
            let mut state = ctx.state.borrow_mut();
            let hooks = (!state.idle_hooks.is_empty()).then(|| state.idle_hooks.clone());
            (state.timers.next_deadline(), state.oracles.next_deadline(), hooks)
        };
        if let Some(hooks) = hooks {
            // Another clock (a tokio runtime's timers) may have something due before kdst's
            // next event: each hook may advance to it and wake what it wakes.
            let mut limit = next_timer.map(|timer| next_deadline.map_or(timer, |d| d.min(timer)));
            limit = limit.map(|limit| limit.min(time_max.saturating_add(1)));
            let mut woke = None;
            for hook in hooks {
                if let Some(at) = hook(limit.map(crate::time::SimTime::from_nanos)) {
                    let at = at.as_nanos().max(ctx.now.get());
                    limit = Some(limit.map_or(at, |limit| limit.min(at)));
                    woke = Some(at);
                }
            }
            // A hook may have woken tasks (a timer of its own, or one its clock's catching up
            // fired) whether or not it says so: then the run goes on from there.
            if !ctx.runq.borrow().runnable.is_empty() {
                let at = woke.unwrap_or(ctx.now.get());
                if at > time_max {
                    ctx.now.set(time_max.max(ctx.now.get()));
                    return Some(self.time_limit(ctx));
                }
                ctx.now.set(at);
                self.schedule_next_event(ctx, time_max);
                return None;
            }
            // What the hooks ran may have set kdst timers of its own.
            let mut state = ctx.state.borrow_mut();
            (next_timer, next_deadline) =
                (state.timers.next_deadline(), state.oracles.next_deadline());
        }
        let Some(next_timer) = next_timer else {
            return Some(self.deadlock(ctx));
        };
        let next = next_deadline.map_or(next_timer, |deadline| deadline.min(next_timer));
        if next > time_max {
            ctx.now.set(time_max.max(ctx.now.get()));
            return Some(self.time_limit(ctx));
        }
        ctx.now.set(ctx.now.get().max(next));
        self.fire_timers(ctx, ctx.now.get());
        if ctx.has_oracles.get()
            && let Some(failure) = oracle::check(ctx, false)
        {
            context::record_failure(ctx, failure);
        }
        self.schedule_next_event(ctx, time_max);
        None
    }

    /// Ends the run: strict replays check they used their whole schedule, futures are dropped in
    /// task order, and the trace takes the run's buffers.
    fn finish(&mut self, ctx: &Context, mut outcome: Outcome) -> Outcome {
        let steps = self.trace.steps.len() as u64;
        let mut strategy = ctx.strategy.borrow_mut().take().expect("kdst internal: strategy lost");
        if let (Outcome::Completed, Err(divergence)) = (&outcome, strategy.end(steps)) {
            let message = format!("nondeterminism at step {steps}: {divergence}");
            let failure =
                self.limit_failure(ctx, FailureKind::Nondeterminism, message, String::new());
            outcome = Outcome::Failed(failure);
        }
        self.strategy = Some(strategy);
        for slot in &mut self.slots {
            if let Some(future) = slot.future.take() {
                // A destructor that panics must not take the harness down with it.
                let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(future)));
            }
        }
        PANIC_NOTE.with(|note| note.borrow_mut().take());
        let mut state = ctx.state.borrow_mut();
        std::mem::swap(&mut state.events, &mut self.trace.events);
        std::mem::swap(&mut state.draws, &mut self.trace.draws);
        self.trace.task_names.clear();
        self.trace.task_names.extend(state.tasks.drain(..).map(|meta| meta.name));
        state.spawned.clear();
        state.timers.clear();
        state.oracles.clear();
        state.aborts.clear();
        let hooks = std::mem::take(&mut state.idle_hooks);
        let processes = std::mem::take(&mut state.processes);
        drop(state);
        drop(processes);
        drop(hooks);
        ctx.runq.borrow_mut().clear();
        ctx.waker_data.set(std::ptr::null());
        ctx.tracking.set(false);
        ctx.footprint.borrow_mut().clear();
        self.trace.strategy = self.strategy_name();
        self.trace.end_time_ns = ctx.now.get();
        self.trace.outcome = Some(outcome.clone());
        ctx.active.set(false);
        outcome
    }
}

/// Whether a simulation is running on this thread (inside [`Simulation::run`]): runs do not
/// nest, so code that needs a run of its own from here must use another thread.
pub fn in_simulation() -> bool {
    context::is_active()
}

fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

thread_local! {
    /// The message and location of the last panic inside a simulation on this thread.
    static PANIC_NOTE: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// Installs (once per process) a panic hook that keeps panics inside simulations quiet and
/// captures their message and location for the failure report; other panics go to the previous
/// hook as before.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if context::is_active() {
                let message = info.payload_as_str().unwrap_or("a panic with a non-string payload");
                let location = info.location().map(ToString::to_string).unwrap_or_default();
                PANIC_NOTE.with(|note| *note.borrow_mut() = Some((message.to_string(), location)));
            } else {
                previous(info);
            }
        }));
    });
}
