//! [`EndState`]: the objects of a cluster at one point (usually the end of a run), masked, by
//! identity; its digest and its comparison with a reference.

use std::collections::BTreeMap;

use serde_json::Value;

use super::diff::{self, StateDiff};
use super::mask::Mask;
use super::{GENERATED, ObjectId, canonical, is_generated};
use crate::object::Object;
use crate::server::ApiServer;

/// Every stored object of the chosen kinds as masked canonical JSON, by [`ObjectId`].
///
/// Two runs of one workload that end alike have equal end states under [`Mask::default`], even
/// when their schedules created the objects in other orders (other uids, resourceVersions,
/// timestamps and generated suffixes). [`EndState::diff`] says where two states differ (Sieve's
/// end-state oracle); [`EndState::digest`] identifies a state in a set of converged states
/// (Kamera's deduplication).
///
/// Objects with generated names (with [`Mask::generated_names`]) are identified as
/// `generateName#i`: `i` numbers the objects of one kind, namespace and generateName in the
/// order of their masked canonical JSON, so the numbering depends neither on the random suffixes
/// nor on the order of creation. Interchangeable objects (equal once masked) may swap numbers,
/// which changes nothing. References to a generated name are masked in ownerReferences only;
/// another field that holds one (a pod's `spec.volumes[].secret.secretName`, say) needs a rule of
/// its own ([`Mask::field`]).
///
/// ```
/// use apiserver_fake::{ApiServer, EndState, Mask, Object};
/// use sim_core::{Outcome, Simulation};
///
/// let outcome = Simulation::default().run(3, || {
///     let server = ApiServer::default();
///     let mut pod = Object::new("v1", "Pod", "default", "");
///     pod.metadata.generate_name = "web-".into();
///     server.create(pod).unwrap();
///     server.create(Object::new("v1", "ConfigMap", "default", "a").with_label("app", "web")).unwrap();
///     let state = EndState::capture(&server, &[("v1", "Pod"), ("v1", "ConfigMap")], &Mask::default());
///     let names: Vec<String> = state.ids().map(|id| id.to_string()).collect();
///     assert_eq!(names, ["ConfigMap default/a", "Pod default/web-#0"]);
///     let everything = EndState::capture(&server, &[], &Mask::default());
///     assert!(everything.len() > state.len(), "the system namespaces too");
/// });
/// assert_eq!(outcome, Outcome::Completed);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndState {
    objects: BTreeMap<ObjectId, Value>,
}

impl EndState {
    /// The objects `server` stores now, of `kinds` (`(apiVersion, kind)` pairs; empty: every
    /// kind) less the kinds `mask` ignores, each masked by `mask`. An observer: call it from a
    /// task or after the workload, like [`ApiServer::peek`]; it leaves no trace event.
    pub fn capture(server: &ApiServer, kinds: &[(&str, &str)], mask: &Mask) -> EndState {
        let chosen = |object: &Object| {
            (kinds.is_empty()
                || kinds.iter().any(|(av, kind)| *av == object.api_version && *kind == object.kind))
                && !mask.ignores(&object.kind)
        };
        let objects: Vec<Object> = server.objects().into_iter().filter(chosen).collect();
        EndState::from_objects(&objects, mask)
    }

    /// The end state of `objects` (e.g. a LIST's items, or objects from manifests), masked.
    /// Two objects of one identity: the later wins.
    pub fn from_objects(objects: &[Object], mask: &Mask) -> EndState {
        // Generated names, by (kind, namespace, name) → generateName, for the ownerReferences
        // that point at them.
        let generated: BTreeMap<(&str, &str, &str), &str> = objects
            .iter()
            .filter(|o| mask.masks_generated_names() && is_generated(o))
            .map(|o| {
                let meta = &o.metadata;
                (
                    (o.kind.as_str(), meta.namespace.as_str(), meta.name.as_str()),
                    &*meta.generate_name,
                )
            })
            .collect();
        let mut state = EndState::default();
        // (apiVersion, kind, namespace, generateName) → the masked objects with their canonical
        // text.
        let mut groups: BTreeMap<ObjectId, Vec<(String, Value)>> = BTreeMap::new();
        for object in objects {
            let mut value = mask.apply(object);
            let namespace = object.metadata.namespace.as_str();
            if let Some(refs) =
                value.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut)
            {
                for (owner, reference) in object.metadata.owner_references.iter().zip(refs) {
                    let key = (owner.kind.as_str(), namespace, owner.name.as_str());
                    // A namespaced dependent's owner is in its namespace; a cluster-scoped
                    // owner has none.
                    let prefix = generated
                        .get(&key)
                        .or_else(|| generated.get(&(owner.kind.as_str(), "", owner.name.as_str())));
                    if let Some(prefix) = prefix {
                        reference["name"] = Value::String(format!("{prefix}{GENERATED}"));
                    }
                }
            }
            if generated.contains_key(&(object.kind.as_str(), namespace, &object.metadata.name)) {
                let prefix = &object.metadata.generate_name;
                value["metadata"]["name"] = Value::String(format!("{prefix}{GENERATED}"));
                let mut text = String::new();
                canonical(&value, &mut text);
                let group = ObjectId::new(&object.api_version, &object.kind, namespace, prefix);
                groups.entry(group).or_default().push((text, value));
            } else {
                state.objects.insert(ObjectId::of(object), value);
            }
        }
        for (group, mut members) in groups {
            members.sort_by(|a, b| a.0.cmp(&b.0));
            for (index, (_, value)) in members.into_iter().enumerate() {
                let name = format!("{}#{index}", group.name);
                state.objects.insert(ObjectId { name, ..group.clone() }, value);
            }
        }
        state
    }

    /// How many objects the state holds.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the state holds no object.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The masked object of `id`, if present.
    pub fn get(&self, id: &ObjectId) -> Option<&Value> {
        self.objects.get(id)
    }

    /// The identities, in order.
    pub fn ids(&self) -> impl Iterator<Item = &ObjectId> {
        self.objects.keys()
    }

    /// The masked objects by identity, in order.
    pub fn objects(&self) -> &BTreeMap<ObjectId, Value> {
        &self.objects
    }

    /// How many objects of each `(apiVersion, kind)`.
    pub fn counts(&self) -> BTreeMap<(String, String), usize> {
        let mut counts = BTreeMap::new();
        for id in self.objects.keys() {
            *counts.entry((id.api_version.clone(), id.kind.clone())).or_insert(0) += 1;
        }
        counts
    }

    /// The state's canonical text: one line per object, `apiVersion kind namespace name` then
    /// the masked JSON with sorted keys. What [`EndState::digest`] hashes.
    pub fn canonical(&self) -> String {
        let mut text = String::new();
        for (id, value) in &self.objects {
            for part in [&id.api_version, &id.kind, &id.namespace, &id.name] {
                text.push_str(&Value::String(part.clone()).to_string());
                text.push(' ');
            }
            canonical(value, &mut text);
            text.push('\n');
        }
        text
    }

    /// A stable 64-bit hash of the masked state (FNV-1a over [`EndState::canonical`]): equal
    /// for equal states, in any run, on any machine and build; different states collide only as
    /// 64-bit hashes do. For deduplicating converged states, as Kamera does.
    pub fn digest(&self) -> u64 {
        sim_core::fnv1a(self.canonical().as_bytes())
    }

    /// Where this run's state differs from `reference`'s: objects in only one of them, and per
    /// common object the differing fields (JSON pointers, both values). Empty iff the states
    /// are equal.
    pub fn diff(&self, reference: &EndState) -> StateDiff {
        diff::diff(reference, self)
    }
}
