//! `application/json-patch+json`: RFC 6902 patches (add, remove, replace, move, copy, test),
//! applied with the `json-patch` crate, with kube-apiserver's answers
//! (`endpoints/handlers/patch.go`, `jsonPatcher.applyJSPatch`): a body that is not a patch is
//! 400, more than 10,000 operations is 413, an operation that fails (a `test` that does not match,
//! a path that does not exist) is 422 with the failing operation and path named.

use serde_json::Value;

use crate::error::{ApiError, Reason};

/// Upstream's `maxJSONPatchOperations`.
pub const MAX_OPERATIONS: usize = 10_000;

/// Applies the JSON patch `body` to `document` (a copy of the stored object).
pub(super) fn apply(document: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: json_patch::Patch = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    if patch.0.len() > MAX_OPERATIONS {
        return Err(ApiError::with_reason(
            Reason::RequestEntityTooLarge,
            format!(
                "The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {}",
                patch.0.len()
            ),
        ));
    }
    let mut patched = document.clone();
    json_patch::patch_unsafe(&mut patched, &patch.0).map_err(|error| {
        let message = match error.kind {
            json_patch::PatchErrorKind::TestFailed => {
                format!("testing value {} failed: test failed", error.path)
            }
            _ => error.to_string(),
        };
        ApiError::with_reason(Reason::Invalid, message)
    })?;
    Ok(patched)
}
