//! Paths to resources, as `endpoints/installer.go` registers them, and the discovery documents
//! (`endpoints/discovery`): `/api` (APIVersions), `/api/v1` and `/apis/{group}/{version}`
//! (APIResourceList), `/apis` (APIGroupList) and `/apis/{group}` (APIGroup), from the server's
//! registry of kinds, so CRDs created at run time appear.
//!
//! Resource paths: `/api/v1/{plural}` and `/apis/{group}/{version}/{plural}` (a cluster-scoped
//! collection, or a namespaced kind across all namespaces), `…/{plural}/{name}` (a cluster-scoped
//! item), `…/namespaces/{namespace}/{plural}[/{name}]` (namespaced), and the subresources
//! `…/{name}/status` (kinds with a status subresource) and `/api/v1/namespaces/{name}/finalize`.

use serde::Serialize;
use serde_json::json;

use super::{Response, no_such_path};
use crate::error::ApiError;
use crate::kinds::KindInfo;
use crate::server::ApiServer;

/// Collection or item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Scope {
    /// The collection: LIST, WATCH, POST.
    Collection,
    /// One object, by name.
    Item(String),
}

/// A resource path, resolved against the registry.
#[derive(Clone, Debug)]
pub(super) struct Target {
    /// The kind the path serves.
    pub(super) info: KindInfo,
    /// The namespace in the path (`None`: all namespaces, or a cluster-scoped kind).
    pub(super) namespace: Option<String>,
    pub(super) scope: Scope,
    /// `status` or `finalize`.
    pub(super) subresource: Option<String>,
}

impl Target {
    /// The namespace for an item (`""` for cluster-scoped kinds).
    pub(super) fn item_namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }
}

/// A discovery document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Document {
    /// `/api`.
    CoreVersions,
    /// `/apis`.
    Groups,
    /// `/apis/{group}`.
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`.
    Resources(String),
}

/// Where a path leads.
pub(super) enum Route {
    Discovery(Document),
    Resource(Target),
}

/// Resolves `path`; 404 for a path that names nothing served.
pub(super) fn parse(server: &ApiServer, path: &str) -> Result<Route, ApiError> {
    let trimmed = path.strip_prefix('/').ok_or_else(no_such_path)?;
    let segments: Vec<&str> = trimmed.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) || segments.len() > 9 {
        return Err(no_such_path());
    }
    let (api_version, rest) = match segments.as_slice() {
        ["api"] => return Ok(Route::Discovery(Document::CoreVersions)),
        ["api", "v1"] => return Ok(Route::Discovery(Document::Resources("v1".to_string()))),
        ["apis"] => return Ok(Route::Discovery(Document::Groups)),
        ["apis", group] => return served_group(server, group),
        ["apis", group, version] => {
            let api_version = format!("{group}/{version}");
            return served_version(server, &api_version);
        }
        ["api", "v1", rest @ ..] => ("v1".to_string(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return Err(no_such_path()),
    };
    let kind = |plural: &str| -> Result<KindInfo, ApiError> {
        server.kind_by_resource(&api_version, plural).ok_or_else(no_such_path)
    };
    let item_sub = |sub: &str, info: &KindInfo| -> Result<Option<String>, ApiError> {
        let namespace = info.api_version == "v1" && info.kind == "Namespace";
        match sub {
            "status" if info.status_subresource => Ok(Some(sub.to_string())),
            "finalize" if namespace => Ok(Some(sub.to_string())),
            _ => Err(no_such_path()),
        }
    };
    let namespaced = |namespace: &str, plural: &str, tail: &[&str]| -> Result<Target, ApiError> {
        let info = kind(plural)?;
        if !info.namespaced {
            return Err(no_such_path());
        }
        let (scope, subresource) = match tail {
            [] => (Scope::Collection, None),
            [name] => (Scope::Item(name.to_string()), None),
            [name, sub] => (Scope::Item(name.to_string()), item_sub(sub, &info)?),
            _ => return Err(no_such_path()),
        };
        Ok(Target { info, namespace: Some(namespace.to_string()), scope, subresource })
    };
    let target = match rest {
        // `/api/v1/namespaces/{ns}/status` and `/finalize` are the namespace's subresources.
        ["namespaces", name, sub @ ("status" | "finalize")] if api_version == "v1" => {
            let info = kind("namespaces")?;
            let subresource = item_sub(sub, &info)?;
            Target { info, namespace: None, scope: Scope::Item(name.to_string()), subresource }
        }
        ["namespaces", namespace, plural, tail @ ..] => namespaced(namespace, plural, tail)?,
        [plural] => Target {
            info: kind(plural)?,
            namespace: None,
            scope: Scope::Collection,
            subresource: None,
        },
        [plural, name, tail @ ..] => {
            let info = kind(plural)?;
            if info.namespaced {
                return Err(no_such_path());
            }
            let subresource = match tail {
                [] => None,
                [sub] => item_sub(sub, &info)?,
                _ => return Err(no_such_path()),
            };
            Target { info, namespace: None, scope: Scope::Item(name.to_string()), subresource }
        }
        _ => return Err(no_such_path()),
    };
    Ok(Route::Resource(target))
}

fn served_group(server: &ApiServer, group: &str) -> Result<Route, ApiError> {
    let served = server.kinds().iter().any(|k| k.group() == group && !group.is_empty());
    if served {
        Ok(Route::Discovery(Document::Group(group.to_string())))
    } else {
        Err(no_such_path())
    }
}

fn served_version(server: &ApiServer, api_version: &str) -> Result<Route, ApiError> {
    let served = server.kinds().iter().any(|k| k.api_version == api_version);
    if served {
        Ok(Route::Discovery(Document::Resources(api_version.to_string())))
    } else {
        Err(no_such_path())
    }
}

/// `metav1.APIResource`, the fields clients read.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiResource {
    name: String,
    singular_name: String,
    namespaced: bool,
    kind: String,
    verbs: Vec<&'static str>,
}

/// The verbs kdst serves on a resource and on its subresources.
const VERBS: [&str; 7] = ["create", "delete", "get", "list", "patch", "update", "watch"];

/// The versions of `group`, newest-looking first (`v1` before `v1beta2` before `v1beta1`).
fn versions_of(server: &ApiServer, group: &str) -> Vec<String> {
    let mut versions: Vec<String> = Vec::new();
    for info in server.kinds() {
        let version = info.api_version.rsplit('/').next().unwrap_or_default().to_string();
        if info.group() == group && !versions.contains(&version) {
            versions.push(version);
        }
    }
    versions
        .sort_by_key(|v| (v.contains("alpha"), v.contains("beta"), std::cmp::Reverse(v.clone())));
    versions
}

fn group_json(server: &ApiServer, group: &str) -> serde_json::Value {
    let versions: Vec<serde_json::Value> = versions_of(server, group)
        .iter()
        .map(|v| json!({ "groupVersion": format!("{group}/{v}"), "version": v }))
        .collect();
    json!({
        "name": group,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or_default(),
    })
}

/// The discovery document's response.
pub(super) fn discovery(server: &ApiServer, document: &Document) -> Response {
    match document {
        Document::CoreVersions => Response::of(
            200,
            &json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    { "clientCIDR": "0.0.0.0/0", "serverAddress": "kdst.invalid:443" }
                ],
            }),
        ),
        Document::Groups => {
            let mut groups: Vec<String> = Vec::new();
            for info in server.kinds() {
                let group = info.group().to_string();
                if !group.is_empty() && !groups.contains(&group) {
                    groups.push(group);
                }
            }
            let groups: Vec<_> = groups.iter().map(|g| group_json(server, g)).collect();
            Response::of(
                200,
                &json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups }),
            )
        }
        Document::Group(group) => {
            let mut body = group_json(server, group);
            body["kind"] = json!("APIGroup");
            body["apiVersion"] = json!("v1");
            Response::of(200, &body)
        }
        Document::Resources(api_version) => {
            let mut resources = Vec::new();
            for info in server.kinds().into_iter().filter(|k| &k.api_version == api_version) {
                let resource = |name: String, verbs: Vec<&'static str>| ApiResource {
                    name,
                    singular_name: info.kind.to_lowercase(),
                    namespaced: info.namespaced,
                    kind: info.kind.clone(),
                    verbs,
                };
                resources.push(resource(info.resource.clone(), VERBS.to_vec()));
                if info.status_subresource {
                    resources.push(resource(
                        format!("{}/status", info.resource),
                        vec!["get", "patch", "update"],
                    ));
                }
                if info.api_version == "v1" && info.kind == "Namespace" {
                    resources.push(resource("namespaces/finalize".to_string(), vec!["update"]));
                }
            }
            Response::of(
                200,
                &json!({
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": api_version,
                    "resources": resources,
                }),
            )
        }
    }
}
