//! Pods that terminate after their grace period: the server's graceful deletion of pods
//! (`rest.BeforeDelete`, `pod/strategy.go` `CheckGracefulDelete`,
//! `updateForGracefulDeletionAndFinalizers`) and the simulated node that removes a pod when its
//! deletionTimestamp comes, with a grace period of 0 and a uid precondition.

use std::time::Duration;

use apiserver_fake::{ApiServer, Client, DeleteOptions, Deleted, EventType, Object, Propagation};
use serde_json::json;
use sim_core::{SimTime, sleep};

use super::{Actors, NS, POD, cluster, peek, run_seeds};

const NODE_ONLY: Actors =
    Actors { graceful: true, statefulsets: false, kubelet: true, protection: false, gc: false };

async fn delete(client: &Client, name: &str, options: &DeleteOptions) -> Deleted {
    client.delete(POD.0, POD.1, NS, name, options).await.expect("delete")
}

/// The pod's deletion fields: (deletionTimestamp as virtual time, grace period).
fn deletion(pod: &Object) -> (SimTime, i64) {
    let time = pod.metadata.deletion_timestamp.and_then(|t| t.sim_time()).expect("deleting");
    (time, pod.metadata.deletion_grace_period_seconds.expect("grace period"))
}

#[test]
fn a_deleted_pod_stays_for_its_grace_period_then_the_node_removes_it() {
    run_seeds(|| {
        let (server, client) = cluster(NODE_ONLY);
        sim_core::spawn("user", async move {
            let spec = json!({ "terminationGracePeriodSeconds": 20 });
            let pod = Object::new(POD.0, POD.1, NS, "p").with_spec(spec);
            let created = client.create(pod).await.expect("create");
            let Deleted::Pending(pending) = delete(&client, "p", &DeleteOptions::default()).await
            else {
                panic!("a pod with a grace period is not removed at once");
            };
            let asked = sim_core::now();
            let (deadline, grace) = deletion(&pending);
            assert_eq!(grace, 20, "spec.terminationGracePeriodSeconds");
            assert!(deadline >= asked + Duration::from_secs(19), "deadline {deadline:?}");
            assert!(deadline <= asked + Duration::from_secs(20));
            assert_eq!(pending.metadata.generation, created.metadata.generation + 1);
            sleep(Duration::from_secs(19)).await;
            assert!(peek(&server, POD, "p").is_some(), "removed within its grace period");
            sleep(Duration::from_secs(2)).await;
            assert!(peek(&server, POD, "p").is_none(), "not removed after its grace period");
            // The node's DELETE: first written with deletionTimestamp now and grace 0, then
            // removed.
            let history = server.history();
            let last: Vec<_> = history.iter().rev().take(2).collect();
            assert_eq!(last[0].event.event_type, EventType::Deleted);
            assert_eq!(last[1].event.event_type, EventType::Modified);
            assert_eq!(last[0].event.object.metadata.deletion_grace_period_seconds, Some(0));
        });
    });
}

#[test]
fn grace_periods_come_from_the_options_then_the_spec_then_thirty_seconds() {
    run_seeds(|| {
        let (server, client) = cluster(NODE_ONLY);
        sim_core::spawn("user", async move {
            let spec = json!({ "terminationGracePeriodSeconds": 20 });
            client.create(Object::new(POD.0, POD.1, NS, "a").with_spec(spec)).await.expect("a");
            client.create(Object::new(POD.0, POD.1, NS, "b")).await.expect("b");
            let five = DeleteOptions::default().with_grace_period(5);
            assert_eq!(deletion(delete(&client, "a", &five).await.object()).1, 5);
            let default = DeleteOptions::default();
            assert_eq!(deletion(delete(&client, "b", &default).await.object()).1, 30);
            // A longer grace period changes nothing, not even the finalizers.
            let longer = DeleteOptions::propagation(Propagation::Orphan).with_grace_period(60);
            let again = delete(&client, "b", &longer).await;
            assert_eq!(deletion(again.object()).1, 30);
            assert!(again.object().metadata.finalizers.is_empty());
            // A shorter one moves the deadline.
            let ten = DeleteOptions::default().with_grace_period(10);
            let shorter = delete(&client, "b", &ten).await;
            assert_eq!(deletion(shorter.object()).1, 10);
            sleep(Duration::from_secs(6)).await;
            assert!(peek(&server, POD, "a").is_none(), "a: 5 s");
            assert!(peek(&server, POD, "b").is_some(), "b: 10 s");
            sleep(Duration::from_secs(5)).await;
            assert!(peek(&server, POD, "b").is_none(), "b: 10 s");
            // Grace 0 removes at once.
            client.create(Object::new(POD.0, POD.1, NS, "c")).await.expect("c");
            let now = DeleteOptions::default().with_grace_period(0);
            assert!(delete(&client, "c", &now).await.is_removed());
        });
    });
}

#[test]
fn a_finished_pod_or_a_finalizer_changes_the_ending() {
    run_seeds(|| {
        let (server, client) = cluster(NODE_ONLY);
        sim_core::spawn("user", async move {
            // A pod that has Succeeded has nothing to stop: grace 0.
            let pod = client.create(Object::new(POD.0, POD.1, NS, "done")).await.expect("done");
            let mut finished = pod.clone();
            finished.status = json!({ "phase": "Succeeded" });
            client.update_status(finished).await.expect("status");
            assert!(delete(&client, "done", &DeleteOptions::default()).await.is_removed());
            // A finalizer keeps the pod after the node's DELETE; removing it then removes it.
            let held = Object::new(POD.0, POD.1, NS, "held").with_finalizer("example.com/hold");
            client.create(held).await.expect("held");
            let options = DeleteOptions::default().with_grace_period(3);
            delete(&client, "held", &options).await;
            // Removing the finalizer within the grace period does not remove the pod.
            let latest = peek(&server, POD, "held").expect("held");
            let mut released = latest.clone();
            released.metadata.finalizers.clear();
            client.update(released).await.expect("update");
            assert!(peek(&server, POD, "held").is_some(), "in its grace period");
            sleep(Duration::from_secs(4)).await;
            assert!(peek(&server, POD, "held").is_none(), "the node removed it");
            let held = Object::new(POD.0, POD.1, NS, "held2").with_finalizer("example.com/hold");
            client.create(held).await.expect("held2");
            delete(&client, "held2", &options).await;
            sleep(Duration::from_secs(4)).await;
            let kept = peek(&server, POD, "held2").expect("a finalizer keeps it");
            assert_eq!(deletion(&kept).1, 0, "the node's DELETE set the grace period to 0");
            let mut released = kept;
            released.metadata.finalizers.clear();
            client.update(released).await.expect("update");
            assert!(peek(&server, POD, "held2").is_none(), "the last finalizer went");
        });
    });
}

#[test]
fn graceful_deletion_is_off_by_default() {
    run_seeds(|| {
        let server = ApiServer::default();
        let pod = server.create(Object::new(POD.0, POD.1, NS, "p")).expect("create");
        let options = DeleteOptions::default().with_grace_period(30);
        let deleted = server.delete(POD.0, POD.1, NS, "p", &options).expect("delete");
        assert!(deleted.is_removed(), "removed at once without graceful_pod_deletion");
        assert_eq!(deleted.object().metadata.uid, pod.metadata.uid);
    });
}

#[test]
fn the_node_never_removes_a_pod_recreated_under_the_same_name() {
    run_seeds(|| {
        let (server, client) = cluster(NODE_ONLY);
        sim_core::spawn("user", async move {
            client.create(Object::new(POD.0, POD.1, NS, "p")).await.expect("create");
            delete(&client, "p", &DeleteOptions::default().with_grace_period(2)).await;
            // Force it out, then reuse the name before the node's timer fires.
            delete(&client, "p", &DeleteOptions::default().with_grace_period(0)).await;
            let again = client.create(Object::new(POD.0, POD.1, NS, "p")).await.expect("again");
            sleep(Duration::from_secs(5)).await;
            let pod = peek(&server, POD, "p").expect("the new pod stays");
            assert_eq!(pod.metadata.uid, again.metadata.uid);
            assert!(!pod.is_deleting());
            let phase = pod.status.get("phase").and_then(serde_json::Value::as_str);
            assert_eq!(phase, Some("Running"), "the node started it");
        });
    });
}
