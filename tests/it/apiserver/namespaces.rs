//! Namespaces: CREATE in a missing namespace is 404 and in a terminating one 403 with the cause
//! `NamespaceTerminating`; deleting a namespace marks it Terminating and keeps it while
//! spec.finalizers remain; `finalize` with none left removes it; `default`, `kube-system` and
//! `kube-public` cannot be deleted.

use apiserver_fake::{DeleteOptions, EventType, FINALIZER_KUBERNETES, Object, Reason, WatchStart};
use serde_json::json;
use sim_core::{spawn, yield_now};

use super::{
    assert_error, cm, delete, drain, failure, get, namespace, pending, removed, run_seeds, server,
    summary, update_with_retry, widget,
};

/// CREATE in a missing namespace is 404 `namespaces "x" not found`.
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

/// Deleting a namespace marks it Terminating with spec.finalizers kept; CREATE in it is 403,
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

/// NamespaceLifecycle admission: the 403 carries the cause `NamespaceTerminating`
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

/// `finalize` with empty spec.finalizers removes a terminating namespace (DELETED event).
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

/// `default`, `kube-system`, `kube-public` cannot be deleted (403).
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
