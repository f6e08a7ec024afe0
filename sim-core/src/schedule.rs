//! Schedule files: a run's choices, written down so the run can be replayed anywhere.
//!
//! The format is line-oriented text, so it diffs and reviews well:
//!
//! ```text
//! kdst-schedule 1
//! kdst 0.1.0
//! test find_map_crash
//! seed 42
//! strategy random
//! param workers=2
//! expect go-fatal: fatal error: concurrent map writes
//! steps 9
//! draws 1
//! choices
//! 0 1*3 2 0*2 1 2
//! draw 4 1
//! end 9d0c6f0b3c7a9e51
//! ```
//!
//! `choices` lists the task run at every step; `T*N` is task `T` for `N` steps in a row. `draw S V`
//! is the value `V` of the [`crate::choose`] at step `S`. The last line carries an FNV-1a hash of
//! everything before it, so a truncated or edited file is an error, never a wrong replay.
//! Random values other than `choose` come from the seed's streams, so the seed is part of the
//! schedule.
//!
//! This module does no I/O: it encodes to and decodes from strings.

use std::fmt::{self, Write as _};

use crate::TaskId;
use crate::rng::fnv1a;
use crate::trace::TASK_ID_MAX;

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const MAGIC: &str = "kdst-schedule";
const WRAP: usize = 100;

/// The most steps a schedule file may hold: 2^26 (67,108,864), thirteen times
/// [`crate::Config::steps_max`]'s default. Decoding allocates at most this many [`TaskId`]s
/// (256 MiB), whatever the file's run-length counts say.
const STEPS_MAX: u64 = 1 << 26;

/// A recorded schedule with the header that says what it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The kdst version that wrote it.
    pub kdst_version: String,
    /// The test or scenario it belongs to.
    pub test: String,
    /// The run's seed (random streams other than `choose` derive from it).
    pub seed: u64,
    /// The strategy that produced it.
    pub strategy: String,
    /// Parameters of the test or scenario, as `key=value` pairs, in order.
    pub params: Vec<(String, String)>,
    /// The failure it is expected to reproduce, as `kind: message`, if any.
    pub expect: Option<String>,
    /// The task polled at each step.
    pub steps: Vec<TaskId>,
    /// Values of strategy draws: (step, value).
    pub draws: Vec<(u64, u64)>,
}

/// Why a schedule file could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduleError {
    /// The text is empty.
    Empty,
    /// The first line is not a kdst schedule header.
    NotASchedule,
    /// Written in a format version this build does not read.
    UnsupportedVersion {
        /// The version in the file.
        found: String,
    },
    /// The file ends before its `end` line.
    Truncated,
    /// The checksum on the `end` line does not match the content.
    Checksum,
    /// A line cannot be parsed.
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleError::Empty => f.write_str("the schedule file is empty"),
            ScheduleError::NotASchedule => {
                write!(f, "not a kdst schedule file (its first line is not `{MAGIC} <version>`)")
            }
            ScheduleError::UnsupportedVersion { found } => write!(
                f,
                "schedule format version {found} is not supported by this kdst (it reads version \
                 {FORMAT_VERSION})"
            ),
            ScheduleError::Truncated => {
                f.write_str("the schedule file is truncated: its final `end` line is missing")
            }
            ScheduleError::Checksum => {
                f.write_str("the schedule file is corrupt: its checksum does not match its content")
            }
            ScheduleError::Malformed { line, message } => {
                write!(f, "the schedule file is malformed at line {line}: {message}")
            }
        }
    }
}

impl std::error::Error for ScheduleError {}

impl Schedule {
    /// The number of preemptions this schedule makes, given the runnable sets are unknown: a
    /// lower bound counted as switches between consecutive steps' tasks.
    pub fn context_switches(&self) -> usize {
        self.steps.windows(2).filter(|pair| pair[0] != pair[1]).count()
    }

    /// Encodes to the text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{MAGIC} {FORMAT_VERSION}");
        let _ = writeln!(out, "kdst {}", one_line(&self.kdst_version));
        let _ = writeln!(out, "test {}", one_line(&self.test));
        let _ = writeln!(out, "seed {}", self.seed);
        let _ = writeln!(out, "strategy {}", one_line(&self.strategy));
        for (key, value) in &self.params {
            let _ = writeln!(out, "param {}={}", one_line(key), one_line(value));
        }
        if let Some(expect) = &self.expect {
            let _ = writeln!(out, "expect {}", one_line(expect));
        }
        let _ = writeln!(out, "steps {}", self.steps.len());
        let _ = writeln!(out, "draws {}", self.draws.len());
        out.push_str("choices\n");
        let mut line = String::new();
        for (task, count) in runs(&self.steps) {
            let token = if count == 1 { task.0.to_string() } else { format!("{}*{count}", task.0) };
            if !line.is_empty() && line.len() + 1 + token.len() > WRAP {
                out.push_str(&line);
                out.push('\n');
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&token);
        }
        if !line.is_empty() {
            out.push_str(&line);
            out.push('\n');
        }
        for (step, value) in &self.draws {
            let _ = writeln!(out, "draw {step} {value}");
        }
        let checksum = fnv1a(out.as_bytes());
        let _ = writeln!(out, "end {checksum:016x}");
        out
    }

    /// Decodes the text format; every problem is a [`ScheduleError`] naming it.
    pub fn decode(text: &str) -> Result<Schedule, ScheduleError> {
        if text.trim().is_empty() {
            return Err(ScheduleError::Empty);
        }
        // The header first: a file that is not a schedule at all, or is one of another format
        // version, says so rather than failing a later check.
        let first = text.lines().next().unwrap_or_default();
        let version = first.strip_prefix(MAGIC).and_then(|rest| rest.strip_prefix(' '));
        let version = version.ok_or(ScheduleError::NotASchedule)?.trim();
        if version != FORMAT_VERSION.to_string() {
            return Err(ScheduleError::UnsupportedVersion { found: version.to_string() });
        }
        let body = check_trailer(text)?;
        let mut lines = body.lines().enumerate().map(|(index, line)| (index + 1, line));
        lines.next().ok_or(ScheduleError::Empty)?;
        let mut header = Header::default();
        let mut in_choices = false;
        let mut schedule = Schedule {
            kdst_version: String::new(),
            test: String::new(),
            seed: 0,
            strategy: String::new(),
            params: Vec::new(),
            expect: None,
            steps: Vec::new(),
            draws: Vec::new(),
        };
        for (number, line) in lines {
            let malformed = |message: String| ScheduleError::Malformed { line: number, message };
            if line == "choices" {
                in_choices = true;
                continue;
            }
            if let Some(rest) = line.strip_prefix("draw ") {
                schedule.draws.push(parse_draw(rest).map_err(malformed)?);
                continue;
            }
            if in_choices {
                let announced = header.steps.ok_or_else(|| {
                    malformed("the choices come before the header's `steps` line".to_string())
                })?;
                parse_choices(line, &mut schedule.steps, announced).map_err(malformed)?;
                continue;
            }
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "kdst" => schedule.kdst_version = value.to_string(),
                "test" => schedule.test = value.to_string(),
                "seed" => schedule.seed = parse_number(value, "seed").map_err(malformed)?,
                "strategy" => schedule.strategy = value.to_string(),
                "param" => {
                    let (key, value) = value.split_once('=').ok_or_else(|| {
                        malformed(format!("parameter `{value}` is not key=value"))
                    })?;
                    schedule.params.push((key.to_string(), value.to_string()));
                }
                "expect" => schedule.expect = Some(value.to_string()),
                "steps" => {
                    let steps = parse_number(value, "steps").map_err(malformed)?;
                    if steps > STEPS_MAX {
                        return Err(malformed(format!(
                            "{steps} steps: more than a schedule may hold ({STEPS_MAX})"
                        )));
                    }
                    header.steps = Some(steps);
                }
                "draws" => header.draws = Some(parse_number(value, "draws").map_err(malformed)?),
                _ => return Err(malformed(format!("unknown header field `{key}`"))),
            }
        }
        header.check(&schedule)?;
        Ok(schedule)
    }
}

#[derive(Default)]
struct Header {
    steps: Option<u64>,
    draws: Option<u64>,
}

impl Header {
    fn check(&self, schedule: &Schedule) -> Result<(), ScheduleError> {
        let missing = |field: &str| ScheduleError::Malformed {
            line: 0,
            message: format!("the header has no `{field}` line"),
        };
        let steps = self.steps.ok_or_else(|| missing("steps"))?;
        let draws = self.draws.ok_or_else(|| missing("draws"))?;
        if schedule.test.is_empty() {
            return Err(missing("test"));
        }
        if steps != schedule.steps.len() as u64 || draws != schedule.draws.len() as u64 {
            return Err(ScheduleError::Malformed {
                line: 0,
                message: format!(
                    "the header announces {steps} steps and {draws} draws but the file holds {} \
                     and {}",
                    schedule.steps.len(),
                    schedule.draws.len()
                ),
            });
        }
        Ok(())
    }
}

/// Checks the `end` line and returns the text before it. A file that stops anywhere before the
/// end of a complete `end <16 hex digits>` line is truncated; one whose content does not match
/// the checksum is corrupt.
fn check_trailer(text: &str) -> Result<&str, ScheduleError> {
    let Some(trimmed) = text.strip_suffix('\n') else {
        return Err(ScheduleError::Truncated);
    };
    let (body, last) = match trimmed.rfind('\n') {
        Some(index) => (&text[..=index], &trimmed[index + 1..]),
        None => return Err(ScheduleError::Truncated),
    };
    let checksum = match last.strip_prefix("end ") {
        Some(checksum) if checksum.len() == 16 => checksum,
        _ => return Err(ScheduleError::Truncated),
    };
    let expected = u64::from_str_radix(checksum, 16).map_err(|_| ScheduleError::Checksum)?;
    if expected != fnv1a(body.as_bytes()) {
        return Err(ScheduleError::Checksum);
    }
    Ok(body)
}

fn parse_number(text: &str, what: &str) -> Result<u64, String> {
    text.trim().parse().map_err(|_| format!("{what} `{text}` is not a non-negative integer"))
}

fn parse_draw(text: &str) -> Result<(u64, u64), String> {
    let (step, value) =
        text.split_once(' ').ok_or_else(|| format!("draw `{text}` is not `STEP VALUE`"))?;
    Ok((parse_number(step, "draw step")?, parse_number(value, "draw value")?))
}

/// Appends one line of run-length encoded choices to `steps`, refusing any that would take it
/// past the `announced` count (so that no count in the file allocates more than the header
/// said, which is at most [`STEPS_MAX`]).
fn parse_choices(line: &str, steps: &mut Vec<TaskId>, announced: u64) -> Result<(), String> {
    for token in line.split_ascii_whitespace() {
        let (task, count) = match token.split_once('*') {
            Some((task, count)) => (task, parse_number(count, "repeat count")?),
            None => (token, 1),
        };
        let task = parse_number(task, "task id")?;
        if task > u64::from(TASK_ID_MAX) || count == 0 {
            return Err(format!("choice `{token}` is out of range"));
        }
        if (steps.len() as u64).saturating_add(count) > announced {
            return Err(format!(
                "the choices hold more than the {announced} steps the header announces"
            ));
        }
        steps.extend(std::iter::repeat_n(TaskId(task as u32), count as usize));
    }
    Ok(())
}

/// Run-length encoding of consecutive equal tasks.
fn runs(steps: &[TaskId]) -> Vec<(TaskId, usize)> {
    let mut out: Vec<(TaskId, usize)> = Vec::new();
    for &task in steps {
        match out.last_mut() {
            Some((last, count)) if *last == task => *count += 1,
            _ => out.push((task, 1)),
        }
    }
    out
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}
