//! PCT's `k` learned per search: the first seeds' runs set it, the spec carries it (`@K`) into
//! every replay line, shards learn the same one, and a seed replays exactly from its spec.

use std::cell::Cell;
use std::rc::Rc;

use sim_core::strategy::StrategySpec;
use sim_core::{Check, Config, Explorer, Outcome, Races, Simulation, spawn, yield_now};

/// A check-then-act of W3's shape: a deleter deletes, works 2 units and checks the key is gone;
/// a recreator works 2 units, sees the key gone and recreates it. Runs are about 10 steps.
fn check_then_act() {
    let key = Rc::new(Cell::new(true));
    let deleter_key = key.clone();
    spawn("deleter", async move {
        deleter_key.set(false);
        for _ in 0..2 {
            yield_now().await;
        }
        assert!(!deleter_key.get(), "the deleted key was recreated before the deleter's check");
    });
    spawn("recreator", async move {
        for _ in 0..2 {
            yield_now().await;
        }
        if !key.get() {
            key.set(true);
        }
    });
}

#[test]
fn the_spec_grammar_carries_a_pinned_k_and_refuses_it_where_no_pct_runs() {
    for (text, canonical) in [
        ("portfolio@24", "portfolio@24"),
        ("pct@7", "pct:3@7"),
        ("pct:2@4294967296", "pct:2@4294967296"),
    ] {
        let spec: StrategySpec = text.parse().expect(text);
        assert_eq!(spec.to_string(), canonical);
        assert_eq!(canonical.parse::<StrategySpec>(), Ok(spec));
        assert!(!spec.calibrates() && spec.pct_k().is_some());
    }
    for (text, why) in [
        ("random@5", "no PCT k to pin"),
        ("dfs:2@3", "no PCT k to pin"),
        ("portfolio@0", "not a number in 1..="),
        ("portfolio@4294967297", "not a number in 1..="),
        ("portfolio@", "not a number"),
        ("portfolio@x", "not a number"),
    ] {
        let error = text.parse::<StrategySpec>().expect_err(text);
        assert!(error.reason.contains(why), "{text}: {error}");
    }
    assert!(StrategySpec::PORTFOLIO.calibrates());
}

#[test]
fn a_search_learns_k_from_its_first_seeds_and_every_later_seed_runs_with_it() {
    for spec in ["portfolio", "pct:3"] {
        let spec: StrategySpec = spec.parse().expect("known");
        let outcomes = std::sync::Mutex::new(Vec::new());
        let summary = Explorer::new().seeds(0..200).jobs(1).strategy(spec).run(|sim, seed| {
            let outcome = sim.run(seed, check_then_act);
            outcomes.lock().expect("no panic").push((seed, outcome.clone()));
            outcome
        });
        let calibration = summary.calibration.clone().expect("k learned");
        assert_eq!(calibration.seeds, 0..Explorer::CALIBRATION_RUNS);
        // k is the longest of those runs, each run as the uncalibrated spec runs it.
        let mut sim = Simulation::new(spec.config(Config::default()));
        sim.set_strategy(spec.build());
        let longest = (0..Explorer::CALIBRATION_RUNS)
            .map(|seed| {
                sim.run(seed, check_then_act);
                sim.trace().len() as u64
            })
            .max();
        assert_eq!(Some(calibration.k), longest, "{summary}");
        let calibrated = spec.with_pct_k(calibration.k);
        assert_eq!(summary.strategy, calibrated.to_string(), "{summary}");
        assert!(summary.to_string().contains("learned from seeds 0..4"), "{summary}");
        assert_eq!(summary.schedules, 200, "the learning runs are runs of the search: {summary}");
        // Every seed reruns from the spec the summary gives for it: the learning seeds as
        // given, the others with `@k`.
        let outcomes = outcomes.into_inner().expect("no panic");
        assert_eq!(outcomes.len(), 200);
        let failing_later =
            outcomes.iter().filter(|(seed, o)| *seed >= 4 && o.is_failure()).count();
        assert!(failing_later > 0, "{summary}");
        for (seed, outcome) in &outcomes {
            let rerun = summary.strategy_for(spec, *seed);
            let mut sim = Simulation::new(rerun.config(Config::default()));
            sim.set_strategy(rerun.build());
            assert_eq!(&sim.run(*seed, check_then_act), outcome, "seed {seed} as {rerun}");
        }
        assert!(!summary.failures.is_empty(), "{summary}");
        for found in &summary.failures {
            let rerun = summary.strategy_for(spec, found.seed);
            assert_eq!(rerun, if found.seed < 4 { spec } else { calibrated });
            let mut sim = Simulation::new(rerun.config(Config::default()));
            sim.set_strategy(rerun.build());
            let outcome = sim.run(found.seed, check_then_act);
            assert_eq!(outcome.failure(), Some(&found.failure), "seed {}", found.seed);
        }
    }
}

#[test]
fn shards_and_threads_learn_the_same_k_and_find_the_same_failures() {
    let search = |explorer: Explorer| {
        explorer
            .seeds(0..300)
            .strategy(StrategySpec::PORTFOLIO)
            .run(|sim, seed| sim.run(seed, check_then_act))
    };
    let whole = search(Explorer::new().jobs(1));
    let threads = search(Explorer::new().jobs(2));
    assert_eq!(whole.failures, threads.failures);
    assert_eq!(whole.calibration, threads.calibration);
    let shards: Vec<_> =
        (0..3).map(|index| search(Explorer::new().jobs(1).shard(index, 3))).collect();
    for shard in &shards {
        assert_eq!(shard.calibration, whole.calibration, "{shard}");
        assert_eq!(shard.strategy, whole.strategy);
    }
    let merged = shards.into_iter().reduce(ExploreMerge::merge).expect("three shards");
    assert_eq!(merged.schedules, whole.schedules);
    assert_eq!(merged.failed_runs(), whole.failed_runs());
    assert_eq!(merged.failures, whole.failures);
}

/// `ExploreSummary::merge` as a function value.
struct ExploreMerge;

impl ExploreMerge {
    fn merge(a: sim_core::ExploreSummary, b: sim_core::ExploreSummary) -> sim_core::ExploreSummary {
        a.merge(b)
    }
}

#[test]
fn a_check_learns_k_and_its_replay_line_names_it() {
    let message = std::panic::catch_unwind(|| {
        Check::new("calibrated_check_then_act")
            .with_env(&[])
            .strategy("pct:3".parse().expect("known"))
            .config(Config::default().with_races(Races::Off))
            .regressions(false)
            .seeds(500)
            .run(check_then_act);
    })
    .expect_err("the check-then-act fails");
    let message = message.downcast_ref::<String>().cloned().unwrap_or_default();
    let seed: u64 = message
        .split("SIM_SEED=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|seed| seed.parse().ok())
        .expect("a replay line");
    let replay_strategy = message
        .split("SIM_STRATEGY=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a strategy")
        .to_string();
    if seed >= Explorer::CALIBRATION_RUNS {
        assert!(replay_strategy.starts_with("pct:3@"), "{message}");
    } else {
        assert_eq!(replay_strategy, "pct:3", "{message}");
    }
    // The printed line replays: the same seed and strategy fail again with the same text.
    let spec: StrategySpec = replay_strategy.parse().expect("printed spec parses");
    let mut sim = Simulation::new(spec.config(Config::default().with_races(Races::Off)));
    sim.set_strategy(spec.build());
    let outcome = sim.run(seed, check_then_act);
    let Outcome::Failed(failure) = outcome else { panic!("seed {seed} passes on replay") };
    assert!(message.contains(&failure.message), "{message}");
}
