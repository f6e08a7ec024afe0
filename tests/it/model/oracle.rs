//! The model's oracle: the server's change log replayed after every step and checked against the
//! metadata rules (resourceVersions strictly increase, the store is the replay of the log, an
//! object with finalizers is removed only by the update that removes the last one from a deleting
//! object, deletionTimestamp is never cleared or moved, no finalizer is added to a deleting
//! object except the GC's by a second DELETE, at most one controller reference, generation starts
//! at 1 and changes only with the spec or the start of deletion, no-op writes make no event, a
//! recreated name gets a new uid), and what every watcher received (every change once, in
//! order).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use apiserver_fake::{ApiServer, EventType, FINALIZER_FOREGROUND, FINALIZER_ORPHAN, Object, Watch};
use sim_core::spawn_daemon;

use super::{
    Before, Key, Life, Model, Recorded, check_object, describe, finalizer_set, is_gc_finalizer,
    key_of, user_finalizers,
};

impl Model {
    /// The per-step check: the server's RV never goes back, watchers get increasing RVs, and
    /// every new change in the log obeys the metadata rules; the store equals the replay.
    pub(super) fn check_step(&mut self, server: &ApiServer) -> Result<(), String> {
        let rv = server.resource_version();
        if rv < self.last_rv {
            return Err(format!(
                "the server's resourceVersion went back from {} to {rv}",
                self.last_rv
            ));
        }
        for watcher in &mut self.watchers {
            for (index, (event_type, object)) in
                watcher.events.iter().enumerate().skip(watcher.checked)
            {
                if index < watcher.snapshot.len() {
                    if *event_type != EventType::Added {
                        return Err(format!(
                            "watcher {} got {event_type} {} in its initial snapshot",
                            watcher.name,
                            object.key()
                        ));
                    }
                    continue; // the snapshot's objects keep their own RVs
                }
                let event_rv = object.resource_version();
                if event_rv <= watcher.last {
                    return Err(format!(
                        "watcher {} got {event_type} {} at rv {event_rv} after rv {}: watch events \
                         must come in strictly increasing resourceVersion order",
                        watcher.name,
                        object.key(),
                        watcher.last
                    ));
                }
                watcher.last = event_rv;
            }
            self.stats.watch_events += (watcher.events.len() - watcher.checked) as u64;
            watcher.checked = watcher.events.len();
        }
        if rv == self.last_rv {
            return Ok(());
        }
        let history = server.history();
        let last_rv = self.last_rv;
        let mut previous = last_rv;
        for change in history.iter().filter(|c| c.event.resource_version() > last_rv) {
            let event_rv = change.event.resource_version();
            if event_rv <= previous {
                return Err(format!(
                    "the change log goes from rv {previous} to rv {event_rv}: resourceVersions \
                     must strictly increase"
                ));
            }
            previous = event_rv;
            if change.event.object.kind == "ConfigMap" {
                self.apply(change.event.event_type, change.event.object.clone())?;
            }
        }
        if previous != rv {
            return Err(format!(
                "the server is at rv {rv} but its newest change is at rv {previous}: every write \
                 gets a new resourceVersion and an event"
            ));
        }
        self.last_rv = rv;
        self.compare_store(server)
    }

    /// Replays one change of the log, checking it against the uid's previous state.
    pub(super) fn apply(
        &mut self,
        event_type: EventType,
        object: Rc<Object>,
    ) -> Result<(), String> {
        let rv = object.resource_version();
        let what = describe(&object);
        check_object(&object)?;
        self.committed.insert(rv, (event_type, object.clone()));
        let uid = object.metadata.uid.clone();
        let key = key_of(&object);
        if event_type == EventType::Added {
            if self.lives.contains_key(&uid) {
                return Err(format!(
                    "ADDED {what}: the uid was used before; uids are never reused"
                ));
            }
            if let Some(live) = self.live.get(&key) {
                return Err(format!("ADDED {what} while uid {live} still lives under that name"));
            }
            if object.metadata.generation != 1 {
                return Err(format!("ADDED {what}: generation must start at 1"));
            }
            if object.is_deleting() {
                return Err(format!("ADDED {what}: created with a deletionTimestamp"));
            }
            if !self.ever.insert(key.clone()) {
                self.stats.recreated_names += 1;
            }
            self.live.insert(key, uid.clone());
            self.lives.insert(uid, Life { last: object, at_deletion: None });
            return Ok(());
        }
        if !matches!(event_type, EventType::Modified | EventType::Deleted) {
            return Err(format!("{event_type} {what} in the change log"));
        }
        match self.live.get(&key) {
            Some(live) if *live == uid => {}
            Some(live) => {
                return Err(format!(
                    "{event_type} {what}: uid {live} lives under that name; a live object's uid \
                     never changes"
                ));
            }
            None => return Err(format!("{event_type} {what}: no object lives under that name")),
        }
        let life = self.lives.get_mut(&uid).expect("a live uid has a life");
        let prev = life.last.clone();
        let before = describe(&prev);
        if object.metadata.generation < prev.metadata.generation {
            return Err(format!("{event_type} {what} after {before}: generation decreased"));
        }
        let mut unchanged = (*object).clone();
        unchanged.metadata.resource_version = prev.metadata.resource_version.clone();
        if event_type == EventType::Modified && unchanged == *prev {
            return Err(format!(
                "MODIFIED {what}: nothing changed since {before}; a write whose result is \
                 identical to the stored object is a no-op (no new RV, no event)"
            ));
        }
        let spec_changed = object.spec != prev.spec || object.other != prev.other;
        let deletion_started = !prev.is_deleting() && object.is_deleting();
        if !spec_changed
            && !deletion_started
            && object.metadata.generation != prev.metadata.generation
        {
            return Err(format!(
                "{event_type} {what} after {before}: generation changed although neither the \
                 spec nor deletion did"
            ));
        }
        if object.metadata.creation_timestamp != prev.metadata.creation_timestamp {
            return Err(format!("{event_type} {what} after {before}: creationTimestamp changed"));
        }
        match (prev.metadata.deletion_timestamp, object.metadata.deletion_timestamp) {
            (Some(was), Some(now)) if was != now => {
                return Err(format!("{event_type} {what} after {before}: deletionTimestamp moved"));
            }
            (Some(_), None) => {
                return Err(format!(
                    "{event_type} {what} after {before}: deletionTimestamp cleared"
                ));
            }
            (None, Some(_)) => {
                // Only a DELETE sets it: the generation is bumped and user finalizers stay.
                if object.metadata.generation <= prev.metadata.generation {
                    return Err(format!(
                        "{what} after {before}: generation not bumped when deletionTimestamp was \
                         first set"
                    ));
                }
                if user_finalizers(&object) != user_finalizers(&prev) {
                    return Err(format!(
                        "{what} after {before}: the DELETE that set deletionTimestamp changed the \
                         user finalizers"
                    ));
                }
                life.at_deletion = Some(finalizer_set(&object));
            }
            (Some(_), Some(_)) => {
                let added: Vec<_> =
                    user_finalizers(&object).difference(&user_finalizers(&prev)).cloned().collect();
                if !added.is_empty() {
                    return Err(format!(
                        "{event_type} {what} after {before}: finalizers {added:?} were added to an \
                         object being deleted"
                    ));
                }
                let mut allowed = life.at_deletion.clone().unwrap_or_default();
                allowed.insert(FINALIZER_ORPHAN.to_string());
                allowed.insert(FINALIZER_FOREGROUND.to_string());
                if !finalizer_set(&object).is_subset(&allowed) {
                    return Err(format!(
                        "{event_type} {what}: finalizers beyond those at deletion ({:?}) and the \
                         two GC finalizers",
                        life.at_deletion
                    ));
                }
                let gc = |o: &Object| finalizer_set(o).into_iter().filter(|f| is_gc_finalizer(f));
                if !gc(&object).eq(gc(&prev)) {
                    self.stats.gc_finalizers_changed_while_deleting += 1;
                }
            }
            (None, None) => {}
        }
        if event_type == EventType::Modified {
            if object.is_deleting() && object.metadata.finalizers.is_empty() {
                return Err(format!(
                    "MODIFIED {what}: a deleting object without finalizers was kept; the write \
                     that leaves finalizers empty removes it (DELETED)"
                ));
            }
            life.last = object;
            return Ok(());
        }
        // DELETED: the object is really removed. Upstream never persists the write that
        // removes it (an update emptying the finalizers: `errEmptiedFinalizers`; a DELETE
        // stripping the GC finalizers: `errDeleteNow`): it deletes the stored object, and the
        // event carries that last stored state stamped with the deletion's RV.
        if unchanged != *prev {
            return Err(format!(
                "DELETED {what}: not the last stored state {before} stamped with the deletion's \
                 resourceVersion"
            ));
        }
        if !user_finalizers(&prev).is_empty() {
            // Only the update that removes the last finalizer of a deleting object removes it.
            if !prev.is_deleting() {
                return Err(format!(
                    "DELETED {what}: an object with finalizers was removed at once instead of \
                     getting a deletionTimestamp"
                ));
            }
            self.stats.removed_by_last_finalizer += 1;
        }
        life.last = object;
        self.live.remove(&key);
        Ok(())
    }

    /// The store holds exactly the live states of the replay.
    fn compare_store(&self, server: &ApiServer) -> Result<(), String> {
        let stored: Vec<Object> =
            server.objects().into_iter().filter(|o| o.kind == "ConfigMap").collect();
        for object in &stored {
            check_object(object)?;
            match self.live.get(&key_of(object)) {
                Some(uid) if *uid == object.metadata.uid => {}
                other => {
                    return Err(format!(
                        "stored {} but the change log says uid {other:?} lives there",
                        describe(object)
                    ));
                }
            }
            if *self.lives[&object.metadata.uid].last != *object {
                return Err(format!(
                    "stored {} differs from the last change of its uid",
                    describe(object)
                ));
            }
        }
        if stored.len() != self.live.len() {
            return Err(format!(
                "{} ConfigMaps stored, the change log has {} live",
                stored.len(),
                self.live.len()
            ));
        }
        Ok(())
    }

    /// The uid's latest state committed before `rv`.
    pub(super) fn state_before(&self, uid: &str, rv: u64) -> Option<Rc<Object>> {
        self.committed
            .range(..rv)
            .rev()
            .find(|(_, (_, o))| o.metadata.uid == uid)
            .map(|(_, (_, o))| o.clone())
    }

    /// Whether `object` is upstream's answer to an update that removed the last finalizer of a
    /// deleting object: the written object (finalizers empty, never stored) at the RV of the
    /// last stored state, which a DELETED event after `before` then removed.
    pub(super) fn is_emptying_update_answer(&self, object: &Object, before: Before) -> bool {
        let uid = &object.metadata.uid;
        object.is_deleting()
            && object.metadata.finalizers.is_empty()
            && self
                .committed
                .range(before.rv + 1..)
                .find(|(_, (t, o))| *t == EventType::Deleted && o.metadata.uid == *uid)
                .and_then(|(deleted, _)| self.state_before(uid, *deleted))
                .is_some_and(|last| {
                    last.metadata.resource_version == object.metadata.resource_version
                })
    }

    /// Where `uid` changed after `rv`, up to `until`.
    pub(super) fn changed_between(&self, uid: &str, rv: u64, until: u64) -> Option<u64> {
        if until <= rv {
            return None;
        }
        self.committed
            .range(rv + 1..=until)
            .find(|(_, (_, o))| o.metadata.uid == uid)
            .map(|(rv, _)| *rv)
    }

    /// The live ConfigMaps (in `namespace`, or all) right after `rv`, by key.
    pub(super) fn snapshot_at(&self, rv: u64, namespace: Option<&str>) -> Vec<Object> {
        let mut objects: BTreeMap<Key, Rc<Object>> = BTreeMap::new();
        for (event_type, object) in self.committed.range(..=rv).map(|(_, change)| change) {
            if namespace.is_some_and(|ns| object.metadata.namespace != ns) {
                continue;
            }
            if *event_type == EventType::Deleted {
                objects.remove(&key_of(object));
            } else {
                objects.insert(key_of(object), object.clone());
            }
        }
        objects.into_values().map(|o| (*o).clone()).collect()
    }

    /// At the end of a run: every watcher got exactly the changes of the log after its start,
    /// in order, once each.
    pub(super) fn final_check(&mut self, server: &ApiServer) -> Result<(), String> {
        self.check_step(server)?;
        let history = server.history();
        for watcher in &self.watchers {
            if history.first().is_some_and(|c| c.event.resource_version() > watcher.from + 1) {
                return Err(format!(
                    "the change log no longer reaches back to watcher {}",
                    watcher.name
                ));
            }
            let snapshot = watcher.snapshot.iter().map(|o| (EventType::Added, o));
            let expected: Vec<(EventType, &Object)> = snapshot
                .chain(
                    history
                        .iter()
                        .filter(|c| c.event.object.kind == "ConfigMap")
                        .filter(|c| c.event.resource_version() > watcher.from)
                        .filter(|c| {
                            watcher
                                .namespace
                                .as_ref()
                                .is_none_or(|ns| c.event.object.metadata.namespace == *ns)
                        })
                        .map(|c| (c.event.event_type, &*c.event.object)),
                )
                .collect();
            let got: Vec<(EventType, &Object)> =
                watcher.events.iter().map(|(t, o)| (*t, &**o)).collect();
            if let Some(index) =
                (0..expected.len().max(got.len())).find(|&i| expected.get(i) != got.get(i))
            {
                let show = |e: Option<&(EventType, &Object)>| {
                    e.map_or("nothing".to_string(), |(t, o)| format!("{t} {}", describe(o)))
                };
                return Err(format!(
                    "watcher {} (from rv {}) got {} events, the change log has {}; event {index}: \
                     expected {}, got {}",
                    watcher.name,
                    watcher.from,
                    got.len(),
                    expected.len(),
                    show(expected.get(index)),
                    show(got.get(index))
                ));
            }
        }
        Ok(())
    }
}

/// Records every event of `watch` into the model, on a daemon task.
pub(super) fn record_watch(
    model: &Rc<RefCell<Model>>,
    name: &'static str,
    watch: Watch,
    namespace: Option<&str>,
    from: u64,
    snapshot: Vec<Object>,
) {
    let index = {
        let mut model = model.borrow_mut();
        model.watchers.push(Recorded {
            name,
            namespace: namespace.map(str::to_string),
            from,
            snapshot,
            events: Vec::new(),
            checked: 0,
            last: from,
        });
        model.watchers.len() - 1
    };
    let model = model.clone();
    spawn_daemon(format!("watcher/{name}"), async move {
        while let Some(event) = watch.next().await {
            model.borrow_mut().watchers[index].events.push((event.event_type, event.object));
        }
    });
}
