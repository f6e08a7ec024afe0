//! Tests: model. A model-based test of the fake API server: random operations from concurrent
//! clients (with and without injected faults), with the rules of
//! `docs/08-fidelity.md` §1 (metadata), §2 (DELETE propagation) and §5 (watches) checked
//! after every step against the server's change log and what every watcher and every call saw.
//! Then controller-runtime's stale-cache rule (Get after Update can return the old world), and
//! informer basics: convergence, cache-before-handlers, rewatch after a dropped watch and relist
//! after 410 Gone with `DeletedFinalStateUnknown`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::{
    Action, ApiError, ApiServer, Client, ClientConfig, Controller, DeleteOptions, Deleted,
    EventType, FINALIZER_FOREGROUND, FINALIZER_ORPHAN, Faults, Informer, InformerConfig, Latency,
    Notification, Object, OwnerReference, Propagation, Reason, Selector, ServerConfig, Watch,
    WatchStart,
};
use serde_json::{Value, json};
use sim_core::{
    EventKind, JoinHandle, Outcome, Simulation, always, random_bool, random_duration, random_range,
    sleep, spawn, spawn_daemon,
};

const MS: Duration = Duration::from_millis(1);
const SEEDS: u64 = 200;
const NAMESPACES: [&str; 2] = ["ns-a", "ns-b"];
/// Few names, so that creates collide and names are deleted and created again.
const NAMES: [&str; 4] = ["cm-0", "cm-1", "cm-2", "cm-3"];
const USER_FINALIZERS: [&str; 2] = ["example.com/f", "example.com/g"];
/// A finalizer only ever added to objects already being deleted: every such write must fail.
const LATE_FINALIZER: &str = "example.com/late";
const CLIENTS: usize = 4;
const OPS_PER_CLIENT: u64 = 16;
/// The operations the model test must execute in total over its seeds.
const OPS_MIN: u64 = 10_000;
/// The annotation a write sets to a unique token: a write carrying one is never a no-op.
const OP_ANNOTATION: &str = "kdst.example/op";

type Key = (String, String);

fn key_of(object: &Object) -> Key {
    (object.metadata.namespace.clone(), object.metadata.name.clone())
}

fn random_key() -> Key {
    (pick(&NAMESPACES).to_string(), pick(&NAMES).to_string())
}

fn pick<T: Clone>(items: &[T]) -> T {
    items[random_range(0..items.len() as u64) as usize].clone()
}

fn is_gc_finalizer(finalizer: &str) -> bool {
    finalizer == FINALIZER_ORPHAN || finalizer == FINALIZER_FOREGROUND
}

fn finalizer_set(object: &Object) -> BTreeSet<String> {
    object.metadata.finalizers.iter().cloned().collect()
}

/// The finalizers that are not the garbage collector's.
fn user_finalizers(object: &Object) -> BTreeSet<String> {
    object.metadata.finalizers.iter().filter(|f| !is_gc_finalizer(f)).cloned().collect()
}

fn describe(object: &Object) -> String {
    format!(
        "{} (uid {}, rv {}, generation {}, deletionTimestamp {:?}, finalizers {:?}, \
         ownerReferences {})",
        object.key(),
        object.metadata.uid,
        object.metadata.resource_version,
        object.metadata.generation,
        object.metadata.deletion_timestamp.map(|t| t.to_string()),
        object.metadata.finalizers,
        object.metadata.owner_references.len()
    )
}

/// A made-up owner that `controller=true` points at (validation only needs the fields set).
fn ghost_controller(name: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_string(),
        kind: "ConfigMap".to_string(),
        name: name.to_string(),
        uid: format!("ghost-{name}"),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Rules every stored state must obey, whatever wrote it.
fn check_object(object: &Object) -> Result<(), String> {
    let controllers = object.metadata.owner_references.iter().filter(|r| r.is_controller()).count();
    if controllers > 1 {
        return Err(format!(
            "{} is stored with {controllers} controller references",
            describe(object)
        ));
    }
    if object.has_finalizer(FINALIZER_ORPHAN) && object.has_finalizer(FINALIZER_FOREGROUND) {
        return Err(format!(
            "{} is stored with both orphan and foregroundDeletion",
            describe(object)
        ));
    }
    if object.metadata.generation < 1 {
        return Err(format!("{} is stored with generation < 1", describe(object)));
    }
    if object.metadata.uid.is_empty() || object.metadata.creation_timestamp.is_none() {
        return Err(format!("{} is stored without uid or creationTimestamp", describe(object)));
    }
    Ok(())
}

/// Spec §2's table: the finalizers a DELETE with `options` leaves on `object` (a ConfigMap,
/// whose default propagation is Background). Empty means the object is removed at once.
fn expected_finalizers(object: &Object, options: &DeleteOptions) -> Vec<String> {
    let first_gc = object.metadata.finalizers.iter().find(|f| is_gc_finalizer(f));
    let orphan = match (options.orphan_dependents, options.propagation_policy) {
        (Some(orphan), _) => orphan,
        (None, Some(policy)) => policy == Propagation::Orphan,
        (None, None) => first_gc.is_some_and(|f| f == FINALIZER_ORPHAN),
    };
    let foreground = match (options.orphan_dependents, options.propagation_policy) {
        (Some(_), _) => false,
        (None, Some(policy)) => policy == Propagation::Foreground,
        (None, None) => first_gc.is_some_and(|f| f == FINALIZER_FOREGROUND),
    };
    let mut finalizers: Vec<String> =
        object.metadata.finalizers.iter().filter(|f| !is_gc_finalizer(f)).cloned().collect();
    if orphan {
        finalizers.push(FINALIZER_ORPHAN.to_string());
    }
    if foreground {
        finalizers.push(FINALIZER_FOREGROUND.to_string());
    }
    let unchanged: BTreeSet<String> = finalizers.iter().cloned().collect();
    if unchanged == finalizer_set(object) { object.metadata.finalizers.clone() } else { finalizers }
}

// ---------------------------------------------------------------------------------------------
// The model: the server's change log replayed, and what the watchers received

/// Counts over a run (summed over seeds), to show the model exercised each rule.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    ops: u64,
    writes_ok: u64,
    noop_writes: u64,
    failed_calls: u64,
    invalid_rejected: u64,
    late_finalizer_rejected: u64,
    deletes_removed: u64,
    deletes_pending: u64,
    removed_by_last_finalizer: u64,
    gc_finalizers_changed_while_deleting: u64,
    recreated_names: u64,
    watch_events: u64,
    /// Updates that removed the last finalizer answered with the written object (upstream).
    emptying_update_answers: u64,
    /// Updates that removed the last finalizer answered with the removed stored state.
    deleted_state_answers: u64,
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.ops += other.ops;
        self.writes_ok += other.writes_ok;
        self.noop_writes += other.noop_writes;
        self.failed_calls += other.failed_calls;
        self.invalid_rejected += other.invalid_rejected;
        self.late_finalizer_rejected += other.late_finalizer_rejected;
        self.deletes_removed += other.deletes_removed;
        self.deletes_pending += other.deletes_pending;
        self.removed_by_last_finalizer += other.removed_by_last_finalizer;
        self.gc_finalizers_changed_while_deleting += other.gc_finalizers_changed_while_deleting;
        self.recreated_names += other.recreated_names;
        self.watch_events += other.watch_events;
        self.emptying_update_answers += other.emptying_update_answers;
        self.deleted_state_answers += other.deleted_state_answers;
    }
}

/// One uid's life as the change log tells it.
struct Life {
    last: Rc<Object>,
    /// The finalizers of the first state with deletionTimestamp set.
    at_deletion: Option<BTreeSet<String>>,
}

/// What one watcher received.
struct Recorded {
    name: &'static str,
    namespace: Option<String>,
    /// The watch started after this resourceVersion.
    from: u64,
    /// The synthetic ADDED events it must start with (a watch from "now").
    snapshot: Vec<Object>,
    events: Vec<(EventType, Rc<Object>)>,
    /// How many events the per-step check has looked at, and the last one's RV.
    checked: usize,
    last: u64,
}

/// The server's observable history, replayed from `ApiServer::history` after every step.
#[derive(Default)]
struct Model {
    /// The newest resourceVersion replayed.
    last_rv: u64,
    /// Every ConfigMap change, by resourceVersion.
    committed: BTreeMap<u64, (EventType, Rc<Object>)>,
    lives: BTreeMap<String, Life>,
    /// The uid living under each name now.
    live: BTreeMap<Key, String>,
    /// Every name that ever lived.
    ever: BTreeSet<Key>,
    watchers: Vec<Recorded>,
    /// The fresh resourceVersions writes returned, and the newest one returned so far.
    write_rvs: BTreeSet<u64>,
    max_completed_write: u64,
    stats: Stats,
    /// The first divergence from upstream found (checked after all seeds, so that one does not
    /// hide the other invariants).
    divergence: Option<String>,
}

impl Model {
    /// The per-step check: the server's RV never goes back, watchers get increasing RVs, and
    /// every new change in the log obeys the metadata rules; the store equals the replay.
    fn check_step(&mut self, server: &ApiServer) -> Result<(), String> {
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
    fn apply(&mut self, event_type: EventType, object: Rc<Object>) -> Result<(), String> {
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
        // event carries that last stored state stamped with the deletion's RV (spec §5).
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
    fn state_before(&self, uid: &str, rv: u64) -> Option<Rc<Object>> {
        self.committed
            .range(..rv)
            .rev()
            .find(|(_, (_, o))| o.metadata.uid == uid)
            .map(|(_, (_, o))| o.clone())
    }

    /// Whether `object` is upstream's answer to an update that removed the last finalizer of a
    /// deleting object: the written object (finalizers empty, never stored) at the RV of the
    /// last stored state, which a DELETED event after `before` then removed.
    fn is_emptying_update_answer(&self, object: &Object, before: Before) -> bool {
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
    fn changed_between(&self, uid: &str, rv: u64, until: u64) -> Option<u64> {
        if until <= rv {
            return None;
        }
        self.committed
            .range(rv + 1..=until)
            .find(|(_, (_, o))| o.metadata.uid == uid)
            .map(|(rv, _)| *rv)
    }

    /// The live ConfigMaps (in `namespace`, or all) right after `rv`, by key.
    fn snapshot_at(&self, rv: u64, namespace: Option<&str>) -> Vec<Object> {
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
    fn final_check(&mut self, server: &ApiServer) -> Result<(), String> {
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
fn record_watch(
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

// ---------------------------------------------------------------------------------------------
// The clients: random operations from possibly stale reads

/// The server's RV and the newest RV any write had returned, when a call was sent.
#[derive(Clone, Copy)]
struct Before {
    rv: u64,
    max_write: u64,
}

/// What a successful write must have done.
#[derive(Clone, Copy)]
enum Expect<'a> {
    /// Changed the object (its state carries the token, if given).
    Change(Option<&'a str>),
    /// Anything, a no-op included.
    MaybeNoop,
}

/// One client task: random operations, remembering what it last read of each name.
struct Actor {
    name: String,
    client: Client,
    server: ApiServer,
    model: Rc<RefCell<Model>>,
    seen: BTreeMap<Key, Object>,
    /// Whether the client injects faults (then a 409 may be injected).
    faulty: bool,
    /// Tokens written so far (each makes its write a change).
    tokens: u64,
}

impl Actor {
    async fn run(mut self) {
        for _ in 0..OPS_PER_CLIENT {
            match random_range(0..100) {
                0..18 => self.create().await,
                18..25 => self.get().await,
                25..29 => self.list().await,
                29..45 => self.update().await,
                45..49 => self.update_status().await,
                49..61 => self.patch().await,
                61..79 => self.delete().await,
                79..91 => self.finish_deletion().await,
                _ => self.add_finalizer_while_deleting().await,
            }
            self.model.borrow_mut().stats.ops += 1;
        }
    }

    fn before(&self) -> Before {
        Before {
            rv: self.server.resource_version(),
            max_write: self.model.borrow().max_completed_write,
        }
    }

    fn sync(&self) -> std::cell::RefMut<'_, Model> {
        let mut model = self.model.borrow_mut();
        if let Err(why) = model.check_step(&self.server) {
            panic!("{why}");
        }
        model
    }

    /// A successful write returned a state of the change log, never older than the object's
    /// state when the call was sent. A write that must change the object (a create, a removal,
    /// an update carrying a new token) got a fresh RV: newer than the server's RV when it was
    /// sent (so newer than every write completed before it), returned by no other such write.
    /// Any other write may be a no-op, returning the current state and its RV.
    fn after_write(
        &mut self,
        verb: &str,
        before: Before,
        written: Option<&Object>,
        expect: Expect,
    ) {
        let mut model = self.sync();
        let Some(object) = written else {
            model.stats.failed_calls += 1;
            return;
        };
        let rv = object.resource_version();
        let update = !matches!(verb, "CREATE" | "DELETE");
        match model.committed.get(&rv) {
            Some((EventType::Deleted, committed)) if update && **committed == *object => {
                // An update that removed the object answered with the removed stored state.
                // Upstream (`Store.Update` → `deleteWithoutFinalizers`) answers with the object
                // as written, at the resourceVersion it was written against.
                model.stats.deleted_state_answers += 1;
                let why = format!(
                    "{verb} by {} removed the last finalizer and answered with the removed \
                     stored state {} (as the DELETED event carries it); upstream answers with the \
                     written object (finalizers empty) at the stored object's resourceVersion",
                    self.name,
                    describe(object)
                );
                model.divergence.get_or_insert(why);
                drop(model);
                self.seen.remove(&key_of(object));
                return;
            }
            Some((_, committed)) if **committed == *object => {}
            _ if update && model.is_emptying_update_answer(object, before) => {
                model.stats.emptying_update_answers += 1;
                drop(model);
                self.seen.remove(&key_of(object));
                return;
            }
            Some((_, committed)) => panic!(
                "{verb} by {} returned {} but the change at its rv is {}",
                self.name,
                describe(object),
                describe(committed)
            ),
            None => panic!(
                "{verb} by {} returned {}, an rv no change carries",
                self.name,
                describe(object)
            ),
        }
        if let Some(later) = model.changed_between(&object.metadata.uid, rv, before.rv) {
            panic!(
                "{verb} by {} returned {}, but the object had changed at rv {later} before the \
                 call was sent",
                self.name,
                describe(object)
            );
        }
        match expect {
            Expect::Change(token) => {
                assert!(
                    rv > before.rv && rv > before.max_write,
                    "{verb} by {} changed {} but returned rv {rv}, not newer than the server's rv \
                     {} when it was sent",
                    self.name,
                    describe(object),
                    before.rv
                );
                assert!(
                    model.write_rvs.insert(rv),
                    "{verb} returned rv {rv}, as did another write"
                );
                if let Some(token) = token {
                    assert_eq!(
                        object.metadata.annotations.get(OP_ANNOTATION).map(String::as_str),
                        Some(token),
                        "{verb} by {} returned {}, not the state it wrote",
                        self.name,
                        describe(object)
                    );
                }
                model.stats.writes_ok += 1;
            }
            Expect::MaybeNoop if rv <= before.rv => model.stats.noop_writes += 1,
            Expect::MaybeNoop => model.stats.writes_ok += 1,
        }
        model.max_completed_write = model.max_completed_write.max(rv);
        drop(model);
        self.remember(object);
    }

    /// A read returned a state that was current at some time during the call.
    fn check_read(&self, verb: &str, object: &Object, before: Before) {
        let model = self.sync();
        let rv = object.resource_version();
        match model.committed.get(&rv) {
            Some((event_type, committed))
                if **committed == *object && *event_type != EventType::Deleted => {}
            _ => panic!(
                "{verb} by {} returned {}, a state never stored",
                self.name,
                describe(object)
            ),
        }
        if let Some(later) = model.changed_between(&object.metadata.uid, rv, before.rv) {
            panic!(
                "{verb} by {} returned {}, stale: it had changed at rv {later} before the call",
                self.name,
                describe(object)
            );
        }
    }

    /// A new unique token for [`OP_ANNOTATION`].
    fn token(&mut self) -> String {
        self.tokens += 1;
        format!("{}/{}", self.name, self.tokens)
    }

    fn remember(&mut self, object: &Object) {
        self.seen.insert(key_of(object), object.clone());
    }

    fn after_error(&mut self, key: &Key, error: &ApiError) {
        if error.is_not_found() {
            self.seen.remove(key);
        }
    }

    /// A request with deliberately invalid metadata must be refused (422, or an injected fault).
    fn expect_refused<T>(&mut self, verb: &str, result: &Result<T, ApiError>) {
        match result {
            Ok(_) => panic!("{verb} with invalid metadata by {} succeeded", self.name),
            Err(error) if error.reason == Reason::Invalid => {
                self.model.borrow_mut().stats.invalid_rejected += 1;
            }
            Err(_) => {}
        }
    }

    /// What this client last read of a random name (usually), or a fresh GET.
    async fn read(&mut self) -> Option<Object> {
        let key = random_key();
        match self.seen.get(&key) {
            Some(object) if random_bool(0.8) => Some(object.clone()),
            _ => self.get_key(&key).await,
        }
    }

    async fn get_key(&mut self, key: &Key) -> Option<Object> {
        let before = self.before();
        match self.client.get("v1", "ConfigMap", &key.0, &key.1).await {
            Ok(object) => {
                self.check_read("GET", &object, before);
                self.remember(&object);
                Some(object)
            }
            Err(error) => {
                self.after_error(key, &error);
                None
            }
        }
    }

    fn some_seen(&self) -> Option<Object> {
        let objects: Vec<&Object> = self.seen.values().collect();
        (!objects.is_empty()).then(|| pick(&objects).clone())
    }

    async fn create(&mut self) {
        let (namespace, name) = random_key();
        let mut object = Object::new("v1", "ConfigMap", &namespace, &name)
            .with_label("writer", &self.name)
            .with_field("data", json!({ "value": random_range(0..1000).to_string() }));
        if random_bool(0.4) {
            object = object.with_finalizer(USER_FINALIZERS[0]);
        }
        if random_bool(0.15) {
            object = object.with_finalizer(USER_FINALIZERS[1]);
        }
        if random_bool(0.08) {
            object = object.with_finalizer(pick(&[FINALIZER_ORPHAN, FINALIZER_FOREGROUND]));
        }
        if random_bool(0.35)
            && let Some(owner) = self.some_seen()
        {
            let reference = if random_bool(0.5) {
                OwnerReference::controller_of(&owner)
            } else {
                OwnerReference::to(&owner, Some(random_bool(0.5)))
            };
            object = object.with_owner(reference);
        }
        let invalid = random_bool(0.1);
        if invalid {
            if random_bool(0.7) {
                let first = match self.some_seen() {
                    Some(owner) => OwnerReference::controller_of(&owner),
                    None => ghost_controller("ghost-a"),
                };
                object.metadata.owner_references.retain(|r| !r.is_controller());
                object = object.with_owner(first).with_owner(ghost_controller("ghost-b"));
            } else {
                object.metadata.finalizers.retain(|f| !is_gc_finalizer(f));
                object =
                    object.with_finalizer(FINALIZER_ORPHAN).with_finalizer(FINALIZER_FOREGROUND);
            }
        }
        let before = self.before();
        let result = self.client.create(object).await;
        if invalid {
            self.expect_refused("CREATE", &result);
            if let Err(error) = &result {
                // Validation runs before the name is looked up: never AlreadyExists.
                assert!(
                    matches!(
                        error.reason,
                        Reason::Invalid
                            | Reason::Conflict
                            | Reason::InternalError
                            | Reason::Timeout
                    ),
                    "invalid CREATE of {namespace}/{name}: {error}"
                );
            }
        }
        self.after_write("CREATE", before, result.as_ref().ok(), Expect::Change(None));
    }

    async fn get(&mut self) {
        let key = random_key();
        self.get_key(&key).await;
    }

    async fn list(&mut self) {
        let namespace = if random_bool(0.3) { None } else { Some(pick(&NAMESPACES)) };
        let before = self.before();
        let Ok(list) =
            self.client.list("v1", "ConfigMap", namespace, &Selector::everything()).await
        else {
            self.model.borrow_mut().stats.failed_calls += 1;
            return;
        };
        assert!(
            list.resource_version >= before.rv,
            "LIST returned rv {} older than {}",
            list.resource_version,
            before.rv
        );
        for item in &list.items {
            self.check_read("LIST", item, before);
        }
        let snapshot = self.sync().snapshot_at(list.resource_version, namespace);
        assert!(
            snapshot == list.items,
            "LIST {namespace:?} at rv {} is not the server's state at that rv: got {:?}, the change \
             log says {:?}",
            list.resource_version,
            list.items.iter().map(describe).collect::<Vec<_>>(),
            snapshot.iter().map(describe).collect::<Vec<_>>()
        );
        self.seen.retain(|key, _| namespace.is_some_and(|ns| key.0 != ns));
        for item in &list.items {
            self.remember(item);
        }
    }

    async fn update(&mut self) {
        let Some(mut object) = self.read().await else { return };
        let key = key_of(&object);
        let value = random_range(0..1000).to_string();
        match random_range(0..7) {
            0 => {
                object.metadata.labels.insert("round".to_string(), value);
            }
            1 => {
                object.other.insert("data".to_string(), json!({ "value": value }));
            }
            2 => {
                let finalizer = pick(&USER_FINALIZERS);
                if !object.has_finalizer(finalizer) {
                    object.metadata.finalizers.push(finalizer.to_string());
                }
            }
            3 => {
                let count = object.metadata.finalizers.len() as u64;
                if count > 0 {
                    object.metadata.finalizers.remove(random_range(0..count) as usize);
                }
            }
            4 => object.metadata.finalizers.clear(),
            5 => {
                // A controller reference to another object; a second one is invalid.
                if let Some(owner) = self.some_seen() {
                    object.metadata.owner_references.push(OwnerReference::controller_of(&owner));
                }
            }
            _ => {
                // System fields in the body are the server's: all silently restored.
                object.metadata.deletion_timestamp =
                    pick(&[None, Some(apiserver_fake::Time { nanos: 7 })]);
                object.metadata.generation = 0;
                object.metadata.creation_timestamp = None;
            }
        }
        if random_bool(0.25) {
            object.metadata.resource_version.clear(); // unconditional: built-in kinds allow it
        }
        let token = random_bool(0.7).then(|| self.token());
        if let Some(token) = &token {
            object.metadata.annotations.insert(OP_ANNOTATION.to_string(), token.clone());
        }
        let invalid =
            object.metadata.owner_references.iter().filter(|r| r.is_controller()).count() > 1;
        let before = self.before();
        let result = self.client.update(object).await;
        if invalid {
            self.expect_refused("UPDATE", &result);
        }
        if let Err(error) = &result {
            self.after_error(&key, error);
        }
        let expect = token.as_deref().map_or(Expect::MaybeNoop, |t| Expect::Change(Some(t)));
        self.after_write("UPDATE", before, result.as_ref().ok(), expect);
    }

    async fn update_status(&mut self) {
        let Some(mut object) = self.read().await else { return };
        let key = key_of(&object);
        object.status = json!({ "observed": random_range(0..4) });
        let before = self.before();
        let result = self.client.update_status(object).await;
        if let Err(error) = &result {
            self.after_error(&key, error);
        }
        self.after_write("UPDATE status", before, result.as_ref().ok(), Expect::MaybeNoop);
    }

    async fn patch(&mut self) {
        let Some(seen) = self.read().await else { return };
        let key = key_of(&seen);
        let value = random_range(0..1000).to_string();
        let mut metadata = serde_json::Map::new();
        let mut patch = json!({});
        match random_range(0..5) {
            0 => {
                metadata.insert("labels".into(), json!({ "patched": value }));
            }
            1 => patch["data"] = json!({ "patched": value }),
            2 => {
                let mut finalizers = seen.metadata.finalizers.clone();
                let finalizer = pick(&USER_FINALIZERS).to_string();
                if !finalizers.contains(&finalizer) {
                    finalizers.push(finalizer);
                }
                metadata.insert("finalizers".into(), json!(finalizers));
            }
            3 => {
                let rest: Vec<&String> = seen.metadata.finalizers.iter().skip(1).collect();
                let finalizers =
                    if rest.is_empty() && random_bool(0.5) { Value::Null } else { json!(rest) };
                metadata.insert("finalizers".into(), finalizers);
            }
            _ => {
                let timestamp =
                    if random_bool(0.5) { Value::Null } else { json!("2030-01-01T00:00:00Z") };
                metadata.insert("deletionTimestamp".into(), timestamp);
                metadata.insert("generation".into(), json!(0));
                metadata.insert("creationTimestamp".into(), Value::Null);
            }
        }
        let with_rv = random_bool(0.4);
        if with_rv {
            metadata.insert("resourceVersion".into(), json!(seen.metadata.resource_version));
        }
        let with_uid = random_bool(0.3);
        if with_uid {
            metadata.insert("uid".into(), json!(seen.metadata.uid));
        }
        let token = random_bool(0.7).then(|| self.token());
        if let Some(token) = &token {
            metadata.insert("annotations".into(), json!({ OP_ANNOTATION: token }));
        }
        patch["metadata"] = Value::Object(metadata);
        let before = self.before();
        let result = self.client.patch("v1", "ConfigMap", &key.0, &key.1, &patch).await;
        if let Err(error) = &result {
            // Spec §1: PATCH applies to the stored object; only an RV in it conflicts (a patch has
            // no uid precondition: another uid is 422, the uid being immutable).
            assert!(
                self.faulty || with_rv || !error.is_conflict(),
                "PATCH {patch} of {} without resourceVersion by {}: {error}",
                key.1,
                self.name
            );
            self.after_error(&key, error);
        }
        let expect = token.as_deref().map_or(Expect::MaybeNoop, |t| Expect::Change(Some(t)));
        self.after_write("PATCH", before, result.as_ref().ok(), expect);
    }

    async fn delete(&mut self) {
        let key = random_key();
        let seen = self.seen.get(&key).cloned();
        let mut options = match random_range(0..8) {
            0 | 1 => DeleteOptions::default(),
            2 => DeleteOptions::propagation(Propagation::Foreground),
            3 => DeleteOptions::propagation(Propagation::Background),
            4 => DeleteOptions::propagation(Propagation::Orphan),
            5 => DeleteOptions::orphan_dependents(true),
            6 => DeleteOptions::orphan_dependents(false),
            _ => DeleteOptions {
                propagation_policy: Some(pick(&[
                    Propagation::Foreground,
                    Propagation::Background,
                    Propagation::Orphan,
                ])),
                orphan_dependents: Some(random_bool(0.5)),
                ..DeleteOptions::default()
            },
        };
        let invalid = options.propagation_policy.is_some() && options.orphan_dependents.is_some();
        if random_bool(0.25) {
            options.uid =
                Some(seen.as_ref().map_or("0-stale".to_string(), |o| o.metadata.uid.clone()));
        }
        if random_bool(0.15) {
            options.resource_version = Some(
                seen.as_ref().map_or("1".to_string(), |o| o.metadata.resource_version.clone()),
            );
        }
        let before = self.before();
        let result = self.client.delete("v1", "ConfigMap", &key.0, &key.1, &options).await;
        if invalid {
            self.expect_refused("DELETE with orphanDependents and propagationPolicy", &result);
        }
        let expect = match &result {
            Ok(Deleted::Removed(_)) => Expect::Change(None),
            _ => Expect::MaybeNoop,
        };
        self.after_write("DELETE", before, result.as_ref().ok().map(Deleted::object), expect);
        let deleted = match result {
            Ok(deleted) => deleted,
            Err(error) => {
                self.after_error(&key, &error);
                return;
            }
        };
        let object = deleted.object();
        if let Some(uid) = &options.uid {
            assert_eq!(&object.metadata.uid, uid, "DELETE ignored its uid precondition");
        }
        // The state the DELETE acted on: the uid's previous change if the DELETE wrote the
        // returned state, or that state itself if the DELETE was a no-op. A state newer than the
        // server's RV at send time may be either (another write may have made it meanwhile).
        let rv = object.resource_version();
        let previous = self.model.borrow().state_before(&object.metadata.uid, rv);
        let mut acted_on: Vec<Rc<Object>> = Vec::new();
        if rv > before.rv || deleted.is_removed() {
            acted_on.extend(previous);
        }
        if !deleted.is_removed() {
            acted_on.push(Rc::new(object.clone()));
        }
        let follows_table = |prev: &Object| {
            let expected = expected_finalizers(prev, &options);
            let precondition_held = options
                .resource_version
                .as_ref()
                .is_none_or(|rv| *rv == prev.metadata.resource_version);
            let result_fits = match &deleted {
                Deleted::Removed(_) => expected.is_empty(),
                Deleted::Pending(object) => {
                    !expected.is_empty()
                        && object.is_deleting()
                        && object.metadata.finalizers == expected
                }
            };
            precondition_held && result_fits
        };
        assert!(
            acted_on.iter().any(|prev| follows_table(prev)),
            "DELETE {options:?} by {} returned {:?} {}; spec §2 from the state it acted on ({}) \
             says finalizers {:?}",
            self.name,
            if deleted.is_removed() { "removed" } else { "pending" },
            describe(object),
            acted_on.iter().map(|o| describe(o)).collect::<Vec<_>>().join(" or "),
            acted_on.iter().map(|o| expected_finalizers(o, &options)).collect::<Vec<_>>()
        );
        if deleted.is_removed() {
            self.seen.remove(&key);
            self.model.borrow_mut().stats.deletes_removed += 1;
        } else {
            self.model.borrow_mut().stats.deletes_pending += 1;
        }
    }

    /// An object this client saw being deleted (listing first if it knows none).
    async fn deleting(&mut self) -> Option<Object> {
        if !self.seen.values().any(Object::is_deleting) {
            self.list().await;
        }
        let deleting: Vec<&Object> = self.seen.values().filter(|o| o.is_deleting()).collect();
        (!deleting.is_empty()).then(|| pick(&deleting).clone())
    }

    /// Removes finalizers from a deleting object: removing the last one removes the object.
    async fn finish_deletion(&mut self) {
        let Some(mut object) = self.deleting().await else { return };
        let key = key_of(&object);
        let mut keep: Vec<String> = object.metadata.finalizers.clone();
        if random_bool(0.5) {
            keep.clear();
        } else if let Some(index) = keep.iter().position(|f| !is_gc_finalizer(f)) {
            keep.remove(index);
        }
        let token = self.token();
        let before = self.before();
        let result = if random_bool(0.5) {
            object.metadata.finalizers = keep;
            object.metadata.annotations.insert(OP_ANNOTATION.to_string(), token.clone());
            if random_bool(0.3) {
                object.metadata.resource_version.clear();
            }
            self.client.update(object).await
        } else {
            let finalizers =
                if keep.is_empty() && random_bool(0.5) { Value::Null } else { json!(keep) };
            let annotations = json!({ OP_ANNOTATION: token });
            let patch =
                json!({ "metadata": { "finalizers": finalizers, "annotations": annotations } });
            self.client.patch("v1", "ConfigMap", &key.0, &key.1, &patch).await
        };
        if let Err(error) = &result {
            self.after_error(&key, error);
        }
        let expect = Expect::Change(Some(&token));
        self.after_write("UPDATE finalizers", before, result.as_ref().ok(), expect);
    }

    /// Adding a finalizer to an object being deleted must fail (the uid in the body pins the object).
    async fn add_finalizer_while_deleting(&mut self) {
        let Some(mut object) = self.deleting().await else { return };
        let key = key_of(&object);
        let before = self.before();
        let result = if random_bool(0.5) {
            object.metadata.finalizers.push(LATE_FINALIZER.to_string());
            if random_bool(0.5) {
                object.metadata.resource_version.clear();
            }
            self.client.update(object).await
        } else {
            let mut finalizers = object.metadata.finalizers.clone();
            finalizers.push(LATE_FINALIZER.to_string());
            let patch =
                json!({ "metadata": { "uid": object.metadata.uid, "finalizers": finalizers } });
            self.client.patch("v1", "ConfigMap", &key.0, &key.1, &patch).await
        };
        match &result {
            Ok(object) => panic!(
                "{} added finalizer {LATE_FINALIZER} to an object being deleted: {}",
                self.name,
                describe(object)
            ),
            Err(error) if error.reason == Reason::Invalid => {
                let late = "no new finalizers can be added if the object is being deleted";
                // Or the name now holds another object: a patched uid is immutable.
                let recreated = "metadata.uid";
                assert!(
                    error.message.contains(late) || error.message.contains(recreated),
                    "{error}"
                );
                if error.message.contains(late) {
                    self.model.borrow_mut().stats.late_finalizer_rejected += 1;
                }
            }
            Err(error) => self.after_error(&key, error),
        }
        self.after_write("UPDATE late finalizer", before, None, Expect::MaybeNoop);
    }
}

/// One model run: two namespaces, watchers from the start (all namespaces, one namespace) and
/// one started mid-run from an older RV, four clients, the invariant after every step, and a
/// final task that compares every watcher with the change log.
fn model_setup(seed: u64, model: Rc<RefCell<Model>>) {
    let server = ApiServer::default();
    for namespace in NAMESPACES {
        server.create(Object::new("v1", "Namespace", "", namespace)).expect("a namespace");
    }
    let start = server.resource_version();
    model.borrow_mut().last_rv = start;
    let watch = |namespace: Option<&str>, from: u64| {
        server.watch("v1", "ConfigMap", namespace, WatchStart::From(from), false).expect("a watch")
    };
    record_watch(&model, "all", watch(None, start), None, start, Vec::new());
    record_watch(&model, "ns-a", watch(Some("ns-a"), start), Some("ns-a"), start, Vec::new());
    always("apiserver model invariants", {
        let (model, server) = (model.clone(), server.clone());
        move || model.borrow_mut().check_step(&server)
    });
    let faults = Faults { conflict: 0.05, server_error: 0.05, timeout: 0.02, ..Faults::NONE };
    let mut handles: Vec<JoinHandle<()>> = (0..CLIENTS)
        .map(|i| {
            let name = format!("client-{i}");
            let config = if seed % 2 == 1 {
                ClientConfig::default().with_faults(faults)
            } else {
                ClientConfig::default()
            };
            let actor = Actor {
                client: Client::new(&server, &name, config),
                name: name.clone(),
                server: server.clone(),
                model: model.clone(),
                seen: BTreeMap::new(),
                tokens: 0,
                faulty: seed % 2 == 1,
            };
            spawn(name, actor.run())
        })
        .collect();
    handles.push(spawn("late-watcher", {
        let (model, server) = (model.clone(), server.clone());
        async move {
            sleep(random_duration(Duration::ZERO, 30 * MS)).await;
            let now = server.resource_version();
            let (start, from, snapshot) = if random_bool(0.5) {
                let from = random_range(start..now + 1);
                (WatchStart::From(from), from, Vec::new())
            } else {
                // From "now": a snapshot as ADDED events, then every later change.
                let mut model = model.borrow_mut();
                model.check_step(&server).unwrap_or_else(|why| panic!("{why}"));
                (WatchStart::Now, now, model.snapshot_at(now, None))
            };
            let watch = server.watch("v1", "ConfigMap", None, start, false).expect("a watch");
            record_watch(&model, "late", watch, None, from, snapshot);
        }
    }));
    spawn("final-check", async move {
        for handle in handles {
            handle.await;
        }
        sleep(Duration::from_secs(1)).await;
        if let Err(why) = model.borrow_mut().final_check(&server) {
            panic!("{why}");
        }
    });
}

fn run_model(sim: &mut Simulation, seed: u64) -> (Outcome, Stats, Option<String>) {
    let model = Rc::new(RefCell::new(Model::default()));
    let outcome = sim.run(seed, {
        let model = model.clone();
        move || model_setup(seed, model)
    });
    let model = model.borrow();
    (outcome, model.stats, model.divergence.clone())
}

/// Spec §1, §2, §5 as a model: random CREATE/GET/LIST/UPDATE/UPDATE status/PATCH/DELETE from
/// four concurrent clients (half the seeds with injected conflicts, 500s and timeouts), from
/// stale reads, with user and GC finalizers, owner and controller references, deliberately
/// invalid requests, every DELETE option and preconditions. After every step: resourceVersions
/// strictly increase; the store is the replay of the change log; no object with finalizers is
/// removed except by the update that removes the last one from a deleting object, and a DELETED
/// event carries the last stored state; deletionTimestamp is never cleared or moved; no finalizer
/// is added to a deleting object (except the GC's by a second DELETE); at most one controller
/// reference; generation starts at 1, never decreases, changes only with the spec and is bumped
/// when deletion starts; no-op writes make no event; a live name keeps its uid and a recreated
/// name gets a new one. Each write returns a fresh RV (or, for a no-op, the current state), and
/// an update that removed the object answers with the object as written (upstream
/// `deleteWithoutFinalizers`); each read returns a current state, each LIST the state at its RV;
/// each DELETE follows §2's table; each watcher gets every change once, in order.
#[test]
fn model_random_api_operations_keep_the_server_invariants() {
    let mut sim = Simulation::default();
    let mut total = Stats::default();
    let mut divergence = None;
    for seed in 0..SEEDS {
        let (outcome, stats, found) = run_model(&mut sim, seed);
        assert_eq!(outcome, Outcome::Completed, "seed {seed}: {outcome}");
        total.add(&stats);
        divergence = divergence.or(found.map(|why| format!("seed {seed}: {why}")));
    }
    println!("model over {SEEDS} seeds: {total:?}");
    assert!(total.ops >= OPS_MIN, "only {} operations executed: {total:?}", total.ops);
    for (what, count) in [
        ("successful writes", total.writes_ok),
        ("no-op writes", total.noop_writes),
        ("failed calls", total.failed_calls),
        ("invalid requests refused with 422", total.invalid_rejected),
        ("late finalizers refused with 422", total.late_finalizer_rejected),
        ("DELETEs that removed at once", total.deletes_removed),
        ("DELETEs that left the object deleting", total.deletes_pending),
        ("removals by the write that removed the last finalizer", total.removed_by_last_finalizer),
        ("GC finalizers changed by a second DELETE", total.gc_finalizers_changed_while_deleting),
        ("names recreated", total.recreated_names),
        ("watch events", total.watch_events),
    ] {
        assert!(count > 0, "the model never exercised {what}: {total:?}");
    }
    assert!(
        divergence.is_none(),
        "{} updates that removed the last finalizer answered with the removed stored state \
         instead of the written object; first: {}",
        total.deleted_state_answers,
        divergence.unwrap_or_default()
    );
}

/// Determinism: the same seed gives the same run, byte for byte (same trace hash), whether the
/// `Simulation` is reused or fresh.
#[test]
fn model_runs_are_deterministic() {
    let mut reused = Simulation::default();
    for seed in [0, 1, 7, 42] {
        let mut hashes = Vec::new();
        for sim in [&mut reused, &mut Simulation::default()] {
            for _ in 0..2 {
                let (outcome, stats, _) = run_model(sim, seed);
                assert_eq!(outcome, Outcome::Completed, "seed {seed}: {outcome}");
                hashes.push((sim.trace().hash(), sim.trace().len(), stats.ops));
            }
        }
        assert!(hashes.windows(2).all(|w| w[0] == w[1]), "seed {seed}: {hashes:?}");
    }
}

/// A ConfigMap state for the oracle's self-test.
fn state(
    uid: &str,
    rv: u64,
    generation: i64,
    deletion: Option<i64>,
    finalizers: &[&str],
) -> Object {
    let mut object = Object::new("v1", "ConfigMap", "ns-a", "cm-0");
    let meta = &mut object.metadata;
    meta.uid = uid.to_string();
    meta.resource_version = rv.to_string();
    meta.generation = generation;
    meta.creation_timestamp = Some(apiserver_fake::Time { nanos: 0 });
    meta.deletion_timestamp = deletion.map(|nanos| apiserver_fake::Time { nanos });
    meta.finalizers = finalizers.iter().map(|f| f.to_string()).collect();
    object
}

/// A sequence of changes for the oracle's self-test.
type History = Vec<(EventType, Object)>;

/// Replays `changes` into a fresh model: the first error, if any.
fn replay(changes: History) -> Result<(), String> {
    let mut model = Model::default();
    changes
        .into_iter()
        .try_for_each(|(event_type, object)| model.apply(event_type, Rc::new(object)))
}

/// The model's oracle itself: a legal history passes, and each broken rule of spec §1 is
/// caught (so a passing model run means something).
#[test]
fn model_oracle_accepts_legal_histories_and_catches_each_broken_rule() {
    use EventType::{Added, Deleted, Modified};
    const F: &str = "example.com/f";
    let created = || (Added, state("u1", 1, 1, None, &[F]));
    let marked = || (Modified, state("u1", 2, 2, Some(5), &[F]));
    // Created with a finalizer, deleted (marked), orphan added by a second DELETE, the user
    // finalizer removed, then removed with the last finalizer (the DELETED event carries the last
    // stored state); the name recreated.
    let legal = vec![
        created(),
        marked(),
        (Modified, state("u1", 3, 2, Some(5), &[F, FINALIZER_ORPHAN])),
        (Modified, state("u1", 4, 2, Some(5), &[FINALIZER_ORPHAN])),
        (Deleted, state("u1", 5, 2, Some(5), &[FINALIZER_ORPHAN])),
        (Added, state("u2", 6, 1, None, &[])),
        (Deleted, state("u2", 7, 1, None, &[])),
    ];
    assert_eq!(replay(legal), Ok(()));
    let mut two_controllers = state("u1", 1, 1, None, &[]);
    two_controllers.metadata.owner_references = vec![ghost_controller("a"), ghost_controller("b")];
    let broken: Vec<(&str, History, &str)> = vec![
        (
            "removed at once although it had finalizers",
            vec![created(), (Deleted, state("u1", 2, 1, None, &[F]))],
            "removed at once",
        ),
        (
            "DELETED event not carrying the last stored state",
            vec![created(), marked(), (Deleted, state("u1", 3, 2, Some(5), &[]))],
            "not the last stored state",
        ),
        (
            "deletionTimestamp cleared",
            vec![created(), marked(), (Modified, state("u1", 3, 2, None, &[F]))],
            "deletionTimestamp cleared",
        ),
        (
            "deletionTimestamp moved",
            vec![created(), marked(), (Modified, state("u1", 3, 2, Some(9), &[F]))],
            "deletionTimestamp moved",
        ),
        (
            "finalizer added while deleting",
            vec![created(), marked(), (Modified, state("u1", 3, 2, Some(5), &[F, "x/y"]))],
            "were added to an object being deleted",
        ),
        (
            "deleting object kept without finalizers",
            vec![created(), marked(), (Modified, state("u1", 3, 2, Some(5), &[]))],
            "was kept",
        ),
        (
            "generation not bumped by deletion",
            vec![created(), (Modified, state("u1", 2, 1, Some(5), &[F]))],
            "generation not bumped",
        ),
        (
            "generation decreased",
            vec![created(), marked(), (Modified, state("u1", 3, 1, Some(5), &[]))],
            "generation decreased",
        ),
        ("two controllers", vec![(Added, two_controllers)], "controller references"),
        (
            "uid changed under a live name",
            vec![created(), (Modified, state("u9", 2, 1, None, &[]))],
            "a live object's uid never changes",
        ),
        (
            "uid reused by a recreated name",
            vec![
                (Added, state("u1", 1, 1, None, &[])),
                (Deleted, state("u1", 2, 1, None, &[])),
                (Added, state("u1", 3, 1, None, &[])),
            ],
            "uids are never reused",
        ),
        (
            "generation not starting at 1",
            vec![(Added, state("u1", 1, 2, None, &[]))],
            "generation must start at 1",
        ),
        (
            "a no-op write with an event",
            vec![created(), (Modified, state("u1", 2, 1, None, &[F]))],
            "is a no-op",
        ),
    ];
    for (name, changes, message) in broken {
        match replay(changes) {
            Err(why) if why.contains(message) => {}
            other => panic!("{name}: expected an error containing {message:?}, got {other:?}"),
        }
    }
}

/// Spec §5 ("a DELETED event carries the last state stamped with the deletion RV") and upstream
/// `Store.Delete`: a DELETE that strips the GC finalizers and so removes the object at once does
/// not persist the stripped state (`errDeleteNow` aborts the update); it deletes the stored
/// object as it is. Here: an object being deleted in the foreground, deleted again in the
/// background.
#[test]
fn delete_that_removes_at_once_sends_the_last_stored_state() {
    let mut sim = Simulation::default();
    for seed in 0..20 {
        let outcome = sim.run(seed, || {
            let server = ApiServer::default();
            let object = Object::new("v1", "ConfigMap", "default", "target");
            server.create(object).expect("created");
            let foreground = DeleteOptions::propagation(Propagation::Foreground);
            let marked = server.delete("v1", "ConfigMap", "default", "target", &foreground);
            let marked = marked.expect("deleting").object().clone();
            assert_eq!(marked.metadata.finalizers, [FINALIZER_FOREGROUND]);
            let from = WatchStart::From(server.resource_version());
            let watch = server.watch("v1", "ConfigMap", None, from, false).expect("a watch");
            let background = DeleteOptions::propagation(Propagation::Background);
            let removed = server.delete("v1", "ConfigMap", "default", "target", &background);
            let removed = removed.expect("removed");
            assert!(removed.is_removed(), "{removed:?}");
            let event = watch.try_next().expect("a DELETED event");
            assert_eq!(event.event_type, EventType::Deleted);
            let mut last = marked.clone();
            last.metadata.resource_version = event.object.metadata.resource_version.clone();
            assert!(
                *event.object == last && *removed.object() == last,
                "the DELETED event carried {}; the last stored state was {}",
                describe(&event.object),
                describe(&marked)
            );
        });
        assert_eq!(outcome, Outcome::Completed, "seed {seed}: {outcome}");
    }
}

/// Upstream `Store.Update`: an update that removes the last finalizer of a deleting object is
/// not persisted (`errEmptiedFinalizers`); the stored object is deleted (the DELETED event
/// carries it, finalizers included) and the update answers with the object as written, at the
/// resourceVersion it was written against (`deleteWithoutFinalizers` returns `obj`).
#[test]
fn update_removing_the_last_finalizer_answers_the_written_object() {
    let mut sim = Simulation::default();
    for seed in 0..20 {
        let outcome = sim.run(seed, || {
            let server = ApiServer::default();
            let object = Object::new("v1", "ConfigMap", "default", "target")
                .with_finalizer(USER_FINALIZERS[0]);
            server.create(object).expect("created");
            let options = DeleteOptions::default();
            let marked = server.delete("v1", "ConfigMap", "default", "target", &options);
            let marked = marked.expect("deleting").object().clone();
            assert!(marked.is_deleting(), "{}", describe(&marked));
            let from = WatchStart::From(server.resource_version());
            let watch = server.watch("v1", "ConfigMap", None, from, false).expect("a watch");
            let mut written = marked.clone().with_label("done", "yes");
            written.metadata.finalizers.clear();
            let answer = server.update(written.clone()).expect("updated");
            let event = watch.try_next().expect("a DELETED event");
            assert_eq!(event.event_type, EventType::Deleted);
            let mut last = marked.clone();
            last.metadata.resource_version = event.object.metadata.resource_version.clone();
            assert!(
                *event.object == last,
                "the DELETED event carried {}; the last stored state was {}",
                describe(&event.object),
                describe(&marked)
            );
            assert!(server.get("v1", "ConfigMap", "default", "target").is_err());
            assert!(
                answer == written,
                "the update answered {} (labels {:?}); upstream answers the written object {} \
                 (labels {:?})",
                describe(&answer),
                answer.metadata.labels,
                describe(&written),
                written.metadata.labels
            );
        });
        assert_eq!(outcome, Outcome::Completed, "seed {seed}: {outcome}");
    }
}

// ---------------------------------------------------------------------------------------------
// The stale cache

/// What one reconcile saw: the cached RV it started from, the RV its update returned, and the
/// RV the cache held right after.
#[derive(Clone, Copy, Debug)]
struct ReadBack {
    cached: u64,
    written: u64,
    reread: u64,
}

fn read_back_after_update(sim: &mut Simulation, seed: u64) -> ReadBack {
    let record: Rc<Cell<Option<ReadBack>>> = Rc::new(Cell::new(None));
    let outcome = sim.run(seed, {
        let record = record.clone();
        move || {
            let server = ApiServer::default();
            let target = Object::new("v1", "ConfigMap", "default", "target")
                .with_field("data", json!({ "value": "0" }));
            server.create(target).expect("the target");
            let client = Client::new(&server, "controller", ClientConfig::default());
            let config = InformerConfig::default()
                .with_delivery_delay(Latency::range(Duration::ZERO, 10 * MS));
            let informer = Informer::new("configmaps", &client, "v1", "ConfigMap", None, config);
            let controller = Controller::new("labeler", 1);
            controller.watches(&informer);
            informer.start();
            let cache = informer.cache();
            controller.start(move |key| {
                let (client, cache, record) = (client.clone(), cache.clone(), record.clone());
                async move {
                    let Some(cached) = cache.get(&key.namespace, &key.name) else {
                        return Ok(Action::Done);
                    };
                    let labels = &cached.metadata.labels;
                    if !labels.contains_key("wanted") || labels.contains_key("reconciled") {
                        return Ok(Action::Done);
                    }
                    let written =
                        client.update(cached.clone().with_label("reconciled", "yes")).await?;
                    let reread = cache.get(&key.namespace, &key.name).expect("never deleted");
                    if record.get().is_none() {
                        record.set(Some(ReadBack {
                            cached: cached.resource_version(),
                            written: written.resource_version(),
                            reread: reread.resource_version(),
                        }));
                    }
                    Ok(Action::Done)
                }
            });
            // Once the informer has been watching for a while, a user asks for a reconcile.
            spawn("user", async move {
                sleep(random_duration(50 * MS, 100 * MS)).await;
                let user = Client::new(&server, "user", ClientConfig::default());
                let patch = json!({ "metadata": { "labels": { "wanted": "yes" } } });
                user.patch("v1", "ConfigMap", "default", "target", &patch).await.expect("patched");
                sleep(Duration::from_secs(1)).await;
            });
        }
    });
    assert_eq!(outcome, Outcome::Completed, "seed {seed}: {outcome}");
    record.get().unwrap_or_else(|| panic!("seed {seed}: the reconcile never updated the object"))
}

/// Spec §5 (controller-runtime): the client reads from the informer cache and writes to the API
/// server, so a Get right after an Update can return the old object (the update's watch event
/// has not reached the cache yet) or the new one, depending on timing: both happen.
#[test]
fn get_after_update_reads_the_old_or_the_new_object_from_the_cache() {
    let mut sim = Simulation::default();
    let (mut stale, mut fresh) = (0, 0);
    for seed in 0..SEEDS {
        let read = read_back_after_update(&mut sim, seed);
        assert!(read.written > read.cached, "seed {seed}: {read:?}");
        if read.reread == read.cached {
            stale += 1;
        } else if read.reread == read.written {
            fresh += 1;
        } else {
            panic!("seed {seed}: the cache held neither the old nor the new object: {read:?}");
        }
    }
    println!("get after update over {SEEDS} seeds: {stale} old, {fresh} new");
    assert!(
        stale > 0 && fresh > 0,
        "get after update over {SEEDS} seeds: {stale} returned the old object, {fresh} the new \
         one; both must happen"
    );
}

// ---------------------------------------------------------------------------------------------
// Informers

/// Random creates, updates, patches and deletes (no finalizers) on the model's names.
async fn churn(client: Client, ops: u64) {
    for _ in 0..ops {
        let (namespace, name) = random_key();
        let value = random_range(0..1000).to_string();
        match random_range(0..4) {
            0 => {
                let object = Object::new("v1", "ConfigMap", &namespace, &name)
                    .with_field("data", json!({ "value": value }));
                let _ = client.create(object).await;
            }
            1 => {
                if let Ok(object) = client.get("v1", "ConfigMap", &namespace, &name).await {
                    let _ = client.update(object.with_label("round", &value)).await;
                }
            }
            2 => {
                let patch = json!({ "data": { "patched": value } });
                let _ = client.patch("v1", "ConfigMap", &namespace, &name, &patch).await;
            }
            _ => {
                let options = DeleteOptions::default();
                let _ = client.delete("v1", "ConfigMap", &namespace, &name, &options).await;
            }
        }
        sleep(random_duration(Duration::ZERO, 3 * MS)).await;
    }
}

/// A server with the model's namespaces.
fn server_with_namespaces(config: ServerConfig) -> ApiServer {
    let server = ApiServer::new(apiserver_fake::Registry::builtin(), config);
    for namespace in NAMESPACES {
        server.create(Object::new("v1", "Namespace", "", namespace)).expect("a namespace");
    }
    server
}

/// Panics unless `cache` holds exactly the server's ConfigMaps (in `namespace`, or all).
fn assert_cache_matches(informer: &Informer, server: &ApiServer, namespace: Option<&str>) {
    let cached = informer.cache().list(namespace);
    let stored =
        server.list("v1", "ConfigMap", namespace, &Selector::everything()).expect("a list").items;
    assert!(
        cached == stored,
        "informer {} did not converge: cache {:?}, server {:?}",
        informer.name(),
        cached.iter().map(describe).collect::<Vec<_>>(),
        stored.iter().map(describe).collect::<Vec<_>>()
    );
}

/// Writers churning, informers (all namespaces, one namespace) watching; once the writers are
/// done and a quiet period passed, each cache equals the server. Returns the run's trace-event
/// texts that mention a relist, and how many `final_state_unknown` deletes the handler saw.
fn converge(
    sim: &mut Simulation,
    seed: u64,
    server_config: ServerConfig,
    informer_faults: Faults,
) -> (usize, u64) {
    let unknown = Rc::new(Cell::new(0));
    let outcome = sim.run(seed, {
        let unknown = unknown.clone();
        move || {
            let server = server_with_namespaces(server_config);
            let config = ClientConfig::default().with_faults(informer_faults);
            let client = Client::new(&server, "informers", config);
            let all =
                Informer::new("all", &client, "v1", "ConfigMap", None, InformerConfig::default());
            let one = Informer::new(
                "ns-a",
                &client,
                "v1",
                "ConfigMap",
                Some("ns-a"),
                InformerConfig::default(),
            );
            for informer in [&all, &one] {
                let unknown = unknown.clone();
                informer.add_handler("counter", move |notification| {
                    if let Notification::Deleted { final_state_unknown: true, .. } = notification {
                        unknown.set(unknown.get() + 1);
                    }
                    std::future::ready(())
                });
                informer.start();
            }
            let writers: Vec<JoinHandle<()>> = (0..3)
                .map(|i| {
                    let client =
                        Client::new(&server, &format!("writer-{i}"), ClientConfig::default());
                    spawn(format!("writer-{i}"), churn(client, 15))
                })
                .collect();
            spawn("checker", async move {
                for writer in writers {
                    writer.await;
                }
                sleep(Duration::from_secs(5)).await;
                assert_cache_matches(&all, &server, None);
                assert_cache_matches(&one, &server, Some("ns-a"));
            });
        }
    });
    assert_eq!(outcome, Outcome::Completed, "seed {seed}: {outcome}");
    let relists = sim
        .trace()
        .events()
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::Message(text) if text.contains("relisting")))
        .count();
    (relists, unknown.get())
}

/// Spec §5 (reflector): list, then watch from the list's RV; once the writers stop, the cache
/// converges to the server's objects.
#[test]
fn informer_cache_converges_to_the_server() {
    let mut sim = Simulation::default();
    for seed in 0..SEEDS {
        converge(&mut sim, seed, ServerConfig::default(), Faults::NONE);
    }
}

/// Spec §5 (reflector): the first list is served from the watch cache (resourceVersion "0")
/// and may be stale; the watch from its resourceVersion replays what it missed, so the cache
/// still converges.
#[test]
fn informer_converges_from_a_stale_first_list() {
    let mut sim = Simulation::default();
    for seed in 0..SEEDS {
        converge(&mut sim, seed, ServerConfig::default().with_stale_reads(20), Faults::NONE);
    }
}

/// Spec §5 (reflector): watches dropped by faults are rewatched from the last RV seen; with a
/// history of 3 events the rewatch gets 410 Gone and the reflector relists. The caches still
/// converge on every seed.
#[test]
fn informer_converges_through_dropped_watches_and_410_gone() {
    let mut sim = Simulation::default();
    let faults = Faults { drop_watch: 0.2, ..Faults::NONE };
    let (mut relists, mut unknown) = (0, 0);
    for seed in 0..SEEDS {
        let (r, u) = converge(&mut sim, seed, ServerConfig::default().with_history_max(3), faults);
        relists += r;
        unknown += u;
    }
    println!(
        "dropped watches over {SEEDS} seeds: {relists} relists, {unknown} DeletedFinalStateUnknown"
    );
    assert!(relists > 0, "no seed relisted after 410 Gone");
}

/// Spec §5 (informer): the cache is updated before the handlers are called, so a handler always
/// finds the cache at (or past) the state it is told about.
#[test]
fn informer_handlers_see_the_cache_already_updated() {
    let mut sim = Simulation::default();
    let mut notified = 0;
    for seed in 0..SEEDS {
        let count = Rc::new(Cell::new(0u64));
        let outcome = sim.run(seed, {
            let count = count.clone();
            move || {
                let server = server_with_namespaces(ServerConfig::default());
                let client = Client::new(&server, "informer", ClientConfig::default());
                let config = InformerConfig::default()
                    .with_delivery_delay(Latency::range(Duration::ZERO, 10 * MS))
                    .with_resync(Some(50 * MS));
                let informer =
                    Informer::new("configmaps", &client, "v1", "ConfigMap", None, config);
                let cache = informer.cache();
                let history = server.clone();
                informer.add_handler("checker", move |notification| {
                    count.set(count.get() + 1);
                    let object = notification.object().clone();
                    let (namespace, name) = key_of(&object);
                    let cached = cache.get_rc(&namespace, &name);
                    let rv = object.resource_version();
                    // A later DELETED the cache may have applied since, by uid.
                    let deleted_later = || {
                        history.history().iter().any(|c| {
                            c.event.event_type == EventType::Deleted
                                && c.event.object.metadata.uid == object.metadata.uid
                                && c.event.resource_version() > rv
                        })
                    };
                    match &notification {
                        Notification::Added(_) | Notification::Updated { .. } => {
                            if let Notification::Updated { old, new } = &notification {
                                assert!(
                                    old.resource_version() <= new.resource_version(),
                                    "{notification:?}"
                                );
                            }
                            match cached {
                                Some(cached) => assert!(
                                    cached.resource_version() >= rv,
                                    "handler told of {} but the cache holds {}",
                                    describe(&object),
                                    describe(&cached)
                                ),
                                None => assert!(
                                    deleted_later(),
                                    "handler told of {} but the cache does not hold it",
                                    describe(&object)
                                ),
                            }
                        }
                        Notification::Deleted { .. } => {
                            if let Some(cached) = cached {
                                assert!(
                                    cached.resource_version() > rv,
                                    "handler told {} was deleted but the cache holds {}",
                                    describe(&object),
                                    describe(&cached)
                                );
                            }
                        }
                    }
                    std::future::ready(())
                });
                informer.start();
                let writers: Vec<JoinHandle<()>> = (0..3)
                    .map(|i| {
                        let client =
                            Client::new(&server, &format!("writer-{i}"), ClientConfig::default());
                        spawn(format!("writer-{i}"), churn(client, 15))
                    })
                    .collect();
                spawn("quiet", async move {
                    for writer in writers {
                        writer.await;
                    }
                    sleep(Duration::from_secs(1)).await;
                });
            }
        });
        assert_eq!(outcome, Outcome::Completed, "seed {seed}: {outcome}");
        notified += count.get();
    }
    assert!(notified > 0, "no handler was ever called");
}

/// Spec §5 (client-go `DeltaFIFO.Replace`): an object deleted while the watch was down, whose
/// DELETED event fell out of the server's history (410 Gone on rewatch), leaves the cache by
/// the relist, as `Deleted { final_state_unknown: true }` with its last known state.
#[test]
fn relist_delivers_deleted_final_state_unknown() {
    let mut sim = Simulation::default();
    for seed in 0..SEEDS {
        let seen: Rc<RefCell<Vec<Notification>>> = Rc::new(RefCell::new(Vec::new()));
        let gone: Rc<RefCell<Option<Object>>> = Rc::new(RefCell::new(None));
        let outcome = sim.run(seed, {
            let (seen, gone) = (seen.clone(), gone.clone());
            move || {
                let server = server_with_namespaces(ServerConfig::default().with_history_max(3));
                for name in ["gone", "kept"] {
                    let object = Object::new("v1", "ConfigMap", "ns-a", name);
                    let created = server.create(object).expect("created");
                    gone.borrow_mut().get_or_insert(created);
                }
                let client = Client::new(&server, "informer", ClientConfig::default());
                let informer = Informer::new(
                    "configmaps",
                    &client,
                    "v1",
                    "ConfigMap",
                    None,
                    InformerConfig::default(),
                );
                informer.add_handler("recorder", move |notification| {
                    seen.borrow_mut().push(notification);
                    std::future::ready(())
                });
                informer.start();
                spawn("disrupt", async move {
                    informer.wait_synced().await;
                    sleep(random_duration(10 * MS, 50 * MS)).await;
                    // In one step: the watch goes down, "gone" is deleted, and more writes than
                    // the history holds push the deletion (and the reflector's RV) out of it.
                    server.close_watches();
                    let options = DeleteOptions::default();
                    let removed = server.delete("v1", "ConfigMap", "ns-a", "gone", &options);
                    assert!(removed.is_ok_and(|d| d.is_removed()));
                    for round in 0..4 {
                        let patch = json!({ "data": { "round": round.to_string() } });
                        server.patch("v1", "ConfigMap", "ns-a", "kept", &patch).expect("patched");
                    }
                    sleep(Duration::from_secs(3)).await;
                    assert_cache_matches(&informer, &server, None);
                    assert!(informer.cache().get("ns-a", "gone").is_none());
                });
            }
        });
        assert_eq!(outcome, Outcome::Completed, "seed {seed}: {outcome}");
        let seen = seen.borrow();
        let unknown: Vec<&Notification> = seen
            .iter()
            .filter(|n| matches!(n, Notification::Deleted { final_state_unknown: true, .. }))
            .collect();
        let gone = gone.borrow().clone().expect("created");
        assert!(
            unknown.len() == 1 && **unknown[0].object() == gone,
            "seed {seed}: expected one DeletedFinalStateUnknown for ns-a/gone, got {seen:?}"
        );
        assert!(
            !seen
                .iter()
                .any(|n| matches!(n, Notification::Deleted { final_state_unknown: false, .. })),
            "seed {seed}: a DELETED event reached the informer although its watch was closed"
        );
    }
}
