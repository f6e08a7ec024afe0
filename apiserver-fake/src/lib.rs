//! # apiserver-fake (skeleton)
//!
//! Will hold the Kubernetes machinery that controllers live in, as simulated actors on
//! [`sim_core`]: the object store with one global resourceVersion, the API verbs with Kubernetes'
//! validation, finalizer and DELETE-propagation rules, watches with bounded history, a client
//! with seeded latency and faults, informers and caches that can lag, client-go work queues,
//! a controller runtime, the garbage collector and the namespace controller
//! (`../shared/spec/kubernetes.md`). Built in a later issue; this crate only compiles today.

/// The simulator this crate builds on.
pub use sim_core;
