//! Generation and the status subresource: generation starts at 1, changes only with the spec,
//! never decreases and is bumped when deletion starts; with a status subresource, `update` and
//! `create` ignore status and `update_status` changes status only.

use apiserver_fake::{DeleteOptions, Propagation};
use serde_json::{Value, json};
use sim_core::{spawn, yield_now};

use super::{
    KEEP, NS, Request, WIDGETS, delete, failure, get, pending, run_seeds, server,
    update_with_retry, widget,
};

/// Generation starts at 1, follows spec changes only, never decreases, and is bumped when
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

/// With a status subresource, `update` ignores status and `update_status` changes only status.
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

/// A status subresource means create cannot set status either (`PrepareForCreate`).
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
