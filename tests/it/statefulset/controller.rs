//! The StatefulSet controller: pods `<set>-<i>` and claims `<template>-<set>-<i>` from the
//! templates (`stateful_set_utils.go`), OrderedReady and Parallel creation, scale-down from the
//! highest ordinal, claims kept and never resized, adoption of orphans and release of pods that
//! stop matching (`ClaimPods`).

use std::time::Duration;

use apiserver_fake::statefulset::{LABEL_POD_INDEX, LABEL_POD_NAME};
use apiserver_fake::{EventType, FINALIZER_PVC_PROTECTION, Object, OwnerReference};
use serde_json::json;

use super::{
    Actors, NS, POD, PVC, STS, cluster, names, peek, pods_ready, run_seeds, statefulset, storage,
    stored, wait_for,
};

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn pods_and_claims_come_from_the_templates_one_at_a_time() {
    run_seeds(|| {
        let (server, client) = cluster(Actors::ALL);
        sim_core::spawn("user", async move {
            let set = client.create(statefulset("web", 3, false)).await.expect("create");
            let all = ["web-0", "web-1", "web-2"];
            wait_for("3 ready pods", MINUTE, || pods_ready(&server, &all)).await;
            let pods = super::stored(&server, POD);
            for (ordinal, pod) in pods.iter().enumerate() {
                let name = format!("web-{ordinal}");
                assert_eq!(pod.metadata.labels.get("app").map(String::as_str), Some("web"));
                assert_eq!(pod.metadata.labels.get("role").map(String::as_str), Some("db"));
                assert_eq!(pod.metadata.labels.get(LABEL_POD_NAME), Some(&name));
                assert_eq!(pod.metadata.labels.get(LABEL_POD_INDEX), Some(&ordinal.to_string()));
                assert_eq!(
                    pod.metadata.owner_references,
                    vec![OwnerReference::controller_of(&set)]
                );
                let claim = format!("data-web-{ordinal}");
                assert_eq!(
                    pod.spec["volumes"],
                    json!([{ "name": "data", "persistentVolumeClaim": { "claimName": claim } }])
                );
                assert_eq!(pod.spec["hostname"], json!(name));
                assert_eq!(pod.spec["subdomain"], json!("web"));
                assert_eq!(pod.spec["containers"][0]["image"], json!("db:1"));
            }
            // OrderedReady: each pod is created only once its predecessor is Running and
            // Ready, which the node reports a second after creation.
            for pair in pods.windows(2) {
                let before = pair[0].metadata.creation_timestamp.expect("created").nanos;
                let after = pair[1].metadata.creation_timestamp.expect("created").nanos;
                assert!(after - before >= 1_000_000_000, "{} too soon", pair[1].metadata.name);
            }
            let claims = stored(&server, PVC);
            assert_eq!(names(&server, PVC), ["data-web-0", "data-web-1", "data-web-2"]);
            for claim in &claims {
                let labels: Vec<(&str, &str)> =
                    claim.metadata.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                assert_eq!(labels, [("app", "web"), ("tier", "storage")]);
                assert!(claim.metadata.owner_references.is_empty(), "retained: no owner");
                assert_eq!(claim.metadata.finalizers, [FINALIZER_PVC_PROTECTION]);
                assert_eq!(storage(claim), Some("1Gi"));
            }
            wait_for("status", MINUTE, || {
                let status = &peek(&server, STS, "web").expect("set").status;
                status["replicas"] == json!(3) && status["readyReplicas"] == json!(3)
            })
            .await;
        });
    });
}

/// When each pod first got a deletionTimestamp (or was removed), by resourceVersion.
fn deletion_order(server: &apiserver_fake::ApiServer) -> Vec<String> {
    let mut order = Vec::new();
    for change in server.history() {
        let object = &change.event.object;
        let deleting = change.event.event_type == EventType::Deleted || object.is_deleting();
        if object.kind == "Pod" && deleting && !order.contains(&object.metadata.name) {
            order.push(object.metadata.name.clone());
        }
    }
    order
}

/// When the pod was removed: the DELETED event's state carries the removal's
/// deletionTimestamp (the node's DELETE with a grace period of 0).
fn removal(server: &apiserver_fake::ApiServer, name: &str) -> Option<i64> {
    server.history().iter().find_map(|change| {
        let object = &change.event.object;
        let removed = change.event.event_type == EventType::Deleted && object.metadata.name == name;
        removed.then(|| object.metadata.deletion_timestamp.map_or(i64::MAX, |t| t.nanos))
    })
}

/// When the pod's graceful DELETE (grace period 10 s) was made.
fn deletion_requested(server: &apiserver_fake::ApiServer, name: &str) -> Option<i64> {
    server.history().iter().find_map(|change| {
        let object = &change.event.object;
        let graceful = object.metadata.deletion_grace_period_seconds == Some(10);
        let deadline = object.metadata.deletion_timestamp.filter(|_| graceful)?;
        (object.metadata.name == name).then_some(deadline.nanos - 10_000_000_000)
    })
}

#[test]
fn scale_down_deletes_the_highest_ordinal_first_and_keeps_the_claims() {
    for parallel in [false, true] {
        run_seeds(|| {
            let (server, client) = cluster(Actors::ALL);
            sim_core::spawn("user", async move {
                client.create(statefulset("db", 4, parallel)).await.expect("create");
                let all = ["db-0", "db-1", "db-2", "db-3"];
                wait_for("4 ready pods", MINUTE, || pods_ready(&server, &all)).await;
                let claims_before = stored(&server, PVC);
                let patch = json!({ "spec": { "replicas": 1 } });
                client.patch(STS.0, STS.1, NS, "db", &patch).await.expect("scale");
                wait_for("1 pod", 2 * MINUTE, || pods_ready(&server, &["db-0"])).await;
                assert_eq!(
                    deletion_order(&server),
                    ["db-3", "db-2", "db-1"],
                    "parallel {parallel}"
                );
                if !parallel {
                    // OrderedReady: one Terminating pod at a time, each deleted only after its
                    // successor is gone (grace periods of 10 s).
                    for (next, gone) in [("db-2", "db-3"), ("db-1", "db-2")] {
                        let began = deletion_requested(&server, next).expect(next);
                        let removed = removal(&server, gone).expect(gone);
                        assert!(began >= removed, "{next} deleted before {gone} was gone");
                    }
                }
                // Claims stay, unchanged: never deleted or resized by the controller.
                assert_eq!(stored(&server, PVC), claims_before);
                let status = &peek(&server, STS, "db").expect("set").status;
                assert_eq!(status["replicas"], json!(1));
            });
        });
    }
}

#[test]
fn orphans_that_match_are_adopted_and_pods_that_stop_matching_are_released() {
    run_seeds(|| {
        let (server, client) = cluster(Actors::ALL);
        sim_core::spawn("user", async move {
            // An orphan with the set's labels and a member's name, one with a foreign name,
            // and a member-named pod controlled by something else.
            let orphan = Object::new(POD.0, POD.1, NS, "web-1").with_label("app", "web");
            let orphan = client.create(orphan).await.expect("orphan");
            let stranger = Object::new(POD.0, POD.1, NS, "other-0").with_label("app", "web");
            client.create(stranger).await.expect("stranger");
            let owner =
                client.create(Object::new("v1", "ConfigMap", NS, "owner")).await.expect("cm");
            let foreign = Object::new(POD.0, POD.1, NS, "web-2")
                .with_label("app", "web")
                .with_owner(OwnerReference::controller_of(&owner));
            client.create(foreign).await.expect("foreign");
            let set = client.create(statefulset("web", 2, true)).await.expect("create");
            let reference = OwnerReference::controller_of(&set);
            wait_for("adoption", MINUTE, || {
                peek(&server, POD, "web-1")
                    .is_some_and(|p| p.metadata.owner_references == [reference.clone()])
            })
            .await;
            assert_eq!(
                peek(&server, POD, "web-1").expect("web-1").metadata.uid,
                orphan.metadata.uid
            );
            wait_for("web-0", MINUTE, || peek(&server, POD, "web-0").is_some()).await;
            // The claim of an adopted replica is created too once the pod is pending.
            wait_for("data-web-1", MINUTE, || peek(&server, PVC, "data-web-1").is_some()).await;
            sim_core::sleep(Duration::from_secs(5)).await;
            let stranger = peek(&server, POD, "other-0").expect("other-0");
            assert!(stranger.metadata.owner_references.is_empty(), "not a member: not adopted");
            let foreign = peek(&server, POD, "web-2").expect("web-2");
            assert_eq!(foreign.metadata.owner_references, [OwnerReference::controller_of(&owner)]);
            // web-0 stops matching: released, not deleted.
            let web0 = peek(&server, POD, "web-0").expect("web-0");
            let patch = json!({ "metadata": { "labels": { "app": "moved" } } });
            client.patch(POD.0, POD.1, NS, "web-0", &patch).await.expect("relabel");
            wait_for("release", MINUTE, || {
                peek(&server, POD, "web-0").is_some_and(|p| p.metadata.owner_references.is_empty())
            })
            .await;
            let released = peek(&server, POD, "web-0").expect("web-0");
            assert_eq!(released.metadata.uid, web0.metadata.uid);
            assert!(!released.is_deleting());
        });
    });
}

#[test]
fn a_deleted_pod_is_recreated_after_its_grace_period_with_the_same_claim() {
    run_seeds(|| {
        let (server, client) = cluster(Actors::ALL);
        sim_core::spawn("user", async move {
            client.create(statefulset("web", 1, false)).await.expect("create");
            wait_for("web-0", MINUTE, || pods_ready(&server, &["web-0"])).await;
            let pod = peek(&server, POD, "web-0").expect("web-0");
            let data = peek(&server, PVC, "data-web-0").expect("claim");
            let options = apiserver_fake::DeleteOptions::default();
            client.delete(POD.0, POD.1, NS, "web-0", &options).await.expect("delete");
            let deleted_at = sim_core::now();
            sim_core::sleep(Duration::from_secs(9)).await;
            let terminating = peek(&server, POD, "web-0").expect("still there in its grace period");
            assert_eq!(terminating.metadata.uid, pod.metadata.uid);
            assert!(terminating.is_deleting());
            wait_for("a new web-0", MINUTE, || {
                peek(&server, POD, "web-0").is_some_and(|p| p.metadata.uid != pod.metadata.uid)
            })
            .await;
            assert!(sim_core::now() - deleted_at >= Duration::from_secs(10));
            let kept = peek(&server, PVC, "data-web-0").expect("claim kept");
            assert_eq!(kept, data, "the claim is never touched");
        });
    });
}
