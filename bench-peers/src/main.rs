//! # bench-peers: kdst side by side with shuttle and loom
//!
//! One invocation runs every workload under every tool and prints markdown tables with ratios:
//!
//! ```text
//! cargo run --release --manifest-path bench-peers/Cargo.toml            # the full run
//! cargo run --release --manifest-path bench-peers/Cargo.toml -- --quick # a smoke run
//! ... -- --runs 7 --only w1,w2,w3,scenarios
//! ```
//!
//! - **W1** scheduling throughput (4 tasks × 1,000 `yield_now`) and per-execution fixed cost
//!   (2 tasks × 3 yields): [`w1`].
//! - **W2** Go-map crash and **W3** check-then-act recreate: schedules and steps to the first
//!   failure over seeds 1..=50: [`races`].
//! - **The race detector** over kdst's scenarios: no report on a fixed variant, schedules to the
//!   first report on every buggy Go-map variant: [`race_detector`].
//! - **Scenario throughput**: every kdst scenario variant, in a child process each:
//!   [`scenario_bench`].
//!
//! Steps are counted alike for every tool ([`workloads`]); the targets of issue 7 are checked at
//! the end.
#![forbid(unsafe_code)]
// The benchmark times itself with the wall clock; the repository's clippy.toml bans it for code
// under simulation.
#![allow(clippy::disallowed_methods)]

mod machine;
mod race_detector;
mod races;
mod scenario_bench;
mod stats;
mod tools;
mod w1;
mod workloads;

use std::time::Duration;

use races::Workload;
use stats::ratio;

/// The command line.
#[derive(Clone, Debug)]
struct Options {
    quick: bool,
    runs: usize,
    only: Vec<String>,
}

const SECTIONS: [&str; 5] = ["w1", "w2", "w3", "race-detector", "scenarios"];

const USAGE: &str =
    "usage: bench-peers [--quick] [--runs N] [--only w1,w2,w3,race-detector,scenarios]";

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options { quick: false, runs: 0, only: Vec::new() };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--runs" => {
                    let value = args.next().ok_or("--runs needs a number")?;
                    options.runs = value
                        .parse()
                        .ok()
                        .filter(|runs| *runs >= 1)
                        .ok_or(format!("--runs {value}: not a number ≥ 1"))?;
                }
                "--only" => {
                    let value = args.next().ok_or("--only needs a list")?;
                    for section in value.split(',') {
                        if !SECTIONS.contains(&section) {
                            return Err(format!("unknown section {section:?}"));
                        }
                        options.only.push(section.to_string());
                    }
                }
                "--help" | "-h" => return Err(USAGE.to_string()),
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        if options.runs == 0 {
            options.runs = if options.quick { 3 } else { 5 };
        }
        Ok(options)
    }

    fn wants(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }

    /// Wall time per timed batch.
    fn target(&self) -> Duration {
        Duration::from_millis(if self.quick { 40 } else { 400 })
    }

    /// Searches (seeds) per strategy in W2 and W3.
    fn trials(&self) -> u64 {
        if self.quick { 10 } else { 50 }
    }

    /// Schedules per search at most.
    fn cap(&self) -> u64 {
        if self.quick { 2_000 } else { 20_000 }
    }
}

/// Runs one execution under kdst and under shuttle so that each has installed its panic hook,
/// then wraps both in the quiet hook.
pub(crate) fn install_hooks() {
    let mut sim = sim_core::Simulation::default();
    sim.run(0, || workloads::kdst::yields(1, 1));
    let scheduler = shuttle::scheduler::RandomScheduler::new_from_seed(0, 1);
    tools::shuttle_run(scheduler, || workloads::shuttle::yields(1, 1));
    machine::install_quiet_hook();
}

fn met(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**missed**" }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some(scenario_bench::CHILD_FLAG) => {
            let [_, name, variant, millis, runs] = args.as_slice() else {
                panic!("{} NAME VARIANT TARGET_MS RUNS", scenario_bench::CHILD_FLAG);
            };
            let millis = millis.parse().expect("milliseconds");
            let runs = runs.parse().expect("runs");
            scenario_bench::child(name, variant, Duration::from_millis(millis), runs);
            return;
        }
        Some(races::CHILD_FLAG) => {
            let [_, trials, cap, codes @ ..] = args.as_slice() else {
                panic!("{} TRIALS CAP WORKLOAD...", races::CHILD_FLAG);
            };
            races::child(trials.parse().expect("trials"), cap.parse().expect("cap"), codes);
            return;
        }
        Some(scenario_bench::BASELINE_FLAG) => {
            scenario_bench::baseline();
            return;
        }
        _ => {}
    }
    let options = match Options::parse(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    install_hooks();
    let mode = if options.quick { " --quick" } else { "" };
    println!("# kdst, shuttle 0.9.9 and loom 0.7.3 side by side\n");
    println!(
        "`cargo run --release --manifest-path bench-peers/Cargo.toml --{mode} --runs {}`\n",
        options.runs
    );
    println!("Machine: {}.\n", machine::describe());
    let load_at_start = machine::load_average();

    let mut targets = stats::Table::new(&["target", "measured", "verdict"]);
    if options.wants("w1") {
        let result = w1::run(options.runs, options.target());
        targets.row(vec![
            "W1: kdst random ≥ 7× shuttle random in steps/s".to_string(),
            format!(
                "{} (threads); {} against shuttle's async tasks",
                ratio(result.throughput_ratio),
                ratio(result.throughput_ratio_async)
            ),
            met(result.throughput_ratio >= 7.0).to_string(),
        ]);
        targets.row(vec![
            "W1: per-execution fixed cost ≤ 1/10 of shuttle's".to_string(),
            format!(
                "{} of shuttle's (one Runner); {} of shuttle's with a new Runner per execution",
                ratio(result.fixed_cost_ratio),
                ratio(result.fixed_cost_ratio_fresh)
            ),
            met(result.fixed_cost_ratio <= 0.1).to_string(),
        ]);
    }
    let mut workloads = Vec::new();
    if options.wants("w2") {
        workloads.push(Workload::GoMap);
    }
    if options.wants("w3") {
        workloads.extend([Workload::Recreate(2), Workload::Recreate(10)]);
    }
    if !workloads.is_empty() {
        println!("## W2 and W3: schedules to the first failure\n");
    }
    for (workload, verdict) in races::run_in_child(&workloads, options.trials(), options.cap()) {
        if workload == Workload::GoMap {
            targets.row(vec![
                "W2: the race report within 1 schedule, median and max".to_string(),
                format!("{} / {} schedules", verdict.kdst.0, verdict.kdst.1),
                met(verdict.kdst_found_all && verdict.kdst.1 <= 1.0).to_string(),
            ]);
        }
        for (what, kdst, (best, who), ok) in [
            ("median", verdict.kdst.0, verdict.best_median.clone(), verdict.median_met()),
            ("max", verdict.kdst.1, verdict.best_max.clone(), verdict.max_met()),
        ] {
            targets.row(vec![
                format!("{workload}: kdst portfolio ≤ best peer, {what} schedules"),
                format!("{kdst} vs {best} ({who}): {}", ratio(kdst / best)),
                met(ok).to_string(),
            ]);
        }
    }
    if options.wants("race-detector") {
        let (seeds, bases) = if options.quick { (1_000, 20) } else { (10_000, 100) };
        let findings = race_detector::run(seeds, bases);
        targets.row(vec![
            format!(
                "race detector: no report over {} seeds of every fixed variant and the guarded map",
                stats::thousands(seeds as f64)
            ),
            format!("{} reports", findings.false_reports),
            met(findings.false_reports == 0).to_string(),
        ]);
        targets.row(vec![
            format!("race detector: every buggy Go-map variant reported within 3 schedules (median over {bases} bases)"),
            format!(
                "worst median {}; above 3 or not always found: {}",
                findings.worst_median,
                if findings.slow.is_empty() { "none".to_string() } else { findings.slow.join(", ") }
            ),
            met(findings.slow.is_empty()).to_string(),
        ]);
    }
    if options.wants("scenarios") {
        let results = scenario_bench::run(options.runs, options.target() * 2);
        let below = |floor: f64, value: fn(&scenario_bench::ScenarioResult) -> f64| {
            let missed: Vec<String> = results
                .iter()
                .filter(|result| value(result) < floor)
                .map(|result| format!("{} {}", result.name, ratio(value(result) / floor)))
                .collect();
            let (low, high) = results
                .iter()
                .map(value)
                .fold((f64::MAX, 0.0f64), |(l, h), v| (l.min(v), h.max(v)));
            (missed, low, high)
        };
        let (slow, low, high) = below(1e6, |result| result.steps_per_second);
        targets.row(vec![
            "every scenario variant ≥ 1 M steps/s per core".to_string(),
            format!(
                "{}..{} M steps/s over {} variants; below the target (measured ÷ target): {}",
                stats::millions(low),
                stats::millions(high),
                results.len(),
                if slow.is_empty() { "none".to_string() } else { slow.join(", ") }
            ),
            met(slow.is_empty()).to_string(),
        ]);
        let (short, low, high) = below(11_000.0, |result| result.virtual_per_wall);
        targets.row(vec![
            "virtual time per wall time, against a turmoil user's 11,000 : 1".to_string(),
            format!(
                "{}..{} : 1; below 11,000 : 1 (measured ÷ 11,000): {}",
                stats::thousands(low),
                stats::thousands(high),
                if short.is_empty() { "none".to_string() } else { short.join(", ") }
            ),
            met(short.is_empty()).to_string(),
        ]);
    }
    println!("## Targets\n");
    println!("{}", targets.render());
    let show = |load: Option<f64>| load.map_or("unknown".to_string(), |load| format!("{load:.2}"));
    println!(
        "1-minute load average at the start: {}, at the end: {} (the benchmark itself keeps one \
         core busy: well above 1 means another job shared the machine).",
        show(load_at_start),
        show(machine::load_average())
    );
}
