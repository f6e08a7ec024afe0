//! Tests: tokio's clock follows kdst's virtual clock. `tokio::time::sleep` in a task started
//! with `Cluster::spawn` waits virtual time, whether or not a kdst timer is pending (kdst asks the
//! tokio runtime for its next timer when nothing is runnable); `tokio::time::Instant` measures
//! virtual time; and a run with tokio timers is as deterministic as any.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use kdst_kube::Cluster;
use sim_core::{Outcome, Simulation};

/// Runs `body` in a cluster task under `seed`; returns the outcome and the kdst times it noted.
fn run(
    seed: u64,
    body: impl AsyncFnOnce(Rc<RefCell<Vec<Duration>>>) + 'static,
) -> (Outcome, Vec<Duration>) {
    let noted = Rc::new(RefCell::new(Vec::new()));
    let out = noted.clone();
    let outcome = Simulation::default().run(seed, move || {
        let cluster = Cluster::new();
        cluster.spawn("sleeper", async move { body(out).await });
    });
    let noted = noted.borrow().clone();
    (outcome, noted)
}

fn kdst_now() -> Duration {
    sim_core::now().elapsed_since_start()
}

/// A tokio sleep alone in the run: kdst has no timer, the tokio timer wakes the task at 5 s.
#[test]
fn a_tokio_sleep_with_nothing_else_pending_wakes_at_its_virtual_deadline() {
    let (outcome, noted) = run(1, async |noted| {
        let start = kdst_now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        noted.borrow_mut().push(kdst_now() - start);
    });
    assert_eq!(outcome, Outcome::Completed);
    let waited = noted[0];
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_millis(5_010),
        "{waited:?}"
    );
}

/// A tokio sleep of 3 s while a kdst timer is due at 10 s wakes at 3 s, not at 10 s; a tokio
/// sleep of 12 s wakes after the kdst timer.
#[test]
fn tokio_and_kdst_timers_fire_in_virtual_time_order() {
    let (outcome, noted) = run(2, async |noted| {
        let kdst = sim_core::spawn("kdst-timer", async {
            sim_core::sleep(Duration::from_secs(10)).await;
            kdst_now()
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        noted.borrow_mut().push(kdst_now());
        tokio::time::sleep(Duration::from_secs(9)).await;
        noted.borrow_mut().push(kdst_now());
        let ten = kdst.await;
        noted.borrow_mut().push(ten);
    });
    assert_eq!(outcome, Outcome::Completed);
    let (three, twelve, ten) = (noted[0], noted[1], noted[2]);
    assert!(three >= Duration::from_secs(3) && three < Duration::from_secs(4), "{three:?}");
    assert!(ten >= Duration::from_secs(10) && ten < Duration::from_secs(11), "{ten:?}");
    assert!(twelve >= Duration::from_secs(12) && twelve < Duration::from_secs(13), "{twelve:?}");
}

/// `tokio::time::Instant` measures kdst's virtual time, including time a kdst sleep waited.
#[test]
fn tokio_instant_reads_virtual_time() {
    let (outcome, noted) = run(3, async |noted| {
        let (tokio_start, kdst_start) = (tokio::time::Instant::now(), kdst_now());
        sim_core::sleep(Duration::from_secs(42)).await;
        sim_core::yield_now().await;
        noted.borrow_mut().push(tokio_start.elapsed());
        noted.borrow_mut().push(kdst_now() - kdst_start);
    });
    assert_eq!(outcome, Outcome::Completed);
    let (tokio, kdst) = (noted[0], noted[1]);
    assert!(tokio >= Duration::from_secs(42), "{tokio:?}");
    assert!(kdst.abs_diff(tokio) < Duration::from_millis(1), "tokio {tokio:?}, kdst {kdst:?}");
}

/// Runs with tokio timers (and `tokio::time::timeout`) give the same trace for the same seed.
#[test]
fn runs_with_tokio_timers_are_deterministic() {
    let trace = |seed| {
        let mut sim = Simulation::default();
        let outcome = sim.run(seed, || {
            let cluster = Cluster::new();
            for task in 0..3u64 {
                cluster.spawn(format!("t{task}"), async move {
                    for round in 0..4u64 {
                        let wait = Duration::from_millis(100 * (task + 1) + 7 * round);
                        let slow = tokio::time::sleep(wait * 2);
                        let _ = tokio::time::timeout(wait, slow).await;
                        sim_core::event(format!("t{task} round {round}"));
                    }
                });
            }
        });
        assert_eq!(outcome, Outcome::Completed);
        let trace = sim.trace();
        trace
            .events()
            .iter()
            .map(|e| format!("{} {}", e.time_ns, trace.event_text(e)))
            .collect::<Vec<_>>()
    };
    for seed in 0..20 {
        assert_eq!(trace(seed), trace(seed), "seed {seed}");
    }
    assert!(trace(0).iter().any(|line| line.ends_with("t2 round 3")));
}

/// kdst timers alone do not push tokio's clock ahead of kdst's (tokio's wheel rounds deadlines
/// up to a millisecond; the idle probe stops short of kdst's next event), and a tokio sleep
/// among them lasts what it asks.
#[test]
fn tokio_time_does_not_drift_ahead_of_kdst_time() {
    let (outcome, noted) = run(4, async |noted| {
        let cluster = Cluster::current().expect("in a cluster task");
        let ticker = cluster.spawn("ticker", async {
            let base = tokio::time::Instant::now();
            let mut worst = Duration::ZERO;
            for _ in 0..50 {
                sim_core::sleep(Duration::from_millis(100)).await;
                let kdst = sim_core::now().elapsed_since_start();
                worst = worst.max(base.elapsed().abs_diff(kdst));
            }
            worst
        });
        let start = kdst_now();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let waited = kdst_now() - start;
        let worst = ticker.await;
        noted.borrow_mut().extend([waited, worst]);
    });
    assert_eq!(outcome, Outcome::Completed);
    let (waited, worst) = (noted[0], noted[1]);
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_millis(2_002),
        "{waited:?}"
    );
    assert!(worst < Duration::from_micros(100), "tokio drifted {worst:?} from kdst");
}
