//! How fast kube-rs controllers run under kdst, beside the native scenarios of the same bugs:
//! `cargo bench --manifest-path kdst-kube/Cargo.toml --bench operators`.
//!
//! For each scenario and variant: schedules (runs) per second, simulated steps per second, and
//! API interactions per second (client calls to the fake API server: every request a kube-rs
//! `Client` sends, every call a native kdst client makes), over the same seeds, with the random
//! strategy and the default perturbations, one thread. The kube-rs rows run the operators of
//! `examples/kube_operators/`; the native rows run `scenarios`' models of the same bugs
//! (`cert-manager-foreground-deletion`, and `zookeeper-stale-pvc-cleanup` for an operator with generic
//! oracles, a StatefulSet and a custom resource). Medians of 3 rounds; the spread is printed.
#![allow(clippy::disallowed_methods, missing_docs)]

use std::time::Instant;

use scenarios::Target;
use sim_core::{EventKind, Simulation};

#[path = "../examples/kube_operators/scenarios.rs"]
mod kube_scenarios;

const SEEDS: u64 = 200;
const ROUNDS: usize = 3;

/// Per round: (schedules/s, steps/s, API interactions/s, interactions per schedule).
fn measure(target: &Target) -> (f64, f64, f64, f64) {
    let mut rates = Vec::new();
    for _ in 0..ROUNDS {
        let mut sim = Simulation::default();
        // The reference runs of the generic oracles are computed (and cached) outside the clock.
        for seed in 0..SEEDS {
            let _ =
                scenarios::reference(target.scenario(), target.variant(), target.params(), seed);
        }
        let (mut steps, mut calls) = (0u64, 0u64);
        let start = Instant::now();
        for seed in 0..SEEDS {
            target.run(&mut sim, seed);
            let trace = sim.trace();
            steps += trace.len() as u64;
            calls += trace
                .events()
                .iter()
                .filter(|e| matches!(e.kind, EventKind::CallBegin { .. }))
                .count() as u64;
        }
        let seconds = start.elapsed().as_secs_f64();
        rates.push((
            SEEDS as f64 / seconds,
            steps as f64 / seconds,
            calls as f64 / seconds,
            calls as f64 / SEEDS as f64,
        ));
    }
    rates.sort_by(|a, b| a.0.total_cmp(&b.0));
    let median = rates[rates.len() / 2];
    eprintln!(
        "    schedules/s over {ROUNDS} rounds: {:.0}..{:.0}",
        rates[0].0,
        rates[rates.len() - 1].0
    );
    median
}

fn main() {
    let registry = kube_scenarios::register(scenarios::Registry::builtin());
    let rows = [
        ("kube-rs", "kube-app-stale-delete", "fixed"),
        ("kube-rs", "kube-app-stale-delete", "buggy"),
        ("native", "zookeeper-stale-pvc-cleanup", "fixed"),
        ("kube-rs", "kube-cert-foreground", "fixed"),
        ("kube-rs", "kube-cert-foreground", "buggy"),
        ("native", "cert-manager-foreground-deletion", "fixed"),
        ("native", "cert-manager-foreground-deletion", "buggy"),
    ];
    println!(
        "| code | scenario | variant | schedules/s | steps/s | API interactions/s | interactions per schedule |"
    );
    println!("|---|---|---|---:|---:|---:|---:|");
    for (code, scenario, variant) in rows {
        let target = registry.target(scenario, Some(variant)).expect("a registered scenario");
        let (schedules, steps, calls, per) = measure(&target);
        println!(
            "| {code} | {scenario} | {variant} | {schedules:.0} | {steps:.0} | {calls:.0} | {per:.0} |"
        );
    }
}
