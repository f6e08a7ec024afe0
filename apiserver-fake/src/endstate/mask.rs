//! [`Mask`]: the fields that differ between equivalent runs and are masked before two end states
//! are compared. Sieve masks uids, resourceVersions, timestamps and generated names (paper
//! §3.6); Kamera masks its own tracking labels before hashing a converged state.

use std::collections::BTreeSet;

use serde_json::Value;

use super::MASKED;
use crate::object::Object;

/// The fields [`Mask::default`] masks in every kind, as JSON pointers (`*` matches any key or
/// array index):
/// - `/metadata/uid`, `/metadata/resourceVersion`, `/metadata/creationTimestamp`: assigned by the
///   server from counters and the virtual clock, so they depend on the schedule;
/// - `/metadata/generation`: counts the spec writes, and a run that wrote the same spec twice (a
///   retry, a conflict) ends in the same state with another generation. Masked by default; take
///   it out with [`Mask::without_field`] when the number of spec writes matters. (A status'
///   `observedGeneration` is the controller's own field and is not masked by default.)
/// - `/metadata/managedFields`, if present (kdst does not keep it; a manifest's is dropped);
/// - `/metadata/ownerReferences/*/uid`: the owner's uid; its kind and name still compare;
/// - `/metadata/deletionTimestamp`: replaced by the marker, so a deleting object still differs
///   from a live one while the time of the deletion does not matter.
pub const DEFAULT_FIELDS: [&str; 7] = [
    "/metadata/uid",
    "/metadata/resourceVersion",
    "/metadata/creationTimestamp",
    "/metadata/generation",
    "/metadata/managedFields",
    "/metadata/ownerReferences/*/uid",
    "/metadata/deletionTimestamp",
];

/// Which fields are nondeterministic and masked before comparison, and which kinds are left out.
///
/// A masked field present in an object is replaced by the string [`MASKED`]; an absent one stays
/// absent. So presence still compares (`absent` vs `present`), the value does not.
///
/// Rules name a kind by its `kind` alone (`"Secret"`), or `"*"` for every kind, and a field by a
/// JSON pointer (RFC 6901, `~1` for `/` and `~0` for `~` in a key) in which a `*` segment matches
/// every key of an object or every index of an array.
///
/// [`Mask::default`] masks [`DEFAULT_FIELDS`] in every kind and generated names
/// ([`Mask::generated_names`]); [`Mask::none`] masks nothing.
///
/// ```
/// use apiserver_fake::{Mask, Object};
/// use serde_json::json;
///
/// let mask = Mask::default().field("Secret", "/data/tls.key").kind_ignored("Event");
/// let mut secret = Object::new("v1", "Secret", "default", "tls")
///     .with_field("data", json!({ "tls.key": "c2VjcmV0", "tls.crt": "Y2VydA==" }));
/// secret.metadata.uid = "00000000-0000-4000-8000-000000000007".into();
/// let masked = mask.apply(&secret);
/// assert_eq!(masked["data"]["tls.key"], "<masked>");
/// assert_eq!(masked["data"]["tls.crt"], "Y2VydA==");
/// assert_eq!(masked["metadata"]["uid"], "<masked>");
/// assert!(masked["metadata"].get("resourceVersion").is_none(), "absent stays absent");
/// assert!(mask.ignores("Event"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask {
    /// (kind or `*`, the pointer's segments unescaped).
    rules: BTreeSet<(String, Vec<String>)>,
    ignored: BTreeSet<String>,
    generated_names: bool,
}

impl Default for Mask {
    fn default() -> Self {
        let mut mask = Mask::none().generated_names(true);
        for pointer in DEFAULT_FIELDS {
            mask = mask.field("*", pointer);
        }
        mask
    }
}

impl Mask {
    /// A mask that masks nothing and ignores no kind: every field compares (two runs then differ
    /// at least in their uids and resourceVersions).
    pub fn none() -> Self {
        Mask { rules: BTreeSet::new(), ignored: BTreeSet::new(), generated_names: false }
    }

    /// Also masks `pointer` in objects of `kind` (`"*"`: every kind), e.g.
    /// `("Secret", "/data/tls.key")` for a key generated at random.
    ///
    /// # Panics
    /// If `pointer` is not a JSON pointer to a field (it must start with `/`).
    pub fn field(mut self, kind: &str, pointer: &str) -> Self {
        self.rules.insert((kind.to_string(), parse_pointer(pointer)));
        self
    }

    /// No longer masks `pointer` in `kind` (the rule must have been declared with the same kind,
    /// `"*"` for the defaults), e.g. `Mask::default().without_field("*", "/metadata/generation")`.
    ///
    /// # Panics
    /// If `pointer` does not start with `/`.
    pub fn without_field(mut self, kind: &str, pointer: &str) -> Self {
        self.rules.remove(&(kind.to_string(), parse_pointer(pointer)));
        self
    }

    /// Leaves objects of `kind` out of the comparison altogether (e.g. `Event`, `Lease`).
    pub fn kind_ignored(mut self, kind: &str) -> Self {
        self.ignored.insert(kind.to_string());
        self
    }

    /// Whether names made from `generateName` are masked: the random suffix is replaced by
    /// [`GENERATED`](super::GENERATED) in the object's name and in the ownerReferences naming
    /// it, and the object's identity becomes `generateName#i` (see [`super::ObjectId`]).
    pub fn generated_names(mut self, masked: bool) -> Self {
        self.generated_names = masked;
        self
    }

    /// Whether generated names are masked.
    pub fn masks_generated_names(&self) -> bool {
        self.generated_names
    }

    /// Whether objects of `kind` are left out.
    pub fn ignores(&self, kind: &str) -> bool {
        self.ignored.contains(kind)
    }

    /// `object` as JSON ([`Object::to_json`]) with this mask's fields replaced by [`MASKED`].
    /// Generated names are handled by [`super::EndState::capture`], which sees every object.
    pub fn apply(&self, object: &Object) -> Value {
        let mut value = object.to_json();
        self.apply_to(&object.kind, &mut value);
        value
    }

    /// Masks the fields of `kind` in `value`, in place.
    pub(crate) fn apply_to(&self, kind: &str, value: &mut Value) {
        for (rule_kind, segments) in &self.rules {
            if rule_kind == "*" || rule_kind == kind {
                mask_at(value, segments);
            }
        }
    }
}

/// The unescaped segments of a JSON pointer.
fn parse_pointer(pointer: &str) -> Vec<String> {
    let Some(rest) = pointer.strip_prefix('/') else {
        panic!("kdst: Mask: {pointer:?} is not a JSON pointer to a field (start it with `/`)");
    };
    rest.split('/').map(|segment| segment.replace("~1", "/").replace("~0", "~")).collect()
}

/// Replaces what `segments` points to in `value` by [`MASKED`], where present.
fn mask_at(value: &mut Value, segments: &[String]) {
    let Some((first, rest)) = segments.split_first() else {
        *value = Value::String(MASKED.to_string());
        return;
    };
    match value {
        Value::Object(map) if first == "*" => {
            for child in map.values_mut() {
                mask_at(child, rest);
            }
        }
        Value::Object(map) => {
            if let Some(child) = map.get_mut(first) {
                mask_at(child, rest);
            }
        }
        Value::Array(items) if first == "*" => {
            for child in items {
                mask_at(child, rest);
            }
        }
        Value::Array(items) => {
            if let Some(child) = first.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                mask_at(child, rest);
            }
        }
        _ => {}
    }
}
