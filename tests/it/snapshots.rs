//! Snapshots: the rendered head of every scenario variant's trace at a fixed seed, pinned with
//! insta, so a change in any controller model, the API server or the executor shows up in review
//! as a diff of the story it tells. Review an intended change with `cargo insta review` (or
//! re-run with `INSTA_UPDATE=always` and read the diff).

use scenarios::{Params, all, run};
use sim_core::Simulation;

/// The seed every snapshot runs.
const SEED: u64 = 1;
/// Events kept per snapshot: enough to read the start of the story, short enough to review.
const EVENTS_MAX: usize = 60;

/// Every variant of every registered scenario, seed 1, default parameters: the first 60 events,
/// the summary line and the outcome, in a snapshot named `trace__{scenario}__{variant}`.
#[test]
fn every_scenario_variant_trace_head_matches_its_snapshot() {
    let mut sim = Simulation::default();
    let mut checked = 0;
    for scenario in all() {
        let params = Params::defaults(scenario.as_ref());
        for variant in scenario.variants() {
            run(&mut sim, scenario.as_ref(), variant.name, &params, SEED);
            let name = format!("trace__{}__{}", scenario.name(), variant.name);
            let description = format!(
                "{} {} (seed {SEED}, default parameters): {}",
                scenario.name(),
                variant.name,
                variant.summary
            );
            insta::with_settings!({ description => description, omit_expression => true }, {
                insta::assert_snapshot!(name, sim.trace().render_head(EVENTS_MAX));
            });
            checked += 1;
        }
    }
    assert!(checked >= 2 * all().len(), "every scenario has a buggy and a fixed variant");
}

/// Every buggy variant: the first seed of 0.. that fails under the portfolio with the swarm (as
/// `kdst explore` searches), shrunk, replayed, and its failure report, in a snapshot named
/// `report__{scenario}__{variant}`. The report is what a developer reads first: the scenario,
/// the parameters the seed drew, the failure, the last events of each task involved, the replay
/// commands.
#[test]
fn every_buggy_variant_shrunk_report_matches_its_snapshot() {
    use scenarios::{Expect, Target};
    use sim_core::strategy::StrategySpec;
    use sim_core::{Config, Replay, shrink};

    let mut checked = 0;
    for scenario in all() {
        for variant in scenario.variants() {
            if variant.expect == Expect::Holds {
                continue;
            }
            let target = Target::new(scenario.name(), Some(variant.name))
                .expect("registered")
                .with_swarm(true);
            let mut sim = Simulation::default();
            sim.set_strategy(StrategySpec::PORTFOLIO.build());
            let seed =
                (0..1_000).find(|&seed| target.run(&mut sim, seed).is_failure()).unwrap_or_else(
                    || panic!("{} {} fails within 1,000 seeds", scenario.name(), variant.name),
                );
            let schedule = target.schedule(&sim, StrategySpec::PORTFOLIO);
            // Long runs (the livelock's 75,000 steps) get a small budget, as the CLI gives them.
            let budget = (5_000_000 / schedule.steps.len() as u64).clamp(20, 2_000);
            let shrunk = shrink(&Config::default(), &schedule, || target.setup(), budget)
                .expect("a failing schedule shrinks");
            let mut replayed = Simulation::default();
            replayed.set_strategy(Box::new(Replay::new(&shrunk.schedule)));
            let outcome = target.run(&mut replayed, seed);
            assert_eq!(outcome.failure().map(|f| f.kind), Some(shrunk.failure.kind));
            let report =
                format!("{}{shrunk}\n", target.report(&replayed, StrategySpec::PORTFOLIO, None));
            let name = format!("report__{}__{}", scenario.name(), variant.name);
            insta::with_settings!({ omit_expression => true }, {
                insta::assert_snapshot!(name, report);
            });
            checked += 1;
        }
    }
    assert!(checked >= all().len(), "every scenario has a buggy variant");
}
