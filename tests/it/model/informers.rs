//! Informers: the cache converges to the server (from a stale first list, through dropped
//! watches and 410 Gone), handlers see the cache already updated, and a relist delivers objects
//! deleted while the watch was down as `DeletedFinalStateUnknown`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::{
    ApiServer, Client, ClientConfig, DeleteOptions, EventType, Faults, Informer, InformerConfig,
    Latency, Notification, Object, Selector, ServerConfig,
};
use serde_json::json;
use sim_core::{
    EventKind, JoinHandle, Outcome, Simulation, random_duration, random_range, sleep, spawn,
};

use super::{MS, NAMESPACES, SEEDS, describe, key_of, random_key};

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

/// The reflector: list, then watch from the list's RV; once the writers stop, the cache
/// converges to the server's objects.
#[test]
fn informer_cache_converges_to_the_server() {
    let mut sim = Simulation::default();
    for seed in 0..SEEDS {
        converge(&mut sim, seed, ServerConfig::default(), Faults::NONE);
    }
}

/// The reflector: the first list is served from the watch cache (resourceVersion "0")
/// and may be stale; the watch from its resourceVersion replays what it missed, so the cache
/// still converges.
#[test]
fn informer_converges_from_a_stale_first_list() {
    let mut sim = Simulation::default();
    for seed in 0..SEEDS {
        converge(&mut sim, seed, ServerConfig::default().with_stale_reads(20), Faults::NONE);
    }
}

/// The reflector: watches dropped by faults are rewatched from the last RV seen; with a
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

/// The informer: the cache is updated before the handlers are called, so a handler always
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

/// client-go `DeltaFIFO.Replace`: an object deleted while the watch was down, whose
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
