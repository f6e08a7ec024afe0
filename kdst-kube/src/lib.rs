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
//! Tasks are polled inside the tokio runtime's context, so tokio timers can be set (kube-runtime's
//! `watcher` sets an idle timeout per watch), but tokio's paused clock does not follow kdst's
//! virtual clock yet: a tokio timer never fires and `tokio::time::Instant` stands still. Use
//! `sim_core::sleep` for time in test code.
//!
//! Not yet: a kube-runtime-shaped controller runtime, tokio's clock following kdst's, the
//! `Cluster` harness's garbage collector and controllers, CRDs from `#[derive(CustomResource)]`
//! types, request lines in the Perfetto export beyond the fake client's call spans.

#![forbid(unsafe_code)]

mod bridge;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use apiserver_fake::{ApiServer, ClientConfig};

pub use bridge::{Body, Bridge};

/// A fake cluster that kube-rs clients talk to.
#[derive(Clone)]
pub struct Cluster {
    server: ApiServer,
    runtime: Rc<tokio::runtime::Runtime>,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::new()
    }
}

impl Cluster {
    /// A cluster with the built-in kinds and the system namespaces. Call it inside a
    /// simulation (a run's setup or a task).
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
        Cluster { server, runtime: Rc::new(runtime) }
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

    /// `future`, with the tokio side run for one turn after each of its polls (see the crate
    /// docs).
    pub fn pumped<F: Future>(&self, future: F) -> Pumped<F> {
        Pumped { future: Box::pin(future), runtime: self.runtime.clone() }
    }
}

/// A future whose polls are each followed by one turn of the cluster's tokio runtime.
pub struct Pumped<F> {
    future: Pin<Box<F>>,
    runtime: Rc<tokio::runtime::Runtime>,
}

impl<F: Future> Future for Pumped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Polled inside the runtime's context, so that tokio timers (kube-runtime's watcher
        // sets one per watch) have a timer wheel to register with.
        let runtime = self.runtime.clone();
        let poll = {
            let _context = runtime.enter();
            self.future.as_mut().poll(cx)
        };
        if poll.is_pending() {
            // Let the clients' buffer workers take what this poll handed them.
            self.runtime.block_on(tokio::task::yield_now());
        }
        poll
    }
}
