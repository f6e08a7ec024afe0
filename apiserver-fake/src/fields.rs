//! Field selectors (`k8s.io/apimachinery/pkg/fields`): `metadata.name=a`, `status.phase!=Running`,
//! joined by commas; and [`Filter`], a label and a field selector together, as LIST and WATCH take
//! them.
//!
//! Every kind supports `metadata.name` and `metadata.namespace`
//! (`registry/generic.DefaultClusterScopedAttr` / `DefaultNamespaceScopedAttr`). The per-kind
//! fields modelled are the ones controllers select on most, from each kind's `GetAttrs` /
//! `ToSelectableFields` (`pkg/registry/core/*/strategy.go`): Pod `spec.nodeName`,
//! `spec.restartPolicy`, `spec.schedulerName`, `spec.serviceAccountName`, `status.phase`,
//! `status.podIP`; Secret `type`; Namespace `status.phase`; Node `spec.unschedulable`; core
//! Event `involvedObject.{kind,namespace,name,uid,apiVersion,resourceVersion,fieldPath}`, `reason`,
//! `type`, `source`; events.k8s.io Event `regarding.{kind,namespace,name,uid,apiVersion}`,
//! `reason`, `type`, `reportingController`. Any other field is 400 `field label not supported`, as
//! upstream. Set-based syntax (`in`, `notin`) is not part of field selectors, upstream or here.

use std::fmt;

use serde_json::Value;

use crate::object::Object;
use crate::selector::Selector;

/// A field selector that could not be used: its text and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldSelectorError {
    /// Upstream's text, e.g. `field label not supported: spec.foo`.
    pub message: String,
}

impl fmt::Display for FieldSelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FieldSelectorError {}

/// One `field=value` or `field!=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    field: String,
    equal: bool,
    value: String,
}

/// A parsed field selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<Requirement>,
    text: String,
}

/// The fields a kind may be selected on besides `metadata.name` and `metadata.namespace`.
fn kind_fields(api_version: &str, kind: &str) -> &'static [&'static str] {
    match (api_version, kind) {
        ("v1", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
        ],
        ("v1", "Secret") => &["type"],
        ("v1", "Namespace") => &["status.phase"],
        ("v1", "Node") => &["spec.unschedulable"],
        ("v1", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "type",
            "source",
        ],
        ("events.k8s.io/v1", "Event") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "reason",
            "type",
            "reportingController",
        ],
        _ => &[],
    }
}

impl FieldSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        FieldSelector::default()
    }

    /// Parses `text` for objects of `(api_version, kind)`, refusing fields the kind does not
    /// support.
    pub fn parse(text: &str, api_version: &str, kind: &str) -> Result<Self, FieldSelectorError> {
        let mut requirements = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(FieldSelectorError {
                    message: format!("invalid selector: '{text}'; can't understand '{part}'"),
                });
            };
            let field = field.trim();
            let supported = matches!(field, "metadata.name" | "metadata.namespace")
                || kind_fields(api_version, kind).contains(&field);
            if !supported {
                return Err(FieldSelectorError {
                    message: format!("field label not supported: {field}"),
                });
            }
            let value = value.trim().to_string();
            requirements.push(Requirement { field: field.to_string(), equal, value });
        }
        Ok(FieldSelector { requirements, text: text.trim().to_string() })
    }

    /// Whether `object`'s fields satisfy every requirement (a missing field reads as `""`).
    pub fn matches(&self, object: &Object) -> bool {
        self.requirements.iter().all(|r| (field_value(object, &r.field) == r.value) == r.equal)
    }

    /// Whether this selector matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A field's value as the selector compares it: strings as they are, booleans and numbers in
/// their JSON text, anything missing as `""`.
fn field_value(object: &Object, field: &str) -> String {
    match field {
        "metadata.name" => return object.metadata.name.clone(),
        "metadata.namespace" => return object.metadata.namespace.clone(),
        _ => {}
    }
    let mut parts = field.split('.');
    let first = parts.next().unwrap_or_default();
    let mut value = match first {
        "spec" => Some(&object.spec),
        "status" => Some(&object.status),
        other => object.other.get(other),
    };
    for part in parts {
        value = value.and_then(|v| v.get(part));
    }
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A label selector and a field selector: which objects a LIST or WATCH returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// The label selector.
    pub labels: Selector,
    /// The field selector.
    pub fields: FieldSelector,
}

impl Filter {
    /// The filter that passes everything.
    pub fn everything() -> Self {
        Filter::default()
    }

    /// A filter on labels only.
    pub fn labels(labels: &Selector) -> Self {
        Filter { labels: labels.clone(), fields: FieldSelector::everything() }
    }

    /// Whether `object` passes.
    pub fn matches(&self, object: &Object) -> bool {
        self.labels.matches(&object.metadata.labels) && self.fields.matches(object)
    }

    /// Whether everything passes.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.labels.is_empty(), self.fields.is_empty()) {
            (true, true) => Ok(()),
            (false, true) => write!(f, "{}", self.labels),
            (true, false) => write!(f, "fields {}", self.fields),
            (false, false) => write!(f, "{} and fields {}", self.labels, self.fields),
        }
    }
}
