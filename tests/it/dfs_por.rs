//! Partial-order reduction in the preemption-bounded DFS (`Dfs::with_reduction`): it must reach
//! every outcome the unreduced search reaches within the same bound, on programs built to make
//! steps dependent in every way the footprints know (shared cells, a mutex, a channel, blocking
//! and staying runnable), and it must run fewer schedules where steps are independent.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use sim_core::footprint::Resource;
use sim_core::strategy::{Dfs, DfsReport, explore_with};
use sim_core::sync::{Mutex, channel};
use sim_core::{ChaCha8Rng, Config, Outcome, RngCore, Simulation, spawn, yield_now};

/// One operation of a generated task; each ends with a scheduling point.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// Read a shared cell into the task's log.
    Read(usize),
    /// Write a value to a shared cell.
    Write(usize, u8),
    /// Lock the mutex, read-modify-write a cell inside it across a yield, unlock.
    Locked(usize),
    /// Send on the channel if there is room (capacity 1; never blocks).
    Send(u8),
    /// Receive from the channel if a value is there (never blocks).
    TryRecv,
    /// A step that touches nothing shared.
    Local,
}

fn program(rng: &mut ChaCha8Rng) -> Vec<Vec<Op>> {
    let tasks = 2 + rng.next_u64() % 2;
    (0..tasks)
        .map(|_| {
            let len = 1 + rng.next_u64() % 3;
            (0..len)
                .map(|_| {
                    let cell = (rng.next_u64() % 2) as usize;
                    match rng.next_u64() % 8 {
                        0 | 1 => Op::Read(cell),
                        2 | 3 => Op::Write(cell, (rng.next_u64() % 3) as u8),
                        4 => Op::Locked(cell),
                        5 => Op::Send((rng.next_u64() % 3) as u8),
                        6 => Op::TryRecv,
                        _ => Op::Local,
                    }
                })
                .collect()
        })
        .collect()
}

/// A shared cell whose steps say what they touch.
struct Shared {
    value: Cell<u8>,
    resource: Resource,
}

/// Runs `tasks` as a program; its outcome (cells and every task's log) goes into `outcomes`.
fn setup(tasks: &[Vec<Op>], outcomes: &Rc<RefCell<BTreeSet<String>>>) {
    let cells: Rc<Vec<Shared>> = Rc::new(
        (0..2).map(|_| Shared { value: Cell::new(0), resource: Resource::new() }).collect(),
    );
    let mutex = Rc::new(Mutex::new(()));
    let (sender, receiver) = channel::bounded::<u8>(1);
    let logs: Rc<RefCell<Vec<String>>> = Rc::new(RefCell::new(vec![String::new(); tasks.len()]));
    let finished = Rc::new(Cell::new(0));
    for (index, ops) in tasks.iter().enumerate() {
        let ops = ops.clone();
        let (cells, mutex, sender, receiver) =
            (cells.clone(), mutex.clone(), sender.clone(), receiver.clone());
        let (logs, finished, outcomes) = (logs.clone(), finished.clone(), outcomes.clone());
        let count = tasks.len();
        spawn(format!("task-{index}"), async move {
            let mut log = String::new();
            for op in ops {
                match op {
                    Op::Read(cell) => {
                        cells[cell].resource.read();
                        log.push_str(&format!("r{cell}={} ", cells[cell].value.get()));
                    }
                    Op::Write(cell, value) => {
                        cells[cell].resource.write();
                        cells[cell].value.set(value);
                    }
                    Op::Locked(cell) => {
                        let _guard = mutex.lock().await;
                        cells[cell].resource.read();
                        let seen = cells[cell].value.get();
                        yield_now().await;
                        cells[cell].resource.write();
                        cells[cell].value.set(seen.wrapping_add(1));
                    }
                    Op::Send(value) => {
                        log.push_str(&format!("sent={} ", sender.try_send(value).is_ok()))
                    }
                    Op::TryRecv => log.push_str(&format!("recv={:?} ", receiver.try_recv())),
                    Op::Local => log.push('.'),
                }
                yield_now().await;
            }
            logs.borrow_mut()[index] = log;
            // The last task to finish writes the outcome: that order is itself shared state.
            Resource::named("finished").write();
            finished.set(finished.get() + 1);
            if finished.get() == count {
                let values: Vec<u8> = cells.iter().map(|cell| cell.value.get()).collect();
                outcomes.borrow_mut().insert(format!("{values:?} {:?}", logs.borrow()));
            }
        });
    }
}

fn zero_cost() -> Config {
    Config::default().with_poll_cost(Duration::ZERO, Duration::ZERO)
}

/// Every outcome of `tasks` within `bound` preemptions, and the search's report.
fn outcomes(tasks: &[Vec<Op>], dfs: Dfs) -> (BTreeSet<String>, DfsReport) {
    let found = Rc::new(RefCell::new(BTreeSet::new()));
    let mut sim = Simulation::new(zero_cost());
    let report = explore_with(&mut sim, dfs.clone(), || setup(tasks, &found));
    assert!(report.complete, "{tasks:?}: {}", report.summary);
    assert_eq!(report.first_failure, None, "{tasks:?}");
    let found = found.borrow().clone();
    (found, report)
}

#[test]
fn reduction_reaches_every_outcome_of_the_full_search_within_the_bound() {
    let mut rng = sim_core::fork(7, "programs");
    let (mut full_runs, mut reduced_runs, mut redundant) = (0, 0, 0);
    for program_index in 0..150 {
        let tasks = program(&mut rng);
        for bound in 0..=2 {
            let (full, full_report) = outcomes(&tasks, Dfs::new(bound));
            let (reduced, report) = outcomes(&tasks, Dfs::new(bound).with_reduction());
            let missed: Vec<&String> = full.difference(&reduced).collect();
            assert!(
                missed.is_empty(),
                "program {program_index} {tasks:?} within {bound} preemptions: the reduced \
                 search ({}) missed {missed:?}",
                report.summary
            );
            assert!(report.schedules <= full_report.schedules, "{tasks:?}");
            full_runs += full_report.schedules;
            reduced_runs += report.schedules;
            redundant += report.redundant;
        }
    }
    // The reduction must reduce, even on programs this dense: 2 cells, a mutex and a channel
    // that nearly every step touches (measured: 19,220 runs against 31,426).
    assert!(
        reduced_runs * 10 < full_runs * 7,
        "{reduced_runs} reduced runs ({redundant} redundant) against {full_runs}"
    );
}

#[test]
fn independent_tasks_need_one_schedule_per_bound_class() {
    // Three tasks that touch nothing shared: every order is equivalent.
    let tasks = vec![vec![Op::Local, Op::Local]; 3];
    let (full, full_report) = outcomes(&tasks, Dfs::new(2));
    let (reduced, report) = outcomes(&tasks, Dfs::new(2).with_reduction());
    assert_eq!(full, reduced);
    assert_eq!(full.len(), 1);
    assert!(
        report.schedules * 4 < full_report.schedules,
        "{} reduced against {} full",
        report.schedules,
        full_report.schedules
    );
    assert!(report.summary.starts_with(&format!(
        "all {} schedules within 2 preemptions up to the order of independent steps ({} \
         redundant) explored, no failure",
        report.schedules, report.redundant
    )));
}

#[test]
fn reduction_still_finds_a_go_map_crash() {
    let mut sim = Simulation::new(zero_cost());
    let report = explore_with(&mut sim, Dfs::new(2).with_reduction(), || {
        let map = sim_core::GoMap::new("processed");
        for worker in 0..2 {
            let map = map.clone();
            spawn(format!("worker-{worker}"), async move {
                map.insert(worker, "synced").await;
            });
        }
    });
    let (_, outcome) = report.first_failure.expect("the racing writes crash");
    match outcome {
        Outcome::Failed(failure) => {
            assert_eq!(failure.message, sim_core::CONCURRENT_WRITES);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
#[should_panic(expected = "partial-order reduction is for preemption-bounded searches")]
fn reduction_refuses_a_delay_bound() {
    let _ = Dfs::bounded(sim_core::strategy::BoundKind::Delays, 2, u64::MAX).with_reduction();
}
