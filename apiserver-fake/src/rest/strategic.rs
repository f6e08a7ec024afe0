//! Strategic merge patch (`application/strategic-merge-patch+json`) for built-in kinds, as
//! kube-apiserver applies it: `k8s.io/apimachinery/pkg/util/strategicpatch/patch.go`,
//! `StrategicMergeMapPatch` (the server side: parallel lists merged, unmatched nulls ignored).
//!
//! Maps merge key by key and `null` deletes a key. A list merges only where the k8s.io/api struct
//! tags say `patchStrategy:"merge"` (the static tables below, per kind); every other list is
//! atomic. The directives `$patch` (`replace`, `delete`), `$retainKeys`, `$setElementOrder/<list>`
//! and `$deleteFromPrimitiveList/<list>` are applied and never appear in the result. As upstream,
//! without `$setElementOrder` the elements a patch adds to a merged list come before the
//! original's elements that the patch does not name.
//!
//! Where this differs from upstream: upstream keeps some patch values as they are (an atomic list,
//! an added list element, the rest of a `$patch: replace` map), directives and nulls included,
//! and leaves them to the typed decoding after it; this module strips them, as upstream's own
//! `removeDirectives` and `discardNullValuesFromPatch` do for new fields. A new field holding
//! `{"$patch": "replace", ...}` gets the other keys (upstream drops the field). Unknown `$` keys
//! and `$patch` values are errors everywhere (upstream takes such keys as fields, and drops new
//! list elements with any `$patch`). Upstream visits a map's keys in random order; here
//! `$deleteFromPrimitiveList` lists apply after the fields. Kinds without a table get only
//! `metadata`'s rules (upstream refuses this patch type for custom resources).

use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

type Object = Map<String, Value>;
type Result<T> = std::result::Result<T, StrategicMergeError>;

/// Patches nested deeper than this many objects and arrays are refused, so that the merge's
/// recursion is bounded.
const MAX_DEPTH: usize = 100;
const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder";
const DELETE_FROM: &str = "$deleteFromPrimitiveList";

/// Why a strategic merge patch could not be applied (upstream answers 422 or 400 with this text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrategicMergeError {
    /// What is wrong with the patch, in upstream's words where it has them.
    pub message: String,
}

impl fmt::Display for StrategicMergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StrategicMergeError {}

fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(StrategicMergeError { message: message.into() })
}

// ---- Patch metadata: the `patchStrategy` / `patchMergeKey` struct tags of k8s.io/api ----

/// How a list field merges.
#[derive(Clone, Copy, PartialEq, Eq)]
enum List {
    /// No `patchStrategy`: the patch's list replaces the original's.
    Atomic,
    /// `patchStrategy:"merge"` on a list of scalars: an ordered set.
    Set,
    /// `patchStrategy:"merge" patchMergeKey:"<key>"`: maps matched by that key.
    Keyed(&'static str),
}

/// One field with patch metadata: how it merges when it is a list, and the metadata of its
/// fields (a struct field) or of its elements' fields (a list of structs).
struct Field {
    name: &'static str,
    list: List,
    sub: Schema,
}

/// The fields of one struct that have patch metadata; unlisted fields merge as maps (when
/// objects) or replace (anything else).
type Schema = &'static [Field];

const NONE: Schema = &[];

const fn field(name: &'static str, sub: Schema) -> Field {
    Field { name, list: List::Atomic, sub }
}
const fn keyed(name: &'static str, key: &'static str, sub: Schema) -> Field {
    Field { name, list: List::Keyed(key), sub }
}
const fn set(name: &'static str) -> Field {
    Field { name, list: List::Set, sub: NONE }
}

const OBJECT_META: Schema = &[keyed("ownerReferences", "uid", &[]), set("finalizers")];
const METADATA: Field = field("metadata", OBJECT_META);
const CONDITIONS: Field = keyed("conditions", "type", &[]);
const CONTAINER: Schema = &[
    keyed("ports", "containerPort", &[]),
    keyed("env", "name", &[]),
    keyed("volumeMounts", "mountPath", &[]),
    keyed("volumeDevices", "devicePath", &[]),
];
/// `PodSpec`; `volumes` and `resourceClaims` are `merge,retainKeys`, but applying a patch
/// honours `$retainKeys` in any map (`applyRetainKeysDirective`), so only `merge` matters here.
const POD_SPEC: Schema = &[
    keyed("volumes", "name", &[]),
    keyed("initContainers", "name", CONTAINER),
    keyed("containers", "name", CONTAINER),
    keyed("ephemeralContainers", "name", CONTAINER),
    keyed("imagePullSecrets", "name", &[]),
    keyed("hostAliases", "ip", &[]),
    keyed("topologySpreadConstraints", "topologyKey", &[]),
    keyed("schedulingGates", "name", &[]),
    keyed("resourceClaims", "name", &[]),
    keyed("evictionResponders", "name", &[]),
];
const POD_TEMPLATE: Schema = &[METADATA, field("spec", POD_SPEC)];
const POD_STATUS: Schema = &[
    CONDITIONS,
    keyed("podIPs", "ip", &[]),
    keyed("hostIPs", "ip", &[]),
    keyed("resourceClaimStatuses", "name", &[]),
];
const WITH_CONDITIONS: Schema = &[CONDITIONS];
const TEMPLATED: Schema = &[field("template", POD_TEMPLATE)];

const OBJECT: Schema = &[METADATA];
const POD: Schema = &[METADATA, field("spec", POD_SPEC), field("status", POD_STATUS)];
const POD_TEMPLATE_KIND: Schema = &[METADATA, field("template", POD_TEMPLATE)];
const WORKLOAD: Schema = &[METADATA, field("spec", TEMPLATED), field("status", WITH_CONDITIONS)];
const CRON_JOB: Schema =
    &[METADATA, field("spec", &[field("jobTemplate", &[METADATA, field("spec", TEMPLATED)])])];
const SERVICE: Schema =
    &[METADATA, field("spec", &[keyed("ports", "port", &[])]), field("status", WITH_CONDITIONS)];
const NODE: Schema = &[
    METADATA,
    field("spec", &[set("podCIDRs")]),
    field("status", &[CONDITIONS, keyed("addresses", "type", &[])]),
];
const STATUS_CONDITIONS: Schema = &[METADATA, field("status", WITH_CONDITIONS)];
const SERVICE_ACCOUNT: Schema = &[METADATA, keyed("secrets", "name", &[])];

/// The patch metadata of a kind's top-level fields; kinds not listed get `metadata`'s only.
fn root_schema(api_version: &str, kind: &str) -> Schema {
    match (api_version, kind) {
        ("v1", "Pod") => POD,
        ("v1", "PodTemplate") => POD_TEMPLATE_KIND,
        ("v1", "ReplicationController")
        | ("apps/v1", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch/v1", "Job") => WORKLOAD,
        ("batch/v1", "CronJob") => CRON_JOB,
        ("v1", "Service") => SERVICE,
        ("v1", "Node") => NODE,
        ("v1", "Namespace" | "PersistentVolumeClaim") => STATUS_CONDITIONS,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        _ => OBJECT,
    }
}

fn lookup(schema: Schema, name: &str) -> Option<&'static Field> {
    schema.iter().find(|f| f.name == name)
}

/// The merge key of the list at `path` (field names from the object's root, through list
/// elements) of `api_version`/`kind`, if that list merges by key: the schema server-side apply's
/// field sets share (`super::apply`). Lists of scalars (`finalizers`) and atomic lists: `None`.
pub(super) fn merge_key(api_version: &str, kind: &str, path: &[String]) -> Option<&'static str> {
    let (last, parents) = path.split_last()?;
    let mut schema = root_schema(api_version, kind);
    for name in parents {
        schema = lookup(schema, name)?.sub;
    }
    match lookup(schema, last)?.list {
        List::Keyed(key) => Some(key),
        List::Set | List::Atomic => None,
    }
}

// ---- Entry point ----

/// Applies the strategic merge patch `patch` to `original`, a whole stored object of kind
/// `api_version`/`kind`, and returns the patched object, as upstream's `StrategicMergeMapPatch`
/// does with that kind's Go struct. Lists merge by the struct tags of k8s.io/api (containers by
/// `name`, ownerReferences by `uid`, finalizers as a set, …); other lists are replaced.
///
/// Errors: a patch that is not a JSON object or is nested deeper than 100 levels, a merge-list
/// element without its merge key, an unknown `$patch` value or `$`-directive, a malformed
/// `$retainKeys` / `$setElementOrder` / `$deleteFromPrimitiveList`, or list elements of mixed
/// types.
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    api_version: &str,
    kind: &str,
) -> std::result::Result<Value, StrategicMergeError> {
    let Value::Object(patch) = patch else {
        return fail("invalid JSON document: a strategic merge patch must be a JSON object");
    };
    check_depth(patch)?;
    let Value::Object(original) = original else {
        return fail("invalid JSON document: the original object is not a JSON object");
    };
    merge_map(original.clone(), patch, root_schema(api_version, kind)).map(Value::Object)
}

/// Refuses patches nested deeper than `MAX_DEPTH`, without recursing.
fn check_depth(patch: &Object) -> Result<()> {
    let mut stack: Vec<(&Value, usize)> = patch.values().map(|v| (v, 2)).collect();
    while let Some((value, depth)) = stack.pop() {
        let children: Vec<&Value> = match value {
            Value::Object(m) => m.values().collect(),
            Value::Array(a) => a.iter().collect(),
            _ => continue,
        };
        if depth > MAX_DEPTH {
            return fail(format!("the patch is nested more than {MAX_DEPTH} levels deep"));
        }
        stack.extend(children.into_iter().map(|c| (c, depth + 1)));
    }
    Ok(())
}

// ---- Directives ----

/// A key of a patch map: a field, or a directive with the list field it targets.
enum Key<'a> {
    Field(&'a str),
    Patch,
    RetainKeys,
    SetOrder(&'a str),
    DeleteFrom(&'a str),
}

/// Parses a patch key; upstream's `extractKey` for the `prefix/field` directives.
fn parse_key(key: &str) -> Result<Key<'_>> {
    let target = |prefix: &str, what: &str| match key[prefix.len()..].strip_prefix('/') {
        Some(field) if !field.starts_with('$') => Ok(field),
        _ => fail(format!("invalid patch format of {what}: {key:?}")),
    };
    Ok(match key {
        PATCH => Key::Patch,
        RETAIN_KEYS => Key::RetainKeys,
        _ if key.starts_with(SET_ORDER) => {
            Key::SetOrder(target(SET_ORDER, "setElementOrder list")?)
        }
        _ if key.starts_with(DELETE_FROM) => {
            Key::DeleteFrom(target(DELETE_FROM, "primitive list")?)
        }
        _ if key.starts_with('$') => return fail(format!("unknown patch directive: {key}")),
        _ => Key::Field(key),
    })
}

/// Upstream's `mergepatch.ErrBadPatchType`.
fn unknown_patch_type(directive: &Value, within: &impl fmt::Display) -> StrategicMergeError {
    let directive = directive.as_str().map_or_else(|| directive.to_string(), str::to_owned);
    StrategicMergeError { message: format!("unknown patch type: {directive} in map: {within}") }
}

/// Upstream's `mergepatch.ErrNoMergeKey`.
fn no_merge_key(element: &Value, key: &str) -> StrategicMergeError {
    StrategicMergeError {
        message: format!("map: {element} does not contain declared merge key: {key}"),
    }
}

// ---- Merging ----

/// Merges `patch` into `original`: upstream's `mergeMap`. A `$patch` directive decides alone
/// (`handleDirectiveInMergeMap`: `replace` yields the patch's other keys, `delete` an empty map);
/// otherwise `$retainKeys` clears the original's other keys (`applyRetainKeysDirective`),
/// `$setElementOrder` lists are merged and ordered (`mergePatchIntoOriginal`), then each field
/// merges, and last the `$deleteFromPrimitiveList` lists apply (upstream visits the keys in
/// random order; deleting last makes a value both added and deleted end up deleted).
fn merge_map(mut original: Object, patch: &Object, schema: Schema) -> Result<Object> {
    if let Some(directive) = patch.get(PATCH) {
        return match directive.as_str() {
            Some("replace") => Ok(strip_map(patch)?.unwrap_or_default()),
            Some("delete") => Ok(Map::new()),
            _ => Err(unknown_patch_type(directive, &Value::Object(patch.clone()))),
        };
    }
    if let Some(keep) = patch.get(RETAIN_KEYS) {
        retain_keys(&mut original, patch, keep)?;
    }
    let mut ordered = BTreeSet::new();
    let mut deletions = Vec::new();
    for (key, value) in patch {
        match parse_key(key)? {
            Key::SetOrder(name) => {
                set_element_order(&mut original, patch, name, value, schema)?;
                ordered.insert(name);
            }
            Key::DeleteFrom(name) => deletions.push((name, value)),
            Key::Patch | Key::RetainKeys | Key::Field(_) => {}
        }
    }
    for (key, value) in patch {
        if let Key::Field(name) = parse_key(key)?
            && !ordered.contains(&name)
        {
            merge_field(&mut original, name, value, schema)?;
        }
    }
    for (name, value) in deletions {
        if value.is_null() {
            original.remove(name); // what upstream's `mergeMap` does with a null deletion list
        } else if let (Some(Value::Array(list)), Value::Array(remove)) =
            (original.get_mut(name), value)
        {
            *list = merge_list(std::mem::take(list), remove, lookup(schema, name), true)?;
        }
    }
    Ok(original)
}

/// One field of `mergeMap`: null deletes; maps merge, lists merge by their strategy
/// (`mergeSliceHandler`); anything else replaces.
fn merge_field(original: &mut Object, name: &str, value: &Value, schema: Schema) -> Result<()> {
    let meta = lookup(schema, name);
    let merged = match (original.get_mut(name).map(std::mem::take), value) {
        (_, Value::Null) => None,
        (Some(Value::Object(o)), Value::Object(p)) => {
            Some(Value::Object(merge_map(o, p, meta.map_or(NONE, |f| f.sub))?))
        }
        (Some(Value::Array(o)), Value::Array(p)) => {
            Some(Value::Array(merge_list(o, p, meta, false)?))
        }
        (_, value) => strip(value)?,
    };
    match merged {
        Some(v) => original.insert(name.to_owned(), v),
        None => original.remove(name),
    };
    Ok(())
}

/// `applyRetainKeysDirective`: every non-null field of the patch must be listed; the original's
/// unlisted fields are cleared.
fn retain_keys(original: &mut Object, patch: &Object, keep: &Value) -> Result<()> {
    let Value::Array(keep) = keep else {
        return fail(format!("invalid patch format of retainKeys: {keep} is not a list"));
    };
    let keep: BTreeSet<&str> = keep.iter().filter_map(Value::as_str).collect();
    let kept = |k: &str| keep.contains(k);
    for (k, v) in patch {
        let directive = k == RETAIN_KEYS || k.starts_with(SET_ORDER) || k.starts_with(DELETE_FROM);
        if !v.is_null() && !directive && !kept(k) {
            return fail(format!(
                "invalid patch format of retainKeys: {k:?} is not in $retainKeys"
            ));
        }
    }
    original.retain(|k, _| kept(k));
    Ok(())
}

/// Merges one list by its strategy: upstream's `mergeSliceHandler` and `mergeSlice`. With
/// `deleting`, `patch` is a `$deleteFromPrimitiveList` list (`deleteFromSlice`), whatever the
/// field's strategy.
fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    meta: Option<&Field>,
    deleting: bool,
) -> Result<Vec<Value>> {
    let (list, sub) = meta.map_or((List::Atomic, NONE), |f| (f.list, f.sub));
    if list == List::Atomic && !deleting {
        return strip_list(patch);
    }
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let maps = elements_are_maps(&original, patch)?;
    match (maps, list) {
        (false, _) if deleting => {
            let gone: BTreeSet<String> = patch.iter().map(Value::to_string).collect();
            Ok(original.into_iter().filter(|v| !gone.contains(&v.to_string())).collect())
        }
        (false, List::Set) => {
            let server_order = original.clone();
            let mut seen = BTreeSet::new();
            let merged = original.into_iter().chain(patch.iter().cloned());
            let merged = merged.filter(|v| seen.insert(v.to_string())).collect();
            normalize_order(merged, patch, &server_order, None)
        }
        (true, List::Keyed(key)) => merge_keyed(original, patch, key, sub),
        (false, List::Keyed(key)) => fail(format!("expected maps in the list merged by {key:?}")),
        (true, _) | (false, List::Atomic) => fail("cannot merge lists without merge key"),
    }
}

/// `mergeSliceWithSpecialElements` then `mergeSliceWithoutSpecialElements`: `$patch: delete`
/// elements remove the original's elements with their key, a `$patch: replace` element makes
/// the rest of the patch the list; the other elements merge into the original element with
/// their key, or are added. The order is then `normalizeElementOrder`'s.
fn merge_keyed(
    original: Vec<Value>,
    patch: &[Value],
    key: &str,
    sub: Schema,
) -> Result<Vec<Value>> {
    let (mut items, mut deleted, mut replace) = (Vec::new(), BTreeSet::new(), false);
    for element in patch {
        let Some(directive) = element.get(PATCH) else {
            items.push(element);
            continue;
        };
        match directive.as_str() {
            Some("delete") => drop(deleted.insert(ident(element, Some(key))?.to_string())),
            Some("replace") => replace = true,
            Some("merge") => return fail("merging lists cannot yet be specified in the patch"),
            _ => return Err(unknown_patch_type(directive, element)),
        }
    }
    if replace {
        let list = strip_list(&items.into_iter().cloned().collect::<Vec<_>>())?;
        for v in &list {
            ident(v, Some(key))?;
        }
        return Ok(list);
    }
    let gone = |o: &Value| o.get(key).is_some_and(|v| deleted.contains(&v.to_string()));
    let mut merged: Vec<Value> = original.into_iter().filter(|o| !gone(o)).collect();
    let server_order = ids(&merged, Some(key))?;
    let patch_order =
        items.iter().map(|v| ident(v, Some(key)).cloned()).collect::<Result<Vec<_>>>()?;
    let mut at = first_positions(&server_order);
    for (item, id) in items.into_iter().zip(&patch_order) {
        let Value::Object(item) = item else { return fail("list element types are not identical") };
        match at.get(&id.to_string()) {
            Some(&i) => {
                let Value::Object(o) = std::mem::take(&mut merged[i]) else {
                    return fail("list element types are not identical");
                };
                merged[i] = Value::Object(merge_map(o, item, sub)?);
            }
            None => {
                at.insert(id.to_string(), merged.len());
                merged.push(Value::Object(strip_map(item)?.unwrap_or_default()));
            }
        }
    }
    normalize_order(merged, &patch_order, &server_order, Some(key))
}

/// `sliceElementType`: all elements of both lists have one JSON type, which is not a list.
/// Answers whether they are maps.
fn elements_are_maps(original: &[Value], patch: &[Value]) -> Result<bool> {
    let mut first: Option<&Value> = None;
    for v in original.iter().chain(patch) {
        if v.is_array() {
            return fail("lists of lists are not supported");
        }
        match first {
            None => first = Some(v),
            Some(f) if std::mem::discriminant(f) == std::mem::discriminant(v) => {}
            Some(_) => {
                let (o, p) = (Value::from(original.to_vec()), Value::from(patch.to_vec()));
                return fail(format!("list element types are not identical: {o} and {p}"));
            }
        }
    }
    Ok(first.is_some_and(Value::is_object))
}

// ---- Order ----

/// `mergePatchIntoOriginal`: merges the list `name` (if the patch has it) and orders it by the
/// `$setElementOrder` list: the elements it names in its order, the others interleaved by their
/// place in the original (`normalizeElementOrder`, with the server order of `aliased_order`).
fn set_element_order(
    original: &mut Object,
    patch: &Object,
    name: &str,
    order: &Value,
    schema: Schema,
) -> Result<()> {
    let malformed = || fail(format!("invalid patch format of setElementOrder list for {name:?}"));
    let Value::Array(order) = order else { return malformed() };
    let meta = lookup(schema, name);
    let key = match meta.map(|f| f.list) {
        Some(List::Keyed(key)) => Some(key),
        _ => None,
    };
    let old = match original.get_mut(name) {
        None => None,
        Some(Value::Array(a)) => Some(std::mem::take(a)),
        Some(_) => return malformed(),
    };
    let new = match patch.get(name) {
        None => None,
        Some(Value::Array(a)) => Some(a),
        Some(_) => return malformed(),
    };
    let (old_list, new_list) =
        (old.as_deref().unwrap_or_default(), new.map_or(&[][..], Vec::as_slice));
    check_order(new_list, order, key)?;
    if old.is_some() || new.is_some() {
        // Upstream's `sliceElementType` check, which also refuses two empty lists.
        if old_list.is_empty() && new_list.is_empty() {
            return fail("no elements in any of the given slices");
        }
        elements_are_maps(old_list, new_list)?;
    }
    let server_order = ids(old_list, key)?;
    let merged = match (old, new) {
        (None, None) => return Ok(()),
        (Some(old), None) => old,
        (None, Some(new)) => strip_list(new)?,
        (Some(old), Some(new)) => merge_list(old, new, meta, false)?,
    };
    let server_order = match (key, new) {
        (Some(key), Some(new)) => aliased_order(server_order, new, key)?,
        _ => server_order,
    };
    let ordered = normalize_order(merged, &ids(order, key)?, &server_order, key)?;
    original.insert(name.to_owned(), Value::Array(ordered));
    Ok(())
}

/// The server order that `mergePatchIntoOriginal` sorts a merged keyed list by. Upstream passes
/// the original list, whose backing array `mergeSlice` has changed in place by then: each
/// `$patch: delete` shifted the elements after it left (leaving the last one twice), and new
/// elements were written after the survivors as far as the original's length. (For lists of
/// scalars the same aliasing depends on Go's slice capacity; this takes the original as it is.)
fn aliased_order(original: Vec<Value>, patch: &[Value], key: &str) -> Result<Vec<Value>> {
    let (mut alive, mut frozen) = (vec![true; original.len()], original.clone());
    let (mut len, mut last) = (original.len(), original.len());
    let mut at: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, id) in original.iter().enumerate() {
        at.entry(id.to_string()).or_default().push(i);
    }
    for element in patch.iter().filter(|v| directive(v) == Some("delete")) {
        for i in at.remove(&ident(element, Some(key))?.to_string()).unwrap_or_default() {
            // Go's `append(s[:i], s[i+1:]...)` leaves the list's last element in the slot it frees.
            while !alive[last - 1] {
                last -= 1;
            }
            frozen[len - 1] = original[last - 1].clone();
            alive[i] = false;
            len -= 1;
        }
    }
    let survivors = original.iter().zip(&alive).filter(|(_, a)| **a).map(|(v, _)| v.clone());
    let mut view: Vec<Value> = survivors.chain(frozen.drain(len..)).collect();
    if patch.iter().any(|v| directive(v) == Some("replace")) {
        return Ok(view);
    }
    let mut known: BTreeSet<String> = view[..len].iter().map(Value::to_string).collect();
    for element in patch.iter().filter(|v| directive(v).is_none()) {
        let id = ident(element, Some(key))?;
        if known.insert(id.to_string()) {
            if let Some(slot) = view.get_mut(len) {
                *slot = id.clone();
            }
            len += 1;
        }
    }
    Ok(view)
}

/// `validatePatchWithSetOrderList`: the patch list's elements (deletions and directives aside)
/// appear in the `$setElementOrder` list, in the same relative order.
fn check_order(patch: &[Value], order: &[Value], key: Option<&str>) -> Result<()> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let items: Vec<&Value> =
        patch.iter().filter(|v| key.is_none() || directive(v) != Some("delete")).collect();
    let (mut p, mut o) = (0, 0);
    while p < items.len() && o < order.len() {
        if items[p].get(PATCH).is_some() {
            p += 1;
            continue;
        }
        if ident(items[p], key)? == ident(&order[o], key)? {
            p += 1;
        }
        o += 1;
    }
    if p < items.len() {
        let (patch, order) = (Value::from(patch.to_vec()), Value::from(order.to_vec()));
        return fail(format!(
            "the order in patch list {patch} doesn't match $setElementOrder list {order}"
        ));
    }
    Ok(())
}

/// `normalizeElementOrder`: the elements named in `patch_order` in that order, the others in
/// `server_order`'s; then the two interleaved (`mergeSortedSlice`): a server-only element goes
/// before the next patch element only if both are in `server_order` and it is earlier there.
/// So, as upstream, elements new to the list land before the server-only ones that follow.
fn normalize_order(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Result<Vec<Value>> {
    let (patch_positions, server_positions) =
        (first_positions(patch_order), first_positions(server_order));
    let (mut from_patch, mut server_only) = (Vec::new(), Vec::new());
    for v in merged {
        let id = ident(&v, key)?.to_string();
        let (in_patch, rank) =
            (patch_positions.get(&id).copied(), server_positions.get(&id).copied());
        match in_patch {
            Some(_) => from_patch.push((in_patch, rank, v)),
            None => server_only.push((rank, rank, v)),
        }
    }
    let mut left = sort_stable(server_only).peekable();
    let mut right = sort_stable(from_patch).peekable();
    let mut out = Vec::new();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => return Ok(out),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((l, _)), Some((r, _))) => matches!((l, r), (Some(a), Some(b)) if a < b),
        };
        out.extend(if take_left { left.next() } else { right.next() }.map(|(_, v)| v));
    }
}

/// Go's `sort.SliceStable` with `normalizeSliceOrder`'s comparison (`a < b` if both have a
/// place, else "less"): a plain stable sort when every element has a place; else, for up to 20
/// elements, Go's insertion sort, whose result that comparison decides (beyond 20 Go merges
/// sorted blocks; there the elements without a place simply go last). Yields each element's rank
/// in the server order with it.
fn sort_stable(
    mut items: Vec<(Option<usize>, Option<usize>, Value)>,
) -> impl Iterator<Item = (Option<usize>, Value)> {
    if items.len() > 20 || items.iter().all(|(p, _, _)| p.is_some()) {
        items.sort_by_key(|(p, _, _)| p.unwrap_or(usize::MAX));
    } else {
        for i in 1..items.len() {
            let mut j = i;
            while j > 0 && !matches!((items[j].0, items[j - 1].0), (Some(a), Some(b)) if a >= b) {
                items.swap(j, j - 1);
                j -= 1;
            }
        }
    }
    items.into_iter().map(|(_, rank, v)| (rank, v))
}

/// What identifies a list element for ordering and matching: its merge key's value, or the
/// element itself in a list of scalars. Merge key values must be scalars.
fn ident<'a>(element: &'a Value, key: Option<&str>) -> Result<&'a Value> {
    let id = match key {
        Some(key) if element.is_object() => {
            element.get(key).ok_or_else(|| no_merge_key(element, key))?
        }
        Some(key) => {
            return fail(format!("expected a map in the list merged by {key:?}, got {element}"));
        }
        None => element,
    };
    if id.is_object() || id.is_array() {
        return fail(format!("cannot order or match list elements by {id}: not a scalar"));
    }
    Ok(id)
}

/// A list element's `$patch` directive, if it has one.
fn directive(element: &Value) -> Option<&str> {
    element.get(PATCH).and_then(Value::as_str)
}

fn ids(list: &[Value], key: Option<&str>) -> Result<Vec<Value>> {
    list.iter().map(|v| ident(v, key).cloned()).collect()
}

/// Where each identity first appears in a list of identities, by its JSON text (for scalars,
/// equal text is equal value).
fn first_positions(ids: &[Value]) -> BTreeMap<String, usize> {
    let mut positions = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        positions.entry(id.to_string()).or_insert(i);
    }
    positions
}

// ---- Patch values taken as they are ----

/// A patch value that lands as it is, without its directives and nulls (upstream's
/// `removeDirectives` and `discardNullValuesFromPatch`); `None` if it is a `$patch: delete` map.
fn strip(value: &Value) -> Result<Option<Value>> {
    Ok(match value {
        Value::Object(m) => strip_map(m)?.map(Value::Object),
        Value::Array(a) => Some(Value::Array(strip_list(a)?)),
        scalar => Some(scalar.clone()),
    })
}

/// A map taken as it is: `$patch: replace` keeps the other keys, `$patch: delete` drops the map.
fn strip_map(map: &Object) -> Result<Option<Object>> {
    if let Some(directive) = map.get(PATCH) {
        match directive.as_str() {
            Some("delete") => return Ok(None),
            Some("replace") => {}
            _ => return Err(unknown_patch_type(directive, &Value::Object(map.clone()))),
        }
    }
    let mut out = Map::new();
    for (k, v) in map {
        if let Key::Field(name) = parse_key(k)?
            && !v.is_null()
        {
            out.extend(strip(v)?.map(|v| (name.to_owned(), v)));
        }
    }
    Ok(Some(out))
}

/// A list taken as it is: elements carrying `$patch` are directives, not elements.
fn strip_list(list: &[Value]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for v in list {
        match v.get(PATCH) {
            None => out.extend(strip(v)?),
            Some(d) if matches!(d.as_str(), Some("delete" | "replace")) => {}
            Some(d) => return Err(unknown_patch_type(d, v)),
        }
    }
    Ok(out)
}
