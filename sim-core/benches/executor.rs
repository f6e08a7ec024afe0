//! The executor benchmark: steps/s on W1 (tasks each calling `yield_now`), cost per tiny
//! execution (2 tasks × 3 yields, set-up included), and how both scale from 2 to 64 tasks.
//!
//! `cargo bench -p sim-core --bench executor` prints a table; `-- w1 N` or `-- tiny N` runs N
//! executions and nothing else, for instruction counting under `valgrind --tool=cachegrind`
//! (see the README for the exact commands).
#![allow(clippy::disallowed_methods, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use sim_core::{Outcome, Simulation, spawn, yield_now};

fn workload(tasks: usize, yields: usize) {
    for index in 0..tasks {
        spawn(format!("t{index}"), async move {
            for _ in 0..yields {
                yield_now().await;
            }
        });
    }
}

/// Runs `executions` runs of `tasks × yields`; returns (wall time, total steps, trace bytes).
fn measure(sim: &mut Simulation, tasks: usize, yields: usize, executions: u64) -> (Duration, u64) {
    let start = Instant::now();
    let mut steps = 0u64;
    for seed in 0..executions {
        let outcome = sim.run(seed, || workload(tasks, yields));
        assert_eq!(outcome, Outcome::Completed);
        steps += sim.trace().len() as u64;
    }
    (black_box(start.elapsed()), steps)
}

fn median(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (values[0], values[values.len() / 2], values[values.len() - 1])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut sim = Simulation::default();
    // `w1 N` / `tiny N`: N executions and nothing else, for instruction counts. The difference
    // between two counts divided by the difference in steps (or executions) excludes start-up.
    if let [_, mode, count, ..] = args.as_slice() {
        let count: u64 = count.parse().expect("the execution count is an integer");
        let (tasks, yields) = if mode == "w1" { (4, 1000) } else { (2, 3) };
        let (_, steps) = measure(&mut sim, tasks, yields, count);
        println!("{mode} x{count}: {steps} steps");
        return;
    }
    let repeats = 7;
    println!("machine: {} cores", std::thread::available_parallelism().map_or(0, |n| n.get()));
    println!("medians of {repeats} repeats (min..max in brackets)\n");

    let mut rates = Vec::new();
    for _ in 0..repeats {
        let (elapsed, steps) = measure(&mut sim, 4, 1000, 200);
        rates.push(steps as f64 / elapsed.as_secs_f64() / 1e6);
    }
    let (low, mid, high) = median(rates);
    println!("W1 (4 tasks x 1000 yields): {mid:.1} M steps/s [{low:.1}..{high:.1}]");
    let (_, steps) = measure(&mut sim, 4, 1000, 1);
    let bytes = std::mem::size_of::<u32>();
    println!("  trace: {bytes} bytes per step record ({steps} steps per execution)");

    let mut costs = Vec::new();
    for _ in 0..repeats {
        let (elapsed, _) = measure(&mut sim, 2, 3, 200_000);
        costs.push(elapsed.as_secs_f64() * 1e6 / 200_000.0);
    }
    let (low, mid, high) = median(costs);
    println!(
        "tiny execution (2 tasks x 3 yields, set-up included): {mid:.3} us [{low:.3}..{high:.3}]"
    );
    println!("  = {:.2} M executions/s", 1.0 / mid);

    let mut fresh = Vec::new();
    for _ in 0..repeats {
        let start = Instant::now();
        for seed in 0..20_000u64 {
            let mut sim = Simulation::default();
            black_box(sim.run(seed, || workload(2, 3)));
        }
        fresh.push(start.elapsed().as_secs_f64() * 1e6 / 20_000.0);
    }
    let (low, mid, high) = median(fresh);
    println!("tiny execution with a new Simulation each time: {mid:.3} us [{low:.3}..{high:.3}]");

    println!("\nscaling: tasks x yields (4000 steps per execution)");
    println!("{:>6} {:>14} {:>16}", "tasks", "M steps/s", "executions/s");
    for tasks in [2usize, 4, 8, 16, 32, 64] {
        let yields = 4000 / tasks;
        let mut rates = Vec::new();
        let mut executions = Vec::new();
        for _ in 0..repeats {
            let (elapsed, steps) = measure(&mut sim, tasks, yields, 100);
            rates.push(steps as f64 / elapsed.as_secs_f64() / 1e6);
            executions.push(100.0 / elapsed.as_secs_f64());
        }
        let (_, rate, _) = median(rates);
        let (_, per_second, _) = median(executions);
        println!("{tasks:>6} {rate:>14.1} {per_second:>16.0}");
    }
}
