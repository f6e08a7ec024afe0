//! The numbers behind the README's scenario tables.
//!
//! ```sh
//! # Seeds to the first failure of every buggy variant, from 100 different base seeds
//! # (base b starts at seed b × 1,000,003): median and maximum. The strategy is the portfolio
//! # with the swarm unless named (random, pct, pct:D).
//! cargo run --release -p scenarios --example survey -- first-failures [STRATEGY]
//!
//! # Every fixed variant over N seeds (default 100,000), on every core, with the portfolio and
//! # the swarm unless a strategy is named: failures, steps, virtual time, wall time.
//! cargo run --release -p scenarios --example survey -- hold 100000 [STRATEGY]
//! ```
//!
//! Exit code 0 when every buggy variant failed from every base and no fixed variant failed,
//! 1 otherwise, 2 on bad arguments.
#![allow(clippy::disallowed_methods)]

use std::process::ExitCode;
use std::time::Instant;

use scenarios::{Expect, Scenario, Target, all};
use sim_core::strategy::StrategySpec;
use sim_core::{Outcome, Simulation};

/// Seeds tried from one base before giving up.
const SEARCH_MAX: u64 = 1_000;

fn first_failures(bases: u64, strategy: StrategySpec) -> bool {
    let mut ok = true;
    let swarm = strategy.swarms();
    println!("strategy {strategy}{}", if swarm { " with the swarm" } else { "" });
    println!("| scenario | variant | median seeds to first failure | max | bases that failed |");
    println!("|---|---|---|---|---|");
    for scenario in all() {
        for variant in scenario.variants() {
            if variant.expect == Expect::Holds {
                continue;
            }
            let target = Target::new(scenario.name(), Some(variant.name))
                .expect("a registered variant")
                .with_swarm(swarm);
            let mut sim = Simulation::default();
            sim.set_strategy(strategy.build());
            let mut counts = Vec::new();
            for base in 0..bases {
                let start = base * 1_000_003;
                let found = (0..SEARCH_MAX)
                    .find(|offset| target.run(&mut sim, start + offset).is_failure());
                if let Some(offset) = found {
                    counts.push(offset + 1);
                }
            }
            let failed = counts.len();
            counts.sort_unstable();
            let (median, max) = match counts.len() {
                0 => ("-".to_string(), "-".to_string()),
                n => (counts[n / 2].to_string(), counts[n - 1].to_string()),
            };
            ok &= failed as u64 == bases;
            println!(
                "| {} | {} | {median} | {max} | {failed} of {bases} (within {SEARCH_MAX}) |",
                scenario.name(),
                variant.name
            );
        }
    }
    ok
}

/// Runs seeds `range` of one fixed variant; (failures, steps, virtual ns).
fn hold_range(
    scenario: &dyn Scenario,
    variant: &str,
    strategy: StrategySpec,
    seeds: std::ops::Range<u64>,
) -> (Vec<String>, u64, u128) {
    let target = Target::new(scenario.name(), Some(variant))
        .expect("a registered variant")
        .with_swarm(strategy.swarms());
    let mut sim = Simulation::default();
    sim.set_strategy(strategy.build());
    let (mut failures, mut steps, mut virtual_ns) = (Vec::new(), 0u64, 0u128);
    for seed in seeds {
        let outcome = target.run(&mut sim, seed);
        steps += sim.trace().len() as u64;
        virtual_ns += sim.trace().end_time().elapsed_since_start().as_nanos();
        if outcome != Outcome::Completed {
            failures.push(format!("seed {seed}: {outcome}"));
        }
    }
    (failures, steps, virtual_ns)
}

fn hold(seeds: u64, strategy: StrategySpec) -> bool {
    let threads = std::thread::available_parallelism().map_or(1, usize::from) as u64;
    let mut ok = true;
    println!("strategy {strategy}");
    println!("| scenario | variant | seeds | failures | steps | virtual time | wall time |");
    println!("|---|---|---|---|---|---|---|");
    for (index, scenario) in all().iter().enumerate() {
        for variant in scenario.variants() {
            if variant.expect != Expect::Holds {
                continue;
            }
            let start = Instant::now();
            let chunk = seeds.div_ceil(threads);
            let results: Vec<(Vec<String>, u64, u128)> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let range = (t * chunk).min(seeds)..((t + 1) * chunk).min(seeds);
                        let name = variant.name;
                        scope.spawn(move || {
                            let scenario = &all()[index];
                            hold_range(scenario.as_ref(), name, strategy, range)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().expect("worker")).collect()
            });
            let failures: Vec<&String> = results.iter().flat_map(|r| &r.0).collect();
            let steps: u64 = results.iter().map(|r| r.1).sum();
            let virtual_s = results.iter().map(|r| r.2).sum::<u128>() as f64 / 1e9;
            ok &= failures.is_empty();
            println!(
                "| {} | {} | {seeds} | {} | {steps} | {virtual_s:.0} s | {:.1} s |",
                scenario.name(),
                variant.name,
                failures.len(),
                start.elapsed().as_secs_f64()
            );
            for failure in failures.iter().take(3) {
                println!("    {failure}");
            }
        }
    }
    ok
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ok = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["first-failures"] => first_failures(100, StrategySpec::PORTFOLIO),
        ["first-failures", strategy] => match strategy.parse::<StrategySpec>() {
            Ok(strategy) => first_failures(100, strategy),
            Err(message) => {
                eprintln!("survey: {message}");
                return ExitCode::from(2);
            }
        },
        ["hold"] => hold(100_000, StrategySpec::PORTFOLIO),
        ["hold", n] | ["hold", n, _] => match n.parse() {
            Ok(n) => {
                let strategy = args.get(2).map_or("portfolio", String::as_str);
                match strategy.parse::<StrategySpec>() {
                    Ok(strategy) => hold(n, strategy),
                    Err(message) => {
                        eprintln!("survey: {message}");
                        return ExitCode::from(2);
                    }
                }
            }
            Err(_) => {
                eprintln!("survey: {n:?} is not a number of seeds");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("usage: survey first-failures [STRATEGY] | survey hold [SEEDS [STRATEGY]]");
            return ExitCode::from(2);
        }
    };
    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
