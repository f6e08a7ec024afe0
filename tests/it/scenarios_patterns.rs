//! Tests: the general patterns of bugs.md E — `informer-cache-locking` (informer handlers write a
//! pod cache that reconcile workers read) and `syncmap-load-or-store` (the value
//! `sync.Map.LoadOrStore` returns, mutated in place). The registry tests in `scenarios.rs` check
//! the expectations and replay; these check what the failures say.

use kdst_tests::scenario_failures as failures;
use scenarios::{ParamError, Params, Scenario, find, run};
use sim_core::{CONCURRENT_READ_WRITE, Failure, FailureKind, Outcome, Simulation};

fn scenario(name: &str) -> std::sync::Arc<dyn Scenario> {
    find(name).unwrap_or_else(|| panic!("{name} is registered"))
}

fn defaults(name: &str) -> Params {
    Params::defaults(scenario(name).as_ref())
}

/// A goroutine dump's blocks: the crashing goroutine first, then the writer it collided with.
fn goroutines(failure: &Failure) -> Vec<&str> {
    failure.details.split("\n\n").collect()
}

#[test]
fn informer_cache_crash_dump_names_the_worker_and_the_event_handler_with_their_frames() {
    let params = defaults("informer-cache-locking");
    let found = failures("informer-cache-locking", "no-lock", &params, 50);
    assert!(!found.is_empty(), "no-lock: no crash in 50 seeds");
    for (seed, failure) in found {
        assert_eq!(failure.kind, FailureKind::GoFatal, "seed {seed}: {failure}");
        assert_eq!(failure.message, CONCURRENT_READ_WRITE, "seed {seed}: {failure}");
        let task = failure.task_name.as_deref().unwrap_or_default();
        assert!(task.starts_with("pod-controller/worker-"), "seed {seed}: reader is {task}");
        assert_eq!(failure.involved.len(), 1, "seed {seed}: the writer is involved");
        let blocks = goroutines(&failure);
        assert_eq!(blocks.len(), 2, "seed {seed}: two goroutines\n{}", failure.details);
        let (reader, writer) = (blocks[0], blocks[1]);
        // The reader: a reconcile worker inside a podCache read.
        assert!(reader.contains("task \"pod-controller/worker-"), "seed {seed}:\n{reader}");
        assert!(reader.contains("runtime.mapaccess2(map \"podCache.pods\")"), "{reader}");
        assert!(reader.contains("pod-controller.Reconcile(default/pod-"), "{reader}");
        assert!(
            reader.contains("podCache.Get") || reader.contains("podCache.IsReady"),
            "seed {seed}:\n{reader}"
        );
        // The writer: the informer's listener, in a handler, mid-write.
        assert!(writer.contains("task \"pod-informer/pod-cache\""), "seed {seed}:\n{writer}");
        assert!(writer.contains("processorListener.run"), "seed {seed}:\n{writer}");
        assert!(
            ["OnAdd", "OnUpdate", "OnDelete"].iter().any(|h| writer.contains(h)),
            "seed {seed}:\n{writer}"
        );
        assert!(
            writer.contains("runtime.mapassign(map \"podCache.pods\")  // holds")
                || writer.contains("runtime.mapdelete(map \"podCache.pods\")  // holds"),
            "seed {seed}:\n{writer}"
        );
    }
}

#[test]
fn missing_rlock_crashes_only_in_the_reader_that_skips_rlock() {
    let params = defaults("informer-cache-locking");
    let found = failures("informer-cache-locking", "missing-rlock", &params, 300);
    assert!(found.len() >= 5, "missing-rlock: only {} crashes in 300 seeds", found.len());
    for (seed, failure) in found {
        assert_eq!(failure.message, CONCURRENT_READ_WRITE, "seed {seed}: {failure}");
        let blocks = goroutines(&failure);
        let (reader, writer) = (blocks[0], blocks[1]);
        // `podCache.Get` takes RLock, so only `IsReady` can see a write in progress.
        assert!(reader.contains("podCache.IsReady"), "seed {seed}:\n{reader}");
        assert!(!reader.contains("podCache.Get"), "seed {seed}:\n{reader}");
        assert!(
            writer.contains("podCache.Set") || writer.contains("podCache.Delete"),
            "seed {seed}:\n{writer}"
        );
    }
}

#[test]
fn buggy_variants_fail_on_some_seeds_and_complete_on_others() {
    for (name, variant) in [
        ("informer-cache-locking", "no-lock"),
        ("informer-cache-locking", "missing-rlock"),
        ("syncmap-load-or-store", "buggy"),
    ] {
        let failed = failures(name, variant, &defaults(name), 200).len();
        assert!(failed > 0, "{name} {variant}: never fails in 200 seeds");
        assert!(failed < 200, "{name} {variant}: fails on every seed");
    }
}

#[test]
fn lost_update_names_the_lost_namespace_its_worker_and_the_stale_writer() {
    let params = defaults("syncmap-load-or-store");
    let found = failures("syncmap-load-or-store", "buggy", &params, 100);
    assert!(!found.is_empty(), "buggy: no lost update in 100 seeds");
    for (seed, failure) in found {
        assert_eq!(failure.kind, FailureKind::Invariant, "seed {seed}: {failure}");
        let message = &failure.message;
        assert!(
            message.starts_with("tenant index keeps every tracked namespace: lost update: "),
            "seed {seed}: {message}"
        );
        // `namespace "tenant-T-ns-N" added to tenant "tenant-T" by <worker> …`
        let lost = message.split('"').nth(1).expect("a quoted namespace");
        let tenant = message.split('"').nth(3).expect("a quoted tenant");
        assert!(lost.starts_with(&format!("{tenant}-ns-")), "seed {seed}: {message}");
        let listed = message.split_once("namespaces [").expect("the list").1;
        let listed = listed.split_once(']').expect("the list ends").0;
        assert!(!listed.contains(&format!("\"{lost}\"")), "seed {seed}: {message}");
        assert!(message.contains("by namespace-controller/worker-"), "seed {seed}: {message}");
        assert!(
            message.contains("(overwritten by namespace-controller/worker-"),
            "seed {seed}: {message}"
        );
    }
}

#[test]
fn lost_update_needs_two_workers() {
    let params = defaults("syncmap-load-or-store").with("workers", 1).expect("in range");
    let found = failures("syncmap-load-or-store", "buggy", &params, 200);
    assert!(found.is_empty(), "one worker cannot race itself: {}", found[0].1);
}

#[test]
fn fixed_variants_hold_under_more_contention() {
    let informer = defaults("informer-cache-locking")
        .with("workers", 4)
        .and_then(|p| p.with("pods", 5))
        .and_then(|p| p.with("churn", 3))
        .and_then(|p| p.with("cache-lag-us", 0))
        .expect("in range");
    let found = failures("informer-cache-locking", "fixed", &informer, 200);
    assert!(found.is_empty(), "seed {}: {}", found[0].0, found[0].1);

    let syncmap = defaults("syncmap-load-or-store")
        .with("tenants", 1)
        .and_then(|p| p.with("namespaces", 6))
        .and_then(|p| p.with("workers", 4))
        .expect("in range");
    let scenario = scenario("syncmap-load-or-store");
    let mut sim = Simulation::default();
    let mut retried = 0;
    for seed in 0..200 {
        let outcome = run(&mut sim, scenario.as_ref(), "fixed", &syncmap, seed);
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
        let trace = sim.trace().render();
        assert!(trace.contains("6 of 6 namespaces tracked"), "seed {seed}:\n{trace}");
        retried += usize::from(trace.contains("CompareAndSwap lost a race, retrying"));
    }
    // The contention is real: the fix's retry loop runs.
    assert!(retried > 0, "CompareAndSwap never lost a race in 200 seeds");
}

#[test]
fn out_of_range_params_are_rejected() {
    for name in ["informer-cache-locking", "syncmap-load-or-store"] {
        let scenario = scenario(name);
        let mut params = Params::defaults(scenario.as_ref());
        for spec in scenario.params() {
            assert!(spec.min <= spec.default && spec.default <= spec.max, "{name} {}", spec.name);
            let above = params.set(spec.name, spec.max + 1);
            assert!(
                matches!(above, Err(ParamError::OutOfRange { value, .. }) if value == spec.max + 1),
                "{name} {}: {above:?}",
                spec.name
            );
            if spec.min > 0 {
                let below = params.set(spec.name, spec.min - 1);
                assert!(
                    matches!(below, Err(ParamError::OutOfRange { .. })),
                    "{name} {}",
                    spec.name
                );
            }
        }
        assert!(matches!(params.set("workers", 0), Err(ParamError::OutOfRange { .. })), "{name}");
        assert!(matches!(params.set("replicas", 1), Err(ParamError::Unknown { .. })), "{name}");
        assert_eq!(
            params,
            Params::defaults(scenario.as_ref()),
            "{name}: rejected sets change nothing"
        );
    }
}
