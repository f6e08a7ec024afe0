//! `kdst`: find, replay, shrink and show failures of the scenarios.
//!
//! ```text
//! kdst list
//! kdst run SCENARIO [--variant V] [--seed N] [--strategy S] [--param k=v ...]
//! kdst explore SCENARIO [--variant V] [--seeds A..B | --time 30s] [--strategy S] [--jobs N] [--shard i/n]
//! kdst replay (FILE | SCENARIO --seed N ...)
//! kdst shrink FILE
//! kdst merge FILE...
//! ```
//!
//! Exit codes: 0 no failure, 1 a failure (or a limit) in hand, 2 a usage or input error (one
//! line on stderr, nothing else).

mod output;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use output::{DfsDoc, Document, ReportDoc, RunDoc, SCHEMA};
use scenarios::{Expect, Params, Target, TargetError, config_for};
use sim_core::strategy::{BoundKind, Dfs, by_name, explore_with};
use sim_core::{
    ExploreSummary, Explorer, FoundFailure, Outcome, Replay, Schedule, Simulation, shrink,
};

/// A usage or input error: one line, exit code 2.
#[derive(Debug)]
struct Usage(String);

impl From<TargetError> for Usage {
    fn from(error: TargetError) -> Self {
        Usage(error.to_string())
    }
}

type Result<T> = std::result::Result<T, Usage>;

#[derive(Parser)]
#[command(
    name = "kdst",
    version,
    about = "Deterministic simulation testing for Kubernetes controllers: find, replay, shrink \
             and show failures of real controller bugs",
    after_help = "Exit codes: 0 no failure, 1 a failure (or a limit) found, 2 a usage or input \
                  error.\nStart with: kdst explore cert-manager-foreground-deletion"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the scenarios: variants, parameters with defaults and ranges, upstream links
    List(ListArgs),
    /// Run one seed of a scenario and print the outcome
    Run(RunArgs),
    /// Search seeds (or every schedule within a bound) for failures; report, shrink and save them
    Explore(ExploreArgs),
    /// Replay a schedule file, or a scenario's seed, exactly, and print the trace
    Replay(ReplayArgs),
    /// Shrink a saved failing schedule to the fewest preemptions
    Shrink(ShrinkArgs),
    /// Merge the JSON results of explore shards (--format json) into one summary
    Merge(MergeArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Text for people
    Text,
    /// One JSON document (schema in the README)
    Json,
}

#[derive(Args)]
struct ListArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Args)]
struct TargetArgs {
    /// The scenario (see `kdst list`)
    scenario: String,
    /// The variant (default: the scenario's first, buggy, variant)
    #[arg(long)]
    variant: Option<String>,
    /// Set a parameter, NAME=VALUE (repeatable); a set parameter is never drawn by the swarm
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Keep unset parameters at their defaults under the portfolio (no swarm)
    #[arg(long)]
    no_swarm: bool,
}

#[derive(Args)]
struct OutputArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write the run's text trace to FILE
    #[arg(long, value_name = "FILE")]
    trace_out: Option<PathBuf>,
    /// Write the run as Chrome trace event JSON to FILE (opens in ui.perfetto.dev)
    #[arg(long, value_name = "FILE")]
    perfetto: Option<PathBuf>,
    /// Write the run as a Mermaid sequence diagram to FILE
    #[arg(long, value_name = "FILE")]
    mermaid: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The seed
    #[arg(long, default_value = "0", value_parser = parse_seed)]
    seed: u64,
    /// random, pct, pct:D or portfolio
    #[arg(long, default_value = "portfolio")]
    strategy: String,
    /// Where the schedule of a failing run is saved
    #[arg(long, value_name = "DIR", default_value = "target/kdst")]
    save_dir: PathBuf,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct ExploreArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Seeds to search: A..B, or N for 0..N (default 0..1000 unless --time is given)
    #[arg(long, value_parser = parse_seeds, conflicts_with = "time")]
    seeds: Option<std::ops::Range<u64>>,
    /// Search for this long instead (e.g. 30s, 5m, 500ms)
    #[arg(long, value_parser = parse_duration)]
    time: Option<Duration>,
    /// portfolio (random, PCT and the swarm), random, pct, pct:D, dfs:B (every schedule within
    /// B preemptions, up to the order of independent steps), dfs-full:B (every schedule within B
    /// preemptions, without reduction) or dfs-delays:B (within B delays)
    #[arg(long, default_value = "portfolio")]
    strategy: String,
    /// Worker threads (default: every core)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    jobs: Option<u64>,
    /// Search only this shard of the seeds, i/n: seeds with seed % n == i
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(u64, u64)>,
    /// Collect every distinct failure instead of stopping at the first
    #[arg(long)]
    all_failures: bool,
    /// Where schedules are saved
    #[arg(long, value_name = "DIR", default_value = "target/kdst")]
    save_dir: PathBuf,
    /// Replays the shrinker may spend per failure (default: up to 2,000, fewer for long runs, so
    /// that shrinking replays at most about 5 million steps)
    #[arg(long)]
    shrink_budget: Option<u64>,
    /// For dfs: stop after this many schedules (reported as a limit)
    #[arg(long, default_value_t = 1_000_000)]
    max_schedules: u64,
    /// Write the JSON document to FILE as well (for CI shards and `kdst merge`)
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct ReplayArgs {
    /// A schedule file, or a scenario name (then --seed)
    what: String,
    /// The variant (with a scenario)
    #[arg(long)]
    variant: Option<String>,
    /// The seed (with a scenario)
    #[arg(long, value_parser = parse_seed)]
    seed: Option<u64>,
    /// The strategy the seed ran with (with a scenario)
    #[arg(long, default_value = "portfolio")]
    strategy: String,
    /// Set a parameter, NAME=VALUE (with a scenario; repeatable)
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Keep unset parameters at their defaults under the portfolio (with a scenario)
    #[arg(long)]
    no_swarm: bool,
    /// Print only the outcome, not the trace
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct ShrinkArgs {
    /// The failing schedule file
    file: PathBuf,
    /// Where to write the shrunk schedule (default: FILE with .shrunk.schedule)
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replays the shrinker may spend (default: up to 5,000, fewer for long runs, so that
    /// shrinking replays at most about 20 million steps)
    #[arg(long)]
    budget: Option<u64>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Args)]
struct MergeArgs {
    /// JSON results of `kdst explore --format json` (or --json-out), one per shard
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            use clap::error::ErrorKind;
            if matches!(error.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = error.print();
                return ExitCode::SUCCESS;
            }
            if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = error.print();
                return ExitCode::from(2);
            }
            let text = error.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            let tip = text.lines().find_map(|line| line.trim().strip_prefix("tip: "));
            match tip {
                Some(tip) => eprintln!("kdst: {first} ({tip})"),
                None => eprintln!("kdst: {first} (see kdst --help)"),
            }
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::List(args) => list(&args),
        Command::Run(args) => run(&args),
        Command::Explore(args) => explore(&args),
        Command::Replay(args) => replay(&args),
        Command::Shrink(args) => shrink_file(&args),
        Command::Merge(args) => merge(&args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(Usage(message)) => {
            eprintln!("kdst: {message}");
            ExitCode::from(2)
        }
    }
}

// ---- argument parsers: each error is the one line clap shows ----

fn parse_seed(text: &str) -> std::result::Result<u64, String> {
    let clean = text.trim().replace('_', "");
    if clean.is_empty() || !clean.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "malformed seed {text:?}: a seed is a whole number 0..=18446744073709551615"
        ));
    }
    clean.parse().map_err(|_| {
        format!("seed {text} is out of range: the largest seed is 18446744073709551615")
    })
}

fn parse_seeds(text: &str) -> std::result::Result<std::ops::Range<u64>, String> {
    let range = match text.split_once("..") {
        Some((start, end)) => parse_seed(start)?..parse_seed(end)?,
        None => 0..parse_seed(text)?,
    };
    if range.is_empty() {
        return Err(format!("the seed range {text} is empty (A..B needs A < B)"));
    }
    Ok(range)
}

fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 =
        number.parse().map_err(|_| format!("malformed duration {text:?} (e.g. 30s, 5m, 500ms)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "malformed duration {text:?}: unknown unit {unit:?} (ms, s, m or h)"
            ));
        }
    };
    if !(seconds > 0.0 && seconds < 1e9) {
        return Err(format!("the duration {text:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_shard(text: &str) -> std::result::Result<(u64, u64), String> {
    let (index, count) = text
        .split_once('/')
        .ok_or_else(|| format!("malformed shard {text:?}: expected i/n, e.g. 0/4"))?;
    let index: u64 = index
        .trim()
        .parse()
        .map_err(|_| format!("malformed shard {text:?}: {index:?} is not a number"))?;
    let count: u64 = count
        .trim()
        .parse()
        .map_err(|_| format!("malformed shard {text:?}: {count:?} is not a number"))?;
    if count == 0 || index >= count {
        return Err(format!("shard {index}/{count} does not exist (need 0 ≤ i < n)"));
    }
    Ok((index, count))
}

/// A strategy the seed-based commands understand, checked before anything runs.
fn check_strategy(name: &str) -> Result<()> {
    by_name(name).map(|_| ()).map_err(|message| {
        if name.starts_with("dfs") {
            Usage(format!("{name} is a search over schedules, not a strategy for one seed: use kdst explore --strategy {name}"))
        } else {
            Usage(format!("--strategy: {message}"))
        }
    })
}

/// The target of the command line.
fn target(args: &TargetArgs, strategy: &str) -> Result<Target> {
    let mut target = Target::new(&args.scenario, args.variant.as_deref())?;
    target.set_params(&args.params)?;
    Ok(target.with_swarm(strategy == "portfolio" && !args.no_swarm))
}

/// Output files, opened before any work so that a bad path loses nothing.
struct Sinks {
    trace: Option<(PathBuf, File)>,
    perfetto: Option<(PathBuf, File)>,
    mermaid: Option<(PathBuf, File)>,
}

impl Sinks {
    fn open(args: &OutputArgs) -> Result<Sinks> {
        let open = |path: &Option<PathBuf>| -> Result<Option<(PathBuf, File)>> {
            path.as_ref()
                .map(|path| {
                    File::create(path)
                        .map(|file| (path.clone(), file))
                        .map_err(|error| Usage(format!("cannot write {}: {error}", path.display())))
                })
                .transpose()
        };
        Ok(Sinks {
            trace: open(&args.trace_out)?,
            perfetto: open(&args.perfetto)?,
            mermaid: open(&args.mermaid)?,
        })
    }

    /// Writes the trace of `sim`'s last run; returns lines saying where.
    fn write(&mut self, sim: &Simulation) -> Result<Vec<String>> {
        let trace = sim.trace();
        let mut written = Vec::new();
        let mut put = |sink: &mut Option<(PathBuf, File)>,
                       what: &str,
                       text: &dyn Fn() -> String|
         -> Result<()> {
            if let Some((path, file)) = sink {
                file.write_all(text().as_bytes())
                    .map_err(|error| Usage(format!("cannot write {}: {error}", path.display())))?;
                written.push(format!("{what} written to {}", path.display()));
            }
            Ok(())
        };
        put(&mut self.trace, "trace", &|| trace.render())?;
        put(&mut self.perfetto, "Perfetto trace (open in https://ui.perfetto.dev)", &|| {
            sim_core::export::perfetto(trace)
        })?;
        put(&mut self.mermaid, "Mermaid diagram", &|| {
            sim_core::export::mermaid(trace, MERMAID_MESSAGES)
        })?;
        Ok(written)
    }
}

/// The shrinker's replay budget: `given`, else at most `max` replays and about `total_steps`
/// steps in all (at least 20 replays).
fn shrink_budget(given: Option<u64>, schedule: &Schedule, max: u64, total_steps: u64) -> u64 {
    given.unwrap_or_else(|| (total_steps / (schedule.steps.len() as u64).max(1)).clamp(20, max))
}

/// Messages a Mermaid diagram shows before it says how many it left out.
const MERMAID_MESSAGES: usize = 120;

fn params_map(params: &Params) -> BTreeMap<String, u64> {
    params.pairs().into_iter().map(|(name, value)| (name.to_string(), value)).collect()
}

fn document(command: &str, target: &Target, strategy: &str, verdict: &str) -> Document {
    Document {
        kdst: SCHEMA,
        command: command.to_string(),
        scenario: target.scenario().name().to_string(),
        variant: target.variant().name.to_string(),
        strategy: strategy.to_string(),
        swarm: target.swarm(),
        params: params_map(target.params()),
        verdict: verdict.to_string(),
        run: None,
        search: None,
        dfs: None,
        reports: Vec::new(),
    }
}

fn run_doc(target: &Target, sim: &Simulation) -> RunDoc {
    let trace = sim.trace();
    RunDoc {
        seed: trace.seed(),
        params: params_map(&target.params_for(trace.seed())),
        steps: trace.len() as u64,
        preemptions: trace.preemptions() as u64,
        virtual_time_s: trace.end_time().elapsed_since_start().as_secs_f64(),
        trace_hash: format!("{:016x}", trace.hash()),
        failure: trace.outcome().and_then(Outcome::failure).cloned(),
    }
}

fn print_json(document: &Document) {
    println!("{}", serde_json::to_string_pretty(document).expect("documents serialise"));
}

fn write_json(path: &Path, document: &Document) -> Result<()> {
    let text = serde_json::to_string_pretty(document).expect("documents serialise");
    std::fs::write(path, text + "\n")
        .map_err(|error| Usage(format!("cannot write {}: {error}", path.display())))
}

// ---- list ----

fn list(args: &ListArgs) -> Result<bool> {
    let scenarios = scenarios::all();
    if args.format == Format::Json {
        let list: Vec<serde_json::Value> = scenarios
            .iter()
            .map(|scenario| {
                serde_json::json!({
                    "name": scenario.name(),
                    "summary": scenario.summary(),
                    "upstream": scenario.upstream(),
                    "variants": scenario.variants().iter().map(|v| serde_json::json!({
                        "name": v.name,
                        "summary": v.summary,
                        "expect": match &v.expect {
                            Expect::Holds => "holds".to_string(),
                            Expect::Fails(kind, text) => format!("fails: {kind}: {text}"),
                        },
                    })).collect::<Vec<_>>(),
                    "params": scenario.params().iter().map(|p| serde_json::json!({
                        "name": p.name, "summary": p.summary, "unit": p.unit,
                        "default": p.default, "min": p.min, "max": p.max, "swarm": p.swarm,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list).expect("serialises"));
        return Ok(true);
    }
    let mut out = String::new();
    for scenario in &scenarios {
        let _ = writeln!(out, "{}\n  {}", scenario.name(), scenario.summary());
        for link in scenario.upstream() {
            let _ = writeln!(out, "  upstream: {link}");
        }
        out.push_str("  variants:\n");
        for variant in scenario.variants() {
            let expect = match &variant.expect {
                Expect::Holds => "holds".to_string(),
                Expect::Fails(kind, text) => format!("fails ({kind}: {text})"),
            };
            let _ = writeln!(out, "    {:<18} {} [{expect}]", variant.name, variant.summary);
        }
        out.push_str("  params:\n");
        for param in scenario.params() {
            let swarm = if param.swarm.is_empty() {
                String::new()
            } else {
                let values: Vec<String> = param.swarm.iter().map(u64::to_string).collect();
                format!(", swarm {{{}}}", values.join(", "))
            };
            let _ = writeln!(
                out,
                "    {:<26} {} (default {} {}, {}..={}{swarm})",
                param.name, param.summary, param.default, param.unit, param.min, param.max
            );
        }
        out.push('\n');
    }
    print!("{out}");
    Ok(true)
}

// ---- run ----

fn run(args: &RunArgs) -> Result<bool> {
    check_strategy(&args.strategy)?;
    let target = target(&args.target, &args.strategy)?;
    let mut sinks = Sinks::open(&args.output)?;
    let mut sim = Simulation::new(config_for(&args.strategy));
    sim.set_strategy(by_name(&args.strategy).expect("checked"));
    let outcome = target.run(&mut sim, args.seed);
    let written = sinks.write(&sim)?;
    let mut document = document("run", &target, &args.strategy, output::verdict(&outcome));
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
            args.strategy,
            trace.len(),
            trace.end_time(),
            target.params_for(args.seed)
        );
    } else {
        let schedule = target.schedule(&sim, &args.strategy);
        let path = save(&args.save_dir, &target, args.seed, &schedule);
        let report = target.report(&sim, &args.strategy, path.as_deref());
        text.push_str(&report);
        document.reports.push(report_doc(
            &target,
            &sim,
            &args.strategy,
            path.as_deref(),
            None,
            report,
        ));
    }
    finish(args.output.format, &document, &text, &written);
    Ok(outcome == Outcome::Completed)
}

fn finish(format: Format, document: &Document, text: &str, written: &[String]) {
    match format {
        Format::Json => print_json(document),
        Format::Text => {
            print!("{text}");
            for line in written {
                println!("{line}");
            }
        }
    }
}

/// Saves a schedule as `DIR/SCENARIO.VARIANT.seed-N.schedule`; `None` (with a warning on
/// stderr) if it cannot be written.
fn save(dir: &Path, target: &Target, seed: u64, schedule: &Schedule) -> Option<PathBuf> {
    let path = dir.join(format!("{}.seed-{seed}.schedule", target.file_name()));
    let result =
        std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, schedule.encode()));
    match result {
        Ok(()) => Some(path),
        Err(error) => {
            eprintln!("kdst: warning: could not save the schedule to {}: {error}", path.display());
            None
        }
    }
}

fn report_doc(
    target: &Target,
    sim: &Simulation,
    strategy: &str,
    file: Option<&Path>,
    preemptions: Option<(usize, usize)>,
    report: String,
) -> ReportDoc {
    let trace = sim.trace();
    let seed = trace.seed();
    let mut replay = Vec::new();
    if let Some(file) = file {
        replay.push(format!("kdst replay {}", file.display()));
    }
    if by_name(strategy).is_ok() {
        replay.push(target.replay_command(seed, strategy));
        replay.push(target.cargo_test_command(seed, strategy));
    }
    ReportDoc {
        seed,
        ran_with: trace.strategy().to_string(),
        params: params_map(&target.params_for(seed)),
        failure: trace.outcome().and_then(Outcome::failure).cloned().expect("a failed run"),
        schedule_file: file.map(|file| file.display().to_string()),
        preemptions,
        replay,
        report,
    }
}

// ---- explore ----

fn explore(args: &ExploreArgs) -> Result<bool> {
    if let Some(dfs) = parse_dfs(&args.strategy)? {
        return explore_dfs(args, dfs);
    }
    check_strategy(&args.strategy)?;
    let target = target(&args.target, &args.strategy)?;
    let mut sinks = Sinks::open(&args.output)?;
    if let Some(path) = &args.json_out {
        File::create(path)
            .map_err(|error| Usage(format!("cannot write {}: {error}", path.display())))?;
    }
    let mut explorer = Explorer::new()
        .strategy(&args.strategy)
        .map_err(|message| Usage(format!("--strategy: {message}")))?
        .stop_at_first(!args.all_failures);
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
    let progress = args.output.format == Format::Text && std::io::stderr().is_terminal();
    if progress {
        explorer = explorer.progress(Duration::from_millis(250), |p| {
            eprint!(
                "\r\x1b[2Kexploring: {} schedules, {:.0} schedules/s, {} failing",
                p.schedules,
                p.schedules_per_second(),
                p.failures
            );
        });
    }
    let summary = explorer.run(|sim, seed| target.run(sim, seed));
    if progress {
        eprint!("\r\x1b[2K");
    }
    let verdict = search_verdict(&summary);
    let mut document = document("explore", &target, &args.strategy, verdict);
    let mut text = format!(
        "kdst explore {} --variant {} (strategy {}{})\n{summary}",
        target.scenario().name(),
        target.variant().name,
        args.strategy,
        if target.swarm() { ", swarm on" } else { "" }
    );
    let mut written = Vec::new();
    let all_found: Vec<&FoundFailure> = summary.failures.iter().chain(&summary.limits).collect();
    for (index, found) in all_found.iter().enumerate() {
        let mut sim = Simulation::new(config_for(&args.strategy));
        sim.set_strategy(by_name(&args.strategy).expect("checked"));
        let outcome = target.run(&mut sim, found.seed);
        if outcome.failure().map(|f| (&f.kind, &f.message))
            != Some((&found.failure.kind, &found.failure.message))
        {
            let _ = writeln!(
                text,
                "\nwarning: seed {} did not fail the same way when run again: {outcome}",
                found.seed
            );
        }
        let (saved, shrunk_line, preemptions) = shrink_and_save(args, &target, &sim, found.seed);
        let report = target.report(&sim, &args.strategy, saved.as_deref());
        let _ = write!(
            text,
            "\n=== {} {} of {} (seed {}, {} failing seeds like it) ===\n{report}{shrunk_line}\n",
            if outcome.is_failure() { "failure" } else { "limit" },
            index + 1,
            all_found.len(),
            found.seed,
            found.count
        );
        if index == 0 {
            written = sinks.write(&sim)?;
        }
        document.reports.push(report_doc(
            &target,
            &sim,
            &args.strategy,
            saved.as_deref(),
            preemptions,
            report,
        ));
    }
    document.search = Some(summary);
    if let Some(path) = &args.json_out {
        write_json(path, &document)?;
        written.push(format!("results written to {}", path.display()));
    }
    finish(args.output.format, &document, &text, &written);
    Ok(verdict == "completed")
}

/// Shrinks the failing run that just ended on `sim` (seed `seed`) and saves the shrunk schedule
/// (the unshrunk one if it cannot be shrunk) under `--save-dir`: where it was saved, the line
/// that says how shrinking went, and the preemptions before and after.
fn shrink_and_save(
    args: &ExploreArgs,
    target: &Target,
    sim: &Simulation,
    seed: u64,
) -> (Option<PathBuf>, String, Option<(usize, usize)>) {
    let schedule = target.schedule(sim, &args.strategy);
    let budget = shrink_budget(args.shrink_budget, &schedule, 2_000, 5_000_000);
    match shrink(&config_for(&schedule_strategy(&schedule)), &schedule, || target.setup(), budget) {
        Ok(shrunk) => (
            save(&args.save_dir, target, seed, &shrunk.schedule),
            shrunk.to_string(),
            Some(output::preemptions(&shrunk)),
        ),
        Err(error) => {
            (save(&args.save_dir, target, seed, &schedule), format!("not shrunk: {error}"), None)
        }
    }
}

/// The verdict of a search: `failure` if it found one, else `limit` if a run hit one, else
/// `completed`.
fn search_verdict(summary: &ExploreSummary) -> &'static str {
    if !summary.failures.is_empty() {
        "failure"
    } else if !summary.limits.is_empty() {
        "limit"
    } else {
        "completed"
    }
}

/// A bounded exhaustive search: what the bound counts, the bound, and whether partial-order
/// reduction is on.
type DfsSpec = (BoundKind, u32, bool);

/// `dfs`, `dfs:B` (preemptions, with partial-order reduction), `dfs-full:B` (preemptions, every
/// schedule) or `dfs-delays:B`.
fn parse_dfs(strategy: &str) -> Result<Option<DfsSpec>> {
    let (name, bound) = strategy.split_once(':').unwrap_or((strategy, "2"));
    let (kind, reduce) = match name {
        "dfs" => (BoundKind::Preemptions, true),
        "dfs-full" => (BoundKind::Preemptions, false),
        "dfs-delays" => (BoundKind::Delays, false),
        _ => return Ok(None),
    };
    let bound: u32 = bound.parse().map_err(|_| {
        Usage(format!("--strategy {strategy}: the bound {bound:?} is not a number"))
    })?;
    Ok(Some((kind, bound, reduce)))
}

fn explore_dfs(args: &ExploreArgs, (kind, bound, reduce): DfsSpec) -> Result<bool> {
    if args.seeds.is_some() || args.time.is_some() || args.shard.is_some() {
        return Err(Usage(format!(
            "--strategy {}: a bounded exhaustive search runs every schedule of seed 0; --seeds, --time and --shard do not apply",
            args.strategy
        )));
    }
    let target = target(&args.target, "dfs")?;
    let mut sinks = Sinks::open(&args.output)?;
    let mut sim = Simulation::new(scenarios::config_for(&args.strategy));
    let mut dfs = Dfs::bounded(kind, bound, args.max_schedules);
    if reduce {
        dfs = dfs.with_reduction();
    }
    let report = explore_with(&mut sim, dfs, || target.setup());
    let verdict = match &report.first_failure {
        None => "completed",
        Some((_, Outcome::Failed(_))) => "failure",
        Some(_) => "limit",
    };
    let mut document = document("explore", &target, &args.strategy, verdict);
    document.dfs = Some(DfsDoc {
        bound,
        counts: kind.unit().to_string(),
        schedules: report.schedules,
        complete: report.complete,
        limit_reached: report.limit_reached,
        reduced: report.reduced,
        redundant: report.redundant,
        summary: report.summary.clone(),
    });
    let mut text = format!(
        "kdst explore {} --variant {} (strategy {}, params {})\n{}\n",
        target.scenario().name(),
        target.variant().name,
        args.strategy,
        target.params(),
        report.summary
    );
    let mut written = Vec::new();
    if report.first_failure.is_some() {
        let (saved, line, preemptions) = shrink_and_save(args, &target, &sim, 0);
        // The replay of a dfs failure is its schedule file: the seed alone is not it (the
        // report leaves the seed-based commands out).
        let report_text = target.report(&sim, &args.strategy, saved.as_deref());
        let _ = write!(text, "\n{report_text}{line}\n");
        written = sinks.write(&sim)?;
        document.reports.push(report_doc(
            &target,
            &sim,
            &args.strategy,
            saved.as_deref(),
            preemptions,
            report_text,
        ));
    }
    if let Some(path) = &args.json_out {
        write_json(path, &document)?;
        written.push(format!("results written to {}", path.display()));
    }
    finish(args.output.format, &document, &text, &written);
    Ok(verdict == "completed")
}

// ---- replay ----

fn read_schedule(path: &Path) -> Result<Schedule> {
    let text = std::fs::read(path)
        .map_err(|error| Usage(format!("cannot read schedule file {}: {error}", path.display())))?;
    let text = String::from_utf8(text)
        .map_err(|_| Usage(format!("{}: not a kdst schedule file (not text)", path.display())))?;
    Schedule::decode(&text).map_err(|error| Usage(format!("{}: {error}", path.display())))
}

/// The strategy a schedule's run was found with, as the user named it (`pct:2`, not the
/// strategy object's short name `pct`).
fn schedule_strategy(schedule: &Schedule) -> String {
    let named = schedule.params.iter().find(|(key, _)| key == "strategy");
    named.map_or_else(|| schedule.strategy.clone(), |(_, value)| value.clone())
}

fn looks_like_a_file(what: &str) -> bool {
    Path::new(what).is_file()
        || what.contains('/')
        || what.contains('\\')
        || what.ends_with(".schedule")
}

fn replay(args: &ReplayArgs) -> Result<bool> {
    let from_file = looks_like_a_file(&args.what);
    let (target, strategy, schedule) = if from_file {
        if args.seed.is_some() || args.variant.is_some() || !args.params.is_empty() {
            return Err(Usage("a schedule file names its own scenario, variant, parameters and seed: drop --seed, --variant and --param".to_string()));
        }
        let schedule = read_schedule(Path::new(&args.what))?;
        let target = Target::from_schedule(&schedule)?;
        let strategy = schedule_strategy(&schedule);
        (target, strategy, Some(schedule))
    } else {
        let Some(_) = args.seed else {
            // An unknown scenario is the better message when the name is wrong.
            Target::new(&args.what, args.variant.as_deref())?;
            return Err(Usage(format!(
                "kdst replay {}: which seed? add --seed N (or give a schedule file)",
                args.what
            )));
        };
        check_strategy(&args.strategy)?;
        let target_args = TargetArgs {
            scenario: args.what.clone(),
            variant: args.variant.clone(),
            params: args.params.clone(),
            no_swarm: args.no_swarm,
        };
        (target(&target_args, &args.strategy)?, args.strategy.clone(), None)
    };
    let mut sinks = Sinks::open(&args.output)?;
    let mut sim = Simulation::new(config_for(&strategy));
    let outcome = match &schedule {
        Some(schedule) => {
            sim.set_strategy(Box::new(Replay::new(schedule)));
            target.run(&mut sim, schedule.seed)
        }
        None => {
            sim.set_strategy(by_name(&strategy).expect("checked"));
            target.run(&mut sim, args.seed.expect("checked"))
        }
    };
    let written = sinks.write(&sim)?;
    let mut document = document("replay", &target, &strategy, output::verdict(&outcome));
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
            &strategy,
            if from_file { Some(Path::new(&args.what)) } else { None },
        );
        text.push_str(&report);
        document.reports.push(report_doc(
            &target,
            &sim,
            &strategy,
            from_file.then(|| Path::new(&args.what)),
            None,
            report,
        ));
    }
    finish(args.output.format, &document, &text, &written);
    Ok(outcome == Outcome::Completed)
}

// ---- shrink ----

fn shrink_file(args: &ShrinkArgs) -> Result<bool> {
    let schedule = read_schedule(&args.file)?;
    let target = Target::from_schedule(&schedule)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let name = args.file.file_name().and_then(|n| n.to_str()).unwrap_or("schedule");
        let stem = name.strip_suffix(".schedule").unwrap_or(name);
        args.file.with_file_name(format!("{stem}.shrunk.schedule"))
    });
    File::create(&out)
        .map_err(|error| Usage(format!("cannot write {}: {error}", out.display())))?;
    let budget = shrink_budget(args.budget, &schedule, 5_000, 20_000_000);
    let config = config_for(&schedule_strategy(&schedule));
    let shrunk = match shrink(&config, &schedule, || target.setup(), budget) {
        Ok(shrunk) => shrunk,
        Err(error) => {
            let _ = std::fs::remove_file(&out);
            return Err(Usage(format!("{}: {error}", args.file.display())));
        }
    };
    std::fs::write(&out, shrunk.schedule.encode())
        .map_err(|error| Usage(format!("cannot write {}: {error}", out.display())))?;
    let strategy = schedule_strategy(&schedule);
    let mut document = document("shrink", &target, &strategy, "failure");
    let mut sim = Simulation::new(config);
    sim.set_strategy(Box::new(Replay::new(&shrunk.schedule)));
    target.run(&mut sim, shrunk.schedule.seed);
    let report = target.report(&sim, &strategy, Some(&out));
    document.run = Some(run_doc(&target, &sim));
    document.reports.push(report_doc(
        &target,
        &sim,
        &strategy,
        Some(&out),
        Some(output::preemptions(&shrunk)),
        report,
    ));
    let text = format!(
        "{shrunk}\n{}\nshrunk schedule written to {}\nreplay: kdst replay {}\n",
        shrunk.failure,
        out.display(),
        out.display()
    );
    finish(args.format, &document, &text, &[]);
    Ok(false)
}

// ---- merge ----

fn merge(args: &MergeArgs) -> Result<bool> {
    let mut merged: Option<Document> = None;
    for path in &args.files {
        let text = std::fs::read_to_string(path)
            .map_err(|error| Usage(format!("cannot read {}: {error}", path.display())))?;
        let document: Document = serde_json::from_str(&text).map_err(|error| {
            Usage(format!("{}: not a kdst explore result: {error}", path.display()))
        })?;
        if document.kdst != SCHEMA {
            return Err(Usage(format!(
                "{}: schema version {} (this kdst reads {SCHEMA})",
                path.display(),
                document.kdst
            )));
        }
        if document.search.is_none() {
            return Err(Usage(format!(
                "{}: a `{}` result, not an explore result",
                path.display(),
                document.command
            )));
        }
        merged = Some(match merged {
            None => document,
            Some(so_far) => {
                let same = (
                    &so_far.scenario,
                    &so_far.variant,
                    &so_far.strategy,
                    so_far.swarm,
                    &so_far.params,
                ) == (
                    &document.scenario,
                    &document.variant,
                    &document.strategy,
                    document.swarm,
                    &document.params,
                );
                if !same {
                    return Err(Usage(format!(
                        "{}: {} {} with strategy {} and params {:?} cannot merge with {} {} with strategy {} and params {:?}",
                        path.display(),
                        document.scenario,
                        document.variant,
                        document.strategy,
                        document.params,
                        so_far.scenario,
                        so_far.variant,
                        so_far.strategy,
                        so_far.params
                    )));
                }
                merge_two(so_far, document)
            }
        });
    }
    let mut document = merged.expect("clap requires a file");
    document.command = "merge".to_string();
    let summary = document.search.as_ref().expect("checked");
    document.verdict = search_verdict(summary).to_string();
    let mut text = format!(
        "kdst merge: {} results of {} --variant {} (strategy {})\n{summary}",
        args.files.len(),
        document.scenario,
        document.variant,
        document.strategy
    );
    for report in &document.reports {
        let _ = write!(text, "\n=== seed {} ===\n{}", report.seed, report.report);
    }
    let ok = document.verdict == "completed";
    finish(args.format, &document, &text, &[]);
    Ok(ok)
}

/// Two explore results as one: the summaries merge (sim-core's rules: distinct failures by kind
/// and place, the lowest seed kept), and each remaining failure keeps the report of its seed.
fn merge_two(a: Document, b: Document) -> Document {
    let summary: ExploreSummary =
        a.search.clone().expect("checked").merge(b.search.clone().expect("checked"));
    let mut reports: Vec<ReportDoc> = a.reports.into_iter().chain(b.reports).collect();
    let kept: Vec<u64> =
        summary.failures.iter().chain(&summary.limits).map(|found| found.seed).collect();
    reports.retain(|report| kept.contains(&report.seed));
    reports.sort_by_key(|report| report.seed);
    reports.dedup_by_key(|report| report.seed);
    Document { search: Some(summary), reports, ..a }
}
