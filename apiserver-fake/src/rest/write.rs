//! POST, PUT, DELETE and PATCH (`endpoints/handlers/{create,update,delete,patch}.go`): the body
//! decoded as JSON (or YAML), checked against the path (apiVersion, kind, namespace and name
//! must agree with it, or be left out and taken from it), then the server's verb.
//!
//! PATCH takes `application/merge-patch+json` (the server's merge patch, as the Rust verb),
//! `application/json-patch+json` (RFC 6902, [`super::json_patch`]) and
//! `application/strategic-merge-patch+json` (built-in kinds only; 415 for custom resources, as
//! upstream). Server-side apply (`application/apply-patch+yaml`) is not modelled yet: 415 with a
//! message saying so. A DELETE answers `Status` Success naming the object once it is gone (the
//! removed object itself for custom resources and Pods, whose stores set `ReturnDeletedObject`),
//! or the object with its `deletionTimestamp` while finalizers hold it (202 if the request set
//! `orphanDependents=false`). `dryRun` is refused (400): kdst does not model it.

use serde::Serialize;
use serde_json::Value;

use super::query::Query;
use super::route::{Scope, Target};
use super::{Request, Response, failure, is_json, media_type, method_not_allowed};
use crate::error::{ApiError, Reason};
use crate::object::Object;
use crate::server::{ApiServer, DeleteOptions, Deleted, PatchTarget, Propagation};

const MERGE_PATCH: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const STRATEGIC_PATCH: &str = "application/strategic-merge-patch+json";
const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// The body as a JSON value: JSON, or YAML for `application/yaml`; 415 for other media types.
fn decode(request: &Request) -> Result<Value, ApiError> {
    let media = media_type(&request.content_type);
    let value: Value = if is_json(&media) {
        serde_json::from_slice(&request.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding body: {e}")))?
    } else if media == "application/yaml" {
        let text = std::str::from_utf8(&request.body)
            .map_err(|_| ApiError::bad_request("error decoding body: invalid UTF-8".to_string()))?;
        serde_yaml_ng::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding body: {e}")))?
    } else {
        return Err(unsupported_media(&media, "application/json, application/yaml"));
    };
    Ok(value)
}

fn unsupported_media(media: &str, accepted: &str) -> ApiError {
    failure(
        Reason::UnsupportedMediaType,
        format!(
            "the body of the request was in an unknown format - accepted media types include: \
             {accepted} (Content-Type: {media})"
        ),
    )
}

/// The body as an object of the path's kind, in the path's namespace.
fn object_for(target: &Target, request: &Request) -> Result<Object, ApiError> {
    let value = decode(request)?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "error decoding body: expected a JSON object".to_string(),
        ));
    }
    let mut object = Object::from_json(value)
        .map_err(|e| ApiError::bad_request(format!("error decoding body: {e}")))?;
    let info = &target.info;
    if object.api_version.is_empty() {
        object.api_version = info.api_version.clone();
    } else if object.api_version != info.api_version {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({}) does not match the expected API version ({})",
            object.api_version, info.api_version
        )));
    }
    if object.kind.is_empty() {
        object.kind = info.kind.clone();
    } else if object.kind != info.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({}) does not match the expected kind ({})",
            object.kind, info.kind
        )));
    }
    if let Some(namespace) = &target.namespace {
        if object.metadata.namespace.is_empty() {
            object.metadata.namespace = namespace.clone();
        } else if &object.metadata.namespace != namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the \
                 request"
                    .to_string(),
            ));
        }
    }
    Ok(object)
}

fn refuse_dry_run(query: &Query) -> Result<(), ApiError> {
    if query.dry_run {
        return Err(ApiError::bad_request("kdst does not model dryRun".to_string()));
    }
    Ok(())
}

/// `Status` Success of a completed DELETE (`Store.finalizeDelete`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Success<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: serde_json::Map<String, Value>,
    status: &'static str,
    details: SuccessDetails<'a>,
}

#[derive(Serialize)]
struct SuccessDetails<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    group: &'a str,
    kind: &'a str,
    uid: &'a str,
}

/// The options of a DELETE from its query and its body (the body wins, as upstream decodes it
/// over the query's).
fn delete_options(query: &Query, request: &Request) -> Result<DeleteOptions, ApiError> {
    let mut policy = query.propagation_policy.clone();
    let mut options = DeleteOptions {
        orphan_dependents: query.orphan_dependents,
        grace_period_seconds: query.grace_period_seconds,
        ..DeleteOptions::default()
    };
    if !request.body.is_empty() {
        let body = decode(request)?;
        let Value::Object(body) = body else {
            return Err(ApiError::bad_request(
                "error decoding body: DeleteOptions must be an object".to_string(),
            ));
        };
        let wrong = |field: &str| {
            ApiError::bad_request(format!(
                "error decoding body: DeleteOptions.{field} has the wrong type"
            ))
        };
        if let Some(value) = body.get("propagationPolicy").filter(|v| !v.is_null()) {
            policy = Some(value.as_str().ok_or_else(|| wrong("propagationPolicy"))?.to_string());
        }
        if let Some(value) = body.get("orphanDependents").filter(|v| !v.is_null()) {
            options.orphan_dependents =
                Some(value.as_bool().ok_or_else(|| wrong("orphanDependents"))?);
        }
        if let Some(value) = body.get("gracePeriodSeconds").filter(|v| !v.is_null()) {
            options.grace_period_seconds =
                Some(value.as_i64().ok_or_else(|| wrong("gracePeriodSeconds"))?);
        }
        if body.get("dryRun").and_then(Value::as_array).is_some_and(|d| !d.is_empty()) {
            return Err(ApiError::bad_request("kdst does not model dryRun".to_string()));
        }
        let preconditions = body.get("preconditions").filter(|v| !v.is_null());
        if let Some(preconditions) = preconditions {
            let text = |field: &str| -> Result<Option<String>, ApiError> {
                match preconditions.get(field) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(text)) => Ok(Some(text.clone())),
                    Some(_) => Err(wrong(&format!("preconditions.{field}"))),
                }
            };
            options.uid = text("uid")?;
            options.resource_version = text("resourceVersion")?;
        }
    }
    options.propagation_policy = match policy.as_deref() {
        None | Some("") => None,
        Some("Foreground") => Some(Propagation::Foreground),
        Some("Background") => Some(Propagation::Background),
        Some("Orphan") => Some(Propagation::Orphan),
        Some(other) => {
            return Err(ApiError::invalid(
                "DeleteOptions.meta.k8s.io",
                "",
                &[format!(
                    "propagationPolicy: Unsupported value: \"{other}\": supported values: \
                     \"Foreground\", \"Background\", \"Orphan\""
                )],
            ));
        }
    };
    Ok(options)
}

impl ApiServer {
    pub(super) fn rest_create(
        &self,
        target: &Target,
        query: &Query,
        request: &Request,
    ) -> Result<Response, ApiError> {
        if target.info.namespaced && target.namespace.is_none() {
            return Err(method_not_allowed("POST"));
        }
        refuse_dry_run(query)?;
        let object = object_for(target, request)?;
        let created = self.create(object)?;
        Ok(Response::of(201, &created))
    }

    pub(super) fn rest_update(
        &self,
        target: &Target,
        name: &str,
        request: &Request,
    ) -> Result<Response, ApiError> {
        let mut object = object_for(target, request)?;
        if object.metadata.name.is_empty() {
            object.metadata.name = name.to_string();
        } else if object.metadata.name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                object.metadata.name
            )));
        }
        let updated = match target.subresource.as_deref() {
            None => self.update(object)?,
            Some("status") => self.update_status(object)?,
            Some(_) => self.finalize_namespace(object)?,
        };
        Ok(Response::of(200, &updated))
    }

    pub(super) fn rest_delete(
        &self,
        target: &Target,
        name: &str,
        query: &Query,
        request: &Request,
    ) -> Result<Response, ApiError> {
        refuse_dry_run(query)?;
        let options = delete_options(query, request)?;
        let info = &target.info;
        let deleted =
            self.delete(&info.api_version, &info.kind, target.item_namespace(), name, &options)?;
        let returns_object = info.custom || (info.api_version == "v1" && info.kind == "Pod");
        Ok(match deleted {
            Deleted::Removed(object) if !returns_object => {
                let success = Success {
                    kind: "Status",
                    api_version: "v1",
                    metadata: serde_json::Map::new(),
                    status: "Success",
                    details: SuccessDetails {
                        name: &object.metadata.name,
                        group: info.group(),
                        kind: &info.resource,
                        uid: &object.metadata.uid,
                    },
                };
                Response::of(200, &success)
            }
            Deleted::Removed(object) => Response::of(200, &object),
            Deleted::Pending(object) => {
                let accepted = options.orphan_dependents == Some(false);
                Response::of(if accepted { 202 } else { 200 }, &object)
            }
        })
    }

    pub(super) fn rest_patch(
        &self,
        target: &Target,
        name: &str,
        query: &Query,
        request: &Request,
    ) -> Result<Response, ApiError> {
        refuse_dry_run(query)?;
        debug_assert!(matches!(target.scope, Scope::Item(_)));
        let info = &target.info;
        let status = target.subresource.as_deref() == Some("status");
        let media = media_type(&request.content_type);
        let patch_target = PatchTarget {
            api_version: &info.api_version,
            kind: &info.kind,
            namespace: target.item_namespace(),
            name,
            status,
        };
        let suffix = if status { " status" } else { "" };
        let patched = match media.as_str() {
            MERGE_PATCH => {
                let patch: Value = serde_json::from_slice(&request.body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                let (api_version, kind, namespace) =
                    (&info.api_version, &info.kind, target.item_namespace());
                if status {
                    self.patch_status(api_version, kind, namespace, name, &patch)?
                } else {
                    self.patch(api_version, kind, namespace, name, &patch)?
                }
            }
            JSON_PATCH => {
                let verb = format!("PATCH{suffix} (json-patch)");
                self.patch_with(&patch_target, &verb, |current, _| {
                    super::json_patch::apply(current, &request.body)
                })?
            }
            STRATEGIC_PATCH if info.custom => {
                return Err(unsupported_media(
                    &media,
                    "application/json-patch+json, application/merge-patch+json, \
                     application/apply-patch+yaml",
                ));
            }
            STRATEGIC_PATCH => {
                let patch: Value = serde_json::from_slice(&request.body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                let verb = format!("PATCH{suffix} (strategic)");
                self.patch_with(&patch_target, &verb, |current, info| {
                    super::strategic_merge_patch(current, &patch, &info.api_version, &info.kind)
                        .map_err(|e| ApiError::with_reason(Reason::Invalid, e.message))
                })?
            }
            APPLY_PATCH => {
                return Err(unsupported_media(
                    &media,
                    "application/json-patch+json, application/merge-patch+json, \
                     application/strategic-merge-patch+json (kdst does not model server-side \
                     apply yet)",
                ));
            }
            _ => {
                return Err(unsupported_media(
                    &media,
                    "application/json-patch+json, application/merge-patch+json, \
                     application/apply-patch+yaml, application/strategic-merge-patch+json",
                ));
            }
        };
        Ok(Response::of(200, &patched))
    }
}
