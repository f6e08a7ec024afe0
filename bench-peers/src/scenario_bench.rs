//! Scenario throughput: every variant of every kdst scenario, default parameters, the default
//! strategy (portfolio), one core. Each variant runs in a child process of this binary so that
//! its peak resident set is its own.

use std::borrow::Cow;
use std::process::Command;
use std::time::{Duration, Instant};

use scenarios::{Expect, Params, Scenario};
use sim_core::strategy::StrategySpec;
use sim_core::{Config, EventKind, Outcome, Races, Simulation, TaskId, Trace};

use crate::machine::peak_rss_kib;
use crate::stats::{Spread, Table, millions, thousands};

/// The command-line flag of a child process: `--child-scenario NAME VARIANT TARGET_MS RUNS`.
pub const CHILD_FLAG: &str = "--child-scenario";

/// The command-line flag of the baseline child: start, report the peak resident set, exit.
pub const BASELINE_FLAG: &str = "--child-baseline";

/// Seeds whose traces are measured for their size (untimed), at most.
const TRACE_SEEDS: u64 = 200;

/// One timed batch over seeds `0..schedules`.
#[derive(Clone, Copy, Debug, Default)]
struct Batch {
    schedules: u64,
    steps: u64,
    virtual_ns: u128,
    wall: Duration,
    failed: u64,
    limits: u64,
}

/// Heap bytes of a trace: 4 per step record, 16 per draw, each event's struct and owned text,
/// and the task names' text.
pub fn trace_bytes(trace: &Trace) -> u64 {
    let records = trace.len() * size_of::<u32>();
    let draws = std::mem::size_of_val(trace.draws());
    let events: usize = trace
        .events()
        .iter()
        .map(|event| {
            let text = match &event.kind {
                EventKind::Message(Cow::Owned(text)) => text.len(),
                _ => 0,
            };
            size_of_val(event) + text
        })
        .sum();
    let names: usize =
        (0..trace.tasks()).map(|task| trace.task_name(TaskId(task as u32)).len()).sum();
    (records + draws + events + names) as u64
}

/// Runs seeds `0..schedules` of `variant`.
fn batch(sim: &mut Simulation, scenario: &dyn Scenario, variant: &str, schedules: u64) -> Batch {
    let params = Params::defaults(scenario);
    let started = Instant::now();
    let mut batch = Batch { schedules, ..Batch::default() };
    for seed in 0..schedules {
        let outcome = scenarios::run(sim, scenario, variant, &params, seed);
        batch.steps += sim.trace().len() as u64;
        batch.virtual_ns += sim.trace().end_time().elapsed_since_start().as_nanos();
        match outcome {
            Outcome::Completed => {}
            Outcome::Failed(_) => batch.failed += 1,
            Outcome::LimitReached(_) => batch.limits += 1,
        }
    }
    batch.wall = started.elapsed();
    batch
}

/// The child's main: calibrates the seed count to about `target` per batch, runs `runs`
/// batches, measures trace sizes, and prints one `batch …` line per batch, then `trace …` and
/// `peak_rss_kib …`.
pub fn child(name: &str, variant: &str, target: Duration, runs: usize) {
    let scenario = scenarios::find(name).unwrap_or_else(|| panic!("no scenario {name}"));
    // As users run it: the portfolio's configuration, race detector on.
    let spec = StrategySpec::PORTFOLIO;
    let mut sim = Simulation::new(spec.config(Config::default())).with_strategy(spec.build());
    let mut schedules = 1u64;
    loop {
        let probe = batch(&mut sim, scenario.as_ref(), variant, schedules);
        if probe.wall >= target / 8 || schedules >= 1 << 24 {
            let scaled = schedules as f64 * target.as_secs_f64() / probe.wall.as_secs_f64();
            schedules = (scaled.ceil() as u64).max(1);
            break;
        }
        schedules *= 4;
    }
    // The same seeds with the detector off (its cost), batches interleaved with the others.
    let off = Config::default().with_races(Races::Off);
    let mut sim_off = Simulation::new(spec.config(off)).with_strategy(spec.build());
    for _ in 0..runs {
        for (label, sim) in [("batch", &mut sim), ("batch-off", &mut sim_off)] {
            let b = batch(sim, scenario.as_ref(), variant, schedules);
            println!(
                "{label} {} {} {} {} {} {}",
                b.schedules,
                b.steps,
                b.virtual_ns,
                b.wall.as_nanos(),
                b.failed,
                b.limits
            );
        }
    }
    let params = Params::defaults(scenario.as_ref());
    let (mut bytes, mut steps) = (0u64, 0u64);
    for seed in 0..schedules.min(TRACE_SEEDS) {
        scenarios::run(&mut sim, scenario.as_ref(), variant, &params, seed);
        bytes += trace_bytes(sim.trace());
        steps += sim.trace().len() as u64;
    }
    println!("trace {bytes} {steps}");
    println!("peak_rss_kib {}", peak_rss_kib().unwrap_or(0));
}

/// What a child reported.
#[derive(Clone, Debug, Default)]
struct Report {
    batches: Vec<Batch>,
    /// The same seeds with the race detector off.
    batches_off: Vec<Batch>,
    trace_bytes: u64,
    trace_steps: u64,
    peak_rss_kib: u64,
}

fn parse(stdout: &str) -> Report {
    let mut report = Report::default();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let number = |index: usize| -> u128 {
            fields.get(index).and_then(|field| field.parse().ok()).expect("a number")
        };
        let batch = || Batch {
            schedules: number(1) as u64,
            steps: number(2) as u64,
            virtual_ns: number(3),
            wall: Duration::from_nanos(number(4) as u64),
            failed: number(5) as u64,
            limits: number(6) as u64,
        };
        match fields.first() {
            Some(&"batch") => report.batches.push(batch()),
            Some(&"batch-off") => report.batches_off.push(batch()),
            Some(&"trace") => {
                report.trace_bytes = number(1) as u64;
                report.trace_steps = number(2) as u64;
            }
            Some(&"peak_rss_kib") => report.peak_rss_kib = number(1) as u64,
            _ => {}
        }
    }
    report
}

fn spawn_child(args: &[String]) -> Report {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let output = Command::new(exe).args(args).output().expect("the child starts");
    assert!(
        output.status.success(),
        "child {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse(&String::from_utf8_lossy(&output.stdout))
}

/// The baseline child: its peak resident set.
pub fn baseline() {
    println!("peak_rss_kib {}", peak_rss_kib().unwrap_or(0));
}

/// The slowest scenario variant, for the targets.
#[derive(Clone, Debug)]
pub struct ScenarioResult {
    /// `scenario variant`.
    pub name: String,
    /// Median steps per second.
    pub steps_per_second: f64,
    /// Median virtual seconds per wall second.
    pub virtual_per_wall: f64,
}

/// Runs every variant of every scenario in its own child; prints the table; returns each
/// variant's medians.
pub fn run(runs: usize, target: Duration) -> Vec<ScenarioResult> {
    eprintln!("scenarios");
    let base = spawn_child(&[BASELINE_FLAG.to_string()]).peak_rss_kib;
    let mut table = Table::new(&[
        "scenario",
        "variant",
        "expected",
        "seeds per batch (failed)",
        "steps per schedule",
        "schedules/s",
        "M steps/s",
        "detector off: M steps/s (on ÷ off)",
        "virtual s per wall s",
        "peak RSS",
        "trace bytes per step",
    ]);
    let mut results = Vec::new();
    for scenario in scenarios::all() {
        for variant in scenario.variants() {
            eprintln!("  {} {}", scenario.name(), variant.name);
            let args = [
                CHILD_FLAG.to_string(),
                scenario.name().to_string(),
                variant.name.to_string(),
                target.as_millis().to_string(),
                runs.to_string(),
            ];
            let report = spawn_child(&args);
            let batches = &report.batches;
            let rate = |f: &dyn Fn(&Batch) -> f64| {
                Spread::of(&batches.iter().map(|b| f(b) / b.wall.as_secs_f64()).collect::<Vec<_>>())
            };
            let schedules = rate(&|b| b.schedules as f64);
            let steps = rate(&|b| b.steps as f64);
            let off = Spread::of(
                &report
                    .batches_off
                    .iter()
                    .map(|b| b.steps as f64 / b.wall.as_secs_f64())
                    .collect::<Vec<_>>(),
            );
            let virtual_time = rate(&|b| b.virtual_ns as f64 / 1e9);
            let first = batches[0];
            let expected = match variant.expect {
                Expect::Holds => "holds".to_string(),
                Expect::Fails(kind, _) => format!("fails ({kind})"),
            };
            let limits =
                if first.limits > 0 { format!(", {} limits", first.limits) } else { String::new() };
            table.row(vec![
                scenario.name().to_string(),
                variant.name.to_string(),
                expected,
                format!("{} ({}{limits})", thousands(first.schedules as f64), first.failed),
                thousands(first.steps as f64 / first.schedules as f64),
                schedules.show(thousands),
                steps.show(millions),
                format!("{} ({:.2})", millions(off.median), steps.median / off.median),
                virtual_time.show(thousands),
                format!("{:.1} MiB", report.peak_rss_kib as f64 / 1024.0),
                format!("{:.1}", report.trace_bytes as f64 / report.trace_steps.max(1) as f64),
            ]);
            results.push(ScenarioResult {
                name: format!("{} {}", scenario.name(), variant.name),
                steps_per_second: steps.median,
                virtual_per_wall: virtual_time.median,
            });
        }
    }
    println!("## Scenario throughput\n");
    println!(
        "Each variant: seeds 0..n with default parameters and the portfolio strategy on one \
         core, race detector on as the portfolio runs by default (failing seeds included: their \
         runs end at the failure; a buggy Go-map variant's end at its first race report), and \
         the same seeds with the detector off for its cost; median [min..max] of \
         {runs} batches of the same seeds, in a child process of its own. Peak RSS is the \
         child's `VmHWM` (an idle child: {:.1} MiB). Trace bytes per step: the last run's trace \
         (4-byte step records, draws, events with their owned text, task names) averaged over \
         the first {TRACE_SEEDS} seeds.\n",
        base as f64 / 1024.0
    );
    println!("{}", table.render());
    results
}
