//! POST, PUT, DELETE and PATCH (`endpoints/handlers/{create,update,delete,patch}.go`): the body
//! decoded as JSON (or YAML), checked against the path (apiVersion, kind, namespace and name
//! must agree with it, or be left out and taken from it), then the server's verb.
//!
//! PATCH takes `application/merge-patch+json` (the server's merge patch, as the Rust verb),
//! `application/json-patch+json` (RFC 6902, [`super::json_patch`]) and
//! `application/strategic-merge-patch+json` (built-in kinds only; 415 for custom resources, as
//! upstream) and `application/apply-patch+yaml` (server-side apply, [`super::apply`], which also
//! keeps every write's `managedFields`). A DELETE answers `Status` Success naming the object once it is gone (the
//! removed object itself for custom resources and Pods, whose stores set `ReturnDeletedObject`),
//! or the object with its `deletionTimestamp` while finalizers hold it (202 if the request set
//! `orphanDependents=false`). `dryRun` is refused (400): kdst does not model it.

use serde::Serialize;
use serde_json::{Map, Value};

use super::apply::{self, Part};
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
    let bad =
        |e: &dyn std::fmt::Display| ApiError::bad_request(format!("error decoding body: {e}"));
    let mut object = if is_json(&media_type(&request.content_type)) {
        // Straight from the bytes: no intermediate JSON tree.
        serde_json::from_slice::<Object>(&request.body).map_err(|e| bad(&e))?
    } else {
        let value = decode(request)?;
        if !value.is_object() {
            return Err(bad(&"expected an object"));
        }
        Object::from_json(value).map_err(|e| bad(&e))?
    };
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

/// The field manager of a write: `fieldManager`, else the user agent up to its first `/`
/// (`managerOrUserAgent`).
fn manager(query: &Query, request: &Request) -> String {
    match &query.field_manager {
        Some(manager) if !manager.is_empty() => manager.clone(),
        _ => request.user_agent.split('/').next().unwrap_or_default().to_string(),
    }
}

/// What a write to `target` covers, for its field set.
fn part_of(target: &Target) -> Part {
    match target.subresource.as_deref() {
        Some("status") => Part::Status,
        _ => Part::Main { status_subresource: target.info.status_subresource },
    }
}

/// `PatchOptions` validation: 422 naming the field.
fn invalid_patch_options(why: &str) -> ApiError {
    ApiError::invalid("PatchOptions.meta.k8s.io", "", &[why.to_string()])
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
        let mut object = object_for(target, request)?;
        let (api_version, kind) = (target.info.api_version.clone(), target.info.kind.clone());
        let manager = manager(query, request);
        apply::record_update(None, &mut object, &manager, &api_version, &kind, part_of(target));
        let created = self.create(object)?;
        Ok(Response::of(201, &created))
    }

    pub(super) fn rest_update(
        &self,
        target: &Target,
        name: &str,
        query: &Query,
        request: &Request,
    ) -> Result<Response, ApiError> {
        refuse_dry_run(query)?;
        let mut object = object_for(target, request)?;
        if object.metadata.name.is_empty() {
            object.metadata.name = name.to_string();
        } else if object.metadata.name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                object.metadata.name
            )));
        }
        let info = &target.info;
        let old = self.peek(&info.api_version, &info.kind, target.item_namespace(), name);
        let manager = manager(query, request);
        let (api_version, kind) = (info.api_version.clone(), info.kind.clone());
        apply::record_update(
            old.as_ref(),
            &mut object,
            &manager,
            &api_version,
            &kind,
            part_of(target),
        );
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
        if query.force.is_some() && media != APPLY_PATCH {
            return Err(invalid_patch_options(
                "force: Forbidden: may not be specified for non-apply patch",
            ));
        }
        let manager = manager(query, request);
        let part = part_of(target);
        // Every patch type but apply: the patched JSON, then the write's managedFields.
        let updating = |patched: Value, current: &Value| -> Result<Value, ApiError> {
            let mut object = Object::from_json(patched).map_err(|why| {
                ApiError::bad_request(format!(
                    "invalid patch for {} \"{name}\": {why}",
                    info.qualified_resource()
                ))
            })?;
            let old = Object::from_json(current.clone()).ok();
            apply::record_update(
                old.as_ref(),
                &mut object,
                &manager,
                &info.api_version,
                &info.kind,
                part,
            );
            Ok(object.to_json())
        };
        let patched = match media.as_str() {
            MERGE_PATCH => {
                let patch: Value = serde_json::from_slice(&request.body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                let verb = format!("PATCH{suffix}");
                self.patch_with(&patch_target, &verb, |current, info| {
                    if !patch.is_object() {
                        return Err(ApiError::bad_request(format!(
                            "invalid JSON merge patch for {} \"{name}\": not an object",
                            info.qualified_resource()
                        )));
                    }
                    let mut merged = current.clone();
                    crate::object::merge_patch(&mut merged, &patch);
                    updating(merged, current)
                })?
            }
            JSON_PATCH => {
                let verb = format!("PATCH{suffix} (json-patch)");
                self.patch_with(&patch_target, &verb, |current, _| {
                    updating(super::json_patch::apply(current, &request.body)?, current)
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
                    let patched = super::strategic_merge_patch(
                        current,
                        &patch,
                        &info.api_version,
                        &info.kind,
                    )
                    .map_err(|e| ApiError::with_reason(Reason::Invalid, e.message))?;
                    updating(patched, current)
                })?
            }
            APPLY_PATCH => return self.rest_apply(target, name, query, request, &manager),
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

    /// Server-side apply: the body is the applied configuration (YAML or JSON).
    fn rest_apply(
        &self,
        target: &Target,
        name: &str,
        query: &Query,
        request: &Request,
        manager: &str,
    ) -> Result<Response, ApiError> {
        if query.field_manager.as_deref().is_none_or(str::is_empty) {
            return Err(invalid_patch_options(
                "fieldManager: Required value: is required for apply patch",
            ));
        }
        let text = std::str::from_utf8(&request.body)
            .map_err(|_| ApiError::bad_request("error decoding YAML: invalid UTF-8".to_string()))?;
        let mut applied: Value = serde_yaml_ng::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        let info = &target.info;
        let Value::Object(config) = &mut applied else {
            return Err(ApiError::bad_request(
                "error decoding YAML: expected an object".to_string(),
            ));
        };
        let field = |config: &Map<String, Value>, key: &str| {
            config.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
        };
        if field(config, "apiVersion") != info.api_version || field(config, "kind") != info.kind {
            return Err(ApiError::bad_request(format!(
                "the apply configuration's apiVersion and kind ({} {}) must be the path's ({} {})",
                field(config, "apiVersion"),
                field(config, "kind"),
                info.api_version,
                info.kind
            )));
        }
        let meta = config.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(meta) = meta else {
            return Err(ApiError::bad_request(
                "error decoding YAML: metadata must be an object".to_string(),
            ));
        };
        match meta.get("name").and_then(Value::as_str) {
            None => {
                meta.insert("name".to_string(), Value::String(name.to_string()));
            }
            Some(given) if given != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({given}) does not match the name on the URL ({name})"
                )));
            }
            Some(_) => {}
        }
        if let Some(namespace) = &target.namespace {
            match meta.get("namespace").and_then(Value::as_str) {
                None => {
                    meta.insert("namespace".to_string(), Value::String(namespace.clone()));
                }
                Some(given) if given != namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent \
                         on the request"
                            .to_string(),
                    ));
                }
                Some(_) => {}
            }
        }
        let force = query.force == Some(true);
        let part = part_of(target);
        let (api_version, kind) = (info.api_version.as_str(), info.kind.as_str());
        let patch_target = PatchTarget {
            api_version,
            kind,
            namespace: target.item_namespace(),
            name,
            status: part == Part::Status,
        };
        let verb = if part == Part::Status { "PATCH status (apply)" } else { "PATCH (apply)" };
        let result = self.patch_with(&patch_target, verb, |current, _| {
            apply::apply(Some(current), &applied, manager, force, api_version, kind, part)
        });
        match result {
            Ok(object) => Ok(Response::of(200, &object)),
            Err(error) if error.is_not_found() && part != Part::Status => {
                let made = apply::apply(None, &applied, manager, force, api_version, kind, part)?;
                let object = Object::from_json(made)
                    .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
                Ok(Response::of(201, &self.create(object)?))
            }
            Err(error) => Err(error),
        }
    }
}
