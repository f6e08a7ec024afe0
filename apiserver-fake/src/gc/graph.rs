//! The dependency graph and the graph builder: nodes keyed by uid with their owners and
//! dependents, virtual nodes for owners not yet observed, and the processing of each monitor
//! event (ownerReference diffs, transitions into deletion, removal of deleted nodes). Mirrors
//! upstream `pkg/controller/garbagecollector/graph.go` (`node`, `objectReference`) and
//! `graph_builder.go` (`processGraphChanges`, `addDependentToOwners`,
//! `removeDependentFromOwners`, `processTransitions`, `referencesDiffs`,
//! `addUnblockedOwnersToDeleteQueue`, `enqueueVirtualDeleteEvent`).

use std::cell::{Ref, RefMut};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::rc::Rc;

use super::Shared;
use crate::object::{FINALIZER_FOREGROUND, FINALIZER_ORPHAN, Object, OwnerReference};

/// `objectReference`: an object's coordinates.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Identity {
    /// `apiVersion`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// uid.
    pub uid: String,
}

impl Identity {
    fn of(object: &Object) -> Self {
        Identity {
            api_version: object.api_version.clone(),
            kind: object.kind.clone(),
            namespace: object.metadata.namespace.clone(),
            name: object.metadata.name.clone(),
            uid: object.metadata.uid.clone(),
        }
    }

    pub(super) fn of_owner(reference: &OwnerReference, namespace: &str) -> Self {
        Identity {
            api_version: reference.api_version.clone(),
            kind: reference.kind.clone(),
            namespace: namespace.to_string(),
            name: reference.name.clone(),
            uid: reference.uid.clone(),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns =
            if self.namespace.is_empty() { String::new() } else { format!("{}/", self.namespace) };
        write!(f, "{} {ns}{}", self.kind, self.name)
    }
}

/// A node of the dependency graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Coordinates (for a virtual node: as its first dependent names it).
    pub identity: Identity,
    /// Its ownerReferences as last observed.
    pub owners: Vec<OwnerReference>,
    /// uids of the nodes that name this one as an owner.
    pub dependents: BTreeSet<String>,
    /// deletionTimestamp observed.
    pub being_deleted: bool,
    /// Being deleted with `foregroundDeletion`: waits for blocking dependents.
    pub deleting_dependents: bool,
    /// Known only from a dependent's ownerReference, not (yet) observed.
    pub virtual_node: bool,
    /// Observed through an informer.
    pub observed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ChangeType {
    Add,
    Update,
    Delete,
}

pub(super) struct GraphChange {
    pub(super) change: ChangeType,
    pub(super) object: Rc<Object>,
    pub(super) old: Option<Rc<Object>>,
    pub(super) virtual_event: bool,
}

impl Shared {
    /// The graph, for a step that reads it.
    pub(super) fn nodes(&self) -> Ref<'_, BTreeMap<String, Node>> {
        self.resource.read();
        self.nodes.borrow()
    }

    /// The graph, for a step that changes it.
    fn nodes_mut(&self) -> RefMut<'_, BTreeMap<String, Node>> {
        self.resource.write();
        self.nodes.borrow_mut()
    }

    pub(super) fn node(&self, uid: &str) -> Option<Node> {
        self.nodes().get(uid).cloned()
    }

    fn with_node<R>(&self, uid: &str, f: impl FnOnce(&mut Node) -> R) -> Option<R> {
        self.nodes_mut().get_mut(uid).map(f)
    }

    /// `processGraphChanges` for one event.
    pub(super) fn process_graph_change(&self, event: GraphChange) {
        let object = &event.object;
        let uid = object.metadata.uid.clone();
        let existing = self.node(&uid);
        if let Some(node) = &existing
            && !event.virtual_event
            && !node.observed
        {
            let observed = Identity::of(object);
            if observed != node.identity {
                // Dependents that named the owner by other coordinates may be invalid.
                for dependent in &node.dependents {
                    self.attempt_to_delete.add(self.item(dependent.clone()));
                }
                self.with_node(&uid, |n| n.identity = observed);
            }
            self.with_node(&uid, |n| n.observed = true);
        }
        match (event.change, existing) {
            (ChangeType::Add | ChangeType::Update, None) => {
                let being_deleted = object.is_deleting();
                let node = Node {
                    identity: Identity::of(object),
                    owners: object.metadata.owner_references.clone(),
                    dependents: BTreeSet::new(),
                    being_deleted,
                    deleting_dependents: being_deleted
                        && object.has_finalizer(FINALIZER_FOREGROUND),
                    virtual_node: false,
                    observed: true,
                };
                let owners = node.owners.clone();
                self.nodes_mut().insert(uid.clone(), node);
                self.add_dependent_to_owners(&uid, &owners);
                self.process_transitions(event.old.as_deref(), object, &uid);
            }
            (ChangeType::Add | ChangeType::Update, Some(node)) => {
                let new_refs = &object.metadata.owner_references;
                let added: Vec<OwnerReference> = new_refs
                    .iter()
                    .filter(|r| !node.owners.iter().any(|o| o.uid == r.uid))
                    .cloned()
                    .collect();
                let removed: Vec<OwnerReference> = node
                    .owners
                    .iter()
                    .filter(|o| !new_refs.iter().any(|r| r.uid == o.uid))
                    .cloned()
                    .collect();
                let changed: Vec<(OwnerReference, OwnerReference)> = node
                    .owners
                    .iter()
                    .filter_map(|o| {
                        new_refs
                            .iter()
                            .find(|r| r.uid == o.uid && *r != o)
                            .map(|r| (o.clone(), r.clone()))
                    })
                    .collect();
                if !added.is_empty() || !removed.is_empty() || !changed.is_empty() {
                    // `addUnblockedOwnersToDeleteQueue`.
                    for reference in &removed {
                        if reference.blocks() && self.node(&reference.uid).is_some() {
                            self.attempt_to_delete.add(self.item(reference.uid.clone()));
                        }
                    }
                    for (old, new) in &changed {
                        if old.blocks() && !new.blocks() && self.node(&new.uid).is_some() {
                            self.attempt_to_delete.add(self.item(new.uid.clone()));
                        }
                    }
                    self.with_node(&uid, |n| n.owners = new_refs.clone());
                    self.add_dependent_to_owners(&uid, &added);
                    self.remove_dependent_from_owners(&uid, &removed);
                }
                if object.is_deleting() {
                    self.with_node(&uid, |n| n.being_deleted = true);
                }
                self.process_transitions(event.old.as_deref(), object, &uid);
            }
            (ChangeType::Delete, None) => {}
            (ChangeType::Delete, Some(node)) => {
                let deleted = Identity::of(object);
                let mut remove = true;
                if event.virtual_event && node.identity != deleted {
                    // A virtual delete with other coordinates than the node's: keep the node,
                    // collect the dependents that named the deleted coordinates.
                    remove = false;
                    let matching: Vec<String> = node
                        .dependents
                        .iter()
                        .filter(|d| {
                            self.node(d).is_some_and(|dep| {
                                dep.owners.iter().any(|r| {
                                    r.uid == deleted.uid
                                        && r.name == deleted.name
                                        && r.kind == deleted.kind
                                })
                            })
                        })
                        .cloned()
                        .collect();
                    if !matching.is_empty() {
                        self.absent().add(deleted.clone());
                        for dependent in matching {
                            self.attempt_to_delete.add(self.item(dependent));
                        }
                    }
                }
                if remove {
                    self.nodes_mut().remove(&uid);
                    self.remove_dependent_from_owners(&uid, &node.owners);
                    if !node.dependents.is_empty() {
                        self.absent().add(deleted);
                    }
                    for dependent in &node.dependents {
                        self.attempt_to_delete.add(self.item(dependent.clone()));
                    }
                    for owner in &node.owners {
                        if self.node(&owner.uid).is_some_and(|o| o.deleting_dependents) {
                            self.attempt_to_delete.add(self.item(owner.uid.clone()));
                        }
                    }
                }
            }
        }
    }

    /// `addDependentToOwners`: owners not in the graph become virtual nodes, queued to be
    /// verified by a live GET.
    fn add_dependent_to_owners(&self, uid: &str, owners: &[OwnerReference]) {
        let namespace = self.node(uid).map(|n| n.identity.namespace).unwrap_or_default();
        for owner in owners {
            let exists = self.with_node(&owner.uid, |n| {
                n.dependents.insert(uid.to_string());
            });
            if exists.is_none() {
                let mut dependents = BTreeSet::new();
                dependents.insert(uid.to_string());
                self.nodes_mut().insert(
                    owner.uid.clone(),
                    Node {
                        identity: Identity::of_owner(owner, &namespace),
                        owners: Vec::new(),
                        dependents,
                        being_deleted: false,
                        deleting_dependents: false,
                        virtual_node: true,
                        observed: false,
                    },
                );
                self.attempt_to_delete.add(self.item(owner.uid.clone()));
            }
        }
    }

    fn remove_dependent_from_owners(&self, uid: &str, owners: &[OwnerReference]) {
        for owner in owners {
            self.with_node(&owner.uid, |n| n.dependents.remove(uid));
        }
    }

    /// `processTransitions`.
    fn process_transitions(&self, old: Option<&Object>, new: &Object, uid: &str) {
        let starts_with = |finalizer: &str| {
            new.is_deleting()
                && new.has_finalizer(finalizer)
                && old.is_none_or(|old| !old.is_deleting() || !old.has_finalizer(finalizer))
        };
        if starts_with(FINALIZER_ORPHAN) {
            self.attempt_to_orphan.add(self.item(uid.to_string()));
            return;
        }
        if starts_with(FINALIZER_FOREGROUND) {
            let dependents = self.with_node(uid, |n| {
                n.deleting_dependents = true;
                n.dependents.clone()
            });
            for dependent in dependents.unwrap_or_default() {
                self.attempt_to_delete.add(self.item(dependent));
            }
            self.attempt_to_delete.add(self.item(uid.to_string()));
        }
    }

    pub(super) fn enqueue_virtual_delete(&self, identity: &Identity) {
        let mut object =
            Object::new(&identity.api_version, &identity.kind, &identity.namespace, &identity.name);
        object.metadata.uid = identity.uid.clone();
        let _ = self.changes.try_send(GraphChange {
            change: ChangeType::Delete,
            object: Rc::new(object),
            old: None,
            virtual_event: true,
        });
    }
}
