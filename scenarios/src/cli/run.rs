//! `kdst run`: one seed of a scenario, its outcome, and its schedule saved if it failed.

use std::fmt::Write as _;

use sim_core::{Config, Outcome, Simulation, Verdict};

use super::args::RunArgs;
use super::output::{document, finish, report_doc, run_doc};
use super::sinks::{Sinks, check_save_dir, save};
use super::{Result, seed_strategy, target};
use crate::Registry;

pub(crate) fn run(registry: &Registry, args: &RunArgs) -> Result<bool> {
    let strategy = seed_strategy(args.strategy)?;
    let target = target(registry, &args.target, strategy)?;
    let mut sinks = Sinks::open(&args.output, None)?;
    check_save_dir(&args.save_dir)?;
    let mut sim = Simulation::new(strategy.config(Config::default()));
    sim.set_strategy(strategy.build());
    let outcome = target.run(&mut sim, args.seed);
    sinks.trace(&sim);
    let written = sinks.commit()?;
    let mut document = document("run", &target, strategy, Verdict::of(&outcome));
    document.run = Some(run_doc(&target, &sim));
    let mut text = String::new();
    if outcome == Outcome::Completed {
        let trace = sim.trace();
        let _ = writeln!(
            text,
            "{} {} seed {} ({}): completed in {} steps, t={}\nparams: {}",
            target.scenario().name(),
            target.variant().name,
            args.seed,
            strategy,
            trace.len(),
            trace.end_time(),
            target.params_for(args.seed)
        );
    } else {
        let schedule = target.schedule(&sim, strategy);
        let path = save(&args.save_dir, &target, args.seed, ".run", &schedule);
        let report = target.report(&sim, strategy, path.as_deref());
        text.push_str(&report);
        document.reports.push(report_doc(&target, &sim, strategy, path.as_deref(), None, report));
    }
    finish(args.output.format, &document, &text, &written)?;
    Ok(outcome == Outcome::Completed)
}
