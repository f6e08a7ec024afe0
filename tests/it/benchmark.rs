//! The benchmark of real operator bugs found with no bug-specific oracle (issue 18): each
//! scenario's only oracles are the generic ones (`Scenario::generic_oracles`). Each buggy variant
//! needs a perturbation (none fails without), its failure names the perturbation and replays
//! exactly, and each fixed variant holds under the portfolio with perturbations on. (That every
//! buggy variant fails within 1,000 seeds and every fixed one holds over 2,000 under the random
//! walk is `scenarios.rs`'s, for every scenario.)

use scenarios::{Expect, Params, all, run};
use sim_core::{Config, Outcome, Perturbations, Replay, Simulation, StrategySpec};

/// The scenarios with generic oracles.
fn benchmark() -> Vec<std::sync::Arc<dyn scenarios::Scenario>> {
    let chosen: Vec<_> = all().into_iter().filter(|s| s.generic_oracles().is_some()).collect();
    assert!(chosen.len() >= 4, "the benchmark has its scenarios");
    chosen
}

#[test]
fn no_buggy_variant_fails_without_perturbations() {
    for scenario in benchmark() {
        let params = Params::defaults(scenario.as_ref());
        let config = Config::default().with_perturbations(Perturbations::NONE);
        let mut sim = Simulation::new(config);
        for seed in 0..200 {
            let outcome = run(&mut sim, scenario.as_ref(), "buggy", &params, seed);
            assert_eq!(outcome, Outcome::Completed, "{} seed {seed}", scenario.name());
        }
    }
}

#[test]
fn each_buggy_failure_names_its_perturbations_and_replays_exactly() {
    for scenario in benchmark() {
        let name = scenario.name();
        let params = Params::defaults(scenario.as_ref());
        let variant = scenario.variant("buggy").expect("a buggy variant");
        let Expect::Fails(kind, text) = variant.expect else { panic!("{name}: buggy fails") };
        let mut sim = Simulation::default();
        let (seed, failure) = (0..1000)
            .find_map(|seed| match run(&mut sim, scenario.as_ref(), "buggy", &params, seed) {
                Outcome::Failed(failure) => Some((seed, failure)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{name}: no failure in 1000 seeds"));
        assert_eq!(failure.kind, kind, "{name} seed {seed}: {failure}");
        assert!(failure.message.contains(text), "{name} seed {seed}: {failure}");
        assert!(!sim.trace().perturbation_events().is_empty(), "{name} seed {seed}");
        let schedule = sim.schedule(name, &[]);
        let hash = sim.trace().hash();
        let mut again = Simulation::default().with_strategy(Replay::new(&schedule));
        let outcome = run(&mut again, scenario.as_ref(), "buggy", &params, seed);
        assert_eq!(outcome, Outcome::Failed(failure), "{name} seed {seed}");
        assert_eq!(again.trace().hash(), hash, "{name} seed {seed}");
    }
}

#[test]
fn each_fixed_variant_holds_under_the_portfolio_with_perturbations_on() {
    for scenario in benchmark() {
        let params = Params::defaults(scenario.as_ref());
        let mut sim = Simulation::default();
        sim.set_strategy(StrategySpec::PORTFOLIO.build());
        for seed in 0..500 {
            let outcome = run(&mut sim, scenario.as_ref(), "fixed", &params, seed);
            assert_eq!(outcome, Outcome::Completed, "{} seed {seed}", scenario.name());
        }
    }
}

/// Crash-restart on an existing scenario: cert-manager's fixed variant, run as a process
/// (`process=1`) that perturbations crash, restart, hold back and reconnect to a lagging server,
/// still completes every foreground deletion within its bound (eventually stable
/// reconciliation, checked by the scenario's own liveness oracle); the buggy variant still
/// livelocks.
#[test]
fn cert_manager_fixed_completes_deletion_with_crashes_on() {
    let scenario = scenarios::find("cert-manager-foreground-deletion").expect("registered");
    let mut params = Params::defaults(scenario.as_ref());
    params.set("process", 1).expect("a parameter");
    let mut sim = Simulation::default();
    let mut crashed = 0;
    for seed in 0..300 {
        let outcome = run(&mut sim, scenario.as_ref(), "fixed", &params, seed);
        assert_eq!(outcome, Outcome::Completed, "seed {seed}");
        let events = sim.trace().perturbation_events();
        crashed += usize::from(events.iter().any(|line| line.contains("crash-after-write")));
    }
    assert!(crashed >= 50, "only {crashed} of 300 runs crashed cert-manager");
    let livelock = (0..300)
        .any(|seed| run(&mut sim, scenario.as_ref(), "buggy", &params, seed).failure().is_some());
    assert!(livelock, "the buggy variant still livelocks as a process");
}
