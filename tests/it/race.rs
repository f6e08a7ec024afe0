//! The race detector: Go's happens-before over sim-core's primitives, reports in Go's shape, no
//! report where the accesses are ordered, the same report from the same seed.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use kdst_tests::{assert_all_complete, failed, first_failure, guarded_map, two_writers};
use sim_core::race::{RaceVar, io_read, io_write};
use sim_core::strategy::StrategySpec;
use sim_core::sync::{Notify, RwLock, WaitGroup, channel, oneshot};
use sim_core::{
    Config, FailureKind, GoMap, Outcome, Races, Simulation, SyncMap, sleep, spawn, yield_now,
};

fn racing() -> Simulation {
    Simulation::new(Config::default().with_races(Races::On))
}

#[test]
fn two_unordered_writers_are_a_race_in_every_schedule_with_gos_report() {
    let mut sim = racing();
    for seed in 0..200 {
        let failure = failed(sim.run(seed, two_writers), FailureKind::DataRace);
        assert!(failure.message.starts_with("WARNING: DATA RACE: write at map \"processed\""));
        let report = &failure.details;
        assert!(report.starts_with("==================\nWARNING: DATA RACE\nWrite at map"));
        assert!(report.ends_with("=================="), "{report}");
        assert!(report.contains("\nPrevious write at map \"processed\" by goroutine"), "{report}");
        assert!(
            report.contains("  runtime.mapassign()\n  processed.Insert()\n  HandleSection()\n"),
            "{report}"
        );
        assert!(report.contains(" (running) created at:\n  // by the setup"), "{report}");
        assert_eq!(failure.involved.len(), 1, "{report}");
    }
}

#[test]
fn the_crash_oracle_alone_stays_what_it_was_with_the_detector_off() {
    let mut off = Simulation::new(Config::default().with_races(Races::Off));
    let (_, outcome) = first_failure(&mut off, 1_000, two_writers).expect("a crash");
    let failure = failed(outcome, FailureKind::GoFatal);
    assert_eq!(failure.message, sim_core::CONCURRENT_WRITES);
    // Auto is off outside the portfolio.
    let (_, outcome) =
        first_failure(&mut Simulation::default(), 1_000, two_writers).expect("crash");
    failed(outcome, FailureKind::GoFatal);
}

#[test]
fn the_portfolio_detects_races_by_default_and_a_switch_turns_it_off() {
    let on = StrategySpec::PORTFOLIO.config(Config::default());
    assert_eq!(on.races, Races::On);
    let off = StrategySpec::PORTFOLIO.config(Config::default().with_races(Races::Off));
    assert_eq!(off.races, Races::Off);
    assert_eq!(StrategySpec::Random.config(Config::default()).races, Races::Off);
    let mut sim = Simulation::new(on).with_strategy(StrategySpec::PORTFOLIO.build());
    failed(sim.run(0, two_writers), FailureKind::DataRace);
}

#[test]
fn a_mutex_orders_the_accesses_it_guards_over_10000_seeds() {
    assert_all_complete(&mut racing(), 10_000, guarded_map);
}

#[test]
fn one_access_outside_the_lock_is_a_race_though_it_never_overlaps() {
    let setup = || {
        let map: GoMap<u32, u32> = GoMap::new("pods");
        let lock = Rc::new(RwLock::named("mu", ()));
        let (writer_map, writer_lock) = (map.clone(), lock.clone());
        spawn("writer", async move {
            let _held = writer_lock.write().await;
            writer_map.insert(1, 1).await;
        });
        spawn("reader", async move {
            // Waits until the writer is done, by time alone: no happens-before.
            sleep(Duration::from_secs(1)).await;
            let _ = map.get(&1).await;
        });
    };
    let mut sim = racing();
    for seed in 0..100 {
        let failure = failed(sim.run(seed, setup), FailureKind::DataRace);
        assert!(failure.message.contains("read at map \"pods\""), "{failure}");
        assert!(failure.message.contains("previous write"), "{failure}");
    }
    // Without the detector no schedule crashes: the accesses never overlap.
    let mut off = Simulation::new(Config::default().with_races(Races::Off));
    assert_all_complete(&mut off, 100, setup);
}

#[test]
fn rlock_readers_are_ordered_after_writers_and_writers_after_readers() {
    let setup = || {
        let map: GoMap<u32, u32> = GoMap::new("pods");
        let lock = Rc::new(RwLock::named("mu", ()));
        for worker in 0..2u32 {
            let (map, lock) = (map.clone(), lock.clone());
            spawn(format!("writer-{worker}"), async move {
                let _held = lock.write().await;
                map.insert(worker, worker).await;
            });
        }
        for reader in 0..2u32 {
            let (map, lock) = (map.clone(), lock.clone());
            spawn(format!("reader-{reader}"), async move {
                let _held = lock.read().await;
                let _ = map.get(&reader).await;
            });
        }
    };
    assert_all_complete(&mut racing(), 2_000, setup);
}

#[test]
fn spawn_join_channels_oneshots_waitgroups_and_notify_order_handoffs() {
    let setup = || {
        let shared = Rc::new(RaceVar::new("state"));
        // spawn: the parent's write before the spawn, the child's after.
        shared.write("setup");
        let parent_var = shared.clone();
        spawn("parent", async move {
            parent_var.write("main.init");
            let child_var = parent_var.clone();
            let child = spawn("child", async move { child_var.write("main.child") });
            // join: the child's end before the join returns.
            child.await;
            parent_var.write("main.afterJoin");
            // channel: a send before its receive.
            let (tx, rx) = channel::bounded::<()>(1);
            let receiver_var = parent_var.clone();
            let receiver = spawn("receiver", async move {
                rx.recv().await;
                receiver_var.write("main.afterRecv");
            });
            parent_var.write("main.beforeSend");
            tx.send(()).await.expect("open");
            receiver.await;
            // oneshot.
            let (once_tx, once_rx) = oneshot::channel::<()>();
            let once_var = parent_var.clone();
            let once = spawn("oneshot", async move {
                once_rx.recv().await.expect("sent");
                once_var.write("main.afterOneshot");
            });
            parent_var.write("main.beforeOneshot");
            let _ = once_tx.send(());
            once.await;
            // wait group: Done before Wait returns.
            let wg = WaitGroup::named("wg");
            wg.add(1);
            let (done_wg, done_var) = (wg.clone(), parent_var.clone());
            spawn("done", async move {
                done_var.write("main.beforeDone");
                done_wg.done();
            });
            wg.wait().await;
            parent_var.write("main.afterWait");
            // notify.
            let notify = Notify::named("ready");
            let (waiter_notify, waiter_var) = (notify.clone(), parent_var.clone());
            let waiter = spawn("waiter", async move {
                waiter_notify.notified().await;
                waiter_var.write("main.afterNotified");
            });
            parent_var.write("main.beforeNotify");
            notify.notify_one();
            waiter.await;
            // sync.Map: its operations are atomic.
            let map: SyncMap<u32, u32> = SyncMap::new();
            let (store_map, store_var) = (map.clone(), parent_var.clone());
            let flag = Rc::new(Cell::new(false));
            let store_flag = flag.clone();
            spawn("store", async move {
                store_var.write("main.beforeStore");
                store_map.store(1, 1).await;
                store_flag.set(true);
            });
            while map.load(&1).await.is_none() {
                yield_now().await;
            }
            parent_var.write("main.afterLoad");
        });
    };
    assert_all_complete(&mut racing(), 2_000, setup);
}

/// A write and an I/O write by one task; a second task sleeps past both, then (when `read`) reads
/// from I/O, and writes.
fn io_handoff(read: bool) -> impl Fn() {
    move || {
        let shared = Rc::new(RaceVar::new("state"));
        let first = shared.clone();
        spawn("first", async move {
            first.write("main.first");
            io_write();
        });
        spawn("second", async move {
            sleep(Duration::from_secs(1)).await;
            if read {
                io_read();
            }
            shared.write("main.second");
        });
    }
}

#[test]
fn an_io_write_orders_before_a_later_io_read_as_gos_iosync_does() {
    // The API server's client marks its requests and responses this way.
    assert_all_complete(&mut racing(), 200, io_handoff(true));
    // Without the read, time alone orders nothing.
    let failure = failed(racing().run(0, io_handoff(false)), FailureKind::DataRace);
    assert!(failure.details.contains("  main.second()\n"), "{}", failure.details);
    assert!(failure.details.contains("Previous write at variable \"state\""));
}

#[test]
fn the_same_seed_gives_the_same_report_and_trace() {
    let racy = || {
        let map: GoMap<u32, u32> = GoMap::new("m");
        for worker in 0..4u32 {
            let map = map.clone();
            spawn(format!("w{worker}"), async move {
                for key in 0..3 {
                    if key % 2 == worker % 2 {
                        map.insert(key, worker).await;
                    } else {
                        let _ = map.get(&key).await;
                    }
                }
            });
        }
    };
    let spec = StrategySpec::PORTFOLIO;
    for seed in 0..50 {
        let mut first = Simulation::new(spec.config(Config::default())).with_strategy(spec.build());
        let mut second =
            Simulation::new(spec.config(Config::default())).with_strategy(spec.build());
        let (a, b) = (first.run(seed, racy), second.run(seed, racy));
        assert_eq!(a, b, "seed {seed}");
        assert!(matches!(&a, Outcome::Failed(f) if f.kind == FailureKind::DataRace), "{a}");
        assert_eq!(first.trace().hash(), second.trace().hash(), "seed {seed}");
    }
}
