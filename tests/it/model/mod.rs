//! Tests: model. A model-based test of the fake API server: random operations from concurrent
//! clients (with and without injected faults), with Kubernetes' rules checked after every step
//! against the server's change log and what every watcher and every call saw: for object
//! metadata (finalizers and deletionTimestamp, generation, uids, at most one controller
//! reference), for DELETE propagation (the GC finalizers a DELETE leaves, from its options, the
//! existing finalizers and the kind's default) and for watches (every change once, in
//! resourceVersion order, a DELETED event with the last stored state). Then controller-runtime's
//! stale-cache rule (Get after Update can return the old world), and informer basics:
//! convergence, cache-before-handlers, rewatch after a dropped watch and relist after 410 Gone
//! with `DeletedFinalStateUnknown`.
//!
//! This file holds the constants and helpers the files share, and the model's state (its checks
//! are in `oracle.rs`).

mod clients;
mod informers;
mod oracle;
mod runs;
mod stale_cache;
mod verbs;

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::{
    DeleteOptions, EventType, FINALIZER_FOREGROUND, FINALIZER_ORPHAN, Object, OwnerReference,
    Propagation,
};
use sim_core::random_range;

const MS: Duration = Duration::from_millis(1);
const SEEDS: u64 = 200;
const NAMESPACES: [&str; 2] = ["ns-a", "ns-b"];
/// Few names, so that creates collide and names are deleted and created again.
const NAMES: [&str; 4] = ["cm-0", "cm-1", "cm-2", "cm-3"];
const USER_FINALIZERS: [&str; 2] = ["example.com/f", "example.com/g"];
/// A finalizer only ever added to objects already being deleted: every such write must fail.
const LATE_FINALIZER: &str = "example.com/late";
const CLIENTS: usize = 4;
const OPS_PER_CLIENT: u64 = 16;
/// The operations the model test must execute in total over its seeds.
const OPS_MIN: u64 = 10_000;
/// The annotation a write sets to a unique token: a write carrying one is never a no-op.
const OP_ANNOTATION: &str = "kdst.example/op";

type Key = (String, String);

fn key_of(object: &Object) -> Key {
    (object.metadata.namespace.clone(), object.metadata.name.clone())
}

fn random_key() -> Key {
    (pick(&NAMESPACES).to_string(), pick(&NAMES).to_string())
}

fn pick<T: Clone>(items: &[T]) -> T {
    items[random_range(0..items.len() as u64) as usize].clone()
}

fn is_gc_finalizer(finalizer: &str) -> bool {
    finalizer == FINALIZER_ORPHAN || finalizer == FINALIZER_FOREGROUND
}

fn finalizer_set(object: &Object) -> BTreeSet<String> {
    object.metadata.finalizers.iter().cloned().collect()
}

/// The finalizers that are not the garbage collector's.
fn user_finalizers(object: &Object) -> BTreeSet<String> {
    object.metadata.finalizers.iter().filter(|f| !is_gc_finalizer(f)).cloned().collect()
}

fn describe(object: &Object) -> String {
    format!(
        "{} (uid {}, rv {}, generation {}, deletionTimestamp {:?}, finalizers {:?}, \
         ownerReferences {})",
        object.key(),
        object.metadata.uid,
        object.metadata.resource_version,
        object.metadata.generation,
        object.metadata.deletion_timestamp.map(|t| t.to_string()),
        object.metadata.finalizers,
        object.metadata.owner_references.len()
    )
}

/// A made-up owner that `controller=true` points at (validation only needs the fields set).
fn ghost_controller(name: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_string(),
        kind: "ConfigMap".to_string(),
        name: name.to_string(),
        uid: format!("ghost-{name}"),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Rules every stored state must obey, whatever wrote it.
fn check_object(object: &Object) -> Result<(), String> {
    let controllers = object.metadata.owner_references.iter().filter(|r| r.is_controller()).count();
    if controllers > 1 {
        return Err(format!(
            "{} is stored with {controllers} controller references",
            describe(object)
        ));
    }
    if object.has_finalizer(FINALIZER_ORPHAN) && object.has_finalizer(FINALIZER_FOREGROUND) {
        return Err(format!(
            "{} is stored with both orphan and foregroundDeletion",
            describe(object)
        ));
    }
    if object.metadata.generation < 1 {
        return Err(format!("{} is stored with generation < 1", describe(object)));
    }
    if object.metadata.uid.is_empty() || object.metadata.creation_timestamp.is_none() {
        return Err(format!("{} is stored without uid or creationTimestamp", describe(object)));
    }
    Ok(())
}

/// The DELETE propagation table: the finalizers a DELETE with `options` leaves on `object` (a
/// ConfigMap, whose default propagation is Background). Empty means the object is removed at once.
fn expected_finalizers(object: &Object, options: &DeleteOptions) -> Vec<String> {
    let first_gc = object.metadata.finalizers.iter().find(|f| is_gc_finalizer(f));
    let orphan = match (options.orphan_dependents, options.propagation_policy) {
        (Some(orphan), _) => orphan,
        (None, Some(policy)) => policy == Propagation::Orphan,
        (None, None) => first_gc.is_some_and(|f| f == FINALIZER_ORPHAN),
    };
    let foreground = match (options.orphan_dependents, options.propagation_policy) {
        (Some(_), _) => false,
        (None, Some(policy)) => policy == Propagation::Foreground,
        (None, None) => first_gc.is_some_and(|f| f == FINALIZER_FOREGROUND),
    };
    let mut finalizers: Vec<String> =
        object.metadata.finalizers.iter().filter(|f| !is_gc_finalizer(f)).cloned().collect();
    if orphan {
        finalizers.push(FINALIZER_ORPHAN.to_string());
    }
    if foreground {
        finalizers.push(FINALIZER_FOREGROUND.to_string());
    }
    let unchanged: BTreeSet<String> = finalizers.iter().cloned().collect();
    if unchanged == finalizer_set(object) { object.metadata.finalizers.clone() } else { finalizers }
}

/// The server's RV and the newest RV any write had returned, when a call was sent.
#[derive(Clone, Copy)]
struct Before {
    rv: u64,
    max_write: u64,
}

/// Counts over a run (summed over seeds), to show the model exercised each rule.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    ops: u64,
    writes_ok: u64,
    noop_writes: u64,
    failed_calls: u64,
    invalid_rejected: u64,
    late_finalizer_rejected: u64,
    deletes_removed: u64,
    deletes_pending: u64,
    removed_by_last_finalizer: u64,
    gc_finalizers_changed_while_deleting: u64,
    recreated_names: u64,
    watch_events: u64,
    /// Updates that removed the last finalizer answered with the written object (upstream).
    emptying_update_answers: u64,
    /// Updates that removed the last finalizer answered with the removed stored state.
    deleted_state_answers: u64,
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.ops += other.ops;
        self.writes_ok += other.writes_ok;
        self.noop_writes += other.noop_writes;
        self.failed_calls += other.failed_calls;
        self.invalid_rejected += other.invalid_rejected;
        self.late_finalizer_rejected += other.late_finalizer_rejected;
        self.deletes_removed += other.deletes_removed;
        self.deletes_pending += other.deletes_pending;
        self.removed_by_last_finalizer += other.removed_by_last_finalizer;
        self.gc_finalizers_changed_while_deleting += other.gc_finalizers_changed_while_deleting;
        self.recreated_names += other.recreated_names;
        self.watch_events += other.watch_events;
        self.emptying_update_answers += other.emptying_update_answers;
        self.deleted_state_answers += other.deleted_state_answers;
    }
}

/// One uid's life as the change log tells it.
struct Life {
    last: Rc<Object>,
    /// The finalizers of the first state with deletionTimestamp set.
    at_deletion: Option<BTreeSet<String>>,
}

/// What one watcher received.
struct Recorded {
    name: &'static str,
    namespace: Option<String>,
    /// The watch started after this resourceVersion.
    from: u64,
    /// The synthetic ADDED events it must start with (a watch from "now").
    snapshot: Vec<Object>,
    events: Vec<(EventType, Rc<Object>)>,
    /// How many events the per-step check has looked at, and the last one's RV.
    checked: usize,
    last: u64,
}

/// The server's observable history, replayed from `ApiServer::history` after every step.
#[derive(Default)]
struct Model {
    /// The newest resourceVersion replayed.
    last_rv: u64,
    /// Every ConfigMap change, by resourceVersion.
    committed: BTreeMap<u64, (EventType, Rc<Object>)>,
    lives: BTreeMap<String, Life>,
    /// The uid living under each name now.
    live: BTreeMap<Key, String>,
    /// Every name that ever lived.
    ever: BTreeSet<Key>,
    watchers: Vec<Recorded>,
    /// The fresh resourceVersions writes returned, and the newest one returned so far.
    write_rvs: BTreeSet<u64>,
    max_completed_write: u64,
    stats: Stats,
    /// The first divergence from upstream found (checked after all seeds, so that one does not
    /// hide the other invariants).
    divergence: Option<String>,
}
