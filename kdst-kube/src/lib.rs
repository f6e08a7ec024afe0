//! Real kube-rs client code under kdst's schedule: a `kube::Client` whose requests go to kdst's
//! fake API server as REST requests ([`apiserver_fake::rest`]), each one run by the kdst task
//! that awaits it, with the fake client's latency, injected faults and perturbation points, its
//! footprints and its trace. `kube::Api<K>` with k8s-openapi types, watches (`Api::watch`,
//! `kube::runtime::watcher` streams), patches of every type and server-side apply work as
//! against a real cluster, under a schedule kdst chooses and replays.
//!
//! ```
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::api::{Api, PostParams};
//! use sim_core::{Outcome, Simulation};
//!
//! let mut sim = Simulation::default();
//! let outcome = sim.run(7, || {
//!     let cluster = kdst_kube::Cluster::new();
//!     let api: Api<ConfigMap> = Api::namespaced(cluster.client("demo"), "default");
//!     cluster.spawn("demo", async move {
//!         let mut cm = ConfigMap::default();
//!         cm.metadata.name = Some("settings".into());
//!         let made = api.create(&PostParams::default(), &cm).await.expect("created");
//!         assert!(made.metadata.uid.is_some());
//!     });
//! });
//! assert_eq!(outcome, Outcome::Completed);
//! ```
//!
//! # How it runs
//!
//! `kube::Client::new` wraps its service in a `tower::buffer::Buffer`, whose worker is a tokio
//! task. kdst keeps a paused current-thread tokio runtime per [`Cluster`] for those workers and
//! runs it for one turn after every poll of a task started with [`Cluster::spawn`], so a request
//! a task hands to its client reaches the bridge in the same step; the response future then runs
//! in that kdst task. The tokio runtime chooses nothing: kdst's strategy decides which task runs
//! at every step, and each request's legs are scheduling points as for kdst's own clients.
//!
//! Code that awaits a kube future must run in a task started with [`Cluster::spawn`] (or inside
//! a future wrapped by [`Cluster::pumped`]); elsewhere the buffer worker never runs and the
//! request never leaves (kdst then reports the task as blocked).
//!
//! # Time
//!
//! Tasks are polled inside the tokio runtime's context, and before each poll tokio's paused
//! clock is moved to kdst's virtual time: `tokio::time::Instant::now()`, `tokio::time::sleep`
//! and `tokio::time::timeout` in user code read and wait on virtual time. When no kdst task is
//! runnable, kdst lets tokio's clock run ahead to its next timer, up to kdst's own next event
//! ([`sim_core::on_idle`]): a tokio timer that wakes a task first is where the run's clock goes
//! next, so a reconcile that sleeps with tokio sleeps exactly as long in virtual time. What else
//! leaks into a run is listed in the [`controller`] docs.
//!
//! # Controllers
//!
//! [`Controller`] has the builder and the semantics of `kube::runtime::Controller` (one
//! reconcile per object at a time, scheduled reconciles deduplicated, `Action::requeue`, the
//! error policy, triggers from owned and watched objects), with each reconcile a kdst task and
//! its store kdst's informer cache. A controller written for kube-runtime runs under kdst with
//! one changed line: the one that names the `Controller` type.

#![forbid(unsafe_code)]

mod bridge;
pub mod controller;
mod harness;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use apiserver_fake::{ApiServer, ClientConfig};

pub use bridge::{Body, Bridge};
pub use controller::{Config, Controller};
pub use harness::Builder;

/// A fake cluster that kube-rs clients talk to. Cloning gives another handle to the same
/// cluster.
#[derive(Clone)]
pub struct Cluster {
    server: ApiServer,
    runtime: Rc<tokio::runtime::Runtime>,
    /// Where tokio's paused clock stands, in kdst nanoseconds.
    clock: Rc<Cell<u64>>,
    /// Raised when a tokio timer (or anything) wakes one of the cluster's kdst tasks.
    signal: Arc<Signal>,
}

/// Tells the idle probe that a kdst task of the cluster was woken.
#[derive(Default)]
struct Signal {
    woke: AtomicBool,
    waiter: Mutex<Option<Waker>>,
}

impl Signal {
    fn raise(&self) {
        self.woke.store(true, Ordering::Relaxed);
        let waiter = self.waiter.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }
}

/// A kdst task's waker that also raises the cluster's [`Signal`].
struct SignalWaker {
    inner: Waker,
    signal: Arc<Signal>,
}

impl Wake for SignalWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.inner.wake_by_ref();
        self.signal.raise();
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::new()
    }
}

thread_local! {
    /// The cluster whose task is being polled ([`Cluster::current`]).
    static CURRENT: RefCell<Option<Cluster>> = const { RefCell::new(None) };
}

impl Cluster {
    /// A cluster with the built-in kinds and the system namespaces, and no controllers (see
    /// [`Cluster::builder`] for the garbage collector, the namespace and StatefulSet
    /// controllers and the write log the generic oracles read). Call it inside a simulation (a
    /// run's setup or a task).
    pub fn new() -> Self {
        Cluster::with_server(ApiServer::default())
    }

    /// A cluster over an existing fake API server.
    pub fn with_server(server: ApiServer) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a current-thread tokio runtime builds");
        let cluster = Cluster {
            server,
            runtime: Rc::new(runtime),
            clock: Rc::new(Cell::new(0)),
            signal: Arc::default(),
        };
        if sim_core::in_simulation() {
            // When nothing in kdst is runnable, tokio's timers get their turn.
            let (runtime, clock) = (Rc::downgrade(&cluster.runtime), Rc::downgrade(&cluster.clock));
            let signal = cluster.signal.clone();
            sim_core::on_idle(move |limit| {
                let (runtime, clock) = (runtime.upgrade()?, clock.upgrade()?);
                probe(&runtime, &clock, &signal, limit)
            });
        }
        cluster
    }

    /// The cluster whose task is being polled: inside a task started with [`Cluster::spawn`]
    /// (or a future wrapped by [`Cluster::pumped`]), that cluster.
    pub fn current() -> Option<Cluster> {
        CURRENT.with(|current| current.borrow().clone())
    }

    /// The fake API server.
    pub fn server(&self) -> &ApiServer {
        &self.server
    }

    /// A `kube::Client` named `name` (its faults and trace lines carry the name), with the
    /// default latency and no faults; its default namespace is `default`.
    pub fn client(&self, name: &str) -> kube::Client {
        self.client_with(name, ClientConfig::default())
    }

    /// A `kube::Client` with the given latency and faults.
    pub fn client_with(&self, name: &str, config: ClientConfig) -> kube::Client {
        let fake = apiserver_fake::Client::new(&self.server, name, config);
        let _context = self.runtime.enter();
        kube::Client::new(Bridge::new(fake), "default")
    }

    /// Spawns a kdst task that may await kube futures.
    pub fn spawn<T: 'static>(
        &self,
        name: impl Into<std::borrow::Cow<'static, str>>,
        future: impl Future<Output = T> + 'static,
    ) -> sim_core::JoinHandle<T> {
        sim_core::spawn(name, self.pumped(future))
    }

    /// Spawns a kdst daemon task (one the run does not wait for) that may await kube futures.
    pub fn spawn_daemon<T: 'static>(
        &self,
        name: impl Into<std::borrow::Cow<'static, str>>,
        future: impl Future<Output = T> + 'static,
    ) -> sim_core::JoinHandle<T> {
        sim_core::spawn_daemon(name, self.pumped(future))
    }

    /// `future`, with the tokio side run for one turn after each of its polls (see the crate
    /// docs).
    pub fn pumped<F: Future>(&self, future: F) -> Pumped<F> {
        Pumped { future: Box::pin(future), cluster: self.clone(), waker: None }
    }

    /// Runs the cluster's tokio runtime for one turn at kdst's current time: its clock moves to
    /// kdst's, and the tokio tasks that are ready run once. For code that lives in the tokio
    /// world (the real `kube::runtime::Controller`, which spawns tokio tasks): a kdst task that
    /// calls this in a loop with a `sim_core::sleep` between turns drives it, as one coarse
    /// task whose inner order kdst does not choose.
    pub fn turn(&self) {
        self.sync_clock();
        let _current = Restore::enter(self);
        self.runtime.block_on(tokio::task::yield_now());
    }

    /// Moves tokio's paused clock to kdst's virtual time, firing the tokio timers it passes.
    fn sync_clock(&self) {
        sync_clock(&self.runtime, &self.clock);
    }
}

/// Moves tokio's paused clock (which stands at `clock`) to kdst's virtual time.
fn sync_clock(runtime: &tokio::runtime::Runtime, clock: &Cell<u64>) {
    let now = sim_core::now().as_nanos();
    let behind = now.saturating_sub(clock.get());
    if behind > 0 {
        clock.set(now);
        runtime.block_on(tokio::time::advance(Duration::from_nanos(behind)));
    }
}

/// The idle hook ([`sim_core::on_idle`]): nothing in kdst is runnable and its next event is at
/// `limit`. Lets tokio's paused clock advance on its own (it jumps to its next timer) until a
/// kdst task of the cluster is woken or `limit` is reached; returns when a task was woken.
fn probe(
    runtime: &tokio::runtime::Runtime,
    clock: &Cell<u64>,
    signal: &Arc<Signal>,
    limit: Option<sim_core::SimTime>,
) -> Option<sim_core::SimTime> {
    /// How far tokio may run ahead when kdst has no timer at all (the run is about to end as a
    /// deadlock unless a tokio timer wakes something).
    const NO_LIMIT: Duration = Duration::from_secs(365 * 24 * 3600);
    // A timer the sync below fires wakes its task before the probe waits: that counts.
    signal.woke.store(false, Ordering::Relaxed);
    sync_clock(runtime, clock);
    let now = sim_core::now();
    if signal.woke.swap(false, Ordering::Relaxed) {
        return Some(now);
    }
    // tokio's timer wheel rounds a deadline up to a millisecond tick, and its paused clock
    // auto-advances by whole milliseconds from where it stands, so it may land up to two
    // milliseconds past a deadline: stop that much short of kdst's next event so tokio never
    // passes it (the next poll's sync moves it the rest of the way exactly). A tokio timer due
    // in those last two milliseconds fires at kdst's event instead.
    let span = limit.map_or(NO_LIMIT, |limit| limit.saturating_duration_since(now));
    let span = span.saturating_sub(Duration::from_millis(2));
    if span.is_zero() {
        return None;
    }
    let (woke, elapsed) = runtime.block_on(async {
        let start = tokio::time::Instant::now();
        let woken = futures::future::poll_fn(|cx| {
            *signal.waiter.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) =
                Some(cx.waker().clone());
            if signal.woke.swap(false, Ordering::Relaxed) { Poll::Ready(()) } else { Poll::Pending }
        });
        let limit = tokio::time::sleep(span);
        let woke = matches!(
            futures::future::select(pin!(woken), pin!(limit)).await,
            futures::future::Either::Left(_)
        );
        (woke, start.elapsed())
    });
    let at = now + elapsed;
    clock.set(at.as_nanos());
    woke.then_some(at)
}

/// A future whose polls are each followed by one turn of the cluster's tokio runtime.
pub struct Pumped<F> {
    future: Pin<Box<F>>,
    cluster: Cluster,
    /// The task's waker, wrapped to raise the cluster's signal too (kept while the task's own
    /// waker stays the same).
    waker: Option<(Waker, Waker)>,
}

/// Puts back the cluster that was current before a poll (also when the poll unwinds).
struct Restore(Option<Cluster>);

impl Restore {
    /// Makes `cluster` the current one until the guard drops.
    fn enter(cluster: &Cluster) -> Restore {
        Restore(CURRENT.with(|current| current.replace(Some(cluster.clone()))))
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

impl<F: Future> Future for Pumped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let cluster = &this.cluster;
        cluster.sync_clock();
        let poll = {
            let _current = Restore::enter(cluster);
            // Polled inside the runtime's context, so that tokio timers have a timer wheel to
            // register with.
            let _context = cluster.runtime.enter();
            let fresh = this.waker.as_ref().is_some_and(|(inner, _)| inner.will_wake(cx.waker()));
            if !fresh {
                let signal = cluster.signal.clone();
                let wrapped =
                    Waker::from(Arc::new(SignalWaker { inner: cx.waker().clone(), signal }));
                this.waker = Some((cx.waker().clone(), wrapped));
            }
            let waker = &this.waker.as_ref().expect("just set").1;
            this.future.as_mut().poll(&mut Context::from_waker(waker))
        };
        if poll.is_pending() {
            // Let the clients' buffer workers take what this poll handed them.
            cluster.runtime.block_on(tokio::task::yield_now());
        }
        poll
    }
}
