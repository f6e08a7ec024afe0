//! DELETE: `DeleteOptions`, preconditions, protected namespaces, and the propagation rules that
//! decide the `orphan` and `foregroundDeletion` finalizers. Mirrors upstream
//! `registry/rest/delete.go` (`BeforeDelete`), `registry/generic/registry/store.go`
//! (`Store.Delete`, `updateForGracefulDeletionAndFinalizers`,
//! `deletionFinalizersForGarbageCollection`, `shouldOrphanDependents`, `shouldDeleteDependents`,
//! `deleteWithoutFinalizers`) and `pkg/registry/core/namespace/storage` (`REST.Delete`).
//!
//! With [`super::ServerConfig::graceful_pod_deletion`], a v1 Pod is deleted gracefully as
//! `rest.BeforeDelete` and `pkg/registry/core/pod/strategy.go` (`CheckGracefulDelete`) do: the
//! grace period is the options' `gracePeriodSeconds`, else the pod's
//! `spec.terminationGracePeriodSeconds`, else 30 (the API default); 0 for a pod in phase
//! `Succeeded` or `Failed`; a negative one counts as 1. The first such DELETE sets
//! `deletionTimestamp` to now plus the grace period, `deletionGracePeriodSeconds` to it, and
//! bumps the generation; a later DELETE may only shorten it (else it changes nothing, finalizer
//! options included); with a grace period of 0 and no finalizers the pod is first written with
//! `deletionTimestamp` now (a MODIFIED event, as `updateForGracefulDeletionAndFinalizers`
//! persists it) and then removed. Upstream's "an unscheduled pod is deleted at once" rule is
//! not modelled: every pod counts as scheduled to the one simulated node.

use std::fmt;
use std::rc::Rc;

use serde_json::{Value, json};

use super::store::Store;
use super::watch::EventType;
use super::{ApiServer, PROTECTED_NAMESPACES, key_of};
use crate::error::ApiError;
use crate::kinds::{DefaultPropagation, KindId, KindInfo};
use crate::object::{FINALIZER_FOREGROUND, FINALIZER_ORPHAN, Object, Time};

/// `metav1.DeletionPropagation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Propagation {
    /// Delete dependents first; the owner waits with `foregroundDeletion`.
    Foreground,
    /// Delete the owner now; the GC deletes dependents afterwards.
    Background,
    /// Delete the owner after the GC removed it from its dependents' ownerReferences.
    Orphan,
}

impl fmt::Display for Propagation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// `metav1.DeleteOptions`, the fields that matter for deletion.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// `propagationPolicy`.
    pub propagation_policy: Option<Propagation>,
    /// The deprecated `orphanDependents`; it may not be combined with `propagation_policy`.
    pub orphan_dependents: Option<bool>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `gracePeriodSeconds`: used only for kinds deleted gracefully (v1 Pods with
    /// [`super::ServerConfig::graceful_pod_deletion`]); ignored otherwise, as upstream ignores it
    /// for kinds without a graceful delete strategy.
    pub grace_period_seconds: Option<i64>,
}

impl DeleteOptions {
    /// Options with a propagation policy.
    pub fn propagation(policy: Propagation) -> Self {
        DeleteOptions { propagation_policy: Some(policy), ..DeleteOptions::default() }
    }

    /// Options with `orphanDependents`.
    pub fn orphan_dependents(orphan: bool) -> Self {
        DeleteOptions { orphan_dependents: Some(orphan), ..DeleteOptions::default() }
    }

    /// Adds a uid precondition.
    pub fn with_uid(mut self, uid: &str) -> Self {
        self.uid = Some(uid.to_string());
        self
    }

    /// Sets `gracePeriodSeconds` (0: delete now).
    pub fn with_grace_period(mut self, seconds: i64) -> Self {
        self.grace_period_seconds = Some(seconds);
        self
    }

    /// Adds a resourceVersion precondition.
    pub fn with_resource_version(mut self, resource_version: &str) -> Self {
        self.resource_version = Some(resource_version.to_string());
        self
    }
}

/// What a DELETE did.
#[derive(Clone, Debug, PartialEq)]
pub enum Deleted {
    /// The object is gone; this is its last state, stamped with the deletion's resourceVersion.
    Removed(Object),
    /// Finalizers remain: the object stays, with `deletionTimestamp` set.
    Pending(Object),
}

impl Deleted {
    /// The object, removed or pending.
    pub fn object(&self) -> &Object {
        match self {
            Deleted::Removed(object) | Deleted::Pending(object) => object,
        }
    }

    /// Whether the object is gone.
    pub fn is_removed(&self) -> bool {
        matches!(self, Deleted::Removed(_))
    }
}

impl ApiServer {
    /// DELETE with options: preconditions, then the propagation rules of `store.go`.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let mut store = self.write_store();
        let (id, info) = store.kind(api_version, kind)?;
        let namespace = if info.namespaced { namespace } else { "" };
        let graceful = store.config.graceful_pod_deletion && is_pod(&info);
        let result = if graceful {
            store.delete_gracefully(id, &info, namespace, name, options)
        } else {
            store.delete(id, &info, namespace, name, options)
        };
        drop(store);
        let what = match options.propagation_policy {
            Some(policy) => format!("DELETE ({policy})"),
            None => match options.orphan_dependents {
                Some(orphan) => format!("DELETE (orphanDependents={orphan})"),
                None => "DELETE".to_string(),
            },
        };
        let key = key_of(namespace, name);
        let text = match &result {
            Ok(Deleted::Removed(o)) => format!("removed, rv {}", o.metadata.resource_version),
            Ok(Deleted::Pending(o)) if graceful => format!(
                "terminating, grace {}s, finalizers [{}], rv {}",
                o.metadata.deletion_grace_period_seconds.unwrap_or(0),
                o.metadata.finalizers.join(", "),
                o.metadata.resource_version
            ),
            Ok(Deleted::Pending(o)) => format!(
                "deleting, finalizers [{}], rv {}",
                o.metadata.finalizers.join(", "),
                o.metadata.resource_version
            ),
            Err(e) => format!("{} {:?}", e.code, e.reason),
        };
        sim_core::event(format!("API {what} {} {key} → {text}", info.qualified_resource()));
        result
    }
}

impl Store {
    /// The checks every DELETE makes first (`ValidateDeleteOptions`, `rest.BeforeDelete`'s
    /// preconditions): the stored object.
    fn delete_checks(
        &self,
        id: KindId,
        info: &KindInfo,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Rc<Object>, ApiError> {
        let resource = info.qualified_resource();
        if let (Some(_), Some(policy)) = (options.orphan_dependents, options.propagation_policy) {
            return Err(ApiError::invalid(
                "DeleteOptions.meta.k8s.io",
                "",
                &[format!(
                    "propagationPolicy: Invalid value: \"{policy}\": orphanDependents and \
                     deletionPropagation cannot be both set"
                )],
            ));
        }
        let Some(old) = self.find(id, namespace, name).cloned() else {
            return Err(ApiError::not_found(&resource, name));
        };
        // `rest.BeforeDelete`'s early precondition checks.
        if let Some(uid) = &options.uid
            && uid != &old.metadata.uid
        {
            let why = format!(
                "the UID in the precondition ({uid}) does not match the UID in record ({}). The \
                 object might have been deleted and then recreated",
                old.metadata.uid
            );
            // `rest.BeforeDelete` names the kind where other conflicts name the resource.
            return Err(ApiError::conflict(&info.qualified_kind(), name, &why));
        }
        if let Some(rv) = &options.resource_version
            && rv != &old.metadata.resource_version
        {
            let why = format!(
                "the ResourceVersion in the precondition ({rv}) does not match the \
                 ResourceVersion in record ({}). The object might have been modified",
                old.metadata.resource_version
            );
            return Err(ApiError::conflict(&info.qualified_kind(), name, &why));
        }
        Ok(old)
    }

    fn delete(
        &mut self,
        id: KindId,
        info: &KindInfo,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let old = self.delete_checks(id, info, namespace, name, options)?;
        let is_namespace = info.kind == "Namespace" && info.api_version == "v1";
        if is_namespace && PROTECTED_NAMESPACES.contains(&name) {
            let resource = info.qualified_resource();
            return Err(ApiError::forbidden(&resource, name, "this namespace may not be deleted"));
        }
        let mut new = (*old).clone();
        if let Some(finalizers) = deletion_finalizers(info, &old, options) {
            new.metadata.finalizers = finalizers;
        }
        if is_namespace {
            // `namespace/storage.Delete`: mark Terminating; removal waits for spec.finalizers.
            new.status["phase"] = json!("Terminating");
        }
        let spec_finalizers = is_namespace
            && new.spec.get("finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
        if new.metadata.finalizers.is_empty() && !spec_finalizers {
            // `deleteWithoutFinalizers`: the stored object goes; watchers get its last state.
            return Ok(Deleted::Removed(self.commit(id, EventType::Deleted, (*old).clone())));
        }
        if new.metadata.deletion_timestamp.is_none() {
            new.metadata.deletion_timestamp = Some(Time::now());
            new.metadata.deletion_grace_period_seconds = Some(0);
            new.metadata.generation += 1;
        }
        if new == *old {
            return Ok(Deleted::Pending(new));
        }
        Ok(Deleted::Pending(self.commit(id, EventType::Modified, new)))
    }

    /// A v1 Pod's DELETE with graceful deletion on (see the module docs): `rest.BeforeDelete`'s
    /// grace period rules, then `updateForGracefulDeletionAndFinalizers`.
    fn delete_gracefully(
        &mut self,
        id: KindId,
        info: &KindInfo,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let old = self.delete_checks(id, info, namespace, name, options)?;
        let grace = pod_grace_period(&old, options);
        let mut new = (*old).clone();
        let now = Time::now();
        let deadline =
            Time { nanos: now.nanos.saturating_add(grace.saturating_mul(1_000_000_000)) };
        match old.metadata.deletion_grace_period_seconds {
            // Pending: only a shorter grace period changes anything (finalizer options included).
            Some(current) if old.is_deleting() && current <= grace => {
                return Ok(Deleted::Pending((*old).clone()));
            }
            Some(_) if old.is_deleting() => {
                new.metadata.deletion_timestamp = Some(deadline);
                new.metadata.deletion_grace_period_seconds = Some(grace);
            }
            _ => {
                new.metadata.deletion_timestamp = Some(deadline);
                new.metadata.deletion_grace_period_seconds = Some(grace);
                if !old.is_deleting() {
                    new.metadata.generation += 1;
                }
            }
        }
        if let Some(finalizers) = deletion_finalizers(info, &old, options) {
            new.metadata.finalizers = finalizers;
        }
        if grace > 0 || !new.metadata.finalizers.is_empty() {
            return Ok(Deleted::Pending(self.commit(id, EventType::Modified, new)));
        }
        // Grace 0, no finalizer: the deletion state is persisted, then the object removed.
        let last = self.commit(id, EventType::Modified, new);
        Ok(Deleted::Removed(self.commit(id, EventType::Deleted, last)))
    }
}

/// Whether `info` is the core v1 Pod kind.
fn is_pod(info: &KindInfo) -> bool {
    info.kind == "Pod" && info.api_version == "v1"
}

/// `CheckGracefulDelete` of `pod/strategy.go` with `rest.BeforeDelete`'s clamp: the options'
/// grace period, else `spec.terminationGracePeriodSeconds`, else 30; 0 for a finished pod;
/// a negative value counts as 1.
fn pod_grace_period(pod: &Object, options: &DeleteOptions) -> i64 {
    let mut grace = options.grace_period_seconds.unwrap_or_else(|| {
        pod.spec.get("terminationGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(30)
    });
    if grace < 0 {
        grace = 1;
    }
    let phase = pod.status.get("phase").and_then(Value::as_str);
    if matches!(phase, Some("Succeeded" | "Failed")) {
        grace = 0;
    }
    grace
}

/// `deletionFinalizersForGarbageCollection`: the object's finalizers after this DELETE, or
/// `None` when they do not change (compared as sets, as upstream does).
fn deletion_finalizers(
    info: &KindInfo,
    object: &Object,
    options: &DeleteOptions,
) -> Option<Vec<String>> {
    let orphan = should_orphan_dependents(info, object, options);
    let foreground = should_delete_dependents(object, options);
    let mut finalizers: Vec<String> = object
        .metadata
        .finalizers
        .iter()
        .filter(|f| *f != FINALIZER_ORPHAN && *f != FINALIZER_FOREGROUND)
        .cloned()
        .collect();
    if orphan {
        finalizers.push(FINALIZER_ORPHAN.to_string());
    }
    if foreground {
        finalizers.push(FINALIZER_FOREGROUND.to_string());
    }
    let as_set = |list: &[String]| list.iter().cloned().collect::<std::collections::BTreeSet<_>>();
    (as_set(&finalizers) != as_set(&object.metadata.finalizers)).then_some(finalizers)
}

/// `shouldOrphanDependents`: options, then policy, then existing finalizers, then the default.
fn should_orphan_dependents(info: &KindInfo, object: &Object, options: &DeleteOptions) -> bool {
    if let Some(orphan) = options.orphan_dependents {
        return orphan;
    }
    match options.propagation_policy {
        Some(Propagation::Orphan) => return true,
        Some(Propagation::Background | Propagation::Foreground) => return false,
        None => {}
    }
    for finalizer in &object.metadata.finalizers {
        if finalizer == FINALIZER_ORPHAN {
            return true;
        }
        if finalizer == FINALIZER_FOREGROUND {
            return false;
        }
    }
    info.default_propagation == DefaultPropagation::Orphan
}

/// `shouldDeleteDependents`.
fn should_delete_dependents(object: &Object, options: &DeleteOptions) -> bool {
    if options.orphan_dependents.is_some() {
        return false;
    }
    match options.propagation_policy {
        Some(Propagation::Foreground) => return true,
        Some(Propagation::Background | Propagation::Orphan) => return false,
        None => {}
    }
    for finalizer in &object.metadata.finalizers {
        if finalizer == FINALIZER_FOREGROUND {
            return true;
        }
        if finalizer == FINALIZER_ORPHAN {
            return false;
        }
    }
    false
}
