//! How fast the fake cluster simulates: `cargo bench -p apiserver-fake --bench cluster`.
//!
//! - `verbs`: synchronous API server verbs (create, get, update, delete) per second.
//! - `rest`: the same cycle as REST requests through `ApiServer::handle` (requests built before
//!   the clock starts, so the time is the REST layer's parsing, routing and serialising plus
//!   the verb), in the same run as `verbs`, and the ratio of the two per operation.
//! - `foreground`: a foreground deletion of an owner with 10 blocking dependents, with the
//!   garbage collector (monitors, graph builder, 20 workers each for attemptToDelete and
//!   attemptToOrphan), a controller with 2 workers, and client latency: runs/s, simulated
//!   steps/s, and virtual seconds simulated per wall second.
//!
//! Medians of 5 rounds; the spread is printed.
#![allow(clippy::disallowed_methods, missing_docs)]

use std::time::{Duration, Instant};

use apiserver_fake::{
    Action, ApiServer, Client, ClientConfig, Controller, DeleteOptions, GarbageCollector, GcConfig,
    Informer, InformerConfig, Object, OwnerReference, Propagation,
};
use sim_core::{Outcome, Simulation};

fn median(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (values[values.len() / 2], values[0], values[values.len() - 1])
}

/// `ops` verbs on `server`: create, get, update, delete of one ConfigMap after another.
fn verb_cycle(server: &ApiServer, ops: u32) {
    for i in 0..ops / 4 {
        let name = format!("cm-{i}");
        let created = server.create(Object::new("v1", "ConfigMap", "default", &name)).unwrap();
        server.get("v1", "ConfigMap", "default", &name).unwrap();
        server.update(created.with_label("k", "v")).unwrap();
        server.delete("v1", "ConfigMap", "default", &name, &DeleteOptions::default()).unwrap();
    }
}

fn verbs(rounds: usize) {
    let mut rates = Vec::new();
    for _ in 0..rounds {
        let mut sim = Simulation::default();
        let ops = 40_000u32;
        let start = Instant::now();
        sim.run(1, || verb_cycle(&ApiServer::default(), ops));
        rates.push(f64::from(ops) / start.elapsed().as_secs_f64());
    }
    let (mid, low, high) = median(rates);
    println!("verbs       {mid:>12.0} verbs/s   (spread {low:.0} … {high:.0})");
}

/// The verbs cycle as REST requests: (REST ops/s, Rust verbs/s) medians, measured round by
/// round side by side.
fn rest(rounds: usize) {
    use apiserver_fake::rest::Request;
    let ops = 40_000u32;
    let (mut rest_rates, mut verb_rates) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mut sim = Simulation::default();
        let cms = "/api/v1/namespaces/default/configmaps";
        let requests: Vec<Request> = (0..ops / 4)
            .flat_map(|i| {
                let name = format!("cm-{i}");
                let object = serde_json::json!({ "metadata": { "name": name } });
                let labelled =
                    serde_json::json!({ "metadata": { "name": name, "labels": { "k": "v" } } });
                [
                    Request::new("POST", cms).with_json(&object),
                    Request::get(&format!("{cms}/{name}")),
                    Request::new("PUT", &format!("{cms}/{name}")).with_json(&labelled),
                    Request::new("DELETE", &format!("{cms}/{name}")),
                ]
            })
            .collect();
        let mut elapsed = Duration::ZERO;
        sim.run(1, || {
            let server = ApiServer::default();
            let start = Instant::now();
            for request in &requests {
                let response = server.handle(request);
                assert!(response.is_success(), "{response:?}");
            }
            elapsed = start.elapsed();
        });
        rest_rates.push(f64::from(ops) / elapsed.as_secs_f64());
        let mut elapsed = Duration::ZERO;
        sim.run(1, || {
            let server = ApiServer::default();
            let start = Instant::now();
            verb_cycle(&server, ops);
            elapsed = start.elapsed();
        });
        verb_rates.push(f64::from(ops) / elapsed.as_secs_f64());
    }
    let (rest_mid, rest_low, rest_high) = median(rest_rates);
    let (verb_mid, _, _) = median(verb_rates);
    println!("rest        {rest_mid:>12.0} requests/s (spread {rest_low:.0} … {rest_high:.0})");
    println!(
        "rest        {:>12.2} × the Rust verb's cost per operation ({verb_mid:.0} verbs/s in the same run)",
        verb_mid / rest_mid
    );
}

fn foreground_run(sim: &mut Simulation, seed: u64) -> Outcome {
    sim.run(seed, || {
        let server = ApiServer::default();
        let client = Client::new(&server, "user", ClientConfig::default());
        let gc_client = Client::new(&server, "gc", ClientConfig::default());
        let kinds = [("v1", "ConfigMap"), ("v1", "Secret")];
        GarbageCollector::start(&gc_client, GcConfig::default().with_kinds(&kinds));
        let informer = Informer::new(
            "owner-controller/secrets",
            &client,
            "v1",
            "Secret",
            None,
            InformerConfig::default(),
        );
        let controller = Controller::new("owner-controller", 2);
        controller.owns(&informer, "v1", "ConfigMap");
        informer.start();
        let cache = informer.cache();
        controller.start(move |_key| {
            let _ = cache.len();
            async { Ok(Action::Done) }
        });
        sim_core::spawn("user", async move {
            let owner =
                client.create(Object::new("v1", "ConfigMap", "default", "owner")).await.unwrap();
            for i in 0..10 {
                let dependent = Object::new("v1", "Secret", "default", &format!("dep-{i}"))
                    .with_owner(OwnerReference::controller_of(&owner));
                client.create(dependent).await.unwrap();
            }
            sim_core::sleep(Duration::from_secs(1)).await;
            let options = DeleteOptions::propagation(Propagation::Foreground);
            client.delete("v1", "ConfigMap", "default", "owner", &options).await.unwrap();
            sim_core::sleep(Duration::from_secs(60)).await;
            assert!(server.get("v1", "ConfigMap", "default", "owner").is_err());
        });
    })
}

fn foreground(rounds: usize, runs: u64) {
    let (mut run_rates, mut step_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut sim = Simulation::default();
    for _ in 0..rounds {
        let (mut steps, mut virtual_ns) = (0u64, 0u128);
        let start = Instant::now();
        for seed in 0..runs {
            let outcome = foreground_run(&mut sim, seed);
            assert_eq!(outcome, Outcome::Completed, "seed {seed}");
            steps += sim.trace().len() as u64;
            virtual_ns += sim.trace().end_time().elapsed_since_start().as_nanos();
        }
        let wall = start.elapsed().as_secs_f64();
        run_rates.push(runs as f64 / wall);
        step_rates.push(steps as f64 / wall);
        ratios.push(virtual_ns as f64 / 1e9 / wall);
    }
    let steps_per_run = {
        foreground_run(&mut sim, 0);
        sim.trace().len()
    };
    let (runs_mid, runs_low, runs_high) = median(run_rates);
    let (steps_mid, steps_low, steps_high) = median(step_rates);
    let (ratio_mid, ratio_low, ratio_high) = median(ratios);
    println!(
        "foreground  {runs_mid:>12.0} runs/s    (spread {runs_low:.0} … {runs_high:.0}; {steps_per_run} steps per run)"
    );
    println!("foreground  {steps_mid:>12.0} steps/s   (spread {steps_low:.0} … {steps_high:.0})");
    println!(
        "foreground  {ratio_mid:>12.0} virtual s per wall s (spread {ratio_low:.0} … {ratio_high:.0})"
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 1 } else { 5 };
    verbs(rounds);
    rest(rounds);
    foreground(rounds, if quick { 20 } else { 200 });
}
