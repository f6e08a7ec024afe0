//! Watches and the watch cache: event types, where a watch starts, each watcher's bounded buffer
//! (a watcher too far behind is closed), BOOKMARKs, closing every watch, and the reads served
//! from the cache: LIST with resourceVersion "0", the state at a past resourceVersion, 410 Gone
//! for a start older than the history. Mirrors upstream `storage/cacher/cacher.go`
//! (`Cacher.Watch`, `Cacher.GetList`, `cacheWatcher.add`) and `storage/cacher/watch_cache.go`
//! (`watchCache.getAllEventsSinceLocked`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Duration;

use sim_core::RngCore;
use sim_core::footprint::Resource;
use sim_core::sync::Notify;

use super::store::{Bucket, Store};
use super::{ApiServer, ListOptions, ObjectList, ReadAt};
use crate::error::ApiError;
use crate::fields::Filter;
use crate::kinds::KindId;
use crate::object::Object;

/// The type of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    /// An object was created (or is in the initial snapshot).
    Added,
    /// An object was changed.
    Modified,
    /// An object was removed; the event carries its last state.
    Deleted,
    /// Progress: no change, only the resourceVersion the watch has reached.
    Bookmark,
    /// The watch failed (e.g. 410 Gone); the stream ends after it.
    Error,
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
            EventType::Bookmark => "BOOKMARK",
            EventType::Error => "ERROR",
        })
    }
}

/// One watch event.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    /// What happened.
    pub event_type: EventType,
    /// The object after the change (the last state for DELETED; only a resourceVersion for
    /// BOOKMARK; empty for ERROR).
    pub object: Rc<Object>,
    /// The error of an ERROR event.
    pub error: Option<ApiError>,
}

impl WatchEvent {
    /// The event's resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.object.resource_version()
    }
}

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchStart {
    /// resourceVersion unset: a consistent snapshot as synthetic ADDED events (ordered by key),
    /// then every later change.
    Now,
    /// resourceVersion="0": the same from any state the watch cache has, which may be up to
    /// [`ServerConfig::stale_reads`](super::ServerConfig::stale_reads) resourceVersions old;
    /// events after it follow.
    Any,
    /// resourceVersion=N: every change after N, or 410 Gone if N is older than the history.
    From(u64),
}

/// One entry of the server's change log.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The kind of the changed object.
    pub kind: KindId,
    /// The event watchers got.
    pub event: WatchEvent,
    /// The stored state before the change (`None` for a create).
    pub previous: Option<Rc<Object>>,
}

pub(super) struct Watcher {
    pub(super) kind: KindId,
    pub(super) namespace: Option<String>,
    pub(super) bookmarks: bool,
    pub(super) queue: RefCell<VecDeque<WatchEvent>>,
    pub(super) closed: Cell<bool>,
    pub(super) notify: Notify,
    /// What steps that fill or drain the watch touch.
    pub(super) resource: Resource,
    /// The last resourceVersion delivered, for the ordering check.
    pub(super) last: Cell<u64>,
    /// The object whose events this watch leaves out (it goes through a lagging view:
    /// [`super::lagging`]), by namespace and name.
    pub(super) frozen: RefCell<Option<(String, String)>>,
    /// The label and field selectors, if any ([`filtered`]).
    pub(super) filter: Option<Filter>,
}

/// `event` as a watch with `filter` sees it (`cacheWatcher.convertToWatchEvent`): an object that
/// starts to pass is ADDED, one that stops passing is DELETED (with its previous state at the
/// event's resourceVersion), one that passes neither before nor after is not sent.
pub(super) fn filtered(
    filter: &Filter,
    event: &WatchEvent,
    previous: Option<&Rc<Object>>,
) -> Option<WatchEvent> {
    let now = filter.matches(&event.object);
    let before = previous.is_some_and(|p| filter.matches(p));
    match event.event_type {
        EventType::Deleted => (now || before).then(|| event.clone()),
        _ if now && before => Some(event.clone()),
        _ if now => Some(WatchEvent { event_type: EventType::Added, ..event.clone() }),
        _ if before => {
            let mut last = (**previous.expect("passed before")).clone();
            last.metadata.resource_version = event.object.metadata.resource_version.clone();
            Some(WatchEvent { event_type: EventType::Deleted, object: Rc::new(last), error: None })
        }
        _ => None,
    }
}

impl Watcher {
    pub(super) fn push(&self, event: WatchEvent, buffer_max: usize) {
        self.resource.write();
        if self.closed.get() {
            return;
        }
        if self.queue.borrow().len() >= buffer_max {
            // The watch cache's "Forcing watcher close due to unresponsiveness".
            self.closed.set(true);
            sim_core::event(format!(
                "API closed an unresponsive watch ({} events buffered)",
                buffer_max
            ));
        } else {
            self.queue.borrow_mut().push_back(event);
        }
        self.notify.notify_one();
    }

    pub(super) fn close(&self) {
        self.resource.write();
        self.closed.set(true);
        self.notify.notify_one();
    }
}

/// A watch stream from the server. Dropping it stops the watch.
pub struct Watch {
    watcher: Rc<Watcher>,
    initial: usize,
    started_at: u64,
}

impl Watch {
    /// How many synthetic ADDED events (the initial state) the stream starts with.
    pub fn initial_events(&self) -> usize {
        self.initial
    }

    /// The resourceVersion the watch's initial state (or replay) reaches.
    pub fn started_at(&self) -> u64 {
        self.started_at
    }

    /// The next event, waiting for one; `None` once the watch is closed (stopped, dropped by a
    /// fault, or closed by the server) and drained.
    pub async fn next(&self) -> Option<WatchEvent> {
        loop {
            self.watcher.resource.write();
            if let Some(event) = self.watcher.queue.borrow_mut().pop_front() {
                // Read from the watch connection (`sim_core::race::io_read`).
                sim_core::race::io_read();
                return Some(event);
            }
            if self.watcher.closed.get() {
                return None;
            }
            self.watcher.notify.notified().await;
        }
    }

    /// The next event if one is buffered.
    pub fn try_next(&self) -> Option<WatchEvent> {
        self.watcher.resource.write();
        let event = self.watcher.queue.borrow_mut().pop_front();
        if event.is_some() {
            sim_core::race::io_read();
        }
        event
    }

    /// Closes the watch: buffered events are dropped, `next` returns `None`.
    pub fn stop(&self) {
        self.watcher.resource.write();
        self.watcher.queue.borrow_mut().clear();
        self.watcher.close();
    }

    /// Whether the watch is closed.
    pub fn is_closed(&self) -> bool {
        self.watcher.resource.read();
        self.watcher.closed.get()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.watcher.resource.write();
        self.watcher.closed.set(true);
    }
}

impl ApiServer {
    /// LIST with resourceVersion "0" (or a minimum): served from the watch cache, which may be
    /// up to [`ServerConfig::stale_reads`](super::ServerConfig::stale_reads) resourceVersions
    /// old but not older than `at_least`. client-go's reflector lists this way.
    pub fn list_from_cache(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        at_least: u64,
    ) -> Result<ObjectList, ApiError> {
        let options = ListOptions { read_at: ReadAt::Cache(at_least), ..ListOptions::default() };
        Ok(self.list_with(api_version, kind, namespace, &options)?.list)
    }

    /// WATCH one kind, in one namespace or (`None`) all. A start older than the retained
    /// history yields a stream whose only event is ERROR 410 Gone, as the watch cache does.
    pub fn watch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        start: WatchStart,
        bookmarks: bool,
    ) -> Result<Watch, ApiError> {
        self.watch_with(api_version, kind, namespace, start, bookmarks, &Filter::everything())
    }

    /// WATCH with label and field selectors: an object that starts to pass is ADDED, one that
    /// stops passing is DELETED (with its last passing state), as the watch cache filters.
    pub fn watch_with(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        start: WatchStart,
        bookmarks: bool,
        filter: &Filter,
    ) -> Result<Watch, ApiError> {
        let filter = (!filter.is_empty()).then(|| filter.clone());
        let mut store = self.write_store();
        let (id, info) = store.kind(api_version, kind)?;
        let namespace = namespace.filter(|_| info.namespaced).map(str::to_string);
        let watcher = Rc::new(Watcher {
            kind: id,
            namespace: namespace.clone(),
            bookmarks,
            queue: RefCell::new(VecDeque::new()),
            closed: Cell::new(false),
            notify: Notify::named(format!("watch {}", info.qualified_resource())),
            last: Cell::new(0),
            resource: Resource::new(),
            frozen: RefCell::new(None),
            filter: filter.clone(),
        });
        let frozen = store.frozen_for(id);
        let hidden = |object: &Object| {
            frozen.as_ref().is_some_and(|(ns, name, _)| {
                *ns == object.metadata.namespace && *name == object.metadata.name
            })
        };
        *watcher.frozen.borrow_mut() =
            frozen.as_ref().map(|(ns, name, _)| (ns.clone(), name.clone()));
        let matches = |change: &Change| {
            let sent = change.kind == id
                && namespace
                    .as_ref()
                    .is_none_or(|ns| &change.event.object.metadata.namespace == ns)
                && !hidden(&change.event.object);
            match &filter {
                _ if !sent => None,
                None => Some(change.event.clone()),
                Some(filter) => filtered(filter, &change.event, change.previous.as_ref()),
            }
        };
        let passes = |object: &Object| filter.as_ref().is_none_or(|f| f.matches(object));
        let text;
        let (mut initial_events, mut started_at) = (0, store.rv);
        match start {
            WatchStart::Now | WatchStart::Any => {
                let at = if start == WatchStart::Any { store.stale_point(0) } else { store.rv };
                let mut queue = watcher.queue.borrow_mut();
                for object in store.state_at(id, at).into_values() {
                    if namespace.as_ref().is_none_or(|ns| &object.metadata.namespace == ns)
                        && !hidden(&object)
                        && passes(&object)
                    {
                        queue.push_back(WatchEvent {
                            event_type: EventType::Added,
                            object,
                            error: None,
                        });
                    }
                }
                if let Some((_, _, Some(object))) = &frozen
                    && namespace.as_ref().is_none_or(|ns| &object.metadata.namespace == ns)
                    && passes(object)
                {
                    let object = object.clone();
                    queue.push_back(WatchEvent {
                        event_type: EventType::Added,
                        object,
                        error: None,
                    });
                }
                let initial = queue.len();
                for change in store.history.iter().filter(|c| c.event.resource_version() > at) {
                    queue.extend(matches(change));
                }
                watcher.last.set(store.rv);
                initial_events = initial;
                started_at = at;
                text = if at == store.rv {
                    format!("from now ({initial} initial events)")
                } else {
                    format!(
                        "from the cache at rv {at} ({initial} initial events, then {} changes)",
                        queue.len() - initial
                    )
                };
            }
            WatchStart::From(rv) if rv < store.compacted => {
                let error = ApiError::expired(rv, store.compacted);
                text = format!("from rv {rv} → 410 Gone");
                watcher.queue.borrow_mut().push_back(WatchEvent {
                    event_type: EventType::Error,
                    object: Rc::new(Object::default()),
                    error: Some(error),
                });
                watcher.closed.set(true);
            }
            WatchStart::From(rv) => {
                let mut queue = watcher.queue.borrow_mut();
                for change in store.history.iter().filter(|c| c.event.resource_version() > rv) {
                    queue.extend(matches(change));
                }
                watcher.last.set(store.rv);
                started_at = store.rv;
                text = format!("from rv {rv} ({} replayed events)", queue.len());
            }
        }
        store.watchers.retain(|w| w.strong_count() > 0);
        if !watcher.closed.get() {
            store.watchers.push(Rc::downgrade(&watcher));
        }
        drop(store);
        let scope = namespace.map_or("in all namespaces".to_string(), |ns| format!("in {ns}"));
        let with = filter.map_or(String::new(), |f| format!(" with {f}"));
        sim_core::event(format!("API WATCH {} {scope}{with} {text}", info.qualified_resource()));
        Ok(Watch { watcher, initial: initial_events, started_at })
    }

    /// Sends a BOOKMARK with the current resourceVersion to every watch that asked for
    /// bookmarks (the real server does so about once a minute).
    pub fn send_bookmarks(&self) {
        let store = self.read_store();
        let object = Rc::new(Object {
            metadata: crate::object::ObjectMeta {
                resource_version: store.rv.to_string(),
                ..Default::default()
            },
            ..Object::default()
        });
        for watcher in store.watchers.iter().filter_map(Weak::upgrade) {
            if watcher.bookmarks {
                let event = WatchEvent {
                    event_type: EventType::Bookmark,
                    object: object.clone(),
                    error: None,
                };
                watcher.push(event, store.config.watch_buffer_max);
            }
        }
    }

    /// Starts a daemon task that calls [`ApiServer::send_bookmarks`] every `period`.
    pub fn start_bookmarks(&self, period: Duration) {
        let server = self.clone();
        sim_core::spawn_daemon("apiserver/bookmarks", async move {
            let mut ticker = sim_core::interval(period);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                server.send_bookmarks();
            }
        });
    }

    /// Closes every open watch (a restarted API server): informers must rewatch.
    pub fn close_watches(&self) {
        let watchers: Vec<_> =
            self.read_store().watchers.iter().filter_map(Weak::upgrade).collect();
        for watcher in watchers {
            watcher.close();
        }
        sim_core::event("API closed every watch");
    }
}

impl Store {
    /// A seeded resourceVersion for a read with resourceVersion "0" that must be at least
    /// `at_least`: up to `stale_reads` behind the latest, never before the history.
    pub(super) fn stale_point(&self, at_least: u64) -> u64 {
        let low = self.rv.saturating_sub(self.config.stale_reads).max(self.compacted).max(at_least);
        if low >= self.rv {
            return self.rv;
        }
        let span = self.rv - low + 1;
        low + sim_core::with_stream("apiserver/stale-reads", |rng| rng.next_u64() % span)
    }

    /// The objects of one kind as they were at resourceVersion `at` (which must not be older
    /// than the history), by (namespace, name).
    pub(super) fn state_at(&self, id: KindId, at: u64) -> Bucket {
        let mut state = self.objects.get(&id).cloned().unwrap_or_default();
        for change in self.history.iter().rev() {
            if change.event.resource_version() <= at {
                break;
            }
            if change.kind != id {
                continue;
            }
            let object = &change.event.object;
            let key = (object.metadata.namespace.clone(), object.metadata.name.clone());
            match &change.previous {
                Some(previous) => state.insert(key, previous.clone()),
                None => state.remove(&key),
            };
        }
        state
    }
}
