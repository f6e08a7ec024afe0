//! Where output goes: the trace, Perfetto and Mermaid files and the JSON results (every path
//! checked before any work, every file written only when all of them can be, each replaced
//! whole, so that a failed command leaves the files a user had as they were), saved schedules.

use std::fs::OpenOptions;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::Target;
use sim_core::{Schedule, Simulation};

use super::args::OutputArgs;
use super::output::Document;
use super::{Result, Usage};

/// Messages a Mermaid diagram shows before it says how many it left out.
const MERMAID_MESSAGES: usize = 120;

/// A command's output files: their paths checked before any work, their contents gathered as
/// the command runs, and all of them written at the end by [`Sinks::commit`].
pub(crate) struct Sinks {
    trace: Option<PathBuf>,
    perfetto: Option<PathBuf>,
    mermaid: Option<PathBuf>,
    json: Option<PathBuf>,
    pending: Vec<(PathBuf, String, String)>,
}

impl Sinks {
    /// Checks that every output path can be written (without changing a file already there).
    pub(crate) fn open(args: &OutputArgs, json: Option<&Path>) -> Result<Sinks> {
        let paths = [&args.trace_out, &args.perfetto, &args.mermaid];
        let mut seen = Vec::new();
        for path in paths.into_iter().flatten().map(PathBuf::as_path).chain(json) {
            let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
            if seen.contains(&absolute) && !is_special(path) {
                return Err(Usage(format!(
                    "{} is given for two outputs: one would overwrite the other",
                    path.display()
                )));
            }
            seen.push(absolute);
            check_writable(path)?;
        }
        Ok(Sinks {
            trace: args.trace_out.clone(),
            perfetto: args.perfetto.clone(),
            mermaid: args.mermaid.clone(),
            json: json.map(Path::to_path_buf),
            pending: Vec::new(),
        })
    }

    /// Renders the trace exports of `sim`'s last run, to be written by [`Sinks::commit`].
    pub(crate) fn trace(&mut self, sim: &Simulation) {
        let trace = sim.trace();
        if let Some(path) = &self.trace {
            self.pending.push((path.clone(), "trace".into(), trace.render()));
        }
        if let Some(path) = &self.perfetto {
            let what = "Perfetto trace (open in https://ui.perfetto.dev)".into();
            self.pending.push((path.clone(), what, sim_core::export::perfetto(trace)));
        }
        if let Some(path) = &self.mermaid {
            let text = sim_core::export::mermaid(trace, MERMAID_MESSAGES);
            self.pending.push((path.clone(), "Mermaid diagram".into(), text));
        }
    }

    /// Renders `document` as pretty JSON for the `--json-out` path, if one was given.
    pub(crate) fn json(&mut self, document: &Document) {
        if let Some(path) = &self.json {
            let text = serde_json::to_string_pretty(document).expect("documents serialise");
            self.pending.push((path.clone(), "results".into(), text + "\n"));
        }
    }

    /// Writes every gathered file, or none (see [`replace_all`]). Returns lines saying what
    /// went where.
    pub(crate) fn commit(self) -> Result<Vec<String>> {
        let files: Vec<(&Path, &str)> =
            self.pending.iter().map(|(path, _, text)| (path.as_path(), text.as_str())).collect();
        replace_all(&files)?;
        Ok(self
            .pending
            .iter()
            .map(|(path, what, _)| format!("{what} written to {}", path.display()))
            .collect())
    }
}

/// Writes `text` to `path` whole or not at all (see [`replace_all`]).
pub(crate) fn write_replacing(path: &Path, text: &str) -> Result<()> {
    replace_all(&[(path, text)])
}

/// Writes every file, or none: each regular file is written to a temporary file beside it (the
/// file a symbolic link leads to, so the link stays) and renamed over it once all of them are
/// written; a device or pipe, which cannot be replaced, is written in place, before any rename.
fn replace_all(files: &[(&Path, &str)]) -> Result<()> {
    let mut staged = Vec::new();
    if let Err(error) = stage(files, &mut staged) {
        for (temp, _) in &staged {
            let _ = std::fs::remove_file(temp);
        }
        return Err(error);
    }
    for (temp, path) in &staged {
        if let Err(error) = std::fs::rename(temp, path) {
            let _ = std::fs::remove_file(temp);
            return Err(cannot_write(path, &error));
        }
    }
    Ok(())
}

/// Writes each file to a temporary file beside it (recorded in `staged`), then each file that
/// is not a regular file in place.
fn stage(files: &[(&Path, &str)], staged: &mut Vec<(PathBuf, PathBuf)>) -> Result<()> {
    let mut in_place = Vec::new();
    for &(path, text) in files {
        if is_special(path) {
            in_place.push((path, text));
            continue;
        }
        let target = through_links(path);
        let temp = temp_beside(&target);
        let written = std::fs::write(&temp, text);
        staged.push((temp, target));
        written.map_err(|error| cannot_write(path, &error))?;
    }
    for (path, text) in in_place {
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .map_err(|error| cannot_write(path, &error))?;
    }
    Ok(())
}

/// Checks, before any work, that `path` can be written, without changing a file already there:
/// a directory cannot; a regular file or a new name can if a file can be created beside it; a
/// device or pipe is taken as given.
pub(crate) fn check_writable(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(Usage(format!("cannot write {}: it is a directory", path.display())));
        }
        Ok(meta) if !meta.is_file() => return Ok(()),
        _ => {}
    }
    probe(&temp_beside(&through_links(path))).map_err(|error| cannot_write(path, &error))
}

/// Creates and removes the file `probe`: whether its directory takes a new file.
fn probe(probe: &Path) -> std::io::Result<()> {
    OpenOptions::new().write(true).create(true).truncate(true).open(probe).map(drop)?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// The file a symbolic link at `path` leads to (so that replacing the file keeps the user's
/// link), else `path` itself.
fn through_links(path: &Path) -> PathBuf {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink());
    match is_link {
        true => std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        false => path.to_path_buf(),
    }
}

/// Whether `path` names something that exists and is neither a regular file nor a directory.
fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| !meta.is_file() && !meta.is_dir())
}

/// A temporary name in `path`'s directory, unique to this process.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    path.with_file_name(format!(".{name}.kdst-{}.tmp", std::process::id()))
}

fn cannot_write(path: &Path, error: &std::io::Error) -> Usage {
    Usage(format!("cannot write {}: {error}", path.display()))
}

/// Checks, before any work, that schedules can be saved under `dir`: it is a directory that
/// takes a new file, or it does not exist yet and its nearest existing ancestor is one.
pub(crate) fn check_save_dir(dir: &Path) -> Result<()> {
    let bad = |why: &dyn std::fmt::Display| {
        Usage(format!("--save-dir {}: cannot save schedules there: {why}", dir.display()))
    };
    let mut existing = dir;
    while !existing.as_os_str().is_empty() && std::fs::symlink_metadata(existing).is_err() {
        existing = existing.parent().unwrap_or(Path::new(""));
    }
    let existing = if existing.as_os_str().is_empty() { Path::new(".") } else { existing };
    let meta = std::fs::metadata(existing).map_err(|error| bad(&error))?;
    if !meta.is_dir() {
        return Err(bad(&format_args!("{} is not a directory", existing.display())));
    }
    probe(&existing.join(format!(".kdst-{}.probe", std::process::id())))
        .map_err(|error| bad(&error))
}

/// Saves a schedule as `DIR/SCENARIO.VARIANT.seed-N{origin}.schedule` (`origin` keeps one
/// command's schedules from replacing another's: `""` for `explore`, `".run"` for `run`); `None`
/// (with a warning on stderr) if it cannot be written.
pub(crate) fn save(
    dir: &Path,
    target: &Target,
    seed: u64,
    origin: &str,
    schedule: &Schedule,
) -> Option<PathBuf> {
    let path = dir.join(format!("{}.seed-{seed}{origin}.schedule", target.file_name()));
    let result = std::fs::create_dir_all(dir)
        .map_err(|error| cannot_write(&path, &error))
        .and_then(|()| write_replacing(&path, &schedule.encode()));
    match result {
        Ok(()) => Some(path),
        Err(Usage(error)) => {
            eprintln!("kdst: warning: could not save the schedule: {error}");
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

/// The largest input file kdst reads (a schedule, a JSON result): 256 MiB, far above any it
/// writes, so that `/dev/zero` or a wrong file is refused before it fills memory.
const INPUT_MAX: u64 = 256 << 20;

/// Reads `path` (a `what`), refusing before it opens anything that is not a regular file (a
/// pipe would block, a device never end) and any file larger than [`INPUT_MAX`].
pub(crate) fn read_input(path: &Path, what: &str) -> Result<Vec<u8>> {
    let cannot = |error: &dyn std::fmt::Display| {
        Usage(format!("cannot read {what} {}: {error}", path.display()))
    };
    let meta = std::fs::metadata(path).map_err(|error| cannot(&error))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() { "a directory" } else { "not a regular file" };
        return Err(cannot(&format_args!("it is {kind}")));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(INPUT_MAX + 1).read_to_end(&mut bytes))
        .map_err(|error| cannot(&error))?;
    if bytes.len() as u64 > INPUT_MAX {
        return Err(cannot(&format_args!("larger than {} MiB", INPUT_MAX >> 20)));
    }
    Ok(bytes)
}

/// Reads and decodes a schedule file; every problem is one line.
pub(crate) fn read_schedule(path: &Path) -> Result<Schedule> {
    let text = read_input(path, "schedule file")?;
    let text = String::from_utf8(text)
        .map_err(|_| Usage(format!("{}: not a kdst schedule file (not text)", path.display())))?;
    Schedule::decode(&text).map_err(|error| Usage(format!("{}: {error}", path.display())))
}
