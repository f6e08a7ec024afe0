//! Perturbation points: decided by the strategy within the run's budget, named in the trace,
//! replayed exactly, covered by bounded search within its perturbation bound, taken out by
//! shrinking when the failure does not need them; and the contract a perturbation must meet,
//! shown to catch one that never fires.

use std::cell::Cell;
use std::rc::Rc;

use sim_core::strategy::{Choice, Divergence, explore_with};
use sim_core::{
    Config, Dfs, FailureKind, Outcome, Perturbations, Random, Replay, Simulation, Strategy,
    perturb, perturbations_fired, shrink, spawn, yield_now,
};

/// One task with `points` perturbation points of class "poke"; it fails when the points fired
/// are exactly those in `bug` (if any).
fn pokes(points: u32, bug: Option<&'static [u32]>) -> impl Fn() {
    move || {
        spawn("poker", async move {
            let mut fired = Vec::new();
            for point in 0..points {
                if perturb("poke", || format!("poke {point}")) {
                    fired.push(point);
                }
                yield_now().await;
            }
            if let Some(bug) = bug {
                assert!(fired != bug, "poked exactly at {fired:?}");
            }
        });
    }
}

fn config(budget: u32) -> Config {
    Config::default().with_perturbations(Perturbations::DEFAULT.with_budget(budget))
}

/// What every perturbation class must do, checked over `seeds`: fire in some runs and not in
/// others, never past the budget, name itself in the trace when it fires, and replay exactly.
/// Returns the first violation.
fn perturbation_contract(
    strategy: impl Fn() -> Box<dyn Strategy>,
    seeds: u64,
) -> Result<(), String> {
    let (mut fired_runs, mut quiet_runs) = (0, 0);
    for seed in 0..seeds {
        let mut sim = Simulation::new(config(2));
        sim.set_strategy(strategy());
        let fired = Rc::new(Cell::new(0));
        let count = fired.clone();
        let setup = move || {
            let count = count.clone();
            spawn("poker", async move {
                for point in 0..20 {
                    if perturb("poke", || format!("poke {point}")) {
                        count.set(count.get() + 1);
                    }
                    yield_now().await;
                }
                assert_eq!(perturbations_fired(), count.get());
            });
        };
        let outcome = sim.run(seed, &setup);
        if outcome != Outcome::Completed {
            return Err(format!("seed {seed}: {outcome}"));
        }
        if fired.get() > 2 {
            return Err(format!("seed {seed}: {} perturbations past a budget of 2", fired.get()));
        }
        let named = sim.trace().render().matches("perturbation poke: poke ").count();
        if named != fired.get() as usize {
            return Err(format!("seed {seed}: {} fired, {named} named in the trace", fired.get()));
        }
        if fired.get() > 0 {
            fired_runs += 1;
        } else {
            quiet_runs += 1;
        }
        let schedule = sim.schedule("contract", &[]);
        let mut again = Simulation::new(config(2)).with_strategy(Replay::new(&schedule));
        fired.set(0);
        again.run(seed, &setup);
        if again.trace().hash() != sim.trace().hash() {
            return Err(format!("seed {seed}: the replay differs"));
        }
    }
    if fired_runs == 0 || quiet_runs == 0 {
        return Err(format!("{fired_runs} runs perturbed and {quiet_runs} not, of {seeds}"));
    }
    Ok(())
}

/// A deliberately wrong strategy: every perturbation point says no.
struct NeverFires(Random);

impl Strategy for NeverFires {
    fn name(&self) -> &'static str {
        "never-fires"
    }
    fn begin(&mut self, seed: u64) {
        self.0.begin(seed);
    }
    fn next_task(&mut self, choice: &Choice<'_>) -> Result<usize, Divergence> {
        self.0.next_task(choice)
    }
    fn next_draw(&mut self, step: u64, bound: u64) -> Result<u64, Divergence> {
        self.0.next_draw(step, bound)
    }
    fn next_flag(&mut self, _step: u64, _odds: u64) -> Result<bool, Divergence> {
        Ok(false)
    }
}

#[test]
fn perturbations_meet_their_contract_and_one_that_never_fires_does_not() {
    perturbation_contract(|| Box::new(Random::new()), 200).expect("random");
    perturbation_contract(|| Box::new(sim_core::Portfolio::new()), 200).expect("portfolio");
    let wrong = perturbation_contract(|| Box::new(NeverFires(Random::new())), 200);
    assert!(wrong.is_err_and(|error| error.contains("0 runs perturbed")));
}

#[test]
fn a_budget_of_zero_or_a_class_turned_off_draws_nothing() {
    for perturbations in [
        Perturbations::NONE,
        Perturbations::DEFAULT.without("poke"),
        Perturbations::DEFAULT.with_budget(0),
    ] {
        for seed in 0..50 {
            let mut sim =
                Simulation::new(Config::default().with_perturbations(perturbations.clone()));
            assert_eq!(sim.run(seed, pokes(20, None)), Outcome::Completed);
            assert!(sim.trace().draws().is_empty(), "seed {seed}: {perturbations:?}");
        }
    }
}

#[test]
fn the_swarm_turns_a_class_off_in_some_seeds_and_on_in_others() {
    let swarm = Perturbations::DEFAULT.with_swarm(true);
    let on = (0..200).filter(|&seed| swarm.enabled(seed, "poke")).count();
    assert!((60..=140).contains(&on), "{on} of 200 seeds");
    for seed in 0..200 {
        let mut sim = Simulation::new(Config::default().with_perturbations(swarm.clone()));
        sim.run(seed, pokes(20, None));
        let drew = !sim.trace().draws().is_empty();
        assert_eq!(drew, swarm.enabled(seed, "poke"), "seed {seed}");
    }
    // Spans vary per seed, so perturbations land all along runs, not only at their start.
    let spans: std::collections::BTreeSet<u64> =
        (0..64).map(|seed| Perturbations::span(seed, "poke")).collect();
    assert_eq!(spans.into_iter().collect::<Vec<_>>(), vec![4, 16, 64, 256]);
}

/// Runs a bounded search to its end; the number of schedules and whether one failed.
fn search(points: u32, perturbation_bound: u32, bug: Option<&'static [u32]>) -> (u64, bool, bool) {
    let mut sim = Simulation::new(config(u32::MAX));
    let dfs = Dfs::new(0).with_perturbation_bound(perturbation_bound);
    let report = explore_with(&mut sim, dfs, pokes(points, bug));
    (report.schedules, report.complete, report.first_failure.is_some())
}

#[test]
fn bounded_search_tries_every_perturbation_within_its_bound() {
    // One task: the only choices are the points. Bound P runs sum_{i<=P} C(n, i) schedules.
    assert_eq!(search(6, 0, None), (1, true, false));
    assert_eq!(search(6, 1, None), (7, true, false));
    assert_eq!(search(6, 2, None), (1 + 6 + 15, true, false));
    // A failure that needs points 2 and 4 fired: found within bound 2, not within bound 1.
    let (_, _, found) = search(6, 2, Some(&[2, 4]));
    assert!(found);
    let (schedules, complete, found) = search(6, 1, Some(&[2, 4]));
    assert_eq!((schedules, complete, found), (7, true, false));
}

#[test]
fn shrinking_takes_out_the_perturbations_the_failure_does_not_need() {
    // The failure needs point 3 fired; find runs that fired it and something else too.
    let setup = || {
        spawn("poker", async {
            let mut needed = false;
            for point in 0..30 {
                if perturb("poke", || format!("poke {point}")) && point == 3 {
                    needed = true;
                }
                yield_now().await;
            }
            assert!(!needed, "point 3 poked");
        });
    };
    let mut checked = 0;
    for seed in 0..2000 {
        let mut sim = Simulation::new(config(3));
        let Outcome::Failed(failure) = sim.run(seed, setup) else { continue };
        assert_eq!(failure.kind, FailureKind::Panic);
        let schedule = sim.schedule("shrink", &[]);
        let fired = |s: &sim_core::Schedule| s.draws.iter().filter(|d| d.1 != 0).count();
        if fired(&schedule) < 2 {
            continue;
        }
        let shrunk = shrink(&config(3), &schedule, setup, 500).expect("fails");
        assert_eq!(fired(&shrunk.schedule), 1, "seed {seed}");
        let mut again = Simulation::new(config(3)).with_strategy(Replay::new(&shrunk.schedule));
        let outcome = again.run(seed, setup);
        assert!(outcome.failure().is_some_and(|f| f.message.contains("point 3 poked")));
        assert!(again.trace().render().contains("perturbation poke: poke 3"));
        checked += 1;
        if checked == 5 {
            break;
        }
    }
    assert_eq!(checked, 5, "runs with point 3 and another perturbation");
}
