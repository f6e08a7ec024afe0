//! The stale cache: a controller-runtime client reads from the informer cache and writes to the
//! API server, so a Get right after an Update returns the old object or the new one depending on
//! timing, and both happen over the seeds.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::{
    Action, ApiServer, Client, ClientConfig, Controller, Informer, InformerConfig, Latency, Object,
};
use serde_json::json;
use sim_core::{Outcome, Simulation, random_duration, sleep, spawn};

use super::{MS, SEEDS};

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

/// controller-runtime: the client reads from the informer cache and writes to the API
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
