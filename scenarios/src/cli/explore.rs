//! `kdst explore`: one path for every strategy. A seed-driven strategy searches seeds; a
//! systematic one (`dfs…`) every schedule of seed 0 within its bound. Both share the checks made
//! before any work (every output path, every flag the strategy cannot honour), the summary, the
//! verdict, and the step that shrinks, saves and reports each failure found.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use crate::{Registry, Target};
use sim_core::strategy::StrategySpec;
use sim_core::{
    Config, ExploreSummary, Explorer, FailureKind, FoundFailure, Replay, Schedule, Simulation,
    shrink,
};

use super::args::{ExploreArgs, Format};
use super::output::{self, DfsDoc, document, finish, report_doc};
use super::sinks::{Sinks, check_save_dir, save, shrink_budget};
use super::{Result, Usage, target};

/// The first failing schedule of each distinct failure a systematic search found: a seed does
/// not name a run there, so the search keeps the schedule (one per distinct failure, so memory
/// stays bounded by the failures, not the runs).
type Kept = Mutex<BTreeMap<(FailureKind, Option<String>, String), Schedule>>;

pub(crate) fn explore(registry: &Registry, args: &ExploreArgs) -> Result<bool> {
    let strategy = args.strategy;
    check_flags(args, strategy)?;
    let target = target(registry, &args.target, strategy)?;
    let mut sinks = Sinks::open(&args.output, args.json_out.as_deref())?;
    check_save_dir(&args.save_dir)?;
    let explorer = explorer(args, strategy);
    let progress = args.output.format == Format::Text && std::io::stderr().is_terminal();
    let explorer = if progress {
        explorer.progress(Duration::from_millis(250), |p| {
            eprint!(
                "\r\x1b[2Kexploring: {} schedules, {:.0} schedules/s, {} failing",
                p.schedules,
                p.schedules_per_second(),
                p.failures
            );
        })
    } else {
        explorer
    };
    let kept: Kept = Mutex::new(BTreeMap::new());
    let summary = explorer.run(|sim, seed| {
        let outcome = target.run(sim, seed);
        if let (true, Some(failure)) = (strategy.is_systematic(), outcome.failure()) {
            let mut kept = kept.lock().expect("kdst internal: a run panicked");
            kept.entry(failure.place()).or_insert_with(|| target.schedule(sim, strategy));
        }
        outcome
    });
    if progress {
        eprint!("\r\x1b[2K");
    }
    let kept = kept.into_inner().expect("kdst internal: a run panicked");
    let verdict = summary.verdict();
    let mut document = document("explore", &target, strategy, verdict);
    let mut text = format!(
        "kdst explore {} --variant {} (strategy {strategy}{})\n",
        target.scenario().name(),
        target.variant().name,
        if target.swarm() { ", swarm on" } else { "" }
    );
    if strategy.is_systematic() {
        let _ = writeln!(text, "params: {}", target.params());
    }
    let _ = writeln!(text, "{summary}");
    let all_found: Vec<&FoundFailure> = summary.failures.iter().chain(&summary.limits).collect();
    for (index, found) in all_found.iter().enumerate() {
        // The spec that ran this seed: with PCT's `k` as the search learned it (`portfolio@K`).
        let strategy = summary.strategy_for(strategy, found.seed);
        let sim = rerun(&target, strategy, found, &kept, &mut text);
        let (saved, shrunk_line, preemptions) =
            shrink_and_save(args, strategy, &target, &sim, found.seed);
        let report = target.report(&sim, strategy, saved.as_deref());
        let what = if index < summary.failures.len() { "failure" } else { "limit" };
        let like = if strategy.is_systematic() { "schedules" } else { "seeds" };
        let _ = write!(
            text,
            "=== {what} {} of {} (seed {}, {} failing {like} like it) ===\n{report}{shrunk_line}\n",
            index + 1,
            all_found.len(),
            found.seed,
            found.count
        );
        if index == 0 {
            sinks.trace(&sim);
        }
        document.reports.push(report_doc(
            &target,
            &sim,
            strategy,
            saved.as_deref(),
            preemptions,
            report,
        ));
    }
    document.dfs = dfs_doc(strategy, &summary);
    document.search = Some(summary);
    sinks.json(&document);
    let written = sinks.commit()?;
    finish(args.output.format, &document, &text, &written)?;
    Ok(verdict.passed())
}

/// Every flag the strategy cannot honour is an error, before any work.
fn check_flags(args: &ExploreArgs, strategy: StrategySpec) -> Result<()> {
    let refuse = |flag: &str, why: &str| {
        Err(Usage(format!("--strategy {strategy}: {why}: {flag} does not apply")))
    };
    if strategy.is_systematic() {
        if args.seeds.is_some() {
            return refuse("--seeds", "a bounded exhaustive search runs every schedule of seed 0");
        }
        if args.shard.is_some() {
            return refuse("--shard", "a bounded exhaustive search runs every schedule of seed 0");
        }
        if args.jobs.is_some() {
            return refuse("--jobs", "a bounded exhaustive search runs on one thread");
        }
    } else if args.max_schedules.is_some() {
        return refuse(
            "--max-schedules",
            "a search over seeds runs one schedule per seed (use --seeds or --time)",
        );
    }
    Ok(())
}

/// The search the flags ask for.
fn explorer(args: &ExploreArgs, strategy: StrategySpec) -> Explorer {
    let mut explorer = Explorer::new().strategy(strategy).stop_at_first(!args.all_failures);
    explorer = match (args.time, &args.seeds) {
        (Some(budget), _) => explorer.time_budget(budget),
        (None, Some(seeds)) => explorer.seeds(seeds.clone()),
        (None, None) => explorer.seeds(0..Explorer::DEFAULT_SEEDS),
    };
    if let Some(jobs) = args.jobs {
        explorer = explorer.jobs(usize::try_from(jobs).unwrap_or(1));
    }
    if let Some((index, count)) = args.shard {
        explorer = explorer.shard(index, count);
    }
    if let Some(max) = args.max_schedules {
        explorer = explorer.max_schedules(max);
    }
    explorer
}

/// The failing run of `found` again, on a simulation of its own: its seed under the strategy,
/// or, for a systematic search, the schedule the search kept. A seed that no longer fails the
/// same way is said in `text`.
fn rerun(
    target: &Target,
    strategy: StrategySpec,
    found: &FoundFailure,
    kept: &BTreeMap<(FailureKind, Option<String>, String), Schedule>,
    text: &mut String,
) -> Simulation {
    let mut sim = Simulation::new(strategy.config(Config::default()));
    let failure = &found.failure;
    match kept.get(&failure.place()) {
        Some(schedule) => sim.set_strategy(Box::new(Replay::new(schedule))),
        None => sim.set_strategy(strategy.build()),
    }
    let outcome = target.run(&mut sim, found.seed);
    if outcome.failure().map(|f| (&f.kind, &f.message)) != Some((&failure.kind, &failure.message)) {
        let _ = writeln!(
            text,
            "warning: seed {} did not fail the same way when run again: {outcome}",
            found.seed
        );
    }
    sim
}

/// Shrinks the failing run that just ended on `sim` (seed `seed`) and saves the shrunk schedule
/// (the unshrunk one if it cannot be shrunk) under `--save-dir`: where it was saved, the line
/// that says how shrinking went, and the preemptions before and after.
fn shrink_and_save(
    args: &ExploreArgs,
    strategy: StrategySpec,
    target: &Target,
    sim: &Simulation,
    seed: u64,
) -> (Option<PathBuf>, String, Option<(usize, usize)>) {
    let schedule = target.schedule(sim, strategy);
    let budget = shrink_budget(args.shrink_budget, &schedule, 2_000, 5_000_000);
    let config = strategy.config(Config::default());
    match shrink(&config, &schedule, || target.setup(), budget) {
        Ok(shrunk) => (
            save(&args.save_dir, target, seed, "", &shrunk.schedule),
            shrunk.to_string(),
            Some(output::preemptions(&shrunk)),
        ),
        Err(error) => (
            save(&args.save_dir, target, seed, "", &schedule),
            format!("not shrunk: {error}"),
            None,
        ),
    }
}

/// The `dfs` part of the JSON document, for a systematic search.
fn dfs_doc(strategy: StrategySpec, summary: &ExploreSummary) -> Option<DfsDoc> {
    let (StrategySpec::Dfs { kind, bound, reduction, .. }, Some(systematic)) =
        (strategy, &summary.systematic)
    else {
        return None;
    };
    Some(DfsDoc {
        bound,
        counts: kind.unit().to_string(),
        schedules: summary.schedules,
        complete: systematic.complete,
        limit_reached: systematic.limit_reached,
        reduced: reduction,
        redundant: systematic.redundant,
        summary: systematic.summary.clone(),
    })
}
