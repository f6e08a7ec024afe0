//! Tests: the StatefulSet machinery of apiserver-fake over many seeds: the StatefulSet
//! controller (pods and claims from templates, OrderedReady and Parallel, scale-down highest
//! ordinal first, adoption and release, claims never resized or deleted), pods that terminate
//! after their grace period (the server's graceful deletion and the simulated node), the
//! `kubernetes.io/pvc-protection` finalizer with its admission and controller, the 422 on a
//! claim that shrinks, DELETE preconditions and Orphan / Background propagation of a
//! StatefulSet through the GC, and the determinism of it all.
//!
//! This file holds the helpers and the determinism test; each concern has a file of its own.

mod controller;
mod propagation;
mod protection;
mod termination;

use std::time::Duration;

use apiserver_fake::{
    ApiServer, Client, ClientConfig, GarbageCollector, GcConfig, InformerConfig, Kubelet,
    KubeletConfig, Latency, Object, PvcProtectionConfig, PvcProtectionController, Registry,
    ServerConfig, StatefulSetConfig, StatefulSetController,
};
use serde_json::{Value, json};
use sim_core::{Outcome, Simulation, sleep};

const SEEDS: u64 = 100;
const NS: &str = "default";
const STS: (&str, &str) = ("apps/v1", "StatefulSet");
const POD: (&str, &str) = ("v1", "Pod");
const PVC: (&str, &str) = ("v1", "PersistentVolumeClaim");

/// Runs `setup` under seeds `0..SEEDS`; every run must complete.
fn run_seeds(setup: impl Fn()) {
    let mut sim = Simulation::default();
    for seed in 0..SEEDS {
        let outcome = sim.run(seed, &setup);
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
    }
}

/// Which actors [`cluster`] starts.
#[derive(Clone, Copy)]
struct Actors {
    graceful: bool,
    statefulsets: bool,
    kubelet: bool,
    protection: bool,
    gc: bool,
}

impl Actors {
    /// Everything, with graceful pod deletion.
    const ALL: Actors =
        Actors { graceful: true, statefulsets: true, kubelet: true, protection: true, gc: true };
}

/// A server and a client for the test, with the chosen actors (each on its own client).
/// Informers lag by up to 2 ms. Call it in a run's setup.
fn cluster(actors: Actors) -> (ApiServer, Client) {
    let config = ServerConfig::default().with_graceful_pod_deletion(actors.graceful);
    let server = ApiServer::new(Registry::builtin(), config);
    let client = |name: &str| Client::new(&server, name, ClientConfig::default());
    let informer = InformerConfig::default()
        .with_delivery_delay(Latency::range(Duration::ZERO, Duration::from_millis(2)));
    if actors.statefulsets {
        let config = StatefulSetConfig::default().with_informer(informer);
        StatefulSetController::start(&client("statefulset-controller"), config);
    }
    if actors.kubelet {
        Kubelet::start(&client("kubelet"), KubeletConfig::default().with_informer(informer));
    }
    if actors.protection {
        let config = PvcProtectionConfig::default().with_informer(informer);
        PvcProtectionController::start(&client("pvc-protection"), config);
    }
    if actors.gc {
        let kinds = [STS, POD, PVC];
        let config = GcConfig::default().with_workers(2).with_kinds(&kinds).with_informer(informer);
        GarbageCollector::start(&client("gc"), config);
    }
    (server.clone(), client("test"))
}

/// A StatefulSet `name` with `replicas` pods labelled `app=<name>` and one claim template
/// `data` (labels `tier=storage`, 1Gi); `Parallel` pod management if `parallel`.
fn statefulset(name: &str, replicas: u64, parallel: bool) -> Object {
    let policy = if parallel { "Parallel" } else { "OrderedReady" };
    Object::new(STS.0, STS.1, NS, name).with_spec(json!({
        "replicas": replicas,
        "serviceName": name,
        "podManagementPolicy": policy,
        "selector": { "matchLabels": { "app": name } },
        "template": {
            "metadata": { "labels": { "app": name, "role": "db" } },
            "spec": { "containers": [{ "name": "main", "image": "db:1" }],
                      "terminationGracePeriodSeconds": 10 },
        },
        "volumeClaimTemplates": [{
            "metadata": { "name": "data", "labels": { "tier": "storage" } },
            "spec": { "accessModes": ["ReadWriteOnce"],
                      "resources": { "requests": { "storage": "1Gi" } } },
        }],
    }))
}

/// A claim `name` requesting `storage`.
fn claim(name: &str, storage: &str) -> Object {
    Object::new(PVC.0, PVC.1, NS, name)
        .with_spec(json!({ "resources": { "requests": { "storage": storage } } }))
}

/// A pod `name` that mounts the claims `claims`.
fn pod_using(name: &str, claims: &[&str]) -> Object {
    let volumes: Vec<Value> = claims
        .iter()
        .map(|c| json!({ "name": c, "persistentVolumeClaim": { "claimName": c } }))
        .collect();
    Object::new(POD.0, POD.1, NS, name).with_spec(json!({ "volumes": volumes }))
}

/// The stored objects of `kind` in [`NS`], by name (no trace event).
fn stored(server: &ApiServer, kind: (&str, &str)) -> Vec<Object> {
    server
        .objects()
        .into_iter()
        .filter(|o| (o.api_version.as_str(), o.kind.as_str()) == kind && o.metadata.namespace == NS)
        .collect()
}

/// The names of the stored objects of `kind`.
fn names(server: &ApiServer, kind: (&str, &str)) -> Vec<String> {
    stored(server, kind).into_iter().map(|o| o.metadata.name).collect()
}

fn peek(server: &ApiServer, kind: (&str, &str), name: &str) -> Option<Object> {
    server.peek(kind.0, kind.1, NS, name)
}

/// Waits (polling every 100 ms of virtual time) until `done` holds; panics after `limit`.
async fn wait_for(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = sim_core::now() + limit;
    while !done() {
        assert!(sim_core::now() < deadline, "timed out after {limit:?} waiting for {what}");
        sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the pods of `server` are exactly `expected`, each Running and Ready and not
/// Terminating.
fn pods_ready(server: &ApiServer, expected: &[&str]) -> bool {
    let pods = stored(server, POD);
    pods.len() == expected.len()
        && pods.iter().zip(expected).all(|(pod, name)| {
            pod.metadata.name == *name
                && !pod.is_deleting()
                && pod.status.get("phase").and_then(Value::as_str) == Some("Running")
        })
}

fn storage(object: &Object) -> Option<&str> {
    object.spec.pointer("/resources/requests/storage").and_then(Value::as_str)
}

/// A StatefulSet's life: created with 3 pods, scaled to 1, deleted in the background.
fn lifecycle() {
    let (server, client) = cluster(Actors::ALL);
    sim_core::spawn("user", async move {
        client.create(statefulset("web", 3, false)).await.expect("create");
        wait_for("3 pods", Duration::from_secs(120), || {
            pods_ready(&server, &["web-0", "web-1", "web-2"])
        })
        .await;
        let patch = json!({ "spec": { "replicas": 1 } });
        client.patch(STS.0, STS.1, NS, "web", &patch).await.expect("scale down");
        wait_for("1 pod", Duration::from_secs(120), || pods_ready(&server, &["web-0"])).await;
        let options = apiserver_fake::DeleteOptions::default();
        client.delete(STS.0, STS.1, NS, "web", &options).await.expect("delete");
        wait_for("no pod", Duration::from_secs(120), || names(&server, POD).is_empty()).await;
    });
}

#[test]
fn the_same_seed_gives_the_same_trace_twice() {
    let mut sim = Simulation::default();
    let mut hashes = Vec::new();
    for seed in 0..20 {
        assert_eq!(sim.run(seed, lifecycle), Outcome::Completed, "seed {seed}");
        let first = sim.trace().hash();
        assert_eq!(sim.run(seed, lifecycle), Outcome::Completed, "seed {seed}, again");
        assert_eq!(sim.trace().hash(), first, "seed {seed} gave two traces");
        let mut fresh = Simulation::default();
        assert_eq!(fresh.run(seed, lifecycle), Outcome::Completed, "seed {seed}, fresh");
        assert_eq!(fresh.trace().hash(), first, "seed {seed} in a fresh simulation");
        hashes.push(first);
    }
    hashes.sort_unstable();
    hashes.dedup();
    assert!(hashes.len() > 10, "20 seeds gave only {} distinct traces", hashes.len());
}
