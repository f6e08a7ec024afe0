//! The ObjectMeta rules the verbs check: ownerReferences with every field set and at most one
//! controller, `orphan` and `foregroundDeletion` not both set; on update, an unchanged
//! deletionTimestamp and grace period, and no new finalizer on an object being deleted. Mirrors
//! upstream `apimachinery/pkg/api/validation/objectmeta.go` (`ValidateObjectMeta`,
//! `ValidateOwnerReferences`, `ValidateFinalizers`, `ValidateObjectMetaUpdate`,
//! `ValidateNoNewFinalizers`).

use crate::error::ApiError;
use crate::kinds::KindInfo;
use crate::object::{FINALIZER_FOREGROUND, FINALIZER_ORPHAN, Object, ObjectMeta};

/// `ValidateObjectMeta`'s ownerReference and finalizer rules.
pub(super) fn validate_meta(info: &KindInfo, object: &Object) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let meta = &object.metadata;
    for reference in &meta.owner_references {
        for (field, value) in [
            ("apiVersion", &reference.api_version),
            ("kind", &reference.kind),
            ("name", &reference.name),
            ("uid", &reference.uid),
        ] {
            if value.is_empty() {
                let what = if field == "apiVersion" { "version must" } else { "must" };
                errors.push(format!(
                    "metadata.ownerReferences.{field}: Invalid value: \"\": {what} not be empty"
                ));
            }
        }
    }
    let controllers: Vec<String> = meta
        .owner_references
        .iter()
        .filter(|r| r.is_controller())
        .map(|r| format!("{}/{}", r.kind, r.name))
        .collect();
    if controllers.len() > 1 {
        errors.push(format!(
            "metadata.ownerReferences: Invalid value: []v1.OwnerReference{{...}}: Only one reference \
             can have Controller set to true. Found \"true\" in references for {} and {}",
            controllers[0], controllers[1]
        ));
    }
    if object.has_finalizer(FINALIZER_ORPHAN) && object.has_finalizer(FINALIZER_FOREGROUND) {
        errors.push(format!(
            "metadata.finalizers: Invalid value: {}: finalizer {FINALIZER_ORPHAN} and \
             {FINALIZER_FOREGROUND} cannot be both set",
            go_string_slice(&meta.finalizers)
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&info.qualified_kind(), &meta.name, &errors))
    }
}

/// Go's `%#v` of a `[]string`, as upstream prints new finalizers.
fn go_string_slice(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// `ValidateObjectMetaUpdate` of `old` to `new` (whose system fields are already the server's):
/// the deletion fields are immutable, then [`validate_meta`]'s rules, then no new finalizer on an
/// object being deleted (`ValidateNoNewFinalizers`). The first rule broken is the error.
pub(super) fn validate_meta_update(
    info: &KindInfo,
    name: &str,
    old: &Object,
    new: &Object,
) -> Result<(), ApiError> {
    let meta: &ObjectMeta = &new.metadata;
    let mut immutable = Vec::new();
    if let Some(time) = meta.deletion_timestamp
        && old.metadata.deletion_timestamp != Some(time)
    {
        immutable.push(format!(
            "metadata.deletionTimestamp: Invalid value: \"{time}\": field is immutable"
        ));
    }
    if let Some(grace) = meta.deletion_grace_period_seconds
        && old.metadata.deletion_grace_period_seconds != Some(grace)
    {
        immutable.push(format!(
            "metadata.deletionGracePeriodSeconds: Invalid value: {grace}: field is immutable"
        ));
    }
    if !immutable.is_empty() {
        return Err(ApiError::invalid(&info.qualified_kind(), name, &immutable));
    }
    validate_meta(info, new)?;
    if old.is_deleting() {
        // `sets.NewString(new...).Difference(old).List()`: sorted, without duplicates.
        let added: Vec<String> = meta
            .finalizers
            .iter()
            .filter(|f| !old.metadata.finalizers.contains(f))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !added.is_empty() {
            return Err(ApiError::invalid(
                &info.qualified_kind(),
                name,
                &[format!(
                    "metadata.finalizers: Forbidden: no new finalizers can be added if the \
                     object is being deleted, found new finalizers {}",
                    go_string_slice(&added)
                )],
            ));
        }
    }
    Ok(())
}
