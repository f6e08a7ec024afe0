//! The model's clients: random CREATE, GET, LIST, UPDATE, UPDATE status, PATCH and DELETE from
//! possibly stale reads, with user and GC finalizers, owner and controller references,
//! deliberately invalid requests, every DELETE option and preconditions; each answer is checked
//! against the model (a write returns a fresh resourceVersion or, for a no-op, the current state;
//! a read returns a current state; a DELETE leaves the finalizers of the propagation table).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use apiserver_fake::{
    ApiError, ApiServer, DeleteOptions, Deleted, EventType, FINALIZER_FOREGROUND, FINALIZER_ORPHAN,
    Object, OwnerReference, Propagation, Reason, Selector,
};
use serde_json::{Value, json};
use sim_core::{random_bool, random_range};

use super::verbs::Verbs;
use super::{
    Before, Key, LATE_FINALIZER, Model, NAMESPACES, OP_ANNOTATION, OPS_PER_CLIENT, USER_FINALIZERS,
    describe, expected_finalizers, ghost_controller, is_gc_finalizer, key_of, pick, random_key,
};

/// What a successful write must have done.
#[derive(Clone, Copy)]
enum Expect<'a> {
    /// Changed the object (its state carries the token, if given).
    Change(Option<&'a str>),
    /// Anything, a no-op included.
    MaybeNoop,
}

/// One client task: random operations, remembering what it last read of each name.
pub(super) struct Actor {
    pub(super) name: String,
    pub(super) client: Verbs,
    pub(super) server: ApiServer,
    pub(super) model: Rc<RefCell<Model>>,
    pub(super) seen: BTreeMap<Key, Object>,
    /// Whether the client injects faults (then a 409 may be injected).
    pub(super) faulty: bool,
    /// Tokens written so far (each makes its write a change).
    pub(super) tokens: u64,
}

impl Actor {
    pub(super) async fn run(mut self) {
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
            // PATCH applies to the stored object; only an RV in it conflicts (a patch has
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

    /// Adding a finalizer to an object being deleted must fail (the uid in the body pins the
    /// object).
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
