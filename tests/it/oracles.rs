//! Tests: oracles. `always`, `eventually`, the built-in panic oracle and the limits; every
//! failure replays identically from its seed.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use kdst_tests::assert_all_complete;
use kdst_tests::{at, failed};
use sim_core::{
    Config, EventKind, Failure, FailureKind, Outcome, Simulation, always, event, eventually, sleep,
    spawn, yield_now,
};

const SECOND: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------------
// always

#[test]
fn always_fires_at_the_step_that_breaks_the_invariant() {
    let mut sim = Simulation::default();
    for seed in 0..200 {
        let outcome = run_twice(&mut sim, seed, || {
            let value = Rc::new(Cell::new(0i64));
            let checked = value.clone();
            always("value is non-negative", move || match checked.get() {
                v if v < 0 => Err(format!("value is {v}")),
                _ => Ok(()),
            });
            spawn("writer", async move {
                for _ in 0..5 {
                    yield_now().await;
                }
                event("breaking");
                value.set(-1);
                yield_now().await;
                value.set(0);
            });
            spawn("bystander", async {
                for _ in 0..10 {
                    yield_now().await;
                }
            });
        });
        let failure = failed(outcome, FailureKind::Invariant);
        assert_eq!(failure.message, "value is non-negative: value is -1");
        assert_eq!(failure.task, None, "an oracle runs between steps, in no task");
        let breaking = message_step(&sim, "breaking");
        assert_eq!(failure.step, breaking, "seed {seed}: not the step of the breaking write");
        assert_eq!(sim.trace().len() as u64, breaking + 1, "seed {seed}: the run went on");
    }
}

#[test]
fn always_that_holds_never_fires_and_is_checked_after_every_step() {
    let mut sim = Simulation::default();
    let checks = Rc::new(Cell::new(0u64));
    for seed in 0..500 {
        checks.set(0);
        let outcome = sim.run(seed, {
            let checks = checks.clone();
            move || {
                // Two accounts; each transfer debits and credits within one step.
                let accounts = Rc::new([Cell::new(60i64), Cell::new(40i64)]);
                let checked = accounts.clone();
                always("money is conserved", move || {
                    checks.set(checks.get() + 1);
                    let total = checked[0].get() + checked[1].get();
                    if total == 100 { Ok(()) } else { Err(format!("total is {total}")) }
                });
                for (name, from, to) in [("a-to-b", 0, 1), ("b-to-a", 1, 0)] {
                    let accounts = accounts.clone();
                    spawn(name, async move {
                        for _ in 0..10 {
                            accounts[from].set(accounts[from].get() - 3);
                            accounts[to].set(accounts[to].get() + 3);
                            yield_now().await;
                        }
                    });
                }
            }
        });
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
        assert!(checks.get() >= sim.trace().len() as u64, "seed {seed}: a step went unchecked");
    }
}

#[test]
fn always_does_not_see_a_break_repaired_within_the_same_step() {
    assert_all_complete(&mut Simulation::default(), 50, || {
        let value = Rc::new(Cell::new(0i64));
        let checked = value.clone();
        always("value is non-negative", move || {
            if checked.get() < 0 { Err("negative".to_string()) } else { Ok(()) }
        });
        spawn("writer", async move {
            yield_now().await;
            value.set(-1);
            value.set(0);
        });
    });
}

// ---------------------------------------------------------------------------------------------
// eventually

#[test]
fn eventually_satisfied_before_its_deadline_completes() {
    assert_all_complete(&mut Simulation::default(), 200, || {
        let flag = flag_property(5 * SECOND);
        spawn("setter", async move {
            sleep(SECOND).await;
            flag.set(true);
        });
    });
}

#[test]
fn eventually_not_satisfied_fails_at_its_deadline_even_with_a_later_timer() {
    let mut sim = Simulation::default();
    for seed in 0..50 {
        let outcome = run_twice(&mut sim, seed, || {
            let flag = flag_property(5 * SECOND);
            spawn("setter", async move {
                sleep(Duration::from_secs(3600)).await;
                flag.set(true);
            });
        });
        let failure = failed(outcome, FailureKind::Liveness);
        assert!(failure.message.starts_with("flag is set: did not hold within 5s"), "{failure}");
        assert!(failure.message.ends_with("flag is not set"), "{failure}");
        assert_eq!(failure.task, None);
        assert_eq!(failure.time, at(5 * SECOND), "the clock must stop at the deadline");
        assert_eq!(sim.trace().end_time(), at(5 * SECOND));
    }
}

#[test]
fn eventually_not_satisfied_while_busy_fails_soon_after_its_deadline() {
    let config = Config::default().with_steps_max(100_000);
    let mut sim = Simulation::new(config);
    for seed in 0..5 {
        let outcome = run_twice(&mut sim, seed, || {
            let _flag = flag_property(Duration::from_millis(10));
            spawn("busy", async {
                loop {
                    yield_now().await;
                }
            });
        });
        let failure = failed(outcome, FailureKind::Liveness);
        assert!(failure.message.contains("did not hold within 10ms"), "{failure}");
        let deadline = at(Duration::from_millis(10));
        assert!(failure.time >= deadline, "{failure}");
        assert!(failure.time < deadline + Duration::from_micros(3), "{failure}");
    }
}

#[test]
fn eventually_not_satisfied_when_the_run_ends_fails_at_once() {
    let mut sim = Simulation::default();
    for seed in 0..50 {
        let outcome = run_twice(&mut sim, seed, || {
            let _flag = flag_property(5 * SECOND);
            spawn("quitter", async { sleep(SECOND).await });
        });
        let failure = failed(outcome, FailureKind::Liveness);
        assert!(failure.message.starts_with("flag is set: the run ended before it held"));
        assert!(failure.message.ends_with("flag is not set"), "{failure}");
        assert!(failure.time >= at(SECOND) && failure.time < at(5 * SECOND), "{failure}");
    }
}

// ---------------------------------------------------------------------------------------------
// Limits

#[test]
fn spinning_task_hits_the_step_limit_and_is_named_as_the_likely_cause() {
    let mut sim = Simulation::new(Config::default().with_steps_max(10_000));
    for seed in 0..5 {
        let outcome = run_twice(&mut sim, seed, || {
            spawn("worker", async {
                for _ in 0..10 {
                    yield_now().await;
                }
            });
            spawn("spinner", async {
                loop {
                    yield_now().await;
                }
            });
        });
        let failure = limit(outcome, FailureKind::StepLimit);
        assert_eq!(failure.message, "step limit of 10000 steps reached");
        assert!(failure.details.contains("likely cause: task 1 (spinner)"), "{failure}");
        assert_eq!(sim.trace().len(), 10_000);
    }
}

#[test]
fn spawning_in_a_loop_hits_the_task_limit() {
    let mut sim = Simulation::new(Config::default().with_tasks_max(50));
    for seed in 0..5 {
        let outcome = run_twice(&mut sim, seed, || {
            spawn("spawner", async {
                for child in 0.. {
                    spawn(format!("child-{child}"), sleep(Duration::from_secs(3600)));
                    yield_now().await;
                }
            });
        });
        let failure = limit(outcome, FailureKind::TaskLimit);
        assert_eq!(failure.message, "task limit of 50 tasks reached when spawner spawned child-49");
        assert_eq!(failure.task_name.as_deref(), Some("spawner"));
        assert_eq!(sim.trace().tasks(), 50);
    }
}

#[test]
fn emitting_events_in_a_loop_hits_the_event_limit() {
    let mut sim = Simulation::new(Config::default().with_events_max(100));
    for seed in 0..5 {
        let outcome = run_twice(&mut sim, seed, || {
            spawn("chatty", async {
                loop {
                    event("still here");
                    yield_now().await;
                }
            });
        });
        let failure = limit(outcome, FailureKind::EventLimit);
        assert_eq!(failure.message, "event limit of 100 trace events reached");
        assert_eq!(failure.task_name.as_deref(), Some("chatty"));
        assert_eq!(sim.trace().events().len(), 100);
    }
}

// ---------------------------------------------------------------------------------------------
// Panics

#[test]
fn panicking_task_fails_the_run_with_message_task_and_location() {
    let mut sim = Simulation::default();
    for seed in 0..20 {
        let outcome = run_twice(&mut sim, seed, || {
            spawn("bystander", async {
                for _ in 0..5 {
                    yield_now().await;
                }
            });
            spawn("crasher", async {
                yield_now().await;
                panic!("boom {}", 42);
            });
        });
        let failure = failed(outcome, FailureKind::Panic);
        assert_eq!(failure.message, "boom 42");
        assert_eq!(failure.task_name.as_deref(), Some("crasher"));
        assert_eq!(failure.task.map(|task| task.0), Some(1));
        assert!(failure.details.starts_with("panicked at "), "{failure}");
        assert!(failure.details.contains("it/oracles.rs:"), "{failure}");
    }
}

#[test]
fn panic_in_setup_fails_the_run_as_a_setup_panic() {
    let mut sim = Simulation::default();
    let outcome = run_twice(&mut sim, 3, || {
        spawn("never-polled", async { panic!("should not run") });
        panic!("bad fixture");
    });
    let failure = failed(outcome, FailureKind::Panic);
    assert!(failure.message.starts_with("setup panicked"), "{failure}");
    assert!(failure.message.contains("bad fixture"), "{failure}");
    assert_eq!(failure.task, None);
    assert_eq!(sim.trace().len(), 0, "no task runs after a setup panic");
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Registers `eventually("flag is set", within, ..)` over a new flag, and returns the flag.
fn flag_property(within: Duration) -> Rc<Cell<bool>> {
    let flag = Rc::new(Cell::new(false));
    let checked = flag.clone();
    eventually("flag is set", within, move || {
        if checked.get() { Ok(()) } else { Err("flag is not set".to_string()) }
    });
    flag
}

/// Runs `setup` twice with `seed`; asserts both runs ended the same way with the same trace.
fn run_twice(sim: &mut Simulation, seed: u64, setup: impl Fn()) -> Outcome {
    let first = sim.run(seed, &setup);
    let (hash, render) = (sim.trace().hash(), sim.trace().render());
    let second = sim.run(seed, &setup);
    assert_eq!(first, second, "seed {seed}: the outcome changed between two runs");
    assert_eq!(hash, sim.trace().hash(), "seed {seed}: the trace hash changed");
    assert_eq!(render, sim.trace().render(), "seed {seed}: the trace changed");
    first
}

/// The step of the event `text`, which must have been emitted once.
fn message_step(sim: &Simulation, text: &str) -> u64 {
    let mut steps = sim.trace().events().iter().filter_map(|event| match &event.kind {
        EventKind::Message(message) if message == text => Some(event.step),
        _ => None,
    });
    let step = steps.next().unwrap_or_else(|| panic!("no event {text:?}"));
    assert_eq!(steps.next(), None, "event {text:?} emitted twice");
    step
}

/// The limit of `outcome`, which must be `LimitReached` with `kind`.
fn limit(outcome: Outcome, kind: FailureKind) -> Failure {
    match outcome {
        Outcome::LimitReached(failure) if failure.kind == kind => failure,
        other => panic!("expected a {kind} limit, got: {other}"),
    }
}
