//! `kdst replay`: a schedule file, or a scenario's seed, run again exactly, with its trace.

use std::fmt::Write as _;
use std::path::Path;

use crate::{Registry, schedule_strategy};
use sim_core::strategy::StrategySpec;
use sim_core::{Config, Outcome, Replay, Simulation, Verdict};

use super::args::{ReplayArgs, TargetArgs};
use super::output::{document, finish, report_doc, run_doc};
use super::sinks::{Sinks, read_schedule};
use super::{Result, Usage, seed_strategy, target};

fn looks_like_a_file(what: &str) -> bool {
    Path::new(what).is_file()
        || what.contains('/')
        || what.contains('\\')
        || what.ends_with(".schedule")
}

pub(crate) fn replay(registry: &Registry, args: &ReplayArgs) -> Result<bool> {
    let from_file = looks_like_a_file(&args.what);
    let (target, strategy, schedule) = if from_file {
        let given = [
            ("--seed", args.seed.is_some()),
            ("--variant", args.variant.is_some()),
            ("--param", !args.params.is_empty()),
            ("--strategy", args.strategy.is_some()),
            ("--no-swarm", args.no_swarm),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
            return Err(Usage(format!(
                "a schedule file names its own scenario, variant, parameters, seed and strategy: drop {flag}"
            )));
        }
        let schedule = read_schedule(Path::new(&args.what))?;
        let target = registry.target_from_schedule(&schedule)?;
        let strategy = schedule_strategy(&schedule)?;
        (target, strategy, Some(schedule))
    } else {
        let Some(_) = args.seed else {
            // An unknown scenario is the better message when the name is wrong.
            registry.target(&args.what, args.variant.as_deref())?;
            return Err(Usage(format!(
                "{} replay {}: which seed? add --seed N (or give a schedule file)",
                registry.command_line(),
                args.what
            )));
        };
        let strategy = seed_strategy(args.strategy.unwrap_or(StrategySpec::PORTFOLIO))?;
        let target_args = TargetArgs {
            scenario: args.what.clone(),
            variant: args.variant.clone(),
            params: args.params.clone(),
            no_swarm: args.no_swarm,
        };
        (target(registry, &target_args, strategy)?, strategy, None)
    };
    let mut sinks = Sinks::open(&args.output, None)?;
    let mut sim = Simulation::new(strategy.config(Config::default()));
    let outcome = match &schedule {
        Some(schedule) => {
            sim.set_strategy(Box::new(Replay::new(schedule)));
            target.run(&mut sim, schedule.seed)
        }
        None => {
            sim.set_strategy(strategy.build());
            target.run(&mut sim, args.seed.expect("checked"))
        }
    };
    sinks.trace(&sim);
    let written = sinks.commit()?;
    let mut document = document("replay", &target, strategy, Verdict::of(&outcome));
    document.run = Some(run_doc(&target, &sim));
    let mut text = String::new();
    if !args.quiet {
        text.push_str(&sim.trace().render());
        text.push('\n');
    }
    if let Some(schedule) = &schedule {
        let found =
            outcome.failure().map(|f| format!("{} at step {}: {}", f.kind, f.step, f.message));
        match (&schedule.expect, &found) {
            (Some(expected), Some(found)) if expected == found => {
                let _ = writeln!(text, "reproduced: {found}");
            }
            (Some(expected), _) => {
                let _ = writeln!(
                    text,
                    "NOT reproduced: the schedule expected `{expected}` but the replay ended: {}",
                    found.as_deref().unwrap_or("completed")
                );
            }
            (None, _) => {}
        }
    }
    if outcome == Outcome::Completed {
        let _ =
            writeln!(text, "completed: {} steps, t={}", sim.trace().len(), sim.trace().end_time());
    } else {
        let report = target.report(
            &sim,
            strategy,
            if from_file { Some(Path::new(&args.what)) } else { None },
        );
        text.push_str(&report);
        document.reports.push(report_doc(
            &target,
            &sim,
            strategy,
            from_file.then(|| Path::new(&args.what)),
            None,
            report,
        ));
    }
    finish(args.output.format, &document, &text, &written)?;
    Ok(outcome == Outcome::Completed)
}
