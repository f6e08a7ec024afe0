//! [`StateDiff`]: where a run's end state differs from a reference's, printed for a failure
//! report.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::state::EndState;
use super::{ObjectId, escape_segment, show_value};

/// One difference between a run's end state and the reference's.
#[derive(Clone, Debug, PartialEq)]
pub enum Difference {
    /// The reference has the object, this run does not.
    OnlyInReference(ObjectId),
    /// This run has the object, the reference does not.
    OnlyInRun(ObjectId),
    /// Both have the object; one field differs (or is present in one only).
    Field {
        /// The object.
        object: ObjectId,
        /// The field, as a JSON pointer (`/metadata/labels/app`, `/spec/ports/0/port`).
        path: String,
        /// The reference's value; `None` if absent.
        reference: Option<Value>,
        /// This run's value; `None` if absent.
        run: Option<Value>,
    },
}

impl Difference {
    /// The object the difference is about.
    pub fn object(&self) -> &ObjectId {
        match self {
            Difference::OnlyInReference(id) | Difference::OnlyInRun(id) => id,
            Difference::Field { object, .. } => object,
        }
    }
}

/// `Secret default/x: only in the reference`, or
/// `PersistentVolumeClaim default/data-zk-0: /metadata/deletionTimestamp: absent (reference) vs present (this run)`.
impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::OnlyInReference(id) => write!(f, "{id}: only in the reference"),
            Difference::OnlyInRun(id) => write!(f, "{id}: only in this run"),
            Difference::Field { object, path, reference, run } => write!(
                f,
                "{object}: {path}: {} (reference) vs {} (this run)",
                show_value(reference.as_ref()),
                show_value(run.as_ref())
            ),
        }
    }
}

/// Where a run's end state differs from a reference's ([`EndState::diff`]).
///
/// Its `Display` is made for a failure report: the object counts per kind (reference/this run),
/// then one line per difference, at most [`StateDiff::DISPLAY_MAX`] of them, then `… N more`.
///
/// ```
/// use apiserver_fake::{EndState, Mask, Object};
///
/// let mask = Mask::default();
/// let reference = EndState::from_objects(&[
///     Object::new("v1", "ConfigMap", "default", "a").with_label("app", "web"),
///     Object::new("v1", "Secret", "default", "s"),
/// ], &mask);
/// let run = EndState::from_objects(&[
///     Object::new("v1", "ConfigMap", "default", "a").with_label("app", "db"),
/// ], &mask);
/// let diff = run.diff(&reference);
/// assert_eq!(diff.to_string(), "\
/// end state differs from the reference: 1 only in the reference, 0 only in this run, 1 field differs
///   objects per kind (reference/this run): ConfigMap 1/1, Secret 1/0
///   ConfigMap default/a: /metadata/labels/app: \"web\" (reference) vs \"db\" (this run)
///   Secret default/s: only in the reference");
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateDiff {
    /// Objects per `(apiVersion, kind)`: (in the reference, in this run), for every kind either
    /// side has.
    pub counts: BTreeMap<(String, String), (usize, usize)>,
    /// The differences, by object then path.
    pub differences: Vec<Difference>,
}

impl StateDiff {
    /// The most differences `Display` lists; the rest are counted.
    pub const DISPLAY_MAX: usize = 25;

    /// Whether the two states are equal.
    pub fn is_empty(&self) -> bool {
        self.differences.is_empty()
    }

    /// How many differences.
    pub fn len(&self) -> usize {
        self.differences.len()
    }

    /// The objects the reference has and this run does not.
    pub fn only_in_reference(&self) -> impl Iterator<Item = &ObjectId> {
        self.differences.iter().filter_map(|d| match d {
            Difference::OnlyInReference(id) => Some(id),
            _ => None,
        })
    }

    /// The objects this run has and the reference does not.
    pub fn only_in_run(&self) -> impl Iterator<Item = &ObjectId> {
        self.differences.iter().filter_map(|d| match d {
            Difference::OnlyInRun(id) => Some(id),
            _ => None,
        })
    }

    /// The differing fields of `object` (JSON pointers), in order.
    pub fn paths_of(&self, object: &ObjectId) -> Vec<&str> {
        self.differences
            .iter()
            .filter_map(|d| match d {
                Difference::Field { object: o, path, .. } if o == object => Some(path.as_str()),
                _ => None,
            })
            .collect()
    }
}

impl fmt::Display for StateDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let objects: usize = self.counts.values().map(|(_, run)| run).sum();
        if self.is_empty() {
            return write!(f, "end state matches the reference ({objects} objects)");
        }
        let fields =
            self.differences.len() - self.only_in_reference().count() - self.only_in_run().count();
        write!(
            f,
            "end state differs from the reference: {} only in the reference, {} only in this \
             run, {fields} field{}",
            self.only_in_reference().count(),
            self.only_in_run().count(),
            if fields == 1 { " differs" } else { "s differ" }
        )?;
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|((_, kind), (reference, run))| format!("{kind} {reference}/{run}"))
            .collect();
        write!(f, "\n  objects per kind (reference/this run): {}", counts.join(", "))?;
        for difference in self.differences.iter().take(Self::DISPLAY_MAX) {
            write!(f, "\n  {difference}")?;
        }
        if self.differences.len() > Self::DISPLAY_MAX {
            write!(f, "\n  … {} more", self.differences.len() - Self::DISPLAY_MAX)?;
        }
        Ok(())
    }
}

/// The differences of `run` from `reference`.
pub(super) fn diff(reference: &EndState, run: &EndState) -> StateDiff {
    let mut counts: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for (kind, n) in reference.counts() {
        counts.entry(kind).or_default().0 = n;
    }
    for (kind, n) in run.counts() {
        counts.entry(kind).or_default().1 = n;
    }
    let mut differences = Vec::new();
    let (ours, theirs) = (run.objects(), reference.objects());
    let mut ids: Vec<&ObjectId> = ours.keys().chain(theirs.keys()).collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        match (theirs.get(id), ours.get(id)) {
            (Some(_), None) => differences.push(Difference::OnlyInReference(id.clone())),
            (None, Some(_)) => differences.push(Difference::OnlyInRun(id.clone())),
            (Some(a), Some(b)) => {
                let mut fields = Vec::new();
                diff_values(&mut String::new(), Some(a), Some(b), &mut fields);
                differences.extend(fields.into_iter().map(|(path, reference, run)| {
                    Difference::Field { object: id.clone(), path, reference, run }
                }));
            }
            (None, None) => {}
        }
    }
    StateDiff { counts, differences }
}

type FieldDiff = (String, Option<Value>, Option<Value>);

/// The differing leaves of two values: recursive on objects (every key of either) and arrays
/// (index by index); any other pair that differs, including an object against a scalar, is one
/// difference at `path`.
fn diff_values(path: &mut String, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<FieldDiff>) {
    let length = path.len();
    match (a, b) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                path.push('/');
                path.push_str(&escape_segment(key));
                diff_values(path, a.get(key), b.get(key), out);
                path.truncate(length);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for index in 0..a.len().max(b.len()) {
                path.push('/');
                path.push_str(&index.to_string());
                diff_values(path, a.get(index), b.get(index), out);
                path.truncate(length);
            }
        }
        (a, b) if a != b => out.push((path.clone(), a.cloned(), b.cloned())),
        _ => {}
    }
}
