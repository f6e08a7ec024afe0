//! The pure parts of the generic oracles: what a cluster looks like at the end of a run, with
//! the nondeterministic fields masked, and what happened to each object over the run.
//!
//! - [`Mask`] (`mask.rs`): which fields differ between equivalent runs (uids, resourceVersions,
//!   timestamps, generations, generated names) and are replaced by a marker before comparison.
//! - [`EndState`] (`state.rs`): every object of the chosen kinds, masked, by [`ObjectId`]; a
//!   stable [`EndState::digest`] for deduplicating converged states (Kamera), and
//!   [`EndState::diff`] against a reference run (Sieve's end-state oracle).
//! - [`StateDiff`] (`diff.rs`): the differences, printed for a failure report.
//! - [`UpdateSummary`] (`summary.rs`): per object, how many ADDED and DELETED events it had over
//!   the whole run (Sieve's state-update summary), from the opt-in [`WriteLog`] the server keeps
//!   when [`ServerConfig::with_update_summary`](crate::ServerConfig::with_update_summary) is on.
//! - [`Stability`] (`stability.rs`): from the same log, when each object was last written and
//!   how often after a given time (eventually stable reconciliation, Anvil's ESR).
//! - [`Oracles`] (`oracle.rs`): the two at run time: a workload awaits [`Oracles::settle`],
//!   which checks that the cluster settles and compares its end state with a [`Reference`].
//!
//! Sieve compares a perturbed run with a reference run of the same workload: object counts per
//! kind and every field value after masking (28 of its 46 bugs), and the per-object counts of
//! ADDED and DELETED events (17). These types are the comparisons; wiring them into scenarios
//! (which run is the reference, which kinds, which extra fields to mask) is the caller's.
//!
//! ```
//! use apiserver_fake::{ApiServer, EndState, Mask, Object};
//! use sim_core::{Outcome, Simulation};
//!
//! let capture = |seed| {
//!     let state = std::rc::Rc::new(std::cell::RefCell::new(None));
//!     let out = state.clone();
//!     let outcome = Simulation::default().run(seed, move || {
//!         let server = ApiServer::default();
//!         server.create(Object::new("v1", "ConfigMap", "default", "a")).unwrap();
//!         *out.borrow_mut() = Some(EndState::capture(&server, &[("v1", "ConfigMap")], &Mask::default()));
//!     });
//!     assert_eq!(outcome, Outcome::Completed);
//!     state.take().unwrap()
//! };
//! // The uids and timestamps of two runs differ; masked, the states are equal.
//! assert!(capture(1).diff(&capture(2)).is_empty());
//! assert_eq!(capture(1).digest(), capture(2).digest());
//! ```

mod diff;
mod mask;
mod oracle;
mod stability;
mod state;
mod summary;

use std::fmt;

use serde_json::Value;

use crate::object::Object;

pub use diff::{Difference, StateDiff};
pub use mask::{DEFAULT_FIELDS, Mask};
pub use oracle::{Oracles, Reference, compare_with, record_reference, take_reference};
pub use stability::{Churn, Stability};
pub use state::EndState;
pub use summary::{CountDiff, CountTable, Counts, UpdateSummary, WriteLog, WriteRecord};

/// What a masked value is replaced with: the field is still there (presence compares), its
/// value is not compared. A difference shows it as `present`.
pub const MASKED: &str = "<masked>";

/// What a generated name's random suffix is replaced with, in `metadata.name` and in the
/// ownerReferences that name the object: `web-` + [`GENERATED`].
pub const GENERATED: &str = "<generated>";

/// An object's identity in an [`EndState`] or an [`UpdateSummary`]: apiVersion, kind,
/// namespace (empty for cluster-scoped kinds) and name. Ordered by those four, in that order.
///
/// With generated names masked ([`Mask::generated_names`]), an object whose name came from
/// `generateName` is named `generateName#i` in an end state (`i` its index among the objects
/// with the same generateName, ordered by their masked content) and `generateName` + `<generated>`
/// in an update summary (the counts of all such objects added up).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId {
    /// `group/version`, or `v1`.
    pub api_version: String,
    /// The kind, e.g. `PersistentVolumeClaim`.
    pub kind: String,
    /// The namespace; empty for a cluster-scoped object.
    pub namespace: String,
    /// The name (masked for a generated one, see above).
    pub name: String,
}

impl ObjectId {
    /// The identity of `object` as stored (no masking).
    pub fn of(object: &Object) -> Self {
        ObjectId {
            api_version: object.api_version.clone(),
            kind: object.kind.clone(),
            namespace: object.metadata.namespace.clone(),
            name: object.metadata.name.clone(),
        }
    }

    /// An identity from its parts.
    pub fn new(api_version: &str, kind: &str, namespace: &str, name: &str) -> Self {
        ObjectId {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// `Kind namespace/name`, or `Kind name` for a cluster-scoped object (the apiVersion is left
/// out: reports read better, and two kinds of one name in one run are rare).
impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Whether `object`'s name was made from its `generateName`: the name is the prefix followed by
/// the server's five random characters (a name given explicitly that happens to look so counts
/// too).
pub(crate) fn is_generated(object: &Object) -> bool {
    let meta = &object.metadata;
    !meta.generate_name.is_empty()
        && meta.name.len() == meta.generate_name.len() + 5
        && meta.name.starts_with(&meta.generate_name)
}

/// The canonical text of a JSON value: keys sorted at every level, no whitespace. What
/// [`EndState::digest`] hashes and the order of generated objects sorts by; independent of
/// serde_json's `preserve_order` feature.
pub(crate) fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// One JSON pointer segment escaped (RFC 6901: `~` as `~0`, `/` as `~1`).
pub(crate) fn escape_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// A value as a difference shows it: `absent`, `present` for a masked value, or compact JSON
/// cut at 60 characters.
pub(crate) fn show_value(value: Option<&Value>) -> String {
    const MAX: usize = 60;
    match value {
        None => "absent".to_string(),
        Some(Value::String(s)) if s == MASKED => "present".to_string(),
        Some(value) => {
            let text = value.to_string();
            if text.chars().count() > MAX {
                let cut: String = text.chars().take(MAX).collect();
                format!("{cut}…")
            } else {
                text
            }
        }
    }
}
