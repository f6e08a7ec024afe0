//! # apiserver-fake
//!
//! The Kubernetes machinery that controllers live in, as simulated actors on [`sim_core`]: the
//! object store with one global resourceVersion ([`ApiServer`]), the API verbs with Kubernetes'
//! validation, finalizer and DELETE-propagation rules, watches with bounded history, a client
//! with seeded latency and faults ([`Client`]), client-go work queues ([`workqueue`]), informers
//! with caches that lag ([`Informer`]), the controller runtime ([`Controller`]), the garbage
//! collector ([`GarbageCollector`]), the namespace controller ([`NamespaceController`]), the
//! StatefulSet controller ([`StatefulSetController`]), the PVC protection controller
//! ([`PvcProtectionController`]) and a simulated node that ends pods' grace periods
//! ([`Kubelet`]).
//! The rules are those of `docs/08-fidelity.md` (§1–§6), checked against upstream; each module
//! names the upstream code it follows. [`endstate`] holds the pure parts of the generic
//! oracles: masked end states to compare with a reference run or hash ([`EndState`]), and the
//! per-object update summary ([`UpdateSummary`]).
//!
//! ```
//! use std::time::Duration;
//! use apiserver_fake::{ApiServer, Client, ClientConfig, DeleteOptions, GarbageCollector,
//!     GcConfig, Object, OwnerReference, Propagation};
//! use sim_core::{Outcome, Simulation};
//!
//! let outcome = Simulation::default().run(7, || {
//!     let server = ApiServer::default();
//!     let client = Client::new(&server, "user", ClientConfig::default());
//!     GarbageCollector::start(&client, GcConfig::default().with_kinds(&[("v1", "ConfigMap")]));
//!     sim_core::spawn("user", async move {
//!         let owner = client.create(Object::new("v1", "ConfigMap", "default", "owner")).await.unwrap();
//!         let child = Object::new("v1", "ConfigMap", "default", "child")
//!             .with_owner(OwnerReference::controller_of(&owner));
//!         client.create(child).await.unwrap();
//!         let foreground = DeleteOptions::propagation(Propagation::Foreground);
//!         client.delete("v1", "ConfigMap", "default", "owner", &foreground).await.unwrap();
//!         sim_core::sleep(Duration::from_secs(30)).await;
//!         // The GC deleted the child, then removed `foregroundDeletion` from the owner.
//!         assert!(server.objects().iter().all(|o| o.kind != "ConfigMap"));
//!     });
//! });
//! assert_eq!(outcome, Outcome::Completed);
//! ```
//!
//! ## Where upstream and the spec disagree (kdst follows upstream)
//! - A create refused in a terminating namespace carries the cause `NamespaceTerminating`
//!   (`v1.NamespaceTerminatingCause`), not `NamespaceContentTerminating`.
//! - The 409s of DELETE preconditions name the kind (`Operation cannot be fulfilled on
//!   ConfigMap "a": the UID in the precondition …`), because `rest.BeforeDelete` builds them
//!   from `GroupResource{Group, Resource: Kind}`; other conflicts name the resource.
//! - An UPDATE whose body carries another uid is a 409 (`defaultUpdatedObjectInfo` makes it a
//!   storage precondition); a PATCH that changes the uid is a 422 (`field is immutable`).
//! - A DELETED event carries the last *stored* state stamped with the deletion's
//!   resourceVersion: when an update removes the last finalizer, the event still lists it.
//!
//! ## Simplifications
//! - Every kind has a generation starting at 1 (upstream, ConfigMaps, Secrets and Namespaces
//!   keep 0); deleting a namespace sets a grace period of 0 and, with no `spec.finalizers`,
//!   removes it at once.
//! - Graceful deletion is modelled for v1 Pods only, and only with
//!   [`ServerConfig::graceful_pod_deletion`] (off by default: every deletion is then immediate
//!   or waits for finalizers). With it, a pod's DELETE sets `deletionTimestamp` to now plus the
//!   grace period and [`Kubelet`], the one simulated node, removes the pod when that time comes;
//!   every pod counts as scheduled to that node (there is no scheduler).
//! - PersistentVolumeClaims always get `kubernetes.io/pvc-protection` at create
//!   ([`PvcProtectionController`] removes it); every claim counts as bound (its storage request
//!   may grow, never shrink); there are no PersistentVolumes.
//! - [`StatefulSetController`] has no ControllerRevisions or rolling updates and always retains
//!   claims (see [`statefulset`]).
//! - The GC patches ownerReferences with JSON merge patches carrying the resourceVersion (the
//!   upstream path for custom resources) also for built-in kinds, where upstream uses a
//!   strategic merge patch without one; a conflict is retried through the queue.
//! - `WatchStart::Any` (resourceVersion "0") is served from the latest state, as the watch
//!   cache usually does; the initial ADDED events of a snapshot are ordered by key, not RV.

pub mod client;
pub mod controller;
pub mod endstate;
pub mod error;
pub mod fields;
pub mod gc;
pub mod informer;
pub mod kinds;
pub mod kubelet;
pub mod namespace;
pub mod object;
mod pair;
pub mod pvc;
pub mod rest;
pub mod selector;
pub mod server;
pub mod statefulset;
pub mod workqueue;

pub use client::{
    CRASH_AFTER_WRITE, Client, ClientConfig, ClientWatch, Faults, Latency, PAUSE_AFTER_WRITE,
};
pub use controller::{Action, Controller, ObjectKey, ReconcileError, ReconcileResult};
pub use endstate::{
    CountDiff, CountTable, Counts, Difference, EndState, Mask, ObjectId, Stability, StateDiff,
    UpdateSummary, WriteLog,
};
pub use error::{ApiError, Reason, StatusCause, StatusDetails};
pub use fields::{FieldSelector, FieldSelectorError, Filter};
pub use gc::{GarbageCollector, GcConfig, Identity, Node};
pub use informer::{
    Cache, INFORMER_LAG, Informer, InformerConfig, Notification, STALE_RECONNECT, UNOBSERVED_STATE,
};
pub use kinds::{CRD_KIND, DefaultPropagation, KindId, KindInfo, Registry};
pub use kubelet::{Kubelet, KubeletConfig};
pub use namespace::{NamespaceConfig, NamespaceController};
pub use object::{
    FINALIZER_FOREGROUND, FINALIZER_ORPHAN, ManagedFieldsEntry, ManifestError, Object,
    ObjectJsonError, ObjectMeta, OwnerReference, Time, TimeParseError, merge_patch,
    parse_manifests,
};
pub use pvc::{
    FINALIZER_PVC_PROTECTION, PvcProtectionConfig, PvcProtectionController, Quantity, QuantityError,
};
pub use selector::{Selector, SelectorError};
pub use server::{
    ApiServer, Change, DeleteOptions, Deleted, EventType, FINALIZER_KUBERNETES, ObjectList,
    PROTECTED_NAMESPACES, Propagation, ServerConfig, Watch, WatchEvent, WatchStart,
};

pub use statefulset::{StatefulSetConfig, StatefulSetController};

/// The simulator this crate builds on.
pub use sim_core;
