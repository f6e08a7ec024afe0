//! The object store: objects by kind, namespace and name, the one global resourceVersion every
//! write takes, the retained change log, and the fan-out of each change to the watchers it
//! matches. Mirrors upstream `registry/generic/registry/store.go` (the `Store` type, over
//! `storage/etcd3/store.go`, where every write takes the next revision) and the dispatch of
//! `storage/cacher/cacher.go` (`Cacher.dispatchEvent`).

use std::cell::{Ref, RefMut};
use std::collections::{BTreeMap, VecDeque};
use std::rc::{Rc, Weak};

use sim_core::footprint::Resource;

use super::watch::{Change, EventType, WatchEvent, Watcher};
use super::{ApiServer, ServerConfig};
use crate::endstate::WriteLog;
use crate::error::ApiError;
use crate::kinds::{KindId, KindInfo, Registry};
use crate::object::Object;

pub(super) type Bucket = BTreeMap<(String, String), Rc<Object>>;

/// The server's state, behind the [`ApiServer`] handles.
pub(super) struct Store {
    pub(super) config: ServerConfig,
    pub(super) registry: Registry,
    pub(super) rv: u64,
    pub(super) uids: u64,
    pub(super) objects: BTreeMap<KindId, Bucket>,
    pub(super) count: usize,
    pub(super) history: VecDeque<Change>,
    /// The newest resourceVersion no longer in `history`.
    pub(super) compacted: u64,
    /// Every write, when [`ServerConfig::update_summary`] is on.
    pub(super) writes: Option<WriteLog>,
    /// Lagging views of processes ([`super::lagging`]).
    pub(super) views: Vec<super::lagging::View>,
    pub(super) watchers: Vec<Weak<Watcher>>,
    /// The server's resource (see [`ApiServer`]).
    pub(super) resource: Resource,
}

impl ApiServer {
    /// The store, for a step that reads it.
    pub(super) fn read_store(&self) -> Ref<'_, Store> {
        self.resource.read();
        self.store.borrow()
    }

    /// The store, for a step that writes it.
    pub(super) fn write_store(&self) -> RefMut<'_, Store> {
        self.resource.write();
        self.store.borrow_mut()
    }
}

impl Store {
    pub(super) fn kind(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<(KindId, KindInfo), ApiError> {
        match self.registry.lookup(api_version, kind) {
            Some(id) => Ok((id, self.registry.info(id).clone())),
            None => Err(ApiError {
                code: 404,
                reason: crate::error::Reason::NotFound,
                message: format!(
                    "the server could not find the requested resource (kind {kind} in {api_version})"
                ),
                cause: None,
                details: None,
            }),
        }
    }

    pub(super) fn find(&self, id: KindId, namespace: &str, name: &str) -> Option<&Rc<Object>> {
        self.objects.get(&id)?.get(crate::pair::pair(&(namespace, name)))
    }

    pub(super) fn namespace(&self, name: &str) -> Option<&Rc<Object>> {
        let id = self.registry.lookup("v1", "Namespace")?;
        self.find(id, "", name)
    }

    /// The part of the server's resource for one object, named by kind and name (whatever the
    /// namespace: a coarser part only makes steps look more dependent). A GET reads it; every
    /// write writes it besides the whole server (`commit`).
    pub(super) fn object_resource(&self, info: &KindInfo, name: &str) -> Resource {
        self.resource.part(&info.api_version).part(&info.kind).part(name)
    }

    /// Stores `object` with the next resourceVersion and tells the watchers.
    pub(super) fn commit(
        &mut self,
        id: KindId,
        event_type: EventType,
        mut object: Object,
    ) -> Object {
        self.object_resource(self.registry.info(id), &object.metadata.name).write();
        self.rv += 1;
        object.metadata.resource_version = self.rv.to_string();
        let key = (object.metadata.namespace.clone(), object.metadata.name.clone());
        let stored = Rc::new(object.clone());
        let bucket = self.objects.entry(id).or_default();
        let previous = if event_type == EventType::Deleted {
            bucket.remove(&key)
        } else {
            bucket.insert(key, stored.clone())
        };
        match (event_type, &previous) {
            (EventType::Deleted, Some(_)) => self.count -= 1,
            (EventType::Added | EventType::Modified, None) => self.count += 1,
            _ => {}
        }
        let event = WatchEvent { event_type, object: stored, error: None };
        let buffer_max = self.config.watch_buffer_max;
        // Only a lagging view hides events from a watch (`super::lagging`); none: no check.
        let views = !self.views.is_empty();
        for watcher in self.watchers.iter().filter_map(Weak::upgrade) {
            let matches = watcher.kind == id
                && watcher.namespace.as_ref().is_none_or(|ns| ns == &object.metadata.namespace);
            let hidden = || {
                watcher.frozen.borrow().as_ref().is_some_and(|(ns, name)| {
                    *ns == object.metadata.namespace && *name == object.metadata.name
                })
            };
            if matches && !(views && hidden()) {
                let sent = match &watcher.filter {
                    None => Some(event.clone()),
                    Some(filter) => super::watch::filtered(filter, &event, previous.as_ref()),
                };
                if let Some(sent) = sent {
                    debug_assert!(watcher.last.get() < self.rv, "watch events in RV order");
                    watcher.last.set(self.rv);
                    watcher.push(sent, buffer_max);
                }
            }
        }
        if let Some(writes) = &mut self.writes {
            writes.record(event_type, &object);
        }
        self.history.push_back(Change { kind: id, event, previous });
        while self.history.len() > self.config.history_max {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.event.resource_version();
            }
        }
        object
    }
}
