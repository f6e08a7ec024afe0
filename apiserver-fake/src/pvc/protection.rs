//! The PVC protection controller (`pkg/controller/volume/pvcprotection`,
//! `pvc_protection_controller.go`): informers on claims and pods, a rate-limited queue of
//! claim keys, workers that run `processPVC`.
//!
//! - `pvcAddedUpdated`: a claim is queued when it needs the finalizer (not deleting, finalizer
//!   missing: `NeedToAddFinalizer`) or may lose it (deleting, finalizer present:
//!   `IsDeletionCandidate`).
//! - `podAddedDeletedUpdated` / `enqueuePVCs`: a pod's claims are queued when the pod is
//!   deleted (its DELETE event) or has terminated (phase `Succeeded` or `Failed`), and for the
//!   old pod of an update whose uid changed.
//! - `processPVC`: a deletion candidate whose claim no pod uses loses the finalizer (an UPDATE
//!   of the cached claim); one still used is kept; a live claim without the finalizer gets it.
//! - `isBeingUsed`: the pod cache first (`askInformer`), then a live LIST of the namespace's
//!   pods (`askAPIServer`), so a pod not yet in the cache still protects the claim.
//!
//! `podUsesPVC` upstream only counts scheduled pods (`spec.nodeName` set); kdst has no
//! scheduler and counts every pod, as if all ran on the one simulated node. A pod that is
//! Terminating still uses its claims until its object is removed.

use std::rc::Rc;

use crate::client::Client;
use crate::controller::ObjectKey;
use crate::informer::{Cache, Informer, InformerConfig, Notification};
use crate::object::Object;
use crate::selector::Selector;
use crate::workqueue::{QueueConfig, RateLimiter, WorkQueue};

use super::{FINALIZER_PVC_PROTECTION, claim_names, pod_uses_claim};

/// The PVC protection controller's options.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PvcProtectionConfig {
    /// Workers (upstream runs 1).
    pub workers: usize,
    /// The claim and pod informers' options.
    pub informer: InformerConfig,
}

impl Default for PvcProtectionConfig {
    fn default() -> Self {
        PvcProtectionConfig { workers: 1, informer: InformerConfig::default() }
    }
}

impl PvcProtectionConfig {
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

/// The running PVC protection controller.
#[derive(Clone)]
pub struct PvcProtectionController {
    queue: WorkQueue<ObjectKey>,
}

struct Shared {
    client: Client,
    claims: Cache,
    pods: Cache,
}

impl PvcProtectionController {
    /// Starts the controller: informers on v1 PersistentVolumeClaims and Pods, and its workers
    /// once both have synced (daemon tasks named `pvc-protection/...`).
    pub fn start(client: &Client, config: PvcProtectionConfig) -> Self {
        let queue = WorkQueue::with_config(
            "pvc-protection",
            QueueConfig::default().with_rate_limiter(RateLimiter::default_controller()),
        );
        let claims = Informer::new(
            "pvc-protection/pvcs",
            client,
            "v1",
            "PersistentVolumeClaim",
            None,
            config.informer,
        );
        let pods = Informer::new("pvc-protection/pods", client, "v1", "Pod", None, config.informer);
        let claim_queue = queue.clone();
        claims.add_handler("handler", move |notification| {
            if let Notification::Added(claim) | Notification::Updated { new: claim, .. } =
                &notification
            {
                let has = claim.has_finalizer(FINALIZER_PVC_PROTECTION);
                if has == claim.is_deleting() {
                    claim_queue.add(ObjectKey::of(claim));
                }
            }
            std::future::ready(())
        });
        let pod_queue = queue.clone();
        pods.add_handler("handler", move |notification| {
            match &notification {
                Notification::Added(pod) => enqueue_claims(&pod_queue, pod, false),
                Notification::Updated { old, new } => {
                    enqueue_claims(&pod_queue, new, false);
                    if old.metadata.uid != new.metadata.uid {
                        enqueue_claims(&pod_queue, old, true);
                    }
                }
                Notification::Deleted { object, .. } => enqueue_claims(&pod_queue, object, true),
            }
            std::future::ready(())
        });
        claims.start();
        pods.start();
        let shared =
            Rc::new(Shared { client: client.clone(), claims: claims.cache(), pods: pods.cache() });
        let starter_queue = queue.clone();
        sim_core::spawn_daemon("pvc-protection/start", async move {
            claims.wait_synced().await;
            pods.wait_synced().await;
            for worker in 0..config.workers.max(1) {
                let (queue, shared) = (starter_queue.clone(), shared.clone());
                sim_core::spawn_daemon(format!("pvc-protection/worker-{worker}"), async move {
                    while let Some(key) = queue.get().await {
                        let result = {
                            let _frame = sim_core::enter(format!("processPVC({key})"));
                            shared.process(&key).await
                        };
                        match result {
                            Ok(()) => queue.forget(&key),
                            Err(why) => {
                                sim_core::event(format!("PVC {key} failed with: {why}"));
                                queue.add_rate_limited(key.clone());
                            }
                        }
                        queue.done(&key);
                    }
                });
            }
        });
        PvcProtectionController { queue }
    }

    /// The controller's queue of claim keys.
    pub fn queue(&self) -> &WorkQueue<ObjectKey> {
        &self.queue
    }
}

/// `enqueuePVCs`: only a deleted or terminated pod can let a finalizer go.
fn enqueue_claims(queue: &WorkQueue<ObjectKey>, pod: &Object, deleted: bool) {
    let phase = pod.status.get("phase").and_then(serde_json::Value::as_str);
    let terminated = matches!(phase, Some("Succeeded" | "Failed"));
    if !deleted && !terminated {
        return;
    }
    for claim in claim_names(pod) {
        queue.add(ObjectKey::new(&pod.metadata.namespace, claim));
    }
}

impl Shared {
    /// `processPVC`.
    async fn process(&self, key: &ObjectKey) -> Result<(), String> {
        let Some(claim) = self.claims.get(&key.namespace, &key.name) else {
            return Ok(());
        };
        let has = claim.has_finalizer(FINALIZER_PVC_PROTECTION);
        if claim.is_deleting() && has {
            if self.is_being_used(&claim).await? {
                sim_core::event(format!("keeping PVC {key} because it is still being used"));
                return Ok(());
            }
            let mut updated = claim;
            updated.metadata.finalizers.retain(|f| f != FINALIZER_PVC_PROTECTION);
            sim_core::event(format!("removing {FINALIZER_PVC_PROTECTION} from PVC {key}"));
            return match self.client.update(updated).await {
                Ok(_) => Ok(()),
                Err(error) if error.is_not_found() => Ok(()),
                Err(error) => Err(error.to_string()),
            };
        }
        if !claim.is_deleting() && !has {
            let mut updated = claim;
            updated.metadata.finalizers.push(FINALIZER_PVC_PROTECTION.to_string());
            return match self.client.update(updated).await {
                Ok(_) => Ok(()),
                Err(error) if error.is_not_found() => Ok(()),
                Err(error) => Err(error.to_string()),
            };
        }
        Ok(())
    }

    /// `isBeingUsed`: `askInformer`, then `askAPIServer`.
    async fn is_being_used(&self, claim: &Object) -> Result<bool, String> {
        let namespace = &claim.metadata.namespace;
        let name = &claim.metadata.name;
        if self.pods.list(Some(namespace)).iter().any(|pod| pod_uses_claim(pod, name)) {
            return Ok(true);
        }
        let live = self
            .client
            .list("v1", "Pod", Some(namespace), &Selector::everything())
            .await
            .map_err(|error| format!("live list of pods failed: {error}"))?;
        Ok(live.items.iter().any(|pod| pod_uses_claim(pod, name)))
    }
}
