//! Partial-order reduction in the preemption-bounded DFS (`Dfs::with_reduction`): it must reach
//! every outcome the unreduced search reaches within the same bound, on programs built to make
//! steps dependent in every way the footprints know (shared cells, a mutex, a channel, a
//! notifier, spawns and joins, timers, blocking and staying runnable, deadlocks), and it must run
//! fewer schedules where steps are independent.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use sim_core::footprint::Resource;
use sim_core::strategy::{Dfs, DfsReport, explore_with};
use sim_core::sync::{Mutex, Notify, channel};
use sim_core::{
    ChaCha8Rng, Config, FailureKind, Outcome, RngCore, Simulation, spawn, spawn_daemon, yield_now,
};

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
    /// Spawn a task that keeps the run alive and writes a cell after a yield.
    Spawn(usize, u8),
    /// Wait up to 1 ms of virtual time for a value on the channel (blocks; a timer ends it).
    RecvTimeout,
    /// Sleep 1 ms of virtual time.
    Sleep,
    /// Wait for a value on the channel, without a timeout (`None` once every sender is gone).
    Recv,
    /// Send on the channel, waiting while it is full.
    SendWait(u8),
    /// Wake the longest waiter of the notifier, or leave it a permit.
    NotifyOne,
    /// Wait for the notifier.
    Notified,
    /// Spawn a task that writes a cell after a yield, and wait for it to finish.
    SpawnJoin(usize, u8),
    /// A step that touches nothing shared.
    Local,
}

/// A generated task: a daemon (which does not keep the run alive) or not, and its operations.
#[derive(Clone, Debug)]
struct TaskSpec {
    daemon: bool,
    ops: Vec<Op>,
}

fn program(rng: &mut ChaCha8Rng) -> Vec<TaskSpec> {
    let tasks = 2 + rng.next_u64() % 2;
    (0..tasks)
        .map(|index| {
            let len = 1 + rng.next_u64() % 3;
            let ops = (0..len)
                .map(|_| {
                    let cell = (rng.next_u64() % 2) as usize;
                    let value = (rng.next_u64() % 3) as u8;
                    match rng.next_u64() % 16 {
                        0 | 1 => Op::Read(cell),
                        2 | 3 => Op::Write(cell, value),
                        4 => Op::Locked(cell),
                        5 => Op::Send(value),
                        6 => Op::TryRecv,
                        7 => Op::Spawn(cell, value),
                        8 => Op::RecvTimeout,
                        9 => Op::Sleep,
                        10 => Op::Recv,
                        11 => Op::SendWait(value),
                        12 => Op::NotifyOne,
                        13 => Op::Notified,
                        14 => Op::SpawnJoin(cell, value),
                        _ => Op::Local,
                    }
                })
                .collect();
            // The first task keeps the run alive; the others are daemons one time in four.
            TaskSpec { daemon: index > 0 && rng.next_u64().is_multiple_of(4), ops }
        })
        .collect()
}

/// A shared cell whose steps say what they touch.
struct Shared {
    value: Cell<u8>,
    resource: Resource,
}

/// What a run of a generated program leaves: the cells, and each task's log (read after the
/// run, outside the simulation, so the logs need no footprint).
struct World {
    cells: Vec<Shared>,
    logs: RefCell<Vec<String>>,
}

impl World {
    fn outcome(&self) -> String {
        let values: Vec<u8> = self.cells.iter().map(|cell| cell.value.get()).collect();
        format!("{values:?} {:?}", self.logs.borrow())
    }
}

/// Spawns `tasks`; the world they share goes into `slot`.
fn setup(tasks: &[TaskSpec], slot: &RefCell<Option<Rc<World>>>) {
    let cells = (0..2).map(|_| Shared { value: Cell::new(0), resource: Resource::new() }).collect();
    let world = Rc::new(World { cells, logs: RefCell::new(vec![String::new(); tasks.len()]) });
    *slot.borrow_mut() = Some(world.clone());
    let mutex = Rc::new(Mutex::new(()));
    let notify = Notify::new();
    let (sender, receiver) = channel::bounded::<u8>(1);
    for (index, task) in tasks.iter().enumerate() {
        let ops = task.ops.clone();
        // Only tasks that use the channel hold its ends: dropping an end writes the channel, so
        // a task holding one would depend on every other at its exit.
        let uses_channel = ops.iter().any(|op| {
            matches!(op, Op::Send(_) | Op::TryRecv | Op::RecvTimeout | Op::Recv | Op::SendWait(_))
        });
        let ends = uses_channel.then(|| (sender.clone(), receiver.clone()));
        let (world, mutex, notify) = (world.clone(), mutex.clone(), notify.clone());
        let body = async move {
            let ends = || ends.as_ref().expect("a task with channel operations holds both ends");
            let log = |text: String| world.logs.borrow_mut()[index].push_str(&text);
            for op in ops {
                let cells = &world.cells;
                match op {
                    Op::Read(cell) => {
                        cells[cell].resource.read();
                        log(format!("r{cell}={} ", cells[cell].value.get()));
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
                    Op::Send(value) => log(format!("sent={} ", ends().0.try_send(value).is_ok())),
                    Op::TryRecv => log(format!("recv={:?} ", ends().1.try_recv())),
                    Op::Spawn(cell, value) => {
                        let world = world.clone();
                        spawn(format!("child-of-{index}"), async move {
                            yield_now().await;
                            world.cells[cell].resource.write();
                            world.cells[cell].value.set(value + 10);
                        });
                    }
                    Op::RecvTimeout => {
                        let got = sim_core::timeout(Duration::from_millis(1), ends().1.recv());
                        log(format!("waited={:?} ", got.await.ok().flatten()));
                    }
                    Op::Sleep => {
                        sim_core::sleep(Duration::from_millis(1)).await;
                        log(format!("t={} ", sim_core::now().as_nanos()));
                    }
                    Op::Recv => log(format!("got={:?} ", ends().1.recv().await)),
                    Op::SendWait(value) => {
                        log(format!("sent={} ", ends().0.send(value).await.is_ok()));
                    }
                    Op::NotifyOne => notify.notify_one(),
                    Op::Notified => {
                        notify.notified().await;
                        log("notified ".to_string());
                    }
                    Op::SpawnJoin(cell, value) => {
                        let world = world.clone();
                        let child = spawn(format!("joined-by-{index}"), async move {
                            yield_now().await;
                            world.cells[cell].resource.write();
                            world.cells[cell].value.set(value + 20);
                        });
                        child.await;
                        log("joined ".to_string());
                    }
                    Op::Local => log(".".to_string()),
                }
                yield_now().await;
            }
            log("done".to_string());
        };
        if task.daemon {
            spawn_daemon(format!("daemon-{index}"), body);
        } else {
            spawn(format!("task-{index}"), body);
        }
    }
}

fn zero_cost() -> Config {
    Config::default().with_poll_cost(Duration::ZERO, Duration::ZERO)
}

/// Every outcome of `tasks` over a whole search, and the search's report.
fn outcomes(tasks: &[TaskSpec], dfs: Dfs) -> (BTreeSet<String>, DfsReport) {
    let slot = RefCell::new(None);
    let mut found = BTreeSet::new();
    let mut sim = Simulation::new(zero_cost()).with_strategy(dfs.clone());
    while !dfs.is_complete() {
        let outcome = sim.run(0, || setup(tasks, &slot));
        dfs.record_outcome(&outcome);
        // Blocking operations may leave every task waiting for good: a deadlock is an outcome
        // too (its message names steps, which differ between equivalent schedules, so only
        // the kind counts).
        let end = match &outcome {
            Outcome::Completed => "completed".to_string(),
            Outcome::Failed(failure) if failure.kind == FailureKind::Deadlock => {
                "deadlock".to_string()
            }
            other => panic!("{tasks:?}: {other}"),
        };
        let world: Rc<World> = slot.borrow_mut().take().expect("the setup ran");
        found.insert(format!("{end} {}", world.outcome()));
    }
    let report = dfs.report();
    (found, report)
}

#[test]
fn reduction_reaches_every_outcome_of_the_full_search_within_the_bound() {
    // More programs, or other ones, by hand: KDST_POR_PROGRAMS=3000 KDST_POR_SEED=8.
    let number = |name: &str, default: u64| {
        std::env::var(name).ok().map_or(default, |text| text.parse().expect("a number"))
    };
    let (programs, seed) = (number("KDST_POR_PROGRAMS", 400), number("KDST_POR_SEED", 7));
    let mut rng = sim_core::fork(seed, "programs");
    let (mut full_runs, mut reduced_runs, mut redundant) = (0, 0, 0);
    for program_index in 0..programs {
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
    // The reduction must reduce, even on programs this dense: 2 cells, a mutex, a channel and a
    // notifier that nearly every step touches, and timers (measured: 414,753 runs against
    // 1,370,824).
    assert!(
        reduced_runs * 2 < full_runs,
        "{reduced_runs} reduced runs ({redundant} redundant) against {full_runs}"
    );
}

#[test]
fn independent_tasks_need_one_schedule_per_bound_class() {
    // Three tasks that touch nothing shared: every order is equivalent.
    let tasks = vec![TaskSpec { daemon: false, ops: vec![Op::Local, Op::Local] }; 3];
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
    assert_eq!(
        report.summary,
        format!(
            "all {} schedules within 2 preemptions explored up to the order of independent \
             steps ({} of them redundant), no failure",
            report.schedules, report.redundant
        )
    );
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

/// A reduced search of a scenario at the small settings (`dfs_delays::small`), with the
/// simulator configuration kdst uses for bounded searches (polls cost no virtual time).
fn scenario_search(name: &str, variant: &str, bound: u32) -> (DfsReport, Simulation) {
    let mut target = scenarios::Target::new(name, Some(variant)).expect("registered");
    target.set_params(crate::dfs_delays::small(name)).expect("valid params");
    let mut sim = Simulation::new(
        "dfs:0"
            .parse::<sim_core::strategy::StrategySpec>()
            .expect("known")
            .config(sim_core::Config::default()),
    );
    let dfs = Dfs::with_limit(bound, 200_000).with_reduction();
    let report = explore_with(&mut sim, dfs, || target.setup());
    (report, sim)
}

#[test]
fn reduced_dfs_within_two_preemptions_completes_on_the_scheme_race() {
    let (report, _) = scenario_search("cert-manager-scheme-race", "fixed", 2);
    assert!(report.complete, "{}", report.summary);
    assert_eq!(report.first_failure, None, "{}", report.summary);
    // Without reduction this search passes 300,000 schedules without completing.
    assert!(report.schedules < 2_000, "{}", report.summary);
    let expected = format!(
        "all {} schedules within 2 preemptions explored up to the order of independent steps \
         ({} of them redundant), no failure",
        report.schedules, report.redundant
    );
    assert_eq!(report.summary, expected);
    // The same search twice is the same search.
    let (again, _) = scenario_search("cert-manager-scheme-race", "fixed", 2);
    assert_eq!((again.schedules, again.redundant), (report.schedules, report.redundant));
}

#[test]
fn reduced_dfs_without_preemptions_completes_on_capsule_and_submariner() {
    for name in ["capsule-replication-writes", "submariner-logifchanged"] {
        let (report, _) = scenario_search(name, "fixed", 0);
        assert!(report.complete, "{name}: {}", report.summary);
        assert_eq!(report.first_failure, None, "{name}: {}", report.summary);
    }
}

#[test]
fn reduced_dfs_within_one_preemption_finds_every_buggy_crash_and_it_replays() {
    // Within one preemption, so that CI stays quick: submariner's crash comes at schedule 4,665
    // (within two preemptions the depth-first order reaches it at 136,057; the README has the
    // numbers of both).
    for name in crate::dfs_delays::SCENARIOS {
        let (report, sim) = scenario_search(name, "buggy", 1);
        let Some((_, Outcome::Failed(failure))) = &report.first_failure else {
            panic!("{name}: {}", report.summary);
        };
        assert_eq!(failure.kind, sim_core::FailureKind::GoFatal, "{name}: {failure}");
        assert!(failure.message.starts_with("fatal error: concurrent map"), "{name}: {failure}");
        // The failing schedule replays exactly, with the same configuration.
        let schedule = sim.schedule(name, &[]);
        let mut target = scenarios::Target::new(name, Some("buggy")).expect("registered");
        target.set_params(crate::dfs_delays::small(name)).expect("valid params");
        let mut replay = Simulation::new(
            "dfs:0"
                .parse::<sim_core::strategy::StrategySpec>()
                .expect("known")
                .config(sim_core::Config::default()),
        )
        .with_strategy(sim_core::Replay::new(&schedule));
        let outcome = replay.run(schedule.seed, || target.setup());
        assert_eq!(outcome.failure().map(|f| &f.message), Some(&failure.message), "{name}");
        assert_eq!(replay.trace().hash(), sim.trace().hash(), "{name}");
    }
}
