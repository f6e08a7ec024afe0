//! Lagging views (Sieve's "time travel"): a second API server whose watch cache stopped
//! updating one object, and a process connected to it.
//!
//! In an HA control plane each kube-apiserver has its own watch cache, fed from etcd; one that
//! falls behind serves old state to the informers connected to it. Sieve's stale-state plans
//! freeze one object in such a server right after it saw an event, reconnect a controller to it
//! after the controller has seen a later event (the controller restarts its informers and
//! relists: a stale object and fresh others), and later let it catch up. Here a view belongs to
//! one process ([`sim_core::Process`]): [`ApiServer::freeze_view`] takes the object's state,
//! [`ApiServer::connect_view`] makes the process's cache reads (LIST from the cache, WATCH) go
//! through it, and [`ApiServer::catch_up_view`] delivers the object's current state to the
//! watches that went through it and ends the view. Consistent reads (GET, LIST without a
//! resourceVersion) and writes reach etcd and are never stale, as upstream: a write based on the
//! stale object fails its resourceVersion check.

use std::rc::Rc;

use super::ApiServer;
use super::store::Store;
use super::watch::{EventType, WatchEvent};
use crate::kinds::KindId;
use crate::object::Object;

/// One process's lagging view of one object.
pub(super) struct View {
    process: u32,
    kind: KindId,
    namespace: String,
    name: String,
    /// The frozen state: `None` if the object did not exist then.
    state: Option<Rc<Object>>,
    /// The process reads through the view.
    connected: bool,
}

impl View {
    /// Whether the view hides the current state of `(kind, namespace, name)` from `process`.
    fn covers(&self, process: u32, kind: KindId) -> bool {
        self.connected && self.process == process && self.kind == kind
    }
}

/// The frozen object a watch or list of `kind` by the running task's process must see instead of
/// the current one, if any: `(namespace, name, frozen state)`.
pub(super) type Frozen = (String, String, Option<Rc<Object>>);

impl Store {
    /// The view the running task's process reads `kind` through, if any (cheap when no view
    /// exists).
    pub(super) fn frozen_for(&self, kind: KindId) -> Option<Frozen> {
        if self.views.is_empty() {
            return None;
        }
        let process = sim_core::Process::current()?.id().0;
        let view = self.views.iter().find(|view| view.covers(process, kind))?;
        Some((view.namespace.clone(), view.name.clone(), view.state.clone()))
    }
}

impl ApiServer {
    /// Freezes, for `process`, the view of `object` (of the registered `api_version`/`kind`) at
    /// `state` (`None`: absent). The process still reads the current state until
    /// [`ApiServer::connect_view`]. A second freeze for the same process first ends the first
    /// view as [`ApiServer::catch_up_view`] does, so no watch stays frozen on it.
    pub fn freeze_view(
        &self,
        process: sim_core::ProcessId,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        state: Option<Object>,
    ) {
        let mut store = self.write_store();
        let Ok((id, _)) = store.kind(api_version, kind) else { return };
        let ended = store.end_view(process.0);
        store.views.push(View {
            process: process.0,
            kind: id,
            namespace: namespace.to_string(),
            name: name.to_string(),
            state: state.map(Rc::new),
            connected: false,
        });
        drop(store);
        if let Some(ended) = ended {
            sim_core::event(ended);
        }
    }

    /// Connects `process` to its lagging view: from now on its cache reads of the frozen object
    /// return the frozen state and its watches leave the object's events out.
    pub fn connect_view(&self, process: sim_core::ProcessId) {
        let mut store = self.write_store();
        for view in store.views.iter_mut().filter(|view| view.process == process.0) {
            view.connected = true;
        }
    }

    /// Ends `process`'s lagging view: every watch that went through it gets the object's current
    /// state (ADDED, MODIFIED or DELETED, from the frozen state), and reads are current again.
    pub fn catch_up_view(&self, process: sim_core::ProcessId) {
        let ended = self.write_store().end_view(process.0);
        if let Some(ended) = ended {
            sim_core::event(ended);
        }
    }

    /// Whether `process` has a lagging view (frozen, connected or not).
    pub fn has_view(&self, process: sim_core::ProcessId) -> bool {
        self.read_store().views.iter().any(|view| view.process == process.0)
    }
}

impl Store {
    /// Ends `process`'s view, if it has one: every watch that went through it gets the object's
    /// current state and reads are current again. The trace line to emit, once the store is no
    /// longer borrowed.
    fn end_view(&mut self, process: u32) -> Option<String> {
        let index = self.views.iter().position(|view| view.process == process)?;
        let view = self.views.remove(index);
        let key = (view.namespace.clone(), view.name.clone());
        let current = self.objects.get(&view.kind).and_then(|bucket| bucket.get(&key)).cloned();
        let event = match (&view.state, current) {
            (_, Some(now)) if view.state.is_none() => Some((EventType::Added, now)),
            (_, Some(now)) => Some((EventType::Modified, now)),
            (Some(frozen), None) => Some((EventType::Deleted, frozen.clone())),
            (None, None) => None,
        };
        let buffer_max = self.config.watch_buffer_max;
        for watcher in self.watchers.iter().filter_map(std::rc::Weak::upgrade) {
            let frozen = watcher.frozen.borrow().clone();
            if frozen.as_ref().is_some_and(|(ns, name)| *ns == key.0 && *name == key.1)
                && watcher.kind == view.kind
            {
                *watcher.frozen.borrow_mut() = None;
                if let Some((event_type, object)) = &event {
                    let event =
                        WatchEvent { event_type: *event_type, object: object.clone(), error: None };
                    watcher.push(event, buffer_max);
                }
            }
        }
        let kind = self.registry.info(view.kind).kind.clone();
        Some(format!("API lagging view of {kind} {}/{} catches up", view.namespace, view.name))
    }
}
