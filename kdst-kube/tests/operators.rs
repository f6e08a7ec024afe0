//! Tests: the kube-rs operators of `examples/kube_operators/` as kdst scenarios.
//!
//! - The default search (`kdst explore`: 1,000 seeds of the portfolio with the swarm) finds each
//!   buggy variant, the app operator's with the generic oracles only, and holds each fixed one.
//! - Determinism: 1,000 seeds of each example run twice in this process give identical trace
//!   hashes, and a second process (this test binary run again) computes the same hashes.
//!
//! Run them in release (`cargo test --release`): a debug build of kube and serde is about ten
//! times slower.

use std::path::PathBuf;
use std::process::ExitCode;

use scenarios::{Registry, Target};
use sim_core::Simulation;

#[path = "../examples/kube_operators/scenarios.rs"]
mod kube_scenarios;

use kube_scenarios::{AppStaleDelete, CertForeground};

fn registry() -> Registry {
    kube_scenarios::register(Registry::new("kube_operators"))
}

/// Runs the `kdst` command line over this file's registry, in-process.
fn kdst(args: &[&str]) -> ExitCode {
    scenarios::cli::run(&registry(), std::iter::once("kube_operators").chain(args.iter().copied()))
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kdst-kube-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// `explore` with its defaults finds the bug (exit 1) and saves its schedule, and the saved
/// schedule replays to the same failure; the fixed variant holds over the same 1,000 seeds.
fn found_and_held(scenario: &str, name: &str) {
    let dir = scratch(name);
    let save = dir.to_str().expect("a UTF-8 path");
    let found = kdst(&["explore", scenario, "--variant", "buggy", "--save-dir", save]);
    assert_eq!(found, ExitCode::FAILURE, "the default search finds {scenario} buggy");
    let saved: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the save directory")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "schedule"))
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    let replay = saved[0].to_str().expect("a UTF-8 path");
    assert_eq!(kdst(&["replay", replay]), ExitCode::FAILURE, "the saved schedule fails again");
    let held = kdst(&["explore", scenario, "--variant", "fixed", "--save-dir", save]);
    assert_eq!(held, ExitCode::SUCCESS, "the fix holds over the default search");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_app_operators_stale_delete_is_found_by_the_generic_oracles_and_the_fix_holds() {
    found_and_held("kube-app-stale-delete", "app");
}

#[test]
fn the_certificate_livelock_is_found_as_a_liveness_failure_and_the_fix_holds() {
    found_and_held("kube-cert-foreground", "cert");
}

/// The trace hashes of `seeds` of `target` (the random strategy, default perturbations).
fn hashes(target: &Target, seeds: std::ops::Range<u64>) -> Vec<u64> {
    let mut sim = Simulation::default();
    seeds
        .map(|seed| {
            target.run(&mut sim, seed);
            sim.trace().hash()
        })
        .collect()
}

/// Each example's buggy variant, with the swarm drawing its parameters per seed.
fn targets() -> Vec<(String, Target)> {
    let app = Target::of(AppStaleDelete, Some("buggy")).expect("a variant");
    let cert = Target::of(CertForeground, Some("buggy")).expect("a variant");
    vec![
        ("kube-app-stale-delete buggy".to_string(), app.with_swarm(true)),
        ("kube-cert-foreground buggy".to_string(), cert.with_swarm(true)),
    ]
}

const SEEDS: std::ops::Range<u64> = 0..1_000;

/// Where the second process writes its hashes.
const CHILD: &str = "KDST_KUBE_HASHES_OUT";

#[test]
fn a_thousand_seeds_of_each_example_hash_the_same_twice_and_in_a_second_process() {
    // The second process runs beside this one.
    let out = scratch("hashes").join("child.txt");
    let mut child = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", "second_process_hashes", "--test-threads=1"])
        .env(CHILD, &out)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the second process starts");
    let mut first = Vec::new();
    for (name, target) in targets() {
        let (once, twice) = (hashes(&target, SEEDS), hashes(&target, SEEDS));
        let differ = once.iter().zip(&twice).position(|(a, b)| a != b);
        assert_eq!(differ, None, "{name}: seed {differ:?} ran differently twice in one process");
        first.push(format!("{name} {once:?}"));
    }
    let status = child.wait().expect("the second process ends");
    assert!(status.success(), "the second process failed: {status}");
    let second = std::fs::read_to_string(&out).expect("the second process's hashes");
    let second: Vec<&str> = second.lines().collect();
    assert_eq!(first.len(), second.len());
    for (mine, theirs) in first.iter().zip(&second) {
        assert!(
            mine == theirs,
            "a second process hashed differently: {}",
            &mine[..60.min(mine.len())]
        );
    }
}

/// The second process of the test above: with `KDST_KUBE_HASHES_OUT` set, writes every
/// target's hashes there. Run on its own, it checks the first 20 seeds of each target twice.
#[test]
fn second_process_hashes() {
    match std::env::var_os(CHILD) {
        Some(out) => {
            let lines: Vec<String> = targets()
                .into_iter()
                .map(|(name, target)| format!("{name} {:?}", hashes(&target, SEEDS)))
                .collect();
            std::fs::write(out, lines.join("\n") + "\n").expect("the hashes written");
        }
        None => {
            for (name, target) in targets() {
                assert_eq!(hashes(&target, 0..20), hashes(&target, 0..20), "{name}");
            }
        }
    }
}
