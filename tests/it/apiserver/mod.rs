//! Tests: apiserver. The fake API server against Kubernetes' rules: object metadata (finalizers
//! and deletion, resourceVersion and optimistic concurrency, generation and the status
//! subresource, ownerReference and finalizer validation), DELETE propagation (which of the
//! `orphan` and `foregroundDeletion` finalizers a DELETE leaves, from its options, the existing
//! finalizers and the kind's default), namespaces (lifecycle admission, Terminating, `finalize`,
//! protected namespaces) and watches (resourceVersion order, replay, 410 Gone, namespace filters,
//! bookmarks, reads from a possibly stale watch cache), with table tests ported from upstream,
//! plus manifests, label selectors, limits and determinism. Every test runs over 200 seeds; where
//! order matters, several tasks issue verbs with yields between them so that schedules vary.
//!
//! This file holds the shared constants and helpers; each rule has a file of its own.

mod concurrency;
mod finalizers;
mod generation;
mod limits;
mod manifests;
mod namespaces;
mod owner_references;
mod propagation;
mod selectors;
mod stale_reads;
mod watches;

use std::fmt;

use apiserver_fake::{
    ApiError, ApiServer, DeleteOptions, Deleted, EventType, FINALIZER_FOREGROUND, FINALIZER_ORPHAN,
    KindInfo, Object, Propagation, Reason, Registry, ServerConfig, WatchEvent,
};
use serde_json::json;
use sim_core::{Outcome, Simulation, spawn, yield_now};

const SEEDS: u64 = 200;
const NS: &str = "default";
const WIDGETS: &str = "example.com/v1";
const KEEP: &str = "example.com/keep";
const FG: &str = FINALIZER_FOREGROUND;
const ORPHAN: &str = FINALIZER_ORPHAN;
const MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

// ---------------------------------------------------------------------------------------------
// Helpers

/// Runs `setup` under seeds `0..SEEDS`; every run must complete.
fn run_seeds(setup: impl Fn()) {
    let mut sim = Simulation::default();
    for seed in 0..SEEDS {
        let outcome = sim.run(seed, &setup);
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
    }
}

/// A server with the built-in kinds and the namespaced custom resource `Widget.example.com`.
fn server() -> ApiServer {
    server_with(ServerConfig::default())
}

fn server_with(config: ServerConfig) -> ApiServer {
    let server = ApiServer::new(Registry::builtin(), config);
    server.register(KindInfo::custom(WIDGETS, "Widget", "widgets", true));
    server
}

fn cm(namespace: &str, name: &str) -> Object {
    Object::new("v1", "ConfigMap", namespace, name)
}

fn widget(namespace: &str, name: &str) -> Object {
    Object::new(WIDGETS, "Widget", namespace, name).with_spec(json!({ "size": 1 }))
}

fn namespace(name: &str) -> Object {
    Object::new("v1", "Namespace", "", name)
}

/// GET of the object `object` names.
fn get(server: &ApiServer, object: &Object) -> Result<Object, ApiError> {
    let meta = &object.metadata;
    server.get(&object.api_version, &object.kind, &meta.namespace, &meta.name)
}

/// DELETE of the object `object` names.
fn delete(
    server: &ApiServer,
    object: &Object,
    options: &DeleteOptions,
) -> Result<Deleted, ApiError> {
    let meta = &object.metadata;
    server.delete(&object.api_version, &object.kind, &meta.namespace, &meta.name, options)
}

/// The object a DELETE left in place because finalizers remain.
fn pending(result: Result<Deleted, ApiError>) -> Object {
    match result {
        Ok(Deleted::Pending(object)) => object,
        other => panic!("expected the object to stay with deletionTimestamp, got {other:?}"),
    }
}

/// The last state of an object a DELETE removed.
fn removed(result: Result<Deleted, ApiError>) -> Object {
    match result {
        Ok(Deleted::Removed(object)) => object,
        other => panic!("expected the object to be removed, got {other:?}"),
    }
}

/// The error of a call that must fail.
fn failure<T: fmt::Debug>(result: Result<T, ApiError>) -> ApiError {
    result.expect_err("the call must fail")
}

fn assert_error(error: &ApiError, code: u16, reason: Reason, message: &str) {
    assert_eq!((error.code, error.reason, error.message.as_str()), (code, reason, message));
}

fn with_finalizers(mut object: Object, finalizers: &[&str]) -> Object {
    object.metadata.finalizers = finalizers.iter().map(|f| f.to_string()).collect();
    object
}

/// Read-modify-write with retries on 409, as client-go's `RetryOnConflict`: returns the stored
/// result and the number of conflicts met.
async fn update_with_retry(
    server: &ApiServer,
    target: &Object,
    change: impl Fn(&mut Object),
) -> (Object, u32) {
    let mut conflicts = 0;
    loop {
        let mut object = get(server, target).expect("the object exists");
        yield_now().await;
        change(&mut object);
        match server.update(object) {
            Ok(updated) => return (updated, conflicts),
            Err(error) if error.is_conflict() => {
                assert!(error.message.ends_with(MODIFIED), "{error}");
                conflicts += 1;
            }
            Err(error) => panic!("update failed: {error}"),
        }
    }
}

/// Every buffered event of a watch.
fn drain(watch: &apiserver_fake::Watch) -> Vec<WatchEvent> {
    std::iter::from_fn(|| watch.try_next()).collect()
}

fn assert_strictly_increasing(rvs: &[u64], what: &str) {
    for pair in rvs.windows(2) {
        assert!(pair[0] < pair[1], "{what}: resourceVersions not strictly increasing: {rvs:?}");
    }
}

/// The retained changes of `kind` after `after`, as (type, namespace/name, rv).
fn history_after(server: &ApiServer, kind: &str, after: u64) -> Vec<(EventType, String, u64)> {
    server
        .history()
        .into_iter()
        .filter(|change| change.event.object.kind == kind)
        .filter(|change| change.event.resource_version() > after)
        .map(|change| summary(&change.event))
        .collect()
}

fn summary(event: &WatchEvent) -> (EventType, String, u64) {
    (event.event_type, event.object.key(), event.resource_version())
}

/// What a DELETE request carries.
#[derive(Clone, Copy, Debug)]
enum Request {
    Nothing,
    Policy(Propagation),
    OrphanDependents(bool),
}

impl Request {
    fn options(self) -> DeleteOptions {
        match self {
            Request::Nothing => DeleteOptions::default(),
            Request::Policy(policy) => DeleteOptions::propagation(policy),
            Request::OrphanDependents(orphan) => DeleteOptions::orphan_dependents(orphan),
        }
    }
}

/// Writers on ConfigMaps in `namespaces`: each creates, updates and deletes `per_writer` objects,
/// yielding between verbs. Returns the join handles.
fn spawn_writers(
    server: &ApiServer,
    namespaces: &[&'static str],
    per_writer: usize,
) -> Vec<sim_core::JoinHandle<()>> {
    namespaces
        .iter()
        .enumerate()
        .map(|(index, &ns)| {
            let server = server.clone();
            spawn(format!("writer-{index}"), async move {
                for j in 0..per_writer {
                    let name = format!("w{index}-{j}");
                    let created = server.create(cm(ns, &name)).expect("create");
                    yield_now().await;
                    server.update(created.with_label("round", "1")).expect("update");
                    yield_now().await;
                    if j % 2 == 0 {
                        removed(server.delete("v1", "ConfigMap", ns, &name, &Default::default()));
                        yield_now().await;
                    }
                }
            })
        })
        .collect()
}
