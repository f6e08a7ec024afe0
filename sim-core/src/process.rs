//! Processes: groups of tasks that crash and restart together.
//!
//! A controller in a real cluster is a process: its informers, event handlers, work queue and
//! workers live and die together, and a restarted controller starts from nothing (empty caches,
//! a fresh list from the API server). [`Process::start`] runs a boot closure that spawns those
//! tasks; every task spawned while it runs, and every task those tasks spawn, belongs to the
//! process. [`Process::crash`] aborts them all at their current await points: their futures are
//! dropped (so `Drop` clean-up runs, as a Rust controller's would on a panic unwind), they never
//! run again, and whoever joins them gets [`crate::Aborted`]. [`Process::restart`] crashes the
//! process and runs the boot closure again, as a new incarnation.
//!
//! A crash takes effect at the end of the step that requested it, before the next pick: a task
//! that crashes its own process ([`crash_current`]) does not run past that point. State the tasks
//! shared with the outside (an API server, a channel's other end) is what the crash leaves
//! behind, as in a real crash: the next incarnation finds it.
//!
//! ```
//! use std::time::Duration;
//! use std::rc::Rc;
//! use std::cell::Cell;
//! use sim_core::{Outcome, Process, Simulation, sleep, spawn, spawn_daemon};
//!
//! let boots = Rc::new(Cell::new(0));
//! let counter = boots.clone();
//! let outcome = Simulation::default().run(1, move || {
//!     let process = Process::start("controller", move || {
//!         counter.set(counter.get() + 1);
//!         spawn_daemon("controller/worker", async {
//!             loop {
//!                 sleep(Duration::from_secs(1)).await;
//!             }
//!         });
//!     });
//!     spawn("chaos", async move {
//!         sleep(Duration::from_millis(1500)).await;
//!         process.restart();
//!         assert_eq!(process.incarnation(), 1);
//!     });
//! });
//! assert_eq!(outcome, Outcome::Completed);
//! assert_eq!(boots.get(), 2);
//! ```

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use crate::context::{self, Context, NO_PROCESS, NO_TASK};
use crate::footprint::Resource;
use crate::trace::EventKind;

/// A process of the run: its id is its start order, from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProcessId(pub u32);

/// What the run knows about one process.
pub(crate) struct ProcessMeta {
    name: Cow<'static, str>,
    boot: Rc<dyn Fn()>,
    /// Restarts so far.
    incarnation: u32,
    /// Not crashed since its last boot.
    running: bool,
    resource: Resource,
}

/// A handle on a process of the running simulation (see the module docs). Copy it freely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Process {
    id: ProcessId,
}

impl Process {
    /// Starts a process named `name`: runs `boot` now, and every task spawned while it runs (and
    /// every task those spawn) belongs to the process. `boot` runs again at each restart.
    ///
    /// # Panics
    /// Outside a simulation.
    pub fn start(name: impl Into<Cow<'static, str>>, boot: impl Fn() + 'static) -> Process {
        let name = name.into();
        let boot: Rc<dyn Fn()> = Rc::new(boot);
        let resource = Resource::new();
        let id = context::with("Process::start", |ctx| {
            let mut state = ctx.state.borrow_mut();
            let id = state.processes.len() as u32;
            state.processes.push(ProcessMeta {
                name,
                boot: boot.clone(),
                incarnation: 0,
                running: true,
                resource,
            });
            id
        });
        let process = Process { id: ProcessId(id) };
        process.resource().write();
        process.boot(boot);
        process
    }

    /// The process the running task belongs to, if any.
    ///
    /// # Panics
    /// Outside a simulation.
    pub fn current() -> Option<Process> {
        context::with("Process::current", |ctx| {
            let state = ctx.state.borrow();
            let task = ctx.current.get();
            let process = state.tasks.get(task as usize).map_or(NO_PROCESS, |meta| meta.process);
            (process != NO_PROCESS).then_some(Process { id: ProcessId(process) })
        })
    }

    /// The process's id.
    pub fn id(&self) -> ProcessId {
        self.id
    }

    /// The process's name.
    pub fn name(&self) -> String {
        self.with(|meta| meta.name.to_string())
    }

    /// Restarts so far.
    pub fn incarnation(&self) -> u32 {
        self.resource().read();
        self.with(|meta| meta.incarnation)
    }

    /// Whether the process runs: started, and not crashed since it last booted.
    pub fn is_running(&self) -> bool {
        self.resource().read();
        self.with(|meta| meta.running)
    }

    /// Crashes the process: every task of it that has not finished is aborted at the end of this
    /// step (its future dropped; it never runs again). The process stays down until
    /// [`Process::restart`]. Crashing a process that is down does nothing.
    pub fn crash(&self) {
        self.resource().write();
        context::with("Process::crash", |ctx| self.abort_tasks(ctx));
    }

    /// Crashes the process (if it runs) and boots it again now, as a new incarnation whose tasks
    /// start from nothing.
    pub fn restart(&self) {
        self.crash();
        let boot = context::with("Process::restart", |ctx| {
            let mut state = ctx.state.borrow_mut();
            let meta = &mut state.processes[self.id.0 as usize];
            meta.incarnation += 1;
            meta.running = true;
            meta.boot.clone()
        });
        let name = self.name();
        crate::event(format!("process {name} restarts (incarnation {})", self.incarnation()));
        self.boot(boot);
    }

    /// Restarts the process after `delay` of virtual time, from a task outside it
    /// (`restart <name>`), whatever the process's own tasks do meanwhile.
    pub fn restart_after(&self, delay: Duration) {
        let process = *self;
        spawn_daemon_outside(format!("restart {}", self.name()), async move {
            crate::sleep(delay).await;
            process.restart();
        });
    }

    fn boot(&self, boot: Rc<dyn Fn()>) {
        spawning_in(self.id.0, &*boot);
    }

    fn abort_tasks(&self, ctx: &Context) {
        let mut state = ctx.state.borrow_mut();
        let meta = &mut state.processes[self.id.0 as usize];
        if !meta.running {
            return;
        }
        meta.running = false;
        let name = meta.name.to_string();
        let process = self.id.0;
        let doomed: Vec<u32> = (0..state.tasks.len() as u32)
            .filter(|&task| {
                let meta = &state.tasks[task as usize];
                meta.process == process && !meta.finished
            })
            .collect();
        let count = doomed.len();
        state.aborts.extend(doomed.iter().copied());
        drop(state);
        for &task in &doomed {
            Resource::task(task).write();
        }
        ctx.has_aborts.set(true);
        ctx.attention.set(true);
        let tasks = if count == 1 { "task" } else { "tasks" };
        context::push_event(
            ctx,
            EventKind::Message(format!("process {name} crashed ({count} {tasks} aborted)").into()),
        );
    }

    fn resource(&self) -> Resource {
        self.with(|meta| meta.resource)
    }

    fn with<R>(&self, f: impl FnOnce(&ProcessMeta) -> R) -> R {
        context::with("Process", |ctx| f(&ctx.state.borrow().processes[self.id.0 as usize]))
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process {}", self.id.0)
    }
}

/// Spawns a daemon task in no process, even from a task of one: what a process arranges to
/// happen to itself later (a restart, a reconnection) must outlive its crash.
///
/// # Panics
/// Outside a simulation.
pub fn spawn_daemon_outside<F>(
    name: impl Into<Cow<'static, str>>,
    future: F,
) -> crate::JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    spawning_in(NO_PROCESS, || crate::spawn_daemon(name, future))
}

/// Runs `f` with every task it spawns joining `process` ([`NO_PROCESS`]: none), whatever the
/// running task's own process.
fn spawning_in<R>(process: u32, f: impl FnOnce() -> R) -> R {
    let previous = context::with("spawn", |ctx| ctx.state.borrow_mut().spawn_in.replace(process));
    let result = f();
    context::with("spawn", |ctx| ctx.state.borrow_mut().spawn_in = previous);
    result
}

/// Crashes the running task's process and, with `restart_after`, restarts it after that delay.
/// The returned future never completes: await it, and the task stops where it is (it is aborted
/// at the end of this step with the rest of its process).
///
/// # Panics
/// Outside a task of a process.
pub fn crash_current(restart_after: Option<Duration>) -> Crashed {
    let process = Process::current().expect("kdst: crash_current() outside a task of a process");
    process.crash();
    if let Some(delay) = restart_after {
        process.restart_after(delay);
    }
    Crashed(())
}

/// The future of [`crash_current`]: pending until the task is aborted.
#[derive(Debug)]
#[must_use = "the crashed task must stop here: await it"]
pub struct Crashed(());

impl Future for Crashed {
    type Output = std::convert::Infallible;

    fn poll(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        Poll::Pending
    }
}

/// Whether the executor is dropping the futures of aborted tasks right now: a `Drop` that models
/// "what a crash leaves in the network" (a request already sent) can tell a crash from the end
/// of the run.
pub fn is_crashing() -> bool {
    context::is_active() && context::CTX.with(|ctx| ctx.crashing.get())
}

/// Drops the futures of the tasks whose process crashed (the executor's side of
/// [`Process::crash`]). `take` hands over a task's future, if it still has one.
pub(crate) fn abort_pending(
    ctx: &Context,
    mut take: impl FnMut(u32) -> Option<crate::context::BoxFuture>,
) {
    ctx.has_aborts.set(false);
    let doomed = std::mem::take(&mut ctx.state.borrow_mut().aborts);
    let current = ctx.current.replace(NO_TASK);
    ctx.crashing.set(true);
    // What a destructor spawns belongs to no process.
    spawning_in(NO_PROCESS, || {
        for task in doomed {
            let daemon = {
                let mut state = ctx.state.borrow_mut();
                let meta = &mut state.tasks[task as usize];
                if meta.finished {
                    continue;
                }
                meta.finished = true;
                meta.aborted = true;
                meta.wait = None;
                meta.frames.clear();
                meta.daemon
            };
            ctx.runq.borrow_mut().retire(task);
            ctx.current.set(task);
            let future = take(task);
            drop(future);
            context::push_event(ctx, EventKind::Exit);
            if !daemon {
                ctx.alive.set(ctx.alive.get() - 1);
                if ctx.alive.get() == 0 {
                    ctx.attention.set(true);
                }
            }
        }
    });
    ctx.crashing.set(false);
    ctx.current.set(current);
}
