//! The model runs (two namespaces, watchers from the start and one started mid-run, four clients,
//! half the seeds with injected faults), their determinism, and the oracle's own tests: a legal
//! history passes, each broken rule is caught, and the two answers upstream gives when an update
//! or a DELETE removes an object at once.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::{
    ApiServer, Client, ClientConfig, DeleteOptions, EventType, FINALIZER_FOREGROUND,
    FINALIZER_ORPHAN, Faults, Object, Propagation, WatchStart,
};
use sim_core::{
    JoinHandle, Outcome, Simulation, always, random_bool, random_duration, random_range, sleep,
    spawn,
};

use super::clients::Actor;
use super::oracle::record_watch;
use super::verbs::{Verbs, Via};
use super::{
    CLIENTS, MS, Model, NAMESPACES, OPS_MIN, SEEDS, Stats, USER_FINALIZERS, describe,
    ghost_controller,
};

/// One model run: two namespaces, watchers from the start (all namespaces, one namespace) and
/// one started mid-run from an older RV, four clients, the invariant after every step, and a
/// final task that compares every watcher with the change log.
fn model_setup(seed: u64, via: Via, model: Rc<RefCell<Model>>) {
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
                client: Verbs { client: Client::new(&server, &name, config), via },
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
    run_model_via(sim, seed, Via::Rust)
}

fn run_model_via(sim: &mut Simulation, seed: u64, via: Via) -> (Outcome, Stats, Option<String>) {
    let model = Rc::new(RefCell::new(Model::default()));
    let outcome = sim.run(seed, {
        let model = model.clone();
        move || model_setup(seed, via, model)
    });
    let model = model.borrow();
    (outcome, model.stats, model.divergence.clone())
}

/// The metadata, DELETE propagation and watch rules as a model: random
/// CREATE/GET/LIST/UPDATE/UPDATE status/PATCH/DELETE from four concurrent clients (half the seeds
/// with injected conflicts, 500s and timeouts), from stale reads, with user and GC finalizers,
/// owner and controller references, deliberately invalid requests, every DELETE option and
/// preconditions. After every step: resourceVersions strictly increase; the store is the replay of
/// the change log; no object with finalizers is removed except by the update that removes the last
/// one from a deleting object, and a DELETED event carries the last stored state; deletionTimestamp
/// is never cleared or moved; no finalizer is added to a deleting object (except the GC's by a
/// second DELETE); at most one controller reference; generation starts at 1, never decreases,
/// changes only with the spec and is bumped when deletion starts; no-op writes make no event; a
/// live name keeps its uid and a recreated name gets a new one. Each write returns a fresh RV (or,
/// for a no-op, the current state), and an update that removed the object answers with the object
/// as written (upstream `deleteWithoutFinalizers`); each read returns a current state, each LIST
/// the state at its RV; each DELETE follows the propagation table; each watcher gets every change
/// once, in order.
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

/// The same model through the REST layer: every client call is an HTTP-shaped request
/// (`Client::request`) and every answer is read back from JSON, under the same invariants after
/// every step, and each seed's run agrees with the Rust verbs' run step for step (the same
/// trace, byte for byte: the same server steps, draws, faults and answers).
#[test]
fn model_through_rest_agrees_with_the_rust_verbs_step_for_step() {
    let mut sim = Simulation::default();
    let mut total = Stats::default();
    for seed in 0..SEEDS {
        let (outcome, stats, _) = run_model_via(&mut sim, seed, Via::Rest);
        assert_eq!(outcome, Outcome::Completed, "seed {seed} through REST: {outcome}");
        let rest = (sim.trace().hash(), sim.trace().len(), stats.ops);
        total.add(&stats);
        let (outcome, stats, _) = run_model_via(&mut sim, seed, Via::Rust);
        assert_eq!(outcome, Outcome::Completed, "seed {seed}: {outcome}");
        let rust = (sim.trace().hash(), sim.trace().len(), stats.ops);
        assert_eq!(rest, rust, "seed {seed}: REST and Rust verbs diverge (hash, events, ops)");
    }
    println!("model through REST over {SEEDS} seeds: {total:?}");
    assert!(total.ops >= OPS_MIN, "only {} operations executed: {total:?}", total.ops);
    assert!(total.deletes_removed > 0 && total.failed_calls > 0, "{total:?}");
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

/// The model's oracle itself: a legal history passes, and each broken metadata rule is
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

/// A DELETED event carries the last stored state stamped with the deletion RV, and upstream
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
