//! The API server: the object store with one global resourceVersion, the verbs with Kubernetes'
//! validation, finalizer and DELETE-propagation rules, namespace lifecycle admission, and the
//! watch event log with bounded history.
//!
//! Every verb runs inside one simulation step, so the server is linearizable: tasks interleave
//! between calls (and, through [`crate::Client`], between the request and response legs of a
//! call), never inside one.
//!
//! This file holds the server's options ([`ServerConfig`]), the [`ApiServer`] handle with its
//! constructor, the read verbs (GET, LIST and the observers oracles use) and the trace event each
//! verb leaves. It mirrors upstream `registry/generic/registry/store.go` (`Store.Get`,
//! `Store.List`). One file per further concept, each naming the upstream code it mirrors:
//! - `store.rs`: the object store, one resourceVersion per write, the change log
//!   (`registry/generic/registry/store.go`, the `Store` type);
//! - `create.rs`: CREATE, `generateName` and namespace lifecycle admission
//!   (`registry/rest/create.go`, `plugin/pkg/admission/namespace/lifecycle`);
//! - `update.rs`: UPDATE, PATCH and the `status` and `finalize` subresources
//!   (`registry/rest/update.go`);
//! - `list.rs`: LIST with selectors, resourceVersion semantics and pages (`Store.List`,
//!   `Cacher.GetList`);
//! - `delete.rs`: DELETE options, preconditions and propagation (`registry/rest/delete.go`);
//! - `validate.rs`: the ObjectMeta rules (`apimachinery/pkg/api/validation/objectmeta.go`);
//! - `watch.rs`: watch streams, bookmarks and reads served from the watch cache
//!   (`storage/cacher`);
//! - `lagging.rs`: a process's lagging view of one object (a second API server whose watch
//!   cache fell behind; Sieve's stale-state plans).

mod create;
mod delete;
mod lagging;
mod list;
mod store;
mod update;
mod validate;
mod watch;

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use sim_core::footprint::Resource;

use crate::endstate::WriteLog;
use crate::error::ApiError;
use crate::fields::Filter;
use crate::kinds::{KindId, KindInfo, Registry};
use crate::object::Object;
use crate::selector::Selector;

pub use delete::{DeleteOptions, Deleted, Propagation};
pub use list::{ListOptions, ListPage, ReadAt};
pub use update::PatchTarget;
pub use watch::{Change, EventType, Watch, WatchEvent, WatchStart};

use store::Store;

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
    /// Keep a [`WriteLog`] of every write (counts per object and event type, the virtual time
    /// of each), never compacted, for [`crate::UpdateSummary`] and [`crate::Stability`]. Off: one
    /// branch per write.
    pub update_summary: bool,
    /// Model graceful deletion of v1 Pods (`registry/core/pod/strategy.go`
    /// `CheckGracefulDelete`): a DELETE sets `deletionTimestamp` to now plus the grace period
    /// and leaves the pod for a node ([`crate::Kubelet`]) to remove with a grace period of 0.
    /// Off by default: every pod deletion is then immediate (or waits for finalizers).
    pub graceful_pod_deletion: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            objects_max: 100_000,
            history_max: 10_000,
            watch_buffer_max: 10_000,
            system_namespaces: true,
            stale_reads: 0,
            update_summary: false,
            graceful_pod_deletion: false,
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

    /// Sets [`ServerConfig::update_summary`].
    pub fn with_update_summary(mut self, update_summary: bool) -> Self {
        self.update_summary = update_summary;
        self
    }

    /// Sets [`ServerConfig::graceful_pod_deletion`].
    pub fn with_graceful_pod_deletion(mut self, graceful_pod_deletion: bool) -> Self {
        self.graceful_pod_deletion = graceful_pod_deletion;
        self
    }

    /// Sets [`ServerConfig::system_namespaces`].
    pub fn with_system_namespaces(mut self, system_namespaces: bool) -> Self {
        self.system_namespaces = system_namespaces;
        self
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
impl ApiServer {
    /// A server for `registry`'s kinds. Call it inside a simulation (a run's setup or a task):
    /// the system namespaces are created at once, stamped with virtual time.
    pub fn new(registry: Registry, config: ServerConfig) -> Self {
        let system = config.system_namespaces;
        let writes = config.update_summary.then(WriteLog::default);
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
                writes,
                views: Vec::new(),
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

    /// The kind served as `resource` (its plural) in `api_version`, if any.
    pub fn kind_by_resource(&self, api_version: &str, resource: &str) -> Option<KindInfo> {
        self.resource.part(REGISTRY).read();
        let store = self.store.borrow();
        store
            .registry
            .lookup_resource(api_version, resource)
            .map(|id| store.registry.info(id).clone())
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

    /// A copy of the write log, if [`ServerConfig::update_summary`] is on.
    pub fn write_log(&self) -> Option<WriteLog> {
        self.read_store().writes.clone()
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

    /// LIST, in one namespace or (`None`) all, filtered by a label selector: the latest state,
    /// all of it ([`ApiServer::list_with`] takes every option).
    pub fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<ObjectList, ApiError> {
        let options = ListOptions { filter: Filter::labels(selector), ..ListOptions::default() };
        Ok(self.list_with(api_version, kind, namespace, &options)?.list)
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
