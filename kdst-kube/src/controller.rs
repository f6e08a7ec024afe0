//! A controller runtime with `kube::runtime::Controller`'s builder and semantics, whose
//! reconciles are kdst tasks and whose store is kdst's informer cache.
//!
//! A kube-rs controller changes one line to run under kdst: the one that names the type.
//!
//! ```text
//! -use kube::runtime::Controller;
//! +use kdst_kube::Controller;
//! ```
//!
//! `new`, `owns`, `watches`, `with_config`, `store`, `reconcile_all_on`, `reconcile_on`,
//! `graceful_shutdown_on`, `shutdown_on_signal`, `trigger_backoff` and `run` take the same
//! arguments: the user's `Api<K>`s and `watcher::Config`s, a reconcile function
//! `FnMut(Arc<K>, Arc<Ctx>) -> impl TryFuture<Ok = Action>`, an error policy
//! `Fn(Arc<K>, &E, Arc<Ctx>) -> Action` and the context; `run` returns a stream of
//! `Result<(ObjectRef<K>, Action), controller::Error<E, watcher::Error>>` as kube's does.
//!
//! # Semantics (kube-runtime 5.0.0, `controller/mod.rs` `applier`, `scheduler.rs`, `runner.rs`)
//!
//! - Triggers: every object of the main kind the cache applies (added or changed, including the
//!   initial list) schedules its reconcile now; a deletion does not (`applied_objects`). A
//!   change or deletion of an owned object schedules each owner of the main kind its owner
//!   references name (`trigger_owners` over `touched_objects`: any owner reference of that
//!   apiVersion and kind, controller or not). A watched object schedules what the mapper
//!   returns.
//! - Scheduling (`Scheduler::schedule_message`): a request for an object already scheduled
//!   keeps the earlier time (a request due sooner moves it forward, one due later is dropped);
//!   a request for an object already due and waiting for its running reconcile is dropped; a
//!   debounce delays every request by `debounce`.
//! - Running (`Runner`): at most one reconcile per object at a time; a request that comes due
//!   while its object is being reconciled waits and runs after it; at most `concurrency`
//!   reconciles at once (0: no limit); nothing runs before the main kind's first list is in the
//!   cache (`delay_tasks_until(store.wait_until_ready())`).
//! - A reconcile reads its object from the cache when it starts; an object gone from the cache
//!   is `Error::ObjectNotFound` on the stream. Its `Action` (or, after an error, the error
//!   policy's) with `requeue(d)` schedules the object `d` after the reconcile finished.
//!
//! Where kdst differs: each reconcile is a kdst task (`<controller>/reconcile <ns>/<name>`), so
//! the strategy interleaves reconciles, informers and everything else at every API call; the
//! caches are kdst informers (`apiserver_fake::Informer`: their lag, withheld events, stale
//! reconnects and the process's crash-restart are perturbation points); requests that are due
//! together start in (due time, namespace, name) order, where kube-runtime's order comes from a
//! `std` hash set with a random seed (see below).
//!
//! # What still leaks nondeterminism into a run
//!
//! kdst's determinism check (every seed-driven `Check` runs a sample of seeds twice and
//! compares traces; `kdst replay` says where a run left its schedule) catches each of these and
//! names the step and the first differing trace line, which for kube code is the request:
//!
//! - the real `kube::runtime::Controller`: its `Scheduler::pending` (a `std` `HashSet`) and
//!   `FutureHashMap` (a `std` `HashMap`) iterate in an order seeded per process
//!   (`RandomState`), so which reconcile starts first differs between runs; use this module's
//!   [`Controller`] instead;
//! - kube-runtime's reflector `Store::state()` iterates an `ahash` map: the order of the objects
//!   it returns is not fixed (sort them);
//! - the wall clock in user code or its dependencies: `std::time::Instant::now()`,
//!   `SystemTime::now()`, `chrono::Utc::now()` (tokio's `Instant` is virtual in kdst tasks);
//! - `std::collections::HashMap`/`HashSet` iteration, OS randomness (`rand::thread_rng`,
//!   `uuid::Uuid::new_v4`), and threads or a tokio runtime of the user's own.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use apiserver_fake::{FieldSelector, Filter, Informer, InformerConfig, Notification, Selector};
use futures::channel::mpsc;
use futures::{Stream, StreamExt, TryFuture, TryFutureExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::controller::{Action, Error};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use sim_core::SimTime;
use sim_core::sync::Notify;

use crate::Cluster;
use crate::harness::from_object;

/// How many reconciles run at once and how long requests are debounced: kube-runtime's
/// `controller::Config`, which converts into it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    debounce: Duration,
    concurrency: u16,
}

impl Config {
    /// Delays every scheduled reconcile by `debounce`, so requests that come together run once.
    #[must_use]
    pub fn debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// At most `concurrency` reconciles at once (0: no limit, the default).
    #[must_use]
    pub fn concurrency(mut self, concurrency: u16) -> Self {
        self.concurrency = concurrency;
        self
    }
}

impl From<kube::runtime::controller::Config> for Config {
    /// kube's `Config` keeps its fields private and prints them (`Config { debounce: 1s,
    /// concurrency: 2 }`); they are read from that.
    fn from(config: kube::runtime::controller::Config) -> Self {
        let text = format!("{config:?}");
        let field = |name: &str| {
            let start = text.find(&format!("{name}: "))? + name.len() + 2;
            let rest = &text[start..];
            Some(rest[..rest.find([',', ' ', '}']).unwrap_or(rest.len())].to_string())
        };
        let debounce = field("debounce").and_then(|d| parse_duration(&d));
        let concurrency = field("concurrency").and_then(|c| c.parse().ok());
        match (debounce, concurrency) {
            (Some(debounce), Some(concurrency)) => Config { debounce, concurrency },
            _ => panic!("kdst-kube: cannot read kube's controller Config from {text:?}"),
        }
    }
}

/// A `Duration` as its `Debug` prints it (`0ns`, `1.5s`, `250ms`, `10µs`), back.
fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, unit) = text.split_at(split);
    let scale: u64 = match unit {
        "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "µs" => 1_000,
        "ns" => 1,
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: u64 = whole.parse().ok()?;
    let digits = scale.ilog10() as usize;
    if fraction.len() > digits || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fraction: u64 =
        if fraction.is_empty() { 0 } else { format!("{fraction:0<digits$}").parse().ok()? };
    Some(Duration::from_nanos(whole.checked_mul(scale)?.checked_add(fraction)?))
}

/// When `action` asks to run again (kube keeps the field private and prints it).
fn requeue_after(action: &Action) -> Option<Duration> {
    if *action == Action::await_change() {
        return None;
    }
    let text = format!("{action:?}");
    let inner = text.split("Some(").nth(1)?.split(')').next()?;
    parse_duration(inner)
}

/// An object's key in the scheduler: namespace (empty for cluster-scoped) and name.
type Key = (String, String);

/// A controller for `K` with kube-runtime's builder (see the module docs).
pub struct Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + fmt::Debug + 'static,
{
    cluster: Cluster,
    name: String,
    main: Source,
    /// Owned and watched kinds: each starts its informer and its trigger when `run` starts.
    triggers: Vec<Trigger>,
    /// Streams of requests of the user's (`reconcile_on`, `reconcile_all_on`): each becomes a
    /// task when `run` starts.
    extra: Vec<Extra>,
    /// Futures after which no new reconcile starts (`graceful_shutdown_on`).
    shutdown: Vec<Pin<Box<dyn Future<Output = ()>>>>,
    config: Config,
    reader: Store<K>,
    writer: Rc<RefCell<reflector::store::Writer<K>>>,
}

/// Starts an owned or watched kind's informer and trigger, for the controller named `&str`.
type Trigger = Box<dyn FnOnce(&Rc<Shared>, &str)>;

/// A user's stream of requests, started with the controller's state: the scheduler and the main
/// cache.
type Extra = Box<
    dyn FnOnce(Rc<Shared>, apiserver_fake::Cache, Rc<Filter>) -> Pin<Box<dyn Future<Output = ()>>>,
>;

/// One reconcile's result, as kube-runtime's `Controller::run` yields it.
pub type ReconcileResult<K, E> = Result<(ObjectRef<K>, Action), Error<E, watcher::Error>>;

/// One kind a controller watches, as its informer sees it.
struct Source {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    filter: Filter,
}

impl Source {
    fn of<T: Resource<DynamicType = ()>>(api: &Api<T>, wc: &watcher::Config) -> Source {
        let (api_version, kind) = (T::api_version(&()).into_owned(), T::kind(&()).into_owned());
        let labels = wc.label_selector.as_deref().map_or_else(Selector::everything, |text| {
            Selector::parse(text).unwrap_or_else(|error| {
                panic!("kdst-kube: the label selector {text:?} does not parse: {error}")
            })
        });
        let fields = wc.field_selector.as_deref().map_or_else(FieldSelector::everything, |text| {
            FieldSelector::parse(text, &api_version, &kind).unwrap_or_else(|error| {
                panic!("kdst-kube: the field selector {text:?} does not parse: {error}")
            })
        });
        let namespace = api.namespace().map(str::to_string);
        Source { api_version, kind, namespace, filter: Filter { labels, fields } }
    }

    /// Its informer, started, for the controller `controller`.
    fn informer(&self, cluster: &Cluster, controller: &str) -> Informer {
        let name = format!("{controller}/{}", self.kind.to_lowercase());
        let client = apiserver_fake::Client::new(cluster.server(), controller, <_>::default());
        let informer = Informer::new(
            &name,
            &client,
            &self.api_version,
            &self.kind,
            self.namespace.as_deref(),
            InformerConfig::default(),
        );
        informer.start();
        informer
    }
}

/// The scheduler's state, shared by the triggers, the dispatcher and the reconciles.
struct Shared {
    config: Config,
    /// Requests waiting for their time, by object: when, and why.
    scheduled: RefCell<BTreeMap<Key, SimTime>>,
    /// Requests due while their object was being reconciled.
    pending: RefCell<BTreeSet<Key>>,
    /// Objects being reconciled.
    running: RefCell<BTreeSet<Key>>,
    /// Wakes the dispatcher.
    wake: Notify,
    /// The results stream was dropped: stop.
    stopped: Cell<bool>,
}

impl Shared {
    /// `Scheduler::schedule_message`.
    fn schedule(&self, key: Key, run_at: SimTime) {
        if self.pending.borrow().contains(&key) {
            return;
        }
        let next = run_at + self.config.debounce;
        let mut scheduled = self.scheduled.borrow_mut();
        match scheduled.get_mut(&key) {
            Some(old) if *old >= run_at => *old = next,
            Some(_) => return,
            None => {
                scheduled.insert(key, next);
            }
        }
        drop(scheduled);
        self.wake.notify_one();
    }

    fn has_room(&self) -> bool {
        self.config.concurrency == 0
            || self.running.borrow().len() < self.config.concurrency as usize
    }

    /// The next request that may start now (`Scheduler::poll_pop_queue_message` with the
    /// runner's `hold_unless`): a pending one whose object is free, else the earliest due one,
    /// moving due ones whose object is busy to pending.
    fn pop(&self, now: SimTime) -> Option<Key> {
        let running = self.running.borrow();
        let mut pending = self.pending.borrow_mut();
        if let Some(key) = pending.iter().find(|key| !running.contains(*key)).cloned() {
            pending.remove(&key);
            return Some(key);
        }
        let mut scheduled = self.scheduled.borrow_mut();
        loop {
            let (key, _) = scheduled
                .iter()
                .filter(|(_, at)| **at <= now)
                .min_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)))
                .map(|(key, at)| (key.clone(), *at))?;
            scheduled.remove(&key);
            if running.contains(&key) {
                pending.insert(key);
            } else {
                return Some(key);
            }
        }
    }

    /// When the dispatcher must look again, if nothing wakes it sooner.
    fn next_due(&self) -> Option<SimTime> {
        if !self.has_room() {
            return None;
        }
        self.scheduled.borrow().values().min().copied()
    }
}

impl<K> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + fmt::Debug + 'static,
{
    /// A controller for the `K`s `main_api` sees, filtered by `wc`'s selectors.
    ///
    /// # Panics
    /// Outside a task started with [`Cluster::spawn`] (the controller runs on that task's
    /// cluster), or if a selector does not parse.
    pub fn new(main_api: Api<K>, wc: watcher::Config) -> Self {
        let Some(cluster) = Cluster::current() else {
            panic!(
                "kdst-kube: Controller::new must be called in a task started with Cluster::spawn \
                 (it runs on that task's cluster)"
            )
        };
        let main = Source::of(&main_api, &wc);
        let name = format!("{}-controller", main.kind.to_lowercase());
        let (reader, writer) = reflector::store();
        Controller {
            cluster,
            name,
            main,
            triggers: Vec::new(),
            extra: Vec::new(),
            shutdown: Vec::new(),
            config: Config::default(),
            reader,
            writer: Rc::new(RefCell::new(writer)),
        }
    }

    /// The reflector store of the main kind (kube's `Store<K>`), filled from the controller's
    /// informer cache.
    pub fn store(&self) -> Store<K> {
        self.reader.clone()
    }

    /// Sets how many reconciles run at once and the debounce (kube's `controller::Config`, or
    /// this crate's).
    #[must_use]
    pub fn with_config(mut self, config: impl Into<Config>) -> Self {
        self.config = config.into();
        self
    }

    /// Reconciles the owner (of kind `K`) of every `Child` that changes or is deleted.
    #[must_use]
    pub fn owns<Child>(mut self, api: Api<Child>, wc: watcher::Config) -> Self
    where
        Child: Resource<DynamicType = ()> + Clone + DeserializeOwned + fmt::Debug + 'static,
    {
        let source = Source::of(&api, &wc);
        let (owner_version, owner_kind) = (K::api_version(&()), K::kind(&()));
        let (owner_version, owner_kind) = (owner_version.into_owned(), owner_kind.into_owned());
        let cluster = self.cluster.clone();
        self.triggers.push(Box::new(move |shared, controller| {
            let informer = source.informer(&cluster, controller);
            let shared = shared.clone();
            informer.add_handler("owns", move |notification| {
                let object = notification.object();
                if source.filter.matches(object) {
                    let owners = object.metadata.owner_references.iter();
                    for owner in
                        owners.filter(|r| r.api_version == owner_version && r.kind == owner_kind)
                    {
                        let key = (object.metadata.namespace.clone(), owner.name.clone());
                        shared.schedule(key, sim_core::now());
                    }
                }
                std::future::ready(())
            });
        }));
        self
    }

    /// Reconciles what `mapper` returns for every `Other` that changes or is deleted.
    #[must_use]
    pub fn watches<Other, I>(
        mut self,
        api: Api<Other>,
        wc: watcher::Config,
        mapper: impl Fn(Other) -> I + 'static,
    ) -> Self
    where
        Other: Resource<DynamicType = ()> + Clone + DeserializeOwned + fmt::Debug + 'static,
        I: IntoIterator<Item = ObjectRef<K>>,
    {
        let source = Source::of(&api, &wc);
        let cluster = self.cluster.clone();
        self.triggers.push(Box::new(move |shared, controller| {
            let informer = source.informer(&cluster, controller);
            let shared = shared.clone();
            informer.add_handler("watches", move |notification| {
                let object = notification.object();
                if source.filter.matches(object) {
                    for target in mapper(from_object::<Other>(object)) {
                        let key = (target.namespace.unwrap_or_default(), target.name);
                        shared.schedule(key, sim_core::now());
                    }
                }
                std::future::ready(())
            });
        }));
        self
    }

    /// Reconciles every object of the main kind in the cache each time `trigger` yields
    /// (kube's `reconcile_all_on`).
    #[must_use]
    pub fn reconcile_all_on(mut self, trigger: impl Stream<Item = ()> + 'static) -> Self {
        self.extra.push(Box::new(move |shared, cache, filter| {
            Box::pin(async move {
                let mut trigger = std::pin::pin!(trigger);
                while trigger.next().await.is_some() {
                    for object in cache.list(None).iter().filter(|o| filter.matches(o)) {
                        let key = (object.metadata.namespace.clone(), object.metadata.name.clone());
                        shared.schedule(key, sim_core::now());
                    }
                }
            })
        }));
        self
    }

    /// Reconciles each object `trigger` names (kube's `reconcile_on`).
    #[must_use]
    pub fn reconcile_on(mut self, trigger: impl Stream<Item = ObjectRef<K>> + 'static) -> Self {
        self.extra.push(Box::new(move |shared, _cache, _filter| {
            Box::pin(async move {
                let mut trigger = std::pin::pin!(trigger);
                while let Some(target) = trigger.next().await {
                    let key = (target.namespace.unwrap_or_default(), target.name);
                    shared.schedule(key, sim_core::now());
                }
            })
        }));
        self
    }

    /// Once `trigger` completes, starts no new reconcile; the results stream ends when the
    /// running ones have finished (kube's `graceful_shutdown_on`).
    #[must_use]
    pub fn graceful_shutdown_on(mut self, trigger: impl Future<Output = ()> + 'static) -> Self {
        self.shutdown.push(Box::pin(trigger));
        self
    }

    /// kube's `shutdown_on_signal`: a simulated process gets no signals, so this changes
    /// nothing; it is here so that a controller that calls it builds unchanged. (A crash or a
    /// restart of the process is `sim_core::Process`'s.)
    #[must_use]
    pub fn shutdown_on_signal(self) -> Self {
        self
    }

    /// kube's `trigger_backoff` (the watchers' backoff after an error): kdst's informers retry
    /// on their own schedule ([`InformerConfig::retry_backoff`]), so the backoff is not used; it
    /// is accepted so that a controller that sets it builds unchanged.
    #[must_use]
    pub fn trigger_backoff(self, _backoff: impl kube::runtime::utils::Backoff + 'static) -> Self {
        self
    }

    /// Starts the controller: its informers, its scheduler (`<controller>/scheduler`) and, as
    /// requests come due, one kdst task per reconcile. The stream yields each reconcile's
    /// result; dropping it stops the controller (no new reconciles start).
    pub fn run<ReconcilerFut, Ctx>(
        self,
        reconciler: impl FnMut(Arc<K>, Arc<Ctx>) -> ReconcilerFut + 'static,
        error_policy: impl Fn(Arc<K>, &ReconcilerFut::Error, Arc<Ctx>) -> Action + 'static,
        context: Arc<Ctx>,
    ) -> Results<K, ReconcilerFut::Error>
    where
        ReconcilerFut: TryFuture<Ok = Action> + 'static,
        ReconcilerFut::Error: std::error::Error + 'static,
        Ctx: 'static,
    {
        let shared = Rc::new(Shared {
            config: self.config,
            scheduled: RefCell::new(BTreeMap::new()),
            pending: RefCell::new(BTreeSet::new()),
            running: RefCell::new(BTreeSet::new()),
            wake: Notify::named(format!("{} scheduler", self.name)),
            stopped: Cell::new(false),
        });
        let (tx, rx) = mpsc::unbounded();
        let main = self.main.informer(&self.cluster, &self.name);
        let (filter, writer) = (Rc::new(self.main.filter), self.writer.clone());
        {
            let (shared, filter) = (shared.clone(), filter.clone());
            main.add_handler("reconciler", move |notification| {
                let (object, applied) = match &notification {
                    Notification::Added(object) | Notification::Updated { new: object, .. } => {
                        (object, true)
                    }
                    Notification::Deleted { object, .. } => (object, false),
                };
                if filter.matches(object) {
                    let typed = from_object::<K>(object);
                    let mut writer = writer.borrow_mut();
                    if applied {
                        writer.apply_watcher_event(&watcher::Event::Apply(typed));
                        let key = (object.metadata.namespace.clone(), object.metadata.name.clone());
                        shared.schedule(key, sim_core::now());
                    } else {
                        writer.apply_watcher_event(&watcher::Event::Delete(typed));
                    }
                }
                std::future::ready(())
            });
        }
        for trigger in self.triggers {
            trigger(&shared, &self.name);
        }
        for (index, extra) in self.extra.into_iter().enumerate() {
            let stream = extra(shared.clone(), main.cache(), filter.clone());
            self.cluster.spawn_daemon(format!("{}/trigger-{index}", self.name), stream);
        }
        for (index, trigger) in self.shutdown.into_iter().enumerate() {
            let shared = shared.clone();
            self.cluster.spawn_daemon(format!("{}/shutdown-{index}", self.name), async move {
                trigger.await;
                sim_core::event("graceful shutdown: no new reconciles");
                shared.stopped.set(true);
                shared.wake.notify_one();
            });
        }
        let reconcile = Reconcile {
            cluster: self.cluster.clone(),
            controller: self.name.clone().into(),
            cache: main.cache(),
            filter,
            shared: shared.clone(),
            reconciler: Rc::new(RefCell::new(reconciler)),
            error_policy: Rc::new(error_policy),
            context,
            results: tx,
        };
        let (dispatcher, writer) = (shared.clone(), self.writer.clone());
        self.cluster.spawn_daemon(format!("{}/scheduler", self.name), async move {
            main.wait_synced().await;
            // The store is ready once the first list is in: kube's runner waits for it.
            {
                let mut writer = writer.borrow_mut();
                writer.apply_watcher_event(&watcher::Event::Init);
                for object in main.cache().list(None) {
                    if reconcile.filter.matches(&object) {
                        let typed = from_object::<K>(&object);
                        writer.apply_watcher_event(&watcher::Event::InitApply(typed));
                    }
                }
                writer.apply_watcher_event(&watcher::Event::InitDone);
            }
            loop {
                if dispatcher.stopped.get() {
                    return;
                }
                while dispatcher.has_room() {
                    let Some(key) = dispatcher.pop(sim_core::now()) else { break };
                    reconcile.start(key);
                }
                let woken = dispatcher.wake.notified();
                match dispatcher.next_due() {
                    Some(due) => {
                        let _ = sim_core::timeout(
                            due.saturating_duration_since(sim_core::now()),
                            woken,
                        )
                        .await;
                    }
                    None => woken.await,
                }
            }
        });
        Results { rx, shared }
    }
}

/// What each reconcile task needs.
struct Reconcile<K: Resource, F, P, Ctx, E: 'static> {
    cluster: Cluster,
    controller: Rc<str>,
    cache: apiserver_fake::Cache,
    filter: Rc<Filter>,
    shared: Rc<Shared>,
    reconciler: Rc<RefCell<F>>,
    error_policy: Rc<P>,
    context: Arc<Ctx>,
    results: mpsc::UnboundedSender<ReconcileResult<K, E>>,
}

impl<K, F, P, Ctx, Fut> Reconcile<K, F, P, Ctx, Fut::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + fmt::Debug + 'static,
    F: FnMut(Arc<K>, Arc<Ctx>) -> Fut + 'static,
    P: Fn(Arc<K>, &Fut::Error, Arc<Ctx>) -> Action + 'static,
    Fut: TryFuture<Ok = Action> + 'static,
    Fut::Error: std::error::Error + 'static,
    Ctx: 'static,
{
    /// Starts the reconcile of `key` as a kdst task.
    fn start(&self, key: Key) {
        let (namespace, name) = key.clone();
        let mut object_ref = ObjectRef::<K>::new(&name);
        if !namespace.is_empty() {
            object_ref = object_ref.within(&namespace);
        }
        let stored = self.cache.get_rc(&namespace, &name).filter(|o| self.filter.matches(o));
        let Some(stored) = stored else {
            let _ = self
                .results
                .unbounded_send(Err(Error::ObjectNotFound(Box::new(object_ref.erase()))));
            return;
        };
        let object: Arc<K> = Arc::new(from_object(&stored));
        self.shared.running.borrow_mut().insert(key.clone());
        let future = (self.reconciler.borrow_mut())(object.clone(), self.context.clone());
        let (shared, error_policy, context) =
            (self.shared.clone(), self.error_policy.clone(), self.context.clone());
        let (results, controller) = (self.results.clone(), self.controller.clone());
        let shown = if namespace.is_empty() { name } else { format!("{namespace}/{name}") };
        let task = format!("{controller}/reconcile {shown}");
        self.cluster.spawn_daemon(task, async move {
            let result = {
                let _frame = sim_core::enter(format!("{controller}.reconcile({shown})"));
                TryFutureExt::into_future(future).await
            };
            let finished = sim_core::now();
            let action = match &result {
                Ok(action) => action.clone(),
                Err(error) => {
                    sim_core::event(format!("{controller}: reconcile {shown} failed: {error}"));
                    error_policy(object, error, context)
                }
            };
            shared.running.borrow_mut().remove(&key);
            if let Some(after) = requeue_after(&action) {
                shared.schedule(key, finished + after);
            }
            shared.wake.notify_one();
            let result = match result {
                Ok(action) => Ok((object_ref, action)),
                Err(error) => Err(Error::ReconcilerFailed(error, Box::new(object_ref.erase()))),
            };
            let _ = results.unbounded_send(result);
        });
    }
}

/// The results of a running [`Controller`], one per reconcile (kube's `run` stream).
/// Dropping it stops the controller.
pub struct Results<K: Resource, E: 'static> {
    rx: mpsc::UnboundedReceiver<ReconcileResult<K, E>>,
    shared: Rc<Shared>,
}

impl<K: Resource, E: 'static> Stream for Results<K, E> {
    type Item = ReconcileResult<K, E>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.rx).poll_next(cx)
    }
}

impl<K: Resource, E: 'static> Drop for Results<K, E> {
    fn drop(&mut self) {
        self.shared.stopped.set(true);
        self.shared.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_back_from_debug() {
        for nanos in
            [0, 1, 999, 1_000, 1_500, 250_000_000, 1_000_000_000, 1_500_000_001, 3_600_000_000_000]
        {
            let duration = Duration::from_nanos(nanos);
            assert_eq!(parse_duration(&format!("{duration:?}")), Some(duration), "{duration:?}");
        }
        let action = Action::requeue(Duration::from_millis(1500));
        assert_eq!(requeue_after(&action), Some(Duration::from_millis(1500)));
        assert_eq!(requeue_after(&Action::await_change()), None);
        let kube = kube::runtime::controller::Config::default()
            .concurrency(3)
            .debounce(Duration::from_millis(20));
        assert_eq!(
            Config::from(kube),
            Config::default().concurrency(3).debounce(Duration::from_millis(20))
        );
    }
}
