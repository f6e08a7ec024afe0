//! Limits and determinism: more than `objects_max` objects ends the run as a resource limit; a
//! workload of concurrent writers gives the same trace for the same seed and different schedules
//! over seeds.

use std::cell::Cell;
use std::rc::Rc;

use apiserver_fake::{Propagation, ServerConfig, WatchStart};
use serde_json::json;
use sim_core::{FailureKind, Outcome, Simulation, spawn, yield_now};

use super::{
    KEEP, NS, Request, SEEDS, WIDGETS, cm, delete, pending, server, server_with, spawn_writers,
    widget,
};

/// Limits: creating more than `objects_max` objects ends the run as a resource limit.
#[test]
fn too_many_objects_ends_the_run_as_a_resource_limit() {
    let mut sim = Simulation::default();
    for seed in 0..SEEDS {
        let created = Rc::new(Cell::new(0));
        let outcome = sim.run(seed, || {
            // The three system namespaces count: seven more objects fit.
            let server = server_with(ServerConfig::default().with_objects_max(10));
            assert_eq!(server.len(), 3);
            for task in 0..2 {
                let (server, created) = (server.clone(), created.clone());
                spawn(format!("creator-{task}"), async move {
                    for j in 0..4 {
                        server.create(cm(NS, &format!("c{task}-{j}"))).expect("create");
                        created.set(created.get() + 1);
                        yield_now().await;
                    }
                });
            }
        });
        match outcome {
            Outcome::LimitReached(failure) => {
                assert_eq!(failure.kind, FailureKind::ResourceLimit, "seed {seed}");
                assert!(failure.message.contains("10 objects"), "seed {seed}: {failure}");
            }
            other => panic!("seed {seed}: expected a resource limit, got {other}"),
        }
        assert_eq!(created.get(), 7, "seed {seed}");
    }
}

/// A workload of concurrent writers of several kinds, patches, deletes and a watcher.
fn concurrent_writers() {
    let server = server();
    let watch = server.watch("v1", "ConfigMap", None, WatchStart::Now, false).unwrap();
    spawn_writers(&server, &[NS, NS, NS], 3);
    let patcher = server.clone();
    spawn("patcher", async move {
        let created = patcher.create(widget(NS, "w").with_finalizer(KEEP)).expect("create");
        for size in 0..4 {
            yield_now().await;
            patcher
                .patch(WIDGETS, "Widget", NS, "w", &json!({ "spec": { "size": size } }))
                .unwrap();
        }
        pending(delete(&patcher, &created, &Request::Policy(Propagation::Foreground).options()));
    });
    spawn("watcher", async move {
        for _ in 0..10 {
            let event = watch.next().await.expect("open");
            sim_core::event(format!("saw {} {}", event.event_type, event.object.key()));
        }
    });
}

/// Determinism: the same seed gives the same trace, while seeds explore different schedules.
#[test]
fn concurrent_writers_give_the_same_trace_for_the_same_seed() {
    let mut sim = Simulation::default();
    let mut hashes = std::collections::BTreeSet::new();
    for seed in 0..SEEDS {
        assert_eq!(sim.run(seed, concurrent_writers), Outcome::Completed, "seed {seed}");
        let first = sim.trace().hash();
        assert_eq!(sim.run(seed, concurrent_writers), Outcome::Completed, "seed {seed}");
        assert_eq!(sim.trace().hash(), first, "seed {seed}: same seed, different trace");
        hashes.insert(first);
    }
    assert!(hashes.len() > SEEDS as usize / 2, "only {} distinct schedules", hashes.len());
}
