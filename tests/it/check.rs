//! Tests: the `cargo test` harness (`sim_core::Check`).

use std::panic::{AssertUnwindSafe, catch_unwind};

use sim_core::{Check, GoMap, spawn, yield_now};

fn racing_writers() {
    let map: GoMap<u32, u32> = GoMap::new("processed");
    for worker in 0..2u32 {
        let map = map.clone();
        spawn(format!("worker-{worker}"), async move {
            for round in 0..3 {
                yield_now().await;
                map.insert(worker * 10 + round, round).await;
            }
        });
    }
}

fn calm_writer() {
    let map: GoMap<u32, u32> = GoMap::new("processed");
    spawn("worker", async move {
        for round in 0..3 {
            map.insert(round, round).await;
        }
    });
}

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// A program without the bug passes, and the report says how much was searched.
#[test]
fn a_passing_check_reports_what_it_searched() {
    let report = Check::new("calm").with_env(&[]).seeds(200).run(calm_writer);
    assert_eq!(report.seeds, 200);
    assert!(report.steps >= 200 * 3, "{report}");
    assert_eq!(report.determinism_checked, 10);
    assert_eq!(report.to_string().split(',').next(), Some("200 seeds"));
}

/// A failure panics with the failure, the last events of the tasks involved, the shrunk
/// schedule's path and the replay command; the schedule file is written.
#[test]
fn a_failing_check_panics_with_a_report_and_saves_the_shrunk_schedule() {
    let message = panic_message(|| {
        Check::new("check_racing_writers").with_env(&[]).seeds(1_000).run(racing_writers);
    });
    assert!(message.contains("fatal error: concurrent map writes"), "{message}");
    assert!(message.contains("shrunk from"), "{message}");
    assert!(message.contains("SIM_SEED="), "{message}");
    assert!(message.contains("cargo test check_racing_writers -- --exact"), "{message}");
    let path = message
        .lines()
        .find_map(|line| line.strip_prefix("schedule saved: "))
        .unwrap_or_else(|| panic!("no saved schedule in {message}"));
    let text = std::fs::read_to_string(path).expect("schedule written");
    let schedule = sim_core::Schedule::decode(&text).expect("a valid schedule");
    assert_eq!(schedule.test, "check_racing_writers");
}

/// `SIM_SEED` replays exactly one seed: the failing one fails, a passing one passes.
#[test]
fn sim_seed_runs_one_seed() {
    let report = Check::new("calm").with_env(&[("SIM_SEED", "42")]).run(calm_writer);
    assert_eq!(report.seeds, 1);
    let message = panic_message(|| {
        Check::new("racing").with_env(&[]).seeds(1_000).run(racing_writers);
    });
    let seed = message.split("SIM_SEED=").nth(1).and_then(|s| s.split(' ').next()).expect("seed");
    let again = panic_message(|| {
        Check::new("racing").with_env(&[("SIM_SEED", seed)]).run(racing_writers);
    });
    assert!(again.contains(&format!("seed {seed} ")), "{again}");
}

/// `SIM_SHARD=i/n` splits the seeds: the shards together run each seed once.
#[test]
fn shards_split_the_seeds() {
    let total: u64 = (0..3)
        .map(|i| {
            let shard = format!("{i}/3");
            let vars = [("SIM_SEEDS", "100"), ("SIM_SHARD", shard.as_str())];
            Check::new("calm").with_env(&vars).run(calm_writer).seeds
        })
        .sum();
    assert_eq!(total, 100);
}

/// nextest's 1-based `count:M/N` names the same shards as `M-1/N`.
#[test]
fn nextest_partitions_are_the_same_shards_one_based() {
    let seeds = |shard: &str| {
        let vars = [("SIM_SEEDS", "100"), ("SIM_SHARD", shard)];
        Check::new("calm").with_env(&vars).run(calm_writer).seeds
    };
    for m in 1..=3u64 {
        assert_eq!(seeds(&format!("count:{m}/3")), seeds(&format!("{}/3", m - 1)));
    }
    assert_eq!((1..=3).map(|m| seeds(&format!("count:{m}/3"))).sum::<u64>(), 100);
    assert_eq!(sim_core::parse_partition("count:2/4"), Some(Ok((1, 4))));
    assert_eq!(sim_core::parse_partition("1/4"), None);
    for bad in ["count:0/4", "count:5/4", "count:x/4"] {
        assert!(matches!(sim_core::parse_partition(bad), Some(Err(_))), "{bad}");
    }
}

/// `SIM_STRATEGY=pct:2` runs PCT; the failure names the strategy.
#[test]
fn sim_strategy_selects_pct() {
    let message = panic_message(|| {
        Check::new("racing")
            .with_env(&[("SIM_STRATEGY", "pct:2")])
            .seeds(1_000)
            .run(racing_writers);
    });
    assert!(message.contains("(strategy pct:2"), "{message}");
    // The failing seed replays alone under PCT with the printed strategy: `pct:2` for the
    // seeds k is learned from, `pct:2@K` (the learned k) after them.
    let seed = message.split("SIM_SEED=").nth(1).and_then(|s| s.split(' ').next()).expect("seed");
    let printed = message.split("SIM_STRATEGY=").nth(1).and_then(|s| s.split(' ').next());
    let printed = printed.expect("strategy");
    assert!(printed == "pct:2" || printed.starts_with("pct:2@"), "{message}");
    let vars = [("SIM_SEED", seed), ("SIM_STRATEGY", printed)];
    let again = panic_message(|| {
        Check::new("racing").with_env(&vars).run(racing_writers);
    });
    let first_line = |text: &str| text.lines().nth(1).map(str::to_string);
    assert_eq!(first_line(&again), first_line(&message), "{again}");
}

/// Malformed `SIM_*` values fail with one line naming the variable.
#[test]
fn malformed_settings_name_the_variable() {
    for (vars, expected) in [
        (&[("SIM_SEED", "x")][..], "kdst: SIM_SEED=\"x\" is not a seed"),
        (&[("SIM_SEEDS", "-1")][..], "kdst: SIM_SEEDS=\"-1\" is not a number of seeds"),
        (&[("SIM_SHARD", "3/3")][..], "kdst: SIM_SHARD=\"3/3\": shard 3 of 3 does not exist"),
        (&[("SIM_SHARD", "count:0/3")][..], "kdst: SIM_SHARD=\"count:0/3\": partition count:0/3"),
        (&[("SIM_STRATEGY", "bogus")][..], "kdst: SIM_STRATEGY=\"bogus\": unknown strategy"),
        (&[("SIM_STRATEGY", "pct:0")][..], "kdst: SIM_STRATEGY=\"pct:0\": the PCT depth"),
    ] {
        let message = panic_message(|| {
            Check::new("calm").with_env(vars).run(calm_writer);
        });
        assert!(message.starts_with(expected), "{message}");
        assert_eq!(message.lines().count(), 1, "{message}");
    }
}

/// A program whose schedule depends on something outside the simulation fails the
/// determinism check with the step where the runs parted.
#[test]
fn nondeterminism_is_detected_with_its_step() {
    use std::cell::Cell;
    thread_local!(static RUNS: Cell<u64> = const { Cell::new(0) });
    let message = panic_message(|| {
        Check::new("leaky").with_env(&[("SIM_SEEDS", "1")]).run(|| {
            // State that survives between runs: the second run of a seed spawns more tasks.
            let extra = RUNS.with(|runs| {
                runs.set(runs.get() + 1);
                runs.get() % 2 == 0
            });
            spawn("first", async {
                yield_now().await;
            });
            if extra {
                spawn("second", async {
                    yield_now().await;
                });
            }
        });
    });
    assert!(message.starts_with("nondeterminism detected at step "), "{message}");
}

/// `Check` runs a systematic search too: every schedule of seed 0 within the bound. A calm
/// program completes and says how many schedules it checked; the racing writers fail with a
/// report whose replay is the saved schedule file (a seed does not name a dfs run), and
/// `SIM_SCHEDULE` replays that file to the same failure.
#[test]
fn a_check_runs_a_bounded_exhaustive_search() {
    use sim_core::strategy::StrategySpec;
    let dfs: StrategySpec = "dfs:1".parse().expect("known");
    let report = Check::new("calm_dfs").with_env(&[]).strategy(dfs).run(calm_writer);
    assert_eq!(report.strategy, "dfs:1");
    assert!(report.seeds >= 1, "{report}");
    let message = panic_message(|| {
        Check::new("racing_dfs").with_env(&[]).strategy(dfs).run(racing_writers);
    });
    assert!(message.contains("fatal error: concurrent map writes"), "{message}");
    assert!(message.contains("(strategy dfs:1)"), "{message}");
    assert!(!message.contains("SIM_SEED="), "a dfs run is not named by its seed: {message}");
    let line = message.lines().find(|line| line.contains("SIM_SCHEDULE=")).expect("a replay");
    let path = line.trim().strip_prefix("SIM_SCHEDULE=").and_then(|rest| rest.split(' ').next());
    let path = path.expect("a schedule path").to_string();
    let replayed = panic_message(|| {
        Check::new("racing_dfs").with_env(&[("SIM_SCHEDULE", &path)]).run(racing_writers);
    });
    assert!(replayed.contains("fatal error: concurrent map writes"), "{replayed}");
    // Through the environment as well, and a search that cannot finish is not a pass.
    let limited = panic_message(|| {
        Check::new("calm_dfs_limited")
            .with_env(&[("SIM_STRATEGY", "dfs-full:3")])
            .max_schedules(1)
            .run(racing_writers);
    });
    assert!(limited.contains("did not check every schedule"), "{limited}");
}

/// A fresh directory standing for a crate's `CARGO_MANIFEST_DIR`.
fn manifest_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kdst-regressions-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// The regression file: a failing check records its seed in
/// `$CARGO_MANIFEST_DIR/kdst-regressions/<name>.txt`; a later run replays the recorded case
/// first and fails on it even when its own seeds would not reach it; a run that passes the
/// recorded cases says how many it ran; the same case is recorded once.
#[test]
fn failing_seeds_are_recorded_and_replayed_first() {
    let dir = manifest_dir("record");
    let root = dir.to_str().expect("a UTF-8 path");
    let found = panic_message(|| {
        let vars = [("CARGO_MANIFEST_DIR", root)];
        Check::new("racing regressions").with_env(&vars).seeds(1_000).run(racing_writers);
    });
    let file = dir.join("kdst-regressions").join("racing_regressions.txt");
    assert!(found.contains(&format!("recorded in {}", file.display())), "{found}");
    let text = std::fs::read_to_string(&file).expect("the regression file");
    let seed = found.split(" seed ").nth(1).and_then(|s| s.split(' ').next()).expect("a seed");
    let case = format!("seed {seed} strategy random # ");
    assert!(text.starts_with("# kdst regressions"), "{text}");
    assert!(text.lines().any(|line| line.starts_with(&case)), "{text}");
    // A run of one seed (seed 0 passes) fails on the recorded case first.
    assert_ne!(seed, "0", "seed 0 must pass for this test");
    let again = panic_message(|| {
        let vars = [("CARGO_MANIFEST_DIR", root), ("SIM_SEEDS", "1")];
        Check::new("racing regressions").with_env(&vars).run(racing_writers);
    });
    assert!(
        again.contains(&format!("a case recorded in {} failed again", file.display())),
        "{again}"
    );
    assert!(again.contains(&format!("seed {seed} (strategy random)")), "{again}");
    // Recorded once, not twice.
    let text = std::fs::read_to_string(&file).expect("the regression file");
    assert_eq!(text.lines().filter(|line| line.starts_with("seed ")).count(), 1, "{text}");
    // The fixed program passes the recorded case, and the report counts it.
    let vars = [("CARGO_MANIFEST_DIR", root)];
    let report = Check::new("racing regressions").with_env(&vars).seeds(10).run(calm_writer);
    assert_eq!(report.regressions, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `regressions(false)` and `SIM_REGRESSIONS=off` record nothing; a malformed line is named.
#[test]
fn regressions_can_be_turned_off_and_bad_lines_are_named() {
    let dir = manifest_dir("off");
    let root = dir.to_str().expect("a UTF-8 path");
    let _ = panic_message(|| {
        let vars = [("CARGO_MANIFEST_DIR", root)];
        Check::new("off").with_env(&vars).regressions(false).seeds(1_000).run(racing_writers);
    });
    let _ = panic_message(|| {
        let vars = [("CARGO_MANIFEST_DIR", root), ("SIM_REGRESSIONS", "off")];
        Check::new("off").with_env(&vars).seeds(1_000).run(racing_writers);
    });
    assert!(!dir.join("kdst-regressions").exists());
    std::fs::create_dir_all(dir.join("kdst-regressions")).expect("the directory");
    std::fs::write(dir.join("kdst-regressions/bad.txt"), "# note\nseed x strategy random\n")
        .expect("a bad file");
    let bad = panic_message(|| {
        Check::new("bad").with_env(&[("CARGO_MANIFEST_DIR", root)]).run(calm_writer);
    });
    assert!(bad.contains("bad.txt:2: not a recorded case"), "{bad}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A check under the portfolio detects races by default: the report is the race, shrunk, with
/// a replay line that names the portfolio; the same line (`SIM_SEED`, `SIM_STRATEGY`) fails
/// again with the same race.
#[test]
fn a_check_under_the_portfolio_reports_the_race_and_its_replay_line_reproduces_it() {
    let check = || {
        Check::new("check_racing_writers_portfolio")
            .with_env(&[])
            .strategy(sim_core::strategy::StrategySpec::PORTFOLIO)
            .regressions(false)
            .seeds(100)
    };
    let message = panic_message(|| {
        check().run(racing_writers);
    });
    assert!(message.contains("failure (data-race)"), "{message}");
    assert!(message.contains("WARNING: DATA RACE\nWrite at map \"processed\""), "{message}");
    let seed = message
        .split("SIM_SEED=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a replay line")
        .to_string();
    assert!(message.contains(&format!("SIM_SEED={seed} SIM_STRATEGY=portfolio")), "{message}");
    let again = panic_message(|| {
        check()
            .with_env(&[("SIM_SEED", seed.as_str()), ("SIM_STRATEGY", "portfolio")])
            .run(racing_writers);
    });
    let line =
        |text: &str| text.lines().find(|l| l.contains("failure (data-race)")).map(String::from);
    assert_eq!(line(&again), line(&message), "{again}");
}
