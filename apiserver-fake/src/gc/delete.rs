//! The attemptToDelete workers: a live GET of the item, its owners classified as solid, dangling
//! or waiting, then removing the references to absent owners, unblocking a cycle of foreground
//! deletions, deleting the item with the right propagation, or removing `foregroundDeletion`
//! once no dependent blocks it. Mirrors upstream
//! `pkg/controller/garbagecollector/garbagecollector.go` (`attemptToDeleteWorker`,
//! `attemptToDeleteItem`, `processDeletingDependentsItem`, `classifyReferences`, `isDangling`),
//! `operations.go` (`deleteObject`) and `patch.go` (`unblockOwnerReferencesJSONMergePatch`).

use serde_json::json;

use super::graph::{Identity, Node};
use super::{Shared, Stop};
use crate::object::{FINALIZER_FOREGROUND, FINALIZER_ORPHAN, Object, OwnerReference};
use crate::server::{DeleteOptions, Propagation};

fn blocks(reference: &OwnerReference, owner_uid: &str) -> bool {
    reference.uid == owner_uid && reference.blocks()
}

impl Shared {
    /// The worker's handling of one attemptToDelete item.
    pub(super) async fn attempt_to_delete_worker(&self, uid: &str) {
        let Some(node) = self.node(uid) else {
            self.attempt_to_delete.forget(&self.item(uid.to_string()));
            return;
        };
        let _frame = sim_core::enter(format!("attemptToDeleteItem({})", node.identity));
        match self.attempt_to_delete_item(&node).await {
            Ok(()) => {
                let observed = self.node(uid).is_none_or(|n| n.observed);
                if observed {
                    self.attempt_to_delete.forget(&self.item(uid.to_string()));
                } else {
                    // Not observed by an informer yet: check again later (issue 56121).
                    self.attempt_to_delete.add_rate_limited(self.item(uid.to_string()));
                }
            }
            Err(Stop::VirtualDelete | Stop::ClusterScopedWithNamespacedOwner) => {
                self.attempt_to_delete.forget(&self.item(uid.to_string()));
            }
            Err(Stop::Retry(why)) => {
                sim_core::event(format!("gc: error syncing {}: {why}", node.identity));
                self.attempt_to_delete.add_rate_limited(self.item(uid.to_string()));
            }
        }
    }

    /// `attemptToDeleteItem`.
    async fn attempt_to_delete_item(&self, item: &Node) -> Result<(), Stop> {
        if item.being_deleted && !item.deleting_dependents {
            return Ok(()); // wait for the final delete
        }
        let id = &item.identity;
        if self.client.server().kind_info(&id.api_version, &id.kind).is_none() {
            // `getObject` → `apiResource`: a `restMappingError`, retried with backoff forever.
            return Err(Stop::Retry(format!(
                "unable to get REST mapping for {}/{}",
                id.api_version, id.kind
            )));
        }
        let latest = match self.client.get(&id.api_version, &id.kind, &id.namespace, &id.name).await
        {
            Ok(latest) => latest,
            Err(error) if error.is_not_found() => {
                self.enqueue_virtual_delete(id);
                return Err(Stop::VirtualDelete);
            }
            Err(error) => return Err(error.into()),
        };
        if latest.metadata.uid != id.uid {
            self.enqueue_virtual_delete(id);
            return Err(Stop::VirtualDelete);
        }
        // The graph may have changed during the GET.
        let item = self.node(&id.uid).unwrap_or_else(|| item.clone());
        if item.deleting_dependents {
            return self.process_deleting_dependents(&item).await;
        }
        let references = latest.metadata.owner_references.clone();
        if references.is_empty() {
            return Ok(());
        }
        let (mut solid, mut dangling, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
        for reference in &references {
            match self.is_dangling(reference, &item).await? {
                None => dangling.push(reference.clone()),
                Some(owner) if owner.is_deleting() && owner.has_finalizer(FINALIZER_FOREGROUND) => {
                    waiting.push(reference.clone())
                }
                Some(_) => solid.push(reference.clone()),
            }
        }
        if !solid.is_empty() {
            if dangling.is_empty() && waiting.is_empty() {
                return Ok(());
            }
            let uids: Vec<String> =
                dangling.iter().chain(&waiting).map(|r| r.uid.clone()).collect();
            sim_core::event(format!(
                "gc: {} has a solid owner; removing references to {} dangling and {} waiting owners",
                item.identity,
                dangling.len(),
                waiting.len()
            ));
            return self.delete_owner_refs(&item, &uids).await;
        }
        let dependents = self.node(&id.uid).map(|n| n.dependents).unwrap_or_default();
        if !waiting.is_empty() && !dependents.is_empty() {
            let cycle =
                dependents.iter().any(|d| self.node(d).is_some_and(|n| n.deleting_dependents));
            if cycle {
                sim_core::event(format!(
                    "gc: {} and a dependent are both deleting dependents; unblocking its ownerReferences",
                    item.identity
                ));
                self.unblock_owner_refs(&item).await?;
            }
            return self
                .delete_object(
                    &item.identity,
                    Propagation::Foreground,
                    "an owner waits for its dependents and it has dependents",
                )
                .await;
        }
        let policy = if latest.has_finalizer(FINALIZER_ORPHAN) {
            Propagation::Orphan
        } else if latest.has_finalizer(FINALIZER_FOREGROUND) {
            Propagation::Foreground
        } else {
            Propagation::Background
        };
        self.delete_object(&item.identity, policy, "it has no solid owner").await
    }

    /// `processDeletingDependentsItem`, from the graph (which may lag the server).
    async fn process_deleting_dependents(&self, item: &Node) -> Result<(), Stop> {
        let blocking: Vec<Node> = item
            .dependents
            .iter()
            .filter_map(|d| self.node(d))
            .filter(|dep| dep.owners.iter().any(|r| blocks(r, &item.identity.uid)))
            .collect();
        if blocking.is_empty() {
            return self.remove_finalizer(item, FINALIZER_FOREGROUND).await;
        }
        for dependent in blocking {
            if !dependent.deleting_dependents {
                self.attempt_to_delete.add(self.item(dependent.identity.uid.clone()));
            }
        }
        Ok(())
    }

    /// `isDangling`: `None` if the owner is absent (or another object of that name), else the
    /// live owner.
    async fn is_dangling(
        &self,
        reference: &OwnerReference,
        item: &Node,
    ) -> Result<Option<Object>, Stop> {
        let mut key = Identity::of_owner(reference, "");
        if self.absent().has(&key) {
            return Ok(None);
        }
        key.namespace = item.identity.namespace.clone();
        if self.absent().has(&key) {
            return Ok(None);
        }
        let Some(info) = self.client.server().kind_info(&reference.api_version, &reference.kind)
        else {
            // `restMappingError`: an unknown kind is retried (with backoff) forever.
            return Err(Stop::Retry(format!(
                "unable to get REST mapping for {}/{}",
                reference.api_version, reference.kind
            )));
        };
        if !info.namespaced {
            key.namespace.clear();
        }
        if item.identity.namespace.is_empty() && info.namespaced {
            return Err(Stop::ClusterScopedWithNamespacedOwner);
        }
        let namespace = if info.namespaced { item.identity.namespace.as_str() } else { "" };
        match self
            .client
            .get(&reference.api_version, &reference.kind, namespace, &reference.name)
            .await
        {
            Err(error) if error.is_not_found() => {
                self.absent().add(key);
                Ok(None)
            }
            Err(error) => Err(error.into()),
            Ok(owner) if owner.metadata.uid != reference.uid => {
                self.absent().add(key);
                Ok(None)
            }
            Ok(owner) => Ok(Some(owner)),
        }
    }

    /// `deleteObject`: DELETE with a uid precondition.
    async fn delete_object(
        &self,
        id: &Identity,
        policy: Propagation,
        why: &str,
    ) -> Result<(), Stop> {
        sim_core::event(format!("gc: deleting {id} ({policy}): {why}"));
        let options = DeleteOptions::propagation(policy).with_uid(&id.uid);
        match self.client.delete(&id.api_version, &id.kind, &id.namespace, &id.name, &options).await
        {
            Ok(_) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// `unblockOwnerReferencesJSONMergePatch`: every ref gets `blockOwnerDeletion=false`.
    async fn unblock_owner_refs(&self, item: &Node) -> Result<(), Stop> {
        let id = &item.identity;
        let latest = self.client.get(&id.api_version, &id.kind, &id.namespace, &id.name).await?;
        let refs: Vec<OwnerReference> = latest
            .metadata
            .owner_references
            .iter()
            .map(|r| OwnerReference { block_owner_deletion: Some(false), ..r.clone() })
            .collect();
        let patch = json!({ "metadata": {
            "ownerReferences": refs,
            "resourceVersion": latest.metadata.resource_version,
            "uid": id.uid,
        }});
        self.client.patch(&id.api_version, &id.kind, &id.namespace, &id.name, &patch).await?;
        Ok(())
    }
}
