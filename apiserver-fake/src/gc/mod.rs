//! The garbage collector (`pkg/controller/garbagecollector`), as simulated tasks.
//!
//! - **Monitors** (`graph_builder.go` `startMonitors`): one informer per served kind; their
//!   handlers feed `graphChanges`.
//! - **Graph builder** (`processGraphChanges`, one task `gc/graph-builder`): a graph of nodes
//!   keyed by uid; owners not yet seen become *virtual* nodes queued to attemptToDelete;
//!   ownerReference diffs (`referencesDiffs`, `addUnblockedOwnersToDeleteQueue`); transitions
//!   into deletion (`processTransitions`): `orphan` → attemptToOrphan, `foregroundDeletion` →
//!   mark `deletingDependents` and queue every dependent and the node; delete events remove the
//!   node, remember it in the absent-owner cache (LRU of 500), queue its dependents and its
//!   owners that are deleting dependents.
//! - **attemptToDelete workers** (`attemptToDeleteItem`, `processDeletingDependentsItem`,
//!   `classifyReferences`, `isDangling`): live GETs, dangling / waiting / solid, the cycle
//!   unblock patch, Foreground / Background / Orphan deletes with a uid precondition, and
//!   removal of `foregroundDeletion` once the graph shows no blocking dependent.
//! - **attemptToOrphan workers** (`attemptToOrphanWorker`, `orphanDependents`): patch the owner
//!   out of every dependent in the graph, then remove `orphan`.
//!
//! Upstream patches ownerReferences of built-in kinds with a strategic merge patch that
//! carries no resourceVersion; kdst has no strategic merge patch and uses the JSON merge patch
//! path upstream uses for custom resources (GET, then a patch carrying the resourceVersion and
//! uid, retried via the queue on conflict).
//!
//! This file holds the options ([`GcConfig`]), the [`GarbageCollector`] handle that starts the
//! monitors, the graph builder and the workers, the queue items, and the two writes both kinds
//! of worker make. It mirrors upstream `garbagecollector.go` (`NewGarbageCollector`,
//! `GarbageCollector.Run`), `operations.go` (`removeFinalizer`) and `patch.go`
//! (`deleteOwnerRefJSONMergePatch`). The other files:
//! - `graph.rs`: the dependency graph and the graph builder (`graph.go`, `graph_builder.go`);
//! - `absent.rs`: the cache of owners known to be absent (`uid_cache.go`);
//! - `delete.rs`: the attemptToDelete workers (`garbagecollector.go`);
//! - `orphan.rs`: the attemptToOrphan workers (`garbagecollector.go`).

mod absent;
mod delete;
mod graph;
mod orphan;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;
use sim_core::footprint::Resource;
use sim_core::sync::channel::{self, Sender};

use crate::client::Client;
use crate::error::ApiError;
use crate::informer::{Informer, InformerConfig, Notification};
use crate::object::OwnerReference;
use crate::workqueue::{QueueConfig, RateLimiter, WorkQueue};

pub use graph::{Identity, Node};

use absent::AbsentCache;
use graph::{ChangeType, GraphChange};

/// The GC's options.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct GcConfig {
    /// Workers for attemptToDelete and for attemptToOrphan each (`--concurrent-gc-syncs`, 20).
    pub workers: usize,
    /// The monitors' informer options (their cache lag is the graph's lag).
    pub informer: InformerConfig,
    /// Kinds to monitor as `(apiVersion, kind)`; `None`: every kind the server serves.
    pub kinds: Option<Vec<(String, String)>>,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig { workers: 20, informer: InformerConfig::default(), kinds: None }
    }
}

impl GcConfig {
    /// Sets the number of workers per queue.
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Sets the monitors' informer options.
    pub fn with_informer(mut self, informer: InformerConfig) -> Self {
        self.informer = informer;
        self
    }

    /// Monitors only these kinds.
    pub fn with_kinds(mut self, kinds: &[(&str, &str)]) -> Self {
        self.kinds = Some(kinds.iter().map(|(a, k)| (a.to_string(), k.to_string())).collect());
        self
    }
}

struct Shared {
    client: Client,
    nodes: RefCell<BTreeMap<String, Node>>,
    absent: RefCell<AbsentCache>,
    /// What steps that use the dependency graph or the absent-owner cache touch.
    resource: Resource,
    attempt_to_delete: WorkQueue<Item>,
    attempt_to_orphan: WorkQueue<Item>,
    changes: Sender<GraphChange>,
}

/// The garbage collector. Cloning gives another handle to the same collector.
#[derive(Clone)]
pub struct GarbageCollector {
    shared: Rc<Shared>,
    monitors: Rc<Vec<Informer>>,
}

/// Why attemptToDelete stops early without an error.
enum Stop {
    /// `enqueuedVirtualDeleteEventErr`: forget the item.
    VirtualDelete,
    /// `namespacedOwnerOfClusterScopedObjectErr`: forget the item.
    ClusterScopedWithNamespacedOwner,
    /// Retry with backoff.
    Retry(String),
}

impl From<ApiError> for Stop {
    fn from(error: ApiError) -> Self {
        Stop::Retry(error.to_string())
    }
}

impl GarbageCollector {
    /// Starts the collector: monitors for every kind (or `config.kinds`), the graph builder,
    /// and the workers once the monitors have synced. Tasks are daemons named `gc/...`.
    pub fn start(client: &Client, config: GcConfig) -> Self {
        let (tx, rx) = channel::named::<GraphChange>("gc graphChanges", None);
        let limiter = || RateLimiter::default_controller();
        let shared = Rc::new(Shared {
            client: client.clone(),
            nodes: RefCell::new(BTreeMap::new()),
            absent: RefCell::new(AbsentCache::new(500)),
            resource: Resource::new(),
            attempt_to_delete: WorkQueue::with_config(
                "gc/attemptToDelete",
                QueueConfig::default().with_rate_limiter(limiter()),
            ),
            attempt_to_orphan: WorkQueue::with_config(
                "gc/attemptToOrphan",
                QueueConfig::default().with_rate_limiter(limiter()),
            ),
            changes: tx,
        });
        let kinds: Vec<(String, String)> = match &config.kinds {
            Some(kinds) => kinds.clone(),
            None => client
                .server()
                .kinds()
                .into_iter()
                .map(|info| (info.api_version, info.kind))
                .collect(),
        };
        let mut monitors = Vec::new();
        for (api_version, kind) in &kinds {
            let name = format!("gc/monitor {}.{api_version}", kind.to_lowercase());
            let informer = Informer::new(&name, client, api_version, kind, None, config.informer);
            let changes = shared.changes.clone();
            informer.add_handler("handler", move |notification| {
                let change = match notification {
                    Notification::Added(object) => GraphChange {
                        change: ChangeType::Add,
                        object,
                        old: None,
                        virtual_event: false,
                    },
                    Notification::Updated { old, new } => GraphChange {
                        change: ChangeType::Update,
                        object: new,
                        old: Some(old),
                        virtual_event: false,
                    },
                    Notification::Deleted { object, .. } => GraphChange {
                        change: ChangeType::Delete,
                        object,
                        old: None,
                        virtual_event: false,
                    },
                };
                let _ = changes.try_send(change);
                std::future::ready(())
            });
            informer.start();
            monitors.push(informer);
        }
        let gc = GarbageCollector { shared: shared.clone(), monitors: Rc::new(monitors) };
        sim_core::spawn_daemon("gc/graph-builder", {
            let shared = shared.clone();
            async move {
                while let Some(change) = rx.recv().await {
                    shared.process_graph_change(change);
                }
            }
        });
        let starter = gc.clone();
        sim_core::spawn_daemon("gc/start", async move {
            for monitor in starter.monitors.iter() {
                monitor.wait_synced().await;
            }
            for worker in 0..config.workers {
                let shared = starter.shared.clone();
                sim_core::spawn_daemon(format!("gc/attemptToDelete-{worker}"), async move {
                    while let Some(item) = shared.attempt_to_delete.get().await {
                        shared.attempt_to_delete_worker(&item.uid).await;
                        shared.attempt_to_delete.done(&item);
                    }
                });
                let shared = starter.shared.clone();
                sim_core::spawn_daemon(format!("gc/attemptToOrphan-{worker}"), async move {
                    while let Some(item) = shared.attempt_to_orphan.get().await {
                        shared.attempt_to_orphan_worker(&item.uid).await;
                        shared.attempt_to_orphan.done(&item);
                    }
                });
            }
        });
        gc
    }

    /// A copy of the dependency graph, by uid.
    pub fn graph(&self) -> BTreeMap<String, Node> {
        self.shared.nodes().clone()
    }

    /// Whether every monitor has synced.
    pub fn has_synced(&self) -> bool {
        self.monitors.iter().all(Informer::has_synced)
    }
}

/// A queue item: a node's uid (its identity for ordering and coalescing), shown in traces as
/// the node's coordinates.
#[derive(Clone, Debug)]
struct Item {
    uid: String,
    label: Rc<str>,
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        self.uid == other.uid
    }
}

impl Eq for Item {}

impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Item {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.uid.cmp(&other.uid)
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

impl Shared {
    fn item(&self, uid: String) -> Item {
        let label = match self.nodes().get(&uid) {
            Some(node) => node.identity.to_string(),
            None => uid.clone(),
        };
        Item { uid, label: label.into() }
    }

    /// `deleteOwnerRefJSONMergePatch`: GET, then a merge patch without the given owners,
    /// carrying the resourceVersion and uid.
    async fn delete_owner_refs(&self, item: &Node, owner_uids: &[String]) -> Result<(), Stop> {
        let id = &item.identity;
        let latest = match self.client.get(&id.api_version, &id.kind, &id.namespace, &id.name).await
        {
            Ok(latest) => latest,
            Err(error) if error.is_not_found() => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        let kept: Vec<&OwnerReference> = latest
            .metadata
            .owner_references
            .iter()
            .filter(|r| !owner_uids.contains(&r.uid))
            .collect();
        let patch = json!({ "metadata": {
            "ownerReferences": kept,
            "resourceVersion": latest.metadata.resource_version,
            "uid": id.uid,
        }});
        match self.client.patch(&id.api_version, &id.kind, &id.namespace, &id.name, &patch).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_not_found() => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// `removeFinalizer`: get + merge patch carrying the resourceVersion, retried on conflict
    /// (`retry.DefaultBackoff`: 4 tries, 10 ms × 5ⁿ).
    async fn remove_finalizer(&self, item: &Node, finalizer: &str) -> Result<(), Stop> {
        let id = &item.identity;
        let mut delay = Duration::from_millis(10);
        for attempt in 0..4 {
            let latest = match self
                .client
                .get(&id.api_version, &id.kind, &id.namespace, &id.name)
                .await
            {
                Ok(latest) => latest,
                Err(error) if error.is_not_found() => return Ok(()),
                Err(error) => {
                    return Err(Stop::Retry(format!(
                        "cannot finalize owner {id}, because cannot get it: {error}. The garbage \
                         collector will retry later"
                    )));
                }
            };
            if !latest.has_finalizer(finalizer) {
                return Ok(());
            }
            let kept: Vec<&String> =
                latest.metadata.finalizers.iter().filter(|f| *f != finalizer).collect();
            let finalizers = if kept.is_empty() { serde_json::Value::Null } else { json!(kept) };
            let patch = json!({ "metadata": {
                "resourceVersion": latest.metadata.resource_version,
                "finalizers": finalizers,
            }});
            sim_core::event(format!("gc: removing {finalizer} from {id}"));
            match self
                .client
                .patch(&id.api_version, &id.kind, &id.namespace, &id.name, &patch)
                .await
            {
                Ok(_) => return Ok(()),
                Err(error) if error.is_conflict() && attempt < 3 => {
                    sim_core::sleep(delay).await;
                    delay *= 5;
                }
                Err(error) if error.is_conflict() => {
                    return Err(Stop::Retry(format!(
                        "updateMaxRetries(4) has reached. The garbage collector will retry later \
                         for owner {id}"
                    )));
                }
                Err(error) if error.is_not_found() => return Ok(()),
                Err(error) => return Err(error.into()),
            }
        }
        unreachable!("the last attempt returns")
    }
}
