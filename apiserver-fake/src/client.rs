//! The client controllers call: async verbs that are scheduling points, with seeded latency on
//! the request and the response leg (other tasks run in between, as over a real connection) and
//! optional injected faults, each named in the trace. Each call is also recorded as a span (from
//! the request to the response, [`sim_core::export::call_begin`]) that the trace exports draw as
//! a slice or an arrow; spans are not part of the text trace or its hash.

use std::rc::Rc;
use std::time::Duration;

use serde_json::Value;
use sim_core::RngCore;

use crate::error::ApiError;
use crate::object::Object;
use crate::rest::{self, Body, Request, Response};
use crate::selector::Selector;
use crate::server::{ApiServer, DeleteOptions, Deleted, ObjectList, Watch, WatchEvent, WatchStart};

/// The callee of every call span: the participant the exports draw requests to.
const CALLEE: &str = "API server";

/// A uniform latency range, drawn per leg of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latency {
    /// The shortest leg.
    pub min: Duration,
    /// The longest leg.
    pub max: Duration,
}

impl Latency {
    /// No latency: each leg is still a scheduling point (a yield), so calls interleave.
    pub const ZERO: Latency = Latency { min: Duration::ZERO, max: Duration::ZERO };

    /// Always `duration`.
    pub fn fixed(duration: Duration) -> Self {
        Latency { min: duration, max: duration }
    }

    /// Uniform in `min..=max`.
    pub fn range(min: Duration, max: Duration) -> Self {
        assert!(min <= max, "kdst: Latency::range with min {min:?} > max {max:?}");
        Latency { min, max }
    }

    /// A draw from the calling task's stream.
    pub fn draw(&self) -> Duration {
        if self.max.is_zero() {
            Duration::ZERO
        } else {
            sim_core::random_duration(self.min, self.max)
        }
    }
}

/// Probabilities of injected faults, per call (or per watch event for `drop_watch`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// A write fails with 409 Conflict before reaching the server.
    pub conflict: f64,
    /// A call fails with 500 before reaching the server.
    pub server_error: f64,
    /// A call times out (504) after [`ClientConfig::timeout`]; a write may or may not have been
    /// applied (decided by a seeded coin), as with a real timeout.
    pub timeout: f64,
    /// A watch stream ends before delivering an event.
    pub drop_watch: f64,
}

impl Faults {
    /// No faults.
    pub const NONE: Faults =
        Faults { conflict: 0.0, server_error: 0.0, timeout: 0.0, drop_watch: 0.0 };

    fn any(&self) -> bool {
        self.conflict > 0.0 || self.server_error > 0.0 || self.timeout > 0.0
    }
}

/// A client's latency and faults.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Latency of each leg (request, response) of a call.
    pub latency: Latency,
    /// Injected faults.
    pub faults: Faults,
    /// How long a call that times out takes.
    pub timeout: Duration,
    /// After a `crash-after-write` perturbation, how long the process stays down before it
    /// restarts.
    pub restart_delay: Latency,
    /// How long a `pause-after-write` perturbation holds the writer.
    pub pause: Latency,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            latency: Latency::range(Duration::from_micros(200), Duration::from_millis(2)),
            faults: Faults::NONE,
            timeout: Duration::from_secs(10),
            restart_delay: Latency::range(Duration::from_millis(500), Duration::from_secs(5)),
            pause: Latency::range(Duration::from_secs(1), Duration::from_secs(10)),
        }
    }
}

impl ClientConfig {
    /// Sets the latency of each leg.
    pub fn with_latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }

    /// Sets the injected faults.
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Sets how long a crashed process stays down and how long a paused writer waits.
    pub fn with_perturbation_delays(mut self, restart_delay: Latency, pause: Latency) -> Self {
        self.restart_delay = restart_delay;
        self.pause = pause;
        self
    }
}

/// Perturbation class: a process crashes right after one of its writes reached the server
/// (Sieve's intermediate states), and restarts after [`ClientConfig::restart_delay`].
pub const CRASH_AFTER_WRITE: &str = "crash-after-write";
/// Perturbation class: a writer is held right after one of its writes, for
/// [`ClientConfig::pause`], while others (the garbage collector) act (Sieve's indirect bugs).
pub const PAUSE_AFTER_WRITE: &str = "pause-after-write";

/// A request on its way to the server. If the process that sent it crashes first, the request
/// is already in the network: it still reaches the server, at the crash (Anvil's model).
struct InFlight<'a, T, F: FnOnce(&ApiServer) -> Result<T, ApiError>> {
    op: Option<F>,
    write: bool,
    server: &'a ApiServer,
    /// Verb, kind and name, for the trace.
    what: (&'a str, &'a str, &'a str),
    result: std::marker::PhantomData<fn() -> T>,
}

impl<T, F: FnOnce(&ApiServer) -> Result<T, ApiError>> Drop for InFlight<'_, T, F> {
    fn drop(&mut self) {
        if self.write
            && sim_core::is_crashing()
            && let Some(op) = self.op.take()
        {
            let result = op(self.server).map(|_| ());
            let outcome = match result {
                Ok(()) => "applied".to_string(),
                Err(error) => format!("{} {:?}", error.code, error.reason),
            };
            let (verb, kind, name) = self.what;
            sim_core::event(format!("in flight at the crash: {verb} {kind} {name} → {outcome}"));
        }
    }
}

/// An injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Conflict,
    ServerError,
    Timeout,
}

/// A client of one [`ApiServer`]: the verbs of client-go's dynamic client. Cloning shares the
/// identity and configuration.
#[derive(Clone)]
pub struct Client {
    server: ApiServer,
    name: Rc<str>,
    config: ClientConfig,
}

impl Client {
    /// A client named `name` (the name labels its fault stream and fault events).
    pub fn new(server: &ApiServer, name: &str, config: ClientConfig) -> Self {
        Client { server: server.clone(), name: name.into(), config }
    }

    /// The server this client talks to.
    pub fn server(&self) -> &ApiServer {
        &self.server
    }

    /// The client's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client's configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    async fn leg(&self) {
        let delay = self.config.latency.draw();
        if delay.is_zero() {
            sim_core::yield_now().await;
        } else {
            sim_core::sleep(delay).await;
        }
    }

    fn draw(&self, label: &str) -> f64 {
        let stream = format!("client/{}/{label}", self.name);
        sim_core::with_stream(&stream, |rng| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }

    fn fault(&self, write: bool) -> Option<Fault> {
        let faults = &self.config.faults;
        if !faults.any() {
            return None;
        }
        let roll = self.draw("faults");
        let conflict = if write { faults.conflict } else { 0.0 };
        if roll < conflict {
            Some(Fault::Conflict)
        } else if roll < conflict + faults.server_error {
            Some(Fault::ServerError)
        } else if roll < conflict + faults.server_error + faults.timeout {
            Some(Fault::Timeout)
        } else {
            None
        }
    }

    /// Whether an injected `drop_watch` fault ends the watch of `what` before its next event
    /// (named in the trace).
    pub(crate) fn drops_watch(&self, what: &str) -> bool {
        let drop = self.config.faults.drop_watch;
        let dropped = drop > 0.0 && self.draw("drop-watch") < drop;
        if dropped {
            sim_core::event(format!("fault: watch of {what} by {} dropped", self.name));
        }
        dropped
    }

    /// One call, recorded as a span from the request (`request` says what it asks) to the
    /// response: see [`Client::exchange`].
    async fn call<T: Summary>(
        &self,
        verb: &str,
        target: (&str, &str, &str),
        request: String,
        write: bool,
        op: impl FnOnce(&ApiServer) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let call = sim_core::export::call_begin(CALLEE, request);
        let result = self.exchange(verb, target, write, op).await;
        let response = match &result {
            Ok(value) => value.summary(),
            Err(error) => format!("{} {:?}", error.code, error.reason),
        };
        sim_core::export::call_end(call, response);
        result
    }

    /// The exchange of one call: request leg, maybe a fault, the server's atomic step, response
    /// leg.
    async fn exchange<T>(
        &self,
        verb: &str,
        target: (&str, &str, &str),
        write: bool,
        op: impl FnOnce(&ApiServer) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let (api_version, kind, name) = target;
        let what = (verb, kind, name);
        let marker = std::marker::PhantomData;
        let mut in_flight =
            InFlight { op: Some(op), write, server: &self.server, what, result: marker };
        // The request is written to the connection (Go's `syscall.Write` orders for the race
        // detector; see `sim_core::race`).
        sim_core::race::io_write();
        self.leg().await;
        let op = in_flight.op.take().expect("kdst internal: the request left twice");
        let resource = self
            .server
            .kind_info(api_version, kind)
            .map_or_else(|| kind.to_lowercase(), |info| info.qualified_resource());
        let result = match self.fault(write) {
            None => op(&self.server),
            Some(fault) => {
                let error = match fault {
                    Fault::Conflict => ApiError::stale(&resource, name),
                    Fault::ServerError => ApiError::internal("injected by kdst"),
                    Fault::Timeout => {
                        let applied = write && self.draw("timeout-applied") < 0.5;
                        if applied {
                            let _ = op(&self.server);
                        }
                        let note = if applied { ", applied" } else { "" };
                        sim_core::event(format!(
                            "fault: {verb} {resource} {name} by {} timed out{note}",
                            self.name
                        ));
                        sim_core::sleep(self.config.timeout).await;
                        return Err(ApiError::timeout());
                    }
                };
                sim_core::event(format!(
                    "fault: {verb} {resource} {name} by {} → injected {} {:?}",
                    self.name, error.code, error.reason
                ));
                Err(error)
            }
        };
        if write {
            self.after_write(verb, kind, name).await;
        }
        self.leg().await;
        // The response is read (`syscall.Read`).
        sim_core::race::io_read();
        result
    }

    /// The perturbation points after a write reached the server, for a task of a
    /// [`sim_core::Process`] (the processes are what kdst perturbs): crash the process here and
    /// restart it later ([`CRASH_AFTER_WRITE`]), or hold the writer for a while
    /// ([`PAUSE_AFTER_WRITE`]).
    async fn after_write(&self, verb: &str, kind: &str, name: &str) {
        let Some(process) = sim_core::Process::current() else { return };
        let restart = || self.config.restart_delay.draw();
        let crash = sim_core::perturb(CRASH_AFTER_WRITE, || {
            format!("{} crashes after {verb} {kind} {name}", process.name())
        });
        if crash {
            match sim_core::crash_current(Some(restart())).await {}
        }
        let pause = sim_core::perturb(PAUSE_AFTER_WRITE, || {
            format!("{} held after {verb} {kind} {name}", process.name())
        });
        if pause {
            sim_core::sleep(self.config.pause.draw()).await;
        }
    }

    /// GET.
    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Object, ApiError> {
        let request = request("GET", kind, namespace, name);
        self.call("GET", (api_version, kind, name), request, false, |s| {
            s.get(api_version, kind, namespace, name)
        })
        .await
    }

    /// LIST in one namespace or (`None`) all, with a label selector.
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<ObjectList, ApiError> {
        let request = request_collection("LIST", kind, namespace, "");
        self.call("LIST", (api_version, kind, ""), request, false, |s| {
            s.list(api_version, kind, namespace, selector)
        })
        .await
    }

    /// LIST with resourceVersion "0" or a minimum ([`ApiServer::list_from_cache`]).
    pub async fn list_from_cache(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        at_least: u64,
    ) -> Result<ObjectList, ApiError> {
        let request = request_collection("LIST", kind, namespace, " (from the cache)");
        self.call("LIST", (api_version, kind, ""), request, false, |s| {
            s.list_from_cache(api_version, kind, namespace, at_least)
        })
        .await
    }

    /// CREATE.
    pub async fn create(&self, object: Object) -> Result<Object, ApiError> {
        let (av, kind, name) =
            (object.api_version.clone(), object.kind.clone(), object.metadata.name.clone());
        let request = request_for("CREATE", &object);
        self.call("CREATE", (&av, &kind, &name), request, true, |s| s.create(object)).await
    }

    /// UPDATE.
    pub async fn update(&self, object: Object) -> Result<Object, ApiError> {
        let (av, kind, name) =
            (object.api_version.clone(), object.kind.clone(), object.metadata.name.clone());
        let request = request_for("UPDATE", &object);
        self.call("UPDATE", (&av, &kind, &name), request, true, |s| s.update(object)).await
    }

    /// UPDATE of the status subresource.
    pub async fn update_status(&self, object: Object) -> Result<Object, ApiError> {
        let (av, kind, name) =
            (object.api_version.clone(), object.kind.clone(), object.metadata.name.clone());
        let request = request_for("UPDATE status", &object);
        self.call("UPDATE status", (&av, &kind, &name), request, true, |s| s.update_status(object))
            .await
    }

    /// JSON merge PATCH.
    pub async fn patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Object, ApiError> {
        let request = request("PATCH", kind, namespace, name);
        self.call("PATCH", (api_version, kind, name), request, true, |s| {
            s.patch(api_version, kind, namespace, name, patch)
        })
        .await
    }

    /// JSON merge PATCH of the status subresource.
    pub async fn patch_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Object, ApiError> {
        let request = request("PATCH status", kind, namespace, name);
        self.call("PATCH status", (api_version, kind, name), request, true, |s| {
            s.patch_status(api_version, kind, namespace, name, patch)
        })
        .await
    }

    /// DELETE with options.
    pub async fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let verb = match (options.propagation_policy, options.orphan_dependents) {
            (Some(policy), _) => format!("DELETE ({policy})"),
            (None, Some(orphan)) => format!("DELETE (orphanDependents={orphan})"),
            (None, None) => "DELETE".to_string(),
        };
        let request = request(&verb, kind, namespace, name);
        self.call("DELETE", (api_version, kind, name), request, true, |s| {
            s.delete(api_version, kind, namespace, name, options)
        })
        .await
    }

    /// The namespace `/finalize` subresource.
    pub async fn finalize_namespace(&self, namespace: Object) -> Result<Object, ApiError> {
        let name = namespace.metadata.name.clone();
        let request = request_for("UPDATE finalize", &namespace);
        self.call("UPDATE finalize", ("v1", "Namespace", &name), request, true, |s| {
            s.finalize_namespace(namespace)
        })
        .await
    }

    /// WATCH (with bookmarks requested). The stream may be dropped by an injected fault.
    pub async fn watch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        start: WatchStart,
    ) -> Result<ClientWatch, ApiError> {
        let from = match start {
            WatchStart::Now => String::new(),
            WatchStart::Any => " from rv 0".to_string(),
            WatchStart::From(rv) => format!(" from rv {rv}"),
        };
        let request = request_collection("WATCH", kind, namespace, &from);
        let watch = self
            .call("WATCH", (api_version, kind, ""), request, false, |s| {
                s.watch(api_version, kind, namespace, start, true)
            })
            .await?;
        Ok(ClientWatch { watch, client: self.clone(), what: format!("{kind} in {namespace:?}") })
    }
}

impl Client {
    /// One REST request ([`ApiServer::handle`]) with this client's latency, injected faults
    /// (a fault answers with its `Status`) and perturbation points, exactly as the Rust verb the
    /// request matches: the same scheduling points, draws and trace. A watch's stream is subject
    /// to the client's `drop_watch` fault.
    pub async fn request(&self, request: Request) -> Response {
        let target = rest::call_target(&self.server, &request);
        let (verb, api_version, kind, name, write) = match &target {
            Some(t) => {
                (t.verb.as_str(), t.api_version.as_str(), t.kind.as_str(), t.name.as_str(), t.write)
            }
            None => (request.method.as_str(), "", "", "", request.method != "GET"),
        };
        let line = request.line();
        let result = self
            .call(verb, (api_version, kind, name), line, write, |s| Ok(s.handle(&request)))
            .await;
        match result {
            Ok(response) => match response.body {
                Body::Watch(stream) => Response {
                    body: Body::Watch(Box::new(stream.with_client(self.clone()))),
                    ..response
                },
                Body::Full(_) => response,
            },
            Err(error) => Response::error(&error),
        }
    }
}

/// What a call on one object asks, for its span: `GET Secret sandbox/cert-0-tls`.
fn request(verb: &str, kind: &str, namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("{verb} {kind} {name}")
    } else {
        format!("{verb} {kind} {namespace}/{name}")
    }
}

/// [`request`] for a write of `object`; a name still to be generated shows as `prefix*`.
fn request_for(verb: &str, object: &Object) -> String {
    let metadata = &object.metadata;
    if metadata.name.is_empty() && !metadata.generate_name.is_empty() {
        let pattern = format!("{}*", metadata.generate_name);
        request(verb, &object.kind, &metadata.namespace, &pattern)
    } else {
        request(verb, &object.kind, &metadata.namespace, &metadata.name)
    }
}

/// What a call on a collection asks: `LIST Secret in sandbox`, `WATCH Pod in all namespaces`.
fn request_collection(verb: &str, kind: &str, namespace: Option<&str>, how: &str) -> String {
    match namespace {
        Some(namespace) => format!("{verb} {kind} in {namespace}{how}"),
        None => format!("{verb} {kind} in all namespaces{how}"),
    }
}

/// A successful call's result in one line, for the response end of its span.
trait Summary {
    fn summary(&self) -> String;
}

impl Summary for Object {
    fn summary(&self) -> String {
        format!("rv {}", self.metadata.resource_version)
    }
}

impl Summary for ObjectList {
    fn summary(&self) -> String {
        format!("{} items, rv {}", self.items.len(), self.resource_version)
    }
}

impl Summary for Deleted {
    fn summary(&self) -> String {
        match self {
            Deleted::Removed(object) => format!("removed, rv {}", object.metadata.resource_version),
            Deleted::Pending(object) => format!(
                "deleting, finalizers [{}], rv {}",
                object.metadata.finalizers.join(", "),
                object.metadata.resource_version
            ),
        }
    }
}

impl Summary for Response {
    fn summary(&self) -> String {
        match &self.body {
            Body::Watch(_) => format!("{} watching", self.status),
            Body::Full(bytes) => match first_resource_version(bytes) {
                Some(rv) => format!("{} rv {rv} ({} bytes)", self.status, bytes.len()),
                None => format!("{} ({} bytes)", self.status, bytes.len()),
            },
        }
    }
}

/// The first `"resourceVersion":"…"` of a JSON body: an object's (its metadata comes first) or
/// a list's.
fn first_resource_version(body: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"resourceVersion\":\"";
    let start = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let length = body[start..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&body[start..start + length]).ok()
}

impl Summary for Watch {
    fn summary(&self) -> String {
        "watching".to_string()
    }
}

/// A watch opened through a [`Client`]: the server's stream, which an injected `drop_watch`
/// fault can end early.
pub struct ClientWatch {
    watch: Watch,
    client: Client,
    what: String,
}

impl ClientWatch {
    /// The next event; `None` when the stream ended (closed, or dropped by a fault).
    pub async fn next(&self) -> Option<WatchEvent> {
        let event = self.watch.next().await?;
        if self.client.drops_watch(&self.what) {
            self.watch.stop();
            return None;
        }
        Some(event)
    }

    /// Closes the stream.
    pub fn stop(&self) {
        self.watch.stop();
    }
}
