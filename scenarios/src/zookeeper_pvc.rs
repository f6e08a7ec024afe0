//! `zookeeper-stale-pvc-cleanup`: an operator that cleans up a deleted cluster's volumes by label
//! acts on a stale view of the cluster after it was recreated, and deletes the new cluster's
//! volume (Sieve's stale states; benchmark bug B1 of docs/09).
//!
//! Upstream: pravega/zookeeper-operator issue #312, `pkg/controller/zookeepercluster`
//! (`reconcileFinalizers`, `cleanUpAllPVCs`, `getPVCList`, `deletePVC`), fixed by PR #313.
//!
//! | modelled step | upstream |
//! |---|---|
//! | the `operator` [`Process`]: informers on ZookeeperClusters and StatefulSets (owned), one worker; a PVC informer started at the first claim LIST, which waits for its sync | the operator's controller-runtime manager, `Watches` of the cluster and its StatefulSet; the cached client's lazily started informers (`informerCache.Get`/`List`) |
//! | a cluster without `cleanUpZookeeperPVC` and not deleting gets it | `reconcileFinalizers`: `r.client.Update` with the finalizer appended |
//! | the StatefulSet `<name>` (controller ownerReference, `replicas`, a claim template `data` labelled `app: <name>`), created if missing | `reconcileStatefulSet`, `MakeStatefulSet` |
//! | a deleting cluster with the finalizer: buggy: LIST PVCs by `app=<name>`, DELETE each by name (no precondition); then remove the finalizer | `cleanUpAllPVCs`, `getPVCList`, `deletePVC`, `reconcileFinalizers` |
//! | fixed: the claim template's labels also carry `uid: <cluster uid>`, and the LIST selects `app=<name>,uid=<uid>`; each DELETE carries the claim's uid as a precondition | PR #313; the precondition is kdst's (below) |
//! | the user creates the cluster, waits until it runs, deletes it, waits until it is gone, creates it again | — |
//!
//! The precondition goes one step beyond PR #313, which deletes each listed claim by name. kdst
//! found what that leaves open: with the operator reconnected to a lagging API server (the
//! cluster stale, being deleted) *and* its claim informer holding back the old claim's DELETED
//! event, #313 lists the old claim from its cache and deletes the new claim of the same name
//! (random walk, seed 1929 of 2,000, `stale-reconnect` then `informer-lag`). With the uid
//! precondition that DELETE is a 409 and nothing is lost.
//!
//! Simplification: pods get a grace period of 3 s (upstream's template leaves the default of
//! 30 s), so a run takes tens of seconds of virtual time rather than minutes.
//!
//! There is no bug-specific oracle: the workload ends with the generic oracles. A
//! `stale-reconnect` perturbation freezes the operator's view of the cluster at its
//! deletionTimestamp; after the recreation the operator reconnects to that lagging server, sees
//! the old cluster being deleted with its finalizer, and deletes the new cluster's claim by
//! label: it stays Terminating while the new pod uses it (`kubernetes.io/pvc-protection`), or,
//! deleted before the pod started, is created again (the new cluster's data is gone either way).
//! In the reference run neither happens: the end states, or the claim's ADDED/DELETED counts,
//! differ.

use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::endstate::{Mask, Oracles};
use apiserver_fake::{
    Action, ApiError, ApiServer, Client, Controller, DeleteOptions, GarbageCollector, GcConfig,
    Informer, KindInfo, Kubelet, KubeletConfig, Object, OwnerReference, PvcProtectionConfig,
    PvcProtectionController, ReconcileResult, Registry, Selector, ServerConfig, StatefulSetConfig,
    StatefulSetController,
};
use serde_json::json;
use sim_core::{FailureKind, Process, sleep, spawn};

use crate::{API_LATENCY, CACHE_LAG, Meta, Param, Params, Scenario, Variant};

const NS: &str = "default";
const GROUP: &str = "zookeeper.pravega.io/v1beta1";
const KIND: &str = "ZookeeperCluster";
const CLUSTER: &str = "zookeeper-cluster";
const FINALIZER: &str = "cleanUpZookeeperPVC";

/// The scenario.
pub struct StalePvcCleanup;

/// Claims deleted by the `app` label alone (#312).
pub const BUGGY: Variant = Variant::fails(
    "buggy",
    "v0.2.9: cleanUpAllPVCs lists claims by app=<name> and deletes each by name",
    FailureKind::Invariant,
    "from the reference run without perturbations",
);

/// PR #313 (claims labelled and listed by the cluster's uid too), and deleted with a uid
/// precondition (see the module docs).
pub const FIXED: Variant = Variant::holds(
    "fixed",
    "PR #313: claims carry the cluster's uid and are listed by it; deleted with a uid precondition",
);

const PARAMS: &[Param] = &[API_LATENCY.param, CACHE_LAG.param];

const META: Meta = Meta {
    name: "zookeeper-stale-pvc-cleanup",
    summary: "a stale view of a deleted cluster makes the operator delete the new cluster's volume",
    upstream: &[
        "https://github.com/pravega/zookeeper-operator/issues/312",
        "https://github.com/pravega/zookeeper-operator/pull/313",
    ],
    variants: &[BUGGY, FIXED],
    params: PARAMS,
};

const KINDS: &[(&str, &str)] =
    &[(GROUP, KIND), ("apps/v1", "StatefulSet"), ("v1", "Pod"), ("v1", "PersistentVolumeClaim")];

impl Scenario for StalePvcCleanup {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn generic_oracles(&self) -> Option<Oracles> {
        // The fixed variant labels claims with the cluster's uid: a value, like a uid, that
        // differs between equivalent runs.
        let mask = Mask::default()
            .field("PersistentVolumeClaim", "/metadata/labels/uid")
            .field("StatefulSet", "/spec/volumeClaimTemplates/*/metadata/labels/uid");
        Some(Oracles::new(KINDS).with_mask(mask))
    }

    fn setup(&self, variant: &Variant, params: &Params) {
        let fixed = variant.is(&FIXED);
        let mut registry = Registry::builtin();
        registry.register(KindInfo::custom(GROUP, KIND, "zookeeperclusters", true));
        let config =
            ServerConfig::default().with_update_summary(true).with_graceful_pod_deletion(true);
        let server = ApiServer::new(registry, config);
        let client = |name: &str| Client::new(&server, name, crate::client_config(params));
        let gc_kinds = [(GROUP, KIND), ("apps/v1", "StatefulSet"), ("v1", "Pod")];
        GarbageCollector::start(&client("gc"), GcConfig::default().with_kinds(&gc_kinds));
        StatefulSetController::start(
            &client("statefulset-controller"),
            StatefulSetConfig::default(),
        );
        PvcProtectionController::start(&client("pvc-protection"), PvcProtectionConfig::default());
        Kubelet::start(&client("kubelet"), KubeletConfig::default());
        let informer_config = crate::informer_config_with(params, CACHE_LAG);
        let operator = client("operator");
        Process::start("operator", move || {
            let informer = |name: &str, api: &str, kind: &str| {
                Informer::new(name, &operator, api, kind, Some(NS), informer_config)
            };
            let clusters = informer("operator/clusters", GROUP, KIND);
            let sets = informer("operator/statefulsets", "apps/v1", "StatefulSet");
            let controller = Controller::new("operator", 1);
            controller.watches(&clusters);
            controller.owns(&sets, GROUP, KIND);
            clusters.start();
            sets.start();
            // controller-runtime's cached client starts an informer for a kind at its first
            // List and waits for it to sync: the operator's first claim LIST is fresh.
            let lister = operator.clone();
            let claims = Rc::new(Lazy::new(move || {
                let kind = "PersistentVolumeClaim";
                Informer::new("operator/pvcs", &lister, "v1", kind, Some(NS), informer_config)
            }));
            let (client, clusters, sets) = (operator.clone(), clusters.cache(), sets.cache());
            controller.start(move |key| {
                let (client, clusters, sets, claims) =
                    (client.clone(), clusters.clone(), sets.clone(), claims.clone());
                async move {
                    let Some(cluster) = clusters.get(&key.namespace, &key.name) else {
                        return Ok(Action::Done);
                    };
                    reconcile(&client, &cluster, &sets, &claims, fixed).await
                }
            });
        });
        let oracles = self.generic_oracles().expect("declared");
        let user = client("user");
        spawn("user", async move {
            let cluster = || {
                Object::new(GROUP, KIND, NS, CLUSTER).with_spec(json!({
                    "replicas": 1,
                    "persistence": { "reclaimPolicy": "Delete" },
                }))
            };
            user.create(cluster()).await.expect("the cluster");
            wait_running(&server).await;
            let options = DeleteOptions::default();
            user.delete(GROUP, KIND, NS, CLUSTER, &options).await.expect("deleted");
            let gone = || !server.exists(GROUP, KIND, NS, CLUSTER);
            wait_until(&server, "the cluster's deletion", gone).await;
            user.create(cluster()).await.expect("the cluster again");
            oracles.settle(&server).await;
        });
    }
}

/// One reconcile of a cluster (from the operator's cache).
async fn reconcile(
    client: &Client,
    cluster: &Object,
    sets: &apiserver_fake::Cache,
    claims: &Lazy,
    fixed: bool,
) -> ReconcileResult {
    let name = &cluster.metadata.name;
    if cluster.is_deleting() {
        if !cluster.has_finalizer(FINALIZER) {
            return Ok(Action::Done);
        }
        // `cleanUpAllPVCs`: the claims of the cluster, from the cache.
        let text = if fixed {
            format!("app={name},uid={}", cluster.metadata.uid)
        } else {
            format!("app={name}")
        };
        let selector = Selector::parse(&text).expect("a selector");
        for claim in claims.cache().await.list_selector(Some(NS), &selector) {
            // Fixed: with the claim's uid as a precondition (see the module docs).
            let options = match fixed {
                true => DeleteOptions::default().with_uid(&claim.metadata.uid),
                false => DeleteOptions::default(),
            };
            let claim = &claim.metadata.name;
            match client.delete("v1", "PersistentVolumeClaim", NS, claim, &options).await {
                Err(error) if error.is_conflict() && fixed => {}
                result => ignore_not_found(result)?,
            }
        }
        let mut done = cluster.clone();
        done.metadata.finalizers.retain(|f| f != FINALIZER);
        client.update(done).await?;
        return Ok(Action::Done);
    }
    if !cluster.has_finalizer(FINALIZER) {
        client.update(cluster.clone().with_finalizer(FINALIZER)).await?;
        return Ok(Action::Done);
    }
    // `reconcileStatefulSet`: a Get from the cache; not found → Create.
    if sets.get(NS, name).is_none() {
        let mut labels = json!({ "app": name });
        if fixed {
            labels["uid"] = json!(cluster.metadata.uid);
        }
        let replicas = cluster.spec["replicas"].as_i64().unwrap_or(1);
        let set = Object::new("apps/v1", "StatefulSet", NS, name)
            .with_owner(OwnerReference::controller_of(cluster))
            .with_spec(json!({
                "replicas": replicas,
                "selector": { "matchLabels": { "app": name } },
                "template": {
                    "metadata": { "labels": { "app": name } },
                    "spec": {
                        "containers": [{ "name": "zookeeper" }],
                        "terminationGracePeriodSeconds": 3,
                    },
                },
                "volumeClaimTemplates": [{
                    "metadata": { "name": "data", "labels": labels },
                    "spec": { "resources": { "requests": { "storage": "20Gi" } } },
                }],
            }));
        match client.create(set).await {
            Err(error) if !error.is_already_exists() => Err(error)?,
            _ => {}
        }
    }
    Ok(Action::Done)
}

/// An informer started at first use, which waits until it has synced.
struct Lazy {
    make: Box<dyn Fn() -> Informer>,
    informer: std::cell::RefCell<Option<Informer>>,
}

impl Lazy {
    fn new(make: impl Fn() -> Informer + 'static) -> Self {
        Lazy { make: Box::new(make), informer: std::cell::RefCell::new(None) }
    }

    async fn cache(&self) -> apiserver_fake::Cache {
        let informer = self
            .informer
            .borrow_mut()
            .get_or_insert_with(|| {
                let informer = (self.make)();
                informer.start();
                informer
            })
            .clone();
        informer.wait_synced().await;
        informer.cache()
    }
}

fn ignore_not_found<T>(result: Result<T, ApiError>) -> Result<(), ApiError> {
    match result {
        Err(error) if !error.is_not_found() => Err(error),
        _ => Ok(()),
    }
}

/// Waits until the cluster runs: its claim exists and is not deleting, its pod is Ready.
async fn wait_running(server: &ApiServer) {
    let running = || {
        let claim = server.get("v1", "PersistentVolumeClaim", NS, &format!("data-{CLUSTER}-0"));
        let pod = server.get("v1", "Pod", NS, &format!("{CLUSTER}-0"));
        let ready = |pod: &Object| {
            pod.status["conditions"].as_array().is_some_and(|conditions| {
                conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        };
        claim.is_ok_and(|c| !c.is_deleting()) && pod.is_ok_and(|p| !p.is_deleting() && ready(&p))
    };
    wait_until(server, "the cluster to run", running).await;
}

/// Polls `done` every 100 ms (the user looks at the server, not at a cache); fails the run
/// after 5 minutes.
async fn wait_until(_server: &ApiServer, what: &str, done: impl Fn() -> bool) {
    let start = sim_core::now();
    while !done() {
        if sim_core::now() - start > Duration::from_secs(300) {
            sim_core::fail(FailureKind::Liveness, format!("waited 5 minutes for {what}"), "");
        }
        sleep(Duration::from_millis(100)).await;
    }
}
