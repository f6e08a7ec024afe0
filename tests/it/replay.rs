//! Replay: a failing run written to a schedule file, read back and replayed, fails the same way
//! at the same step; a schedule that is corrupt, truncated or from another program is an error
//! that names the problem, never a wrong replay or a panic.

use std::time::Duration;

use sim_core::schedule::{FORMAT_VERSION, ScheduleError};
use sim_core::{
    FailureKind, GoMap, Outcome, Replay, ReplayMode, Schedule, Simulation, choose, event, sleep,
    spawn, yield_now,
};

/// Two writers racing on one Go map, with a strategy draw so replay must carry draws too.
fn racing_writers() {
    let map: GoMap<&'static str, u64> = GoMap::new("processed");
    for worker in 0..3u64 {
        let map = map.clone();
        spawn(format!("writer-{worker}"), async move {
            let pause = choose(3);
            sleep(Duration::from_micros(pause)).await;
            map.insert("key", worker).await;
        });
    }
}

/// A different program: same task count, different shape.
fn other_program() {
    for worker in 0..3 {
        spawn(format!("other-{worker}"), async move {
            for _ in 0..worker {
                yield_now().await;
            }
            event("done");
        });
    }
}

fn first_failing_seed(sim: &mut Simulation) -> u64 {
    (0..1000)
        .find(|&seed| sim.run(seed, racing_writers).is_failure())
        .expect("a racing write within 1000 seeds")
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kdst-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

#[test]
fn failing_schedule_round_trips_through_a_file() {
    let mut sim = Simulation::default();
    let seed = first_failing_seed(&mut sim);
    let original = sim.trace().outcome().cloned().expect("outcome");
    let original_hash = sim.trace().hash();
    let schedule = sim.schedule("racing_writers", &[("writers".into(), "3".into())]);
    assert!(!schedule.draws.is_empty(), "the program draws through the strategy");
    assert!(schedule.expect.as_deref().is_some_and(|e| e.starts_with("go-fatal at step")));

    let path = temp_path("round-trip.schedule");
    std::fs::write(&path, schedule.encode()).expect("write schedule");
    let decoded = Schedule::decode(&std::fs::read_to_string(&path).expect("read schedule"))
        .expect("decode schedule");
    assert_eq!(decoded, schedule);
    assert_eq!(decoded.seed, seed);

    let mut replay = Simulation::default().with_strategy(Replay::new(&decoded));
    let replayed = replay.run(decoded.seed, racing_writers);
    assert_eq!(replayed, original, "same failure, same step, same message");
    assert_eq!(replay.trace().hash(), original_hash, "same trace");
    let failure = replayed.failure().expect("failure");
    assert_eq!(failure.kind, FailureKind::GoFatal);
    assert_eq!(failure.message, sim_core::CONCURRENT_WRITES);
}

#[test]
fn completed_runs_replay_exactly_too() {
    let mut sim = Simulation::default();
    for seed in 0..50 {
        let outcome = sim.run(seed, other_program);
        let schedule = Schedule::decode(&sim.schedule("other", &[]).encode()).expect("decode");
        let mut replay = Simulation::default().with_strategy(Replay::new(&schedule));
        assert_eq!(replay.run(seed, other_program), outcome);
        assert_eq!(replay.trace().render(), sim.trace().render(), "seed {seed}");
    }
}

#[test]
fn a_schedule_from_another_program_names_the_diverging_step() {
    let mut sim = Simulation::default();
    sim.run(3, racing_writers);
    let schedule = sim.schedule("racing_writers", &[]);
    let mut replay = Simulation::default().with_strategy(Replay::new(&schedule));
    let outcome = replay.run(3, other_program);
    let failure = outcome.failure().expect("divergence is a failure");
    assert_eq!(failure.kind, FailureKind::Nondeterminism);
    assert!(
        failure.message.starts_with(&format!("nondeterminism at step {}:", failure.step)),
        "{}",
        failure.message
    );
    // The report's line says where once, not twice.
    let line = failure.to_string();
    assert_eq!(line.matches("at step").count(), 1, "{line}");
}

#[test]
fn a_schedule_that_ends_early_is_a_divergence_and_lenient_replay_runs_on() {
    let mut sim = Simulation::default();
    sim.run(11, other_program);
    let mut schedule = sim.schedule("other", &[]);
    let full = schedule.steps.len();
    schedule.steps.truncate(full / 2);

    let mut strict = Simulation::default().with_strategy(Replay::new(&schedule));
    let failure = strict.run(11, other_program).failure().cloned().expect("divergence");
    assert_eq!(failure.kind, FailureKind::Nondeterminism);
    assert_eq!(failure.step, (full / 2) as u64);
    assert!(failure.message.contains("the schedule ends after"), "{}", failure.message);

    let mut lenient =
        Simulation::default().with_strategy(Replay::with_mode(&schedule, ReplayMode::Lenient));
    assert_eq!(lenient.run(11, other_program), Outcome::Completed);
    assert_eq!(lenient.trace().step_tasks()[..full / 2], schedule.steps[..]);
}

#[test]
fn a_schedule_longer_than_the_run_is_a_divergence() {
    let mut sim = Simulation::default();
    sim.run(5, other_program);
    let mut schedule = sim.schedule("other", &[]);
    let last = *schedule.steps.last().expect("steps");
    schedule.steps.push(last);
    let mut strict = Simulation::default().with_strategy(Replay::new(&schedule));
    let failure = strict.run(5, other_program).failure().cloned().expect("divergence");
    assert_eq!(failure.kind, FailureKind::Nondeterminism);
    assert!(failure.message.contains("the program finished after"), "{}", failure.message);
}

fn sample_schedule_text() -> String {
    let mut sim = Simulation::default();
    let seed = first_failing_seed(&mut sim);
    sim.run(seed, racing_writers);
    sim.schedule("racing_writers", &[("writers".into(), "3".into())]).encode()
}

#[test]
fn truncated_schedule_files_are_a_clear_error() {
    let text = sample_schedule_text();
    for cut in [text.len() / 3, text.len() / 2, text.len() - 5] {
        let error = Schedule::decode(&text[..cut]).expect_err("truncated");
        assert_eq!(error, ScheduleError::Truncated, "cut at {cut}");
        assert_eq!(
            error.to_string(),
            "the schedule file is truncated: its final `end` line is missing"
        );
    }
}

#[test]
fn corrupt_schedule_files_are_a_clear_error() {
    let text = sample_schedule_text();
    let flipped = text.replacen("seed ", "seed 1", 1);
    assert_eq!(Schedule::decode(&flipped), Err(ScheduleError::Checksum));
    let edited_choice = text.replacen("choices\n", "choices\n7 ", 1);
    assert_eq!(Schedule::decode(&edited_choice), Err(ScheduleError::Checksum));
    assert_eq!(Schedule::decode(""), Err(ScheduleError::Empty));
    // Not a schedule at all: said before any other check.
    assert_eq!(Schedule::decode("hello\nworld\n"), Err(ScheduleError::NotASchedule));
    assert!(
        Schedule::decode(&text).is_ok(),
        "the untouched file decodes: the errors above are about the edits"
    );
}

/// A file whose checksum is right but whose content is not: written by hand or by a buggy tool.
#[test]
fn well_checksummed_nonsense_is_reported_by_line() {
    let reseal = |body: &str| format!("{body}end {:016x}\n", sim_core::fnv1a(body.as_bytes()));
    let not_schedule = reseal("hello\n");
    assert_eq!(Schedule::decode(&not_schedule), Err(ScheduleError::NotASchedule));

    let future = reseal("kdst-schedule 99\n");
    let error = Schedule::decode(&future).expect_err("future version");
    assert_eq!(error, ScheduleError::UnsupportedVersion { found: "99".into() });
    assert!(error.to_string().contains(&format!("reads version {FORMAT_VERSION}")));

    let bad_seed = reseal(
        "kdst-schedule 1\nkdst 0.1.0\ntest t\nseed -4\nstrategy random\nsteps 0\ndraws 0\nchoices\n",
    );
    let error = Schedule::decode(&bad_seed).expect_err("bad seed");
    assert_eq!(
        error.to_string(),
        "the schedule file is malformed at line 4: seed `-4` is not a non-negative integer"
    );

    let miscounted = reseal(
        "kdst-schedule 1\nkdst 0.1.0\ntest t\nseed 4\nstrategy random\nsteps 3\ndraws 0\nchoices\n0*2\n",
    );
    let error = Schedule::decode(&miscounted).expect_err("count mismatch");
    assert!(error.to_string().contains("announces 3 steps"), "{error}");

    let bad_token = reseal(
        "kdst-schedule 1\nkdst 0.1.0\ntest t\nseed 4\nstrategy random\nsteps 1\ndraws 0\nchoices\nx\n",
    );
    assert!(matches!(Schedule::decode(&bad_token), Err(ScheduleError::Malformed { line: 9, .. })));

    // Run-length counts allocate no more than the header announces, and the header no more than
    // a schedule may hold: a 100-byte file cannot ask for gigabytes.
    let head = "kdst-schedule 1\nkdst 0.1.0\ntest t\nseed 4\nstrategy random\n";
    let inflated = reseal(&format!("{head}steps 2\ndraws 0\nchoices\n4*8589934592\n"));
    let error = Schedule::decode(&inflated).expect_err("more than announced");
    assert!(error.to_string().contains("more than the 2 steps the header announces"), "{error}");
    let huge = reseal(&format!("{head}steps 8589934592\ndraws 0\nchoices\n4*8589934592\n"));
    let error = Schedule::decode(&huge).expect_err("more than a schedule may hold");
    assert!(error.to_string().contains("more than a schedule may hold (67108864)"), "{error}");
    let overflowing =
        reseal(&format!("{head}steps 2\ndraws 0\nchoices\n4 4*18446744073709551615\n"));
    let error = Schedule::decode(&overflowing).expect_err("a count that overflows");
    assert!(error.to_string().contains("more than the 2 steps"), "{error}");
    let unannounced = reseal(&format!("{head}draws 0\nchoices\n4*8\nsteps 8\n"));
    let error = Schedule::decode(&unannounced).expect_err("choices first");
    assert!(error.to_string().contains("before the header's `steps` line"), "{error}");
}

#[test]
fn encoding_is_compact_and_stable() {
    let schedule = Schedule {
        kdst_version: "0.1.0".into(),
        test: "t".into(),
        seed: 9,
        strategy: "random".into(),
        params: vec![("workers".into(), "2".into())],
        expect: None,
        steps: [0, 0, 0, 1, 2, 2].iter().map(|&id| sim_core::TaskId(id)).collect(),
        draws: vec![(1, 2)],
    };
    let text = schedule.encode();
    insta::assert_snapshot!(text);
    assert_eq!(Schedule::decode(&text), Ok(schedule));
}

/// Every kind of divergence prints the text it always printed (after "nondeterminism at step N:
/// " in a failure): snapshots and the CLI's output compare it.
#[test]
fn divergence_texts() {
    use sim_core::TaskId;
    use sim_core::strategy::Divergence;
    let cases = [
        (
            Divergence::ScheduleEnded { steps: 4, runnable: vec![TaskId(2), TaskId(0)] },
            "the schedule ends after 4 steps but the program is still running (runnable tasks: \
             [0, 2])",
        ),
        (
            Divergence::NotRunnable { task: TaskId(3), runnable: vec![TaskId(1), TaskId(0)] },
            "the schedule runs task 3 but the runnable tasks are [0, 1]",
        ),
        (
            Divergence::DrawMismatch { bound: 3, step: 7, index: 1, value: 2, at: 5 },
            "the program draws a value below 3 at step 7, but the schedule's draw 1 is 2 at step 5",
        ),
        (
            Divergence::DrawsExhausted { bound: 3, step: 7, draws: 2 },
            "the program draws a value below 3 at step 7, but the schedule has only 2 draws",
        ),
        (
            Divergence::ScheduleNotUsedUp { steps: 5, scheduled: 9 },
            "the program finished after 5 steps but the schedule has 9",
        ),
        (
            Divergence::DfsPath {
                what: "the search's path has X here, but this run has Y".to_string(),
                schedule: 6,
                first_seed: Some(0),
                seed: 0,
            },
            "the search's path has X here, but this run has Y, in schedule 6 of a dfs search (the \
             program under test is not a function of its schedule, or another program runs under \
             the same Dfs)",
        ),
        (
            Divergence::DfsPath {
                what: "W".to_string(),
                schedule: 1,
                first_seed: Some(0),
                seed: 4,
            },
            "W, in schedule 1 of a dfs search (the program under test is not a function of its \
             schedule, or another program runs under the same Dfs); note: the search began with \
             seed 0 but this run has seed 4: every run of a search must use the same seed",
        ),
        (
            Divergence::DfsStopped { reason: "R".to_string() },
            "this dfs search stopped after nondeterminism (R); start a new Dfs",
        ),
        (Divergence::GuidedSwitch, "a guided switch does not fit"),
    ];
    for (divergence, text) in cases {
        assert_eq!(divergence.to_string(), text);
        let error: &dyn std::error::Error = &divergence;
        assert_eq!(error.to_string(), text);
    }
}
