//! The namespace controller (`pkg/controller/namespace`): for a namespace being deleted,
//! ensure it shows `Terminating`, delete every namespaced object in it with Background
//! propagation, re-list, record what remains in the namespace's conditions and requeue, and,
//! once nothing remains, remove the `kubernetes` finalizer through `/finalize`.
//!
//! Follows `namespace_controller.go` (`worker`: a `ResourcesRemainingError` requeues after
//! `estimate/2 + 1` seconds, other errors with rate-limited backoff; the rate limiter is the
//! max of 5 ms–60 s exponential and a 10 qps bucket) and
//! `deletion/namespaced_resources_deleter.go` (`Delete`, `deleteAllContent`,
//! `deleteAllContentForGroupVersionResource`: items with finalizers give the default 15 s
//! estimate; items without finalizers that survive are an error).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::client::Client;
use crate::controller::ObjectKey;
use crate::error::ApiError;
use crate::informer::{Informer, InformerConfig};
use crate::object::Object;
use crate::selector::Selector;
use crate::server::{DeleteOptions, FINALIZER_KUBERNETES, Propagation};
use crate::workqueue::{QueueConfig, RateLimiter, WorkQueue};

/// `finalizerEstimateSeconds`: the requeue estimate when remaining content has finalizers.
const FINALIZER_ESTIMATE_SECONDS: u64 = 15;

/// The namespace controller's options.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct NamespaceConfig {
    /// Workers (`--concurrent-namespace-syncs`, 10 upstream).
    pub workers: usize,
    /// The namespace informer's options (upstream resyncs every 5 minutes).
    pub informer: InformerConfig,
}

impl Default for NamespaceConfig {
    fn default() -> Self {
        NamespaceConfig {
            workers: 2,
            informer: InformerConfig::default().with_resync(Some(Duration::from_secs(300))),
        }
    }
}

/// Why a sync must run again.
enum SyncError {
    /// `ResourcesRemainingError`: content remains; requeue after `estimate / 2 + 1` seconds.
    Remaining(u64),
    /// Anything else: requeue with backoff.
    Failed(String),
}

impl From<ApiError> for SyncError {
    fn from(error: ApiError) -> Self {
        SyncError::Failed(error.to_string())
    }
}

/// The running namespace controller.
#[derive(Clone)]
pub struct NamespaceController {
    queue: WorkQueue<ObjectKey>,
}

impl NamespaceController {
    /// Starts the controller: an informer on namespaces and its workers (daemon tasks named
    /// `namespace-controller/...`).
    pub fn start(client: &Client, config: NamespaceConfig) -> Self {
        let limiter = RateLimiter::max_of([
            RateLimiter::exponential(Duration::from_millis(5), Duration::from_secs(60)),
            RateLimiter::bucket(10.0, 100),
        ]);
        let queue = WorkQueue::with_config(
            "namespace-controller",
            QueueConfig::default().with_rate_limiter(limiter),
        );
        let informer = Informer::new(
            "namespace-controller/namespaces",
            client,
            "v1",
            "Namespace",
            None,
            config.informer,
        );
        let handler_queue = queue.clone();
        informer.add_handler("handler", move |notification| {
            let namespace = notification.object();
            if namespace.is_deleting() {
                handler_queue.add(ObjectKey::of(namespace));
            }
            std::future::ready(())
        });
        informer.start();
        let client = Rc::new(client.clone());
        for worker in 0..config.workers.max(1) {
            let (queue, client) = (queue.clone(), client.clone());
            sim_core::spawn_daemon(format!("namespace-controller/worker-{worker}"), async move {
                while let Some(key) = queue.get().await {
                    let result = {
                        let _frame = sim_core::enter(format!("syncNamespaceFromKey({key})"));
                        sync_namespace(&client, &key.name).await
                    };
                    match result {
                        Ok(()) => queue.forget(&key),
                        Err(SyncError::Remaining(estimate)) => {
                            let wait = Duration::from_secs(estimate / 2 + 1);
                            sim_core::event(format!(
                                "namespace {}: content remaining, requeue in {}s",
                                key.name,
                                wait.as_secs()
                            ));
                            queue.add_after(key.clone(), wait);
                        }
                        Err(SyncError::Failed(why)) => {
                            sim_core::event(format!(
                                "deletion of namespace {} failed: {why}",
                                key.name
                            ));
                            queue.add_rate_limited(key.clone());
                        }
                    }
                    queue.done(&key);
                }
            });
        }
        NamespaceController { queue }
    }

    /// The controller's queue.
    pub fn queue(&self) -> &WorkQueue<ObjectKey> {
        &self.queue
    }
}

/// `namespacedResourcesDeleter.Delete`.
async fn sync_namespace(client: &Client, name: &str) -> Result<(), SyncError> {
    let namespace = match client.get("v1", "Namespace", "", name).await {
        Ok(namespace) => namespace,
        Err(error) if error.is_not_found() => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    if !namespace.is_deleting() {
        return Ok(());
    }
    let namespace = match ensure_terminating(client, namespace).await {
        Ok(namespace) => namespace,
        Err(error) if error.is_not_found() => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    if !has_kubernetes_finalizer(&namespace) {
        return Ok(()); // already finalized
    }
    let estimate = delete_all_content(client, &namespace).await?;
    if estimate > 0 {
        return Err(SyncError::Remaining(estimate));
    }
    // `finalizeNamespace`, retried on conflict with a fresh read.
    let mut latest = namespace;
    loop {
        let finalizers: Vec<Value> = latest
            .spec
            .get("finalizers")
            .and_then(Value::as_array)
            .map(|f| {
                f.iter().filter(|f| f.as_str() != Some(FINALIZER_KUBERNETES)).cloned().collect()
            })
            .unwrap_or_default();
        latest.spec["finalizers"] = json!(finalizers);
        match client.finalize_namespace(latest.clone()).await {
            Ok(_) => return Ok(()),
            Err(error) if error.is_not_found() => return Ok(()),
            Err(error) if error.is_conflict() => {
                latest = match client.get("v1", "Namespace", "", name).await {
                    Ok(latest) => latest,
                    Err(error) if error.is_not_found() => return Ok(()),
                    Err(error) => return Err(error.into()),
                };
            }
            Err(error) => return Err(error.into()),
        }
    }
}

fn has_kubernetes_finalizer(namespace: &Object) -> bool {
    namespace
        .spec
        .get("finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|f| f.as_str() == Some(FINALIZER_KUBERNETES)))
}

/// `updateNamespaceStatusFunc`: a deleting namespace shows `Terminating`.
async fn ensure_terminating(client: &Client, mut namespace: Object) -> Result<Object, ApiError> {
    loop {
        if namespace.status.get("phase").and_then(Value::as_str) == Some("Terminating") {
            return Ok(namespace);
        }
        namespace.status["phase"] = json!("Terminating");
        match client.update_status(namespace.clone()).await {
            Ok(updated) => return Ok(updated),
            Err(error) if error.is_conflict() => {
                namespace = client.get("v1", "Namespace", "", &namespace.metadata.name).await?;
            }
            Err(error) => return Err(error),
        }
    }
}

/// `deleteAllContent`: the requeue estimate in seconds (0 when nothing remains).
async fn delete_all_content(client: &Client, namespace: &Object) -> Result<u64, SyncError> {
    let name = &namespace.metadata.name;
    let mut estimate = 0;
    let mut errors = Vec::new();
    let mut remaining: BTreeMap<String, usize> = BTreeMap::new();
    let mut finalizers: BTreeMap<String, usize> = BTreeMap::new();
    for info in client.server().kinds().into_iter().filter(|k| k.namespaced) {
        // `deleteEachItem`: list, then delete each with Background propagation.
        let list =
            client.list(&info.api_version, &info.kind, Some(name), &Selector::everything()).await?;
        for item in &list.items {
            if item.is_deleting() {
                continue;
            }
            let options = DeleteOptions::propagation(Propagation::Background);
            match client
                .delete(&info.api_version, &info.kind, name, &item.metadata.name, &options)
                .await
            {
                Ok(_) => {}
                Err(error) if error.is_not_found() => {}
                Err(error) => errors.push(error.to_string()),
            }
        }
        if list.items.is_empty() {
            continue;
        }
        let left =
            client.list(&info.api_version, &info.kind, Some(name), &Selector::everything()).await?;
        if left.items.is_empty() {
            continue;
        }
        // `status_condition_utils.go`: "%s.%s" of resource and group (core: "configmaps.").
        remaining.insert(format!("{}.{}", info.resource, info.group()), left.items.len());
        let mut with_finalizers = false;
        for item in &left.items {
            for finalizer in &item.metadata.finalizers {
                *finalizers.entry(finalizer.clone()).or_default() += 1;
                with_finalizers = true;
            }
        }
        if with_finalizers {
            estimate = estimate.max(FINALIZER_ESTIMATE_SECONDS);
        } else {
            errors.push(format!(
                "unexpected items still remain in namespace: {name} for gvr: {}",
                info.qualified_resource()
            ));
        }
    }
    update_conditions(client, namespace, &remaining, &finalizers, &errors).await;
    if !errors.is_empty() {
        return Err(SyncError::Failed(errors.join(", ")));
    }
    Ok(estimate)
}

/// `namespaceConditionUpdater`: the five deletion conditions, in upstream's order.
async fn update_conditions(
    client: &Client,
    namespace: &Object,
    remaining: &BTreeMap<String, usize>,
    finalizers: &BTreeMap<String, usize>,
    errors: &[String],
) {
    let discovery = json!({ "type": "NamespaceDeletionDiscoveryFailure", "status": "False",
        "reason": "ResourcesDiscovered", "message": "All resources successfully discovered" });
    let parsing = json!({ "type": "NamespaceDeletionGroupVersionParsingFailure", "status": "False",
        "reason": "ParsedGroupVersions", "message": "All legacy kube types successfully parsed" });
    let failure = if errors.is_empty() {
        json!({ "type": "NamespaceDeletionContentFailure", "status": "False", "reason": "ContentDeleted",
                "message": "All content successfully deleted, may be waiting on finalization" })
    } else {
        json!({ "type": "NamespaceDeletionContentFailure", "status": "True",
                "reason": "ContentDeletionFailed",
                "message": format!("Failed to delete all resource types, {} remaining: {}",
                    errors.len(), errors.join(", ")) })
    };
    let content = if remaining.is_empty() {
        json!({ "type": "NamespaceContentRemaining", "status": "False", "reason": "ContentRemoved",
                "message": "All content successfully removed" })
    } else {
        let list: Vec<String> =
            remaining.iter().map(|(r, n)| format!("{r} has {n} resource instances")).collect();
        json!({ "type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain",
                "message": format!("Some resources are remaining: {}", list.join(", ")) })
    };
    let pending = if finalizers.is_empty() {
        json!({ "type": "NamespaceFinalizersRemaining", "status": "False",
                "reason": "ContentHasNoFinalizers", "message": "All content-preserving finalizers finished" })
    } else {
        let list: Vec<String> =
            finalizers.iter().map(|(f, n)| format!("{f} in {n} resource instances")).collect();
        json!({ "type": "NamespaceFinalizersRemaining", "status": "True", "reason": "SomeFinalizersRemain",
                "message": format!("Some content in the namespace has finalizers remaining: {}", list.join(", ")) })
    };
    let conditions = json!([discovery, parsing, failure, content, pending]);
    if namespace.status.get("conditions") == Some(&conditions) {
        return;
    }
    let mut updated = namespace.clone();
    updated.status["conditions"] = conditions;
    if let Err(error) = client.update_status(updated).await {
        sim_core::event(format!(
            "namespace {}: conditions not updated: {error}",
            namespace.metadata.name
        ));
    }
}
