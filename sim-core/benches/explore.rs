//! The explorer benchmark: schedules/s with one worker thread against two, on a CPU-bound
//! workload (4 tasks × 250 `yield_now`, 1,000 steps a run), with the default strategy (the
//! portfolio).
//!
//! `cargo bench -p sim-core --bench explore` prints the median of 5 searches per thread count and
//! the ratio; `-- SEEDS` sets the seeds per search (default 40,000). The ratio is at most the
//! number of idle cores: on a machine shared with other work it is lower.
#![allow(clippy::disallowed_methods, missing_docs)]

use sim_core::{Explorer, Outcome, Simulation, spawn, yield_now};

fn workload(sim: &mut Simulation, seed: u64) -> Outcome {
    sim.run(seed, || {
        for index in 0..4 {
            spawn(format!("t{index}"), async {
                for _ in 0..250 {
                    yield_now().await;
                }
            });
        }
    })
}

fn median(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    (values[0], values[values.len() / 2], values[values.len() - 1])
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let seeds: u64 = match args.first() {
        Some(text) => text.parse().expect("the seed count is an integer"),
        None => 40_000,
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {cores} cores; {seeds} seeds per search, median of 5 (min..max)\n");
    let explorer = Explorer::new().seeds(0..seeds);
    // Warm up (page in the code, grow each worker's buffers once).
    explorer.clone().jobs(2).seeds(0..seeds / 10).run(workload);
    let mut rates = [Vec::new(), Vec::new()];
    let mut steps = 0;
    for _ in 0..5 {
        // Alternate, so a burst of load elsewhere on the machine hits both alike.
        for (slot, jobs) in [1, 2].into_iter().enumerate() {
            let summary = explorer.clone().jobs(jobs).run(workload);
            assert_eq!(summary.schedules, seeds);
            steps = summary.steps;
            rates[slot].push(summary.schedules_per_second());
        }
    }
    println!("{} steps per search ({} per schedule)", steps, steps / seeds.max(1));
    let [one, two] = rates;
    let (one_low, one_mid, one_high) = median(one);
    let (two_low, two_mid, two_high) = median(two);
    println!("jobs=1: {one_mid:.0} schedules/s [{one_low:.0}..{one_high:.0}]");
    println!("jobs=2: {two_mid:.0} schedules/s [{two_low:.0}..{two_high:.0}]");
    println!("ratio jobs=2 / jobs=1: {:.2}x", two_mid / one_mid);
}
