//! `cassandra-unobserved-pod-deletion`: an operator deletes a decommissioned node's volume when
//! its cache shows the node's pod Terminating, a state it may never observe; the volume then
//! leaks for ever (Sieve's unobserved states; benchmark bug B6 of docs/09).
//!
//! Upstream: instaclustr/cassandra-operator, issue #398, the function `finalizeDeletedPods` of
//! `pkg/controller/cassandradatacenter/finalizers.go` (it reads `AllDeletedPods`: the
//! datacenter's pods with a `deletionTimestamp`, listed through the manager's cached client),
//! fixed by PR #399 (commits "add finalizers for cassandra pods" and "remove finalizers for pods
//! in finalizeIfNecessary"). The same shape: casskop-342, K8SPSMDB-585, rabbitmq-758.
//!
//! | modelled step | upstream |
//! |---|---|
//! | the `operator` [`Process`]: informers on `CassandraDataCenter`, StatefulSets (owned) and Pods (mapped to their datacenter by label), one worker | the operator's controller-runtime manager; its cached client's Pod informer (upstream watches Services and StatefulSets, and pod changes reach it through the StatefulSet's status) |
//! | reconcile: the datacenter from the cache; being deleted → delete its PVCs, strip the pods' finalizers (fixed), remove its finalizer | `Reconcile` → `finalizeIfNecessary`, `finalizePVCs` |
//! | the datacenter's finalizer added if `deletePVCs` | `addFinalizer` |
//! | fixed: `finalizer.pvcs.cassandraoperator.instaclustr.com/v1` added to every cached pod that lacks it | `addFinalizer` after PR #399 |
//! | buggy: for each cached pod with a `deletionTimestamp`, DELETE the claims its volumes name | `finalizeDeletedPods` before PR #399 |
//! | fixed: the same, only for pods with the finalizer, then the finalizer removed (an UPDATE) | `finalizeDeletedPods` after PR #399 |
//! | the StatefulSet `cassandra-dc-rack1` created with `spec.nodes` replicas and the claim template `data-volume`; scaled by one node per reconcile; a scale-down decommissions the newest node first (instantaneous here) | `createOrUpdateStatefulSet`, `findRackToReconcile`, `scaleStatefulSet` (the sidecar's `DecommissionRequest`) |
//! | the user creates the datacenter, waits until it is up, sets `spec.nodes` to 1, waits until pod rack1-1 is gone, then waits for the cluster to settle | — |
//!
//! Simplified: one rack; no Services, ConfigMaps or sidecar; decommissioning is an event, not a
//! sidecar operation polled across reconciles; `checkClusterHealth` is not modelled; claims are
//! deleted by the name a pod's volume gives (upstream matches it against a cached list of the
//! datacenter's claims, and later, for #407, against a pod-uid label); a pod already being
//! deleted gets no finalizer (the API refuses new finalizers on it). Pods have
//! `terminationGracePeriodSeconds: 5`, so that a run stays short.
//!
//! There is no bug-specific oracle. The workload ends with the generic oracles
//! ([`Scenario::generic_oracles`]): the cluster must settle, and its end state (the datacenter,
//! the StatefulSet, pods and claims, masked) must equal the reference run's. An
//! `unobserved-state` perturbation that withholds the operator's event for the pod's
//! `deletionTimestamp` makes the difference: the cache goes from "running" to "absent", the
//! buggy operator never sees a Terminating pod, and claim `data-volume-cassandra-dc-rack1-1`,
//! gone in the reference run, is left behind. The fix's finalizer keeps the Terminating state
//! until the operator has handled it.
//!
//! What PR #399 does not fix: after a `stale-reconnect` that froze the datacenter at
//! `nodes: 2`, the operator (like upstream, which reads the datacenter from its cache) scales
//! the rack up again and back down once the view catches up. The end state is the reference's;
//! the ADDED/DELETED summary flags pod and claim rack1-1 created twice. That is a stale-state
//! bug of its own, which the fixed variant keeps (`tests/it/benchmark_cassandra.rs`).

use std::time::Duration;

use apiserver_fake::endstate::Oracles;
use apiserver_fake::pvc::claim_names;
use apiserver_fake::{
    Action, ApiError, ApiServer, Cache, Client, Controller, DeleteOptions, GarbageCollector,
    GcConfig, Informer, KindInfo, Kubelet, KubeletConfig, Mask, Object, ObjectKey, OwnerReference,
    PvcProtectionConfig, PvcProtectionController, ReconcileResult, Registry, Selector,
    ServerConfig, StatefulSetConfig, StatefulSetController,
};
use serde_json::json;
use sim_core::{FailureKind, Process, sleep, spawn};

use crate::{API_LATENCY, Key, Meta, Param, Params, Scenario, Variant};

const NS: &str = "cassandra";
const GROUP: &str = "cassandraoperator.instaclustr.com/v1alpha1";
const KIND: &str = "CassandraDataCenter";
const DC: &str = "cassandra-dc";
const STS: &str = "cassandra-dc-rack1";
const TEMPLATE: &str = "data-volume";
const LABEL_DC: &str = "cassandra-operator.instaclustr.com/datacenter";
const LABEL_RACK: &str = "cassandra-operator.instaclustr.com/rack";
/// `pvcDeletionFinalizer`, on the datacenter.
const DC_FINALIZER: &str = "finalizer.pvcs.cassandraoperator.instaclustr.com";
/// `pvcDeletionFinalizerForPod` (PR #399), on every Cassandra pod.
pub const POD_FINALIZER: &str = "finalizer.pvcs.cassandraoperator.instaclustr.com/v1";
/// The pods' `terminationGracePeriodSeconds`: short, so that runs stay short.
const GRACE_SECONDS: u64 = 5;
/// How long the user waits for each step before giving up.
const WAIT_MAX: Duration = Duration::from_secs(120);
const POD: (&str, &str) = ("v1", "Pod");
const PVC: (&str, &str) = ("v1", "PersistentVolumeClaim");
const SET: (&str, &str) = ("apps/v1", "StatefulSet");

/// The scenario.
pub struct UnobservedPodDeletion;

/// `finalizeDeletedPods` acts on an edge: a Terminating pod in the cache (issue #398).
pub const BUGGY: Variant = Variant::fails(
    "buggy",
    "before PR #399: a volume is deleted only if the cache shows its pod Terminating",
    FailureKind::Invariant,
    "the end state differs from the reference run",
);

/// PR #399: a finalizer on every pod keeps the Terminating state until it is handled.
pub const FIXED: Variant = Variant::holds(
    "fixed",
    "PR #399: a finalizer on each pod, removed once the pod's volume is deleted",
);

/// `cache-lag-us` with a default of 0: a watch event reaches a cache as soon as the
/// reflector runs. The kubelet's final DELETE of a pod commits two events back to back (the
/// grace period set to 0, then the removal), and client-go's DeltaFIFO hands an informer an
/// object's queued deltas together; the shared default (each event delayed by up to 5 ms, one
/// after the other) would leave the first of them alone in the cache for milliseconds, a window
/// a real informer hardly has. The swarm still draws 5 ms.
const CACHE_LAG: Key<Duration> = Key::micros(
    "cache-lag-us",
    "longest delay of a watch event on its way to an informer's cache (0: none)",
    0,
)
.range(0, 10_000_000)
.swarm(&[0, 5_000]);

const PARAMS: &[Param] = &[API_LATENCY.param, CACHE_LAG.param];

const META: Meta = Meta {
    name: "cassandra-unobserved-pod-deletion",
    summary: "a volume is deleted only if its pod is seen Terminating; unobserved, it leaks",
    upstream: &[
        "https://github.com/instaclustr/cassandra-operator/issues/398",
        "https://github.com/instaclustr/cassandra-operator/pull/399",
    ],
    variants: &[BUGGY, FIXED],
    params: PARAMS,
};

impl Scenario for UnobservedPodDeletion {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn generic_oracles(&self) -> Option<Oracles> {
        let kinds = [(GROUP, KIND), SET, POD, PVC];
        // Beyond the default mask (uids, resourceVersions, timestamps, generations, generated
        // names): the StatefulSet's `status.observedGeneration`, the StatefulSet controller's
        // copy of the masked `metadata.generation`. A run whose operator wrote the replicas more
        // often (a stale spec scaled up, then down again) ends in the same state with a higher
        // generation. Pod status is the simulated node's fixed `Running`/`Ready`.
        let mask = Mask::default().field("StatefulSet", "/status/observedGeneration");
        Some(Oracles::new(&kinds).with_mask(mask))
    }

    fn setup(&self, variant: &Variant, params: &Params) {
        let fixed = variant.is(&FIXED);
        let mut registry = Registry::builtin();
        registry.register(KindInfo::custom(GROUP, KIND, "cassandradatacenters", true));
        let config =
            ServerConfig::default().with_update_summary(true).with_graceful_pod_deletion(true);
        let server = ApiServer::new(registry, config);
        server.create(Object::new("v1", "Namespace", "", NS)).expect("the namespace");
        let client = |name: &str| Client::new(&server, name, crate::client_config(params));
        let informer = crate::informer_config_with(params, CACHE_LAG);
        let sts = StatefulSetConfig::default().with_informer(informer);
        StatefulSetController::start(&client("statefulset-controller"), sts);
        let protection = PvcProtectionConfig::default().with_informer(informer);
        PvcProtectionController::start(&client("pvc-protection"), protection);
        Kubelet::start(&client("kubelet"), KubeletConfig::default().with_informer(informer));
        let gc = GcConfig::default().with_kinds(&[(GROUP, KIND), SET, POD, PVC]);
        GarbageCollector::start(&client("gc"), gc.with_informer(informer));
        let operator = client("operator");
        Process::start("operator", move || {
            let informer = |what: &str, (api_version, kind): (&str, &str)| {
                let name = format!("operator/{what}");
                Informer::new(&name, &operator, api_version, kind, Some(NS), informer)
            };
            let dcs = informer("datacenters", (GROUP, KIND));
            let sets = informer("statefulsets", SET);
            let pods = informer("pods", POD);
            let controller = Controller::new("operator", 1);
            controller.watches(&dcs);
            controller.owns(&sets, GROUP, KIND);
            controller.watches_with(&pods, |pod| {
                let dc = pod.metadata.labels.get(LABEL_DC);
                dc.map(|dc| ObjectKey::new(&pod.metadata.namespace, dc)).into_iter().collect()
            });
            for informer in [&dcs, &sets, &pods] {
                informer.start();
            }
            let operator = Operator {
                client: operator.clone(),
                dcs: dcs.cache(),
                sets: sets.cache(),
                pods: pods.cache(),
                fixed,
            };
            let operator = std::rc::Rc::new(operator);
            controller.start(move |key| {
                let operator = operator.clone();
                async move { operator.reconcile(&key).await }
            });
        });
        let oracles = self.generic_oracles().expect("declared");
        let user = client("user");
        spawn("user", async move {
            let dc = Object::new(GROUP, KIND, NS, DC)
                .with_spec(json!({ "nodes": 2, "deletePVCs": true }));
            user.create(dc).await.expect("the datacenter");
            wait_until("the datacenter is up", || is_up(&server, fixed)).await;
            let patch = json!({ "spec": { "nodes": 1 } });
            user.patch(GROUP, KIND, NS, DC, &patch).await.expect("the scale-down");
            let gone = || !server.exists("v1", "Pod", NS, &pod_name(1));
            wait_until("pod cassandra-dc-rack1-1 is gone", gone).await;
            oracles.settle(&server).await;
        });
    }
}

/// `<sts>-<ordinal>`.
fn pod_name(ordinal: u64) -> String {
    format!("{STS}-{ordinal}")
}

/// Whether the datacenter is up, as the server (not a cache) has it: both pods Running and
/// Ready, both claims there, and in the fixed variant the operator's finalizer on both pods.
fn is_up(server: &ApiServer, fixed: bool) -> bool {
    (0..2).all(|ordinal| {
        let name = pod_name(ordinal);
        let claim = format!("{TEMPLATE}-{name}");
        server
            .peek("v1", "Pod", NS, &name)
            .is_some_and(|pod| is_ready(&pod) && (!fixed || pod.has_finalizer(POD_FINALIZER)))
            && server.exists("v1", "PersistentVolumeClaim", NS, &claim)
    })
}

/// Phase `Running` and the condition `Ready=True`.
fn is_ready(pod: &Object) -> bool {
    pod.status["phase"] == "Running"
        && pod.status["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Polls until `done` holds; panics, naming `what`, after [`WAIT_MAX`] of virtual time.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = sim_core::now();
    while !done() {
        assert!(
            sim_core::now() - start < WAIT_MAX,
            "the user gave up: {what} not within {WAIT_MAX:?}"
        );
        sleep(Duration::from_millis(100)).await;
    }
}

/// The operator's client and caches.
struct Operator {
    client: Client,
    dcs: Cache,
    sets: Cache,
    pods: Cache,
    fixed: bool,
}

impl Operator {
    /// One reconcile of a datacenter (`ReconcileCassandraDataCenter.Reconcile`).
    async fn reconcile(&self, key: &ObjectKey) -> ReconcileResult {
        let Some(dc) = self.dcs.get(&key.namespace, &key.name) else {
            return Ok(Action::Done);
        };
        let selector = Selector::parse(&format!("{LABEL_DC}={}", key.name)).expect("a selector");
        let pods = self.pods.list_selector(Some(NS), &selector);
        let delete_pvcs = dc.spec["deletePVCs"] == true;
        if dc.is_deleting() {
            if dc.has_finalizer(DC_FINALIZER) {
                self.finalize_datacenter(dc, &pods, &selector).await?;
            }
            return Ok(Action::Done);
        }
        let dc = if delete_pvcs && !dc.has_finalizer(DC_FINALIZER) {
            self.client.update(dc.with_finalizer(DC_FINALIZER)).await?
        } else {
            dc
        };
        if self.fixed && delete_pvcs {
            for pod in &pods {
                if !pod.is_deleting() && !pod.has_finalizer(POD_FINALIZER) {
                    gone_ok(self.client.update(pod.clone().with_finalizer(POD_FINALIZER)).await)?;
                }
            }
        }
        if delete_pvcs {
            self.finalize_deleted_pods(&pods).await?;
        }
        self.scale(&dc).await?;
        Ok(Action::Done)
    }

    /// `finalizeDeletedPods`: the claims of each cached pod being deleted go; after PR #399 only
    /// for pods with the finalizer, which is then removed.
    async fn finalize_deleted_pods(&self, pods: &[Object]) -> Result<(), ApiError> {
        for pod in pods.iter().filter(|pod| pod.is_deleting()) {
            if self.fixed && !pod.has_finalizer(POD_FINALIZER) {
                continue;
            }
            for claim in claim_names(pod) {
                sim_core::event(format!(
                    "operator: {} is deleted, deleting PVC {claim}",
                    pod.key()
                ));
                self.delete_claim(claim).await?;
            }
            if self.fixed {
                let mut done = pod.clone();
                done.metadata.finalizers.retain(|f| f != POD_FINALIZER);
                gone_ok(self.client.update(done).await)?;
            }
        }
        Ok(())
    }

    /// `deletePersistenceVolumeClaim`: a DELETE, NotFound counting as done.
    async fn delete_claim(&self, name: &str) -> Result<(), ApiError> {
        let options = DeleteOptions::default();
        gone_ok(self.client.delete(PVC.0, PVC.1, NS, name, &options).await)
    }

    /// `finalizeIfNecessary`: the datacenter is being deleted: every claim labelled with it
    /// goes, its finalizer is removed and (PR #399) so are its pods'.
    async fn finalize_datacenter(
        &self,
        dc: Object,
        pods: &[Object],
        selector: &Selector,
    ) -> Result<(), ApiError> {
        let claims = self.client.list(PVC.0, PVC.1, Some(NS), selector).await?;
        for claim in claims.items {
            self.delete_claim(&claim.metadata.name).await?;
        }
        let mut done = dc;
        done.metadata.finalizers.retain(|f| f != DC_FINALIZER);
        gone_ok(self.client.update(done).await)?;
        if self.fixed {
            for pod in pods.iter().filter(|pod| pod.has_finalizer(POD_FINALIZER)) {
                let mut done = pod.clone();
                done.metadata.finalizers.retain(|f| f != POD_FINALIZER);
                gone_ok(self.client.update(done).await)?;
            }
        }
        Ok(())
    }

    /// `createOrUpdateStatefulSet` and `scaleStatefulSet`: the rack's StatefulSet created with
    /// `spec.nodes` replicas, then moved towards it one node per reconcile; a scale-down first
    /// decommissions the newest node.
    async fn scale(&self, dc: &Object) -> Result<(), ApiError> {
        let nodes = dc.spec["nodes"].as_u64().unwrap_or(1);
        let Some(mut set) = self.sets.get(NS, STS) else {
            return match self.client.create(stateful_set(dc, nodes)).await {
                Err(error) if !error.is_already_exists() => Err(error),
                _ => Ok(()),
            };
        };
        let replicas = set.spec["replicas"].as_u64().unwrap_or(1);
        let wanted = match replicas.cmp(&nodes) {
            std::cmp::Ordering::Equal => return Ok(()),
            std::cmp::Ordering::Less => replicas + 1,
            std::cmp::Ordering::Greater => {
                let newest = pod_name(replicas - 1);
                sim_core::event(format!("operator: node {newest} decommissioned (sidecar)"));
                replicas - 1
            }
        };
        set.spec["replicas"] = json!(wanted);
        self.client.update(set).await.map(|_| ())
    }
}

/// The rack's StatefulSet: the datacenter's labels, pods with a short grace period, one claim
/// template `data-volume`, controlled by the datacenter.
fn stateful_set(dc: &Object, replicas: u64) -> Object {
    let labels = json!({ LABEL_DC: dc.metadata.name, LABEL_RACK: "rack1" });
    let spec = json!({
        "replicas": replicas,
        "serviceName": format!("{}-nodes", dc.metadata.name),
        "selector": { "matchLabels": labels },
        "template": {
            "metadata": { "labels": labels },
            "spec": {
                "terminationGracePeriodSeconds": GRACE_SECONDS,
                "containers": [{ "name": "cassandra", "image": "cassandra:3.11" }],
            },
        },
        "volumeClaimTemplates": [{
            "metadata": { "name": TEMPLATE, "labels": labels },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": { "requests": { "storage": "1Gi" } },
            },
        }],
    });
    Object::new(SET.0, SET.1, NS, STS).with_spec(spec).with_owner(OwnerReference::controller_of(dc))
}

/// A write's result, with NotFound counting as done (the object is gone already).
fn gone_ok<T>(result: Result<T, ApiError>) -> Result<(), ApiError> {
    match result {
        Err(error) if !error.is_not_found() => Err(error),
        _ => Ok(()),
    }
}

/// The datacenter's key, for tests.
pub fn datacenter_key() -> ObjectKey {
    ObjectKey::new(NS, DC)
}
