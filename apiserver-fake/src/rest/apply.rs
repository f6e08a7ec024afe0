//! Server-side apply (`application/apply-patch+yaml`) and the `managedFields` every REST write
//! maintains, after kube-apiserver's `endpoints/handlers/fieldmanager` over
//! structured-merge-diff (`merge.Updater.Apply` / `Update`).
//!
//! What is modelled:
//! - **Field sets** in the `FieldsV1` format: `f:<field>` for map fields, `k:{"<key>":…}` for an
//!   element of a list keyed by a merge key (with `.` for the element itself), `v:<value>` for an
//!   element of a set (`metadata.finalizers`); every other list is atomic (one leaf). Granular
//!   lists are the ones [`super::strategic`]'s schema gives a merge key (containers by `name`,
//!   `ownerReferences` by `uid`, …); custom resources have no schema here, so all their lists are
//!   atomic (a CRD's `x-kubernetes-list-type` is not read). Tracked: every field except
//!   `apiVersion`, `kind` and the server's metadata (`name`, `namespace`, `uid`,
//!   `resourceVersion`, `generation`, timestamps, `managedFields`); `status` only through the
//!   status subresource for kinds that have one.
//! - **Apply** by manager M (`fieldManager`, required): a conflict is a field M applies with a
//!   value other than the stored one while another manager owns it; without `force` that is 409
//!   Conflict with upstream's message (`Apply failed with 1 conflict: conflict with "m" using
//!   v1: .data.k`) and one `FieldManagerConflict` cause per field; with `force` M takes those
//!   fields. Fields M applied before and no longer applies are removed from the object unless
//!   another manager owns them. The applied configuration is merged in (maps key by key, keyed
//!   lists element by element, sets as a union, anything else replaced). Applying to an object
//!   that does not exist creates it.
//! - **Update** (POST, PUT, the other PATCH types) by manager M (`fieldManager`, else the user
//!   agent up to its first `/`): the fields the write changed move to M's `Update` entry and
//!   leave every other manager's set; a write that changes nothing leaves `managedFields` alone.
//!   A body that carries `managedFields` sets them as given (upstream's way to reset them).
//!
//! Not modelled: `x-kubernetes-list-map-keys` with several keys, `x-kubernetes-map-type`,
//! associative lists without a merge key in this schema, version conversion of field sets, and
//! the `before-first-apply` handling of objects created before SSA.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::error::{ApiError, Reason, StatusCause, StatusDetails};
use crate::object::{ManagedFieldsEntry, Object, Time};

/// How a list merges: as one value, by a key field, or as a set of values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ListType {
    Atomic,
    Map(&'static str),
    Set,
}

/// A path in a field set: `f:…`, `k:{…}`, `v:…` or `.` tokens.
type Path = Vec<String>;
type FieldSet = BTreeSet<Path>;

/// The metadata fields a field set tracks.
const TRACKED_METADATA: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

/// Deepest structure walked (the JSON decoder already stops at 128 levels).
const DEPTH_MAX: usize = 160;

/// What a write's field set covers: the main resource or the status subresource.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Main { status_subresource: bool },
    Status,
}

/// The list type at a field path (field names only) of a kind.
pub(super) fn list_type(api_version: &str, kind: &str, path: &[String]) -> ListType {
    match path {
        [m, f] if m == "metadata" && f == "finalizers" => ListType::Set,
        [m, f] if m == "metadata" && f == "ownerReferences" => ListType::Map("uid"),
        _ => match super::strategic::merge_key(api_version, kind, path) {
            Some(key) => ListType::Map(key),
            None => ListType::Atomic,
        },
    }
}

struct Schema<'a> {
    api_version: &'a str,
    kind: &'a str,
}

impl Schema<'_> {
    fn list(&self, path: &[String]) -> ListType {
        list_type(self.api_version, self.kind, path)
    }
}

fn key_token(key: &str, value: &Value) -> String {
    format!("k:{}", json!({ key: value }))
}

fn value_token(value: &Value) -> String {
    format!("v:{value}")
}

/// The fields of `value` (an object's JSON) that a write in `part` tracks.
fn fields_of(value: &Value, schema: &Schema<'_>, part: Part) -> FieldSet {
    let mut out = FieldSet::new();
    let Value::Object(map) = value else { return out };
    for (field, child) in map {
        let tracked = match (field.as_str(), part) {
            ("apiVersion" | "kind", _) => false,
            ("status", Part::Main { status_subresource }) => !status_subresource,
            (_, Part::Main { .. }) => true,
            ("status", Part::Status) => true,
            (_, Part::Status) => false,
        };
        if !tracked {
            continue;
        }
        let mut path = vec![field.clone()];
        let mut tokens = vec![format!("f:{field}")];
        if field == "metadata" {
            let Value::Object(meta) = child else { continue };
            for name in TRACKED_METADATA {
                if let Some(inner) = meta.get(name) {
                    path.push(name.to_string());
                    tokens.push(format!("f:{name}"));
                    walk(inner, schema, &mut path, &mut tokens, &mut out);
                    path.pop();
                    tokens.pop();
                }
            }
            continue;
        }
        walk(child, schema, &mut path, &mut tokens, &mut out);
    }
    out
}

fn walk(
    value: &Value,
    schema: &Schema<'_>,
    path: &mut Vec<String>,
    tokens: &mut Path,
    out: &mut FieldSet,
) {
    if tokens.len() > DEPTH_MAX {
        out.insert(tokens.clone());
        return;
    }
    match (value, schema.list(path)) {
        (Value::Object(map), _) if !map.is_empty() => {
            for (field, child) in map {
                path.push(field.clone());
                tokens.push(format!("f:{field}"));
                walk(child, schema, path, tokens, out);
                path.pop();
                tokens.pop();
            }
        }
        (Value::Array(items), ListType::Map(key)) if !items.is_empty() => {
            for item in items {
                let Some(id) = item.get(key) else {
                    out.insert(tokens.clone());
                    continue;
                };
                tokens.push(key_token(key, id));
                let mut element = tokens.clone();
                element.push(".".to_string());
                out.insert(element);
                if let Value::Object(fields) = item {
                    for (field, child) in fields {
                        path.push(field.clone());
                        tokens.push(format!("f:{field}"));
                        walk(child, schema, path, tokens, out);
                        path.pop();
                        tokens.pop();
                    }
                }
                tokens.pop();
            }
        }
        (Value::Array(items), ListType::Set) if !items.is_empty() => {
            for item in items {
                let mut element = tokens.clone();
                element.push(value_token(item));
                out.insert(element);
            }
        }
        _ => {
            out.insert(tokens.clone());
        }
    }
}

/// The value at a field-set path, if present.
fn value_at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut at = value;
    for token in path {
        at = step(at, token)?;
    }
    Some(at)
}

fn step<'a>(at: &'a Value, token: &str) -> Option<&'a Value> {
    if token == "." {
        return Some(at);
    }
    if let Some(field) = token.strip_prefix("f:") {
        return at.get(field);
    }
    let items = at.as_array()?;
    if let Some(key) = token.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        return items.iter().find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)));
    }
    let wanted: Value = serde_json::from_str(token.strip_prefix("v:")?).ok()?;
    items.iter().find(|item| **item == wanted)
}

/// Whether `a` and `b` disagree at `path`: for a list element (`.`) or a set value, whether
/// one has it and the other not; for a field, its value.
fn differs(a: &Value, b: &Value, path: &[String]) -> bool {
    let presence = path.last().is_some_and(|t| t == "." || t.starts_with("v:"));
    let (x, y) = (value_at(a, path), value_at(b, path));
    if presence { x.is_some() != y.is_some() } else { x != y }
}

/// Removes the field (or list element) a path names from `value`.
fn remove_at(value: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else { return };
    if last == "." {
        // The element itself: remove it from the list that holds it.
        let Some((element, list_path)) = parent_path.split_last() else { return };
        remove_element(value, list_path, element);
        return;
    }
    if last.starts_with("v:") {
        remove_element(value, parent_path, last);
        return;
    }
    let Some(parent) = value_at_mut(value, parent_path) else { return };
    if let (Some(field), Value::Object(map)) = (last.strip_prefix("f:"), parent) {
        map.remove(field);
    }
}

fn remove_element(value: &mut Value, list_path: &[String], token: &str) {
    let Some(target) = value_at(value, list_path).and_then(|list| step(list, token)).cloned()
    else {
        return;
    };
    if let Some(Value::Array(items)) = value_at_mut(value, list_path)
        && let Some(index) = items.iter().position(|item| *item == target)
    {
        items.remove(index);
    }
}

fn value_at_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut at = value;
    for token in path {
        let found = step(at, token)?.clone();
        at = if let Some(field) = token.strip_prefix("f:") {
            at.get_mut(field)?
        } else if token == "." {
            at
        } else {
            let items = at.as_array_mut()?;
            items.iter_mut().find(|item| **item == found)?
        };
    }
    Some(at)
}

/// Merges an applied configuration into `target`, as the schema says each list merges.
fn merge(target: &mut Value, applied: &Value, schema: &Schema<'_>, path: &mut Vec<String>) {
    match (target, applied) {
        (Value::Object(into), Value::Object(from)) => {
            for (field, value) in from {
                if value.is_null() {
                    into.remove(field);
                    continue;
                }
                path.push(field.clone());
                match into.get_mut(field) {
                    Some(existing) if path.len() < DEPTH_MAX => {
                        merge(existing, value, schema, path);
                    }
                    _ => {
                        into.insert(field.clone(), value.clone());
                    }
                }
                path.pop();
            }
        }
        (Value::Array(into), Value::Array(from)) => match schema.list(path) {
            ListType::Map(key) => {
                for item in from {
                    let id = item.get(key);
                    match into.iter_mut().find(|e| id.is_some() && e.get(key) == id) {
                        Some(existing) => merge(existing, item, schema, path),
                        None => into.push(item.clone()),
                    }
                }
            }
            ListType::Set => {
                for item in from {
                    if !into.contains(item) {
                        into.push(item.clone());
                    }
                }
            }
            ListType::Atomic => *into = from.clone(),
        },
        (target, applied) => *target = applied.clone(),
    }
}

/// A path as upstream prints it: `.spec.containers[name="web"].image`, `.metadata.finalizers[="x"]`.
fn print_path(path: &[String]) -> String {
    let mut out = String::new();
    for token in path {
        if let Some(field) = token.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(key) = token.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = token.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        }
    }
    out
}

/// A field set in the `FieldsV1` trie format.
fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut at = &mut root;
        for token in path {
            let entry = at.entry(token.clone()).or_insert_with(|| json!({}));
            at = entry.as_object_mut().expect("trie nodes are objects");
        }
    }
    Value::Object(root)
}

/// A `FieldsV1` trie as a field set (leaves are the paths).
fn from_fields_v1(value: &Value) -> FieldSet {
    fn go(value: &Value, path: &mut Path, out: &mut FieldSet) {
        match value.as_object() {
            Some(map) if !map.is_empty() && path.len() < DEPTH_MAX => {
                for (token, child) in map {
                    path.push(token.clone());
                    go(child, path, out);
                    path.pop();
                }
            }
            _ if !path.is_empty() => {
                out.insert(path.clone());
            }
            _ => {}
        }
    }
    let mut out = FieldSet::new();
    go(value, &mut Vec::new(), &mut out);
    out
}

fn manager_text(entry: &ManagedFieldsEntry) -> String {
    let mut text = format!("{:?}", entry.manager);
    if !entry.subresource.is_empty() {
        text.push_str(&format!(" with subresource {:?}", entry.subresource));
    }
    if entry.operation == "Update" {
        text.push_str(&format!(" using {}", entry.api_version));
        if let Some(time) = entry.time {
            text.push_str(&format!(" at {}", time.to_string().split('.').next().unwrap_or("")));
        }
    }
    text
}

fn subresource_of(part: Part) -> &'static str {
    if part == Part::Status { "status" } else { "" }
}

/// The managed-fields entries of `object` with their field sets.
fn entries(object: &Value) -> Vec<(ManagedFieldsEntry, FieldSet)> {
    let list = object["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
    list.into_iter()
        .filter_map(|entry| serde_json::from_value::<ManagedFieldsEntry>(entry).ok())
        .map(|entry| {
            let set = from_fields_v1(&entry.fields_v1);
            (entry, set)
        })
        .collect()
}

fn store_entries(object: &mut Value, list: Vec<(ManagedFieldsEntry, FieldSet)>) {
    let list: Vec<Value> = list
        .into_iter()
        .filter(|(_, set)| !set.is_empty())
        .map(|(mut entry, set)| {
            entry.fields_type = "FieldsV1".to_string();
            entry.fields_v1 = to_fields_v1(&set);
            serde_json::to_value(entry).expect("an entry serialises")
        })
        .collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".to_string(), Value::Array(list));
        }
    }
}

/// The request applies `applied` (the decoded apply configuration) for `manager` to `current`
/// (`None`: the object does not exist yet); the result is the object to write.
pub(super) fn apply(
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    kind: &str,
    part: Part,
) -> Result<Value, ApiError> {
    let schema = Schema { api_version, kind };
    let empty = json!({});
    let current = current.unwrap_or(&empty);
    let new_set = fields_of(applied, &schema, part);
    let subresource = subresource_of(part);
    let mut list = entries(current);
    let mine = |e: &ManagedFieldsEntry| {
        e.manager == manager && e.operation == "Apply" && e.subresource == subresource
    };
    let mut conflicts: Vec<(String, Path)> = Vec::new();
    for (entry, set) in &list {
        if mine(entry) {
            continue;
        }
        for path in set.intersection(&new_set) {
            if differs(current, applied, path) {
                conflicts.push((manager_text(entry), path.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(&conflicts));
    }
    if force {
        let taken: FieldSet = conflicts.iter().map(|(_, path)| path.clone()).collect();
        for (entry, set) in &mut list {
            if !mine(entry) {
                set.retain(|path| !taken.contains(path));
            }
        }
    }
    let previous: FieldSet =
        list.iter().filter(|(e, _)| mine(e)).flat_map(|(_, set)| set.iter().cloned()).collect();
    let others: FieldSet =
        list.iter().filter(|(e, _)| !mine(e)).flat_map(|(_, set)| set.iter().cloned()).collect();
    let mut object = current.clone();
    for path in previous.difference(&new_set) {
        if !others.contains(path) {
            remove_at(&mut object, path);
        }
    }
    merge(&mut object, applied, &schema, &mut Vec::new());
    list.retain(|(e, _)| !mine(e));
    let entry = ManagedFieldsEntry {
        manager: manager.to_string(),
        operation: "Apply".to_string(),
        api_version: api_version.to_string(),
        time: Some(Time::now()),
        subresource: subresource.to_string(),
        ..ManagedFieldsEntry::default()
    };
    list.push((entry, new_set));
    store_entries(&mut object, list);
    Ok(object)
}

fn conflict_error(conflicts: &[(String, Path)]) -> ApiError {
    let message = match conflicts {
        [(manager, path)] => {
            format!("Apply failed with 1 conflict: conflict with {manager}: {}", print_path(path))
        }
        many => {
            let mut by_manager: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for (manager, path) in many {
                by_manager.entry(manager).or_default().push(print_path(path));
            }
            let mut lines = Vec::new();
            for (manager, paths) in by_manager {
                lines.push(format!("conflicts with {manager}:"));
                lines.extend(paths.iter().map(|p| format!("- {p}")));
            }
            format!("Apply failed with {} conflicts: {}", many.len(), lines.join("\n"))
        }
    };
    let causes = conflicts
        .iter()
        .map(|(manager, path)| StatusCause {
            reason: "FieldManagerConflict".to_string(),
            message: format!("conflict with {manager}"),
            field: print_path(path),
        })
        .collect();
    let mut error = ApiError::with_reason(Reason::Conflict, message);
    error.details = Some(Box::new(StatusDetails { causes, ..StatusDetails::default() }));
    error
}

/// The parts of an object a field set covers, as one JSON map (cheaper than the whole object:
/// the server's metadata and `managedFields` are left out).
fn tracked(object: &Object, part: Part) -> Value {
    let mut map = Map::new();
    let status_here = match part {
        Part::Main { status_subresource } => !status_subresource,
        Part::Status => true,
    };
    if part != Part::Status {
        let meta = &object.metadata;
        let mut tracked_meta = Map::new();
        if !meta.labels.is_empty() {
            tracked_meta.insert("labels".into(), json!(meta.labels));
        }
        if !meta.annotations.is_empty() {
            tracked_meta.insert("annotations".into(), json!(meta.annotations));
        }
        if !meta.finalizers.is_empty() {
            tracked_meta.insert("finalizers".into(), json!(meta.finalizers));
        }
        if !meta.owner_references.is_empty() {
            tracked_meta.insert("ownerReferences".into(), json!(meta.owner_references));
        }
        if !tracked_meta.is_empty() {
            map.insert("metadata".into(), Value::Object(tracked_meta));
        }
        if !object.spec.is_null() {
            map.insert("spec".into(), object.spec.clone());
        }
        for (field, value) in &object.other {
            map.insert(field.clone(), value.clone());
        }
    }
    if status_here && !object.status.is_null() {
        map.insert("status".into(), object.status.clone());
    }
    Value::Object(map)
}

/// The paths where `a` and `b` differ, each with whether `b` has it (walking only where they
/// differ).
fn diff(
    a: Option<&Value>,
    b: Option<&Value>,
    schema: &Schema<'_>,
    path: &mut Vec<String>,
    tokens: &mut Path,
    out: &mut BTreeMap<Path, bool>,
) {
    if a == b {
        return;
    }
    let deeper = tokens.len() < DEPTH_MAX;
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y)))
            if deeper && !x.is_empty() && !y.is_empty() =>
        {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                path.push(key.clone());
                tokens.push(format!("f:{key}"));
                diff(x.get(key), y.get(key), schema, path, tokens, out);
                path.pop();
                tokens.pop();
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) if deeper => match schema.list(path) {
            ListType::Map(key) if x.iter().chain(y).all(|item| item.get(key).is_some()) => {
                let by_id = |items: &Vec<Value>| -> BTreeMap<String, Value> {
                    items.iter().map(|item| (key_token(key, &item[key]), item.clone())).collect()
                };
                let (x, y) = (by_id(x), by_id(y));
                let ids: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for id in ids {
                    let (old, new) = (x.get(id), y.get(id));
                    if old == new {
                        continue;
                    }
                    tokens.push(id.clone());
                    if old.is_some() != new.is_some() {
                        let mut element = tokens.clone();
                        element.push(".".to_string());
                        out.insert(element, new.is_some());
                    }
                    let empty = Map::new();
                    let fields =
                        |v: Option<&Value>| v.and_then(Value::as_object).unwrap_or(&empty).clone();
                    let (old_fields, new_fields) = (fields(old), fields(new));
                    let names: BTreeSet<&String> =
                        old_fields.keys().chain(new_fields.keys()).collect();
                    for name in names {
                        path.push(name.clone());
                        tokens.push(format!("f:{name}"));
                        diff(old_fields.get(name), new_fields.get(name), schema, path, tokens, out);
                        path.pop();
                        tokens.pop();
                    }
                    tokens.pop();
                }
            }
            ListType::Set => {
                for item in x.iter().filter(|i| !y.contains(i)) {
                    let mut element = tokens.clone();
                    element.push(value_token(item));
                    out.insert(element, false);
                }
                for item in y.iter().filter(|i| !x.contains(i)) {
                    let mut element = tokens.clone();
                    element.push(value_token(item));
                    out.insert(element, true);
                }
            }
            _ => {
                out.insert(tokens.clone(), true);
            }
        },
        _ => {
            // A leaf, or a change of shape: every field of either side.
            for (side, present) in [(a, false), (b, true)] {
                if let Some(value) = side {
                    let mut leaves = FieldSet::new();
                    walk(value, schema, path, tokens, &mut leaves);
                    for leaf in leaves {
                        out.insert(leaf, present);
                    }
                }
            }
        }
    }
}

/// Records a non-apply write by `manager` in `new`'s `managedFields`: the fields it changed
/// from `old` move to the manager's `Update` entry. A body that carries `managedFields` other
/// than the stored ones keeps them (upstream's way to reset them); a write that changes no
/// field leaves them as they were.
pub(super) fn record_update(
    old: Option<&Object>,
    new: &mut Object,
    manager: &str,
    api_version: &str,
    kind: &str,
    part: Part,
) {
    let previous = old.map(|o| o.metadata.managed_fields.clone()).unwrap_or_default();
    if !new.metadata.managed_fields.is_empty() && new.metadata.managed_fields != previous {
        return; // set by the client: taken as given
    }
    let schema = Schema { api_version, kind };
    let old_parts = old.map(|o| tracked(o, part));
    let new_parts = tracked(new, part);
    let mut changed = BTreeMap::new();
    diff(
        old_parts.as_ref(),
        Some(&new_parts),
        &schema,
        &mut Vec::new(),
        &mut Vec::new(),
        &mut changed,
    );
    if changed.is_empty() {
        if new.metadata.managed_fields.is_empty() {
            new.metadata.managed_fields = previous;
        }
        return;
    }
    let subresource = subresource_of(part);
    let mut list: Vec<(ManagedFieldsEntry, FieldSet)> = previous
        .entries()
        .iter()
        .map(|entry| (entry.clone(), from_fields_v1(&entry.fields_v1)))
        .collect();
    for (_, set) in &mut list {
        set.retain(|path| !changed.contains_key(path));
    }
    let owned = changed.into_iter().filter(|(_, present)| *present).map(|(path, _)| path);
    let mine = |e: &ManagedFieldsEntry| {
        e.manager == manager && e.operation == "Update" && e.subresource == subresource
    };
    let now = Some(Time::now());
    match list.iter_mut().find(|(e, _)| mine(e)) {
        Some((entry, set)) => {
            set.extend(owned);
            entry.time = now;
            entry.api_version = api_version.to_string();
        }
        None => {
            let entry = ManagedFieldsEntry {
                manager: manager.to_string(),
                operation: "Update".to_string(),
                api_version: api_version.to_string(),
                time: now,
                subresource: subresource.to_string(),
                ..ManagedFieldsEntry::default()
            };
            list.push((entry, owned.collect()));
        }
    }
    let entries: Vec<ManagedFieldsEntry> = list
        .into_iter()
        .filter(|(_, set)| !set.is_empty())
        .map(|(mut entry, set)| {
            entry.fields_type = "FieldsV1".to_string();
            entry.fields_v1 = to_fields_v1(&set);
            entry
        })
        .collect();
    new.metadata.managed_fields = entries.into();
}
