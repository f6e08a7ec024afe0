//! `informer-cache-locking`: a pod cache filled by informer event handlers while reconcile
//! workers read it (bugs.md E, the general pattern behind B–D).
//!
//! - client-go's handler contract: `tools/cache` `ResourceEventHandler`
//!   (<https://pkg.go.dev/k8s.io/client-go/tools/cache#ResourceEventHandler>): `OnAdd`,
//!   `OnUpdate`, `OnDelete` are called by the shared informer's `processorListener.run`, one
//!   goroutine per registered handler, notifications delivered in order — so the handler never
//!   races itself, but it runs concurrently with everything else, the controller's workers in
//!   particular.
//! - Go's maps: "Maps are not safe for concurrent use" (<https://go.dev/blog/maps>, and the FAQ
//!   <https://go.dev/doc/faq#atomic_maps>); the runtime's best-effort check kills the process
//!   with `fatal error: concurrent map read and map write` when a read sees a write in progress.
//! - The fix is the one the Go blog gives: a `sync.RWMutex` next to the map, `Lock` around every
//!   write and `RLock` around **every** read (<https://pkg.go.dev/sync#RWMutex>).
//!
//! | modelled step | upstream |
//! |---|---|
//! | [`PodCache`]: `pods`, a [`GoMap`] of `namespace/name` → [`PodSummary`], and `mu`, a [`RwLock`] | `type podCache struct { mu sync.RWMutex; pods map[string]podSummary }` |
//! | the `pod-informer/pod-cache` task: `processorListener.run` calling `OnAdd` / `OnUpdate` / `OnDelete` → `podCache.Set` / `podCache.Delete` | `sharedIndexInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{…})`, `processorListener.run` |
//! | the `pod-informer/pod-controller-handler` task enqueues each event's key | the controller's own handler (`handler.EnqueueRequestForObject`) |
//! | `pod-controller/worker-<i>` (`workers` of them) run `Reconcile(key)`: `podCache.Get(key)`, then `podCache.IsReady` of the pod's predecessor (ordered start-up, as a StatefulSet waits for ordinal N-1) | `Reconciler.Reconcile`, `MaxConcurrentReconciles` |
//! | `workload` creates `pods` Pods, updates each one's status `churn` times, deletes them — real API calls, so watch events flow | kubelet status updates, a rollout |
//! | `driver` waits for the workload, lets the informer drain, and ends the run | — |
//!
//! Variants:
//! - `no-lock`: `pods` is a bare map: any read can land inside a handler's write.
//! - `missing-rlock`: `Set`/`Delete` take `mu.Lock()` and `Get` takes `mu.RLock()`, but
//!   `IsReady` — a helper added later — reads `c.pods[key]` without `RLock`. Only that path
//!   crashes (the goroutine dump shows `podCache.IsReady` on the reading side).
//! - `fixed`: `RLock` on every read; no schedule can crash.

use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::{
    Action, ApiServer, Client, ClientConfig, Controller, DeleteOptions, Informer, Notification,
    Object, ObjectKey, ReconcileResult,
};
use serde_json::{Value, json};
use sim_core::sync::RwLock;
use sim_core::{FailureKind, GoMap, enter, event, sleep, spawn};

use crate::{Key, Meta, Param, Params, Scenario, Variant};

const NAMESPACE: &str = "default";

/// The scenario.
pub struct CacheLocking;

/// What the cache keeps per pod: the fields the controller needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSummary {
    /// `status.phase`.
    pub phase: String,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// The resourceVersion the summary was taken from.
    pub resource_version: u64,
}

impl PodSummary {
    /// The summary of a Pod as the informer delivered it.
    pub fn of(pod: &Object) -> Self {
        let phase = pod.status.get("phase").and_then(Value::as_str).unwrap_or("Pending");
        let ready = pod
            .status
            .get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        PodSummary { phase: phase.to_string(), ready, resource_version: pod.resource_version() }
    }
}

/// Which reads take the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Locking {
    /// No lock at all.
    None,
    /// Writers `Lock`, `Get` `RLock`s, `IsReady` forgets.
    MissingRLock,
    /// Every access locks.
    Full,
}

/// `podCache`: the map and the RWMutex beside it. Clones share both, like a `*podCache`.
#[derive(Clone)]
pub struct PodCache {
    locking: Locking,
    mu: Rc<RwLock<()>>,
    pods: GoMap<String, PodSummary>,
}

impl PodCache {
    fn new(locking: Locking) -> Self {
        PodCache {
            locking,
            mu: Rc::new(RwLock::named("podCache.mu", ())),
            pods: GoMap::new("podCache.pods"),
        }
    }

    /// `c.mu.Lock(); c.pods[key] = summary; c.mu.Unlock()` (no lock in `no-lock`).
    pub async fn set(&self, key: String, summary: PodSummary) {
        let _frame = enter("podCache.Set");
        let _lock = match self.locking {
            Locking::None => None,
            _ => Some(self.mu.write().await),
        };
        self.pods.insert(key, summary).await;
    }

    /// `c.mu.Lock(); delete(c.pods, key); c.mu.Unlock()` (no lock in `no-lock`).
    pub async fn delete(&self, key: &String) {
        let _frame = enter("podCache.Delete");
        let _lock = match self.locking {
            Locking::None => None,
            _ => Some(self.mu.write().await),
        };
        self.pods.remove(key).await;
    }

    /// `c.mu.RLock(); defer c.mu.RUnlock(); return c.pods[key]` (no lock in `no-lock`).
    pub async fn get(&self, key: &String) -> Option<PodSummary> {
        let _frame = enter("podCache.Get");
        let _lock = match self.locking {
            Locking::None => None,
            _ => Some(self.mu.read().await),
        };
        self.pods.get(key).await
    }

    /// `return c.pods[key].ready` — the reader that forgot `RLock` (locked only in `fixed`).
    pub async fn is_ready(&self, key: &String) -> bool {
        let _frame = enter("podCache.IsReady");
        let _lock = match self.locking {
            Locking::Full => Some(self.mu.read().await),
            _ => None,
        };
        self.pods.get(key).await.is_some_and(|pod| pod.ready)
    }
}

/// Pods the workload creates (pod-0 … pod-N-1).
const PODS: Key<usize> = Key::count("pods", "Pods the workload creates (pod-0 … pod-N-1)", 3)
    .range(1, 50)
    .swarm(&[2, 3, 8]);

/// The controller's concurrent reconciles (MaxConcurrentReconciles).
const WORKERS: Key<usize> =
    Key::count("workers", "the controller's concurrent reconciles (MaxConcurrentReconciles)", 2)
        .range(1, 16)
        .swarm(&[2, 4]);

/// Status updates per Pod between its create and its delete.
const CHURN: Key<usize> =
    Key::count("churn", "status updates per Pod between its create and its delete", 2)
        .range(0, 20)
        .swarm(&[1, 2, 5]);

/// The shared `cache-lag-us` (see [`crate::CACHE_LAG`]), up to 1 s, with a third swarm value
/// (50 ms).
const CACHE_LAG: Key<Duration> = crate::CACHE_LAG.range(0, 1_000_000).swarm(&[0, 5_000, 50_000]);

const PARAMS: &[Param] = &[PODS.param, WORKERS.param, CHURN.param, CACHE_LAG.param];

const NO_LOCK: Variant = Variant::fails(
    "no-lock",
    "the handlers write and the workers read a bare map",
    FailureKind::GoFatal,
    "fatal error: concurrent map read and map write",
);
const MISSING_RLOCK: Variant = Variant::fails(
    "missing-rlock",
    "an RWMutex guards the map, but podCache.IsReady reads without RLock",
    FailureKind::GoFatal,
    "fatal error: concurrent map read and map write",
);
const FIXED: Variant = Variant::holds("fixed", "Lock on every write, RLock on every read");

const VARIANTS: &[Variant] = &[NO_LOCK, MISSING_RLOCK, FIXED];

const META: Meta = Meta {
    name: "informer-cache-locking",
    summary: "informer handlers write a pod cache that reconcile workers read: concurrent map read and map write",
    upstream: &[
        "https://pkg.go.dev/k8s.io/client-go/tools/cache#ResourceEventHandler",
        "https://go.dev/blog/maps",
        "https://go.dev/doc/faq#atomic_maps",
        "https://pkg.go.dev/sync#RWMutex",
    ],
    variants: VARIANTS,
    params: PARAMS,
};

impl Scenario for CacheLocking {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn setup(&self, variant: &Variant, params: &Params) {
        let cache = PodCache::new(if variant.is(&NO_LOCK) {
            Locking::None
        } else if variant.is(&MISSING_RLOCK) {
            Locking::MissingRLock
        } else {
            Locking::Full
        });
        let server = ApiServer::default();
        let delivery = params.get(CACHE_LAG);
        let client = Client::new(&server, "pod-controller", ClientConfig::default());
        let config = crate::informer_config_with(params, CACHE_LAG);
        let informer = Informer::new("pod-informer", &client, "v1", "Pod", None, config);
        let handler_cache = cache.clone();
        informer.add_handler("pod-cache", move |notification| {
            let cache = handler_cache.clone();
            async move { on_event(&cache, notification).await }
        });
        let controller = Controller::new("pod-controller", params.get(WORKERS));
        controller.watches(&informer);
        informer.start();
        controller.start(move |key| {
            let cache = cache.clone();
            async move { reconcile(&cache, key).await }
        });

        let (pods, churn) = (params.get(PODS), params.get(CHURN));
        let user = Client::new(&server, "workload", ClientConfig::default());
        spawn("driver", async move {
            let workload = spawn("workload", workload(user, pods, churn));
            workload.await;
            // Let the last events reach the handlers and the workers.
            sleep(delivery * 2 + Duration::from_millis(50)).await;
            event("workload done");
        });
    }
}

/// The handler registered with `AddEventHandler(cache.ResourceEventHandlerFuncs{…})`, run by the
/// listener's `processorListener.run`.
async fn on_event(cache: &PodCache, notification: Notification) {
    let _run = enter("processorListener.run");
    match notification {
        Notification::Added(pod) => {
            let _frame = enter("ResourceEventHandlerFuncs.OnAdd");
            cache.set(pod.key(), PodSummary::of(&pod)).await;
        }
        Notification::Updated { new, .. } => {
            let _frame = enter("ResourceEventHandlerFuncs.OnUpdate");
            cache.set(new.key(), PodSummary::of(&new)).await;
        }
        Notification::Deleted { object, .. } => {
            let _frame = enter("ResourceEventHandlerFuncs.OnDelete");
            cache.delete(&object.key()).await;
        }
    }
}

/// `Reconcile(key)`: the pod from the cache, then whether its predecessor is ready.
async fn reconcile(cache: &PodCache, key: ObjectKey) -> ReconcileResult {
    let Some(pod) = cache.get(&key.to_string()).await else {
        return Ok(Action::Done);
    };
    let ordinal = key.name.strip_prefix("pod-").and_then(|n| n.parse::<usize>().ok());
    if let Some(previous) = ordinal.and_then(|n| n.checked_sub(1)) {
        let previous = format!("{}/pod-{previous}", key.namespace);
        if !cache.is_ready(&previous).await {
            event(format!("{key}: waiting for {previous} to be Ready"));
            return Ok(Action::Done);
        }
    }
    event(format!("{key}: {} ready={} (rv {})", pod.phase, pod.ready, pod.resource_version));
    Ok(Action::Done)
}

/// Creates the Pods, moves each through `churn` status updates, deletes them.
async fn workload(client: Client, pods: usize, churn: usize) {
    let mut created = Vec::with_capacity(pods);
    for index in 0..pods {
        let pod = Object::new("v1", "Pod", NAMESPACE, &format!("pod-{index}"))
            .with_spec(json!({ "containers": [{ "name": "app", "image": "app:1" }] }));
        match client.create(pod).await {
            Ok(pod) => created.push(pod),
            Err(error) => event(format!("workload: create failed: {error}")),
        }
    }
    for round in 0..churn {
        for pod in &mut created {
            let mut next = pod.clone();
            next.status = json!({
                "phase": "Running",
                "conditions": [{
                    "type": "Ready",
                    "status": if round % 2 == 0 { "True" } else { "False" },
                }],
            });
            match client.update_status(next).await {
                Ok(updated) => *pod = updated,
                Err(error) => event(format!("workload: status update failed: {error}")),
            }
        }
    }
    for pod in &created {
        let name = &pod.metadata.name;
        if let Err(error) =
            client.delete("v1", "Pod", NAMESPACE, name, &DeleteOptions::default()).await
        {
            event(format!("workload: delete failed: {error}"));
        }
    }
}
