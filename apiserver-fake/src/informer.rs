//! Informers: a reflector (list, then watch from the list's resourceVersion; rewatch after a
//! closed stream; relist after 410 Gone), a cache that lags the server by a configurable
//! delivery delay, and event handlers each on its own listener task.
//!
//! Follows client-go `tools/cache`: `reflector.go` (`ListAndWatch`, `watchHandler`),
//! `delta_fifo.go` (`Replace` synthesizes `DeletedFinalStateUnknown` for objects that vanished
//! unobserved), `shared_informer.go` (`HandleDeltas` updates the indexer **before** it
//! distributes notifications; each `processorListener` runs handlers on its own goroutine with
//! an unbounded buffer; resync re-delivers cached objects as updates).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use sim_core::footprint::Resource;
use sim_core::sync::Notify;
use sim_core::sync::channel::{self, Sender};

use crate::client::{Client, Latency};
use crate::object::Object;
use crate::selector::Selector;
use crate::server::{EventType, WatchStart};

/// What a handler is told.
#[derive(Clone, Debug, PartialEq)]
pub enum Notification {
    /// An object appeared in the cache.
    Added(Rc<Object>),
    /// An object in the cache changed (or was re-delivered by a resync or relist).
    Updated {
        /// The cached state before.
        old: Rc<Object>,
        /// The cached state now.
        new: Rc<Object>,
    },
    /// An object left the cache.
    Deleted {
        /// Its last known state.
        object: Rc<Object>,
        /// True when a relist found it gone without a DELETED event (client-go's
        /// `DeletedFinalStateUnknown`): the state may be stale.
        final_state_unknown: bool,
    },
}

impl Notification {
    /// The object the notification is about (the new state for an update).
    pub fn object(&self) -> &Rc<Object> {
        match self {
            Notification::Added(object)
            | Notification::Updated { new: object, .. }
            | Notification::Deleted { object, .. } => object,
        }
    }
}

/// An informer's options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InformerConfig {
    /// How long each watch event takes to reach the cache after the reflector receives it (a
    /// slow watch connection, a busy DeltaFIFO): the cache lags the server by this much.
    pub delivery_delay: Latency,
    /// Re-deliver every cached object as an update this often (`None`: never).
    pub resync: Option<Duration>,
    /// How long the reflector waits before retrying a failed list or watch.
    pub retry_backoff: Duration,
    /// How long an [`INFORMER_LAG`] perturbation holds the watch stream back.
    pub lag: Latency,
    /// How long an event an [`UNOBSERVED_STATE`] perturbation withheld waits for the object's
    /// next event before it is delivered after all.
    pub withhold_max: Duration,
    /// After a [`STALE_RECONNECT`] perturbation, how long until the process reconnects to the
    /// lagging server.
    pub reconnect_after: Latency,
    /// After the reconnection, how long until the lagging view catches up.
    pub catch_up: Latency,
}

/// Perturbation class: the watch stream of an informer of a [`sim_core::Process`] stops for a
/// while ([`InformerConfig::lag`]) before one event reaches the cache, and every later event
/// waits behind it: how long a cache lags is the strategy's choice, not only a timing draw.
pub const INFORMER_LAG: &str = "informer-lag";
/// Perturbation class (Sieve's stale states, "time travel"): at an event an informer of a
/// [`sim_core::Process`] delivers that marks an object deleting (a MODIFIED event with a
/// deletionTimestamp), a second, lagging API server's view of that object freezes at that
/// state; after [`InformerConfig::reconnect_after`] the process restarts
/// connected to that server (its informers relist: the stale object and fresh others); after
/// [`InformerConfig::catch_up`] more the view catches up ([`ApiServer::catch_up_view`]).
///
/// [`ApiServer::catch_up_view`]: crate::ApiServer::catch_up_view
pub const STALE_RECONNECT: &str = "stale-reconnect";
/// Perturbation class (Sieve's unobserved states): an informer of a [`sim_core::Process`] does
/// not deliver one event of an object; its next event delivers the state then (the cache jumps
/// over the withheld state), and a relist restores it.
pub const UNOBSERVED_STATE: &str = "unobserved-state";

impl Default for InformerConfig {
    fn default() -> Self {
        InformerConfig {
            delivery_delay: Latency::range(Duration::ZERO, Duration::from_millis(5)),
            resync: None,
            retry_backoff: Duration::from_secs(1),
            lag: Latency::range(Duration::from_millis(100), Duration::from_secs(3)),
            withhold_max: Duration::from_secs(10),
            reconnect_after: Latency::range(Duration::from_secs(1), Duration::from_secs(5)),
            catch_up: Latency::range(Duration::from_secs(5), Duration::from_secs(15)),
        }
    }
}

impl InformerConfig {
    /// Sets [`InformerConfig::delivery_delay`].
    pub fn with_delivery_delay(mut self, delivery_delay: Latency) -> Self {
        self.delivery_delay = delivery_delay;
        self
    }

    /// Sets [`InformerConfig::lag`].
    pub fn with_lag(mut self, lag: Latency) -> Self {
        self.lag = lag;
        self
    }

    /// Sets [`InformerConfig::resync`].
    pub fn with_resync(mut self, resync: Option<Duration>) -> Self {
        self.resync = resync;
        self
    }
}

/// An informer's cache (client-go's indexer): what the controller believes, which may lag the
/// server. Cloning gives another handle to the same cache.
#[derive(Clone, Default)]
pub struct Cache {
    objects: Rc<RefCell<Objects>>,
    /// What steps that use the cache touch: a lookup reads its object's part, a listing reads
    /// the whole cache, a change writes both.
    resource: Resource,
}

/// Cached objects by (namespace, name).
type Objects = BTreeMap<(String, String), Rc<Object>>;

impl Cache {
    /// The cached object `namespace/name` (namespace empty for cluster-scoped kinds).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Object> {
        self.get_rc(namespace, name).map(|object| (*object).clone())
    }

    /// The cached object, shared.
    pub fn get_rc(&self, namespace: &str, name: &str) -> Option<Rc<Object>> {
        self.resource.part(namespace).part(name).read();
        self.objects.borrow().get(crate::pair::pair(&(namespace, name))).cloned()
    }

    /// Cached objects in one namespace or (`None`) all, ordered by namespace and name.
    pub fn list(&self, namespace: Option<&str>) -> Vec<Object> {
        self.list_selector(namespace, &Selector::everything())
    }

    /// Cached objects matching a label selector.
    pub fn list_selector(&self, namespace: Option<&str>, selector: &Selector) -> Vec<Object> {
        self.resource.read();
        self.objects
            .borrow()
            .values()
            .filter(|o| namespace.is_none_or(|ns| o.metadata.namespace == ns))
            .filter(|o| selector.matches(&o.metadata.labels))
            .map(|o| (**o).clone())
            .collect()
    }

    /// Cached objects whose ownerReferences name `uid`.
    pub fn owned_by(&self, uid: &str) -> Vec<Object> {
        self.resource.read();
        self.objects
            .borrow()
            .values()
            .filter(|o| o.is_owned_by(uid))
            .map(|o| (**o).clone())
            .collect()
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.resource.read();
        self.objects.borrow().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn key(object: &Object) -> (String, String) {
        (object.metadata.namespace.clone(), object.metadata.name.clone())
    }

    /// Stores `object`; the previous state, if any.
    fn put(&self, object: Rc<Object>) -> Option<Rc<Object>> {
        self.touch(&object);
        self.objects.borrow_mut().insert(Cache::key(&object), object)
    }

    fn remove(&self, object: &Object) -> Option<Rc<Object>> {
        self.touch(object);
        self.objects.borrow_mut().remove(&Cache::key(object))
    }

    /// Records a change of `object` in the cache.
    fn touch(&self, object: &Object) {
        self.resource.write();
        self.resource.part(&object.metadata.namespace).part(&object.metadata.name).write();
    }

    fn snapshot(&self) -> Vec<Rc<Object>> {
        self.resource.read();
        self.objects.borrow().values().cloned().collect()
    }
}

struct Inner {
    name: String,
    client: Client,
    api_version: String,
    kind: String,
    namespace: Option<String>,
    config: InformerConfig,
    cache: Cache,
    listeners: RefCell<Vec<Sender<Notification>>>,
    synced: Cell<bool>,
    synced_notify: Notify,
    started: Cell<bool>,
    /// What steps that use the handlers, `started` or `synced` touch.
    resource: Resource,
}

/// A shared informer for one kind (in one namespace or all). Cloning gives another handle.
#[derive(Clone)]
pub struct Informer {
    inner: Rc<Inner>,
}

impl Informer {
    /// An informer named `name` (its tasks are `<name>/reflector`, `<name>/<handler>`).
    pub fn new(
        name: &str,
        client: &Client,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        config: InformerConfig,
    ) -> Self {
        Informer {
            inner: Rc::new(Inner {
                name: name.to_string(),
                client: client.clone(),
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                namespace: namespace.map(str::to_string),
                config,
                cache: Cache::default(),
                listeners: RefCell::new(Vec::new()),
                synced: Cell::new(false),
                synced_notify: Notify::named(format!("{name} synced")),
                started: Cell::new(false),
                resource: Resource::new(),
            }),
        }
    }

    /// The informer's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The `(apiVersion, kind)` it watches.
    pub fn kind(&self) -> (&str, &str) {
        (&self.inner.api_version, &self.inner.kind)
    }

    /// The cache this informer fills.
    pub fn cache(&self) -> Cache {
        self.inner.cache.clone()
    }

    /// Adds a handler, run on its own listener task (`<informer>/<name>`) in notification
    /// order. Added to a started informer, it first gets every cached object as `Added`.
    pub fn add_handler<F, Fut>(&self, name: &str, handler: F)
    where
        F: Fn(Notification) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let (tx, rx) = channel::named(format!("{}/{name} notifications", self.inner.name), None);
        self.inner.resource.write();
        if self.inner.started.get() {
            for object in self.inner.cache.snapshot() {
                let _ = tx.try_send(Notification::Added(object));
            }
        }
        self.inner.listeners.borrow_mut().push(tx);
        sim_core::spawn_daemon(format!("{}/{name}", self.inner.name), async move {
            while let Some(notification) = rx.recv().await {
                handler(notification).await;
            }
        });
    }

    /// Starts the reflector (and the resync loop, if configured) as daemon tasks.
    pub fn start(&self) {
        self.inner.resource.write();
        if self.inner.started.replace(true) {
            return;
        }
        let inner = self.inner.clone();
        sim_core::spawn_daemon(format!("{}/reflector", self.inner.name), reflect(inner));
        if let Some(period) = self.inner.config.resync {
            let inner = self.inner.clone();
            sim_core::spawn_daemon(format!("{}/resync", self.inner.name), async move {
                let mut ticker = sim_core::interval(period);
                ticker.tick().await;
                loop {
                    ticker.tick().await;
                    for object in inner.cache.snapshot() {
                        inner
                            .distribute(Notification::Updated { old: object.clone(), new: object });
                    }
                }
            });
        }
    }

    /// Whether the first list has reached the cache.
    pub fn has_synced(&self) -> bool {
        self.inner.resource.read();
        self.inner.synced.get()
    }

    /// Waits until the first list has reached the cache (`cache.WaitForCacheSync`).
    pub async fn wait_synced(&self) {
        while {
            self.inner.resource.read();
            !self.inner.synced.get()
        } {
            self.inner.synced_notify.notified().await;
        }
    }
}

impl Inner {
    fn distribute(&self, notification: Notification) {
        self.resource.read();
        for listener in self.listeners.borrow().iter() {
            let _ = listener.try_send(notification.clone());
        }
    }

    /// `Replace`: the list becomes the cache; vanished objects are deleted with
    /// `final_state_unknown`.
    fn replace(&self, items: Vec<Object>) {
        let listed: Objects = items.into_iter().map(|o| (Cache::key(&o), Rc::new(o))).collect();
        for old in self.cache.snapshot() {
            if !listed.contains_key(&Cache::key(&old)) {
                self.cache.remove(&old);
                self.distribute(Notification::Deleted { object: old, final_state_unknown: true });
            }
        }
        for object in listed.into_values() {
            match self.cache.put(object.clone()) {
                Some(old) => self.distribute(Notification::Updated { old, new: object }),
                None => self.distribute(Notification::Added(object)),
            }
        }
    }

    /// `HandleDeltas` for one watch event: the cache first, then the handlers.
    fn apply(&self, event_type: EventType, object: Rc<Object>) {
        match event_type {
            EventType::Added | EventType::Modified => match self.cache.put(object.clone()) {
                Some(old) => self.distribute(Notification::Updated { old, new: object }),
                None => self.distribute(Notification::Added(object)),
            },
            EventType::Deleted => {
                self.cache.remove(&object);
                self.distribute(Notification::Deleted { object, final_state_unknown: false });
            }
            EventType::Bookmark | EventType::Error => {}
        }
    }
}

/// The reflector: `ListAndWatch` forever.
async fn reflect(inner: Rc<Inner>) {
    let (api_version, kind) = (inner.api_version.as_str(), inner.kind.as_str());
    let namespace = inner.namespace.as_deref();
    // `relistResourceVersion`: "0" at first (any cached state), then at least the last
    // resourceVersion synced, and "" (the latest) after 410 Gone.
    let mut last_synced = 0;
    let mut consistent = false;
    // Perturbation points exist in processes only (the processes are what kdst perturbs).
    let perturbable = sim_core::Process::current().is_some();
    // Events withheld (UNOBSERVED_STATE) until the object's next event or their deadline.
    let mut withheld: Vec<Withheld> = Vec::new();
    'relist: loop {
        let listed = if consistent {
            inner.client.list(api_version, kind, namespace, &Selector::everything()).await
        } else {
            inner.client.list_from_cache(api_version, kind, namespace, last_synced).await
        };
        let list = match listed {
            Ok(list) => list,
            Err(error) => {
                sim_core::event(format!("reflector: list failed: {error}"));
                sim_core::sleep(inner.config.retry_backoff).await;
                continue 'relist;
            }
        };
        consistent = false;
        let mut resource_version = list.resource_version;
        withheld.clear();
        inner.replace(list.items);
        inner.resource.write();
        if !inner.synced.replace(true) {
            inner.synced_notify.notify_waiters();
        }
        loop {
            let start = WatchStart::From(resource_version);
            let watch = match inner.client.watch(api_version, kind, namespace, start).await {
                Ok(watch) => watch,
                Err(error) => {
                    sim_core::event(format!("reflector: watch failed: {error}"));
                    sim_core::sleep(inner.config.retry_backoff).await;
                    continue;
                }
            };
            loop {
                let deadline = withheld.iter().map(|w| w.deadline).min();
                let next = match deadline {
                    None => watch.next().await,
                    Some(deadline) => {
                        let left = deadline.saturating_duration_since(sim_core::now());
                        match sim_core::timeout(left, watch.next()).await {
                            Ok(next) => next,
                            Err(_) => {
                                // Nothing superseded a withheld event in time: deliver it.
                                let now = sim_core::now();
                                let due: Vec<Withheld>;
                                (due, withheld) =
                                    withheld.drain(..).partition(|w| w.deadline <= now);
                                for late in due {
                                    inner.apply(late.event_type, late.object);
                                }
                                continue;
                            }
                        }
                    }
                };
                let Some(event) = next else { break };
                match event.event_type {
                    EventType::Error => {
                        let error = event.error.expect("an ERROR event carries its error");
                        sim_core::event(format!("reflector: watch ended: {error}; relisting"));
                        last_synced = resource_version;
                        if error.is_expired() {
                            consistent = true;
                        } else {
                            sim_core::sleep(inner.config.retry_backoff).await;
                        }
                        continue 'relist;
                    }
                    EventType::Bookmark => resource_version = event.resource_version(),
                    event_type => {
                        let delay = inner.config.delivery_delay.draw();
                        if !delay.is_zero() {
                            sim_core::sleep(delay).await;
                        }
                        if perturbable
                            && perturbed(&inner, event_type, &event.object, &mut withheld).await
                        {
                            resource_version = event.resource_version();
                            continue;
                        }
                        resource_version = event.resource_version();
                        inner.apply(event_type, event.object);
                    }
                }
            }
            // The stream closed without an error: rewatch from the last resourceVersion.
        }
    }
}

/// An event an [`UNOBSERVED_STATE`] perturbation withheld.
struct Withheld {
    event_type: EventType,
    object: Rc<Object>,
    /// When it is delivered after all, if no later event of the object superseded it.
    deadline: sim_core::SimTime,
}

/// The perturbation points of one watch event of an informer of a process: hold the stream back
/// ([`INFORMER_LAG`]), or withhold the event ([`UNOBSERVED_STATE`]): the object's next event
/// supersedes it (the cache never holds the withheld state), or, if none comes within
/// [`InformerConfig::withhold_max`], it is delivered late. Returns whether the event is withheld.
async fn perturbed(
    inner: &Inner,
    event_type: EventType,
    object: &Rc<Object>,
    withheld: &mut Vec<Withheld>,
) -> bool {
    let verb = match event_type {
        EventType::Added => "ADDED",
        EventType::Modified => "MODIFIED",
        _ => "DELETED",
    };
    let (namespace, name) = (&object.metadata.namespace, &object.metadata.name);
    let lag = sim_core::perturb(INFORMER_LAG, || {
        format!("{} holds back {verb} {} {}/{name}", inner.name, object.kind, namespace)
    });
    if lag {
        sim_core::sleep(inner.config.lag.draw()).await;
    }
    let same =
        |w: &Withheld| w.object.metadata.namespace == *namespace && w.object.metadata.name == *name;
    if let Some(index) = withheld.iter().position(same) {
        withheld.remove(index);
        return false;
    }
    stale_reconnect(inner, event_type, object);
    let withhold = sim_core::perturb(UNOBSERVED_STATE, || {
        format!("{} withholds {verb} {} {}/{name}", inner.name, object.kind, namespace)
    });
    if withhold {
        let deadline = sim_core::now() + inner.config.withhold_max;
        withheld.push(Withheld { event_type, object: object.clone(), deadline });
    }
    withhold
}

/// The [`STALE_RECONNECT`] point of one watch event (see there).
fn stale_reconnect(inner: &Inner, event_type: EventType, object: &Rc<Object>) {
    // Sieve's stale-state plans freeze an object right after the event that started its
    // deletion (its deletionTimestamp): the stale reads most of its 19 stale-state bugs need.
    if event_type != EventType::Modified || !object.is_deleting() {
        return;
    }
    let Some(process) = sim_core::Process::current() else { return };
    // One lagging view per process at a time: its reconnection and catch-up are scheduled.
    if inner.client.server().has_view(process.id()) {
        return;
    }
    let (namespace, name) = (&object.metadata.namespace, &object.metadata.name);
    let fire = sim_core::perturb(STALE_RECONNECT, || {
        format!(
            "a lagging API server's view of {} {namespace}/{name} freezes for {}",
            object.kind,
            process.name()
        )
    });
    if !fire {
        return;
    }
    let state = (event_type != EventType::Deleted).then(|| (**object).clone());
    let server = inner.client.server().clone();
    let (api_version, kind) = (&inner.api_version, &inner.kind);
    server.freeze_view(process.id(), api_version, kind, namespace, name, state);
    let (reconnect, catch_up) = (inner.config.reconnect_after.draw(), inner.config.catch_up.draw());
    sim_core::spawn_daemon_outside(format!("reconnect {}", process.name()), async move {
        sim_core::sleep(reconnect).await;
        server.connect_view(process.id());
        sim_core::event(format!("{} reconnects to the lagging API server", process.name()));
        process.restart();
        sim_core::sleep(catch_up).await;
        server.catch_up_view(process.id());
    });
}
