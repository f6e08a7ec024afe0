//! The executor: spawning and joining, daemons, stopping, panics as failures, deadlocks that name
//! the blocked tasks, and the step records.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use kdst_tests::first_failure;
use sim_core::sync::{Mutex, channel};
use sim_core::{
    FailureKind, JoinSet, Outcome, Simulation, TaskId, current, event, sleep, spawn, spawn_daemon,
    stop, task_name, yield_now,
};

#[test]
fn join_handles_return_results_and_tasks_spawn_tasks() {
    let mut sim = Simulation::default();
    for seed in 0..200 {
        let total = Rc::new(Cell::new(0));
        let sink = total.clone();
        let outcome = sim.run(seed, move || {
            spawn("main", async move {
                let mut children = Vec::new();
                for index in 0..4u64 {
                    children.push(spawn(format!("child-{index}"), async move {
                        let grandchild = spawn(format!("grandchild-{index}"), async move {
                            yield_now().await;
                            index * 10
                        });
                        grandchild.await + 1
                    }));
                }
                let mut sum = 0;
                for child in children {
                    sum += child.await;
                }
                sink.set(sum);
            });
        });
        assert_eq!(outcome, Outcome::Completed);
        assert_eq!(total.get(), 64, "seed {seed}: 0+10+20+30 plus 4");
        assert_eq!(sim.trace().tasks(), 9);
    }
}

#[test]
fn task_ids_names_and_spawn_events_are_recorded() {
    let mut sim = Simulation::default();
    let outcome = sim.run(1, || {
        spawn("main", async {
            assert_eq!(current(), TaskId(0));
            assert_eq!(task_name(current()), "main");
            let child = spawn("child", async { current() });
            assert_eq!(child.id(), TaskId(1));
            assert_eq!(child.await, TaskId(1));
            event("joined");
        });
    });
    assert_eq!(outcome, Outcome::Completed);
    let rendered = sim.trace().render();
    assert!(rendered.contains("setup  spawn main (task 0)"), "{rendered}");
    assert!(rendered.contains("main   spawn child (task 1)"), "{rendered}");
    assert!(rendered.contains("main   joined"), "{rendered}");
    assert!(rendered.contains("child  exit"), "{rendered}");
}

#[test]
fn daemons_do_not_keep_the_run_alive() {
    let mut sim = Simulation::default();
    let outcome = sim.run(3, || {
        spawn_daemon("controller", async {
            loop {
                sleep(Duration::from_secs(1)).await;
            }
        });
        spawn("main", async {
            sleep(Duration::from_secs(10)).await;
        });
    });
    assert_eq!(outcome, Outcome::Completed);
    let end = sim.trace().end_time().as_nanos();
    assert!((10_000_000_000..11_000_000_000).contains(&end), "ended at {end} ns");
}

#[test]
fn stop_ends_the_run_as_completed() {
    let mut sim = Simulation::default();
    let outcome = sim.run(3, || {
        spawn("looper", async {
            for round in 0.. {
                if round == 5 {
                    stop();
                }
                yield_now().await;
            }
        });
    });
    assert_eq!(outcome, Outcome::Completed);
    assert_eq!(sim.trace().len(), 6);
}

#[test]
fn a_panicking_task_fails_the_run_naming_task_and_step() {
    let mut sim = Simulation::default();
    let outcome = sim.run(9, || {
        spawn("calm", async {
            yield_now().await;
        });
        spawn("reconciler", async {
            yield_now().await;
            let items: Vec<u32> = Vec::new();
            let _ = items[3];
        });
    });
    let Outcome::Failed(failure) = outcome else { panic!("expected a failure, got {outcome}") };
    assert_eq!(failure.kind, FailureKind::Panic);
    assert_eq!(failure.task, Some(TaskId(1)));
    assert_eq!(failure.task_name.as_deref(), Some("reconciler"));
    assert!(failure.message.contains("index out of bounds"), "{}", failure.message);
    assert!(
        failure.details.starts_with("panicked at tests/it/executor.rs:"),
        "{}",
        failure.details
    );
    let last = sim.trace().steps().last().expect("steps");
    assert_eq!(last.task, TaskId(1), "the failing step is the reconciler's");
    assert_eq!(failure.step as usize, sim.trace().len() - 1);
}

#[test]
fn opposite_lock_order_is_reported_as_a_deadlock_naming_both_tasks() {
    let setup = || {
        let a = Rc::new(Mutex::named("a", ()));
        let b = Rc::new(Mutex::named("b", ()));
        for (name, first, second) in [("ab", a.clone(), b.clone()), ("ba", b, a)] {
            spawn(name, async move {
                let _first = first.lock().await;
                let _second = second.lock().await;
            });
        }
    };
    let mut sim = Simulation::default();
    let (seed, outcome) = first_failure(&mut sim, 1000, setup).expect("a deadlock");
    let Outcome::Failed(failure) = outcome else { panic!("expected a failure, got {outcome}") };
    assert_eq!(failure.kind, FailureKind::Deadlock);
    assert_eq!(
        failure.message,
        "deadlock: 2 unfinished tasks are blocked and nothing can wake them"
    );
    let details = &failure.details;
    assert!(
        details.contains("blocked task 0 (ab): waiting to lock Mutex \"b\" held by task 1 (ba)"),
        "{details}"
    );
    assert!(
        details.contains("blocked task 1 (ba): waiting to lock Mutex \"a\" held by task 0 (ab)"),
        "{details}"
    );
    // Not every schedule deadlocks, and the deadlocking seed reproduces.
    let completed = (0..100).filter(|&s| sim.run(s, setup) == Outcome::Completed).count();
    assert!(completed > 0, "some schedules take both locks in turn");
    assert_eq!(sim.run(seed, setup), Outcome::Failed(failure));
}

#[test]
fn a_task_waiting_on_a_foreign_future_is_described_honestly() {
    let mut sim = Simulation::default();
    let outcome = sim.run(1, || {
        spawn("stuck", std::future::pending::<()>());
    });
    let failure = outcome.failure().expect("deadlock");
    assert_eq!(failure.kind, FailureKind::Deadlock);
    assert!(failure.details.contains("waiting on a future that is not a sim-core primitive"));
}

#[test]
fn blocked_daemons_with_a_finished_main_are_not_a_deadlock() {
    let mut sim = Simulation::default();
    let outcome = sim.run(1, || {
        let (sender, receiver) = channel::unbounded::<u32>();
        spawn_daemon("worker", async move { while receiver.recv().await.is_some() {} });
        spawn("main", async move {
            sender.send(1).await.expect("worker alive");
            // `sender` stays alive in the daemon's view until main drops it: the worker then
            // waits forever, which is fine for a daemon once main has finished.
            std::mem::forget(sender);
        });
    });
    assert_eq!(outcome, Outcome::Completed);
}

#[test]
fn step_records_mark_choices_and_preemptions() {
    let mut sim = Simulation::default();
    let preempting = (0..100).find(|&seed| {
        sim.run(seed, || {
            for index in 0..2 {
                spawn(format!("t{index}"), async {
                    for _ in 0..5 {
                        yield_now().await;
                    }
                });
            }
        });
        sim.trace().preemptions() > 0
    });
    assert!(preempting.is_some(), "two yielding tasks get preempted on some seed");
    let trace = sim.trace();
    let steps: Vec<_> = trace.steps().collect();
    assert!(steps[0].choice && !steps[0].preemption, "the first step has nothing to preempt");
    for pair in steps.windows(2) {
        if pair[1].preemption {
            assert_ne!(pair[0].task, pair[1].task, "a preemption switches tasks");
            assert!(pair[1].choice, "a preemption is a choice");
        }
    }
    // Once one task has finished, the other runs alone: no choice.
    assert!(!steps.last().expect("steps").choice);
}

#[test]
fn join_set_collects_every_result() {
    let mut sim = Simulation::default();
    for seed in 0..100 {
        let results = Rc::new(RefCell::new(Vec::new()));
        let sink = results.clone();
        let outcome = sim.run(seed, move || {
            spawn("main", async move {
                let mut set = JoinSet::new();
                for index in 0..5u32 {
                    set.spawn(format!("job-{index}"), async move {
                        sleep(Duration::from_millis(u64::from(5 - index))).await;
                        index
                    });
                }
                *sink.borrow_mut() = set.join_all().await;
            });
        });
        assert_eq!(outcome, Outcome::Completed);
        assert_eq!(*results.borrow(), vec![4, 3, 2, 1, 0], "seed {seed}: completion order");
    }
}

/// Regression: a task that wakes itself in its final poll, or whose cancelled wait wakes it while
/// its future is dropped, is never polled again after it finished.
#[test]
fn a_task_woken_during_its_last_poll_or_drop_is_not_polled_again() {
    let mut sim = Simulation::default();
    for seed in 0..200 {
        let outcome = sim.run(seed, || {
            let (sender, receiver) = channel::unbounded::<u32>();
            spawn("consumer", async move {
                let _sender = sender;
                let waited = sim_core::timeout(Duration::from_secs(1), receiver.recv()).await;
                assert!(waited.is_err());
            });
            spawn(
                "self-waker",
                std::future::poll_fn(|cx| {
                    cx.waker().wake_by_ref();
                    std::task::Poll::Ready(())
                }),
            );
            spawn("sleeper", sleep(Duration::from_secs(2)));
        });
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
    }
}

/// An outside clock's one timer, for the `on_idle` tests: when it is due and what to wake.
type OutsideTimer = Rc<RefCell<Option<(sim_core::SimTime, std::task::Waker)>>>;

/// Waits on `timer` until the hook fires it.
fn outside_sleep(
    timer: OutsideTimer,
    until: sim_core::SimTime,
) -> impl std::future::Future<Output = ()> {
    std::future::poll_fn(move |cx| {
        if sim_core::now() >= until {
            return std::task::Poll::Ready(());
        }
        *timer.borrow_mut() = Some((until, cx.waker().clone()));
        std::task::Poll::Pending
    })
}

/// `sim_core::on_idle`: when nothing is runnable the executor asks the outside clock before it
/// jumps to its own next timer (here at 10 s) or reports a deadlock, and goes on where the hook's
/// timer woke a task (5 s, then 12 s with no kdst timer left); a hook that wakes nothing changes
/// nothing.
#[test]
fn an_idle_hook_answers_for_a_clock_outside_kdst() {
    let times = Rc::new(RefCell::new(Vec::new()));
    let out = times.clone();
    let outcome = Simulation::default().run(1, move || {
        let timer: OutsideTimer = Rc::default();
        let hook = timer.clone();
        sim_core::on_idle(move |limit| {
            let due = hook.borrow().as_ref().map(|(at, _)| *at)?;
            if limit.is_some_and(|limit| due > limit) {
                return None;
            }
            let (at, waker) = hook.borrow_mut().take()?;
            waker.wake();
            Some(at)
        });
        sim_core::on_idle(|_| None);
        let kdst = out.clone();
        spawn("kdst", async move {
            sleep(Duration::from_secs(10)).await;
            kdst.borrow_mut().push(("kdst", sim_core::now()));
        });
        let outside = out.clone();
        spawn("outside", async move {
            let at = |s| sim_core::SimTime::ZERO + Duration::from_secs(s);
            outside_sleep(timer.clone(), at(5)).await;
            outside.borrow_mut().push(("outside", sim_core::now()));
            outside_sleep(timer, at(12)).await;
            outside.borrow_mut().push(("outside", sim_core::now()));
        });
    });
    assert_eq!(outcome, Outcome::Completed);
    let seconds: Vec<(&str, u64)> =
        times.borrow().iter().map(|(who, t)| (*who, t.elapsed_since_start().as_secs())).collect();
    assert_eq!(seconds, [("outside", 5), ("kdst", 10), ("outside", 12)]);
}
