//! The race detector: Go's `go test -race` semantics on [`crate::GoMap`] and on shared state a
//! model declares with [`RaceVar`].
//!
//! Go's runtime check (`fatal error: concurrent map writes`) fires only when two accesses
//! overlap in time; the race detector reports two accesses of which one writes, from two tasks,
//! that nothing orders by *happens-before*, whether or not they overlapped in this schedule. So
//! it finds the bug in almost any schedule that makes both accesses, usually the first.
//!
//! Happens-before is kept as vector clocks (Lamport; Fidge; Mattern), one per task, ordered only
//! by what orders Go code:
//!
//! | edge | here | Go |
//! |---|---|---|
//! | a spawn before the child's first step | [`crate::spawn`] | the `go` statement |
//! | a task's end before a join returns | [`crate::JoinHandle`] | (`sync.WaitGroup`, channels) |
//! | an unlock before the next lock | [`crate::sync::Mutex`], [`crate::sync::RwLock`] (an `RUnlock` before the next `Lock`, not before an `RLock`) | `sync.Mutex`, `sync.RWMutex` |
//! | a send before the receive; a close before a receive that sees it | [`crate::sync::channel`], [`crate::sync::oneshot`] | channels |
//! | `Done` before `Wait` returns | [`crate::sync::WaitGroup`] | `sync.WaitGroup` |
//! | a notify before the wake it causes | [`crate::sync::Notify`] | `sync.Cond` with its lock |
//! | every operation of a `sync.Map`, in order | [`crate::SyncMap`] | `sync.Map` (atomics) |
//! | an I/O write before every later I/O read | [`io_write`], [`io_read`] | `syscall.Write` and `syscall.Read` on `ioSync` |
//!
//! Virtual time orders nothing: a `sleep` is not synchronisation, as `time.Sleep` is not.
//!
//! The last row follows upstream: Go's `syscall` package (`syscall_unix.go`, `Read` and
//! `Write`) does `race.ReleaseMerge(&ioSync)` before every write and `race.Acquire(&ioSync)`
//! after every successful read, so in a Go controller an API request written before another
//! goroutine's response is read orders the first goroutine's earlier accesses before the second
//! one's later ones. The fake API server's client says so with [`io_write`] when a request is
//! sent and [`io_read`] when its answer arrives. A race between two goroutines that both talk to
//! the API server is therefore reported only in schedules where no such request separates the
//! two accesses, as Go reports it.
//!
//! Two deviations, both towards fewer reports (never a report Go would not make): a channel
//! keeps one clock rather than one per buffer slot, so a receive is ordered after every send
//! before it, not only its own; and a receive also orders the next send (Go orders only the
//! send `cap` receives later).
//!
//! The detector is on in runs whose [`crate::Config::races`] is [`Races::On`]: the portfolio's
//! runs by default ([`crate::strategy::StrategySpec::config`]), others when asked. A race ends
//! the run as a [`crate::FailureKind::DataRace`] with a report in the shape of Go's
//! (`WARNING: DATA RACE`, the two accesses with their tasks and frames, where each task was
//! created). Go's report does not stop the program unless `GORACE=halt_on_error=1`; here the
//! first race ends the run, so that it replays and shrinks like every other failure.
//!
//! ```
//! use sim_core::{Config, FailureKind, GoMap, Outcome, Races, Simulation, spawn};
//!
//! let mut sim = Simulation::new(Config::default().with_races(Races::On));
//! let outcome = sim.run(0, || {
//!     let map: GoMap<u32, u32> = GoMap::new("processed");
//!     for worker in 0..2 {
//!         let map = map.clone();
//!         spawn(format!("worker-{worker}"), async move {
//!             map.insert(worker, worker).await;
//!         });
//!     }
//! });
//! let Outcome::Failed(failure) = outcome else { panic!("a race") };
//! assert_eq!(failure.kind, FailureKind::DataRace);
//! assert!(failure.details.starts_with("==================\nWARNING: DATA RACE\n"));
//! ```

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::Write as _;

use crate::SimTime;
use crate::TaskId;
use crate::context::{self, CTX, Context, NO_TASK};
use crate::failure::FailureKind;

/// Whether runs detect data races ([`crate::Config::races`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Races {
    /// The strategy decides: on for the portfolio, off otherwise.
    #[default]
    Auto,
    /// Every run detects races.
    On,
    /// No run does; only Go's runtime check ([`crate::GoMap`]'s fatal errors) remains.
    Off,
}

/// A vector clock: per task id, how many of that task's epochs happen before.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct VClock(Vec<u32>);

impl VClock {
    const fn new() -> Self {
        VClock(Vec::new())
    }

    fn get(&self, task: u32) -> u32 {
        self.0.get(task as usize).copied().unwrap_or(0)
    }

    fn join(&mut self, other: &VClock) {
        if other.0.len() > self.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            *mine = (*mine).max(*theirs);
        }
    }

    fn tick(&mut self, task: u32) {
        let index = task as usize;
        if self.0.len() <= index {
            self.0.resize(index + 1, 0);
        }
        self.0[index] += 1;
    }
}

/// Where a task was created, for the report's `created at` section.
#[derive(Clone, Debug, Default)]
struct Creation {
    parent: u32,
    frames: Vec<Cow<'static, str>>,
}

/// The detector's state for one run: every task's clock and creation, and the I/O clock.
pub(crate) struct Clocks {
    tasks: Vec<VClock>,
    created: Vec<Creation>,
    io: VClock,
}

impl Clocks {
    pub(crate) const fn new() -> Self {
        Clocks { tasks: Vec::new(), created: Vec::new(), io: VClock::new() }
    }

    pub(crate) fn clear(&mut self) {
        self.tasks.clear();
        self.created.clear();
        self.io = VClock::new();
    }

    /// Task `task`'s clock, created (at epoch 1) if the task has none yet.
    fn of(&mut self, task: u32) -> &mut VClock {
        let index = task as usize;
        if self.tasks.len() <= index {
            self.tasks.resize(index + 1, VClock::new());
        }
        let clock = &mut self.tasks[index];
        if clock.get(task) == 0 {
            clock.tick(task);
        }
        clock
    }
}

/// Runs `f` with the clocks and the running task, when the detector is on and a task runs.
#[inline]
fn with_task(f: impl FnOnce(&Context, &mut Clocks, u32)) {
    let _ = CTX.try_with(|ctx| {
        if ctx.races.get() && ctx.active.get() && ctx.current.get() != NO_TASK {
            let mut clocks = ctx.race.borrow_mut();
            f(ctx, &mut clocks, ctx.current.get());
        }
    });
}

/// A task was spawned by the running task (or the setup): the child starts after everything
/// its parent did so far, and the parent's later steps are not ordered before the child's.
pub(crate) fn spawned(ctx: &Context, child: u32) {
    if !ctx.races.get() {
        return;
    }
    let parent = ctx.current.get();
    let frames = frames_of(ctx, parent);
    let mut clocks = ctx.race.borrow_mut();
    let mut clock = if parent == NO_TASK { VClock::new() } else { clocks.of(parent).clone() };
    clock.tick(child);
    let index = child as usize;
    if clocks.tasks.len() <= index {
        clocks.tasks.resize(index + 1, VClock::new());
    }
    clocks.tasks[index] = clock;
    if clocks.created.len() <= index {
        clocks.created.resize(index + 1, Creation::default());
    }
    clocks.created[index] = Creation { parent, frames };
    if parent != NO_TASK {
        clocks.of(parent).tick(parent);
    }
}

/// What a release published: the clock of a synchronisation object (a lock, a channel, a
/// join). A release joins the running task's clock into it; an acquire joins it into the task's.
#[derive(Debug, Default)]
pub(crate) struct SyncClock(RefCell<VClock>);

impl SyncClock {
    pub(crate) const fn new() -> Self {
        SyncClock(RefCell::new(VClock::new()))
    }

    /// The running task's accesses so far happen before whatever acquires this later.
    #[inline]
    pub(crate) fn release(&self) {
        with_task(|_, clocks, task| {
            let clock = clocks.of(task);
            self.0.borrow_mut().join(clock);
            clock.tick(task);
        });
    }

    /// Whatever was released into this happens before the running task's next accesses.
    #[inline]
    pub(crate) fn acquire(&self) {
        with_task(|_, clocks, task| clocks.of(task).join(&self.0.borrow()));
    }

    /// Both, in that order: an atomic read-modify-write.
    #[inline]
    pub(crate) fn acquire_release(&self) {
        self.acquire();
        self.release();
    }
}

/// The running task writes to I/O (Go's `syscall.Write`: `race.ReleaseMerge(&ioSync)`): what it
/// did so far happens before every later [`io_read`] of any task. A model of a client calls it
/// when it sends a request; outside a run with the detector on it does nothing.
pub fn io_write() {
    with_task(|_, clocks, task| {
        let clock = clocks.of(task).clone();
        clocks.io.join(&clock);
        clocks.of(task).tick(task);
    });
}

/// The running task reads from I/O (Go's `syscall.Read`: `race.Acquire(&ioSync)`): every
/// earlier [`io_write`] happens before its next accesses. A model of a client calls it when an
/// answer (a response, a watch event) arrives.
pub fn io_read() {
    with_task(|_, clocks, task| {
        let io = std::mem::take(&mut clocks.io);
        clocks.of(task).join(&io);
        clocks.io = io;
    });
}

/// One access of a [`RaceVar`], kept to report it if a later one races with it.
#[derive(Clone, Debug)]
struct Access {
    task: u32,
    epoch: u32,
    write: bool,
    op: Cow<'static, str>,
    step: u64,
    time_ns: u64,
    frames: Vec<Cow<'static, str>>,
}

#[derive(Debug, Default)]
struct Shadow {
    /// The latest write.
    write: Option<Access>,
    /// Per task, its latest read since that write.
    reads: Vec<Access>,
}

/// A piece of shared state the race detector watches: a Go variable, a struct field, a map
/// (every [`crate::GoMap`] has one). Say what each access does with [`RaceVar::read`] and
/// [`RaceVar::write`]; two accesses from different tasks, one a write, that nothing orders
/// end the run with a race report. Outside a run with the detector on, both are no-ops.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use sim_core::race::RaceVar;
/// use sim_core::{Config, Outcome, Races, Simulation, spawn, yield_now};
///
/// let mut sim = Simulation::new(Config::default().with_races(Races::On));
/// let outcome = sim.run(0, || {
///     // `var ready bool`, set by one goroutine and read by another without a lock.
///     let ready = Rc::new((Cell::new(false), RaceVar::new("ready")));
///     let writer = ready.clone();
///     spawn("writer", async move {
///         writer.1.write("main.setReady");
///         writer.0.set(true);
///     });
///     spawn("reader", async move {
///         yield_now().await;
///         ready.1.read("main.isReady");
///         let _ = ready.0.get();
///     });
/// });
/// assert!(matches!(outcome, Outcome::Failed(f) if f.message.contains("variable \"ready\"")));
/// ```
#[derive(Debug)]
pub struct RaceVar {
    what: Cow<'static, str>,
    shadow: RefCell<Shadow>,
}

impl RaceVar {
    /// A variable named `name` in reports (`variable "name"`).
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        RaceVar::described(format!("variable \"{}\"", name.into()))
    }

    /// A variable described as `what` in reports (`map "processed"`).
    pub(crate) fn described(what: String) -> Self {
        RaceVar { what: what.into(), shadow: RefCell::new(Shadow::default()) }
    }

    /// The running task reads the variable; `op` names the access (a function, `runtime.mapaccess2`).
    #[inline]
    pub fn read(&self, op: &'static str) {
        self.access(op, false);
    }

    /// The running task writes the variable; `op` names the access.
    #[inline]
    pub fn write(&self, op: &'static str) {
        self.access(op, true);
    }

    fn access(&self, op: &'static str, write: bool) {
        with_task(|ctx, clocks, task| {
            if ctx.failed.get() {
                return;
            }
            let clock = clocks.of(task);
            let epoch = clock.get(task);
            let mut shadow = self.shadow.borrow_mut();
            let unordered =
                |earlier: &Access| earlier.task != task && earlier.epoch > clock.get(earlier.task);
            let previous = match (&shadow.write, write) {
                (Some(earlier), _) if unordered(earlier) => Some(earlier.clone()),
                (_, true) => shadow.reads.iter().find(|read| unordered(read)).cloned(),
                _ => None,
            };
            let current = Access {
                task,
                epoch,
                write,
                op: Cow::Borrowed(op),
                step: ctx.step.get(),
                time_ns: ctx.now.get(),
                frames: frames_of(ctx, task),
            };
            if let Some(previous) = previous {
                drop(shadow);
                report(ctx, clocks, &self.what, &current, &previous);
                return;
            }
            if write {
                shadow.reads.clear();
                shadow.write = Some(current);
            } else if let Some(read) = shadow.reads.iter_mut().find(|read| read.task == task) {
                *read = current;
            } else {
                shadow.reads.push(current);
            }
        });
    }
}

fn frames_of(ctx: &Context, task: u32) -> Vec<Cow<'static, str>> {
    let state = ctx.state.borrow();
    state.tasks.get(task as usize).map(|meta| meta.frames.clone()).unwrap_or_default()
}

/// Records the race of `current` with `previous` as the run's failure; the run stops after this
/// step.
fn report(ctx: &Context, clocks: &Clocks, what: &str, current: &Access, previous: &Access) {
    let kind = |access: &Access| if access.write { "write" } else { "read" };
    let message = format!(
        "WARNING: DATA RACE: {} at {what} by goroutine {}, previous {} by goroutine {}",
        kind(current),
        current.task,
        kind(previous),
        previous.task
    );
    let mut out = String::from("==================\nWARNING: DATA RACE\n");
    let capitalised = |access: &Access| if access.write { "Write" } else { "Read" };
    access_section(ctx, &mut out, capitalised(current), what, current);
    out.push('\n');
    let previous_kind = format!("Previous {}", kind(previous));
    access_section(ctx, &mut out, &previous_kind, what, previous);
    for access in [current, previous] {
        out.push('\n');
        let state = ctx.state.borrow();
        // The current access's task is the one running; the other may have finished since.
        let finished = state.tasks.get(access.task as usize).is_some_and(|meta| meta.finished);
        let status = if finished { "finished" } else { "running" };
        let _ = writeln!(out, "Goroutine {} ({status}) created at:", access.task);
        match clocks.created.get(access.task as usize) {
            Some(creation) if creation.parent != NO_TASK => {
                for frame in creation.frames.iter().rev() {
                    let _ = writeln!(out, "  {}", call(frame));
                }
                let parent = state.task_name(creation.parent);
                let _ = writeln!(out, "  // by task \"{parent}\" (goroutine {})", creation.parent);
            }
            _ => out.push_str("  // by the setup\n"),
        }
    }
    out.push_str("==================");
    let mut failure = context::failure_here(ctx, FailureKind::DataRace, message, out);
    failure.involved.push(TaskId(previous.task));
    context::record_failure(ctx, failure);
}

/// One access: `Write at map "m" by goroutine 7:`, its operation, the task's frames innermost
/// first, and where and when it ran.
fn access_section(ctx: &Context, out: &mut String, kind: &str, what: &str, access: &Access) {
    let state = ctx.state.borrow();
    let _ = writeln!(out, "{kind} at {what} by goroutine {}:", access.task);
    let _ = writeln!(out, "  {}", call(&access.op));
    for frame in access.frames.iter().rev() {
        let _ = writeln!(out, "  {}", call(frame));
    }
    let _ = writeln!(
        out,
        "  // task \"{}\", step {}, t={}",
        state.task_name(access.task),
        access.step,
        SimTime::from_nanos(access.time_ns)
    );
}

/// A frame label as Go prints a call: `main.worker()`.
fn call(label: &str) -> String {
    if label.ends_with(')') { label.to_string() } else { format!("{label}()") }
}
