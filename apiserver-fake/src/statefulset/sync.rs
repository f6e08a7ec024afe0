//! One sync of one StatefulSet: `StatefulSetController.sync` → `getPodsForStatefulSet`
//! (`ClaimPods`) → `StatefulSetControl.UpdateStatefulSet` (`updateStatefulSet`) → the status
//! update. See the module docs of [`super`] for what is modelled.

use serde_json::{Value, json};

use super::Shared;
use super::spec::{self, SetSpec};
use crate::controller::ObjectKey;
use crate::object::{Object, OwnerReference};
use crate::server::DeleteOptions;

/// What a sync computed for `status`.
#[derive(Default)]
struct Status {
    replicas: u64,
    ready: u64,
}

impl Shared {
    /// `sync`: the set from the cache, its pods claimed, then `updateStatefulSet`.
    pub(super) async fn sync(&self, key: &ObjectKey) -> Result<(), String> {
        let Some(set) = self.sets.get(&key.namespace, &key.name) else {
            return Ok(());
        };
        let spec = match SetSpec::parse(&set) {
            Ok(spec) => spec,
            Err(why) => {
                // A non-transient error: upstream does not retry.
                sim_core::event(format!("StatefulSet {key}: invalid spec: {why}"));
                return Ok(());
            }
        };
        let pods = self.claim_pods(&set, &spec).await?;
        let mut status = Status::default();
        for pod in &pods {
            if !pod.is_deleting() {
                status.replicas += 1;
                if spec::is_running_and_ready(pod) {
                    status.ready += 1;
                }
            }
        }
        let result = if set.is_deleting() {
            Ok(())
        } else {
            self.update_set(&set, &spec, pods, &mut status).await
        };
        self.update_status(&set, &status).await?;
        result
    }

    /// `getPodsForStatefulSet`: `ClaimPods` over the namespace's members of the set.
    async fn claim_pods(&self, set: &Object, spec: &SetSpec) -> Result<Vec<Object>, String> {
        let uid = &set.metadata.uid;
        let mut claimed = Vec::new();
        let mut can_adopt: Option<Result<(), String>> = None;
        let mut errors = Vec::new();
        for pod in self.pods.list(Some(&set.metadata.namespace)) {
            if spec::ordinal_of(set, &pod).is_none() {
                continue; // the `isMemberOf` filter
            }
            let matches = spec.selector.matches(&pod.metadata.labels);
            match pod.controller_ref() {
                Some(owner) if &owner.uid != uid => {} // another controller's
                Some(_) if matches => claimed.push(pod),
                Some(_) => {
                    if set.is_deleting() {
                        continue;
                    }
                    if let Err(why) = self.release(set, &pod).await {
                        errors.push(why);
                    }
                }
                None => {
                    if set.is_deleting() || !matches || pod.is_deleting() {
                        continue;
                    }
                    let check = match &can_adopt {
                        Some(check) => check.clone(),
                        None => can_adopt.insert(self.recheck(set).await).clone(),
                    };
                    match check {
                        Ok(()) => match self.adopt(set, &pod).await {
                            Ok(Some(adopted)) => claimed.push(adopted),
                            Ok(None) => {}
                            Err(why) => errors.push(why),
                        },
                        Err(why) => errors.push(why),
                    }
                }
            }
        }
        if errors.is_empty() { Ok(claimed) } else { Err(errors.join("; ")) }
    }

    /// `RecheckDeletionTimestamp`: a live GET, before the first adoption.
    async fn recheck(&self, set: &Object) -> Result<(), String> {
        let (namespace, name) = (&set.metadata.namespace, &set.metadata.name);
        let fresh = self
            .client
            .get("apps/v1", "StatefulSet", namespace, name)
            .await
            .map_err(|e| e.to_string())?;
        if fresh.metadata.uid != set.metadata.uid {
            return Err(format!(
                "original StatefulSet {namespace}/{name} is gone: got uid {}, wanted {}",
                fresh.metadata.uid, set.metadata.uid
            ));
        }
        if let Some(time) = fresh.metadata.deletion_timestamp {
            return Err(format!("{namespace}/{name} has just been deleted at {time}"));
        }
        Ok(())
    }

    /// `AdoptPod`: add a controller reference to the set. `None` if the pod is gone.
    async fn adopt(&self, set: &Object, pod: &Object) -> Result<Option<Object>, String> {
        let mut references = pod.metadata.owner_references.clone();
        references.push(OwnerReference::controller_of(set));
        sim_core::event(format!("StatefulSet {}: adopting pod {}", set.key(), pod.key()));
        match self.patch_references(pod, &references).await {
            Ok(adopted) => Ok(Some(adopted)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error.to_string()),
        }
    }

    /// `ReleasePod`: remove the set's reference from a pod that no longer matches.
    async fn release(&self, set: &Object, pod: &Object) -> Result<(), String> {
        let references: Vec<OwnerReference> = pod
            .metadata
            .owner_references
            .iter()
            .filter(|r| r.uid != set.metadata.uid)
            .cloned()
            .collect();
        sim_core::event(format!("StatefulSet {}: releasing pod {}", set.key(), pod.key()));
        match self.patch_references(pod, &references).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_not_found() || error.code == 422 => Ok(()),
            Err(error) => Err(error.to_string()),
        }
    }

    async fn patch_references(
        &self,
        pod: &Object,
        references: &[OwnerReference],
    ) -> Result<Object, crate::ApiError> {
        let patch = json!({ "metadata": {
            "ownerReferences": references,
            "uid": pod.metadata.uid,
            "resourceVersion": pod.metadata.resource_version,
        }});
        let (namespace, name) = (&pod.metadata.namespace, &pod.metadata.name);
        self.client.patch("v1", "Pod", namespace, name, &patch).await
    }

    /// `updateStatefulSet` for a set not being deleted.
    async fn update_set(
        &self,
        set: &Object,
        spec: &SetSpec,
        pods: Vec<Object>,
        status: &mut Status,
    ) -> Result<(), String> {
        let monotonic = !spec.parallel;
        let mut replicas: Vec<Option<Object>> = vec![None; spec.replicas];
        let mut condemned: Vec<(usize, Object)> = Vec::new();
        for pod in pods {
            match spec::ordinal_of(set, &pod) {
                Some(ordinal) if ordinal < spec.replicas => replicas[ordinal] = Some(pod),
                Some(ordinal) => condemned.push((ordinal, pod)),
                None => {}
            }
        }
        condemned.sort_by_key(|(ordinal, _)| *ordinal);
        let healthy = |pod: &Object| spec::is_running_and_ready(pod) && !pod.is_deleting();
        let first_unhealthy = replicas
            .iter()
            .flatten()
            .chain(condemned.iter().map(|(_, pod)| pod))
            .find(|pod| !healthy(pod))
            .map(|pod| pod.metadata.name.clone());
        for (ordinal, replica) in replicas.iter().enumerate() {
            let Some(pod) = replica else {
                self.create_pod(set, spec, ordinal).await?;
                status.replicas += 1;
                if monotonic {
                    return Ok(());
                }
                continue;
            };
            if matches!(spec::phase(pod), "Succeeded" | "Failed") && !pod.is_deleting() {
                self.delete_pod(set, pod).await?;
                if monotonic {
                    return Ok(());
                }
                continue;
            }
            if matches!(spec::phase(pod), "" | "Pending") && !pod.is_deleting() {
                // `createMissingPersistentVolumeClaims` for a pending pod.
                self.create_claims(set, spec, ordinal).await?;
            }
            if pod.is_deleting() || !spec::is_running_and_ready(pod) {
                if monotonic {
                    return Ok(());
                }
                continue;
            }
        }
        for (_, pod) in condemned.iter().rev() {
            if pod.is_deleting() {
                if monotonic {
                    return Ok(());
                }
                continue;
            }
            if monotonic
                && !spec::is_running_and_ready(pod)
                && first_unhealthy.as_deref() != Some(pod.metadata.name.as_str())
            {
                return Ok(());
            }
            self.delete_pod(set, pod).await?;
            if monotonic {
                return Ok(());
            }
        }
        Ok(())
    }

    /// `CreateStatefulPod`: the claims first, then the pod.
    async fn create_pod(&self, set: &Object, spec: &SetSpec, ordinal: usize) -> Result<(), String> {
        self.create_claims(set, spec, ordinal).await?;
        let pod = spec::new_pod(set, ordinal);
        let name = pod.metadata.name.clone();
        self.client.create(pod).await.map(|_| ()).map_err(|error| {
            format!("create Pod {name} in StatefulSet {} failed: {error}", set.metadata.name)
        })
    }

    /// `createPersistentVolumeClaims`: each missing claim created; a claim being deleted is an
    /// error (the pod must wait for it to go).
    async fn create_claims(
        &self,
        set: &Object,
        spec: &SetSpec,
        ordinal: usize,
    ) -> Result<(), String> {
        let mut errors = Vec::new();
        for claim in spec::claims_for(set, spec, ordinal) {
            let (namespace, name) = (claim.metadata.namespace.clone(), claim.metadata.name.clone());
            match self.claims.get_rc(&namespace, &name) {
                Some(existing) if existing.is_deleting() => {
                    errors.push(format!("pvc {name} is being deleted"));
                }
                Some(_) => {}
                None => {
                    if let Err(error) = self.client.create(claim).await {
                        errors.push(format!("failed to create PVC {name}: {error}"));
                    }
                }
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }

    /// `DeleteStatefulPod`: a plain DELETE.
    async fn delete_pod(&self, set: &Object, pod: &Object) -> Result<(), String> {
        let (namespace, name) = (&pod.metadata.namespace, &pod.metadata.name);
        match self.client.delete("v1", "Pod", namespace, name, &DeleteOptions::default()).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_not_found() => Ok(()),
            Err(error) => Err(format!(
                "delete Pod {name} in StatefulSet {} failed: {error}",
                set.metadata.name
            )),
        }
    }

    /// `updateStatefulSetStatus`: written only when it changed, retried on conflict with the
    /// cached set (`retry.RetryOnConflict(retry.DefaultRetry, …)`: 5 tries, 10 ms apart).
    async fn update_status(&self, set: &Object, status: &Status) -> Result<(), String> {
        let wanted = [
            ("observedGeneration", json!(set.metadata.generation)),
            ("replicas", json!(status.replicas)),
            ("readyReplicas", json!(status.ready)),
        ];
        let mut current = set.clone();
        for attempt in 0..5 {
            if wanted.iter().all(|(field, value)| current.status.get(*field) == Some(value)) {
                return Ok(());
            }
            let mut updated = current.clone();
            if !updated.status.is_object() {
                updated.status = Value::Object(serde_json::Map::new());
            }
            for (field, value) in &wanted {
                updated.status[*field] = value.clone();
            }
            match self.client.update_status(updated).await {
                Ok(_) => return Ok(()),
                Err(error) if error.is_not_found() => return Ok(()),
                Err(error) if error.is_conflict() && attempt < 4 => {
                    sim_core::sleep(std::time::Duration::from_millis(10)).await;
                    let (namespace, name) = (&set.metadata.namespace, &set.metadata.name);
                    match self.sets.get(namespace, name) {
                        Some(fresh) if fresh.metadata.uid == set.metadata.uid => current = fresh,
                        _ => return Ok(()),
                    }
                }
                Err(error) => return Err(format!("status update failed: {error}")),
            }
        }
        unreachable!("the last attempt returns")
    }
}
