//! Claims: the `kubernetes.io/pvc-protection` finalizer (the `StorageObjectInUseProtection`
//! admission plugin adds it, the pvcprotection controller removes it once no pod uses the
//! claim), the 422 on a storage request that shrinks (`ValidatePersistentVolumeClaimUpdate`),
//! and the quantities behind it.

use std::time::Duration;

use apiserver_fake::{
    ApiServer, DeleteOptions, FINALIZER_PVC_PROTECTION, Quantity, Reason, Registry, ServerConfig,
};
use serde_json::json;
use sim_core::sleep;

use super::{Actors, NS, POD, PVC, claim, cluster, peek, pod_using, run_seeds, storage, wait_for};

const PROTECTION: Actors =
    Actors { graceful: true, statefulsets: false, kubelet: true, protection: true, gc: false };

#[test]
fn a_claim_in_use_stays_terminating_until_its_last_pod_is_gone() {
    run_seeds(|| {
        let (server, client) = cluster(PROTECTION);
        sim_core::spawn("user", async move {
            let created = client.create(claim("data", "10Gi")).await.expect("claim");
            assert_eq!(created.metadata.finalizers, [FINALIZER_PVC_PROTECTION], "admission");
            client.create(pod_using("a", &["data"])).await.expect("pod a");
            client.create(pod_using("b", &["data", "other"])).await.expect("pod b");
            let options = DeleteOptions::default();
            client.delete(PVC.0, PVC.1, NS, "data", &options).await.expect("delete claim");
            sleep(Duration::from_secs(30)).await;
            let held = peek(&server, PVC, "data").expect("protected while pods use it");
            assert!(held.is_deleting());
            assert_eq!(held.metadata.finalizers, [FINALIZER_PVC_PROTECTION]);
            let grace = DeleteOptions::default().with_grace_period(5);
            client.delete(POD.0, POD.1, NS, "a", &grace).await.expect("delete a");
            sleep(Duration::from_secs(10)).await;
            assert!(peek(&server, POD, "a").is_none(), "a is gone");
            assert!(peek(&server, PVC, "data").is_some(), "b still uses it");
            client.delete(POD.0, POD.1, NS, "b", &grace).await.expect("delete b");
            // Terminating, b still uses the claim until its object is removed.
            sleep(Duration::from_secs(4)).await;
            assert!(peek(&server, POD, "b").is_some_and(|p| p.is_deleting()));
            assert!(peek(&server, PVC, "data").is_some(), "a Terminating pod still uses it");
            wait_for("the claim to go", Duration::from_secs(30), || {
                peek(&server, PVC, "data").is_none()
            })
            .await;
            assert!(peek(&server, POD, "b").is_none(), "the claim went only after its pod");
        });
    });
}

#[test]
fn an_unused_claim_goes_at_once_and_a_live_one_gets_its_finalizer_back() {
    run_seeds(|| {
        let (server, client) = cluster(PROTECTION);
        sim_core::spawn("user", async move {
            client.create(claim("free", "1Gi")).await.expect("claim");
            client.create(claim("bare", "1Gi")).await.expect("claim");
            let mut bare = peek(&server, PVC, "bare").expect("bare");
            bare.metadata.finalizers.clear();
            client.update(bare).await.expect("drop the finalizer");
            let options = DeleteOptions::default();
            client.delete(PVC.0, PVC.1, NS, "free", &options).await.expect("delete");
            wait_for("free to go", Duration::from_secs(5), || peek(&server, PVC, "free").is_none())
                .await;
            wait_for("the finalizer back", Duration::from_secs(5), || {
                peek(&server, PVC, "bare")
                    .is_some_and(|c| c.has_finalizer(FINALIZER_PVC_PROTECTION))
            })
            .await;
        });
    });
}

#[test]
fn a_claim_never_shrinks() {
    run_seeds(|| {
        let server = ApiServer::new(Registry::builtin(), ServerConfig::default());
        let created = server.create(claim("data", "10Gi")).expect("create");
        let shrink = |storage: &str| {
            let patch = json!({ "spec": { "resources": { "requests": { "storage": storage } } } });
            server.patch(PVC.0, PVC.1, NS, "data", &patch)
        };
        for smaller in ["5Gi", "9.5Gi", "10G", "10737418239", "0"] {
            let error = shrink(smaller).expect_err(smaller);
            assert_eq!((error.code, error.reason), (422, Reason::Invalid), "{smaller}");
            assert_eq!(
                error.message,
                "PersistentVolumeClaim \"data\" is invalid: spec.resources.requests.storage: \
                 Forbidden: field can not be less than previous value"
            );
        }
        assert_eq!(peek(&server, PVC, "data").expect("data"), created, "untouched");
        // The same size written otherwise, and growth, are fine.
        for same_or_more in ["10240Mi", "10Gi", "15Gi"] {
            let updated = shrink(same_or_more).expect(same_or_more);
            assert_eq!(storage(&updated), Some(same_or_more));
        }
        // UPDATE is checked as PATCH is.
        let mut smaller = peek(&server, PVC, "data").expect("data");
        smaller.spec["resources"]["requests"]["storage"] = json!("10Gi");
        assert_eq!(server.update(smaller).expect_err("shrink").code, 422);
        // Not a quantity: the decoder's 400.
        let error = shrink("ten gigs").expect_err("not a quantity");
        assert_eq!(error.reason, Reason::BadRequest);
        assert!(error.message.contains("quantities must match the regular expression"));
        let error = server.create(claim("bad", "1Xi")).expect_err("not a quantity");
        assert_eq!(error.reason, Reason::BadRequest);
    });
}

#[test]
fn quantities_parse_as_upstream_writes_them() {
    let q = |text: &str| Quantity::parse(text).unwrap_or_else(|e| panic!("{e}")).value();
    assert_eq!(q("10Gi"), 10 << 30);
    assert_eq!(q("500Mi"), 500 << 20);
    assert_eq!(q("1G"), 1_000_000_000);
    assert_eq!(q("1.5Gi"), 3 << 29);
    assert_eq!(q("1e3"), 1000);
    assert_eq!(q("2E-1"), 1, "0.2 rounds up to 1");
    assert_eq!(q("100m"), 1);
    assert_eq!(q("-2k"), -2000);
    assert_eq!(q("+7"), 7);
    assert_eq!(Quantity::parse("1n").expect("1n").nanos(), 1);
    assert!(Quantity::parse("1Gi").expect("Gi") > Quantity::parse("1G").expect("G"));
    assert_eq!(Quantity::parse("1024Mi"), Quantity::parse("1Gi"));
    assert_eq!(Quantity::from_json(&json!(5)), Quantity::parse("5"));
    for bad in ["", ".", "Gi", "1.2.3", "1Gb", "1 Gi", "e3", "1e", "--1", "1Gi2"] {
        let error = Quantity::parse(bad).expect_err(bad);
        assert!(error.reason.starts_with("quantities must match"), "{bad}: {error}");
    }
    assert_eq!(Quantity::parse("1e40").expect_err("huge").reason, "out of range");
}
