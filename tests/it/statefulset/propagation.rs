//! Deleting a StatefulSet: the uid precondition (`Preconditions{UID}`, `rest.BeforeDelete`),
//! Orphan propagation (the GC removes the set from its pods' ownerReferences; the pods stay),
//! Background propagation, which is apps/v1's default (the GC deletes the pods, which end
//! after their grace period) — and the claims stay in both (retention `Retain`).

use std::time::Duration;

use apiserver_fake::{DefaultPropagation, DeleteOptions, Propagation, Reason};

use super::{
    Actors, NS, POD, PVC, STS, cluster, names, peek, pods_ready, run_seeds, statefulset, stored,
    wait_for,
};

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn a_uid_precondition_protects_a_recreated_statefulset() {
    run_seeds(|| {
        let (server, client) = cluster(Actors::ALL);
        sim_core::spawn("user", async move {
            let first = client.create(statefulset("web", 1, false)).await.expect("create");
            let options = DeleteOptions::propagation(Propagation::Orphan);
            client.delete(STS.0, STS.1, NS, "web", &options).await.expect("delete");
            wait_for("web to go", MINUTE, || peek(&server, STS, "web").is_none()).await;
            let second = client.create(statefulset("web", 1, false)).await.expect("recreate");
            assert_ne!(first.metadata.uid, second.metadata.uid);
            let stale = DeleteOptions::default().with_uid(&first.metadata.uid);
            let error =
                client.delete(STS.0, STS.1, NS, "web", &stale).await.expect_err("stale uid");
            assert_eq!((error.code, error.reason), (409, Reason::Conflict));
            assert_eq!(
                error.message,
                format!(
                    "Operation cannot be fulfilled on StatefulSet.apps \"web\": the UID in the \
                     precondition ({}) does not match the UID in record ({}). The object might \
                     have been deleted and then recreated",
                    first.metadata.uid, second.metadata.uid
                )
            );
            assert!(peek(&server, STS, "web").is_some_and(|s| !s.is_deleting()));
            let fresh = DeleteOptions::default().with_uid(&second.metadata.uid);
            client.delete(STS.0, STS.1, NS, "web", &fresh).await.expect("matching uid");
        });
    });
}

#[test]
fn orphan_propagation_keeps_the_pods_without_their_owner() {
    run_seeds(|| {
        let (server, client) = cluster(Actors::ALL);
        sim_core::spawn("user", async move {
            client.create(statefulset("web", 2, true)).await.expect("create");
            wait_for("2 pods", MINUTE, || pods_ready(&server, &["web-0", "web-1"])).await;
            let pods = stored(&server, POD);
            let options = DeleteOptions::propagation(Propagation::Orphan);
            client.delete(STS.0, STS.1, NS, "web", &options).await.expect("delete");
            wait_for("the set to go", MINUTE, || peek(&server, STS, "web").is_none()).await;
            sim_core::sleep(MINUTE).await;
            let after = stored(&server, POD);
            assert_eq!(after.len(), 2);
            for (before, after) in pods.iter().zip(&after) {
                assert_eq!(after.metadata.uid, before.metadata.uid, "the same pods");
                assert!(after.metadata.owner_references.is_empty(), "{} orphaned", after.key());
                assert!(!after.is_deleting());
            }
            assert_eq!(names(&server, PVC), ["data-web-0", "data-web-1"]);
        });
    });
}

#[test]
fn background_propagation_is_the_default_and_deletes_the_pods_after_their_grace_period() {
    for explicit in [false, true] {
        run_seeds(|| {
            let (server, client) = cluster(Actors::ALL);
            let info = server.kind_info(STS.0, STS.1).expect("served");
            assert_eq!(info.default_propagation, DefaultPropagation::Background);
            sim_core::spawn("user", async move {
                client.create(statefulset("web", 2, true)).await.expect("create");
                wait_for("2 pods", MINUTE, || pods_ready(&server, &["web-0", "web-1"])).await;
                let claims = stored(&server, PVC);
                let options = if explicit {
                    DeleteOptions::propagation(Propagation::Background)
                } else {
                    DeleteOptions::default()
                };
                client.delete(STS.0, STS.1, NS, "web", &options).await.expect("delete");
                let deleted_at = sim_core::now();
                assert!(peek(&server, STS, "web").is_none(), "background: the set goes at once");
                wait_for("the GC to delete the pods", MINUTE, || {
                    stored(&server, POD).iter().all(|p| p.is_deleting())
                })
                .await;
                // Grace periods of 10 s: the pods are Terminating for a while, then gone.
                sim_core::sleep(Duration::from_secs(5)).await;
                assert_eq!(names(&server, POD).len(), 2, "still in their grace period");
                wait_for("no pods", MINUTE, || names(&server, POD).is_empty()).await;
                assert!(sim_core::now() - deleted_at >= Duration::from_secs(10));
                assert_eq!(stored(&server, PVC), claims, "claims are retained");
            });
        });
    }
}
