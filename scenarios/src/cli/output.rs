//! The JSON documents `kdst` writes with `--format json`: one schema (version [`SCHEMA`]) for
//! `run`, `replay`, `explore`, `shrink` and `merge`, documented in the README.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use crate::{Params, Target};
use serde::{Deserialize, Serialize};
use sim_core::strategy::StrategySpec;
use sim_core::{ExploreSummary, Failure, Outcome, Shrunk, Simulation, Verdict};

use super::args::Format;
use super::{Result, Usage};

/// The schema version: bumped when a field changes meaning or goes away.
pub const SCHEMA: u32 = 1;

/// One document.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Document {
    /// [`SCHEMA`].
    pub kdst: u32,
    /// `run`, `replay`, `explore`, `shrink` or `merge`.
    pub command: String,
    /// The scenario.
    pub scenario: String,
    /// The variant.
    pub variant: String,
    /// The strategy as given (`portfolio`, `random`, `pct:3`, `dfs:2`, `replay`).
    pub strategy: String,
    /// Whether each seed drew its parameters (the swarm).
    pub swarm: bool,
    /// The parameters as set; with the swarm, the values not set explicitly are each seed's own
    /// (see the failures' `params`).
    pub params: BTreeMap<String, u64>,
    /// `completed`, `failure` or `limit`: the verdict of the whole command.
    pub verdict: String,
    /// For `run` and `replay`: the one run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunDoc>,
    /// For `explore` and `merge`: what was searched and found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<ExploreSummary>,
    /// For a bounded exhaustive search (`dfs:B`, `dfs-delays:B`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dfs: Option<DfsDoc>,
    /// One per distinct failure (and per limit) found: how to replay it.
    pub reports: Vec<ReportDoc>,
}

/// One run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunDoc {
    /// Its seed.
    pub seed: u64,
    /// The parameters it ran with (with the swarm, drawn from the seed).
    pub params: BTreeMap<String, u64>,
    /// Steps it took.
    pub steps: u64,
    /// Preemptions in it.
    pub preemptions: u64,
    /// Virtual time at its end, in seconds.
    pub virtual_time_s: f64,
    /// Its trace's hash (same seed, parameters and code: same hash).
    pub trace_hash: String,
    /// The failure or limit, if any.
    pub failure: Option<Failure>,
}

/// A bounded exhaustive search.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DfsDoc {
    /// The bound.
    pub bound: u32,
    /// `preemptions` or `delays`.
    pub counts: String,
    /// Schedules run.
    pub schedules: u64,
    /// Whether every schedule within the bound ran.
    pub complete: bool,
    /// Whether the schedule limit stopped it.
    pub limit_reached: bool,
    /// Whether partial-order reduction was on (`dfs:B`): then every schedule within the bound is
    /// covered up to the order of independent steps.
    #[serde(default)]
    pub reduced: bool,
    /// With reduction, the runs that reached a point where every runnable task was asleep.
    #[serde(default)]
    pub redundant: u64,
    /// The one-line summary.
    pub summary: String,
}

/// A failure with its replay.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReportDoc {
    /// The seed.
    pub seed: u64,
    /// The strategy that ran it (for the portfolio, the member).
    pub ran_with: String,
    /// The parameters it ran with.
    pub params: BTreeMap<String, u64>,
    /// The failure.
    pub failure: Failure,
    /// Where its (shrunk) schedule was saved.
    pub schedule_file: Option<String>,
    /// Preemptions before and after shrinking, when it was shrunk.
    pub preemptions: Option<(usize, usize)>,
    /// Commands that replay it.
    pub replay: Vec<String>,
    /// The text report.
    pub report: String,
}

/// Preemptions before and after, from a shrink.
pub fn preemptions(shrunk: &Shrunk) -> (usize, usize) {
    (shrunk.preemptions_before, shrunk.preemptions_after)
}

/// Parameters as the JSON documents carry them.
pub fn params_map(params: &Params) -> BTreeMap<String, u64> {
    params.pairs().into_iter().map(|(name, value)| (name.to_string(), value)).collect()
}

/// A document of `command` on `target` with `strategy`, with nothing but its verdict.
pub fn document(
    command: &str,
    target: &Target,
    strategy: StrategySpec,
    verdict: Verdict,
) -> Document {
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

/// The run that just ended on `sim`.
pub fn run_doc(target: &Target, sim: &Simulation) -> RunDoc {
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

/// The failing run that just ended on `sim`, with its text report.
pub fn report_doc(
    target: &Target,
    sim: &Simulation,
    strategy: StrategySpec,
    file: Option<&Path>,
    preemptions: Option<(usize, usize)>,
    report: String,
) -> ReportDoc {
    let trace = sim.trace();
    let seed = trace.seed();
    let mut replay = Vec::new();
    replay.extend(file.and_then(|file| target.replay_file_command(file)));
    if strategy.replays_from_seed() {
        replay.extend(target.replay_command(seed, strategy));
        replay.extend(target.cargo_test_command(seed, strategy));
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

/// Prints the document (JSON) or the text and the lines saying what was written (text).
pub fn finish(format: Format, document: &Document, text: &str, written: &[String]) -> Result<()> {
    match format {
        Format::Json => {
            let json = serde_json::to_string_pretty(document).expect("documents serialise");
            print(&(json + "\n"))
        }
        Format::Text => {
            let mut out = text.to_string();
            for line in written {
                out.push_str(line);
                out.push('\n');
            }
            print(&out)
        }
    }
}

/// Writes `text` to standard output. A reader that went away (`kdst replay … | head`) ends the
/// output quietly, the command keeping its exit code; any other failure (a full disk) is a
/// one-line error.
pub(crate) fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Usage(format!("cannot write to standard output: {error}")))
        }
        _ => Ok(()),
    }
}
