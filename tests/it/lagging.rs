//! Lagging views: a process connected to a lagging API server sees one object frozen in its
//! cache reads (a LIST from the cache, a WATCH) while every other object and every consistent
//! read is fresh; when the view catches up, its watches get the current state.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::{ApiServer, Client, ClientConfig, Informer, InformerConfig, Latency, Object};
use serde_json::json;
use sim_core::{Config, Outcome, Perturbations, Process, Simulation, sleep, spawn};

const NS: &str = "default";

fn labelled(name: &str, value: &str) -> Object {
    Object::new("v1", "ConfigMap", NS, name).with_label("v", value)
}

/// What the process's cache held at each probe: (probe, the frozen object's label, the other's).
type Seen = Rc<RefCell<Vec<(&'static str, Option<String>, Option<String>)>>>;

fn run(seed: u64, connect: bool) -> Vec<(&'static str, Option<String>, Option<String>)> {
    let seen: Seen = Rc::default();
    let log = seen.clone();
    // No perturbations: the test drives the view by hand.
    let config = Config::default().with_perturbations(Perturbations::NONE);
    let outcome = Simulation::new(config).run(seed, move || {
        let server = ApiServer::default();
        server.create(labelled("frozen", "1")).unwrap();
        server.create(labelled("other", "1")).unwrap();
        let cache = Rc::new(RefCell::new(None));
        let (boot_server, slot) = (server.clone(), cache.clone());
        let process = Process::start("operator", move || {
            let client = Client::new(&boot_server, "operator", ClientConfig::default());
            let config = InformerConfig::default().with_delivery_delay(Latency::ZERO);
            let informer =
                Informer::new("operator/cms", &client, "v1", "ConfigMap", Some(NS), config);
            informer.start();
            *slot.borrow_mut() = Some(informer.cache());
        });
        spawn("driver", async move {
            let probe = |at: &'static str| {
                let cache = cache.borrow().clone().expect("booted");
                let label = |name: &str| {
                    cache.get(NS, name).and_then(|o| o.metadata.labels.get("v").cloned())
                };
                log.borrow_mut().push((at, label("frozen"), label("other")));
            };
            sleep(Duration::from_secs(1)).await;
            let frozen = server.get("v1", "ConfigMap", NS, "frozen").unwrap();
            server.freeze_view(process.id(), "v1", "ConfigMap", NS, "frozen", Some(frozen));
            for name in ["frozen", "other"] {
                let mut object = server.get("v1", "ConfigMap", NS, name).unwrap();
                object.metadata.labels.insert("v".into(), "2".into());
                server.update(object).unwrap();
            }
            sleep(Duration::from_secs(1)).await;
            probe("frozen, not connected");
            if connect {
                server.connect_view(process.id());
            }
            process.restart();
            sleep(Duration::from_secs(1)).await;
            probe("after the reconnect");
            // Later writes of the frozen object stay hidden; consistent reads are fresh.
            let mut object = server.get("v1", "ConfigMap", NS, "frozen").unwrap();
            assert_eq!(object.metadata.labels["v"], "2");
            object.other.insert("data".into(), json!({ "k": "3" }));
            object.metadata.labels.insert("v".into(), "3".into());
            server.update(object).unwrap();
            sleep(Duration::from_secs(1)).await;
            probe("after a later write");
            server.catch_up_view(process.id());
            sleep(Duration::from_secs(1)).await;
            probe("caught up");
        });
    });
    assert_eq!(outcome, Outcome::Completed, "seed {seed}");
    seen.take()
}

#[test]
fn a_process_connected_to_a_lagging_view_sees_one_object_frozen_until_it_catches_up() {
    let some = |v: &str| Some(v.to_string());
    for seed in 0..50 {
        assert_eq!(
            run(seed, true),
            vec![
                ("frozen, not connected", some("2"), some("2")),
                ("after the reconnect", some("1"), some("2")),
                ("after a later write", some("1"), some("2")),
                ("caught up", some("3"), some("2")),
            ],
            "seed {seed}"
        );
        // Not connected, the freeze changes nothing: a relist sees the current state.
        assert_eq!(
            run(seed, false),
            vec![
                ("frozen, not connected", some("2"), some("2")),
                ("after the reconnect", some("2"), some("2")),
                ("after a later write", some("3"), some("2")),
                ("caught up", some("3"), some("2")),
            ],
            "seed {seed}"
        );
    }
}
