//! Tests: a real `kube::Client` against kdst's fake cluster. `Api<ConfigMap>` create, get, list
//! with a label selector, replace, the four patch types (server-side apply with its conflict),
//! delete (`Either` as kube returns it) and 404 as `kube::Error::Api`; `Api::watch` and
//! kube-runtime's `watcher` streaming events written by another task; injected faults reaching
//! kube as API errors; and determinism: the same seed gives the same trace, byte for byte.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::{ClientConfig, Faults};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kdst_kube::Cluster;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::json;
use sim_core::{Outcome, Simulation};

fn config_map(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.to_string());
    cm.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    cm.data = Some([("k".to_string(), "v".to_string())].into());
    cm
}

/// Runs `body` as a kube task on a fresh cluster under `seed`; it must complete.
fn run(seed: u64, body: impl AsyncFnOnce(Cluster) + 'static) -> Simulation {
    let mut sim = Simulation::default();
    let outcome = sim.run(seed, move || {
        let cluster = Cluster::new();
        let task = cluster.clone();
        cluster.spawn("test", async move { body(task).await });
    });
    assert_eq!(outcome, Outcome::Completed);
    sim
}

/// CRUD through `Api<ConfigMap>`, with kube's own types and errors.
#[test]
fn api_create_get_list_replace_delete() {
    run(0, async |cluster| {
        let api: Api<ConfigMap> = Api::namespaced(cluster.client("crud"), "default");
        let pp = PostParams::default();
        let made = api.create(&pp, &config_map("a", &[("app", "web")])).await.expect("create a");
        api.create(&pp, &config_map("b", &[("app", "db")])).await.expect("create b");
        assert_eq!(made.metadata.namespace.as_deref(), Some("default"));
        let got = api.get("a").await.expect("get");
        assert_eq!(got.data, made.data);
        let web = api.list(&ListParams::default().labels("app=web")).await.expect("list");
        let names: Vec<_> = web.items.iter().filter_map(|c| c.metadata.name.clone()).collect();
        assert_eq!(names, ["a"]);
        assert!(web.metadata.resource_version.is_some());
        let mut changed = got.clone();
        changed.data = Some([("k".to_string(), "w".to_string())].into());
        let replaced = api.replace("a", &pp, &changed).await.expect("replace");
        assert_ne!(replaced.metadata.resource_version, got.metadata.resource_version);
        let stale = api.replace("a", &pp, &changed).await.expect_err("a stale replace");
        match stale {
            kube::Error::Api(status) => {
                assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"))
            }
            other => panic!("expected a 409, got {other:?}"),
        }
        let deleted = api.delete("a", &DeleteParams::default()).await.expect("delete");
        assert!(deleted.is_right(), "a ConfigMap without finalizers is gone: Status");
        match api.get("a").await.expect_err("gone") {
            kube::Error::Api(status) => assert_eq!(status.code, 404),
            other => panic!("expected a 404, got {other:?}"),
        }
        let mut held = config_map("held", &[]);
        held.metadata.finalizers = Some(vec!["example.com/keep".into()]);
        api.create(&pp, &held).await.expect("create held");
        let pending = api.delete("held", &DeleteParams::foreground()).await.expect("delete held");
        let object = pending.left().expect("a held object comes back");
        assert!(object.metadata.deletion_timestamp.is_some());
    });
}

/// Merge, JSON, strategic and server-side-apply patches.
#[test]
fn api_patches_of_every_type() {
    run(0, async |cluster| {
        let api: Api<ConfigMap> = Api::namespaced(cluster.client("patcher"), "default");
        api.create(&PostParams::default(), &config_map("p", &[])).await.expect("create");
        let merge = Patch::Merge(json!({ "metadata": { "labels": { "m": "1" } } }));
        api.patch("p", &PatchParams::default(), &merge).await.expect("merge");
        let jp: json_patch::Patch = serde_json::from_value(json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": ["example.com/f"] }
        ]))
        .unwrap();
        let patched = api
            .patch("p", &PatchParams::default(), &Patch::<()>::Json(jp))
            .await
            .expect("json patch");
        assert_eq!(patched.metadata.finalizers, Some(vec!["example.com/f".to_string()]));
        let strategic = Patch::Strategic(json!({ "data": { "s": "1" } }));
        let patched = api.patch("p", &PatchParams::default(), &strategic).await.expect("strategic");
        assert_eq!(patched.data.unwrap().len(), 2);
        let apply = |value: &str| {
            Patch::Apply(json!({ "apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": { "name": "p" }, "data": { "owned": value } }))
        };
        let applied =
            api.patch("p", &PatchParams::apply("alice"), &apply("1")).await.expect("apply");
        let managers: Vec<_> = applied
            .metadata
            .managed_fields
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m.manager.clone())
            .collect();
        assert!(managers.contains(&"alice".to_string()), "{managers:?}");
        match api.patch("p", &PatchParams::apply("bob"), &apply("2")).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 409);
                assert!(status.message.contains("conflict with \"alice\""), "{}", status.message);
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        let forced =
            api.patch("p", &PatchParams::apply("bob").force(), &apply("2")).await.expect("forced");
        assert_eq!(forced.data.unwrap()["owned"], "2");
    });
}

/// `Api::watch` streams what another task writes, in order.
#[test]
fn api_watch_streams_events() {
    run(0, async |cluster| {
        let api: Api<ConfigMap> = Api::namespaced(cluster.client("watcher"), "default");
        let writer: Api<ConfigMap> = Api::namespaced(cluster.client("writer"), "default");
        cluster.spawn("writer", async move {
            for name in ["a", "b"] {
                writer
                    .create(&PostParams::default(), &config_map(name, &[]))
                    .await
                    .expect("create");
            }
            writer.delete("a", &DeleteParams::default()).await.expect("delete");
        });
        let mut stream = api.watch(&WatchParams::default(), "0").await.expect("watch").boxed();
        let mut seen = Vec::new();
        while seen.len() < 3 {
            match stream.try_next().await.expect("an event").expect("the stream goes on") {
                WatchEvent::Added(cm) => seen.push(format!("added {}", cm.metadata.name.unwrap())),
                WatchEvent::Deleted(cm) => {
                    seen.push(format!("deleted {}", cm.metadata.name.unwrap()))
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(seen, ["added a", "added b", "deleted a"]);
    });
}

/// kube-runtime's `watcher` (list, then watch) sees objects created before and after it starts.
#[test]
fn kube_runtime_watcher_lists_then_watches() {
    run(3, async |cluster| {
        use kube::runtime::{WatchStreamExt, watcher};
        let api: Api<ConfigMap> = Api::namespaced(cluster.client("watcher"), "default");
        api.create(&PostParams::default(), &config_map("before", &[])).await.expect("create");
        let writer = api.clone();
        cluster.spawn("writer", async move {
            sim_core::sleep(Duration::from_secs(1)).await;
            writer.create(&PostParams::default(), &config_map("after", &[])).await.expect("create");
        });
        let names: Vec<String> = watcher(api, watcher::Config::default())
            .applied_objects()
            .take(2)
            .map(|cm| cm.expect("an object").metadata.name.unwrap())
            .collect()
            .await;
        assert_eq!(names, ["before", "after"]);
    });
}

/// A fake client's injected faults reach kube as API errors.
#[test]
fn injected_faults_are_kube_api_errors() {
    let errors = Rc::new(RefCell::new(Vec::new()));
    let seen = errors.clone();
    run(1, async move |cluster| {
        let faults = Faults { server_error: 1.0, ..Faults::NONE };
        let api: Api<ConfigMap> = Api::namespaced(
            cluster.client_with("flaky", ClientConfig::default().with_faults(faults)),
            "default",
        );
        match api.get("x").await {
            Err(kube::Error::Api(status)) => seen.borrow_mut().push(status.code),
            other => panic!("expected an injected 500, got {other:?}"),
        }
    });
    assert_eq!(*errors.borrow(), [500]);
}

/// Determinism: the same seed gives the same trace hash, in a reused or a fresh simulation;
/// different seeds give different schedules.
#[test]
fn runs_are_deterministic() {
    let scenario = |seed: u64| {
        let sim = run(seed, async |cluster| {
            for index in 0..3 {
                let api: Api<ConfigMap> =
                    Api::namespaced(cluster.client(&format!("c{index}")), "default");
                cluster.spawn(format!("writer-{index}"), async move {
                    for round in 0..3 {
                        let name = format!("cm-{index}-{round}");
                        api.create(&PostParams::default(), &config_map(&name, &[]))
                            .await
                            .expect("create");
                        let patch = Patch::Merge(json!({ "data": { "round": round.to_string() } }));
                        api.patch(&name, &PatchParams::default(), &patch).await.expect("patch");
                    }
                });
            }
        });
        (sim.trace().hash(), sim.trace().len())
    };
    let hashes: Vec<_> = (0..20).map(scenario).collect();
    for (seed, first) in hashes.iter().enumerate() {
        assert_eq!(*first, scenario(seed as u64), "seed {seed} replays");
    }
    let distinct: std::collections::BTreeSet<_> = hashes.iter().map(|h| h.0).collect();
    assert!(
        distinct.len() > 10,
        "seeds give different schedules: {} distinct of 20",
        distinct.len()
    );
}
