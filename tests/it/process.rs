//! Processes: a crash aborts every task of the process at its await point (drop-time clean-up
//! runs, the tasks never run again, their joiners learn it), spares every other task, and a
//! restart boots a new incarnation; all of it deterministic.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use sim_core::{
    Outcome, Process, Simulation, crash_current, now, sleep, spawn, spawn_daemon, yield_now,
};

/// Counts its drops: the drop-time clean-up of a task's state.
struct DropCounter(Rc<Cell<u32>>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[derive(Default)]
struct Counts {
    boots: Cell<u32>,
    polls_after_crash: Cell<u32>,
    dropped: Rc<Cell<u32>>,
    outside: Cell<u32>,
    crashed_at: Cell<Option<u64>>,
    log: RefCell<Vec<String>>,
}

/// A process of two workers, one of which spawns a grandchild; a chaos task crashes it at 1.5 s;
/// a task outside the process ticks on.
fn crash_setup(counts: Rc<Counts>, restart: bool) -> impl Fn() {
    move || {
        let counts = counts.clone();
        let inner = counts.clone();
        let process = Process::start("controller", move || {
            let incarnation = inner.boots.get();
            inner.boots.set(incarnation + 1);
            for worker in 0..2 {
                let counts = inner.clone();
                spawn_daemon(format!("controller/worker-{worker}"), async move {
                    let _guard = DropCounter(counts.dropped.clone());
                    if worker == 1 {
                        let counts = counts.clone();
                        spawn_daemon("controller/grandchild", async move {
                            let _guard = DropCounter(counts.dropped.clone());
                            loop {
                                sleep(Duration::from_millis(100)).await;
                                if counts.crashed_at.get().is_some() && incarnation == 0 {
                                    counts
                                        .polls_after_crash
                                        .set(counts.polls_after_crash.get() + 1);
                                }
                            }
                        });
                    }
                    loop {
                        sleep(Duration::from_millis(300)).await;
                        if counts.crashed_at.get().is_some() && incarnation == 0 {
                            counts.polls_after_crash.set(counts.polls_after_crash.get() + 1);
                        }
                        counts.log.borrow_mut().push(format!("{incarnation}/{worker}"));
                    }
                });
            }
        });
        let outside = counts.clone();
        spawn("outside", async move {
            for _ in 0..40 {
                sleep(Duration::from_millis(100)).await;
                outside.outside.set(outside.outside.get() + 1);
            }
        });
        let chaos = counts.clone();
        spawn("chaos", async move {
            sleep(Duration::from_millis(1500)).await;
            assert!(process.is_running());
            if restart {
                chaos.crashed_at.set(Some(now().as_nanos()));
                process.restart();
                assert!(process.is_running());
                assert_eq!(process.incarnation(), 1);
            } else {
                process.crash();
                chaos.crashed_at.set(Some(now().as_nanos()));
                assert!(!process.is_running());
                // Crashing a process that is down does nothing.
                process.crash();
            }
        });
    }
}

#[test]
fn a_crash_aborts_every_task_of_the_process_and_only_those() {
    for seed in 0..100 {
        let counts = Rc::new(Counts::default());
        let outcome = Simulation::default().run(seed, crash_setup(counts.clone(), false));
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
        assert_eq!(counts.boots.get(), 1, "seed {seed}");
        assert_eq!(counts.polls_after_crash.get(), 0, "seed {seed}: an aborted task ran again");
        // Two workers and the grandchild dropped their state when the crash aborted them.
        assert_eq!(counts.dropped.get(), 3, "seed {seed}");
        // The task outside ran to its end.
        assert_eq!(counts.outside.get(), 40, "seed {seed}");
        let before_crash = counts.log.borrow().len();
        assert!((8..=10).contains(&before_crash), "seed {seed}: {before_crash} ticks");
    }
}

#[test]
fn a_restart_boots_a_new_incarnation_from_nothing() {
    for seed in 0..100 {
        let counts = Rc::new(Counts::default());
        let outcome = Simulation::default().run(seed, crash_setup(counts.clone(), true));
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
        assert_eq!(counts.boots.get(), 2, "seed {seed}");
        assert_eq!(counts.polls_after_crash.get(), 0, "seed {seed}");
        let log = counts.log.borrow();
        assert!(log.iter().any(|entry| entry.starts_with("1/")), "seed {seed}: {log:?}");
        let first_new = log.iter().position(|entry| entry.starts_with("1/")).expect("found");
        assert!(log[first_new..].iter().all(|entry| entry.starts_with("1/")), "seed {seed}");
        // When the run ends, the second incarnation's tasks are dropped too (3 + 3).
        drop(log);
        assert_eq!(counts.dropped.get(), 6, "seed {seed}");
    }
}

#[test]
fn a_task_that_crashes_its_own_process_stops_there_and_restarts_after_the_delay() {
    for seed in 0..100 {
        let trace: Rc<RefCell<Vec<(u32, u64)>>> = Rc::default();
        let ran_past = Rc::new(Cell::new(false));
        let (log, past) = (trace.clone(), ran_past.clone());
        let outcome = Simulation::default().run(seed, move || {
            let (log, past) = (log.clone(), past.clone());
            Process::start("worker", move || {
                let (log, past) = (log.clone(), past.clone());
                spawn_daemon("worker/main", async move {
                    let process = Process::current().expect("in a process");
                    log.borrow_mut().push((process.incarnation(), now().as_nanos()));
                    if process.incarnation() == 0 {
                        sleep(Duration::from_secs(1)).await;
                        let never = crash_current(Some(Duration::from_secs(5))).await;
                        past.set(true);
                        match never {}
                    }
                });
            });
            spawn("main", async { sleep(Duration::from_secs(10)).await });
        });
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
        assert!(!ran_past.get(), "seed {seed}");
        let trace = trace.borrow();
        assert_eq!(trace.len(), 2, "seed {seed}: {trace:?}");
        let restarted_after = trace[1].1 - trace[0].1;
        assert!(
            (6_000_000_000..6_000_100_000).contains(&restarted_after),
            "seed {seed}: restarted {restarted_after} ns after boot"
        );
    }
}

#[test]
fn joining_an_aborted_task_says_so() {
    let outcome = Simulation::default().run(3, || {
        let handle = Rc::new(RefCell::new(None));
        let slot = handle.clone();
        let process = Process::start("p", move || {
            *slot.borrow_mut() = Some(spawn("p/task", async {
                sleep(Duration::from_secs(60)).await;
                7
            }));
        });
        spawn("joiner", async move {
            let handle = handle.borrow_mut().take().expect("spawned");
            yield_now().await;
            process.crash();
            let result = handle.result().await;
            let aborted = result.expect_err("the task was aborted");
            assert_eq!(aborted.task.0, 0);
            assert!(aborted.to_string().contains("aborted"));
        });
    });
    // A non-daemon task of a crashed process no longer keeps the run alive.
    assert_eq!(outcome, Outcome::Completed);

    // Awaiting the handle itself is a panic that names the task.
    let outcome = Simulation::default().run(3, || {
        let handle = Rc::new(RefCell::new(None));
        let slot = handle.clone();
        let process = Process::start("p", move || {
            *slot.borrow_mut() = Some(spawn("p/task", async {
                sleep(Duration::from_secs(60)).await;
                7
            }));
        });
        spawn("joiner", async move {
            let handle = handle.borrow_mut().take().expect("spawned");
            process.crash();
            assert_eq!(handle.await, 7);
        });
    });
    let failure = outcome.failure().expect("a panic");
    assert!(failure.message.contains("joined task 0 (p/task), which was aborted"), "{failure}");
}

#[test]
fn crashes_are_deterministic() {
    let run = |seed| {
        let counts = Rc::new(Counts::default());
        let mut sim = Simulation::default();
        sim.run(seed, crash_setup(counts, true));
        (sim.trace().hash(), sim.trace().render())
    };
    for seed in 0..20 {
        let (hash, text) = run(seed);
        assert_eq!(run(seed), (hash, text.clone()), "seed {seed}");
        assert!(text.contains("process controller crashed (3 tasks aborted)"), "{text}");
        assert!(text.contains("process controller restarts (incarnation 1)"), "{text}");
    }
}
