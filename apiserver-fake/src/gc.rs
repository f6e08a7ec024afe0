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

use std::cell::{Ref, RefCell, RefMut};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;
use sim_core::footprint::Resource;
use sim_core::sync::channel::{self, Sender};

use crate::client::Client;
use crate::error::ApiError;
use crate::informer::{Informer, InformerConfig, Notification};
use crate::object::{FINALIZER_FOREGROUND, FINALIZER_ORPHAN, Object, OwnerReference};
use crate::server::{DeleteOptions, Propagation};
use crate::workqueue::{QueueConfig, RateLimiter, WorkQueue};

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

/// `objectReference`: an object's coordinates.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Identity {
    /// `apiVersion`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// uid.
    pub uid: String,
}

impl Identity {
    fn of(object: &Object) -> Self {
        Identity {
            api_version: object.api_version.clone(),
            kind: object.kind.clone(),
            namespace: object.metadata.namespace.clone(),
            name: object.metadata.name.clone(),
            uid: object.metadata.uid.clone(),
        }
    }

    fn of_owner(reference: &OwnerReference, namespace: &str) -> Self {
        Identity {
            api_version: reference.api_version.clone(),
            kind: reference.kind.clone(),
            namespace: namespace.to_string(),
            name: reference.name.clone(),
            uid: reference.uid.clone(),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns =
            if self.namespace.is_empty() { String::new() } else { format!("{}/", self.namespace) };
        write!(f, "{} {ns}{}", self.kind, self.name)
    }
}

/// A node of the dependency graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Coordinates (for a virtual node: as its first dependent names it).
    pub identity: Identity,
    /// Its ownerReferences as last observed.
    pub owners: Vec<OwnerReference>,
    /// uids of the nodes that name this one as an owner.
    pub dependents: BTreeSet<String>,
    /// deletionTimestamp observed.
    pub being_deleted: bool,
    /// Being deleted with `foregroundDeletion`: waits for blocking dependents.
    pub deleting_dependents: bool,
    /// Known only from a dependent's ownerReference, not (yet) observed.
    pub virtual_node: bool,
    /// Observed through an informer.
    pub observed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChangeType {
    Add,
    Update,
    Delete,
}

struct GraphChange {
    change: ChangeType,
    object: Rc<Object>,
    old: Option<Rc<Object>>,
    virtual_event: bool,
}

/// `ReferenceCache`: an LRU of identities known to be absent.
struct AbsentCache {
    capacity: usize,
    tick: u64,
    by_key: BTreeMap<Identity, u64>,
    by_tick: BTreeMap<u64, Identity>,
}

impl AbsentCache {
    fn new(capacity: usize) -> Self {
        AbsentCache { capacity, tick: 0, by_key: BTreeMap::new(), by_tick: BTreeMap::new() }
    }

    fn touch(&mut self, key: &Identity) {
        self.tick += 1;
        if let Some(old) = self.by_key.insert(key.clone(), self.tick) {
            self.by_tick.remove(&old);
        }
        self.by_tick.insert(self.tick, key.clone());
        while self.by_key.len() > self.capacity {
            if let Some((_, oldest)) = self.by_tick.pop_first() {
                self.by_key.remove(&oldest);
            }
        }
    }

    fn add(&mut self, key: Identity) {
        self.touch(&key);
    }

    fn has(&mut self, key: &Identity) -> bool {
        let found = self.by_key.contains_key(key);
        if found {
            self.touch(key);
        }
        found
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

fn blocks(reference: &OwnerReference, owner_uid: &str) -> bool {
    reference.uid == owner_uid && reference.blocks()
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
    /// The graph, for a step that reads it.
    fn nodes(&self) -> Ref<'_, BTreeMap<String, Node>> {
        self.resource.read();
        self.nodes.borrow()
    }

    /// The graph, for a step that changes it.
    fn nodes_mut(&self) -> RefMut<'_, BTreeMap<String, Node>> {
        self.resource.write();
        self.nodes.borrow_mut()
    }

    /// The absent-owner cache (a lookup moves the entry to the front: a write).
    fn absent(&self) -> RefMut<'_, AbsentCache> {
        self.resource.write();
        self.absent.borrow_mut()
    }

    fn item(&self, uid: String) -> Item {
        let label = match self.nodes().get(&uid) {
            Some(node) => node.identity.to_string(),
            None => uid.clone(),
        };
        Item { uid, label: label.into() }
    }

    fn node(&self, uid: &str) -> Option<Node> {
        self.nodes().get(uid).cloned()
    }

    fn with_node<R>(&self, uid: &str, f: impl FnOnce(&mut Node) -> R) -> Option<R> {
        self.nodes_mut().get_mut(uid).map(f)
    }

    /// `processGraphChanges` for one event.
    fn process_graph_change(&self, event: GraphChange) {
        let object = &event.object;
        let uid = object.metadata.uid.clone();
        let existing = self.node(&uid);
        if let Some(node) = &existing
            && !event.virtual_event
            && !node.observed
        {
            let observed = Identity::of(object);
            if observed != node.identity {
                // Dependents that named the owner by other coordinates may be invalid.
                for dependent in &node.dependents {
                    self.attempt_to_delete.add(self.item(dependent.clone()));
                }
                self.with_node(&uid, |n| n.identity = observed);
            }
            self.with_node(&uid, |n| n.observed = true);
        }
        match (event.change, existing) {
            (ChangeType::Add | ChangeType::Update, None) => {
                let being_deleted = object.is_deleting();
                let node = Node {
                    identity: Identity::of(object),
                    owners: object.metadata.owner_references.clone(),
                    dependents: BTreeSet::new(),
                    being_deleted,
                    deleting_dependents: being_deleted
                        && object.has_finalizer(FINALIZER_FOREGROUND),
                    virtual_node: false,
                    observed: true,
                };
                let owners = node.owners.clone();
                self.nodes_mut().insert(uid.clone(), node);
                self.add_dependent_to_owners(&uid, &owners);
                self.process_transitions(event.old.as_deref(), object, &uid);
            }
            (ChangeType::Add | ChangeType::Update, Some(node)) => {
                let new_refs = &object.metadata.owner_references;
                let added: Vec<OwnerReference> = new_refs
                    .iter()
                    .filter(|r| !node.owners.iter().any(|o| o.uid == r.uid))
                    .cloned()
                    .collect();
                let removed: Vec<OwnerReference> = node
                    .owners
                    .iter()
                    .filter(|o| !new_refs.iter().any(|r| r.uid == o.uid))
                    .cloned()
                    .collect();
                let changed: Vec<(OwnerReference, OwnerReference)> = node
                    .owners
                    .iter()
                    .filter_map(|o| {
                        new_refs
                            .iter()
                            .find(|r| r.uid == o.uid && *r != o)
                            .map(|r| (o.clone(), r.clone()))
                    })
                    .collect();
                if !added.is_empty() || !removed.is_empty() || !changed.is_empty() {
                    // `addUnblockedOwnersToDeleteQueue`.
                    for reference in &removed {
                        if reference.blocks() && self.node(&reference.uid).is_some() {
                            self.attempt_to_delete.add(self.item(reference.uid.clone()));
                        }
                    }
                    for (old, new) in &changed {
                        if old.blocks() && !new.blocks() && self.node(&new.uid).is_some() {
                            self.attempt_to_delete.add(self.item(new.uid.clone()));
                        }
                    }
                    self.with_node(&uid, |n| n.owners = new_refs.clone());
                    self.add_dependent_to_owners(&uid, &added);
                    self.remove_dependent_from_owners(&uid, &removed);
                }
                if object.is_deleting() {
                    self.with_node(&uid, |n| n.being_deleted = true);
                }
                self.process_transitions(event.old.as_deref(), object, &uid);
            }
            (ChangeType::Delete, None) => {}
            (ChangeType::Delete, Some(node)) => {
                let deleted = Identity::of(object);
                let mut remove = true;
                if event.virtual_event && node.identity != deleted {
                    // A virtual delete with other coordinates than the node's: keep the node,
                    // collect the dependents that named the deleted coordinates.
                    remove = false;
                    let matching: Vec<String> = node
                        .dependents
                        .iter()
                        .filter(|d| {
                            self.node(d).is_some_and(|dep| {
                                dep.owners.iter().any(|r| {
                                    r.uid == deleted.uid
                                        && r.name == deleted.name
                                        && r.kind == deleted.kind
                                })
                            })
                        })
                        .cloned()
                        .collect();
                    if !matching.is_empty() {
                        self.absent().add(deleted.clone());
                        for dependent in matching {
                            self.attempt_to_delete.add(self.item(dependent));
                        }
                    }
                }
                if remove {
                    self.nodes_mut().remove(&uid);
                    self.remove_dependent_from_owners(&uid, &node.owners);
                    if !node.dependents.is_empty() {
                        self.absent().add(deleted);
                    }
                    for dependent in &node.dependents {
                        self.attempt_to_delete.add(self.item(dependent.clone()));
                    }
                    for owner in &node.owners {
                        if self.node(&owner.uid).is_some_and(|o| o.deleting_dependents) {
                            self.attempt_to_delete.add(self.item(owner.uid.clone()));
                        }
                    }
                }
            }
        }
    }

    /// `addDependentToOwners`: owners not in the graph become virtual nodes, queued to be
    /// verified by a live GET.
    fn add_dependent_to_owners(&self, uid: &str, owners: &[OwnerReference]) {
        let namespace = self.node(uid).map(|n| n.identity.namespace).unwrap_or_default();
        for owner in owners {
            let exists = self.with_node(&owner.uid, |n| {
                n.dependents.insert(uid.to_string());
            });
            if exists.is_none() {
                let mut dependents = BTreeSet::new();
                dependents.insert(uid.to_string());
                self.nodes_mut().insert(
                    owner.uid.clone(),
                    Node {
                        identity: Identity::of_owner(owner, &namespace),
                        owners: Vec::new(),
                        dependents,
                        being_deleted: false,
                        deleting_dependents: false,
                        virtual_node: true,
                        observed: false,
                    },
                );
                self.attempt_to_delete.add(self.item(owner.uid.clone()));
            }
        }
    }

    fn remove_dependent_from_owners(&self, uid: &str, owners: &[OwnerReference]) {
        for owner in owners {
            self.with_node(&owner.uid, |n| n.dependents.remove(uid));
        }
    }

    /// `processTransitions`.
    fn process_transitions(&self, old: Option<&Object>, new: &Object, uid: &str) {
        let starts_with = |finalizer: &str| {
            new.is_deleting()
                && new.has_finalizer(finalizer)
                && old.is_none_or(|old| !old.is_deleting() || !old.has_finalizer(finalizer))
        };
        if starts_with(FINALIZER_ORPHAN) {
            self.attempt_to_orphan.add(self.item(uid.to_string()));
            return;
        }
        if starts_with(FINALIZER_FOREGROUND) {
            let dependents = self.with_node(uid, |n| {
                n.deleting_dependents = true;
                n.dependents.clone()
            });
            for dependent in dependents.unwrap_or_default() {
                self.attempt_to_delete.add(self.item(dependent));
            }
            self.attempt_to_delete.add(self.item(uid.to_string()));
        }
    }

    fn enqueue_virtual_delete(&self, identity: &Identity) {
        let mut object =
            Object::new(&identity.api_version, &identity.kind, &identity.namespace, &identity.name);
        object.metadata.uid = identity.uid.clone();
        let _ = self.changes.try_send(GraphChange {
            change: ChangeType::Delete,
            object: Rc::new(object),
            old: None,
            virtual_event: true,
        });
    }

    /// The worker's handling of one attemptToDelete item.
    async fn attempt_to_delete_worker(&self, uid: &str) {
        let Some(node) = self.node(uid) else {
            self.attempt_to_delete.forget(&self.item(uid.to_string()));
            return;
        };
        let _frame = sim_core::enter(format!("attemptToDeleteItem({})", node.identity));
        match self.attempt_to_delete_item(&node).await {
            Ok(()) => {
                let observed = self.node(uid).is_none_or(|n| n.observed);
                if observed {
                    self.attempt_to_delete.forget(&self.item(uid.to_string()));
                } else {
                    // Not observed by an informer yet: check again later (issue 56121).
                    self.attempt_to_delete.add_rate_limited(self.item(uid.to_string()));
                }
            }
            Err(Stop::VirtualDelete | Stop::ClusterScopedWithNamespacedOwner) => {
                self.attempt_to_delete.forget(&self.item(uid.to_string()));
            }
            Err(Stop::Retry(why)) => {
                sim_core::event(format!("gc: error syncing {}: {why}", node.identity));
                self.attempt_to_delete.add_rate_limited(self.item(uid.to_string()));
            }
        }
    }

    /// `attemptToDeleteItem`.
    async fn attempt_to_delete_item(&self, item: &Node) -> Result<(), Stop> {
        if item.being_deleted && !item.deleting_dependents {
            return Ok(()); // wait for the final delete
        }
        let id = &item.identity;
        if self.client.server().kind_info(&id.api_version, &id.kind).is_none() {
            // `getObject` → `apiResource`: a `restMappingError`, retried with backoff forever.
            return Err(Stop::Retry(format!(
                "unable to get REST mapping for {}/{}",
                id.api_version, id.kind
            )));
        }
        let latest = match self.client.get(&id.api_version, &id.kind, &id.namespace, &id.name).await
        {
            Ok(latest) => latest,
            Err(error) if error.is_not_found() => {
                self.enqueue_virtual_delete(id);
                return Err(Stop::VirtualDelete);
            }
            Err(error) => return Err(error.into()),
        };
        if latest.metadata.uid != id.uid {
            self.enqueue_virtual_delete(id);
            return Err(Stop::VirtualDelete);
        }
        // The graph may have changed during the GET.
        let item = self.node(&id.uid).unwrap_or_else(|| item.clone());
        if item.deleting_dependents {
            return self.process_deleting_dependents(&item).await;
        }
        let references = latest.metadata.owner_references.clone();
        if references.is_empty() {
            return Ok(());
        }
        let (mut solid, mut dangling, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
        for reference in &references {
            match self.is_dangling(reference, &item).await? {
                None => dangling.push(reference.clone()),
                Some(owner) if owner.is_deleting() && owner.has_finalizer(FINALIZER_FOREGROUND) => {
                    waiting.push(reference.clone())
                }
                Some(_) => solid.push(reference.clone()),
            }
        }
        if !solid.is_empty() {
            if dangling.is_empty() && waiting.is_empty() {
                return Ok(());
            }
            let uids: Vec<String> =
                dangling.iter().chain(&waiting).map(|r| r.uid.clone()).collect();
            sim_core::event(format!(
                "gc: {} has a solid owner; removing references to {} dangling and {} waiting owners",
                item.identity,
                dangling.len(),
                waiting.len()
            ));
            return self.delete_owner_refs(&item, &uids).await;
        }
        let dependents = self.node(&id.uid).map(|n| n.dependents).unwrap_or_default();
        if !waiting.is_empty() && !dependents.is_empty() {
            let cycle =
                dependents.iter().any(|d| self.node(d).is_some_and(|n| n.deleting_dependents));
            if cycle {
                sim_core::event(format!(
                    "gc: {} and a dependent are both deleting dependents; unblocking its ownerReferences",
                    item.identity
                ));
                self.unblock_owner_refs(&item).await?;
            }
            return self
                .delete_object(
                    &item.identity,
                    Propagation::Foreground,
                    "an owner waits for its dependents and it has dependents",
                )
                .await;
        }
        let policy = if latest.has_finalizer(FINALIZER_ORPHAN) {
            Propagation::Orphan
        } else if latest.has_finalizer(FINALIZER_FOREGROUND) {
            Propagation::Foreground
        } else {
            Propagation::Background
        };
        self.delete_object(&item.identity, policy, "it has no solid owner").await
    }

    /// `processDeletingDependentsItem`, from the graph (which may lag the server).
    async fn process_deleting_dependents(&self, item: &Node) -> Result<(), Stop> {
        let blocking: Vec<Node> = item
            .dependents
            .iter()
            .filter_map(|d| self.node(d))
            .filter(|dep| dep.owners.iter().any(|r| blocks(r, &item.identity.uid)))
            .collect();
        if blocking.is_empty() {
            return self.remove_finalizer(item, FINALIZER_FOREGROUND).await;
        }
        for dependent in blocking {
            if !dependent.deleting_dependents {
                self.attempt_to_delete.add(self.item(dependent.identity.uid.clone()));
            }
        }
        Ok(())
    }

    /// `isDangling`: `None` if the owner is absent (or another object of that name), else the
    /// live owner.
    async fn is_dangling(
        &self,
        reference: &OwnerReference,
        item: &Node,
    ) -> Result<Option<Object>, Stop> {
        let mut key = Identity::of_owner(reference, "");
        if self.absent().has(&key) {
            return Ok(None);
        }
        key.namespace = item.identity.namespace.clone();
        if self.absent().has(&key) {
            return Ok(None);
        }
        let Some(info) = self.client.server().kind_info(&reference.api_version, &reference.kind)
        else {
            // `restMappingError`: an unknown kind is retried (with backoff) forever.
            return Err(Stop::Retry(format!(
                "unable to get REST mapping for {}/{}",
                reference.api_version, reference.kind
            )));
        };
        if !info.namespaced {
            key.namespace.clear();
        }
        if item.identity.namespace.is_empty() && info.namespaced {
            return Err(Stop::ClusterScopedWithNamespacedOwner);
        }
        let namespace = if info.namespaced { item.identity.namespace.as_str() } else { "" };
        match self
            .client
            .get(&reference.api_version, &reference.kind, namespace, &reference.name)
            .await
        {
            Err(error) if error.is_not_found() => {
                self.absent().add(key);
                Ok(None)
            }
            Err(error) => Err(error.into()),
            Ok(owner) if owner.metadata.uid != reference.uid => {
                self.absent().add(key);
                Ok(None)
            }
            Ok(owner) => Ok(Some(owner)),
        }
    }

    /// `deleteObject`: DELETE with a uid precondition.
    async fn delete_object(
        &self,
        id: &Identity,
        policy: Propagation,
        why: &str,
    ) -> Result<(), Stop> {
        sim_core::event(format!("gc: deleting {id} ({policy}): {why}"));
        let options = DeleteOptions::propagation(policy).with_uid(&id.uid);
        match self.client.delete(&id.api_version, &id.kind, &id.namespace, &id.name, &options).await
        {
            Ok(_) => Ok(()),
            Err(error) => Err(error.into()),
        }
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

    /// `unblockOwnerReferencesJSONMergePatch`: every ref gets `blockOwnerDeletion=false`.
    async fn unblock_owner_refs(&self, item: &Node) -> Result<(), Stop> {
        let id = &item.identity;
        let latest = self.client.get(&id.api_version, &id.kind, &id.namespace, &id.name).await?;
        let refs: Vec<OwnerReference> = latest
            .metadata
            .owner_references
            .iter()
            .map(|r| OwnerReference { block_owner_deletion: Some(false), ..r.clone() })
            .collect();
        let patch = json!({ "metadata": {
            "ownerReferences": refs,
            "resourceVersion": latest.metadata.resource_version,
            "uid": id.uid,
        }});
        self.client.patch(&id.api_version, &id.kind, &id.namespace, &id.name, &patch).await?;
        Ok(())
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

    /// `attemptToOrphanWorker`: patch the owner out of every dependent in the graph, then
    /// remove `orphan` from the owner.
    async fn attempt_to_orphan_worker(self: &Rc<Self>, uid: &str) {
        let Some(owner) = self.node(uid) else {
            return;
        };
        let _frame = sim_core::enter(format!("attemptToOrphan({})", owner.identity));
        // `orphanDependents`: one goroutine per dependent, joined before the finalizer goes.
        let mut patches = sim_core::JoinSet::new();
        for dependent in &owner.dependents {
            let Some(dependent) = self.node(dependent) else { continue };
            let (shared, owner_uid) = (self.clone(), uid.to_string());
            patches.spawn(format!("gc/orphan {}", dependent.identity), async move {
                match shared.delete_owner_refs(&dependent, &[owner_uid]).await {
                    Err(Stop::Retry(why)) => {
                        Some(format!("orphaning {} failed, {why}", dependent.identity))
                    }
                    _ => None,
                }
            });
        }
        let failed = patches.join_all().await.into_iter().flatten().next();
        let result = match failed {
            Some(why) => Err(Stop::Retry(why)),
            None => self.remove_finalizer(&owner, FINALIZER_ORPHAN).await,
        };
        match result {
            Ok(()) => self.attempt_to_orphan.forget(&self.item(uid.to_string())),
            Err(Stop::Retry(why)) => {
                sim_core::event(format!(
                    "gc: error orphaning dependents of {}: {why}",
                    owner.identity
                ));
                self.attempt_to_orphan.add_rate_limited(self.item(uid.to_string()));
            }
            Err(_) => self.attempt_to_orphan.forget(&self.item(uid.to_string())),
        }
    }
}
