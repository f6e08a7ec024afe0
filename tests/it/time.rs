//! Tests: time. Virtual time: sleeps, timer order, timeouts, intervals, poll cost, time limits.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use kdst_tests::assert_all_complete;
use kdst_tests::at;
use sim_core::strategy::{Choice, Divergence};
use sim_core::{
    Config, Elapsed, EventKind, FailureKind, Outcome, Random, SimTime, Simulation, Strategy,
    TaskId, event, interval, now, sleep, sleep_until, spawn, spawn_daemon, timeout, yield_now,
};

const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn sleeping_an_hour_advances_the_clock_an_hour_in_two_steps() {
    let mut sim = Simulation::default();
    for seed in 0..20 {
        let outcome = sim.run(seed, || {
            spawn("sleeper", async {
                let start = now();
                sleep(HOUR).await;
                assert!(now() >= start + HOUR, "woke early at {}", now());
                assert_eq!(now(), start + HOUR, "the idle clock overshot the deadline");
            });
        });
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
        assert_eq!(sim.trace().len(), 2, "seed {seed}: one poll to sleep, one to wake");
        assert!(sim.trace().end_time() >= at(HOUR));
    }
}

#[test]
fn idle_clock_jumps_from_timer_to_timer() {
    let mut sim = Simulation::default();
    let outcome = sim.run(5, || {
        spawn("napper", async {
            for _ in 0..10 {
                sleep(SECOND).await;
            }
        });
    });
    assert_eq!(outcome, Outcome::Completed);
    assert_eq!(sim.trace().len(), 11, "ten sleeps take eleven polls");
    let end = sim.trace().end_time();
    assert!(end >= at(10 * SECOND) && end < at(10 * SECOND + Duration::from_millis(1)), "{end}");
}

#[test]
fn sleepers_wake_in_deadline_order() {
    let mut sim = Simulation::default();
    for seed in 0..500 {
        let woke = Rc::new(RefCell::new(Vec::new()));
        let outcome = sim.run(seed, {
            let woke = woke.clone();
            move || {
                for secs in [3, 1, 2] {
                    let woke = woke.clone();
                    spawn(format!("sleep-{secs}s"), async move {
                        sleep(Duration::from_secs(secs)).await;
                        woke.borrow_mut().push(secs);
                    });
                }
            }
        });
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
        assert_eq!(*woke.borrow(), [1, 2, 3], "seed {seed}");
    }
}

#[test]
fn equal_deadlines_fire_in_timer_creation_order() {
    // Three tasks register timers for the same instant in a known order (by first sleeping 1, 2
    // and 3 ms); the run queue the strategy sees when that instant comes shows the wake order.
    let seen = Rc::new(RefCell::new(Vec::new()));
    let recording = Recording { inner: Random::new(), seen: seen.clone() };
    let mut sim = Simulation::default().with_strategy(recording);
    for seed in 0..300 {
        let outcome = sim.run(seed, || {
            let deadline = at(SECOND);
            // Spawn order (task ids) differs from registration order.
            for (name, delay_ms) in [("late", 3), ("early", 1), ("middle", 2)] {
                spawn(name, async move {
                    sleep(Duration::from_millis(delay_ms)).await;
                    sleep_until(deadline).await;
                    assert!(now() >= deadline);
                });
            }
        });
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
        let three_runnable: Vec<Vec<TaskId>> =
            seen.borrow().iter().filter(|runnable| runnable.len() == 3).cloned().collect();
        let spawned = vec![TaskId(0), TaskId(1), TaskId(2)];
        let by_registration = vec![TaskId(1), TaskId(2), TaskId(0)];
        assert_eq!(three_runnable, [spawned, by_registration], "seed {seed}");
    }
}

#[test]
fn sleep_until_a_past_instant_is_ready_at_once() {
    assert_all_complete(&mut Simulation::default(), 20, || {
        spawn("task", async {
            sleep(SECOND).await;
            let before = now();
            sleep_until(SimTime::ZERO).await;
            assert!(now() < before + Duration::from_millis(1));
        });
    });
}

#[test]
fn timeout_returns_the_value_of_a_future_that_finishes_in_time() {
    assert_all_complete(&mut Simulation::default(), 50, || {
        spawn("task", async {
            let start = now();
            let result = timeout(2 * SECOND, async {
                sleep(SECOND).await;
                7
            })
            .await;
            assert_eq!(result, Ok(7));
            assert_eq!(now(), start + SECOND);
        });
    });
}

#[test]
fn timeout_returns_elapsed_at_the_deadline() {
    assert_all_complete(&mut Simulation::default(), 50, || {
        spawn("task", async {
            let start = now();
            let result = timeout(SECOND, sleep(2 * SECOND)).await;
            assert_eq!(result, Err(Elapsed));
            assert_eq!(now(), start + SECOND, "timed out at the wrong time");
        });
    });
}

#[test]
fn timeout_of_a_future_that_never_completes_is_elapsed() {
    assert_all_complete(&mut Simulation::default(), 50, || {
        let (tx, rx) = sim_core::sync::oneshot::channel::<u32>();
        spawn("task", async move {
            let start = now();
            assert_eq!(timeout(SECOND, rx.recv()).await, Err(Elapsed));
            assert_eq!(now(), start + SECOND);
            drop(tx);
        });
    });
}

#[test]
fn interval_ticks_at_multiples_of_the_period() {
    assert_all_complete(&mut Simulation::default(), 50, || {
        spawn("ticker", async {
            let period = Duration::from_millis(100);
            let start = now();
            let mut ticker = interval(period);
            assert_eq!(ticker.period(), period);
            for k in 0..5 {
                let tick = ticker.tick().await;
                assert_eq!(tick, start + k * period, "tick {k}");
                assert!(now() >= tick);
            }
            assert_eq!(now(), start + 4 * period);
        });
    });
}

#[test]
fn interval_late_by_more_than_a_period_skips_missed_ticks_and_keeps_phase() {
    assert_all_complete(&mut Simulation::default(), 50, || {
        spawn("ticker", async {
            let period = Duration::from_millis(100);
            let start = now();
            let mut ticker = interval(period);
            assert_eq!(ticker.tick().await, start);
            sleep(Duration::from_millis(350)).await;
            // The tick due at 100 ms is delivered late, at once; 200 and 300 ms are dropped.
            assert_eq!(ticker.tick().await, start + period);
            assert!(now() < start + Duration::from_millis(351), "the late tick waited");
            assert_eq!(ticker.tick().await, start + 4 * period);
            assert_eq!(now(), start + 4 * period);
            assert_eq!(ticker.tick().await, start + 5 * period);
        });
    });
}

#[test]
fn interval_late_by_less_than_a_period_skips_nothing() {
    assert_all_complete(&mut Simulation::default(), 50, || {
        spawn("ticker", async {
            let period = Duration::from_millis(100);
            let start = now();
            let mut ticker = interval(period);
            assert_eq!(ticker.tick().await, start);
            sleep(Duration::from_millis(150)).await;
            assert_eq!(ticker.tick().await, start + period);
            assert_eq!(ticker.tick().await, start + 2 * period);
            assert_eq!(ticker.tick().await, start + 3 * period);
        });
    });
}

#[test]
fn every_poll_advances_the_clock_by_the_poll_cost_and_jitter() {
    let mut sim = Simulation::default();
    for seed in 0..20 {
        let elapsed = yield_1000_times(&mut sim, seed);
        // 1000 steps of 1 µs each plus 0..=1 µs of jitter.
        assert!(elapsed >= 1000 * Config::DEFAULT.poll_cost, "seed {seed}: {elapsed:?}");
        let most = 1000 * (Config::DEFAULT.poll_cost + Config::DEFAULT.poll_jitter);
        assert!(elapsed <= most, "seed {seed}: {elapsed:?}");
    }
}

#[test]
fn poll_jitter_varies_with_the_seed_and_repeats_for_the_same_seed() {
    let mut sim = Simulation::default();
    let times: Vec<Duration> = (0..10).map(|seed| yield_1000_times(&mut sim, seed)).collect();
    let again: Vec<Duration> = (0..10).map(|seed| yield_1000_times(&mut sim, seed)).collect();
    assert_eq!(times, again);
    let mut distinct = times.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() > 1, "every seed gave the same time: {times:?}");
}

#[test]
fn poll_cost_without_jitter_is_exact() {
    let config = Config::default().with_poll_cost(Duration::from_micros(5), Duration::ZERO);
    let mut sim = Simulation::new(config);
    for seed in 0..5 {
        assert_eq!(yield_1000_times(&mut sim, seed), Duration::from_millis(5), "seed {seed}");
    }
}

#[test]
fn sleeping_past_the_time_limit_is_a_time_limit_naming_the_task() {
    let mut sim = Simulation::new(Config::default().with_time_max(60 * SECOND));
    for seed in 0..10 {
        let outcome = sim.run(seed, || {
            spawn("sleeper", async { sleep(HOUR).await });
        });
        let Outcome::LimitReached(failure) = outcome else {
            panic!("seed {seed}: expected a limit, got {outcome}");
        };
        assert_eq!(failure.kind, FailureKind::TimeLimit);
        assert_eq!(failure.message, "virtual time limit of 60s reached");
        assert!(
            failure.details.contains("unfinished task 0 (sleeper): waiting to sleep timer"),
            "{failure}"
        );
        assert_eq!(failure.time, at(60 * SECOND), "the clock must stop at the limit");
    }
}

#[test]
fn an_endless_periodic_task_hits_the_time_limit() {
    let mut sim = Simulation::new(Config::default().with_time_max(60 * SECOND));
    for seed in 0..10 {
        let outcome = sim.run(seed, || {
            spawn("poller", async {
                loop {
                    sleep(SECOND).await;
                }
            });
        });
        let Outcome::LimitReached(failure) = outcome else {
            panic!("seed {seed}: expected a limit, got {outcome}");
        };
        assert_eq!(failure.kind, FailureKind::TimeLimit);
        assert!(failure.details.contains("task 0 (poller)"), "{failure}");
        assert!(failure.details.contains("spawn_daemon"), "{failure}");
        assert!(failure.time >= at(60 * SECOND) && failure.time <= at(61 * SECOND), "{failure}");
    }
}

#[test]
fn an_endless_daemon_does_not_keep_the_run_alive() {
    let mut sim = Simulation::new(Config::default().with_time_max(60 * SECOND));
    for seed in 0..20 {
        let outcome = sim.run(seed, || {
            spawn_daemon("resync", async {
                loop {
                    event("tick");
                    sleep(SECOND).await;
                }
            });
            spawn("main", async { sleep(10 * SECOND).await });
        });
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
        let end = sim.trace().end_time();
        assert!(end >= at(10 * SECOND) && end < at(11 * SECOND), "seed {seed}: ended at {end}");
        let ticks = sim
            .trace()
            .events()
            .iter()
            .filter(|event| matches!(&event.kind, EventKind::Message(text) if text == "tick"))
            .count();
        assert!((10..=11).contains(&ticks), "seed {seed}: the daemon ticked {ticks} times");
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Runs one task that yields 1000 times; returns the virtual time its last poll saw.
fn yield_1000_times(sim: &mut Simulation, seed: u64) -> Duration {
    let seen = Rc::new(Cell::new(SimTime::ZERO));
    let outcome = sim.run(seed, {
        let seen = seen.clone();
        move || {
            spawn("spinner", async move {
                for _ in 0..1000 {
                    yield_now().await;
                }
                seen.set(now());
            });
        }
    });
    assert_eq!(outcome, Outcome::Completed, "seed {seed}");
    seen.get() - SimTime::ZERO
}

/// The random strategy, recording the runnable set it is shown at every step.
struct Recording {
    inner: Random,
    seen: Rc<RefCell<Vec<Vec<TaskId>>>>,
}

impl Strategy for Recording {
    fn name(&self) -> &'static str {
        "recording"
    }

    fn begin(&mut self, seed: u64) {
        self.seen.borrow_mut().clear();
        self.inner.begin(seed);
    }

    fn next_task(&mut self, choice: &Choice<'_>) -> Result<usize, Divergence> {
        self.seen.borrow_mut().push(choice.runnable.to_vec());
        self.inner.next_task(choice)
    }

    fn next_draw(&mut self, step: u64, bound: u64) -> Result<u64, Divergence> {
        self.inner.next_draw(step, bound)
    }
}
