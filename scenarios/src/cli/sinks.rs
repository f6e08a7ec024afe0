//! Where output goes: the trace, Perfetto and Mermaid files (opened before any work so that a
//! bad path loses nothing), saved schedules and JSON results.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::Target;
use sim_core::{Schedule, Simulation};

use super::args::OutputArgs;
use super::output::Document;
use super::{Result, Usage};

/// Messages a Mermaid diagram shows before it says how many it left out.
const MERMAID_MESSAGES: usize = 120;

/// Output files, opened before any work so that a bad path loses nothing.
pub(crate) struct Sinks {
    trace: Option<(PathBuf, File)>,
    perfetto: Option<(PathBuf, File)>,
    mermaid: Option<(PathBuf, File)>,
}

impl Sinks {
    pub(crate) fn open(args: &OutputArgs) -> Result<Sinks> {
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
    pub(crate) fn write(&mut self, sim: &Simulation) -> Result<Vec<String>> {
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

/// Checks, before any work, that `path` can be written, without changing a file already there.
pub(crate) fn check_writable(path: &Path) -> Result<()> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map(drop)
        .map_err(|error| Usage(format!("cannot write {}: {error}", path.display())))
}

/// Writes `document` to `path` as pretty JSON.
pub(crate) fn write_json(path: &Path, document: &Document) -> Result<()> {
    let text = serde_json::to_string_pretty(document).expect("documents serialise");
    std::fs::write(path, text + "\n")
        .map_err(|error| Usage(format!("cannot write {}: {error}", path.display())))
}

/// Saves a schedule as `DIR/SCENARIO.VARIANT.seed-N.schedule`; `None` (with a warning on
/// stderr) if it cannot be written.
pub(crate) fn save(dir: &Path, target: &Target, seed: u64, schedule: &Schedule) -> Option<PathBuf> {
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

/// The shrinker's replay budget: `given`, else at most `max` replays and about `total_steps`
/// steps in all (at least 20 replays).
pub(crate) fn shrink_budget(
    given: Option<u64>,
    schedule: &Schedule,
    max: u64,
    total_steps: u64,
) -> u64 {
    given.unwrap_or_else(|| (total_steps / (schedule.steps.len() as u64).max(1)).clamp(20, max))
}

/// Reads and decodes a schedule file; every problem is one line.
pub(crate) fn read_schedule(path: &Path) -> Result<Schedule> {
    let text = std::fs::read(path)
        .map_err(|error| Usage(format!("cannot read schedule file {}: {error}", path.display())))?;
    let text = String::from_utf8(text)
        .map_err(|_| Usage(format!("{}: not a kdst schedule file (not text)", path.display())))?;
    Schedule::decode(&text).map_err(|error| Usage(format!("{}: {error}", path.display())))
}
