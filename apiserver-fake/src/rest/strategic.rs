//! Strategic merge patch (`application/strategic-merge-patch+json`) for built-in kinds.
//! TEMPORARY STUB until the helper's file lands.

use serde_json::Value;

/// Why a strategic merge patch could not be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrategicMergeError {
    /// The text.
    pub message: String,
}

/// Applies a strategic merge patch.
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    _api_version: &str,
    _kind: &str,
) -> Result<Value, StrategicMergeError> {
    let mut out = original.clone();
    crate::object::merge_patch(&mut out, patch);
    Ok(out)
}
