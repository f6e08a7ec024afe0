//! Tasks: spawning, joining, yielding, and the labels that make up a task's "stack".
//!
//! A task is a future with a name. Tasks spawned with [`spawn`] keep the run alive until they
//! finish; tasks spawned with [`spawn_daemon`] (controllers, informers, the garbage collector)
//! do not, just as a Go process exits when `main` returns, whatever its goroutines are doing.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};

use crate::context::{self, NO_PROCESS, NO_TASK, Slot, TaskMeta, Wait};
use crate::failure::FailureKind;
use crate::footprint::Resource;
use crate::race::SyncClock;
use crate::trace::{EventKind, TASK_ID_MAX};

/// A task's id: its spawn order within the run, starting at 0.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TaskId(pub u32);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.0)
    }
}

/// Spawns a task that keeps the run alive until it finishes.
///
/// ```
/// # use sim_core::{Outcome, Simulation, spawn};
/// let outcome = Simulation::default().run(7, || {
///     spawn("main", async {
///         let child = spawn("child", async { 6 * 7 });
///         assert_eq!(child.await, 42);
///     });
/// });
/// assert_eq!(outcome, Outcome::Completed);
/// ```
///
/// # Panics
/// Outside a simulation.
pub fn spawn<F>(name: impl Into<Cow<'static, str>>, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    spawn_task(name.into(), false, future)
}

/// Spawns a background task that does not keep the run alive: the run completes when every task
/// spawned with [`spawn`] has finished, whatever daemons are doing.
///
/// # Panics
/// Outside a simulation.
pub fn spawn_daemon<F>(name: impl Into<Cow<'static, str>>, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    spawn_task(name.into(), true, future)
}

fn spawn_task<F>(name: Cow<'static, str>, daemon: bool, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let join = Rc::new(JoinState::new());
    let completer = Completer(join.clone());
    let wrapped = async move {
        let value = future.await;
        completer.0.complete(value);
    };
    Resource::TASKS.write();
    let id = context::with("spawn", |ctx| {
        if !daemon {
            // A spawn changes which exit is the last: it is ordered with every exit that could
            // be (see the executor's `exit`).
            Resource::ALIVE.write();
        }
        let mut state = ctx.state.borrow_mut();
        let id = state.tasks.len() as u32;
        let parent = ctx.current.get();
        let process = match state.spawn_in {
            Some(process) => process,
            None => state.tasks.get(parent as usize).map_or(NO_PROCESS, |meta| meta.process),
        };
        if id >= state.config.tasks_max || id >= TASK_ID_MAX {
            let parent_name = state.task_name(parent).to_string();
            let limit = state.config.tasks_max.min(TASK_ID_MAX);
            drop(state);
            let failure = context::failure_here(
                ctx,
                FailureKind::TaskLimit,
                format!("task limit of {limit} tasks reached when {parent_name} spawned {name}"),
                "likely cause: unbounded spawning in a loop, or a limit set too low for the \
                 program (Config::tasks_max)"
                    .to_string(),
            );
            context::record_failure(ctx, failure);
            return id;
        }
        state.tasks.push(TaskMeta {
            name,
            daemon,
            finished: false,
            parent,
            frames: Vec::new(),
            wait: None,
            resources: 0,
            process,
            aborted: false,
        });
        state.spawned.push((id, Box::pin(wrapped)));
        drop(state);
        crate::race::spawned(ctx, id);
        context::push_event(ctx, EventKind::Spawn { child: TaskId(id) });
        if !daemon {
            ctx.alive.set(ctx.alive.get() + 1);
        }
        ctx.has_spawned.set(true);
        ctx.attention.set(true);
        let mut runq = ctx.runq.borrow_mut();
        debug_assert_eq!(runq.slots.len(), id as usize, "run queue slots follow task ids");
        runq.slots.push(Slot::Queued);
        runq.runnable.push(TaskId(id));
        id
    });
    JoinHandle { id: TaskId(id), join }
}

struct JoinState<T> {
    value: RefCell<Option<T>>,
    finished: Cell<bool>,
    /// The task's future was dropped before it finished: its process crashed, or the run ended.
    aborted: Cell<bool>,
    waiter: RefCell<Option<Waker>>,
    /// The task's end, for the race detector: it happens before the join returns.
    ended: SyncClock,
}

/// Completes a task's [`JoinState`]; dropped unfinished, it marks the task aborted and wakes the
/// joiner.
struct Completer<T>(Rc<JoinState<T>>);

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if !self.0.finished.get() {
            self.0.aborted.set(true);
            let waiter = self.0.waiter.borrow_mut().take();
            if let Some(waker) = waiter {
                waker.wake();
            }
        }
    }
}

impl<T> JoinState<T> {
    fn new() -> Self {
        JoinState {
            value: RefCell::new(None),
            finished: Cell::new(false),
            aborted: Cell::new(false),
            waiter: RefCell::new(None),
            ended: SyncClock::new(),
        }
    }

    fn complete(&self, value: T) {
        self.ended.release();
        *self.value.borrow_mut() = Some(value);
        self.finished.set(true);
        let waiter = self.waiter.borrow_mut().take();
        if let Some(waker) = waiter {
            waker.wake();
        }
    }

    fn poll_join(&self, task: TaskId, cx: &mut TaskContext<'_>) -> Poll<T> {
        if self.finished.get() {
            Resource::task(task.0).read();
            self.ended.acquire();
            let value = self.value.borrow_mut().take();
            return Poll::Ready(value.expect("kdst: a JoinHandle was polled after it completed"));
        }
        if self.aborted.get() {
            Resource::task(task.0).read();
            panic!(
                "kdst: joined task {} ({}), which was aborted (its process crashed); join it with \
                 JoinHandle::result to handle that",
                task.0,
                task_name(task)
            );
        }
        // The task's exit wakes this one.
        Resource::task(task.0).check();
        let mut waiter = self.waiter.borrow_mut();
        match waiter.as_mut() {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => *waiter = Some(cx.waker().clone()),
        }
        drop(waiter);
        set_wait("join", format!("task {} ({})", task.0, task_name(task)));
        Poll::Pending
    }
}

/// Awaits a task's result. Dropping the handle detaches the task; it keeps running.
pub struct JoinHandle<T> {
    id: TaskId,
    join: Rc<JoinState<T>>,
}

impl<T> JoinHandle<T> {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        Resource::task(self.id.0).read();
        self.join.finished.get()
    }

    /// Whether the task was aborted before it finished (its [`crate::Process`] crashed).
    pub fn is_aborted(&self) -> bool {
        Resource::task(self.id.0).read();
        self.join.aborted.get()
    }

    /// Waits for the task: its value, or [`Aborted`] if its process crashed first. (Awaiting the
    /// handle itself panics for an aborted task.)
    pub async fn result(self) -> Result<T, Aborted> {
        let (id, join) = (self.id, self.join);
        std::future::poll_fn(move |cx| {
            if !join.finished.get() && join.aborted.get() {
                Resource::task(id.0).read();
                return Poll::Ready(Err(Aborted { task: id }));
            }
            join.poll_join(id, cx).map(Ok)
        })
        .await
    }
}

/// A joined task was aborted: its [`crate::Process`] crashed before it finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aborted {
    /// The aborted task.
    pub task: TaskId,
}

impl fmt::Display for Aborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} was aborted (its process crashed)", self.task)
    }
}

impl std::error::Error for Aborted {}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("id", &self.id).finish_non_exhaustive()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<T> {
        self.join.poll_join(self.id, cx)
    }
}

/// A set of tasks whose results are collected as they finish.
pub struct JoinSet<T> {
    handles: Vec<JoinHandle<T>>,
}

impl<T: 'static> JoinSet<T> {
    /// An empty set.
    pub fn new() -> Self {
        JoinSet { handles: Vec::new() }
    }

    /// Spawns a task into the set (it keeps the run alive, as [`spawn`] does).
    pub fn spawn<F>(&mut self, name: impl Into<Cow<'static, str>>, future: F) -> TaskId
    where
        F: Future<Output = T> + 'static,
    {
        let handle = spawn(name, future);
        let id = handle.id();
        self.handles.push(handle);
        id
    }

    /// The number of tasks not yet joined.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Whether every task has been joined.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Waits for the next task to finish and returns its result; `None` when the set is empty.
    /// When several have finished, the earliest spawned is returned first.
    pub async fn join_next(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| {
            if self.handles.is_empty() {
                return Poll::Ready(None);
            }
            let ended = |handle: &JoinHandle<T>| handle.is_finished() || handle.join.aborted.get();
            if let Some(index) = self.handles.iter().position(ended) {
                let handle = self.handles.remove(index);
                return handle.join.poll_join(handle.id, cx).map(Some);
            }
            for handle in &self.handles {
                *handle.join.waiter.borrow_mut() = Some(cx.waker().clone());
            }
            set_wait("join_next", format!("JoinSet of {} tasks", self.handles.len()));
            Poll::Pending
        })
        .await
    }

    /// Waits for every task and returns their results in completion order.
    pub async fn join_all(&mut self) -> Vec<T> {
        let mut results = Vec::with_capacity(self.handles.len());
        while let Some(value) = self.join_next().await {
            results.push(value);
        }
        results
    }
}

impl<T: 'static> Default for JoinSet<T> {
    fn default() -> Self {
        JoinSet::new()
    }
}

/// Yields to the scheduler: the task stays runnable, and the strategy may pick another.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // Fast path: yielding with the task's own waker (not one a combinator wrapped) tells the
        // executor directly instead of going through the waker's vtable, Arc and thread-local.
        let own_waker = context::CTX
            .try_with(|ctx| {
                let own = ctx.active.get() && ctx.waker_data.get() == cx.waker().data();
                if own {
                    ctx.yielded.set(true);
                }
                own
            })
            .unwrap_or(false);
        if !own_waker {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// The running task's id.
///
/// # Panics
/// Outside a task.
pub fn current() -> TaskId {
    let id = context::current_task("current");
    assert!(id != NO_TASK, "kdst: `current()` was called outside a task (in setup?)");
    TaskId(id)
}

/// The name of a task of the running simulation (`setup` for no task).
pub fn task_name(task: TaskId) -> String {
    context::with_state("task_name", |state| state.task_name(task.0).to_string())
}

/// The running task's frame labels, outermost first.
pub fn frames() -> Vec<String> {
    context::with("frames", |ctx| {
        let state = ctx.state.borrow();
        let task = ctx.current.get();
        state.tasks.get(task as usize).map_or_else(Vec::new, |meta| {
            meta.frames.iter().map(|frame| frame.to_string()).collect()
        })
    })
}

/// Pushes a label onto the running task's "stack" until the returned guard drops. Failure reports
/// (a Go fatal error's goroutine dump, a deadlock) show each task's labels, so a model of Go code
/// reads like the Go stack it stands for: `enter("requestmanager.ProcessItem")`.
///
/// # Panics
/// Outside a simulation.
pub fn enter(label: impl Into<Cow<'static, str>>) -> Frame {
    let label = label.into();
    context::with("enter", |ctx| {
        let task = ctx.current.get();
        let mut state = ctx.state.borrow_mut();
        match state.tasks.get_mut(task as usize) {
            Some(meta) => {
                meta.frames.push(label);
                Frame { task, depth: meta.frames.len() - 1 }
            }
            None => Frame { task: NO_TASK, depth: 0 },
        }
    })
}

/// The guard of [`enter`]: pops the label (and any pushed after it) when dropped.
#[must_use = "the label is popped when this guard drops"]
#[derive(Debug)]
pub struct Frame {
    task: u32,
    depth: usize,
}

impl Drop for Frame {
    fn drop(&mut self) {
        if self.task != NO_TASK && context::is_active() {
            context::with_state("Frame::drop", |state| {
                if let Some(meta) = state.tasks.get_mut(self.task as usize) {
                    meta.frames.truncate(self.depth);
                }
            });
        }
    }
}

/// Ends the run after the current step, as completed (pending liveness properties are checked
/// one last time). For tests whose driver loop decides it has seen enough.
///
/// # Panics
/// Outside a simulation.
pub fn stop() {
    Resource::RUN.write();
    context::with("stop", |ctx| {
        ctx.stop.set(true);
        ctx.attention.set(true);
    });
}

/// Records what the running task is about to block on, for deadlock and limit reports.
pub(crate) fn set_wait(what: &'static str, resource: impl Into<Cow<'static, str>>) {
    context::with("wait", |ctx| {
        let task = ctx.current.get();
        let step = ctx.step.get();
        let mut state = ctx.state.borrow_mut();
        if let Some(meta) = state.tasks.get_mut(task as usize) {
            meta.wait = Some(Wait { what, resource: resource.into(), step });
        }
    });
}
