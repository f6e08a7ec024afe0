//! The API server: the object store with one global resourceVersion, the verbs with Kubernetes'
//! validation, finalizer and DELETE-propagation rules, namespace lifecycle admission, and the
//! watch event log with bounded history.
//!
//! Every verb runs inside one simulation step, so the server is linearizable: tasks interleave
//! between calls (and, through [`crate::Client`], between the request and response legs of a
//! call), never inside one. Upstream code paths: `registry/generic/registry/store.go` (`Create`,
//! `Update`, `Delete`, `updateForGracefulDeletionAndFinalizers`,
//! `deletionFinalizersForGarbageCollection`, `shouldOrphanDependents`, `shouldDeleteDependents`),
//! `registry/rest/{create,update,delete}.go` (`BeforeCreate`, `BeforeUpdate`, `BeforeDelete`),
//! `apimachinery/pkg/api/validation/objectmeta.go`, `pkg/registry/core/namespace/storage`,
//! `plugin/pkg/admission/namespace/lifecycle`, and the watch cache (`storage/cacher`).

use std::cell::{Cell, Ref, RefCell, RefMut};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use sim_core::footprint::Resource;
use sim_core::sync::Notify;
use sim_core::{FailureKind, RngCore};

use crate::error::ApiError;
use crate::kinds::{DefaultPropagation, KindId, KindInfo, Registry};
use crate::object::{FINALIZER_FOREGROUND, FINALIZER_ORPHAN, Object, Time, merge_patch};
use crate::selector::Selector;

/// The namespace finalizer the namespace controller removes when the namespace is empty.
pub const FINALIZER_KUBERNETES: &str = "kubernetes";
/// Namespaces that cannot be deleted (`plugin/pkg/admission/namespace/lifecycle`).
pub const PROTECTED_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// The server's limits and options.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Most objects stored at once; more ends the run as a resource limit.
    pub objects_max: usize,
    /// Watch events retained for watches that start from an old resourceVersion; older starts
    /// get 410 Gone.
    pub history_max: usize,
    /// Events buffered for one watcher; a watcher further behind is closed (as the watch cache
    /// closes unresponsive watchers) and must rewatch.
    pub watch_buffer_max: usize,
    /// Create `default`, `kube-system` and `kube-public` at start.
    pub system_namespaces: bool,
    /// How many resourceVersions behind the latest a read with resourceVersion "0" (a list
    /// or watch served from the watch cache, as a reflector's first list is) may be: each such
    /// read picks a seeded point in `latest - stale_reads ..= latest` still in the history.
    /// 0: such reads see the latest state.
    pub stale_reads: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            objects_max: 100_000,
            history_max: 10_000,
            watch_buffer_max: 10_000,
            system_namespaces: true,
            stale_reads: 0,
        }
    }
}

impl ServerConfig {
    /// Sets [`ServerConfig::objects_max`].
    pub fn with_objects_max(mut self, objects_max: usize) -> Self {
        self.objects_max = objects_max;
        self
    }

    /// Sets [`ServerConfig::history_max`].
    pub fn with_history_max(mut self, history_max: usize) -> Self {
        self.history_max = history_max.max(1);
        self
    }

    /// Sets [`ServerConfig::watch_buffer_max`].
    pub fn with_watch_buffer_max(mut self, watch_buffer_max: usize) -> Self {
        self.watch_buffer_max = watch_buffer_max.max(1);
        self
    }

    /// Sets [`ServerConfig::stale_reads`].
    pub fn with_stale_reads(mut self, stale_reads: u64) -> Self {
        self.stale_reads = stale_reads;
        self
    }

    /// Sets [`ServerConfig::system_namespaces`].
    pub fn with_system_namespaces(mut self, system_namespaces: bool) -> Self {
        self.system_namespaces = system_namespaces;
        self
    }
}

/// `metav1.DeletionPropagation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Propagation {
    /// Delete dependents first; the owner waits with `foregroundDeletion`.
    Foreground,
    /// Delete the owner now; the GC deletes dependents afterwards.
    Background,
    /// Delete the owner after the GC removed it from its dependents' ownerReferences.
    Orphan,
}

impl fmt::Display for Propagation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// `metav1.DeleteOptions`, the fields that matter for deletion.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// `propagationPolicy`.
    pub propagation_policy: Option<Propagation>,
    /// The deprecated `orphanDependents`; it may not be combined with `propagation_policy`.
    pub orphan_dependents: Option<bool>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

impl DeleteOptions {
    /// Options with a propagation policy.
    pub fn propagation(policy: Propagation) -> Self {
        DeleteOptions { propagation_policy: Some(policy), ..DeleteOptions::default() }
    }

    /// Options with `orphanDependents`.
    pub fn orphan_dependents(orphan: bool) -> Self {
        DeleteOptions { orphan_dependents: Some(orphan), ..DeleteOptions::default() }
    }

    /// Adds a uid precondition.
    pub fn with_uid(mut self, uid: &str) -> Self {
        self.uid = Some(uid.to_string());
        self
    }

    /// Adds a resourceVersion precondition.
    pub fn with_resource_version(mut self, resource_version: &str) -> Self {
        self.resource_version = Some(resource_version.to_string());
        self
    }
}

/// What a DELETE did.
#[derive(Clone, Debug, PartialEq)]
pub enum Deleted {
    /// The object is gone; this is its last state, stamped with the deletion's resourceVersion.
    Removed(Object),
    /// Finalizers remain: the object stays, with `deletionTimestamp` set.
    Pending(Object),
}

impl Deleted {
    /// The object, removed or pending.
    pub fn object(&self) -> &Object {
        match self {
            Deleted::Removed(object) | Deleted::Pending(object) => object,
        }
    }

    /// Whether the object is gone.
    pub fn is_removed(&self) -> bool {
        matches!(self, Deleted::Removed(_))
    }
}

/// A LIST result: the items and the resourceVersion to watch from.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectList {
    /// The matching objects, ordered by namespace then name.
    pub items: Vec<Object>,
    /// The server's resourceVersion at the time of the list.
    pub resource_version: u64,
}

/// The type of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    /// An object was created (or is in the initial snapshot).
    Added,
    /// An object was changed.
    Modified,
    /// An object was removed; the event carries its last state.
    Deleted,
    /// Progress: no change, only the resourceVersion the watch has reached.
    Bookmark,
    /// The watch failed (e.g. 410 Gone); the stream ends after it.
    Error,
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
            EventType::Bookmark => "BOOKMARK",
            EventType::Error => "ERROR",
        })
    }
}

/// One watch event.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    /// What happened.
    pub event_type: EventType,
    /// The object after the change (the last state for DELETED; only a resourceVersion for
    /// BOOKMARK; empty for ERROR).
    pub object: Rc<Object>,
    /// The error of an ERROR event.
    pub error: Option<ApiError>,
}

impl WatchEvent {
    /// The event's resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.object.resource_version()
    }
}

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchStart {
    /// resourceVersion unset: a consistent snapshot as synthetic ADDED events (ordered by key),
    /// then every later change.
    Now,
    /// resourceVersion="0": the same from any state the watch cache has, which may be up to
    /// [`ServerConfig::stale_reads`] resourceVersions old; events after it follow.
    Any,
    /// resourceVersion=N: every change after N, or 410 Gone if N is older than the history.
    From(u64),
}

/// One entry of the server's change log.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The kind of the changed object.
    pub kind: KindId,
    /// The event watchers got.
    pub event: WatchEvent,
    /// The stored state before the change (`None` for a create).
    pub previous: Option<Rc<Object>>,
}

struct Watcher {
    kind: KindId,
    namespace: Option<String>,
    bookmarks: bool,
    queue: RefCell<VecDeque<WatchEvent>>,
    closed: Cell<bool>,
    notify: Notify,
    /// What steps that fill or drain the watch touch.
    resource: Resource,
    /// The last resourceVersion delivered, for the ordering check.
    last: Cell<u64>,
}

impl Watcher {
    fn push(&self, event: WatchEvent, buffer_max: usize) {
        self.resource.write();
        if self.closed.get() {
            return;
        }
        if self.queue.borrow().len() >= buffer_max {
            // The watch cache's "Forcing watcher close due to unresponsiveness".
            self.closed.set(true);
            sim_core::event(format!(
                "API closed an unresponsive watch ({} events buffered)",
                buffer_max
            ));
        } else {
            self.queue.borrow_mut().push_back(event);
        }
        self.notify.notify_one();
    }

    fn close(&self) {
        self.resource.write();
        self.closed.set(true);
        self.notify.notify_one();
    }
}

/// A watch stream from the server. Dropping it stops the watch.
pub struct Watch {
    watcher: Rc<Watcher>,
}

impl Watch {
    /// The next event, waiting for one; `None` once the watch is closed (stopped, dropped by a
    /// fault, or closed by the server) and drained.
    pub async fn next(&self) -> Option<WatchEvent> {
        loop {
            self.watcher.resource.write();
            if let Some(event) = self.watcher.queue.borrow_mut().pop_front() {
                return Some(event);
            }
            if self.watcher.closed.get() {
                return None;
            }
            self.watcher.notify.notified().await;
        }
    }

    /// The next event if one is buffered.
    pub fn try_next(&self) -> Option<WatchEvent> {
        self.watcher.resource.write();
        self.watcher.queue.borrow_mut().pop_front()
    }

    /// Closes the watch: buffered events are dropped, `next` returns `None`.
    pub fn stop(&self) {
        self.watcher.resource.write();
        self.watcher.queue.borrow_mut().clear();
        self.watcher.close();
    }

    /// Whether the watch is closed.
    pub fn is_closed(&self) -> bool {
        self.watcher.resource.read();
        self.watcher.closed.get()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.watcher.resource.write();
        self.watcher.closed.set(true);
    }
}

type Bucket = BTreeMap<(String, String), Rc<Object>>;

struct Store {
    config: ServerConfig,
    registry: Registry,
    rv: u64,
    uids: u64,
    objects: BTreeMap<KindId, Bucket>,
    count: usize,
    history: VecDeque<Change>,
    /// The newest resourceVersion no longer in `history`.
    compacted: u64,
    watchers: Vec<Weak<Watcher>>,
    /// The server's resource (see [`ApiServer`]).
    resource: Resource,
}

/// The fake API server. Cloning gives another handle to the same server.
#[derive(Clone)]
pub struct ApiServer {
    store: Rc<RefCell<Store>>,
    /// What steps that call the server touch: a read reads it, a write writes it (every write
    /// takes the next resourceVersion, so writes never commute anyway).
    resource: Resource,
}

impl Default for ApiServer {
    fn default() -> Self {
        ApiServer::new(Registry::builtin(), ServerConfig::default())
    }
}

/// Which subresource an update writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Subresource {
    Main,
    Status,
    Finalize,
}

impl ApiServer {
    /// A server for `registry`'s kinds. Call it inside a simulation (a run's setup or a task):
    /// the system namespaces are created at once, stamped with virtual time.
    pub fn new(registry: Registry, config: ServerConfig) -> Self {
        let system = config.system_namespaces;
        let resource = Resource::new();
        let server = ApiServer {
            store: Rc::new(RefCell::new(Store {
                config,
                registry,
                rv: 0,
                uids: 0,
                objects: BTreeMap::new(),
                count: 0,
                history: VecDeque::new(),
                compacted: 0,
                watchers: Vec::new(),
                resource,
            })),
            resource,
        };
        if system {
            for name in PROTECTED_NAMESPACES {
                server
                    .create(Object::new("v1", "Namespace", "", name))
                    .expect("the registry serves v1 Namespace");
            }
        }
        server
    }

    /// The store, for a step that reads it.
    fn read_store(&self) -> Ref<'_, Store> {
        self.resource.read();
        self.store.borrow()
    }

    /// The store, for a step that writes it.
    fn write_store(&self) -> RefMut<'_, Store> {
        self.resource.write();
        self.store.borrow_mut()
    }

    /// Adds a kind (a CRD) to the registry.
    pub fn register(&self, info: KindInfo) -> KindId {
        self.resource.part(REGISTRY).write();
        self.write_store().registry.register(info)
    }

    /// The kind `(apiVersion, kind)`, if served.
    pub fn kind_info(&self, api_version: &str, kind: &str) -> Option<KindInfo> {
        let store = self.read_store();
        store.registry.lookup(api_version, kind).map(|id| store.registry.info(id).clone())
    }

    /// Every kind the server serves.
    pub fn kinds(&self) -> Vec<KindInfo> {
        self.read_store().registry.kinds().map(|(_, info)| info.clone()).collect()
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.read_store().rv
    }

    /// Every stored object, by kind (registration order), namespace and name.
    pub fn objects(&self) -> Vec<Object> {
        let store = self.read_store();
        store.objects.values().flat_map(|bucket| bucket.values().map(|o| (**o).clone())).collect()
    }

    /// How many objects are stored.
    pub fn len(&self) -> usize {
        self.read_store().count
    }

    /// Whether no object is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The retained change log (oldest first), as watchers received it.
    pub fn history(&self) -> Vec<Change> {
        self.read_store().history.iter().cloned().collect()
    }

    /// Creates objects from manifest text ([`crate::parse_manifests`]), namespaces first, like a
    /// restore from backup: uids given in the manifests are kept so that ownerReferences between
    /// them stay valid (others are assigned). Stops at the first object the server refuses.
    pub fn load_manifests(&self, text: &str) -> Result<Vec<Object>, String> {
        let mut objects = crate::object::parse_manifests(text).map_err(|e| e.to_string())?;
        objects.sort_by_key(|object| object.kind != "Namespace");
        let mut created = Vec::new();
        for object in objects {
            let key = format!("{} {}", object.kind, object.key());
            let uid_taken = |uid: &str| self.objects().iter().any(|o| o.metadata.uid == uid);
            if !object.metadata.uid.is_empty() && uid_taken(&object.metadata.uid) {
                return Err(format!("{key}: uid {} is already in use", object.metadata.uid));
            }
            let uid = object.metadata.uid.clone();
            let made = self.create_inner(object, Some(uid)).map_err(|e| format!("{key}: {e}"))?;
            created.push(made);
        }
        Ok(created)
    }

    /// CREATE.
    pub fn create(&self, object: Object) -> Result<Object, ApiError> {
        self.create_inner(object, None)
    }

    fn create_inner(&self, mut object: Object, uid: Option<String>) -> Result<Object, ApiError> {
        let mut store = self.write_store();
        let (id, info) = store.kind(&object.api_version, &object.kind)?;
        let result = 'create: {
            if info.namespaced {
                if object.metadata.namespace.is_empty() {
                    break 'create Err(ApiError::invalid(
                        &info.qualified_kind(),
                        &object.metadata.name,
                        &["metadata.namespace: Required value".to_string()],
                    ));
                }
            } else {
                object.metadata.namespace.clear();
            }
            if object.metadata.name.is_empty() {
                if object.metadata.generate_name.is_empty() {
                    break 'create Err(ApiError::invalid(
                        &info.qualified_kind(),
                        "",
                        &["metadata.name: Required value: name or generateName is required"
                            .to_string()],
                    ));
                }
                object.metadata.name =
                    format!("{}{}", object.metadata.generate_name, random_suffix());
            }
            let (namespace, name) =
                (object.metadata.namespace.clone(), object.metadata.name.clone());
            if info.namespaced
                && let Err(e) = store.admit_namespace(&info, &namespace, &name)
            {
                break 'create Err(e);
            }
            if let Err(e) = validate_meta(&info, &object) {
                break 'create Err(e);
            }
            if store.find(id, &namespace, &name).is_some() {
                break 'create Err(ApiError::already_exists(&info.qualified_resource(), &name));
            }
            if store.count >= store.config.objects_max {
                let max = store.config.objects_max;
                drop(store);
                sim_core::fail(
                    FailureKind::ResourceLimit,
                    format!("the API server holds {max} objects (ServerConfig::objects_max)"),
                    "a controller may be creating objects without bound; raise \
                     ServerConfig::objects_max if this is expected",
                );
            }
            store.uids += 1;
            let meta = &mut object.metadata;
            meta.uid = match &uid {
                Some(uid) if !uid.is_empty() => uid.clone(),
                _ => format!("00000000-0000-4000-8000-{:012x}", store.uids),
            };
            meta.generation = 1;
            meta.creation_timestamp = Some(Time::now());
            if info.status_subresource {
                // `PrepareForCreate`: status is written through the status subresource only.
                object.status = Value::Null;
            }
            meta.deletion_timestamp = None;
            meta.deletion_grace_period_seconds = None;
            if object.kind == "Namespace" && object.api_version == "v1" {
                object.spec = json!({ "finalizers": [FINALIZER_KUBERNETES] });
                object.status = json!({ "phase": "Active" });
            }
            Ok(store.commit(id, EventType::Added, object))
        };
        drop(store);
        trace_verb("CREATE", &info, &result.as_ref().map(|o| o.key()), &result);
        result
    }

    /// GET.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Object, ApiError> {
        // A GET reads one object (and the registry), so it commutes with writes of others.
        self.resource.part(REGISTRY).read();
        let store = self.store.borrow();
        let (id, info) = store.kind(api_version, kind)?;
        store.object_resource(&info, name).read();
        let namespace = if info.namespaced { namespace } else { "" };
        let result = store
            .find(id, namespace, name)
            .map(|o| (**o).clone())
            .ok_or_else(|| ApiError::not_found(&info.qualified_resource(), name));
        drop(store);
        trace_verb("GET", &info, &Ok(key_of(namespace, name)), &result);
        result
    }

    /// The stored object, read without a trace event and outside any verb: for oracles and
    /// test assertions, which observe the cluster rather than act in it.
    pub fn peek(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Object> {
        let store = self.read_store();
        let id = store.registry.lookup(api_version, kind)?;
        let namespace = if store.registry.info(id).namespaced { namespace } else { "" };
        store.find(id, namespace, name).map(|o| (**o).clone())
    }

    /// Whether the object is stored; like [`ApiServer::peek`], without a trace event or a copy.
    pub fn exists(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> bool {
        let store = self.read_store();
        let Some(id) = store.registry.lookup(api_version, kind) else { return false };
        let namespace = if store.registry.info(id).namespaced { namespace } else { "" };
        store.find(id, namespace, name).is_some()
    }

    /// LIST, in one namespace or (`None`) all, filtered by a label selector.
    pub fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<ObjectList, ApiError> {
        let store = self.read_store();
        let (id, info) = store.kind(api_version, kind)?;
        let items: Vec<Object> = store
            .objects
            .get(&id)
            .into_iter()
            .flat_map(|bucket| bucket.values())
            .filter(|o| namespace.is_none_or(|ns| !info.namespaced || o.metadata.namespace == ns))
            .filter(|o| selector.matches(&o.metadata.labels))
            .map(|o| (**o).clone())
            .collect();
        let list = ObjectList { items, resource_version: store.rv };
        drop(store);
        let how = if selector.is_empty() { String::new() } else { format!(" with {selector}") };
        trace_list(&info, namespace, &how, &list);
        Ok(list)
    }

    /// LIST with resourceVersion "0" (or a minimum): served from the watch cache, which may be
    /// up to [`ServerConfig::stale_reads`] resourceVersions old but not older than
    /// `at_least`. client-go's reflector lists this way.
    pub fn list_from_cache(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        at_least: u64,
    ) -> Result<ObjectList, ApiError> {
        let store = self.read_store();
        let (id, info) = store.kind(api_version, kind)?;
        let at = store.stale_point(at_least);
        let items: Vec<Object> = store
            .state_at(id, at)
            .into_values()
            .filter(|o| namespace.is_none_or(|ns| !info.namespaced || o.metadata.namespace == ns))
            .map(|o| (*o).clone())
            .collect();
        let list = ObjectList { items, resource_version: at };
        drop(store);
        trace_list(&info, namespace, " (from cache)", &list);
        Ok(list)
    }

    /// UPDATE of the main resource (status changes are ignored for kinds with a status
    /// subresource).
    pub fn update(&self, object: Object) -> Result<Object, ApiError> {
        self.update_inner(object, Subresource::Main, "UPDATE")
    }

    /// UPDATE of the status subresource: only `status` changes.
    pub fn update_status(&self, object: Object) -> Result<Object, ApiError> {
        self.update_inner(object, Subresource::Status, "UPDATE status")
    }

    /// The namespace `/finalize` subresource: only `spec.finalizers` changes; the namespace is
    /// removed once it is deleting and no finalizer of either kind remains.
    pub fn finalize_namespace(&self, namespace: Object) -> Result<Object, ApiError> {
        self.update_inner(namespace, Subresource::Finalize, "UPDATE finalize")
    }

    /// JSON merge PATCH (RFC 7386) of the main resource. It conflicts only if the patch
    /// carries a `metadata.resourceVersion` that is not the current one; a `metadata.uid` that
    /// is not the object's is 422 (the uid is immutable).
    pub fn patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Object, ApiError> {
        self.patch_inner(api_version, kind, namespace, name, patch, Subresource::Main)
    }

    /// JSON merge PATCH of the status subresource.
    pub fn patch_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Object, ApiError> {
        self.patch_inner(api_version, kind, namespace, name, patch, Subresource::Status)
    }

    fn patch_inner(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        patch: &Value,
        subresource: Subresource,
    ) -> Result<Object, ApiError> {
        let verb = if subresource == Subresource::Status { "PATCH status" } else { "PATCH" };
        let (info, current) = {
            let store = self.read_store();
            let (id, info) = store.kind(api_version, kind)?;
            let namespace = if info.namespaced { namespace } else { "" };
            (info.clone(), store.find(id, namespace, name).map(|o| (*o).clone()))
        };
        let Some(current) = current else {
            let result = Err(ApiError::not_found(&info.qualified_resource(), name));
            trace_verb(verb, &info, &Ok(key_of(namespace, name)), &result);
            return result;
        };
        if !patch.is_object() {
            let result = Err(ApiError::bad_request(format!(
                "invalid JSON merge patch for {} \"{name}\": not an object",
                info.qualified_resource()
            )));
            trace_verb(verb, &info, &Ok(current.key()), &result);
            return result;
        }
        let mut merged = current.to_json();
        merge_patch(&mut merged, patch);
        let mut object = match Object::from_json(merged) {
            Ok(object) => object,
            Err(why) => {
                let result = Err(ApiError::bad_request(format!(
                    "invalid JSON merge patch for {} \"{name}\": {why}",
                    info.qualified_resource()
                )));
                trace_verb(verb, &info, &Ok(current.key()), &result);
                return result;
            }
        };
        // A patch carries no uid precondition (`DefaultUpdatedObjectInfo(nil, ...)`): a changed
        // uid fails validation as an immutable field.
        if object.metadata.uid != current.metadata.uid {
            let result = Err(ApiError::invalid(
                &info.qualified_kind(),
                name,
                &[format!(
                    "metadata.uid: Invalid value: \"{}\": field is immutable",
                    object.metadata.uid
                )],
            ));
            trace_verb(verb, &info, &Ok(current.key()), &result);
            return result;
        }
        // The patch is applied to the stored object: its identity cannot move.
        object.api_version = current.api_version.clone();
        object.kind = current.kind.clone();
        object.metadata.namespace = current.metadata.namespace.clone();
        object.metadata.name = current.metadata.name.clone();
        self.update_inner(object, subresource, verb)
    }

    fn update_inner(
        &self,
        new: Object,
        subresource: Subresource,
        verb: &str,
    ) -> Result<Object, ApiError> {
        let mut store = self.write_store();
        let (id, info) = store.kind(&new.api_version, &new.kind)?;
        let namespace =
            if info.namespaced { new.metadata.namespace.clone() } else { String::new() };
        let name = new.metadata.name.clone();
        let result = store.update(id, &info, &namespace, new, subresource);
        let removed = result.is_ok() && store.find(id, &namespace, &name).is_none();
        let rv = store.rv;
        drop(store);
        if removed {
            let resource = info.qualified_resource();
            let key = key_of(&namespace, &name);
            sim_core::event(format!(
                "API {verb} {resource} {key} → last finalizer removed, object removed, rv {rv}"
            ));
        } else {
            trace_verb(verb, &info, &Ok(key_of(&namespace, &name)), &result);
        }
        result
    }

    /// DELETE with options: preconditions, then the propagation rules of `store.go`.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let mut store = self.write_store();
        let (id, info) = store.kind(api_version, kind)?;
        let namespace = if info.namespaced { namespace } else { "" };
        let result = store.delete(id, &info, namespace, name, options);
        drop(store);
        let what = match options.propagation_policy {
            Some(policy) => format!("DELETE ({policy})"),
            None => match options.orphan_dependents {
                Some(orphan) => format!("DELETE (orphanDependents={orphan})"),
                None => "DELETE".to_string(),
            },
        };
        let key = key_of(namespace, name);
        let text = match &result {
            Ok(Deleted::Removed(o)) => format!("removed, rv {}", o.metadata.resource_version),
            Ok(Deleted::Pending(o)) => format!(
                "deleting, finalizers [{}], rv {}",
                o.metadata.finalizers.join(", "),
                o.metadata.resource_version
            ),
            Err(e) => format!("{} {:?}", e.code, e.reason),
        };
        sim_core::event(format!("API {what} {} {key} → {text}", info.qualified_resource()));
        result
    }

    /// WATCH one kind, in one namespace or (`None`) all. A start older than the retained
    /// history yields a stream whose only event is ERROR 410 Gone, as the watch cache does.
    pub fn watch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        start: WatchStart,
        bookmarks: bool,
    ) -> Result<Watch, ApiError> {
        let mut store = self.write_store();
        let (id, info) = store.kind(api_version, kind)?;
        let namespace = namespace.filter(|_| info.namespaced).map(str::to_string);
        let watcher = Rc::new(Watcher {
            kind: id,
            namespace: namespace.clone(),
            bookmarks,
            queue: RefCell::new(VecDeque::new()),
            closed: Cell::new(false),
            notify: Notify::named(format!("watch {}", info.qualified_resource())),
            last: Cell::new(0),
            resource: Resource::new(),
        });
        let matches = |change: &Change| {
            change.kind == id
                && namespace.as_ref().is_none_or(|ns| &change.event.object.metadata.namespace == ns)
        };
        let text;
        match start {
            WatchStart::Now | WatchStart::Any => {
                let at = if start == WatchStart::Any { store.stale_point(0) } else { store.rv };
                let mut queue = watcher.queue.borrow_mut();
                for object in store.state_at(id, at).into_values() {
                    if namespace.as_ref().is_none_or(|ns| &object.metadata.namespace == ns) {
                        queue.push_back(WatchEvent {
                            event_type: EventType::Added,
                            object,
                            error: None,
                        });
                    }
                }
                let initial = queue.len();
                for change in store.history.iter().filter(|c| c.event.resource_version() > at) {
                    if matches(change) {
                        queue.push_back(change.event.clone());
                    }
                }
                watcher.last.set(store.rv);
                text = if at == store.rv {
                    format!("from now ({initial} initial events)")
                } else {
                    format!(
                        "from the cache at rv {at} ({initial} initial events, then {} changes)",
                        queue.len() - initial
                    )
                };
            }
            WatchStart::From(rv) if rv < store.compacted => {
                let error = ApiError::expired(rv, store.compacted);
                text = format!("from rv {rv} → 410 Gone");
                watcher.queue.borrow_mut().push_back(WatchEvent {
                    event_type: EventType::Error,
                    object: Rc::new(Object::default()),
                    error: Some(error),
                });
                watcher.closed.set(true);
            }
            WatchStart::From(rv) => {
                let mut queue = watcher.queue.borrow_mut();
                for change in store.history.iter().filter(|c| c.event.resource_version() > rv) {
                    if matches(change) {
                        queue.push_back(change.event.clone());
                    }
                }
                watcher.last.set(store.rv);
                text = format!("from rv {rv} ({} replayed events)", queue.len());
            }
        }
        store.watchers.retain(|w| w.strong_count() > 0);
        if !watcher.closed.get() {
            store.watchers.push(Rc::downgrade(&watcher));
        }
        drop(store);
        let scope = namespace.map_or("in all namespaces".to_string(), |ns| format!("in {ns}"));
        sim_core::event(format!("API WATCH {} {scope} {text}", info.qualified_resource()));
        Ok(Watch { watcher })
    }

    /// Sends a BOOKMARK with the current resourceVersion to every watch that asked for
    /// bookmarks (the real server does so about once a minute).
    pub fn send_bookmarks(&self) {
        let store = self.read_store();
        let object = Rc::new(Object {
            metadata: crate::object::ObjectMeta {
                resource_version: store.rv.to_string(),
                ..Default::default()
            },
            ..Object::default()
        });
        for watcher in store.watchers.iter().filter_map(Weak::upgrade) {
            if watcher.bookmarks {
                let event = WatchEvent {
                    event_type: EventType::Bookmark,
                    object: object.clone(),
                    error: None,
                };
                watcher.push(event, store.config.watch_buffer_max);
            }
        }
    }

    /// Starts a daemon task that calls [`ApiServer::send_bookmarks`] every `period`.
    pub fn start_bookmarks(&self, period: Duration) {
        let server = self.clone();
        sim_core::spawn_daemon("apiserver/bookmarks", async move {
            let mut ticker = sim_core::interval(period);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                server.send_bookmarks();
            }
        });
    }

    /// Closes every open watch (a restarted API server): informers must rewatch.
    pub fn close_watches(&self) {
        let watchers: Vec<_> =
            self.read_store().watchers.iter().filter_map(Weak::upgrade).collect();
        for watcher in watchers {
            watcher.close();
        }
        sim_core::event("API closed every watch");
    }
}

/// The part of the server's resource for its registry of kinds.
const REGISTRY: &str = "registry";

fn key_of(namespace: &str, name: &str) -> String {
    if namespace.is_empty() { name.to_string() } else { format!("{namespace}/{name}") }
}

/// The trace event of a LIST: `API LIST configmaps in default<how> → 3 items, rv 12`.
fn trace_list(info: &KindInfo, namespace: Option<&str>, how: &str, list: &ObjectList) {
    let scope = match namespace {
        Some(ns) if info.namespaced => format!("in {ns}"),
        _ => "in all namespaces".to_string(),
    };
    sim_core::event(format!(
        "API LIST {} {scope}{how} → {} items, rv {}",
        info.qualified_resource(),
        list.items.len(),
        list.resource_version
    ));
}

/// One trace event per verb: `API UPDATE configmaps default/a → rv 12` or `→ 409 Conflict`.
fn trace_verb(
    verb: &str,
    info: &KindInfo,
    key: &Result<String, &ApiError>,
    result: &Result<Object, ApiError>,
) {
    let key = match key {
        Ok(key) => key.as_str(),
        Err(_) => "",
    };
    let key = match result {
        Ok(object) if key.is_empty() => object.key(),
        _ => key.to_string(),
    };
    let outcome = match result {
        Ok(object) => format!("rv {}", object.metadata.resource_version),
        Err(error) => format!("{} {:?}", error.code, error.reason),
    };
    sim_core::event(format!("API {verb} {} {key} → {outcome}", info.qualified_resource()));
}

/// Five characters from the alphabet of `k8s.io/apiserver/pkg/storage/names` (no vowels).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    sim_core::with_stream("apiserver/generate-name", |rng| {
        (0..5)
            .map(|_| ALPHABET[(rng.next_u32() % ALPHABET.len() as u32) as usize] as char)
            .collect()
    })
}

/// `ValidateObjectMeta`'s ownerReference and finalizer rules.
fn validate_meta(info: &KindInfo, object: &Object) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let meta = &object.metadata;
    for reference in &meta.owner_references {
        for (field, value) in [
            ("apiVersion", &reference.api_version),
            ("kind", &reference.kind),
            ("name", &reference.name),
            ("uid", &reference.uid),
        ] {
            if value.is_empty() {
                let what = if field == "apiVersion" { "version must" } else { "must" };
                errors.push(format!(
                    "metadata.ownerReferences.{field}: Invalid value: \"\": {what} not be empty"
                ));
            }
        }
    }
    let controllers: Vec<String> = meta
        .owner_references
        .iter()
        .filter(|r| r.is_controller())
        .map(|r| format!("{}/{}", r.kind, r.name))
        .collect();
    if controllers.len() > 1 {
        errors.push(format!(
            "metadata.ownerReferences: Invalid value: []v1.OwnerReference{{...}}: Only one reference \
             can have Controller set to true. Found \"true\" in references for {} and {}",
            controllers[0], controllers[1]
        ));
    }
    if object.has_finalizer(FINALIZER_ORPHAN) && object.has_finalizer(FINALIZER_FOREGROUND) {
        errors.push(format!(
            "metadata.finalizers: Invalid value: {}: finalizer {FINALIZER_ORPHAN} and \
             {FINALIZER_FOREGROUND} cannot be both set",
            go_string_slice(&meta.finalizers)
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&info.qualified_kind(), &meta.name, &errors))
    }
}

/// Go's `%#v` of a `[]string`, as upstream prints new finalizers.
fn go_string_slice(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

impl Store {
    fn kind(&self, api_version: &str, kind: &str) -> Result<(KindId, KindInfo), ApiError> {
        match self.registry.lookup(api_version, kind) {
            Some(id) => Ok((id, self.registry.info(id).clone())),
            None => Err(ApiError {
                code: 404,
                reason: crate::error::Reason::NotFound,
                message: format!(
                    "the server could not find the requested resource (kind {kind} in {api_version})"
                ),
                cause: None,
            }),
        }
    }

    /// A seeded resourceVersion for a read with resourceVersion "0" that must be at least
    /// `at_least`: up to `stale_reads` behind the latest, never before the history.
    fn stale_point(&self, at_least: u64) -> u64 {
        let low = self.rv.saturating_sub(self.config.stale_reads).max(self.compacted).max(at_least);
        if low >= self.rv {
            return self.rv;
        }
        let span = self.rv - low + 1;
        low + sim_core::with_stream("apiserver/stale-reads", |rng| rng.next_u64() % span)
    }

    /// The objects of one kind as they were at resourceVersion `at` (which must not be older
    /// than the history), by (namespace, name).
    fn state_at(&self, id: KindId, at: u64) -> Bucket {
        let mut state = self.objects.get(&id).cloned().unwrap_or_default();
        for change in self.history.iter().rev() {
            if change.event.resource_version() <= at {
                break;
            }
            if change.kind != id {
                continue;
            }
            let object = &change.event.object;
            let key = (object.metadata.namespace.clone(), object.metadata.name.clone());
            match &change.previous {
                Some(previous) => state.insert(key, previous.clone()),
                None => state.remove(&key),
            };
        }
        state
    }

    fn find(&self, id: KindId, namespace: &str, name: &str) -> Option<&Rc<Object>> {
        self.objects.get(&id)?.get(&(namespace.to_string(), name.to_string()))
    }

    fn namespace(&self, name: &str) -> Option<&Rc<Object>> {
        let id = self.registry.lookup("v1", "Namespace")?;
        self.find(id, "", name)
    }

    /// The NamespaceLifecycle admission plugin, for CREATE.
    fn admit_namespace(
        &self,
        info: &KindInfo,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        match self.namespace(namespace) {
            None => Err(ApiError::not_found("namespaces", namespace)),
            Some(ns) if ns.is_deleting() => Err(ApiError::forbidden(
                &info.qualified_resource(),
                name,
                &format!(
                    "unable to create new content in namespace {namespace} because it is being \
                     terminated"
                ),
            )
            .with_cause("NamespaceTerminating")),
            Some(_) => Ok(()),
        }
    }

    /// Stores `object` with the next resourceVersion and tells the watchers.
    /// The part of the server's resource for one object, named by kind and name (whatever the
    /// namespace: a coarser part only makes steps look more dependent). A GET reads it; every
    /// write writes it besides the whole server (`commit`).
    fn object_resource(&self, info: &KindInfo, name: &str) -> Resource {
        self.resource.part(&info.api_version).part(&info.kind).part(name)
    }

    fn commit(&mut self, id: KindId, event_type: EventType, mut object: Object) -> Object {
        self.object_resource(self.registry.info(id), &object.metadata.name).write();
        self.rv += 1;
        object.metadata.resource_version = self.rv.to_string();
        let key = (object.metadata.namespace.clone(), object.metadata.name.clone());
        let stored = Rc::new(object.clone());
        let bucket = self.objects.entry(id).or_default();
        let previous = if event_type == EventType::Deleted {
            bucket.remove(&key)
        } else {
            bucket.insert(key, stored.clone())
        };
        match (event_type, &previous) {
            (EventType::Deleted, Some(_)) => self.count -= 1,
            (EventType::Added | EventType::Modified, None) => self.count += 1,
            _ => {}
        }
        let event = WatchEvent { event_type, object: stored, error: None };
        let buffer_max = self.config.watch_buffer_max;
        for watcher in self.watchers.iter().filter_map(Weak::upgrade) {
            let matches = watcher.kind == id
                && watcher.namespace.as_ref().is_none_or(|ns| ns == &object.metadata.namespace);
            if matches {
                debug_assert!(watcher.last.get() < self.rv, "watch events in increasing RV order");
                watcher.last.set(self.rv);
                watcher.push(event.clone(), buffer_max);
            }
        }
        self.history.push_back(Change { kind: id, event, previous });
        while self.history.len() > self.config.history_max {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.event.resource_version();
            }
        }
        object
    }

    fn update(
        &mut self,
        id: KindId,
        info: &KindInfo,
        namespace: &str,
        mut new: Object,
        subresource: Subresource,
    ) -> Result<Object, ApiError> {
        let name = new.metadata.name.clone();
        let resource = info.qualified_resource();
        let Some(old) = self.find(id, namespace, &name).cloned() else {
            return Err(ApiError::not_found(&resource, &name));
        };
        // `defaultUpdatedObjectInfo.Preconditions`: a uid in the body is a precondition.
        if !new.metadata.uid.is_empty() && new.metadata.uid != old.metadata.uid {
            let why = format!(
                "StorageError: invalid object, Code: 4, Key: {}, ResourceVersion: 0, \
                 AdditionalErrorMsg: Precondition failed: UID in precondition: {}, UID in object \
                 meta: {}",
                info.storage_key(namespace, &name),
                new.metadata.uid,
                old.metadata.uid
            );
            return Err(ApiError::conflict(&resource, &name, &why));
        }
        if new.metadata.resource_version.is_empty() {
            if info.custom {
                return Err(ApiError::invalid(
                    &info.qualified_kind(),
                    &name,
                    &["metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
                        .to_string()],
                ));
            }
        } else if new.metadata.resource_version != old.metadata.resource_version {
            return Err(ApiError::stale(&resource, &name));
        }
        new = match subresource {
            Subresource::Main => {
                if info.status_subresource {
                    new.status = old.status.clone();
                }
                if info.kind == "Namespace" {
                    new.spec = old.spec.clone();
                }
                new
            }
            Subresource::Status => Object { status: new.status, ..(*old).clone() },
            Subresource::Finalize => {
                let mut object = (*old).clone();
                let finalizers = new.spec.get("finalizers").cloned().unwrap_or(json!([]));
                object.spec["finalizers"] = finalizers;
                object
            }
        };
        // `rest.BeforeUpdate`: system fields are the server's.
        let meta = &mut new.metadata;
        meta.namespace = old.metadata.namespace.clone();
        meta.uid = old.metadata.uid.clone();
        meta.resource_version = old.metadata.resource_version.clone();
        meta.generate_name = old.metadata.generate_name.clone();
        meta.creation_timestamp = old.metadata.creation_timestamp;
        // An update never removes or moves a deletionTimestamp; setting one on a live object,
        // or a different grace period, fails `ValidateObjectMetaUpdate`.
        if old.metadata.deletion_timestamp.is_some() {
            meta.deletion_timestamp = old.metadata.deletion_timestamp;
        }
        if meta.deletion_grace_period_seconds.is_none() {
            meta.deletion_grace_period_seconds = old.metadata.deletion_grace_period_seconds;
        }
        let mut immutable = Vec::new();
        if let Some(time) = meta.deletion_timestamp
            && old.metadata.deletion_timestamp != Some(time)
        {
            immutable.push(format!(
                "metadata.deletionTimestamp: Invalid value: \"{time}\": field is immutable"
            ));
        }
        if let Some(grace) = meta.deletion_grace_period_seconds
            && old.metadata.deletion_grace_period_seconds != Some(grace)
        {
            immutable.push(format!(
                "metadata.deletionGracePeriodSeconds: Invalid value: {grace}: field is immutable"
            ));
        }
        if !immutable.is_empty() {
            return Err(ApiError::invalid(&info.qualified_kind(), &name, &immutable));
        }
        meta.generation = old.metadata.generation;
        validate_meta(info, &new)?;
        if old.is_deleting() {
            // `sets.NewString(new...).Difference(old).List()`: sorted, without duplicates.
            let added: Vec<String> = new
                .metadata
                .finalizers
                .iter()
                .filter(|f| !old.metadata.finalizers.contains(f))
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    &info.qualified_kind(),
                    &name,
                    &[format!(
                        "metadata.finalizers: Forbidden: no new finalizers can be added if the \
                         object is being deleted, found new finalizers {}",
                        go_string_slice(&added)
                    )],
                ));
            }
        }
        let spec_changed = new.spec != old.spec
            || new.other != old.other
            || (info.custom && !info.status_subresource && new.status != old.status);
        if spec_changed {
            new.metadata.generation += 1;
        }
        if new == *old {
            return Ok(new); // a no-op write: no new resourceVersion, no event
        }
        let namespace_finalized = info.kind != "Namespace"
            || new.spec.get("finalizers").and_then(Value::as_array).is_none_or(Vec::is_empty);
        if old.is_deleting() && new.metadata.finalizers.is_empty() && namespace_finalized {
            // `ShouldDeleteDuringUpdate`: the last finalizer is gone. The write is not persisted:
            // the stored object is deleted and watchers get its last stored state.
            // `deleteWithoutFinalizers` answers with the object as written.
            self.commit(id, EventType::Deleted, (*old).clone());
            return Ok(new);
        }
        Ok(self.commit(id, EventType::Modified, new))
    }

    fn delete(
        &mut self,
        id: KindId,
        info: &KindInfo,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let resource = info.qualified_resource();
        if let (Some(_), Some(policy)) = (options.orphan_dependents, options.propagation_policy) {
            return Err(ApiError::invalid(
                "DeleteOptions.meta.k8s.io",
                "",
                &[format!(
                    "propagationPolicy: Invalid value: \"{policy}\": orphanDependents and \
                     deletionPropagation cannot be both set"
                )],
            ));
        }
        let Some(old) = self.find(id, namespace, name).cloned() else {
            return Err(ApiError::not_found(&resource, name));
        };
        // `rest.BeforeDelete`'s early precondition checks.
        if let Some(uid) = &options.uid
            && uid != &old.metadata.uid
        {
            let why = format!(
                "the UID in the precondition ({uid}) does not match the UID in record ({}). The \
                 object might have been deleted and then recreated",
                old.metadata.uid
            );
            // `rest.BeforeDelete` names the kind where other conflicts name the resource.
            return Err(ApiError::conflict(&info.qualified_kind(), name, &why));
        }
        if let Some(rv) = &options.resource_version
            && rv != &old.metadata.resource_version
        {
            let why = format!(
                "the ResourceVersion in the precondition ({rv}) does not match the \
                 ResourceVersion in record ({}). The object might have been modified",
                old.metadata.resource_version
            );
            return Err(ApiError::conflict(&info.qualified_kind(), name, &why));
        }
        let is_namespace = info.kind == "Namespace" && info.api_version == "v1";
        if is_namespace && PROTECTED_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(&resource, name, "this namespace may not be deleted"));
        }
        let mut new = (*old).clone();
        if let Some(finalizers) = deletion_finalizers(info, &old, options) {
            new.metadata.finalizers = finalizers;
        }
        if is_namespace {
            // `namespace/storage.Delete`: mark Terminating; removal waits for spec.finalizers.
            new.status["phase"] = json!("Terminating");
        }
        let spec_finalizers = is_namespace
            && new.spec.get("finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
        if new.metadata.finalizers.is_empty() && !spec_finalizers {
            // `deleteWithoutFinalizers`: the stored object goes; watchers get its last state.
            return Ok(Deleted::Removed(self.commit(id, EventType::Deleted, (*old).clone())));
        }
        if new.metadata.deletion_timestamp.is_none() {
            new.metadata.deletion_timestamp = Some(Time::now());
            new.metadata.deletion_grace_period_seconds = Some(0);
            new.metadata.generation += 1;
        }
        if new == *old {
            return Ok(Deleted::Pending(new));
        }
        Ok(Deleted::Pending(self.commit(id, EventType::Modified, new)))
    }
}

/// `deletionFinalizersForGarbageCollection`: the object's finalizers after this DELETE, or
/// `None` when they do not change (compared as sets, as upstream does).
fn deletion_finalizers(
    info: &KindInfo,
    object: &Object,
    options: &DeleteOptions,
) -> Option<Vec<String>> {
    let orphan = should_orphan_dependents(info, object, options);
    let foreground = should_delete_dependents(object, options);
    let mut finalizers: Vec<String> = object
        .metadata
        .finalizers
        .iter()
        .filter(|f| *f != FINALIZER_ORPHAN && *f != FINALIZER_FOREGROUND)
        .cloned()
        .collect();
    if orphan {
        finalizers.push(FINALIZER_ORPHAN.to_string());
    }
    if foreground {
        finalizers.push(FINALIZER_FOREGROUND.to_string());
    }
    let as_set = |list: &[String]| list.iter().cloned().collect::<std::collections::BTreeSet<_>>();
    (as_set(&finalizers) != as_set(&object.metadata.finalizers)).then_some(finalizers)
}

/// `shouldOrphanDependents`: options, then policy, then existing finalizers, then the default.
fn should_orphan_dependents(info: &KindInfo, object: &Object, options: &DeleteOptions) -> bool {
    if let Some(orphan) = options.orphan_dependents {
        return orphan;
    }
    match options.propagation_policy {
        Some(Propagation::Orphan) => return true,
        Some(Propagation::Background | Propagation::Foreground) => return false,
        None => {}
    }
    for finalizer in &object.metadata.finalizers {
        if finalizer == FINALIZER_ORPHAN {
            return true;
        }
        if finalizer == FINALIZER_FOREGROUND {
            return false;
        }
    }
    info.default_propagation == DefaultPropagation::Orphan
}

/// `shouldDeleteDependents`.
fn should_delete_dependents(object: &Object, options: &DeleteOptions) -> bool {
    if options.orphan_dependents.is_some() {
        return false;
    }
    match options.propagation_policy {
        Some(Propagation::Foreground) => return true,
        Some(Propagation::Background | Propagation::Orphan) => return false,
        None => {}
    }
    for finalizer in &object.metadata.finalizers {
        if finalizer == FINALIZER_FOREGROUND {
            return true;
        }
        if finalizer == FINALIZER_ORPHAN {
            return false;
        }
    }
    false
}
