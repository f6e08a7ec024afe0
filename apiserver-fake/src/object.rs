//! Kubernetes objects: `apiVersion`, `kind`, `metadata`, `spec`, `status`, with Kubernetes'
//! field names, read from real manifests (JSON or YAML, several documents per file).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use sim_core::SimTime;

/// The finalizer the garbage collector honours to orphan dependents (`metav1.FinalizerOrphanDependents`).
pub const FINALIZER_ORPHAN: &str = "orphan";
/// The finalizer that makes a deletion wait for blocking dependents (`metav1.FinalizerDeleteDependents`).
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// An object as the API server stores it. `spec` and `status` are free-form JSON; any other
/// top-level field (a ConfigMap's `data`, a Secret's `type`) is kept in `other`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object {
    /// `group/version`, or `v1` for the core group.
    #[serde(default)]
    pub api_version: String,
    /// The kind, e.g. `ConfigMap`.
    #[serde(default)]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The desired state.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub spec: Value,
    /// The observed state.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub status: Value,
    /// Other top-level fields, kept as they came.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// `metav1.ObjectMeta`, the fields kdst models.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Unique within a namespace and kind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// A prefix from which the server makes a unique name when `name` is empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub generate_name: String,
    /// Empty for cluster-scoped kinds.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Assigned at create; immutable.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The global revision of the last write; compare only for equality.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// Bumped on spec changes and when deletion starts; never decremented.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: i64,
    /// When the object was created (virtual time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<Time>,
    /// Set by the first DELETE of an object that has finalizers; never cleared or moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<Time>,
    /// The grace period of the pending deletion (0 for kinds without graceful deletion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    /// Labels (label selectors match on these).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The objects this one depends on, for the garbage collector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
    /// What must happen before the object is really removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// Which field manager owns which fields (server-side apply), kept as written.
    #[serde(default, skip_serializing_if = "ManagedFields::is_empty")]
    pub managed_fields: ManagedFields,
    /// Metadata fields kdst does not model, kept as they came (so a client gets back what it
    /// wrote).
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// An object's `managedFields`: shared, so that copying an object (the server keeps several
/// copies of each state) does not copy its field sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManagedFields(std::rc::Rc<[ManagedFieldsEntry]>);

impl ManagedFields {
    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries.
    pub fn entries(&self) -> &[ManagedFieldsEntry] {
        &self.0
    }
}

impl From<Vec<ManagedFieldsEntry>> for ManagedFields {
    fn from(entries: Vec<ManagedFieldsEntry>) -> Self {
        ManagedFields(entries.into())
    }
}

impl Serialize for ManagedFields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ManagedFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(ManagedFields::from(Vec::<ManagedFieldsEntry>::deserialize(deserializer)?))
    }
}

/// `metav1.ManagedFieldsEntry`: the fields one manager owns, from one kind of operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedFieldsEntry {
    /// The field manager's name (`fieldManager`, or the client's user agent).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub manager: String,
    /// `Apply` or `Update`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub operation: String,
    /// The version of the object the field set describes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// When the entry last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// Always `FieldsV1`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fields_type: String,
    /// The owned fields in the `FieldsV1` trie format (`{"f:spec":{"f:replicas":{}}}`).
    #[serde(default, rename = "fieldsV1", skip_serializing_if = "Value::is_null")]
    pub fields_v1: Value,
    /// The subresource the operation went to (`status`), empty for the main resource.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// `metav1.OwnerReference`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference {
    /// The owner's `apiVersion`.
    #[serde(default)]
    pub api_version: String,
    /// The owner's kind.
    #[serde(default)]
    pub kind: String,
    /// The owner's name (in the dependent's namespace, for a namespaced owner).
    #[serde(default)]
    pub name: String,
    /// The owner's uid.
    #[serde(default)]
    pub uid: String,
    /// Whether this owner is the managing controller (at most one reference may say so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    /// Whether this dependent blocks the owner's foreground deletion (`None` counts as false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

impl OwnerReference {
    /// `metav1.NewControllerRef(owner)`: `controller` and `blockOwnerDeletion` both true.
    pub fn controller_of(owner: &Object) -> Self {
        OwnerReference { controller: Some(true), ..OwnerReference::to(owner, Some(true)) }
    }

    /// A plain reference to `owner` with the given `blockOwnerDeletion`.
    pub fn to(owner: &Object, block_owner_deletion: Option<bool>) -> Self {
        OwnerReference {
            api_version: owner.api_version.clone(),
            kind: owner.kind.clone(),
            name: owner.metadata.name.clone(),
            uid: owner.metadata.uid.clone(),
            controller: None,
            block_owner_deletion,
        }
    }

    /// Whether `controller` is true.
    pub fn is_controller(&self) -> bool {
        self.controller == Some(true)
    }

    /// Whether `blockOwnerDeletion` is true.
    pub fn blocks(&self) -> bool {
        self.block_owner_deletion == Some(true)
    }
}

/// A point in virtual time as Kubernetes writes timestamps: RFC 3339 in UTC. The simulation's
/// start is [`Time::EPOCH_TEXT`]; times from real manifests before it are kept as negative offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time {
    /// Nanoseconds since the simulation's start.
    pub nanos: i64,
}

/// Seconds from 1970-01-01 to 2026-01-01, the wall-clock date virtual time zero is shown as.
const EPOCH_UNIX: i64 = 1_767_225_600;

impl Time {
    /// How virtual time zero is written.
    pub const EPOCH_TEXT: &'static str = "2026-01-01T00:00:00Z";

    /// The timestamp of a virtual instant.
    pub fn at(time: SimTime) -> Self {
        Time { nanos: i64::try_from(time.as_nanos()).unwrap_or(i64::MAX) }
    }

    /// The current virtual time.
    pub fn now() -> Self {
        Time::at(sim_core::now())
    }

    /// The virtual instant, if the timestamp is not before the simulation's start.
    pub fn sim_time(self) -> Option<SimTime> {
        u64::try_from(self.nanos).ok().map(SimTime::from_nanos)
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
    pub fn parse(text: &str) -> Result<Self, TimeParseError> {
        let bad = || TimeParseError { text: text.to_string() };
        let bytes = text.as_bytes();
        if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' {
            return Err(bad());
        }
        if !matches!(bytes[10], b'T' | b't' | b' ') || bytes[16] != b':' {
            return Err(bad());
        }
        let num = |range: std::ops::Range<usize>| -> Result<i64, TimeParseError> {
            let part = &text[range];
            if part.bytes().all(|b| b.is_ascii_digit()) {
                Ok(part.parse().unwrap_or(0))
            } else {
                Err(bad())
            }
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return Err(bad());
        }
        let mut rest = &text[19..];
        let mut nanos = 0i64;
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return Err(bad());
            }
            nanos = fraction[..digits].parse::<i64>().map_err(|_| bad())?
                * 10i64.pow(9 - digits as u32);
            rest = &fraction[digits..];
        }
        let offset = match rest {
            "Z" | "z" => 0,
            zone if zone.len() == 6
                && (zone.starts_with('+') || zone.starts_with('-'))
                && &zone[3..4] == ":" =>
            {
                let sign = if zone.starts_with('-') { -1 } else { 1 };
                let hours: i64 = zone[1..3].parse().map_err(|_| bad())?;
                let minutes: i64 = zone[4..6].parse().map_err(|_| bad())?;
                sign * (hours * 3600 + minutes * 60)
            }
            _ => return Err(bad()),
        };
        let unix = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
            - offset;
        Ok(Time { nanos: (unix - EPOCH_UNIX) * 1_000_000_000 + nanos })
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.nanos.div_euclid(1_000_000_000) + EPOCH_UNIX;
        let nanos = self.nanos.rem_euclid(1_000_000_000);
        let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )?;
        if nanos != 0 {
            write!(f, ".{nanos:09}")?;
        }
        f.write_str("Z")
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Whole seconds (every timestamp the server sets at a round instant, and the common
        // case) are written digit by digit: the formatter is a measurable part of a REST write.
        if self.nanos.rem_euclid(1_000_000_000) == 0 {
            let seconds = self.nanos.div_euclid(1_000_000_000) + EPOCH_UNIX;
            let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
            let (year, month, day) = civil_from_days(days);
            if (0..=9999).contains(&year) {
                let mut text = *b"0000-00-00T00:00:00Z";
                let mut put = |at: usize, width: usize, mut value: i64| {
                    for index in (at..at + width).rev() {
                        text[index] = b'0' + (value % 10) as u8;
                        value /= 10;
                    }
                };
                put(0, 4, year);
                put(5, 2, month);
                put(8, 2, day);
                put(11, 2, secs / 3600);
                put(14, 2, secs / 60 % 60);
                put(17, 2, secs % 60);
                let text = std::str::from_utf8(&text).expect("ASCII digits");
                return serializer.serialize_str(text);
            }
        }
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Time::parse(&text).map_err(D::Error::custom)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

impl Object {
    /// An object with identity only; the server fills uid, resourceVersion and timestamps.
    pub fn new(api_version: &str, kind: &str, namespace: &str, name: &str) -> Self {
        Object {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            metadata: ObjectMeta {
                name: name.to_string(),
                namespace: namespace.to_string(),
                ..ObjectMeta::default()
            },
            ..Object::default()
        }
    }

    /// Sets a label.
    pub fn with_label(mut self, key: &str, value: &str) -> Self {
        self.metadata.labels.insert(key.to_string(), value.to_string());
        self
    }

    /// Adds an owner reference.
    pub fn with_owner(mut self, owner: OwnerReference) -> Self {
        self.metadata.owner_references.push(owner);
        self
    }

    /// Adds a finalizer.
    pub fn with_finalizer(mut self, finalizer: &str) -> Self {
        self.metadata.finalizers.push(finalizer.to_string());
        self
    }

    /// Sets `spec`.
    pub fn with_spec(mut self, spec: Value) -> Self {
        self.spec = spec;
        self
    }

    /// Sets a top-level field other than `spec` and `status` (e.g. a ConfigMap's `data`).
    pub fn with_field(mut self, field: &str, value: Value) -> Self {
        self.other.insert(field.to_string(), value);
        self
    }

    /// `namespace/name`, or `name` for a cluster-scoped object.
    pub fn key(&self) -> String {
        if self.metadata.namespace.is_empty() {
            self.metadata.name.clone()
        } else {
            format!("{}/{}", self.metadata.namespace, self.metadata.name)
        }
    }

    /// The resourceVersion as a number (0 when unset or not a number).
    pub fn resource_version(&self) -> u64 {
        self.metadata.resource_version.parse().unwrap_or(0)
    }

    /// Whether `deletionTimestamp` is set.
    pub fn is_deleting(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }

    /// Whether `finalizer` is present.
    pub fn has_finalizer(&self, finalizer: &str) -> bool {
        self.metadata.finalizers.iter().any(|f| f == finalizer)
    }

    /// The reference with `controller=true`, if any.
    pub fn controller_ref(&self) -> Option<&OwnerReference> {
        self.metadata.owner_references.iter().find(|r| r.is_controller())
    }

    /// Whether an owner reference names `uid`.
    pub fn is_owned_by(&self, uid: &str) -> bool {
        self.metadata.owner_references.iter().any(|r| r.uid == uid)
    }

    /// The object as JSON with Kubernetes field names.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("an Object always serialises")
    }

    /// Reads an object from JSON with Kubernetes field names.
    pub fn from_json(value: Value) -> Result<Self, ObjectJsonError> {
        serde_json::from_value(value).map_err(|e| ObjectJsonError { message: e.to_string() })
    }
}

/// JSON that is not an object of Kubernetes' shape (a field of the wrong type, say); it prints
/// as the JSON decoder's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectJsonError {
    /// The decoder's message, e.g. `invalid type: string "x", expected a sequence`.
    pub message: String,
}

/// A timestamp that is not RFC 3339 ([`Time::parse`]); it prints as
/// `invalid timestamp "…": expected RFC 3339, e.g. 2026-01-01T00:00:00Z`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeParseError {
    /// The text that was parsed.
    pub text: String,
}

impl fmt::Display for TimeParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid timestamp {:?}: expected RFC 3339, e.g. 2026-01-01T00:00:00Z", self.text)
    }
}

impl std::error::Error for TimeParseError {}

impl fmt::Display for ObjectJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ObjectJsonError {}

/// A manifest that could not be read: which document, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// 1-based index of the document in the file.
    pub document: usize,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "manifest document {}: {}", self.document, self.message)
    }
}

impl std::error::Error for ManifestError {}

/// Reads objects from manifest text: JSON or YAML, several YAML documents separated by `---`,
/// and `kind: List` documents expanded into their `items`. Empty documents are skipped. Every
/// object must have `apiVersion`, `kind` and `metadata.name` (or `generateName`).
pub fn parse_manifests(text: &str) -> Result<Vec<Object>, ManifestError> {
    let mut objects = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let fail = |message: String| ManifestError { document: index + 1, message };
        let value = Value::deserialize(document).map_err(|e| fail(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let items = match value.get("kind").and_then(Value::as_str) {
            Some(kind) if kind.ends_with("List") && value.get("items").is_some() => {
                match value.get("items") {
                    Some(Value::Array(items)) => items.clone(),
                    _ => return Err(fail("a List's items must be an array".into())),
                }
            }
            _ => vec![value],
        };
        for item in items {
            if !item.is_object() {
                return Err(fail(format!("expected an object, found {item}")));
            }
            let object = Object::from_json(item).map_err(|e| fail(e.to_string()))?;
            if object.api_version.is_empty() {
                return Err(fail("apiVersion is missing".into()));
            }
            if object.kind.is_empty() {
                return Err(fail("kind is missing".into()));
            }
            if object.metadata.name.is_empty() && object.metadata.generate_name.is_empty() {
                return Err(fail(format!("{} has no metadata.name", object.kind)));
            }
            objects.push(object);
        }
    }
    Ok(objects)
}

/// Applies an RFC 7386 JSON merge patch to `target`: objects merge key by key, `null` deletes a
/// key, anything else (arrays included) replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(map) = target else { unreachable!("made an object above") };
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}
