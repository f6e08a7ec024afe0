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
//! Tasks are polled inside the tokio runtime's context, and before each poll tokio's paused
//! clock is moved to kdst's virtual time: `tokio::time::Instant::now()` and `tokio::time::sleep`
//! in user code read and wait on virtual time. A tokio timer fires once kdst's clock has passed
//! its deadline, at the next poll of a [`Cluster::spawn`] task; kdst's clock moves with kdst's
//! own timers, so a run whose every task waits on a tokio timer alone is reported as a deadlock
//! (use `sim_core::sleep`, or let a kdst timer be pending, in test code). What else leaks into a
//! run is listed in the [`controller`] docs.
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
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use apiserver_fake::{ApiServer, ClientConfig};

pub use bridge::{Body, Bridge};
pub use controller::{Config, Controller};

/// A fake cluster that kube-rs clients talk to. Cloning gives another handle to the same
/// cluster.
#[derive(Clone)]
pub struct Cluster {
    server: ApiServer,
    runtime: Rc<tokio::runtime::Runtime>,
    /// Where tokio's paused clock stands, in kdst nanoseconds.
    clock: Rc<Cell<u64>>,
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
        Cluster { server, runtime: Rc::new(runtime), clock: Rc::new(Cell::new(0)) }
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
        Pumped { future: Box::pin(future), cluster: self.clone() }
    }

    /// Moves tokio's paused clock to kdst's virtual time, firing the tokio timers it passes.
    fn sync_clock(&self) {
        let now = sim_core::now().as_nanos();
        let behind = now.saturating_sub(self.clock.get());
        if behind > 0 {
            self.clock.set(now);
            self.runtime.block_on(tokio::time::advance(Duration::from_nanos(behind)));
        }
    }
}

/// A future whose polls are each followed by one turn of the cluster's tokio runtime.
pub struct Pumped<F> {
    future: Pin<Box<F>>,
    cluster: Cluster,
}

/// Puts back the cluster that was current before a poll (also when the poll unwinds).
struct Restore(Option<Cluster>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

impl<F: Future> Future for Pumped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let cluster = self.cluster.clone();
        cluster.sync_clock();
        let poll = {
            let _restore = Restore(CURRENT.with(|current| current.replace(Some(cluster.clone()))));
            // Polled inside the runtime's context, so that tokio timers have a timer wheel to
            // register with.
            let _context = cluster.runtime.enter();
            self.future.as_mut().poll(cx)
        };
        if poll.is_pending() {
            // Let the clients' buffer workers take what this poll handed them.
            cluster.runtime.block_on(tokio::task::yield_now());
        }
        poll
    }
}
