//! The `kdst` binary, run for real: every subcommand, every exit code, every bad input with its
//! one-line message, and snapshots of `kdst list`, `kdst --help` and a run's JSON document.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `kdst args…`; (exit code, stdout, stderr).
fn kdst(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kdst"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the kdst binary runs");
    (
        output.status.code().expect("kdst exits with a code"),
        String::from_utf8(output.stdout).expect("utf-8 stdout"),
        String::from_utf8(output.stderr).expect("utf-8 stderr"),
    )
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kdst-cli-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn text(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A bad input: exit code 2, one line on stderr that contains `needle`, nothing on stdout, no
/// panic or backtrace.
#[track_caller]
fn rejects(args: &[&str], needle: &str) {
    let (code, stdout, stderr) = kdst(args);
    assert_eq!(code, 2, "kdst {args:?}: stdout {stdout:?} stderr {stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "kdst {args:?}: not one line: {stderr:?}");
    assert!(stderr.starts_with("kdst: "), "{stderr:?}");
    assert!(stderr.contains(needle), "kdst {args:?}: {stderr:?} lacks {needle:?}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr:?}");
    assert!(stdout.is_empty(), "kdst {args:?} printed {stdout:?}");
}

#[test]
fn list_shows_every_scenario_variant_and_parameter() {
    let (code, stdout, stderr) = kdst(&["list"]);
    assert_eq!(code, 0, "{stderr}");
    for scenario in scenarios::all() {
        assert!(stdout.contains(scenario.name()), "{}", scenario.name());
        for variant in scenario.variants() {
            assert!(stdout.contains(&format!("    {:<18} {}", variant.name, variant.summary)));
        }
        for param in scenario.params() {
            assert!(stdout.contains(&format!("    {:<26} {}", param.name, param.summary)));
        }
        for link in scenario.upstream() {
            assert!(stdout.contains(link));
        }
    }
    insta::assert_snapshot!("list", stdout);
}

#[test]
fn list_as_json() {
    let (code, stdout, _) = kdst(&["list", "--format", "json"]);
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let list = list.as_array().expect("an array");
    assert_eq!(list.len(), scenarios::all().len());
    for (entry, scenario) in list.iter().zip(scenarios::all()) {
        assert_eq!(entry["name"], scenario.name());
        assert_eq!(entry["variants"].as_array().unwrap().len(), scenario.variants().len());
        assert_eq!(entry["params"].as_array().unwrap().len(), scenario.params().len());
    }
}

#[test]
fn help_and_version() {
    let (code, stdout, _) = kdst(&["--help"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("help", stdout);
    let (code, stdout, _) = kdst(&["--version"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("kdst "), "{stdout}");
    // No subcommand: the usage in one line, and exit code 2 (help goes to stdout when asked).
    rejects(&[], "which command? Usage: kdst <COMMAND>");
    // Messages name what is wrong.
    rejects(&["run"], "not provided: <SCENARIO>");
    rejects(&["run", "informer-cache-locking", "--seed", "-1"], "malformed seed \"-1\"");
    rejects(&["explore", "informer-cache-locking", "--time", "999999999999s"], "is too long");
    rejects(&["explore", "informer-cache-locking", "--strategy", "pct:4294967296"], "out of range");
}

#[test]
fn run_a_passing_and_a_failing_seed() {
    let (code, stdout, stderr) =
        kdst(&["run", "syncmap-load-or-store", "--variant", "fixed", "--seed", "3"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("syncmap-load-or-store fixed seed 3 (portfolio): completed"),
        "{stdout}"
    );

    // The first failing seed of the no-lock variant (found by searching, not hard-coded).
    let dir = scratch("run");
    let failing = (0..50)
        .find(|seed| {
            kdst(&[
                "run",
                "informer-cache-locking",
                "--variant",
                "no-lock",
                "--seed",
                &seed.to_string(),
                "--save-dir",
                text(&dir),
            ])
            .0 == 1
        })
        .expect("no-lock fails within 50 seeds");
    let (code, stdout, _) = kdst(&[
        "run",
        "informer-cache-locking",
        "--variant",
        "no-lock",
        "--seed",
        &failing.to_string(),
        "--save-dir",
        text(&dir),
    ]);
    assert_eq!(code, 1);
    // The portfolio's race detector reports the unlocked read before it can crash.
    assert!(stdout.contains("failure (data-race)"), "{stdout}");
    assert!(stdout.contains("WARNING: DATA RACE\nRead at map \"podCache.pods\""), "{stdout}");
    assert!(stdout.contains(&format!("seed:      {failing}")), "{stdout}");
    assert!(stdout.contains("last events of each task involved:"), "{stdout}");
    assert!(stdout.contains(&format!(
        "kdst replay informer-cache-locking --variant no-lock --seed {failing} --strategy portfolio"
    )));
    assert!(stdout.contains(&format!("SIM_SEED={failing} SIM_STRATEGY=portfolio cargo test")));
    // `run` saves under its own name: it never replaces the schedule `explore` saved (and shrank).
    let saved = dir.join(format!("informer-cache-locking.no-lock.seed-{failing}.run.schedule"));
    assert!(stdout.contains(&format!("kdst replay {}", saved.display())), "{stdout}");
    assert!(saved.is_file());
}

#[test]
fn run_as_json_follows_the_schema() {
    let (code, stdout, _) = kdst(&[
        "run",
        "submariner-logifchanged",
        "--variant",
        "fixed",
        "--seed",
        "7",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let document: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(document["kdst"], 1);
    assert_eq!(document["command"], "run");
    assert_eq!(document["verdict"], "completed");
    assert_eq!(document["run"]["seed"], 7);
    insta::assert_snapshot!("run_json", stdout);
}

#[test]
fn explore_finds_reports_shrinks_and_saves() {
    let dir = scratch("explore");
    let json = dir.join("result.json");
    let (code, stdout, stderr) = kdst(&[
        "explore",
        "capsule-replication-writes",
        "--seeds",
        "0..300",
        "--jobs",
        "2",
        "--save-dir",
        text(&dir),
        "--json-out",
        text(&json),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.contains("stopped at the first failure"), "{stdout}");
    assert!(stdout.contains("schedules/s"), "{stdout}");
    assert!(stdout.contains("WARNING: DATA RACE: write at map \"processed\""), "{stdout}");
    assert!(stdout.contains("shrunk from"), "{stdout}");
    assert!(stderr.is_empty(), "progress goes to a terminal only: {stderr:?}");
    let saved: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "schedule"))
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert!(stdout.contains(&format!("kdst replay {}", saved[0].display())), "{stdout}");
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(document["verdict"], "failure");
    assert_eq!(document["reports"].as_array().unwrap().len(), 1);

    // The saved schedule replays to the same failure, and shrinks again.
    let (code, stdout, _) = kdst(&["replay", text(&saved[0])]);
    assert_eq!(code, 1);
    assert!(stdout.contains("reproduced: data-race"), "{stdout}");
    let (code, stdout, stderr) = kdst(&["shrink", text(&saved[0])]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.contains("shrunk from"), "{stdout}");
    let shrunk = saved[0].with_file_name(
        saved[0].file_name().unwrap().to_str().unwrap().replace(".schedule", ".shrunk.schedule"),
    );
    assert!(shrunk.is_file(), "{stdout}");
    let (code, stdout, _) = kdst(&["replay", text(&shrunk), "--quiet"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("reproduced: data-race"), "{stdout}");
}

#[test]
fn explore_a_fixed_variant_says_how_much_it_searched() {
    let (code, stdout, stderr) = kdst(&[
        "explore",
        "submariner-logifchanged",
        "--variant",
        "fixed",
        "--seeds",
        "100",
        "--jobs",
        "1",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("searched 100 schedules"), "{stdout}");
    assert!(stdout.contains("every seed searched"), "{stdout}");
}

#[test]
fn explore_with_bounded_dfs() {
    let small = [
        "--param",
        "submariner-images=1",
        "--param",
        "servicediscovery-images=1",
        "--param",
        "uninstall-ms=0",
        "--param",
        "api-latency-us=0",
        "--param",
        "cache-lag-us=0",
    ];
    let mut args = vec!["explore", "submariner-logifchanged", "--variant", "fixed"];
    args.extend(["--strategy", "dfs-delays:2"]);
    args.extend(small);
    let (code, stdout, stderr) = kdst(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("schedules within 2 delays explored, no failure"), "{stdout}");

    let dir = scratch("dfs");
    let mut args = vec!["explore", "submariner-logifchanged", "--variant", "buggy"];
    args.extend(["--strategy", "dfs-delays:2", "--save-dir", text(&dir)]);
    args.extend(small);
    let (code, stdout, _) = kdst(&args);
    assert_eq!(code, 1);
    assert!(stdout.contains("failure in schedule"), "{stdout}");
    assert!(stdout.contains("kdst replay"), "{stdout}");

    // Preemption bounding with partial-order reduction: complete without preemptions on the
    // fixed variant; on the buggy one, the crash within 2, saved, and its file replays it.
    let mut args = vec!["explore", "submariner-logifchanged", "--variant", "fixed"];
    args.extend(["--strategy", "dfs:0"]);
    args.extend(small);
    let (code, stdout, stderr) = kdst(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("schedules within 0 preemptions explored up to the order of independent"),
        "{stdout}"
    );
    let dir = scratch("dfs-reduced");
    let mut args = vec!["explore", "submariner-logifchanged", "--variant", "buggy"];
    args.extend(["--strategy", "dfs:2", "--save-dir", text(&dir)]);
    args.extend(small);
    let (code, stdout, _) = kdst(&args);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("fatal error: concurrent map"), "{stdout}");
    let saved = std::fs::read_dir(&dir)
        .expect("saved")
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.to_string_lossy().ends_with(".schedule"))
        .expect("a saved schedule");
    let (code, stdout, stderr) = kdst(&["replay", text(&saved)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.contains("reproduced: go-fatal"), "{stdout}");
    rejects(
        &["explore", "submariner-logifchanged", "--strategy", "dfs:2", "--seeds", "0..10"],
        "--seeds does not apply",
    );
    rejects(
        &["explore", "submariner-logifchanged", "--strategy", "dfs:2", "--jobs", "2"],
        "--jobs does not apply",
    );
    rejects(
        &["explore", "submariner-logifchanged", "--max-schedules", "5"],
        "--max-schedules does not apply",
    );
    // Every output path is checked before the search: a bad --json-out costs no search.
    let mut args = vec!["explore", "submariner-logifchanged", "--variant", "fixed"];
    args.extend(["--strategy", "dfs:1", "--json-out", "/nonexistent-dir/x.json"]);
    args.extend(small);
    rejects(&args, "cannot write /nonexistent-dir/x.json");
    // A search stopped by its schedule limit did not cover its bound: exit 1, said so.
    let mut args = vec!["explore", "submariner-logifchanged", "--variant", "fixed"];
    args.extend(["--strategy", "dfs-full:2", "--max-schedules", "3"]);
    args.extend(small);
    let (code, stdout, stderr) = kdst(&args);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("limit reached"), "{stdout}");
    // A seed search that searched nothing is no pass; the one that covered its range is, and
    // its last line ends like every other.
    let fixed = ["explore", "informer-cache-locking", "--variant", "fixed"];
    let args: Vec<&str> = fixed.iter().chain(&["--time", "0.000001ms"]).copied().collect();
    let (code, stdout, stderr) = kdst(&args);
    assert_eq!(code, 1, "kdst {args:?}: {stdout}{stderr}");
    assert!(stdout.ends_with("no failure found, but the search is incomplete (not a pass)\n"));
    let args: Vec<&str> = fixed.iter().chain(&["--seeds", "0..3"]).copied().collect();
    let (code, stdout, stderr) = kdst(&args);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.ends_with("every seed searched\nno failure found\n"), "{stdout}");
}

#[test]
fn shards_merge_into_the_whole_range() {
    let dir = scratch("shards");
    let run = |extra: &[&str], out: &Path| {
        let mut args = vec![
            "explore",
            "informer-cache-locking",
            "--variant",
            "missing-rlock",
            "--seeds",
            "0..64",
            "--all-failures",
            "--jobs",
            "1",
            "--save-dir",
        ];
        args.push(text(&dir));
        args.extend(extra);
        args.extend(["--json-out", text(out)]);
        let (code, _, stderr) = kdst(&args);
        assert_eq!(code, 1, "{stderr}");
    };
    let (whole, a, b) = (dir.join("whole.json"), dir.join("a.json"), dir.join("b.json"));
    run(&[], &whole);
    run(&["--shard", "0/2"], &a);
    run(&["--shard", "1/2"], &b);
    let (code, merged, stderr) = kdst(&["merge", text(&a), text(&b), "--format", "json"]);
    assert_eq!(code, 1, "{stderr}");
    let merged: serde_json::Value = serde_json::from_str(&merged).unwrap();
    let whole: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&whole).unwrap()).unwrap();
    assert_eq!(merged["command"], "merge");
    for field in ["schedules", "steps", "failures", "limits"] {
        assert_eq!(merged["search"][field], whole["search"][field], "{field}");
    }
    let seeds = |doc: &serde_json::Value| -> Vec<u64> {
        doc["reports"].as_array().unwrap().iter().map(|r| r["seed"].as_u64().unwrap()).collect()
    };
    assert_eq!(seeds(&merged), seeds(&whole));
    // Results of different targets do not merge.
    let other = dir.join("other.json");
    let (code, _, _) = kdst(&[
        "explore",
        "syncmap-load-or-store",
        "--seeds",
        "0..4",
        "--json-out",
        text(&other),
        "--save-dir",
        text(&dir),
    ]);
    assert!(code <= 1);
    rejects(&["merge", text(&a), text(&other)], "cannot merge");
    rejects(&["merge", text(&dir.join("missing.json"))], "cannot read");

    // Seeds are counted once: a file given twice, a merged result beside one of its shards,
    // shards of two splits, or of two seed ranges, are refused.
    let ab = dir.join("ab.json");
    let (code, merged, _) = kdst(&["merge", text(&a), text(&b), "--format", "json"]);
    assert_eq!(code, 1);
    std::fs::write(&ab, merged).unwrap();
    rejects(&["merge", text(&a), text(&a)], "shard 0/2 is already in the merge");
    rejects(&["merge", text(&ab), text(&b)], "shard 1/2 is already in the merge");
    let third = dir.join("third.json");
    run(&["--shard", "0/3"], &third);
    rejects(&["merge", text(&a), text(&third)], "shard 0/3 is not one of the 2 shards");
    let edit = |from: &Path, name: &str, change: &dyn Fn(&mut serde_json::Value)| {
        let mut doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(from).unwrap()).unwrap();
        change(&mut doc);
        let path = dir.join(name);
        std::fs::write(&path, doc.to_string()).unwrap();
        path
    };
    let ranged = edit(&b, "ranged.json", &|doc| doc["search"]["seeds"]["end"] = 65.into());
    rejects(&["merge", text(&a), text(&ranged)], "shards of one search share their seeds");
    let reversed = edit(&a, "reversed.json", &|doc| doc["search"]["seeds"]["start"] = 100.into());
    rejects(&["merge", text(&reversed)], "the seed range 100..64 runs backwards");
    let bad_shard = edit(&a, "bad-shard.json", &|doc| doc["search"]["shards"][0][0] = 5.into());
    rejects(&["merge", text(&bad_shard)], "shard 5/2 does not exist");
    let huge = edit(&a, "huge.json", &|doc| doc["search"]["schedules"] = u64::MAX.into());
    let (code, merged, stderr) = kdst(&["merge", text(&huge), text(&b), "--format", "json"]);
    assert_eq!(code, 1, "{stderr}");
    let merged: serde_json::Value = serde_json::from_str(&merged).unwrap();
    assert_eq!(merged["search"]["schedules"], u64::MAX, "counts saturate, never wrap");
    // One shard of two is not the whole range: it says which shard is missing and is no pass,
    // even where it found nothing.
    let clean = dir.join("clean.json");
    let mut args = vec!["explore", "informer-cache-locking", "--variant", "fixed"];
    args.extend(["--seeds", "0..8", "--shard", "0/2", "--save-dir", text(&dir)]);
    args.extend(["--json-out", text(&clean)]);
    assert_eq!(kdst(&args).0, 0);
    let (code, stdout, _) = kdst(&["merge", text(&clean)]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("shard 1/2 missing: not every seed searched"), "{stdout}");
    assert!(stdout.ends_with("no failure found, but the search is incomplete (not a pass)\n"));
    assert!(!stdout.lines().any(|line| line == "every seed searched"), "{stdout}");
}

#[test]
fn replay_by_seed_prints_the_trace() {
    let (code, stdout, _) =
        kdst(&["replay", "syncmap-load-or-store", "--variant", "fixed", "--seed", "2"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("-- ") && stdout.contains(" steps ("), "{stdout}");
    assert!(stdout.contains("completed:"), "{stdout}");
}

#[test]
fn exports_write_perfetto_and_mermaid() {
    let dir = scratch("exports");
    let (perfetto, mermaid, trace) =
        (dir.join("run.json"), dir.join("run.mmd"), dir.join("run.txt"));
    let (code, _, stderr) = kdst(&[
        "run",
        "submariner-logifchanged",
        "--variant",
        "fixed",
        "--seed",
        "1",
        "--perfetto",
        text(&perfetto),
        "--mermaid",
        text(&mermaid),
        "--trace-out",
        text(&trace),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&perfetto).unwrap()).unwrap();
    assert!(!json["traceEvents"].as_array().unwrap().is_empty());
    assert!(std::fs::read_to_string(&mermaid).unwrap().starts_with("sequenceDiagram"));
    assert!(std::fs::read_to_string(&trace).unwrap().contains("API DELETE"));
}

#[test]
fn bad_input_gets_one_line_and_exit_code_2() {
    rejects(
        &["run", "cert-manager-foregrund-deletion"],
        "did you mean \"cert-manager-foreground-deletion\"",
    );
    rejects(&["run", "no-such-thing"], "unknown scenario \"no-such-thing\"");
    rejects(&["run", "submariner-logifchanged", "--variant", "fixd"], "did you mean \"fixed\"");
    rejects(&["run", "submariner-logifchanged", "--seed", "12x"], "malformed seed \"12x\"");
    rejects(&["run", "submariner-logifchanged", "--seed", "99999999999999999999"], "out of range");
    rejects(&["run", "submariner-logifchanged", "--param", "nope=1"], "nope");
    rejects(&["run", "submariner-logifchanged", "--param", "requeue-ms=1"], "requeue-ms");
    rejects(&["run", "submariner-logifchanged", "--param", "requeue-ms"], "NAME=VALUE");
    rejects(&["run", "submariner-logifchanged", "--strategy", "bogus"], "unknown strategy");
    rejects(&["run", "submariner-logifchanged", "--strategy", "dfs:2"], "use kdst explore");
    rejects(&["explore", "submariner-logifchanged", "--seeds", "5..5"], "empty");
    rejects(&["explore", "submariner-logifchanged", "--shard", "2/2"], "does not exist");
    rejects(&["explore", "submariner-logifchanged", "--time", "3 fortnights"], "duration");
    rejects(&["frobnicate"], "unrecognized subcommand");
    rejects(
        &["run", "submariner-logifchanged", "--trace-out", "/nonexistent-dir/kdst/trace.txt"],
        "cannot write /nonexistent-dir/kdst/trace.txt",
    );
    rejects(&["replay", "submariner-logifchanged"], "add --seed");
    // A --save-dir that cannot take a schedule is refused before the run, not warned about after.
    let dir = scratch("save-dir");
    let file = dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    let run = ["run", "informer-cache-locking", "--variant", "no-lock", "--seed", "0"];
    for save_dir in [file.clone(), file.join("below")] {
        let args: Vec<&str> = run.iter().copied().chain(["--save-dir", text(&save_dir)]).collect();
        rejects(&args, &format!("{} is not a directory", file.display()));
        rejects(&find_a_map_crash(&save_dir, &[]), "cannot save schedules there");
    }
}

#[test]
fn bad_schedule_files_get_one_line_and_exit_code_2() {
    let dir = scratch("bad-schedules");
    // A real schedule to corrupt: a saved failure.
    let (code, _, _) = kdst(&find_a_map_crash(&dir, &[]));
    assert_eq!(code, 1);
    let saved = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    let good = std::fs::read_to_string(&saved).unwrap();

    rejects(&["replay", text(&dir.join("missing.schedule"))], "cannot read schedule file");
    let write = |name: &str, content: &str| {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    };
    let garbage = write("garbage.schedule", "this is not a schedule\n");
    rejects(&["replay", text(&garbage)], "not a kdst schedule file");
    let truncated = write("truncated.schedule", &good[..good.rfind("end").unwrap()]);
    rejects(&["replay", text(&truncated)], "truncated");
    let first_line_end = good.find('\n').unwrap();
    let future = format!("kdst-schedule 99{}", &good[first_line_end..]);
    let future = write("future.schedule", &future);
    rejects(&["replay", text(&future)], "version 99");
    let tampered = write("tampered.schedule", &good.replacen("seed ", "seed 1", 1));
    let (code, _, stderr) = kdst(&["replay", text(&tampered)]);
    assert_eq!(code, 2, "{stderr}");
    // A schedule written by a cargo test (sim_core::Check) is not a scenario's.
    let foreign = write("foreign.schedule", &retitle(&good, "my_crate_test"));
    rejects(&["replay", text(&foreign)], "which is not a scenario of `kdst`");
    rejects(&["shrink", text(&foreign)], "which is not a scenario of `kdst`");
    rejects(&["shrink", text(&garbage)], "not a kdst schedule file");
    rejects(&["replay", text(&saved), "--seed", "3"], "names its own scenario");
    rejects(&["replay", text(&saved), "--strategy", "random"], "drop --strategy");
    rejects(&["replay", text(&saved), "--no-swarm"], "drop --no-swarm");
    let twice = ["run", "informer-cache-locking", "--param", "pods=2", "--param", "pods=3"];
    rejects(&twice, "--param pods is set twice");
    let out = dir.join("out.txt");
    let both = ["replay", text(&saved), "--trace-out", text(&out), "--mermaid", text(&out)];
    rejects(&both, "is given for two outputs");
    assert!(!out.exists());
}

/// The schedule with another `test` name and a checksum that fits again.
fn retitle(schedule: &str, test: &str) -> String {
    let mut decoded = sim_core::Schedule::decode(schedule).expect("a good schedule");
    decoded.test = test.to_string();
    decoded.encode()
}

/// `kdst explore` of a variant whose map crash its first seeds find, saving to `dir`.
fn find_a_map_crash<'a>(dir: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["explore", "informer-cache-locking", "--variant", "no-lock"];
    args.extend(["--seeds", "0..50", "--save-dir", text(dir)]);
    args.extend(extra);
    args
}

/// The files in `dir` with their contents, sorted by name.
fn contents(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| {
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_failed_command_leaves_every_existing_file_as_it_was() {
    let dir = scratch("keeps-files");
    let saves = scratch("keeps-files-saves");
    let existing = dir.join("existing.txt");
    std::fs::write(&existing, "the user's file\n").unwrap();
    let subdir = dir.join("a-directory");
    std::fs::create_dir(&subdir).unwrap();
    let before = contents(&dir);
    let run = ["run", "informer-cache-locking", "--variant", "no-lock", "--seed", "0"];
    let run_with = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = run.iter().map(|s| s.to_string()).collect();
        args.extend(["--save-dir".to_string(), text(&saves).to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    // A bad second output path: found before the run, the first file untouched.
    for extra in [
        &["--trace-out", text(&existing), "--perfetto", "/nonexistent-dir/x.json"][..],
        &["--trace-out", text(&existing), "--mermaid", text(&subdir)],
    ] {
        let args = run_with(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rejects(&args, "cannot write");
        assert_eq!(contents(&dir), before, "kdst {args:?}");
    }
    // A write that fails only at the end (a full device): nothing else is written either, and
    // no temporary file is left behind.
    let explore =
        find_a_map_crash(&saves, &["--json-out", text(&existing), "--trace-out", "/dev/full"]);
    rejects(&explore, "cannot write /dev/full");
    assert_eq!(contents(&dir), before);

    // A shrink that fails (this schedule does not fail on the fixed variant) keeps its --out.
    let saved = std::fs::read_dir(&saves).unwrap().next().unwrap().unwrap().path();
    let good = std::fs::read_to_string(&saved).unwrap();
    let mut fixed = sim_core::Schedule::decode(&good).unwrap();
    for (name, value) in &mut fixed.params {
        if name == "variant" {
            *value = "fixed".to_string();
        }
    }
    let fixed_file = dir.join("fixed.schedule");
    std::fs::write(&fixed_file, fixed.encode()).unwrap();
    let before = contents(&dir);
    let (code, stdout, stderr) = kdst(&["shrink", text(&fixed_file), "--out", text(&existing)]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert_eq!(contents(&dir), before);
    // An output that is a symbolic link stays one: the file it leads to is what is replaced.
    let real = dir.join("real-trace.txt");
    std::fs::write(&real, "old\n").unwrap();
    let link = dir.join("trace-link.txt");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let (code, _, stderr) = kdst(&["replay", text(&saved), "--quiet", "--trace-out", text(&link)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert!(std::fs::read_to_string(&real).unwrap().contains("API CREATE"));
    // Shrinking a schedule onto itself (`explore` shrank it already) replaces it with the
    // shrunk one, which still replays.
    let (code, stdout, stderr) = kdst(&["shrink", text(&saved), "--out", text(&saved)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.contains(&format!("shrunk schedule written to {}", text(&saved))), "{stdout}");
    let (code, stdout, _) = kdst(&["replay", text(&saved), "--quiet"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("reproduced:"), "{stdout}");
}

/// `kdst args…` with its standard output sent to `stdout`; (exit code, stderr).
fn kdst_to(args: &[&str], stdout: std::process::Stdio) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kdst"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdout(stdout)
        .output()
        .expect("the kdst binary runs");
    let stderr = String::from_utf8(output.stderr).expect("utf-8 stderr");
    (output.status.code().expect("kdst exits with a code"), stderr)
}

#[test]
fn standard_output_that_fails_or_closes_is_no_panic() {
    // A full disk: one line, exit code 2.
    let replay = ["replay", "informer-cache-locking", "--variant", "no-lock", "--seed", "0"];
    for args in [&["list"][..], &["list", "--format", "json"], &replay] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let (code, stderr) = kdst_to(args, full.into());
        assert_eq!(code, 2, "kdst {args:?}: {stderr}");
        assert_eq!(
            stderr,
            "kdst: cannot write to standard output: No space left on device (os error 28)\n"
        );
    }
    // A reader that went away (`| head -1`): the command keeps its exit code (1: the replay
    // reproduced a failure) and says nothing.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kdst"))
        .args(replay)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn inputs_that_never_end_or_block_are_refused_before_reading() {
    let dir = scratch("endless-inputs");
    let fifo = dir.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success());
    rejects(
        &["replay", "/dev/zero"],
        "cannot read schedule file /dev/zero: it is not a regular file",
    );
    rejects(&["replay", text(&fifo)], "it is not a regular file");
    rejects(&["shrink", text(&fifo)], "it is not a regular file");
    rejects(
        &["merge", "/dev/zero"],
        "cannot read explore result /dev/zero: it is not a regular file",
    );
    rejects(&["replay", text(&dir)], "it is a directory");
}

/// The schedule text with its `end` line recomputed, so that a mutation reaches the decoder's
/// later checks instead of stopping at the checksum.
fn reseal(text: &str) -> String {
    let body = match text.trim_end_matches('\n').rfind('\n') {
        Some(index) if text[index + 1..].starts_with("end ") => &text[..=index],
        _ => text,
    };
    let body = if body.ends_with('\n') { body.to_string() } else { format!("{body}\n") };
    format!("{body}end {:016x}\n", sim_core::fnv1a(body.as_bytes()))
}

/// Deterministic mutations of `base`: truncations at every line and every 13th byte, every
/// line dropped, doubled and swapped with the next, every number replaced by extreme ones, and
/// 300 single-bit flips from a fixed seed.
fn mutations(base: &str) -> Vec<String> {
    const NUMBERS: [&str; 8] = [
        "18446744073709551615",
        "18446744073709551616",
        "4294967296",
        "8589934592",
        "-1",
        "0",
        "1e9",
        "99999999999999999999999999",
    ];
    let lines: Vec<&str> = base.lines().collect();
    let join = |lines: &[&str]| lines.iter().map(|line| format!("{line}\n")).collect::<String>();
    let mut out = std::collections::BTreeSet::new();
    for k in 0..lines.len() {
        out.insert(join(&lines[..k]));
        let mut dropped = lines.clone();
        dropped.remove(k);
        out.insert(join(&dropped));
        let mut doubled = lines.clone();
        doubled.insert(k, lines[k]);
        out.insert(join(&doubled));
        if k + 1 < lines.len() {
            let mut swapped = lines.clone();
            swapped.swap(k, k + 1);
            out.insert(join(&swapped));
        }
        // Every run of digits in the line, replaced by each extreme number.
        let line = lines[k];
        let mut start = None;
        for (index, c) in line.char_indices().chain([(line.len(), ' ')]) {
            match (c.is_ascii_digit(), start) {
                (true, None) => start = Some(index),
                (false, Some(from)) => {
                    for number in NUMBERS {
                        let mut changed = lines.clone();
                        let replaced = format!("{}{number}{}", &line[..from], &line[index..]);
                        changed[k] = &replaced;
                        out.insert(join(&changed));
                    }
                    start = None;
                }
                _ => {}
            }
        }
    }
    for cut in (0..base.len()).step_by(13) {
        out.insert(String::from_utf8_lossy(&base.as_bytes()[..cut]).into_owned());
    }
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..300 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut bytes = base.as_bytes().to_vec();
        let at = (state % bytes.len() as u64) as usize;
        bytes[at] ^= 1 << ((state >> 32) % 8);
        out.insert(String::from_utf8_lossy(&bytes).into_owned());
    }
    out.remove(base);
    out.into_iter().collect()
}

/// Runs `kdst args…` with a time bound; the contract every input must meet: exit 0, 1 or 2, a
/// one-line `kdst: …` message with exit 2, never a panic or a signal.
#[track_caller]
#[allow(clippy::disallowed_methods)] // a wall-clock bound on a child process, outside any simulation
fn holds_the_contract(args: &[&str], stderr_file: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kdst"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(stderr_file).unwrap())
        .spawn()
        .expect("the kdst binary runs");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("kdst {args:?} ran for more than 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    let stderr = std::fs::read_to_string(stderr_file).unwrap();
    let code = status.code().unwrap_or_else(|| panic!("kdst {args:?} died: {status}: {stderr}"));
    assert!(matches!(code, 0..=2), "kdst {args:?} exit {code}: {stderr}");
    assert!(!stderr.contains("panicked"), "kdst {args:?}: {stderr}");
    if code == 2 {
        assert_eq!(stderr.lines().count(), 1, "kdst {args:?}: {stderr}");
        assert!(stderr.starts_with("kdst: "), "kdst {args:?}: {stderr}");
    }
}

#[test]
fn mutated_schedules_and_results_never_panic_hang_or_run_away() {
    let dir = scratch("mutations");
    let saves = dir.join("saves");
    let json = dir.join("result.json");
    let (code, _, stderr) = kdst(&find_a_map_crash(&saves, &["--json-out", text(&json)]));
    assert_eq!(code, 1, "{stderr}");
    let saved = std::fs::read_dir(&saves).unwrap().next().unwrap().unwrap().path();
    let schedule = std::fs::read_to_string(&saved).unwrap();
    let result = std::fs::read_to_string(&json).unwrap();
    let stderr_file = dir.join("stderr");
    let case = dir.join("case");
    let shrunk = dir.join("case.shrunk");
    let mut cases = 0;
    for (index, mutated) in mutations(&schedule).iter().enumerate() {
        for text_of in [mutated.clone(), reseal(mutated)] {
            std::fs::write(&case, &text_of).unwrap();
            holds_the_contract(&["replay", text(&case), "--quiet"], &stderr_file);
            if index % 8 == 0 {
                let args = ["shrink", text(&case), "--out", text(&shrunk), "--budget", "5"];
                holds_the_contract(&args, &stderr_file);
            }
            cases += 1;
        }
    }
    let case = dir.join("case.json");
    for mutated in mutations(&result) {
        std::fs::write(&case, &mutated).unwrap();
        holds_the_contract(&["merge", text(&case)], &stderr_file);
        cases += 1;
    }
    assert!(cases >= 2_000, "{cases} mutations");
    // The 2^30-repeat file is refused at once, whatever its header says.
    let head =
        "kdst-schedule 1\nkdst 0.1.0\ntest informer-cache-locking\nseed 0\nstrategy random\n";
    for steps in ["1073741824", "4"] {
        let inflated = format!("{head}steps {steps}\ndraws 0\nchoices\n4*1073741824\n");
        std::fs::write(&case, reseal(&inflated)).unwrap();
        rejects(&["replay", text(&case)], "schedule");
    }
}

#[test]
fn the_printed_replay_command_reproduces_without_the_swarm_too() {
    let dir = scratch("no-swarm-replay");
    for swarm in [&[][..], &["--no-swarm"]] {
        let (code, stdout, stderr) = kdst(&find_a_map_crash(&dir, swarm));
        assert_eq!(code, 1, "{stderr}");
        // The unshrunk failure the seed found, as the summary gives it.
        let found = stdout.lines().find(|line| line.contains(", 1 seed: failure")).unwrap();
        let failure = &found[found.find("failure (").unwrap()..];
        let failure = &failure[..failure.find(" in task").unwrap()];
        let command = stdout
            .lines()
            .map(str::trim)
            .find(|line| line.starts_with("kdst replay informer-cache-locking"))
            .unwrap();
        assert_eq!(command.contains("--no-swarm"), !swarm.is_empty(), "{command}");
        assert_eq!(stdout.contains("SIM_NO_SWARM=1 cargo test"), !swarm.is_empty(), "{stdout}");
        let mut args: Vec<&str> = command.split(' ').skip(1).collect();
        args.push("--quiet");
        let (code, replayed, stderr) = kdst(&args);
        assert_eq!(code, 1, "{command}: {stderr}");
        assert!(replayed.contains(failure), "{command} did not reproduce {failure}:\n{replayed}");
    }
}
