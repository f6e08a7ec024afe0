//! `scenario_replay`: the `cargo test` side of a kdst failure report.
//!
//! `kdst` prints, for every failure, a command like
//! `SIM_SCENARIO=submariner-logifchanged SIM_VARIANT=buggy SIM_SEED=13 SIM_STRATEGY=portfolio
//! cargo test -p kdst-tests --test it scenario_replay::scenario_replay -- --exact --nocapture`. With those
//! variables this test replays that one seed (the swarm draws the same parameters from it), prints
//! the report and the trace's end, and fails if the variant did not do what it is expected to do:
//! a fixed variant that fails is a regression; a buggy variant fails only with its own bug.
//! `SIM_NO_SWARM=1` (printed after `kdst explore --no-swarm`) runs the seed at the defaults.
//! Without them it replays the first seeds of every variant and checks the same.

use scenarios::{Target, all};
use sim_core::strategy::StrategySpec;
use sim_core::{Config, Simulation};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

#[test]
fn scenario_replay() {
    let Some(scenario) = var("SIM_SCENARIO") else {
        every_variant_behaves_as_expected(8);
        return;
    };
    let strategy: StrategySpec = var("SIM_STRATEGY").map_or(StrategySpec::PORTFOLIO, |text| {
        text.parse().unwrap_or_else(|error| panic!("kdst: SIM_STRATEGY: {error}"))
    });
    let mut target = Target::new(&scenario, var("SIM_VARIANT").as_deref())
        .unwrap_or_else(|error| panic!("kdst: SIM_SCENARIO/SIM_VARIANT: {error}"));
    if let Some(params) = var("SIM_PARAMS") {
        let texts: Vec<&str> = params.split(',').collect();
        target.set_params(&texts).unwrap_or_else(|error| panic!("kdst: SIM_PARAMS: {error}"));
    }
    let target = target.with_swarm(strategy.swarms() && var("SIM_NO_SWARM").is_none());
    let seed_text = var("SIM_SEED").expect("kdst: set SIM_SEED to the seed to replay");
    let seed: u64 = seed_text
        .parse()
        .unwrap_or_else(|_| panic!("kdst: SIM_SEED={seed_text:?} is not a seed (0..2^64)"));
    // The strategy's configuration, as the search that printed the line ran it.
    let mut sim = Simulation::new(strategy.config(Config::default()));
    sim.set_strategy(strategy.build());
    let outcome = target.run(&mut sim, seed);
    let report = target.report(&sim, strategy, None);
    println!("{}\n{report}", sim.trace().render_head(200));
    assert!(
        target.outcome_expected(&outcome),
        "{} {} seed {seed} did not behave as its variant is expected to:\n{report}",
        target.scenario().name(),
        target.variant().name
    );
}

/// Every variant of every scenario over `seeds` seeds with the portfolio and the swarm: each
/// run does what its variant is expected to do, and each failure's report names its replay.
fn every_variant_behaves_as_expected(seeds: u64) {
    for scenario in all() {
        for variant in scenario.variants() {
            let target = Target::new(scenario.name(), Some(variant.name))
                .expect("registered")
                .with_swarm(true);
            let mut sim = Simulation::new(StrategySpec::PORTFOLIO.config(Config::default()));
            sim.set_strategy(StrategySpec::PORTFOLIO.build());
            for seed in 0..seeds {
                let outcome = target.run(&mut sim, seed);
                let report = target.report(&sim, StrategySpec::PORTFOLIO, None);
                assert!(target.outcome_expected(&outcome), "{report}");
                assert!(report.contains(&format!(
                    "SIM_SCENARIO={} SIM_VARIANT={} SIM_SEED={seed} SIM_STRATEGY=portfolio",
                    scenario.name(),
                    variant.name
                )));
                assert!(report.contains(&format!("seed:      {seed}\n")), "{report}");
            }
        }
    }
}
