//! The race detector over kdst's own programs: no report on any fixed scenario variant or on a
//! `Mutex`-guarded map over many seeds, and schedules to the first report on every buggy Go-map
//! variant, searched by the portfolio (whose runs detect races by default) from 100 bases.

use kdst_tests::guarded_map;
use scenarios::{Expect, Params};
use sim_core::strategy::StrategySpec;
use sim_core::{Config, FailureKind, Outcome, Simulation};

use crate::stats::{Spread, Table, thousands};

/// Schedules per base at most, for a buggy variant.
const CAP: u64 = 100;

/// What the section found.
pub struct Findings {
    /// Race reports on the fixed variants and the guarded map (the target: none).
    pub false_reports: u64,
    /// Buggy Go-map variants whose median schedules to the first report exceeds 3, as
    /// `name variant (median)`.
    pub slow: Vec<String>,
    /// The highest median over the buggy Go-map variants.
    pub worst_median: f64,
}

fn portfolio() -> Simulation {
    let spec = StrategySpec::PORTFOLIO;
    Simulation::new(spec.config(Config::default())).with_strategy(spec.build())
}

fn is_race(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Failed(failure) if failure.kind == FailureKind::DataRace)
}

/// Runs the section: `seeds` seeds of every fixed variant and of the guarded map, `bases`
/// searches of every buggy Go-map variant; prints its table.
pub fn run(seeds: u64, bases: u64) -> Findings {
    let mut table = Table::new(&[
        "program, variant",
        "expected",
        "race reports / runs (portfolio)",
        "schedules to the first report: median [min..max]",
    ]);
    let mut findings = Findings { false_reports: 0, slow: Vec::new(), worst_median: 0.0 };
    let mut sim = portfolio();
    let reports = (0..seeds).filter(|&seed| is_race(&sim.run(seed, guarded_map))).count() as u64;
    findings.false_reports += reports;
    table.row(vec![
        "Mutex-guarded GoMap (3 workers)".to_string(),
        "holds".to_string(),
        format!("{reports} / {}", thousands(seeds as f64)),
        "—".to_string(),
    ]);
    for scenario in scenarios::all() {
        let params = Params::defaults(scenario.as_ref());
        for variant in scenario.variants() {
            let name = format!("{} {}", scenario.name(), variant.name);
            eprintln!("  race detector: {name}");
            let mut races = |seed: u64| {
                is_race(&scenarios::run(&mut sim, scenario.as_ref(), variant.name, &params, seed))
            };
            match variant.expect {
                Expect::Holds => {
                    let reports = (0..seeds).filter(|&seed| races(seed)).count() as u64;
                    findings.false_reports += reports;
                    table.row(vec![
                        name,
                        "holds".to_string(),
                        format!("{reports} / {}", thousands(seeds as f64)),
                        "—".to_string(),
                    ]);
                }
                Expect::Fails(FailureKind::GoFatal, _) => {
                    let mut found = 0;
                    let schedules: Vec<f64> = (0..bases)
                        .map(|base| {
                            let first = (0..CAP).find(|&index| races((base << 32) + index));
                            found += u64::from(first.is_some());
                            first.map_or(CAP, |index| index + 1) as f64
                        })
                        .collect();
                    let spread = Spread::of(&schedules);
                    if found < bases || spread.median > 3.0 {
                        findings.slow.push(format!("{name} ({})", spread.median));
                    }
                    findings.worst_median = findings.worst_median.max(spread.median);
                    table.row(vec![
                        name,
                        "a Go-map race".to_string(),
                        format!("found in {found} / {bases} searches"),
                        spread.show(|value| format!("{value}")),
                    ]);
                }
                Expect::Fails(..) => {}
            }
        }
    }
    println!("## The race detector\n");
    println!(
        "The portfolio (race detector on by default): {} seeds of every fixed variant and of a \
         Mutex-guarded map (a report there is a false report), and {bases} searches of every \
         buggy Go-map variant from bases b · 2^32 (at most {CAP} schedules each).\n",
        thousands(seeds as f64)
    );
    println!("{}", table.render());
    findings
}
