//! `application/json-patch+json`: RFC 6902 patches (add, remove, replace, move, copy, test),
//! applied with the `json-patch` crate, with kube-apiserver's answers
//! (`endpoints/handlers/patch.go`, `jsonPatcher.applyJSPatch`): a body that is not a patch is
//! 400, more than 10,000 operations is 413, an operation that fails (a `test` that does not match,
//! a path that does not exist) is 422 with the failing operation and path named. As upstream's
//! evanphx/json-patch does (and RFC 6902 does not), a `test` of `null` passes where the path does
//! not exist.

use serde_json::Value;

use crate::error::{ApiError, Reason};

/// Upstream's `JSONPatchMaxCopyBytes`: the most bytes the `copy` operations of one patch may copy.
pub const MAX_COPY_BYTES: usize = 3 * 1024 * 1024;

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
    let mut copied = 0usize;
    for (index, operation) in patch.0.iter().enumerate() {
        // Upstream arms evanphx/json-patch's `AccumulatedCopySizeLimit` with
        // `JSONPatchMaxCopyBytes` (3 MiB), so a small patch cannot grow an object without bound.
        if let json_patch::PatchOperation::Copy(copy) = operation
            && let Ok(value) = copy.from.resolve(&patched)
        {
            copied += serde_json::to_vec(value).map_or(0, |bytes| bytes.len());
            if copied > MAX_COPY_BYTES {
                return Err(ApiError::with_reason(
                    Reason::Invalid,
                    format!(
                        "Unable to complete the copy, the accumulated size increase of copy is \
                         {copied}, exceeding the limit {MAX_COPY_BYTES}"
                    ),
                ));
            }
        }
        // evanphx/json-patch, which kube-apiserver uses, passes a `test` of `null` against a
        // path that does not exist (RFC 6902 fails it); `kube::runtime::finalizer` relies on it.
        if let json_patch::PatchOperation::Test(test) = operation
            && test.value.is_null()
            && test.path.resolve(&patched).is_err()
        {
            continue;
        }
        json_patch::patch_unsafe(&mut patched, std::slice::from_ref(operation)).map_err(
            |error| {
                let message = match error.kind {
                    json_patch::PatchErrorKind::TestFailed => {
                        format!("testing value {} failed: test failed", error.path)
                    }
                    _ => error.to_string().replacen("'/0'", &format!("'/{index}'"), 1),
                };
                ApiError::with_reason(Reason::Invalid, message)
            },
        )?;
    }
    Ok(patched)
}
