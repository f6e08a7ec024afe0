//! DELETE propagation: which GC finalizers a DELETE leaves. `orphanDependents` decides first,
//! then `propagationPolicy`, then a GC finalizer already on the object, then the kind's default
//! (Orphan for v1 ReplicationControllers, batch/v1 Jobs and the beta groups, Background
//! otherwise): Orphan leaves `orphan`, Foreground `foregroundDeletion`, Background neither, and
//! an object left without finalizers is removed at once. User finalizers stay first, the GC's are
//! appended; both options together is 422; a second DELETE switches the GC finalizers without
//! moving the deletion.

use std::time::Duration;

use apiserver_fake::{DeleteOptions, Deleted, Object, Propagation, Reason};
use sim_core::{sleep, spawn, yield_now};

use super::{
    FG, KEEP, NS, ORPHAN, Request, assert_error, cm, delete, failure, get, pending, removed,
    run_seeds, server, widget, with_finalizers,
};

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

/// The propagation table: existing GC finalizer (none / orphan / foregroundDeletion) × requested
/// policy.
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

/// The propagation table's "none given" cell: kinds whose default is Orphan (v1 RC, batch/v1 Job,
/// beta groups).
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

/// `orphanDependents` has precedence over finalizers and the kind's default.
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

/// User finalizers stay first, GC finalizers are appended after them.
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

/// `ValidateDeleteOptions`: orphanDependents together with propagationPolicy is 422.
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

/// The one exception to "no new finalizer while deleting": a second DELETE re-runs propagation
/// (adds/removes foregroundDeletion and orphan) but never moves deletionTimestamp nor bumps
/// generation again.
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
