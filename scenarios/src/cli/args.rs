//! The command line: clap's types for every command, and the parsers of its values (each error
//! is the one line clap shows).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sim_core::strategy::StrategySpec;

#[derive(Parser)]
#[command(
    name = "kdst",
    version,
    about = "Deterministic simulation testing for Kubernetes controllers: find, replay, shrink \
             and show failures of real controller bugs",
    after_help = "Exit codes: 0 no failure, 1 a failure (or a limit) found, 2 a usage or input \
                  error.\nStart with: kdst explore cert-manager-foreground-deletion"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
pub(crate) enum Format {
    /// Text for people
    Text,
    /// One JSON document (schema in the README)
    Json,
}

#[derive(Args)]
pub(crate) struct ListArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
}

#[derive(Args)]
pub(crate) struct TargetArgs {
    /// The scenario (see `kdst list`)
    pub(crate) scenario: String,
    /// The variant (default: the scenario's first, buggy, variant)
    #[arg(long)]
    pub(crate) variant: Option<String>,
    /// Set a parameter, NAME=VALUE (repeatable); a set parameter is never drawn by the swarm
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub(crate) params: Vec<String>,
    /// Keep unset parameters at their defaults under the portfolio (no swarm)
    #[arg(long)]
    pub(crate) no_swarm: bool,
}

#[derive(Args)]
pub(crate) struct OutputArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
    /// Write the run's text trace to FILE
    #[arg(long, value_name = "FILE")]
    pub(crate) trace_out: Option<PathBuf>,
    /// Write the run as Chrome trace event JSON to FILE (opens in ui.perfetto.dev)
    #[arg(long, value_name = "FILE")]
    pub(crate) perfetto: Option<PathBuf>,
    /// Write the run as a Mermaid sequence diagram to FILE
    #[arg(long, value_name = "FILE")]
    pub(crate) mermaid: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// The seed
    #[arg(long, default_value = "0", value_parser = parse_seed, allow_hyphen_values = true)]
    pub(crate) seed: u64,
    /// random, pct, pct:D or portfolio
    #[arg(long, default_value = "portfolio")]
    pub(crate) strategy: StrategySpec,
    /// Where the schedule of a failing run is saved
    #[arg(long, value_name = "DIR", default_value = "target/kdst")]
    pub(crate) save_dir: PathBuf,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Args)]
pub(crate) struct ExploreArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Seeds to search: A..B, or N for 0..N (default 0..1000 unless --time is given)
    #[arg(long, value_parser = parse_seeds, conflicts_with = "time")]
    pub(crate) seeds: Option<std::ops::Range<u64>>,
    /// Search for this long instead (e.g. 30s, 5m, 500ms)
    #[arg(long, value_parser = parse_duration)]
    pub(crate) time: Option<Duration>,
    /// portfolio (random, PCT and the swarm), random, pct, pct:D, dfs:B (every schedule within
    /// B preemptions, up to the order of independent steps), dfs-full:B (every schedule within B
    /// preemptions, without reduction) or dfs-delays:B (within B delays)
    #[arg(long, default_value = "portfolio")]
    pub(crate) strategy: StrategySpec,
    /// Worker threads (default: every core)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(crate) jobs: Option<u64>,
    /// Search only this shard of the seeds, i/n: seeds with seed % n == i (nextest's 1-based
    /// count:M/N is shard M-1/N)
    #[arg(long, value_parser = parse_shard)]
    pub(crate) shard: Option<(u64, u64)>,
    /// Collect every distinct failure instead of stopping at the first
    #[arg(long)]
    pub(crate) all_failures: bool,
    /// Where schedules are saved
    #[arg(long, value_name = "DIR", default_value = "target/kdst")]
    pub(crate) save_dir: PathBuf,
    /// Replays the shrinker may spend per failure (default: up to 2,000, fewer for long runs, so
    /// that shrinking replays at most about 5 million steps)
    #[arg(long)]
    pub(crate) shrink_budget: Option<u64>,
    /// For dfs: stop after this many schedules (default 1,000,000); a search stopped there is
    /// incomplete (exit code 1)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_schedules: Option<u64>,
    /// Write the JSON document to FILE as well (for CI shards and `kdst merge`)
    #[arg(long, value_name = "FILE")]
    pub(crate) json_out: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Args)]
pub(crate) struct ReplayArgs {
    /// A schedule file, or a scenario name (then --seed)
    pub(crate) what: String,
    /// The variant (with a scenario)
    #[arg(long)]
    pub(crate) variant: Option<String>,
    /// The seed (with a scenario)
    #[arg(long, value_parser = parse_seed, allow_hyphen_values = true)]
    pub(crate) seed: Option<u64>,
    /// The strategy the seed ran with (with a scenario; default portfolio)
    #[arg(long)]
    pub(crate) strategy: Option<StrategySpec>,
    /// Set a parameter, NAME=VALUE (with a scenario; repeatable)
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub(crate) params: Vec<String>,
    /// Keep unset parameters at their defaults under the portfolio (with a scenario)
    #[arg(long)]
    pub(crate) no_swarm: bool,
    /// Print only the outcome, not the trace
    #[arg(long)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Args)]
pub(crate) struct ShrinkArgs {
    /// The failing schedule file
    pub(crate) file: PathBuf,
    /// Where to write the shrunk schedule (default: FILE with .shrunk.schedule)
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Replays the shrinker may spend (default: up to 5,000, fewer for long runs, so that
    /// shrinking replays at most about 20 million steps)
    #[arg(long)]
    pub(crate) budget: Option<u64>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
}

#[derive(Args)]
pub(crate) struct MergeArgs {
    /// JSON results of `kdst explore --format json` (or --json-out), one per shard
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
}

// ---- argument parsers: each error is the one line clap shows ----

pub(crate) fn parse_seed(text: &str) -> std::result::Result<u64, String> {
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

pub(crate) fn parse_seeds(text: &str) -> std::result::Result<std::ops::Range<u64>, String> {
    let range = match text.split_once("..") {
        Some((start, end)) => parse_seed(start)?..parse_seed(end)?,
        None => 0..parse_seed(text)?,
    };
    if range.is_empty() {
        return Err(format!("the seed range {text} is empty (A..B needs A < B)"));
    }
    Ok(range)
}

pub(crate) fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
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
    if seconds.is_nan() || seconds <= 0.0 {
        return Err(format!("the duration {text:?} must be positive"));
    }
    if seconds >= 1e9 {
        return Err(format!("the duration {text:?} is too long (under 1e9 s, about 31 years)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

pub(crate) fn parse_shard(text: &str) -> std::result::Result<(u64, u64), String> {
    if let Some(partition) = sim_core::parse_partition(text) {
        return partition;
    }
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
