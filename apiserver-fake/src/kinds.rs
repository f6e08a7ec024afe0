//! The kinds the server knows: scope, plural resource name, default deletion propagation, and
//! whether they are custom resources (which changes update and generation rules).

use std::collections::BTreeMap;

/// How a DELETE without options treats dependents (`rest.GarbageCollectionPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DefaultPropagation {
    /// Dependents are collected in the background (custom resources and most kinds).
    Background,
    /// Dependents are orphaned (ReplicationController, batch/v1 Job, old beta workload groups).
    Orphan,
}

/// One kind the server serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindInfo {
    /// `group/version` (`v1` for core).
    pub api_version: String,
    /// The kind, e.g. `ConfigMap`.
    pub kind: String,
    /// The plural resource name, e.g. `configmaps`.
    pub resource: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// DELETE's policy when the request gives none and the object carries no GC finalizer.
    pub default_propagation: DefaultPropagation,
    /// A custom resource: updates must carry a resourceVersion (422 otherwise) and generation
    /// follows every non-metadata, non-status change.
    pub custom: bool,
    /// Whether `status` is a subresource: main-resource updates ignore status changes and
    /// `update_status` changes nothing else.
    pub status_subresource: bool,
}

impl KindInfo {
    /// A built-in kind.
    pub fn builtin(api_version: &str, kind: &str, resource: &str, namespaced: bool) -> Self {
        KindInfo {
            api_version: api_version.into(),
            kind: kind.into(),
            resource: resource.into(),
            namespaced,
            default_propagation: DefaultPropagation::Background,
            custom: false,
            status_subresource: true,
        }
    }

    /// A custom resource (CRD) with a status subresource and Background default propagation.
    pub fn custom(api_version: &str, kind: &str, resource: &str, namespaced: bool) -> Self {
        KindInfo { custom: true, ..KindInfo::builtin(api_version, kind, resource, namespaced) }
    }

    /// The same kind without a status subresource.
    pub fn without_status_subresource(mut self) -> Self {
        self.status_subresource = false;
        self
    }

    /// The same kind with `Orphan` as the default propagation.
    pub fn orphan_by_default(mut self) -> Self {
        self.default_propagation = DefaultPropagation::Orphan;
        self
    }

    /// The API group (`""` for core).
    pub fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map_or("", |(group, _)| group)
    }

    /// `resource.group` as errors print it (`configmaps`, `certificates.cert-manager.io`).
    pub fn qualified_resource(&self) -> String {
        match self.group() {
            "" => self.resource.clone(),
            group => format!("{}.{group}", self.resource),
        }
    }

    /// `Kind.group` as validation errors print it (`ConfigMap`, `Certificate.cert-manager.io`).
    pub fn qualified_kind(&self) -> String {
        match self.group() {
            "" => self.kind.clone(),
            group => format!("{}.{group}", self.kind),
        }
    }

    /// The etcd key upstream stores an object under (used in storage error texts).
    pub fn storage_key(&self, namespace: &str, name: &str) -> String {
        let prefix = match self.group() {
            "" => format!("/registry/{}", self.resource),
            group => format!("/registry/{group}/{}", self.resource),
        };
        if namespace.is_empty() {
            format!("{prefix}/{name}")
        } else {
            format!("{prefix}/{namespace}/{name}")
        }
    }
}

/// The kind of a CustomResourceDefinition (`apiextensions.k8s.io/v1`): creating one serves its
/// kind ([`KindInfo::from_crd`]).
pub const CRD_KIND: &str = "CustomResourceDefinition";

impl KindInfo {
    /// The kinds a CustomResourceDefinition object serves, one per served version: group,
    /// `names.kind`, `names.plural`, `scope`, and whether the version has `subresources.status`
    /// (`apiextensions-apiserver`'s `crdHandler`). Missing fields give no kind.
    pub fn from_crd(crd: &crate::object::Object) -> Vec<KindInfo> {
        let spec = &crd.spec;
        let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_string();
        let (group, kind, plural) =
            (text(&spec["group"]), text(&spec["names"]["kind"]), text(&spec["names"]["plural"]));
        if group.is_empty() || kind.is_empty() || plural.is_empty() {
            return Vec::new();
        }
        let namespaced = spec["scope"].as_str() != Some("Cluster");
        let versions = spec["versions"].as_array().cloned().unwrap_or_default();
        versions
            .iter()
            .filter(|v| v["served"].as_bool() != Some(false) && v["name"].is_string())
            .map(|version| {
                let api_version = format!("{group}/{}", text(&version["name"]));
                let info = KindInfo::custom(&api_version, &kind, &plural, namespaced);
                if version["subresources"]["status"].is_object() {
                    info
                } else {
                    info.without_status_subresource()
                }
            })
            .collect()
    }
}

/// A kind's index in its [`Registry`]: stable for the registry's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KindId(pub usize);

/// The kinds a server serves, looked up by `(apiVersion, kind)`.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    kinds: Vec<KindInfo>,
    by_name: BTreeMap<(String, String), KindId>,
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Self {
        Registry::default()
    }

    /// The built-in kinds kdst models: core v1 (Namespace, ConfigMap, Secret, Pod, Service,
    /// ServiceAccount, ReplicationController, PersistentVolumeClaim, Node, Event), apps/v1
    /// (StatefulSet included, Background by default as in `pkg/registry/apps/statefulset`),
    /// batch/v1, coordination, rbac, and the deprecated beta workload groups whose default propagation is Orphan
    /// (`pkg/registry/*/strategy.go` `DefaultGarbageCollectionPolicy`).
    pub fn builtin() -> Self {
        let mut registry = Registry::empty();
        let b = KindInfo::builtin;
        for info in [
            b("v1", "Namespace", "namespaces", false),
            b("v1", "ConfigMap", "configmaps", true),
            b("v1", "Secret", "secrets", true),
            b("v1", "Pod", "pods", true),
            b("v1", "Service", "services", true),
            b("v1", "ServiceAccount", "serviceaccounts", true),
            b("v1", "Event", "events", true),
            b("v1", "Node", "nodes", false),
            b("v1", "ReplicationController", "replicationcontrollers", true).orphan_by_default(),
            b("v1", "PersistentVolumeClaim", "persistentvolumeclaims", true),
            b("apps/v1", "Deployment", "deployments", true),
            b("apps/v1", "ReplicaSet", "replicasets", true),
            b("apps/v1", "StatefulSet", "statefulsets", true),
            b("apps/v1", "DaemonSet", "daemonsets", true),
            b("batch/v1", "Job", "jobs", true).orphan_by_default(),
            b("coordination.k8s.io/v1", "Lease", "leases", true),
            b("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", false),
            b("events.k8s.io/v1", "Event", "events", true),
            b("apiextensions.k8s.io/v1", CRD_KIND, "customresourcedefinitions", false),
            b("extensions/v1beta1", "ReplicaSet", "replicasets", true).orphan_by_default(),
            b("extensions/v1beta1", "Deployment", "deployments", true).orphan_by_default(),
            b("extensions/v1beta1", "DaemonSet", "daemonsets", true).orphan_by_default(),
            b("apps/v1beta1", "Deployment", "deployments", true).orphan_by_default(),
            b("apps/v1beta1", "StatefulSet", "statefulsets", true).orphan_by_default(),
            b("apps/v1beta2", "ReplicaSet", "replicasets", true).orphan_by_default(),
            b("apps/v1beta2", "Deployment", "deployments", true).orphan_by_default(),
            b("apps/v1beta2", "DaemonSet", "daemonsets", true).orphan_by_default(),
            b("apps/v1beta2", "StatefulSet", "statefulsets", true).orphan_by_default(),
        ] {
            registry.register(info);
        }
        registry
    }

    /// Adds a kind (a CRD, say), replacing any earlier definition of the same `(apiVersion, kind)`.
    pub fn register(&mut self, info: KindInfo) -> KindId {
        let key = (info.api_version.clone(), info.kind.clone());
        if let Some(&id) = self.by_name.get(&key) {
            self.kinds[id.0] = info;
            return id;
        }
        let id = KindId(self.kinds.len());
        self.kinds.push(info);
        self.by_name.insert(key, id);
        id
    }

    /// The id of the kind served as `resource` (the plural) in `apiVersion`.
    pub fn lookup_resource(&self, api_version: &str, resource: &str) -> Option<KindId> {
        let index = self
            .kinds
            .iter()
            .position(|k| k.api_version == api_version && k.resource == resource)?;
        Some(KindId(index))
    }

    /// The id of `(apiVersion, kind)`.
    pub fn lookup(&self, api_version: &str, kind: &str) -> Option<KindId> {
        self.by_name.get(crate::pair::pair(&(api_version, kind))).copied()
    }

    /// The kind with this id.
    pub fn info(&self, id: KindId) -> &KindInfo {
        &self.kinds[id.0]
    }

    /// Every kind, in registration order.
    pub fn kinds(&self) -> impl Iterator<Item = (KindId, &KindInfo)> {
        self.kinds.iter().enumerate().map(|(index, info)| (KindId(index), info))
    }
}
