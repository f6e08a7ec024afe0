//! resourceVersion and optimistic concurrency: an update with a stale resourceVersion is 409 and
//! retry loops lose no update; built-in kinds accept an update without resourceVersion, custom
//! resources do not (422); a no-op write makes no new resourceVersion and no event; a merge patch
//! applies to the current state and conflicts only on a stale resourceVersion; a uid in an update
//! body is a precondition (409) while a patched uid is 422; DELETE preconditions that do not match
//! are 409 naming the kind.

use std::cell::Cell;
use std::rc::Rc;

use apiserver_fake::{DeleteOptions, Object, Propagation, Reason, WatchStart};
use serde_json::json;
use sim_core::{spawn, yield_now};

use super::{
    MODIFIED, NS, WIDGETS, assert_error, cm, delete, failure, get, run_seeds, server,
    update_with_retry, widget,
};

/// An update with a stale resourceVersion is 409 with the upstream text.
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

/// Concurrent read-modify-write loops with retry-on-409 lose no update.
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

/// Most built-in kinds accept an update without resourceVersion (unconditional update).
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

/// A custom resource update without resourceVersion is 422.
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

/// A write whose result equals the stored object gets no new RV and no watch event.
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

/// PATCH applies to the current state without RV; it conflicts only if it carries a stale RV.
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

/// `defaultUpdatedObjectInfo.Preconditions`: a uid in an update body is a precondition.
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

/// `patcher.patchResource`: PATCH has no uid precondition (`DefaultUpdatedObjectInfo(nil,
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

/// DELETE preconditions (uid, resourceVersion) that do not match are 409.
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

/// `rest.BeforeDelete`: precondition conflicts name `GroupResource{Group, Resource:
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
