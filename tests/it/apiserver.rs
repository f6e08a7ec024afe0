//! Tests: apiserver. The fake API server against the Kubernetes rules of
//! `docs/08-fidelity.md`: object metadata (§1), DELETE propagation (§2), namespaces (§4),
//! watches (§5) and the API-server table tests of §6, plus manifests, label selectors, limits and
//! determinism. Every test runs over 200 seeds; where order matters, several tasks issue verbs
//! with yields between them so that schedules vary.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::{
    ApiError, ApiServer, DeleteOptions, Deleted, EventType, FINALIZER_FOREGROUND,
    FINALIZER_KUBERNETES, FINALIZER_ORPHAN, KindInfo, Object, OwnerReference, Propagation, Reason,
    Registry, Selector, ServerConfig, Time, WatchEvent, WatchStart, parse_manifests,
};
use serde_json::{Value, json};
use sim_core::{FailureKind, Outcome, Simulation, sleep, spawn, yield_now};

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

// ---------------------------------------------------------------------------------------------
// §2 DELETE propagation

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

/// What the DELETE must leave behind.
#[derive(Clone, Copy, Debug)]
enum After {
    Removed,
    /// Kept with deletionTimestamp and exactly these finalizers, in this order.
    Kept(&'static [&'static str]),
}

#[derive(Clone, Copy, Debug)]
struct Row {
    api_version: &'static str,
    kind: &'static str,
    existing: &'static [&'static str],
    request: Request,
    after: After,
}

const fn row(
    (api_version, kind): (&'static str, &'static str),
    existing: &'static [&'static str],
    request: Request,
    after: After,
) -> Row {
    Row { api_version, kind, existing, request, after }
}

const CONFIGMAP: (&str, &str) = ("v1", "ConfigMap");
const RC: (&str, &str) = ("v1", "ReplicationController");
const JOB: (&str, &str) = ("batch/v1", "Job");

/// Runs every row as its own task (create, yield, delete, yield, check) on one server.
fn check_rows(rows: &'static [Row]) {
    run_seeds(|| {
        let server = server();
        for (index, row) in rows.iter().copied().enumerate() {
            let server = server.clone();
            spawn(format!("row-{index}"), async move {
                let what = format!(
                    "row {index}: {} with finalizers {:?}, DELETE {:?}",
                    row.kind, row.existing, row.request
                );
                let name = format!("row-{index}");
                let object = Object::new(row.api_version, row.kind, NS, &name);
                let created = server.create(with_finalizers(object, row.existing)).expect("create");
                yield_now().await;
                let result = delete(&server, &created, &row.request.options());
                yield_now().await;
                match (row.after, result) {
                    (After::Removed, Ok(Deleted::Removed(last))) => {
                        assert!(last.resource_version() > created.resource_version(), "{what}");
                        let gone = failure(get(&server, &created));
                        assert_eq!(gone.reason, Reason::NotFound, "{what}");
                    }
                    (After::Kept(finalizers), Ok(Deleted::Pending(kept))) => {
                        assert_eq!(kept.metadata.finalizers, finalizers, "{what}");
                        assert!(kept.metadata.deletion_timestamp.is_some(), "{what}");
                        assert_eq!(kept.metadata.deletion_grace_period_seconds, Some(0), "{what}");
                        assert!(kept.resource_version() > created.resource_version(), "{what}");
                        assert_eq!(get(&server, &created).expect("kept"), kept, "{what}");
                    }
                    (after, result) => panic!("{what}: expected {after:?}, got {result:?}"),
                }
            });
        }
    });
}

/// §2 table: existing GC finalizer (none / orphan / foregroundDeletion) × requested policy.
#[test]
fn delete_propagation_follows_the_spec_table_row_by_row() {
    use After::{Kept, Removed};
    use Propagation::{Background, Foreground, Orphan};
    use Request::{Nothing, Policy};
    static ROWS: [Row; 12] = [
        row(CONFIGMAP, &[], Policy(Foreground), Kept(&[FG])),
        row(CONFIGMAP, &[], Policy(Background), Removed),
        row(CONFIGMAP, &[], Policy(Orphan), Kept(&[ORPHAN])),
        row(CONFIGMAP, &[], Nothing, Removed),
        row(CONFIGMAP, &[ORPHAN], Policy(Foreground), Kept(&[FG])),
        row(CONFIGMAP, &[ORPHAN], Policy(Background), Removed),
        row(CONFIGMAP, &[ORPHAN], Policy(Orphan), Kept(&[ORPHAN])),
        row(CONFIGMAP, &[ORPHAN], Nothing, Kept(&[ORPHAN])),
        row(CONFIGMAP, &[FG], Policy(Foreground), Kept(&[FG])),
        row(CONFIGMAP, &[FG], Policy(Background), Removed),
        row(CONFIGMAP, &[FG], Policy(Orphan), Kept(&[ORPHAN])),
        row(CONFIGMAP, &[FG], Nothing, Kept(&[FG])),
    ];
    check_rows(&ROWS);
}

/// §2 "none given" cell: kinds whose default is Orphan (v1 RC, batch/v1 Job, beta groups).
#[test]
fn delete_without_options_orphans_when_the_kind_defaults_to_orphan() {
    use After::{Kept, Removed};
    use Propagation::{Background, Foreground};
    use Request::{Nothing, Policy};
    static ROWS: [Row; 9] = [
        row(RC, &[], Nothing, Kept(&[ORPHAN])),
        row(JOB, &[], Nothing, Kept(&[ORPHAN])),
        row(("extensions/v1beta1", "ReplicaSet"), &[], Nothing, Kept(&[ORPHAN])),
        row(("apps/v1", "Deployment"), &[], Nothing, Removed),
        row(JOB, &[], Policy(Background), Removed),
        row(JOB, &[], Policy(Foreground), Kept(&[FG])),
        row(JOB, &[FG], Nothing, Kept(&[FG])),
        row(JOB, &[ORPHAN], Nothing, Kept(&[ORPHAN])),
        row(RC, &[FG], Nothing, Kept(&[FG])),
    ];
    check_rows(&ROWS);
}

/// §2 step 2: `orphanDependents` has precedence over finalizers and the kind's default.
#[test]
fn orphan_dependents_option_takes_precedence_over_finalizers_and_kind_default() {
    use After::{Kept, Removed};
    use Request::OrphanDependents;
    static ROWS: [Row; 8] = [
        row(CONFIGMAP, &[], OrphanDependents(true), Kept(&[ORPHAN])),
        row(CONFIGMAP, &[], OrphanDependents(false), Removed),
        row(CONFIGMAP, &[FG], OrphanDependents(true), Kept(&[ORPHAN])),
        row(CONFIGMAP, &[FG], OrphanDependents(false), Removed),
        row(CONFIGMAP, &[ORPHAN], OrphanDependents(false), Removed),
        row(CONFIGMAP, &[ORPHAN], OrphanDependents(true), Kept(&[ORPHAN])),
        row(JOB, &[], OrphanDependents(false), Removed),
        row(RC, &[], OrphanDependents(true), Kept(&[ORPHAN])),
    ];
    check_rows(&ROWS);
}

/// §2 step 3: user finalizers stay first, GC finalizers are appended after them.
#[test]
fn user_finalizers_stay_first_and_gc_finalizers_are_appended_after_them() {
    use After::Kept;
    use Propagation::{Background, Foreground, Orphan};
    use Request::{Nothing, OrphanDependents, Policy};
    static ROWS: [Row; 7] = [
        row(CONFIGMAP, &[KEEP], Policy(Foreground), Kept(&[KEEP, FG])),
        row(CONFIGMAP, &[KEEP], Policy(Orphan), Kept(&[KEEP, ORPHAN])),
        row(CONFIGMAP, &[KEEP], Policy(Background), Kept(&[KEEP])),
        row(CONFIGMAP, &[KEEP], Nothing, Kept(&[KEEP])),
        row(CONFIGMAP, &[ORPHAN, KEEP], Policy(Foreground), Kept(&[KEEP, FG])),
        row(CONFIGMAP, &[FG, KEEP, "example.com/two"], OrphanDependents(true), {
            Kept(&[KEEP, "example.com/two", ORPHAN])
        }),
        // The finalizer set does not change: the stored order is kept as it is.
        row(CONFIGMAP, &[ORPHAN, KEEP], Nothing, Kept(&[ORPHAN, KEEP])),
    ];
    check_rows(&ROWS);
}

/// §2 / `ValidateDeleteOptions`: orphanDependents together with propagationPolicy is 422.
#[test]
fn orphan_dependents_with_a_propagation_policy_is_422() {
    run_seeds(|| {
        let server = server();
        let created = server.create(cm(NS, "a")).expect("create");
        let options = DeleteOptions {
            propagation_policy: Some(Propagation::Foreground),
            orphan_dependents: Some(true),
            ..DeleteOptions::default()
        };
        let error = failure(delete(&server, &created, &options));
        assert_error(
            &error,
            422,
            Reason::Invalid,
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Invalid value: \
             \"Foreground\": orphanDependents and deletionPropagation cannot be both set",
        );
        assert_eq!(get(&server, &created).expect("untouched"), created);
    });
}

/// §1 exception: a second DELETE re-runs propagation (adds/removes foregroundDeletion and
/// orphan) but never moves deletionTimestamp nor bumps generation again.
#[test]
fn second_delete_switches_gc_finalizers_but_never_moves_the_deletion_timestamp() {
    run_seeds(|| {
        let server = server();
        for name in ["a", "b"] {
            let server = server.clone();
            spawn(format!("deleter-{name}"), async move {
                let created = server.create(widget(NS, name).with_finalizer(KEEP)).expect("create");
                yield_now().await;
                let first = pending(delete(&server, &created, &DeleteOptions::default()));
                assert_eq!(first.metadata.finalizers, [KEEP]);
                assert_eq!(first.metadata.generation, 2);
                let stamp = first.metadata.deletion_timestamp.expect("deleting");
                let mut previous = first.resource_version();
                let steps: [(Request, &[&str]); 5] = [
                    (Request::Policy(Propagation::Foreground), &[KEEP, FG]),
                    (Request::Policy(Propagation::Orphan), &[KEEP, ORPHAN]),
                    (Request::OrphanDependents(false), &[KEEP]),
                    (Request::OrphanDependents(true), &[KEEP, ORPHAN]),
                    (Request::Policy(Propagation::Background), &[KEEP]),
                ];
                for (request, finalizers) in steps {
                    sleep(Duration::from_secs(3)).await;
                    let again = pending(delete(&server, &created, &request.options()));
                    assert_eq!(again.metadata.finalizers, finalizers, "{request:?}");
                    assert_eq!(again.metadata.deletion_timestamp, Some(stamp), "{request:?}");
                    assert_eq!(again.metadata.deletion_grace_period_seconds, Some(0));
                    assert_eq!(again.metadata.generation, 2, "{request:?}");
                    assert!(again.resource_version() > previous, "{request:?}");
                    previous = again.resource_version();
                }
                // A DELETE that changes nothing writes nothing.
                let same = pending(delete(&server, &created, &DeleteOptions::default()));
                assert_eq!(same.resource_version(), previous);
            });
        }
        // An object held only by a GC finalizer is removed by a second DELETE that drops it.
        let server = server.clone();
        spawn("gc-only", async move {
            let created = server.create(cm(NS, "c")).expect("create");
            let orphaning =
                pending(delete(&server, &created, &Request::Policy(Propagation::Orphan).options()));
            assert_eq!(orphaning.metadata.finalizers, [ORPHAN]);
            yield_now().await;
            removed(delete(&server, &created, &Request::Policy(Propagation::Background).options()));
            assert!(failure(get(&server, &created)).is_not_found());
        });
    });
}

// ---------------------------------------------------------------------------------------------
// §1 Finalizers

/// §1 / §6: DELETE with a user finalizer marks (timestamp, grace 0, generation+1, new RV); an
/// update keeping it keeps the object; the update dropping it removes it with a DELETED event.
#[test]
fn delete_with_a_user_finalizer_marks_and_dropping_it_removes_with_a_deleted_event() {
    run_seeds(|| {
        let server = server();
        let created = server.create(widget(NS, "w").with_finalizer(KEEP)).expect("create");
        assert_eq!(created.metadata.generation, 1);
        let start = WatchStart::From(created.resource_version());
        let watch = server.watch(WIDGETS, "Widget", Some(NS), start, false).expect("watch");
        let expected: Rc<RefCell<Vec<(EventType, u64)>>> = Rc::default();
        let uid = created.metadata.uid.clone();

        let (writer, log) = (server.clone(), expected.clone());
        spawn("writer", async move {
            yield_now().await;
            let marked = pending(delete(&writer, &created, &DeleteOptions::default()));
            assert!(marked.metadata.deletion_timestamp.is_some());
            assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(0));
            assert_eq!(marked.metadata.generation, 2);
            assert_eq!(marked.metadata.finalizers, [KEEP]);
            assert!(marked.resource_version() > created.resource_version());
            assert_eq!(get(&writer, &created).expect("still readable"), marked);
            log.borrow_mut().push((EventType::Modified, marked.resource_version()));
            yield_now().await;

            let kept = writer
                .update(marked.clone().with_label("phase", "closing"))
                .expect("an update keeping the finalizer");
            assert_eq!(kept.metadata.finalizers, [KEEP]);
            assert_eq!(kept.metadata.deletion_timestamp, marked.metadata.deletion_timestamp);
            assert_eq!(kept.metadata.generation, 2);
            assert!(kept.resource_version() > marked.resource_version());
            assert_eq!(get(&writer, &created).expect("still readable"), kept);
            log.borrow_mut().push((EventType::Modified, kept.resource_version()));
            yield_now().await;

            writer.update(with_finalizers(kept, &[])).expect("an update dropping the finalizer");
            let gone = failure(get(&writer, &created));
            assert_error(&gone, 404, Reason::NotFound, "widgets.example.com \"w\" not found");
            log.borrow_mut().push((EventType::Deleted, writer.resource_version()));
        });

        let reader = server.clone();
        spawn("reader", async move {
            let mut stamp = None;
            for _ in 0..6 {
                match reader.get(WIDGETS, "Widget", NS, "w") {
                    Ok(seen) => {
                        assert!(matches!(seen.metadata.generation, 1 | 2), "{seen:?}");
                        if let Some(at) = seen.metadata.deletion_timestamp {
                            assert_eq!(*stamp.get_or_insert(at), at, "deletionTimestamp moved");
                        }
                    }
                    Err(error) => assert!(error.is_not_found(), "{error}"),
                }
                yield_now().await;
            }
        });

        spawn("watcher", async move {
            let mut seen = Vec::new();
            while let Some(event) = watch.next().await {
                let done = event.event_type == EventType::Deleted;
                seen.push(event);
                if done {
                    break;
                }
            }
            let got: Vec<_> = seen.iter().map(|e| (e.event_type, e.resource_version())).collect();
            assert_eq!(got, *expected.borrow());
            let last = &seen[2].object;
            assert_eq!(last.metadata.uid, uid);
            assert!(last.metadata.deletion_timestamp.is_some());
        });
    });
}

/// §1: adding a finalizer to an object being deleted is 422; removing one stays allowed.
#[test]
fn no_new_finalizers_can_be_added_while_deleting() {
    run_seeds(|| {
        let server = server();
        let created =
            server.create(cm(NS, "a").with_finalizer(KEEP).with_finalizer("y")).expect("create");
        let marked = pending(delete(&server, &created, &DeleteOptions::default()));
        for name in ["adder", "remover"] {
            let (server, marked) = (server.clone(), marked.clone());
            spawn(name, async move {
                yield_now().await;
                if name == "adder" {
                    let current = get(&server, &marked).expect("still there");
                    let error = failure(server.update(current.with_finalizer("x")));
                    assert_error(
                        &error,
                        422,
                        Reason::Invalid,
                        "ConfigMap \"a\" is invalid: metadata.finalizers: Forbidden: no new \
                         finalizers can be added if the object is being deleted, found new \
                         finalizers []string{\"x\"}",
                    );
                } else {
                    let (fewer, _) = update_with_retry(&server, &marked, |object| {
                        object.metadata.finalizers.retain(|f| f != "y");
                        object.metadata.labels.insert("spec".into(), "changed".into());
                    })
                    .await;
                    assert_eq!(fewer.metadata.finalizers, [KEEP]);
                }
            });
        }
    });
}

/// §1 / `ValidateNoNewFinalizers`: upstream lists the new finalizers as a sorted `%#v` slice.
#[test]
fn new_finalizers_on_a_deleting_object_are_reported_sorted() {
    run_seeds(|| {
        let server = server();
        let created = server.create(cm(NS, "a").with_finalizer(KEEP)).expect("create");
        let marked = pending(delete(&server, &created, &DeleteOptions::default()));
        let error = failure(server.update(marked.with_finalizer("zz").with_finalizer("aa")));
        assert_error(
            &error,
            422,
            Reason::Invalid,
            "ConfigMap \"a\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be \
             added if the object is being deleted, found new finalizers []string{\"aa\", \"zz\"}",
        );
    });
}

/// §1: an update can never remove or change deletionTimestamp / grace (silently restored).
#[test]
fn update_cannot_clear_or_move_the_deletion_timestamp() {
    run_seeds(|| {
        let server = server();
        spawn("updater", async move {
            let created = server.create(cm(NS, "a").with_finalizer(KEEP)).expect("create");
            let marked = pending(delete(&server, &created, &DeleteOptions::default()));
            let stamp = marked.metadata.deletion_timestamp;
            assert_eq!(stamp, Some(Time::now()));
            sleep(Duration::from_secs(2)).await;

            let mut cleared = marked.clone().with_label("try", "clear");
            cleared.metadata.deletion_timestamp = None;
            cleared.metadata.deletion_grace_period_seconds = None;
            let stored = server.update(cleared).expect("update");
            assert_eq!(stored.metadata.deletion_timestamp, stamp);
            assert_eq!(stored.metadata.deletion_grace_period_seconds, Some(0));
            assert_eq!(stored.metadata.labels["try"], "clear");
            yield_now().await;

            let mut moved = stored.with_label("try", "move");
            moved.metadata.deletion_timestamp = Some(Time::now());
            let stored = server.update(moved).expect("update");
            assert_eq!(stored.metadata.deletion_timestamp, stamp);
            assert_eq!(get(&server, &created).expect("still there"), stored);
        });
    });
}

/// §1 / `ValidateObjectMetaUpdate`: deletionTimestamp is immutable, so setting it on a live
/// object by update is 422 `field is immutable` (BeforeUpdate restores it only when deleting).
#[test]
fn update_cannot_set_a_deletion_timestamp_on_a_live_object() {
    run_seeds(|| {
        let server = server();
        let created = server.create(cm(NS, "a")).expect("create");
        let mut forged = created.clone();
        forged.metadata.deletion_timestamp = Some(Time::now());
        let error = failure(server.update(forged));
        assert_eq!((error.code, error.reason), (422, Reason::Invalid), "{error}");
        assert!(
            error.message.starts_with(
                "ConfigMap \"a\" is invalid: metadata.deletionTimestamp: Invalid value: "
            ),
            "{error}"
        );
        assert!(error.message.ends_with(": field is immutable"), "{error}");
        assert_eq!(get(&server, &created).expect("untouched"), created);
    });
}

/// §1 / §5: a DELETED event carries the last *stored* state (etcd's previous value) stamped
/// with the deletion's resourceVersion, not the content of the write that removed it.
#[test]
fn deleted_events_carry_the_last_stored_state() {
    run_seeds(|| {
        let server = server();
        let watch = server.watch("v1", "ConfigMap", Some(NS), WatchStart::Now, false).expect("w");
        spawn("writer", async move {
            // The update that drops the last finalizer also changes a label.
            let a = server.create(cm(NS, "a").with_finalizer(KEEP)).expect("create");
            let marked = pending(delete(&server, &a, &DeleteOptions::default()));
            yield_now().await;
            server
                .update(with_finalizers(marked.clone(), &[]).with_label("late", "change"))
                .unwrap();
            let a_deleted_at = server.resource_version();
            // A Background DELETE of an object carrying `orphan` removes it without a write.
            let b = server.create(cm(NS, "b").with_finalizer(ORPHAN)).expect("create");
            yield_now().await;
            removed(delete(&server, &b, &Request::Policy(Propagation::Background).options()));
            let b_deleted_at = server.resource_version();

            let deleted: Vec<_> =
                drain(&watch).into_iter().filter(|e| e.event_type == EventType::Deleted).collect();
            assert_eq!(deleted.len(), 2);
            let last_a = &deleted[0].object;
            assert_eq!(last_a.resource_version(), a_deleted_at);
            assert_eq!(last_a.metadata.finalizers, [KEEP]);
            assert!(last_a.metadata.labels.is_empty(), "{last_a:?}");
            assert_eq!(last_a.metadata.deletion_timestamp, marked.metadata.deletion_timestamp);
            let last_b = &deleted[1].object;
            assert_eq!(last_b.resource_version(), b_deleted_at);
            assert_eq!(last_b.metadata.finalizers, [ORPHAN]);
        });
    });
}

// ---------------------------------------------------------------------------------------------
// §1 resourceVersion and optimistic concurrency

/// §1: an update with a stale resourceVersion is 409 with the upstream text.
#[test]
fn update_with_a_stale_resource_version_is_409() {
    run_seeds(|| {
        let server = server();
        let created = server.create(cm(NS, "a")).expect("create");
        let writers: Vec<_> = [("first", "1"), ("second", "2")]
            .into_iter()
            .map(|(task, value)| {
                let (server, created) = (server.clone(), created.clone());
                spawn(task, async move {
                    yield_now().await;
                    match server.update(created.with_label("by", value)) {
                        Ok(updated) => assert_eq!(updated.metadata.labels["by"], value),
                        Err(error) => assert_error(
                            &error,
                            409,
                            Reason::Conflict,
                            &format!(
                                "Operation cannot be fulfilled on configmaps \"a\": {MODIFIED}"
                            ),
                        ),
                    }
                })
            })
            .collect();
        let (server, created) = (server.clone(), created.clone());
        spawn("checker", async move {
            for writer in writers {
                writer.await;
            }
            // Exactly one of the two writes with the same RV can win.
            let stored = get(&server, &created).expect("exists");
            assert_eq!(stored.resource_version(), created.resource_version() + 1);
            let error = failure(server.update(created.with_label("late", "x")));
            assert!(error.is_conflict(), "{error}");
        });
    });
}

/// §1: concurrent read-modify-write loops with retry-on-409 lose no update.
#[test]
fn concurrent_read_modify_write_with_retries_loses_no_update() {
    let conflicts = Rc::new(Cell::new(0));
    let total = conflicts.clone();
    run_seeds(move || {
        let server = server();
        let counter = server.create(widget(NS, "counter")).expect("create");
        let writers: Vec<_> = (0..4)
            .map(|i| {
                let (server, counter, conflicts) =
                    (server.clone(), counter.clone(), conflicts.clone());
                spawn(format!("writer-{i}"), async move {
                    let (_, met) = update_with_retry(&server, &counter, |object| {
                        let size = object.spec["size"].as_u64().expect("a number");
                        object.spec["size"] = json!(size + 1);
                    })
                    .await;
                    conflicts.set(conflicts.get() + met);
                })
            })
            .collect();
        spawn("checker", async move {
            for writer in writers {
                writer.await;
            }
            let stored = get(&server, &counter).expect("exists");
            assert_eq!(stored.spec["size"], 5);
            assert_eq!(stored.metadata.generation, 5);
        });
    });
    assert!(total.get() > 0, "no seed interleaved two read-modify-write loops");
}

/// §1: most built-in kinds accept an update without resourceVersion (unconditional update).
#[test]
fn builtin_update_without_resource_version_is_unconditional() {
    run_seeds(|| {
        let server = server();
        let created = server.create(cm(NS, "a")).expect("create");
        let writers: Vec<_> = ["x", "y"]
            .into_iter()
            .map(|value| {
                let (server, created) = (server.clone(), created.clone());
                spawn(format!("writer-{value}"), async move {
                    yield_now().await;
                    let mut blind = created.with_label("by", value);
                    blind.metadata.resource_version.clear();
                    server.update(blind).expect("an unconditional update")
                })
            })
            .collect();
        spawn("checker", async move {
            let mut results = Vec::new();
            for writer in writers {
                results.push(writer.await);
            }
            results.sort_by_key(Object::resource_version);
            let last = results.last().expect("two writes");
            assert!(results[0].resource_version() > created.resource_version());
            assert_eq!(get(&server, &created).expect("exists"), *last);
        });
    });
}

/// §1: a custom resource update without resourceVersion is 422.
#[test]
fn custom_resource_update_without_resource_version_is_422() {
    run_seeds(|| {
        let server = server();
        let created = server.create(widget(NS, "w")).expect("create");
        let mut blind = created.clone().with_spec(json!({ "size": 2 }));
        blind.metadata.resource_version.clear();
        let error = failure(server.update(blind));
        assert_error(
            &error,
            422,
            Reason::Invalid,
            "Widget.example.com \"w\" is invalid: metadata.resourceVersion: Invalid value: 0x0: \
             must be specified for an update",
        );
        assert_eq!(get(&server, &created).expect("untouched"), created);
    });
}

/// §1: a write whose result equals the stored object gets no new RV and no watch event.
#[test]
fn no_op_update_gets_no_new_resource_version_and_no_event() {
    run_seeds(|| {
        let server = server();
        let created =
            server.create(cm(NS, "a").with_field("data", json!({ "k": "v" }))).expect("create");
        let rv = server.resource_version();
        let watch = server.watch("v1", "ConfigMap", None, WatchStart::From(rv), false).unwrap();
        let history = server.history().len();
        spawn("no-ops", async move {
            let same = server.update(created.clone()).expect("update");
            assert_eq!(same, created);
            yield_now().await;
            let mut blind = created.clone();
            blind.metadata.resource_version.clear();
            assert_eq!(server.update(blind).expect("update"), created);
            yield_now().await;
            let patched =
                server.patch("v1", "ConfigMap", NS, "a", &json!({ "data": { "k": "v" } })).unwrap();
            assert_eq!(patched, created);
            yield_now().await;
            // A status write on a kind with a status subresource is ignored by `update`.
            let mut status_only = created.clone();
            status_only.status = json!({ "ignored": true });
            assert_eq!(server.update(status_only).expect("update"), created);

            assert_eq!(server.resource_version(), rv);
            assert_eq!(server.history().len(), history);
            assert!(watch.try_next().is_none());
        });
    });
}

/// §1: PATCH applies to the current state without RV; it conflicts only if it carries a stale RV.
#[test]
fn merge_patch_applies_to_current_state_and_conflicts_only_on_a_stale_rv() {
    run_seeds(|| {
        let server = server();
        let created =
            server.create(cm(NS, "a").with_field("data", json!({ "base": "0" }))).expect("create");
        let patchers: Vec<_> = (0..3)
            .map(|i| {
                let server = server.clone();
                spawn(format!("patcher-{i}"), async move {
                    yield_now().await;
                    let patch = json!({ "data": { format!("k{i}"): format!("{i}") } });
                    server.patch("v1", "ConfigMap", NS, "a", &patch).expect("patch without RV")
                })
            })
            .collect();
        spawn("checker", async move {
            for patcher in patchers {
                patcher.await;
            }
            let stored = get(&server, &created).expect("exists");
            assert_eq!(
                stored.other["data"],
                json!({ "base": "0", "k0": "0", "k1": "1", "k2": "2" })
            );

            let stale = json!({
                "metadata": { "resourceVersion": created.metadata.resource_version },
                "data": { "stale": "yes" },
            });
            let error = failure(server.patch("v1", "ConfigMap", NS, "a", &stale));
            assert_error(
                &error,
                409,
                Reason::Conflict,
                &format!("Operation cannot be fulfilled on configmaps \"a\": {MODIFIED}"),
            );

            let current = json!({
                "metadata": { "resourceVersion": stored.metadata.resource_version },
                "data": { "base": null },
            });
            let patched = server.patch("v1", "ConfigMap", NS, "a", &current).expect("patch");
            assert_eq!(patched.other["data"], json!({ "k0": "0", "k1": "1", "k2": "2" }));
            assert!(patched.resource_version() > stored.resource_version());

            // A custom resource needs no RV in a patch either.
            server.create(widget(NS, "w")).expect("create");
            let spec = json!({ "spec": { "size": 3 } });
            let widget = server.patch(WIDGETS, "Widget", NS, "w", &spec).expect("patch");
            assert_eq!((widget.spec["size"].as_u64(), widget.metadata.generation), (Some(3), 2));
        });
    });
}

/// §1 / `defaultUpdatedObjectInfo.Preconditions`: a uid in an update body is a precondition.
#[test]
fn update_with_a_different_uid_is_409_precondition_failed() {
    run_seeds(|| {
        let server = server();
        for object in [cm(NS, "a"), widget(NS, "w")] {
            let created = server.create(object).expect("create");
            let mut other = created.clone().with_label("x", "y");
            other.metadata.uid = "bogus".into();
            let error = failure(server.update(other));
            let (resource, key) = match created.kind.as_str() {
                "ConfigMap" => ("configmaps", "/registry/configmaps/default/a"),
                _ => ("widgets.example.com", "/registry/example.com/widgets/default/w"),
            };
            assert_error(
                &error,
                409,
                Reason::Conflict,
                &format!(
                    "Operation cannot be fulfilled on {resource} \"{}\": StorageError: invalid \
                     object, Code: 4, Key: {key}, ResourceVersion: 0, AdditionalErrorMsg: \
                     Precondition failed: UID in precondition: bogus, UID in object meta: {}",
                    created.metadata.name, created.metadata.uid
                ),
            );
            assert_eq!(get(&server, &created).expect("untouched"), created);
        }
    });
}

/// §1 / `patcher.patchResource`: PATCH has no uid precondition (`DefaultUpdatedObjectInfo(nil,
/// …)`); a patched uid fails `ValidateObjectMetaUpdate`: 422 `field is immutable`.
#[test]
fn patch_with_a_different_uid_is_422_field_is_immutable() {
    run_seeds(|| {
        let server = server();
        let created = server.create(cm(NS, "a")).expect("create");
        let patch = json!({ "metadata": { "uid": "bogus" }, "data": { "k": "v" } });
        let error = failure(server.patch("v1", "ConfigMap", NS, "a", &patch));
        assert_error(
            &error,
            422,
            Reason::Invalid,
            "ConfigMap \"a\" is invalid: metadata.uid: Invalid value: \"bogus\": field is immutable",
        );
        assert_eq!(get(&server, &created).expect("untouched"), created);
    });
}

/// §1: DELETE preconditions (uid, resourceVersion) that do not match are 409.
#[test]
fn delete_preconditions_mismatch_is_409() {
    run_seeds(|| {
        let server = server();
        let created = server.create(cm(NS, "a")).expect("create");
        let uid = created.metadata.uid.clone();
        let rv = created.metadata.resource_version.clone();

        let error = failure(delete(&server, &created, &DeleteOptions::default().with_uid("bogus")));
        assert_eq!((error.code, error.reason), (409, Reason::Conflict));
        let why = format!(
            ": the UID in the precondition (bogus) does not match the UID in record ({uid}). The \
             object might have been deleted and then recreated"
        );
        assert!(error.message.ends_with(&why), "{error}");

        let error = failure(delete(
            &server,
            &created,
            &DeleteOptions::default().with_resource_version("1"),
        ));
        assert_eq!((error.code, error.reason), (409, Reason::Conflict));
        let why = format!(
            ": the ResourceVersion in the precondition (1) does not match the ResourceVersion in \
             record ({rv}). The object might have been modified"
        );
        assert!(error.message.ends_with(&why), "{error}");
        assert_eq!(get(&server, &created).expect("untouched"), created);

        // The GC's pattern: a uid precondition read before a concurrent delete-and-recreate.
        let (gc, recreator) = (server.clone(), server.clone());
        spawn("gc", async move {
            let seen = gc.get("v1", "ConfigMap", NS, "a").expect("exists").metadata.uid;
            yield_now().await;
            let options = DeleteOptions::propagation(Propagation::Background).with_uid(&seen);
            match gc.delete("v1", "ConfigMap", NS, "a", &options) {
                Ok(deleted) => assert_eq!(deleted.object().metadata.uid, seen),
                Err(error) if error.is_conflict() => {
                    assert!(error.message.contains(&format!("precondition ({seen})")), "{error}");
                    let current = gc.get("v1", "ConfigMap", NS, "a").expect("recreated");
                    assert_ne!(current.metadata.uid, seen);
                }
                Err(error) => assert!(error.is_not_found(), "{error}"),
            }
        });
        spawn("recreator", async move {
            yield_now().await;
            let _ = recreator.delete("v1", "ConfigMap", NS, "a", &DeleteOptions::default());
            recreator.create(cm(NS, "a")).expect("recreate");
        });
    });
}

/// §1 / `rest.BeforeDelete`: precondition conflicts name `GroupResource{Group, Resource:
/// Kind}`, i.e. `ConfigMap` / `Widget.example.com`, not the plural resource.
#[test]
fn delete_precondition_conflicts_name_the_kind_like_upstream() {
    run_seeds(|| {
        let server = server();
        let a = server.create(cm(NS, "a")).expect("create");
        let w = server.create(widget(NS, "w")).expect("create");
        let error = failure(delete(&server, &a, &DeleteOptions::default().with_uid("bogus")));
        assert_error(
            &error,
            409,
            Reason::Conflict,
            &format!(
                "Operation cannot be fulfilled on ConfigMap \"a\": the UID in the precondition \
                 (bogus) does not match the UID in record ({}). The object might have been \
                 deleted and then recreated",
                a.metadata.uid
            ),
        );
        let error =
            failure(delete(&server, &w, &DeleteOptions::default().with_resource_version("1")));
        assert_error(
            &error,
            409,
            Reason::Conflict,
            &format!(
                "Operation cannot be fulfilled on Widget.example.com \"w\": the ResourceVersion \
                 in the precondition (1) does not match the ResourceVersion in record ({}). The \
                 object might have been modified",
                w.metadata.resource_version
            ),
        );
    });
}

// ---------------------------------------------------------------------------------------------
// §1 Generation and the status subresource

/// §1: generation starts at 1, follows spec changes only, never decreases, and is bumped when
/// deletionTimestamp is first set.
#[test]
fn generation_starts_at_1_and_follows_spec_changes_only() {
    run_seeds(|| {
        let server = server();
        let created = server.create(widget(NS, "w").with_finalizer(KEEP)).expect("create");
        assert_eq!(created.metadata.generation, 1);
        let (labeler, specs, reader) = (server.clone(), server.clone(), server.clone());
        let target = created.clone();
        let labels = spawn("labeler", async move {
            for i in 0..3 {
                update_with_retry(&labeler, &target, |o| {
                    o.metadata.labels.insert("round".into(), format!("{i}"));
                    o.metadata.annotations.insert("note".into(), format!("{i}"));
                })
                .await;
            }
        });
        let target = created.clone();
        let spec_changes = spawn("spec-writer", async move {
            for size in [2, 3, 1] {
                let (updated, _) = update_with_retry(&specs, &target, |o| {
                    o.spec = json!({ "size": size });
                    o.metadata.generation = 1; // a client cannot set generation
                })
                .await;
                assert_eq!(updated.spec["size"], size);
            }
        });
        spawn("reader", async move {
            let mut last = 0;
            while let Ok(seen) = reader.get(WIDGETS, "Widget", NS, "w") {
                assert!(seen.metadata.generation >= last, "generation decreased");
                last = seen.metadata.generation;
                if seen.is_deleting() {
                    break;
                }
                yield_now().await;
            }
        });
        let server = server.clone();
        spawn("checker", async move {
            labels.await;
            spec_changes.await;
            let stored = get(&server, &created).expect("exists");
            assert_eq!(stored.metadata.generation, 4, "three spec changes");
            let status = server.update_status(stored.clone().with_spec(json!({ "size": 9 })));
            let mut with_status = stored.clone();
            with_status.status = json!({ "ready": true });
            let after_status = server.update_status(with_status).expect("status");
            assert!(status.is_ok());
            assert_eq!(after_status.metadata.generation, 4, "status changes do not bump");

            let marked = pending(delete(&server, &created, &DeleteOptions::default()));
            assert_eq!(marked.metadata.generation, 5, "deletionTimestamp first set");
            let again =
                pending(delete(&server, &created, &Request::Policy(Propagation::Orphan).options()));
            assert_eq!(again.metadata.generation, 5, "only the first DELETE bumps");
            let changed =
                server.update(again.with_spec(json!({ "size": 7 }))).expect("spec while deleting");
            assert_eq!(changed.metadata.generation, 6);
        });
    });
}

/// §1: with a status subresource, `update` ignores status and `update_status` changes only status.
#[test]
fn status_subresource_separates_update_and_update_status() {
    run_seeds(|| {
        let server = server();
        let created = server.create(widget(NS, "w")).expect("create");
        spawn("writer", async move {
            let mut main = created.clone().with_label("app", "web");
            main.status = json!({ "ready": true });
            let stored = server.update(main).expect("update");
            assert_eq!(stored.metadata.labels["app"], "web");
            assert_eq!(stored.status, Value::Null, "update ignores status");
            yield_now().await;

            let mut status =
                stored.clone().with_label("app", "other").with_spec(json!({ "size": 5 }));
            status.status = json!({ "ready": true });
            let after = server.update_status(status).expect("update_status");
            assert_eq!(after.status, json!({ "ready": true }));
            assert_eq!(after.spec, json!({ "size": 1 }), "update_status ignores spec");
            assert_eq!(after.metadata.labels["app"], "web", "update_status ignores labels");
            assert_eq!(after.metadata.generation, 1);
            assert!(after.resource_version() > stored.resource_version());
            yield_now().await;

            let patch = json!({ "status": { "ready": false }, "spec": { "size": 8 } });
            let patched = server.patch_status(WIDGETS, "Widget", NS, "w", &patch).expect("patch");
            assert_eq!(patched.status, json!({ "ready": false }));
            assert_eq!(patched.spec, json!({ "size": 1 }));

            let stale = server.update_status(after);
            assert!(failure(stale).is_conflict());
        });
    });
}

/// §1: a status subresource means create cannot set status either (`PrepareForCreate`).
#[test]
fn create_ignores_status_for_kinds_with_a_status_subresource() {
    run_seeds(|| {
        let server = server();
        let mut object = widget(NS, "w");
        object.status = json!({ "ready": true });
        let created = server.create(object).expect("create");
        assert_eq!(created.status, Value::Null);
        assert_eq!(get(&server, &created).expect("exists").status, Value::Null);
    });
}

// ---------------------------------------------------------------------------------------------
// §1 ownerReferences and GC finalizer validation

/// §1: at most one controller ref, every ref has a uid, orphan+foregroundDeletion is invalid.
#[test]
fn owner_references_and_gc_finalizers_are_validated() {
    run_seeds(|| {
        let server = server();
        let o1 = server.create(cm(NS, "o1")).expect("create");
        let o2 = server.create(cm(NS, "o2")).expect("create");
        let child = cm(NS, "c");

        let two = child.clone().with_owner(OwnerReference::controller_of(&o1));
        let two = two.with_owner(OwnerReference::controller_of(&o2));
        let error = failure(server.create(two));
        assert_eq!((error.code, error.reason), (422, Reason::Invalid));
        assert!(error.message.starts_with("ConfigMap \"c\" is invalid: "), "{error}");
        assert!(
            error.message.contains("Only one reference can have Controller set to true"),
            "{error}"
        );

        let mut no_uid = OwnerReference::to(&o1, Some(true));
        no_uid.uid.clear();
        let error = failure(server.create(child.clone().with_owner(no_uid)));
        assert_eq!((error.code, error.reason), (422, Reason::Invalid));
        assert!(error.message.contains("metadata.ownerReferences.uid: Invalid value: \"\""));

        let both = with_finalizers(child.clone(), &[ORPHAN, FG]);
        let error = failure(server.create(both));
        assert_eq!((error.code, error.reason), (422, Reason::Invalid));
        assert!(
            error.message.contains("finalizer orphan and foregroundDeletion cannot be both set"),
            "{error}"
        );
        assert!(failure(get(&server, &child)).is_not_found());

        // Valid: one controller plus a plain reference; then updates hit the same rules.
        let valid = child
            .clone()
            .with_owner(OwnerReference::controller_of(&o1))
            .with_owner(OwnerReference::to(&o2, None))
            .with_finalizer(ORPHAN);
        let stored = server.create(valid).expect("valid create");
        let mut second_controller = stored.clone();
        second_controller.metadata.owner_references[1].controller = Some(true);
        assert_eq!(failure(server.update(second_controller)).reason, Reason::Invalid);
        let error = failure(server.update(stored.clone().with_finalizer(FG)));
        assert_eq!(error.reason, Reason::Invalid);
        assert_eq!(get(&server, &stored).expect("untouched"), stored);
    });
}

/// §1 / `ValidateOwnerReferences`: the error names the controllers as `Kind/name`.
#[test]
fn two_controller_refs_error_names_kind_and_name() {
    run_seeds(|| {
        let server = server();
        let o1 = server.create(cm(NS, "o1")).expect("create");
        let o2 = server.create(cm(NS, "o2")).expect("create");
        let two = cm(NS, "c")
            .with_owner(OwnerReference::controller_of(&o1))
            .with_owner(OwnerReference::controller_of(&o2));
        let error = failure(server.create(two));
        assert!(
            error.message.ends_with(
                "Only one reference can have Controller set to true. Found \"true\" in \
                 references for ConfigMap/o1 and ConfigMap/o2"
            ),
            "{error}"
        );
    });
}

/// §1 / `validateOwnerReference`: kind, name and uid errors read `must not be empty`.
#[test]
fn owner_reference_without_uid_error_matches_upstream_text() {
    run_seeds(|| {
        let server = server();
        let owner = server.create(cm(NS, "o")).expect("create");
        let mut no_uid = OwnerReference::controller_of(&owner);
        no_uid.uid.clear();
        let error = failure(server.create(cm(NS, "c").with_owner(no_uid)));
        assert_error(
            &error,
            422,
            Reason::Invalid,
            "ConfigMap \"c\" is invalid: metadata.ownerReferences.uid: Invalid value: \"\": must \
             not be empty",
        );
    });
}

/// §1 / `ValidateFinalizers`: the finalizer list is printed as a Go `%#v` slice.
#[test]
fn orphan_and_foreground_error_prints_the_finalizers_as_a_go_slice() {
    run_seeds(|| {
        let server = server();
        let error = failure(server.create(with_finalizers(cm(NS, "c"), &[ORPHAN, FG])));
        assert_error(
            &error,
            422,
            Reason::Invalid,
            "ConfigMap \"c\" is invalid: metadata.finalizers: Invalid value: []string{\"orphan\", \
             \"foregroundDeletion\"}: finalizer orphan and foregroundDeletion cannot be both set",
        );
    });
}

// ---------------------------------------------------------------------------------------------
// §4 Namespaces

/// §4: CREATE in a missing namespace is 404 `namespaces "x" not found`.
#[test]
fn create_in_a_missing_namespace_is_404() {
    run_seeds(|| {
        let server = server();
        for object in [cm("x", "c"), widget("x", "w")] {
            let error = failure(server.create(object));
            assert_error(&error, 404, Reason::NotFound, "namespaces \"x\" not found");
        }
        // Cluster-scoped kinds need no namespace.
        let node = server.create(Object::new("v1", "Node", "x", "n")).expect("create");
        assert_eq!(node.metadata.namespace, "");
    });
}

/// §4: deleting a namespace marks it Terminating with spec.finalizers kept; CREATE in it is 403,
/// UPDATE and DELETE stay allowed.
#[test]
fn namespace_delete_marks_terminating_and_refuses_new_content() {
    run_seeds(|| {
        let server = server();
        let ns = server.create(namespace("ns")).expect("create");
        assert_eq!(ns.status["phase"], "Active");
        let old = server.create(cm("ns", "old")).expect("create");
        let doomed = server.create(cm("ns", "doomed")).expect("create");
        let terminating = pending(delete(&server, &ns, &DeleteOptions::default()));
        assert!(terminating.metadata.deletion_timestamp.is_some());
        assert_eq!(terminating.status["phase"], "Terminating");
        assert_eq!(terminating.spec["finalizers"], json!([FINALIZER_KUBERNETES]));
        assert_eq!(get(&server, &ns).expect("still there"), terminating);

        let creator = server.clone();
        spawn("creator", async move {
            for name in ["c", "d"] {
                yield_now().await;
                let error = failure(creator.create(cm("ns", name)));
                assert_error(
                    &error,
                    403,
                    Reason::Forbidden,
                    &format!(
                        "configmaps \"{name}\" is forbidden: unable to create new content in \
                         namespace ns because it is being terminated"
                    ),
                );
            }
        });
        let (updater, target) = (server.clone(), old.clone());
        spawn("updater", async move {
            let (updated, _) = update_with_retry(&updater, &target, |o| {
                o.metadata.labels.insert("touched".into(), "yes".into());
            })
            .await;
            assert_eq!(updated.metadata.labels["touched"], "yes");
        });
        let deleter = server.clone();
        spawn("deleter", async move {
            yield_now().await;
            yield_now().await;
            removed(delete(&deleter, &doomed, &DeleteOptions::default()));
            // A second DELETE of the namespace changes nothing.
            let again = pending(delete(&deleter, &ns, &DeleteOptions::default()));
            assert_eq!(again, terminating);
        });
    });
}

/// §4 / NamespaceLifecycle admission: the 403 carries the cause `NamespaceTerminating`
/// (`v1.NamespaceTerminatingCause`), which controllers test with `HasStatusCause`.
#[test]
fn create_in_a_terminating_namespace_has_cause_namespace_terminating() {
    run_seeds(|| {
        let server = server();
        let ns = server.create(namespace("ns")).expect("create");
        pending(delete(&server, &ns, &DeleteOptions::default()));
        let error = failure(server.create(cm("ns", "c")));
        assert_eq!(error.reason, Reason::Forbidden);
        assert_eq!(error.cause.as_deref(), Some("NamespaceTerminating"));
    });
}

/// §4: `finalize` with empty spec.finalizers removes a terminating namespace (DELETED event).
#[test]
fn finalize_namespace_with_no_finalizers_removes_it() {
    run_seeds(|| {
        let server = server();
        let ns = server.create(namespace("ns")).expect("create");
        let rv = server.resource_version();
        let watch = server.watch("v1", "Namespace", None, WatchStart::From(rv), false).unwrap();
        let finalizer = server.clone();
        spawn("namespace-controller", async move {
            // Finalizing a live namespace only clears spec.finalizers.
            let live =
                finalizer.finalize_namespace(ns.clone().with_spec(json!({ "finalizers": [] })));
            let live = live.expect("finalize");
            assert_eq!((live.spec["finalizers"].clone(), live.is_deleting()), (json!([]), false));
            yield_now().await;
            let ns = finalizer.create(namespace("other")).expect("create");
            let terminating = pending(delete(&finalizer, &ns, &DeleteOptions::default()));
            yield_now().await;
            let mut done = terminating.clone();
            done.spec = json!({ "finalizers": [] });
            done.metadata.labels.insert("ignored".into(), "by finalize".into());
            finalizer.finalize_namespace(done).expect("finalize");
            assert!(failure(get(&finalizer, &terminating)).is_not_found());
            let deleted_at = finalizer.resource_version();

            let events: Vec<_> = drain(&watch).iter().map(summary).collect();
            assert_eq!(events.last(), Some(&(EventType::Deleted, "other".to_string(), deleted_at)));
            // The name can be used again: a fresh, active namespace.
            let again = finalizer.create(namespace("other")).expect("recreate");
            assert_ne!(again.metadata.uid, terminating.metadata.uid);
            assert_eq!(again.status["phase"], "Active");
            assert_eq!(again.spec["finalizers"], json!([FINALIZER_KUBERNETES]));
        });
    });
}

/// §4: `default`, `kube-system`, `kube-public` cannot be deleted (403).
#[test]
fn protected_namespaces_cannot_be_deleted() {
    run_seeds(|| {
        let server = server();
        for name in ["default", "kube-system", "kube-public"] {
            let server = server.clone();
            spawn(name, async move {
                yield_now().await;
                let error =
                    failure(server.delete("v1", "Namespace", "", name, &Default::default()));
                assert_error(
                    &error,
                    403,
                    Reason::Forbidden,
                    &format!(
                        "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
                    ),
                );
                let ns = server.get("v1", "Namespace", "", name).expect("still there");
                assert!(!ns.is_deleting());
            });
        }
    });
}

// ---------------------------------------------------------------------------------------------
// §5 Watches

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

/// §5: events on one watch arrive in strictly increasing RV order under concurrent writers.
#[test]
fn watch_events_arrive_in_strictly_increasing_rv_order_under_concurrent_writers() {
    run_seeds(|| {
        let server = server();
        server.create(cm(NS, "before")).expect("create");
        let start = server.resource_version();
        let from = server.watch("v1", "ConfigMap", None, WatchStart::From(start), false).unwrap();
        let writers = spawn_writers(&server, &[NS, NS, NS, NS], 3);
        let expected_count = 4 * (3 * 2 + 2);
        let consumer_server = server.clone();
        let consumer = spawn("consumer", async move {
            let mut seen = Vec::new();
            while seen.len() < expected_count {
                seen.push(summary(&from.next().await.expect("open")));
            }
            let rvs: Vec<u64> = seen.iter().map(|s| s.2).collect();
            assert_strictly_increasing(&rvs, "watch from rv");
            assert_eq!(seen, history_after(&consumer_server, "ConfigMap", start));
        });
        let late = server.clone();
        spawn("late-watcher", async move {
            yield_now().await;
            yield_now().await;
            let list = late.list("v1", "ConfigMap", None, &Selector::everything()).unwrap();
            let watch = late.watch("v1", "ConfigMap", None, WatchStart::Now, false).unwrap();
            for writer in writers {
                writer.await;
            }
            consumer.await;
            let events = drain(&watch);
            let (initial, changes) = events.split_at(list.items.len());
            let snapshot: Vec<Object> = initial.iter().map(|e| (*e.object).clone()).collect();
            assert!(initial.iter().all(|e| e.event_type == EventType::Added));
            assert_eq!(snapshot, list.items, "the initial ADDED events are the list, by key");
            let rvs: Vec<u64> = changes.iter().map(WatchEvent::resource_version).collect();
            assert_strictly_increasing(&rvs, "changes after a snapshot");
            assert!(rvs.iter().all(|&rv| rv > list.resource_version));
            let changes: Vec<_> = changes.iter().map(summary).collect();
            assert_eq!(changes, history_after(&late, "ConfigMap", list.resource_version));
        });
    });
}

/// §5: WatchStart::From(rv) replays exactly the changes after rv, then follows new ones.
#[test]
fn watch_from_rv_replays_exactly_the_changes_after_it() {
    run_seeds(|| {
        let server = server();
        let writers = spawn_writers(&server, &[NS, NS, NS], 2);
        let marker = server.clone();
        spawn("marker", async move {
            let skip = sim_core::random_range(0..6);
            for _ in 0..skip {
                yield_now().await;
            }
            let mark = marker.resource_version();
            let live =
                marker.watch("v1", "ConfigMap", None, WatchStart::From(mark), false).unwrap();
            for writer in writers {
                writer.await;
            }
            let expected = history_after(&marker, "ConfigMap", mark);
            let live: Vec<_> = drain(&live).iter().map(summary).collect();
            assert_eq!(live, expected);
            // Opening the same watch after the fact replays the same changes from history.
            let replay = marker.watch("v1", "ConfigMap", None, WatchStart::From(mark), false);
            let replay: Vec<_> = drain(&replay.unwrap()).iter().map(summary).collect();
            assert_eq!(replay, expected);
            // A watch from the current RV replays nothing.
            let now = marker.resource_version();
            let empty = marker.watch("v1", "ConfigMap", None, WatchStart::From(now), false);
            assert!(empty.unwrap().try_next().is_none());
        });
    });
}

/// §5: a watch from an RV older than the retained history gets one ERROR 410 Expired.
#[test]
fn watch_from_before_the_history_gets_410_expired() {
    run_seeds(|| {
        let server = server_with(ServerConfig::default().with_history_max(5));
        // RVs 1..=3 are the system namespaces; two tasks write RVs 4..=13.
        let writers: Vec<_> = (0..2)
            .map(|task| {
                let server = server.clone();
                spawn(format!("writer-{task}"), async move {
                    for j in 0..5 {
                        server.create(cm(NS, &format!("c{task}-{j}"))).expect("create");
                        yield_now().await;
                    }
                })
            })
            .collect();
        spawn("watcher", async move {
            for writer in writers {
                writer.await;
            }
            assert_eq!(server.resource_version(), 13);
            let old = server.watch("v1", "ConfigMap", None, WatchStart::From(7), false).unwrap();
            let event = old.next().await.expect("an ERROR event");
            assert_eq!(event.event_type, EventType::Error);
            let error = event.error.expect("the error");
            assert_error(&error, 410, Reason::Expired, "too old resource version: 7 (8)");
            assert!(error.is_expired());
            assert!(old.next().await.is_none(), "the stream ends after ERROR");

            let edge = server.watch("v1", "ConfigMap", None, WatchStart::From(8), false).unwrap();
            let rvs: Vec<u64> = drain(&edge).iter().map(WatchEvent::resource_version).collect();
            assert_eq!(rvs, [9, 10, 11, 12, 13]);
            assert!(!edge.is_closed());
        });
    });
}

/// §5: a namespace-filtered watch sees only its namespace (snapshot and changes).
#[test]
fn namespace_filtered_watches_see_only_their_namespace() {
    run_seeds(|| {
        let server = server();
        for ns in ["a", "b"] {
            server.create(namespace(ns)).expect("create");
            server.create(cm(ns, "seed")).expect("create");
        }
        let watch = |ns| server.watch("v1", "ConfigMap", ns, WatchStart::Now, false).unwrap();
        let (in_a, in_b, all) = (watch(Some("a")), watch(Some("b")), watch(None));
        let writers = spawn_writers(&server, &["a", "b", "a"], 2);
        spawn("checker", async move {
            for writer in writers {
                writer.await;
            }
            let (a, b, all) = (drain(&in_a), drain(&in_b), drain(&all));
            assert!(a.iter().all(|e| e.object.metadata.namespace == "a"));
            assert!(b.iter().all(|e| e.object.metadata.namespace == "b"));
            assert_eq!((a.len(), b.len()), (1 + 2 * 5, 1 + 5));
            let mut merged: Vec<_> = a.iter().chain(&b).map(summary).collect();
            merged.sort_by_key(|s| (s.2, s.1.clone()));
            let mut every: Vec<_> = all.iter().map(summary).collect();
            every.sort_by_key(|s| (s.2, s.1.clone()));
            assert_eq!(merged, every);
        });
    });
}

/// §5: BOOKMARK events go only to watches that asked for them, with the current RV.
#[test]
fn bookmarks_go_only_to_watches_that_asked() {
    run_seeds(|| {
        let server = server();
        let start = WatchStart::From(server.resource_version());
        let asked = server.watch("v1", "ConfigMap", None, start, true).unwrap();
        let silent = server.watch("v1", "ConfigMap", None, start, false).unwrap();
        let periodic = server.watch("v1", "Secret", None, WatchStart::Now, true).unwrap();
        server.start_bookmarks(Duration::from_secs(60));
        spawn("writer", async move {
            server.create(cm(NS, "a")).expect("create");
            yield_now().await;
            server.send_bookmarks();
            let rv = server.resource_version();
            let types = |w: &apiserver_fake::Watch| {
                drain(w).iter().map(|e| (e.event_type, e.resource_version())).collect::<Vec<_>>()
            };
            assert_eq!(types(&asked), [(EventType::Added, rv), (EventType::Bookmark, rv)]);
            assert_eq!(types(&silent), [(EventType::Added, rv)]);
            assert_eq!(types(&periodic), [(EventType::Bookmark, rv)]);
            sleep(Duration::from_secs(150)).await;
            assert_eq!(types(&periodic), [(EventType::Bookmark, rv), (EventType::Bookmark, rv)]);
            assert!(types(&silent).is_empty());
        });
    });
}

/// §1 / §5: one global resourceVersion, strictly increasing across kinds.
#[test]
fn resource_version_is_global_and_strictly_increasing_across_kinds() {
    run_seeds(|| {
        let server = server();
        let first = server.resource_version() + 1;
        let log: Rc<RefCell<Vec<u64>>> = Rc::default();
        let kinds = [("v1", "ConfigMap"), ("v1", "Secret"), (WIDGETS, "Widget")];
        let writers: Vec<_> = kinds
            .into_iter()
            .map(|(api_version, kind)| {
                let (server, log) = (server.clone(), log.clone());
                spawn(kind, async move {
                    for j in 0..3 {
                        let object = Object::new(api_version, kind, NS, &format!("x{j}"))
                            .with_spec(json!({ "size": j }));
                        let created = server.create(object).expect("create");
                        log.borrow_mut().push(created.resource_version());
                        yield_now().await;
                        let updated = server.update(created.with_label("j", "1")).expect("update");
                        log.borrow_mut().push(updated.resource_version());
                        yield_now().await;
                        let gone = removed(delete(&server, &updated, &DeleteOptions::default()));
                        log.borrow_mut().push(gone.resource_version());
                        yield_now().await;
                    }
                })
            })
            .collect();
        spawn("checker", async move {
            for writer in writers {
                writer.await;
            }
            let log = log.borrow();
            let expected: Vec<u64> = (first..first + 27).collect();
            assert_eq!(*log, expected, "one counter for every kind, one step per write");
            let history: Vec<u64> =
                server.history().iter().map(|c| c.event.resource_version()).collect();
            assert_eq!(history, (1..first + 27).collect::<Vec<_>>());
        });
    });
}

// ---------------------------------------------------------------------------------------------
// Manifests

const OWNER_UID: &str = "6f1c2f8e-0000-4000-8000-000000000001";

const MANIFESTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: child
  namespace: team
  creationTimestamp: "2025-12-31T23:59:00Z"
  labels:
    app: web
  ownerReferences:
    - apiVersion: v1
      kind: ConfigMap
      name: owner
      uid: 6f1c2f8e-0000-4000-8000-000000000001
      controller: true
      blockOwnerDeletion: true
data:
  key: value
---
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: owner
      namespace: team
      uid: 6f1c2f8e-0000-4000-8000-000000000001
  - apiVersion: v1
    kind: Namespace
    metadata:
      name: team
---
{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "team"}, "type": "Opaque"}
"#;

/// Manifests: multi-document YAML with `---`, an empty document, a `kind: List` and JSON.
#[test]
fn parse_manifests_reads_multi_document_yaml_lists_and_json() {
    run_seeds(|| {
        let objects = parse_manifests(MANIFESTS).expect("valid manifests");
        let names: Vec<_> = objects.iter().map(|o| (o.kind.as_str(), o.key())).collect();
        let expected = [
            ("ConfigMap", "team/child".to_string()),
            ("ConfigMap", "team/owner".to_string()),
            ("Namespace", "team".to_string()),
            ("Secret", "team/s".to_string()),
        ];
        assert_eq!(names, expected);
        let child = &objects[0];
        assert_eq!(
            child.metadata.owner_references,
            [OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: "owner".into(),
                uid: OWNER_UID.into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]
        );
        let created = child.metadata.creation_timestamp.expect("creationTimestamp");
        assert_eq!(created, Time::parse("2025-12-31T23:59:00Z").unwrap());
        assert_eq!(created.nanos, -60_000_000_000, "one minute before the simulation's start");
        assert_eq!(child.metadata.labels["app"], "web");
        assert_eq!(child.other["data"], json!({ "key": "value" }));
        let json = child.to_json();
        assert_eq!(json["metadata"]["creationTimestamp"], "2025-12-31T23:59:00Z");
        assert_eq!(json["metadata"]["ownerReferences"][0]["blockOwnerDeletion"], true);
        assert_eq!(Object::from_json(json).expect("round trip"), *child);
        assert_eq!(objects[1].metadata.uid, OWNER_UID);
        assert_eq!(objects[3].other["type"], "Opaque");

        let only_json = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "x"}},
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "d", "namespace": "x"}, "spec": {"replicas": 2}}]}"#;
        let objects = parse_manifests(only_json).expect("JSON");
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1].spec["replicas"], 2);
        assert!(parse_manifests("").expect("empty").is_empty());
    });
}

/// Manifests: a malformed or incomplete document is an error naming its (1-based) number.
#[test]
fn malformed_manifest_names_the_document() {
    run_seeds(|| {
        let good = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: default}\n";
        let cases = [
            (format!("{good}---\napiVersion: v1\nkind: [unclosed\n"), 2, None),
            (format!("{good}---\n{good}---\nkind: ConfigMap\nmetadata: {{name: b}}\n"), 3, {
                Some("apiVersion is missing")
            }),
            (
                format!("{good}---\napiVersion: v1\nmetadata: {{name: b}}\n"),
                2,
                Some("kind is missing"),
            ),
            ("apiVersion: v1\nkind: ConfigMap\n".to_string(), 1, {
                Some("ConfigMap has no metadata.name")
            }),
            (format!("{good}---\njust text\n"), 2, None),
            (format!("{good}---\nkind: List\nitems: 3\n"), 2, None),
        ];
        for (text, document, message) in cases {
            let error = parse_manifests(&text).expect_err(&text);
            assert_eq!(error.document, document, "{text}: {error}");
            assert!(error.to_string().starts_with(&format!("manifest document {document}: ")));
            if let Some(message) = message {
                assert_eq!(error.message, message, "{text}");
            }
        }
    });
}

/// Manifests: `load_manifests` creates namespaces first and keeps the manifests' uids.
#[test]
fn load_manifests_creates_namespaces_first_and_keeps_uids() {
    run_seeds(|| {
        let server = server();
        let created = server.load_manifests(MANIFESTS).expect("load");
        let kinds: Vec<_> = created.iter().map(|o| o.kind.as_str()).collect();
        assert_eq!(kinds, ["Namespace", "ConfigMap", "ConfigMap", "Secret"]);
        let owner = server.get("v1", "ConfigMap", "team", "owner").expect("owner");
        let child = server.get("v1", "ConfigMap", "team", "child").expect("child");
        assert_eq!(owner.metadata.uid, OWNER_UID);
        assert_eq!(child.metadata.owner_references[0].uid, owner.metadata.uid);
        assert!(!child.metadata.uid.is_empty());
        // Like any create, the server stamps its own creationTimestamp.
        assert_eq!(child.metadata.creation_timestamp, Some(Time::now()));
        let error = server.load_manifests(MANIFESTS).expect_err("everything exists already");
        assert!(error.contains("already exists"), "{error}");
    });
}

/// Manifests: objects serialise back with Kubernetes' camelCase field names.
#[test]
fn objects_serialise_with_kubernetes_field_names() {
    fn keys(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    found.push(key.clone());
                    keys(inner, found);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| keys(item, found)),
            _ => {}
        }
    }
    run_seeds(|| {
        let server = server();
        spawn("writer", async move {
            sleep(Duration::from_secs(90)).await;
            let owner = server.create(cm(NS, "owner")).expect("create");
            let child = cm(NS, "child")
                .with_owner(OwnerReference::controller_of(&owner))
                .with_finalizer(KEEP);
            let child = server.create(child).expect("create");
            let child = pending(delete(&server, &child, &DeleteOptions::default()));
            let json = child.to_json();
            let meta = &json["metadata"];
            assert_eq!(meta["resourceVersion"], child.metadata.resource_version.as_str());
            assert_eq!(meta["deletionTimestamp"], "2026-01-01T00:01:30Z");
            assert_eq!(meta["creationTimestamp"], "2026-01-01T00:01:30Z");
            assert_eq!(meta["deletionGracePeriodSeconds"], 0);
            assert_eq!(
                meta["ownerReferences"],
                json!([{
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "owner",
                    "uid": owner.metadata.uid,
                    "controller": true,
                    "blockOwnerDeletion": true,
                }])
            );
            let mut found = Vec::new();
            keys(&json, &mut found);
            assert!(found.iter().all(|key| !key.contains('_')), "snake_case key in {found:?}");
            assert_eq!(Object::from_json(json).expect("round trip"), child);
        });
    });
}

// ---------------------------------------------------------------------------------------------
// Label selectors

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Label selectors: `=`, `==`, `!=`, `in`, `notin`, exists, `!` and comma conjunction.
#[test]
fn label_selector_syntax_matches_like_kubernetes() {
    run_seeds(|| {
        let sets = [
            ("a", labels(&[("app", "web"), ("tier", "front")])),
            ("b", labels(&[("app", "web"), ("tier", "back")])),
            ("c", labels(&[("app", "db")])),
            ("d", labels(&[])),
        ];
        let cases: [(&str, &[&str]); 12] = [
            ("", &["a", "b", "c", "d"]),
            ("app=web", &["a", "b"]),
            ("app==web", &["a", "b"]),
            ("app != web", &["c", "d"]),
            ("tier in (front, back)", &["a", "b"]),
            ("tier notin (front)", &["b", "c", "d"]),
            ("tier", &["a", "b"]),
            ("!tier", &["c", "d"]),
            ("app=web,tier!=front", &["b"]),
            ("app in (web,db),!tier", &["c"]),
            ("app,tier notin (back)", &["a", "c"]),
            ("example.com/team", &[]),
        ];
        for (text, expected) in cases {
            let selector = Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let matched: Vec<_> =
                sets.iter().filter(|(_, l)| selector.matches(l)).map(|(name, _)| *name).collect();
            assert_eq!(matched, expected, "selector {text:?}");
            assert_eq!(selector.is_empty(), text.is_empty());
        }
    });
}

/// Label selectors: malformed selectors are errors.
#[test]
fn invalid_label_selectors_are_errors() {
    run_seeds(|| {
        for text in [
            "app in web",
            "app in (web",
            "app in (web))",
            "=web",
            "app=web=x",
            "app=we b",
            "!",
            ",",
            "app,,tier",
            "a b",
            "tier notin front",
        ] {
            let error = Selector::parse(text).expect_err(text);
            assert!(error.starts_with("invalid label selector"), "{text}: {error}");
        }
    });
}

/// Label selectors: LIST filters by namespace and selector, ordered by namespace then name.
#[test]
fn list_filters_by_namespace_and_selector() {
    run_seeds(|| {
        let server = server();
        server.create(namespace("other")).expect("create");
        let objects = [
            (NS, "d", &[("app", "web"), ("tier", "front")][..]),
            (NS, "b", &[("app", "web")][..]),
            ("other", "a", &[("app", "web"), ("tier", "back")][..]),
            (NS, "c", &[("app", "db")][..]),
        ];
        let creators: Vec<_> = objects
            .into_iter()
            .map(|(ns, name, pairs)| {
                let server = server.clone();
                let mut object = cm(ns, name);
                object.metadata.labels = labels(pairs);
                spawn(format!("create-{name}"), async move {
                    yield_now().await;
                    server.create(object).expect("create");
                })
            })
            .collect();
        spawn("lister", async move {
            for creator in creators {
                creator.await;
            }
            let list = |ns: Option<&str>, text: &str| {
                let selector = Selector::parse(text).expect("valid");
                let list = server.list("v1", "ConfigMap", ns, &selector).expect("list");
                assert_eq!(list.resource_version, server.resource_version());
                list.items.iter().map(Object::key).collect::<Vec<_>>()
            };
            assert_eq!(list(None, ""), ["default/b", "default/c", "default/d", "other/a"]);
            assert_eq!(list(None, "app=web"), ["default/b", "default/d", "other/a"]);
            assert_eq!(list(Some(NS), "app=web"), ["default/b", "default/d"]);
            assert_eq!(list(Some(NS), "app=web,!tier"), ["default/b"]);
            assert_eq!(list(None, "tier in (back)"), ["other/a"]);
            assert_eq!(list(Some("other"), "app notin (web)"), Vec::<String>::new());
            // Cluster-scoped kinds ignore the namespace.
            assert_eq!(
                list_namespaces(&server),
                ["default", "kube-public", "kube-system", "other"]
            );
        });
    });
}

fn list_namespaces(server: &ApiServer) -> Vec<String> {
    let list = server.list("v1", "Namespace", Some(NS), &Selector::everything()).expect("list");
    list.items.iter().map(|o| o.metadata.name.clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// Limits and determinism

/// Limits: creating more than `objects_max` objects ends the run as a resource limit.
#[test]
fn too_many_objects_ends_the_run_as_a_resource_limit() {
    let mut sim = Simulation::default();
    for seed in 0..SEEDS {
        let created = Rc::new(Cell::new(0));
        let outcome = sim.run(seed, || {
            // The three system namespaces count: seven more objects fit.
            let server = server_with(ServerConfig::default().with_objects_max(10));
            assert_eq!(server.len(), 3);
            for task in 0..2 {
                let (server, created) = (server.clone(), created.clone());
                spawn(format!("creator-{task}"), async move {
                    for j in 0..4 {
                        server.create(cm(NS, &format!("c{task}-{j}"))).expect("create");
                        created.set(created.get() + 1);
                        yield_now().await;
                    }
                });
            }
        });
        match outcome {
            Outcome::LimitReached(failure) => {
                assert_eq!(failure.kind, FailureKind::ResourceLimit, "seed {seed}");
                assert!(failure.message.contains("10 objects"), "seed {seed}: {failure}");
            }
            other => panic!("seed {seed}: expected a resource limit, got {other}"),
        }
        assert_eq!(created.get(), 7, "seed {seed}");
    }
}

/// A workload of concurrent writers of several kinds, patches, deletes and a watcher.
fn concurrent_writers() {
    let server = server();
    let watch = server.watch("v1", "ConfigMap", None, WatchStart::Now, false).unwrap();
    spawn_writers(&server, &[NS, NS, NS], 3);
    let patcher = server.clone();
    spawn("patcher", async move {
        let created = patcher.create(widget(NS, "w").with_finalizer(KEEP)).expect("create");
        for size in 0..4 {
            yield_now().await;
            patcher
                .patch(WIDGETS, "Widget", NS, "w", &json!({ "spec": { "size": size } }))
                .unwrap();
        }
        pending(delete(&patcher, &created, &Request::Policy(Propagation::Foreground).options()));
    });
    spawn("watcher", async move {
        for _ in 0..10 {
            let event = watch.next().await.expect("open");
            sim_core::event(format!("saw {} {}", event.event_type, event.object.key()));
        }
    });
}

/// Determinism: the same seed gives the same trace, while seeds explore different schedules.
#[test]
fn concurrent_writers_give_the_same_trace_for_the_same_seed() {
    let mut sim = Simulation::default();
    let mut hashes = std::collections::BTreeSet::new();
    for seed in 0..SEEDS {
        assert_eq!(sim.run(seed, concurrent_writers), Outcome::Completed, "seed {seed}");
        let first = sim.trace().hash();
        assert_eq!(sim.run(seed, concurrent_writers), Outcome::Completed, "seed {seed}");
        assert_eq!(sim.trace().hash(), first, "seed {seed}: same seed, different trace");
        hashes.insert(first);
    }
    assert!(hashes.len() > SEEDS as usize / 2, "only {} distinct schedules", hashes.len());
}

// ---------------------------------------------------------------------------------------------
// Reads with resourceVersion "0" (§5: "RV=0 = the same from a possibly stale state")

/// §5: a LIST served from the watch cache is the exact state at some resourceVersion no more
/// than `stale_reads` behind, and never older than the minimum asked for; over the seeds it is
/// sometimes stale and sometimes the latest.
#[test]
fn list_from_cache_is_an_exact_past_state_within_the_staleness_bound() {
    let (stale, fresh) = (Cell::new(0), Cell::new(0));
    run_seeds(|| {
        let server = server_with(ServerConfig::default().with_stale_reads(5));
        let base = server.resource_version();
        for i in 0..10 {
            server.create(cm(NS, &format!("cm-{i}"))).expect("create");
        }
        server.delete("v1", "ConfigMap", NS, "cm-0", &DeleteOptions::default()).expect("delete");
        let latest = server.resource_version();
        let list = server.list_from_cache("v1", "ConfigMap", Some(NS), 0).expect("list");
        let at = list.resource_version;
        assert!(at + 5 >= latest && at <= latest, "rv {at} not within 5 of {latest}");
        // cm-i was created at base + i + 1; cm-0 was deleted at `latest`.
        let expected: Vec<String> = (0..10)
            .filter(|&i| base + i < at && !(i == 0 && at == latest))
            .map(|i| format!("cm-{i}"))
            .collect();
        let mut names: Vec<String> = list.items.iter().map(|o| o.metadata.name.clone()).collect();
        names.sort_by_key(|n| n[3..].parse::<u32>().unwrap_or(0));
        assert_eq!(names, expected, "list at rv {at}");
        if at == latest {
            fresh.set(fresh.get() + 1);
        } else {
            stale.set(stale.get() + 1);
        }
        let bounded =
            server.list_from_cache("v1", "ConfigMap", Some(NS), latest - 1).expect("list");
        assert!(bounded.resource_version >= latest - 1, "at_least ignored");
    });
    assert!(stale.get() > 0 && fresh.get() > 0, "stale {} fresh {}", stale.get(), fresh.get());
}

/// §5: a watch from resourceVersion "0" starts from a possibly stale snapshot and then
/// replays every later change, so applying its events gives the latest state.
#[test]
fn watch_from_any_starts_stale_and_catches_up() {
    let stale = Cell::new(0);
    run_seeds(|| {
        let server = server_with(ServerConfig::default().with_stale_reads(8));
        for i in 0..6 {
            let created = server.create(cm(NS, &format!("cm-{i}"))).expect("create");
            server.update(created.with_label("round", "2")).expect("update");
        }
        let watch = server.watch("v1", "ConfigMap", Some(NS), WatchStart::Any, false).expect("w");
        let mut state: BTreeMap<String, Object> = BTreeMap::new();
        let mut initial = true;
        while let Some(event) = watch.try_next() {
            let name = event.object.metadata.name.clone();
            if initial && event.event_type != EventType::Added {
                initial = false;
            }
            match event.event_type {
                EventType::Added | EventType::Modified => {
                    state.insert(name, (*event.object).clone());
                }
                EventType::Deleted => {
                    state.remove(&name);
                }
                other => panic!("unexpected {other}"),
            }
        }
        let latest = server.list("v1", "ConfigMap", Some(NS), &Selector::everything()).expect("l");
        let latest: BTreeMap<String, Object> =
            latest.items.into_iter().map(|o| (o.metadata.name.clone(), o)).collect();
        assert_eq!(state, latest);
        if !initial {
            stale.set(stale.get() + 1);
        }
    });
    assert!(stale.get() > 0, "no seed started from a stale snapshot");
}
