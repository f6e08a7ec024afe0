//! # scenarios (skeleton)
//!
//! Will hold faithful models of real controller bugs, each with a buggy variant that search
//! finds and a fixed variant modelling the upstream fix (`../shared/spec/bugs.md`): the
//! cert-manager foreground-deletion livelock, the cert-manager Scheme race, Capsule's and
//! Submariner's concurrent map writes, and the informer-cache locking patterns; plus the `kdst`
//! command line. Built in a later issue; this crate only compiles today.

/// The Kubernetes machinery the scenarios run on.
pub use apiserver_fake;
