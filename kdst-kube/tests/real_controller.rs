//! The real `kube::runtime::Controller` (kube-runtime 5.0.0) under kdst, beside kdst's own
//! [`kdst_kube::Controller`], both running the kube-rs operator of
//! `examples/kube_operators/app.rs` (an `App` CRD whose reconcile adds a finalizer and creates a
//! StatefulSet) over six seeded Apps, one reconcile at a time (`concurrency(1)`).
//!
//! What it shows:
//!
//! - the real Controller works under kdst (every App gets its StatefulSet) but is
//!   nondeterministic: the same seed reconciles the Apps in a different order run to run;
//! - kdst's determinism check (`sim_core::Check`, which runs a sample of seeds twice, and
//!   `sim_core::trace_difference`) reports it, naming the step and the request that diverged;
//! - kdst's Controller, with the same builder chain and the same `app::reconcile` and
//!   `app::error_policy`, is deterministic: 64 seeds, each run twice, trace for trace.
//!
//! The reconcile functions compile unchanged against both: [`workload`] passes the very same
//! `app::reconcile` and `app::error_policy` to `kube::runtime::Controller::run` and to
//! `kdst_kube::Controller::run`; only the path of the `Controller` type differs.
//!
//! The upstream cause (kube-runtime 5.0.0): `scheduler.rs`, struct `Scheduler`, keeps the
//! messages that came due while they could not run (the store not ready yet, the concurrency
//! limit reached) in `pending`, a `std::collections::HashSet`, and `poll_pop_queue_message` takes
//! the first of them in that set's iteration order; `controller/future_hash_map.rs`, struct
//! `FutureHashMap`, polls the running reconciles in the iteration order of a
//! `std::collections::HashMap`. Both hash with `RandomState`, whose keys are random per thread and
//! change with every map made, so which App is reconciled next differs between two runs of one
//! seed, even in one process. kdst's Controller starts due requests in (due time, namespace, name)
//! order from `BTreeMap`s and `BTreeSet`s.
//!
//! How the real Controller runs here: it spawns each reconcile as a tokio task
//! (`Handle::current().spawn`) and waits on tokio timers, so it lives in the cluster's tokio
//! runtime. Its stream is polled by a kdst daemon task (`operator`, started with
//! `Cluster::spawn_daemon`), and a driver task turns the tokio runtime every millisecond of
//! virtual time (`Cluster::turn`), so that the tokio-side reconciles progress: to kdst the whole
//! controller is one coarse task whose inner order kdst does not choose. The trace attributes the
//! requests of those reconciles to whichever kdst task (or, for tokio work run while every kdst
//! task waits, the setup) turned the runtime.

use std::cell::Cell;
use std::future::ready;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use kdst_kube::Cluster;
use kube::api::Api;
use kube::runtime::watcher;
use sim_core::{Check, Outcome, Simulation, Trace, trace_difference};

#[path = "../examples/kube_operators/app.rs"]
mod app;

use app::{App, AppSpec};

/// How many Apps are seeded: 6! = 720 orders to reconcile them in.
const APPS: usize = 6;

/// How often the driver turns the tokio runtime, in virtual time.
const TICK: Duration = Duration::from_millis(1);

/// How long the driver goes on once every StatefulSet exists (the reconciles the StatefulSets'
/// own events trigger run in it).
const SETTLE: Duration = Duration::from_millis(200);

/// When the driver gives up waiting for the StatefulSets (the work takes about 60 ms).
const DEADLINE: Duration = Duration::from_secs(20);

/// The trace line of a StatefulSet's creation on the server.
const CREATE_STATEFULSET: &str = "API CREATE statefulsets.apps ";

/// Which `Controller` type runs the operator.
#[derive(Clone, Copy, Debug)]
enum Runtime {
    /// `kube::runtime::Controller`.
    Kube,
    /// `kdst_kube::Controller`.
    Kdst,
}

/// The StatefulSet of `app-{index}`.
fn statefulset_name(index: usize) -> String {
    format!("app-{index}-server")
}

/// How many of the Apps' StatefulSets the server holds.
fn statefulsets(cluster: &Cluster) -> usize {
    (0..APPS)
        .filter(|&i| cluster.peek::<StatefulSet>("default", &statefulset_name(i)).is_some())
        .count()
}

/// The run's setup: a cluster with the App CRD and six Apps, the operator on `runtime`'s
/// Controller (a kdst daemon), and a driver that turns the tokio runtime until every App's
/// StatefulSet has existed for [`SETTLE`] (or [`DEADLINE`]) and then writes how many exist to
/// `made`.
fn workload(runtime: Runtime, made: Rc<Cell<usize>>) {
    let cluster = Cluster::builder().crd::<App>().build();
    for i in 0..APPS {
        let mut app = App::new(&format!("app-{i}"), AppSpec { replicas: 1 });
        app.metadata.namespace = Some("default".into());
        cluster.seed(&app).expect("an App seeds");
    }
    let client = cluster.client("operator");
    cluster.spawn_daemon("operator", async move {
        let context = Arc::new(app::Ctx { client: client.clone(), fixed: true });
        let config = kube::runtime::controller::Config::default().concurrency(1);
        let apps = Api::<App>::all(client.clone());
        let sets = Api::<StatefulSet>::all(client);
        let wc = watcher::Config::default;
        // The same builder chain and the same reconcile functions: only the type differs.
        match runtime {
            Runtime::Kube => {
                kube::runtime::Controller::new(apps, wc())
                    .owns(sets, wc())
                    .with_config(config)
                    .run(app::reconcile, app::error_policy, context)
                    .for_each(|_| ready(()))
                    .await
            }
            Runtime::Kdst => {
                kdst_kube::Controller::new(apps, wc())
                    .owns(sets, wc())
                    .with_config(config)
                    .run(app::reconcile, app::error_policy, context)
                    .for_each(|_| ready(()))
                    .await
            }
        }
    });
    let driver = cluster.clone();
    sim_core::spawn("driver", async move {
        let start = sim_core::now();
        let mut done = None;
        loop {
            driver.turn();
            let now = sim_core::now();
            if done.is_none() && statefulsets(&driver) == APPS {
                done = Some(now);
            }
            if done.is_some_and(|done| now - done >= SETTLE) || now - start >= DEADLINE {
                break;
            }
            sim_core::sleep(TICK).await;
        }
        made.set(statefulsets(&driver));
    });
}

/// One run of [`workload`] under `seed` in a fresh simulation: it must complete. Returns the
/// simulation (for its trace) and how many StatefulSets existed at the end.
fn run(runtime: Runtime, seed: u64) -> (Simulation, usize) {
    let mut sim = Simulation::default();
    let made = Rc::new(Cell::new(0));
    let written = made.clone();
    let outcome = sim.run(seed, move || workload(runtime, written));
    assert_eq!(outcome, Outcome::Completed, "{runtime:?} controller, seed {seed}");
    (sim, made.get())
}

/// The StatefulSets in the order the server created them (`default/app-3-server`, …).
fn creation_order(trace: &Trace) -> Vec<String> {
    let texts = trace.events().iter().map(|event| trace.event_text(event));
    let created = texts.filter_map(|text| {
        let rest = text.split_once(CREATE_STATEFULSET)?.1;
        rest.split_whitespace().next().map(str::to_string)
    });
    created.collect()
}

/// Every App's StatefulSet, sorted.
fn every_statefulset() -> Vec<String> {
    (0..APPS).map(|i| format!("default/{}", statefulset_name(i))).collect()
}

/// Whether a line of a determinism report names a request of the operator on one of the Apps or
/// its StatefulSet: `call API server: PATCH /apis/example.kdst.dev/v1/namespaces/default/apps/
/// app-3`, `API GET statefulsets.apps default/app-5-server → 404 NotFound`.
fn names_request(line: &str) -> bool {
    line.contains("API")
        && (line.contains("statefulsets") || line.contains("example.kdst.dev"))
        && line.contains("app-")
}

/// The two runs' lines of a difference description (`…first run: A; second run: B`).
fn report_lines(report: &str) -> (&str, &str) {
    let rest = report.split_once("first run: ").map_or("", |(_, rest)| rest);
    rest.split_once("; second run: ").unwrap_or((rest, ""))
}

/// The step of the first event whose text differs between `a` and `b` (or of the first event
/// one has and the other does not): where the runs observably parted.
fn first_event_difference(a: &Trace, b: &Trace) -> Option<u64> {
    let (ea, eb) = (a.events(), b.events());
    let differing = ea.iter().zip(eb).find(|(x, y)| a.event_text(x) != b.event_text(y));
    match differing {
        Some((x, y)) => Some(x.step.min(y.step)),
        None if ea.len() > eb.len() => Some(ea[eb.len()].step),
        None if eb.len() > ea.len() => Some(eb[ea.len()].step),
        None => None,
    }
}

/// The same seed, run again and again in one process, reconciles the Apps in different orders
/// with the real Controller, and every run reconciles all six.
#[test]
fn the_real_controller_reconciles_in_a_different_order_run_to_run() {
    // Why at least one differing pair out of 10 is a safe expectation: each run's `Scheduler`
    // and `FutureHashMap` make fresh std hash containers, and std's `RandomState::new` gives
    // every container new SipHash keys (random per thread, then incremented per container), so
    // each run places the six ObjectRefs in its hash table at independent, close to uniform
    // positions. Six objects give 720 orders; even counting only which App goes first (6
    // choices), the chance that two runs agree is about 1/6, and that all 10 pairs agree about
    // (1/6)^10 < 2e-8. Measured: 9 or 10 of 10 pairs differ (19 or 20 distinct orders in 20
    // runs).
    const PAIRS: usize = 10;
    let mut orders = Vec::new();
    for _ in 0..2 * PAIRS {
        let (sim, made) = run(Runtime::Kube, 0);
        assert_eq!(made, APPS, "the real Controller made every App's StatefulSet");
        let order = creation_order(sim.trace());
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, every_statefulset(), "each StatefulSet created once: {order:?}");
        orders.push(order);
    }
    let differing = orders.chunks(2).filter(|pair| pair[0] != pair[1]).count();
    let mut distinct = orders.clone();
    distinct.sort();
    distinct.dedup();
    eprintln!(
        "real Controller, seed 0: {differing} of {PAIRS} pairs of runs created the StatefulSets \
         in different orders; {} distinct orders in {} runs",
        distinct.len(),
        orders.len()
    );
    assert!(differing >= 1, "the real Controller ran seed 0 the same way {PAIRS} times over");
}

/// kdst's determinism check catches the real Controller and names the request that diverged.
#[test]
fn kdsts_determinism_check_reports_the_real_controller_with_the_diverging_request() {
    // `Check`: every seed completes, then its sample of seeds (all 4 here) runs twice; the first
    // pair that differs panics with the report. `with_env(&[])`: no `SIM_*` variable of the
    // environment changes what is checked.
    let check = Check::new("real_controller").seeds(4).with_env(&[]);
    let result = catch_unwind(AssertUnwindSafe(|| {
        check.run(|| workload(Runtime::Kube, Rc::default()));
    }));
    let payload = result.expect_err("kdst's determinism check passed the real Controller");
    let report = match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => {
            payload.downcast::<&str>().map_or_else(|_| String::new(), |s| s.to_string())
        }
    };
    assert!(report.contains("nondeterminism detected at step"), "{report}");
    assert!(report.contains("of real_controller ran differently twice"), "{report}");
    let (first, second) = report_lines(&report);
    assert!(names_request(first) && names_request(second), "no request named: {report}");
    assert_ne!(first, second, "{report}");

    // `trace_difference` on pairs of runs of one seed: each difference is reported at the step
    // where the runs' traces first part, with the request each run made there. The step is
    // checked against the first event whose text differs: with the real Controller the order
    // of kdst's tasks (which the step records hold) stays the same for a while after the runs
    // have sent different requests, since all of it runs inside one coarse task.
    let mut differences = Vec::new();
    for _ in 0..5 {
        let (a, _) = run(Runtime::Kube, 1);
        let (b, _) = run(Runtime::Kube, 1);
        let Some(difference) = trace_difference(a.trace(), b.trace()) else { continue };
        let step = first_event_difference(a.trace(), b.trace()).expect("the events differ");
        assert!(
            difference.starts_with(&format!("at step {step}: ")),
            "the events first differ at step {step}, reported: {difference}"
        );
        let (first, second) = report_lines(&difference);
        assert!(names_request(first) && names_request(second), "no request named: {difference}");
        differences.push(difference);
    }
    assert!(!differences.is_empty(), "5 pairs of runs of seed 1 were the same");
    let said = report.split_once("first run: ").map_or("", |(_, rest)| rest);
    eprintln!(
        "real Controller, seed 1: {} of 5 pairs of runs differed; the check said: first run: {}",
        differences.len(),
        said.chars().take(400).collect::<String>()
    );
}

/// kdst's Controller, with the same builder and the same reconcile functions, runs every seed
/// the same way twice, and makes every App's StatefulSet.
#[test]
fn kdst_controller_with_the_same_reconcile_is_deterministic() {
    // 64 seeds, 128 runs: about 3 s in a debug build (200 seeds take about 10 s).
    const SEEDS: u64 = 64;
    let mut orders = Vec::new();
    for seed in 0..SEEDS {
        let (a, made) = run(Runtime::Kdst, seed);
        assert_eq!(made, APPS, "seed {seed}: every App's StatefulSet exists at the end");
        let (b, _) = run(Runtime::Kdst, seed);
        assert_eq!(trace_difference(a.trace(), b.trace()), None, "seed {seed} ran differently");
        let order = creation_order(a.trace());
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, every_statefulset(), "seed {seed}: each created once: {order:?}");
        orders.push(order);
    }
    orders.sort();
    orders.dedup();
    eprintln!(
        "kdst Controller: {SEEDS} seeds, each the same twice; {} creation orders",
        orders.len()
    );
}
