//! UPDATE, JSON merge PATCH and the `status` and namespace `finalize` subresources:
//! preconditions, the system fields an update cannot change, generation, and the removal of an
//! object whose last finalizer an update takes away. Mirrors upstream `registry/rest/update.go`
//! (`BeforeUpdate`), `registry/generic/registry/store.go` (`Store.Update`,
//! `ShouldDeleteDuringUpdate`), `endpoints/handlers/patch.go`
//! (`jsonMergePatcher.applyPatchToCurrentObject`) and `pkg/registry/core/namespace/storage`
//! (`FinalizeREST.Update`). A PersistentVolumeClaim's storage request may not shrink
//! (`ValidatePersistentVolumeClaimUpdate`, [`crate::pvc`]).

use serde_json::{Value, json};

use super::store::Store;
use super::validate::validate_meta_update;
use super::watch::EventType;
use super::{ApiServer, key_of, trace_verb};
use crate::error::ApiError;
use crate::kinds::{KindId, KindInfo};
use crate::object::{Object, merge_patch};

/// The object a PATCH goes to ([`ApiServer::patch_with`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchTarget<'a> {
    /// `group/version`.
    pub api_version: &'a str,
    /// The kind.
    pub kind: &'a str,
    /// The namespace (ignored for cluster-scoped kinds).
    pub namespace: &'a str,
    /// The name.
    pub name: &'a str,
    /// The status subresource rather than the main resource.
    pub status: bool,
}

/// Which subresource an update writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Subresource {
    Main,
    Status,
    Finalize,
}

impl ApiServer {
    /// UPDATE of the main resource (status changes are ignored for kinds with a status
    /// subresource).
    pub fn update(&self, object: Object) -> Result<Object, ApiError> {
        self.update_inner(object, Subresource::Main, "UPDATE")
    }

    /// UPDATE of the status subresource: only `status` changes.
    pub fn update_status(&self, object: Object) -> Result<Object, ApiError> {
        self.update_inner(object, Subresource::Status, "UPDATE status")
    }

    /// The namespace `/finalize` subresource: only `spec.finalizers` changes; the namespace is
    /// removed once it is deleting and no finalizer of either kind remains.
    pub fn finalize_namespace(&self, namespace: Object) -> Result<Object, ApiError> {
        self.update_inner(namespace, Subresource::Finalize, "UPDATE finalize")
    }

    /// JSON merge PATCH (RFC 7386) of the main resource. It conflicts only if the patch
    /// carries a `metadata.resourceVersion` that is not the current one; a `metadata.uid` that
    /// is not the object's is 422 (the uid is immutable).
    pub fn patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Object, ApiError> {
        self.patch_inner(api_version, kind, namespace, name, patch, Subresource::Main)
    }

    /// JSON merge PATCH of the status subresource.
    pub fn patch_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Object, ApiError> {
        self.patch_inner(api_version, kind, namespace, name, patch, Subresource::Status)
    }

    fn patch_inner(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        patch: &Value,
        subresource: Subresource,
    ) -> Result<Object, ApiError> {
        let verb = if subresource == Subresource::Status { "PATCH status" } else { "PATCH" };
        let target = PatchTarget {
            api_version,
            kind,
            namespace,
            name,
            status: subresource == Subresource::Status,
        };
        self.patch_with(&target, verb, |current, info| {
            if !patch.is_object() {
                return Err(ApiError::bad_request(format!(
                    "invalid JSON merge patch for {} \"{name}\": not an object",
                    info.qualified_resource()
                )));
            }
            let mut merged = current.clone();
            merge_patch(&mut merged, patch);
            Ok(merged)
        })
    }

    /// PATCH of any type: `apply` turns the stored object's JSON into the patched JSON (a JSON
    /// patch, a strategic merge, a merge patch), or refuses with the error the client gets. The
    /// result is then written as an update is, with the uid and the identity of the stored
    /// object (`endpoints/handlers/patch.go`, `patcher.patchResource`). `verb` names the patch
    /// in the trace.
    pub fn patch_with(
        &self,
        target: &PatchTarget<'_>,
        verb: &str,
        apply: impl FnOnce(&Value, &KindInfo) -> Result<Value, ApiError>,
    ) -> Result<Object, ApiError> {
        let PatchTarget { api_version, kind, namespace, name, status } = *target;
        let subresource = if status { Subresource::Status } else { Subresource::Main };
        let (info, current) = {
            let store = self.read_store();
            let (id, info) = store.kind(api_version, kind)?;
            let namespace = if info.namespaced { namespace } else { "" };
            (info.clone(), store.find(id, namespace, name).map(|o| (*o).clone()))
        };
        let Some(current) = current else {
            let result = Err(ApiError::not_found(&info.qualified_resource(), name));
            trace_verb(verb, &info, &Ok(key_of(namespace, name)), &result);
            return result;
        };
        let patched = match apply(&current.to_json(), &info) {
            Ok(patched) => patched,
            Err(error) => {
                let result = Err(error);
                trace_verb(verb, &info, &Ok(current.key()), &result);
                return result;
            }
        };
        let mut object = match Object::from_json(patched) {
            Ok(object) => object,
            Err(why) => {
                let result = Err(ApiError::bad_request(format!(
                    "invalid JSON merge patch for {} \"{name}\": {why}",
                    info.qualified_resource()
                )));
                trace_verb(verb, &info, &Ok(current.key()), &result);
                return result;
            }
        };
        // A patch carries no uid precondition (`DefaultUpdatedObjectInfo(nil, ...)`): a changed
        // uid fails validation as an immutable field.
        if object.metadata.uid != current.metadata.uid {
            let result = Err(ApiError::invalid(
                &info.qualified_kind(),
                name,
                &[format!(
                    "metadata.uid: Invalid value: \"{}\": field is immutable",
                    object.metadata.uid
                )],
            ));
            trace_verb(verb, &info, &Ok(current.key()), &result);
            return result;
        }
        // The patch is applied to the stored object: its identity cannot move.
        object.api_version = current.api_version.clone();
        object.kind = current.kind.clone();
        object.metadata.namespace = current.metadata.namespace.clone();
        object.metadata.name = current.metadata.name.clone();
        self.update_inner(object, subresource, verb)
    }

    fn update_inner(
        &self,
        new: Object,
        subresource: Subresource,
        verb: &str,
    ) -> Result<Object, ApiError> {
        let mut store = self.write_store();
        let (id, info) = store.kind(&new.api_version, &new.kind)?;
        let namespace =
            if info.namespaced { new.metadata.namespace.clone() } else { String::new() };
        let name = new.metadata.name.clone();
        let result = store.update(id, &info, &namespace, new, subresource);
        let removed = result.is_ok() && store.find(id, &namespace, &name).is_none();
        let rv = store.rv;
        drop(store);
        if removed {
            let resource = info.qualified_resource();
            let key = key_of(&namespace, &name);
            sim_core::event(format!(
                "API {verb} {resource} {key} → last finalizer removed, object removed, rv {rv}"
            ));
        } else {
            trace_verb(verb, &info, &Ok(key_of(&namespace, &name)), &result);
        }
        result
    }
}

impl Store {
    fn update(
        &mut self,
        id: KindId,
        info: &KindInfo,
        namespace: &str,
        mut new: Object,
        subresource: Subresource,
    ) -> Result<Object, ApiError> {
        let name = new.metadata.name.clone();
        let resource = info.qualified_resource();
        let Some(old) = self.find(id, namespace, &name).cloned() else {
            return Err(ApiError::not_found(&resource, &name));
        };
        // `defaultUpdatedObjectInfo.Preconditions`: a uid in the body is a precondition.
        if !new.metadata.uid.is_empty() && new.metadata.uid != old.metadata.uid {
            let why = format!(
                "StorageError: invalid object, Code: 4, Key: {}, ResourceVersion: 0, \
                 AdditionalErrorMsg: Precondition failed: UID in precondition: {}, UID in object \
                 meta: {}",
                info.storage_key(namespace, &name),
                new.metadata.uid,
                old.metadata.uid
            );
            return Err(ApiError::conflict(&resource, &name, &why));
        }
        if new.metadata.resource_version.is_empty() {
            if info.custom {
                return Err(ApiError::invalid(
                    &info.qualified_kind(),
                    &name,
                    &["metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
                        .to_string()],
                ));
            }
        } else if new.metadata.resource_version != old.metadata.resource_version {
            return Err(ApiError::stale(&resource, &name));
        }
        new = match subresource {
            Subresource::Main => {
                if info.status_subresource {
                    new.status = old.status.clone();
                }
                if info.kind == "Namespace" {
                    new.spec = old.spec.clone();
                }
                new
            }
            Subresource::Status => Object { status: new.status, ..(*old).clone() },
            Subresource::Finalize => {
                let mut object = (*old).clone();
                let finalizers = new.spec.get("finalizers").cloned().unwrap_or(json!([]));
                object.spec["finalizers"] = finalizers;
                object
            }
        };
        // `rest.BeforeUpdate`: system fields are the server's.
        let meta = &mut new.metadata;
        meta.namespace = old.metadata.namespace.clone();
        meta.uid = old.metadata.uid.clone();
        meta.resource_version = old.metadata.resource_version.clone();
        meta.generate_name = old.metadata.generate_name.clone();
        meta.creation_timestamp = old.metadata.creation_timestamp;
        // An update never removes or moves a deletionTimestamp; setting one on a live object,
        // or a different grace period, fails `ValidateObjectMetaUpdate`.
        if old.metadata.deletion_timestamp.is_some() {
            meta.deletion_timestamp = old.metadata.deletion_timestamp;
        }
        if meta.deletion_grace_period_seconds.is_none() {
            meta.deletion_grace_period_seconds = old.metadata.deletion_grace_period_seconds;
        }
        meta.generation = old.metadata.generation;
        validate_meta_update(info, &name, &old, &new)?;
        if subresource == Subresource::Main && crate::pvc::is_pvc(&info.api_version, &info.kind) {
            crate::pvc::validate_update(&old, &new)?;
        }
        let spec_changed = new.spec != old.spec
            || new.other != old.other
            || (info.custom && !info.status_subresource && new.status != old.status);
        if spec_changed {
            new.metadata.generation += 1;
        }
        if new == *old {
            return Ok(new); // a no-op write: no new resourceVersion, no event
        }
        let namespace_finalized = info.kind != "Namespace"
            || new.spec.get("finalizers").and_then(Value::as_array).is_none_or(Vec::is_empty);
        // A pod still in its grace period stays for the node to remove.
        let graceless = old.metadata.deletion_grace_period_seconds.unwrap_or(0) == 0;
        if old.is_deleting()
            && new.metadata.finalizers.is_empty()
            && namespace_finalized
            && graceless
        {
            // `ShouldDeleteDuringUpdate`: the last finalizer is gone (and the deletion grace
            // period is 0). The write is not persisted:
            // the stored object is deleted and watchers get its last stored state.
            // `deleteWithoutFinalizers` answers with the object as written.
            self.commit(id, EventType::Deleted, (*old).clone());
            return Ok(new);
        }
        Ok(self.commit(id, EventType::Modified, new))
    }
}
