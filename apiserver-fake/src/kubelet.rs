//! A simulated node: the part of the kubelet that the API objects show. One [`Kubelet`] stands
//! for the whole cluster's one node (kdst has no scheduler; every pod counts as bound to it).
//!
//! - **Start-up** (`pkg/kubelet/status/status_manager.go`, `syncPod`): a pod without a phase
//!   is reported `Running` with the condition `Ready=True` once
//!   [`KubeletConfig::ready_after`] has passed since its creation (a status PATCH).
//! - **Termination** (`pkg/kubelet/kubelet.go` `HandlePodUpdates` → `killPod`, then the status
//!   manager's `canBeDeleted` → `Delete(… NewDeleteOptions(0), Preconditions{UID})`): a pod
//!   with a `deletionTimestamp` is removed once that time has come. With
//!   [`crate::ServerConfig::graceful_pod_deletion`] the server sets it to the DELETE's time plus
//!   the grace period, so the pod goes after its grace period; its containers are taken to
//!   need all of it. The removal is a DELETE with a grace period of 0 and a uid precondition,
//!   so a pod recreated under the same name is never removed by mistake.
//!
//! The kubelet reads a pod informer's cache (so it acts on what it has seen, late by the
//! cache's lag) and runs its own rate-limited queue of pod keys, as the pod workers do.

use std::rc::Rc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::client::Client;
use crate::controller::ObjectKey;
use crate::informer::{Cache, Informer, InformerConfig};
use crate::object::{Object, Time};
use crate::server::DeleteOptions;
use crate::workqueue::{QueueConfig, RateLimiter, WorkQueue};

/// The simulated node's options.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct KubeletConfig {
    /// Pod workers.
    pub workers: usize,
    /// The pod informer's options.
    pub informer: InformerConfig,
    /// How long after its creation a pod becomes `Running` and `Ready`; `None`: never (pods
    /// stay without a phase).
    pub ready_after: Option<Duration>,
}

impl Default for KubeletConfig {
    fn default() -> Self {
        KubeletConfig {
            workers: 1,
            informer: InformerConfig::default(),
            ready_after: Some(Duration::from_secs(1)),
        }
    }
}

impl KubeletConfig {
    /// Sets the number of workers (at least 1).
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Sets the pod informer's options.
    pub fn with_informer(mut self, informer: InformerConfig) -> Self {
        self.informer = informer;
        self
    }

    /// Sets [`KubeletConfig::ready_after`].
    pub fn with_ready_after(mut self, ready_after: Option<Duration>) -> Self {
        self.ready_after = ready_after;
        self
    }
}

/// The running simulated node.
#[derive(Clone)]
pub struct Kubelet {
    queue: WorkQueue<ObjectKey>,
}

struct Shared {
    client: Client,
    pods: Cache,
    ready_after: Option<Duration>,
}

/// What one look at a pod decided.
enum Step {
    Done,
    After(Duration),
}

impl Kubelet {
    /// Starts the node: an informer on every namespace's v1 Pods and its workers (daemon tasks
    /// named `kubelet/...`).
    pub fn start(client: &Client, config: KubeletConfig) -> Self {
        let queue = WorkQueue::with_config(
            "kubelet",
            QueueConfig::default().with_rate_limiter(RateLimiter::default_controller()),
        );
        let informer = Informer::new("kubelet/pods", client, "v1", "Pod", None, config.informer);
        let handler_queue = queue.clone();
        informer.add_handler("handler", move |notification| {
            handler_queue.add(ObjectKey::of(notification.object()));
            std::future::ready(())
        });
        informer.start();
        let shared = Rc::new(Shared {
            client: client.clone(),
            pods: informer.cache(),
            ready_after: config.ready_after,
        });
        for worker in 0..config.workers.max(1) {
            let (queue, shared) = (queue.clone(), shared.clone());
            sim_core::spawn_daemon(format!("kubelet/worker-{worker}"), async move {
                while let Some(key) = queue.get().await {
                    let result = {
                        let _frame = sim_core::enter(format!("syncPod({key})"));
                        shared.sync(&key).await
                    };
                    match result {
                        Ok(Step::Done) => queue.forget(&key),
                        Ok(Step::After(delay)) => {
                            queue.forget(&key);
                            queue.add_after(key.clone(), delay);
                        }
                        Err(why) => {
                            sim_core::event(format!("kubelet: pod {key}: {why}"));
                            queue.add_rate_limited(key.clone());
                        }
                    }
                    queue.done(&key);
                }
            });
        }
        Kubelet { queue }
    }

    /// The node's queue of pod keys.
    pub fn queue(&self) -> &WorkQueue<ObjectKey> {
        &self.queue
    }
}

/// How long from `now` until `at` (zero if it has passed).
fn until(at: Time, now: Time) -> Duration {
    Duration::from_nanos(u64::try_from(at.nanos.saturating_sub(now.nanos)).unwrap_or(0))
}

impl Shared {
    async fn sync(&self, key: &ObjectKey) -> Result<Step, String> {
        let Some(pod) = self.pods.get_rc(&key.namespace, &key.name) else {
            return Ok(Step::Done);
        };
        let now = Time::now();
        if let Some(deadline) = pod.metadata.deletion_timestamp {
            let wait = until(deadline, now);
            if !wait.is_zero() {
                return Ok(Step::After(wait));
            }
            return self.remove(&pod).await;
        }
        let phase = pod.status.get("phase").and_then(Value::as_str).unwrap_or("");
        let Some(ready_after) = self.ready_after else { return Ok(Step::Done) };
        if !phase.is_empty() && phase != "Pending" {
            return Ok(Step::Done);
        }
        let created = pod.metadata.creation_timestamp.unwrap_or(now);
        let wait = until(Time { nanos: created.nanos.saturating_add(nanos(ready_after)) }, now);
        if !wait.is_zero() {
            return Ok(Step::After(wait));
        }
        let patch = json!({ "status": {
            "phase": "Running",
            "conditions": [{ "type": "Ready", "status": "True" }],
        }});
        let (namespace, name) = (&pod.metadata.namespace, &pod.metadata.name);
        match self.client.patch_status("v1", "Pod", namespace, name, &patch).await {
            Ok(_) => Ok(Step::Done),
            Err(error) if error.is_not_found() => Ok(Step::Done),
            Err(error) => Err(error.to_string()),
        }
    }

    /// The status manager's final DELETE: grace period 0, uid precondition.
    async fn remove(&self, pod: &Object) -> Result<Step, String> {
        let options = DeleteOptions::default().with_grace_period(0).with_uid(&pod.metadata.uid);
        let (namespace, name) = (&pod.metadata.namespace, &pod.metadata.name);
        sim_core::event(format!("kubelet: pod {}/{name} terminated, removing it", namespace));
        match self.client.delete("v1", "Pod", namespace, name, &options).await {
            Ok(_) => Ok(Step::Done),
            // Gone already, or another pod now has the name.
            Err(error) if error.is_not_found() || error.is_conflict() => Ok(Step::Done),
            Err(error) => Err(error.to_string()),
        }
    }
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}
