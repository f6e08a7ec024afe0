//! client-go's work queue, for simulated controllers.
//!
//! Follows `k8s.io/client-go/util/workqueue`: `queue.go` (a FIFO with its `dirty` and
//! `processing` sets), `delaying_queue.go` (`AddAfter` and its waiting loop),
//! `rate_limiting_queue.go` (`AddRateLimited`, `Forget`, `NumRequeues`) and
//! `default_rate_limiters.go` (the per-item exponential limiter, the token bucket of
//! `golang.org/x/time/rate`, and their maximum). The guarantees are client-go's:
//!
//! - a key is handed to at most one worker at a time: [`WorkQueue::get`] moves it into
//!   `processing` until [`WorkQueue::done`];
//! - adds of a key already queued coalesce: N adds, one [`WorkQueue::get`];
//! - a key added while it is processed is handed out once more after `done`, however often it
//!   was added;
//! - keys are handed out first in, first out (a key re-queued by `done` goes to the back);
//! - delayed keys become ready in (ready time, order of add) order, in virtual time; a key
//!   waiting twice keeps the earlier ready time.
//!
//! Differences a controller cannot observe: an add wakes every blocked `get` (Go's
//! `cond.Signal` wakes one), so the strategy picks which worker wins the key; `add_after` puts the
//! key in the waiting heap at once instead of through the waiting loop's buffered channel; there
//! are no metrics and no 10 s heartbeat (virtual time needs none). Added for simulation: a
//! queue holding more than [`QueueConfig::length_max`] keys ends the run as a limit.

use std::cell::{RefCell, RefMut};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Display;
use std::rc::{Rc, Weak};
use std::time::Duration;

use sim_core::footprint::Resource;
use sim_core::sync::Notify;
use sim_core::{FailureKind, SimTime, event, now, spawn_daemon, timeout, yield_now};

/// A client-go work queue of keys `K`. Cloning gives another handle to the same queue.
pub struct WorkQueue<K> {
    shared: Rc<Shared<K>>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        WorkQueue { shared: self.shared.clone() }
    }
}

impl<K> std::fmt::Debug for WorkQueue<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.state();
        f.debug_struct("WorkQueue")
            .field("name", &self.shared.name)
            .field("len", &state.queue.len())
            .field("processing", &state.processing.len())
            .field("waiting", &state.waiting_at.len())
            .finish()
    }
}

struct Shared<K> {
    name: String,
    /// Wakes tasks blocked in `get` or `shut_down_with_drain` (client-go's `cond`).
    ready: Notify,
    /// Wakes the waiting loop: an earlier deadline, or shutdown.
    wakeup: Notify,
    state: RefCell<State<K>>,
    /// What steps that use the queue touch (every operation writes it).
    resource: Resource,
}

impl<K> Shared<K> {
    /// The state, for a step that uses the queue.
    fn state(&self) -> RefMut<'_, State<K>> {
        self.resource.write();
        self.state.borrow_mut()
    }
}

struct State<K> {
    queue: VecDeque<K>,
    dirty: BTreeSet<K>,
    processing: BTreeSet<K>,
    shutting_down: bool,
    drain: bool,
    /// The delaying queue's heap: (ready time, order of add, key).
    waiting: BTreeSet<(SimTime, u64, K)>,
    /// Each waiting key's entry in `waiting` (client-go's `waitingEntryByData`).
    waiting_at: BTreeMap<K, (SimTime, u64)>,
    next_seq: u64,
    loop_spawned: bool,
    limiter: RateLimiter<K>,
    length_max: usize,
}

impl<K: Ord + Clone + Display + 'static> WorkQueue<K> {
    /// A queue with the default configuration ([`QueueConfig::default`]).
    pub fn new(name: impl Into<String>) -> Self {
        WorkQueue::with_config(name, QueueConfig::default())
    }

    /// A queue with `config`.
    pub fn with_config(name: impl Into<String>, config: QueueConfig<K>) -> Self {
        let name = name.into();
        let state = State {
            queue: VecDeque::new(),
            dirty: BTreeSet::new(),
            processing: BTreeSet::new(),
            shutting_down: false,
            drain: false,
            waiting: BTreeSet::new(),
            waiting_at: BTreeMap::new(),
            next_seq: 0,
            loop_spawned: false,
            limiter: config.rate_limiter,
            length_max: config.length_max,
        };
        let shared = Shared {
            ready: Notify::named(format!("work queue {name}")),
            wakeup: Notify::named(format!("work queue {name} waiting loop")),
            name,
            state: RefCell::new(state),
            resource: Resource::new(),
        };
        WorkQueue { shared: Rc::new(shared) }
    }

    /// The queue's name, as given.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Marks `key` as needing processing (client-go's `Add`). Ignored after shutdown and while
    /// the key is already dirty; a key being processed is queued again by [`WorkQueue::done`].
    ///
    /// Ends the run with [`FailureKind::ResourceLimit`] if the queue would hold more than
    /// [`QueueConfig::length_max`] keys.
    pub fn add(&self, key: K) {
        let mut state = self.shared.state();
        if state.shutting_down || state.dirty.contains(&key) {
            return;
        }
        if state.processing.contains(&key) {
            state.dirty.insert(key);
            return;
        }
        self.check_room(state.queue.len() + state.waiting_at.len(), state.length_max);
        state.dirty.insert(key.clone());
        state.queue.push_back(key);
        drop(state);
        self.shared.ready.notify_waiters();
    }

    /// Adds `key` once `delay` of virtual time has passed (client-go's `AddAfter`); a zero delay
    /// adds at once. A key already waiting keeps the earlier of its two ready times. Counts
    /// towards [`QueueConfig::length_max`] while waiting.
    pub fn add_after(&self, key: K, delay: Duration) {
        if self.is_shutting_down() {
            return;
        }
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let ready_at = now() + delay;
        let mut state = self.shared.state();
        if let Some(&(at, seq)) = state.waiting_at.get(&key) {
            if at <= ready_at {
                return;
            }
            state.waiting.remove(&(at, seq, key.clone()));
        } else {
            self.check_room(state.queue.len() + state.waiting_at.len(), state.length_max);
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.waiting.insert((ready_at, seq, key.clone()));
        state.waiting_at.insert(key.clone(), (ready_at, seq));
        let earliest = state.waiting.first().is_some_and(|first| first.1 == seq);
        let spawn = !std::mem::replace(&mut state.loop_spawned, true);
        drop(state);
        event(format!("{}: add {key} after {delay:?}", self.shared.name));
        if spawn {
            let waiting = waiting_loop(Rc::downgrade(&self.shared));
            spawn_daemon(format!("{}/waiting-loop", self.shared.name), waiting);
        } else if earliest {
            self.shared.wakeup.notify_one();
        }
    }

    /// Adds `key` after the rate limiter's delay for it (client-go's `AddRateLimited`), which
    /// counts one more requeue of the key.
    pub fn add_rate_limited(&self, key: K) {
        let delay = self.shared.state().limiter.when(&key);
        self.add_after(key, delay);
    }

    /// Resets the rate limiter's failure count of `key` (client-go's `Forget`).
    pub fn forget(&self, key: &K) {
        self.shared.state().limiter.forget(key);
    }

    /// How many times `key` was rate-limited since it was last forgotten.
    pub fn num_requeues(&self, key: &K) -> u32 {
        self.shared.state().limiter.num_requeues(key)
    }

    /// Waits for a key and marks it as processing; the caller must call [`WorkQueue::done`]
    /// with it. `None` once the queue is shut down and no key is left. A scheduling point; a
    /// blocked caller waits on `Notify "work queue <name>"` in deadlock reports.
    pub async fn get(&self) -> Option<K> {
        yield_now().await;
        loop {
            let notified = self.shared.ready.notified();
            {
                let mut state = self.shared.state();
                if let Some(key) = state.queue.pop_front() {
                    state.dirty.remove(&key);
                    state.processing.insert(key.clone());
                    drop(state);
                    event(format!("{}: get {key}", self.shared.name));
                    return Some(key);
                }
                if state.shutting_down {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Ends the processing of `key`; if it was added meanwhile, queues it again.
    pub fn done(&self, key: &K) {
        let mut state = self.shared.state();
        state.processing.remove(key);
        let again = state.dirty.contains(key);
        if again {
            state.queue.push_back(key.clone());
        }
        let wake = again || state.processing.is_empty();
        drop(state);
        let requeued = if again { ", queued again" } else { "" };
        event(format!("{}: done {key}{requeued}", self.shared.name));
        if wake {
            self.shared.ready.notify_waiters();
        }
    }

    /// Shuts the queue down: later adds are ignored, waiting keys are dropped, and `get` returns
    /// the keys still queued, then `None`.
    pub fn shut_down(&self) {
        let mut state = self.shared.state();
        let first = !state.shutting_down;
        state.shutting_down = true;
        state.drain = false;
        state.waiting.clear();
        state.waiting_at.clear();
        drop(state);
        if first {
            event(format!("{}: shut down", self.shared.name));
        }
        self.shared.ready.notify_waiters();
        self.shared.wakeup.notify_one();
    }

    /// Shuts the queue down as [`WorkQueue::shut_down`] does, then waits until no key is being
    /// processed (client-go's `ShutDownWithDrain`); a later `shut_down` ends the wait.
    pub async fn shut_down_with_drain(&self) {
        self.shut_down();
        self.shared.state().drain = true;
        loop {
            let notified = self.shared.ready.notified();
            {
                let state = self.shared.state();
                if state.processing.is_empty() || !state.drain {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Whether the queue is shut down.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.state().shutting_down
    }

    /// The number of keys ready to be handed out (client-go's `Len`; waiting keys not counted).
    pub fn len(&self) -> usize {
        self.shared.state().queue.len()
    }

    /// Whether no key is ready to be handed out.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of keys waiting for their `add_after` delay.
    pub fn waiting_len(&self) -> usize {
        self.shared.state().waiting_at.len()
    }

    /// Whether a worker holds `key` (between `get` and `done`).
    pub fn is_processing(&self, key: &K) -> bool {
        self.shared.state().processing.contains(key)
    }

    /// Whether `key` was added and not yet handed out since.
    pub fn is_dirty(&self, key: &K) -> bool {
        self.shared.state().dirty.contains(key)
    }

    fn check_room(&self, held: usize, length_max: usize) {
        if held >= length_max {
            sim_core::fail(
                FailureKind::ResourceLimit,
                format!("work queue \"{}\" holds more than {length_max} keys", self.shared.name),
                format!(
                    "{held} keys ready or waiting; likely cause: a controller adds keys faster than \
                     its workers process them; raise QueueConfig::length_max if this is expected"
                ),
            );
        }
    }
}

/// The delaying queue's waiting loop: adds each waiting key when its ready time comes. Holds
/// the queue weakly, so a dropped queue ends it.
async fn waiting_loop<K: Ord + Clone + Display + 'static>(shared: Weak<Shared<K>>) {
    loop {
        let Some(shared) = shared.upgrade() else { return };
        let queue = WorkQueue { shared };
        let wakeup = queue.shared.wakeup.notified();
        let at = now();
        let next = loop {
            let mut state = queue.shared.state();
            if state.shutting_down {
                return;
            }
            let first = state.waiting.first().map(|first| first.0);
            match first {
                Some(ready) if ready <= at => {
                    let (_, _, key) = state.waiting.pop_first().expect("a first entry");
                    state.waiting_at.remove(&key);
                    drop(state);
                    queue.add(key);
                }
                _ => break first,
            }
        };
        drop(queue);
        match next {
            Some(ready) => {
                let _ = timeout(ready - at, wakeup).await;
            }
            None => wakeup.await,
        }
    }
}

/// A queue's configuration.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct QueueConfig<K = String> {
    /// The delays of [`WorkQueue::add_rate_limited`].
    pub rate_limiter: RateLimiter<K>,
    /// The most keys the queue may hold, ready or waiting; one more ends the run with
    /// [`FailureKind::ResourceLimit`].
    pub length_max: usize,
}

impl<K: Ord + Clone> Default for QueueConfig<K> {
    /// [`RateLimiter::default_controller`] and a `length_max` of 100,000.
    fn default() -> Self {
        QueueConfig { rate_limiter: RateLimiter::default_controller(), length_max: 100_000 }
    }
}

impl<K> QueueConfig<K> {
    /// Sets [`QueueConfig::rate_limiter`].
    pub fn with_rate_limiter(mut self, rate_limiter: RateLimiter<K>) -> Self {
        self.rate_limiter = rate_limiter;
        self
    }

    /// Sets [`QueueConfig::length_max`].
    pub fn with_length_max(mut self, length_max: usize) -> Self {
        self.length_max = length_max;
        self
    }
}

/// client-go's `TypedRateLimiter`: how long a key waits before a rate-limited add. Made of
/// parts whose delays combine by maximum (`MaxOfRateLimiter`).
#[derive(Clone, Debug)]
pub struct RateLimiter<K = String> {
    parts: Vec<Part<K>>,
}

#[derive(Clone, Debug)]
enum Part<K> {
    /// `ItemExponentialFailureRateLimiter`.
    Exponential { base: Duration, max: Duration, failures: BTreeMap<K, u32> },
    /// `BucketRateLimiter` over `rate.NewLimiter(limit, burst)`.
    Bucket { limit: f64, burst: u32, tokens: f64, last: Option<SimTime> },
}

/// Go's `rate.InfDuration`: `math.MaxInt64` nanoseconds.
const INF_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);

impl<K: Ord + Clone> RateLimiter<K> {
    /// client-go's `DefaultControllerRateLimiter`: the maximum of `exponential(5ms, 1000s)` and
    /// `bucket(10.0, 100)`.
    pub fn default_controller() -> Self {
        let exponential =
            RateLimiter::exponential(Duration::from_millis(5), Duration::from_secs(1000));
        RateLimiter::max_of([exponential, RateLimiter::bucket(10.0, 100)])
    }

    /// `ItemExponentialFailureRateLimiter`: `base * 2^failures` of the key, at most `max`.
    pub fn exponential(base: Duration, max: Duration) -> Self {
        RateLimiter { parts: vec![Part::Exponential { base, max, failures: BTreeMap::new() }] }
    }

    /// `BucketRateLimiter`: a token bucket shared by all keys, refilled at `qps` tokens per
    /// second of virtual time, holding at most `burst` (and starting full).
    ///
    /// # Panics
    /// If `qps` is not positive.
    pub fn bucket(qps: f64, burst: u32) -> Self {
        assert!(qps > 0.0, "kdst: a token bucket's qps must be positive, got {qps}");
        let tokens = f64::from(burst);
        RateLimiter { parts: vec![Part::Bucket { limit: qps, burst, tokens, last: None }] }
    }

    /// No delay, but requeues are still counted.
    pub fn none() -> Self {
        RateLimiter::exponential(Duration::ZERO, Duration::ZERO)
    }

    /// `MaxOfRateLimiter`: the longest delay of `limiters`, the most requeues any counts.
    pub fn max_of(limiters: impl IntoIterator<Item = RateLimiter<K>>) -> Self {
        RateLimiter { parts: limiters.into_iter().flat_map(|limiter| limiter.parts).collect() }
    }

    /// The delay before `key` may be added again, counting one more failure of it. A bucket
    /// reserves one token at [`sim_core::now`].
    pub fn when(&mut self, key: &K) -> Duration {
        let delays = self.parts.iter_mut().map(|part| part.when(key));
        delays.fold(Duration::ZERO, Duration::max)
    }

    /// Forgets `key`'s failures.
    pub fn forget(&mut self, key: &K) {
        for part in &mut self.parts {
            if let Part::Exponential { failures, .. } = part {
                failures.remove(key);
            }
        }
    }

    /// `key`'s failures since it was last forgotten.
    pub fn num_requeues(&self, key: &K) -> u32 {
        let counts = self.parts.iter().map(|part| match part {
            Part::Exponential { failures, .. } => failures.get(key).copied().unwrap_or(0),
            Part::Bucket { .. } => 0,
        });
        counts.max().unwrap_or(0)
    }
}

impl<K: Ord + Clone> Part<K> {
    fn when(&mut self, key: &K) -> Duration {
        match self {
            Part::Exponential { base, max, failures } => {
                let count = failures.entry(key.clone()).or_insert(0);
                let exp = *count;
                *count = count.saturating_add(1);
                let base = base.as_nanos();
                if base == 0 {
                    return Duration::ZERO;
                }
                // Go computes in float64 and returns max past MaxInt64; never overflows here.
                match base.checked_shl(exp) {
                    Some(backoff) if exp < 64 && backoff <= i64::MAX as u128 => {
                        Duration::from_nanos(backoff as u64).min(*max)
                    }
                    _ => *max,
                }
            }
            Part::Bucket { limit, burst, tokens, last } => {
                // golang.org/x/time/rate's reserveN(now, 1) with an infinite maxFutureReserve.
                if limit.is_infinite() {
                    return Duration::ZERO;
                }
                if *burst < 1 {
                    return INF_DURATION;
                }
                let t = now();
                let mut available = f64::from(*burst);
                if let Some(last) = *last {
                    let elapsed = t.saturating_duration_since(last);
                    let seconds =
                        elapsed.as_secs() as f64 + f64::from(elapsed.subsec_nanos()) / 1e9;
                    available = available.min(*tokens + seconds * *limit);
                }
                available -= 1.0;
                *tokens = available;
                *last = Some(t);
                if available >= 0.0 {
                    return Duration::ZERO;
                }
                let nanos = (-available / *limit) * 1e9;
                if nanos > i64::MAX as f64 {
                    INF_DURATION
                } else {
                    Duration::from_nanos(nanos as u64)
                }
            }
        }
    }
}
