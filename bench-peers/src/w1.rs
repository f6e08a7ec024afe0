//! W1, scheduling throughput: 4 tasks × 1,000 `yield_now`, and the fixed cost of a tiny
//! execution (2 tasks × 3 yields), under every tool and strategy.

use std::time::Duration;

use shuttle::scheduler::{PctScheduler, RandomScheduler};
use sim_core::strategy::Portfolio;
use sim_core::{Outcome, Pct, Random, Simulation, Strategy};

use crate::stats::{Sample, Spread, Table, Work, calibrate, millions, ratio, thousands, time};
use crate::tools::{Counting, LoomBounds, loom_check, shuttle_run};
use crate::workloads;

/// Tasks and yields per task of the throughput workload.
pub const BIG: (usize, usize) = (4, 1000);

/// Tasks and yields per task of the fixed-cost workload.
pub const TINY: (usize, usize) = (2, 3);

/// Steps of one execution of `tasks × yields`, counted as every tool's: each task runs
/// `yields + 1` stretches between scheduling points.
pub fn nominal_steps((tasks, yields): (usize, usize)) -> u64 {
    (tasks * (yields + 1)) as u64
}

/// A measured configuration: a label, a note, and a closure running `units` units of work.
pub struct Row<'a> {
    /// Tool and strategy.
    pub label: String,
    /// What one unit is, what is counted.
    pub note: String,
    run: Box<dyn FnMut(u64) -> Work + 'a>,
    units: u64,
    /// The timed batches.
    pub samples: Vec<Sample>,
}

impl<'a> Row<'a> {
    fn new(label: &str, note: &str, run: impl FnMut(u64) -> Work + 'a) -> Row<'a> {
        Row {
            label: label.to_string(),
            note: note.to_string(),
            run: Box::new(run),
            units: 0,
            samples: Vec::new(),
        }
    }

    /// Executions per second over the samples.
    pub fn executions_per_second(&self) -> Spread {
        Spread::of(&self.samples.iter().map(Sample::executions_per_second).collect::<Vec<_>>())
    }

    /// Steps per second over the samples.
    pub fn steps_per_second(&self) -> Spread {
        Spread::of(&self.samples.iter().map(Sample::steps_per_second).collect::<Vec<_>>())
    }

    /// Microseconds per execution over the samples.
    pub fn micros_per_execution(&self) -> Spread {
        Spread::of(&self.samples.iter().map(Sample::micros_per_execution).collect::<Vec<_>>())
    }
}

/// Calibrates every row to about `target` per batch, then times `runs` rounds, each round
/// timing every row once (so that drift in the machine's speed hits every row alike).
pub fn measure(rows: &mut [Row<'_>], runs: usize, target: Duration) {
    for row in rows.iter_mut() {
        eprintln!("  calibrating {}", row.label);
        row.units = calibrate(target, &mut row.run);
    }
    for round in 0..runs {
        eprintln!("  round {}/{runs}", round + 1);
        for row in rows.iter_mut() {
            let sample = time(row.units, &mut row.run);
            row.samples.push(sample);
        }
    }
}

fn kdst_row<'a>(
    label: &str,
    strategy: Box<dyn Strategy>,
    shape: (usize, usize),
    fresh: bool,
) -> Row<'a> {
    let mut sim = Simulation::default();
    sim.set_strategy(strategy);
    let per_execution = nominal_steps(shape);
    let mut seed = 0u64;
    let note = if fresh {
        "one execution per unit, a new `Simulation` each"
    } else {
        "one execution per unit, one reused `Simulation`"
    };
    Row::new(label, note, move |units| {
        for _ in 0..units {
            seed += 1;
            let outcome = if fresh {
                Simulation::default().run(seed, || workloads::kdst::yields(shape.0, shape.1))
            } else {
                sim.run(seed, || workloads::kdst::yields(shape.0, shape.1))
            };
            assert!(matches!(outcome, Outcome::Completed), "W1 completes: {outcome}");
        }
        Work { executions: units, steps: units * per_execution }
    })
}

/// The shuttle scheduler of a row.
#[derive(Clone, Copy, Debug)]
enum ShuttleStrategy {
    Random,
    Pct3,
}

/// How a shuttle row runs the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ShuttleMode {
    /// Threads, one `Runner` for all the unit's executions.
    Threads,
    /// Async tasks on shuttle's executor, one `Runner`.
    Async,
    /// Threads, a new `Runner` for every execution.
    FreshRunner,
}

fn shuttle_row<'a>(
    label: &str,
    strategy: ShuttleStrategy,
    mode: ShuttleMode,
    shape: (usize, usize),
) -> Row<'a> {
    let per_execution = nominal_steps(shape);
    let mut seed = 0u64;
    let note = match mode {
        ShuttleMode::Threads => "threads; one `Runner` runs all the batch's executions",
        ShuttleMode::Async => "async tasks (`shuttle::future`); one `Runner`",
        ShuttleMode::FreshRunner => "threads; a new `Runner` for every execution",
    };
    let (tasks, yields) = shape;
    let batch = move |seed: u64, executions: u64| -> u64 {
        let n = usize::try_from(executions).expect("fits");
        let test = move || match mode {
            ShuttleMode::Async => workloads::shuttle_async::yields(tasks, yields),
            _ => workloads::shuttle::yields(tasks, yields),
        };
        match strategy {
            ShuttleStrategy::Random => shuttle_run(RandomScheduler::new_from_seed(seed, n), test),
            ShuttleStrategy::Pct3 => shuttle_run(PctScheduler::new_from_seed(seed, 3, n), test),
        }
    };
    Row::new(label, note, move |units| {
        let executions = if mode == ShuttleMode::FreshRunner {
            (0..units)
                .map(|_| {
                    seed += 1;
                    batch(seed, 1)
                })
                .sum()
        } else {
            seed += 1;
            batch(seed, units)
        };
        assert_eq!(executions, units, "shuttle ran every execution asked for");
        Work { executions, steps: executions * per_execution }
    })
}

fn loom_row<'a>(label: &str, preemptions: Option<usize>, shape: (usize, usize)) -> Row<'a> {
    let per_execution = nominal_steps(shape);
    let (tasks, yields) = shape;
    let bounds = LoomBounds::exhaustive(preemptions, per_execution);
    Row::new(
        label,
        "one exhaustive DPOR check per unit (every execution loom explores)",
        move |units| {
            let executions: u64 = (0..units)
                .map(|_| loom_check(bounds, move || workloads::loom::yields(tasks, yields)))
                .sum();
            Work { executions, steps: executions * per_execution }
        },
    )
}

/// The rows of one W1 table, for `shape`.
fn rows<'a>(shape: (usize, usize), fixed_cost: bool) -> Vec<Row<'a>> {
    let mut rows = vec![
        kdst_row("kdst random", Box::new(Random::new()), shape, false),
        kdst_row("kdst PCT(3)", Box::new(Pct::new(3)), shape, false),
        kdst_row("kdst portfolio (default)", Box::new(Portfolio::new()), shape, false),
    ];
    if fixed_cost {
        rows.push(kdst_row("kdst random, new Simulation", Box::new(Random::new()), shape, true));
    }
    rows.push(shuttle_row("shuttle random", ShuttleStrategy::Random, ShuttleMode::Threads, shape));
    rows.push(shuttle_row("shuttle PCT(3)", ShuttleStrategy::Pct3, ShuttleMode::Threads, shape));
    rows.push(shuttle_row(
        "shuttle random, async tasks",
        ShuttleStrategy::Random,
        ShuttleMode::Async,
        shape,
    ));
    if fixed_cost {
        rows.push(shuttle_row(
            "shuttle random, new Runner",
            ShuttleStrategy::Random,
            ShuttleMode::FreshRunner,
            shape,
        ));
    }
    rows.push(loom_row("loom DPOR, no preemption bound", None, shape));
    rows.push(loom_row("loom DPOR, preemption bound 2", Some(2), shape));
    rows
}

/// What W1 found, for the targets.
#[derive(Clone, Copy, Debug)]
pub struct W1Result {
    /// kdst random over shuttle random (threads), in steps/s, median.
    pub throughput_ratio: f64,
    /// kdst random over shuttle random (async tasks), in steps/s, median.
    pub throughput_ratio_async: f64,
    /// kdst random's cost per tiny execution over shuttle random's (one Runner), median.
    pub fixed_cost_ratio: f64,
    /// The same against shuttle with a new Runner per execution.
    pub fixed_cost_ratio_fresh: f64,
}

fn find<'r, 'a>(rows: &'r [Row<'a>], label: &str) -> &'r Row<'a> {
    rows.iter().find(|row| row.label == label).expect("a known row")
}

/// Checks that counting steps nominally matches kdst's trace, and reports what shuttle's
/// scheduler and loom's DPOR do per execution.
fn calibration_notes(shape: (usize, usize)) -> String {
    let (tasks, yields) = shape;
    let mut sim = Simulation::default();
    let outcome = sim.run(1, || workloads::kdst::yields(tasks, yields));
    assert!(matches!(outcome, Outcome::Completed));
    let kdst_steps = sim.trace().len() as u64;
    assert_eq!(kdst_steps, nominal_steps(shape), "kdst's trace counts tasks × (yields + 1)");
    let (scheduler, counters) = Counting::new(RandomScheduler::new_from_seed(1, 1));
    shuttle_run(scheduler, move || workloads::shuttle::yields(tasks, yields));
    let decisions = counters.decisions.get();
    let steps = nominal_steps(shape);
    let unbounded = loom_check(LoomBounds::exhaustive(None, steps), move || {
        workloads::loom::yields(tasks, yields)
    });
    let bounded = loom_check(LoomBounds::exhaustive(Some(2), steps), move || {
        workloads::loom::yields(tasks, yields)
    });
    format!(
        "Steps per execution of {tasks} × {yields}: {} counted for every tool (kdst's \
         trace: {kdst_steps}; shuttle's scheduler makes {decisions} decisions, the main \
         thread's spawns and joins included). loom's exhaustive DPOR check is {unbounded} \
         executions without a preemption bound and {bounded} with bound 2 (`max_branches` \
         {}: loom's default 1,000 or twice the steps, whichever is larger).",
        nominal_steps(shape),
        LoomBounds::exhaustive(None, steps).branches
    )
}

/// Runs W1; prints its two tables; returns the ratios the targets need.
pub fn run(runs: usize, target: Duration) -> W1Result {
    println!("## W1: scheduling throughput\n");
    eprintln!("W1 throughput ({} tasks × {} yields)", BIG.0, BIG.1);
    println!("{}\n", calibration_notes(BIG));
    let mut big = rows(BIG, false);
    measure(&mut big, runs, target);
    let shuttle = find(&big, "shuttle random").steps_per_second().median;
    let shuttle_async = find(&big, "shuttle random, async tasks").steps_per_second().median;
    let mut table = Table::new(&[
        "tool, strategy",
        "executions/s",
        "M steps/s",
        "steps/s ÷ shuttle random",
        "unit",
    ]);
    for row in &big {
        table.row(vec![
            row.label.clone(),
            row.executions_per_second().show(thousands),
            row.steps_per_second().show(millions),
            ratio(row.steps_per_second().median / shuttle),
            row.note.clone(),
        ]);
    }
    println!(
        "{} tasks × {} `yield_now` per execution; median [min..max] of {runs} batches.\n",
        BIG.0, BIG.1
    );
    println!("{}", table.render());
    let kdst = find(&big, "kdst random").steps_per_second().median;

    eprintln!("W1 fixed cost ({} tasks × {} yields)", TINY.0, TINY.1);
    println!("### Per-execution fixed cost\n");
    println!("{}\n", calibration_notes(TINY));
    let mut tiny = rows(TINY, true);
    measure(&mut tiny, runs, target);
    let shuttle_cost = find(&tiny, "shuttle random").micros_per_execution().median;
    let mut table = Table::new(&[
        "tool, strategy",
        "µs per execution",
        "executions/s",
        "cost ÷ shuttle random",
        "unit",
    ]);
    for row in &tiny {
        table.row(vec![
            row.label.clone(),
            row.micros_per_execution().show(|v| format!("{v:.3}")),
            row.executions_per_second().show(thousands),
            ratio(row.micros_per_execution().median / shuttle_cost),
            row.note.clone(),
        ]);
    }
    println!(
        "{} tasks × {} `yield_now` per execution, set-up and tear-down included; median \
         [min..max] of {runs} batches.\n",
        TINY.0, TINY.1
    );
    println!("{}", table.render());
    let kdst_cost = find(&tiny, "kdst random").micros_per_execution().median;
    let fresh_cost = find(&tiny, "shuttle random, new Runner").micros_per_execution().median;
    W1Result {
        throughput_ratio: kdst / shuttle,
        throughput_ratio_async: kdst / shuttle_async,
        fixed_cost_ratio: kdst_cost / shuttle_cost,
        fixed_cost_ratio_fresh: kdst_cost / fresh_cost,
    }
}
