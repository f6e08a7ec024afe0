//! What the controller reads from a StatefulSet and the objects it builds from it, following
//! `stateful_set_utils.go`: `getPodName`, `getPersistentVolumeClaimName`,
//! `getParentNameAndOrdinal`, `getPersistentVolumeClaims`, `updateStorage`, `updateIdentity`,
//! `newStatefulSetPod` (over `controller.GetPodFromTemplate`), `isRunningAndReady`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::object::{Object, OwnerReference};
use crate::selector::Selector;

/// `apps.StatefulSetPodNameLabel`.
pub const LABEL_POD_NAME: &str = "statefulset.kubernetes.io/pod-name";
/// `apps.PodIndexLabel`.
pub const LABEL_POD_INDEX: &str = "apps.kubernetes.io/pod-index";

/// The parts of a StatefulSet's spec the controller uses.
pub(super) struct SetSpec {
    /// `spec.replicas` (nil: 1).
    pub replicas: usize,
    /// `spec.selector` as a label selector.
    pub selector: Selector,
    /// `spec.selector.matchLabels`, which claims also get.
    pub match_labels: BTreeMap<String, String>,
    /// `spec.podManagementPolicy` is `Parallel` (else `OrderedReady`, the default).
    pub parallel: bool,
}

impl SetSpec {
    /// Reads `set`'s spec; an error for a spec upstream validation would have refused.
    pub fn parse(set: &Object) -> Result<Self, String> {
        let spec = &set.spec;
        let replicas = match spec.get("replicas") {
            None | Some(Value::Null) => 1,
            Some(value) => value
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| format!("spec.replicas {value} is not a non-negative integer"))?,
        };
        let selector = spec.get("selector").unwrap_or(&Value::Null);
        let match_labels = string_map(selector.get("matchLabels"));
        let mut parts: Vec<String> = match_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for expression in
            selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten()
        {
            let key = expression.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = expression
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let part = match expression.get("operator").and_then(Value::as_str) {
                Some("In") => format!("{key} in ({})", values.join(",")),
                Some("NotIn") => format!("{key} notin ({})", values.join(",")),
                Some("Exists") => key.to_string(),
                Some("DoesNotExist") => format!("!{key}"),
                other => return Err(format!("selector operator {other:?} is not valid")),
            };
            parts.push(part);
        }
        if parts.is_empty() {
            return Err("spec.selector: Required value".to_string());
        }
        let selector = Selector::parse(&parts.join(",")).map_err(|e| e.to_string())?;
        let parallel = spec.get("podManagementPolicy").and_then(Value::as_str) == Some("Parallel");
        Ok(SetSpec { replicas, selector, match_labels, parallel })
    }
}

/// A JSON object of strings as a map (anything else: empty).
pub(super) fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

/// `getPodName`.
pub(super) fn pod_name(set: &Object, ordinal: usize) -> String {
    format!("{}-{ordinal}", set.metadata.name)
}

/// `getParentNameAndOrdinal` for `set`: the pod's ordinal when its name is `<set>-<ordinal>`
/// (`isMemberOf`).
pub(super) fn ordinal_of(set: &Object, pod: &Object) -> Option<usize> {
    let (parent, ordinal) = pod.metadata.name.rsplit_once('-')?;
    if parent != set.metadata.name
        || ordinal.is_empty()
        || !ordinal.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    ordinal.parse::<i32>().ok().and_then(|o| usize::try_from(o).ok())
}

/// `spec.volumeClaimTemplates`, those with a name.
pub(super) fn claim_templates(set: &Object) -> Vec<&Value> {
    set.spec
        .get("volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).is_some())
        .collect()
}

fn template_name(template: &Value) -> &str {
    template.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("")
}

/// `getPersistentVolumeClaimName`.
pub(super) fn claim_name(set: &Object, template: &str, ordinal: usize) -> String {
    format!("{template}-{}-{ordinal}", set.metadata.name)
}

/// `getPersistentVolumeClaims`: each template's claim for `ordinal`, in template order, with
/// the template's labels and the selector's `matchLabels` (which win), and no ownerReference
/// (retention policy `Retain`).
pub(super) fn claims_for(set: &Object, spec: &SetSpec, ordinal: usize) -> Vec<Object> {
    claim_templates(set)
        .into_iter()
        .map(|template| {
            let meta = template.get("metadata");
            let name = claim_name(set, template_name(template), ordinal);
            let mut claim =
                Object::new("v1", "PersistentVolumeClaim", &set.metadata.namespace, &name);
            claim.metadata.labels = string_map(meta.and_then(|m| m.get("labels")));
            claim.metadata.labels.extend(spec.match_labels.clone());
            claim.metadata.annotations = string_map(meta.and_then(|m| m.get("annotations")));
            claim.spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
            claim
        })
        .collect()
}

/// `newStatefulSetPod`: the template's labels, annotations and spec, a controller reference to
/// the set, the identity (`updateIdentity`: name, the pod-name and pod-index labels, hostname
/// and subdomain) and the claims' volumes first (`updateStorage`; template volumes of other
/// names kept after them).
pub(super) fn new_pod(set: &Object, ordinal: usize) -> Object {
    let template = set.spec.get("template").unwrap_or(&Value::Null);
    let meta = template.get("metadata");
    let name = pod_name(set, ordinal);
    let mut pod = Object::new("v1", "Pod", &set.metadata.namespace, &name)
        .with_owner(OwnerReference::controller_of(set));
    pod.metadata.labels = string_map(meta.and_then(|m| m.get("labels")));
    pod.metadata.labels.insert(LABEL_POD_NAME.to_string(), name.clone());
    pod.metadata.labels.insert(LABEL_POD_INDEX.to_string(), ordinal.to_string());
    pod.metadata.annotations = string_map(meta.and_then(|m| m.get("annotations")));
    let mut spec = match template.get("spec") {
        Some(Value::Object(spec)) => spec.clone(),
        _ => Map::new(),
    };
    spec.insert("hostname".to_string(), json!(name));
    if let Some(service) = set.spec.get("serviceName").and_then(Value::as_str) {
        spec.insert("subdomain".to_string(), json!(service));
    }
    let templates = claim_templates(set);
    let mut volumes: Vec<Value> = templates
        .iter()
        .map(|t| {
            let template = template_name(t);
            json!({ "name": template,
                    "persistentVolumeClaim": { "claimName": claim_name(set, template, ordinal) } })
        })
        .collect();
    for volume in spec.get("volumes").and_then(Value::as_array).into_iter().flatten() {
        let name = volume.get("name").and_then(Value::as_str).unwrap_or("");
        if !templates.iter().any(|t| template_name(t) == name) {
            volumes.push(volume.clone());
        }
    }
    if !volumes.is_empty() {
        spec.insert("volumes".to_string(), Value::Array(volumes));
    }
    pod.spec = Value::Object(spec);
    pod
}

/// `isRunningAndReady`: phase `Running` and the `Ready` condition `True`.
pub(super) fn is_running_and_ready(pod: &Object) -> bool {
    let status = &pod.status;
    status.get("phase").and_then(Value::as_str) == Some("Running")
        && status.get("conditions").and_then(Value::as_array).into_iter().flatten().any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Ready")
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
}

/// The pod's phase (`""` when unset).
pub(super) fn phase(pod: &Object) -> &str {
    pod.status.get("phase").and_then(Value::as_str).unwrap_or("")
}
