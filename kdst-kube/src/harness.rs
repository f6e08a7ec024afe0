//! The cluster a kube-rs controller is tested in: the fake API server with the garbage
//! collector, the namespace and StatefulSet controllers, CRDs registered from the user's
//! `#[derive(CustomResource)]` types, and objects seeded from typed values or YAML manifests.
//! Seeding and [`Cluster::peek`] act on the server directly (no latency, no faults, no
//! scheduling point): they build the world and observe it, the way a test's setup and oracles
//! do; the code under test goes through a [`kube::Client`].

use apiserver_fake::{
    ApiError, ApiServer, Client, ClientConfig, GarbageCollector, GcConfig, NamespaceConfig,
    NamespaceController, Object, Registry, ServerConfig, StatefulSetConfig, StatefulSetController,
};
use kube::{CustomResourceExt, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Cluster;

/// Builds a [`Cluster`]: which system controllers run, the server's options, the CRDs.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct Builder {
    server: ServerConfig,
    controllers: bool,
    gc: GcConfig,
    gc_kinds: Option<Vec<(String, String)>>,
    crds: Vec<Object>,
}

impl Builder {
    /// The server's options (for the generic oracles, the write log:
    /// `ServerConfig::default().with_update_summary(true)`).
    pub fn server_config(mut self, config: ServerConfig) -> Self {
        self.server = config;
        self
    }

    /// Runs the garbage collector, the namespace controller and the StatefulSet controller, as
    /// kube-controller-manager does (each a kdst daemon with its own client).
    pub fn system_controllers(mut self) -> Self {
        self.controllers = true;
        self
    }

    /// The garbage collector's options (its workers, its monitors' informer lag).
    pub fn gc_config(mut self, config: GcConfig) -> Self {
        self.gc = config;
        self
    }

    /// The kinds the garbage collector monitors, as `(apiVersion, kind)` (default: every kind
    /// the server serves once the CRDs are registered; fewer kinds, fewer informer tasks).
    pub fn gc_kinds(mut self, kinds: &[(&str, &str)]) -> Self {
        self.gc_kinds = Some(kinds.iter().map(|(a, k)| (a.to_string(), k.to_string())).collect());
        self
    }

    /// Registers `K`'s CustomResourceDefinition (from `#[derive(CustomResource)]`).
    pub fn crd<K: CustomResourceExt>(mut self) -> Self {
        self.crds.push(crd_object::<K>());
        self
    }

    /// The cluster. Call it inside a simulation (a run's setup or a task).
    ///
    /// # Panics
    /// If a CRD is refused (two of the same name, an invalid definition): the message names it.
    pub fn build(self) -> Cluster {
        let server = ApiServer::new(Registry::builtin(), self.server);
        for crd in self.crds {
            let name = crd.metadata.name.clone();
            if let Err(error) = server.create(crd) {
                panic!("kdst-kube: the CustomResourceDefinition {name} was refused: {error}");
            }
        }
        if self.controllers {
            let client = |name| Client::new(&server, name, ClientConfig::default());
            let mut gc = self.gc.clone();
            if let Some(kinds) = &self.gc_kinds {
                let kinds: Vec<(&str, &str)> =
                    kinds.iter().map(|(a, k)| (a.as_str(), k.as_str())).collect();
                gc = gc.with_kinds(&kinds);
            }
            GarbageCollector::start(&client("garbage-collector"), gc);
            NamespaceController::start(&client("namespace-controller"), NamespaceConfig::default());
            StatefulSetController::start(
                &client("statefulset-controller"),
                StatefulSetConfig::default(),
            );
        }
        Cluster::with_server(server)
    }
}

impl Cluster {
    /// A [`Builder`].
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Registers `K`'s CustomResourceDefinition now.
    pub fn crd<K: CustomResourceExt>(&self) -> Result<(), ApiError> {
        self.server.create(crd_object::<K>()).map(drop)
    }

    /// Creates `object` on the server directly (see the module docs) and returns it as
    /// stored (uid, resourceVersion, defaults).
    pub fn seed<K: Resource + Serialize + DeserializeOwned>(
        &self,
        object: &K,
    ) -> Result<K, ApiError> {
        let stored = self.server.create(to_object(object))?;
        Ok(from_object(&stored))
    }

    /// Creates every object of a YAML manifest (documents separated by `---`; empty ones are
    /// skipped), in order. The error names the document (from 1) and what is wrong with it.
    pub fn seed_yaml(&self, manifest: &str) -> Result<Vec<Object>, String> {
        let mut made = Vec::new();
        for (index, document) in serde_yaml_ng::Deserializer::from_str(manifest).enumerate() {
            let value: serde_json::Value = serde::Deserialize::deserialize(document)
                .map_err(|error| format!("document {}: {error}", index + 1))?;
            if value.is_null() {
                continue;
            }
            let object: Object = serde_json::from_value(value)
                .map_err(|error| format!("document {}: {error}", index + 1))?;
            let stored = self
                .server
                .create(object)
                .map_err(|error| format!("document {}: {error}", index + 1))?;
            made.push(stored);
        }
        Ok(made)
    }

    /// The stored `K` named `name` in `namespace` (`""` for a cluster-scoped kind), read
    /// outside any verb: for oracles and assertions.
    pub fn peek<K>(&self, namespace: &str, name: &str) -> Option<K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let (api_version, kind) = (K::api_version(&()), K::kind(&()));
        self.server.peek(&api_version, &kind, namespace, name).map(|object| from_object(&object))
    }

    /// Every stored `K`, by namespace and name, read outside any verb.
    pub fn peek_all<K>(&self) -> Vec<K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let (api_version, kind) = (K::api_version(&()), K::kind(&()));
        let objects = self.server.objects();
        let mine = objects.iter().filter(|o| o.api_version == api_version && o.kind == kind);
        mine.map(from_object).collect()
    }
}

/// `K`'s CRD as a fake-server object.
fn crd_object<K: CustomResourceExt>() -> Object {
    to_object(&K::crd())
}

/// A typed value as a fake-server object (through JSON).
pub(crate) fn to_object<T: Serialize>(value: &T) -> Object {
    let json = serde_json::to_value(value).expect("a Kubernetes object serializes");
    serde_json::from_value(json).expect("a serialized Kubernetes object is an object")
}

/// A fake-server object as a typed value (through JSON).
///
/// # Panics
/// If the stored object does not fit the type: the message names both.
pub(crate) fn from_object<T: DeserializeOwned>(object: &Object) -> T {
    let json = serde_json::to_value(object).expect("an Object serializes");
    match serde_json::from_value(json) {
        Ok(value) => value,
        Err(error) => panic!(
            "kdst-kube: {} {}/{} does not fit {}: {error}",
            object.kind,
            object.metadata.namespace,
            object.metadata.name,
            std::any::type_name::<T>()
        ),
    }
}
