//! `kdst shrink`: a saved failing schedule, shrunk to the fewest preemptions.

use crate::{Registry, schedule_strategy};
use sim_core::{Config, Replay, Simulation, Verdict, shrink as shrink_schedule};

use super::args::ShrinkArgs;
use super::output::{self, document, finish, report_doc, run_doc};
use super::sinks::{check_writable, read_schedule, shrink_budget, write_replacing};
use super::{Result, Usage};

pub(crate) fn shrink(registry: &Registry, args: &ShrinkArgs) -> Result<bool> {
    let schedule = read_schedule(&args.file)?;
    let target = registry.target_from_schedule(&schedule)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let name = args.file.file_name().and_then(|n| n.to_str()).unwrap_or("schedule");
        let stem = name.strip_suffix(".schedule").unwrap_or(name);
        args.file.with_file_name(format!("{stem}.shrunk.schedule"))
    });
    check_writable(&out)?;
    let budget = shrink_budget(args.budget, &schedule, 5_000, 20_000_000);
    let strategy = schedule_strategy(&schedule)?;
    let config = strategy.config(Config::default());
    let shrunk = match shrink_schedule(&config, &schedule, || target.setup(), budget) {
        Ok(shrunk) => shrunk,
        Err(error) => return Err(Usage(format!("{}: {error}", args.file.display()))),
    };
    write_replacing(&out, &shrunk.schedule.encode())?;
    let mut document = document("shrink", &target, strategy, Verdict::Failure);
    let mut sim = Simulation::new(config);
    sim.set_strategy(Box::new(Replay::new(&shrunk.schedule)));
    target.run(&mut sim, shrunk.schedule.seed);
    let report = target.report(&sim, strategy, Some(&out));
    document.run = Some(run_doc(&target, &sim));
    document.reports.push(report_doc(
        &target,
        &sim,
        strategy,
        Some(&out),
        Some(output::preemptions(&shrunk)),
        report,
    ));
    let replay = target.replay_file_command(&out).unwrap_or_default();
    let text = format!(
        "{shrunk}\n{}\nshrunk schedule written to {}\nreplay: {replay}\n",
        shrunk.failure,
        out.display(),
    );
    finish(args.format, &document, &text, &[])?;
    Ok(false)
}
