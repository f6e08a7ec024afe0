//! # apiserver-fake
//!
//! The Kubernetes machinery that controllers live in, as simulated actors on [`sim_core`]: the
//! object store with one global resourceVersion ([`ApiServer`]), the API verbs with Kubernetes'
//! validation, finalizer and DELETE-propagation rules, watches with bounded history, a client
//! with seeded latency and faults, client-go work queues, informers with caches that lag, the controller runtime
//! ([`Controller`]), the garbage collector ([`GarbageCollector`]) and the namespace controller
//! ([`NamespaceController`]). The rules are those
//! of `../shared/spec/kubernetes.md`, checked against upstream.

pub mod client;
pub mod controller;
pub mod error;
pub mod gc;
pub mod informer;
pub mod kinds;
pub mod namespace;
pub mod object;
pub mod selector;
pub mod server;
pub mod workqueue;

pub use client::{Client, ClientConfig, ClientWatch, Faults, Latency};
pub use controller::{Action, Controller, ObjectKey, ReconcileError, ReconcileResult};
pub use error::{ApiError, Reason};
pub use gc::{GarbageCollector, GcConfig, Identity, Node};
pub use informer::{Cache, Informer, InformerConfig, Notification};
pub use kinds::{DefaultPropagation, KindId, KindInfo, Registry};
pub use namespace::{NamespaceConfig, NamespaceController};
pub use object::{
    FINALIZER_FOREGROUND, FINALIZER_ORPHAN, ManifestError, Object, ObjectMeta, OwnerReference,
    Time, merge_patch, parse_manifests,
};
pub use selector::Selector;
pub use server::{
    ApiServer, Change, DeleteOptions, Deleted, EventType, FINALIZER_KUBERNETES, ObjectList,
    PROTECTED_NAMESPACES, Propagation, ServerConfig, Watch, WatchEvent, WatchStart,
};

/// The simulator this crate builds on.
pub use sim_core;
