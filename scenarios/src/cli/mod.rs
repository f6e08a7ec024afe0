//! The `kdst` command line as a library: find, replay, shrink and show failures of the
//! scenarios of a [`Registry`]. The `kdst` binary is `cli::main(Registry::builtin())`; a
//! user's crate builds its own with its scenarios (see [`Registry`]).
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
//! Exit codes: 0 no failure, 1 a failure (or a limit, or a search that did not cover what it was
//! asked to) in hand, 2 a usage or input error (one line on stderr, nothing else).
//!
//! One file per command; `args` holds the command line, `sinks` the files written, `output` the
//! JSON documents.

mod args;
mod explore;
mod list;
mod merge;
mod output;
mod replay;
mod run;
mod shrink;
mod sinks;

use std::ffi::OsString;
use std::process::ExitCode;

use args::{Cli, Command, TargetArgs};
use clap::Parser;

use crate::{Registry, Target, TargetError};
use sim_core::strategy::StrategySpec;

/// A usage or input error: one line, exit code 2.
#[derive(Debug)]
struct Usage(String);

impl From<TargetError> for Usage {
    fn from(error: TargetError) -> Self {
        Usage(error.to_string())
    }
}

type Result<T> = std::result::Result<T, Usage>;

/// Runs the command line of this process on `registry`'s scenarios, and returns the exit code:
/// 0 no failure, 1 a failure (or a limit, or an incomplete search), 2 a usage or input error.
pub fn main(registry: Registry) -> ExitCode {
    run(&registry, std::env::args_os())
}

/// Runs the command line `args` (the program name first, as in [`std::env::args_os`]) on
/// `registry`'s scenarios, in this process: what [`main`] does, for tests and wrappers. Output
/// goes to this process's standard output and error.
pub fn run<I, T>(registry: &Registry, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            use clap::error::ErrorKind;
            if matches!(error.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = error.print();
                return ExitCode::SUCCESS;
            }
            if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                // Help belongs on stdout when asked for; without a command, one line says how.
                eprintln!("kdst: which command? Usage: kdst <COMMAND> (kdst --help lists them)");
                return ExitCode::from(2);
            }
            let text = error.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let mut first = first.strip_prefix("error: ").unwrap_or(first).to_string();
            if error.kind() == ErrorKind::MissingRequiredArgument {
                // clap lists missing arguments on the lines below its first: keep them on it.
                let missing: Vec<&str> = text
                    .lines()
                    .skip(1)
                    .map(str::trim)
                    .take_while(|line| !line.is_empty() && !line.starts_with("Usage:"))
                    .collect();
                if !missing.is_empty() {
                    first = format!("{first} {}", missing.join(", "));
                }
            }
            let tip = text.lines().find_map(|line| line.trim().strip_prefix("tip: "));
            match tip {
                Some(tip) => eprintln!("kdst: {first} ({tip})"),
                None => eprintln!("kdst: {first} (see kdst --help)"),
            }
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::List(args) => list::list(registry, &args),
        Command::Run(args) => run::run(registry, &args),
        Command::Explore(args) => explore::explore(registry, &args),
        Command::Replay(args) => replay::replay(registry, &args),
        Command::Shrink(args) => shrink::shrink(registry, &args),
        Command::Merge(args) => merge::merge(&args),
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

/// A strategy for the commands that run one seed: a systematic search is not one.
fn seed_strategy(strategy: StrategySpec) -> Result<StrategySpec> {
    if strategy.is_systematic() {
        return Err(Usage(format!(
            "{strategy} is a search over schedules, not a strategy for one seed: use kdst explore --strategy {strategy}"
        )));
    }
    Ok(strategy)
}

/// The target of the command line, with the swarm on where the strategy swarms.
fn target(registry: &Registry, args: &TargetArgs, strategy: StrategySpec) -> Result<Target> {
    let mut target = registry.target(&args.scenario, args.variant.as_deref())?;
    target.set_params(&args.params)?;
    Ok(target.with_swarm(strategy.swarms() && !args.no_swarm))
}
