//! The StatefulSet controller (`pkg/controller/statefulset`), as simulated tasks: informers on
//! apps/v1 StatefulSets, v1 Pods and v1 PersistentVolumeClaims, a rate-limited work queue of
//! set keys, and workers that sync one set at a time.
//!
//! What it follows, file by file:
//! - `stateful_set.go`: the handlers (`addPod`, `updatePod`, `deletePod`: a pod's controller
//!   set is queued, found by `resolveControllerRef` (kind and uid); an orphan queues every set
//!   in its namespace whose selector matches (`getPodStatefulSets`); every set change queues
//!   the set), `processNextWorkItem` (errors requeue with `DefaultControllerRateLimiter`),
//!   `sync` and `getPodsForStatefulSet` (`ClaimPods` over the namespace's cached pods that are
//!   members by name, with `RecheckDeletionTimestamp`: a live GET of the set before the first
//!   adoption).
//! - `controller_ref_manager.go` (`ClaimObject`, `AdoptPod`, `ReleasePod`): an owned pod that
//!   no longer matches the selector is released, unless the set is being deleted; a matching
//!   orphan that is not being deleted is adopted (a controller ownerReference with
//!   `blockOwnerDeletion`); pods of other controllers are left alone.
//! - `stateful_set_control.go` (`updateStatefulSet`, `processReplica`, `processCondemned`):
//!   pods split into replicas (ordinal below `spec.replicas`) and condemned (the rest); a
//!   missing replica gets its claims (`createPersistentVolumeClaims`: created if absent from
//!   the cache; a claim being deleted is an error and the pod waits) and then the pod; a
//!   `Succeeded` or `Failed` replica is deleted to be recreated; condemned pods are deleted
//!   highest ordinal first. `OrderedReady` (the default) creates one pod at a time, waits for
//!   each to be Running and Ready and for a Terminating pod to go, and deletes one condemned
//!   pod at a time; `Parallel` does not wait. A set being deleted only gets its status.
//! - `stateful_pod_control.go`: plain DELETEs of pods (graceful when the server models it);
//!   claims are never updated, resized or deleted.
//! - `stateful_set_status_updater.go`: `status.replicas` (claimed pods not Terminating),
//!   `status.readyReplicas` (Running and Ready) and `status.observedGeneration`, written
//!   through the status subresource when they change.
//!
//! Simplifications: no ControllerRevisions and no rolling updates (pods are never replaced
//! for a template change and carry no `controller-revision-hash` label); no `minReadySeconds`
//! or availability; claim retention is always `Retain` (claims carry no ownerReference); pods
//! whose identity or storage drifted are not repaired; label selectors are `matchLabels` and
//! `matchExpressions` only. Adoption and release are JSON merge patches of the whole
//! `ownerReferences` list carrying the pod's uid and resourceVersion (upstream sends a
//! strategic merge patch with the uid only), so a concurrent change is a 409 and a retry.

mod spec;
mod sync;

use std::rc::Rc;

use crate::client::Client;
use crate::controller::ObjectKey;
use crate::informer::{Cache, Informer, InformerConfig, Notification};
use crate::object::Object;
use crate::workqueue::{QueueConfig, RateLimiter, WorkQueue};

pub use spec::{LABEL_POD_INDEX, LABEL_POD_NAME};

/// The StatefulSet controller's options.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StatefulSetConfig {
    /// Workers (`--concurrent-statefulset-syncs`, 5 upstream).
    pub workers: usize,
    /// The informers' options.
    pub informer: InformerConfig,
}

impl Default for StatefulSetConfig {
    fn default() -> Self {
        StatefulSetConfig { workers: 2, informer: InformerConfig::default() }
    }
}

impl StatefulSetConfig {
    /// Sets the number of workers (at least 1).
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Sets the informers' options.
    pub fn with_informer(mut self, informer: InformerConfig) -> Self {
        self.informer = informer;
        self
    }
}

/// The running StatefulSet controller.
#[derive(Clone)]
pub struct StatefulSetController {
    queue: WorkQueue<ObjectKey>,
}

/// What the workers share.
pub(crate) struct Shared {
    client: Client,
    sets: Cache,
    pods: Cache,
    claims: Cache,
}

impl StatefulSetController {
    /// Starts the controller: informers on StatefulSets, Pods and PersistentVolumeClaims in
    /// every namespace, and its workers once they have synced (daemon tasks named
    /// `statefulset-controller/...`).
    pub fn start(client: &Client, config: StatefulSetConfig) -> Self {
        let queue = WorkQueue::with_config(
            "statefulset-controller",
            QueueConfig::default().with_rate_limiter(RateLimiter::default_controller()),
        );
        let informer = |what: &str, api_version: &str, kind: &str| {
            let name = format!("statefulset-controller/{what}");
            Informer::new(&name, client, api_version, kind, None, config.informer)
        };
        let sets = informer("statefulsets", "apps/v1", "StatefulSet");
        let pods = informer("pods", "v1", "Pod");
        let claims = informer("pvcs", "v1", "PersistentVolumeClaim");
        let set_queue = queue.clone();
        sets.add_handler("handler", move |notification| {
            set_queue.add(ObjectKey::of(notification.object()));
            std::future::ready(())
        });
        let (pod_queue, set_cache) = (queue.clone(), sets.cache());
        pods.add_handler("handler", move |notification| {
            if let Notification::Updated { old, .. } = &notification {
                for key in sets_for_pod(&set_cache, old) {
                    pod_queue.add(key);
                }
            }
            for key in sets_for_pod(&set_cache, notification.object()) {
                pod_queue.add(key);
            }
            std::future::ready(())
        });
        for informer in [&sets, &pods, &claims] {
            informer.start();
        }
        let shared = Rc::new(Shared {
            client: client.clone(),
            sets: sets.cache(),
            pods: pods.cache(),
            claims: claims.cache(),
        });
        let starter_queue = queue.clone();
        sim_core::spawn_daemon("statefulset-controller/start", async move {
            for informer in [&sets, &pods, &claims] {
                informer.wait_synced().await;
            }
            for worker in 0..config.workers.max(1) {
                let (queue, shared) = (starter_queue.clone(), shared.clone());
                let name = format!("statefulset-controller/worker-{worker}");
                sim_core::spawn_daemon(name, async move {
                    while let Some(key) = queue.get().await {
                        let result = {
                            let _frame = sim_core::enter(format!("syncStatefulSet({key})"));
                            shared.sync(&key).await
                        };
                        match result {
                            Ok(()) => queue.forget(&key),
                            Err(why) => {
                                sim_core::event(format!(
                                    "error syncing StatefulSet {key}, requeuing: {why}"
                                ));
                                queue.add_rate_limited(key.clone());
                            }
                        }
                        queue.done(&key);
                    }
                });
            }
        });
        StatefulSetController { queue }
    }

    /// The controller's queue of StatefulSet keys.
    pub fn queue(&self) -> &WorkQueue<ObjectKey> {
        &self.queue
    }
}

/// The sets a pod change concerns: its controller set (`resolveControllerRef`), or for an
/// orphan every set of its namespace whose selector matches it (`getPodStatefulSets`).
fn sets_for_pod(sets: &Cache, pod: &Object) -> Vec<ObjectKey> {
    let namespace = &pod.metadata.namespace;
    if let Some(owner) = pod.controller_ref() {
        if owner.kind != "StatefulSet" {
            return Vec::new();
        }
        return sets
            .get_rc(namespace, &owner.name)
            .filter(|set| set.metadata.uid == owner.uid)
            .map(|set| vec![ObjectKey::of(&set)])
            .unwrap_or_default();
    }
    sets.list(Some(namespace))
        .iter()
        .filter(|set| {
            spec::SetSpec::parse(set).is_ok_and(|spec| spec.selector.matches(&pod.metadata.labels))
        })
        .map(ObjectKey::of)
        .collect()
}
