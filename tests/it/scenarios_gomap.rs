//! Tests: the Go-map scenarios `cert-manager-scheme-race` (bugs.md B, cert-manager #6822) and
//! `capsule-replication-writes` (bugs.md C, Capsule #1263). The buggy variants die with Go's
//! text on some seeds and complete on others; the dumps name both goroutines with their
//! upstream frames; the fixes hold; Capsule's fixed-variant oracle fires on a broken join.

use std::collections::BTreeSet;

use scenarios::capsule::{self, ReplicationWrites, check_processed};
use scenarios::{ParamError, Params, Scenario, find, run};
use sim_core::{
    CONCURRENT_READ_WRITE, CONCURRENT_WRITES, EventKind, Failure, FailureKind, Outcome, Simulation,
};

const SCHEME: &str = "cert-manager-scheme-race";
const CAPSULE: &str = "capsule-replication-writes";

fn scenario(name: &str) -> std::sync::Arc<dyn Scenario> {
    find(name).expect("registered")
}

/// The failing seeds among `0..seeds`, with their failures; a failure of another kind than
/// `kind`, or a limit, panics.
fn failures(
    name: &str,
    variant: &str,
    params: &Params,
    seeds: u64,
    kind: FailureKind,
) -> Vec<(u64, Failure)> {
    let found = kdst_tests::scenario_failures(name, variant, params, seeds);
    if let Some((seed, failure)) = found.iter().find(|(_, failure)| failure.kind != kind) {
        panic!("{name} {variant} seed {seed}: {failure}");
    }
    found
}

/// The lines of one goroutine of a dump: from its header line to the blank line.
fn goroutine<'a>(dump: &'a str, task: &str) -> &'a str {
    let header = format!("task \"{task}\"");
    let at = dump.find(&header).unwrap_or_else(|| panic!("no goroutine {task:?} in\n{dump}"));
    let rest = &dump[dump[..at].rfind('\n').map_or(0, |line| line + 1)..];
    &rest[..rest.find("\n\n").unwrap_or(rest.len())]
}

/// `labels` appear in `text` in this order (innermost frame first, as Go prints a stack).
fn assert_in_order(text: &str, labels: &[&str]) {
    let mut from = 0;
    for label in labels {
        let at = text[from..]
            .find(label)
            .unwrap_or_else(|| panic!("{label:?} not after byte {from} in\n{text}"));
        from += at + label.len();
    }
}

/// Messages the tasks emitted in the last run.
fn messages(sim: &Simulation) -> Vec<String> {
    let trace = sim.trace();
    trace
        .events()
        .iter()
        .filter(|event| matches!(event.kind, EventKind::Message(_)))
        .map(|event| trace.event_text(event))
        .collect()
}

// ---- cert-manager-scheme-race ----

/// Issue 6822's two stacks: the reader in `Scheme.ObjectKinds` under a lease call of the
/// renewal, the writer (`main`, runnable: preempted mid-write) in `AddUnversionedTypes` ←
/// `AddToGroupVersion` ← `addKnownTypes` ← `ContextFactory.Build` ← `Builder.Complete`.
#[test]
fn scheme_race_dump_names_the_lease_renewal_and_the_build() {
    let params = Params::defaults(scenario(SCHEME).as_ref());
    let found = failures(SCHEME, "buggy", &params, 1000, FailureKind::GoFatal);
    let (seed, failure) = found
        .iter()
        .find(|(_, f)| f.task_name.as_deref() == Some("leader-election"))
        .expect("a crash in the leader election within 1000 seeds");
    assert_eq!(failure.message, CONCURRENT_READ_WRITE, "seed {seed}");
    let dump = &failure.details;
    let reader = goroutine(dump, "leader-election");
    assert!(reader.contains("[running]"), "{dump}");
    assert!(reader.contains("runtime.mapaccess2(map \"scheme.Scheme."), "{dump}");
    assert_in_order(
        reader,
        &[
            "runtime.(*Scheme).ObjectKinds",
            "v1.(*leases).",
            "resourcelock.(*LeaseLock).",
            "leaderelection.(*LeaderElector).tryAcquireOrRenew",
            "leaderelection.(*LeaderElector).renew",
            "leaderelection.RunOrDie",
            "created by \"main\"",
        ],
    );
    let writer = goroutine(dump, "main");
    assert!(writer.contains("[runnable]"), "{dump}");
    assert!(writer.contains("holds the map's writing flag"), "{dump}");
    assert_in_order(
        writer,
        &[
            "runtime.mapassign(map \"scheme.Scheme.",
            "runtime.(*Scheme).AddUnversionedTypes",
            "v1.AddToGroupVersion",
            "v1.addKnownTypes",
            "runtime.(*SchemeBuilder).AddToScheme",
            "controller.(*ContextFactory).Build",
            "controller.(*Builder).Complete",
            "app.Run",
            "main.main",
        ],
    );
    assert_eq!(failure.involved.len(), 1, "the writer is involved: {failure}");
}

/// The event broadcaster's sink goroutine, encoding "became leader" through the global scheme,
/// is the other reader that can land inside a Build.
#[test]
fn scheme_race_event_sink_is_a_reader_too() {
    let params = Params::defaults(scenario(SCHEME).as_ref());
    let found = failures(SCHEME, "buggy", &params, 1000, FailureKind::GoFatal);
    let (_, failure) = found
        .iter()
        .find(|(_, f)| f.task_name.as_deref().is_some_and(|t| t.starts_with("record.")))
        .expect("a crash in an event sink within 1000 seeds");
    let reader = goroutine(&failure.details, failure.task_name.as_deref().expect("a task"));
    assert_in_order(
        reader,
        &["runtime.(*Scheme).ObjectKinds", "versioning.(*codec).", "record.recordToSink"],
    );
}

/// Schedule-dependent, as in Go: some seeds crash, most start every controller; a crashing
/// seed replays to the same failure.
#[test]
fn scheme_race_buggy_fails_on_some_seeds_and_completes_on_others() {
    let scenario = scenario(SCHEME);
    let params = Params::defaults(scenario.as_ref());
    let found = failures(SCHEME, "buggy", &params, 300, FailureKind::GoFatal);
    assert!(!found.is_empty() && found.len() < 150, "{} of 300 seeds crashed", found.len());
    for (_, failure) in &found {
        assert_eq!(failure.message, CONCURRENT_READ_WRITE, "{failure}");
    }
    let (seed, failure) = &found[0];
    let again = run(&mut Simulation::default(), scenario.as_ref(), "buggy", &params, *seed);
    assert_eq!(again, Outcome::Failed(failure.clone()));
    // With a single controller built after the election the window is smaller: fewer crashes.
    let one = params.clone().with("controllers", 1).expect("in range");
    let fewer = failures(SCHEME, "buggy", &one, 300, FailureKind::GoFatal);
    assert!(
        fewer.len() < found.len(),
        "{} with one controller, {} with 8",
        fewer.len(),
        found.len()
    );
}

/// The fix: every Build fills its own Scheme; the global one is only read after init. Holds with
/// every controller and a fast renewal, and the run does what cert-manager does at start-up.
#[test]
fn scheme_race_fixed_holds_and_starts_every_controller() {
    let scenario = scenario(SCHEME);
    let params = Params::defaults(scenario.as_ref())
        .with("controllers", 20)
        .and_then(|p| p.with("retry-ms", 100))
        .expect("in range");
    let found = failures(SCHEME, "fixed", &params, 150, FailureKind::GoFatal);
    assert!(found.is_empty(), "seed {}: {}", found[0].0, found[0].1);
    let mut sim = Simulation::default();
    assert_eq!(run(&mut sim, scenario.as_ref(), "fixed", &params, 7), Outcome::Completed);
    let lines = messages(&sim);
    let count = |text: &str| lines.iter().filter(|l| l.contains(text)).count();
    assert_eq!(count("successfully acquired lease kube-system/cert-manager-controller"), 1);
    assert!(count("successfully renewed lease") >= 2, "{lines:#?}");
    assert_eq!(count(": starting control loop"), 20);
    assert_eq!(count("creating event broadcaster"), 21, "the root context and 20 controllers");
    assert_eq!(count("API CREATE events kube-system/cert-manager-controller."), 1, "became leader");
}

// ---- capsule-replication-writes ----

/// Issue 1263: two replication goroutines of one batch in `processed.Insert` at once.
#[test]
fn capsule_dump_names_both_replication_goroutines() {
    let params = Params::defaults(scenario(CAPSULE).as_ref());
    let found = failures(CAPSULE, "buggy", &params, 1000, FailureKind::GoFatal);
    let (seed, failure) = found.first().expect("a crash within 1000 seeds");
    assert_eq!(failure.message, CONCURRENT_WRITES, "seed {seed}");
    let dump = &failure.details;
    let crashed = failure.task_name.as_deref().expect("the crashing task");
    assert!(crashed.starts_with("resources.(*Processor).HandleSection.func1 ("), "{crashed}");
    let tasks: Vec<&str> = dump
        .lines()
        .filter(|line| line.starts_with("goroutine "))
        .filter_map(|line| line.split("task \"").nth(1))
        .map(|rest| rest.trim_end_matches('"'))
        .collect();
    assert_eq!(tasks.len(), 2, "{dump}");
    assert_ne!(tasks[0], tasks[1], "{dump}");
    for task in &tasks {
        assert!(task.starts_with("resources.(*Processor).HandleSection.func1 ("), "{dump}");
        assert_in_order(
            goroutine(dump, task),
            &[
                "runtime.mapassign(map \"processed\")",
                "sets.String.Insert",
                "resources.(*Processor).HandleSection.func1",
                "created by \"globaltenantresource/worker-0\"",
            ],
        );
    }
    assert!(goroutine(dump, crashed).contains("[running]"), "{dump}");
}

/// Most reconciles survive; some schedules crash, and on every resync the race comes back.
#[test]
fn capsule_buggy_fails_on_some_seeds_and_completes_on_others() {
    let scenario = scenario(CAPSULE);
    let params = Params::defaults(scenario.as_ref());
    let found = failures(CAPSULE, "buggy", &params, 300, FailureKind::GoFatal);
    assert!(!found.is_empty() && found.len() < 150, "{} of 300 seeds crashed", found.len());
    assert!(found.iter().all(|(_, f)| f.message == CONCURRENT_WRITES));
    // More reconciles, more chances: the every-minute resync keeps rolling the dice.
    let longer = params.clone().with("reconciles", 12).expect("in range");
    let more = failures(CAPSULE, "buggy", &longer, 300, FailureKind::GoFatal);
    assert!(
        more.len() > found.len(),
        "{} crashes with 12 reconciles, {} with 3",
        more.len(),
        found.len()
    );
    assert!(
        more.iter().any(|(_, f)| f.time.elapsed_since_start().as_secs() >= 60),
        "some crashes come after a resync"
    );
    // With one object per batch there is no second goroutine to collide with.
    let single = params.clone().with("objects", 1).expect("in range");
    assert!(failures(CAPSULE, "buggy", &single, 100, FailureKind::GoFatal).is_empty());
}

/// The fix holds, with the oracle checking every batch, and the reconciles really replicate.
#[test]
fn capsule_fixed_holds_and_replicates_every_object() {
    let scenario = scenario(CAPSULE);
    let params = Params::defaults(scenario.as_ref());
    let wide =
        params.clone().with("objects", 12).and_then(|p| p.with("sections", 2)).expect("in range");
    for params in [&params, &wide] {
        let found = failures(CAPSULE, "fixed", params, 150, FailureKind::Invariant);
        assert!(found.is_empty(), "seed {}: {}", found[0].0, found[0].1);
    }
    let mut sim = Simulation::default();
    assert_eq!(run(&mut sim, scenario.as_ref(), "fixed", &params, 3), Outcome::Completed);
    let lines = messages(&sim);
    let count = |text: &str| lines.iter().filter(|l| l.starts_with(text)).count();
    // 3 reconciles × (2 tenants × 2 namespaces) batches × 4 objects.
    assert_eq!(count("resource has been replicated: "), 48, "{lines:#?}");
    assert_eq!(count("processing completed"), 3);
    assert_eq!(count("API CREATE secrets tenant-"), 16, "created once, updated after");
}

/// The fixed variant's oracle is not vacuous: a join that loses a slot is reported.
#[test]
fn capsule_oracle_fires_when_a_slot_is_lost() {
    let params = Params::defaults(scenario(CAPSULE).as_ref());
    let outcome = Simulation::default()
        .run(5, || ReplicationWrites.setup_with(&capsule::FIXED, &params, Some(2)));
    let failure = kdst_tests::failed(outcome, FailureKind::Invariant);
    assert_eq!(failure.message, "processed is not the set of objects that synced");
    assert!(
        failure.details.contains(
            "synced but not processed: [\"APIVersion=v1,Kind=Secret,Namespace=tenant-0-ns-"
        ),
        "{failure}"
    );
    assert!(failure.details.contains("Name=section-0-2\"]"), "{failure}");
    assert_eq!(failure.task_name.as_deref(), Some("globaltenantresource/worker-0"));
    // The check itself.
    let synced: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
    assert_eq!(check_processed(&["b".into(), "a".into()], &synced), Ok(()));
    let missing = check_processed(&["a".into()], &synced).expect_err("b is missing");
    assert!(missing.contains("synced but not processed: [\"b\"]"), "{missing}");
    let extra = check_processed(&["a".into(), "b".into(), "c".into()], &synced).expect_err("c");
    assert!(extra.contains("processed but not synced: [\"c\"]"), "{extra}");
}

// ---- both ----

#[test]
fn registered_with_upstream_links_and_buggy_first() {
    for (name, links) in [
        (SCHEME, ["issues/6822", "pull/6833", "pull/6832"]),
        (CAPSULE, ["issues/1263", "pull/1264", "pull/1264"]),
    ] {
        let scenario = scenario(name);
        for link in links {
            assert!(scenario.upstream().iter().any(|u| u.ends_with(link)), "{name}: {link}");
        }
        let variants: Vec<&str> = scenario.variants().iter().map(|v| v.name).collect();
        assert_eq!(variants, ["buggy", "fixed"], "{name}");
    }
}

#[test]
fn parameters_out_of_range_are_rejected() {
    let cases: &[(&str, &str, u64)] = &[
        (SCHEME, "controllers", 0),
        (SCHEME, "controllers", 21),
        (SCHEME, "retry-ms", 99),
        (SCHEME, "retry-ms", 120_001),
        (CAPSULE, "objects", 0),
        (CAPSULE, "objects", 51),
        (CAPSULE, "tenants", 0),
        (CAPSULE, "namespaces", 21),
        (CAPSULE, "sections", 11),
        (CAPSULE, "resync-ms", 99),
        (CAPSULE, "reconciles", 0),
    ];
    for &(name, param, value) in cases {
        let mut params = Params::defaults(scenario(name).as_ref());
        match params.set(param, value) {
            Err(ParamError::OutOfRange { name: rejected, value: given, .. }) => {
                assert_eq!((rejected, given), (param, value));
            }
            other => panic!("{name} {param}={value}: {other:?}"),
        }
        assert_eq!(params, Params::defaults(scenario(name).as_ref()), "unchanged");
    }
    let mut params = Params::defaults(scenario(CAPSULE).as_ref());
    assert!(matches!(params.set("goroutines", 3), Err(ParamError::Unknown { .. })));
    assert_eq!(params.set("objects", 50), Ok(()));
}
