//! Virtual time: a nanosecond clock that only the executor moves.
//!
//! Each poll costs [`crate::Config::poll_cost`] plus seeded jitter, so timers interleave with busy
//! tasks. When nothing is runnable the clock jumps to the next timer. Timers with equal deadlines
//! fire in creation order. Nothing here reads the wall clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::future::Future;
use std::ops::{Add, Sub};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use pin_project::pin_project;

use crate::context::{self, Wait};
use crate::footprint::Resource;

/// A point in virtual time: nanoseconds since the start of the run.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct SimTime(u64);

impl SimTime {
    /// The start of every run.
    pub const ZERO: SimTime = SimTime(0);

    /// A time `nanos` nanoseconds after the start of the run.
    pub const fn from_nanos(nanos: u64) -> SimTime {
        SimTime(nanos)
    }

    /// Nanoseconds since the start of the run.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time since the start of the run.
    pub const fn elapsed_since_start(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: SimTime) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for SimTime {
    type Output = SimTime;
    fn add(self, rhs: Duration) -> SimTime {
        SimTime(self.0.saturating_add(duration_nanos(rhs)))
    }
}

impl Sub<SimTime> for SimTime {
    type Output = Duration;
    fn sub(self, rhs: SimTime) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl fmt::Display for SimTime {
    /// Seconds with nanosecond precision, e.g. `1.000000042s`: exact and stable for snapshots.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("{}.{:09}s", self.0 / 1_000_000_000, self.0 % 1_000_000_000))
    }
}

/// A duration in whole nanoseconds, saturating at `u64::MAX` (584 years).
pub(crate) fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The pending timers of a run: a min-heap of (deadline, id) over a slab of wakers.
///
/// The id is the creation order, so equal deadlines fire in creation order. Cancelling clears the
/// slab entry; the heap entry is dropped lazily when it reaches the top.
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    wakers: Vec<Option<Waker>>,
}

impl Timers {
    pub const fn new() -> Self {
        Timers { heap: BinaryHeap::new(), wakers: Vec::new() }
    }

    pub fn clear(&mut self) {
        self.heap.clear();
        self.wakers.clear();
    }

    pub fn add(&mut self, deadline: u64, waker: Waker) -> u64 {
        let id = self.wakers.len() as u64;
        self.wakers.push(Some(waker));
        self.heap.push(Reverse((deadline, id)));
        id
    }

    pub fn cancel(&mut self, id: u64) {
        if let Some(slot) = self.wakers.get_mut(id as usize) {
            *slot = None;
        }
    }

    /// Replaces the waker of a still-pending timer; returns false if it already fired.
    pub fn set_waker(&mut self, id: u64, waker: &Waker) -> bool {
        match self.wakers.get_mut(id as usize) {
            Some(Some(current)) => {
                if !current.will_wake(waker) {
                    current.clone_from(waker);
                }
                true
            }
            _ => false,
        }
    }

    /// The earliest deadline of a live timer, dropping cancelled ones from the top.
    pub fn next_deadline(&mut self) -> Option<u64> {
        while let Some(&Reverse((deadline, id))) = self.heap.peek() {
            if self.wakers[id as usize].is_some() {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// The earliest heap entry's deadline, live or not: a lower bound for the next firing.
    pub fn peek_deadline(&self) -> u64 {
        self.heap.peek().map_or(u64::MAX, |&Reverse((deadline, _))| deadline)
    }

    /// Moves the wakers of all timers due at `now` into `out`, in (deadline, creation) order.
    pub fn take_due(&mut self, now: u64, out: &mut Vec<Waker>) {
        while let Some(&Reverse((deadline, id))) = self.heap.peek() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            if let Some(waker) = self.wakers[id as usize].take() {
                out.push(waker);
            }
        }
    }
}

/// The current virtual time.
///
/// # Panics
/// Outside a simulation.
pub fn now() -> SimTime {
    Resource::CLOCK.read();
    context::with("now", |ctx| SimTime(ctx.now.get()))
}

/// A clock outside kdst's, asked when nothing is runnable ([`on_idle`]).
pub type IdleHook = Rc<dyn Fn(Option<SimTime>) -> Option<SimTime>>;

/// Registers, for the rest of this run, a clock outside kdst's: another runtime's timers, such
/// as a paused tokio runtime's that code under test sleeps on. When no task is runnable, before
/// the executor jumps to its next timer at `limit` (`None`: it has none, and the run is about to
/// end as a deadlock), it calls `hook(limit)`. The hook may run its clock forward, up to
/// `limit`; if a timer of its own fires first and wakes kdst tasks, it returns when
/// (`Some(t)`, with `now() <= t <= limit`), and the run's clock jumps to `t` instead, where the
/// woken tasks run. It returns `None` when nothing of its own fired by `limit`. A hook must be
/// deterministic (a paused runtime's clock is) and must not poll kdst tasks.
///
/// # Panics
/// Outside a simulation.
pub fn on_idle(hook: impl Fn(Option<SimTime>) -> Option<SimTime> + 'static) {
    context::with_state("on_idle", |state| state.idle_hooks.push(Rc::new(hook)));
}

/// Waits until `duration` of virtual time has passed.
pub fn sleep(duration: Duration) -> Sleep {
    let deadline = now() + duration;
    Sleep::new(deadline)
}

/// Waits until the virtual clock reaches `deadline`.
pub fn sleep_until(deadline: SimTime) -> Sleep {
    Sleep::new(deadline)
}

/// A future that completes at a virtual deadline. Dropping it cancels its timer.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: SimTime,
    timer: Option<u64>,
}

impl Sleep {
    fn new(deadline: SimTime) -> Sleep {
        Sleep { deadline, timer: None }
    }

    /// When this sleep completes.
    pub fn deadline(&self) -> SimTime {
        self.deadline
    }

    /// Moves the deadline, as `tokio::time::Sleep::reset` does.
    pub fn reset(&mut self, deadline: SimTime) {
        self.cancel();
        self.deadline = deadline;
    }

    fn cancel(&mut self) {
        if let Some(id) = self.timer.take()
            && context::is_active()
        {
            context::with_state("Sleep::drop", |state| state.timers.cancel(id));
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let deadline = self.deadline.0;
        context::with("sleep", |ctx| {
            if ctx.now.get() >= deadline {
                Resource::CLOCK.read();
                return Poll::Ready(());
            }
            // Firing the timer wakes this task.
            Resource::CLOCK.check();
            let mut state = ctx.state.borrow_mut();
            let registered = match self.timer {
                Some(id) => state.timers.set_waker(id, cx.waker()),
                None => false,
            };
            if !registered {
                // No footprint beyond the clock read: timers are a set that only the executor
                // reads, when it fires them. With polls that cost no time that happens only
                // when every task waits (a point every step before happens before), and
                // otherwise after a step that wrote the clock; the order of timers with one
                // deadline decides only the order in which their tasks become runnable, which
                // no task observes (a search sorts the runnable set).
                self.timer = Some(state.timers.add(deadline, cx.waker().clone()));
                ctx.next_event.set(ctx.next_event.get().min(deadline));
            }
            let current = ctx.current.get();
            if let Some(meta) = state.tasks.get_mut(current as usize) {
                meta.wait =
                    Some(Wait { what: "sleep", resource: "timer".into(), step: ctx.step.get() });
            }
            Poll::Pending
        })
        .map(|()| self.timer = None)
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// The error of [`timeout`] when the deadline passed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Runs `future` for at most `duration` of virtual time.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout { future, sleep: sleep(duration) }
}

/// The future of [`timeout`].
#[pin_project]
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Timeout<F> {
    #[pin]
    future: F,
    #[pin]
    sleep: Sleep,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(value) = this.future.poll(cx) {
            return Poll::Ready(Ok(value));
        }
        this.sleep.poll(cx).map(|()| Err(Elapsed))
    }
}

/// Ticks every `period` of virtual time; the first tick completes at once (as tokio's does).
/// Ticks missed while the task was busy are dropped and the phase is kept, as Go's
/// `time.Ticker` does: the next tick is the first multiple of `period` after the late one.
///
/// # Panics
/// If `period` is zero.
pub fn interval(period: Duration) -> Interval {
    assert!(!period.is_zero(), "kdst: interval period must be non-zero");
    Interval { period, next: now() }
}

/// The ticker of [`interval`].
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    next: SimTime,
}

impl Interval {
    /// Waits for the next tick and returns its scheduled time.
    pub async fn tick(&mut self) -> SimTime {
        let scheduled = self.next;
        sleep_until(scheduled).await;
        let late = now().saturating_duration_since(scheduled);
        let period = duration_nanos(self.period);
        let missed = duration_nanos(late) / period;
        self.next = SimTime(scheduled.0.saturating_add((missed + 1).saturating_mul(period)));
        scheduled
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}
