//! Tests: `apiserver_fake::endstate`, the pure parts of the generic oracles. Masked end states
//! of equivalent runs (other seeds, other creation orders, other uids, resourceVersions,
//! timestamps and generated suffixes) compare equal; real differences (a missing object, a
//! changed label, a deletionTimestamp) are reported at the right path; a mask that masks nothing
//! makes equivalent runs differ (the mask matters); the digest is equal iff the masked states
//! are; the update summary counts creates, deletes and recreates right however small the
//! change log's history; and everything is a pure function of the seed.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use apiserver_fake::endstate::{GENERATED, MASKED};
use apiserver_fake::{
    ApiServer, CountTable, DeleteOptions, Difference, EndState, EventType, Mask, Object, ObjectId,
    OwnerReference, Registry, ServerConfig, Stability, UpdateSummary,
};
use serde_json::{Value, json};
use sim_core::{Outcome, SimTime, Simulation, sleep, spawn, yield_now};

const SEEDS: u64 = 100;
const NS: &str = "default";
/// A finalizer nobody removes: a deleted object that carries it stays, deleting.
const HOLD: &str = "example.com/hold";
/// How many updates `busy` gets: far more than the tiny history the runs keep.
const BUSY_UPDATES: u32 = 10;
/// The kinds the workload writes.
const KINDS: &[(&str, &str)] = &[("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Pod")];

/// What a run of the workload does differently from the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Reference,
    /// Secret `s` is never created.
    MissingSecret,
    /// ConfigMap `b` gets `app: db` instead of `app: web`.
    ChangedLabel,
    /// ConfigMap `held` is deleted (it stays, deleting, behind its finalizer).
    Deleting,
}

/// What a run leaves.
struct Run {
    /// Masked with [`Mask::default`].
    state: EndState,
    /// Masked with [`Mask::none`].
    raw: EndState,
    summary: UpdateSummary,
    stability: Stability,
    /// The server's change log length at the end.
    history: usize,
    /// When the workload finished.
    end: SimTime,
}

fn cm(name: &str) -> Object {
    Object::new("v1", "ConfigMap", NS, name)
}

fn id(kind: &str, name: &str) -> ObjectId {
    ObjectId::new("v1", kind, NS, name)
}

/// Three tasks create (and delete, and update) objects with yields between, so that the
/// schedule, and with it the order of creation, uids, resourceVersions and timestamps, varies
/// with the seed; the end state does not (except as `variant` says).
fn run(seed: u64, variant: Variant) -> Run {
    let out: Rc<RefCell<Option<Run>>> = Rc::new(RefCell::new(None));
    let sink = out.clone();
    let outcome = Simulation::default().run(seed, move || {
        let config = ServerConfig::default().with_update_summary(true).with_history_max(2);
        let server = ApiServer::new(Registry::builtin(), config);
        let sink = sink.clone();
        spawn("driver", async move {
            let s = server.clone();
            let w0 = spawn("w0", async move {
                s.create(cm("a").with_label("app", "web")).unwrap();
                yield_now().await;
                let app = if variant == Variant::ChangedLabel { "db" } else { "web" };
                s.create(cm("b").with_label("app", app)).unwrap();
                yield_now().await;
                if variant != Variant::MissingSecret {
                    let secret = Object::new("v1", "Secret", NS, "s")
                        .with_field("data", json!({ "key": "dmFsdWU=" }));
                    s.create(secret).unwrap();
                }
            });
            let s = server.clone();
            let w1 = spawn("w1", async move {
                for index in ["1", "2"] {
                    let mut pod = Object::new("v1", "Pod", NS, "").with_label("index", index);
                    pod.metadata.generate_name = "web-".into();
                    let pod = s.create(pod).unwrap();
                    yield_now().await;
                    if index == "1" {
                        let config =
                            cm("pod-config").with_owner(OwnerReference::controller_of(&pod));
                        s.create(config).unwrap();
                    }
                }
                s.create(cm("held").with_finalizer(HOLD)).unwrap();
                yield_now().await;
                if variant == Variant::Deleting {
                    s.delete("v1", "ConfigMap", NS, "held", &DeleteOptions::default()).unwrap();
                }
            });
            let s = server.clone();
            let w2 = spawn("w2", async move {
                let owner = s.create(cm("owner")).unwrap();
                yield_now().await;
                s.create(cm("child").with_owner(OwnerReference::controller_of(&owner))).unwrap();
                yield_now().await;
                // Created, deleted, created again: ADDED 2, DELETED 1.
                s.create(cm("flap").with_label("round", "1")).unwrap();
                yield_now().await;
                s.delete("v1", "ConfigMap", NS, "flap", &DeleteOptions::default()).unwrap();
                yield_now().await;
                s.create(cm("flap").with_label("round", "2")).unwrap();
                let mut busy = s.create(cm("busy")).unwrap();
                for round in 0..BUSY_UPDATES {
                    yield_now().await;
                    let value = json!({ "round": round.to_string() });
                    busy = s.update(busy.with_field("data", value)).unwrap();
                }
            });
            for worker in [w0, w1, w2] {
                worker.await;
            }
            // Time passes with no write: the cluster is stable after `end`.
            let end = sim_core::now();
            sleep(Duration::from_secs(1)).await;
            let mask = Mask::default();
            *sink.borrow_mut() = Some(Run {
                state: EndState::capture(&server, KINDS, &mask),
                raw: EndState::capture(&server, KINDS, &Mask::none()),
                summary: UpdateSummary::capture(&server, KINDS, &mask).expect("recording is on"),
                stability: Stability::capture(&server, KINDS, &mask).expect("recording is on"),
                history: server.history().len(),
                end,
            });
        });
    });
    assert_eq!(outcome, Outcome::Completed, "seed {seed}");
    out.take().expect("the driver finished")
}

/// The uid of a ConfigMap in a raw (unmasked) state.
fn uid_of(raw: &EndState, name: &str) -> String {
    let object = raw.get(&id("ConfigMap", name)).expect("the ConfigMap is there");
    object["metadata"]["uid"].as_str().expect("a uid").to_string()
}

#[test]
fn equivalent_runs_have_equal_masked_end_states() {
    let reference = run(0, Variant::Reference);
    assert_eq!(reference.state.len(), 11, "8 ConfigMaps, 1 Secret, 2 Pods:\n{:?}", reference.state);
    let mut uids = BTreeSet::new();
    let mut raw_digests = BTreeSet::new();
    for seed in 0..SEEDS {
        let other = run(seed, Variant::Reference);
        let diff = other.state.diff(&reference.state);
        assert!(diff.is_empty(), "seed {seed}:\n{diff}");
        assert_eq!(other.state, reference.state, "seed {seed}");
        assert_eq!(other.state.digest(), reference.state.digest(), "seed {seed}");
        uids.insert((uid_of(&other.raw, "a"), uid_of(&other.raw, "owner")));
        raw_digests.insert(other.raw.digest());
    }
    // The runs really were different: other creation orders, so other uids.
    assert!(uids.len() > 3, "the schedules never reordered the creates: {uids:?}");
    assert_eq!(raw_digests.len() as u64, SEEDS, "unmasked, every run differs");
}

#[test]
fn the_mask_matters() {
    // Contract: masking nothing, equivalent runs differ (uids, resourceVersions, timestamps and
    // generated names all depend on the schedule and the seed).
    let reference = run(0, Variant::Reference);
    for seed in 1..SEEDS {
        let other = run(seed, Variant::Reference);
        let diff = other.raw.diff(&reference.raw);
        assert!(!diff.is_empty(), "seed {seed}: unmasked states equal");
        // The generated pods have other names in another run.
        assert_eq!(diff.only_in_run().filter(|id| id.kind == "Pod").count(), 2, "seed {seed}");
        assert!(
            diff.paths_of(&id("ConfigMap", "a")).contains(&"/metadata/creationTimestamp"),
            "seed {seed}:\n{diff}"
        );
    }
    // With generated names unmasked, the pods no longer match either.
    let keep_names = Mask::default().generated_names(false);
    let other = run(1, Variant::Reference);
    let a = EndState::from_objects(&objects_of(&reference.raw), &keep_names);
    let b = EndState::from_objects(&objects_of(&other.raw), &keep_names);
    let diff = b.diff(&a);
    assert_eq!(diff.only_in_reference().count(), 2, "{diff}");
    assert_eq!(diff.only_in_run().count(), 2, "{diff}");
    // pod-config's owner is a generated pod: its reference differs by name only.
    assert_eq!(diff.paths_of(&id("ConfigMap", "pod-config")), ["/metadata/ownerReferences/0/name"]);
    // The same objects under the default mask match.
    let a = EndState::from_objects(&objects_of(&reference.raw), &Mask::default());
    let b = EndState::from_objects(&objects_of(&other.raw), &Mask::default());
    assert!(b.diff(&a).is_empty(), "{}", b.diff(&a));
}

/// The objects of a raw state, back as objects.
fn objects_of(raw: &EndState) -> Vec<Object> {
    raw.objects().values().map(|v| Object::from_json(v.clone()).expect("an object")).collect()
}

#[test]
fn generated_names_are_masked_and_numbered_by_content() {
    let state = run(4, Variant::Reference).state;
    let pods: Vec<String> =
        state.ids().filter(|id| id.kind == "Pod").map(|id| id.to_string()).collect();
    assert_eq!(pods, ["Pod default/web-#0", "Pod default/web-#1"]);
    let name = format!("web-{GENERATED}");
    // Ordered by masked content: the pod labelled index=1 sorts first.
    assert_eq!(state.get(&id("Pod", "web-#0")).unwrap()["metadata"]["labels"]["index"], "1");
    assert_eq!(state.get(&id("Pod", "web-#1")).unwrap()["metadata"]["name"], name.as_str());
    let config = state.get(&id("ConfigMap", "pod-config")).unwrap();
    assert_eq!(config["metadata"]["ownerReferences"][0]["name"], name.as_str());
    assert_eq!(config["metadata"]["ownerReferences"][0]["uid"], MASKED);
    assert_eq!(config["metadata"]["uid"], MASKED);
    assert_eq!(config["metadata"]["generation"], MASKED);
    assert!(config["metadata"].get("deletionTimestamp").is_none(), "absent stays absent");
}

#[test]
fn real_differences_are_reported_at_their_paths() {
    let reference = run(0, Variant::Reference);

    let missing = run(1, Variant::MissingSecret).state.diff(&reference.state);
    assert_eq!(missing.differences, [Difference::OnlyInReference(id("Secret", "s"))]);
    assert_eq!(missing.counts[&("v1".to_string(), "Secret".to_string())], (1, 0));
    assert!(
        missing.to_string().contains("\n  Secret default/s: only in the reference"),
        "{missing}"
    );
    assert!(missing.to_string().contains("Secret 1/0"), "{missing}");

    let changed = run(2, Variant::ChangedLabel).state.diff(&reference.state);
    assert_eq!(
        changed.differences,
        [Difference::Field {
            object: id("ConfigMap", "b"),
            path: "/metadata/labels/app".into(),
            reference: Some(Value::from("web")),
            run: Some(Value::from("db")),
        }]
    );
    assert!(
        changed.to_string().ends_with(
            "ConfigMap default/b: /metadata/labels/app: \"web\" (reference) vs \"db\" (this run)"
        ),
        "{changed}"
    );

    let deleting = run(3, Variant::Deleting).state.diff(&reference.state);
    let held = id("ConfigMap", "held");
    assert_eq!(
        deleting.paths_of(&held),
        ["/metadata/deletionGracePeriodSeconds", "/metadata/deletionTimestamp"],
        "{deleting}"
    );
    assert_eq!(deleting.len(), 2, "{deleting}");
    let line = "ConfigMap default/held: /metadata/deletionTimestamp: absent (reference) vs present (this run)";
    assert!(deleting.to_string().contains(line), "{deleting}");
    // The reverse diff swaps the sides.
    let reverse = reference.state.diff(&run(3, Variant::Deleting).state);
    assert!(reverse.to_string().contains("present (reference) vs absent (this run)"), "{reverse}");
}

#[test]
fn the_display_is_bounded() {
    let reference = EndState::from_objects(&[], &Mask::default());
    let many: Vec<Object> = (0..40).map(|i| cm(&format!("cm-{i:02}"))).collect();
    let run = EndState::from_objects(&many, &Mask::default());
    let text = run.diff(&reference).to_string();
    assert!(
        text.starts_with(
            "end state differs from the reference: 0 only in the reference, 40 only in this run"
        ),
        "{text}"
    );
    assert!(text.contains("ConfigMap 0/40"), "{text}");
    assert_eq!(text.lines().count(), 2 + 25 + 1, "{text}");
    assert!(text.ends_with("\n  … 15 more"), "{text}");
    let same = run.diff(&run).to_string();
    assert_eq!(same, "end state matches the reference (40 objects)");
}

#[test]
fn digest_is_equal_iff_masked_states_are() {
    let mut states: Vec<EndState> = Vec::new();
    for seed in 0..4 {
        for variant in
            [Variant::Reference, Variant::MissingSecret, Variant::ChangedLabel, Variant::Deleting]
        {
            states.push(run(seed, variant).state);
        }
    }
    let (mut equal, mut different) = (0, 0);
    for a in &states {
        for b in &states {
            assert_eq!(a == b, a.digest() == b.digest(), "\n{}", a.diff(b));
            assert_eq!(a == b, a.diff(b).is_empty());
            if a == b { equal += 1 } else { different += 1 }
        }
    }
    // 4 variants × 4 seeds: 16 × 4 ordered pairs equal, the rest differ.
    assert_eq!((equal, different), (64, 192));
    // The digest is stable across builds and machines: a pure function of the canonical text.
    assert_eq!(states[0].digest(), sim_core::fnv1a(states[0].canonical().as_bytes()));
}

#[test]
fn the_summary_counts_the_whole_run_whatever_the_history() {
    for seed in 0..SEEDS {
        let run = run(seed, Variant::Reference);
        assert!(run.history <= 2, "the change log was compacted to its history_max");
        let flap = run.summary.get(&id("ConfigMap", "flap"));
        assert_eq!((flap.added, flap.modified, flap.deleted), (2, 0, 1), "seed {seed}");
        let busy = run.summary.get(&id("ConfigMap", "busy"));
        assert_eq!((busy.added, busy.modified, busy.deleted), (1, BUSY_UPDATES, 0), "seed {seed}");
        // The two generated pods, folded into one row.
        let pods = run.summary.get(&id("Pod", &format!("web-{GENERATED}")));
        assert_eq!((pods.added, pods.deleted), (2, 0), "seed {seed}");
        assert_eq!(run.summary.counts().len(), 10, "seed {seed}: {:?}", run.summary);
    }
    let reference = run(0, Variant::Reference).summary;
    assert!(run(5, Variant::Reference).summary.diff(&reference).is_empty());
    // Deleting `held` only MODIFIED it: the summary does not compare MODIFIED.
    assert!(run(5, Variant::Deleting).summary.diff(&reference).is_empty());
    let diffs = run(6, Variant::MissingSecret).summary.diff(&reference);
    assert_eq!(diffs.len(), 1);
    assert_eq!(
        diffs[0].to_string(),
        "Secret default/s: ADDED 1/0, DELETED 0/0 (reference/this run)"
    );
    assert_eq!(
        CountTable(&diffs).to_string(),
        "object            ADDED ref/run  DELETED ref/run\nSecret default/s            1/0              0/0"
    );
}

#[test]
fn without_the_write_log_there_is_no_summary() {
    let outcome = Simulation::default().run(0, || {
        let server = ApiServer::default();
        server.create(cm("a")).unwrap();
        assert!(server.write_log().is_none());
        assert!(UpdateSummary::capture(&server, &[], &Mask::default()).is_none());
        assert!(Stability::capture(&server, &[], &Mask::default()).is_none());
    });
    assert_eq!(outcome, Outcome::Completed);
}

#[test]
fn stability_says_what_changed_after_a_time() {
    let run = run(7, Variant::Reference);
    assert!(run.stability.since(run.end).is_empty(), "{:?}", run.stability.since(run.end));
    let all = run.stability.since(SimTime::ZERO);
    assert_eq!(all.len(), 10);
    let busy = id("ConfigMap", "busy");
    let churn = all.iter().find(|c| c.object == busy).unwrap();
    assert_eq!(churn.writes as u32, 1 + BUSY_UPDATES);
    assert_eq!(churn.last_type, EventType::Modified);
    assert_eq!(Some(churn.last), run.stability.last_write(&busy));
    assert!(churn.last <= run.end && churn.first < churn.last);
    assert_eq!(run.stability.writes_in(&busy, ..), 1 + BUSY_UPDATES as usize);
    assert_eq!(run.stability.writes_in(&busy, churn.last..), 1);
    assert_eq!(run.stability.writes_in(&busy, ..churn.first), 0);
    let flap = run.stability.writes_of(&id("ConfigMap", "flap"));
    let types: Vec<EventType> = flap.iter().map(|(_, t)| *t).collect();
    assert_eq!(types, [EventType::Added, EventType::Deleted, EventType::Added]);
    // After busy's next-to-last write, only busy and what came later changed.
    let late = run.stability.since(run.stability.writes_of(&busy)[BUSY_UPDATES as usize - 1].0);
    assert!(late.iter().any(|c| c.object == busy && c.writes == 1), "{late:?}");
    let overall = run.stability.last_write_overall().unwrap();
    assert!(overall.0 <= run.end && overall.0 >= churn.last);
    assert!(churn.to_string().starts_with("ConfigMap default/busy: 11 writes from "), "{churn}");
}

#[test]
fn same_seed_same_results() {
    for seed in [0, 9, 17] {
        let (a, b) = (run(seed, Variant::Deleting), run(seed, Variant::Deleting));
        assert_eq!(a.raw, b.raw, "seed {seed}: the unmasked states too");
        assert_eq!(a.raw.canonical(), b.raw.canonical());
        assert_eq!(a.state.digest(), b.state.digest());
        assert_eq!(a.summary, b.summary);
        assert_eq!(a.stability, b.stability);
        assert_eq!(a.end, b.end);
    }
}
