//! The explorer and the portfolio: a search's summary does not depend on the number of threads
//! or their timing, shards merge into exactly the whole range's result, stop-at-first reports
//! the lowest failing seed, a time budget stops the search, the summary always says how much
//! was searched; the portfolio is a pure function of the seed, uses every member, and finds
//! every modelled bug.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use scenarios::{Expect, Params, all, find, run};
use sim_core::strategy::{Pct, Portfolio, StrategySpec};
use sim_core::{
    CONCURRENT_READ_WRITE, CONCURRENT_WRITES, Check, Config, Ended, ExploreSummary, Explorer,
    FailureKind, GoMap, Outcome, Races, Random, RngCore, Simulation, Strategy, fork, spawn,
    yield_now,
};

/// Two writers and a reader of one Go map, without a lock: writes collide, or a read meets a
/// write, in several tasks, so a search finds several distinct failures.
fn racy_map() {
    let map: GoMap<u32, u32> = GoMap::new("processed");
    for worker in 0..2u32 {
        let map = map.clone();
        spawn(format!("writer-{worker}"), async move {
            yield_now().await;
            map.insert(worker, worker).await;
        });
    }
    spawn("reader", async move {
        yield_now().await;
        let _ = map.get(&0).await;
    });
}

fn racy(sim: &mut Simulation, seed: u64) -> Outcome {
    sim.run(seed, racy_map)
}

/// The default explorer with the race detector off: the Go runtime's crash oracle alone (the
/// detector reports the same maps earlier: `tests/it/race.rs`).
fn crash_oracle() -> Explorer {
    Explorer::new().config(Config::default().with_races(Races::Off))
}

/// A summary without its wall time, to compare searches.
fn timeless(mut summary: ExploreSummary) -> ExploreSummary {
    summary.wall = Duration::ZERO;
    summary
}

/// Shard `index` of two, merged with the other, against the whole range.
fn assert_shards_merge_to_the_whole(
    explorer: &Explorer,
    run_seed: &(impl Fn(&mut Simulation, u64) -> Outcome + Sync),
) {
    let whole = explorer.run(run_seed);
    let first = explorer.clone().shard(0, 2).run(run_seed);
    let second = explorer.clone().shard(1, 2).run(run_seed);
    assert!(first.failures.iter().all(|found| found.seed % 2 == 0), "{first}");
    assert!(second.failures.iter().all(|found| found.seed % 2 == 1), "{second}");
    assert_eq!(first.schedules + second.schedules, whole.schedules);
    let mut merged = timeless(first.merge(second));
    assert_eq!(merged.shards, [(0, 2), (1, 2)]);
    assert!(merged.merged);
    assert_eq!(merged.missing_shards(), (0, vec![]));
    merged.shards = vec![(0, 1)];
    merged.merged = false;
    assert_eq!(merged, timeless(whole.clone()), "merged:\n{merged}\nwhole:\n{whole}");
    assert!(whole.failures.len() >= 2, "distinct failures to deduplicate:\n{whole}");
}

#[test]
fn two_shards_merged_find_exactly_what_the_whole_range_finds_on_a_go_map() {
    for strategy in ["random", "pct:2", "portfolio"] {
        let explorer =
            Explorer::new().seeds(7..507).strategy(strategy.parse().expect("known")).jobs(2);
        assert_shards_merge_to_the_whole(&explorer, &racy);
    }
}

#[test]
fn two_shards_merged_find_exactly_what_the_whole_range_finds_on_a_scenario() {
    // Swarm-style: each seed draws its own number of objects from the parameter's range.
    let capsule = |sim: &mut Simulation, seed: u64| {
        let scenario = find("capsule-replication-writes").expect("registered");
        let objects = 1 + fork(seed, "params").next_u64() % 8;
        let params =
            Params::defaults(scenario.as_ref()).with("objects", objects).expect("in range");
        run(sim, scenario.as_ref(), "buggy", &params, seed)
    };
    let explorer = Explorer::new().seeds(0..300).jobs(2);
    assert_shards_merge_to_the_whole(&explorer, &capsule);
}

#[test]
fn one_or_two_jobs_give_the_same_summary_except_the_wall_time() {
    for stop_at_first in [false, true] {
        let explorer = Explorer::new().seeds(3..700).stop_at_first(stop_at_first);
        let one = explorer.clone().jobs(1).run(racy);
        let two = explorer.clone().jobs(2).run(racy);
        let three = explorer.jobs(3).run(racy);
        assert_eq!(timeless(one.clone()), timeless(two), "stop at first: {stop_at_first}");
        assert_eq!(timeless(one), timeless(three), "stop at first: {stop_at_first}");
    }
}

/// Fails on seeds 50, 70 and 90 only; seeds below 50 are slow, so with two threads a later
/// failing seed is usually found first in wall time.
fn fails_on_50_70_90(sim: &mut Simulation, seed: u64) -> Outcome {
    sim.run(seed, move || {
        spawn("worker", async move {
            let yields = if seed < 50 { 2_000 } else { 1 };
            for _ in 0..yields {
                yield_now().await;
            }
            assert!(![50, 70, 90].contains(&seed), "seed {seed} is a bad seed");
        });
    })
}

#[test]
fn stop_at_first_reports_the_lowest_failing_seed_whatever_the_timing() {
    for jobs in [1, 2, 4] {
        let summary =
            Explorer::new().seeds(0..1_000).jobs(jobs).stop_at_first(true).run(fails_on_50_70_90);
        assert_eq!(summary.ended, Ended::FirstFailure, "{summary}");
        assert_eq!(summary.failures.len(), 1, "{summary}");
        assert_eq!(summary.failures[0].seed, 50, "{summary}");
        assert_eq!(summary.failures[0].failure.kind, FailureKind::Panic);
        assert_eq!(summary.schedules, 51, "exactly the seeds up to the failure:\n{summary}");
        assert_eq!(summary.searched_below, 51);
        assert!(summary.to_string().contains("stopped at the first failure"), "{summary}");
    }
    // On the Go map, the lowest failing seed is the one a plain loop finds first.
    let mut sim = Simulation::default().with_strategy(Portfolio::new());
    let expected = (0..1_000).find(|&seed| racy(&mut sim, seed).is_failure()).expect("a race");
    let summary = crash_oracle().seeds(0..1_000).jobs(2).stop_at_first(true).run(racy);
    assert_eq!(summary.failures[0].seed, expected, "{summary}");
    assert_eq!(summary.failures[0].strategy, Portfolio::member_for(expected));
}

#[test]
fn without_stop_at_first_every_distinct_failure_is_collected_with_its_lowest_seed() {
    let summary = Explorer::new().seeds(0..1_000).jobs(2).run(fails_on_50_70_90);
    assert_eq!(summary.ended, Ended::Exhausted);
    assert_eq!(summary.schedules, 1_000);
    // The three panics differ in their message: three distinct failures, one seed each.
    let seeds: Vec<(u64, u64)> = summary.failures.iter().map(|f| (f.seed, f.count)).collect();
    assert_eq!(seeds, [(50, 1), (70, 1), (90, 1)], "{summary}");

    let summary = crash_oracle().seeds(0..1_000).jobs(2).run(racy);
    let messages: BTreeSet<&str> =
        summary.failures.iter().map(|f| f.failure.message.as_str()).collect();
    assert_eq!(messages, BTreeSet::from([CONCURRENT_WRITES, CONCURRENT_READ_WRITE]), "{summary}");
    let places: BTreeSet<_> = summary
        .failures
        .iter()
        .map(|f| (f.failure.kind, f.failure.task_name.clone(), f.failure.message.clone()))
        .collect();
    assert_eq!(places.len(), summary.failures.len(), "deduplicated by place:\n{summary}");
    assert!(summary.failures.windows(2).all(|w| w[0].seed < w[1].seed), "by seed");
    // Each seed as the search ran it: PCT's k learned from the first seeds, pinned after.
    let failing = (0..1_000)
        .filter(|&seed| {
            let spec = summary.strategy_for(StrategySpec::PORTFOLIO, seed);
            let mut sim = Simulation::default().with_strategy(spec.build());
            racy(&mut sim, seed).is_failure()
        })
        .count();
    assert_eq!(summary.failed_runs(), failing as u64, "counts add up to the failing seeds");
}

#[test]
fn a_time_budget_stops_the_search() {
    let budget = Duration::from_millis(300);
    let slow = |sim: &mut Simulation, seed: u64| {
        sim.run(seed, || {
            spawn("spinner", async {
                for _ in 0..1_000 {
                    yield_now().await;
                }
            });
        })
    };
    let summary = Explorer::new().time_budget(budget).jobs(2).run(slow);
    assert_eq!(summary.ended, Ended::TimeBudget, "{summary}");
    assert!(summary.schedules > 0, "{summary}");
    assert!(summary.wall >= budget, "{summary}");
    assert!(summary.wall < budget + Duration::from_secs(5), "checked between runs:\n{summary}");
    assert!(summary.searched_below <= summary.schedules, "{summary}");
    // Every seed below `searched_below` ran; a few above it may have too (a thread that was
    // descheduled leaves its chunk unfinished while the other ran ahead).
    assert!(summary.searched_below > 0, "{summary}");
    assert_eq!(summary.seeds, 0..u64::MAX);
    let text = summary.to_string();
    assert!(text.contains("time budget 0.300 s spent"), "{text}");
    assert!(text.contains("seeds 0.., "), "{text}");

    // A range that runs out first ends the search before the budget.
    let summary = Explorer::new().seeds(0..10).time_budget(Duration::from_secs(60)).run(slow);
    assert_eq!((summary.ended, summary.schedules), (Ended::Exhausted, 10), "{summary}");
}

#[test]
fn the_summary_always_says_how_much_was_searched_and_how_fast() {
    let calm = |sim: &mut Simulation, seed: u64| {
        sim.run(seed, || {
            spawn("calm", async {
                yield_now().await;
            });
        })
    };
    let explorer = Explorer::new().seeds(0..100).strategy("pct:2".parse().expect("known"));
    let summary = explorer.clone().pct_max_steps(10_000).run(calm);
    let text = summary.to_string();
    for words in [
        "searched 100 schedules",
        "steps",
        "virtual time",
        "schedules/s",
        "steps/s",
        "seeds 0..100, shard 0/1, strategy pct:2 (pct:2 100), bound: PCT depth 2, k 10000 (pinned)",
        "every seed searched",
        "no failure found",
    ] {
        assert!(text.contains(words), "{words:?} missing from:\n{text}");
    }
    assert!(summary.steps_per_second() > 0.0 && summary.schedules_per_second() > 0.0);
    let learned = explorer.run(calm);
    let k = learned.calibration.as_ref().expect("k learned").k;
    let text = learned.to_string();
    assert!(text.contains(&format!("strategy pct:2@{k} (pct:2 4, pct:2@{k} 96)")), "{text}");
    assert!(
        text.contains(&format!("bound: PCT depth 2, k {k}, learned from seeds 0..4")),
        "{text}"
    );

    let nothing = Explorer::new().seeds(5..5).run(calm);
    assert_eq!(nothing.schedules, 0);
    assert_eq!(nothing.calibration, None, "nothing ran to learn k from");
    assert!(nothing.to_string().starts_with("searched 0 schedules, 0 steps"), "{nothing}");

    let racy_text = crash_oracle().seeds(0..200).run(racy).to_string();
    assert!(racy_text.contains("distinct failures on"), "{racy_text}");
    assert!(racy_text.contains("fatal error: concurrent map"), "{racy_text}");
}

#[test]
fn limits_are_reported_apart_from_failures_and_never_as_passes() {
    let config = Config::default().with_steps_max(100);
    let spin = |sim: &mut Simulation, seed: u64| {
        sim.run(seed, || {
            spawn("spinner", async {
                loop {
                    yield_now().await;
                }
            });
        })
    };
    let summary = Explorer::new().config(config).seeds(0..50).stop_at_first(true).run(spin);
    assert!(summary.failures.is_empty(), "{summary}");
    assert_eq!(summary.limits_reached(), 50, "a limit never stops the search:\n{summary}");
    assert_eq!(summary.limits[0].failure.kind, FailureKind::StepLimit);
    let text = summary.to_string();
    assert!(text.contains("50 runs reached a limit (not passes"), "{text}");
}

#[test]
fn strategy_names_are_those_of_check() {
    // One grammar: every name parses, and its canonical form parses back to the same spec.
    for name in [
        "random",
        "pct",
        "pct:1",
        "pct:4",
        "portfolio",
        "dfs",
        "dfs:0",
        "dfs-full:3",
        "dfs-delays:1",
        "dfs:1+1",
        "dfs-full:0+2",
        "dfs-delays:2+1",
    ] {
        let spec: StrategySpec = name.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(spec.to_string().parse::<StrategySpec>(), Ok(spec), "{name}");
    }
    assert_eq!("pct".parse::<StrategySpec>().map(|s| s.to_string()), Ok("pct:3".to_string()));
    assert_eq!("dfs".parse::<StrategySpec>().map(|s| s.to_string()), Ok("dfs:2".to_string()));
    let unknown = "bogus".parse::<StrategySpec>().expect_err("unknown");
    assert_eq!(
        unknown.to_string(),
        format!("unknown strategy \"bogus\" (known: {})", sim_core::strategy::KNOWN)
    );
    let depth = "pct:0".parse::<StrategySpec>().expect_err("depth 0");
    assert!(depth.to_string().contains("not a number ≥ 1"), "{depth}");
    assert!("dfs:x".parse::<StrategySpec>().is_err());
    assert_eq!("dfs:1+0".parse::<StrategySpec>().map(|s| s.to_string()), Ok("dfs:1".to_string()));
    assert!("dfs:1+".parse::<StrategySpec>().is_err());
    assert!("dfs:1+x".parse::<StrategySpec>().is_err());
    assert!("random:2".parse::<StrategySpec>().is_err());
    let report = Check::new("portfolio_check")
        .with_env(&[])
        .strategy(StrategySpec::PORTFOLIO)
        .seeds(50)
        .run(|| {
            spawn("calm", async {});
        });
    assert!(report.strategy.starts_with("portfolio@"), "{}", report.strategy);
    assert!(report.strategy.ends_with("(k learned from seeds 0..4, which ran as portfolio)"));
}

#[test]
fn the_portfolio_is_a_pure_function_of_the_seed_and_uses_every_member() {
    let mut forward = Simulation::default().with_strategy(Portfolio::new());
    let hashes: Vec<u64> = (0..200)
        .map(|seed| {
            racy(&mut forward, seed);
            forward.trace().hash()
        })
        .collect();
    // A reused portfolio in another order, and a fresh one per seed, give the same runs.
    let mut backward = Simulation::default().with_strategy(Portfolio::new());
    for seed in (0..200).rev() {
        racy(&mut backward, seed);
        assert_eq!(backward.trace().hash(), hashes[seed as usize], "seed {seed}");
        let mut fresh = Simulation::default().with_strategy(Portfolio::new());
        racy(&mut fresh, seed);
        assert_eq!(fresh.trace().hash(), hashes[seed as usize], "seed {seed}");
        assert_eq!(fresh.trace().strategy(), "portfolio");
    }
    // `current` names the member of the last run; every member runs, random most often.
    let mut portfolio = Portfolio::new();
    let mut counts = std::collections::BTreeMap::new();
    for seed in 0..200 {
        portfolio.begin(seed);
        assert_eq!(portfolio.current(), Portfolio::member_for(seed), "seed {seed}");
        *counts.entry(portfolio.current()).or_insert(0) += 1;
    }
    let members: BTreeSet<&str> = counts.keys().copied().collect();
    assert_eq!(members, BTreeSet::from(Portfolio::members()), "{counts:?}");
    assert!(counts["random"] > counts["pct:2"] && counts["random"] > counts["pct:3"], "{counts:?}");
    // Each member runs exactly the schedule of its strategy alone (PCT with the drawn `k`).
    for member in Portfolio::members() {
        for seed in (0..200).filter(|&s| Portfolio::member_for(s) == member).take(10) {
            let alone: Box<dyn Strategy> = match member {
                "random" => Box::new(Random::new()),
                "pct:2" => Box::new(Pct::with_max_steps(2, Portfolio::max_steps_for(seed))),
                _ => Box::new(Pct::with_max_steps(3, Portfolio::max_steps_for(seed))),
            };
            let mut alone = Simulation::default().with_strategy(alone);
            racy(&mut alone, seed);
            racy(&mut forward, seed);
            let (alone, portfolio) = (alone.trace().step_tasks(), forward.trace().step_tasks());
            assert_eq!(alone, portfolio, "{member}, seed {seed}");
        }
    }
}

#[test]
fn the_portfolio_finds_every_buggy_scenario_variant_within_1000_seeds() {
    for scenario in all() {
        let name = scenario.name();
        for variant in scenario.variants() {
            let expect = variant.expect;
            if expect == Expect::Holds {
                continue;
            }
            let variant = variant.name;
            let search = |sim: &mut Simulation, seed: u64| {
                let scenario = find(name).expect("registered");
                let params = Params::defaults(scenario.as_ref());
                run(sim, scenario.as_ref(), variant, &params, seed)
            };
            let summary = Explorer::new().seeds(0..1_000).stop_at_first(true).run(search);
            let found = summary
                .failures
                .first()
                .unwrap_or_else(|| panic!("{name} {variant}: nothing found\n{summary}"));
            assert!(expect.matches(&found.failure), "{name} {variant}: {summary}");
            println!("{name} {variant}: seed {} ({})", found.seed, found.strategy);
        }
    }
}

/// An ordering bug of depth 2 (as in `tests/it/pct.rs`): `short` must run between `long`'s
/// 49th and 50th steps. The random walk essentially never does it; the portfolio's PCT
/// members do.
#[test]
fn the_portfolio_finds_a_deep_ordering_bug_the_random_walk_misses() {
    let long_and_short = |sim: &mut Simulation, seed: u64| {
        sim.run(seed, || {
            let progress = Rc::new(Cell::new(0u32));
            let long = progress.clone();
            spawn("long", async move {
                for step in 1..=50 {
                    long.set(step);
                    yield_now().await;
                }
            });
            spawn("short", async move {
                assert_ne!(progress.get(), 49, "short ran between long's steps 49 and 50");
            });
        })
    };
    let explorer = Explorer::new().seeds(0..20_000);
    let random = explorer.clone().strategy(StrategySpec::Random).run(long_and_short);
    assert!(random.failures.is_empty(), "{random}");
    let portfolio = explorer.run(long_and_short);
    let found = portfolio.failures.first().unwrap_or_else(|| panic!("{portfolio}"));
    assert!(found.strategy.starts_with("pct:"), "{portfolio}");
    println!("{portfolio}");
}

/// The explorer runs a systematic strategy as one search of seed 0: complete on a calm program
/// (verdict completed), the crash on racing writers, and a schedule limit is not a pass.
#[test]
fn the_explorer_runs_bounded_exhaustive_search() {
    use sim_core::{Ended, Verdict};
    let racy = || {
        let map = GoMap::new("processed");
        for worker in 0..2 {
            let map = map.clone();
            spawn(format!("worker-{worker}"), async move {
                map.insert(worker, "synced").await;
            });
        }
    };
    let calm = || {
        spawn("calm", async {});
    };
    let dfs: StrategySpec = "dfs:2".parse().expect("known");
    let summary = Explorer::new().strategy(dfs).run(|sim, seed| sim.run(seed, calm));
    assert_eq!(summary.verdict(), Verdict::Completed, "{summary}");
    assert_eq!(summary.ended, Ended::Complete);
    assert!(summary.to_string().contains("explored"), "{summary}");
    let summary =
        Explorer::new().strategy(dfs).stop_at_first(true).run(|sim, seed| sim.run(seed, racy));
    assert_eq!(summary.verdict(), Verdict::Failure, "{summary}");
    assert_eq!(summary.failures[0].seed, 0);
    let full: StrategySpec = "dfs-full:3".parse().expect("known");
    let limited =
        Explorer::new().strategy(full).max_schedules(1).run(|sim, seed| sim.run(seed, calm_pair));
    assert_eq!(limited.verdict(), Verdict::Incomplete, "{limited}");
    assert_eq!(limited.ended, Ended::ScheduleLimit);
}

fn calm_pair() {
    for name in ["a", "b"] {
        spawn(name, async {
            sim_core::yield_now().await;
        });
    }
}
