//! Tests: the scenario registry. Every buggy variant fails within 1,000 seeds with the expected
//! kind and text; every fixed variant holds over 2,000 seeds; runs replay from their seeds.

use scenarios::{Expect, Params, Scenario, all, run};
use sim_core::{Outcome, Simulation};

/// Seeds a buggy variant must fail within (issue 4).
const FIND_WITHIN: u64 = 1_000;
/// Seeds a fixed variant must hold over (issue 4).
const HOLD_OVER: u64 = 2_000;

fn first_failure(scenario: &dyn Scenario, variant: &str, seeds: u64) -> Option<(u64, Outcome)> {
    let params = Params::defaults(scenario);
    let mut sim = Simulation::default();
    (0..seeds).find_map(|seed| {
        let outcome = run(&mut sim, scenario, variant, &params, seed);
        (outcome != Outcome::Completed).then_some((seed, outcome))
    })
}

/// Every variant that should fail does, within 1,000 seeds, for the reason the upstream
/// issue gives (the failure's kind and text).
#[test]
fn every_buggy_variant_fails_within_1000_seeds_with_the_upstream_text() {
    for scenario in all() {
        for variant in scenario.variants() {
            let Expect::Fails(kind, text) = variant.expect else { continue };
            let name = format!("{} {}", scenario.name(), variant.name);
            let (seed, outcome) = first_failure(scenario.as_ref(), variant.name, FIND_WITHIN)
                .unwrap_or_else(|| panic!("{name}: no failure in {FIND_WITHIN} seeds"));
            let failure = match outcome {
                Outcome::Failed(failure) => failure,
                other => panic!("{name}: seed {seed} ended with a limit, not a failure: {other}"),
            };
            assert_eq!(failure.kind, kind, "{name}: seed {seed}: {failure}");
            assert!(failure.message.contains(text), "{name}: seed {seed}: {failure}");
        }
    }
}

/// Every variant that models a real fix holds over 2,000 seeds (no failure, no limit).
#[test]
fn every_fixed_variant_holds_over_2000_seeds() {
    for scenario in all() {
        for variant in scenario.variants() {
            if variant.expect != Expect::Holds {
                continue;
            }
            let found = first_failure(scenario.as_ref(), variant.name, HOLD_OVER);
            if let Some((seed, outcome)) = found {
                panic!("{} {}: seed {seed}: {outcome}", scenario.name(), variant.name);
            }
        }
    }
}

/// Same scenario, variant, parameters and seed → the same trace.
#[test]
fn scenario_runs_replay_from_their_seed() {
    for scenario in all() {
        let params = Params::defaults(scenario.as_ref());
        for variant in scenario.variants() {
            for seed in [0, 1, 99] {
                let mut sim = Simulation::default();
                let first = run(&mut sim, scenario.as_ref(), variant.name, &params, seed);
                let hash = sim.trace().hash();
                let again =
                    run(&mut Simulation::default(), scenario.as_ref(), variant.name, &params, seed);
                assert_eq!(first, again, "{} {} seed {seed}", scenario.name(), variant.name);
                let mut fresh = Simulation::default();
                run(&mut fresh, scenario.as_ref(), variant.name, &params, seed);
                assert_eq!(
                    fresh.trace().hash(),
                    hash,
                    "{} {} seed {seed}",
                    scenario.name(),
                    variant.name
                );
            }
        }
    }
}
