//! PersistentVolumeClaims: the `kubernetes.io/pvc-protection` finalizer, the rule that a
//! claim's storage request never shrinks, and the quantities both need.
//!
//! - **Admission** (`plugin/pkg/admission/storage/storageobjectinuseprotection/admission.go`,
//!   `Admit`): every v1 PVC CREATE gets [`FINALIZER_PVC_PROTECTION`] unless it has it. Upstream
//!   enables the plugin by default, so the server always applies it; a claim deleted while no
//!   [`PvcProtectionController`] runs stays Terminating, as it would upstream.
//! - **Validation** (`pkg/apis/core/validation/validation.go`,
//!   `ValidatePersistentVolumeClaimUpdate`): an UPDATE or PATCH that lowers
//!   `spec.resources.requests.storage` is 422 `spec.resources.requests.storage: Forbidden:
//!   field can not be less than previous value` (upstream's text without
//!   `RecoverVolumeExpansionFailure`). Every claim counts as bound, so raising the request is
//!   allowed; the rest of upstream's claim-spec immutability is not modelled. A storage request
//!   that is not a quantity is 400, as upstream's decoder refuses it.
//! - **The controller** ([`PvcProtectionController`], `protection.rs`): removes the finalizer
//!   once the claim is being deleted and no pod uses it.
//! - **Quantities** ([`Quantity`], `quantity.rs`).

mod protection;
mod quantity;

use serde_json::Value;

use crate::error::ApiError;
use crate::object::Object;

pub use protection::{PvcProtectionConfig, PvcProtectionController};
pub use quantity::{Quantity, QuantityError};

/// `volumeutil.PVCProtectionFinalizer`.
pub const FINALIZER_PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";

/// Whether `(api_version, kind)` is the core v1 PersistentVolumeClaim.
pub(crate) fn is_pvc(api_version: &str, kind: &str) -> bool {
    kind == "PersistentVolumeClaim" && api_version == "v1"
}

/// `spec.resources.requests.storage`, if the claim has one.
pub fn storage_request(claim: &Object) -> Option<&Value> {
    claim.spec.get("resources")?.get("requests")?.get("storage")
}

/// The CREATE path of a claim: the storage request must be a quantity (400 otherwise), then
/// the admission plugin adds the protection finalizer.
pub(crate) fn admit_create(claim: &mut Object) -> Result<(), ApiError> {
    if let Some(storage) = storage_request(claim) {
        parse_storage(storage)?;
    }
    if !claim.has_finalizer(FINALIZER_PVC_PROTECTION) {
        claim.metadata.finalizers.push(FINALIZER_PVC_PROTECTION.to_string());
    }
    Ok(())
}

/// `ValidatePersistentVolumeClaimUpdate`'s storage rule (a missing request counts as zero).
pub(crate) fn validate_update(old: &Object, new: &Object) -> Result<(), ApiError> {
    let new_size = match storage_request(new) {
        Some(storage) => parse_storage(storage)?,
        None => Quantity::ZERO,
    };
    let old_size = storage_request(old).and_then(|s| Quantity::from_json(s).ok());
    if old_size.is_some_and(|old_size| new_size < old_size) {
        return Err(ApiError::invalid(
            "PersistentVolumeClaim",
            &new.metadata.name,
            &["spec.resources.requests.storage: Forbidden: field can not be less than previous \
               value"
                .to_string()],
        ));
    }
    Ok(())
}

/// A storage request, or upstream's decode error (400).
fn parse_storage(storage: &Value) -> Result<Quantity, ApiError> {
    Quantity::from_json(storage).map_err(|error| {
        ApiError::bad_request(format!(
            "PersistentVolumeClaim in version \"v1\" cannot be handled as a \
             PersistentVolumeClaim: {}",
            error.reason
        ))
    })
}

/// Whether `pod` names `claim` in `spec.volumes[].persistentVolumeClaim.claimName`
/// (`podUsesPVC`; every pod counts as scheduled).
pub fn pod_uses_claim(pod: &Object, claim: &str) -> bool {
    claim_names(pod).any(|name| name == claim)
}

/// The claims `pod`'s volumes name.
pub fn claim_names(pod: &Object) -> impl Iterator<Item = &str> {
    pod.spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|volume| volume.get("persistentVolumeClaim")?.get("claimName")?.as_str())
}
