//! `rabbitmq-crash-mid-resize`: an operator grows its cluster's volumes by orphan-deleting the
//! StatefulSet, resizing the claims and recreating the set; a crash right after the delete
//! leaves the claims at the old size for ever, because the restarted operator only looks for a
//! resize when the StatefulSet exists (Sieve's intermediate states;
//! benchmark bug B4 of docs/09, Sieve's plan `rabbitmq-operator-intermediate-state-1`).
//!
//! Upstream: rabbitmq/cluster-operator, issue #782, in `controllers/rabbitmqcluster_controller.go`
//! (`Reconcile`: "only checks for PVC expansion and scale down if statefulSet is created") and
//! `controllers/reconcile_persistence.go` (`reconcilePVC`, `needsPVCExpand`, `expandPVC`,
//! `deleteSts`, `updatePVC`), fixed by PR #838 ("Make PVC scaling more idempotent & resilient to
//! crashes"), which moved the scaling to `internal/scaling/scaling.go`
//! (`PersistenceScaler.Scale`, `getClusterPVCs`, `pvcsNeedingScaling`, `deleteSts`,
//! `scaleUpPVCs`) and calls it whether or not the StatefulSet exists.
//!
//! | modelled step | upstream |
//! |---|---|
//! | the `operator` [`Process`]: informers on `RabbitmqCluster` (For) and `StatefulSet` (Owns), one worker | the operator's controller-runtime manager |
//! | the desired set `<cluster>-server`: `spec.replicas` pods, Parallel, one claim template `persistence` of `spec.persistence.storage` | `internal/resource/statefulset.go` (`StatefulSetBuilder`) |
//! | buggy: GET the set; NotFound → straight to CreateOrUpdate | `Reconcile`: `if !k8serrors.IsNotFound(err) { … reconcilePVC … }` |
//! | buggy: template storage < desired → DELETE (Orphan) the set (W1), GET until NotFound (10 × 3 s) | `needsPVCExpand`, `expandPVC` → `deleteSts`, `retryWithInterval` |
//! | buggy: for i < the set's replicas, GET `persistence-<cluster>-server-<i>` and UPDATE its storage (W2) | `updatePVC` |
//! | fixed: the set's template larger than desired → error; GET each `persistence-<sts>-<i>` for i < `spec.replicas` (NotFound skipped); those smaller than desired need scaling; none → done | PR #838: `Scale`, `existingCapacity`, `getClusterPVCs`, `pvcsNeedingScaling` |
//! | fixed: GET the set, DELETE (Orphan) it only if it exists, GET until NotFound; then GET and UPDATE each claim | PR #838: `deleteSts`, `scaleUpPVCs` |
//! | both: GET the set; NotFound → CREATE (W3); a spec that differs → UPDATE, retried on conflict | `controllerutil.CreateOrUpdate` in `clientretry.RetryOnConflict` |
//! | the StatefulSet controller adopts the orphaned pod, and never resizes a claim | kube-controller-manager |
//! | the user creates the cluster at 10Gi, waits until it runs, patches it to 15Gi | — |
//!
//! Simplified: the operator reads the StatefulSet and the claims with live GETs (upstream's
//! buggy version reads the set through the manager's cache; #838's scaler uses a live
//! clientset); the cluster has no status, Services, ConfigMaps or Secrets (none of them take part
//! in the bug); the ephemeral-to-persistent refusal and the scale-down check are left out
//! (storage is never 0 here and replicas never shrink).
//!
//! There is no bug-specific oracle. The workload ends with the generic oracles
//! ([`Scenario::generic_oracles`]): the cluster must settle, and its end state (the custom
//! resource, the set, its pods and claims, masked) must equal the reference run's, which runs
//! the same workload without perturbations. A `crash-after-write` right after W1 makes the
//! difference: the restarted operator finds no set, skips the expansion and creates the set
//! with the 15Gi template, so the claim stays at 10Gi; in the reference run it is 15Gi.
//!
//! The fix is not proof against a `stale-reconnect` landing in the same window: restarted with
//! the cluster frozen at 10Gi, #838's operator finds no claim to scale and creates the set with
//! the 10Gi template, and the catch-up deletes and recreates it at 15Gi. The end state is the
//! reference's; the set's ADDED/DELETED counts (3/2 against 2/1) are not. Upstream's code does
//! the same (#653's shape: #658's shrink check needs the set to exist).

use std::cmp::Ordering;
use std::time::Duration;

use apiserver_fake::endstate::Oracles;
use apiserver_fake::{
    Action, ApiError, ApiServer, Client, Controller, DeleteOptions, GarbageCollector, GcConfig,
    Informer, KindInfo, Kubelet, KubeletConfig, Mask, Object, ObjectKey, OwnerReference,
    Propagation, PvcProtectionConfig, PvcProtectionController, Quantity, ReconcileError,
    ReconcileResult, Registry, ServerConfig, StatefulSetConfig, StatefulSetController,
};
use serde_json::{Value, json};
use sim_core::{FailureKind, Process, sleep, spawn};

use crate::{API_LATENCY, CACHE_LAG, Meta, Param, Params, Scenario, Variant};

const NS: &str = "rabbitmq";
const GROUP: &str = "rabbitmq.com/v1beta1";
const KIND: &str = "RabbitmqCluster";
const CLUSTER: &str = "rabbitmq-cluster";
const STS: (&str, &str) = ("apps/v1", "StatefulSet");
const POD: (&str, &str) = ("v1", "Pod");
const PVC: (&str, &str) = ("v1", "PersistentVolumeClaim");
/// The claim template's name (`persistenceStorageCapacity` looks it up by this name).
const TEMPLATE: &str = "persistence";
/// The storage the user starts with and the one they grow to.
const BEFORE: &str = "10Gi";
const AFTER: &str = "15Gi";
/// How long the user waits for the cluster to come up.
const UP_BOUND: Duration = Duration::from_secs(120);

/// The scenario.
pub struct CrashMidResize;

/// The expansion check runs only when the StatefulSet exists (#782).
pub const BUGGY: Variant = Variant::fails(
    "buggy",
    "before #838: PVC expansion is checked only if the StatefulSet exists",
    FailureKind::Invariant,
    "the end state differs from the reference run",
);

/// PR #838: the claims to scale come from the live claims, whether or not the set exists.
pub const FIXED: Variant = Variant::holds(
    "fixed",
    "PR #838: PVCs needing scaling read live; the set deleted only if some do",
);

const PARAMS: &[Param] = &[API_LATENCY.param, CACHE_LAG.param];

const META: Meta = Meta {
    name: "rabbitmq-crash-mid-resize",
    summary: "a crash between orphan-deleting the StatefulSet and resizing the PVCs leaves them small",
    upstream: &[
        "https://github.com/rabbitmq/cluster-operator/issues/782",
        "https://github.com/rabbitmq/cluster-operator/pull/838",
    ],
    variants: &[BUGGY, FIXED],
    params: PARAMS,
};

impl Scenario for CrashMidResize {
    fn meta(&self) -> &'static Meta {
        &META
    }

    /// The custom resource, the set, its pods and its claims, under [`Mask::default`] (uids,
    /// resourceVersions, timestamps, generations, owners' uids) and nothing more: once the
    /// cluster has settled, every other field is a function of the cluster's spec. The pod is
    /// the same object in every run (orphaned and adopted, never recreated), with the status the
    /// kubelet gives it; the recreated set's `status` counts that one Ready pod; its
    /// `status.observedGeneration` is its first generation, because CreateOrUpdate only ever
    /// creates it (a spec that differs is always preceded by the orphan delete). Checked on the
    /// fixed variant over seeds 0..10,000 of the portfolio.
    fn generic_oracles(&self) -> Option<Oracles> {
        let mask = Mask::default();
        Some(Oracles::new(&[(GROUP, KIND), STS, POD, PVC]).with_mask(mask))
    }

    fn setup(&self, variant: &Variant, params: &Params) {
        let fixed = variant.is(&FIXED);
        let mut registry = Registry::builtin();
        registry.register(KindInfo::custom(GROUP, KIND, "rabbitmqclusters", true));
        let server = ApiServer::new(registry, ServerConfig::default().with_update_summary(true));
        server.create(Object::new("v1", "Namespace", "", NS)).expect("the namespace");
        let client = |name: &str| Client::new(&server, name, crate::client_config(params));
        let informer = crate::informer_config(params);
        StatefulSetController::start(
            &client("statefulset-controller"),
            StatefulSetConfig::default().with_informer(informer),
        );
        PvcProtectionController::start(
            &client("pvc-protection"),
            PvcProtectionConfig::default().with_informer(informer),
        );
        Kubelet::start(&client("kubelet"), KubeletConfig::default().with_informer(informer));
        let gc = GcConfig::default().with_kinds(&[(GROUP, KIND), STS, POD]).with_informer(informer);
        GarbageCollector::start(&client("gc"), gc);
        let informer_config = crate::informer_config_with(params, CACHE_LAG);
        let operator = client("operator");
        Process::start("operator", move || {
            let clusters = Informer::new(
                "operator/clusters",
                &operator,
                GROUP,
                KIND,
                Some(NS),
                informer_config,
            );
            let sets = Informer::new(
                "operator/statefulsets",
                &operator,
                STS.0,
                STS.1,
                Some(NS),
                informer_config,
            );
            let controller = Controller::new("operator", 1);
            controller.watches(&clusters);
            controller.owns(&sets, GROUP, KIND);
            clusters.start();
            sets.start();
            let (client, cache) = (operator.clone(), clusters.cache());
            controller.start(move |key| {
                let (client, cache) = (client.clone(), cache.clone());
                async move {
                    let Some(cluster) = cache.get(&key.namespace, &key.name) else {
                        return Ok(Action::Done);
                    };
                    reconcile(&client, &cluster, fixed).await
                }
            });
        });
        let oracles = self.generic_oracles().expect("declared");
        let user = client("user");
        spawn("user", async move {
            let cluster = Object::new(GROUP, KIND, NS, CLUSTER)
                .with_spec(json!({ "replicas": 1, "persistence": { "storage": BEFORE } }));
            user.create(cluster).await.expect("the cluster");
            wait_until_up(&server).await;
            let patch = json!({ "spec": { "persistence": { "storage": AFTER } } });
            user.patch(GROUP, KIND, NS, CLUSTER, &patch).await.expect("the resize");
            oracles.settle(&server).await;
        });
    }
}

/// Polls the server (not a cache) until the first claim exists at [`BEFORE`] and the first
/// pod is Running and Ready; panics after [`UP_BOUND`].
async fn wait_until_up(server: &ApiServer) {
    let start = sim_core::now();
    let (claim, pod) = (claim_name(0), format!("{}-0", sts_name()));
    loop {
        let claim_ok =
            server.peek(PVC.0, PVC.1, NS, &claim).is_some_and(|c| storage_text(&c) == Some(BEFORE));
        let pod_ok = server.peek(POD.0, POD.1, NS, &pod).is_some_and(|p| is_ready(&p));
        if claim_ok && pod_ok {
            return;
        }
        assert!(
            sim_core::now() - start < UP_BOUND,
            "the cluster did not come up within {UP_BOUND:?} (claim {claim} at {BEFORE}: \
             {claim_ok}, pod {pod} Ready: {pod_ok})"
        );
        sleep(Duration::from_millis(100)).await;
    }
}

/// Phase `Running` and the condition `Ready=True`.
fn is_ready(pod: &Object) -> bool {
    pod.status["phase"] == "Running"
        && pod.status["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// `rmq.ChildResourceName("server")`.
fn sts_name() -> String {
    format!("{CLUSTER}-server")
}

/// `rmq.PVCName(i)`: `persistence-<cluster>-server-<i>`.
fn claim_name(ordinal: u64) -> String {
    format!("{TEMPLATE}-{}-{ordinal}", sts_name())
}

/// `spec.resources.requests.storage` of a claim, as text.
fn storage_text(claim: &Object) -> Option<&str> {
    claim.spec.pointer("/resources/requests/storage").and_then(Value::as_str)
}

/// A storage request as a quantity (`None`: absent or not a quantity).
fn quantity(value: Option<&Value>) -> Option<Quantity> {
    value.and_then(|v| Quantity::from_json(v).ok())
}

/// `persistenceStorageCapacity`: the `persistence` template's request (0 without one).
fn template_capacity(set: &Object) -> Quantity {
    set.spec["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["metadata"]["name"] == TEMPLATE)
        .and_then(|t| quantity(t.pointer("/spec/resources/requests/storage")))
        .unwrap_or(Quantity::ZERO)
}

/// `spec.replicas` (nil: 1).
fn replicas(object: &Object) -> u64 {
    object.spec["replicas"].as_u64().unwrap_or(1)
}

/// The StatefulSet the cluster's spec asks for, owned by the cluster.
fn desired_set(cluster: &Object, storage: &str) -> Object {
    let labels =
        json!({ "app.kubernetes.io/name": CLUSTER, "app.kubernetes.io/component": "rabbitmq" });
    Object::new(STS.0, STS.1, NS, &sts_name())
        .with_owner(OwnerReference::controller_of(cluster))
        .with_spec(json!({
            "replicas": replicas(cluster),
            "serviceName": format!("{CLUSTER}-nodes"),
            "podManagementPolicy": "Parallel",
            "selector": { "matchLabels": { "app.kubernetes.io/name": CLUSTER } },
            "template": {
                "metadata": { "labels": labels },
                "spec": { "containers": [{ "name": "rabbitmq", "image": "rabbitmq:3.8" }] },
            },
            "volumeClaimTemplates": [{
                "metadata": { "name": TEMPLATE, "labels": labels },
                "spec": { "accessModes": ["ReadWriteOnce"],
                          "resources": { "requests": { "storage": storage } } },
            }],
        }))
}

/// One reconcile of the cluster.
async fn reconcile(client: &Client, cluster: &Object, fixed: bool) -> ReconcileResult {
    let storage = cluster.spec["persistence"]["storage"].as_str().unwrap_or(BEFORE).to_string();
    let Ok(desired) = Quantity::parse(&storage) else {
        sim_core::event(format!("operator: invalid storage {storage:?}"));
        return Ok(Action::Done);
    };
    let current = get(client, STS, &sts_name()).await?;
    if fixed {
        // #838: `reconcilePVC` → `PersistenceScaler.Scale`, whether or not the set exists.
        scale(client, cluster, current.as_ref(), desired, &storage).await?;
    } else if let Some(current) = &current {
        // Before #838: "only checks for PVC expansion … if statefulSet is created".
        match template_capacity(current).cmp(&desired) {
            Ordering::Less => {
                delete_set(client).await?;
                for ordinal in 0..replicas(current) {
                    let claim = get(client, PVC, &claim_name(ordinal)).await?.ok_or_else(|| {
                        other(format!(
                            "failed to get PersistentVolumeClaim {}",
                            claim_name(ordinal)
                        ))
                    })?;
                    resize(client, claim, &storage).await?;
                }
            }
            Ordering::Greater => {
                return Err(other("shrinking persistent volumes is not supported"));
            }
            Ordering::Equal => {}
        }
    }
    create_or_update(client, desired_set(cluster, &storage)).await?;
    Ok(Action::Done)
}

/// PR #838's `Scale`: the live claims decide.
async fn scale(
    client: &Client,
    cluster: &Object,
    current: Option<&Object>,
    desired: Quantity,
    storage: &str,
) -> Result<(), ReconcileError> {
    if current.is_some_and(|set| template_capacity(set) > desired) {
        return Err(other("shrinking persistent volumes is not supported"));
    }
    let mut to_scale = Vec::new();
    for ordinal in 0..replicas(cluster) {
        let Some(claim) = get(client, PVC, &claim_name(ordinal)).await? else { continue };
        if quantity(claim.spec.pointer("/resources/requests/storage")).unwrap_or(Quantity::ZERO)
            < desired
        {
            to_scale.push(claim.metadata.name.clone());
        }
    }
    if to_scale.is_empty() {
        return Ok(());
    }
    if get(client, STS, &sts_name()).await?.is_some() {
        delete_set(client).await?;
    }
    for name in to_scale {
        // "retrieve the latest version of this PVC before updating"
        let claim = get(client, PVC, &name)
            .await?
            .ok_or_else(|| other(format!("failed to get PersistentVolumeClaim {name}")))?;
        resize(client, claim, storage).await?;
    }
    Ok(())
}

/// `deleteSts`: DELETE with propagation Orphan, then GET until NotFound (10 tries, 3 s apart).
async fn delete_set(client: &Client) -> Result<(), ReconcileError> {
    let options = DeleteOptions::propagation(Propagation::Orphan);
    match client.delete(STS.0, STS.1, NS, &sts_name(), &options).await {
        Err(error) if !error.is_not_found() => return Err(error.into()),
        _ => {}
    }
    for _ in 0..10 {
        if get(client, STS, &sts_name()).await?.is_none() {
            return Ok(());
        }
        sleep(Duration::from_secs(3)).await;
    }
    Err(other(format!("statefulSet not deleting after 30 seconds {}", sts_name())))
}

/// Sets a claim's storage request and UPDATEs it.
async fn resize(client: &Client, mut claim: Object, storage: &str) -> Result<(), ReconcileError> {
    claim.spec["resources"]["requests"]["storage"] = json!(storage);
    client.update(claim).await?;
    Ok(())
}

/// `controllerutil.CreateOrUpdate` inside `RetryOnConflict` (5 tries).
async fn create_or_update(client: &Client, desired: Object) -> Result<(), ReconcileError> {
    for _ in 0..5 {
        let Some(mut current) = get(client, STS, &desired.metadata.name).await? else {
            client.create(desired).await?;
            return Ok(());
        };
        if current.spec == desired.spec
            && current.metadata.owner_references == desired.metadata.owner_references
        {
            return Ok(());
        }
        current.spec = desired.spec.clone();
        current.metadata.owner_references = desired.metadata.owner_references.clone();
        match client.update(current).await {
            Err(error) if error.is_conflict() => continue,
            result => return result.map(|_| ()).map_err(Into::into),
        }
    }
    Err(other("CreateOrUpdate of the StatefulSet kept conflicting"))
}

/// GET an object of the namespace: `None` if it is not there.
async fn get(
    client: &Client,
    (api_version, kind): (&str, &str),
    name: &str,
) -> Result<Option<Object>, ApiError> {
    match client.get(api_version, kind, NS, name).await {
        Ok(object) => Ok(Some(object)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

fn other(message: impl Into<String>) -> ReconcileError {
    ReconcileError::Other(message.into())
}

/// The key of the cluster, for tests.
pub fn cluster_key() -> ObjectKey {
    ObjectKey::new(NS, CLUSTER)
}
