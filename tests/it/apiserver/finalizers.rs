//! Finalizers and deletion: a DELETE of an object with finalizers only marks it
//! (deletionTimestamp, grace period 0, generation + 1, a new resourceVersion) and the update that
//! removes the last finalizer removes it; no finalizer can be added to an object being deleted;
//! an update can neither clear, move nor (on a live object) set the deletionTimestamp; a DELETED
//! event carries the last stored state.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::{DeleteOptions, EventType, Propagation, Reason, Time, WatchStart};
use sim_core::{sleep, spawn, yield_now};

use super::{
    KEEP, NS, ORPHAN, Request, WIDGETS, assert_error, cm, delete, drain, failure, get, pending,
    removed, run_seeds, server, update_with_retry, widget, with_finalizers,
};

/// DELETE with a user finalizer marks (timestamp, grace 0, generation+1, new RV); an
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

/// Adding a finalizer to an object being deleted is 422; removing one stays allowed.
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

/// `ValidateNoNewFinalizers`: upstream lists the new finalizers as a sorted `%#v` slice.
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

/// An update can never remove or change deletionTimestamp / grace (silently restored).
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

/// `ValidateObjectMetaUpdate`: deletionTimestamp is immutable, so setting it on a live
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

/// A DELETED event carries the last *stored* state (etcd's previous value) stamped
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
